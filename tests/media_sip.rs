//! Media over real SIP calls: a softphone hears the greeting and is recorded, SIPp echoes the
//! greeting back and it is recorded sample for sample, SIPp's PCMA in 30 ms packets is recorded
//! exactly, SIPp's RFC 4733 and SIP INFO digits reach the call, and a recording cut by
//! `kill -9` is recovered.

mod common;

/// These tests exercise the media path through the line test: the greeting in a loop while the
/// caller is recorded.
const LINE_TEST: &str = "[call]\nflow = \"record-test\"\n";

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use astreinte::media::{g711, Codec};
use common::{assert_sipp_ok, baresip_dir, sipp, Engine};

fn read_wav(path: &Path) -> Vec<i16> {
    let mut r = hound::WavReader::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let spec = r.spec();
    assert_eq!(
        (spec.channels, spec.sample_rate, spec.bits_per_sample),
        (1, 8000, 16),
        "{}: {spec:?}",
        path.display()
    );
    r.samples::<i16>().map(|s| s.unwrap()).collect()
}

/// Files in `dir` whose name ends with `suffix`.
fn files_ending(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.to_string_lossy().ends_with(suffix))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// 1 s of silence, `tone_secs` of 440 Hz, 1 s of silence.
fn tone_signal(tone_secs: f64) -> Vec<i16> {
    let mut v = vec![0i16; 8000];
    let n = (tone_secs * 8000.0) as usize;
    for i in 0..n {
        let x = (i as f64 * 440.0 * 2.0 * std::f64::consts::PI / 8000.0).sin() * 8000.0;
        v.push(x as i16);
    }
    v.extend(std::iter::repeat_n(0i16, 8000));
    v
}

/// What a PCMU receiver decodes from the prompt: `decode(encode(prompt))`.
fn pcmu_roundtrip(pcm: &[i16]) -> Vec<i16> {
    let mut enc = vec![0u8; pcm.len()];
    g711::encode(Codec::Pcmu, pcm, &mut enc);
    let mut dec = vec![0i16; pcm.len()];
    g711::decode(Codec::Pcmu, &enc, &mut dec);
    dec
}

/// Whether a decoded sample is the one we sent. Exact, except that baresip's µ-law table
/// (libre's) decodes the two zero codes (0xFF, 0x7F) to ±2 where ITU-T G.711 says 0.
fn same_sample(heard: i16, want: i16) -> bool {
    heard == want || (want == 0 && heard.abs() <= 2)
}

/// The longest run of samples of `heard` that equals `want` once aligned, searching every
/// alignment of the window `want[from..from + probe]` in `heard`.
fn longest_exact_run(heard: &[i16], want: &[i16], from: usize, probe: usize) -> usize {
    let key = &want[from..from + probe];
    let mut best = 0;
    for o in 0..heard.len().saturating_sub(probe) {
        if !heard[o..o + probe]
            .iter()
            .zip(key)
            .all(|(&h, &w)| same_sample(h, w))
        {
            continue;
        }
        // Extend both ways from the matching window.
        let mut start = 0;
        while start < from && start < o && same_sample(heard[o - start - 1], want[from - start - 1])
        {
            start += 1;
        }
        let mut end = probe;
        while o + end < heard.len()
            && from + end < want.len()
            && same_sample(heard[o + end], want[from + end])
        {
            end += 1;
        }
        best = best.max(start + end);
    }
    best
}

/// Energy of 20 ms frames.
fn frame_rms(pcm: &[i16]) -> Vec<f64> {
    pcm.chunks(160)
        .map(|c| (c.iter().map(|&s| (s as f64).powi(2)).sum::<f64>() / c.len() as f64).sqrt())
        .collect()
}

