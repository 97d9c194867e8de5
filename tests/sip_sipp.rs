//! The built engine called by a real third-party SIP peer (SIPp) over UDP and TCP.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{assert_sipp_ok, sipp, Engine};

#[test]
fn caller_hangs_up_over_udp_and_tcp() {
    let engine = Engine::start("", "");
    for tcp in [false, true] {
        let out = sipp(&engine, "uac_hangup.xml", "611", tcp, &[]);
        assert_sipp_ok(&engine, &out, if tcp { "TCP call" } else { "UDP call" });
    }
    // E.164 forms of the main number reach the same service.
    for number in ["+15149073400", "15149073400", "5149073400"] {
        let out = sipp(&engine, "uac_hangup.xml", number, false, &[]);
        assert_sipp_ok(&engine, &out, number);
    }
    let log = engine.log_text();
    assert_eq!(log.matches("call started").count(), 5, "{log}");
    assert_eq!(log.matches("call ended").count(), 5, "{log}");
}

#[test]
fn engine_hangs_up_over_udp_and_tcp() {
    let engine = Engine::start("", "[call]\nmax_call_secs = 1\n");
    for tcp in [false, true] {
        let out = sipp(&engine, "uac_remote_bye.xml", "611", tcp, &[]);
        assert_sipp_ok(&engine, &out, "engine-side hang-up");
    }
}

/// Runs a SIPp call and stops the engine (SIGTERM) once its log shows `reached`; returns
/// SIPp's output.
fn sipp_then_stop(engine: &Engine, scenario_file: &str, reached: &str) -> std::process::Output {
    std::thread::scope(|scope| {
        let caller = scope.spawn(|| sipp(engine, scenario_file, "611", false, &[]));
        // `reached` is logged once the call is where the test wants it (the recording starts
        // when the ACK confirms the call): stop at once.
        common::wait::wait_until_or(
            &format!("the call to reach \"{reached}\""),
            Duration::from_secs(15),
            || engine.log_text().contains(reached),
            || engine.log_text(),
        );
        engine.terminate();
        caller.join().expect("sipp thread")
    })
}

