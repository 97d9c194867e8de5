//! A small test phone: the called side (a SIP UAS over UDP) with G.711 µ-law RTP from real
//! sockets, keys pressed the RFC 4733 way on the RTP stream. It is what the engine pages: the
//! test waits for the engine's INVITE, answers or rejects it, hears what the engine plays
//! (decoded, with the time of the last loud packet, like the test caller) and says what it is
//! given (samples at 8 kHz), else silence.
//!
//! A background thread answers SIP on its own: 100 Trying to a new INVITE, the last response
//! again to a retransmitted one, 200 to OPTIONS, BYE (noted), CANCEL (then 487 to the INVITE)
//! and anything else in a dialog. The test-facing methods only read what it noted.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use astreinte::media::rfc4733::digit_to_event;
use astreinte::media::{g711, Codec};

use super::wait;

/// Update packets of one key press (durations 160, 320, ... samples), then the end packet three
/// times: a press lasts (UPDATES + 3) × 20 ms.
const UPDATES: u32 = 6;
/// The volume field of the event packets (-10 dBm0).
const EVENT_VOLUME: u8 = 10;
/// Our SSRC, the same for audio and events.
const SSRC: [u8; 4] = *b"PHON";

#[derive(Default)]
struct Ears {
    heard: Vec<i16>,
    last_loud: Option<Instant>,
    loud_since_mark: bool,
}

#[derive(Default)]
struct Keys {
    queue: VecDeque<char>,
    queued: u64,
    sent: u64,
}

/// One INVITE received: a call offered to the phone.
#[derive(Clone, Debug)]
struct Offer {
    text: String,
    /// Where it came from: responses go there, and so do our in-dialog requests.
    source: SocketAddr,
    request_uri: String,
    vias: Vec<String>,
    from: String,
    to: String,
    call_id: String,
    cseq: String,
    /// The engine's Contact URI (the target of our BYE).
    contact: Option<String>,
    /// The SDP offer's c= address and m=audio port.
    rtp: Option<SocketAddr>,
    /// The payload type the offer maps to telephone-event/8000 (101 if absent).
    event_pt: u8,
}

#[derive(Debug)]
struct CallState {
    offer: Offer,
    to_tag: String,
    /// The last response sent to the INVITE, sent again when the INVITE is retransmitted.
    last_response: Option<String>,
    final_sent: bool,
    acked: bool,
    bye: bool,
    cancelled: bool,
}

#[derive(Default)]
struct SipState {
    /// Every call offered, in order of arrival.
    calls: Vec<CallState>,
    /// Responses to our own requests (BYE).
    responses: VecDeque<String>,
    /// Our SDP answer, for re-INVITEs.
    answer_sdp: Option<String>,
}

pub struct Phone {
    sip: Arc<UdpSocket>,
    rtp: Arc<UdpSocket>,
    state: Arc<Mutex<SipState>>,
    /// Index in `state.calls` of the call `wait_invite` took.
    current: Option<usize>,
    ears: Arc<Mutex<Ears>>,
    mouth: Arc<Mutex<VecDeque<i16>>>,
    keys: Arc<Mutex<Keys>>,
    remote_rtp: Arc<Mutex<Option<SocketAddr>>>,
    event_pt: Arc<AtomicU8>,
    stop: Arc<AtomicBool>,
    rtp_started: bool,
    bye_count: u32,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// The compact form of a header name (RFC 3261 §7.3.3).
fn compact(name: &str) -> Option<&'static str> {
    Some(match name.to_ascii_lowercase().as_str() {
        "via" => "v",
        "from" => "f",
        "to" => "t",
        "call-id" => "i",
        "contact" => "m",
        "content-length" => "l",
        "content-type" => "c",
        _ => return None,
    })
}

fn head_and_body(msg: &str) -> (&str, &str) {
    msg.split_once("\r\n\r\n")
        .or_else(|| msg.split_once("\n\n"))
        .unwrap_or((msg, ""))
}

/// Every value of header `name` (full or compact form), in order.
fn headers<'a>(msg: &'a str, name: &str) -> Vec<&'a str> {
    let short = compact(name);
    head_and_body(msg)
        .0
        .lines()
        .skip(1)
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            let k = k.trim();
            (k.eq_ignore_ascii_case(name) || short.is_some_and(|s| k.eq_ignore_ascii_case(s)))
                .then(|| v.trim())
        })
        .collect()
}

fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    headers(msg, name).into_iter().next()
}

/// The tag parameter of a From/To value.
fn tag_of(value: &str) -> Option<&str> {
    let lower = value.to_ascii_lowercase();
    let at = lower.find(";tag=")? + 5;
    let rest = &value[at..];
    let end = rest
        .find(|c: char| c == ';' || c == '>' || c == ',' || c.is_whitespace())
        .unwrap_or(rest.len());
    Some(&rest[..end])
}

/// The URI of a name-addr (`"x" <sip:a@b>;p`) or addr-spec (`sip:a@b;p`).
fn uri_of(value: &str) -> &str {
    if let Some((_, rest)) = value.split_once('<') {
        rest.split('>').next().unwrap_or(rest).trim()
    } else {
        value.split(';').next().unwrap_or(value).trim()
    }
}

fn method_of(msg: &str) -> &str {
    msg.split_whitespace().next().unwrap_or("")
}

fn cseq_method(msg: &str) -> &str {
    header(msg, "CSeq")
        .and_then(|c| c.split_whitespace().nth(1))
        .unwrap_or("")
}

fn status_of(msg: &str) -> Option<u16> {
    msg.strip_prefix("SIP/2.0 ")?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn unique(prefix: &str) -> String {
    use std::sync::atomic::AtomicU64;
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}{:x}{:x}{}",
        std::process::id(),
        nanos,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn reason(code: u16) -> &'static str {
    match code {
        100 => "Trying",
        180 => "Ringing",
        200 => "OK",
        404 => "Not Found",
        408 => "Request Timeout",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        500 => "Server Internal Error",
        503 => "Service Unavailable",
        600 => "Busy Everywhere",
        603 => "Decline",
        _ => "Rejected",
    }
}

/// A response to `req`: its Via, From, To (with `to_tag` added if it has none), Call-ID and
/// CSeq, then `extra` header lines and `body`.
fn response(req: &str, code: u16, to_tag: Option<&str>, extra: &str, body: &str) -> String {
    let mut r = format!("SIP/2.0 {code} {}\r\n", reason(code));
    for v in headers(req, "Via") {
        r.push_str(&format!("Via: {v}\r\n"));
    }
    if let Some(f) = header(req, "From") {
        r.push_str(&format!("From: {f}\r\n"));
    }
    if let Some(t) = header(req, "To") {
        match to_tag {
            Some(tag) if tag_of(t).is_none() => r.push_str(&format!("To: {t};tag={tag}\r\n")),
            _ => r.push_str(&format!("To: {t}\r\n")),
        }
    }
    for h in ["Call-ID", "CSeq"] {
        if let Some(v) = header(req, h) {
            r.push_str(&format!("{h}: {v}\r\n"));
        }
    }
    r.push_str(extra);
    r.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    r
}

/// The SDP offer's audio address and telephone-event payload type.
fn parse_offer(body: &str) -> (Option<SocketAddr>, u8) {
    let mut session_ip: Option<IpAddr> = None;
    let mut media_ip: Option<IpAddr> = None;
    let mut port: Option<u16> = None;
    let mut in_audio = false;
    let mut event_pt = None;
    for line in body.lines().map(str::trim) {
        if let Some(m) = line.strip_prefix("m=") {
            in_audio = m.starts_with("audio ");
            if in_audio && port.is_none() {
                port = m.split_whitespace().nth(1).and_then(|p| p.parse().ok());
            }
        } else if let Some(c) = line.strip_prefix("c=") {
            let ip = c.split_whitespace().nth(2).and_then(|a| a.parse().ok());
            if port.is_none() && !in_audio {
                session_ip = ip.or(session_ip);
            } else if in_audio {
                media_ip = ip.or(media_ip);
            }
        } else if let Some(map) = line.strip_prefix("a=rtpmap:") {
            let mut it = map.split_whitespace();
            let pt = it.next().and_then(|p| p.parse::<u8>().ok());
            let enc = it.next().unwrap_or("");
            if enc.to_ascii_lowercase().starts_with("telephone-event/8000") && event_pt.is_none() {
                event_pt = pt.filter(|p| *p < 128);
            }
        }
    }
    let rtp = match (media_ip.or(session_ip), port) {
        (Some(ip), Some(p)) if p != 0 => Some(SocketAddr::new(ip, p)),
        _ => None,
    };
    (rtp, event_pt.unwrap_or(101))
}

