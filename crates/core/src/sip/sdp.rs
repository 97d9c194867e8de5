//! SDP (RFC 4566) for one audio stream, and offer/answer (RFC 3264) with PCMU, PCMA and
//! telephone-event/8000 at ptime 20.
//!
//! We only need what a telephone call uses: the connection address, each media line with its
//! formats, rtpmap/ptime/direction attributes. Unknown lines are ignored; malformed ones that
//! matter (c=, m=) make the description invalid.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::media::{Codec, MediaDirection, NegotiatedMedia};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    pub origin_session: String,
    pub connection: Option<IpAddr>,
    pub direction: Option<MediaDirection>,
    pub media: Vec<MediaDescription>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDescription {
    pub kind: String,
    pub port: u16,
    pub proto: String,
    pub formats: Vec<String>,
    pub connection: Option<IpAddr>,
    pub rtpmaps: Vec<(u8, String, u32)>,
    pub ptime: Option<u32>,
    pub direction: Option<MediaDirection>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    #[error("SDP is not valid UTF-8")]
    NotText,
    #[error("SDP line {0} is malformed")]
    BadLine(usize),
    #[error("SDP has no v=0 line")]
    NoVersion,
    #[error("SDP connection address is invalid")]
    BadConnection,
    #[error("SDP media line is invalid")]
    BadMedia,
}

impl SessionDescription {
    pub fn parse(body: &[u8]) -> Result<SessionDescription, SdpError> {
        let text = std::str::from_utf8(body).map_err(|_| SdpError::NotText)?;
        let mut sd = SessionDescription {
            origin_session: String::new(),
            connection: None,
            direction: None,
            media: Vec::new(),
        };
        let mut saw_version = false;
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim_end_matches('\r');
            if line.trim().is_empty() {
                continue;
            }
            let Some((kind, value)) = line.split_once('=') else {
                return Err(SdpError::BadLine(i + 1));
            };
            if kind.len() != 1 {
                return Err(SdpError::BadLine(i + 1));
            }
            match kind {
                "v" => {
                    if value.trim() != "0" {
                        return Err(SdpError::NoVersion);
                    }
                    saw_version = true;
                }
                "o" => {
                    sd.origin_session = value.split_whitespace().nth(1).unwrap_or("").to_string();
                }
                "c" => {
                    let addr = parse_connection(value)?;
                    match sd.media.last_mut() {
                        Some(m) => m.connection = Some(addr),
                        None => sd.connection = Some(addr),
                    }
                }
                "m" => {
                    let mut it = value.split_whitespace();
                    let kind = it.next().ok_or(SdpError::BadMedia)?.to_string();
                    let port_field = it.next().ok_or(SdpError::BadMedia)?;
                    let port_text = port_field.split('/').next().unwrap_or(port_field);
                    let port: u16 = port_text.parse().map_err(|_| SdpError::BadMedia)?;
                    let proto = it.next().ok_or(SdpError::BadMedia)?.to_string();
                    let formats: Vec<String> = it.map(str::to_string).collect();
                    if formats.is_empty() {
                        return Err(SdpError::BadMedia);
                    }
                    sd.media.push(MediaDescription {
                        kind,
                        port,
                        proto,
                        formats,
                        connection: None,
                        rtpmaps: Vec::new(),
                        ptime: None,
                        direction: None,
                    });
                }
                "a" => {
                    let (name, val) = match value.split_once(':') {
                        Some((n, v)) => (n, Some(v)),
                        None => (value, None),
                    };
                    let dir = match name {
                        "sendrecv" => Some(MediaDirection::SendRecv),
                        "sendonly" => Some(MediaDirection::SendOnly),
                        "recvonly" => Some(MediaDirection::RecvOnly),
                        "inactive" => Some(MediaDirection::Inactive),
                        _ => None,
                    };
                    if let Some(d) = dir {
                        match sd.media.last_mut() {
                            Some(m) => m.direction = Some(d),
                            None => sd.direction = Some(d),
                        }
                        continue;
                    }
                    let Some(m) = sd.media.last_mut() else {
                        continue;
                    };
                    match (name, val) {
                        ("rtpmap", Some(v)) => {
                            if let Some(map) = parse_rtpmap(v) {
                                m.rtpmaps.push(map);
                            }
                        }
                        ("ptime", Some(v)) => m.ptime = v.trim().parse().ok(),
                        _ => {}
                    }
                }
                _ => {}
            }
        }
        if !saw_version {
            return Err(SdpError::NoVersion);
        }
        Ok(sd)
    }
}

