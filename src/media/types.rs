//! The contract between SIP (which negotiates media) and the media engine (which moves it).

use std::path::PathBuf;

use super::prompts::PromptError;

pub use astreinte_core::media::{Codec, MediaDirection, NegotiatedMedia};

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