/// Binds a UDP socket on 127.0.0.1 outside the engine's RTP range (30000-39999) when it can.
fn bind_local() -> UdpSocket {
    let mut last = None;
    for _ in 0..50 {
        let s = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        let port = s.local_addr().unwrap().port();
        if !(30000..40000).contains(&port) {
            return s;
        }
        last = Some(s);
    }
    last.expect("bind udp")
}

impl Phone {
    /// Binds SIP (UDP) and RTP sockets on 127.0.0.1 free ports; nothing answered yet.
    pub fn listen() -> Phone {
        let sip = Arc::new(bind_local());
        let rtp = Arc::new(bind_local());
        sip.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let mut p = Phone {
            sip,
            rtp,
            state: Arc::new(Mutex::new(SipState::default())),
            current: None,
            ears: Arc::new(Mutex::new(Ears::default())),
            mouth: Arc::new(Mutex::new(VecDeque::new())),
            keys: Arc::new(Mutex::new(Keys::default())),
            remote_rtp: Arc::new(Mutex::new(None)),
            event_pt: Arc::new(AtomicU8::new(101)),
            stop: Arc::new(AtomicBool::new(false)),
            rtp_started: false,
            bye_count: 0,
            threads: Vec::new(),
        };
        let (sock, state, stop) = (p.sip.clone(), p.state.clone(), p.stop.clone());
        let contact = p.contact();
        p.threads.push(std::thread::spawn(move || {
            sip_loop(&sock, &state, &stop, &contact)
        }));
        p
    }

    pub fn sip_port(&self) -> u16 {
        self.sip.local_addr().unwrap().port()
    }

    pub fn rtp_port(&self) -> u16 {
        self.rtp.local_addr().unwrap().port()
    }

    /// "sip:{user}@127.0.0.1:{sip_port}": what the engine's config names as the person's phone.
    pub fn uri(&self, user: &str) -> String {
        format!("sip:{user}@127.0.0.1:{}", self.sip_port())
    }

    fn contact(&self) -> String {
        format!("<sip:phone@127.0.0.1:{}>", self.sip_port())
    }

    /// Waits for an INVITE (a new call; OPTIONS are answered 200 meanwhile); false if none came
    /// within `within`. Each call takes the next call offered, so a phone can be paged again.
    pub fn wait_invite(&mut self, within: Duration) -> bool {
        let next = self.current.map_or(0, |c| c + 1);
        let offered = wait::poll_until(within, || self.state.lock().unwrap().calls.len() > next);
        if offered {
            self.current = Some(next);
        }
        offered
    }

    fn offer(&self) -> Option<Offer> {
        let i = self.current?;
        Some(self.state.lock().unwrap().calls[i].offer.clone())
    }

    fn with_call<T>(&self, f: impl FnOnce(&mut CallState) -> T) -> T {
        let i = self
            .current
            .expect("no INVITE taken (call wait_invite first)");
        f(&mut self.state.lock().unwrap().calls[i])
    }

    /// The INVITE's Request-URI, e.g. "sip:+15145550100@127.0.0.1:5070".
    pub fn invite_request_uri(&self) -> Option<String> {
        self.offer().map(|o| o.request_uri)
    }

    /// The user part of the INVITE's Request-URI, e.g. "+15145550100".
    pub fn invite_user(&self) -> Option<String> {
        let uri = self.invite_request_uri()?;
        let rest = uri.split_once(':').map_or(uri.as_str(), |(_, r)| r);
        Some(rest.split_once('@')?.0.to_string())
    }

    /// The INVITE's full text.
    pub fn invite_text(&self) -> Option<String> {
        self.offer().map(|o| o.text)
    }

    /// The payload type the offer maps to telephone-event/8000 (101 if absent).
    pub fn offered_event_pt(&self) -> Option<u8> {
        self.offer().map(|o| o.event_pt)
    }

    /// The engine sent CANCEL (it was answered 200, and the INVITE 487).
    pub fn wait_cancel(&mut self, within: Duration) -> bool {
        wait::poll_until(within, || self.with_call(|c| c.cancelled))
    }

    /// 180 Ringing (without answering: a phone nobody picks up).
    pub fn ring(&mut self) {
        let contact = self.contact();
        let (msg, dest) = self.with_call(|c| {
            let msg = response(
                &c.offer.text,
                180,
                Some(&c.to_tag),
                &format!("Contact: {contact}\r\n"),
                "",
            );
            if !c.final_sent {
                c.last_response = Some(msg.clone());
            }
            (msg, c.offer.source)
        });
        let _ = self.sip.send_to(msg.as_bytes(), dest);
    }