fn parse_connection(value: &str) -> Result<IpAddr, SdpError> {
    let mut it = value.split_whitespace();
    let (Some("IN"), Some(_), Some(addr)) = (it.next(), it.next(), it.next()) else {
        return Err(SdpError::BadConnection);
    };
    let addr = addr.split('/').next().unwrap_or(addr);
    addr.parse().map_err(|_| SdpError::BadConnection)
}

fn parse_rtpmap(v: &str) -> Option<(u8, String, u32)> {
    let (pt, rest) = v.trim().split_once(' ')?;
    let pt: u8 = pt.parse().ok()?;
    let mut parts = rest.trim().split('/');
    let name = parts.next()?.to_string();
    let rate: u32 = parts.next()?.parse().ok()?;
    Some((pt, name, rate))
}

/// Why an offer cannot be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NegotiationError {
    #[error("{0}")]
    Sdp(#[from] SdpError),
    #[error("no audio stream offered")]
    NoAudio,
    #[error("no common codec: PCMU or PCMA at 8000 Hz is required")]
    NoCommonCodec,
}

/// What an offer says and what we will answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiation {
    /// The media as it will flow (our direction in the answer).
    pub media: NegotiatedMedia,
    /// Index of the audio m-line we accepted.
    audio_index: usize,
    /// The offer's m-lines, to mirror (rejected ones get port 0).
    offered: Vec<MediaDescription>,
}

/// Codec of a payload type in a media description, by static number or rtpmap name.
fn codec_of(m: &MediaDescription, fmt: &str) -> Option<(Codec, u8)> {
    let pt: u8 = fmt.parse().ok()?;
    let mapped = m.rtpmaps.iter().find(|(p, _, _)| *p == pt);
    match mapped {
        Some((_, name, rate)) => {
            if *rate != 8000 {
                return None;
            }
            if name.eq_ignore_ascii_case("PCMU") {
                Some((Codec::Pcmu, pt))
            } else if name.eq_ignore_ascii_case("PCMA") {
                Some((Codec::Pcma, pt))
            } else {
                None
            }
        }
        None => match pt {
            0 => Some((Codec::Pcmu, 0)),
            8 => Some((Codec::Pcma, 8)),
            _ => None,
        },
    }
}

