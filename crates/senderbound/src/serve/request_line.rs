//! Seeing HTTP/1 request targets as sent: the `http` crate drops a
//! fragment (`#…`) when it parses a URI, so by the time a request reaches a
//! service nobody can tell it had one, although a request target never
//! carries a fragment (RFC 9112 §3.2) and the Layer refuses one.
//!
//! [`RequestLines`] wraps a connection's I/O and reads along with hyper:
//! each request head is parsed with `httparse` (the parser hyper uses), its
//! body skipped by `Content-Length` or chunked framing, and for each request
//! in order it records whether the target had a fragment. The serving loop
//! takes one record per request it dispatches ([`Targets::next`]) and marks
//! the request with [`FragmentInTarget`](crate::framing::FragmentInTarget).
//!
//! It only observes: hyper's parser decides what a request is. On anything
//! it cannot follow (an upgrade, `CONNECT`, HTTP/2's preface, a head hyper
//! would refuse, a head over 64 KiB) it stops reading along, and the
//! requests that follow on that connection are not marked: a client can
//! switch the marking off for its own connection only, and fragments never
//! reach the `htu` comparison anyway. HTTP/2 `:path` is not followed.
//!
//! The wrapper also bounds how long a connection may stay open before its
//! first request: the 30 s head timeout of hyper's HTTP/1 code only starts
//! once hyper-util has seen enough bytes to tell HTTP/1 from HTTP/2.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// Longest request head followed (hyper's own limit is larger; a longer
/// head only stops the reading along).
const MAX_HEAD: usize = 64 * 1024;
/// Most header fields followed (hyper's default limit).
const MAX_HEADERS: usize = 100;

/// Whether each request of a connection had a fragment, in order, and
/// whether any request was dispatched yet.
#[derive(Clone, Default)]
pub(crate) struct Targets(Arc<TargetsInner>);

#[derive(Default)]
struct TargetsInner {
    fragments: Mutex<VecDeque<bool>>,
    dispatched: AtomicBool,
}

impl Targets {
    /// Whether the next request dispatched had a fragment in its target
    /// (HTTP/1); also notes that a request was dispatched.
    pub(crate) fn next(&self) -> bool {
        self.dispatched();
        self.0
            .fragments
            .lock()
            .map(|mut q| q.pop_front().unwrap_or(false))
            .unwrap_or(false)
    }

    /// Notes that a request was dispatched (any protocol).
    pub(crate) fn dispatched(&self) {
        self.0.dispatched.store(true, Ordering::Relaxed);
    }

    fn any_dispatched(&self) -> bool {
        self.0.dispatched.load(Ordering::Relaxed)
    }

    fn push(&self, fragment: bool) {
        if let Ok(mut q) = self.0.fragments.lock() {
            q.push_back(fragment);
        }
    }
}

enum State {
    /// Reading a request head (bytes so far).
    Head(Vec<u8>),
    /// Skipping this many body bytes.
    Body(u64),
    /// A chunked body: reading a chunk-size line (bytes so far).
    ChunkSize(Vec<u8>),
    /// Chunk data still to skip, then its CRLF.
    ChunkData(u64),
    /// The trailer section after the last chunk (bytes so far).
    Trailers(Vec<u8>),
    /// Not following any more.
    Off,
}

/// Follows the request framing of a byte stream; see the module docs.
pub(crate) struct Follower {
    state: State,
    targets: Targets,
}

impl Follower {
    pub(crate) fn new(targets: Targets) -> Self {
        Follower {
            state: State::Head(Vec::new()),
            targets,
        }
    }

