//! Text a stranger controls (a caller ID, a company name in an imported file) never reaches
//! the log or an admin's terminal as a control character (issue 23 item 4): a `%0d%0a` caller
//! cannot forge a log line, a `%1b[` cannot recolour `astreinte` output.

mod common;

use std::time::Duration;

use common::caller::Caller;
use common::voicemail::cli;
use common::Engine;

const HOSTILE_USER: &str = "1514%0d%0aERROR%20forged%20line%1b%5b31m";

#[test]
fn a_caller_id_or_number_with_a_line_break_and_an_escape_forges_no_log_line() {
    let engine = Engine::start("", "");
    // A caller ID that is a forged log line.
    let mut c = Caller::call(engine.addr(), "611", HOSTILE_USER);
    c.wait_prompt_start(Duration::from_secs(10));
    c.hang_up();
    // A number dialled that is one.
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let me = sock.local_addr().unwrap();
    let to = engine.addr();
    let invite = format!(
        "INVITE sip:{HOSTILE_USER}@{to} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKhostile\r\n\
         Max-Forwards: 70\r\nFrom: <sip:{HOSTILE_USER}@127.0.0.1>;tag=h\r\nTo: <sip:{HOSTILE_USER}@{to}>\r\n\
         Call-ID: hostile-number\r\nCSeq: 1 INVITE\r\nContact: <sip:x@{me}>\r\nContent-Length: 0\r\n\r\n"
    );
    let answer = engine
        .exchange_udp(invite.as_bytes(), Duration::from_secs(3))
        .expect("an answer");
    assert!(answer.starts_with(b"SIP/2.0 "), "{answer:?}");
    common::wait::poll_until(Duration::from_secs(3), || {
        engine.log_text().contains("hostile-number")
    });
    let log = engine.log_text();
    assert!(
        log.contains("hostile-number"),
        "the call was logged:\n{log}"
    );
    assert!(!log.contains('\u{1b}'), "an escape reached the log");
    assert!(!log.contains('\r'), "a carriage return reached the log");
    assert!(
        !log.lines().any(|l| l.starts_with("ERROR forged")),
        "a forged line:\n{log}"
    );
}

#[test]
fn the_cli_writes_control_characters_visibly() {
    let engine = Engine::start("", "");
    let csv = engine.dir.path().join("accounts.csv");
    std::fs::write(
        &csv,
        "account,company,address,numbers\nEVIL,\"Evil\u{1b}[2J\u{1b}[31mCorp\rRewritten\",1 Main St,5145550177\n",
    )
    .unwrap();
    cli(&engine, &["accounts", "import", csv.to_str().unwrap()]);
    let shown = cli(&engine, &["accounts", "show", "EVIL"]);
    assert!(
        !shown.contains('\u{1b}') && !shown.contains('\r'),
        "{shown:?}"
    );
    assert!(
        shown.contains("Evil\\u{1b}[2J\\u{1b}[31mCorp\\rRewritten"),
        "{shown}"
    );
    // JSON keeps the text exact (escaped by JSON itself), for scripts.
    let json = cli(&engine, &["accounts", "show", "EVIL", "--json"]);
    assert!(json.contains("Evil\\u001b[2J"), "{json}");
}
