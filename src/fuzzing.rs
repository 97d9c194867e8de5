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
    ("prompt_upload", prompt_upload),
    ("config", config),
    ("accounts_csv", accounts_csv),
    ("ack_link", ack_link),
    ("client_ip", client_ip),
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
        // Fixed: a crash replays exactly.
        seed: crate::sip::RngSeed([7; 32]),
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

/// An uploaded prompt (WAV, MP3 or Ogg/Vorbis, sniffed from its bytes) through the console's
/// converter with its default limits. What it accepts must be what the documentation says a
/// prompt is: 8 kHz mono 16-bit, no longer than the limit, and its WAV must read back as such.
pub fn prompt_upload(data: &[u8]) {
    use crate::media::convert::{self, Limits, RATE};
    let limits = Limits::default();
    match convert::convert(data) {
        Ok(c) => {
            let max_samples = (limits.max_seconds * f64::from(RATE)).ceil() as usize;
            assert!(
                c.pcm.len() <= max_samples,
                "{} samples accepted, more than {} s at {RATE} Hz",
                c.pcm.len(),
                limits.max_seconds
            );
            assert!(c.source_channels >= 1, "no channel: {c:?}");
            assert!(
                (4000..=384_000).contains(&c.source_rate),
                "source rate {} accepted",
                c.source_rate
            );
            let back = convert::decode_wav_8k(&c.wav());
            assert_eq!(back.as_deref(), Ok(&c.pcm[..]), "the prompt's WAV");
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

/// A configuration file's text through what `check-config` and `serve` run on it
/// (`Config::parse`: TOML, every section's validation, errors located by line). A text it
/// accepts must also compile into the schedule and give the media ports and the SIP address
/// `serve` needs; a refusal names lines that exist. Non-UTF-8 bytes are refused by the read
/// before any parsing, so only UTF-8 inputs go on.
pub fn config(data: &[u8]) {
    use crate::config::{Config, ConfigError};
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::parse(Path::new("fuzz.toml"), text) {
        Ok(c) => {
            assert!(
                crate::schedule::Schedule::from_config(&c.schedule).is_ok(),
                "check-config accepts a [schedule] that serve refuses"
            );
            assert!(c.media.port_range().is_some(), "accepted rtp_ports");
            assert!(c.sip.listen_addr().is_some(), "accepted sip.listen");
            let _ = (c.http.trusted_proxy_nets(), c.http.metrics_allow_nets());
            let _ = c.http.public_url();
        }
        Err(e) => {
            let lines = text.split('\n').count();
            if let ConfigError::Invalid(issues) = &e {
                assert!(!issues.is_empty(), "refused without a reason");
                for i in issues {
                    assert!(
                        i.line.is_none_or(|l| (1..=lines).contains(&l)),
                        "{i} names a line past the end ({lines} lines)"
                    );
                }
            }
            let _ = e.to_string();
        }
    }
}

/// An accounts CSV through the parsing and validation half of `ops accounts import`
/// (`store::accounts::parse_csv`; the store writes come after it, all or nothing). What it
/// accepts must be importable as is: required fields present, every number normalised and
/// registered once, a known language; written back as CSV it parses to the same accounts.
pub fn accounts_csv(data: &[u8]) {
    use crate::store::accounts::{normalise_number, parse_csv};
    use crate::store::StoreError;
    let accounts = match parse_csv(data) {
        Ok(a) => a,
        Err(StoreError::Invalid(msg)) => {
            assert!(msg.starts_with("line "), "an error without its line: {msg}");
            return;
        }
        Err(e) => panic!("parsing gave a store error: {e}"),
    };
    let mut numbers = std::collections::HashSet::new();
    for a in &accounts {
        assert!(!a.code.is_empty() && !a.company.is_empty(), "{a:?}");
        assert!(!a.numbers.is_empty(), "no number: {a:?}");
        for n in &a.numbers {
            assert_eq!(
                normalise_number(n).as_ref(),
                Some(n),
                "not normalised: {a:?}"
            );
            assert!(numbers.insert(n.clone()), "{n} registered twice");
        }
        assert!(
            matches!(a.language.as_deref(), None | Some("fr" | "en")),
            "{a:?}"
        );
        let mut roles: Vec<_> = a.contacts.iter().map(|c| c.role).collect();
        roles.dedup();
        assert_eq!(roles.len(), a.contacts.len(), "a role twice: {a:?}");
    }
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "account",
        "company",
        "address",
        "numbers",
        "admin_name",
        "admin_phone",
        "admin_email",
        "technical_name",
        "technical_phone",
        "technical_email",
        "billing_name",
        "billing_phone",
        "billing_email",
        "language",
    ])
    .expect("writing to memory");
    for a in &accounts {
        let mut rec = vec![
            a.code.clone(),
            a.company.clone(),
            a.address.clone(),
            a.numbers.join(";"),
        ];
        for role in [
            crate::store::ContactRole::Administrative,
            crate::store::ContactRole::Technical,
            crate::store::ContactRole::Billing,
        ] {
            match a.contacts.iter().find(|c| c.role == role) {
                Some(c) => rec.extend([c.name.clone(), c.phone.clone(), c.email.clone()]),
                None => rec.extend([String::new(), String::new(), String::new()]),
            }
        }
        rec.push(a.language.clone().unwrap_or_default());
        w.write_record(&rec).expect("writing to memory");
    }
    let written = w.into_inner().expect("writing to memory");
    match parse_csv(&written[..]) {
        Ok(again) => assert_eq!(again, accounts, "{:?}", String::from_utf8_lossy(&written)),
        Err(e) => panic!(
            "the accepted accounts, written back, are refused ({e}): {:?}",
            String::from_utf8_lossy(&written)
        ),
    }
}

/// The fixed key and clock of [`ack_link`] (`fuzz/make_seeds.py` signs its seeds with them).
const ACK_KEY: &[u8] = b"0123456789abcdef0123456789abcdef";
const ACK_NOW: i64 = 1_741_834_800; // 2025-03-13T03:00:00Z
const ACK_TTL_HOURS: i64 = 72;

/// The signed parts of a link as the `/ack/{ticket}` route receives them: the path segment
/// percent-decoded (as axum's `Path`), the query through axum's `Query`.
#[derive(Debug, Default, serde::Deserialize)]
struct LinkQuery {
    p: Option<String>,
    e: Option<String>,
    s: Option<String>,
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| char::from(c).to_digit(16);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// A request target (`/ack/{ticket}?p=…&e=…&s=…`) as the route reads it: the ticket and the
/// query, or `None` when the route does not match or the query cannot be read (a 400).
fn read_link(target: &str) -> Option<(String, LinkQuery)> {
    let uri: axum::http::Uri = target.parse().ok()?;
    let segment = uri.path().strip_prefix("/ack/")?;
    if segment.is_empty() || segment.contains('/') {
        return None;
    }
    let ticket = percent_decode(segment).unwrap_or_default();
    let axum::extract::Query(q) = axum::extract::Query::<LinkQuery>::try_from_uri(&uri).ok()?;
    Some((ticket, q))
}

/// An acknowledgement link's request target, verified as the route does with a fixed key and
/// clock; then a link made for the ticket and person it names (or for the input itself, as
/// text) read back through the same route parsing. Properties: a link that verifies carries the
/// signature we would have made; a link we make reads back to the same ticket and person and
/// verifies exactly when both are well-formed, until it expires, and not after.
pub fn ack_link(data: &[u8]) {
    use crate::http::ack::{check_ticket, AckLinks, LinkError};
    use chrono::{DateTime, Duration};
    let ttl = Duration::hours(ACK_TTL_HOURS);
    let links = AckLinks::new(ACK_KEY, "https://a.example/", ttl).expect("a long key");
    let now = DateTime::from_timestamp(ACK_NOW, 0).expect("a valid time");
    let text = String::from_utf8_lossy(data);
    let parsed = read_link(&text);
    let (ticket, person) = match &parsed {
        Some((ticket, q)) => {
            if let (Some(p), Some(e), Some(s)) = (&q.p, &q.e, &q.s) {
                if links.verify(ticket, p, e, s, now).is_ok() {
                    assert!(check_ticket(ticket).is_ok(), "{ticket:?} verified");
                    let made_at = e.parse::<i64>().expect("a verified expiry") - ttl.num_seconds();
                    let remade = links.link(
                        ticket,
                        p,
                        DateTime::from_timestamp(made_at, 0).expect("a verified expiry"),
                    );
                    assert!(
                        remade.ends_with(&format!("&e={e}&s={}", s.to_ascii_lowercase())),
                        "{text:?} verified but we sign it {remade:?}"
                    );
                }
            }
            (ticket.clone(), q.p.clone().unwrap_or_default())
        }
        None => (
            text.chars().filter(char::is_ascii_digit).take(40).collect(),
            text.into_owned(),
        ),
    };
    // Round trip (an empty ticket makes no route: links are only made for tickets).
    if ticket.is_empty() {
        return;
    }
    let link = links.link(&ticket, &person, now);
    let target = link
        .strip_prefix("https://a.example")
        .expect("the public URL");
    let Some((t2, q2)) = read_link(target) else {
        panic!("our link {link:?} does not read back")
    };
    assert_eq!(t2, ticket, "{link:?}");
    assert_eq!(q2.p.as_deref(), Some(person.as_str()), "{link:?}");
    let (e2, s2) = (q2.e.unwrap_or_default(), q2.s.unwrap_or_default());
    let verdict = links.verify(&t2, &person, &e2, &s2, now);
    let well_formed = check_ticket(&ticket).is_ok()
        && !person.is_empty()
        && person.len() <= 128
        && !person.chars().any(char::is_control);
    if well_formed {
        assert_eq!(verdict, Ok(()), "{link:?}");
        assert_eq!(links.verify(&t2, &person, &e2, &s2, now + ttl), Ok(()));
        assert_eq!(
            links.verify(&t2, &person, &e2, &s2, now + ttl + Duration::seconds(1)),
            Err(LinkError::Expired)
        );
    } else {
        assert!(
            matches!(verdict, Err(LinkError::Malformed(_))),
            "{link:?}: {verdict:?}"
        );
    }
}

/// `X-Forwarded-For` through [`crate::http::client_ip`]. Input lines: the TCP peer (an address,
/// or anything else for none), the trusted proxies (comma-separated, as `[http]
/// trusted_proxies`), then one header value per line (raw bytes; values `http` refuses are
/// left out). The answer is the peer when it is not a trusted proxy, else the peer or a header
/// entry whose entries to its right are all trusted proxies: never anything a client made up.
pub fn client_ip(data: &[u8]) {
    use axum::http::{HeaderMap, HeaderValue};
    let mut lines = data.split(|&b| b == b'\n');
    let peer = lines
        .next()
        .and_then(|l| std::str::from_utf8(l).ok())
        .and_then(|l| l.trim().parse::<IpAddr>().ok());
    let proxies = lines
        .next()
        .map(|l| {
            String::from_utf8_lossy(l)
                .split(',')
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    let trusted = crate::http::HttpConfig {
        trusted_proxies: proxies,
        ..Default::default()
    }
    .trusted_proxy_nets();
    let mut headers = HeaderMap::new();
    for l in lines {
        if let Ok(v) = HeaderValue::from_bytes(l) {
            headers.append("x-forwarded-for", v);
        }
    }
    let got = crate::http::client_ip(peer, &headers, &trusted);
    let Some(peer) = peer else {
        assert_eq!(got, None);
        return;
    };
    let got = got.expect("a peer gives an address");
    let canon = crate::http::canonical;
    let is_proxy = |ip: IpAddr| trusted.iter().any(|n| n.contains(&canon(ip)));
    if !is_proxy(peer) {
        assert_eq!(got, peer, "an untrusted peer's header was believed");
        return;
    }
    if got == peer {
        return;
    }
    // An independent reading of the entries, right to left.
    let hops: Vec<Option<IpAddr>> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|h| {
            let h = h.trim();
            h.parse::<IpAddr>()
                .ok()
                .or_else(|| h.parse::<SocketAddr>().ok().map(|a| a.ip()))
                .map(canon)
        })
        .collect();
    let believed = (0..hops.len())
        .any(|i| hops[i] == Some(got) && hops[i + 1..].iter().all(|h| h.is_some_and(is_proxy)));
    assert!(
        believed,
        "{got} is neither the peer {peer} nor an entry behind trusted proxies only: {hops:?}"
    );
}