    /// Sends a final response to the INVITE every 500 ms until the ACK (up to 5 s).
    fn send_final_until_ack(&mut self, msg: String, what: &str) {
        let dest = self.with_call(|c| {
            c.last_response = Some(msg.clone());
            c.final_sent = true;
            c.offer.source
        });
        // Ten sends, 500 ms apart: 5 s in all.
        for _ in 0..10 {
            let _ = self.sip.send_to(msg.as_bytes(), dest);
            if wait::poll_until(Duration::from_millis(500), || self.with_call(|c| c.acked)) {
                return;
            }
        }
        panic!("no ACK to the {what} within 5 s");
    }

    /// 180 Ringing, then 200 OK with an SDP answer (PCMU 0 and the offer's telephone-event
    /// type), sent again every 500 ms until the ACK arrives (asserted within 5 s). Starts the
    /// RTP threads: a mouth (a packet every 20 ms: what `say` was given, else silence; keys
    /// pressed as RFC 4733 events) and ears (PCMU decoded, with the time of the last loud packet).
    pub fn answer(&mut self) {
        let offer = self
            .offer()
            .expect("no INVITE taken (call wait_invite first)");
        assert!(
            !self.with_call(|c| c.cancelled),
            "the call was cancelled before the answer"
        );
        self.ring();
        let pt = offer.event_pt;
        let rtp_port = self.rtp_port();
        let id = rtp_port as u32 + self.current.unwrap_or(0) as u32;
        let sdp = format!(
            "v=0\r\no=phone {id} {id} IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {rtp_port} RTP/AVP 0 {pt}\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:{pt} telephone-event/8000\r\na=fmtp:{pt} 0-15\r\na=ptime:20\r\na=sendrecv\r\n"
        );
        self.state.lock().unwrap().answer_sdp = Some(sdp.clone());
        *self.remote_rtp.lock().unwrap() = offer.rtp;
        self.event_pt.store(pt, Ordering::Relaxed);
        {
            let mut e = self.ears.lock().unwrap();
            e.loud_since_mark = false;
            e.last_loud = None;
        }
        self.start_rtp();
        let contact = self.contact();
        let to_tag = self.with_call(|c| c.to_tag.clone());
        let ok = response(
            &offer.text,
            200,
            Some(&to_tag),
            &format!("Contact: {contact}\r\nAllow: INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, UPDATE\r\nContent-Type: application/sdp\r\n"),
            &sdp,
        );
        self.send_final_until_ack(ok, "200 OK");
    }

    /// Refuses the call with `code` (e.g. 486 Busy Here, 603 Decline) and waits for the ACK
    /// (asserted within 5 s).
    pub fn reject(&mut self, code: u16) {
        assert!((300..700).contains(&code), "{code} is not a refusal");
        let (text, to_tag) = self.with_call(|c| (c.offer.text.clone(), c.to_tag.clone()));
        let msg = response(&text, code, Some(&to_tag), "", "");
        self.send_final_until_ack(msg, &format!("{code} response"));
    }

