//! The RTP media engine (see the media issue): port pool, pacing, codecs, DTMF, VAD, recording,
//! bridging. Its interface to the call flow is commands in, events out.

pub mod dtmf;
pub mod engine;
pub mod g711;
pub mod jitter;
pub mod pacing;
pub mod prompts;
pub mod recorder;
pub mod rfc4733;
pub mod rtcp;
mod shard;
pub mod stats;
mod sys;
pub mod types;
mod uring;
pub mod vad;
mod writer;

pub use engine::{
    CallStats, DigitSource, MediaEngine, MediaError, MediaEvent, MediaSession, PlayOptions,
    PlaybackId, RecordOptions, RecordingSummary,
};
pub use prompts::PromptRef;
pub use recorder::{recover_unfinished, RecoveredRecording};
pub use sys::raise_open_files_limit;
pub use types::{Codec, MediaDirection, NegotiatedMedia};

use serde::Deserialize;

use crate::config::{ConfigIssue, KeySeg};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaConfig {
    /// RTP port range "LOW-HIGH"; even ports carry RTP, port+1 RTCP.
    #[serde(default = "default_ports")]
    pub rtp_ports: String,
    /// Seconds without RTP (while not on hold) before a call is ended.
    #[serde(default = "default_timeout")]
    pub inactivity_timeout_secs: u64,
    /// Directory of prompts: `<lang>/<name>.wav`, 8 kHz mono 16-bit.
    #[serde(default = "default_prompts_dir")]
    pub prompts_dir: String,
    /// Where voicemail recordings are written (and recovered from at start-up).
    #[serde(default = "default_recordings_dir")]
    pub recordings_dir: String,
    /// Media threads; 0 means one per core.
    #[serde(default)]
    pub threads: usize,
    /// SCHED_FIFO priority of the media threads (1-99; 0 keeps the normal scheduler). Needs
    /// root or CAP_SYS_NICE; without it the threads run normally and one line is logged.
    #[serde(default = "default_rt_priority")]
    pub realtime_priority: u8,
    /// Pin media thread i to CPU i (mod the CPUs this process may use).
    #[serde(default)]
    pub pin_threads: bool,
    /// With real-time priority, receive unbridged calls' RTP and send the 20 ms packets
    /// through io_uring (batched per 5 ms tick); false, or a kernel that refuses io_uring,
    /// keeps epoll and a syscall per packet.
    #[serde(default = "default_true")]
    pub io_uring: bool,
}

fn default_true() -> bool {
    true
}

fn default_rt_priority() -> u8 {
    10
}

pub(crate) fn default_prompts_dir() -> String {
    "prompts".into()
}
fn default_recordings_dir() -> String {
    "data/recordings".into()
}

fn default_ports() -> String {
    "20000-20999".into()
}
fn default_timeout() -> u64 {
    30
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            rtp_ports: default_ports(),
            inactivity_timeout_secs: default_timeout(),
            prompts_dir: default_prompts_dir(),
            recordings_dir: default_recordings_dir(),
            threads: 0,
            realtime_priority: default_rt_priority(),
            pin_threads: false,
            io_uring: true,
        }
    }
}

impl MediaConfig {
    /// The port range, low and high inclusive.
    pub fn port_range(&self) -> Option<(u16, u16)> {
        let (lo, hi) = self.rtp_ports.split_once('-')?;
        let lo: u16 = lo.trim().parse().ok()?;
        let hi: u16 = hi.trim().parse().ok()?;
        (lo <= hi && lo >= 1024 && hi - lo >= 1).then_some((lo, hi))
    }

    pub fn validate(&self, issues: &mut Vec<ConfigIssue>) {
        if self.port_range().is_none() {
            issues.push(ConfigIssue::new(
                vec![KeySeg::Key("media"), KeySeg::Key("rtp_ports")],
                format!("\"{}\" is not a port range", self.rtp_ports),
                "write two ports from 1024 to 65535 as \"LOW-HIGH\", e.g. \"20000-20999\"",
            ));
        }
        if self.inactivity_timeout_secs == 0 {
            issues.push(ConfigIssue::new(
                vec![KeySeg::Key("media"), KeySeg::Key("inactivity_timeout_secs")],
                "0 would end every call at once",
                "set a number of seconds, e.g. 30",
            ));
        }
    }
}
