//! The flow of one call, as the caller lives it.
//!
//! An answered call runs the IVR ([`ivr::run_ivr`], driving the sans-I/O [`flow::IvrFlow`]):
//! language, announcements, the main menu, support (a technician, or an emergency voicemail
//! that becomes a ticket through [`voicemail::VoicemailDesk`]). `[call] flow = "record-test"`
//! runs a line test instead ([`run_inbound`]): the greeting in a loop while the caller is
//! recorded.

/// Which numbers may be called back: a leaf below the call room, since tickets hold them too.
pub use crate::callback;
pub use crate::shell::stop_requested;
use crate::shell::{CallLeg, LegInput};
/// The caller's IVR, sans-I/O: it lives in the core crate.
pub use astreinte_core::call::flow;
pub mod ivr;
pub mod status_limit;
pub mod voicemail;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::watch;
use tracing::{info, info_span, warn, Instrument};

use crate::config_issue::{ConfigIssue, KeySeg};
use crate::media::{
    MediaEngine, MediaEvent, PlayOptions, PromptRef, RecordOptions, RecordingSummary,
};
use crate::sip::{InboundCall, LegEvent};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallConfig {
    /// Ring this long (180 Ringing) before answering; 0 answers at once.
    #[serde(default)]
    pub ring_ms: u64,
    /// Longest call the engine keeps up before hanging up itself.
    #[serde(default = "default_max_call")]
    pub max_call_secs: u64,
    /// What an answered call runs: "ivr" (the menus, voicemail and tickets: the product), or
    /// "record-test" (a line test: the greeting in a loop while the caller is recorded).
    #[serde(default)]
    pub flow: FlowKind,
}

/// See [`CallConfig::flow`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FlowKind {
    #[default]
    Ivr,
    RecordTest,
}

fn default_max_call() -> u64 {
    3600
}

