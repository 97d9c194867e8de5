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
    common::wait::wait_until_or(
        "the web port to accept connections",
        Duration::from_secs(10),
        || TcpStream::connect(http).is_ok(),
        || engine.log_text(),
    );
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

/// The first bytes the peer sends (up to the end of a head: an interim response).
fn read_some(s: &mut TcpStream, within: Duration) -> String {
    s.set_read_timeout(Some(within)).unwrap();
    let mut got = Vec::new();
    let mut b = [0u8; 1024];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&b[..n]),
            Err(e) => panic!("nothing within {within:?} ({e}); got {got:?}"),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
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
    // One accept loop takes connections in the order they were made: these three are
    // admitted before any made after them.
    let held: Vec<TcpStream> = (0..3).map(|_| connect_from("127.0.0.2", http)).collect();
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
    let mut newcomer = connect_from("127.0.0.6", http);
    // A bound, not a pause: on a loaded machine the accept loop may come to it late. Were it
    // admitted instead, it would get the header timeout's answer, not a 503.
    let (answer, _) = read_until_closed(&mut newcomer, Duration::from_secs(10));
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    drop(held);
    drop(more);
    // The engine frees the slots as it sees the connections close: until then /readyz is
    // refused like any newcomer.
    let mut ready = String::new();
    common::wait::poll_until(Duration::from_secs(3), || {
        ready = get("127.0.0.1", http, "/readyz");
        ready.starts_with("HTTP/1.1 200")
    });
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

/// An admin's API token on `engine` (a user made with the CLI, as an admin would).
fn admin_token(engine: &Engine) -> String {
    let run = |args: &[&str], stdin: &str| {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_astreinte"))
            .args(args)
            .arg("--config")
            .arg(engine.dir.path().join("astreinte.toml"))
            .current_dir(engine.dir.path())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    run(
        &["users", "add", "ops", "--role", "admin"],
        "a long enough password\n",
    );
    run(&["users", "token", "ops", "--label", "tests"], "")
}

/// The header `name` of a raw HTTP answer, if any.
fn header<'a>(answer: &'a str, name: &str) -> Option<&'a str> {
    let head = answer.split("\r\n\r\n").next()?;
    head.lines().skip(1).find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[test]
fn console_answers_are_never_framed_sniffed_or_cached_and_run_only_their_own_script() {
    let (engine, http) = engine("");
    let login = get("127.0.0.1", http, "/login");
    assert!(login.starts_with("HTTP/1.1 200"), "{login}");
    let policy = header(&login, "content-security-policy").expect("a policy");
    let nonce = policy
        .split("'nonce-")
        .nth(1)
        .and_then(|r| r.split('\'').next())
        .expect("a nonce in the policy");
    assert!(nonce.len() >= 16, "{policy}");
    assert!(
        !policy.contains("'unsafe-inline' 'unsafe-eval'")
            && !policy.contains("script-src 'self' 'unsafe-inline'"),
        "{policy}"
    );
    assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
    // Every inline script of the page carries the nonce, so none injected could.
    assert!(
        login.contains(&format!("<script nonce=\"{nonce}\">")),
        "{login}"
    );
    assert!(!login.contains("<script>"), "{login}");
    // A fresh nonce each time.
    let again = get("127.0.0.1", http, "/login");
    assert!(!again.contains(nonce));
    for answer in [
        login.as_str(),
        &get("127.0.0.1", http, "/tickets"),
        &get("127.0.0.1", http, "/api/me"),
        &get("127.0.0.1", http, "/assets/console.js"),
    ] {
        assert_eq!(header(answer, "x-frame-options"), Some("DENY"), "{answer}");
        assert_eq!(
            header(answer, "x-content-type-options"),
            Some("nosniff"),
            "{answer}"
        );
        assert_eq!(
            header(answer, "cache-control"),
            Some("no-store"),
            "{answer}"
        );
        assert!(
            header(answer, "content-security-policy").is_some(),
            "{answer}"
        );
    }
    drop(engine);
}

#[test]
fn metrics_are_for_the_configured_scrapers_only() {
    let (engine, http) = engine(
        "trusted_proxies = [\"127.0.0.1/32\"]\nmetrics_allow = [\"127.0.0.2\", \"198.51.100.0/24\"]\n",
    );
    let scrape = |from: &str, forwarded: Option<&str>| {
        let mut s = connect_from(from, http);
        let xff = forwarded.map_or(String::new(), |f| format!("X-Forwarded-For: {f}\r\n"));
        write!(
            s,
            "GET /metrics HTTP/1.1\r\nHost: a\r\n{xff}Connection: close\r\n\r\n"
        )
        .unwrap();
        let answer = read_until_closed(&mut s, Duration::from_secs(10)).0;
        answer.split(' ').nth(1).unwrap_or_default().to_string()
    };
    assert_eq!(scrape("127.0.0.2", None), "200", "an allowed scraper");
    assert_eq!(scrape("127.0.0.3", None), "403", "anyone else");
    // Through the trusted proxy, the forwarded client is who asks.
    assert_eq!(scrape("127.0.0.1", Some("198.51.100.7")), "200");
    assert_eq!(scrape("127.0.0.1", Some("203.0.113.9")), "403");
    assert_eq!(
        scrape("127.0.0.1", None),
        "403",
        "the proxy itself is not a scraper"
    );
    // A forwarding header from a host that is no trusted proxy could hide anyone.
    assert_eq!(scrape("127.0.0.2", Some("198.51.100.7")), "403");
    drop(engine);
}

#[test]
fn uploads_beyond_the_conversion_slots_are_told_to_retry() {
    let (engine, http) = engine("request_timeout_secs = 120\n");
    let token = admin_token(&engine);
    let put_head = |length: usize| {
        format!(
            "PUT /api/prompts/fr/welcome HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: audio/wav\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
        )
    };
    // Two uploads hold the two slots, their bodies still coming. Each asks for a 100 Continue,
    // which the engine sends once the upload reads its body, so after it took its slot.
    let holders: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut s = connect_from("127.0.0.1", http);
            let head = put_head(100_000).replace(
                "Connection: close\r\n",
                "Connection: close\r\nExpect: 100-continue\r\n",
            );
            s.write_all(head.as_bytes()).unwrap();
            let interim = read_some(&mut s, Duration::from_secs(10));
            assert!(interim.starts_with("HTTP/1.1 100"), "{interim}");
            s.write_all(b"RIFF").unwrap();
            s
        })
        .collect();
    // A third waits its turn, then is told to retry; its body is never read.
    let mut third = connect_from("127.0.0.1", http);
    third.write_all(put_head(100_000).as_bytes()).unwrap();
    let (answer, took) = read_until_closed(&mut third, Duration::from_secs(30));
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("try again in a minute"), "{answer}");
    assert!(took >= Duration::from_secs(5), "{took:?}");
    // Once they are gone, an upload goes through. They stop mid-body: the engine ends each
    // upload, which frees its slot, before it closes the connection.
    for mut holder in holders {
        holder.shutdown(std::net::Shutdown::Write).unwrap();
        read_until_closed(&mut holder, Duration::from_secs(10));
    }
    let wav = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/prompts/fr/welcome.wav"
    ))
    .unwrap();
    let mut s = connect_from("127.0.0.1", http);
    s.write_all(put_head(wav.len()).as_bytes()).unwrap();
    s.write_all(&wav).unwrap();
    let (answer, _) = read_until_closed(&mut s, Duration::from_secs(30));
    assert!(answer.starts_with("HTTP/1.1 20"), "{answer}");
    assert!(!engine.log_text().contains("panicked"));
}
