//! A small test caller: SIP over UDP and G.711 µ-law RTP from real sockets, keys as SIP INFO.
//! It hears what the engine plays (decoded, with the time of the last loud packet, so a test can
//! wait for a prompt to end) and says what it is given (samples at 8 kHz), else silence.

use std::collections::VecDeque;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use astreinte::media::{g711, Codec};

use super::wait;

#[derive(Default)]
struct Ears {
    heard: Vec<i16>,
    last_loud: Option<Instant>,
    loud_since_mark: bool,
}

pub struct Caller {
    sip: UdpSocket,
    engine: SocketAddr,
    call_id: String,
    to_tag: String,
    cseq: u32,
    ears: Arc<Mutex<Ears>>,
    mouth: Arc<Mutex<VecDeque<i16>>>,
    stop: Arc<AtomicBool>,
    /// The engine sent BYE (and it was answered).
    pub hung_up_by_engine: bool,
    threads: Vec<std::thread::JoinHandle<()>>,
}

fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

impl Caller {
    /// Calls `number` at the engine as `from_user`; returns once the call is answered and
    /// acknowledged.
    pub fn call(engine: SocketAddr, number: &str, from_user: &str) -> Caller {
        let sip = UdpSocket::bind("127.0.0.1:0").expect("bind sip");
        sip.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let rtp = UdpSocket::bind("127.0.0.1:0").expect("bind rtp");
        let me = sip.local_addr().unwrap();
        let rtp_port = rtp.local_addr().unwrap().port();
        let call_id = format!("caller-{}-{}", std::process::id(), rtp_port);
        let sdp = format!("v=0\r\no=caller 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {rtp_port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n");
        let invite = format!(
            "INVITE sip:{number}@{engine} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKinv{rtp_port}\r\nMax-Forwards: 70\r\nFrom: <sip:{from_user}@127.0.0.1>;tag=caller\r\nTo: <sip:{number}@{engine}>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:{from_user}@{me}>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        );
        sip.send_to(invite.as_bytes(), engine).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut buf = vec![0u8; 65536];
        let ok = loop {
            assert!(Instant::now() < deadline, "no 200 OK to the INVITE");
            if let Ok((n, _)) = sip.recv_from(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                if text.starts_with("SIP/2.0 200") {
                    break text;
                }
                assert!(
                    !text.starts_with("SIP/2.0 4") && !text.starts_with("SIP/2.0 5"),
                    "call refused: {text}"
                );
            }
        };
        let to = header(&ok, "To").unwrap_or_default();
        let to_tag = to
            .split(";tag=")
            .nth(1)
            .map(|t| t.split(';').next().unwrap_or(t).to_string())
            .expect("To tag");
        let port: u16 = ok
            .lines()
            .find_map(|l| l.strip_prefix("m=audio "))
            .and_then(|r| r.split_whitespace().next())
            .and_then(|p| p.parse().ok())
            .expect("SDP answer");
        let remote_rtp = SocketAddr::from(([127, 0, 0, 1], port));
        let mut c = Caller {
            sip,
            engine,
            call_id,
            to_tag,
            cseq: 1,
            ears: Arc::new(Mutex::new(Ears::default())),
            mouth: Arc::new(Mutex::new(VecDeque::new())),
            stop: Arc::new(AtomicBool::new(false)),
            hung_up_by_engine: false,
            threads: Vec::new(),
        };
        c.send_in_dialog("ACK", 1, "", "");
        let rtp = Arc::new(rtp);
        // Mouth: a packet every 20 ms, speech when given, silence otherwise.
        let (r, mouth, stop) = (rtp.clone(), c.mouth.clone(), c.stop.clone());
        c.threads.push(std::thread::spawn(move || {
            let start = Instant::now();
            let mut seq: u16 = 0;
            for i in 0u64.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let mut frame = [0i16; 160];
                {
                    let mut m = mouth.lock().unwrap();
                    for s in frame.iter_mut() {
                        *s = m.pop_front().unwrap_or(0);
                    }
                }
                let mut p = vec![0x80u8, 0];
                p.extend_from_slice(&seq.to_be_bytes());
                p.extend_from_slice(&((i as u32).wrapping_mul(160)).to_be_bytes());
                p.extend_from_slice(&[9, 9, 9, 9]);
                let mut enc = [0u8; 160];
                g711::encode(Codec::Pcmu, &frame, &mut enc);
                p.extend_from_slice(&enc);
                let _ = r.send_to(&p, remote_rtp);
                seq = seq.wrapping_add(1);
                let next = start + Duration::from_millis(20 * (i + 1));
                // Real-time pacing is the behaviour (RTP every 20 ms), not a wait for an event.
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
            }
        }));
        // Ears: decode what arrives.
        let (r, ears, stop) = (rtp, c.ears.clone(), c.stop.clone());
        c.threads.push(std::thread::spawn(move || {
            r.set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            let mut buf = [0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                let Ok(n) = r.recv(&mut buf) else { continue };
                if n < 12 || buf[1] & 0x7f != 0 {
                    continue;
                }
                let payload = &buf[12..n];
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
        c
    }

    fn send_in_dialog(&mut self, method: &str, cseq: u32, extra: &str, body: &str) {
        let me = self.sip.local_addr().unwrap();
        let engine = self.engine;
        let msg = format!(
            "{method} sip:astreinte@{engine} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK{method}{cseq}x{}\r\nMax-Forwards: 70\r\nFrom: <sip:caller@127.0.0.1>;tag=caller\r\nTo: <sip:x@{engine}>;tag={}\r\nCall-ID: {}\r\nCSeq: {cseq} {method}\r\n{extra}Content-Length: {}\r\n\r\n{body}",
            self.call_id.len(),
            self.to_tag,
            self.call_id,
            body.len()
        );
        let _ = self.sip.send_to(msg.as_bytes(), engine);
    }

    /// Reads SIP until `want` (a status line prefix) arrives; answers a BYE from the engine.
    fn read_sip_until(&mut self, want: Option<&str>, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        let mut buf = vec![0u8; 65536];
        while Instant::now() < deadline {
            let Ok((n, from)) = self.sip.recv_from(&mut buf) else {
                continue;
            };
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if text.starts_with("BYE ") {
                let mut ok = String::from("SIP/2.0 200 OK\r\n");
                for h in ["Via", "From", "To", "Call-ID", "CSeq"] {
                    if let Some(v) = header(&text, h) {
                        ok.push_str(&format!("{h}: {v}\r\n"));
                    }
                }
                ok.push_str("Content-Length: 0\r\n\r\n");
                let _ = self.sip.send_to(ok.as_bytes(), from);
                self.hung_up_by_engine = true;
                if want.is_none() {
                    return true;
                }
            }
            if let Some(w) = want {
                if text.starts_with(w) {
                    return true;
                }
            }
        }
        false
    }

    /// Presses a key (SIP INFO, application/dtmf-relay).
    pub fn press(&mut self, key: char) {
        self.cseq += 1;
        let body = format!("Signal={key}\r\nDuration=160\r\n");
        self.ears.lock().unwrap().loud_since_mark = false;
        self.send_in_dialog(
            "INFO",
            self.cseq,
            "Content-Type: application/dtmf-relay\r\n",
            &body,
        );
        assert!(
            self.read_sip_until(Some("SIP/2.0 200"), Duration::from_secs(5)),
            "INFO {key} not answered"
        );
    }

    pub fn press_all(&mut self, keys: &str) {
        for k in keys.chars() {
            self.press(k);
        }
    }

    /// Waits until the engine has played something since the last key and then been quiet for
    /// `quiet` (a prompt ended and a menu waits for a key).
    pub fn wait_prompt_end(&mut self, quiet: Duration, within: Duration) {
        wait::wait_until("a prompt to end", within, || {
            let e = self.ears.lock().unwrap();
            e.loud_since_mark && e.last_loud.is_some_and(|t| t.elapsed() >= quiet)
        });
        self.ears.lock().unwrap().loud_since_mark = false;
    }

    /// Waits until the engine starts playing something after the last key (to press a key
    /// during the prompt: barge-in).
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

    /// Waits for the engine's BYE (answered); false if it did not come.
    pub fn wait_engine_bye(&mut self, within: Duration) -> bool {
        self.hung_up_by_engine || self.read_sip_until(None, within)
    }

    /// Hangs up (BYE) and waits for its answer.
    pub fn hang_up(&mut self) {
        self.cseq += 1;
        self.send_in_dialog("BYE", self.cseq, "", "");
        let _ = self.read_sip_until(Some("SIP/2.0 200"), Duration::from_secs(3));
    }
}

impl Drop for Caller {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