/// Goertzel power of `freq` in `pcm`, relative to the total power.
fn goertzel_share(pcm: &[i16], freq: f64) -> f64 {
    let k = 2.0 * (2.0 * std::f64::consts::PI * freq / 8000.0).cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in pcm {
        let s = x as f64 + k * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    let power = s1 * s1 + s2 * s2 - k * s1 * s2;
    let total: f64 = pcm.iter().map(|&s| (s as f64).powi(2)).sum();
    // A pure tone over N samples gives power ≈ total * N / 2.
    power / (total * pcm.len() as f64 / 2.0)
}

/// The one recording the engine saved for the call that just ended, and the engine's log.
fn saved_recording(engine: &Engine) -> (Vec<i16>, String) {
    let recordings = engine.dir.path().join("data/recordings");
    common::wait::poll_until(Duration::from_secs(10), || {
        !files_ending(&recordings, ".wav").is_empty()
            && engine.log_text().contains("recording saved")
    });
    let saved = files_ending(&recordings, ".wav");
    let log = engine.log_text();
    assert_eq!(saved.len(), 1, "recordings {saved:?}\n{log}");
    // The caller hung up mid-recording: the flow still reports the saved message.
    assert!(
        log.contains("recording saved") && log.contains("speech=true"),
        "{log}"
    );
    (read_wav(&saved[0]), log)
}

/// The French greeting, the first prompt a caller hears, as PCMU carries it.
fn french_greeting_through_pcmu() -> Vec<i16> {
    pcmu_roundtrip(&read_wav(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts/fr/greeting.wav"),
    ))
}

/// SIPp plays pcaps through a raw socket, which needs root (CI runs as root). Elsewhere a pcap
/// test says so and stops, unless CI is set: there it must run.
fn can_play_pcaps(test: &str) -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !root && std::env::var_os("CI").is_none() {
        common::skip(test, "SIPp needs root to play pcaps");
        return false;
    }
    true
}

/// The RTP payloads of a pcap of Ethernet/IPv4/UDP/RTP packets, in file order.
fn pcap_rtp_payloads(path: &Path) -> Vec<Vec<u8>> {
    let d = std::fs::read(path).unwrap();
    assert_eq!(&d[..4], &[0xD4, 0xC3, 0xB2, 0xA1], "little-endian pcap");
    let mut off = 24;
    let mut out = Vec::new();
    while off + 16 <= d.len() {
        let incl = u32::from_le_bytes(d[off + 8..off + 12].try_into().unwrap()) as usize;
        let pkt = &d[off + 16..off + 16 + incl];
        off += 16 + incl;
        let ip = &pkt[14..];
        let udp = &ip[(ip[0] & 0x0F) as usize * 4..];
        out.push(udp[8 + 12..].to_vec());
    }
    out
}

#[test]
fn sipp_echoes_the_greeting_and_it_is_recorded() {
    // SIPp with -rtp_echo returns every RTP packet it receives: what the engine records is the
    // greeting as it reached SIPp.
    let engine = Engine::start("", LINE_TEST);
    let out = sipp(&engine, "uac_echo.xml", "611", false, &["-rtp_echo"]);
    assert_sipp_ok(&engine, &out, "echo");
    let (rec, log) = saved_recording(&engine);
    let want = french_greeting_through_pcmu();
    // The call lasts 4 s: at least 3 s of the greeting come back unaltered.
    let run = longest_exact_run(&rec, &want, 4000, 800);
    assert!(
        run >= 24000,
        "longest exact match with the greeting: {run} samples (recorded {})\n{log}",
        rec.len()
    );
}

#[test]
fn pcma_in_30ms_packets_from_sipp_is_recorded_exactly() {
    if !can_play_pcaps("pcma_in_30ms_packets_from_sipp_is_recorded_exactly") {
        return;
    }
    let pcap = Path::new("/usr/share/sip-tester/g711a.pcap");
    let payloads = pcap_rtp_payloads(pcap);
    assert!(payloads.iter().all(|p| p.len() == 240), "30 ms packets");
    let sent: Vec<u8> = payloads.concat();
    let mut want = vec![0i16; sent.len()];
    g711::decode(Codec::Pcma, &sent, &mut want);

    let engine = Engine::start("", LINE_TEST);
    let out = sipp(&engine, "uac_pcap_g711a.xml", "611", false, &[]);
    assert_sipp_ok(&engine, &out, "PCMA pcap");
    let (rec, log) = saved_recording(&engine);
    assert!(log.contains("codec=Pcma"), "{log}");
    // Probe 1 s in; the match must then run through nearly all of the 7 s sent (only silence
    // trimmed at the ends may be missing).
    let run = longest_exact_run(&rec, &want, 8000, 800);
    assert!(
        run >= want.len() * 9 / 10,
        "recording matches the 30 ms packets sent for {run} of {} samples (recorded {})\n{log}",
        want.len(),
        rec.len()
    );
}

