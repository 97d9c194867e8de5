//! Wires the rooms together for `serve`: store, schedule, media engine, SIP service, and a
//! flow per call.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Context;
use tracing::{error, info, warn};

use crate::call::ivr::{run_ivr, IvrDeps};
use crate::call::voicemail::VoicemailDesk;
use crate::call::FlowKind;
use crate::config::Config;
use crate::media::{recover_unfinished, MediaEngine};

/// How long a stopping engine waits for its calls to hang up and save their recordings.
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs the engine until SIGINT/SIGTERM; then hangs up the calls in progress, saving what
/// their callers said, before it stops.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    // Calls get their open files before any connection can take one (see `limits`).
    let rtp_ports = config
        .media
        .port_range()
        .map_or(0, |(lo, hi)| u64::from(hi - lo) + 1);
    let budget = crate::limits::OpenFileBudget::at_start(
        rtp_ports,
        config.http.max_connections,
        config.sip.tcp_max_connections,
    );
    info!(
        soft_limit = budget.soft,
        raised_from = budget.soft_before,
        reserved_for_calls = budget.reserved,
        http_connections = budget.http_connections,
        sip_tcp_connections = budget.sip_tcp_connections,
        "open files shared out"
    );
    if let Some(short) = &budget.shortfall {
        warn!("{short}");
    }
    // The store first: migrations run before any call can need a ticket.
    let store = crate::store::Store::connect(&config.store)
        .await
        .with_context(|| format!("opening the store at {}", config.store.url))?;
    // Tickets from before voicemail audio was stored get theirs from this node's files, in the
    // background (readers fall back to the file meanwhile). Idempotent; every node does its own.
    tokio::spawn(backfill_voicemail_audio(store.clone()));
    let schedule = crate::schedule::Schedule::from_config(&config.schedule).map_err(|errors| {
        anyhow::anyhow!(
            "invalid [schedule]: {}",
            errors
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        )
    })?;

    // Recordings a crash left unfinished are made whole before anything else writes there.
    let recordings = PathBuf::from(&config.media.recordings_dir);
    std::fs::create_dir_all(&recordings)
        .with_context(|| format!("creating {}", recordings.display()))?;
    // Absolute, so the path a ticket keeps is readable from anywhere (CLI, console).
    let recordings = std::fs::canonicalize(&recordings)
        .with_context(|| format!("resolving {}", recordings.display()))?;
    for r in recover_unfinished(&recordings) {
        warn!(path = %r.path.display(), duration_ms = r.duration_ms, "recovered an unfinished recording");
    }
    // Then every message a previous run left without a ticket is ticketed (marked recovered).
    let triage = crate::triage::Triage::from_config(&config.triage).context("loading [triage]")?;
    let listen = config
        .sip
        .listen_addr()
        .context("[sip] listen is invalid")?;
    let media = MediaEngine::start(&config.media, listen.ip()).context("starting media")?;
    // What the console changes (hours on top of [schedule], prompts, the announcement), on
    // every node: in force before the first ticket is opened and the first call answered.
    let (live, _live_poller) = crate::live::LiveSettings::builder(
        store.clone(),
        config.schedule.clone(),
        crate::schedule::LiveSchedule::new(schedule),
    )
    .media(media.clone())
    .start()
    .await;
    let schedule = live.schedule();
    // Paging wakes as soon as a voicemail becomes a ticket.
    let paging_wake = Arc::new(tokio::sync::Notify::new());
    let desk = VoicemailDesk::start_notifying(
        store.clone(),
        schedule.clone(),
        triage,
        paging_wake.clone(),
    );
    let pending = desk.recover(&recordings);
    if pending > 0 {
        info!(
            pending,
            "opening the tickets of voicemails left by the previous run"
        );
    }

    let mut sip_config = config.sip.clone();
    sip_config.tcp_max_connections = budget.sip_tcp_connections;
    let (sip, mut incoming, mut sip_task) = crate::sip::transport::start(&sip_config)
        .await
        .context("starting SIP")?;
    info!(sip = %sip.local_addr(), rtp = %config.media.rtp_ports, "astreinte running");
    let call_config = config.call.clone();
    let advertised = sip.advertised_addr().ip();
    let flow_media = media.clone();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let calls = Arc::new(CallCounters::default());

    // Paging: the planner and worker, the phone pager, and the HTTP server with its
    // acknowledgement links (one key per installation, in the store, so every node signs alike).
    let link_key = store
        .setting_or_init("ack_link_key", &hex::encode(rand::random::<[u8; 32]>()))
        .await
        .context("reading the acknowledgement links' key")?;
    let link_key =
        hex::decode(link_key.trim()).context("the stored acknowledgement links' key is not hex")?;
    let links = match config.http.public_url() {
        Some(url) => Some(Arc::new(
            crate::http::ack::AckLinks::new(&link_key, &url, config.http.ack_link_ttl())
                .map_err(|e| anyhow::anyhow!("the acknowledgement links' key: {e}"))?,
        )),
        None => None,
    };
    let ack_links: Option<crate::paging::worker::AckLinkMaker> = links.clone().map(|l| {
        Arc::new(move |ticket: &str, person: &str, now| l.link(ticket, person, now))
            as crate::paging::worker::AckLinkMaker
    });
    let callback_policy = config.ivr.flow_config().callback_policy;
    let callback_check: crate::paging::phone::CallbackCheck = Arc::new(move |n: &str| {
        callback_policy
            .check(n.trim_start_matches('+'))
            .map(|c| c.e164())
            .map_err(|e| e.to_string())
    });
    let trunk = config
        .sip
        .outbound
        .as_ref()
        .map(|o| crate::paging::phone::Trunk {
            proxy: o.proxy.clone(),
            from: o.from.clone(),
            credentials: match (&o.username, &o.password) {
                (Some(u), Some(p)) => Some(crate::sip::digest::Credentials {
                    username: u.clone(),
                    password: p.clone(),
                }),
                _ => None,
            },
        })
        .unwrap_or_default();
    let phone = crate::paging::phone::PhonePager::new(
        sip.clone(),
        media.clone(),
        store.clone(),
        advertised,
        trunk,
        config.paging.phone.clone(),
        callback_check,
    );
    let node = format!(
        "{}-{}",
        std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "node".into()),
        std::process::id()
    );
    let paging = crate::paging::service::start(
        &config.paging,
        crate::paging::service::PagingDeps {
            store: store.clone(),
            schedule: schedule.clone(),
            phone: Some(phone),
            ack_links,
            node,
            wake: paging_wake.clone(),
        },
        stop_rx.clone(),
    )
    .await
    .context("starting paging")?;
    let sip_failure: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
    let draining: Arc<std::sync::atomic::AtomicBool> = Arc::default();
    if let (Some(listen), Some(links)) = (config.http.listen.as_deref(), links) {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("[http] listen: cannot listen on {listen}"))?;
        info!(http = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "HTTP server running");
        let probe = Arc::new(EngineState {
            sip: sip.clone(),
            media: media.clone(),
            calls: calls.clone(),
            pages: paging.counters.clone(),
            sip_failure: sip_failure.clone(),
            draining: draining.clone(),
            budget: budget.clone(),
        });
        let admission = crate::http::HttpAdmission::new(
            budget.http_connections,
            config.http.max_connections_per_source,
            config.http.trusted_proxy_nets(),
            config.http.timeouts(),
        );
        let wake = paging_wake.clone();
        let state = crate::http::HttpState::new(store.clone(), links, probe)
            .with_admission(admission.clone())
            .with_metrics_allow(config.http.metrics_allow_nets())
            .with_zone(schedule.get().timezone())
            .with_on_ack(Arc::new(move |_ticket: &str| wake.notify_one()));
        // The admin console beside the links, health and metrics.
        let console = crate::admin::AdminState {
            store: store.clone(),
            secure_cookies: config
                .http
                .public_url()
                .is_some_and(|u| u.starts_with("https://")),
            login_limiter: Arc::default(),
            media: Some(media.clone()),
            config: Arc::new(config.clone()),
        };
        let app = crate::http::router(state).merge(crate::admin::router(console));
        let mut http_stop = stop_rx.clone();
        tokio::spawn(async move {
            let stopped = async move { crate::call::stop_requested(&mut http_stop).await };
            if let Err(e) = crate::http::serve_app(listener, app, admission, stopped).await {
                error!(error = %e, "the HTTP server stopped");
            }
        });
    }
    let deps = std::sync::Arc::new(IvrDeps {
        media: media.clone(),
        sip: sip.clone(),
        desk,
        store,
        schedule,
        ivr: config.ivr.clone(),
        flow: config.ivr.flow_config(),
        call: config.call.clone(),
        recordings: recordings.clone(),
        advertised,
        announcement: live.announcement(),
        status_limits: std::sync::Arc::new(crate::call::status_limit::StatusLimits::new(
            config.ivr.status_lookups_per_hour,
            crate::sip::routing::TrustedSources::new(config.sip.trusted_nets()),
        )),
    });
    let flow_calls = calls.clone();
    let dispatcher = tokio::spawn(async move {
        let mut flows = tokio::task::JoinSet::new();
        let mut stopping = stop_rx.clone();
        loop {
            tokio::select! {
                call = incoming.recv() => match call {
                    Some(call) => {
                        let counted = flow_calls.start();
                        match call_config.flow {
                            FlowKind::Ivr => {
                                let flow = run_ivr(call, deps.clone(), stop_rx.clone());
                                flows.spawn(async move { flow.await; drop(counted) });
                            }
                            FlowKind::RecordTest => {
                                let flow = crate::call::run_inbound(
                                    call,
                                    call_config.clone(),
                                    flow_media.clone(),
                                    advertised,
                                    recordings.clone(),
                                    stop_rx.clone(),
                                );
                                flows.spawn(async move { flow.await; drop(counted) });
                            }
                        }
                    }
                    None => break,
                },
                Some(_) = flows.join_next(), if !flows.is_empty() => {}
                _ = crate::call::stop_requested(&mut stopping) => break,
            }
        }
        // Stopping: each flow hangs its call up (BYE) and finishes its recording; a call that
        // comes in meanwhile is refused with 503 (the caller's phone may try another server).
        if !flows.is_empty() {
            info!(calls = flows.len(), "hanging up the calls in progress");
        }
        let grace = tokio::time::sleep(STOP_GRACE);
        tokio::pin!(grace);
        loop {
            tokio::select! {
                done = flows.join_next() => if done.is_none() { break },
                Some(call) = incoming.recv() => call.leg.reject(503),
                _ = &mut grace => {
                    warn!(calls = flows.len(), "calls still ending after the grace period: cut off");
                    break;
                }
            }
        }
    });
    // Until a signal, watch the components: one that dies takes the engine down with a
    // non-zero exit, so the service manager restarts it instead of leaving a line that rings
    // into nothing.
    let media_failed = {
        let media = media.clone();
        async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            loop {
                tick.tick().await;
                if let Err(e) = media.health() {
                    return e;
                }
            }
        }
    };
    let mut signals = StopSignals::new();
    let failure = tokio::select! {
        _ = signals.next() => None,
        r = &mut sip_task => Some(match r {
            Ok(Ok(())) => "sip: the SIP service stopped by itself".to_string(),
            Ok(Err(e)) => format!("sip: {e}"),
            Err(e) => format!("sip: the SIP task panicked: {e}"),
        }),
        e = media_failed => Some(format!("media: {e}")),
    };
    if let Some(failure) = &failure {
        if let Ok(mut f) = sip_failure.lock() {
            *f = Some(failure.clone());
        }
    }
    if let Some(failure) = failure {
        error!(component = %failure, "a component failed: stopping the engine");
        let _ = stop_tx.send(true);
        let _ = tokio::time::timeout(STOP_GRACE, dispatcher).await;
        media.shutdown();
        anyhow::bail!("component failed: {failure}");
    }
    let drain_limit = std::time::Duration::from_secs(config.sip.drain_secs);
    if !drain_limit.is_zero() {
        draining.store(true, Ordering::Relaxed);
        drain(&sip, &calls, &paging.counters, drain_limit, &mut signals).await;
    }
    info!("shutting down");
    let _ = stop_tx.send(true);
    let _ = dispatcher.await;
    sip.shutdown();
    let _ = sip_task.await;
    media.shutdown();
    Ok(())
}

