//! SIP load benchmark: SIPp drives the release engine on loopback.
//!
//! Reports (1) INVITE→200 latency at 100 calls/s — SIPp's own per-call response times (whole
//! milliseconds) and a microsecond probe client running beside it — and (2) the highest call
//! rate sustained with zero failed calls, each call being INVITE, 100, 200, ACK, BYE, 200.
//!
//! Run: `cargo bench --bench sip_load` (needs `sipp`, from Debian's sip-tester).
//! `ASTREINTE_BENCH_SECONDS` sets the length of each phase (default 10);
//! `ASTREINTE_BENCH_FLOW=record-test` measures the bare answer (a greeting loop) instead of the
//! IVR, for comparison.

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Command, Stdio};

mod common;
use common::{free_port, Engine};
use std::time::{Duration, Instant};

fn start_engine(dir: &Path, port: u16) -> Engine {
    // The IVR by default; "record-test" (the bare answer: a greeting loop) for comparison.
    let flow = std::env::var("ASTREINTE_BENCH_FLOW").unwrap_or_else(|_| "ivr".into());
    let engine = Engine::spawn(
        dir,
        "bench.toml",
        &format!(
            "[sip]\nlisten = \"127.0.0.1:{port}\"\n# one SIPp source sends every call\nrate_limit_per_source = 1000000\n\n[media]\nrtp_ports = \"40000-49999\"\n\n[store]\nurl = \"sqlite://{}/bench.db\"\n\n[call]\nflow = \"{flow}\"\n",
            dir.display()
        ),
        "warn",
    );
    std::thread::sleep(Duration::from_millis(500));
    engine
}

struct SippRun {
    ok: u64,
    failed: u64,
    seconds: f64,
    rtt_ms: Vec<f64>,
}

