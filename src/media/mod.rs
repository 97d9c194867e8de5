//! The RTP media engine (see the media issue): port pool, pacing, codecs, DTMF, VAD, recording,
//! bridging. Its interface to the call flow is commands in, events out.

pub mod convert;
pub mod dtmf;
pub mod engine;
pub mod g711;
mod health;
pub mod jitter;
pub mod leg;
pub mod pacing;
mod ports;
pub mod prompts;
pub mod recorder;
pub mod rfc4733;
pub mod rtcp;
mod shard;
pub mod speech;
pub mod stats;
mod sys;
pub mod types;
mod uring;
pub mod vad;
mod writer;

pub use engine::{
    CallStats, DigitSource, MediaBackend, MediaEngine, MediaError, MediaEvent, MediaFailure,
    MediaSession, PlayOptions, PlaybackId, RecordOptions, RecordingSummary,
};
pub use prompts::PromptRef;
pub use recorder::{recover_unfinished, RecoveredRecording};
pub use sys::raise_open_files_limit;
pub use types::{Codec, MediaDirection, NegotiatedMedia};

use std::net::IpAddr;

use ipnet::IpNet;
use serde::Deserialize;

use crate::config_issue::{ConfigIssue, KeySeg};

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
    /// Address written in SDP, where callers send RTP: the host's address when the node runs
    /// behind NAT or in a container whose RTP ports are published (Docker). Unset: `[sip]
    /// public_address`, else the listen address. Unlike `[sip] public_address` it leaves
    /// Contact alone, so in-dialog requests keep going through the SIP proxy to this node.
    #[serde(default)]
    pub public_address: Option<std::net::IpAddr>,
    /// Media threads; 0 means one per core.
    #[serde(default)]
    pub threads: usize,
    /// SCHED_FIFO priority of the media threads (1-99; 0 keeps the normal scheduler). Needs
    /// root, CAP_SYS_NICE or RLIMIT_RTPRIO; without it the threads run normally and one warning
    /// is logged.
    #[serde(default = "default_rt_priority")]
    pub realtime_priority: u8,
    /// Pin media thread i to CPU i (mod the CPUs this process may use).
    #[serde(default)]
    pub pin_threads: bool,
    /// Receive unbridged calls' RTP and send the 20 ms packets through io_uring (batched per
    /// 5 ms tick): `true` (the default) with real-time priority only, `"always"` also on the
    /// normal scheduler, `false` never. Without it, or on a kernel that refuses io_uring, epoll
    /// and a syscall per packet. [`MediaEngine::backends`] tells which each thread uses.
    #[serde(default)]
    pub io_uring: IoUringMode,
    /// Whether prompts may be sent to the SDP's address before RTP has come from it (before
    /// the stream is latched): only when that address is in `trusted` (the default), always, or
    /// never. See [`SendBeforeLatch`].
    #[serde(default)]
    pub send_before_latch: SendBeforeLatch,
    /// The networks `[sip] trusted` names (filled in by `config.rs`, not a `[media]` key):
    /// what `send_before_latch = "trusted"` trusts.
    #[serde(skip, default = "default_trusted")]
    pub trusted: Vec<IpNet>,
}

/// `[media] send_before_latch`: may media go to an SDP address before RTP has come from it?
///
/// A spoofed INVITE names any address in its SDP; answering it by streaming prompts there
/// would make the engine a traffic amplifier aimed at a victim. A real phone sends RTP first
/// anyway (it must, behind NAT), and the engine then answers the address the RTP came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SendBeforeLatch {
    /// Only when the SDP address is in `[sip] trusted` (a PBX or trunk the operator named).
    #[default]
    Trusted,
    /// Always (the behaviour before this switch; for labs and peers that never send first).
    Always,
    /// Never: media starts only once the peer's RTP has arrived.
    Never,
}

impl SendBeforeLatch {
    /// Whether sending to `ip` before latching is allowed with `trusted` networks.
    pub fn allows(self, ip: IpAddr, trusted: &[IpNet]) -> bool {
        match self {
            SendBeforeLatch::Always => true,
            SendBeforeLatch::Never => false,
            SendBeforeLatch::Trusted => {
                let ip = ip.to_canonical();
                trusted.iter().any(|n| n.contains(&ip))
            }
        }
    }
}

/// The same default as `[sip] trusted`: loopback only.
fn default_trusted() -> Vec<IpNet> {
    ["127.0.0.0/8", "::1/128"]
        .iter()
        .filter_map(|n| n.parse().ok())
        .collect()
}

/// `[media] io_uring`: `true`, `false` or `"always"` (see [`MediaConfig::io_uring`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IoUringMode {
    /// `false`: epoll only.
    Off,
    /// `true`: io_uring on the threads that got SCHED_FIFO. Batching a tick's receives on a
    /// normally scheduled thread, woken late under load, measured worse (p99 20 ms at 1,000
    /// calls) than waking for each packet.
    #[default]
    WithRealtime,
    /// `"always"`: io_uring whatever the scheduler (tests, hosts without CAP_SYS_NICE).
    Always,
}

impl<'de> Deserialize<'de> for IoUringMode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bool(bool),
            Word(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bool(false) => Ok(IoUringMode::Off),
            Raw::Bool(true) => Ok(IoUringMode::WithRealtime),
            Raw::Word(w) if w == "always" => Ok(IoUringMode::Always),
            Raw::Word(w) => Err(serde::de::Error::custom(format!(
                "\"{w}\" is not one of true, false, \"always\""
            ))),
        }
    }
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
            public_address: None,
            threads: 0,
            realtime_priority: default_rt_priority(),
            pin_threads: false,
            io_uring: IoUringMode::default(),
            send_before_latch: SendBeforeLatch::default(),
            trusted: default_trusted(),
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
        // A prompts directory that exists (or was named) must hold every prompt the flow may
        // play, each a WAV the engine can read.
        let dir = std::path::Path::new(&self.prompts_dir);
        if dir.exists() || self.prompts_dir != default_prompts_dir() {
            let checked = prompts::PromptSet::load(dir).and_then(|set| set.check_complete(dir));
            if let Err(e) = checked {
                issues.push(ConfigIssue::new(
                    vec![KeySeg::Key("media"), KeySeg::Key("prompts_dir")],
                    e.to_string(),
                    "run prompts/make-prompts.sh, or point prompts_dir at a complete copy of prompts/",
                ));
            }
        }
    }
}