    /// Takes in the next bytes the server read.
    pub(crate) fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            bytes = match std::mem::replace(&mut self.state, State::Off) {
                State::Off => return,
                // Parsed in place when the head arrived whole (the usual
                // case), else from the bytes gathered so far.
                State::Head(head) if head.is_empty() => match self.head(bytes) {
                    Some(used) => &bytes[used..],
                    None => {
                        if matches!(self.state, State::Head(_)) {
                            self.state = State::Head(bytes.to_vec());
                        }
                        return;
                    }
                },
                State::Head(mut head) => {
                    let before = head.len();
                    head.extend_from_slice(bytes);
                    // Parse again only once the head's empty line is in:
                    // re-reading a head trickled in byte by byte on every
                    // read would cost its length squared.
                    if !ends_a_section(&head, before) {
                        if head.len() >= MAX_HEAD {
                            return; // Off
                        }
                        self.state = State::Head(head);
                        return;
                    }
                    match self.head(&head) {
                        // The head was incomplete before these bytes, so
                        // it ends inside them.
                        Some(used) => &bytes[used.saturating_sub(before)..],
                        None => {
                            if matches!(self.state, State::Head(_)) {
                                self.state = State::Head(head);
                            }
                            return;
                        }
                    }
                }
                State::Body(left) => {
                    let take = usize::try_from(left).unwrap_or(usize::MAX).min(bytes.len());
                    let left = left - take as u64;
                    self.state = if left == 0 {
                        State::Head(Vec::new())
                    } else {
                        State::Body(left)
                    };
                    &bytes[take..]
                }
                State::ChunkSize(mut line) => {
                    let before = line.len();
                    line.extend_from_slice(bytes);
                    match httparse::parse_chunk_size(&line) {
                        Ok(httparse::Status::Complete((used, size))) => {
                            self.state = match size {
                                0 => State::Trailers(Vec::new()),
                                // The data, then its CRLF.
                                size => State::ChunkData(size.saturating_add(2)),
                            };
                            &bytes[used - before..]
                        }
                        Ok(httparse::Status::Partial) if line.len() < MAX_HEAD => {
                            self.state = State::ChunkSize(line);
                            &[]
                        }
                        _ => return,
                    }
                }
                State::ChunkData(left) => {
                    let take = usize::try_from(left).unwrap_or(usize::MAX).min(bytes.len());
                    let left = left - take as u64;
                    self.state = if left == 0 {
                        State::ChunkSize(Vec::new())
                    } else {
                        State::ChunkData(left)
                    };
                    &bytes[take..]
                }
                State::Trailers(mut section) => {
                    let before = section.len();
                    section.extend_from_slice(bytes);
                    match trailers_end(&section, before) {
                        Some(end) => {
                            self.state = State::Head(Vec::new());
                            &bytes[end - before..]
                        }
                        None if section.len() < MAX_HEAD => {
                            self.state = State::Trailers(section);
                            &[]
                        }
                        None => return,
                    }
                }
            };
        }
    }

    /// A head in the making: once complete, records the request, sets the
    /// state for its body and returns the head's length. `None` while the
    /// head is incomplete (the state stays `Head`) or when it cannot be
    /// followed (the state becomes `Off`).
    fn head(&mut self, head: &[u8]) -> Option<usize> {
        let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut request = httparse::Request::new(&mut fields);
        let used = match request.parse(head) {
            Ok(httparse::Status::Complete(used)) => used,
            Ok(httparse::Status::Partial) if head.len() < MAX_HEAD => {
                self.state = State::Head(Vec::new());
                return None;
            }
            _ => return None, // Off: hyper refuses it, or it is too long
        };
        self.targets
            .push(request.path.is_some_and(|p| p.contains('#')));
        let headers = &*request.headers;
        let field = |name: &'static str| {
            headers
                .iter()
                .filter(move |h| h.name.eq_ignore_ascii_case(name))
                .map(|h| h.value)
        };
        let upgrade = request.method == Some("CONNECT") || field("upgrade").next().is_some();
        let chunked = field("transfer-encoding").next_back().map(|te| {
            std::str::from_utf8(te).is_ok_and(|te| {
                te.rsplit(',')
                    .next()
                    .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"))
            })
        });
        // As hyper reads it: every value of every field (comma-separated),
        // all the same number.
        let mut lengths = field("content-length").flat_map(|v| {
            std::str::from_utf8(v)
                .unwrap_or("x")
                .split(',')
                .map(|n| n.trim().parse::<u64>().ok())
        });
        let length = match lengths.next() {
            None => Some(0),
            Some(first) => first.filter(|n| lengths.all(|l| l == Some(*n))),
        };
        self.state = match (upgrade, chunked, length) {
            (true, _, _) | (_, Some(false), _) | (_, None, None) => return None,
            (false, Some(true), _) => State::ChunkSize(Vec::new()),
            (false, None, Some(0)) => State::Head(Vec::new()),
            (false, None, Some(n)) => State::Body(n),
        };
        Some(used)
    }
}

/// The end of a trailer section (an empty line ends it), if complete; the
/// first `searched` bytes were looked at already.
fn trailers_end(section: &[u8], searched: usize) -> Option<usize> {
    if section.starts_with(b"\r\n") {
        return Some(2);
    }
    let from = searched.saturating_sub(3);
    section
        .get(from..)?
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| from + i + 4)
}

/// Whether the bytes from `new` on (with the 3 before, where an empty line
/// may have begun) hold an empty line: `\n\n` or `\n\r\n` (httparse
/// accepts bare LF line ends, as hyper does).
fn ends_a_section(buf: &[u8], new: usize) -> bool {
    let tail = buf.get(new.saturating_sub(3)..).unwrap_or_default();
    tail.windows(2).any(|w| w == b"\n\n") || tail.windows(3).any(|w| w == b"\n\r\n")
}

