//! The HTTP server on a real socket (127.0.0.1:0) with a temp SQLite store and a probe test
//! double; reqwest as the client. The engine's wiring is tested end to end elsewhere.

use astreinte::call::callback::CallbackNumber;
use std::sync::{Arc, Mutex};

use astreinte::http::{
    serve, AckLinks, ChannelCounters, ComponentHealth, EngineMetrics, EngineProbe, HttpState,
};
use astreinte::schedule::{Schedule, ScheduleConfig};
use astreinte::store::{Account, Action, NewTicket, Status, Store, StoreConfig};
use astreinte::triage::Severity;
use chrono::{Duration, Utc};
use reqwest::StatusCode;

const KEY: [u8; 32] = [42; 32];
const COMPANY: &str = "Café <Dépanneur> & Fils";

/// A probe whose answers the test sets.
#[derive(Default)]
struct FakeProbe {
    sip_failure: Mutex<Option<String>>,
    metrics: EngineMetrics,
}

impl EngineProbe for FakeProbe {
    fn components(&self) -> Vec<ComponentHealth> {
        let sip = match self.sip_failure.lock().unwrap().clone() {
            Some(why) => ComponentHealth::failed("sip", why),
            None => ComponentHealth::ok("sip"),
        };
        vec![sip, ComponentHealth::ok("media")]
    }

    fn metrics(&self) -> EngineMetrics {
        self.metrics.clone()
    }
}

struct Server {
    base: String,
    store: Store,
    links: Arc<AckLinks>,
    probe: Arc<FakeProbe>,
    /// Ticket numbers the on_ack hook was called with.
    acked: Arc<Mutex<Vec<String>>>,
    /// A ticket created by the test (S1, open, with an account).
    ticket: String,
    http: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
}

fn probe_metrics() -> EngineMetrics {
    let mut m = EngineMetrics::default();
    m.sip.contained_panics = 3;
    m.sip.tcp_open = 2;
    m.sip.endpoint.received = 1234;
    m.sip.endpoint.rate_refused = 8;
    m.media_contained_panics = 1;
    m.calls_active = 5;
    m.calls_total = 77;
    m.pages = vec![
        ChannelCounters {
            channel: "email".into(),
            sent: 12,
            failed: 2,
            retried: 1,
            failing: false,
        },
        ChannelCounters {
            channel: "phone".into(),
            sent: 4,
            failed: 9,
            retried: 6,
            failing: true,
        },
    ];
    m
}

async fn start() -> Server {
    start_counting_every(std::time::Duration::ZERO).await
}

/// A server whose `/metrics` counts the tickets at most once per `ttl`.
async fn start_counting_every(ttl: std::time::Duration) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/astreinte.db", dir.path().display());
    let store = Store::connect(&StoreConfig::with_url(url)).await.unwrap();
    let now = Utc::now();
    store
        .upsert_accounts(
            &[Account {
                code: "ACME".into(),
                company: COMPANY.into(),
                address: String::new(),
                numbers: vec!["15145550100".into()],
                contacts: vec![],
                language: Some("fr".into()),
            }],
            now,
        )
        .await
        .unwrap();
    let account = store
        .find_account_by_number("15145550100")
        .await
        .unwrap()
        .unwrap();
    let sched = Schedule::from_config(&ScheduleConfig::default()).unwrap();
    let ticket = store
        .create_ticket(&NewTicket {
            severity: Severity::S1,
            caller: "15145550100".into(),
            callback_number: CallbackNumber::from_record("15145550100"),
            account_id: Some(account.id),
            language: "fr".into(),
            voicemail: None,
            answers: Default::default(),
            classification_reasons: vec!["caller chose 1".into()],
            suspected_incident: false,
            time_scale: astreinte::schedule::TimeScale::REAL,
            created_at: now,
            due: sched.due(Severity::S1, now),
            pages: vec![],
            actor: "ivr".into(),
        })
        .await
        .unwrap()
        .number;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let links = Arc::new(AckLinks::new(&KEY, &base, Duration::hours(72)).unwrap());
    let probe = Arc::new(FakeProbe {
        metrics: probe_metrics(),
        ..FakeProbe::default()
    });
    let acked = Arc::new(Mutex::new(Vec::new()));
    let seen = acked.clone();
    let state = HttpState::new(store.clone(), links.clone(), probe.clone())
        .with_ticket_counts_ttl(ttl)
        .with_zone(chrono_tz::America::Toronto)
        .with_on_ack(Arc::new(move |t: &str| {
            seen.lock().unwrap().push(t.to_string())
        }));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, state, async move {
        let _ = stopped.await;
    }));
    Server {
        base,
        store,
        links,
        probe,
        acked,
        ticket,
        http: reqwest::Client::new(),
        stop: Some(stop),
        task,
        _dir: dir,
    }
}

