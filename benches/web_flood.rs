//! Web flood benchmark: a stranger attacks the release engine's HTTP port while trusted callers
//! call it and an admin uses the console (issue 23).
//!
//! The stranger is another loopback address (127.0.0.2). For `ASTREINTE_BENCH_SECONDS`
//! (default 20) it tries to hold 2,000 slow connections (a request head dripped a line a
//! second, reopened when closed) and posts 200 MB of login bodies (2 MB each, half announced
//! with Content-Length, half chunked). Meanwhile SIPp places trusted calls at 10 a second and
//! a logged-in admin asks the console for the tickets twice a second. Printed: the share of
//! calls that completed (target 100 %), the admin's answers and their slowest, how many slow
//! connections the engine held at most, how much of the 200 MB it read, the engine's memory
//! before, at its peak and after, and how long after the flood the stranger is served again.
//!
//! Run: `cargo bench --bench web_flood` (needs `sipp`, from Debian's sip-tester).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

mod common;
use common::{free_port, Engine};

const STRANGER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const ADMIN: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
const SLOW_CONNECTIONS: usize = 2_000;
const BODY_BYTES: usize = 2 * 1024 * 1024;
const BODIES: usize = 100;
const TRUSTED_CPS: u32 = 10;
const PASSWORD: &str = "a long enough password";

fn start_engine(dir: &Path, sip: u16, http: u16) -> Engine {
    let engine = Engine::spawn(
        dir,
        "web-flood.toml",
        &format!(
            "[sip]\nlisten = \"127.0.0.1:{sip}\"\ntrusted = [\"127.0.0.1/32\"]\n\n\
             [media]\nrtp_ports = \"40000-49999\"\n\n\
             [store]\nurl = \"sqlite://{}/web-flood.db\"\n\n\
             [http]\nlisten = \"127.0.0.1:{http}\"\n",
            dir.display()
        ),
        "error",
    );
    let to = SocketAddr::from(([127, 0, 0, 1], http));
    let t0 = Instant::now();
    while get(ADMIN, to, "/healthz", None).map(|(s, _)| s) != Some(200) {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "the engine did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    engine
}

/// A TCP connection from `local` (bind before connect).
fn connect_from(local: Ipv4Addr, to: SocketAddr) -> Option<TcpStream> {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).ok()?;
    sock.bind(&SocketAddr::from((local, 0)).into()).ok()?;
    sock.connect_timeout(&to.into(), Duration::from_secs(2))
        .ok()?;
    Some(TcpStream::from(sock))
}

/// One GET with Connection: close; the status and the answer.
fn get(from: Ipv4Addr, to: SocketAddr, path: &str, cookie: Option<&str>) -> Option<(u16, String)> {
    let mut s = connect_from(from, to)?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let cookie = cookie.map_or(String::new(), |c| format!("Cookie: {c}\r\n"));
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: a\r\n{cookie}Connection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split(' ').nth(1)?.parse().ok()?;
    Some((status, text))
}