pin_project! {
    /// A connection's I/O, followed by a [`Follower`] as it is read, and
    /// closed (a read error) if no request was dispatched `first_request`
    /// after it opened.
    pub(crate) struct RequestLines<IO> {
        #[pin]
        io: IO,
        follower: Follower,
        first_request: Option<Pin<Box<Sleep>>>,
    }
}

impl<IO> RequestLines<IO> {
    pub(crate) fn new(io: IO, targets: Targets, first_request: Duration) -> Self {
        RequestLines {
            io,
            follower: Follower::new(targets),
            first_request: Some(Box::pin(tokio::time::sleep(first_request))),
        }
    }
}

impl<IO: AsyncRead> AsyncRead for RequestLines<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let result = this.io.poll_read(cx, buf);
        match &result {
            Poll::Ready(Ok(())) => this.follower.feed(&buf.filled()[before..]),
            Poll::Pending => {
                if this.follower.targets.any_dispatched() {
                    *this.first_request = None;
                } else if let Some(deadline) = this.first_request.as_mut()
                    && deadline.as_mut().poll(cx).is_ready()
                {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no request in time",
                    )));
                }
            }
            Poll::Ready(Err(_)) => {}
        }
        result
    }
}

impl<IO: AsyncWrite> AsyncWrite for RequestLines<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.project().io.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.project().io.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `stream` in pieces of `step` bytes; the fragments seen.
    fn follow(stream: &[u8], step: usize) -> Vec<bool> {
        let targets = Targets::default();
        let mut follower = Follower::new(targets.clone());
        for piece in stream.chunks(step.max(1)) {
            follower.feed(piece);
        }
        targets
            .0
            .fragments
            .lock()
            .unwrap()
            .iter()
            .copied()
            .collect()
    }

    #[test]
    fn requests_and_bodies_in_any_pieces() {
        let stream = b"GET /a#x HTTP/1.1\r\nHost: a\r\n\r\n\
POST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 17\r\n\r\nGET /c#d HTTP/1.1\
POST /e HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
5;ext=1\r\nGET /\r\n10\r\n#0123456789abcde\r\n0\r\nX-Trailer: #\r\n\r\n\
\r\nGET /f?q#g HTTP/1.1\r\nHost: a\r\n\r\n\
GET /h HTTP/1.1\r\nHost: a\r\n\r\n";
        for step in [1, 2, 3, 7, 64, stream.len()] {
            assert_eq!(
                follow(stream, step),
                [true, false, false, true, false],
                "step {step}"
            );
        }
    }

    /// Thousands of pipelined requests in one read are followed in a loop,
    /// not by recursion (no stack growth with the number of requests).
    #[test]
    fn many_pipelined_requests_in_one_read() {
        let one = b"GET /a HTTP/1.1\r\n\r\n";
        let mut stream = one.repeat(50_000);
        stream.extend_from_slice(b"GET /b#c HTTP/1.1\r\n\r\n");
        let seen = follow(&stream, stream.len());
        assert_eq!(seen.len(), 50_001);
        assert_eq!(seen.iter().filter(|f| **f).count(), 1);
        assert_eq!(seen.last(), Some(&true));
    }

    #[test]
    fn content_length_as_hyper_reads_it() {
        let stream =
            b"POST /a HTTP/1.1\r\nContent-Length: 3, 3\r\n\r\nabcGET /b#c HTTP/1.1\r\n\r\n";
        assert_eq!(follow(stream, 4), [false, true]);
    }

    #[test]
    fn an_empty_line_is_found_across_reads() {
        for (stream, step) in [
            (&b"GET /a#b HTTP/1.1\r\nX: 1\r\n\r\n"[..], 1),
            (b"GET /a#b HTTP/1.1\nX: 1\n\n", 1),
            (b"GET /a#b HTTP/1.1\r\nX: 1\r\n\r\n", 3),
        ] {
            assert_eq!(follow(stream, step), [true]);
        }
        assert!(ends_a_section(b"abc\r\n\r\n", 6));
        assert!(ends_a_section(b"abc\n\n", 5));
        assert!(!ends_a_section(b"abc\r\nx", 5));
        assert!(
            !ends_a_section(b"abc\r\n\r\n", 99),
            "out of range: nothing new"
        );
    }

    #[test]
    fn stops_following_what_it_cannot_follow() {
        for stream in [
            &b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\nGET /a#b HTTP/1.1\r\n\r\n"[..],
            b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\nGET /a#b HTTP/1.1\r\n\r\n",
            b"POST /a HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\nGET /a#b HTTP/1.1\r\n\r\n",
            b"POST /a HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nGET /a#b HTTP/1.1\r\n\r\n",
            b"GET /a HTTP/1.1\r\nBad Header\r\n\r\nGET /a#b HTTP/1.1\r\n\r\n",
        ] {
            assert!(!follow(stream, 5).contains(&true), "{:?}", String::from_utf8_lossy(stream));
        }
    }
}