fn run_sipp(dir: &Path, target: SocketAddr, rate: u32, calls: u32) -> SippRun {
    let work = tempfile::tempdir_in(dir).expect("tempdir");
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/sipp/uac_load.xml");
    let started = Instant::now();
    let status = Command::new("sipp")
        .current_dir(work.path())
        .arg(target.to_string())
        .args(["-sf", scenario.to_str().expect("path"), "-s", "611"])
        .args([
            "-i",
            "127.0.0.1",
            "-p",
            &free_port().to_string(),
            "-mp",
            &free_port().to_string(),
        ])
        .args([
            "-r",
            &rate.to_string(),
            "-m",
            &calls.to_string(),
            "-l",
            "100000",
        ])
        .args([
            "-nostdin",
            "-timeout",
            "120s",
            "-trace_rtt",
            "-rtt_freq",
            "1",
        ])
        .args(["-trace_stat", "-stf", "stat.csv", "-fd", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run sipp");
    let seconds = started.elapsed().as_secs_f64();
    let _ = status;
    let mut run = SippRun {
        ok: 0,
        failed: 0,
        seconds,
        rtt_ms: Vec::new(),
    };
    if let Some((ok, failed)) = common::sipp_call_counts(&work.path().join("stat.csv")) {
        run.ok = ok;
        run.failed = failed;
    }
    for entry in std::fs::read_dir(work.path()).expect("read dir").flatten() {
        if entry.file_name().to_string_lossy().ends_with("_rtt.csv") {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            for line in text.lines().skip(1) {
                if let Some(v) = line.split(';').nth(1).and_then(|v| v.parse::<f64>().ok()) {
                    run.rtt_ms.push(v);
                }
            }
        }
    }
    run
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// One call at a time from a plain UDP socket, timing INVITE→200 in microseconds.
fn probe(target: SocketAddr, calls: u32, interval: Duration) -> Vec<f64> {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let local = sock.local_addr().expect("addr");
    let sdp = "v=0\r\no=p 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\n";
    let mut out = Vec::new();
    let mut buf = vec![0u8; 8192];
    for i in 0..calls {
        let next = Instant::now() + interval;
        let call_id = format!("probe-{i}-{}", std::process::id());
        let head = |method: &str, cseq: u32, branch: &str, to_tag: &str| {
            format!(
                "{method} sip:611@{target} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{branch}\r\nMax-Forwards: 70\r\nFrom: <sip:probe@{local}>;tag=pr{i}\r\nTo: <sip:611@{target}>{to_tag}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nContact: <sip:probe@{local}>\r\n"
            )
        };
        let invite = format!(
            "{}Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            head("INVITE", 1, &format!("i{i}"), ""),
            sdp.len()
        );
        let t0 = Instant::now();
        sock.send_to(invite.as_bytes(), target).expect("send");
        let mut to_tag = String::new();
        while let Ok((n, _)) = sock.recv_from(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]);
            if text.starts_with("SIP/2.0 200") && text.contains(&call_id) {
                out.push(t0.elapsed().as_secs_f64() * 1e6);
                if let Some(pos) = text.find(";tag=") {
                    let rest = &text[pos..];
                    let end = rest.find("\r\n").unwrap_or(rest.len());
                    if text[..pos].rfind("\nTo:").is_some() {
                        to_tag = rest[..end].to_string();
                    }
                }
                break;
            }
        }
        let ack = format!(
            "{}Content-Length: 0\r\n\r\n",
            head("ACK", 1, &format!("a{i}"), &to_tag)
        );
        let _ = sock.send_to(ack.as_bytes(), target);
        let bye = format!(
            "{}Content-Length: 0\r\n\r\n",
            head("BYE", 2, &format!("b{i}"), &to_tag)
        );
        let _ = sock.send_to(bye.as_bytes(), target);
        while let Ok((n, _)) = sock.recv_from(&mut buf) {
            if String::from_utf8_lossy(&buf[..n]).contains("CSeq: 2 BYE") {
                break;
            }
        }
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    out
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` lists benchmarks; nothing to list here
    }
    common::require_sipp("sip_load");
    let seconds = common::bench_seconds(10) as u32;
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let _engine = start_engine(dir.path(), port);
    let target = SocketAddr::from(([127, 0, 0, 1], port));
    println!(
        "machine: {} cores; each phase {seconds} s; engine and SIPp share the cores",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );

    // Phase 1: latency at 100 calls/s, with a microsecond probe beside SIPp.
    let probe_handle =
        std::thread::spawn(move || probe(target, seconds * 10, Duration::from_millis(100)));
    let run = run_sipp(dir.path(), target, 100, 100 * seconds);
    let mut probe_us = probe_handle.join().unwrap_or_default();
    probe_us.sort_by(f64::total_cmp);
    let mut rtt = run.rtt_ms.clone();
    rtt.sort_by(f64::total_cmp);
    println!(
        "100 cps: {} calls ok, {} failed; SIPp INVITE→200 p50 {:.0} ms p99 {:.0} ms max {:.0} ms (1 ms resolution, n={})",
        run.ok, run.failed, percentile(&rtt, 0.5), percentile(&rtt, 0.99), rtt.last().copied().unwrap_or(f64::NAN), rtt.len()
    );
    println!(
        "100 cps: probe INVITE→200 p50 {:.0} µs p99 {:.0} µs max {:.0} µs (n={})",
        percentile(&probe_us, 0.5),
        percentile(&probe_us, 0.99),
        probe_us.last().copied().unwrap_or(f64::NAN),
        probe_us.len()
    );

    // Phase 2: rising rates until a call fails.
    let mut best = 0.0f64;
    for rate in [500u32, 1000, 2000, 3000, 4000] {
        let run = run_sipp(dir.path(), target, rate, rate * seconds);
        let cps = run.ok as f64 / run.seconds;
        let mut rtt = run.rtt_ms.clone();
        rtt.sort_by(f64::total_cmp);
        println!(
            "offered {rate} cps: {} ok, {} failed, {:.0} calls/s over {:.1} s, INVITE→200 p50 {:.0} ms p99 {:.0} ms",
            run.ok, run.failed, cps, run.seconds, percentile(&rtt, 0.5), percentile(&rtt, 0.99)
        );
        if run.failed > 0 || run.ok < u64::from(rate * seconds) {
            break;
        }
        best = best.max(cps);
    }
    println!("sustained with zero failed calls: {best:.0} calls/s");
}
