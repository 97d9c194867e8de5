//! The RTP media engine (see the media issue): port pool, pacing, codecs, DTMF, VAD, recording,
//! bridging. Its interface to the call flow is commands in, events out.

pub mod dtmf;
pub mod g711;
pub mod jitter;
pub mod pacing;
pub mod prompts;
pub mod recorder;
pub mod rfc4733;
pub mod stats;
pub mod types;
pub mod vad;

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
