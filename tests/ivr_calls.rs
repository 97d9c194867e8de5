//! Whole calls through the IVR of the built engine, from a test caller on real sockets (SIP
//! over UDP, G.711 RTP, keys as SIP INFO) and SIPp playing a technician: what the caller hears
//! and the tickets the store holds afterwards (read with the `astreinte tickets` CLI).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::caller::Caller;
use common::voicemail::cli;
use common::Engine;

/// Always closed, and no maintenance window: every call is after hours.
const AFTER_HOURS: &str = "[schedule.open]\n\n[schedule.maintenance]\n";

const PROMPT_QUIET: Duration = Duration::from_millis(700);
const PROMPT_WITHIN: Duration = Duration::from_secs(30);

fn speech() -> Vec<i16> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts/en/greeting.wav");
    hound::WavReader::open(p)
        .unwrap()
        .samples::<i16>()
        .map(|s| s.unwrap())
        .collect()
}

/// The loudest 20 ms of a bundled prompt as a caller hears it (through G.711 µ-law): the
/// engine sends prompt frames whole, so it appears exactly in what the caller decodes.
fn loudest_frame_heard_as(prompt: &str) -> Vec<i16> {
    let samples = prompt_samples(prompt);
    let loudest = samples
        .chunks_exact(160)
        .max_by_key(|f| f.iter().map(|s| i64::from(s.unsigned_abs())).sum::<i64>())
        .expect("a prompt of at least 20 ms");
    heard_as(loudest)
}

/// The first loud 20 ms of a bundled prompt as a caller hears it (see
/// [`loudest_frame_heard_as`]): a sign that the prompt has begun.
fn first_loud_frame_heard_as(prompt: &str) -> Vec<i16> {
    let samples = prompt_samples(prompt);
    let first = samples
        .chunks_exact(160)
        .find(|f| f.iter().any(|s| s.unsigned_abs() > 1500))
        .expect("a prompt with a loud frame");
    heard_as(first)
}

fn prompt_samples(prompt: &str) -> Vec<i16> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("prompts")
        .join(format!("{prompt}.wav"));
    hound::WavReader::open(p)
        .unwrap()
        .samples::<i16>()
        .map(|s| s.unwrap())
        .collect()
}

/// A frame through G.711 µ-law and back.
fn heard_as(frame: &[i16]) -> Vec<i16> {
    use astreinte::media::{g711, Codec};
    let mut enc = [0u8; 160];
    g711::encode(Codec::Pcmu, frame, &mut enc);
    let mut dec = vec![0i16; 160];
    g711::decode(Codec::Pcmu, &enc, &mut dec);
    dec
}

fn find_frame(heard: &[i16], frame: &[i16]) -> Option<usize> {
    heard.windows(frame.len()).position(|w| w == frame)
}

/// The engine's tickets, as `astreinte tickets list --json` prints them.
fn tickets(engine: &Engine) -> Vec<serde_json::Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_astreinte"))
        .args(["tickets", "list", "--json", "--config"])
        .arg(engine.dir.path().join("astreinte.toml"))
        .current_dir(engine.dir.path())
        .output()
        .expect("run astreinte tickets list");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON list of tickets")
}

fn wait_tickets(engine: &Engine, n: usize) -> Vec<serde_json::Value> {
    common::wait::wait_for_or(
        &format!("{n} tickets"),
        Duration::from_secs(20),
        || Some(tickets(engine)).filter(|t| t.len() >= n),
        || engine.log_text(),
    )
}

