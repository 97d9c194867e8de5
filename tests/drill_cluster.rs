//! The bad night on a cluster: `astreinte drill` plays twelve after-hours calls through
//! Kamailio to two engines sharing one PostgreSQL, drilled at ×30. The on-call technician's
//! phone never answers, so every ticket climbs to the top (who presses 3 and is connected to
//! the customer); the mail server is down for the first part of the night; node a is killed
//! (`kill -9`, by the drill's own fault timeline) in the middle of it. The goal figures are
//! read from the drill's JSON report: every S1 and S2 met, no duplicate page, no call without
//! a ticket.

mod common;

use std::process::Command;

use common::kamailio::Kamailio;
use common::pg::PgSchema;
use common::voicemail::api_token;
use common::{free_port, Engine};

/// How often Kamailio probes the nodes with OPTIONS.
const PROBE_SECS: u32 = 1;

const SCENARIO: &str = r#"
[night]
name = "short bad night on two nodes"
length = "40m"
time_scale = 30
ladder_levels = 2
s2_target = "30m"

[[technicians]]
id = "tech-a"          # on call, sleeps through every page
level = 1
phone = "never"

[[technicians]]
id = "tech-b"          # the top: answers and has the customer put through
level = 2
answer_after = "2s"
press = "3"

[trunk]
customer = "answer"
answer_after = "1s"

[[smtp.outages]]
from = "0s"            # the mail server refuses connections for the first 12 minutes
to = "12m"
mode = "down"

[[faults]]
at = "12m"             # node a dies with calls and pages in flight
kind = "kill"
node = "a"

[[bursts]]
from = "0s"
to = "24m"
count = 8
severity = "S1"
lang = "fr"
caller_from = "+15145550300"      # North American numbers: the trunk may call them back

[[bursts]]
from = "1m"
to = "25m"
count = 4
severity = "S2"
lang = "en"
caller_from = "+14385550300"
"#;

/// One node's config: the shared database, its own RTP range and console, the drill's phones,
/// trunk, mail and webhook receivers.
fn node_config(pg: &PgSchema, rtp: &str, http: u16, drill: &DrillPorts) -> String {
    let DrillPorts {
        phones,
        mail,
        webhook,
    } = drill;
    format!(
        r#"[store]
url = "{url}"

[media]
rtp_ports = "{rtp}"

[call]
ring_ms = 0

[schedule.open]

[schedule.maintenance]

[schedule.sla]
s2_callback_minutes = 30

[drill]
time_scale = 30

[sip.outbound]
proxy = "sip:127.0.0.1:{phones}"
from = "sip:astreinte@127.0.0.1"

[[paging.people]]
id = "tech-a"
name = "Tech A"
phone = "sip:1999000001@127.0.0.1:{phones}"
email = "tech-a@example.net"
language = "fr"

[[paging.people]]
id = "tech-b"
name = "Tech B"
phone = "sip:1999000002@127.0.0.1:{phones}"
email = "tech-b@example.net"
language = "en"

[[paging.rotations]]
id = "oncall"
people = ["tech-a"]

[paging.ladder]
levels = [["oncall"], ["tech-b"]]
s1 = ["0s", "10m"]
s2 = ["0s", "20m"]

[paging.phone]
ring_secs = 10

[paging.worker]
lease_secs = 30

[paging.smtp]
url = "smtp://127.0.0.1:{mail}"
from = "astreinte@example.net"

[[paging.webhooks]]
id = "ops"
url = "http://127.0.0.1:{webhook}/hook"
secret = "a drill's shared secret, long enough to sign with"

[http]
listen = "127.0.0.1:{http}"
"#,
        url = pg.url
    )
}

struct DrillPorts {
    phones: u16,
    mail: u16,
    webhook: u16,
}