#[test]
fn baresip_hears_the_greeting_and_is_recorded() {
    let engine = Engine::start("", LINE_TEST);
    let say = tone_signal(3.0);
    let dir = baresip_dir(&say, "audio_codecs=PCMU;");
    let out = Command::new("timeout")
        .args(["40", "baresip", "-f", dir.path().to_str().unwrap()])
        .args(["-e", &format!("/dial sip:611@{}", engine.addr()), "-t", "8"])
        .output()
        .expect("run baresip (apt-get install baresip)");
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    let log = engine.log_text();
    assert!(
        said.contains("Call established"),
        "baresip:\n{said}\nengine:\n{log}"
    );

    // (a) baresip decoded the French greeting sample for sample.
    let dumps = files_ending(dir.path(), "-dec.wav");
    assert_eq!(dumps.len(), 1, "decoded dumps {dumps:?}\nbaresip:\n{said}");
    let heard = read_wav(&dumps[0]);
    let want = french_greeting_through_pcmu();
    // Probe with a loud stretch 0.5 s into the prompt, then extend the exact match.
    let run = longest_exact_run(&heard, &want, 4000, 800);
    assert!(
        run >= 8000,
        "longest exact match with the greeting: {run} samples (heard {} samples)",
        heard.len()
    );

    // (b) the engine recorded the tone baresip sent: 3 s of 440 Hz after 1 s of silence.
    let (rec, log) = saved_recording(&engine);
    let rms = frame_rms(&rec);
    let loud: Vec<usize> = (0..rms.len()).filter(|&i| rms[i] > 1000.0).collect();
    assert!(
        !loud.is_empty(),
        "recording is silent ({} samples)\n{log}",
        rec.len()
    );
    let (first, last) = (loud[0], *loud.last().unwrap());
    // One unbroken tone of 3 s (150 packets), give or take one packet.
    assert_eq!(loud.len(), last - first + 1, "tone broken up: {loud:?}");
    assert!(
        (149..=151).contains(&loud.len()),
        "tone lasts {} frames of 20 ms, sent 150",
        loud.len()
    );
    // Leading silence is trimmed to the 200 ms margin kept around speech (VAD).
    assert!((9..=11).contains(&first), "tone starts at frame {first}");
    let tone = &rec[first * 160..(last + 1) * 160];
    let share = goertzel_share(tone, 440.0);
    assert!(share > 0.9, "440 Hz carries {share:.3} of the tone's power");
    assert!(goertzel_share(tone, 1000.0) < 0.01);
    // What baresip sent was recorded sample for sample through PCMU.
    let sent = pcmu_roundtrip(&say[8000..8000 + 24000]);
    let run = longest_exact_run(tone, &sent, 800, 800);
    assert!(
        run >= 23000,
        "recorded tone matches what was sent for {run} samples"
    );
}

/// The digits the engine logged as pressed, in order, from `source`.
fn keys_pressed(log: &str, source: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains("key pressed") && l.contains(&format!("source={source}")))
        .filter_map(|l| l.split("digit=").nth(1))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn rfc4733_digits_from_sipp_pcaps_are_pressed_once_each() {
    if !can_play_pcaps("rfc4733_digits_from_sipp_pcaps_are_pressed_once_each") {
        return;
    }
    let engine = Engine::start("", LINE_TEST);
    let out = sipp(&engine, "uac_dtmf_rfc4733.xml", "611", false, &[]);
    assert_sipp_ok(&engine, &out, "RFC 4733 pcaps");
    // Each pcap is one event: start packets, then the end packet sent three times.
    let log = engine.log_text();
    assert_eq!(
        keys_pressed(&log, "Rfc4733"),
        ["1", "3", "5", "7", "9", "*", "#", "0"],
        "{log}"
    );
    assert_eq!(log.matches("key pressed").count(), 8, "{log}");
}

