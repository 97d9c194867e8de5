//! What SIP negotiates and what a flow asks to play: the contract between the cores and the
//! engine's media threads, which move the audio.

use std::net::{IpAddr, SocketAddr};

/// The largest `number-N` prompt (see `prompts/make-prompts.sh`).
pub const MAX_NUMBER_PROMPT: u8 = 120;

/// A prompt a flow asks to play, by name: the media engine finds the audio. `Named` is
/// `"<lang>/<name>"` ("fr/goodbye"); `Digits` reads out `digits` with the `<lang>/digit-N`
/// prompts, other characters skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PromptCue {
    Named(String),
    Digits { lang: String, digits: String },
}

impl PromptCue {
    pub fn named(name: impl Into<String>) -> Self {
        PromptCue::Named(name.into())
    }
    pub fn digits(lang: impl Into<String>, digits: impl Into<String>) -> Self {
        PromptCue::Digits {
            lang: lang.into(),
            digits: digits.into(),
        }
    }
}

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
