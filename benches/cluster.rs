//! Scale-out benchmark: the same SIPp load against one node called directly and against two
//! nodes behind Kamailio's dispatcher (`deploy/kamailio/kamailio.cfg`), both on one PostgreSQL.
//!
//! 1. Call set-up rate: calls answered and hung up at once (INVITE, 100, 200, ACK, BYE, 200),
//!    offered at rising rates for `ASTREINTE_BENCH_SECONDS` (default 10) each, until a call
//!    fails; the highest rate with zero failures.
//! 2. Concurrent IVR calls: N calls placed over 10 s and each held 20 s in the IVR (prompts
//!    playing), so all N are up together; the largest N with zero failures.
//!
//! On a 2-core machine the engines, Kamailio and SIPp share the cores, so the result is the
//! ratio of the two set-ups, not the absolute figures.
//!
//!     ASTREINTE_BENCH_PG_URL=postgres://... cargo bench --bench cluster
//!
//! (`ASTREINTE_TEST_PG_URL` is used when the first is unset; needs sipp and kamailio.)
//! `ASTREINTE_BENCH_ONLY=direct` or `=cluster` runs one of the two set-ups.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{free_port, Engine, Schema};

#[allow(dead_code)]
#[path = "../tests/common/kamailio.rs"]
mod kamailio;

/// A node on the shared database; returns it with its SIP address once it answers OPTIONS.
fn node(dir: &Path, name: &str, db: &str, rtp: &str) -> (Engine, SocketAddr) {
    let port = free_port();
    let engine = Engine::spawn(
        dir,
        &format!("{name}.toml"),
        &format!(
            "[sip]\nlisten = \"127.0.0.1:{port}\"\ndrain_secs = 0\n\n[media]\nrtp_ports = \"{rtp}\"\nrecordings_dir = \"{}/{name}-recordings\"\n\n[store]\nurl = \"{db}\"\n",
            dir.display()
        ),
        "warn",
    );
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    wait_answering(addr);
    (engine, addr)
}

fn wait_answering(addr: SocketAddr) {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let local = sock.local_addr().expect("addr");
    let deadline = Instant::now() + Duration::from_secs(30);
    for n in 0.. {
        assert!(Instant::now() < deadline, "node {addr} never answered");
        let msg = format!("OPTIONS sip:{addr} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKb{n}\r\nFrom: <sip:b@{local}>;tag=b\r\nTo: <sip:{addr}>\r\nCall-ID: bench-ready-{n}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n");
        let _ = sock.send_to(msg.as_bytes(), addr);
        let mut buf = [0u8; 2048];
        if let Ok((len, _)) = sock.recv_from(&mut buf) {
            if buf[..len].starts_with(b"SIP/2.0 200") {
                return;
            }
        }
    }
}

struct Run {
    ok: u64,
    failed: u64,
    seconds: f64,
}

