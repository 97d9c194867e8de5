//! IVR responsiveness under load: N callers (default 1,000) walk the menus of the release
//! engine at once, each pressing a key (RFC 4733) while a prompt plays; measured is the time
//! from the key's end packet leaving the caller to the first RTP packet of the next prompt
//! arriving (the engine marks the first packet of a playlist with the RTP marker bit).
//!
//! Each caller presses 1 at the language choice, then 9 (repeat the menu) again and again,
//! 0.4–1.2 s into each prompt. The callers run on one thread that harvests its sockets every
//! millisecond, so figures are ±1 ms.
//!
//! Run: `cargo bench --bench ivr_keys`. `ASTREINTE_BENCH_CALLS` (default 1000) and
//! `ASTREINTE_BENCH_SECONDS` (default 30, once every call is up) change the load.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

mod common;
use common::{free_port, Engine};

fn start_engine(dir: &Path, port: u16) -> Engine {
    // After hours, no maintenance window: language choice, then the main menu.
    let engine = Engine::spawn(
        dir,
        "ivr.toml",
        &format!(
            "[sip]\nlisten = \"127.0.0.1:{port}\"\nrate_limit_per_source = 1000000\n\n[media]\nrtp_ports = \"30000-39999\"\ninactivity_timeout_secs = 600\nrecordings_dir = \"{d}/rec\"\n\n[store]\nurl = \"sqlite://{d}/ivr.db\"\n\n[schedule.open]\n\n[schedule.maintenance]\n",
            d = dir.display()
        ),
        "warn",
    );
    std::thread::sleep(Duration::from_millis(1500));
    engine
}

/// A tiny deterministic generator (no dependency): xorshift.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn between_ms(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.next() % (hi - lo))
    }
}

struct Call {
    rtp: UdpSocket,
    remote: Option<SocketAddr>,
    up: bool,
    presses: u32,
    /// When the next key goes, once a prompt started.
    press_at: Option<Instant>,
    /// When the last key's end packet left; the next marked packet ends the measure.
    waiting_since: Option<Instant>,
    seq: u16,
    ts: u32,
}

