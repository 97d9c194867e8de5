//! Real SIP scanners (SIPVicious `svmap` and `svwar`, from PyPI) against the built engine from
//! an untrusted address: the engine is found (it is a SIP server), but no served number can be
//! told apart from an unknown one. The same scan from a trusted address does find them, which
//! shows the scan would notice a difference if there were one.
//!
//! svwar 0.3.8 ignores its `-b` (bind address) option and always sends from the loopback
//! address, so the stranger's engine trusts another network instead.

mod common;

use std::process::Command;

use common::Engine;

/// An engine that trusts only a documentation network: every local scanner is a stranger.
const STRANGERS_ENGINE: &str = "trusted = [\"192.0.2.0/24\"]";

/// The scanner's command, or None when it is not installed (a failure under CI).
fn tool(name: &str) -> Option<&str> {
    let found = Command::new(name).arg("--help").output().is_ok();
    if !found {
        assert!(
            std::env::var("CI").is_err(),
            "{name} is missing: scripts/test.sh installs SIPVicious with pip"
        );
        common::skip(name, "not installed (pip install sipvicious)");
        return None;
    }
    Some(name)
}

/// Runs svwar with `method` over extensions 600–620, the main numbers and a name, and returns
/// the extensions it reports as existing.
fn svwar(engine: &Engine, method: &str) -> Option<Vec<String>> {
    let svwar = tool("sipvicious_svwar")?;
    let dict = engine.dir.path().join("numbers.txt");
    let mut words: Vec<String> = (600..=620).map(|n| n.to_string()).collect();
    words.extend(["5149073400", "5149073401", "18772435520", "alice"].map(String::from));
    std::fs::write(&dict, words.join("\n") + "\n").unwrap();
    let out = Command::new(svwar)
        .current_dir(engine.dir.path())
        .args(["-p", &engine.sip_port.to_string()])
        .args(["-m", method, "-d", dict.to_str().unwrap()])
        .args(["--force", "--maximumtime", "20", "-t", "0.02"])
        .arg("127.0.0.1")
        .output()
        .expect("run svwar");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    // The report is a table: | Extension | Authentication |
    let found: Vec<String> = text
        .lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            (cells.len() >= 3
                && cells[1].chars().all(|c| c.is_ascii_alphanumeric())
                && !cells[1].is_empty()
                && cells[1] != "Extension")
                .then(|| cells[1].to_string())
        })
        .collect();
    eprintln!("svwar -m {method}:\n{text}");
    Some(found)
}

#[test]
fn svwar_from_a_stranger_finds_no_number() {
    let engine = Engine::start(STRANGERS_ENGINE, "");
    for method in ["REGISTER", "OPTIONS", "INVITE"] {
        let Some(found) = svwar(&engine, method) else {
            return;
        };
        assert!(
            found.is_empty(),
            "svwar -m {method} told numbers apart: {found:?}"
        );
    }
    // The control: from a trusted address an INVITE scan does tell 611 from 612.
    let trusting = Engine::start("", "");
    let Some(found) = svwar(&trusting, "INVITE") else {
        return;
    };
    assert!(
        found.iter().any(|f| f == "611"),
        "{found:?}\n{}",
        trusting.log_text()
    );
    assert!(!found.iter().any(|f| f == "612"), "{found:?}");
}

#[test]
fn svmap_from_a_stranger_sees_a_sip_server_and_the_engine_carries_on() {
    let engine = Engine::start(STRANGERS_ENGINE, "");
    let Some(svmap) = tool("sipvicious_svmap") else {
        return;
    };
    for method in ["OPTIONS", "INVITE"] {
        let out = Command::new(svmap)
            .current_dir(engine.dir.path())
            .args(["-p", &engine.sip_port.to_string(), "-m", method])
            .arg("127.0.0.1")
            .output()
            .expect("run svmap");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains(&format!("127.0.0.1:{}", engine.sip_port)),
            "svmap -m {method} output:\n{text}"
        );
    }
    // Still answering.
    let probe = format!(
        "OPTIONS sip:611@{0} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKafter\r\nFrom: <sip:p@127.0.0.1>;tag=1\r\nTo: <sip:611@{0}>\r\nCall-ID: after\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        engine.addr()
    );
    let answer = engine
        .exchange_udp(probe.as_bytes(), std::time::Duration::from_secs(2))
        .expect("an answer");
    assert!(answer.starts_with(b"SIP/2.0 200"));
}
