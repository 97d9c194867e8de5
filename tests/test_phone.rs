//! The test phone (tests/common/phone.rs) against a raw UDP socket playing the engine: no
//! engine involved, so a failure here is the phone's.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use astreinte::media::{g711, Codec};
use common::phone::{tone, tone_power, Phone};

/// A raw SIP/RTP peer playing the engine's side of the call (the UAC).
struct FakeEngine {
    sip: UdpSocket,
    rtp: UdpSocket,
    phone: SocketAddr,
    call_id: String,
}

fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

impl FakeEngine {
    fn new(phone: &Phone, call_id: &str) -> FakeEngine {
        let sip = UdpSocket::bind("127.0.0.1:0").unwrap();
        sip.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let rtp = UdpSocket::bind("127.0.0.1:0").unwrap();
        rtp.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        FakeEngine {
            sip,
            rtp,
            phone: SocketAddr::from(([127, 0, 0, 1], phone.sip_port())),
            call_id: call_id.to_string(),
        }
    }

    fn me(&self) -> SocketAddr {
        self.sip.local_addr().unwrap()
    }

    fn send(&self, msg: &str) {
        self.sip.send_to(msg.as_bytes(), self.phone).unwrap();
    }

    fn invite(&self, user: &str) -> String {
        let me = self.me();
        let rtp_port = self.rtp.local_addr().unwrap().port();
        let sdp = format!("v=0\r\no=astreinte 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {rtp_port} RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n");
        let msg = format!(
            "INVITE sip:{user}@{} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKfakeinv;rport\r\nMax-Forwards: 70\r\nFrom: <sip:astreinte@{me}>;tag=eng\r\nTo: <sip:{user}@{}>\r\nCall-ID: {}\r\nCSeq: 1 INVITE\r\nContact: <sip:astreinte@{me}>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            self.phone,
            self.phone,
            self.call_id,
            sdp.len()
        );
        self.send(&msg);
        msg
    }

    /// Reads SIP until a message starting with `prefix`; everything read on the way.
    fn read_until(&self, prefix: &str, within: Duration) -> Vec<String> {
        let deadline = Instant::now() + within;
        let mut seen = Vec::new();
        let mut buf = vec![0u8; 65536];
        while Instant::now() < deadline {
            if let Ok(n) = self.sip.recv(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                let done = text.starts_with(prefix);
                seen.push(text);
                if done {
                    return seen;
                }
            }
        }
        panic!("no {prefix:?} within {within:?}; read: {seen:#?}");
    }

    fn ack(&self, final_response: &str, branch: &str) {
        let me = self.me();
        let to = header(final_response, "To").unwrap();
        self.send(&format!(
            "ACK sip:phone@{} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch={branch}\r\nMax-Forwards: 70\r\nFrom: <sip:astreinte@{me}>;tag=eng\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
            self.phone, self.call_id
        ));
    }

    /// INVITE, 100/180/200 read, ACK: returns the 200 OK and the phone's RTP address.
    fn call(&self, user: &str) -> (String, SocketAddr) {
        self.invite(user);
        let seen = self.read_until("SIP/2.0 200", Duration::from_secs(3));
        assert!(
            seen.iter().any(|m| m.starts_with("SIP/2.0 180")),
            "{seen:#?}"
        );
        let ok = seen.last().unwrap().clone();
        self.ack(&ok, "z9hG4bKfakeack");
        let port: u16 = ok
            .lines()
            .find_map(|l| l.strip_prefix("m=audio "))
            .and_then(|r| r.split_whitespace().next())
            .and_then(|p| p.parse().ok())
            .expect("SDP answer");
        (ok, SocketAddr::from(([127, 0, 0, 1], port)))
    }
}

struct Rtp {
    pt: u8,
    marker: bool,
    seq: u16,
    ts: u32,
    ssrc: u32,
    payload: Vec<u8>,
}

fn parse_rtp(b: &[u8]) -> Rtp {
    assert!(b.len() >= 12 && b[0] == 0x80, "bad RTP {b:?}");
    Rtp {
        pt: b[1] & 0x7f,
        marker: b[1] & 0x80 != 0,
        seq: u16::from_be_bytes([b[2], b[3]]),
        ts: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        ssrc: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
        payload: b[12..].to_vec(),
    }
}