fn event_packets(call: &mut Call, digit: u8) -> Vec<Vec<u8>> {
    // RFC 4733: a start packet (marker), then the end packet three times, one timestamp.
    let ts = call.ts;
    call.ts = call.ts.wrapping_add(1600);
    let mut out = Vec::new();
    for (i, (end, dur)) in [(false, 160u16), (true, 800), (true, 800), (true, 800)]
        .into_iter()
        .enumerate()
    {
        let mut p = vec![0x80u8, 101 | if i == 0 { 0x80 } else { 0 }];
        p.extend_from_slice(&call.seq.to_be_bytes());
        call.seq = call.seq.wrapping_add(1);
        p.extend_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&[7, 7, 7, 7]);
        p.push(digit);
        p.push(if end { 0x80 | 10 } else { 10 });
        p.extend_from_slice(&dur.to_be_bytes());
        out.push(p);
    }
    out
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let calls_wanted: usize = std::env::var("ASTREINTE_BENCH_CALLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let seconds: u64 = std::env::var("ASTREINTE_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let _ = astreinte::media::raise_open_files_limit();
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let _engine = start_engine(dir.path(), port);
    let engine = SocketAddr::from(([127, 0, 0, 1], port));
    let sip = UdpSocket::bind("127.0.0.1:0").expect("bind sip");
    sip.set_nonblocking(true).expect("nonblocking");
    let me = sip.local_addr().expect("addr");
    let mut calls: Vec<Call> = Vec::new();
    let mut by_call_id: HashMap<String, usize> = HashMap::new();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut latencies_ms: Vec<f64> = Vec::new();
    let mut missed = 0u64;
    let mut buf = vec![0u8; 65536];
    let started = Instant::now();
    let mut all_up_at: Option<Instant> = None;
    println!(
        "machine: {} cores shared by the engine and the {calls_wanted} callers",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    loop {
        let now = Instant::now();
        // Place calls at 200 a second.
        let due = ((now - started).as_millis() as usize / 5).min(calls_wanted);
        while calls.len() < due {
            let i = calls.len();
            let rtp = UdpSocket::bind("127.0.0.1:0").expect("bind rtp");
            rtp.set_nonblocking(true).expect("nonblocking");
            let rtp_port = rtp.local_addr().expect("addr").port();
            let call_id = format!("ivrload-{i}");
            let sdp = format!("v=0\r\no=l 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {rtp_port} RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n");
            let invite = format!("INVITE sip:5149073400@{engine} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKl{i}\r\nMax-Forwards: 70\r\nFrom: <sip:5145550100@127.0.0.1>;tag=l{i}\r\nTo: <sip:5149073400@{engine}>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:l@{me}>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}", sdp.len());
            let _ = sip.send_to(invite.as_bytes(), engine);
            by_call_id.insert(call_id, i);
            calls.push(Call {
                rtp,
                remote: None,
                up: false,
                presses: 0,
                press_at: None,
                waiting_since: None,
                seq: 1,
                ts: 0,
            });
        }
        // SIP: 200 OK → ACK.
        while let Ok((n, _)) = sip.recv_from(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]);
            if !text.starts_with("SIP/2.0 200") || !text.contains("CSeq: 1 INVITE") {
                continue;
            }
            let field = |name: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(name))
                    .map(|v| v.trim().to_string())
            };
            let (Some(call_id), Some(to)) = (field("Call-ID:"), field("To:")) else {
                continue;
            };
            let Some(&i) = by_call_id.get(&call_id) else {
                continue;
            };
            let port: Option<u16> = text
                .lines()
                .find_map(|l| l.strip_prefix("m=audio "))
                .and_then(|r| r.split_whitespace().next())
                .and_then(|p| p.parse().ok());
            let c = &mut calls[i];
            if c.up {
                continue;
            }
            c.up = true;
            c.remote = port.map(|p| SocketAddr::from(([127, 0, 0, 1], p)));
            let ack = format!("ACK sip:x@{engine} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKa{i}\r\nMax-Forwards: 70\r\nFrom: <sip:5145550100@127.0.0.1>;tag=l{i}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n");
            let _ = sip.send_to(ack.as_bytes(), engine);
        }
        // RTP: a marked packet is a playlist's first.
        for c in calls.iter_mut() {
            while let Ok(n) = c.rtp.recv(&mut buf) {
                if n < 12 || buf[1] & 0x80 == 0 {
                    continue;
                }
                let at = Instant::now();
                if let Some(since) = c.waiting_since.take() {
                    latencies_ms.push((at - since).as_secs_f64() * 1000.0);
                }
                c.press_at = Some(at + rng.between_ms(400, 1200));
            }
            if let Some(since) = c.waiting_since {
                if now - since > Duration::from_secs(2) {
                    missed += 1;
                    c.waiting_since = None;
                    c.press_at = Some(now);
                }
            }
            if c.press_at.is_some_and(|t| t <= now) {
                let (Some(remote), true) = (c.remote, c.up) else {
                    continue;
                };
                c.press_at = None;
                let digit = if c.presses == 0 { 1 } else { 9 };
                c.presses += 1;
                let packets = event_packets(c, digit);
                let (first, ends) = packets.split_at(2);
                let _ = c.rtp.send_to(&first[0], remote);
                let _ = c.rtp.send_to(&first[1], remote);
                // The measure starts at the first end packet.
                c.waiting_since = Some(Instant::now());
                for p in ends {
                    let _ = c.rtp.send_to(p, remote);
                }
            }
        }
        if all_up_at.is_none() && calls.len() == calls_wanted && calls.iter().all(|c| c.up) {
            all_up_at = Some(now);
            latencies_ms.clear();
            missed = 0;
            println!(
                "{calls_wanted} calls up after {:.1} s; measuring for {seconds} s",
                (now - started).as_secs_f64()
            );
        }
        if all_up_at.is_some_and(|t| now - t > Duration::from_secs(seconds)) {
            break;
        }
        if all_up_at.is_none() && now - started > Duration::from_secs(120) {
            let up = calls.iter().filter(|c| c.up).count();
            println!("only {up} of {calls_wanted} calls answered within 120 s");
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    latencies_ms.sort_by(f64::total_cmp);
    println!(
        "key (RFC 4733 end) to the next prompt's first packet: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms over {} keys ({} with no new prompt within 2 s)",
        percentile(&latencies_ms, 0.5),
        percentile(&latencies_ms, 0.99),
        latencies_ms.last().copied().unwrap_or(f64::NAN),
        latencies_ms.len(),
        missed
    );
}
