//! Starts the built engine on free ports with a temporary config, and runs SIPp against it.
//! Everything started here is stopped on drop, even when a test fails.

#![allow(dead_code)]

use std::io::Write;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A free port on 127.0.0.1 for both UDP and TCP.
pub fn free_port() -> u16 {
    for _ in 0..100 {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        let port = udp.local_addr().unwrap().port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port");
}

/// A base port for SIPp's media: SIPp binds the port and the three above it (audio and video
/// RTP/RTCP), so all four must be free.
pub fn free_media_base() -> u16 {
    for _ in 0..200 {
        let p = free_port();
        if p % 2 == 0 && p < 65530 && (1..4).all(|i| UdpSocket::bind(("127.0.0.1", p + i)).is_ok())
        {
            return p;
        }
    }
    panic!("no four free ports in a row");
}

pub struct Engine {
    child: Option<Child>,
    pub sip_port: u16,
    pub dir: tempfile::TempDir,
    pub log: PathBuf,
}

impl Engine {
    /// Starts `astreinte serve` with `sip_extra` lines added to `[sip]` and `sections` appended.
    pub fn start(sip_extra: &str, sections: &str) -> Engine {
        Engine::start_in(tempfile::tempdir().expect("tempdir"), sip_extra, sections)
    }

    /// Like [`Engine::start`], in an existing working directory (e.g. one a killed engine left
    /// behind, see [`Engine::into_dir`]); its config and log are rewritten, the rest is kept.
    pub fn start_in(dir: tempfile::TempDir, sip_extra: &str, sections: &str) -> Engine {
        let sip_port = free_port();
        // Tests stop at once unless they test the drain; `sections` may bring their own
        // [media] (a node's own RTP range) and [store] (a shared PostgreSQL).
        let drain = if sip_extra.contains("drain_secs") {
            ""
        } else {
            "drain_secs = 0\n"
        };
        let media = if sections.contains("[media]") {
            String::new()
        } else {
            "[media]\nrtp_ports = \"30000-39999\"\n\n".to_string()
        };
        let store = if sections.contains("[store]") {
            String::new()
        } else {
            format!(
                "[store]\nurl = \"sqlite://{}/astreinte.db\"\n\n",
                dir.path().display()
            )
        };
        let config = format!(
            "[sip]\nlisten = \"127.0.0.1:{sip_port}\"\n{drain}{sip_extra}\n\n{media}{store}{sections}\n"
        );
        let config_path = dir.path().join("astreinte.toml");
        std::fs::write(&config_path, config).expect("write config");
        let log = dir.path().join("engine.log");
        let log_file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_astreinte"))
            .arg("serve")
            .arg("--config")
            .arg(&config_path)
            .current_dir(dir.path())
            .env("ASTREINTE_LOG", "info,astreinte=debug")
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("start engine");
        let mut engine = Engine {
            child: Some(child),
            sip_port,
            dir,
            log,
        };
        engine.wait_ready();
        engine
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.sip_port))
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let local = sock.local_addr().unwrap();
        let mut n = 0;
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("engine exited early ({status}):\n{}", self.log_text());
                }
            }
            n += 1;
            let msg = format!(
                "OPTIONS sip:{} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKready{n}\r\nFrom: <sip:probe@{local}>;tag=p\r\nTo: <sip:{}>\r\nCall-ID: ready-{n}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
                self.addr(),
                self.addr()
            );
            let _ = sock.send_to(msg.as_bytes(), self.addr());
            let mut buf = [0u8; 4096];
            if let Ok((len, _)) = sock.recv_from(&mut buf) {
                if buf[..len].starts_with(b"SIP/2.0 200") {
                    return;
                }
            }
        }
        panic!("engine not ready:\n{}", self.log_text());
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends one datagram and returns the first answer within `wait`, if any.
    pub fn exchange_udp(&self, bytes: &[u8], wait: Duration) -> Option<Vec<u8>> {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(wait)).unwrap();
        sock.send_to(bytes, self.addr()).ok()?;
        let mut buf = vec![0u8; 65536];
        let (n, _) = sock.recv_from(&mut buf).ok()?;
        buf.truncate(n);
        Some(buf)
    }

    /// Stops the engine (SIGTERM, then SIGKILL) and returns its log.
    pub fn stop(&mut self) -> String {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            wait::poll_until(Duration::from_secs(5), || {
                matches!(child.try_wait(), Ok(Some(_)))
            });
            let _ = child.kill();
            let _ = child.wait();
        }
        self.log_text()
    }
}

impl Engine {
    /// Asks the engine to stop (SIGTERM), as a service manager does, without waiting.
    pub fn terminate(&self) {
        if let Some(child) = self.child.as_ref() {
            let _ = Command::new("kill").arg(child.id().to_string()).status();
        }
    }

