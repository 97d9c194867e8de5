//! Flood benchmark: a stranger attacks the release engine while trusted callers call it.
//!
//! The stranger is another loopback address (127.0.0.2; only 127.0.0.1 is trusted). For
//! `ASTREINTE_BENCH_SECONDS` (default 20) it sends 5,000 INVITEs a second and 1,000 malformed
//! datagrams a second over UDP, and tries to hold 1,000 TCP connections open, each dripping a
//! message that never ends. Meanwhile SIPp places trusted calls (INVITE, 200, ACK, BYE) at
//! 20 a second. Printed: the share of trusted calls that completed (the target is 100 %), the
//! engine's memory before, at its peak and after, how many TCP connections it kept, and how
//! long after the flood a stranger's OPTIONS is answered again.
//!
//! Run: `cargo bench --bench sip_flood` (needs `sipp`, from Debian's sip-tester).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

mod common;
use common::{free_port, Engine};

const STRANGER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const INVITES_PER_SECOND: u64 = 5_000;
const JUNK_PER_SECOND: u64 = 1_000;
const TCP_CONNECTIONS: usize = 1_000;
const TRUSTED_CPS: u32 = 20;

fn start_engine(dir: &Path, port: u16) -> Engine {
    let engine = Engine::spawn(
        dir,
        "flood.toml",
        &format!(
            "[sip]\nlisten = \"127.0.0.1:{port}\"\ntrusted = [\"127.0.0.1/32\"]\n\n[media]\nrtp_ports = \"40000-49999\"\n\n[store]\nurl = \"sqlite://{}/flood.db\"\n",
            dir.display()
        ),
        "error",
    );
    let target = SocketAddr::from(([127, 0, 0, 1], port));
    let probe = UdpSocket::bind("127.0.0.1:0").expect("bind");
    if options_answered(&probe, target, Duration::from_secs(20)).is_none() {
        panic!("the engine did not start");
    }
    engine
}

