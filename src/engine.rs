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
use crate::live::LiveSettings;
use crate::media::{recover_unfinished, MediaBackend, MediaEngine};
use crate::store::Store;

/// How long a stopping engine waits for its calls to hang up and save their recordings.
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs the engine until SIGINT/SIGTERM; then hangs up the calls in progress, saving what
/// their callers said, before it stops.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let budget = share_open_files(&config);
    let store = open_store(&config).await?;
    let schedule = schedule_of(&config)?;
    let recordings = recover_recordings(&config)?;
    let triage = crate::triage::Triage::from_config(&config.triage, crate::config::read_rules_file)
        .context("loading [triage]")?;
    let listen = config
        .sip
        .listen_addr()
        .context("[sip] listen is invalid")?;
    let media = MediaEngine::start(&config.media, listen.ip()).context("starting media")?;
    info!("{}", media.io_summary(config.media.io_uring));
    let live = start_live_settings(&store, &config, schedule, &media).await;
    let schedule = live.schedule();
    // Paging wakes as soon as a voicemail becomes a ticket.
    let paging_wake = Arc::new(tokio::sync::Notify::new());
    let desk = open_voicemail_desk(&store, &schedule, triage, &paging_wake, &recordings);

    let mut sip_config = config.sip.clone();
    sip_config.tcp_max_connections = budget.sip_tcp_connections;
    let (sip, incoming, mut sip_task) = crate::sip::transport::start(&sip_config)
        .await
        .context("starting SIP")?;
    info!(sip = %sip.local_addr(), rtp = %config.media.rtp_ports, "astreinte running");
    let scale = config.schedule.sla.time_scale;
    if scale.is_drill() {
        warn!(time_scale = scale.factor(), "DRILL deployment: SLA targets and the ladder run {scale} faster; every ticket is marked as a drill. Never on the production line.");
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let node = Node {
        // Where callers send RTP ([media] public_address, else SIP's advertised address).
        advertised: config
            .media
            .public_address
            .unwrap_or_else(|| sip.advertised_addr().ip()),
        config,
        store,
        schedule,
        media,
        sip,
        paging_wake,
        stop_rx,
        calls: Arc::new(CallCounters::default()),
    };
    let links = node.ack_links().await?;
    let paging = node.start_paging(links.clone()).await?;
    let health = Health::default();
    if let Some(links) = links {
        node.start_http(links, &paging, &budget, &health).await?;
    }
    let deps = Arc::new(node.ivr_deps(desk, &live, recordings.clone()));
    let dispatcher = tokio::spawn(dispatch_calls(
        incoming,
        deps,
        node.config.call.clone(),
        recordings,
        node.calls.clone(),
        node.stop_rx.clone(),
    ));

    let mut signals = StopSignals::new();
    if let Some(failure) = first_failure(&mut signals, &mut sip_task, &node.media).await {
        if let Ok(mut f) = health.failure.lock() {
            *f = Some(failure.clone());
        }
        error!(component = %failure, "a component failed: stopping the engine");
        let _ = stop_tx.send(true);
        let _ = tokio::time::timeout(STOP_GRACE, dispatcher).await;
        node.media.shutdown();
        anyhow::bail!("component failed: {failure}");
    }
    let drain_limit = std::time::Duration::from_secs(node.config.sip.drain_secs);
    if !drain_limit.is_zero() {
        health.draining.store(true, Ordering::Relaxed);
        drain(
            &node.sip,
            &node.calls,
            &paging.counters,
            drain_limit,
            &mut signals,
        )
        .await;
    }
    info!("shutting down");
    let _ = stop_tx.send(true);
    let _ = dispatcher.await;
    node.sip.shutdown();
    let _ = sip_task.await;
    node.media.shutdown();
    Ok(())
}

/// Shares the open files out, calls first: they get theirs before any connection can take
/// one (see `limits`).
fn share_open_files(config: &Config) -> crate::limits::OpenFileBudget {
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
    budget
}

/// The store first: migrations run before any call can need a ticket.
async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let store = Store::connect(&config.store)
        .await
        .with_context(|| format!("opening the store at {}", config.store.url))?;
    // Tickets from before voicemail audio was stored get theirs from this node's files, in the
    // background (readers fall back to the file meanwhile). Idempotent; every node does its own.
    tokio::spawn(backfill_voicemail_audio(store.clone()));
    Ok(store)
}