/// The admin's session cookie (a user made with the CLI, then a login).
fn admin_session(dir: &Path, to: SocketAddr) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_astreinte"))
        .args(["users", "add", "ops", "--role", "admin", "--config"])
        .arg(dir.join("web-flood.toml"))
        .env("ASTREINTE_LOG", "error")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("astreinte users add");
    let _ = child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{PASSWORD}\n").as_bytes());
    assert!(
        child.wait().map(|s| s.success()).unwrap_or(false),
        "users add failed"
    );
    let body = format!("{{\"name\":\"ops\",\"password\":\"{PASSWORD}\"}}");
    let mut s = connect_from(ADMIN, to).expect("connect");
    write!(
        s,
        "POST /api/login HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("login");
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text.lines()
        .filter_map(|l| {
            l.strip_prefix("set-cookie: ")
                .or_else(|| l.strip_prefix("Set-Cookie: "))
        })
        .filter_map(|c| c.split(';').next())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Whether the server has closed `s` (a read says end of file or an error at once).
fn closed(s: &TcpStream) -> bool {
    let _ = s.set_nonblocking(true);
    let mut b = [0u8; 512];
    let gone = !matches!((&*s).read(&mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
    let _ = s.set_nonblocking(false);
    gone
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    common::require_sipp("web_flood");
    // It holds thousands of sockets: the engine's own raise of the soft limit.
    let _ = astreinte::media::raise_open_files_limit();
    let seconds = common::bench_seconds(20);
    let dir = tempfile::tempdir().expect("tempdir");
    let (sip_port, http_port) = (free_port(), free_port());
    let engine = start_engine(dir.path(), sip_port, http_port);
    let sip = SocketAddr::from(([127, 0, 0, 1], sip_port));
    let http = SocketAddr::from(([127, 0, 0, 1], http_port));
    let cookie = admin_session(dir.path(), http);
    assert_eq!(
        get(ADMIN, http, "/api/me", Some(&cookie)).map(|(s, _)| s),
        Some(200),
        "the admin is logged in"
    );
    let rss_before = engine.rss_kib();
    println!(
        "machine: {} cores shared by the engine, SIPp, the admin and the attacker; flood {seconds} s",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );

    let stop = AtomicBool::new(false);
    let slow_opened = AtomicU64::new(0);
    let slow_held_max = AtomicU64::new(0);
    let body_sent = AtomicU64::new(0);
    let body_answers = AtomicU64::new(0);
    let mut rss_peak = rss_before;
    let (calls, admin) = std::thread::scope(|scope| {
        // Slow connections: keep up to 2,000 open, each dripping a header line a second.
        scope.spawn(|| {
            let mut held: Vec<TcpStream> = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                held.retain(|s| !closed(s));
                slow_held_max.fetch_max(held.len() as u64, Ordering::Relaxed);
                while held.len() < SLOW_CONNECTIONS && !stop.load(Ordering::Relaxed) {
                    let Some(mut s) = connect_from(STRANGER, http) else {
                        break;
                    };
                    slow_opened.fetch_add(1, Ordering::Relaxed);
                    if s.write_all(b"GET /healthz HTTP/1.1\r\nHost: a\r\n").is_ok() {
                        held.push(s);
                    }
                    if held.len() % 200 == 0 {
                        break;
                    }
                }
                held.retain_mut(|s| s.write_all(b"X-Drip: 1\r\n").is_ok());
                std::thread::sleep(Duration::from_millis(1000));
            }
        });
        // Login bodies: 100 of 2 MB, four at a time.
        for worker in 0..4 {
            let (stop, body_sent, body_answers) = (&stop, &body_sent, &body_answers);
            scope.spawn(move || {
                let chunk = vec![b'x'; 64 * 1024];
                for i in (worker..BODIES).step_by(4) {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let Some(mut s) = connect_from(STRANGER, http) else {
                        std::thread::sleep(Duration::from_millis(50));
                        continue;
                    };
                    let _ = s.set_write_timeout(Some(Duration::from_secs(5)));
                    let head = if i % 2 == 0 {
                        format!(
                            "POST /api/login HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n\
                             Content-Length: {BODY_BYTES}\r\n\r\n"
                        )
                    } else {
                        "POST /api/login HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n\
                         Transfer-Encoding: chunked\r\n\r\n"
                            .to_string()
                    };
                    if s.write_all(head.as_bytes()).is_err() {
                        continue;
                    }
                    let mut sent = 0;
                    while sent < BODY_BYTES {
                        let r = if i % 2 == 0 {
                            s.write_all(&chunk)
                        } else {
                            s.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                                .and_then(|()| s.write_all(&chunk))
                                .and_then(|()| s.write_all(b"\r\n"))
                        };
                        if r.is_err() {
                            break;
                        }
                        sent += chunk.len();
                        body_sent.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    }
                    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                    let mut b = [0u8; 64];
                    if matches!(s.read(&mut b), Ok(n) if n > 0) {
                        body_answers.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
        // The admin, twice a second.
        let admin = scope.spawn(|| {
            let (mut ok, mut asked, mut slowest) = (0u64, 0u64, Duration::ZERO);
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                asked += 1;
                if get(ADMIN, http, "/api/tickets", Some(&cookie)).map(|(s, _)| s) == Some(200) {
                    ok += 1;
                }
                slowest = slowest.max(t.elapsed());
                std::thread::sleep(Duration::from_millis(500));
            }
            (ok, asked, slowest)
        });
        // Trusted calls throughout.
        let sipp = scope.spawn(|| {
            common::run_sipp_calls(dir.path(), sip, TRUSTED_CPS, TRUSTED_CPS * seconds as u32)
        });
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(seconds) || !sipp.is_finished() {
            rss_peak = rss_peak.max(engine.rss_kib());
            std::thread::sleep(Duration::from_millis(250));
            if t0.elapsed() > Duration::from_secs(seconds + 120) {
                break;
            }
        }
        stop.store(true, Ordering::Relaxed);
        let calls = sipp.join().unwrap_or((0, 0));
        (calls, admin.join().unwrap_or((0, 0, Duration::ZERO)))
    });
    // The flood is over (its sockets closed with its threads): how soon is the stranger served?
    let t0 = Instant::now();
    let mut recovered = None;
    while t0.elapsed() < Duration::from_secs(30) {
        if get(STRANGER, http, "/healthz", None).map(|(s, _)| s) == Some(200) {
            recovered = Some(t0.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_secs(2));
    let rss_after = engine.rss_kib();
    let ready = get(ADMIN, http, "/readyz", None)
        .map(|(_, t)| t)
        .unwrap_or_default();
    let total = TRUSTED_CPS as u64 * seconds;
    let (ok, failed) = calls;
    let (admin_ok, admin_asked, admin_slowest) = admin;
    println!(
        "stranger: {} slow connections opened, at most {} held open at once; {:.0} MB of login bodies written ({} answered)",
        slow_opened.load(Ordering::Relaxed),
        slow_held_max.load(Ordering::Relaxed),
        body_sent.load(Ordering::Relaxed) as f64 / 1e6,
        body_answers.load(Ordering::Relaxed)
    );
    println!(
        "trusted calls: {ok} of {total} completed ({:.1} %), {failed} failed",
        ok as f64 * 100.0 / total as f64
    );
    println!(
        "admin console: {admin_ok} of {admin_asked} answered 200, slowest {:.0} ms",
        admin_slowest.as_secs_f64() * 1000.0
    );
    common::print_memory(rss_before, rss_peak, rss_after);
    match recovered {
        Some(d) => println!(
            "the stranger is served again {:.0} ms after the flood stopped",
            d.as_secs_f64() * 1000.0
        ),
        None => println!("the stranger is still not served 30 s after the flood"),
    }
    for w in ready.lines().filter(|l| l.starts_with("warning:")) {
        println!("/readyz after: {w}");
    }
}
