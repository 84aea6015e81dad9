//! Serving a router over plain HTTP/1.1 and HTTP/2 (feature `serve`).
//!
//! [`serve`] is `axum::serve` with what the Layer needs from the server
//! that reads the requests:
//!
//! - HTTP/1.1 and cleartext HTTP/2 (prior knowledge, as gRPC clients
//!   speak it) on one port; in HTTP/2 the authority is `:authority`, which
//!   the Layer checks against `Host` (RFC 9113 §8.3.1).
//! - A request target with a fragment (`GET /a#b`), which the `http` crate
//!   silently drops, is marked ([`FragmentInTarget`]) so the Layer refuses
//!   it (RFC 9112 §3.2). The server reads along with hyper's parser to tell;
//!   see `request_line`.
//! - Every request carries the peer address as
//!   [`ConnectInfo<SocketAddr>`](ConnectInfo), so forwarded client
//!   certificates are believed only from trusted proxies
//!   ([`mtls`](crate::mtls)).
//! - The first request must arrive within 30 s of the connection opening
//!   (whatever the protocol: the wait for the bytes that tell HTTP/1 from
//!   HTTP/2 included), an HTTP/1 request head within 30 s of the previous
//!   response, and an HTTP/2 peer must answer pings (every 20 s, within
//!   20 s), so silent sockets cannot pin tasks forever. There is no limit on
//!   the number of connections (the operating system's file limit is one):
//!   put a proxy in front where that matters.
//!
//! ```no_run
//! use axum::{Router, routing::get};
//!
//! # async fn run(app: Router) -> Result<(), Box<dyn std::error::Error>> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! senderbound::serve::serve(listener, app)
//!     .with_graceful_shutdown(async { tokio::signal::ctrl_c().await.unwrap_or(()) })
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! [`FragmentInTarget`]: crate::framing::FragmentInTarget

mod request_line;

use std::convert::Infallible;
use std::fmt;
use std::future::{Future, IntoFuture};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tower::ServiceExt as _;

use crate::framing::FragmentInTarget;
use crate::mtls::ClientCertificate;
use request_line::{RequestLines, Targets};

/// How long a client has to send a request head on an open connection
/// (its first request included, whatever the protocol).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How often an HTTP/2 connection is pinged, and how long an answer may
/// take before the connection is closed.
pub const HTTP2_KEEP_ALIVE: Duration = Duration::from_secs(20);

/// Serves `app` on `listener` over HTTP/1.1 and cleartext HTTP/2; see the
/// [module docs](self).
///
/// Await it to run until an I/O error of the listener itself; add
/// [`with_graceful_shutdown`](Serve::with_graceful_shutdown) to stop on a
/// signal.
pub fn serve(listener: TcpListener, app: Router) -> Serve {
    Serve {
        listener,
        app,
        transport: Transport::Plain,
    }
}

/// How connections are opened.
#[derive(Clone)]
pub(crate) enum Transport {
    /// The TCP stream as it is.
    Plain,
    /// A TLS handshake first; its client certificate goes into requests.
    #[cfg(feature = "tls")]
    Tls(tokio_rustls::TlsAcceptor),
}

/// The future-to-be of [`serve`] (and of [`tls::serve`](crate::tls::serve)).
#[must_use = "a server does nothing until awaited"]
pub struct Serve {
    listener: TcpListener,
    app: Router,
    transport: Transport,
}

impl Serve {
    #[cfg(feature = "tls")]
    pub(crate) fn with_transport(listener: TcpListener, app: Router, transport: Transport) -> Self {
        Serve {
            listener,
            app,
            transport,
        }
    }

    /// Stops accepting connections when `signal` completes, lets open
    /// connections finish their current request, then returns.
    pub fn with_graceful_shutdown<F>(self, signal: F) -> WithGracefulShutdown<F>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        WithGracefulShutdown {
            serve: self,
            signal,
        }
    }
}

impl fmt::Debug for Serve {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Serve")
            .field("listener", &self.listener)
            .finish_non_exhaustive()
    }
}

type ServeFuture = Pin<Box<dyn Future<Output = io::Result<()>> + Send>>;

impl IntoFuture for Serve {
    type Output = io::Result<()>;
    type IntoFuture = ServeFuture;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(run(self, std::future::pending()))
    }
}

/// [`serve`] with a shutdown signal.
#[must_use = "a server does nothing until awaited"]
pub struct WithGracefulShutdown<F> {
    serve: Serve,
    signal: F,
}

