//! The media engine over real UDP sockets, with plain sockets as the far end (no SIP).
//! Checks are on content and order, never on timing, so a loaded machine slows them but does
//! not fail them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use astreinte::media::dtmf;
use astreinte::media::g711;
use astreinte::media::prompts::PromptSet;
use astreinte::media::rfc4733::TelephoneEvent;
use astreinte::media::{
    Codec, DigitSource, IoUringMode, MediaBackend, MediaConfig, MediaDirection, MediaEngine,
    MediaEvent, MediaSession, NegotiatedMedia, PlayOptions, PromptRef, RecordOptions,
};
use tokio::net::UdpSocket;
use tokio::time::timeout;

#[path = "common/wait.rs"]
mod wait;

const WAIT: Duration = Duration::from_secs(10);

fn prompts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts")
}

fn engine(ports: &str, inactivity: u64) -> MediaEngine {
    engine_with(ports, inactivity, |_| {})
}

/// An engine with some settings changed, e.g. to run the receive paths the default does not
/// take on this machine.
fn engine_with(ports: &str, inactivity: u64, tweak: impl FnOnce(&mut MediaConfig)) -> MediaEngine {
    let mut cfg = MediaConfig {
        rtp_ports: ports.into(),
        inactivity_timeout_secs: inactivity,
        prompts_dir: prompts_dir().to_string_lossy().into_owned(),
        threads: 2,
        ..MediaConfig::default()
    };
    tweak(&mut cfg);
    MediaEngine::start(&cfg, "127.0.0.1".parse().unwrap()).unwrap()
}

fn media(remote: SocketAddr, codec: Codec) -> NegotiatedMedia {
    NegotiatedMedia {
        remote_rtp: remote,
        codec,
        payload_type: codec.static_payload_type(),
        telephone_event_pt: Some(101),
        direction: MediaDirection::SendRecv,
        ptime_ms: 20,
        signalling_peer: None,
    }
}

struct Far {
    sock: UdpSocket,
    ssrc: u32,
    seq: u16,
    ts: u32,
}

impl Far {
    async fn new() -> Far {
        Far::on("127.0.0.1").await
    }
    /// A far end on another loopback address (Linux routes all of 127/8 to `lo`).
    async fn on(ip: &str) -> Far {
        Far {
            sock: UdpSocket::bind((ip, 0)).await.unwrap(),
            ssrc: 0x1122_3344,
            seq: 1000,
            ts: 50_000,
        }
    }
    fn addr(&self) -> SocketAddr {
        self.sock.local_addr().unwrap()
    }
    fn packet(&mut self, pt: u8, marker: bool, ts: u32, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x80, (marker as u8) << 7 | pt];
        p.extend_from_slice(&self.seq.to_be_bytes());
        p.extend_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&self.ssrc.to_be_bytes());
        p.extend_from_slice(payload);
        self.seq = self.seq.wrapping_add(1);
        p
    }
    /// Send one 20 ms audio frame.
    async fn audio(&mut self, to: SocketAddr, codec: Codec, pcm: &[i16]) {
        let mut enc = vec![0u8; pcm.len()];
        g711::encode(codec, pcm, &mut enc);
        let ts = self.ts;
        let p = self.packet(codec.static_payload_type(), false, ts, &enc);
        self.ts = self.ts.wrapping_add(pcm.len() as u32);
        self.sock.send_to(&p, to).await.unwrap();
    }
    /// An RFC 4733 event: three updates (the second sent twice) and three end packets.
    async fn rfc4733_digit(&mut self, to: SocketAddr, digit: char) {
        let event = astreinte::media::rfc4733::digit_to_event(digit).unwrap();
        let ts = self.ts;
        for (i, (end, dur)) in [
            (false, 160),
            (false, 320),
            (false, 320),
            (false, 480),
            (true, 800),
            (true, 800),
            (true, 800),
        ]
        .into_iter()
        .enumerate()
        {
            let mut b = [0u8; 4];
            TelephoneEvent {
                event,
                end,
                volume: 10,
                duration: dur,
            }
            .write(&mut b);
            let p = self.packet(101, i == 0, ts, &b);
            self.sock.send_to(&p, to).await.unwrap();
            // Pacing the event's packets (a burst is not what a phone sends), not an event.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        self.ts = self.ts.wrapping_add(800);
    }
    async fn recv(&self) -> Vec<u8> {
        let mut buf = vec![0u8; 2048];
        let (n, _) = timeout(WAIT, self.sock.recv_from(&mut buf))
            .await
            .expect("no RTP from engine")
            .unwrap();
        buf.truncate(n);
        buf
    }
}

