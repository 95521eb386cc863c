//! Connections: accepted under a cap, served as HTTP/1.1 by hyper, and closed when a
//! client stalls.
//!
//! `axum::serve` has no header-read timeout, no idle timeout and no connection cap, so a
//! few hundred clients that send their headers one byte at a time (or connect and say
//! nothing) hold their sockets for ever and exhaust the file descriptors. This accept loop
//! adds the three, in the way of nginx's `client_header_timeout`, `keepalive_timeout` and
//! `worker_connections`:
//!
//! - at most `max_connections` are served at once; beyond that, new connections wait in
//!   the kernel's listen backlog until a slot frees (they are not refused);
//! - a request head (request line and headers) must be complete within `header_timeout`
//!   of its first byte, and a new connection must deliver its first head within
//!   `header_timeout` of being accepted;
//! - a kept-alive connection with no request in flight is closed after `idle_timeout`.
//!
//! Each connection's state lives in an [`Activity`]: the socket wrapper ([`TrackedIo`])
//! notes when bytes arrive, the service wrapper when a request starts and ends, and a
//! watchdog future beside the connection closes it once a deadline passes. (hyper's own
//! `header_read_timeout` also runs while a kept-alive connection waits for its next
//! request, so it cannot give a header timeout shorter than the idle timeout.)

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tower::ServiceExt;

/// Limits on connections (the per-request deadline is in [`super::Limits`]).
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
        }
    }
}

/// What a connection is doing, shared by its socket, its service and its watchdog.
/// Times are milliseconds since `epoch`, plus one (0 means "none").
struct Activity {
    epoch: Instant,
    in_flight: AtomicUsize,
    /// When the first byte of a request head arrived (or the connection was accepted).
    head_started: AtomicU64,
    /// When the last response was handed back (0 before the first).
    idle_since: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Activity {
            epoch: Instant::now(),
            in_flight: AtomicUsize::new(0),
            // A new connection owes its first request head within the header timeout.
            head_started: AtomicU64::new(1),
            idle_since: AtomicU64::new(0),
        }
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    fn bytes_arrived(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0 {
            let _ = self.head_started.compare_exchange(
                0,
                self.now(),
                Ordering::AcqRel,
                Ordering::Relaxed,
            );
        }
    }

    fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_started.store(0, Ordering::Release);
    }

    fn request_finished(&self) {
        self.idle_since.store(self.now(), Ordering::Release);
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }

    /// When this connection must be closed if nothing changes, in `now()` units; `None`
    /// while a request is in flight (the request deadline bounds that).
    fn deadline(&self, limits: &ConnectionLimits) -> Option<u64> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let head = self.head_started.load(Ordering::Acquire);
        if head != 0 {
            return Some(head + limits.header_timeout.as_millis() as u64);
        }
        let idle = self.idle_since.load(Ordering::Acquire);
        Some(idle + limits.idle_timeout.as_millis() as u64)
    }
}

/// Resolves when the connection has stalled past its header or idle deadline.
async fn watchdog(activity: Arc<Activity>, limits: ConnectionLimits) {
    // Deadlines can move earlier (a byte arrives on an idle connection), so look again
    // at least this often.
    let tick = (limits.header_timeout.min(limits.idle_timeout) / 4)
        .clamp(Duration::from_millis(10), Duration::from_millis(500));
    loop {
        let now = activity.now();
        let wait = match activity.deadline(&limits) {
            Some(d) if d <= now => return,
            Some(d) => Duration::from_millis(d - now).min(tick),
            None => tick,
        };
        tokio::time::sleep(wait).await;
    }
}

/// The socket, noting every arrival of bytes in the connection's [`Activity`].
struct TrackedIo {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for TrackedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.bytes_arrived();
        }
        r
    }
}

impl AsyncWrite for TrackedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Marks the request finished even if its future is dropped half-way.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

/// Serve `app` on `listener` until `shutdown` completes; then stop accepting, let the
/// requests in flight finish, and return.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    // Dropped to tell every connection to finish its request and close.
    let (stop_tx, stop_rx) = watch::channel(());
    let mut connections = tokio::task::JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let mut last_accept_error: Option<Instant> = None;
    loop {
        while connections.try_join_next().is_some() {}
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            _ = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before accept: say
                    // so (once a second at most), back off briefly, keep serving.
                    if last_accept_error.is_none_or(|t| t.elapsed() > Duration::from_secs(1)) {
                        eprintln!("warning: accepting a connection failed: {e}");
                        last_accept_error = Some(Instant::now());
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let mut stop = stop_rx.clone();
        connections.spawn(async move {
            let activity = Arc::new(Activity::new());
            let io = TokioIo::new(TrackedIo {
                inner: stream,
                activity: activity.clone(),
            });
            let a = activity.clone();
            let service = hyper::service::service_fn(move |req| {
                let app = app.clone();
                let guard = InFlight(a.clone());
                a.request_started();
                async move {
                    let response = app.oneshot(req).await;
                    drop(guard);
                    response
                }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(io, service)
                .with_upgrades();
            let mut conn = std::pin::pin!(conn);
            let mut stalled = std::pin::pin!(watchdog(activity, limits));
            let mut stopping = false;
            loop {
                tokio::select! {
                    _ = conn.as_mut() => break,
                    // Closing a stalled connection: drop it (the socket closes).
                    _ = &mut stalled => break,
                    _ = stop.changed(), if !stopping => {
                        stopping = true;
                        conn.as_mut().graceful_shutdown();
                    }
                }
            }
            drop(slot);
        });
    }
    drop(stop_tx);
    drop(listener);
    while connections.join_next().await.is_some() {}
    Ok(())
}
