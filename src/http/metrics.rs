//! `GET /metrics`: the OpenMetrics text of prometheus-client.
//!
//! The registry is built afresh for each scrape from one snapshot ([`EngineProbe::metrics`] and
//! the store's ticket counts). The counters live where they are counted (the SIP transport, the
//! media threads, the page workers), so the exposition only copies them: a per-scrape registry
//! needs no shared mutable metric objects, forgets a channel that is gone, and can include the
//! store's answer, which is async and so could not be awaited inside a custom collector's
//! synchronous `encode`. Building ~30 series per scrape costs microseconds.
//!
//! [`EngineProbe::metrics`]: super::health::EngineProbe::metrics

use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::{ConnectInfo, State};
use axum::http::{header, Extensions, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use ipnet::IpNet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tracing::{error, warn};

use super::health::STORE_TIMEOUT;
use super::server::HttpState;
use crate::sip::transport::SipStats;
use crate::store::Status;
use crate::triage::Severity;

/// The content type prometheus-client documents for its text encoder (OpenMetrics 1.0).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What the engine counts, as plain data (the engine fills it from SIP, media and paging).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineMetrics {
    pub sip: SipStats,
    /// Panics caught on the media threads (the call was ended, the thread went on).
    pub media_contained_panics: u64,
    /// Media threads receiving RTP through io_uring and through epoll (`[media] io_uring`,
    /// and whether the kernel's seccomp profile let the ring be created).
    pub media_io_uring_threads: u64,
    pub media_epoll_threads: u64,
    /// Calls in progress now.
    pub calls_active: u64,
    /// Calls since the start.
    pub calls_total: u64,
    /// One entry per paging channel ("phone", "email", "webhook"...).
    pub pages: Vec<ChannelCounters>,
}

/// A paging channel's counters since the start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelCounters {
    pub channel: String,
    pub sent: u64,
    pub failed: u64,
    pub retried: u64,
    /// Alert: this channel keeps failing.
    pub failing: bool,
}

/// How long one count of the tickets table serves scrapes: a scraper every second (or a
/// stranger's loop, were one let in) costs the store one query per this period.
pub const TICKET_COUNTS_TTL: std::time::Duration = std::time::Duration::from_secs(15);

/// Tickets per severity and status, as the store counts them.
type TicketCounts = Vec<(Severity, Status, i64)>;

/// The last ticket counts and when they were taken; one query at a time refreshes them.
pub struct TicketCountsCache {
    ttl: std::time::Duration,
    last: tokio::sync::Mutex<Option<(Instant, TicketCounts)>>,
}

impl Default for TicketCountsCache {
    fn default() -> Self {
        TicketCountsCache::new(TICKET_COUNTS_TTL)
    }
}

impl TicketCountsCache {
    pub fn new(ttl: std::time::Duration) -> TicketCountsCache {
        TicketCountsCache {
            ttl,
            last: tokio::sync::Mutex::new(None),
        }
    }

    async fn get(&self, state: &HttpState) -> Option<TicketCounts> {
        let mut cached = self.last.lock().await;
        if let Some((at, counts)) = cached.as_ref() {
            if at.elapsed() < self.ttl {
                return Some(counts.clone());
            }
        }
        match tokio::time::timeout(STORE_TIMEOUT, state.store.ticket_counts()).await {
            Ok(Ok(counts)) => {
                *cached = Some((Instant::now(), counts.clone()));
                Some(counts)
            }
            Ok(Err(e)) => {
                state.count_store_error();
                warn!(error = %e, "metrics: the store did not give the ticket counts");
                None
            }
            Err(_) => {
                state.count_store_error();
                warn!("metrics: the store did not give the ticket counts within 1 s");
                None
            }
        }
    }
}

/// Whether the asker may read the metrics: its address (the forwarded client's, behind a
/// trusted proxy) is in `[http] metrics_allow`. A forwarded request through a proxy that is
/// not trusted is refused: its client could be anyone, even when the proxy is this host.
fn may_scrape(state: &HttpState, extensions: &Extensions, headers: &HeaderMap) -> bool {
    let Some(peer) = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(a)| a.ip())
    else {
        return false;
    };
    let trusted: &[IpNet] = match &state.admission {
        Some(a) => &a.trusted_proxies,
        None => &[],
    };
    let forwarded = ["x-forwarded-for", "forwarded", "x-real-ip"]
        .iter()
        .any(|h| headers.contains_key(*h));
    let peer_trusted = trusted.iter().any(|n| n.contains(&super::canonical(peer)));
    if forwarded && !peer_trusted {
        return false;
    }
    let Some(client) = super::client_ip(Some(peer), headers, trusted) else {
        return false;
    };
    state.metrics_allow.iter().any(|n| n.contains(&client))
}