#[test]
fn after_hours_an_s1_voicemail_becomes_a_ticket_and_its_number_is_read_back() {
    let engine = Engine::start("", AFTER_HOURS);
    let mut c = Caller::call(engine.addr(), "5149073400", "5145550100");
    // Every key is pressed while its menu is still speaking (barge-in).
    c.wait_prompt_start(PROMPT_WITHIN); // language choice
    c.press('1'); // French
    c.wait_prompt_start(PROMPT_WITHIN); // welcome, main menu
    c.press('2'); // support
    c.wait_prompt_start(PROMPT_WITHIN); // emergency menu
    c.press('1'); // no calls at all: S1
    c.wait_prompt_start(PROMPT_WITHIN); // call you back at 514 555 0100?
    c.press('1'); // yes
    c.wait_prompt_end(PROMPT_QUIET, PROMPT_WITHIN); // instructions, tone
    let said = speech();
    c.say(&said);
    c.wait_said(Duration::from_secs(20));
    // Not an event: the caller pauses after speaking before pressing # (a human pace; the
    // key goes by SIP INFO, quicker than the speech's last packets through the jitter buffer).
    std::thread::sleep(Duration::from_millis(300));
    let before_readback = c.heard().len();
    c.press('#');
    assert!(
        c.wait_engine_bye(Duration::from_secs(60)),
        "the engine never said goodbye:\n{}",
        engine.log_text()
    );
    // The caller heard the read-back (saved, tracking number, callback target, goodbye).
    let after = &c.heard()[before_readback..];
    let loud = after
        .chunks(160)
        .filter(|f| f.iter().any(|s| s.unsigned_abs() > 1500))
        .count();
    assert!(loud > 100, "only {loud} loud frames after the message");

    let t = wait_tickets(&engine, 1);
    assert_eq!(t.len(), 1, "{t:#?}");
    let t = &t[0];
    assert_eq!(t["severity"], "S1", "{t:#?}");
    // Its tracking number's digits, in order, are in what the caller heard after the message.
    let number = t["number"].as_str().expect("tracking number");
    let mut from = 0;
    for d in number.chars() {
        let frame = loudest_frame_heard_as(&format!("fr/digit-{d}"));
        let at = find_frame(&after[from..], &frame)
            .unwrap_or_else(|| panic!("digit {d} of {number} not heard in order"));
        from += at + frame.len();
    }
    assert_eq!(t["callback_number"], "+15145550100", "{t:#?}");
    assert_eq!(t["language"], "fr");
    assert_eq!(t["speech_detected"], true, "{t:#?}");
    let seconds = t["voicemail_seconds"].as_f64().expect("voicemail_seconds");
    let sent = said.len() as f64 / 8000.0;
    assert!(
        (seconds - sent).abs() <= 0.5,
        "voicemail of {seconds} s, {sent} s said"
    );
    let path = t["voicemail_path"].as_str().expect("voicemail_path");
    assert!(Path::new(path).exists());
    // Its intake is marked done; nothing is left pending.
    let pending = std::fs::read_dir(Path::new(path).parent().unwrap())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".intake.json"))
        .count();
    assert_eq!(pending, 0);

    // The same caller calls 611 and asks where the ticket stands: * then its number and #.
    let number = number.to_string();
    drop(c);
    let mut c = Caller::call(engine.addr(), "611", "5145550100");
    c.wait_prompt_start(PROMPT_WITHIN); // the emergency menu
    c.press('*');
    c.wait_prompt_start(PROMPT_WITHIN); // enter your tracking number
    c.press_all(&format!("{number}#"));
    let mark = c.heard().len();
    let status = loudest_frame_heard_as("fr/status-open");
    common::wait::poll_until(Duration::from_secs(6), || {
        find_frame(&c.heard()[mark..], &status).is_some()
    });
    assert!(
        find_frame(&c.heard()[mark..], &status).is_some(),
        "the caller was not told the ticket is open:\n{}",
        engine.log_text()
    );
    c.hang_up();
}

