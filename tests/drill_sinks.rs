//! The night drill's page receivers against the engine's own senders (lettre for e-mail,
//! reqwest for webhooks) over real sockets: a page is kept with its key, a sink that is down
//! cuts the connection, one that fails answers 421/451 or 503, and the senders see each as the
//! engine's retry logic expects (transient).

use std::collections::BTreeMap;
use std::net::SocketAddr;

use astreinte::drill::sinks::{Sink, SinkMode, SinkSwitch};
use astreinte::paging::email::{Mailer, SmtpConfig};
use astreinte::paging::facts::{PageReason, PagedPerson};
use astreinte::paging::webhook::{WebhookConfig, WebhookEvent, WebhookFormat, WebhookSender};
use astreinte::paging::{ChannelError, PageFacts};
use astreinte::store::{Store, StoreConfig};
use astreinte::triage::Severity;
use chrono::{TimeZone, Utc};

fn facts(key: &str) -> PageFacts {
    let created = Utc
        .with_ymd_and_hms(2024, 1, 16, 7, 17, 0)
        .single()
        .unwrap_or_default();
    PageFacts {
        ticket: "4821337".into(),
        ticket_id: 0,
        severity: Severity::S1,
        status: "paged".into(),
        company: None,
        account_code: None,
        caller: "5145550100".into(),
        callback_number: "15145550100".into(),
        created_at: created,
        callback_due_at: created + chrono::Duration::seconds(30),
        timezone: chrono_tz::America::Toronto,
        level: 2,
        reason: PageReason::Escalation,
        person: Some(PagedPerson {
            id: "tech1".into(),
            name: "Martin Roy".into(),
            language: "fr".into(),
            phone: None,
            email: Some("tech1@example.net".into()),
        }),
        answers: BTreeMap::new(),
        classification_reasons: vec![],
        voicemail_path: None,
        voicemail_seconds: None,
        ack_url: None,
        console_url: None,
        time_scale: astreinte::schedule::TimeScale::new(60).unwrap_or_default(),
        page_key: Some(key.into()),
        also: Vec::new(),
    }
}

fn any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn mailer(sink: &Sink) -> Mailer {
    Mailer::new(&SmtpConfig {
        url: format!("smtp://{}", sink.addr()),
        from: "Astreinte <astreinte@example.net>".into(),
        username: None,
        password: None,
        timeout_secs: 5,
        max_attachment_mb: 10,
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn the_mail_sink_keeps_pages_by_key_and_goes_down_and_fails_on_cue() {
    let store = Store::connect(&StoreConfig::with_url("sqlite::memory:"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let switch = SinkSwitch::default();
    let sink = Sink::mail(any_port(), switch.clone())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let m = mailer(&sink);
    let to = "Martin Roy <tech1@example.net>";
    m.send_page(to, &facts("4821337:climb:2:0:tech1:email"), &store)
        .await
        .unwrap_or_else(|e| panic!("send: {e}"));
    // The same page again (a retry after a lost answer): the sink sees the same key twice.
    m.send_page(to, &facts("4821337:climb:2:0:tech1:email"), &store)
        .await
        .unwrap_or_else(|e| panic!("send: {e}"));
    let got = sink.receipts();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].page_key, got[1].page_key);
    assert_eq!(got[0].ticket.as_deref(), Some("4821337"));
    assert_eq!(got[0].person.as_deref(), Some("tech1"));
    assert!(
        got[0]
            .headline
            .starts_with("[EXERCICE ×60] [S1] Billet 4821337"),
        "{}",
        got[0].headline
    );

    switch.set(SinkMode::Down);
    let down = m
        .send_page(to, &facts("4821337:climb:2:1:tech1:email"), &store)
        .await;
    assert!(matches!(down, Err(ChannelError::Transient(_))), "{down:?}");
    switch.set(SinkMode::Failing);
    let failing = m
        .send_page(to, &facts("4821337:climb:2:1:tech1:email"), &store)
        .await;
    assert!(
        matches!(failing, Err(ChannelError::Transient(_))),
        "{failing:?}"
    );
    assert_eq!(
        sink.receipts().len(),
        2,
        "nothing kept while down or failing"
    );
    assert_eq!(sink.refused(), 2);

    switch.set(SinkMode::Up);
    m.send_page(to, &facts("4821337:climb:2:1:tech1:email"), &store)
        .await
        .unwrap_or_else(|e| panic!("send after the outage: {e}"));
    assert_eq!(sink.receipts().len(), 3);
}

#[tokio::test]
async fn the_webhook_sink_keeps_pages_by_key_and_answers_503_when_failing() {
    let switch = SinkSwitch::default();
    let sink = Sink::webhook(any_port(), switch.clone())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let cfg = WebhookConfig {
        id: "ops".into(),
        url: format!("http://{}/hook", sink.addr()),
        format: WebhookFormat::Json,
        secret: Some("s3cret".into()),
        routing_key: None,
        timeout_secs: 2,
    };
    let sender = WebhookSender::new().unwrap_or_else(|e| panic!("{e}"));
    let f = facts("4821337:climb:1:0:tech1:webhook:ops");
    sender
        .send(&cfg, &WebhookEvent::Page(&f), Utc::now())
        .await
        .unwrap_or_else(|e| panic!("send: {e}"));
    let got = sink.receipts();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].channel, "webhook");
    assert_eq!(got[0].ticket.as_deref(), Some("4821337"));
    assert_eq!(got[0].person.as_deref(), Some("tech1"));

    switch.set(SinkMode::Failing);
    let failing = sender.send(&cfg, &WebhookEvent::Page(&f), Utc::now()).await;
    assert!(
        matches!(failing, Err(ChannelError::Transient(_))),
        "{failing:?}"
    );
    switch.set(SinkMode::Down);
    let down = sender.send(&cfg, &WebhookEvent::Page(&f), Utc::now()).await;
    assert!(matches!(down, Err(ChannelError::Transient(_))), "{down:?}");
    assert_eq!((sink.receipts().len(), sink.refused()), (1, 2));
}
