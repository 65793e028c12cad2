//! The connection loop: accepts TCP connections and serves each with HTTP/1.1 only, under
//! two deadlines a bare `poem::Server` does not give:
//!
//! - **header read**: once the first byte of a request arrives (for a connection's first
//!   request: once it opens), its whole head (request line and headers) must arrive within
//!   `server.header_read_timeout_seconds`, or the connection is closed. A client that sends
//!   one header line every few seconds (slowloris), or opens connections and sends nothing, is
//!   cut off.
//! - **keep-alive idle**: a connection on which no byte moves in either direction for
//!   `server.keep_alive_timeout_seconds` while no request is being handled is closed. It covers
//!   both an idle keep-alive connection and a client that stops reading its response.
//!
//! The request *body* has its own deadline, enforced where it is read (the edge layer in
//! `api`), so that its answer can be a JSON 408.
//!
//! Why HTTP/1.1 only: nothing in front of or behind Vigia needs cleartext HTTP/2 (load
//! balancers and the nginx in `deploy/` speak HTTP/1.1 to their upstream), and h2c requests
//! carry neither `Content-Length` nor `Transfer-Encoding`, the very signals a size check reads.
//! An HTTP/2 connection preface is answered as the malformed HTTP/1 request it is.
//!
//! Shutdown: the listener closes at once; open connections finish the request in flight
//! (hyper's graceful shutdown: no new request on a keep-alive connection), within the grace.

use std::{
    convert::Infallible,
    future::Future,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU8, AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use hyper::{body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::{rt::TokioIo, server::graceful::GracefulShutdown};
use poem::{
    Addr, Endpoint,
    http::{Request, Response, uri::Scheme},
    web::{LocalAddr, RemoteAddr},
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
};

/// The connection deadlines (see the module documentation).
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    pub header_read: Duration,
    pub keep_alive: Duration,
}

/// Largest buffer hyper keeps for a connection's unparsed input (a request head must fit;
/// the edge layer answers 431 beyond 16 KiB of headers, so this only bounds memory).
const MAX_READ_BUFFER: usize = 64 * 1024;

/// Serves `endpoint` on `listener` until `shutdown` resolves, then drains open connections for
/// at most `grace`.
pub async fn serve<E>(
    listener: TcpListener,
    endpoint: E,
    deadlines: Deadlines,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) -> io::Result<()>
where
    E: Endpoint + 'static,
{
    let endpoint = Arc::new(endpoint);
    let local = LocalAddr(Addr::SocketAddr(listener.local_addr()?));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors or a connection reset before accept: keep serving
                    // the open connections; a brief pause keeps an EMFILE from spinning.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        spawn_connection(
            stream,
            peer,
            endpoint.clone(),
            local.clone(),
            deadlines,
            &graceful,
        );
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            grace_seconds = grace.as_secs(),
            "shutdown grace elapsed with requests still in flight"
        );
    }
    Ok(())
}

/// Serves one connection on its own task, closed early when the watchdog finds a deadline
/// broken.
fn spawn_connection<E: Endpoint + 'static>(
    stream: TcpStream,
    peer: SocketAddr,
    endpoint: Arc<E>,
    local: LocalAddr,
    deadlines: Deadlines,
    graceful: &GracefulShutdown,
) {
    // Small requests and answers: do not wait to coalesce them.
    let _ = stream.set_nodelay(true);
    let clock = Arc::new(Clock::new());
    let remote = RemoteAddr(Addr::SocketAddr(peer));
    let service = {
        let clock = clock.clone();
        service_fn(move |req: Request<Incoming>| {
            clock.enter(Phase::Busy);
            let clock = clock.clone();
            let endpoint = endpoint.clone();
            let req = poem::Request::from((req, local.clone(), remote.clone(), Scheme::HTTP));
            async move {
                let response = endpoint.get_response(req).await;
                clock.touch();
                clock.enter(Phase::Idle);
                Ok::<_, Infallible>(Response::<BoxBody<Bytes, io::Error>>::from(response))
            }
        })
    };
    let io = TokioIo::new(Clocked {
        inner: stream,
        clock: clock.clone(),
    });
    let conn = http1::Builder::new()
        .keep_alive(true)
        .max_buf_size(MAX_READ_BUFFER)
        .serve_connection(io, service);
    let served = graceful.watch(conn);
    tokio::spawn(async move {
        tokio::select! {
            // The connection first: the watchdog only matters once it has nothing to do.
            biased;
            outcome = served => {
                if let Err(e) = outcome {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
            }
            why = watchdog(clock, deadlines) => {
                tracing::debug!(peer = %peer, reason = why, "closing a slow or idle connection");
            }
        }
    });
}

/// Where a connection is in its request cycle.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Phase {
    /// Waiting for the first byte of the next request.
    Idle = 0,
    /// Reading a request head, since [`Clock::head_since`].
    Head = 1,
    /// A request is being handled (its body is read under the edge layer's deadline).
    Busy = 2,
}