#[test]
fn after_hours_option_3_leaves_an_s3_message_and_611_skips_the_menus() {
    let engine = Engine::start("", AFTER_HOURS);
    // 611: no language choice, no main menu: straight to the emergency menu.
    let mut c = Caller::call(engine.addr(), "611", "5145550111");
    c.wait_prompt_start(PROMPT_WITHIN); // emergency menu
    c.press('3'); // anything else
    c.wait_prompt_start(PROMPT_WITHIN); // support opens…, press 1 for a message
    c.press('1');
    c.wait_prompt_start(PROMPT_WITHIN); // call you back at…?
    c.press('2'); // another number
    c.wait_prompt_start(PROMPT_WITHIN);
    c.press_all("9005551234#"); // premium: refused
    c.wait_prompt_start(PROMPT_WITHIN); // refused, enter again
    c.press_all("4185550123#");
    c.wait_prompt_end(PROMPT_QUIET, PROMPT_WITHIN); // instructions, tone
    c.say(&speech()[..16000]);
    c.wait_said(Duration::from_secs(10));
    c.press('#');
    assert!(
        c.wait_engine_bye(Duration::from_secs(60)),
        "{}",
        engine.log_text()
    );
    let t = wait_tickets(&engine, 1);
    assert_eq!(t[0]["severity"], "S3", "{t:#?}");
    assert_eq!(t[0]["callback_number"], "+14185550123", "{t:#?}");
}

/// Open all week, every minute.
const IN_HOURS: &str = "[schedule.open]\nmon = [\"00:00-23:59\"]\ntue = [\"00:00-23:59\"]\nwed = [\"00:00-23:59\"]\nthu = [\"00:00-23:59\"]\nfri = [\"00:00-23:59\"]\nsat = [\"00:00-23:59\"]\nsun = [\"00:00-23:59\"]\n\n[schedule.holidays]\ncalendar = \"none\"\n\n[schedule.maintenance]\n";