/// `[schedule]` as configured, before the console's changes.
fn schedule_of(config: &Config) -> anyhow::Result<crate::schedule::Schedule> {
    crate::schedule::Schedule::from_config(&config.schedule).map_err(|errors| {
        anyhow::anyhow!(
            "invalid [schedule]: {}",
            errors
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        )
    })
}

/// The recordings directory, absolute, with the recordings a crash left unfinished made whole
/// before anything else writes there.
fn recover_recordings(config: &Config) -> anyhow::Result<PathBuf> {
    let recordings = PathBuf::from(&config.media.recordings_dir);
    std::fs::create_dir_all(&recordings)
        .with_context(|| format!("creating {}", recordings.display()))?;
    // Absolute, so the path a ticket keeps is readable from anywhere (CLI, console).
    let recordings = std::fs::canonicalize(&recordings)
        .with_context(|| format!("resolving {}", recordings.display()))?;
    for r in recover_unfinished(&recordings) {
        warn!(path = %r.path.display(), duration_ms = r.duration_ms, "recovered an unfinished recording");
    }
    Ok(recordings)
}

/// What the console changes (hours on top of `[schedule]`, prompts, the announcement), on
/// every node: in force before the first ticket is opened and the first call answered.
async fn start_live_settings(
    store: &Store,
    config: &Config,
    schedule: crate::schedule::Schedule,
    media: &MediaEngine,
) -> LiveSettings {
    let (live, _poller) = LiveSettings::builder(
        store.clone(),
        config.schedule.clone(),
        crate::schedule::LiveSchedule::new(schedule),
    )
    .media(media.clone())
    .start()
    .await;
    live
}

/// The desk that turns messages into tickets; every message a previous run left without a
/// ticket is ticketed first (marked recovered).
fn open_voicemail_desk(
    store: &Store,
    schedule: &crate::schedule::LiveSchedule,
    triage: crate::triage::Triage,
    paging_wake: &Arc<tokio::sync::Notify>,
    recordings: &std::path::Path,
) -> VoicemailDesk {
    let desk = VoicemailDesk::start_notifying(
        store.clone(),
        schedule.clone(),
        triage,
        paging_wake.clone(),
    );
    let pending = desk.recover(recordings);
    if pending > 0 {
        info!(
            pending,
            "opening the tickets of voicemails left by the previous run"
        );
    }
    desk
}

/// What the engine's parts share once the store, media and SIP run.
struct Node {
    config: Config,
    store: Store,
    schedule: crate::schedule::LiveSchedule,
    media: MediaEngine,
    sip: crate::sip::SipHandle,
    /// Our address in SDP and Contact.
    advertised: std::net::IpAddr,
    paging_wake: Arc<tokio::sync::Notify>,
    stop_rx: tokio::sync::watch::Receiver<bool>,
    calls: Arc<CallCounters>,
}

/// What /readyz reports beside the components' own health.
#[derive(Default)]
struct Health {
    /// Set when a component failed and the engine is stopping.
    failure: Arc<std::sync::Mutex<Option<String>>>,
    /// Set on the first stop signal.
    draining: Arc<std::sync::atomic::AtomicBool>,
}

impl Node {
    /// The acknowledgement links' signer, when `[http] public_url` is set: one key per
    /// installation, in the store, so every node signs alike.
    async fn ack_links(&self) -> anyhow::Result<Option<Arc<crate::http::ack::AckLinks>>> {
        let key = self
            .store
            .setting_or_init("ack_link_key", &hex::encode(rand::random::<[u8; 32]>()))
            .await
            .context("reading the acknowledgement links' key")?;
        let key =
            hex::decode(key.trim()).context("the stored acknowledgement links' key is not hex")?;
        let Some(url) = self.config.http.public_url() else {
            return Ok(None);
        };
        let links = crate::http::ack::AckLinks::new(&key, &url, self.config.http.ack_link_ttl())
            .map_err(|e| anyhow::anyhow!("the acknowledgement links' key: {e}"))?;
        Ok(Some(Arc::new(links)))
    }

