//! Entry points for the fuzz targets in `fuzz/` and for `tests/fuzz_regressions.rs`.
//!
//! Each function takes arbitrary bytes, drives one parser (and what sits on top of it) the way
//! the engine would, and returns normally whatever the bytes are: any panic is a bug. They are
//! public only so the separate fuzz crate and the regression test can reach them; nothing in
//! the engine calls them. Keeping the harness here means a crash found by `cargo fuzz` and its
//! regression test run exactly the same code.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::media::dtmf::DtmfDetector;
use crate::media::jitter::{JitterBuffer, Out};
use crate::media::rfc4733::{EventReceiver, TelephoneEvent};
use crate::media::stats::RecvStats;
use crate::media::{g711, rtcp, Codec, MediaDirection};
use crate::sip::endpoint::{Endpoint, EndpointConfig, Event, OutboundCall, Peer};
use crate::sip::message::{self, split_list, uri_scheme, Message, NameAddr, Uri, Via};
use crate::sip::routing::{normalize_number, NumberSet, TrustedSources};
use crate::sip::sdp::{self, LocalSdp, SessionDescription};
use crate::sip::transaction::Timers;
use crate::sip::validate::validate_request;
use crate::sip::{digest, Credentials};

/// A fuzz target's entry point.
pub type Target = fn(&[u8]);

/// The targets, by the name of their fuzz binary and regression folder.
pub const TARGETS: &[(&str, Target)] = &[
    ("sip_message", sip_message),
    ("sip_message_text", sip_message),
    ("sdp", sdp),
    ("rtp", rtp),
    ("wav_recovery", wav_recovery),
];

/// Separates the datagrams of one input fed to the endpoint. Two NULs, so that one NUL (and a
/// bare CR) can still sit inside a message: the grammar gate must meet them.
const DATAGRAM_SEPARATOR: &[u8] = b"\0\0";
/// Bounds the endpoint's work per input so a slow input is a finding, not a hang.
const MAX_DATAGRAMS: usize = 16;
const MAX_TIMER_STEPS: usize = 64;

fn headers_of(h: &message::Headers) {
    let _ = h.cseq();
    let _ = h.top_via().map(|v| (v.branch().map(str::len), v.sent_by()));
    let _ = h.to().map(|n| (n.tag().map(str::len), n.sip_uri()));
    for name in [
        "Via",
        "Contact",
        "Route",
        "Record-Route",
        "Supported",
        "Require",
        "Allow",
    ] {
        for part in h.list(name) {
            let _ = Via::parse(&part);
            if let Some(n) = NameAddr::parse(&part) {
                let _ = (n.tag(), n.sip_uri().map(|u| u.short()));
            }
        }
    }
    for v in h.get_all("From") {
        let _ = NameAddr::parse(v).map(|n| n.sip_uri());
    }
    for name in ["WWW-Authenticate", "Proxy-Authenticate"] {
        for v in h.get_all(name) {
            if let Some(c) = digest::Challenge::parse(v) {
                let cred = Credentials {
                    username: "u".into(),
                    password: "p".into(),
                };
                let _ = c.authorize(&cred, "INVITE", "sip:a@b", "c");
            }
        }
    }
    for v in h.0.iter().map(|x| x.value.as_str()) {
        let _ = split_list(v);
    }
    let _ = h.has_token("Supported", "timer");
}

/// Parses one SIP message and every typed view of it, validates it, then feeds the input to
/// a sans-I/O [`Endpoint`] with synthetic time: NUL-separated datagrams from one peer, any
/// incoming call answered so later datagrams reach the dialog, an outbound call placed first
/// when the input opens with a response, placeholders filled in (see `Placeholders`), then
/// its timers run; everything it sends and reports is drained.
pub fn sip_message(data: &[u8]) {
    let _ = message::frame_stream(data);
    match message::parse(data) {
        Ok(Message::Request(r)) => {
            assert_clean_headers(&r.uri, &r.headers);
            headers_of(&r.headers);
            let _ = (r.call_id(), r.from(), r.to(), r.cseq(), r.top_via());
            let _ = uri_scheme(&r.uri);
            if let Some(u) = Uri::parse(&r.uri) {
                let _ = u.short();
                if let Some(user) = &u.user {
                    let _ = normalize_number(user);
                    let _ = NumberSet::new(["+15149073400", "611"]).lookup(user);
                }
            }
            let _ = validate_request(&r);
            let _ = sdp::negotiate(&r.body, sdp::UNSPECIFIED);
            assert_sendable(&r.to_bytes());
            let _ = message::parse(&r.to_bytes());
        }
        Ok(Message::Response(r)) => {
            assert_clean_headers(&r.reason, &r.headers);
            headers_of(&r.headers);
            let _ = digest::challenge_of(&r);
            let _ = sdp::read_answer(&r.body, sdp::UNSPECIFIED);
            assert_sendable(&r.to_bytes());
            let _ = message::parse(&r.to_bytes());
        }
        Err(e) => {
            assert_clean_headers("", &e.headers);
            headers_of(&e.headers);
        }
    }
    endpoint(data);
}