#[test]
fn stopping_the_engine_hangs_up_and_saves_the_recording() {
    // A service manager stops the engine (SIGTERM) in the middle of a call: the caller gets a
    // BYE (SIPp waits for it), and what they said is a finished WAV, not a `.part`.
    // The line test records from the first packet.
    let mut engine = Engine::start("", "[call]\nflow = \"record-test\"\n");
    let out = sipp_then_stop(&engine, "uac_remote_bye.xml", "recording path=");
    assert_sipp_ok(&engine, &out, "BYE from a stopping engine");
    let log = engine.stop();
    assert!(log.contains("engine stopping: hanging up"), "{log}");
    assert!(log.contains("recording saved"), "{log}");
    let recordings = engine.dir.path().join("data/recordings");
    let names: Vec<String> = std::fs::read_dir(&recordings)
        .expect("recordings dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    assert!(names[0].ends_with(".wav"), "{names:?}");
}

#[test]
fn stopping_the_engine_refuses_a_ringing_call_with_503() {
    let engine = Engine::start("", "[call]\nring_ms = 10000\n");
    let out = sipp_then_stop(&engine, "uac_503.xml", "call started");
    assert_sipp_ok(&engine, &out, "503 from a stopping engine");
}

#[test]
fn cancel_before_answer_gets_487() {
    let engine = Engine::start("", "[call]\nring_ms = 5000\n");
    for tcp in [false, true] {
        let out = sipp(&engine, "uac_cancel.xml", "611", tcp, &[]);
        assert_sipp_ok(&engine, &out, "CANCEL");
    }
    assert!(engine.log_text().contains("cancelled by caller"));
}

#[test]
fn options_keepalive_over_udp_and_tcp() {
    let engine = Engine::start("", "");
    for tcp in [false, true] {
        let out = sipp(&engine, "options.xml", "611", tcp, &[]);
        assert_sipp_ok(&engine, &out, "OPTIONS");
    }
}

#[test]
fn unknown_number_gets_404() {
    let engine = Engine::start("", "");
    let out = sipp(&engine, "uac_404.xml", "5145550199", false, &[]);
    assert_sipp_ok(&engine, &out, "404");
}

#[test]
fn untrusted_source_gets_403_and_is_logged() {
    let engine = Engine::start("trusted = [\"192.0.2.0/24\"]", "");
    let out = sipp(&engine, "uac_403.xml", "611", false, &[]);
    assert_sipp_ok(&engine, &out, "403");
    let log = engine.log_text();
    assert!(
        log.contains("untrusted source") && log.contains("source=127.0.0.1:"),
        "{log}"
    );
}

#[test]
fn no_common_codec_gets_488() {
    let engine = Engine::start("", "");
    let out = sipp(&engine, "uac_488.xml", "611", false, &[]);
    assert_sipp_ok(&engine, &out, "488");
}

#[test]
fn malformed_datagrams_are_answered_or_dropped_and_calls_go_on() {
    let engine = Engine::start("", "");
    let fixtures =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sip-torture");
    let mut answered_400 = 0;
    for name in [
        "badinv01",
        "clerr",
        "ncl",
        "quotbal",
        "ltgtruri",
        "lwsstart",
        "mismatch01",
        "multi01",
        "mcl01",
    ] {
        let bytes = std::fs::read(fixtures.join(format!("{name}.dat"))).unwrap();
        let reply = engine.exchange_udp(&bytes, Duration::from_secs(2));
        let reply = reply.unwrap_or_else(|| panic!("{name}: no answer"));
        assert!(
            reply.starts_with(b"SIP/2.0 400 "),
            "{name}: {}",
            String::from_utf8_lossy(&reply)
        );
        assert!(String::from_utf8_lossy(&reply).contains("Warning: 399 astreinte"));
        answered_400 += 1;
    }
    assert_eq!(answered_400, 9);
    let bad_version = std::fs::read(fixtures.join("badvers.dat")).unwrap();
    let reply = engine
        .exchange_udp(&bad_version, Duration::from_secs(2))
        .unwrap();
    assert!(reply.starts_with(b"SIP/2.0 505 "));
    // Garbage nobody can be told about is dropped without a word.
    for junk in [
        &b"\x00\xff\x13\x37"[..],
        b"HELLO",
        b"SIP/2.0 999 nope\r\n\r\n",
        &[0x80u8; 1400][..],
    ] {
        assert!(engine
            .exchange_udp(junk, Duration::from_millis(300))
            .is_none());
    }
    // A TCP peer that breaks framing is cut off; other calls are unaffected.
    let mut tcp = TcpStream::connect(engine.addr()).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    tcp.write_all(b"OPTIONS sip:611@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:1;branch=z9hG4bKx\r\nContent-Length: -5\r\n\r\n").unwrap();
    let mut buf = Vec::new();
    let _ = tcp.read_to_end(&mut buf);
    assert!(
        buf.starts_with(b"SIP/2.0 400 "),
        "{}",
        String::from_utf8_lossy(&buf)
    );
    for tcp in [false, true] {
        let out = sipp(&engine, "uac_hangup.xml", "611", tcp, &[]);
        assert_sipp_ok(&engine, &out, "call after garbage");
    }
}

#[test]
fn bad_config_is_refused_with_file_line_and_fix() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[sip]\nlisten = \"127.0.0.1:5060\"\ntrusted = [\"10.0.0/8\"]\n\n[media]\nrtp_ports = \"20001-19999\"\n").unwrap();
    for cmd in ["check-config", "serve"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_astreinte"))
            .args([cmd, "--config", path.to_str().unwrap()])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{cmd}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("bad.toml:3: sip.trusted[0]"), "{cmd}: {err}");
        assert!(err.contains("bad.toml:6: media.rtp_ports"), "{cmd}: {err}");
        assert!(err.contains("fix:"), "{err}");
    }
}
