//! The web port under a stranger's slow and greedy connections (issue 23 item 1), against the
//! built engine over real sockets: slow headers and silent, idle keep-alive connections are
//! closed on time, one address cannot hold more than its share, a body the route refuses is
//! refused before it is read, and `/readyz` says when the connection budget was reached.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{free_port, Engine};

/// An engine whose web port times out fast, so the tests do not wait for the defaults.
fn engine(http: &str) -> (Engine, SocketAddr) {
    let port = free_port();
    let engine = Engine::start(
        "",
        &format!("[http]\nlisten = \"127.0.0.1:{port}\"\n{http}\n"),
    );
    let http = SocketAddr::from(([127, 0, 0, 1], port));
    // SIP answers first; the web port follows.
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(http).is_err() {
        assert!(Instant::now() < deadline, "no web port:\n{}", engine.log_text());
        std::thread::sleep(Duration::from_millis(50));
    }
    (engine, http)
}

/// A TCP connection to `to` from the loopback address `from` (127.x: all this host's).
fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let local: SocketAddr = format!("{from}:0").parse().unwrap();
    sock.bind(&local.into()).unwrap();
    sock.connect(&to.into()).unwrap();
    TcpStream::from(sock)
}

/// Reads until the server closes the connection (or `within` passes: then panics), and
/// returns what it sent and how long that took.
fn read_until_closed(s: &mut TcpStream, within: Duration) -> (String, Duration) {
    let start = Instant::now();
    s.set_read_timeout(Some(within)).unwrap();
    let mut got = Vec::new();
    let mut b = [0u8; 4096];
    loop {
        match s.read(&mut b) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&b[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!(
                "still open after {:?} ({e}); got {:?}",
                start.elapsed(),
                String::from_utf8_lossy(&got)
            ),
        }
        assert!(start.elapsed() < within, "still open after {within:?}");
    }
    (String::from_utf8_lossy(&got).into_owned(), start.elapsed())
}

fn get(from: &str, to: SocketAddr, path: &str) -> String {
    let mut s = connect_from(from, to);
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: astreinte\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    read_until_closed(&mut s, Duration::from_secs(10)).0
}

#[test]
fn slow_silent_and_idle_connections_are_closed_on_time() {
    let (engine, http) = engine("header_timeout_secs = 1\nidle_timeout_secs = 2\n");
    // Slowloris: a request line and one header, then nothing.
    let mut slow = connect_from("127.0.0.2", http);
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: a\r\n")
        .unwrap();
    // A connection that never says a word.
    let mut silent = connect_from("127.0.0.2", http);
    // A keep-alive connection left idle after one request.
    let mut idle = connect_from("127.0.0.2", http);
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let asked = Instant::now();

    let (answer, took) = read_until_closed(&mut slow, Duration::from_secs(6));
    assert!(took < Duration::from_secs(4), "slow headers held {took:?}");
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
    let (_, took) = read_until_closed(&mut silent, Duration::from_secs(6));
    assert!(
        took < Duration::from_secs(4),
        "a silent connection held {took:?}"
    );
    let (answer, _) = read_until_closed(&mut idle, Duration::from_secs(8));
    let took = asked.elapsed();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // Waiting for its next request is waiting for headers: closed by the header timeout.
    assert!(
        took >= Duration::from_millis(800) && took < Duration::from_secs(4),
        "an idle keep-alive closed after {took:?}"
    );
    // And the port still serves.
    assert!(get("127.0.0.1", http, "/healthz").starts_with("HTTP/1.1 200"));
    assert!(!engine.log_text().contains("panicked"));
}

#[test]
fn one_address_holds_at_most_its_share_and_others_still_get_in() {
    let (engine, http) =
        engine("max_connections = 8\nmax_connections_per_source = 3\nheader_timeout_secs = 3\n");
    let held: Vec<TcpStream> = (0..3).map(|_| connect_from("127.0.0.2", http)).collect();
    std::thread::sleep(Duration::from_millis(200));
    // The fourth from the same address is told so at once, without a word from it.
    let mut fourth = connect_from("127.0.0.2", http);
    let (answer, took) = read_until_closed(&mut fourth, Duration::from_secs(2));
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("Too many connections"), "{answer}");
    assert!(took < Duration::from_secs(1), "{took:?}");
    // Another address gets in meanwhile.
    assert!(get("127.0.0.3", http, "/healthz").starts_with("HTTP/1.1 200"));
    // Fill the whole budget from more addresses: a newcomer is refused, and /readyz says why
    // once the flood is over.
    let more: Vec<TcpStream> = [
        "127.0.0.4",
        "127.0.0.4",
        "127.0.0.4",
        "127.0.0.5",
        "127.0.0.5",
    ]
    .iter()
    .map(|a| connect_from(a, http))
    .collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut newcomer = connect_from("127.0.0.6", http);
    let (answer, _) = read_until_closed(&mut newcomer, Duration::from_secs(2));
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    drop(held);
    drop(more);
    std::thread::sleep(Duration::from_millis(300));
    let ready = get("127.0.0.1", http, "/readyz");
    assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
    assert!(
        ready.contains("warning: http: connection budget reached"),
        "{ready}"
    );
    assert!(
        engine
            .log_text()
            .contains("HTTP connection refused: budget reached"),
        "the log says it too"
    );
}

#[test]
fn a_body_the_route_refuses_is_refused_before_it_is_sent() {
    let (engine, http) = engine("");
    for (path, length) in [
        ("/api/login", 200_000_000u64),
        ("/api/tickets", 100_000_000),
        ("/ack/nothing", 10_000_000),
    ] {
        let mut s = connect_from("127.0.0.2", http);
        write!(
            s,
            "POST {path} HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n\
             Content-Length: {length}\r\n\r\n"
        )
        .unwrap();
        // Not a byte of the body: the answer must not wait for it.
        let (answer, took) = read_until_closed(&mut s, Duration::from_secs(5));
        assert!(answer.starts_with("HTTP/1.1 413"), "{path}: {answer}");
        assert!(took < Duration::from_secs(2), "{path}: {took:?}");
    }
    assert!(!engine.log_text().contains("panicked"));
}

#[test]
fn a_request_that_trickles_its_body_is_cut_off() {
    let (engine, http) = engine("request_timeout_secs = 2\n");
    let mut s = connect_from("127.0.0.2", http);
    s.write_all(
        b"POST /api/login HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n\
          Content-Length: 1000\r\n\r\n{\"name\":",
    )
    .unwrap();
    let start = Instant::now();
    // A byte a second: never idle, never done.
    let mut answer = String::new();
    while start.elapsed() < Duration::from_secs(8) {
        if s.write_all(b" ").is_err() {
            break;
        }
        s.set_read_timeout(Some(Duration::from_millis(900)))
            .unwrap();
        let mut b = [0u8; 1024];
        match s.read(&mut b) {
            Ok(0) => break,
            Ok(n) => answer.push_str(&String::from_utf8_lossy(&b[..n])),
            Err(_) => {}
        }
    }
    assert!(
        start.elapsed() < Duration::from_secs(6),
        "a trickled body held the connection {:?}",
        start.elapsed()
    );
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
    assert!(!engine.log_text().contains("panicked"));
}