/// Chooses our answer to an SDP offer (RFC 3264 §6): the first audio stream with a codec we
/// speak, in the offerer's order of preference.
pub fn negotiate(offer: &[u8], fallback_addr: IpAddr) -> Result<Negotiation, NegotiationError> {
    let sd = SessionDescription::parse(offer)?;
    let mut saw_audio = false;
    for (i, m) in sd.media.iter().enumerate() {
        if !m.kind.eq_ignore_ascii_case("audio") || m.port == 0 {
            continue;
        }
        if !m.proto.eq_ignore_ascii_case("RTP/AVP") {
            continue;
        }
        saw_audio = true;
        let Some((codec, pt)) = m.formats.iter().find_map(|f| codec_of(m, f)) else {
            continue;
        };
        let telephone_event_pt = m
            .rtpmaps
            .iter()
            .find(|(_, name, rate)| name.eq_ignore_ascii_case("telephone-event") && *rate == 8000)
            .map(|(pt, _, _)| *pt)
            .filter(|pt| m.formats.iter().any(|f| f == &pt.to_string()));
        let addr = m.connection.or(sd.connection).unwrap_or(fallback_addr);
        let offered_dir = m.direction.or(sd.direction).unwrap_or_default();
        // RFC 2543 hold: c=0.0.0.0 means "do not send to me".
        let offered_dir = if addr.is_unspecified() {
            match offered_dir {
                MediaDirection::SendRecv | MediaDirection::SendOnly => MediaDirection::SendOnly,
                _ => MediaDirection::Inactive,
            }
        } else {
            offered_dir
        };
        return Ok(Negotiation {
            media: NegotiatedMedia {
                remote_rtp: SocketAddr::new(addr, m.port),
                codec,
                payload_type: pt,
                telephone_event_pt,
                direction: offered_dir.answer(),
                ptime_ms: 20,
                // The SDP does not know where the SIP came from: the call flow adds it.
                signalling_peer: None,
            },
            audio_index: i,
            offered: sd.media.clone(),
        });
    }
    Err(if saw_audio {
        NegotiationError::NoCommonCodec
    } else {
        NegotiationError::NoAudio
    })
}

/// Our SDP: session version bumps on every change (RFC 3264 §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalSdp {
    pub session_id: u64,
    pub version: u64,
    pub rtp: SocketAddr,
}

fn header(s: &mut String, local: &LocalSdp) {
    let (ip_kind, ip) = match local.rtp.ip() {
        IpAddr::V4(v4) => ("IP4", v4.to_string()),
        IpAddr::V6(v6) => ("IP6", v6.to_string()),
    };
    let _ = write!(
        s,
        "v=0\r\no=astreinte {} {} IN {ip_kind} {ip}\r\ns=astreinte\r\nc=IN {ip_kind} {ip}\r\nt=0 0\r\n",
        local.session_id, local.version
    );
}

/// The answer to a negotiated offer: the chosen codec and telephone-event, other m-lines
/// refused with port 0.
pub fn answer(neg: &Negotiation, local: &LocalSdp) -> Vec<u8> {
    let mut s = String::with_capacity(320);
    header(&mut s, local);
    for (i, m) in neg.offered.iter().enumerate() {
        if i != neg.audio_index {
            let _ = write!(
                s,
                "m={} 0 {} {}\r\n",
                m.kind,
                m.proto,
                m.formats.first().map_or("0", String::as_str)
            );
            continue;
        }
        let media = &neg.media;
        let _ = write!(
            s,
            "m=audio {} RTP/AVP {}",
            local.rtp.port(),
            media.payload_type
        );
        if let Some(te) = media.telephone_event_pt {
            let _ = write!(s, " {te}");
        }
        let _ = write!(
            s,
            "\r\na=rtpmap:{} {}/8000\r\n",
            media.payload_type,
            media.codec.encoding_name()
        );
        if let Some(te) = media.telephone_event_pt {
            let _ = write!(
                s,
                "a=rtpmap:{te} telephone-event/8000\r\na=fmtp:{te} 0-16\r\n"
            );
        }
        let _ = write!(s, "a=ptime:20\r\na={}\r\n", media.direction.attribute());
    }
    s.into_bytes()
}

/// Our offer (INVITE without SDP, outbound calls): PCMU, PCMA, telephone-event 101.
pub fn offer(local: &LocalSdp, direction: MediaDirection) -> Vec<u8> {
    let mut s = String::with_capacity(320);
    header(&mut s, local);
    let _ = write!(
        s,
        "m=audio {} RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na={}\r\n",
        local.rtp.port(),
        direction.attribute()
    );
    s.into_bytes()
}

/// Reads the answer to our offer: the first codec of ours the answerer kept.
pub fn read_answer(
    answer: &[u8],
    fallback_addr: IpAddr,
) -> Result<NegotiatedMedia, NegotiationError> {
    let neg = negotiate(answer, fallback_addr)?;
    let mut media = neg.media;
    // `negotiate` computed the direction we would answer with; for an answer, our direction is
    // the mirror of theirs, which is the same mapping.
    media.ptime_ms = 20;
    Ok(media)
}

