//! The shared state, the router and the server's life (graceful shutdown).
//!
//! To add routes (the admin console), merge them into [`routes`] before [`router`]'s layers, or
//! call `routes().merge(more).fallback(..)` yourself; shared state goes in [`HttpState`].

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use chrono_tz::Tz;

use super::ack::AckLinks;
use super::ack_routes;
use super::health::{healthz, readyz, EngineProbe};
use super::metrics::metrics;
use super::page::Page;
use crate::store::Store;

/// Largest request body accepted (an acknowledgement form is a few hundred bytes).
pub const MAX_BODY_BYTES: usize = 8 * 1024;

/// Called with the ticket number after a link acknowledged it (wakes the paging planner).
pub type AckHook = Arc<dyn Fn(&str) + Send + Sync>;

/// What every handler shares; cheap to clone.
#[derive(Clone)]
pub struct HttpState {
    pub store: Store,
    pub links: Arc<AckLinks>,
    pub probe: Arc<dyn EngineProbe>,
    pub on_ack: Option<AckHook>,
    /// The schedule's zone, in which pages write times for people.
    pub zone: Tz,
    /// Store queries of this server that failed or timed out (`astreinte_store_errors_total`).
    store_errors: Arc<AtomicU64>,
}

impl HttpState {
    /// State with no hook and times written in UTC; see [`HttpState::with_on_ack`] and
    /// [`HttpState::with_zone`].
    pub fn new(store: Store, links: Arc<AckLinks>, probe: Arc<dyn EngineProbe>) -> HttpState {
        HttpState {
            store,
            links,
            probe,
            on_ack: None,
            zone: Tz::UTC,
            store_errors: Arc::new(AtomicU64::new(0)),
        }
    }

    pub fn with_on_ack(mut self, hook: AckHook) -> HttpState {
        self.on_ack = Some(hook);
        self
    }

    pub fn with_zone(mut self, zone: Tz) -> HttpState {
        self.zone = zone;
        self
    }

    pub(crate) fn count_store_error(&self) {
        self.store_errors.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn store_errors(&self) -> u64 {
        self.store_errors.load(Ordering::Relaxed)
    }
}

/// The routes without fallback or layers, for a caller that adds its own.
pub fn routes() -> Router<HttpState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route(
            "/ack/{ticket}",
            get(ack_routes::show).post(ack_routes::acknowledge),
        )
}

/// The whole application: routes, a short 404, and the body limit.
pub fn router(state: HttpState) -> Router {
    routes()
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Serves until `shutdown` completes, then finishes the requests in progress.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: HttpState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "HTTP server listening");
    }
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Serves `app` (the HTTP routes with others merged in, e.g. the admin console) until
/// `shutdown`, with each connection's peer address available to handlers (login limits).
pub async fn serve_app(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "HTTP server listening");
    }
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

async fn not_found() -> Page {
    Page::message(
        StatusCode::NOT_FOUND,
        "Page introuvable / Not found",
        "Il n'y a rien à cette adresse.",
        "There is nothing at this address.",
    )
}