    /// The planner and worker, with the phone pager calling out through our SIP service.
    async fn start_paging(
        &self,
        links: Option<Arc<crate::http::ack::AckLinks>>,
    ) -> anyhow::Result<crate::paging::service::Paging> {
        let ack_links: Option<crate::paging::worker::AckLinkMaker> = links.map(|l| {
            Arc::new(move |ticket: &str, person: &str, now| l.link(ticket, person, now))
                as crate::paging::worker::AckLinkMaker
        });
        crate::paging::service::start(
            &self.config.paging,
            crate::paging::service::PagingDeps {
                store: self.store.clone(),
                schedule: self.schedule.clone(),
                phone: Some(self.phone_pager()),
                ack_links,
                console_base: self.config.http.public_url(),
                node: node_name(),
                wake: self.paging_wake.clone(),
            },
            self.stop_rx.clone(),
        )
        .await
        .context("starting paging")
    }

    /// Pages by phone: through `[sip.outbound]` when set, to numbers the callback rules allow.
    fn phone_pager(&self) -> crate::paging::phone::PhonePager {
        let callback_policy = self.config.ivr.flow_config().callback_policy;
        let callback_check: crate::paging::phone::CallbackCheck = Arc::new(move |n: &str| {
            callback_policy
                .check(n.trim_start_matches('+'))
                .map(|c| c.e164())
                .map_err(|e| e.to_string())
        });
        crate::paging::phone::PhonePager::new(
            self.sip.clone(),
            self.media.clone(),
            self.store.clone(),
            self.advertised,
            outbound_trunk(&self.config),
            self.config.paging.phone.clone(),
            callback_check,
        )
    }

    /// The HTTP server: acknowledgement links, health, metrics and the admin console.
    async fn start_http(
        &self,
        links: Arc<crate::http::ack::AckLinks>,
        paging: &crate::paging::service::Paging,
        budget: &crate::limits::OpenFileBudget,
        health: &Health,
    ) -> anyhow::Result<()> {
        let Some(listen) = self.config.http.listen.as_deref() else {
            return Ok(());
        };
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("[http] listen: cannot listen on {listen}"))?;
        info!(http = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "HTTP server running");
        // A first start: say how to get into the console, as a self-hosted tool should.
        match self.store.users().await {
            Ok(users) if users.is_empty() => info!(
                console = %format!("http://{listen}/"),
                "the console has no user yet: create the first admin with \
                 `echo 'a long passphrase' | astreinte users add NAME --role admin` \
                 (the password is read from standard input), then log in"
            ),
            Ok(_) => info!(console = %format!("http://{listen}/"), "the console is served"),
            Err(e) => tracing::warn!(error = %e, "cannot count the console's users"),
        }
        let probe = Arc::new(EngineState {
            sip: self.sip.clone(),
            media: self.media.clone(),
            calls: self.calls.clone(),
            pages: paging.counters.clone(),
            sip_failure: health.failure.clone(),
            draining: health.draining.clone(),
            budget: budget.clone(),
        });
        let http = &self.config.http;
        let admission = crate::http::HttpAdmission::new(
            budget.http_connections,
            http.max_connections_per_source,
            http.trusted_proxy_nets(),
            http.timeouts(),
        );
        let wake = self.paging_wake.clone();
        let state = crate::http::HttpState::new(self.store.clone(), links, probe)
            .with_admission(admission.clone())
            .with_metrics_allow(http.metrics_allow_nets())
            .with_zone(self.schedule.get().timezone())
            .with_on_ack(Arc::new(move |_ticket: &str| wake.notify_one()));
        let app = crate::http::router(state).merge(crate::admin::router(self.console()));
        let mut http_stop = self.stop_rx.clone();
        tokio::spawn(async move {
            let stopped = async move { crate::shell::stop_requested(&mut http_stop).await };
            if let Err(e) = crate::http::serve_app(listener, app, admission, stopped).await {
                error!(error = %e, "the HTTP server stopped");
            }
        });
        Ok(())
    }

    /// The admin console's state, beside the links, health and metrics.
    fn console(&self) -> crate::admin::AdminState {
        crate::admin::AdminState {
            store: self.store.clone(),
            secure_cookies: self
                .config
                .http
                .public_url()
                .is_some_and(|u| u.starts_with("https://")),
            login_limiter: Arc::default(),
            media: Some(self.media.clone()),
            config: Arc::new(self.config.clone()),
        }
    }

    /// What every IVR call shares.
    fn ivr_deps(&self, desk: VoicemailDesk, live: &LiveSettings, recordings: PathBuf) -> IvrDeps {
        let config = &self.config;
        IvrDeps {
            media: self.media.clone(),
            sip: self.sip.clone(),
            desk,
            store: self.store.clone(),
            schedule: self.schedule.clone(),
            ivr: config.ivr.clone(),
            flow: config.ivr.flow_config(),
            call: config.call.clone(),
            recordings,
            advertised: self.advertised,
            announcement: live.announcement(),
            status_limits: Arc::new(crate::call::status_limit::StatusLimits::new(
                config.ivr.status_lookups_per_hour,
                crate::sip::routing::TrustedSources::new(config.sip.trusted_nets()),
            )),
        }
    }
}

