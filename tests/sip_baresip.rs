//! A real softphone (baresip, headless, audio from and to files) calls the built engine.

mod common;

use std::process::Command;

use common::{free_port, Engine};

/// Writes a baresip config that sends `say.wav` and dumps what it hears to `dump-*-dec.wav`.
fn baresip_dir(sip_port: u16) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let rtp = 40000 + (sip_port % 200) * 40; // outside the engine's 30000-39999
    std::fs::write(
        dir.path().join("config"),
        format!(
            "poll_method epoll\nsip_listen 127.0.0.1:{sip_port}\naudio_player aufile,{d}/heard.wav\naudio_source aufile,{d}/say.wav\naudio_alert aufile,/dev/null\nrtp_ports {rtp}-{}\nmodule_path /usr/lib/baresip/modules\nmodule g711.so\nmodule aufile.so\nmodule sndfile.so\nmodule account.so\nmodule menu.so\nmodule uuid.so\nsnd_path {d}\n",
            rtp + 39
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("accounts"),
        "<sip:tester@127.0.0.1>;regint=0\n",
    )
    .unwrap();
    // Two seconds of a 440 Hz tone: baresip hangs up when its source file ends.
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(dir.path().join("say.wav"), spec).unwrap();
    for i in 0..16000 {
        let v = (i as f64 * 440.0 * 2.0 * std::f64::consts::PI / 8000.0).sin() * 8000.0;
        w.write_sample(v as i16).unwrap();
    }
    w.finalize().unwrap();
    dir
}

#[test]
fn baresip_calls_611_and_hangs_up() {
    let engine = Engine::start("", "");
    let dir = baresip_dir(free_port());
    let out = Command::new("timeout")
        .args(["30", "baresip", "-f", dir.path().to_str().unwrap()])
        .args(["-e", &format!("/dial sip:611@{}", engine.addr()), "-t", "4"])
        .output()
        .expect("run baresip (apt-get install baresip)");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("Call established"),
        "baresip:\n{said}\nengine:\n{}",
        engine.log_text()
    );
    assert!(said.contains("terminated"), "{said}");
    let log = engine.log_text();
    assert!(
        log.contains("call started") && log.contains("number=611"),
        "{log}"
    );
    assert!(log.contains("call ended reason=remote hung up"), "{log}");
}
