//! `kill -9` during 100 concurrent recordings, then start-up recovery: each WAV left behind is
//! patched and holds what was received, less at most about one second.
//!
//! The parent test re-runs this test binary as a child that records 100 streams it sends
//! itself, kills it with SIGKILL once enough audio is flowing, and recovers the files.

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use astreinte::media::{
    g711, recover_unfinished, Codec, MediaConfig, MediaDirection, MediaEngine, NegotiatedMedia,
    RecordOptions,
};

#[path = "common/wait.rs"]
mod wait;

const CHILD_ENV: &str = "ASTREINTE_MEDIA_RECOVERY_CHILD";
/// Recordings in progress when the engine is killed.
const CALLS: usize = 100;

fn speech() -> Vec<i16> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts/en/greeting.wav");
    hound::WavReader::open(p)
        .unwrap()
        .samples::<i16>()
        .map(|s| s.unwrap())
        .collect()
}

/// Runs only as the child: records what it sends until it is killed.
#[test]
fn child_records_until_killed() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let cfg = MediaConfig {
        rtp_ports: "31200-31599".into(),
        prompts_dir: Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("prompts")
            .to_string_lossy()
            .into_owned(),
        threads: 1,
        ..MediaConfig::default()
    };
    let eng = MediaEngine::start(&cfg, "127.0.0.1".parse().unwrap()).unwrap();
    let mut calls = Vec::new();
    for n in 0..CALLS {
        let s = eng.open_session(&format!("killed-{n}")).unwrap();
        let far = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.apply(NegotiatedMedia {
            remote_rtp: far.local_addr().unwrap(),
            codec: Codec::Pcmu,
            payload_type: 0,
            telephone_event_pt: None,
            direction: MediaDirection::SendRecv,
            ptime_ms: 20,
            signalling_peer: None,
        });
        s.record(
            dir.join(format!("vm-{n}.wav")),
            RecordOptions {
                max_seconds: 600,
                end_after_silence_ms: None,
            },
        );
        calls.push((s, far));
    }
    // Every recorder has started (its `.part` file is there) before the first packet.
    wait::wait_until("every recording to start", Duration::from_secs(10), || {
        (0..CALLS).all(|n| dir.join(format!("vm-{n}.wav.part")).exists())
    });
    let audio = speech();
    let start = Instant::now();
    for (i, frame) in audio.chunks_exact(160).cycle().enumerate() {
        let mut p = vec![0x80u8, 0];
        p.extend_from_slice(&(i as u16).to_be_bytes());
        p.extend_from_slice(&((i as u32) * 160).to_be_bytes());
        p.extend_from_slice(&[1, 2, 3, 4]);
        let mut enc = [0u8; 160];
        g711::encode(Codec::Pcmu, frame, &mut enc);
        p.extend_from_slice(&enc);
        for (s, far) in &calls {
            far.send_to(&p, s.local_rtp_addr()).unwrap();
        }
        if i == 200 {
            // 4 s sent to each: tell the parent how many samples are out.
            std::fs::write(dir.join("ready"), format!("{}", (i + 1) * 160)).unwrap();
        }
        // Paced at 20 ms on a fixed schedule: real-time RTP is the behaviour, not an event.
        let next = start + Duration::from_millis(20 * (i as u64 + 1));
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
}

#[test]
fn recording_survives_kill_9() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_records_until_killed",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir.path())
        .spawn()
        .unwrap();
    let ready = dir.path().join("ready");
    let sent_at_ready: usize = wait::wait_for(
        "the child to send 4 s to each call",
        Duration::from_secs(60),
        || {
            assert!(child.try_wait().unwrap().is_none(), "child exited early");
            std::fs::read_to_string(&ready).ok()?.parse().ok()
        },
    );
    // Not an event: the kill lands mid-call while the child goes on talking, half a second
    // after the count it reported (the loss budget below is measured from that count).
    std::thread::sleep(Duration::from_millis(500));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let parts = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".wav.part"))
        .count();
    assert_eq!(
        parts, CALLS,
        "an unfinished recording per call is left behind"
    );
    let mut rec = recover_unfinished(dir.path());
    assert_eq!(rec.len(), CALLS);
    rec.sort_by(|a, b| a.path.cmp(&b.path));
    // What each caller sent, through the G.711 round trip.
    let audio = speech();
    let mut want = Vec::new();
    for frame in audio
        .chunks_exact(160)
        .cycle()
        .take(sent_at_ready / 160 + 200)
    {
        let mut enc = [0u8; 160];
        g711::encode(Codec::Pcmu, frame, &mut enc);
        let mut dec = [0i16; 160];
        g711::decode(Codec::Pcmu, &enc, &mut dec);
        want.extend_from_slice(&dec);
    }
    for r in &rec {
        let got: Vec<i16> = hound::WavReader::open(&r.path)
            .unwrap()
            .samples::<i16>()
            .map(|s| s.unwrap())
            .collect();
        assert_eq!(got.len() as u64, r.samples);
        // At most about one second lost: 1 s flush interval plus the jitter buffer's depth.
        assert!(
            got.len() + 8000 + 3 * 160 >= sent_at_ready,
            "{}: recovered {} samples, {} had been sent",
            r.path.display(),
            got.len(),
            sent_at_ready
        );
        // And it is exactly the audio sent, from the first sample.
        assert!(got.len() <= want.len());
        assert_eq!(&got[..], &want[..got.len()], "{}", r.path.display());
    }
}