/// What the watchdog reads: the phase and the times of the last byte moved and of the first
/// byte of the current head, in milliseconds since the connection opened. Atomics, written on
/// the I/O path without locks.
struct Clock {
    opened: Instant,
    phase: AtomicU8,
    last_io: AtomicU64,
    head_since: AtomicU64,
}

impl Clock {
    /// A new connection is held to the header deadline from the moment it opens: one that
    /// never sends a byte is closed as soon as one that sends too slowly.
    fn new() -> Self {
        Self {
            opened: Instant::now(),
            phase: AtomicU8::new(Phase::Head as u8),
            last_io: AtomicU64::new(0),
            head_since: AtomicU64::new(0),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Acquire) {
            0 => Phase::Idle,
            1 => Phase::Head,
            _ => Phase::Busy,
        }
    }

    fn enter(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::Release);
    }

    fn touch(&self) {
        self.last_io.store(self.now(), Ordering::Relaxed);
    }

    /// Bytes arrived: the first of a request starts its head's deadline. Only the connection's
    /// own task writes the phase and the times (the I/O and the service run on it), so a plain
    /// load and stores suffice; `head_since` is stored before the phase that makes the
    /// watchdog read it.
    fn received(&self) {
        let now = self.now();
        self.last_io.store(now, Ordering::Relaxed);
        if self.phase.load(Ordering::Relaxed) == Phase::Idle as u8 {
            self.head_since.store(now, Ordering::Relaxed);
            self.phase.store(Phase::Head as u8, Ordering::Release);
        }
    }
}

/// Resolves once the connection breaks a deadline. It wakes every quarter of the header
/// deadline (at least every 250 ms) rather than on every phase change, so the request path
/// costs a few atomic stores and no task wake-up; a deadline is thus enforced within a
/// quarter of the header read timeout.
async fn watchdog(clock: Arc<Clock>, deadlines: Deadlines) -> &'static str {
    let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let header_read = millis(deadlines.header_read);
    let keep_alive = millis(deadlines.keep_alive);
    let tick = Duration::from_millis((header_read / 4).max(250));
    loop {
        tokio::time::sleep(tick).await;
        let now = clock.now();
        let (since, limit, why) = match clock.phase() {
            Phase::Head => (
                &clock.head_since,
                header_read,
                "request head not received in time",
            ),
            Phase::Idle => (&clock.last_io, keep_alive, "idle keep-alive connection"),
            Phase::Busy => continue,
        };
        if now >= since.load(Ordering::Relaxed).saturating_add(limit) {
            return why;
        }
    }
}

/// The socket, reporting every byte moved to the connection's [`Clock`].
struct Clocked<S> {
    inner: S,
    clock: Arc<Clock>,
}

impl<S> Clocked<S> {
    /// Reports a write that moved bytes, and passes its outcome on.
    fn wrote(&self, polled: Poll<io::Result<usize>>) -> Poll<io::Result<usize>> {
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.clock.touch();
        }
        polled
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Clocked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.clock.received();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Clocked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.wrote(polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.wrote(polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