#[test]
fn sip_info_digit_is_pressed() {
    let engine = Engine::start("", LINE_TEST);
    let out = sipp(&engine, "uac_dtmf_info.xml", "611", false, &[]);
    assert_sipp_ok(&engine, &out, "SIP INFO");
    let log = engine.log_text();
    assert_eq!(keys_pressed(&log, "SipInfo"), ["5"], "{log}");
    assert_eq!(log.matches("key pressed").count(), 1, "{log}");
}

/// Kills a child process (by its id) when dropped, even when the test fails.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn recording_cut_by_kill_9_is_recovered_at_restart() {
    let mut engine = Engine::start("", LINE_TEST);
    // 1 s of silence, then a tone for longer than the call lasts.
    let dir = baresip_dir(&tone_signal(12.0), "audio_codecs=PCMU;");
    let baresip = Command::new("baresip")
        .args(["-f", dir.path().to_str().unwrap()])
        .args([
            "-e",
            &format!("/dial sip:611@{}", engine.addr()),
            "-t",
            "30",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(dir.path().join("baresip.log")).unwrap())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run baresip (apt-get install baresip)");
    let _baresip = KillOnDrop(baresip);
    let baresip_log =
        || std::fs::read_to_string(dir.path().join("baresip.log")).unwrap_or_default();

    // The recording starts when the call is answered.
    let recordings = engine.dir.path().join("data/recordings");
    let parts = common::wait::wait_for_or(
        "a recording to start",
        Duration::from_secs(20),
        || Some(files_ending(&recordings, ".wav.part")).filter(|p| !p.is_empty()),
        || {
            format!(
                "--- engine\n{}\n--- baresip\n{}",
                engine.log_text(),
                baresip_log()
            )
        },
    );
    let started = Instant::now();
    // Not an event: the caller talks for 3.5 s, and the kill cuts the call at that point.
    std::thread::sleep(Duration::from_millis(3500));
    let talked = started.elapsed();
    engine.kill9();
    let first_log = engine.log_text();
    assert!(!first_log.contains("recording saved"), "{first_log}");
    assert_eq!(files_ending(&recordings, ".wav.part"), parts, "{first_log}");
    assert!(files_ending(&recordings, ".wav").is_empty());

    // A new engine in the same working directory makes the recording whole.
    let engine = Engine::start_in(engine.into_dir(), "", LINE_TEST);
    let log = engine.log_text();
    assert_eq!(
        log.matches("recovered an unfinished recording").count(),
        1,
        "{log}"
    );
    assert!(files_ending(&recordings, ".part").is_empty(), "{log}");
    let saved = files_ending(&recordings, ".wav");
    assert_eq!(saved.len(), 1, "{saved:?}");
    let rec = read_wav(&saved[0]);
    // Flushed at least every second: at most one second (plus scheduling slack) is lost.
    let secs = rec.len() as f64 / 8000.0;
    let talked = talked.as_secs_f64();
    assert!(
        secs > talked - 1.5 && secs < talked + 0.2,
        "recovered {secs:.2} s of a call killed after {talked:.2} s"
    );
    // Its content is what baresip sent: about 1 s of silence, then the 440 Hz tone.
    let rms = frame_rms(&rec);
    let first = rms.iter().position(|&r| r > 1000.0).expect("no tone");
    // 50 frames of silence were sent first; the recording may miss the first packets or two if
    // they beat the ACK.
    assert!((46..=51).contains(&first), "tone starts at frame {first}");
    let tone = &rec[first * 160..];
    assert!(
        frame_rms(tone).iter().all(|&r| r > 1000.0),
        "tone broken up"
    );
    assert!(goertzel_share(tone, 440.0) > 0.9);
}