impl<F> fmt::Debug for WithGracefulShutdown<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WithGracefulShutdown")
            .field("serve", &self.serve)
            .finish_non_exhaustive()
    }
}

impl<F> IntoFuture for WithGracefulShutdown<F>
where
    F: Future<Output = ()> + Send + 'static,
{
    type Output = io::Result<()>;
    type IntoFuture = ServeFuture;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(run(self.serve, self.signal))
    }
}

async fn run(serve: Serve, signal: impl Future<Output = ()> + Send) -> io::Result<()> {
    let Serve {
        listener,
        app,
        transport,
    } = serve;
    let graceful = GracefulShutdown::new();
    let mut signal = std::pin::pin!(signal);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    // Out of file descriptors and the like: wait, don't spin.
                    tracing::error!(target: "senderbound::serve", "accept failed: {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            },
            () = &mut signal => break,
        };
        let _ = tcp.set_nodelay(true);
        let watcher = graceful.watcher();
        let (app, transport) = (app.clone(), transport.clone());
        tokio::spawn(async move {
            let served = match transport {
                Transport::Plain => connection(tcp, peer, None, app, watcher).await,
                #[cfg(feature = "tls")]
                Transport::Tls(acceptor) => {
                    let Some((tls, cert)) = crate::tls::handshake(&acceptor, tcp).await else {
                        return;
                    };
                    connection(tls, peer, cert, app, watcher).await
                }
            };
            if let Err(e) = served {
                tracing::debug!(target: "senderbound::serve", "connection ended: {e}");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Serves one connection: HTTP/1.1 or HTTP/2, whichever the client speaks.
async fn connection<IO>(
    io: IO,
    peer: SocketAddr,
    cert: Option<ClientCertificate>,
    app: Router,
    watcher: hyper_util::server::graceful::Watcher,
) -> Result<(), BoxError>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let targets = Targets::default();
    let io = TokioIo::new(RequestLines::new(io, targets.clone(), HEADER_READ_TIMEOUT));
    let service = hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
        let extensions = req.extensions_mut();
        extensions.insert(ConnectInfo(peer));
        if let Some(cert) = &cert {
            extensions.insert(cert.clone());
        }
        // HTTP/1 requests are dispatched in the order they were read.
        if req.version() >= http::Version::HTTP_2 {
            targets.dispatched();
        } else if targets.next() {
            req.extensions_mut().insert(FragmentInTarget);
        }
        app.clone().oneshot(req)
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    // A peer that stops answering HTTP/2 pings is let go.
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(HTTP2_KEEP_ALIVE))
        .keep_alive_timeout(HTTP2_KEEP_ALIVE);
    watcher.watch(builder.serve_connection(io, service)).await
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

// `Router` answers every request (`Infallible`): keep it that way, the
// connection task relies on it.
const _: fn() = || {
    fn infallible<S: tower_service::Service<http::Request<Incoming>, Error = Infallible>>() {}
    infallible::<Router>();
};

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection that sends nothing (or less than the bytes that tell
    /// HTTP/1 from HTTP/2) is closed once the first-request time is up.
    #[tokio::test(start_paused = true)]
    async fn a_silent_connection_is_closed() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let (client, server) = tokio::io::duplex(1024);
        let app = Router::new().fallback(|| async { "never" });
        let watcher = GracefulShutdown::new().watcher();
        let served = tokio::spawn(connection(
            server,
            "127.0.0.1:1".parse().unwrap(),
            None,
            app,
            watcher,
        ));
        let (mut read, mut write) = tokio::io::split(client);
        write.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
        tokio::time::sleep(HEADER_READ_TIMEOUT + Duration::from_secs(1)).await;
        let result = served.await.unwrap();
        assert!(result.is_err(), "{result:?}");
        let mut rest = Vec::new();
        let _ = read.read_to_end(&mut rest).await;
    }

    /// A fragment reaches the Layer's framing check through a real socket.
    #[tokio::test]
    async fn fragments_are_marked_on_the_request() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        use tokio::net::TcpStream;
        let app = Router::new().fallback(|req: http::Request<axum::body::Body>| async move {
            format!(
                "fragment={}",
                req.extensions().get::<FragmentInTarget>().is_some()
            )
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, app).into_future());
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(
                b"GET /a#x HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            )
            .await
            .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        let marks: Vec<&str> = answer.matches("fragment=").collect();
        assert_eq!(marks.len(), 2, "{answer}");
        let first = answer.find("fragment=true").unwrap();
        let second = answer.find("fragment=false").unwrap();
        assert!(first < second, "{answer}");
    }
}
