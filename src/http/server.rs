//! The shared state, the router and the server's life (graceful shutdown).
//!
//! To add routes (the admin console), merge them into [`routes`] before [`router`]'s layers, or
//! call `routes().merge(more).fallback(..)` yourself; shared state goes in [`HttpState`].

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

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
    /// The connection limits the server runs under, for `/readyz` and `/metrics`.
    pub admission: Option<super::conn::HttpAdmission>,
    /// Who may read `/metrics` (`[http] metrics_allow`).
    pub metrics_allow: Arc<Vec<ipnet::IpNet>>,
    /// The tickets table counted at most once per [`super::metrics::TICKET_COUNTS_TTL`].
    pub(crate) ticket_counts: Arc<super::metrics::TicketCountsCache>,
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
            admission: None,
            metrics_allow: Arc::new(super::HttpConfig::default().metrics_allow_nets()),
            ticket_counts: Arc::default(),
        }
    }

    /// How long one count of the tickets serves `/metrics` (default
    /// [`super::metrics::TICKET_COUNTS_TTL`]; zero counts at every scrape).
    pub fn with_ticket_counts_ttl(mut self, ttl: std::time::Duration) -> HttpState {
        self.ticket_counts = Arc::new(super::metrics::TicketCountsCache::new(ttl));
        self
    }

    pub fn with_metrics_allow(mut self, allow: Vec<ipnet::IpNet>) -> HttpState {
        self.metrics_allow = Arc::new(allow);
        self
    }

    pub fn with_admission(mut self, admission: super::conn::HttpAdmission) -> HttpState {
        self.admission = Some(admission);
        self
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
    super::conn::limit_bodies(routes().fallback(not_found), MAX_BODY_BYTES).with_state(state)
}

/// Serves the HTTP routes alone with `[http]`'s default limits (tests, tools); the engine
/// uses [`serve_app`] with the console merged in and its own budget.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: HttpState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let config = super::HttpConfig::default();
    let admission = super::conn::HttpAdmission::new(
        config.max_connections,
        config.max_connections_per_source,
        config.trusted_proxy_nets(),
        config.timeouts(),
    );
    let state = state.with_admission(admission.clone());
    serve_app(listener, router(state), admission, shutdown).await
}

/// Serves `app` (the HTTP routes with others merged in, e.g. the admin console) until
/// `shutdown`, each connection admitted and bounded in time by `admission` (see [`super::conn`]),
/// with its peer address available to handlers (login limits).
pub async fn serve_app(
    listener: tokio::net::TcpListener,
    app: Router,
    admission: super::conn::HttpAdmission,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(
            %addr,
            max_connections = admission.connections.max_total(),
            per_source = admission.connections.max_per_source(),
            "HTTP server listening"
        );
    }
    super::conn::serve_admitted(listener, app, admission, shutdown).await
}

async fn not_found() -> Page {
    Page::message(
        StatusCode::NOT_FOUND,
        "Page introuvable / Not found",
        "Il n'y a rien à cette adresse.",
        "There is nothing at this address.",
    )
}