#[test]
fn a_bad_night_on_two_nodes_keeps_the_promise_when_one_dies() {
    let Some(pg) = PgSchema::create("drill_cluster") else {
        return;
    };
    let drill = DrillPorts {
        phones: free_port(),
        mail: free_port(),
        webhook: free_port(),
    };
    let (http_a, http_b) = (free_port(), free_port());
    let a = Engine::start("", &node_config(&pg, "37000-37999", http_a, &drill));
    let b = Engine::start("", &node_config(&pg, "38000-38999", http_b, &drill));
    let proxy = Kamailio::start(&[a.addr(), b.addr()], PROBE_SECS);
    let a_pid = a.pid().expect("node a runs");
    let token = api_token(&b, "admin");

    let scenario = b.dir.path().join("night.toml");
    std::fs::write(&scenario, SCENARIO).expect("write scenario");
    let json = b.dir.path().join("night.json");
    let svg = b.dir.path().join("night.svg");
    let out = Command::new(env!("CARGO_BIN_EXE_astreinte"))
        .arg("drill")
        .arg(&scenario)
        .args(["--target", &proxy.addr.to_string()])
        .args(["--number", "5149073400"])
        // Node b survives the night: its console reads the tickets both nodes opened.
        .args(["--console", &format!("http://127.0.0.1:{http_b}")])
        .args(["--phones", &drill.phones.to_string()])
        .args(["--mail", &drill.mail.to_string()])
        .args(["--webhook", &drill.webhook.to_string()])
        .args(["--fault", &format!("kill-a=kill -9 {a_pid}")])
        .arg("--json")
        .arg(&json)
        .arg("--svg")
        .arg(&svg)
        .env("ASTREINTE_DRILL_TOKEN", &token)
        .env("ASTREINTE_LOG", "warn")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("astreinte drill");
    let table = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{table}\n{stderr}");
    let logs = || {
        format!(
            "node a:\n{}\nnode b:\n{}\nkamailio:\n{}",
            a.log_text(),
            b.log_text(),
            proxy.log()
        )
    };
    let report: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&json).unwrap_or_else(|e| panic!("night.json: {e}\n{stderr}\n{}", logs())),
    )
    .expect("JSON");

    // The fault ran: node a died by the drill's hand, mid-night.
    assert!(
        stderr.contains("fault kill-a") && stderr.contains("(Ok(0))"),
        "the kill did not run: {stderr}"
    );
    // Dead: gone, or a zombie its parent (this test) has not reaped yet.
    let state = std::fs::read_to_string(format!("/proc/{a_pid}/stat")).unwrap_or_default();
    assert!(
        state.is_empty() || state.contains(") Z "),
        "node a is still alive: {state}"
    );

    // The goal figures.
    let tickets = report["tickets"].as_array().cloned().unwrap_or_default();
    assert_eq!(
        report["calls_without_ticket"],
        0,
        "calls lost: {:#}\n{}",
        report["lost_calls"],
        logs()
    );
    // One ticket per call; a caller whose line dropped after the dead node had opened their
    // ticket, but before they heard its number, called again and has two.
    let again = report["callers_who_called_again"].as_u64().unwrap_or(0) as usize;
    assert!(
        (12..=12 + again).contains(&tickets.len()),
        "{} tickets for 12 calls ({again} called again): {report:#}",
        tickets.len()
    );
    assert_eq!(report["duplicate_pages"], 0, "{report:#}");
    // Twelve emergencies, each S1 or S2 (the engine may raise an S2 to S1 when many calls
    // arrive at once: a suspected incident), every one met.
    let met = report["met"]["S1"].as_u64().unwrap_or(0) + report["met"]["S2"].as_u64().unwrap_or(0);
    assert_eq!(met as usize, tickets.len(), "{table}\n{}", logs());
    assert_eq!(report["missed"]["S1"], 0, "{table}");
    assert_eq!(report["missed"]["S2"], 0, "{table}");
    assert_eq!(report["promise_held"], true, "{table}");
    assert_eq!(out.status.code(), Some(0), "{table}");
    for t in &tickets {
        assert!(t["number"].is_string() && t["met"] == true, "{t:#}");
        // The top took every ticket: the on-call technician never answered.
        assert_eq!(t["acknowledged"]["by"], "tech-b (phone)", "{t:#}");
    }
    let level1_calls: Vec<&serde_json::Value> = tickets
        .iter()
        .flat_map(|t| t["pages"].as_array().into_iter().flatten())
        .filter(|p| p["level"] == 1 && p["channel"] == "phone")
        .collect();
    assert!(
        !level1_calls.is_empty() && level1_calls.iter().all(|p| p["result"] != "answered"),
        "the on-call technician's phone rang and was never answered: {level1_calls:#?}"
    );

    // Both nodes worked the night: a took calls before it died, b after.
    let took = |log: &str| log.lines().filter(|l| l.contains("call started")).count();
    assert!(took(&a.log_text()) > 0, "node a took no call");
    assert!(took(&b.log_text()) > 0, "node b took no call");
    let picture = std::fs::read_to_string(&svg).expect("night.svg");
    for t in &tickets {
        assert!(picture.contains(t["number"].as_str().unwrap_or("?")));
    }
}