impl Server {
    fn link(&self, person: &str) -> String {
        self.links.link(&self.ticket, person, Utc::now())
    }

    async fn get(&self, url: &str) -> (StatusCode, String) {
        let res = self.http.get(url).send().await.unwrap();
        let status = res.status();
        (status, res.text().await.unwrap())
    }

    /// POSTs a link's parameters as the confirm page's form does.
    async fn post_link(&self, link: &str) -> (StatusCode, String) {
        let (path, query) = link.split_once('?').unwrap();
        self.post_form(path, &params(query)).await
    }

    async fn post_form(&self, url: &str, form: &[(String, String)]) -> (StatusCode, String) {
        let res = self.http.post(url).form(form).send().await.unwrap();
        let status = res.status();
        (status, res.text().await.unwrap())
    }

    async fn status(&self) -> Status {
        self.store.ticket(&self.ticket).await.unwrap().status
    }

    async fn event_kinds(&self) -> Vec<String> {
        let events = self.store.events(&self.ticket).await.unwrap();
        events.into_iter().map(|e| e.kind).collect()
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let done = tokio::time::timeout(std::time::Duration::from_secs(5), self.task)
            .await
            .expect("the server stops on shutdown");
        done.unwrap().unwrap();
    }
}

/// A query string's pairs (the links' values need no decoding but '%'-escapes, handled here).
fn params(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap();
            (k.to_string(), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

fn with_param(link: &str, key: &str, value: &str) -> String {
    let (path, query) = link.split_once('?').unwrap();
    let query: Vec<String> = params(query)
        .into_iter()
        .map(|(k, v)| {
            if k == key {
                format!("{k}={value}")
            } else {
                format!("{k}={v}")
            }
        })
        .collect();
    format!("{path}?{}", query.join("&"))
}

fn without_param(link: &str, key: &str) -> String {
    let (path, query) = link.split_once('?').unwrap();
    let query: Vec<&str> = query
        .split('&')
        .filter(|pair| !pair.starts_with(&format!("{key}=")))
        .collect();
    format!("{path}?{}", query.join("&"))
}

#[tokio::test]
async fn a_get_shows_the_ticket_and_a_button_but_does_not_acknowledge() {
    let s = start().await;
    let link = s.link("tech1");
    let (status, body) = s.get(&link).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains(&s.ticket), "{body}");
    assert!(body.contains("S1"), "{body}");
    assert!(body.contains("+1 514-555-0100"), "{body}");
    assert!(body.contains("Café &lt;Dépanneur&gt; &amp; Fils"), "{body}");
    assert!(!body.contains(COMPANY), "unescaped company in {body}");
    assert!(body.contains("<form method=\"post\""), "{body}");
    assert!(body.contains("I take this ticket"), "{body}");
    // The form carries the link's own signed parameters.
    for (k, v) in params(link.split_once('?').unwrap().1) {
        assert!(
            body.contains(&format!("name=\"{k}\" value=\"{v}\"")),
            "{k}={v} not in {body}"
        );
    }
    // Fetched twice, as a mail scanner and a preview would: still not acknowledged.
    let (status, _) = s.get(&link).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(s.status().await, Status::Open);
    assert!(!s.event_kinds().await.contains(&"acknowledged".to_string()));
    assert!(s.acked.lock().unwrap().is_empty());
    s.stop().await;
}

#[tokio::test]
async fn a_post_acknowledges_in_the_persons_name_and_a_second_says_already() {
    let s = start().await;
    let link = s.link("tech1");
    let (status, body) = s.post_link(&link).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("call the customer back at"), "{body}");
    assert!(body.contains("+1 514-555-0100"), "{body}");
    assert!(body.contains("href=\"tel:+15145550100\""), "{body}");

    let ticket = s.store.ticket(&s.ticket).await.unwrap();
    assert_eq!(ticket.status, Status::Acknowledged);
    assert!(ticket.acknowledged_at.is_some());
    let events = s.store.events(&s.ticket).await.unwrap();
    let ack = events.iter().rfind(|e| e.kind == "acknowledged").unwrap();
    assert_eq!(ack.actor, "tech1 (link)");
    assert_eq!(
        ack.reason.as_deref(),
        Some("acknowledged by the signed link")
    );
    assert_eq!(*s.acked.lock().unwrap(), vec![s.ticket.clone()]);

    // Idempotent: the same POST again says who already took it, and changes nothing.
    let (status, body) = s.post_link(&link).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("already acknowledged"), "{body}");
    assert!(body.contains("tech1 (link)"), "{body}");
    let acks = s.event_kinds().await;
    assert_eq!(acks.iter().filter(|k| *k == "acknowledged").count(), 1);
    assert_eq!(s.acked.lock().unwrap().len(), 1);

    // Another person's link, later: the GET says who took it, with no button.
    let (status, body) = s.get(&s.link("director")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("already acknowledged") && body.contains("tech1 (link)"));
    assert!(!body.contains("<form"), "{body}");
    s.stop().await;
}