/// The same as [`sip_message`] for text (a `&str` target keeps the fuzzer on valid UTF-8).
pub fn sip_message_text(text: &str) {
    sip_message(text.as_bytes());
}

/// Values the fuzzer cannot guess (our random branch, Call-ID and tags), substituted for
/// SIPp-style placeholders in its datagrams: `[branch]`, `[call_id]`, `[from_tag]` and `[cseq]`
/// of the last request we sent, `[to_tag]` of the last response we sent. With them a seed can
/// answer our INVITE (digest challenge, 200, re-INVITE) or ACK and BYE our answer.
#[derive(Default)]
struct Placeholders(Vec<(&'static [u8], Vec<u8>)>);

impl Placeholders {
    fn set(&mut self, name: &'static [u8], value: Option<String>) {
        if let Some(v) = value {
            self.0.retain(|(n, _)| *n != name);
            self.0.push((name, v.into_bytes()));
        }
    }

    fn learn(&mut self, sent: &[u8]) {
        assert_sendable(sent);
        match message::parse(sent) {
            Ok(Message::Request(r)) => {
                self.set(
                    b"[branch]",
                    r.top_via().and_then(|v| v.branch().map(String::from)),
                );
                self.set(b"[call_id]", r.call_id().map(String::from));
                self.set(
                    b"[from_tag]",
                    r.from().and_then(|f| f.tag().map(String::from)),
                );
                self.set(b"[cseq]", r.cseq().map(|c| c.seq.to_string()));
            }
            Ok(Message::Response(r)) => {
                self.set(b"[to_tag]", r.to().and_then(|t| t.tag().map(String::from)));
            }
            // The endpoint built it: a peer that cannot parse it would drop it.
            Err(e) => panic!(
                "the endpoint sent a message that does not parse ({e}): {:?}",
                String::from_utf8_lossy(sent)
            ),
        }
    }

    fn fill(&self, dgram: &[u8]) -> Vec<u8> {
        let mut out = dgram.to_vec();
        if !out.contains(&b'[') {
            return out;
        }
        for (name, value) in &self.0 {
            let mut i = 0;
            while let Some(at) = memchr::memmem::find(&out[i..], name) {
                let at = i + at;
                out.splice(at..at + name.len(), value.iter().copied());
                i = at + value.len();
            }
        }
        out
    }
}

fn endpoint(data: &[u8]) {
    let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let mut ep = Endpoint::new(EndpointConfig {
        local_addr: SocketAddr::new(localhost, 5060),
        numbers: NumberSet::accept_any(),
        trusted: TrustedSources::new(vec![ipnet::IpNet::from(localhost)]),
        rate_limit_per_source: 10_000,
        user_agent: "astreinte-fuzz".into(),
        timers: Timers::default(),
    });
    let peer = Peer::udp(SocketAddr::new(localhost, 5999));
    let rtp = SocketAddr::new(localhost, 20000);
    let mut now = Instant::now();
    let mut vars = Placeholders::default();
    // An input that opens with a response plays the far end of a call we place.
    if data.starts_with(b"SIP/") {
        ep.place_call(
            now,
            OutboundCall {
                target: "sip:+15145001004@127.0.0.1:5999".into(),
                next_hop: peer,
                from: "sip:astreinte@127.0.0.1:5060".into(),
                credentials: Some(Credentials {
                    username: "pager".into(),
                    password: "s3cret".into(),
                }),
                local_rtp: rtp,
            },
        );
        drain(&mut ep, now, rtp, &mut vars);
    }
    for dgram in datagrams(data)
        .filter(|d| !d.is_empty())
        .take(MAX_DATAGRAMS)
    {
        ep.handle_input(now, peer, &vars.fill(dgram));
        drain(&mut ep, now, rtp, &mut vars);
        now += Duration::from_millis(10);
    }
    for _ in 0..MAX_TIMER_STEPS {
        let Some(t) = ep.poll_timeout() else { break };
        now = now.max(t);
        ep.handle_timeout(now);
        drain(&mut ep, now, rtp, &mut vars);
    }
}

/// The input cut at each [`DATAGRAM_SEPARATOR`].
fn datagrams(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(data);
    std::iter::from_fn(move || {
        let r = rest?;
        match memchr::memmem::find(r, DATAGRAM_SEPARATOR) {
            Some(at) => {
                rest = Some(&r[at + DATAGRAM_SEPARATOR.len()..]);
                Some(&r[..at])
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

/// What the parser lets through must hold no control byte that the grammar refuses, or a
/// reader that splits lines differently would see other headers than we do.
fn assert_clean_headers(start: &str, h: &message::Headers) {
    for v in std::iter::once(start).chain(h.0.iter().map(|x| x.value.as_str())) {
        if let Some(fault) = message::control_byte_fault(v.as_bytes()) {
            panic!("a parsed message kept {fault}: {v:?}");
        }
    }
}

/// Everything we send must be clean of control bytes in its header section.
fn assert_sendable(sent: &[u8]) {
    if let Some(at) = message::unsendable_byte(sent) {
        panic!(
            "the endpoint sent a control byte (0x{:02x}) in a header: {:?}",
            sent[at],
            String::from_utf8_lossy(sent)
        );
    }
}

fn drain(ep: &mut Endpoint, now: Instant, rtp: SocketAddr, vars: &mut Placeholders) {
    loop {
        while let Some(t) = ep.poll_transmit() {
            vars.learn(&t.bytes);
        }
        let Some(ev) = ep.poll_event() else { break };
        if let Event::Incoming(call) = ev {
            ep.ring(now, call.leg);
            ep.answer(now, call.leg, rtp);
        }
    }
}

/// Parses an SDP body, negotiates an answer to it as an offer, and reads it as an answer.
pub fn sdp(data: &[u8]) {
    let _ = SessionDescription::parse(data);
    let local = LocalSdp {
        session_id: 1,
        version: 1,
        rtp: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 20000),
    };
    if let Ok(n) = sdp::negotiate(data, sdp::UNSPECIFIED) {
        let ours = sdp::answer(&n, &local);
        let _ = SessionDescription::parse(&ours);
    }
    let _ = sdp::read_answer(data, sdp::UNSPECIFIED);
    let _ = sdp::offer(&local, MediaDirection::SendRecv);
}

/// One RTP packet, an RTCP compound packet, RFC 4733 events and the receive path.
///
/// The whole input is parsed as one RTP packet (through `rtp-rs`, as the media thread does),
/// its payload as a telephone-event and as G.711 (decoded and run through the in-band DTMF
/// detector), and the input as RTCP. Then it is read as a sequence of 12-byte records
/// `(seq: u16, ts: u32, ssrc: u32)`, the last 4 bytes also as a telephone-event, that drive the
/// receive statistics, the jitter buffer (with the extended sequence numbers the statistics
/// give, as the media thread does) and the telephone-event receiver, with a final drain.
pub fn rtp(data: &[u8]) {
    let mut events = EventReceiver::new();
    let mut dtmf = DtmfDetector::new();
    let mut pcm = [0i16; 2048];
    let mut decoded = 0;
    if let Ok(pkt) = rtp_rs::RtpReader::new(data) {
        let _ = (pkt.payload_type(), pkt.mark(), pkt.ssrc());
        let _ = u16::from(pkt.sequence_number());
        let _ = (pkt.csrc().count(), pkt.extension().map(|(_, e)| e.len()));
        let payload = pkt.payload();
        // Where the media thread's relay finds the payload.
        let off = data.len() - payload.len() - usize::from(pkt.padding().unwrap_or(0));
        let _ = data.get(off..off + payload.len());
        if let Some(ev) = TelephoneEvent::parse(payload) {
            let _ = events.handle_event(pkt.timestamp(), ev);
        }
        let codec = if pkt.payload_type() == 8 {
            Codec::Pcma
        } else {
            Codec::Pcmu
        };
        decoded = g711::decode(codec, payload, &mut pcm);
        let _ = dtmf.process(&pcm[..decoded]);
    }
    let _ = rtcp::parse(data);

    let mut stats = RecvStats::default();
    let mut jb = JitterBuffer::new(usize::from(data.first().copied().unwrap_or(3)));
    for (i, rec) in data.chunks_exact(12).enumerate() {
        let seq = u16::from_be_bytes([rec[0], rec[1]]);
        let ts = u32::from_be_bytes([rec[2], rec[3], rec[4], rec[5]]);
        let ssrc = u32::from_be_bytes([rec[6], rec[7], rec[8], rec[9]]);
        let ev = TelephoneEvent::parse(&rec[8..12]);
        let arrival = (i as u32).wrapping_mul(160) ^ ssrc;
        if let Some(ext) = stats.handle_packet(seq, ts, arrival) {
            let len = usize::from(rec[10]).min(decoded.max(160));
            let _ = jb.push(ext, &pcm[..len]);
            while let Some(o) = jb.pop_ready() {
                if let Out::Frame(f) = o {
                    let _ = f.len();
                }
            }
        }
        if let Some(ev) = ev {
            let _ = events.handle_event(ts, ev);
        }
        let _ = (stats.lost(), stats.jitter(), stats.take_fraction_lost());
    }
    while jb.pop_any().is_some() {}
}

/// Writes the bytes as an unfinished recording (`vm.wav.part`) in a fresh directory under the
/// system temporary directory, runs the start-up recovery over it, reads back what it
/// repaired, and removes the directory.
pub fn wav_recovery(data: &[u8]) {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir: PathBuf = std::env::temp_dir().join(format!(
        "astreinte-fuzz-wav-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    if std::fs::create_dir_all(&dir).is_ok()
        && std::fs::write(dir.join("vm.wav.part"), data).is_ok()
    {
        let _ = crate::media::recover_unfinished(&dir);
        // A repaired file must read back as a WAV.
        let fixed = dir.join("vm.wav");
        if fixed.exists() {
            read_wav(&fixed);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn read_wav(path: &Path) {
    if let Ok(r) = hound::WavReader::open(path) {
        for s in r.into_samples::<i16>().take(1 << 16) {
            if s.is_err() {
                break;
            }
        }
    }
}
