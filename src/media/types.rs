//! The contract between SIP (which negotiates media) and the media engine (which moves it).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use super::prompts::PromptError;

/// The audio codecs the engine speaks: G.711 at 8 kHz, 20 ms packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 µ-law, static payload type 0.
    Pcmu,
    /// G.711 A-law, static payload type 8.
    Pcma,
}

impl Codec {
    pub const fn static_payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        }
    }

    pub const fn encoding_name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }
    }
}

/// SDP direction attribute, as seen from the side that wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum MediaDirection {
    #[default]
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl MediaDirection {
    /// The direction we answer with when the peer offers `self` (RFC 3264 §6.1).
    pub const fn answer(self) -> MediaDirection {
        match self {
            MediaDirection::SendRecv => MediaDirection::SendRecv,
            MediaDirection::SendOnly => MediaDirection::RecvOnly,
            MediaDirection::RecvOnly => MediaDirection::SendOnly,
            MediaDirection::Inactive => MediaDirection::Inactive,
        }
    }

    pub const fn attribute(self) -> &'static str {
        match self {
            MediaDirection::SendRecv => "sendrecv",
            MediaDirection::SendOnly => "sendonly",
            MediaDirection::RecvOnly => "recvonly",
            MediaDirection::Inactive => "inactive",
        }
    }

    /// Whether we may send RTP when we answered with this direction.
    pub const fn we_send(self) -> bool {
        matches!(self, MediaDirection::SendRecv | MediaDirection::SendOnly)
    }

    /// Whether we expect RTP from the peer when we answered with this direction.
    pub const fn we_receive(self) -> bool {
        matches!(self, MediaDirection::SendRecv | MediaDirection::RecvOnly)
    }
}

/// What offer/answer settled for one call leg: where to send, in what, and which way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NegotiatedMedia {
    /// The peer's RTP address from its SDP (symmetric RTP may replace it later).
    pub remote_rtp: SocketAddr,
    pub codec: Codec,
    /// Payload type used on the wire for `codec` (the static one in practice).
    pub payload_type: u8,
    /// RFC 4733 telephone-event payload type, when both sides support it.
    pub telephone_event_pt: Option<u8>,
    /// Our direction in the answer: hold is `RecvOnly`/`Inactive` on our side.
    pub direction: MediaDirection,
    pub ptime_ms: u32,
    /// The IP address the dialog's SIP requests come from (the INVITE's source), set by the
    /// call flow with [`NegotiatedMedia::with_signalling_peer`]. RTP is latched only from this
    /// address or `remote_rtp`'s: a stranger scanning the RTP ports cannot take the stream
    /// over. `None`: only `remote_rtp`'s address.
    pub signalling_peer: Option<IpAddr>,
}

impl NegotiatedMedia {
    /// The same media, whose dialog's SIP requests come from `ip`.
    pub fn with_signalling_peer(self, ip: IpAddr) -> NegotiatedMedia {
        NegotiatedMedia {
            signalling_peer: Some(ip),
            ..self
        }
    }

    /// Whether RTP from `ip` may be latched: the SDP's connection address or the signalling
    /// peer's (IPv4-mapped IPv6 compared as IPv4).
    pub fn may_latch(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip == self.remote_rtp.ip().to_canonical()
            || self.signalling_peer.map(|p| p.to_canonical()) == Some(ip)
    }
}

// -- what the engine and its sessions report (shared by engine, shard and writer) -----------

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("media: bad rtp_ports \"{0}\"")]
    BadPorts(String),
    #[error("media: no free RTP port in the pool")]
    NoPorts,
    #[error("media: {0}")]
    Prompts(#[from] PromptError),
    #[error("media: unknown prompt \"{0}\"")]
    UnknownPrompt(String),
    #[error("media: the two legs are on different media threads; open the second with open_session_near")]
    NotColocated,
    #[error("media: the engine is shut down")]
    Stopped,
    #[error("media: {0}")]
    Io(#[from] std::io::Error),
}

/// Where a digit came from; the call flow treats all three alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigitSource {
    Rfc4733,
    InBand,
    SipInfo,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PlaybackId(pub u64);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PlayOptions {
    /// Stop at once when a digit arrives.
    pub barge_in: bool,
    /// Loop the playlist until stopped.
    pub repeat: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordOptions {
    pub max_seconds: u32,
    /// End the recording after this much silence following speech.
    pub end_after_silence_ms: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingSummary {
    pub path: PathBuf,
    /// Length of the audio received, before trimming.
    pub duration_ms: u64,
    pub speech_detected: bool,
    /// Silence cut from the start and end of the saved file (original timing = these + file).
    pub trimmed_start_ms: u64,
    pub trimmed_end_ms: u64,
    /// RTP packets from strangers dropped while recording (see [`CallStats::foreign_packets`]).
    pub foreign_packets: u64,
    /// Audio received but not saved because the recording writer was behind (its queue full:
    /// the media thread never waits for the disk). Zero unless the disk stalled.
    pub dropped_ms: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum MediaEvent {
    Digit {
        digit: char,
        source: DigitSource,
    },
    SpeechStarted,
    SpeechEnded,
    PlaybackFinished(PlaybackId),
    RecordingFinished(RecordingSummary),
    /// No RTP for `inactivity_timeout_secs` while the call is not on hold.
    MediaTimeout,
    /// The media thread hit a bug while serving this leg (a panic, contained to it, logged
    /// with the call-id and counted in [`MediaEngine::contained_panics`]): the leg is closed,
    /// nothing more will come; hang up. Other calls go on.
    Failed,
}

/// A media thread that stopped while the engine runs (see [`MediaEngine::health`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("media thread media-{shard} stopped: {reason}")]
pub struct MediaFailure {
    pub shard: usize,
    pub reason: String,
}

/// How a media thread receives its unbridged calls' RTP (see `[media] io_uring`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaBackend {
    /// epoll, woken for each packet (the normal scheduler).
    Epoll,
    /// epoll, polled once per 5 ms tick (real-time priority without io_uring).
    EpollPerTick,
    /// io_uring, receives and sends batched per 5 ms tick.
    IoUring,
}

/// Per-leg statistics at close, for the log and the ticket.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CallStats {
    pub duration_ms: u64,
    pub packets_sent: u64,
    pub packets_received: u64,
    /// RFC 3550 cumulative loss (negative with duplicates).
    pub packets_lost: i64,
    /// RFC 3550 interarrival jitter.
    pub jitter_ms: f64,
    /// Estimated MOS (E-model, no delay term).
    pub mos: f64,
    /// From the peer's last RTCP report about our stream.
    pub peer_fraction_lost: Option<u8>,
    pub peer_jitter_ms: Option<f64>,
    /// RTP/RTCP packets dropped because of their source: before latching, from an address
    /// that is neither the SDP's nor the signalling peer's (see
    /// [`NegotiatedMedia::with_signalling_peer`]); after, from other than the latched peer.
    /// Once latched, the RTP socket is connected to the peer and the kernel drops other
    /// sources' RTP uncounted.
    pub foreign_packets: u64,
    pub malformed_packets: u64,
}
