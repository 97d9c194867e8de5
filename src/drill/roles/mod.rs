//! The roles the drill plays outside the engine, over real sockets: callers ([`caller`]), the
//! technicians' phones and the trunk's customers ([`phones`]), each with its own small RTP
//! endpoint ([`rtp`]). The engine's own SIP stack (`sip::transport`) is the user agent; the
//! engine's media engine is not used, so the drill hears and speaks like any outside phone.

pub mod caller;
pub mod phones;
pub mod rtp;

use std::future::Future;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::sip::endpoint::EndReason;
use crate::sip::transport::{LegEvent, SipError};

pub use caller::{
    CallbackChoice, CallerBehaviour, CallerEnd, CallerOutcome, CallerPlan, CallerTiming,
    DrillCaller, Emergency, Language, VoicemailEnd, VoicemailEndKind,
};
pub use phones::{
    KeyPlan, PhoneBank, PhoneBankConfig, PhoneBehaviour, PhoneOutcome, PhonePlan, RingRecord,
};
pub use rtp::{RtpPeer, RtpStats};

/// Why a role could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum RoleError {
    #[error("SIP: {0}")]
    Sip(#[from] SipError),
    #[error("cannot bind RTP on {addr}: {source}")]
    RtpBind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout { what: String, after: Duration },
    #[error("{0:?} is not a key")]
    BadKey(char),
    #[error("phone user \"{0}\" is not a number (the SIP stack answers numbers only)")]
    BadUser(String),
    #[error("the RTP endpoint has stopped")]
    RtpStopped,
    #[error("no media negotiated")]
    NoMedia,
    #[error("cannot read the speech clip {path}: {reason}")]
    Clip { path: String, reason: String },
}

/// Reads a WAV clip (mono, 16-bit, 8 kHz: the bundled prompts) as samples for a role to say.
pub fn load_clip(path: &std::path::Path) -> Result<Vec<i16>, RoleError> {
    let clip_err = |reason: String| RoleError::Clip {
        path: path.display().to_string(),
        reason,
    };
    let reader = hound::WavReader::open(path).map_err(|e| clip_err(e.to_string()))?;
    let spec = reader.spec();
    if spec.channels != 1 || spec.sample_rate != 8000 || spec.bits_per_sample != 16 {
        return Err(clip_err(format!(
            "{} channel(s) at {} Hz, {} bits: want mono 8 kHz 16-bit",
            spec.channels, spec.sample_rate, spec.bits_per_sample
        )));
    }
    reader
        .into_samples::<i16>()
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| clip_err(e.to_string()))
}

/// The bundled English greeting (a few seconds of a real voice), from the prompts directory
/// next to the engine's sources or installed beside it.
pub fn default_speech(prompts_dir: &std::path::Path) -> Result<Vec<i16>, RoleError> {
    load_clip(&prompts_dir.join("en/greeting.wav"))
}

/// Why a step stopped early.
enum Stop {
    /// The peer ended the call.
    Ended(EndReason),
    Failed(RoleError),
}

/// Runs `fut` unless the engine ends the call first.
async fn during<T>(
    step: &'static str,
    events: &mut mpsc::UnboundedReceiver<LegEvent>,
    rtp: &RtpPeer,
    fut: impl Future<Output = Result<T, RoleError>>,
) -> Result<T, (&'static str, Stop)> {
    tokio::pin!(fut);
    loop {
        tokio::select! {
            r = &mut fut => return r.map_err(|e| (step, Stop::Failed(e))),
            ev = events.recv() => match ev {
                Some(LegEvent::Ended { reason }) => return Err((step, Stop::Ended(reason))),
                Some(LegEvent::MediaUpdated { media }) => rtp.connect(&media),
                Some(_) => {}
                None => return Err((step, Stop::Failed(RoleError::Sip(SipError::Stopped)))),
            }
        }
    }
}
