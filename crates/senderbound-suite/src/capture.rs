//! A `tracing` writer that keeps what is written in memory, for tests and the
//! demo to read the audit trail back.

use std::io::Write;
use std::sync::{Arc, Mutex};

use tracing_subscriber::Layer;
use tracing_subscriber::fmt::MakeWriter;

/// Collects formatted log output. Clones share one buffer.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    /// Captures this thread's `tracing` output (INFO and above, no colours)
    /// until the returned guard is dropped.
    pub fn install() -> (Captured, tracing::subscriber::DefaultGuard) {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(captured.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .finish();
        (captured, tracing::subscriber::set_default(subscriber))
    }

    /// Captures this thread's audit events as JSON lines, exactly as
    /// the example servers' `--audit-log` writes them, until the returned
    /// guard is dropped.
    pub fn install_json() -> (Captured, tracing::subscriber::DefaultGuard) {
        use tracing_subscriber::prelude::*;
        let captured = Captured::default();
        let subscriber = tracing_subscriber::registry().with(json_audit_layer(captured.clone()));
        (captured, tracing::subscriber::set_default(subscriber))
    }

    /// Every line written so far read as JSON (lines that are not are
    /// skipped).
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        self.lines()
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Everything written so far, as text lines.
    pub fn lines(&self) -> Vec<String> {
        let bytes = self.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut b) = self.0.lock() {
            b.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// A layer writing the audit events (target `senderbound::audit`, every
/// level) to `writer` as JSON lines: one object per event, its fields at
/// the top level with `timestamp`, `level` and `target`.
pub fn json_audit_layer<S, W>(writer: W) -> impl Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_writer(writer)
        .with_filter(
            tracing_subscriber::filter::Targets::new()
                .with_target(senderbound::audit::AUDIT_TARGET, tracing::Level::TRACE),
        )
}