#[test]
fn in_business_hours_support_reaches_a_technician_and_audio_crosses_both_ways() {
    let tech_port = common::free_port();
    let media = common::free_media_base();
    let mut tech = Command::new("sipp")
        .args([
            "-sf",
            common::scenario("uas_technician.xml").to_str().unwrap(),
        ])
        .args(["-i", "127.0.0.1", "-p", &tech_port.to_string()])
        .args(["-mp", &media.to_string(), "-rtp_echo"])
        .args(["-m", "1", "-timeout", "90s", "-timeout_error", "-nostdin"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run sipp (install sip-tester)");
    let engine = Engine::start(
        "",
        &format!("{IN_HOURS}\n[ivr]\nsupport_group = [\"sip:tech@127.0.0.1:{tech_port}\"]\n"),
    );
    let mut c = Caller::call(engine.addr(), "5149073400", "5145550100");
    c.wait_prompt_start(PROMPT_WITHIN); // language choice
    c.press('9'); // English
    c.wait_prompt_start(PROMPT_WITHIN); // welcome, main menu
    c.press('2'); // support
    c.wait_prompt_end(PROMPT_QUIET, PROMPT_WITHIN); // connecting you with a technician
                                                    // Wait for the bridge, then talk: the technician's phone sends back what it hears.
    common::wait::wait_until_or(
        "the bridge to the technician",
        Duration::from_secs(10),
        || {
            engine
                .log_text()
                .contains("caller connected to a technician")
        },
        || engine.log_text(),
    );
    let mark = c.heard().len();
    c.say(&speech()[..24000]);
    c.wait_said(Duration::from_secs(10));
    let echoed_frames = |heard: &[i16]| {
        heard
            .chunks(160)
            .filter(|f| f.iter().any(|s| s.unsigned_abs() > 1500))
            .count()
    };
    // The echo's tail comes back within half a second of the last word.
    common::wait::poll_until(Duration::from_millis(500), || {
        echoed_frames(&c.heard()[mark..]) > 50
    });
    let echoed = echoed_frames(&c.heard()[mark..]);
    assert!(
        echoed > 50,
        "heard {echoed} loud frames back through the bridge"
    );
    c.hang_up();
    let status = tech.wait().expect("sipp");
    assert!(
        status.success(),
        "the technician's phone: {status:?}\n{}",
        engine.log_text()
    );
    assert!(tickets(&engine).is_empty(), "no voicemail, no ticket");
}

#[test]
fn a_message_cut_by_kill_9_is_ticketed_at_the_next_start() {
    let mut engine = Engine::start("", AFTER_HOURS);
    let mut c = Caller::call(engine.addr(), "5149073400", "5145550100");
    c.wait_prompt_start(PROMPT_WITHIN);
    c.press('1');
    c.wait_prompt_start(PROMPT_WITHIN);
    c.press('2');
    c.wait_prompt_start(PROMPT_WITHIN);
    c.press('2'); // S2
    c.wait_prompt_start(PROMPT_WITHIN);
    c.press('1');
    c.wait_prompt_end(PROMPT_QUIET, PROMPT_WITHIN); // the tone
    c.say(&speech());
    // Not an event: the engine dies about 4 s into the caller's message (the test's scenario).
    std::thread::sleep(Duration::from_secs(4));
    engine.kill9();
    drop(c);
    let engine = Engine::start_in(engine.into_dir(), "", AFTER_HOURS);
    let t = wait_tickets(&engine, 1);
    let t = &t[0];
    assert_eq!(t["severity"], "S2", "{t:#?}");
    assert_eq!(t["callback_number"], "+15145550100");
    assert!(t["answers"]["recovered"].is_string(), "{t:#?}");
    let seconds = t["voicemail_seconds"].as_f64().unwrap_or(0.0);
    assert!(seconds >= 2.0, "{seconds} s kept of about 4");
}

/// Share of a frame's energy at `hz` (Goertzel), 0 to about 1.
fn tone_share(frame: &[i16], hz: f64) -> f64 {
    let k = 2.0 * (2.0 * std::f64::consts::PI * hz / 8000.0).cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    let mut energy = 0.0;
    for &x in frame {
        let x = f64::from(x);
        let s = x + k * s1 - s2;
        s2 = s1;
        s1 = s;
        energy += x * x;
    }
    let power = s1 * s1 + s2 * s2 - k * s1 * s2;
    if energy < 1.0 {
        return 0.0;
    }
    power * 2.0 / (frame.len() as f64 * energy)
}

/// 20 ms frames of `heard` that are mostly a 600 Hz tone.
fn tone_frames(heard: &[i16]) -> usize {
    heard
        .chunks_exact(160)
        .filter(|f| f.iter().any(|s| s.unsigned_abs() > 1500) && tone_share(f, 600.0) > 0.8)
        .count()
}

fn wait_log(engine: &Engine, text: &str) {
    common::wait::wait_until_or(
        &format!("the log line \"{text}\""),
        Duration::from_secs(10),
        || engine.log_text().contains(text),
        || engine.log_text(),
    );
}

#[test]
fn an_announcement_set_by_the_cli_is_heard_before_the_menu_until_it_is_cleared() {
    let engine = Engine::start("", AFTER_HOURS);
    // The announcement: 2 s of a 600 Hz tone (no prompt has one), as a 16 kHz stereo WAV the
    // CLI converts.
    let wav = engine.dir.path().join("outage.wav");
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: 16000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&wav, spec).unwrap();
    for i in 0..32000 {
        let v =
            (12000.0 * (2.0 * std::f64::consts::PI * 600.0 * f64::from(i) / 16000.0).sin()) as i16;
        w.write_sample(v).unwrap();
        w.write_sample(v).unwrap();
    }
    w.finalize().unwrap();
    let wav = wav.to_str().unwrap();
    cli(
        &engine,
        &[
            "announce",
            "set",
            "--phase",
            "identified",
            "--fr",
            "Panne en cours",
            "--en",
            "Ongoing outage",
            "--fr-wav",
            wav,
            "--en-wav",
            wav,
        ],
    );
    assert!(cli(&engine, &["announce", "show", "--json"]).contains("\"identified\""));
    wait_log(&engine, "incident announcement playing to new calls");

    let menu = first_loud_frame_heard_as("fr/main-menu");
    let heard_after_language = |engine: &Engine| {
        let mut c = Caller::call(engine.addr(), "5149073400", "5145550100");
        c.wait_prompt_start(PROMPT_WITHIN);
        c.press('1');
        let mark = c.heard().len();
        // Welcome, "the cause of an incident has been identified", then the announcement,
        // all before the main menu: listen until the menu begins (at most 16 s).
        common::wait::poll_until(Duration::from_secs(16), || {
            find_frame(&c.heard()[mark..], &menu).is_some()
        });
        let heard = c.heard()[mark..].to_vec();
        c.hang_up();
        heard
    };
    let with = tone_frames(&heard_after_language(&engine));
    assert!(
        with >= 50,
        "{with} frames of the announcement's tone heard:\n{}",
        engine.log_text()
    );

    cli(&engine, &["announce", "clear"]);
    wait_log(&engine, "incident announcement cleared");
    let without = tone_frames(&heard_after_language(&engine));
    assert_eq!(without, 0, "the cleared announcement is still heard");
}

#[test]
fn a_611_caller_whose_account_speaks_english_is_served_in_english_and_kept_on_hang_up() {
    let engine = Engine::start("", AFTER_HOURS);
    let csv = engine.dir.path().join("accounts.csv");
    std::fs::write(
        &csv,
        "account,company,address,numbers,admin_name,admin_phone,admin_email,technical_name,technical_phone,technical_email,billing_name,billing_phone,billing_email,language\n\
         ACME,Acme Ltd,1 Main St,5145550177,,,,,,,,,,en\n",
    )
    .unwrap();
    cli(&engine, &["accounts", "import", csv.to_str().unwrap()]);
    let mut c = Caller::call(engine.addr(), "611", "5145550177");
    c.wait_prompt_start(PROMPT_WITHIN); // the emergency menu, in English
    c.press('1'); // S1
    c.wait_prompt_start(PROMPT_WITHIN); // may we call you back at…?
    c.press('1');
    c.wait_prompt_start(PROMPT_WITHIN); // after the tone, give your name…
                                        // The caller hangs up before the tone: the emergency is still a ticket.
    c.hang_up();
    let t = wait_tickets(&engine, 1);
    assert_eq!(t[0]["language"], "en", "{t:#?}");
    assert_eq!(t[0]["severity"], "S1", "{t:#?}");
    assert_eq!(t[0]["company"], "Acme Ltd", "{t:#?}");
}

#[test]
fn in_business_hours_nobody_answering_lands_in_voicemail() {
    // A technician's phone that never answers (its port takes INVITEs and says nothing).
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let engine = Engine::start(
        "",
        &format!(
            "{IN_HOURS}\n[ivr]\nsupport_group = [\"sip:tech@127.0.0.1:{silent_port}\"]\nsupport_ring_secs = 10\n"
        ),
    );
    let mut c = Caller::call(engine.addr(), "5149073400", "5145550100");
    c.wait_prompt_start(PROMPT_WITHIN);
    c.press('1');
    c.wait_prompt_start(PROMPT_WITHIN);
    c.press('2'); // support
    c.wait_prompt_end(PROMPT_QUIET, PROMPT_WITHIN); // connecting you…, then 10 s of ringing
    c.wait_prompt_start(PROMPT_WITHIN); // nobody is available: leave a message; call you back at…?
    c.press('1');
    c.wait_prompt_end(PROMPT_QUIET, PROMPT_WITHIN); // instructions, tone
    c.say(&speech()[..16000]);
    c.wait_said(Duration::from_secs(10));
    c.press('#');
    assert!(
        c.wait_engine_bye(Duration::from_secs(60)),
        "{}",
        engine.log_text()
    );
    let t = wait_tickets(&engine, 1);
    assert_eq!(t[0]["answers"]["business_hours"], "yes", "{t:#?}");
    assert_eq!(t[0]["callback_number"], "+15145550100", "{t:#?}");
    assert!(
        t[0]["voicemail_seconds"].as_f64().unwrap_or(0.0) > 1.0,
        "{t:#?}"
    );
    drop(silent);
}