/// SIPp: `calls` calls at `rate` a second with `scenario`, each held `hold_ms`.
fn sipp(target: SocketAddr, scenario: &str, rate: u32, calls: u32, hold_ms: u32) -> Run {
    let work = tempfile::tempdir().expect("tempdir");
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("benches/sipp")
        .join(scenario);
    let started = Instant::now();
    let mut child = Command::new("sipp")
        .current_dir(work.path())
        .arg(target.to_string())
        .args(["-sf", scenario.to_str().expect("path"), "-s", "611"])
        .args(["-i", "127.0.0.1", "-p", &free_port().to_string()])
        .args(["-mp", &free_port().to_string()])
        .args(["-r", &rate.to_string(), "-m", &calls.to_string()])
        .args(["-l", "100000", "-d", &hold_ms.to_string()])
        .args(["-nostdin", "-timeout", "180s"])
        .args(["-trace_stat", "-stf", "stat.csv", "-fd", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run sipp");
    // SIPp overloaded past its own rate can stop making progress without ending (seen at 1,500
    // calls/s through the proxy): what did not finish in time counts as failed.
    let deadline = started
        + Duration::from_secs(u64::from(calls / rate.max(1)) + u64::from(hold_ms / 1000) + 60);
    while child.try_wait().ok().flatten().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let seconds = started.elapsed().as_secs_f64();
    let (ok, failed) =
        common::sipp_call_counts(&work.path().join("stat.csv")).unwrap_or((0, u64::from(calls)));
    Run {
        ok,
        failed,
        seconds,
    }
}

/// The highest offered rate answered with zero failures, and the calls/s it achieved.
fn setup_rate(label: &str, target: SocketAddr, seconds: u32) -> f64 {
    let mut best = 0.0f64;
    for rate in [100u32, 200, 400, 600, 800, 1000, 1500, 2000] {
        let calls = rate * seconds;
        let run = sipp(target, "uac_load.xml", rate, calls, 0);
        let cps = run.ok as f64 / run.seconds;
        println!(
            "{label}: offered {rate} cps: {} ok, {} failed, {cps:.0} calls/s",
            run.ok, run.failed
        );
        if run.failed > 0 || run.ok < u64::from(calls) {
            break;
        }
        best = best.max(cps);
    }
    best
}

/// The largest number of IVR calls up at once with zero failures.
fn concurrent_ivr(label: &str, target: SocketAddr) -> u32 {
    let mut best = 0;
    for n in [500u32, 1000, 1500, 2000, 3000] {
        let run = sipp(target, "uac_hold.xml", n / 10, n, 20_000);
        println!(
            "{label}: {n} IVR calls up together (placed over 10 s, held 20 s): {} ok, {} failed",
            run.ok, run.failed
        );
        if run.failed > 0 || run.ok < u64::from(n) {
            break;
        }
        best = n;
    }
    best
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    common::require_sipp("cluster");
    let Some(admin) = std::env::var("ASTREINTE_BENCH_PG_URL")
        .or_else(|_| std::env::var("ASTREINTE_TEST_PG_URL"))
        .ok()
    else {
        eprintln!("cluster: set ASTREINTE_BENCH_PG_URL to a PostgreSQL the nodes can share");
        std::process::exit(1);
    };
    let seconds = common::bench_seconds(10) as u32;
    println!(
        "machine: {} cores, shared by the nodes, Kamailio (2 workers) and SIPp; {seconds} s per rate",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    let dir = tempfile::tempdir().expect("tempdir");
    // "direct" or "cluster" runs one set-up only (the other is reported as 0).
    let only = std::env::var("ASTREINTE_BENCH_ONLY").unwrap_or_default();

    let (one_rate, one_ivr) = if only == "cluster" {
        (0.0, 0)
    } else {
        let schema = Schema::create(&admin, "cluster");
        let (_node, addr) = node(dir.path(), "direct", &schema.url, "20000-29999");
        (
            setup_rate("one node, direct", addr, seconds),
            concurrent_ivr("one node, direct", addr),
        )
    };
    let (two_rate, two_ivr) = if only == "direct" {
        (0.0, 0)
    } else {
        let schema = Schema::create(&admin, "cluster");
        let (_a, a) = node(dir.path(), "node-a", &schema.url, "20000-24999");
        let (_b, b) = node(dir.path(), "node-b", &schema.url, "25000-29999");
        let proxy = kamailio::Kamailio::start(&[a, b], 2);
        let rate = setup_rate("two nodes behind Kamailio", proxy.addr, seconds);
        let log = proxy.log();
        let notable: Vec<&str> = log
            .lines()
            .filter(|l| !l.contains("INVITE") || l.contains("failed") || l.contains("retried"))
            .collect();
        if !notable.is_empty() {
            println!("kamailio said ({} lines):", notable.len());
            for l in notable.iter().take(20) {
                println!("  {l}");
            }
        }
        (
            rate,
            concurrent_ivr("two nodes behind Kamailio", proxy.addr),
        )
    };
    println!(
        "call set-up, zero failures: one node direct {one_rate:.0} calls/s, two nodes behind Kamailio {two_rate:.0} calls/s (ratio {:.2})",
        two_rate / one_rate.max(1.0)
    );
    println!(
        "concurrent IVR calls, zero failures: one node direct {one_ivr}, two nodes behind Kamailio {two_ivr} (ratio {:.2})",
        f64::from(two_ivr) / f64::from(one_ivr.max(1))
    );
}
