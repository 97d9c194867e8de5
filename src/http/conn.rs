//! The HTTP server's connections: who may hold one, and for how long.
//!
//! `axum::serve` holds every connection as long as the peer likes, so slow or silent strangers
//! could use up the process's open files and take the phones down. Here each accepted
//! connection takes a slot of [`ConnectionLimits`] (in all, and per source; a trusted proxy is
//! counted by the clients it forwards, per request), must send its request head within
//! `header_timeout`, is closed when it has been idle (no request running, no byte moving) for
//! `idle_timeout`, and each request (body included) must be done within `request_timeout`.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, HeaderValue, Request, Response, StatusCode};
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use ipnet::IpNet;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;
use tracing::{debug, warn};

use crate::limits::{ConnectionLimits, Refusal};
use crate::sip::routing::SourceKey;

/// How connections are bounded in time; from `[http]`.
#[derive(Debug, Clone)]
pub struct ConnectionTimeouts {
    pub header: Duration,
    pub idle: Duration,
    pub request: Duration,
}

/// What the server admits connections and requests through, shared with `/readyz` and
/// `/metrics`.
#[derive(Debug, Clone)]
pub struct HttpAdmission {
    /// Connections, per TCP peer.
    pub connections: Arc<ConnectionLimits<SourceKey>>,
    /// Requests in progress per client behind a trusted proxy (the proxy itself is exempt from
    /// the per-source share of `connections`).
    pub forwarded: Arc<ConnectionLimits<SourceKey>>,
    pub trusted_proxies: Arc<Vec<IpNet>>,
    pub timeouts: ConnectionTimeouts,
    accept_errors: Arc<AtomicU64>,
    /// When `accept` last failed (ms since `epoch`), 0 for never.
    accept_failed_at: Arc<AtomicU64>,
    epoch: Instant,
}

impl HttpAdmission {
    pub fn new(
        max_connections: usize,
        max_per_source: usize,
        trusted_proxies: Vec<IpNet>,
        timeouts: ConnectionTimeouts,
    ) -> HttpAdmission {
        HttpAdmission {
            connections: ConnectionLimits::new(max_connections, max_per_source),
            forwarded: ConnectionLimits::new(max_connections, max_per_source),
            trusted_proxies: Arc::new(trusted_proxies),
            timeouts,
            accept_errors: Arc::default(),
            accept_failed_at: Arc::default(),
            epoch: Instant::now(),
        }
    }

    fn is_proxy(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        self.trusted_proxies.iter().any(|n| n.contains(&ip))
    }

    /// `accept` failures since start (the process out of open files, mostly).
    pub fn accept_errors(&self) -> u64 {
        self.accept_errors.load(Ordering::Relaxed)
    }

    /// Sentences for `/readyz` about limits reached lately; empty when none was.
    pub fn warnings(&self) -> Vec<String> {
        let now = Instant::now();
        let mut out = Vec::new();
        if self.connections.recently_full(now) {
            out.push(format!(
                "http: connection budget reached ({} of {}): new connections are refused; calls \
                 keep their own open files",
                self.connections.open(),
                self.connections.max_total()
            ));
        }
        let failed = self.accept_failed_at.load(Ordering::Relaxed);
        if failed != 0
            && (now.duration_since(self.epoch).as_millis() as u64).saturating_sub(failed) < 10_000
        {
            out.push(format!(
                "http: accepting connections failed lately ({} times since start)",
                self.accept_errors()
            ));
        }
        out
    }
}

/// The answer to a connection that is not admitted, written without reading its request.
const REFUSED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\
    Retry-After: 5\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 29\r\n\r\n\
    Too many connections; retry.\n";

/// Serves `app` on `listener` until `shutdown`, then lets requests in progress finish (up to
/// `request_timeout`). Handlers find the peer as `ConnectInfo<SocketAddr>`.
pub async fn serve_admitted(
    listener: TcpListener,
    app: Router,
    admission: HttpAdmission,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(admission.timeouts.header)
        .keep_alive(true)
        .max_buf_size(64 * 1024);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: say so (once a period), and do not spin.
                    let n = admission.accept_errors.fetch_add(1, Ordering::Relaxed);
                    let since = admission.epoch.elapsed().as_millis() as u64;
                    let last = admission.accept_failed_at.swap(since.max(1), Ordering::Relaxed);
                    if n == 0 || since.saturating_sub(last) >= 10_000 {
                        warn!(error = %e, failures = n + 1, "HTTP accept failed");
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let exempt = admission.is_proxy(peer.ip());
        let slot =
            match admission
                .connections
                .admit(SourceKey::of(peer.ip()), exempt, Instant::now())
            {
                Ok(slot) => slot,
                Err((refusal, log)) => {
                    if log {
                        warn!(
                            source = %peer.ip(),
                            open = admission.connections.open(),
                            limit = match refusal {
                                Refusal::Total => admission.connections.max_total(),
                                Refusal::PerSource => admission.connections.max_per_source(),
                            },
                            why = ?refusal,
                            "HTTP connection refused: budget reached"
                        );
                    }
                    let _ = stream.try_write(REFUSED);
                    continue;
                }
            };
        let _ = stream.set_nodelay(true);
        let activity = Activity::new();
        let io = TokioIo::new(Watched {
            inner: stream,
            activity: activity.clone(),
        });
        let service = RequestService {
            app: app.clone(),
            peer,
            exempt,
            admission: admission.clone(),
            activity: activity.clone(),
        };
        let conn = graceful.watch(http.serve_connection(
            io,
            hyper::service::service_fn(move |req| service.clone().call(req)),
        ));
        let idle = admission.timeouts.idle;
        tokio::spawn(async move {
            let _slot = slot;
            tokio::select! {
                r = conn => if let Err(e) = r {
                    debug!(%peer, error = %e, "HTTP connection ended with an error");
                },
                () = activity.idle_for(idle) => debug!(%peer, "HTTP connection closed: idle"),
            }
        });
    }
    drop(listener);
    // Requests in progress get their own deadline; then we go.
    let _ = tokio::time::timeout(admission.timeouts.request, graceful.shutdown()).await;
    Ok(())
}