#[test]
fn phone_answers_hears_says_presses_and_takes_a_bye() {
    let mut phone = Phone::listen();
    let fake = FakeEngine::new(&phone, "fake-1@test");
    let uri = phone.uri("tech1");
    assert_eq!(uri, format!("sip:tech1@127.0.0.1:{}", phone.sip_port()));

    // OPTIONS before any call: 200.
    let me = fake.me();
    fake.send(&format!(
        "OPTIONS {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKopt\r\nFrom: <sip:x@{me}>;tag=o\r\nTo: <{uri}>\r\nCall-ID: opt@test\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    ));
    fake.read_until("SIP/2.0 200", Duration::from_secs(1));
    assert!(!phone.wait_invite(Duration::from_millis(50)));

    let engine = std::thread::spawn(move || {
        let (ok, phone_rtp) = fake.call("tech1");
        assert!(ok.contains("a=rtpmap:101 telephone-event/8000"), "{ok}");
        assert!(ok.contains("RTP/AVP 0 101"), "{ok}");
        let phone_tag = header(&ok, "To")
            .and_then(|t| t.split(";tag=").nth(1))
            .expect("To tag")
            .to_string();
        // 300 ms of a 1 kHz tone, µ-law, then nothing.
        let t = tone(1000.0, 300, 8000);
        for (i, frame) in t.chunks(160).enumerate() {
            let mut p = vec![0x80u8, 0];
            p.extend_from_slice(&(i as u16).to_be_bytes());
            p.extend_from_slice(&((i as u32) * 160).to_be_bytes());
            p.extend_from_slice(&[1, 2, 3, 4]);
            let mut enc = [0u8; 160];
            g711::encode(Codec::Pcmu, frame, &mut enc);
            p.extend_from_slice(&enc);
            fake.rtp.send_to(&p, phone_rtp).unwrap();
            // Real-time pacing (a packet every 20 ms) is the behaviour, not an event.
            std::thread::sleep(Duration::from_millis(20));
        }
        // What the phone sends until its key press has ended.
        let mut packets = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut buf = [0u8; 2048];
        while Instant::now() < deadline {
            if let Ok(n) = fake.rtp.recv(&mut buf) {
                let p = parse_rtp(&buf[..n]);
                let ended = p.pt == 101 && p.payload.get(1).is_some_and(|b| b & 0x80 != 0);
                packets.push(p);
                if ended && packets.iter().filter(|p| p.pt == 101).count() >= 9 {
                    break;
                }
            }
        }
        // BYE from the engine's side.
        let me = fake.me();
        fake.send(&format!(
            "BYE sip:phone@{} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKfakebye\r\nMax-Forwards: 70\r\nFrom: <sip:astreinte@{me}>;tag=eng\r\nTo: <sip:tech1@{}>;tag={phone_tag}\r\nCall-ID: {}\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
            fake.phone, fake.phone, fake.call_id
        ));
        let seen = fake.read_until("SIP/2.0 200", Duration::from_secs(1));
        assert!(seen.last().unwrap().contains("CSeq: 2 BYE"));
        packets
    });

    assert!(phone.wait_invite(Duration::from_secs(2)));
    assert_eq!(
        phone.invite_request_uri().as_deref(),
        Some(format!("sip:tech1@127.0.0.1:{}", phone.sip_port()).as_str())
    );
    assert_eq!(phone.invite_user().as_deref(), Some("tech1"));
    assert!(phone
        .invite_text()
        .unwrap()
        .contains("Call-ID: fake-1@test"));
    phone.say(&tone(500.0, 200, 8000));
    phone.answer();
    phone.wait_prompt_end(Duration::from_millis(150), Duration::from_secs(2));
    let heard = phone.heard();
    assert!(
        tone_power(&heard, 1000.0) > 50.0 * tone_power(&heard, 1500.0),
        "the 1 kHz tone is not heard"
    );
    phone.press('3');
    assert!(phone.wait_bye(Duration::from_secs(2)));
    let packets = engine.join().unwrap();

    // The audio: PCMU with the 500 Hz tone said.
    let audio: Vec<&Rtp> = packets.iter().filter(|p| p.pt == 0).collect();
    assert!(!audio.is_empty());
    let mut pcm = Vec::new();
    for p in &audio {
        let mut out = vec![0i16; p.payload.len()];
        g711::decode(Codec::Pcmu, &p.payload, &mut out);
        pcm.extend(out);
    }
    assert!(tone_power(&pcm, 500.0) > 50.0 * tone_power(&pcm, 1000.0));

    // The key: RFC 4733 event 3 on payload type 101.
    let first = packets.iter().position(|p| p.pt == 101).expect("no event");
    let events = &packets[first..];
    assert!(events.len() >= 9, "{} event packets", events.len());
    assert!(events.iter().all(|p| p.pt == 101), "audio during the event");
    assert!(events[0].marker && events[1..].iter().all(|p| !p.marker));
    assert!(events
        .iter()
        .all(|p| p.ts == events[0].ts && p.payload[0] == 3));
    let ends: Vec<bool> = events.iter().map(|p| p.payload[1] & 0x80 != 0).collect();
    assert!(ends[ends.len() - 3..].iter().all(|e| *e));
    assert!(!ends[0]);
    let durations: Vec<u16> = events
        .iter()
        .map(|p| u16::from_be_bytes([p.payload[2], p.payload[3]]))
        .collect();
    assert_eq!(&durations[..3], &[160, 320, 480]);
    assert!(durations.windows(2).all(|w| w[0] <= w[1]));
    // The audio stream's sequence numbers and SSRC.
    let before = &packets[first - 1];
    assert_eq!(before.pt, 0);
    assert_eq!(events[0].seq, before.seq.wrapping_add(1));
    assert!(events
        .windows(2)
        .all(|w| w[1].seq == w[0].seq.wrapping_add(1)));
    assert!(events.iter().all(|p| p.ssrc == before.ssrc));
    assert!(events[0].ts > before.ts);
}

#[test]
fn phone_rejects_and_hangs_up() {
    // Rejected with 486: the final response carries a To tag and is resent until the ACK.
    let mut phone = Phone::listen();
    let fake = FakeEngine::new(&phone, "fake-2@test");
    fake.invite("tech2");
    assert!(phone.wait_invite(Duration::from_secs(1)));
    let rejecting = std::thread::spawn(move || {
        phone.reject(486);
        phone
    });
    let seen = fake.read_until("SIP/2.0 486", Duration::from_secs(2));
    assert!(seen[0].starts_with("SIP/2.0 100"));
    let busy = seen.last().unwrap().clone();
    assert!(header(&busy, "To").unwrap().contains(";tag="), "{busy}");
    assert!(busy.contains("rport"), "{busy}");
    // Not ACKed at once: it comes again.
    fake.read_until("SIP/2.0 486", Duration::from_secs(1));
    fake.ack(&busy, "z9hG4bKfakeinv");
    let mut phone = rejecting.join().unwrap();

    // A second call to the same phone, answered, then hung up by the phone.
    let fake = FakeEngine::new(&phone, "fake-3@test");
    let answering = std::thread::spawn(move || {
        assert!(phone.wait_invite(Duration::from_secs(2)));
        phone.answer();
        phone
    });
    let (ok, _) = fake.call("tech2");
    let mut phone = answering.join().unwrap();
    let phone_tag = header(&ok, "To")
        .and_then(|t| t.split(";tag=").nth(1))
        .unwrap()
        .to_string();
    let hanging = std::thread::spawn(move || {
        let ok = phone.hang_up();
        (phone, ok)
    });
    let seen = fake.read_until("BYE ", Duration::from_secs(2));
    let bye = seen.last().unwrap().clone();
    let me = fake.me();
    assert!(
        bye.starts_with(&format!("BYE sip:astreinte@{me} SIP/2.0")),
        "{bye}"
    );
    assert_eq!(
        header(&bye, "From"),
        Some(format!("<sip:tech2@{}>;tag={phone_tag}", fake.phone).as_str())
    );
    assert_eq!(
        header(&bye, "To"),
        Some(format!("<sip:astreinte@{me}>;tag=eng").as_str())
    );
    assert_eq!(header(&bye, "Call-ID"), Some("fake-3@test"));
    assert_eq!(header(&bye, "CSeq"), Some("1 BYE"));
    let mut ok = String::from("SIP/2.0 200 OK\r\n");
    for h in ["Via", "From", "To", "Call-ID", "CSeq"] {
        ok.push_str(&format!("{h}: {}\r\n", header(&bye, h).unwrap()));
    }
    ok.push_str("Content-Length: 0\r\n\r\n");
    fake.send(&ok);
    let (_phone, answered) = hanging.join().unwrap();
    assert!(answered, "the BYE's 200 was not seen");
}

#[test]
fn tone_power_tells_frequencies_apart() {
    let t = tone(1000.0, 200, 10000);
    let p = tone_power(&t, 1000.0);
    assert!((p - 10000.0f64.powi(2) / 2.0).abs() < 0.05 * p, "{p}");
    assert!(tone_power(&t, 1500.0) < p / 1000.0);
    assert_eq!(tone_power(&[], 1000.0), 0.0);
}
