//! Wires the rooms together for `serve`: the SIP service, a flow per call, media ports.

use anyhow::Context;
use tracing::info;

use crate::call::{self, RtpPorts};
use crate::config::Config;

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
    let (sip, mut incoming, sip_task) = crate::sip::transport::start(&config.sip)
        .await
        .context("starting SIP")?;
    let (low, high) = config
        .media
        .port_range()
        .context("[media] rtp_ports is invalid")?;
    let ports = RtpPorts::new(sip.local_addr().ip(), sip.advertised_addr().ip(), low, high);
    info!(sip = %sip.local_addr(), rtp = %config.media.rtp_ports, "astreinte running");
    let call_config = config.call.clone();
    let dispatcher = tokio::spawn(async move {
        while let Some(call) = incoming.recv().await {
            tokio::spawn(call::run_inbound(call, call_config.clone(), ports.clone()));
        }
    });
    shutdown_signal().await;
    info!("shutting down");
    sip.shutdown();
    let _ = sip_task.await;
    dispatcher.abort();
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