async fn next_event(s: &mut MediaSession) -> MediaEvent {
    timeout(WAIT, s.next_event())
        .await
        .expect("no media event")
        .expect("session closed")
}

/// Wait for an event matching `f`, skipping others.
async fn wait_for(s: &mut MediaSession, f: impl Fn(&MediaEvent) -> bool) -> MediaEvent {
    loop {
        let e = next_event(s).await;
        if f(&e) {
            return e;
        }
    }
}

/// Returns once every command sent to `s` before it has been carried out (commands run in
/// order on the leg's media thread; stopping a playback reports it at once).
async fn barrier(s: &mut MediaSession) {
    let id = s
        .play(&[PromptRef::named("en/greeting")], PlayOptions::default())
        .unwrap();
    s.stop_playback();
    wait_for(s, |e| *e == MediaEvent::PlaybackFinished(id)).await;
}

fn wav(path: &Path) -> Vec<i16> {
    hound::WavReader::open(path)
        .unwrap()
        .samples::<i16>()
        .map(|s| s.unwrap())
        .collect()
}

async fn check_prompt_stream(codec: Codec, prompt: &str, ports: &str) {
    let eng = engine(ports, 30);
    let mut s = eng.open_session("prompt-test").unwrap();
    let far = Far::new().await;
    s.apply(media(far.addr(), codec));
    // The stream starts with silence before any prompt: it never stops while the call is up.
    let first = far.recv().await;
    assert_eq!(first[1] & 0x7F, codec.static_payload_type());
    let pb = s
        .play(&[PromptRef::named(prompt)], PlayOptions::default())
        .unwrap();

    let set = PromptSet::load(&prompts_dir()).unwrap();
    let p = set.get(set.id(prompt).unwrap()).unwrap();
    let want: Vec<i16> = {
        let src = wav(&prompts_dir().join(format!("{prompt}.wav")));
        let mut enc = vec![0u8; src.len()];
        g711::encode(codec, &src, &mut enc);
        let mut dec = vec![0i16; src.len()];
        g711::decode(codec, &enc, &mut dec);
        dec
    };
    let mut prev: Option<(u16, u32, u32)> = Some((
        u16::from_be_bytes([first[2], first[3]]),
        u32::from_be_bytes([first[4], first[5], first[6], first[7]]),
        u32::from_be_bytes([first[8], first[9], first[10], first[11]]),
    ));
    let mut audio: Option<Vec<i16>> = None;
    let mut after = 0;
    let zero = g711::decode_sample(codec, g711::silence_code(codec));
    loop {
        let pkt = far.recv().await;
        let seq = u16::from_be_bytes([pkt[2], pkt[3]]);
        let ts = u32::from_be_bytes([pkt[4], pkt[5], pkt[6], pkt[7]]);
        let ssrc = u32::from_be_bytes([pkt[8], pkt[9], pkt[10], pkt[11]]);
        if let Some((ps, pt, pssrc)) = prev {
            assert_eq!(seq, ps.wrapping_add(1), "sequence numbers are continuous");
            assert_eq!(ssrc, pssrc);
            // Timestamps advance by 160 per packet (more only if the engine skipped ticks).
            assert_eq!(ts.wrapping_sub(pt) % 160, 0);
        }
        prev = Some((seq, ts, ssrc));
        let marker = pkt[1] & 0x80 != 0;
        assert_eq!(pkt.len(), 12 + 160);
        let mut dec = [0i16; 160];
        g711::decode(codec, &pkt[12..], &mut dec);
        match audio.as_mut() {
            None if marker => audio = Some(dec.to_vec()),
            None => assert!(dec.iter().all(|&x| x == zero), "silence before the prompt"),
            Some(a) if a.len() < p.frames() * 160 => a.extend_from_slice(&dec),
            Some(_) => {
                // Silence after the prompt: the stream goes on.
                assert!(dec.iter().all(|&x| x == zero));
                after += 1;
                if after == 3 {
                    break;
                }
            }
        }
    }
    let audio = audio.unwrap();
    assert_eq!(
        &audio[..want.len()],
        &want[..],
        "decoded stream equals the prompt file"
    );
    assert!(audio[want.len()..].iter().all(|&x| x == zero));
    let e = wait_for(&mut s, |e| matches!(e, MediaEvent::PlaybackFinished(_))).await;
    assert_eq!(e, MediaEvent::PlaybackFinished(pb));
    let free = eng.free_ports();
    let stats = s.close().await;
    assert!(stats.packets_sent >= p.frames() as u64);
    // The ports go back to the pool.
    assert_eq!(eng.free_ports(), free + 1);
    eng.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompt_stream_pcmu_matches_the_file() {
    check_prompt_stream(Codec::Pcmu, "en/digit-7", "31000-31019").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompt_stream_pcma_matches_the_file() {
    check_prompt_stream(Codec::Pcma, "fr/digit-3", "31020-31039").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digits_from_all_three_sources_and_barge_in() {
    let eng = engine("31040-31059", 30);
    let mut s = eng.open_session("dtmf-test").unwrap();
    let mut far = Far::new().await;
    s.apply(media(far.addr(), Codec::Pcmu));
    let to = s.local_rtp_addr();
    let pb = s
        .play(
            &[PromptRef::named("fr/greeting")],
            PlayOptions {
                barge_in: true,
                repeat: true,
            },
        )
        .unwrap();
    far.recv().await;

    // In-band first (before any RFC 4733 packet mutes it): '5' 100 ms, then silence.
    let mut sample = 0;
    for _ in 0..5 {
        let mut f = [0i16; 160];
        dtmf::generate('5', 6000.0, 6000.0, sample, &mut f);
        sample += 160;
        far.audio(to, Codec::Pcmu, &f).await;
    }
    for _ in 0..5 {
        far.audio(to, Codec::Pcmu, &[0; 160]).await;
    }
    let e = wait_for(&mut s, |e| matches!(e, MediaEvent::Digit { .. })).await;
    assert_eq!(
        e,
        MediaEvent::Digit {
            digit: '5',
            source: DigitSource::InBand
        }
    );
    // Barge-in stopped the looping greeting.
    let e = next_event(&mut s).await;
    assert_eq!(e, MediaEvent::PlaybackFinished(pb));

    for d in ['1', '2', '#'] {
        far.rfc4733_digit(to, d).await;
    }
    for d in ['1', '2', '#'] {
        let e = wait_for(&mut s, |e| matches!(e, MediaEvent::Digit { .. })).await;
        assert_eq!(
            e,
            MediaEvent::Digit {
                digit: d,
                source: DigitSource::Rfc4733
            }
        );
    }
    s.inject_digit('9');
    let e = next_event(&mut s).await;
    assert_eq!(
        e,
        MediaEvent::Digit {
            digit: '9',
            source: DigitSource::SipInfo
        }
    );
    // Nothing else: retransmitted end packets did not make extra digits.
    assert!(timeout(Duration::from_millis(300), s.next_event())
        .await
        .is_err());
    drop(s);
    eng.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recording_equals_what_was_sent_within_one_packet() {
    // The default: io_uring under real-time priority where permitted (else what the machine
    // allows, which the two tests below force).
    recording_round_trip(engine("31060-31079", 30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recording_round_trip_through_epoll_receives() {
    // io_uring refused (old kernel, container seccomp): the per-tick epoll set.
    recording_round_trip(engine_with("31240-31259", 30, |c| {
        c.io_uring = IoUringMode::Off
    }))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recording_round_trip_on_the_normal_scheduler() {
    // No real-time priority: a wake-up per packet.
    recording_round_trip(engine_with("31260-31279", 30, |c| c.realtime_priority = 0)).await;
}

/// A call whose far end has heard the engine's stream and whose recording to `path` has
/// started: the session, the far end, and where to send it RTP.
async fn recording_call(
    eng: &MediaEngine,
    name: &str,
    codec: Codec,
    path: &Path,
) -> (MediaSession, Far, SocketAddr) {
    recording_call_of(eng, name, codec, path, 60).await
}

/// [`recording_call`] whose recording ends by itself after `max_seconds`.
async fn recording_call_of(
    eng: &MediaEngine,
    name: &str,
    codec: Codec,
    path: &Path,
    max_seconds: u32,
) -> (MediaSession, Far, SocketAddr) {
    let mut s = eng.open_session(name).unwrap();
    let far = Far::new().await;
    s.apply(media(far.addr(), codec));
    let to = s.local_rtp_addr();
    far.recv().await; // the engine is running this call
    record_exactly(&mut s, path, max_seconds).await;
    (s, far, to)
}

async fn recording_round_trip(eng: MediaEngine) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vm.wav");
    // Exactly the 5 s sent: the recording ends by itself once the engine has it all.
    let (mut s, mut far, to) = recording_call_of(&eng, "rec-test", Codec::Pcma, &path, 5).await;

    // 1 s of silence, 3 s of speech (the English greeting), 1 s of silence.
    let speech = wav(&prompts_dir().join("en/greeting.wav"));
    let mut sent: Vec<i16> = vec![0; 8000];
    sent.extend_from_slice(&speech[..24000]);
    sent.extend(std::iter::repeat_n(0, 8000));
    let frames: Vec<&[i16]> = sent.chunks(160).collect();
    let mut i = 0;
    while i < frames.len() {
        // Swap every 25th pair to exercise the jitter buffer's reordering.
        if i % 25 == 3 && i + 1 < frames.len() {
            let (s0, t0) = (far.seq, far.ts);
            far.seq = s0.wrapping_add(1);
            far.ts = t0 + 160;
            far.audio(to, Codec::Pcma, frames[i + 1]).await;
            far.seq = s0;
            far.ts = t0;
            far.audio(to, Codec::Pcma, frames[i]).await;
            far.seq = s0.wrapping_add(2);
            far.ts = t0 + 320;
            i += 2;
        } else {
            far.audio(to, Codec::Pcma, frames[i]).await;
            i += 1;
        }
        if i % 10 == 0 {
            // Pacing the sender (ten packets per 20 ms) so no socket buffer overflows.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let sum = recording_end(&mut s).await;
    assert_eq!(sum.path, path);
    assert!(sum.speech_detected);
    // The G.711 round trip of what was sent.
    let mut enc = vec![0u8; sent.len()];
    g711::encode(Codec::Pcma, &sent, &mut enc);
    let mut want = vec![0i16; sent.len()];
    g711::decode(Codec::Pcma, &enc, &mut want);
    assert!(
        (sum.duration_ms as i64 - 5000).abs() <= 20,
        "duration {} ms",
        sum.duration_ms
    );
    let got = wav(&path);
    let start = (sum.trimmed_start_ms * 8) as usize;
    assert!(
        sum.trimmed_start_ms >= 600,
        "leading silence trimmed: {}",
        sum.trimmed_start_ms
    );
    assert!(
        sum.trimmed_end_ms >= 300,
        "trailing silence trimmed: {}",
        sum.trimmed_end_ms
    );
    assert!(got.len() + 160 >= want.len() - start - (sum.trimmed_end_ms * 8) as usize);
    assert_eq!(
        &got[..],
        &want[start..start + got.len()],
        "recording equals the audio sent"
    );
    drop(s);
    eng.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_leaves_finished_recordings_and_reports_them() {
    // A service manager stopping the engine mid-voicemail: when `shutdown` returns, the
    // recording is a whole WAV under its final name (no `.part` for the next start to patch),
    // holding what was sent, and the call's flow has its RecordingFinished.
    let eng = engine("31280-31299", 30);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vm.wav");
    let (mut s, mut far, to) = recording_call(&eng, "shutdown-test", Codec::Pcmu, &path).await;
    let speech = wav(&prompts_dir().join("en/greeting.wav"));
    for (i, frame) in speech[..16000].chunks(160).enumerate() {
        far.audio(to, Codec::Pcmu, frame).await;
        if i % 10 == 9 {
            // Pacing the sender (ten packets per 20 ms) so no socket buffer overflows.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // The speech is in: the recorder has written 8000 samples of it to the `.part` file.
    let mut part = path.clone().into_os_string();
    part.push(".part");
    let part = PathBuf::from(part);
    wait::wait_until_async(
        "8000 samples in the unfinished recording",
        Duration::from_secs(5),
        || std::future::ready(std::fs::metadata(&part).is_ok_and(|m| m.len() >= 44 + 2 * 8000)),
    )
    .await;

    tokio::task::spawn_blocking(move || eng.shutdown())
        .await
        .unwrap();
    let mut part = path.clone().into_os_string();
    part.push(".part");
    assert!(
        !Path::new(&part).exists(),
        "no unfinished recording left behind"
    );
    let got = wav(&path);
    assert!(
        got.len() >= 8000,
        "the speech sent is in the file: {} samples",
        got.len()
    );
    let e = wait_for(&mut s, |e| matches!(e, MediaEvent::RecordingFinished(_))).await;
    let MediaEvent::RecordingFinished(sum) = e else {
        unreachable!()
    };
    assert_eq!(sum.path, path);
    assert!(sum.speech_detected);
}

/// A deterministic byte stream (xorshift), so a failure can be replayed.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_rtp_and_rtcp_are_counted_and_the_call_goes_on() {
    hostile_input(engine("31300-31319", 30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_rtp_and_rtcp_through_epoll_receives() {
    hostile_input(engine_with("31320-31339", 30, |c| {
        c.io_uring = IoUringMode::Off
    }))
    .await;
}

/// Whatever the peer sends, the call keeps its stream, its recording and its digits:
/// malformed packets are counted, another source is not let in, odd sizes are taken as audio.
async fn hostile_input(eng: MediaEngine) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vm.wav");
    let (mut s, mut far, to) = recording_call(&eng, "hostile-test", Codec::Pcmu, &path).await;
    let rtcp_to = SocketAddr::new(to.ip(), to.port() + 1);
    far.audio(to, Codec::Pcmu, &[0; 160]).await; // latches the peer

    let header = |b1: u8| {
        let mut p = vec![0x80, b1, 0, 1, 0, 0, 0, 160, 1, 2, 3, 4];
        p.extend_from_slice(&[0xFF; 20]);
        p
    };
    let mut crafted: Vec<Vec<u8>> = vec![
        vec![],
        vec![0x80],
        vec![0x80, 0x00, 0x00],
        vec![0x80; 11],
        vec![0x00; 40], // version 0
        vec![0x40; 40], // version 1
        vec![0xC0; 40], // version 3
    ];
    let mut padded = header(0); // padding count beyond the packet
    padded[0] |= 0x20;
    *padded.last_mut().unwrap() = 200;
    crafted.push(padded);
    let mut csrcs = header(0); // 15 CSRCs announced, not there
    csrcs[0] |= 0x0F;
    crafted.push(csrcs);
    let mut ext = header(0); // extension longer than the packet
    ext[0] |= 0x10;
    ext[12..16].copy_from_slice(&[0xBE, 0xDE, 0xFF, 0xFF]);
    crafted.push(ext);
    crafted.push(header(99)); // a payload type that was not negotiated
    crafted.push(header(72)); // RTCP on the RTP port
    let mut short_event = header(101); // a telephone-event of 1 byte
    short_event.truncate(13);
    crafted.push(short_event);
    let malformed = crafted.len() as u64;
    for p in &crafted {
        far.sock.send_to(p, to).await.unwrap();
    }
    // Audio of every odd size the codec allows, up to a jumbo datagram.
    for n in [
        0usize, 1, 7, 80, 159, 161, 240, 479, 480, 481, 1000, 1400, 8000,
    ] {
        let pcm = vec![1000i16; n];
        far.audio(to, Codec::Pcmu, &pcm).await;
    }
    // RTCP with lengths that lie.
    for p in [
        vec![0x81, 200, 0xFF, 0xFF, 0, 0, 0, 1],
        vec![0x9F, 201, 0, 1, 0, 0, 0, 1],
        vec![0x80, 203, 0, 0],
    ] {
        far.sock.send_to(&p, rtcp_to).await.unwrap();
    }
    // Another source does not take the call over: the latched peer keeps the stream.
    let stranger = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for _ in 0..5 {
        stranger.send_to(&header(0), to).await.unwrap();
    }

    // The call goes on: digits, the stream to the peer, the recording.
    far.seq = far.seq.wrapping_add(1000);
    far.ts = far.ts.wrapping_add(160_000);
    for _ in 0..10 {
        far.audio(to, Codec::Pcmu, &[0; 160]).await;
    }
    far.rfc4733_digit(to, '4').await;
    let e = wait_for(&mut s, |e| matches!(e, MediaEvent::Digit { .. })).await;
    assert_eq!(
        e,
        MediaEvent::Digit {
            digit: '4',
            source: DigitSource::Rfc4733
        }
    );
    for _ in 0..5 {
        let p = far.recv().await;
        assert_eq!(p.len(), 172, "the engine still streams 20 ms PCMU");
    }
    let mut buf = [0u8; 2048];
    assert!(
        timeout(Duration::from_millis(100), stranger.recv_from(&mut buf))
            .await
            .is_err(),
        "nothing goes to the stranger"
    );
    s.stop_recording();
    let e = wait_for(&mut s, |e| matches!(e, MediaEvent::RecordingFinished(_))).await;
    let MediaEvent::RecordingFinished(sum) = e else {
        unreachable!()
    };
    assert_eq!(sum.path, path);
    let _ = wav(&path); // a readable WAV
    let stats = s.close().await;
    assert_eq!(
        stats.malformed_packets, malformed,
        "malformed packets counted"
    );

    // A second call gets noise: random bytes, half of them with an RTP-looking first byte.
    let mut s = eng.open_session("noise-test").unwrap();
    let mut far = Far::new().await;
    s.apply(media(far.addr(), Codec::Pcmu));
    let to = s.local_rtp_addr();
    let rtcp_to = SocketAddr::new(to.ip(), to.port() + 1);
    far.recv().await;
    far.audio(to, Codec::Pcmu, &[0; 160]).await;
    let mut noise = Noise(0x9E37_79B9_7F4A_7C15);
    for i in 0..600 {
        let n = (noise.next() % 1500) as usize;
        let mut p = noise.bytes(n);
        if i % 2 == 0 && n > 0 {
            p[0] = 0x80;
        }
        let dest = if i % 3 == 0 { rtcp_to } else { to };
        far.sock.send_to(&p, dest).await.unwrap();
        if i % 50 == 0 {
            // Pacing the sender so no socket buffer overflows: not an event.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    far.seq = far.seq.wrapping_add(1000);
    far.ts = far.ts.wrapping_add(160_000);
    far.rfc4733_digit(to, '7').await;
    let e = wait_for(&mut s, |e| {
        matches!(e, MediaEvent::Digit { digit: '7', .. })
    })
    .await;
    assert_eq!(
        e,
        MediaEvent::Digit {
            digit: '7',
            source: DigitSource::Rfc4733
        }
    );
    for _ in 0..5 {
        assert_eq!(far.recv().await.len(), 172);
    }
    let stats = s.close().await;
    assert!(stats.malformed_packets > 0);
    eng.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_relays_with_rewritten_headers_and_transcoding() {
    let eng = engine("31100-31119", 30);
    let mut a = eng.open_session("caller").unwrap();
    let b = eng.open_session_near("tech", &a).unwrap();
    let c = eng.open_session("other").unwrap();
    assert!(
        a.bridge(&c).is_err(),
        "legs on different threads are refused"
    );
    let mut fa = Far::new().await;
    let mut fb = Far::new().await;
    a.apply(media(fa.addr(), Codec::Pcmu));
    b.apply(media(fb.addr(), Codec::Pcma));
    fa.recv().await;
    let b_ssrc = {
        let p = fb.recv().await;
        u32::from_be_bytes([p[8], p[9], p[10], p[11]])
    };
    a.bridge(&b).unwrap();
    barrier(&mut a).await;
    // Drain what B received before the bridge took effect.
    for f in [&fa, &fb] {
        while let Ok(Ok(_)) =
            timeout(Duration::from_millis(30), f.sock.recv_from(&mut [0u8; 512])).await
        {}
    }
    let ramp: Vec<i16> = (0..160).map(|i| (i * 150 - 12000) as i16).collect();
    let (to_a, to_b) = (a.local_rtp_addr(), b.local_rtp_addr());
    fa.audio(to_a, Codec::Pcmu, &ramp).await;
    let p = fb.recv().await;
    assert_eq!(p[1] & 0x7F, 8, "transcoded to PCMA for B");
    assert_eq!(
        u32::from_be_bytes([p[8], p[9], p[10], p[11]]),
        b_ssrc,
        "B's own SSRC"
    );
    for (i, &code) in p[12..].iter().enumerate() {
        let u = g711::linear_to_ulaw(ramp[i]);
        assert_eq!(code, g711::transcode_byte(Codec::Pcmu, Codec::Pcma, u));
    }
    let seq1 = u16::from_be_bytes([p[2], p[3]]);
    fa.audio(to_a, Codec::Pcmu, &ramp).await;
    let p2 = fb.recv().await;
    assert_eq!(u16::from_be_bytes([p2[2], p2[3]]), seq1.wrapping_add(1));
    let ts1 = u32::from_be_bytes([p[4], p[5], p[6], p[7]]);
    assert_eq!(
        u32::from_be_bytes([p2[4], p2[5], p2[6], p2[7]]),
        ts1.wrapping_add(160)
    );
    // DTMF passes through as telephone-events, and B's side hears it the other way too.
    fb.audio(to_b, Codec::Pcma, &ramp).await;
    let q = fa.recv().await;
    assert_eq!(q[1] & 0x7F, 0);
    drop((a, b, c));
    eng.shutdown();
}

/// The G.711 round trip of `pcm` (what a perfect recording of it holds).
fn g711_round_trip(codec: Codec, pcm: &[i16]) -> Vec<i16> {
    let mut enc = vec![0u8; pcm.len()];
    g711::encode(codec, pcm, &mut enc);
    let mut out = vec![0i16; pcm.len()];
    g711::decode(codec, &enc, &mut out);
    out
}

/// Start recording `max_seconds` on `s`, returning once the engine has started it.
async fn record_exactly(s: &mut MediaSession, path: &Path, max_seconds: u32) {
    s.record(
        path.to_path_buf(),
        RecordOptions {
            max_seconds,
            end_after_silence_ms: None,
        },
    );
    barrier(s).await;
}

/// The recording's summary: it ends by itself when `max_seconds` of audio have arrived; if
/// some was lost it never does, and then it is stopped (the caller's asserts say how short).
async fn recording_end(s: &mut MediaSession) -> astreinte::media::RecordingSummary {
    let finished = |e: &MediaEvent| matches!(e, MediaEvent::RecordingFinished(_));
    let e = match timeout(Duration::from_secs(3), wait_for(s, finished)).await {
        Ok(e) => e,
        Err(_) => {
            s.stop_recording();
            wait_for(s, finished).await
        }
    };
    let MediaEvent::RecordingFinished(sum) = e else {
        unreachable!()
    };
    sum
}

/// Assert the saved file is exactly `want` (the audio sent, G.711 round trip) as trimmed.
fn assert_recording_is(sum: &astreinte::media::RecordingSummary, want: &[i16]) {
    let got = wav(&sum.path);
    let start = (sum.trimmed_start_ms * 8) as usize;
    let end = want.len() - (sum.trimmed_end_ms * 8) as usize;
    assert!(
        (sum.duration_ms as i64 - want.len() as i64 / 8).abs() <= 40,
        "the whole message is kept: {} ms of {} ms",
        sum.duration_ms,
        want.len() / 8
    );
    assert_eq!(got.len(), end - start, "file length: {sum:?}");
    assert!(got[..] == want[start..end], "the file holds the audio sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_can_neither_latch_nor_inject_audio() {
    // A scanner on 127.0.0.2 sprays RTP at a call's port before the phone (127.0.0.1, the
    // SDP's and the signalling address) and while it speaks.
    let eng = engine("31400-31419", 30);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vm.wav");
    let mut s = eng.open_session("hijack-test").unwrap();
    let mut far = Far::new().await;
    let mut stranger = Far::on("127.0.0.2").await;
    stranger.ssrc = 0x0BAD_0BAD;
    s.apply(media(far.addr(), Codec::Pcmu).with_signalling_peer(far.addr().ip()));
    let to = s.local_rtp_addr();
    record_exactly(&mut s, &path, 2).await;
    let noise = [12_000i16; 160];
    for _ in 0..20 {
        stranger.audio(to, Codec::Pcmu, &noise).await;
    }
    let speech = wav(&prompts_dir().join("en/greeting.wav"));
    let sent = &speech[..16000];
    for (i, f) in sent.chunks(160).enumerate() {
        far.audio(to, Codec::Pcmu, f).await;
        if i % 10 == 0 {
            stranger.audio(to, Codec::Pcmu, &noise).await;
            // Pacing the sender so no socket buffer overflows: not an event.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let sum = recording_end(&mut s).await;
    assert_recording_is(&sum, &g711_round_trip(Codec::Pcmu, sent));
    assert!(
        (20..=30).contains(&sum.foreign_packets),
        "the stranger's packets are counted: {}",
        sum.foreign_packets
    );
    // The stream goes to the phone, never to the stranger.
    far.recv().await;
    let mut buf = [0u8; 2048];
    assert!(stranger.sock.try_recv_from(&mut buf).is_err());
    let stats = s.close().await;
    assert_eq!(stats.foreign_packets, sum.foreign_packets);
    eng.shutdown();
}

/// Send `pcm` as 20 ms packets, paced.
async fn send_paced(far: &mut Far, to: SocketAddr, pcm: &[i16]) {
    for (i, f) in pcm.chunks(160).enumerate() {
        far.audio(to, Codec::Pcma, f).await;
        if i % 10 == 9 {
            // Pacing the sender so no socket buffer overflows: not an event.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn message_with_restart(ports: &str, restart: impl FnOnce(&mut Far)) {
    let eng = engine(ports, 30);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vm.wav");
    let mut s = eng.open_session("restart-test").unwrap();
    let mut far = Far::new().await;
    far.seq = 30_000;
    s.apply(media(far.addr(), Codec::Pcma));
    let to = s.local_rtp_addr();
    record_exactly(&mut s, &path, 3).await;
    let speech = wav(&prompts_dir().join("en/greeting.wav"));
    let sent = &speech[..24000];
    send_paced(&mut far, to, &sent[..12000]).await;
    restart(&mut far);
    send_paced(&mut far, to, &sent[12000..]).await;
    let sum = recording_end(&mut s).await;
    assert_recording_is(&sum, &g711_round_trip(Codec::Pcma, sent));
    drop(s);
    eng.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_restarting_its_stream_mid_message_keeps_the_whole_message() {
    // Sequence 20,000 back and the timestamp elsewhere, same SSRC.
    message_with_restart("31460-31479", |far| {
        far.seq = far.seq.wrapping_sub(20_000);
        far.ts = far.ts.wrapping_add(1_234_567);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_ssrc_mid_message_keeps_the_whole_message() {
    // A new SSRC whose numbering starts a little behind the old one's.
    message_with_restart("31480-31499", |far| {
        far.ssrc = 0x5566_7788;
        far.seq = far.seq.wrapping_sub(40);
        far.ts = far.ts.wrapping_sub(99_999);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recording_round_trip_through_io_uring_on_the_normal_scheduler() {
    // io_uring without real-time priority. In CI (root, CI=true) the ring must be there: a
    // kernel or sandbox refusing it fails this test rather than quietly testing epoll.
    let eng = engine_with("31540-31559", 30, |c| {
        c.realtime_priority = 0;
        c.io_uring = IoUringMode::Always;
    });
    let backends = eng.backends();
    if std::env::var("CI").as_deref() == Ok("true") {
        assert!(
            backends.iter().all(|b| *b == MediaBackend::IoUring),
            "CI runs media through io_uring: {backends:?}"
        );
    } else if backends.iter().any(|b| *b != MediaBackend::IoUring) {
        eprintln!("io_uring refused here ({backends:?}): the epoll path is tested instead");
    }
    recording_round_trip(eng).await;
}
