//! The admin console: an HTTP API (`/api/…`, described by `/api/openapi.json`) and the web pages
//! built on it, served by `serve` on the `[http] listen` server beside the acknowledgement links,
//! health and metrics. Everything here needs a login (a session cookie with CSRF protection for
//! the pages, or an API token for scripts), and every change is an audit event.

pub mod announcements;
pub mod audit;
pub mod auth;
pub mod drill;
pub mod error;
pub mod fr;
pub mod headers;
pub mod hours;
pub mod i18n;
pub mod oncall;
pub mod openapi;
pub mod pages;
pub mod prompts;
pub mod prompts_live;
pub mod sla;
pub mod tickets;

use std::sync::Arc;

use axum::Router;

use crate::store::Store;

pub use error::ApiError;

/// Largest body of a console request but a prompt upload (a ticket note, a roster change).
pub const MAX_FORM_BYTES: usize = 64 * 1024;

/// What the console's handlers share.
#[derive(Clone)]
pub struct AdminState {
    pub store: Store,
    /// Cookies get `Secure` when the console is reached over https (`[http] public_url`).
    pub secure_cookies: bool,
    /// Login attempts per source and per name (see `auth`).
    pub login_limiter: Arc<auth::LoginLimiter>,
    /// The media engine, when the console runs inside `serve` (prompt changes reach calls at
    /// once); None in tools and tests that only need the API.
    pub media: Option<crate::media::MediaEngine>,
    /// The configuration `serve` runs with (ladder, rotations, schedule, SLA).
    pub config: Arc<crate::config::Config>,
}

/// The console's routes, to merge into the HTTP server's router. Every request goes through
/// `auth::authenticate` (which lets the login page and its API through without a user).
pub fn router(state: AdminState) -> Router {
    // Forms and JSON are small: a larger body is refused before it is read (the login form
    // included, which anyone may post). Prompt uploads set their own limit.
    let small = crate::http::conn::limit_bodies(
        Router::new()
            .merge(auth::routes())
            .merge(audit::routes())
            .merge(tickets::routes())
            .merge(sla::routes())
            .merge(hours::routes())
            .merge(oncall::routes())
            .merge(announcements::routes())
            .merge(openapi::routes())
            .merge(pages::routes())
            .merge(i18n::routes()),
        MAX_FORM_BYTES,
    );
    Router::new()
        .merge(small)
        .merge(crate::http::conn::limit_bodies(
            drill::routes(),
            drill::MAX_REPORT_BYTES,
        ))
        .merge(prompts::routes())
        // Inside authentication: it knows the user (their role, their person's language).
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            i18n::localize,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
        // Outside authentication: its refusals and redirects get the headers too.
        .layer(axum::middleware::from_fn(headers::secure))
        .with_state(state)
}