#[tokio::test]
async fn after_a_callback_the_link_says_the_customer_was_called_back() {
    let s = start().await;
    s.store
        .transition(&s.ticket, Action::CalledBack, "tech2", None, Utc::now())
        .await
        .unwrap();
    let (status, body) = s.get(&s.link("tech1")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains("already called back") && body.contains("tech2"),
        "{body}"
    );
    let (status, body) = s.post_link(&s.link("tech1")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("already called back"), "{body}");
    assert_eq!(s.status().await, Status::CalledBack);
    assert!(s.acked.lock().unwrap().is_empty());
    s.stop().await;
}

#[tokio::test]
async fn a_tampered_link_is_forbidden_and_changes_nothing() {
    let s = start().await;
    let link = s.link("tech1");
    let other = s.links.link("20990101001", "tech1", Utc::now());
    let e: i64 = params(link.split_once('?').unwrap().1)
        .into_iter()
        .find(|(k, _)| k == "e")
        .unwrap()
        .1
        .parse()
        .unwrap();
    let sig = params(other.split_once('?').unwrap().1)
        .into_iter()
        .find(|(k, _)| k == "s")
        .unwrap()
        .1;
    for bad in [
        with_param(&link, "p", "director"),
        with_param(&link, "e", &(e + 86_400).to_string()),
        with_param(&link, "s", &sig),
        // Another ticket's valid signature on this ticket's number.
        other.replace("20990101001", &s.ticket),
    ] {
        let (status, body) = s.get(&bad).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{bad}: {body}");
        assert!(body.contains("Invalid link"), "{body}");
        let (status, _) = s.post_link(&bad).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{bad}");
    }
    // A link signed with another installation's key.
    let theirs = AckLinks::new(&[7; 32], &s.base, Duration::hours(72)).unwrap();
    let (status, _) = s
        .post_link(&theirs.link(&s.ticket, "tech1", Utc::now()))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    assert_eq!(s.status().await, Status::Open);
    assert_eq!(s.event_kinds().await, vec!["created", "classified"]);
    assert!(s.acked.lock().unwrap().is_empty());
    s.stop().await;
}

#[tokio::test]
async fn an_expired_link_is_gone() {
    let s = start().await;
    let old = s
        .links
        .link(&s.ticket, "tech1", Utc::now() - Duration::hours(73));
    let (status, body) = s.get(&old).await;
    assert_eq!(status, StatusCode::GONE, "{body}");
    assert!(body.contains("expired"), "{body}");
    let (status, _) = s.post_link(&old).await;
    assert_eq!(status, StatusCode::GONE);
    assert_eq!(s.status().await, Status::Open);
    s.stop().await;
}