/// `[sip.outbound]` as the phone pager's trunk (none: calls go straight to the person's URI).
fn outbound_trunk(config: &Config) -> crate::paging::phone::Trunk {
    config
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
        .unwrap_or_default()
}

/// This node's name in page leases: host name and process id.
fn node_name() -> String {
    format!(
        "{}-{}",
        std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "node".into()),
        std::process::id()
    )
}

/// Gives each incoming call its flow until the engine stops; then lets the calls in progress
/// hang up (BYE) and finish their recordings, refusing new ones with 503 (the caller's phone
/// may try another server), for up to `STOP_GRACE`.
async fn dispatch_calls(
    mut incoming: tokio::sync::mpsc::Receiver<crate::sip::InboundCall>,
    deps: Arc<IvrDeps>,
    call_config: crate::call::CallConfig,
    recordings: PathBuf,
    counters: Arc<CallCounters>,
    stop_rx: tokio::sync::watch::Receiver<bool>,
) {
    let mut flows = tokio::task::JoinSet::new();
    let mut stopping = stop_rx.clone();
    loop {
        tokio::select! {
            call = incoming.recv() => match call {
                Some(call) => {
                    let counted = counters.start();
                    match call_config.flow {
                        FlowKind::Ivr => {
                            let flow = run_ivr(call, deps.clone(), stop_rx.clone());
                            flows.spawn(async move { flow.await; drop(counted) });
                        }
                        FlowKind::RecordTest => {
                            let flow = crate::call::run_inbound(
                                call,
                                call_config.clone(),
                                deps.media.clone(),
                                deps.advertised,
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
            _ = crate::shell::stop_requested(&mut stopping) => break,
        }
    }
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
}

/// Until a signal (None), watches the components: one that dies (Some: which, and why) takes
/// the engine down with a non-zero exit, so the service manager restarts it instead of
/// leaving a line that rings into nothing.
async fn first_failure(
    signals: &mut StopSignals,
    sip_task: &mut tokio::task::JoinHandle<Result<(), crate::sip::transport::SipError>>,
    media: &MediaEngine,
) -> Option<String> {
    let media_failed = async {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tick.tick().await;
            if let Err(e) = media.health() {
                return e;
            }
        }
    };
    tokio::select! {
        _ = signals.next() => None,
        r = sip_task => Some(match r {
            Ok(Ok(())) => "sip: the SIP service stopped by itself".to_string(),
            Ok(Err(e)) => format!("sip: {e}"),
            Err(e) => format!("sip: the SIP task panicked: {e}"),
        }),
        e = media_failed => Some(format!("media: {e}")),
    }
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
        let backends = self.media.backends();
        let io_uring = backends
            .iter()
            .filter(|b| **b == MediaBackend::IoUring)
            .count() as u64;
        crate::http::EngineMetrics {
            sip: self.sip.stats(),
            media_contained_panics: self.media.contained_panics(),
            media_io_uring_threads: io_uring,
            media_epoll_threads: backends.len() as u64 - io_uring,
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