    fn start_rtp(&mut self) {
        if self.rtp_started {
            return;
        }
        self.rtp_started = true;
        // Mouth: a packet every 20 ms: a key's events, else speech when given, else silence.
        let (r, mouth, keys, remote, pt, stop) = (
            self.rtp.clone(),
            self.mouth.clone(),
            self.keys.clone(),
            self.remote_rtp.clone(),
            self.event_pt.clone(),
            self.stop.clone(),
        );
        self.threads.push(std::thread::spawn(move || {
            let start = Instant::now();
            let mut seq: u16 = 0;
            // The event being sent: (code, its RTP timestamp, packets sent so far).
            let mut event: Option<(u8, u32, u32)> = None;
            for i in 0u64.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let ts = (i as u32).wrapping_mul(160);
                if event.is_none() {
                    let mut k = keys.lock().unwrap();
                    while let Some(key) = k.queue.pop_front() {
                        match digit_to_event(key) {
                            Some(code) => {
                                event = Some((code, ts, 0));
                                break;
                            }
                            None => k.sent += 1,
                        }
                    }
                }
                let mut p = vec![0x80u8, 0];
                p.extend_from_slice(&seq.to_be_bytes());
                match event {
                    Some((code, ets, n)) => {
                        let end = n >= UPDATES;
                        let duration = 160 * (n.min(UPDATES) + 1);
                        let marker = if n == 0 { 0x80 } else { 0 };
                        p[1] = marker | (pt.load(Ordering::Relaxed) & 0x7f);
                        p.extend_from_slice(&ets.to_be_bytes());
                        p.extend_from_slice(&SSRC);
                        p.push(code);
                        p.push(if end { 0x80 } else { 0 } | EVENT_VOLUME);
                        p.extend_from_slice(&(duration as u16).to_be_bytes());
                        if n + 1 >= UPDATES + 3 {
                            event = None;
                            keys.lock().unwrap().sent += 1;
                        } else {
                            event = Some((code, ets, n + 1));
                        }
                    }
                    None => {
                        let mut frame = [0i16; 160];
                        {
                            let mut m = mouth.lock().unwrap();
                            for s in frame.iter_mut() {
                                *s = m.pop_front().unwrap_or(0);
                            }
                        }
                        p.extend_from_slice(&ts.to_be_bytes());
                        p.extend_from_slice(&SSRC);
                        let mut enc = [0u8; 160];
                        g711::encode(Codec::Pcmu, &frame, &mut enc);
                        p.extend_from_slice(&enc);
                    }
                }
                let dest = *remote.lock().unwrap();
                if let Some(d) = dest {
                    let _ = r.send_to(&p, d);
                }
                seq = seq.wrapping_add(1);
                let next = start + Duration::from_millis(20 * (i + 1));
                // Real-time pacing is the behaviour (RTP every 20 ms), not a wait for an event.
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
            }
        }));
        // Ears: decode the PCMU that arrives (other payload types are ignored).
        let (r, ears, remote, stop) = (
            self.rtp.clone(),
            self.ears.clone(),
            self.remote_rtp.clone(),
            self.stop.clone(),
        );
        self.threads.push(std::thread::spawn(move || {
            let _ = r.set_read_timeout(Some(Duration::from_millis(100)));
            let mut buf = [0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                let Ok((n, from)) = r.recv_from(&mut buf) else {
                    continue;
                };
                if n < 12 || buf[0] >> 6 != 2 || buf[1] & 0x7f != 0 {
                    continue;
                }
                let mut at = 12 + 4 * (buf[0] & 0x0f) as usize;
                if buf[0] & 0x10 != 0 {
                    if n < at + 4 {
                        continue;
                    }
                    at += 4 + 4 * u16::from_be_bytes([buf[at + 2], buf[at + 3]]) as usize;
                }
                let mut end = n;
                if buf[0] & 0x20 != 0 {
                    end = end.saturating_sub(buf[n - 1] as usize);
                }
                if at >= end {
                    continue;
                }
                {
                    let mut rem = remote.lock().unwrap();
                    if rem.is_none() {
                        *rem = Some(from);
                    }
                }
                let payload = &buf[at..end];
                let mut pcm = vec![0i16; payload.len()];
                g711::decode(Codec::Pcmu, payload, &mut pcm);
                let loud = pcm.iter().any(|s| s.unsigned_abs() > 1500);
                let mut e = ears.lock().unwrap();
                e.heard.extend_from_slice(&pcm);
                if loud {
                    e.last_loud = Some(Instant::now());
                    e.loud_since_mark = true;
                }
            }
        }));
    }

    /// Presses a key (0-9, *, #, A-D) the RFC 4733 way on the RTP stream and returns once its
    /// packets are sent: the offer's payload type, marker bit on the first, one timestamp for
    /// the whole event, durations 160, 320, ... (a packet every 20 ms, in place of audio), then
    /// the end packet three times; sequence numbers and SSRC those of the audio stream.
    pub fn press(&mut self, key: char) {
        assert!(self.rtp_started, "press before answer");
        assert!(digit_to_event(key).is_some(), "{key:?} is not a key");
        self.ears.lock().unwrap().loud_since_mark = false;
        let target = {
            let mut k = self.keys.lock().unwrap();
            k.queue.push_back(key);
            k.queued += 1;
            k.queued
        };
        wait::wait_until(
            &format!("key {key} to be sent"),
            Duration::from_secs(3),
            || self.keys.lock().unwrap().sent >= target,
        );
    }

    pub fn press_all(&mut self, keys: &str) {
        for k in keys.chars() {
            self.press(k);
        }
    }

    /// Says `samples` (8 kHz) now, in real time.
    pub fn say(&self, samples: &[i16]) {
        self.mouth.lock().unwrap().extend(samples.iter().copied());
    }

    /// Waits until what was given to `say` has been sent.
    pub fn wait_said(&self, within: Duration) {
        wait::wait_until("what was said to be sent", within, || {
            self.mouth.lock().unwrap().is_empty()
        });
    }

    /// Samples heard so far.
    pub fn heard(&self) -> Vec<i16> {
        self.ears.lock().unwrap().heard.clone()
    }

    /// Waits until the engine has played something since the answer or the last key and then
    /// been quiet for `quiet` (a prompt ended and a menu waits for a key).
    pub fn wait_prompt_end(&mut self, quiet: Duration, within: Duration) {
        wait::wait_until("a prompt to end", within, || {
            let e = self.ears.lock().unwrap();
            e.loud_since_mark && e.last_loud.is_some_and(|t| t.elapsed() >= quiet)
        });
        self.ears.lock().unwrap().loud_since_mark = false;
    }

    /// Waits until the engine starts playing something after the answer or the last key (to
    /// press a key during the prompt: barge-in).
    pub fn wait_prompt_start(&mut self, within: Duration) {
        wait::wait_until("a prompt to begin", within, || {
            self.ears.lock().unwrap().loud_since_mark
        });
        // Well into the prompt: 300 ms more of it heard.
        let begun = self.ears.lock().unwrap().heard.len();
        wait::wait_until("300 ms of the prompt", Duration::from_secs(5), || {
            self.ears.lock().unwrap().heard.len() >= begun + 2400
        });
    }

    /// Waits for the engine's BYE (answered 200 as it came); false if none came.
    pub fn wait_bye(&mut self, within: Duration) -> bool {
        wait::poll_until(within, || self.with_call(|c| c.bye))
    }

    /// Sends BYE in the dialog (the engine's From/To with our tag, its Contact as the
    /// Request-URI, CSeq 1 of our side), again every 500 ms, and waits for a final response
    /// (up to 4 s); true if it was 2xx.
    pub fn hang_up(&mut self) -> bool {
        let (offer, to_tag) = self.with_call(|c| (c.offer.clone(), c.to_tag.clone()));
        self.bye_count += 1;
        let me = self.sip.local_addr().unwrap();
        let target = offer
            .contact
            .clone()
            .unwrap_or_else(|| uri_of(&offer.from).to_string());
        let from = if tag_of(&offer.to).is_some() {
            offer.to.clone()
        } else {
            format!("{};tag={to_tag}", offer.to)
        };
        let branch = unique("z9hG4bKphonebye");
        let bye = format!(
            "BYE {target} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch={branch};rport\r\nMax-Forwards: 70\r\nFrom: {from}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 1 BYE\r\nContact: {}\r\nContent-Length: 0\r\n\r\n",
            offer.from,
            offer.call_id,
            self.contact()
        );
        // Eight sends, 500 ms apart: 4 s in all.
        for _ in 0..8 {
            let _ = self.sip.send_to(bye.as_bytes(), offer.source);
            let answer = wait::poll_for(Duration::from_millis(500), || {
                let mut st = self.state.lock().unwrap();
                let i = st.responses.iter().position(|r| {
                    header(r, "Call-ID") == Some(offer.call_id.as_str())
                        && cseq_method(r).eq_ignore_ascii_case("BYE")
                        && status_of(r).is_some_and(|s| s >= 200)
                })?;
                st.responses.remove(i)
            });
            if let Some(r) = answer {
                return status_of(&r).is_some_and(|s| (200..300).contains(&s));
            }
        }
        false
    }
}