    /// Waits up to `within` for the engine to exit by itself; its exit status if it did.
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let child = self.child.as_mut()?;
        let status = wait::poll_for(within, || child.try_wait().ok().flatten())?;
        self.child = None;
        Some(status)
    }

    /// Kills the engine with SIGKILL (no clean-up at all) and waits for it.
    /// The engine's process id, while it runs (for a fault a drill plays on it).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-9", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }

    /// Stops the engine if it still runs and hands over its working directory, which then
    /// outlives it (for [`Engine::start_in`]).
    pub fn into_dir(mut self) -> tempfile::TempDir {
        self.stop();
        std::mem::replace(&mut self.dir, tempfile::tempdir().expect("tempdir"))
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sipp")
        .join(name)
}

/// Runs SIPp with a scenario against the engine; returns its output. SIPp exits 0 when every
/// call succeeded.
pub fn sipp(
    engine: &Engine,
    scenario_file: &str,
    service: &str,
    tcp: bool,
    extra: &[&str],
) -> Output {
    // Ports are picked free but may be taken by another test before SIPp binds them: a bind
    // failure is retried with new ports, any other failure is the test's.
    let mut attempt = 0;
    loop {
        attempt += 1;
        let (out, errors) = sipp_once(engine, scenario_file, service, tcp, extra);
        let bind_failed = String::from_utf8_lossy(&out.stderr).contains("Unable to bind")
            || errors.contains("Unable to bind");
        if out.status.success() || !bind_failed || attempt == 3 {
            let _ = std::io::stderr().write_all(errors.as_bytes());
            return out;
        }
    }
}

fn sipp_once(
    engine: &Engine,
    scenario_file: &str,
    service: &str,
    tcp: bool,
    extra: &[&str],
) -> (Output, String) {
    let local_port = free_port();
    let media_port = free_media_base();
    let work = tempfile::tempdir().expect("tempdir");
    let mut cmd = Command::new("sipp");
    cmd.current_dir(work.path())
        .arg(engine.addr().to_string())
        .args(["-sf", scenario(scenario_file).to_str().unwrap()])
        .args(["-s", service])
        .args(["-i", "127.0.0.1"])
        .args(["-p", &local_port.to_string()])
        .args(["-mp", &media_port.to_string()])
        .args(["-m", "1", "-timeout", "20s", "-timeout_error", "-nostdin"])
        .args(["-trace_err"])
        .args(extra)
        .stdin(Stdio::null());
    if tcp {
        cmd.args(["-t", "t1"]);
    }
    let out = cmd.output().expect("run sipp (install sip-tester)");
    // SIPp's error log, for the failure message.
    let mut errors = String::new();
    if !out.status.success() {
        if let Ok(entries) = std::fs::read_dir(work.path()) {
            for e in entries.flatten() {
                if let Ok(text) = std::fs::read_to_string(e.path()) {
                    errors.push_str(&text);
                }
            }
        }
    }
    (out, errors)
}

pub fn assert_sipp_ok(engine: &Engine, out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: sipp failed ({:?})\n--- sipp stdout\n{}\n--- sipp stderr\n{}\n--- engine log\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        engine.log_text()
    );
}

/// A headless baresip config directory: it sends `say` (8 kHz mono 16-bit) from `say.wav` and
/// dumps what it decodes to `dump-*-dec.wav` (sndfile module). `account` adds parameters to
/// the account line (e.g. `audio_codecs=PCMU;`). SIP and RTP on free ports outside the
/// engine's RTP range (30000-39999).
pub fn baresip_dir(say: &[i16], account: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().display();
    let sip_port = free_port();
    let rtp = 40000 + (sip_port % 200) * 40;
    std::fs::write(
        dir.path().join("config"),
        format!(
            "poll_method epoll\nsip_listen 127.0.0.1:{sip_port}\naudio_player aufile,{d}/heard.wav\naudio_source aufile,{d}/say.wav\naudio_alert aufile,/dev/null\nrtp_ports {rtp}-{}\nmodule_path /usr/lib/baresip/modules\nmodule g711.so\nmodule aufile.so\nmodule sndfile.so\nmodule account.so\nmodule menu.so\nmodule uuid.so\nsnd_path {d}\n",
            rtp + 39
        ),
    )
    .expect("write baresip config");
    std::fs::write(
        dir.path().join("accounts"),
        format!("<sip:tester@127.0.0.1>;{account}regint=0\n"),
    )
    .expect("write baresip accounts");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(dir.path().join("say.wav"), spec).expect("say.wav");
    for &v in say {
        w.write_sample(v).expect("write say.wav");
    }
    w.finalize().expect("finish say.wav");
    dir
}
pub mod backends;
pub mod caller;
pub mod kamailio;
pub mod pg;
pub mod phone;
pub mod skip;
pub mod smtp;
pub mod voicemail;
pub mod wait;

pub use skip::skip;