impl Default for CallConfig {
    fn default() -> Self {
        CallConfig {
            ring_ms: 0,
            max_call_secs: default_max_call(),
            flow: FlowKind::default(),
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

/// Runs one inbound call as a line test (`[call] flow = "record-test"`): the greeting (French,
/// then English) in a loop, what the caller says recorded, the keys pressed logged.
pub async fn run_inbound(
    call: InboundCall,
    config: CallConfig,
    media: MediaEngine,
    advertised: IpAddr,
    recordings: PathBuf,
    mut stopping: watch::Receiver<bool>,
) {
    let span = info_span!("call", call_id = %call.call.call_id, number = %call.call.number);
    async move {
        let InboundCall { call: info, leg, mut events } = call;
        let sip_peer = info.source.addr.ip();
        let Some(session) = open_call_media(&media, &info.call_id, info.media, sip_peer, &leg)
        else {
            return;
        };
        if !ring_before_answer(&leg, &mut events, config.ring_ms, &mut stopping).await {
            session.close().await;
            return;
        }
        leg.answer(SocketAddr::new(advertised, session.local_rtp_addr().port()));
        let leg_id = leg.id().0;
        let mut call = CallLeg::inbound(leg, events, session, sip_peer);
        let limit = tokio::time::sleep(Duration::from_secs(config.max_call_secs));
        tokio::pin!(limit);
        let mut recording = false;
        loop {
            tokio::select! {
                input = call.next() => match input {
                    LegInput::Answered => {
                        let greeting = [PromptRef::named("fr/greeting"), PromptRef::named("en/greeting")];
                        if let Err(e) = call.session.play(&greeting, PlayOptions { barge_in: false, repeat: true }) {
                            warn!(error = %e, "cannot play the greeting");
                        }
                        // Time and leg first: two Call-IDs that read alike as file names, or one
                        // reused after a restart, never share a file.
                        let name = format!(
                            "{}-{}-{}.wav",
                            chrono::Utc::now().format("%Y%m%dT%H%M%SZ"),
                            leg_id,
                            file_safe(&info.call_id)
                        );
                        let path = recordings.join(name);
                        call.session.record(path, RecordOptions { max_seconds: 300, end_after_silence_ms: None });
                        recording = true;
                    }
                    LegInput::Key { digit, source } => info!(%digit, ?source, "key pressed"),
                    LegInput::MediaTimeout => {
                        info!("no RTP from the caller: hanging up");
                        call.hangup();
                        break;
                    }
                    LegInput::RecordingFinished(r) => {
                        log_saved(&r);
                        recording = false;
                    }
                    LegInput::MediaFailed => {
                        // A media bug, contained to this call (logged there): what was recorded
                        // is still saved (its RecordingFinished may follow).
                        warn!("media failed for this call: hanging up");
                        call.hangup();
                        break;
                    }
                    LegInput::PlaybackFinished(_) => {}
                    LegInput::Ended(_) => break,
                },
                _ = &mut limit => {
                    info!(max_call_secs = config.max_call_secs, "call too long: hanging up");
                    call.hangup();
                    break;
                }
                _ = stop_requested(&mut stopping) => {
                    info!("engine stopping: hanging up");
                    call.hangup();
                    break;
                }
            }
        }
        // A recording in progress is finished (and its event read) before the session closes,
        // so what the caller said is saved and reported even when they hang up mid-message.
        let drain = tokio::time::sleep(Duration::from_secs(2));
        tokio::pin!(drain);
        if recording {
            call.session.stop_recording();
        }
        while recording {
            tokio::select! {
                ev = call.session.next_event() => match ev {
                    Some(MediaEvent::RecordingFinished(r)) => {
                        log_saved(&r);
                        recording = false;
                    }
                    Some(_) => {}
                    None => recording = false,
                },
                _ = &mut drain => recording = false,
            }
        }
        call.await_hangup().await;
        let stats = call.close().await;
        info!(sent = stats.packets_sent, received = stats.packets_received, lost = stats.packets_lost, jitter_ms = stats.jitter_ms, mos = stats.mos, "media statistics");
    }
    .instrument(span)
    .await
}

/// The call's media session, started on the INVITE's offer when it had one; None (the call
/// refused with 503) when no RTP port is free.
pub(crate) fn open_call_media(
    media: &MediaEngine,
    call_id: &str,
    offer: Option<crate::media::NegotiatedMedia>,
    sip_peer: IpAddr,
    leg: &crate::sip::LegHandle,
) -> Option<crate::media::MediaSession> {
    let session = match media.open_session(call_id) {
        Ok(s) => s,
        Err(e) => {
            warn!(error = %e, "no media session: 503");
            leg.reject(503);
            return None;
        }
    };
    // RTP is latched only from the SDP's address or the one the INVITE came from.
    if let Some(m) = offer {
        session.apply(m.with_signalling_peer(sip_peer));
    }
    Some(session)
}

/// Rings (180) for `ring_ms` before the call is answered. False: the caller hung up meanwhile,
/// or the engine is stopping (the call is then refused with 503): do not answer.
pub(crate) async fn ring_before_answer(
    leg: &crate::sip::LegHandle,
    events: &mut tokio::sync::mpsc::UnboundedReceiver<LegEvent>,
    ring_ms: u64,
    stopping: &mut watch::Receiver<bool>,
) -> bool {
    if ring_ms == 0 {
        return true;
    }
    leg.ring();
    let ring = tokio::time::sleep(Duration::from_millis(ring_ms));
    tokio::pin!(ring);
    loop {
        tokio::select! {
            _ = &mut ring => return true,
            ev = events.recv() => match ev {
                Some(LegEvent::Ended { .. }) | None => return false,
                Some(_) => {}
            },
            _ = stop_requested(stopping) => {
                info!("engine stopping: refusing the call still ringing (503)");
                leg.reject(503);
                return false;
            }
        }
    }
}

fn log_saved(r: &RecordingSummary) {
    info!(path = %r.path.display(), duration_ms = r.duration_ms, speech = r.speech_detected, "recording saved");
}

/// A Call-ID as a file name: anything but letters, digits, '-', '_' and '.' becomes '_'.
fn file_safe(call_id: &str) -> String {
    call_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .take(120)
        .collect()
}