fn options(target: SocketAddr, from: SocketAddr, n: u64) -> String {
    format!(
        "OPTIONS sip:611@{target} SIP/2.0\r\nVia: SIP/2.0/UDP {from};branch=z9hG4bKp{n}\r\nMax-Forwards: 70\r\nFrom: <sip:p@{from}>;tag=1\r\nTo: <sip:611@{target}>\r\nCall-ID: probe{n}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
}

/// Time until an OPTIONS from `sock` is answered, asking every 50 ms.
fn options_answered(sock: &UdpSocket, target: SocketAddr, within: Duration) -> Option<Duration> {
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .ok()?;
    let from = sock.local_addr().ok()?;
    let t0 = Instant::now();
    let mut n = 0;
    let mut buf = [0u8; 4096];
    while t0.elapsed() < within {
        n += 1;
        sock.send_to(options(target, from, n).as_bytes(), target)
            .ok()?;
        while let Ok((len, _)) = sock.recv_from(&mut buf) {
            if buf[..len].starts_with(b"SIP/2.0 200") {
                return Some(t0.elapsed());
            }
        }
    }
    None
}

/// Malformed datagrams of the kinds that broke parsers: a non-ASCII space in Via, binary,
/// a header section that never ends, an absurd Content-Length, a lone start line.
fn junk(i: u64, target: SocketAddr) -> Vec<u8> {
    match i % 5 {
        0 => format!("OPTIONS sip:611@{target} SIP/2.0\r\nVia: SIP/2.0/UDP\u{a0}127.0.0.2;branch=z9hG4bKj{i}\r\nCall-ID: j{i}\r\nCSeq: 1 OPTIONS\r\n\r\n").into_bytes(),
        1 => (0..200u8).map(|b| b.wrapping_mul(37).wrapping_add(i as u8)).collect(),
        2 => format!("INVITE sip:611@{target} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2;branch=z9hG4bKk{i}\r\n{}", "X-Pad: aaaaaaaaaaaaaaaa\r\n".repeat(60)).into_bytes(),
        3 => format!("BYE sip:611@{target} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2;branch=z9hG4bKl{i}\r\nContent-Length: 99999999999\r\n\r\n").into_bytes(),
        _ => b"SIP/2.0 200 OK\r\n\r\n".to_vec(),
    }
}

/// A TCP connection from the stranger's address (bind before connect).
fn connect_from(local: Ipv4Addr, to: SocketAddr) -> Option<TcpStream> {
    // std has no bind-before-connect: a plain socket through libc.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
    if fd < 0 {
        return None;
    }
    let sa = |ip: Ipv4Addr, port: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    };
    let SocketAddr::V4(to) = to else { return None };
    let (a, b) = (sa(local, 0), sa(*to.ip(), to.port()));
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: fd is a socket we own; the addresses are valid sockaddr_in of `len` bytes.
    let stream: TcpStream = unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) };
    let ok = unsafe {
        libc::bind(fd, &a as *const _ as *const libc::sockaddr, len) == 0
            && libc::connect(fd, &b as *const _ as *const libc::sockaddr, len) == 0
    };
    ok.then_some(stream)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    common::require_sipp("sip_flood");
    let seconds = common::bench_seconds(20);
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let engine = start_engine(dir.path(), port);
    let target = SocketAddr::from(([127, 0, 0, 1], port));
    let rss_before = engine.rss_kib();
    println!(
        "machine: {} cores shared by the engine, SIPp and the attacker; flood {seconds} s",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );

    let stop = AtomicBool::new(false);
    let sent_invites = AtomicU64::new(0);
    let sent_junk = AtomicU64::new(0);
    let mut rss_peak = rss_before;
    let (ok, failed, (tcp_kept, tcp_open_at_end)) = std::thread::scope(|scope| {
        // UDP: INVITEs and junk from the stranger, paced in 10 ms slices.
        scope.spawn(|| {
            let sock = UdpSocket::bind(SocketAddrV4::new(STRANGER, 0)).expect("bind 127.0.0.2");
            let from = sock.local_addr().expect("addr");
            let t0 = Instant::now();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let due = t0.elapsed().as_millis() as u64 * INVITES_PER_SECOND / 1000;
                while i < due {
                    let invite = format!(
                        "INVITE sip:611@{target} SIP/2.0\r\nVia: SIP/2.0/UDP {from};branch=z9hG4bKf{i}\r\nMax-Forwards: 70\r\nFrom: <sip:x@{from}>;tag=f{i}\r\nTo: <sip:611@{target}>\r\nCall-ID: flood{i}\r\nCSeq: 1 INVITE\r\nContact: <sip:x@{from}>\r\nContent-Length: 0\r\n\r\n"
                    );
                    let _ = sock.send_to(invite.as_bytes(), target);
                    sent_invites.fetch_add(1, Ordering::Relaxed);
                    if i % (INVITES_PER_SECOND / JUNK_PER_SECOND) == 0 {
                        let _ = sock.send_to(&junk(i, target), target);
                        sent_junk.fetch_add(1, Ordering::Relaxed);
                    }
                    i += 1;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        // TCP: the stranger tries to hold 1,000 connections, each dripping an endless message.
        let tcp = scope.spawn(|| {
            let mut held = Vec::new();
            for _ in 0..TCP_CONNECTIONS {
                if let Some(s) = connect_from(STRANGER, target) {
                    held.push(s);
                }
            }
            // Which ones the engine kept: a closed one reads end of file at once.
            std::thread::sleep(Duration::from_millis(500));
            held.retain(|s| {
                let _ = s.set_nonblocking(true);
                let mut b = [0u8; 1];
                let open = matches!((&*s).read(&mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
                let _ = s.set_nonblocking(false);
                open
            });
            let kept = held.len();
            while !stop.load(Ordering::Relaxed) {
                held.retain_mut(|s| s.write_all(b"X-Drip: 1\r\n").is_ok());
                std::thread::sleep(Duration::from_millis(500));
            }
            held.retain_mut(|s| s.write_all(b"X").is_ok());
            (kept, held.len())
        });
        // Trusted calls throughout.
        let sipp = scope.spawn(|| {
            common::run_sipp_calls(
                dir.path(),
                target,
                TRUSTED_CPS,
                TRUSTED_CPS * seconds as u32,
            )
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
        let (ok, failed) = sipp.join().unwrap_or((0, 0));
        (ok, failed, tcp.join().unwrap_or((0, 0)))
    });
    let stranger = UdpSocket::bind(SocketAddrV4::new(STRANGER, 0)).expect("bind 127.0.0.2");
    let recovered = options_answered(&stranger, target, Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(2));
    let rss_after = engine.rss_kib();
    let total = TRUSTED_CPS as u64 * seconds;
    println!(
        "stranger sent {} INVITEs ({INVITES_PER_SECOND}/s) and {} malformed datagrams; of {TCP_CONNECTIONS} TCP connections the engine kept {tcp_kept}, {tcp_open_at_end} still open at the end",
        sent_invites.load(Ordering::Relaxed),
        sent_junk.load(Ordering::Relaxed)
    );
    println!(
        "trusted calls: {ok} of {total} completed ({:.1} %), {failed} failed",
        ok as f64 * 100.0 / total as f64
    );
    common::print_memory(rss_before, rss_peak, rss_after);
    match recovered {
        Some(d) => println!(
            "the stranger is answered again {:.0} ms after the flood stopped",
            d.as_secs_f64() * 1000.0
        ),
        None => println!("the stranger is still not answered 30 s after the flood"),
    }
}
