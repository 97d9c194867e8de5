//! Wires the rooms together for `serve`: store, schedule, media engine, SIP service, and a
//! flow per call.

use std::path::PathBuf;

use anyhow::Context;
use tracing::{error, info, warn};

use crate::call::ivr::{run_ivr, watch_announcements, IvrDeps};
use crate::call::voicemail::VoicemailDesk;
use crate::call::FlowKind;
use crate::config::Config;
use crate::media::{recover_unfinished, MediaEngine};

/// How long a stopping engine waits for its calls to hang up and save their recordings.
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs the engine until SIGINT/SIGTERM; then hangs up the calls in progress, saving what
/// their callers said, before it stops.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    // The store first: migrations run before any call can need a ticket.
    let store = crate::store::Store::connect(&config.store)
        .await
        .with_context(|| format!("opening the store at {}", config.store.url))?;
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
    let desk = VoicemailDesk::start(store.clone(), schedule.clone(), triage);
    let pending = desk.recover(&recordings);
    if pending > 0 {
        info!(
            pending,
            "opening the tickets of voicemails left by the previous run"
        );
    }

    let listen = config
        .sip
        .listen_addr()
        .context("[sip] listen is invalid")?;
    let media = MediaEngine::start(&config.media, listen.ip()).context("starting media")?;
    let (sip, mut incoming, mut sip_task) = crate::sip::transport::start(&config.sip)
        .await
        .context("starting SIP")?;
    info!(sip = %sip.local_addr(), rtp = %config.media.rtp_ports, "astreinte running");
    let call_config = config.call.clone();
    let advertised = sip.advertised_addr().ip();
    let flow_media = media.clone();
    let announcement = watch_announcements(store.clone(), media.clone()).await;
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
        announcement,
    });
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let dispatcher = tokio::spawn(async move {
        let mut flows = tokio::task::JoinSet::new();
        let mut stopping = stop_rx.clone();
        loop {
            tokio::select! {
                call = incoming.recv() => match call {
                    Some(call) => match call_config.flow {
                        FlowKind::Ivr => {
                            flows.spawn(run_ivr(call, deps.clone(), stop_rx.clone()));
                        }
                        FlowKind::RecordTest => {
                            flows.spawn(crate::call::run_inbound(
                                call,
                                call_config.clone(),
                                flow_media.clone(),
                                advertised,
                                recordings.clone(),
                                stop_rx.clone(),
                            ));
                        }
                    },
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
    let failure = tokio::select! {
        _ = shutdown_signal() => None,
        r = &mut sip_task => Some(match r {
            Ok(Ok(())) => "sip: the SIP service stopped by itself".to_string(),
            Ok(Err(e)) => format!("sip: {e}"),
            Err(e) => format!("sip: the SIP task panicked: {e}"),
        }),
        e = media_failed => Some(format!("media: {e}")),
    };
    if let Some(failure) = failure {
        error!(component = %failure, "a component failed: stopping the engine");
        let _ = stop_tx.send(true);
        let _ = tokio::time::timeout(STOP_GRACE, dispatcher).await;
        media.shutdown();
        anyhow::bail!("component failed: {failure}");
    }
    info!("shutting down");
    let _ = stop_tx.send(true);
    let _ = dispatcher.await;
    sip.shutdown();
    let _ = sip_task.await;
    media.shutdown();
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
