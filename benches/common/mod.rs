//! What the engine benchmarks share: free ports, and the release engine started with a
//! config of the bench's own and stopped when dropped.

#![allow(dead_code)]

use std::net::UdpSocket;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A free port on 127.0.0.1 for both UDP and TCP.
pub fn free_port() -> u16 {
    loop {
        let u = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let p = u.local_addr().expect("addr").port();
        if std::net::TcpListener::bind(("127.0.0.1", p)).is_ok() {
            return p;
        }
    }
}

/// `astreinte serve`, killed on drop.
pub struct Engine(pub Child);

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Engine {
    /// Writes `config` to `dir/name` and starts the engine on it, logging at `log` to nowhere.
    /// To read what the engines did: `ASTREINTE_BENCH_LOG_DIR=DIR` keeps each one's log there
    /// as `NAME.log`, at the level `ASTREINTE_BENCH_LOG` (e.g. `info`) if set.
    pub fn spawn(dir: &Path, name: &str, config: &str, log: &str) -> Engine {
        let cfg = dir.join(name);
        std::fs::write(&cfg, config).expect("write config");
        let (level, stderr) = match std::env::var_os("ASTREINTE_BENCH_LOG_DIR") {
            Some(logs) => {
                let file = Path::new(&logs).join(format!("{name}.log"));
                let out = std::fs::File::create(&file).expect("create the engine's log");
                let level = std::env::var("ASTREINTE_BENCH_LOG").unwrap_or_else(|_| log.into());
                (level, Stdio::from(out))
            }
            None => (log.to_string(), Stdio::null()),
        };
        let child = Command::new(env!("CARGO_BIN_EXE_astreinte"))
            .args(["serve", "--config", cfg.to_str().expect("path")])
            .env("ASTREINTE_LOG", level)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start engine");
        Engine(child)
    }

    /// Resident memory, KiB (0 when unknown).
    pub fn rss_kib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.0.id())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
}

/// Exits with a clear message when SIPp is missing.
pub fn require_sipp(bench: &str) {
    if Command::new("sipp").arg("-v").output().is_err() {
        eprintln!("{bench}: sipp is not installed (apt-get install sip-tester)");
        std::process::exit(1);
    }
}

/// `ASTREINTE_BENCH_SECONDS`, or `default`.
pub fn bench_seconds(default: u64) -> u64 {
    std::env::var("ASTREINTE_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Successful and failed calls from the last line of a SIPp `-trace_stat` file.
pub fn sipp_call_counts(stat_csv: &Path) -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string(stat_csv).ok()?;
    let (head, last) = (stat.lines().next()?, stat.lines().last()?);
    let cols: Vec<&str> = head.split(';').collect();
    let vals: Vec<&str> = last.split(';').collect();
    let get = |name: &str| {
        cols.iter()
            .position(|c| *c == name)
            .and_then(|i| vals.get(i))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Some((get("SuccessfulCall(C)"), get("FailedCall(C)")))
}

/// SIPp places `calls` calls (INVITE, 200, ACK, BYE) to `target` at `cps` a second with
/// `benches/sipp/uac_load.xml`; the successful and failed calls.
pub fn run_sipp_calls(
    dir: &Path,
    target: std::net::SocketAddr,
    cps: u32,
    calls: u32,
) -> (u64, u64) {
    let work = tempfile::tempdir_in(dir).expect("tempdir");
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/sipp/uac_load.xml");
    let _ = Command::new("sipp")
        .current_dir(work.path())
        .arg(target.to_string())
        .args(["-sf", scenario.to_str().expect("path"), "-s", "611"])
        .args(["-i", "127.0.0.1", "-p", &free_port().to_string()])
        .args(["-mp", &free_port().to_string()])
        .args(["-r", &cps.to_string(), "-m", &calls.to_string()])
        .args(["-nostdin", "-timeout", "120s"])
        .args(["-trace_stat", "-stf", "stat.csv", "-fd", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run sipp");
    sipp_call_counts(&work.path().join("stat.csv")).unwrap_or((0, u64::from(calls)))
}

/// The engine's memory before a flood, at its peak and after, in one line.
pub fn print_memory(before_kib: u64, peak_kib: u64, after_kib: u64) {
    println!(
        "engine memory: {:.1} MiB before, {:.1} MiB at peak, {:.1} MiB 2 s after",
        before_kib as f64 / 1024.0,
        peak_kib as f64 / 1024.0,
        after_kib as f64 / 1024.0
    );
}

/// A schema of its own on the benchmark's PostgreSQL, dropped at the end.
pub struct Schema {
    admin: String,
    name: String,
    pub url: String,
}

impl Schema {
    /// `bench` names it (e.g. "cluster"), with this process's id.
    pub fn create(admin: &str, bench: &str) -> Schema {
        let name = format!("bench_{bench}_{}", std::process::id());
        psql(admin, &format!("CREATE SCHEMA {name}"));
        let sep = if admin.contains('?') { '&' } else { '?' };
        Schema {
            admin: admin.to_string(),
            url: format!("{admin}{sep}options=-c%20search_path%3D{name}"),
            name,
        }
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        psql(
            &self.admin,
            &format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name),
        );
    }
}

pub fn psql(url: &str, sql: &str) {
    let ok = Command::new("psql")
        .args([url, "-X", "-q", "-c", sql])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "psql: {sql}");
}