#[tokio::test]
async fn malformed_requests_are_bad_requests_with_a_message() {
    let s = start().await;
    let link = s.link("tech1");
    for bad in [
        without_param(&link, "s"),
        without_param(&link, "p"),
        with_param(&link, "e", "soon"),
        with_param(&link, "s", "not-hex"),
        with_param(&link, "p", &"x".repeat(500)),
        link.replace(&format!("/ack/{}", s.ticket), "/ack/12ab"),
        link.replace(
            &format!("/ack/{}", s.ticket),
            &format!("/ack/{}", "9".repeat(100)),
        ),
    ] {
        let (status, body) = s.get(&bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert!(body.contains("damaged"), "{body}");
        let (status, _) = s.post_link(&bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "POST {bad}");
    }
    let url = format!("{}/ack/{}", s.base, s.ticket);
    // Not a form.
    let res = s
        .http
        .post(&url)
        .header("content-type", "application/json")
        .body("{\"p\":\"tech1\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    // A body far larger than any acknowledgement.
    let big = vec![("p".to_string(), "x".repeat(20_000))];
    let (status, _) = s.post_form(&url, &big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(s.status().await, Status::Open);
    s.stop().await;
}

#[tokio::test]
async fn a_valid_link_to_an_unknown_ticket_is_not_found() {
    let s = start().await;
    let link = s.links.link("20990101001", "tech1", Utc::now());
    let (status, body) = s.get(&link).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(body.contains("No ticket has this number"), "{body}");
    let (status, _) = s.post_link(&link).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(s.acked.lock().unwrap().is_empty());
    s.stop().await;
}

#[tokio::test]
async fn a_hostile_person_id_is_escaped_in_the_page() {
    let s = start().await;
    let (status, body) = s.get(&s.link("<script>alert(1)</script>\"")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(!body.contains("<script>"), "{body}");
    assert!(
        body.contains("&lt;script&gt;alert(1)&lt;/script&gt;&quot;"),
        "{body}"
    );
    s.stop().await;
}

#[tokio::test]
async fn health_and_readiness_name_what_fails() {
    let s = start().await;
    let (status, body) = s.get(&format!("{}/healthz", s.base)).await;
    assert_eq!((status, body.trim()), (StatusCode::OK, "ok"));
    let (status, body) = s.get(&format!("{}/readyz", s.base)).await;
    assert_eq!((status, body.trim()), (StatusCode::OK, "ready"));

    *s.probe.sip_failure.lock().unwrap() = Some("the SIP socket is closed".into());
    let (status, body) = s.get(&format!("{}/readyz", s.base)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("sip: the SIP socket is closed"), "{body}");
    assert!(!body.contains("media") && !body.contains("store"), "{body}");
    *s.probe.sip_failure.lock().unwrap() = None;

    let (status, body) = s.get(&format!("{}/nowhere", s.base)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("Not found"), "{body}");

    s.store.close().await;
    let (status, body) = s.get(&format!("{}/readyz", s.base)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.lines().any(|l| l.starts_with("store: ")), "{body}");
    // Liveness does not depend on the store.
    let (status, _) = s.get(&format!("{}/healthz", s.base)).await;
    assert_eq!(status, StatusCode::OK);
    s.stop().await;
}

/// One sample of a text exposition: name, labels as written, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: String,
    value: f64,
}

/// Parses the Prometheus/OpenMetrics text format strictly enough to catch a broken line.
fn parse_exposition(text: &str) -> Vec<Sample> {
    assert!(text.ends_with("# EOF\n"), "no EOF marker:\n{text}");
    let valid_name = |n: &str| {
        !n.is_empty()
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
            && !n.starts_with(|c: char| c.is_ascii_digit())
    };
    let mut out = Vec::new();
    for line in text.lines() {
        if let Some(meta) = line.strip_prefix("# ") {
            let mut words = meta.splitn(3, ' ');
            let kind = words.next().unwrap();
            assert!(
                ["HELP", "TYPE", "UNIT", "EOF"].contains(&kind),
                "bad comment {line}"
            );
            if kind == "TYPE" {
                let name = words.next().unwrap();
                assert!(valid_name(name), "{line}");
                let t = words.next().unwrap();
                assert!(
                    ["counter", "gauge", "info", "histogram"].contains(&t),
                    "{line}"
                );
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line}"));
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => {
                let labels = rest.strip_suffix('}').unwrap_or_else(|| panic!("{line}"));
                for pair in labels.split(',') {
                    let (k, v) = pair.split_once('=').unwrap_or_else(|| panic!("{line}"));
                    assert!(valid_name(k), "{line}");
                    assert!(
                        v.starts_with('"') && v.ends_with('"') && v.len() >= 2,
                        "{line}"
                    );
                }
                (n, labels.to_string())
            }
            None => (series, String::new()),
        };
        assert!(valid_name(name), "{line}");
        let value = value.parse().unwrap_or_else(|_| panic!("value in {line}"));
        out.push(Sample {
            name: name.into(),
            labels,
            value,
        });
    }
    out
}

fn value(samples: &[Sample], name: &str, labels: &str) -> Option<f64> {
    samples
        .iter()
        .find(|s| s.name == name && s.labels == labels)
        .map(|s| s.value)
}

#[tokio::test]
async fn metrics_expose_the_probe_and_the_tickets() {
    let s = start().await;
    let res = s
        .http
        .get(format!("{}/metrics", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let ct = res.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
    let text = res.text().await.unwrap();
    let m = parse_exposition(&text);
    for (name, labels, want) in [
        ("astreinte_sip_contained_panics_total", "", 3.0),
        ("astreinte_sip_messages_received_total", "", 1234.0),
        ("astreinte_sip_rate_refused_total", "", 8.0),
        ("astreinte_sip_tcp_connections", "", 2.0),
        ("astreinte_media_contained_panics_total", "", 1.0),
        ("astreinte_calls_active", "", 5.0),
        ("astreinte_calls_total", "", 77.0),
        ("astreinte_pages_sent_total", "channel=\"email\"", 12.0),
        ("astreinte_pages_failed_total", "channel=\"phone\"", 9.0),
        ("astreinte_pages_retried_total", "channel=\"phone\"", 6.0),
        ("astreinte_page_channel_failing", "channel=\"phone\"", 1.0),
        ("astreinte_page_channel_failing", "channel=\"email\"", 0.0),
        ("astreinte_tickets", "severity=\"S1\",status=\"open\"", 1.0),
        ("astreinte_store_errors_total", "", 0.0),
    ] {
        assert_eq!(
            value(&m, name, labels),
            Some(want),
            "{name}{{{labels}}} in\n{text}"
        );
    }

    // The gauge follows the store.
    s.store
        .transition(&s.ticket, Action::Acknowledge, "tech1", None, Utc::now())
        .await
        .unwrap();
    let (_, text) = s.get(&format!("{}/metrics", s.base)).await;
    let m = parse_exposition(&text);
    assert_eq!(
        value(
            &m,
            "astreinte_tickets",
            "severity=\"S1\",status=\"acknowledged\""
        ),
        Some(1.0)
    );
    assert_eq!(
        value(&m, "astreinte_tickets", "severity=\"S1\",status=\"open\""),
        None
    );

    // Without the store, the gauge is left out and the failure counted.
    s.store.close().await;
    let (status, text) = s.get(&format!("{}/metrics", s.base)).await;
    assert_eq!(status, StatusCode::OK);
    let m = parse_exposition(&text);
    assert!(m.iter().all(|x| x.name != "astreinte_tickets"), "{text}");
    assert_eq!(value(&m, "astreinte_store_errors_total", ""), Some(1.0));
    assert_eq!(value(&m, "astreinte_calls_total", ""), Some(77.0));
    s.stop().await;
}

#[tokio::test]
async fn shutdown_stops_the_server() {
    let s = start().await;
    let base = s.base.clone();
    let (status, _) = s.get(&format!("{base}/healthz")).await;
    assert_eq!(status, StatusCode::OK);
    s.stop().await;
    let after = reqwest::Client::new()
        .get(format!("{base}/healthz"))
        .send()
        .await;
    assert!(after.is_err(), "still serving after shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_the_tickets_once_per_period_not_per_scrape() {
    let s = start_counting_every(std::time::Duration::from_secs(3600)).await;
    let (_, text) = s.get(&format!("{}/metrics", s.base)).await;
    let m = parse_exposition(&text);
    let open = "severity=\"S1\",status=\"open\"";
    assert_eq!(value(&m, "astreinte_tickets", open), Some(1.0));
    // The next scrapes do not ask the store: even closed, it is not missed.
    s.store.close().await;
    for _ in 0..3 {
        let (status, text) = s.get(&format!("{}/metrics", s.base)).await;
        assert_eq!(status, StatusCode::OK);
        let m = parse_exposition(&text);
        assert_eq!(value(&m, "astreinte_tickets", open), Some(1.0), "{text}");
        assert_eq!(value(&m, "astreinte_store_errors_total", ""), Some(0.0));
    }
    s.stop().await;
}