/// The SIP side: answers what needs no decision, notes the rest for the test-facing methods.
fn sip_loop(sock: &UdpSocket, state: &Mutex<SipState>, stop: &AtomicBool, contact: &str) {
    let mut buf = vec![0u8; 65536];
    while !stop.load(Ordering::Relaxed) {
        let Ok((n, from)) = sock.recv_from(&mut buf) else {
            continue;
        };
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        if text.trim().is_empty() {
            continue; // keep-alive
        }
        let mut st = state.lock().unwrap();
        if text.starts_with("SIP/2.0 ") {
            if st.responses.len() > 100 {
                st.responses.pop_front();
            }
            st.responses.push_back(text);
            continue;
        }
        let (Some(call_id), Some(_)) = (header(&text, "Call-ID"), header(&text, "CSeq")) else {
            continue; // not a request we can answer
        };
        let call_id = call_id.to_string();
        let method = method_of(&text).to_ascii_uppercase();
        let call = st.calls.iter().position(|c| c.offer.call_id == call_id);
        let send = |msg: String| {
            let _ = sock.send_to(msg.as_bytes(), from);
        };
        match (method.as_str(), call) {
            ("INVITE", None) => {
                let (request_uri, body) = (
                    text.split_whitespace().nth(1).unwrap_or("").to_string(),
                    head_and_body(&text).1,
                );
                let (rtp, event_pt) = parse_offer(body);
                let offer = Offer {
                    source: from,
                    request_uri,
                    vias: headers(&text, "Via")
                        .into_iter()
                        .map(str::to_string)
                        .collect(),
                    from: header(&text, "From").unwrap_or("").to_string(),
                    to: header(&text, "To").unwrap_or("").to_string(),
                    call_id,
                    cseq: header(&text, "CSeq").unwrap_or("").to_string(),
                    contact: header(&text, "Contact").map(|c| uri_of(c).to_string()),
                    rtp,
                    event_pt,
                    text: text.clone(),
                };
                let trying = response(&text, 100, None, "", "");
                send(trying.clone());
                st.calls.push(CallState {
                    offer,
                    to_tag: unique("ph"),
                    last_response: Some(trying),
                    final_sent: false,
                    acked: false,
                    bye: false,
                    cancelled: false,
                });
            }
            ("INVITE", Some(i)) => {
                let c = &st.calls[i];
                let in_dialog = header(&text, "To")
                    .and_then(tag_of)
                    .is_some_and(|t| t == c.to_tag);
                if in_dialog && header(&text, "CSeq") != Some(c.offer.cseq.as_str()) {
                    // A re-INVITE: the same answer again.
                    let sdp = st.answer_sdp.clone().unwrap_or_default();
                    let extra = format!("Contact: {contact}\r\nContent-Type: application/sdp\r\n");
                    send(response(&text, 200, None, &extra, &sdp));
                } else if let Some(last) = c.last_response.clone() {
                    send(last); // a retransmission
                }
            }
            ("ACK", Some(i)) => st.calls[i].acked = true,
            ("ACK", None) => {}
            ("BYE", Some(i)) => {
                send(response(&text, 200, None, "", ""));
                st.calls[i].bye = true;
            }
            ("CANCEL", Some(i)) => {
                send(response(&text, 200, None, "", ""));
                let c = &mut st.calls[i];
                if !c.final_sent {
                    let terminated = response(&c.offer.text, 487, Some(&c.to_tag), "", "");
                    let _ = sock.send_to(terminated.as_bytes(), c.offer.source);
                    c.last_response = Some(terminated);
                    c.final_sent = true;
                    c.cancelled = true;
                }
            }
            ("OPTIONS", _) => send(response(
                &text,
                200,
                Some(&unique("opt")),
                "Allow: INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, UPDATE\r\nAccept: application/sdp\r\n",
                "",
            )),
            (_, Some(_)) => send(response(&text, 200, None, "", "")),
            (_, None) => send(response(&text, 481, Some(&unique("x")), "", "")),
        }
    }
}

impl Drop for Phone {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// `ms` milliseconds of a sine at `freq_hz` (8 kHz samples) with peak `amplitude`.
pub fn tone(freq_hz: f64, ms: u32, amplitude: i16) -> Vec<i16> {
    let n = ms as usize * 8;
    (0..n)
        .map(|i| {
            let t = i as f64 / 8000.0;
            (amplitude as f64 * (2.0 * std::f64::consts::PI * freq_hz * t).sin()).round() as i16
        })
        .collect()
}

/// The power of `samples` (8 kHz) at `freq_hz` (Goertzel), normalised to the mean power of
/// that component: a sine of peak A at that frequency gives about A²/2 whatever the length,
/// other frequencies about nothing. Compare two frequencies to say which one is heard.
pub fn tone_power(samples: &[i16], freq_hz: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let coeff = 2.0 * (2.0 * std::f64::consts::PI * freq_hz / 8000.0).cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s = x as f64 + coeff * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    let n = samples.len() as f64;
    2.0 * power / (n * n)
}
