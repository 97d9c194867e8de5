//! Wires the rooms together for `serve`: store, schedule, media engine, SIP service, and a
//! flow per call.

use std::path::PathBuf;

use anyhow::Context;
use tracing::{info, warn};

use crate::config::Config;
use crate::media::{recover_unfinished, MediaEngine};

/// Runs the engine until SIGINT/SIGTERM.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    // The store first: migrations run before any call can need a ticket.
    let _store = crate::store::Store::connect(&config.store)
        .await
        .with_context(|| format!("opening the store at {}", config.store.url))?;
    let _schedule = crate::schedule::Schedule::from_config(&config.schedule).map_err(|errors| {
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
    for r in recover_unfinished(&recordings) {
        // The IVR issue turns these into voicemail tickets; until then they are kept and logged.
        warn!(path = %r.path.display(), duration_ms = r.duration_ms, "recovered an unfinished recording");
    }

    let listen = config
        .sip
        .listen_addr()
        .context("[sip] listen is invalid")?;
    let media = MediaEngine::start(&config.media, listen.ip()).context("starting media")?;
    let (sip, mut incoming, sip_task) = crate::sip::transport::start(&config.sip)
        .await
        .context("starting SIP")?;
    info!(sip = %sip.local_addr(), rtp = %config.media.rtp_ports, "astreinte running");
    let call_config = config.call.clone();
    let advertised = sip.advertised_addr().ip();
    let flow_media = media.clone();
    let dispatcher = tokio::spawn(async move {
        while let Some(call) = incoming.recv().await {
            tokio::spawn(crate::call::run_inbound(
                call,
                call_config.clone(),
                flow_media.clone(),
                advertised,
                recordings.clone(),
            ));
        }
    });
    shutdown_signal().await;
    info!("shutting down");
    sip.shutdown();
    let _ = sip_task.await;
    dispatcher.abort();
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
