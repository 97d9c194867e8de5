//! Issue 23 items 2 and 5 end to end, on the built engine over SIP: a caller whose caller ID
//! and keyed numbers `[ivr] callback_allow` refuses leaves a ticket with no number to call
//! (and the e-mail page and acknowledgement page offer none); a tracking-number lookup sounds
//! the same for an existing and a wrong number to a stranger, and is refused past the limit.

mod common;

use std::path::Path;
use std::time::Duration;

use common::caller::Caller;
use common::smtp::SmtpServer;
use common::voicemail::{cli_json, leave_s1_voicemail, speech};
use common::Engine;

const AFTER_HOURS: &str = "[schedule.open]\n\n[schedule.maintenance]\n";
const PROMPT_QUIET: Duration = Duration::from_millis(700);
const PROMPT_WITHIN: Duration = Duration::from_secs(30);

/// The loudest 20 ms of a bundled prompt as a caller hears it (G.711 µ-law round trip).
fn loudest_frame_heard_as(prompt: &str) -> Vec<i16> {
    use astreinte::media::{g711, Codec};
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("prompts")
        .join(format!("{prompt}.wav"));
    let samples: Vec<i16> = hound::WavReader::open(p)
        .unwrap()
        .samples::<i16>()
        .map(|s| s.unwrap())
        .collect();
    let loudest = samples
        .chunks_exact(160)
        .max_by_key(|f| f.iter().map(|s| i64::from(s.unsigned_abs())).sum::<i64>())
        .expect("a prompt of at least 20 ms");
    let mut enc = [0u8; 160];
    g711::encode(Codec::Pcmu, loudest, &mut enc);
    let mut dec = vec![0i16; 160];
    g711::decode(Codec::Pcmu, &enc, &mut dec);
    dec
}

fn heard_prompt(heard: &[i16], prompt: &str) -> bool {
    let frame = loudest_frame_heard_as(prompt);
    heard.windows(frame.len()).any(|w| w == frame.as_slice())
}

fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[test]
fn a_premium_caller_keying_only_refused_numbers_leaves_no_number_to_call() {
    let smtp = SmtpServer::start();
    let http_port = common::free_port();
    let cfg = format!(
        r#"{AFTER_HOURS}
[[paging.people]]
id = "tech1"
name = "Martin Roy"
email = "tech1@example.net"
language = "en"

[[paging.rotations]]
id = "oncall"
people = ["tech1"]

[paging.ladder]
levels = [["oncall"]]
s1 = ["0s"]
s2 = ["0s"]
repeat_every = "0s"

[paging.smtp]
url = "smtp://127.0.0.1:{smtp}"
from = "astreinte@example.net"

[http]
listen = "127.0.0.1:{http_port}"
"#,
        smtp = smtp.port
    );
    let engine = Engine::start("", &cfg);
    let mut c = Caller::call(engine.addr(), "5149073400", "+19005551234");
    c.wait_prompt_start(PROMPT_WITHIN); // language choice
    c.press('9');
    c.wait_prompt_start(PROMPT_WITHIN); // welcome, main menu
    c.press('2');
    c.wait_prompt_start(PROMPT_WITHIN); // emergency menu
    c.press('1');
    // The caller ID is refused: the caller is asked for a number, and keys refused ones.
    for _ in 0..3 {
        c.wait_prompt_end(PROMPT_QUIET, PROMPT_WITHIN);
        c.press_all("19005551234#");
    }
    c.wait_prompt_end(PROMPT_QUIET, PROMPT_WITHIN); // instructions, tone
    c.say(&speech()[..16000]);
    c.wait_said(Duration::from_secs(20));
    c.press('#');
    let t = common::wait::wait_for_or(
        "the voicemail's ticket",
        Duration::from_secs(30),
        || {
            let list = cli_json(&engine, &["tickets", "list", "--json"]);
            list.as_array().and_then(|a| a.first()).cloned()
        },
        || engine.log_text(),
    );
    c.hang_up();
    assert_eq!(t["caller"], "+19005551234", "{t:#?}");
    assert!(
        t["callback_number"].as_str().unwrap_or_default().is_empty(),
        "a refused number became the callback number: {t:#?}"
    );
    let number = t["number"].as_str().expect("number").to_string();

    // The e-mail page offers no number to call, and says why.
    let mails = smtp.wait_messages(1, Duration::from_secs(20));
    assert!(!mails.is_empty(), "no e-mail page:\n{}", engine.log_text());
    let mail = smtp.parse(&mails[0]);
    let body = mail["body"].as_str().unwrap_or_default().to_string();
    let lower = body.to_lowercase();
    assert!(!lower.contains("tel:+19005551234"), "{body}");
    assert!(!lower.contains("call back at +1"), "{body}");
    assert!(!lower.contains("callback number: +1"), "{body}");
    assert!(
        body.contains("may not be called back"),
        "the page does not say why there is no number: {body}"
    );
    // The acknowledgement page (its link from the e-mail) has no tel: link to it either.
    let at = body.find(&format!("/ack/{number}")).expect("ack link");
    let link: String = body[at..]
        .chars()
        .take_while(|ch| !ch.is_whitespace() && *ch != '>' && *ch != '"')
        .collect();
    let page = http_get(http_port, &link);
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(!page.contains("tel:"), "{page}");
    assert!(!page.contains("Call back at"), "{page}");
    assert!(page.contains("+19005551234"), "told as information: {page}");
}

