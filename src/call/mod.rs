//! The flow of one call, as the caller lives it.
//!
//! Until the IVR flow lands (its own issue), an answered call is kept up with its media port
//! open until either side hangs up, `max_call_secs` passes, or the engine stops; the SIP dialog
//! is complete and correct meanwhile.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::net::UdpSocket;
use tracing::{info, info_span, Instrument};

use crate::config::{ConfigIssue, KeySeg};
use crate::sip::{EndReason, InboundCall, LegEvent};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallConfig {
    /// Ring this long (180 Ringing) before answering; 0 answers at once.
    #[serde(default)]
    pub ring_ms: u64,
    /// Longest call the engine keeps up before hanging up itself.
    #[serde(default = "default_max_call")]
    pub max_call_secs: u64,
}

fn default_max_call() -> u64 {
    3600
}

impl Default for CallConfig {
    fn default() -> Self {
        CallConfig {
            ring_ms: 0,
            max_call_secs: default_max_call(),
        }
    }
}

impl CallConfig {
    pub fn validate(&self, issues: &mut Vec<ConfigIssue>) {
        if self.max_call_secs == 0 {
            issues.push(ConfigIssue::new(
                vec![KeySeg::Key("call"), KeySeg::Key("max_call_secs")],
                "0 would hang up every call at once",
                "set a number of seconds, e.g. 3600",
            ));
        }
        if self.ring_ms > 60_000 {
            issues.push(ConfigIssue::new(
                vec![KeySeg::Key("call"), KeySeg::Key("ring_ms")],
                format!("{} ms of ringing would make callers hang up", self.ring_ms),
                "use at most 60000 (a few seconds is usual)",
            ));
        }
    }
}

/// RTP ports for calls: even ports of the configured range, tried in turn, so a port another
/// process holds is skipped rather than fatal.
#[derive(Debug)]
pub struct RtpPorts {
    ip: IpAddr,
    /// The address written in SDP (differs from `ip` behind NAT or on a wildcard bind).
    advertised: IpAddr,
    low: u16,
    high: u16,
    next: AtomicU32,
}

impl RtpPorts {
    pub fn new(ip: IpAddr, advertised: IpAddr, low: u16, high: u16) -> Arc<RtpPorts> {
        Arc::new(RtpPorts {
            ip,
            advertised,
            low: low + (low % 2),
            high,
            next: AtomicU32::new(0),
        })
    }

    /// Binds the next free even port.
    pub async fn bind(&self) -> std::io::Result<UdpSocket> {
        let slots = u32::from((self.high - self.low) / 2 + 1);
        for _ in 0..slots {
            let i = self.next.fetch_add(1, Ordering::Relaxed) % slots;
            let port = self.low + (i as u16) * 2;
            if let Ok(s) = UdpSocket::bind(SocketAddr::new(self.ip, port)).await {
                return Ok(s);
            }
        }
        Err(std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            "every RTP port of [media] rtp_ports is in use",
        ))
    }
}

/// Runs one inbound call to its end.
pub async fn run_inbound(call: InboundCall, config: CallConfig, ports: Arc<RtpPorts>) {
    let span = info_span!("call", call_id = %call.call.call_id, number = %call.call.number);
    async move {
        let InboundCall {
            call: info,
            leg,
            mut events,
        } = call;
        let rtp = match ports.bind().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "no RTP port: 503");
                leg.reject(503);
                return;
            }
        };
        let local = match rtp.local_addr() {
            Ok(a) => SocketAddr::new(ports.advertised, a.port()),
            Err(_) => {
                leg.reject(503);
                return;
            }
        };
        if config.ring_ms > 0 {
            leg.ring();
            let ring = tokio::time::sleep(Duration::from_millis(config.ring_ms));
            tokio::pin!(ring);
            loop {
                tokio::select! {
                    _ = &mut ring => break,
                    ev = events.recv() => match ev {
                        Some(LegEvent::Ended { .. }) | None => return,
                        Some(_) => {}
                    },
                }
            }
        }
        leg.answer(local);
        let limit = tokio::time::sleep(Duration::from_secs(config.max_call_secs));
        tokio::pin!(limit);
        let mut sink = vec![0u8; 2048];
        loop {
            tokio::select! {
                ev = events.recv() => match ev {
                    Some(LegEvent::Ended { reason }) => {
                        log_end(&info.caller.uri, &reason);
                        return;
                    }
                    Some(LegEvent::Dtmf { digit, .. }) => info!(%digit, "key pressed (SIP INFO)"),
                    Some(LegEvent::Confirmed { media }) => info!(?media, "call up"),
                    Some(LegEvent::MediaUpdated { media }) => info!(direction = ?media.direction, codec = ?media.codec, "media updated"),
                    Some(_) => {}
                    None => return,
                },
                // Media is the media engine's; until it is wired, drain what the caller sends.
                _ = rtp.recv_from(&mut sink) => {}
                _ = &mut limit => {
                    info!(max_call_secs = config.max_call_secs, "call too long: hanging up");
                    leg.hangup();
                    return;
                }
            }
        }
    }
    .instrument(span)
    .await
}

fn log_end(caller: &str, reason: &EndReason) {
    tracing::debug!(%caller, %reason, "call flow finished");
}