/// One pass of [`crate::store::Store::backfill_voicemail_audio`] at start, logged.
async fn backfill_voicemail_audio(store: crate::store::Store) {
    match store.backfill_voicemail_audio().await {
        Ok(r) if r == crate::store::BackfillReport::default() => {}
        Ok(r) => info!(
            stored = r.stored,
            failed = r.failed,
            not_on_this_node = r.not_here,
            "voicemail audio of older tickets: copied what this node has into the store"
        ),
        Err(e) => warn!(error = %e, "voicemail audio backfill stopped; the next start resumes it"),
    }
}

/// SIGTERM (a service manager) and SIGINT (Ctrl-C), as one stream: the first starts the drain,
/// the next stops at once.
struct StopSignals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    fn new() -> StopSignals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            StopSignals {
                term: signal(SignalKind::terminate()).ok(),
            }
        }
        #[cfg(not(unix))]
        StopSignals {}
    }

    async fn next(&mut self) {
        #[cfg(unix)]
        if let Some(term) = self.term.as_mut() {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Waits, up to `limit` or a second signal, for this node's calls (inbound, and page calls
/// out) to end, while SIP answers new calls and OPTIONS probes 503 so the load balancer sends
/// new calls to other nodes.
async fn drain(
    sip: &crate::sip::SipHandle,
    calls: &CallCounters,
    pages: &crate::paging::worker::PageCounters,
    limit: std::time::Duration,
    signals: &mut StopSignals,
) {
    sip.drain();
    let busy = || calls.active.load(Ordering::Relaxed) + pages.phone_calls_in_progress();
    info!(
        calls = busy(),
        limit_secs = limit.as_secs(),
        "draining: no new calls; waiting for the calls in progress (a second signal stops at once)"
    );
    let deadline = tokio::time::sleep(limit);
    tokio::pin!(deadline);
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(100));
    loop {
        let left = busy();
        if left == 0 {
            info!("drained: no call in progress");
            return;
        }
        tokio::select! {
            _ = signals.next() => {
                warn!(calls = left, "second signal: stopping at once");
                return;
            }
            _ = &mut deadline => {
                warn!(calls = left, "drain limit reached: hanging up the calls still in progress");
                return;
            }
            _ = tick.tick() => {}
        }
    }
}

/// Calls up now and since start, for /metrics.
#[derive(Debug, Default)]
struct CallCounters {
    active: AtomicU64,
    total: AtomicU64,
}

/// Counts one call while it is held.
struct CountedCall(Arc<CallCounters>);

impl CallCounters {
    fn start(self: &Arc<Self>) -> CountedCall {
        self.active.fetch_add(1, Ordering::Relaxed);
        self.total.fetch_add(1, Ordering::Relaxed);
        CountedCall(self.clone())
    }
}

impl Drop for CountedCall {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What /readyz and /metrics read of the running engine.
struct EngineState {
    sip: crate::sip::SipHandle,
    media: MediaEngine,
    calls: Arc<CallCounters>,
    pages: Arc<crate::paging::worker::PageCounters>,
    /// Set when a component failed and the engine is stopping.
    sip_failure: Arc<std::sync::Mutex<Option<String>>>,
    /// Set on the first stop signal: readiness fails so an HTTP load balancer stops too.
    draining: Arc<std::sync::atomic::AtomicBool>,
    /// The open files as shared out at start.
    budget: crate::limits::OpenFileBudget,
}

impl crate::http::EngineProbe for EngineState {
    fn components(&self) -> Vec<crate::http::ComponentHealth> {
        let failed = self
            .sip_failure
            .lock()
            .ok()
            .and_then(|f| f.clone())
            .or_else(|| {
                self.draining.load(Ordering::Relaxed).then(|| {
                    format!(
                        "draining: taking no new calls ({} in progress)",
                        self.calls.active.load(Ordering::Relaxed)
                            + self.pages.phone_calls_in_progress()
                    )
                })
            });
        vec![
            crate::http::ComponentHealth {
                name: "sip",
                failure: failed,
            },
            crate::http::ComponentHealth {
                name: "media",
                failure: self.media.health().err().map(|e| e.to_string()),
            },
        ]
    }

    fn warnings(&self) -> Vec<String> {
        let mut out: Vec<String> = self.budget.shortfall.iter().cloned().collect();
        let sip = self.sip.stats();
        if sip.tcp_open >= self.budget.sip_tcp_connections {
            out.push(format!(
                "sip: TCP connection budget reached ({} of {}): new TCP connections are \
                 refused; calls keep their own open files",
                sip.tcp_open, self.budget.sip_tcp_connections
            ));
        }
        out
    }

    fn metrics(&self) -> crate::http::EngineMetrics {
        crate::http::EngineMetrics {
            sip: self.sip.stats(),
            media_contained_panics: self.media.contained_panics(),
            calls_active: self.calls.active.load(Ordering::Relaxed),
            calls_total: self.calls.total.load(Ordering::Relaxed),
            pages: self
                .pages
                .snapshot()
                .into_iter()
                .map(|(channel, c)| crate::http::ChannelCounters {
                    channel,
                    sent: c.sent,
                    failed: c.failed,
                    retried: c.retried,
                    failing: c.failing(),
                })
                .collect(),
        }
    }
}