/// Presses `*`, keys `tracking` and `#` from the main menu's prompt (or the entry's), and
/// returns what the caller heard until the next prompt ended.
fn look_up(c: &mut Caller, star: bool, tracking: &str) -> Vec<i16> {
    if star {
        c.press('*');
        c.wait_prompt_end(PROMPT_QUIET, PROMPT_WITHIN); // "enter your tracking number"
    }
    let mark = c.heard().len();
    c.press_all(&format!("{tracking}#"));
    c.wait_prompt_end(PROMPT_QUIET, PROMPT_WITHIN);
    c.heard()[mark..].to_vec()
}

#[test]
fn a_stranger_hears_the_same_for_an_existing_and_a_wrong_tracking_number_then_try_later() {
    let engine = Engine::start(
        "",
        &format!("{AFTER_HOURS}\n[ivr]\nstatus_lookups_per_hour = 2\n"),
    );
    let existing = leave_s1_voicemail(&engine);
    let wrong: String = existing
        .chars()
        .map(|d| if d == '9' { '1' } else { '9' })
        .collect();

    let mut c = Caller::call(engine.addr(), "5149073400", "+15145550177");
    c.wait_prompt_start(PROMPT_WITHIN);
    c.press('9');
    c.wait_prompt_end(PROMPT_QUIET, PROMPT_WITHIN); // welcome, main menu
    let a = look_up(&mut c, true, &existing);
    let b = look_up(&mut c, false, &wrong);
    for (what, heard) in [("existing", &a), ("wrong", &b)] {
        assert!(
            heard_prompt(heard, "en/status-no-details"),
            "{what}: not the common answer\n{}",
            engine.log_text()
        );
        assert!(!heard_prompt(heard, "en/status-unknown"), "{what}");
        assert!(!heard_prompt(heard, "en/status-open"), "{what}");
        assert!(heard_prompt(heard, "en/status-enter"), "{what}");
    }
    // Same prompts, same length (to a frame or two of jitter).
    let loud = |h: &[i16]| {
        h.chunks(160)
            .filter(|f| f.iter().any(|s| s.unsigned_abs() > 1500))
            .count() as i64
    };
    assert!(
        (loud(&a) - loud(&b)).abs() <= 5,
        "{} vs {}",
        loud(&a),
        loud(&b)
    );
    c.hang_up();

    // Another call from the same number: the limit holds across calls.
    let mut c = Caller::call(engine.addr(), "5149073400", "+15145550177");
    c.wait_prompt_start(PROMPT_WITHIN);
    c.press('9');
    c.wait_prompt_end(PROMPT_QUIET, PROMPT_WITHIN);
    let refused = look_up(&mut c, true, &existing);
    assert!(
        heard_prompt(&refused, "en/status-try-later"),
        "no try-later past the limit:\n{}",
        engine.log_text()
    );
    assert!(!heard_prompt(&refused, "en/status-no-details"));
    c.hang_up();
    assert!(engine.log_text().contains("over the limit"));
}