/// One connection's requests, through the per-client cap and the request deadline.
#[derive(Clone)]
struct RequestService {
    app: Router,
    peer: SocketAddr,
    exempt: bool,
    admission: HttpAdmission,
    activity: Activity,
}

impl RequestService {
    async fn call(self, mut req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
        let _busy = self.activity.begin();
        // Behind a trusted proxy, each client gets the share a direct peer gets.
        let _client_slot = if self.exempt {
            let client = super::client_ip(
                Some(self.peer.ip()),
                req.headers(),
                &self.admission.trusted_proxies,
            )
            .unwrap_or(self.peer.ip());
            let key = SourceKey::of(client);
            match self.admission.forwarded.admit(key, false, Instant::now()) {
                Ok(slot) => Some(slot),
                Err((_, log)) => {
                    if log {
                        warn!(%client, "HTTP request refused: this client's share is in use");
                    }
                    return Ok(plain(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "Too many requests in progress from your address; retry.\n",
                    ));
                }
            }
        } else {
            None
        };
        req.extensions_mut().insert(ConnectInfo(self.peer));
        let deadline = self.admission.timeouts.request;
        match tokio::time::timeout(deadline, self.app.oneshot(req.map(Body::new))).await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(never)) => match never {},
            Err(_) => {
                debug!(peer = %self.peer, "HTTP request over its deadline");
                let mut resp = plain(
                    StatusCode::REQUEST_TIMEOUT,
                    "The request took too long (body or answer); retry.\n",
                );
                resp.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
                Ok(resp)
            }
        }
    }
}

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut resp = Response::new(Body::from(text));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// When a connection last moved a byte, and how many of its requests are running.
#[derive(Clone)]
struct Activity(Arc<ActivityState>);

struct ActivityState {
    epoch: Instant,
    /// Milliseconds since `epoch` of the last byte read or written.
    last: AtomicU64,
    running: AtomicUsize,
}

impl Activity {
    fn new() -> Activity {
        Activity(Arc::new(ActivityState {
            epoch: Instant::now(),
            last: AtomicU64::new(0),
            running: AtomicUsize::new(0),
        }))
    }

    fn touch(&self) {
        let ms = self.0.epoch.elapsed().as_millis() as u64;
        self.0.last.store(ms, Ordering::Relaxed);
    }

    fn begin(&self) -> Running {
        self.0.running.fetch_add(1, Ordering::Relaxed);
        Running(self.clone())
    }

    /// Completes once no request has run and no byte has moved for `idle`.
    async fn idle_for(&self, idle: Duration) {
        let step = (idle / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
        loop {
            tokio::time::sleep(step).await;
            let quiet = self
                .0
                .epoch
                .elapsed()
                .saturating_sub(Duration::from_millis(self.0.last.load(Ordering::Relaxed)));
            if self.0.running.load(Ordering::Relaxed) == 0 && quiet >= idle {
                return;
            }
        }
    }
}

/// A request running; dropping it (answered or abandoned) ends it.
struct Running(Activity);

impl Drop for Running {
    fn drop(&mut self) {
        self.0 .0.running.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

/// A TCP stream that notes each byte moved in its [`Activity`].
struct Watched {
    inner: TcpStream,
    activity: Activity,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Refuses (413) a request whose declared `Content-Length` is over `max` before a byte of its
/// body is read; pair it with `DefaultBodyLimit::max(max)`, which bounds a body sent without
/// a length (chunked) as it is read.
pub async fn refuse_declared_oversize(
    max: usize,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        let mut resp = plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            "The request body is larger than this address takes.\n",
        );
        // The body stays unread: the connection cannot carry another request.
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return resp;
    }
    next.run(req).await
}

/// `DefaultBodyLimit` and [`refuse_declared_oversize`] at `max`, as one call for a router.
pub fn limit_bodies<S: Clone + Send + Sync + 'static>(router: Router<S>, max: usize) -> Router<S> {
    router
        .layer(axum::extract::DefaultBodyLimit::max(max))
        .layer(axum::middleware::from_fn(move |req, next| {
            refuse_declared_oversize(max, req, next)
        }))
}