/// A placeholder address used when no media address is known yet.
pub const UNSPECIFIED: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 49170 RTP/AVP 18 8 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\nm=video 5000 RTP/AVP 31\r\n";

    fn local() -> LocalSdp {
        LocalSdp {
            session_id: 7,
            version: 1,
            rtp: "127.0.0.1:20000".parse().unwrap(),
        }
    }

    #[test]
    fn picks_first_supported_codec_in_offer_order() {
        let n = negotiate(OFFER.as_bytes(), UNSPECIFIED).unwrap();
        assert_eq!(n.media.codec, Codec::Pcma);
        assert_eq!(n.media.telephone_event_pt, Some(101));
        assert_eq!(n.media.remote_rtp, "192.0.2.1:49170".parse().unwrap());
        let a = String::from_utf8(answer(&n, &local())).unwrap();
        assert!(a.contains("m=audio 20000 RTP/AVP 8 101\r\n"), "{a}");
        assert!(a.contains("m=video 0 RTP/AVP 31\r\n"), "{a}");
        assert!(a.contains("a=sendrecv"));
    }

    #[test]
    fn no_common_codec() {
        let o = "v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 4000 RTP/AVP 18 9\r\n";
        assert_eq!(
            negotiate(o.as_bytes(), UNSPECIFIED).unwrap_err(),
            NegotiationError::NoCommonCodec
        );
        let o = "v=0\r\nc=IN IP4 192.0.2.1\r\nm=video 4000 RTP/AVP 31\r\n";
        assert_eq!(
            negotiate(o.as_bytes(), UNSPECIFIED).unwrap_err(),
            NegotiationError::NoAudio
        );
    }

    #[test]
    fn hold_forms() {
        let o = "v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 4000 RTP/AVP 0\r\na=sendonly\r\n";
        assert_eq!(
            negotiate(o.as_bytes(), UNSPECIFIED)
                .unwrap()
                .media
                .direction,
            MediaDirection::RecvOnly
        );
        let o = "v=0\r\nc=IN IP4 0.0.0.0\r\nm=audio 4000 RTP/AVP 0\r\n";
        assert_eq!(
            negotiate(o.as_bytes(), UNSPECIFIED)
                .unwrap()
                .media
                .direction,
            MediaDirection::RecvOnly
        );
        let o = "v=0\r\nc=IN IP4 192.0.2.1\r\na=inactive\r\nm=audio 4000 RTP/AVP 0\r\n";
        assert_eq!(
            negotiate(o.as_bytes(), UNSPECIFIED)
                .unwrap()
                .media
                .direction,
            MediaDirection::Inactive
        );
    }

    #[test]
    fn dynamic_pcmu_by_name_and_garbage() {
        let o = "v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 4000 RTP/AVP 96\r\na=rtpmap:96 PCMU/8000\r\n";
        let n = negotiate(o.as_bytes(), UNSPECIFIED).unwrap();
        assert_eq!((n.media.codec, n.media.payload_type), (Codec::Pcmu, 96));
        assert!(negotiate(b"\xff\xfe", UNSPECIFIED).is_err());
        assert!(negotiate(b"v=0\r\nm=audio x RTP/AVP 0\r\n", UNSPECIFIED).is_err());
        assert!(negotiate(b"v=0\r\nc=IN IP4 nonsense\r\n", UNSPECIFIED).is_err());
    }

    #[test]
    fn our_offer_round_trips() {
        let o = offer(&local(), MediaDirection::SendRecv);
        let n = negotiate(&o, UNSPECIFIED).unwrap();
        assert_eq!(n.media.codec, Codec::Pcmu);
        assert_eq!(n.media.telephone_event_pt, Some(101));
    }
}