/// `GET /metrics`.
pub async fn metrics(
    State(state): State<HttpState>,
    extensions: Extensions,
    headers: HeaderMap,
) -> Response {
    if !may_scrape(&state, &extensions, &headers) {
        return (
            StatusCode::FORBIDDEN,
            "metrics are served to the addresses in [http] metrics_allow only\n",
        )
            .into_response();
    }
    let snapshot = state.probe.metrics();
    let tickets = state.ticket_counts.get(&state).await;
    match exposition(&snapshot, tickets.as_deref(), state.store_errors()) {
        Ok(text) => {
            let mut res = (StatusCode::OK, text).into_response();
            res.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
            res
        }
        Err(e) => {
            error!(error = %e, "metrics: encoding failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "metrics encoding failed\n",
            )
                .into_response()
        }
    }
}

/// The text of one scrape. `tickets` is `None` when the store did not answer: the gauge is
/// left out rather than shown as zero.
pub fn exposition(
    m: &EngineMetrics,
    tickets: Option<&[(Severity, Status, i64)]>,
    store_errors: u64,
) -> Result<String, std::fmt::Error> {
    let mut r = Registry::with_prefix("astreinte");
    let s = &m.sip;
    let e = &s.endpoint;

    counter(
        &mut r,
        "sip_messages_received",
        "SIP datagrams and framed messages received",
        e.received,
    );
    counter(
        &mut r,
        "sip_rate_dropped",
        "SIP messages dropped unread because their source was over its rate limit",
        e.rate_dropped,
    );
    counter(
        &mut r,
        "sip_rate_refused",
        "SIP requests answered 503 because their source was over its rate limit",
        e.rate_refused,
    );
    counter(
        &mut r,
        "sip_stateless_answers",
        "SIP requests answered without a transaction (OPTIONS, refusals, junk)",
        e.stateless_answers,
    );
    counter(
        &mut r,
        "sip_strangers_in_dialog",
        "In-dialog SIP requests from an address that is not the dialog's peer",
        e.strangers_in_dialog,
    );
    counter(
        &mut r,
        "sip_control_bytes_refused",
        "SIP messages refused for a control byte, bare CR or bare LF in a header",
        e.control_bytes_refused,
    );
    counter(
        &mut r,
        "sip_over_capacity",
        "Calls refused because the endpoint held as many calls as it may",
        e.over_capacity,
    );
    counter(
        &mut r,
        "sip_contained_panics",
        "Panics caught while handling one SIP message or timer",
        s.contained_panics,
    );
    gauge(
        &mut r,
        "sip_tcp_connections",
        "SIP TCP connections open now",
        to_i64(s.tcp_open as u64),
    );
    counter(
        &mut r,
        "sip_tcp_refused",
        "SIP TCP connections closed at once because a limit was reached",
        s.tcp_refused,
    );
    counter(
        &mut r,
        "sip_tcp_cut",
        "SIP TCP connections closed for silence, an unfinished message or a peer that did not read",
        s.tcp_cut,
    );
    gauge(
        &mut r,
        "sip_rate_tracked_sources",
        "Sources the SIP rate limiter remembers now",
        to_i64(s.rate_tracked_sources as u64),
    );
    counter(
        &mut r,
        "media_contained_panics",
        "Panics caught on the media threads",
        m.media_contained_panics,
    );
    let media_io = Family::<[(&'static str, &'static str); 1], Gauge>::default();
    media_io
        .get_or_create(&[("backend", "io_uring")])
        .set(to_i64(m.media_io_uring_threads));
    media_io
        .get_or_create(&[("backend", "epoll")])
        .set(to_i64(m.media_epoll_threads));
    r.register(
        "media_io",
        "Media threads receiving RTP through each I/O backend (io_uring where the config and the seccomp profile allow it, else epoll)",
        media_io,
    );
    gauge(
        &mut r,
        "calls_active",
        "Calls in progress",
        to_i64(m.calls_active),
    );
    counter(&mut r, "calls", "Calls since the start", m.calls_total);

    let sent = Family::<[(&'static str, String); 1], Counter>::default();
    let failed = Family::<[(&'static str, String); 1], Counter>::default();
    let retried = Family::<[(&'static str, String); 1], Counter>::default();
    let failing = Family::<[(&'static str, String); 1], Gauge>::default();
    for c in &m.pages {
        let labels = [("channel", label_value(&c.channel))];
        sent.get_or_create(&labels).inc_by(c.sent);
        failed.get_or_create(&labels).inc_by(c.failed);
        retried.get_or_create(&labels).inc_by(c.retried);
        failing.get_or_create(&labels).set(i64::from(c.failing));
    }
    r.register("pages_sent", "Pages delivered, by channel", sent);
    r.register(
        "pages_failed",
        "Page attempts that failed, by channel",
        failed,
    );
    r.register(
        "pages_retried",
        "Page attempts retried after a failure, by channel",
        retried,
    );
    r.register(
        "page_channel_failing",
        "1 while a paging channel keeps failing (alert), else 0",
        failing,
    );

    if let Some(counts) = tickets {
        let family = Family::<[(&'static str, &'static str); 2], Gauge>::default();
        for (severity, status, n) in counts {
            family
                .get_or_create(&[("severity", severity.as_str()), ("status", status.as_str())])
                .set(*n);
        }
        r.register(
            "tickets",
            "Tickets in the store, by severity and status",
            family,
        );
    }
    counter(
        &mut r,
        "store_errors",
        "Store queries made by the HTTP server that failed or timed out",
        store_errors,
    );

    let mut out = String::new();
    encode(&mut out, &r)?;
    Ok(out)
}

/// Registers a counter holding `value` (prometheus-client appends `_total`).
fn counter(r: &mut Registry, name: &str, help: &str, value: u64) {
    let c: Counter = Counter::default();
    c.inc_by(value);
    r.register(name, help, c);
}

fn gauge(r: &mut Registry, name: &str, help: &str, value: i64) {
    let g: Gauge = Gauge::default();
    g.set(value);
    r.register(name, help, g);
}

/// A label value as the text format wants it: prometheus-client writes values verbatim, so a
/// quote, backslash or newline in a channel name would otherwise break the whole scrape.
fn label_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> EngineMetrics {
        let mut m = EngineMetrics::default();
        m.sip.contained_panics = 3;
        m.sip.tcp_open = 5;
        m.sip.endpoint.rate_dropped = 11;
        m.media_contained_panics = 2;
        m.media_epoll_threads = 2;
        m.calls_active = 4;
        m.calls_total = 99;
        m.pages = vec![
            ChannelCounters {
                channel: "email".into(),
                sent: 7,
                failed: 1,
                retried: 1,
                failing: false,
            },
            ChannelCounters {
                channel: "phone".into(),
                sent: 2,
                failed: 5,
                retried: 4,
                failing: true,
            },
        ];
        m
    }

    fn lines(text: &str) -> Vec<&str> {
        text.lines().collect()
    }

    #[test]
    fn the_snapshot_is_exposed_under_conventional_names() {
        let counts = [
            (Severity::S1, Status::Paged, 2),
            (Severity::S3, Status::Open, 1),
        ];
        let text = exposition(&sample(), Some(&counts), 6).unwrap();
        let l = lines(&text);
        for want in [
            "astreinte_sip_contained_panics_total 3",
            "astreinte_sip_rate_dropped_total 11",
            "astreinte_sip_tcp_connections 5",
            "astreinte_media_contained_panics_total 2",
            "astreinte_media_io{backend=\"epoll\"} 2",
            "astreinte_media_io{backend=\"io_uring\"} 0",
            "astreinte_calls_active 4",
            "astreinte_calls_total 99",
            "astreinte_pages_sent_total{channel=\"email\"} 7",
            "astreinte_pages_failed_total{channel=\"phone\"} 5",
            "astreinte_pages_retried_total{channel=\"phone\"} 4",
            "astreinte_page_channel_failing{channel=\"phone\"} 1",
            "astreinte_page_channel_failing{channel=\"email\"} 0",
            "astreinte_tickets{severity=\"S1\",status=\"paged\"} 2",
            "astreinte_tickets{severity=\"S3\",status=\"open\"} 1",
            "astreinte_store_errors_total 6",
            "# TYPE astreinte_calls counter",
            "# TYPE astreinte_calls_active gauge",
            "# EOF",
        ] {
            assert!(l.contains(&want), "missing {want:?} in\n{text}");
        }
    }

    #[test]
    fn without_the_store_the_tickets_gauge_is_left_out() {
        let text = exposition(&sample(), None, 1).unwrap();
        assert!(!text.contains("astreinte_tickets"), "{text}");
        assert!(lines(&text).contains(&"astreinte_store_errors_total 1"));
    }

    #[test]
    fn a_channel_name_is_escaped_as_a_label_value() {
        let mut m = EngineMetrics::default();
        m.pages.push(ChannelCounters {
            channel: "we\"b\\hook".into(),
            sent: 1,
            ..ChannelCounters::default()
        });
        let text = exposition(&m, None, 0).unwrap();
        assert!(
            text.contains("astreinte_pages_sent_total{channel=\"we\\\"b\\\\hook\"} 1"),
            "{text}"
        );
    }
}
