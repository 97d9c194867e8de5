//! Liveness (`/healthz`: the process serves HTTP) and readiness (`/readyz`: the store answers and
//! every part the engine reports on is running), plus the trait through which the engine reports.

use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tracing::warn;

use super::metrics::EngineMetrics;
use super::server::HttpState;

/// How long the store may take to answer a readiness ping or a metrics query.
pub const STORE_TIMEOUT: Duration = Duration::from_secs(1);

/// What the engine tells the HTTP server about itself. Both calls are made on the async
/// runtime for each request: they must return at once (read snapshots, never wait).
pub trait EngineProbe: Send + Sync + 'static {
    /// Each running part ("sip", "media", "paging"...) and whether it is failing.
    fn components(&self) -> Vec<ComponentHealth>;
    /// The counters and gauges exposed on `/metrics`.
    fn metrics(&self) -> EngineMetrics;
    /// Limits reached that do not make the engine unready (a budget of open files or
    /// connections in use), one sentence each for `/readyz`.
    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }
}

/// One part of the engine, as readiness sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentHealth {
    pub name: &'static str,
    /// Why it is not fine (a sentence for the operator); `None` when it is.
    pub failure: Option<String>,
}

impl ComponentHealth {
    pub fn ok(name: &'static str) -> ComponentHealth {
        ComponentHealth {
            name,
            failure: None,
        }
    }

    pub fn failed(name: &'static str, why: impl Into<String>) -> ComponentHealth {
        ComponentHealth {
            name,
            failure: Some(why.into()),
        }
    }
}

/// `GET /healthz`: answering is the whole test.
pub async fn healthz() -> Response {
    plain(StatusCode::OK, "ok\n".to_string())
}

/// `GET /readyz`: 200 "ready", or 503 with one line per failed part ("store: …", "sip: …");
/// either way followed by a "warning: …" line per limit reached lately.
pub async fn readyz(State(state): State<HttpState>) -> Response {
    let failures = readiness(&state).await;
    let mut warnings = state.probe.warnings();
    if let Some(a) = &state.admission {
        warnings.extend(a.warnings());
    }
    if failures.is_empty() {
        let mut body = String::from("ready\n");
        for w in &warnings {
            body.push_str(&format!("warning: {}\n", one_line(w)));
        }
        return plain(StatusCode::OK, body);
    }
    warn!(failures = %failures.join("; "), "not ready");
    let mut body = String::from("not ready\n");
    for line in &failures {
        body.push_str(line);
        body.push('\n');
    }
    for w in &warnings {
        body.push_str(&format!("warning: {}\n", one_line(w)));
    }
    plain(StatusCode::SERVICE_UNAVAILABLE, body)
}

/// The failed parts, as "name: why" lines; empty when ready.
pub async fn readiness(state: &HttpState) -> Vec<String> {
    let mut failures = Vec::new();
    match tokio::time::timeout(STORE_TIMEOUT, state.store.ping()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            state.count_store_error();
            failures.push(format!("store: {e}"));
        }
        Err(_) => {
            state.count_store_error();
            failures.push(format!(
                "store: no answer within {} s",
                STORE_TIMEOUT.as_secs()
            ));
        }
    }
    for c in state.probe.components() {
        if let Some(why) = c.failure {
            failures.push(format!("{}: {}", c.name, one_line(&why)));
        }
    }
    failures
}

/// A failure text on one line, so each line of the body is one part.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn plain(status: StatusCode, body: String) -> Response {
    let mut res = (status, body).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_texts_stay_on_one_line() {
        assert_eq!(one_line("port 5060\n  in use\r\n"), "port 5060 in use");
    }

    #[test]
    fn component_constructors() {
        assert_eq!(ComponentHealth::ok("sip").failure, None);
        assert_eq!(
            ComponentHealth::failed("media", "no thread")
                .failure
                .as_deref(),
            Some("no thread")
        );
    }
}
