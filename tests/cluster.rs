//! Several nodes behind Kamailio's dispatcher on one PostgreSQL, as `docker-compose.yml` runs
//! them, without containers: Kamailio (Debian's package) with `deploy/kamailio/kamailio.cfg`,
//! two built engines on one database, SIPp callers. A node killed with SIGKILL loses only the
//! calls it held; a page it had leased is sent once, by the other node, with the voicemail that
//! only the database still has; a node stopped with SIGTERM drains without cutting a call.

mod common;

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::kamailio::Kamailio;
use common::pg::PgSchema;
use common::smtp::SmtpServer;
use common::voicemail::{cli_json, leave_s1_voicemail};
use common::wait::wait_until;
use common::Engine;

/// How often Kamailio probes the nodes with OPTIONS.
const PROBE_SECS: u32 = 1;

/// A node on the shared database with its own RTP ports (they share one host here).
fn node(pg: &PgSchema, rtp: &str, sip_extra: &str, sections: &str) -> Engine {
    Engine::start(
        sip_extra,
        &format!(
            "[store]\nurl = \"{}\"\n\n[media]\nrtp_ports = \"{rtp}\"\n\n[call]\nring_ms = 0\n\n{sections}",
            pg.url
        ),
    )
}

/// SIPp callers through the proxy, in the background: `calls` calls at `rate` a second, each
/// held 3 s (`tests/sipp/uac_hold.xml`), every Call-ID logged when established and when done.
struct Callers {
    child: Child,
    work: tempfile::TempDir,
    calls: usize,
}

impl Callers {
    fn start(proxy: SocketAddr, calls: usize, rate: u32) -> Callers {
        let work = tempfile::tempdir().expect("tempdir");
        let child = Command::new("sipp")
            .current_dir(work.path())
            .arg(proxy.to_string())
            .args(["-sf", common::scenario("uac_hold.xml").to_str().unwrap()])
            .args(["-s", "611", "-i", "127.0.0.1"])
            .args(["-p", &common::free_port().to_string()])
            .args(["-mp", &common::free_media_base().to_string()])
            .args([
                "-r",
                &rate.to_string(),
                "-m",
                &calls.to_string(),
                "-l",
                "1000",
            ])
            .args(["-timeout", "120s", "-nostdin", "-trace_logs", "-trace_err"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run sipp (install sip-tester)");
        Callers { child, work, calls }
    }

    /// Waits for every call to end; what happened to them.
    fn finish(mut self) -> Outcome {
        wait_until("sipp to finish", Duration::from_secs(150), || {
            self.child.try_wait().ok().flatten().is_some()
        });
        let mut outcome = Outcome {
            calls: self.calls,
            ..Outcome::default()
        };
        for entry in std::fs::read_dir(self.work.path())
            .expect("sipp dir")
            .flatten()
        {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with("_logs.log") {
                for line in text.lines() {
                    let mut words = line.split_whitespace();
                    match (words.next(), words.next()) {
                        (Some("ESTABLISHED"), Some(id)) => {
                            outcome.established.insert(id.to_string());
                        }
                        (Some("DONE"), Some(id)) => {
                            outcome.done.insert(id.to_string());
                        }
                        (Some("LOST"), Some(id)) => {
                            outcome.lost.insert(id.to_string());
                        }
                        _ => {}
                    }
                }
            } else if name.ends_with("_errors.log") {
                outcome.errors.push_str(&text);
            }
        }
        outcome
    }
}

impl Drop for Callers {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Default, Debug)]
struct Outcome {
    calls: usize,
    established: BTreeSet<String>,
    done: BTreeSet<String>,
    /// Calls whose answer or hang-up timed out (the Call-ID is known either way).
    lost: BTreeSet<String>,
    errors: String,
}

impl Outcome {
    /// Calls that failed, by Call-ID: answered but never hung up cleanly, or whose answer
    /// never came.
    fn cut(&self) -> BTreeSet<&String> {
        self.established
            .union(&self.lost)
            .filter(|id| !self.done.contains(*id))
            .collect()
    }
    /// Calls that failed without a trace of their Call-ID (refused outright by the proxy).
    fn unaccounted(&self) -> usize {
        self.calls - self.established.union(&self.lost).count()
    }
}

/// Call-IDs of the calls a node took, from its log, in order.
fn calls_taken(engine: &Engine) -> Vec<String> {
    calls_in(&engine.log_text())
}

fn calls_in(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains("call started"))
        .filter_map(|l| {
            let rest = &l[l.find("call_id=")? + "call_id=".len()..];
            Some(rest.split([' ', '}', ':']).next()?.to_string())
        })
        .collect()
}

#[test]
fn two_nodes_share_the_calls_and_a_killed_node_loses_only_its_own() {
    let Some(pg) = PgSchema::create("cluster_kill") else {
        return;
    };
    let mut a = node(&pg, "31000-31999", "", "");
    let b = node(&pg, "32000-32999", "", "");
    let proxy = Kamailio::start(&[a.addr(), b.addr()], PROBE_SECS);

    let callers = Callers::start(proxy.addr, 200, 20);
    // Mid-run (about 40 calls up on each node), node A dies without a word.
    wait_until("node A to take 40 calls", Duration::from_secs(30), || {
        calls_taken(&a).len() >= 40
    });
    a.kill9();
    let a_log = a.log_text();
    let killed = Instant::now();
    let b_before = calls_taken(&b).len();
    let outcome = callers.finish();

    let on_a: BTreeSet<String> = calls_in(&a_log).into_iter().collect();
    let on_b = calls_taken(&b);
    assert!(on_a.len() >= 40, "node A took {} calls", on_a.len());
    assert!(
        on_b.len() > b_before + 50,
        "node B took {} calls after A died (of {})",
        on_b.len() - b_before,
        on_b.len()
    );
    // No call was refused: calls sent to A after its death were retried on B.
    assert_eq!(
        outcome.unaccounted(),
        0,
        "calls refused: {}\nkamailio:\n{}\nsipp errors:\n{}",
        outcome.unaccounted(),
        proxy.log(),
        outcome.errors
    );
    // The only calls cut are calls node A held when it died.
    let cut = outcome.cut();
    assert!(
        cut.iter().all(|id| on_a.contains(*id)),
        "a call not on node A was cut: {cut:?}\nkamailio:\n{}",
        proxy.log()
    );
    assert!(
        !cut.is_empty() && cut.len() <= 80,
        "{} calls cut (those up on A at its death)",
        cut.len()
    );
    let all_on_b: BTreeSet<&String> = on_b.iter().collect();
    assert!(
        outcome
            .done
            .iter()
            .all(|id| on_a.contains(id) || all_on_b.contains(id)),
        "a finished call was on neither node"
    );
    eprintln!(
        "cluster: A took {}, B {} ({} after A died {:.1} s into the rest); {} cut",
        on_a.len(),
        on_b.len(),
        on_b.len() - b_before,
        killed.elapsed().as_secs_f64(),
        cut.len()
    );
}

#[test]
fn a_draining_node_finishes_its_calls_takes_no_new_one_and_exits() {
    let Some(pg) = PgSchema::create("cluster_drain") else {
        return;
    };
    let mut a = node(&pg, "33000-33999", "drain_secs = 60", "");
    let b = node(&pg, "34000-34999", "", "");
    let proxy = Kamailio::start(&[a.addr(), b.addr()], PROBE_SECS);

    let callers = Callers::start(proxy.addr, 50, 10);
    wait_until("node A to take 5 calls", Duration::from_secs(30), || {
        calls_taken(&a).len() >= 5
    });
    a.terminate();
    let outcome = callers.finish();
    let status = a.wait_exit(Duration::from_secs(20));
    let log = a.log_text();

    assert_eq!(
        outcome.done.len(),
        50,
        "calls cut or lost while a node drained: cut {:?}, refused {}\nnode A:\n{log}\nsipp errors:\n{}",
        outcome.cut(),
        outcome.unaccounted(),
        outcome.errors
    );
    let drain_at = log.find("draining:").expect("node A never drained");
    assert!(
        calls_in(&log[drain_at..]).is_empty(),
        "node A took a call after it began to drain:\n{log}"
    );
    assert!(log.contains("drained: no call in progress"), "{log}");
    let status = status.unwrap_or_else(|| panic!("node A did not exit after draining:\n{log}"));
    assert!(status.success(), "node A exited with {status}:\n{log}");
    assert!(
        calls_taken(&b).len() + calls_in(&log).len() == 50,
        "each call was taken once"
    );
}

/// Accepts SMTP connections and never says a word: a mail server that hangs.
fn silent_smtp() -> (TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    (l, port)
}

fn paging_config(smtp_port: u16, http_port: Option<u16>) -> String {
    let http = http_port
        .map(|p| format!("[http]\nlisten = \"127.0.0.1:{p}\"\n"))
        .unwrap_or_default();
    format!(
        r#"[schedule.open]

[schedule.maintenance]

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
repeat_every = "0s"

[paging.worker]
lease_secs = 30

[paging.smtp]
url = "smtp://127.0.0.1:{smtp_port}"
from = "astreinte@example.net"
timeout_secs = 60

{http}"#
    )
}

fn voicemail_file(engine: &Engine, number: &str) -> PathBuf {
    let t = cli_json(engine, &["tickets", "show", number, "--json"]);
    PathBuf::from(t["voicemail_path"].as_str().expect("voicemail path"))
}

#[test]
fn a_page_leased_by_a_dead_node_is_sent_once_by_the_other_with_the_voicemail() {
    let Some(pg) = PgSchema::create("cluster_page") else {
        return;
    };
    let mail = SmtpServer::start();
    // Node A's mail server hangs, so A leases the page and is still sending it when it dies.
    let (hung, hung_port) = silent_smtp();
    let mut a = node(&pg, "35000-35999", "", &paging_config(hung_port, None));

    let number = leave_s1_voicemail(&a);
    let wav = std::fs::read(voicemail_file(&a, &number)).expect("the voicemail on A's disk");
    // Node A leases the page and connects to its mail server, which never answers. (Node B
    // starts only then: started before, it could take the page first.)
    hung.set_nonblocking(true).expect("nonblocking");
    let mut held = None;
    common::wait::wait_until_or(
        "node A to connect to its mail server",
        Duration::from_secs(30),
        || {
            held = held.take().or_else(|| hung.accept().ok());
            held.is_some()
        },
        || a.log_text(),
    );
    let leased = pg.query("SELECT lease_owner FROM page_jobs WHERE channel = 'email'");
    assert!(!leased.trim().is_empty(), "the page is not leased");
    let b = node(&pg, "36000-36999", "", &paging_config(mail.port, None));
    a.kill9();
    // Node A's disk dies with it: the voicemail is only in the database now.
    std::fs::remove_dir_all(a.dir.path().join("data")).expect("remove A's data");
    let died = Instant::now();

    let got = mail.wait_messages(1, Duration::from_secs(60));
    assert_eq!(got.len(), 1, "no page from node B:\n{}", b.log_text());
    let waited = died.elapsed();
    assert!(
        waited <= Duration::from_secs(45),
        "the page waited {waited:?} after A died (the lease is 30 s)"
    );
    let m = mail.parse(&got[0]);
    assert!(m["subject"].as_str().unwrap().contains(&number), "{m}");
    let att = &m["attachments"][0];
    assert_eq!(att["type"], "audio/wav", "{m}");
    assert_eq!(
        att["hex"].as_str().unwrap(),
        hex::encode(&wav),
        "the attachment is not the voicemail"
    );
    // Node B's operators have it too (the console's player reads the same row).
    let out = b.dir.path().join("heard.wav");
    let status = Command::new(env!("CARGO_BIN_EXE_astreinte"))
        .args(["tickets", "voicemail", &number, "--out"])
        .arg(&out)
        .arg("--config")
        .arg(b.dir.path().join("astreinte.toml"))
        .status()
        .expect("run astreinte");
    assert!(status.success());
    assert!(
        std::fs::read(&out).expect("written") == wav,
        "node B's copy differs"
    );

    // Sent once, by B, after A's lease ran out: A's attempt and B's. B marks the job done
    // after the mail server took the message, so once the row is done every send is in.
    let job = || pg.query("SELECT state, attempts FROM page_jobs WHERE channel = 'email'");
    common::wait::poll_until(Duration::from_secs(4), || job().trim() == "done|2");
    assert_eq!(mail.messages().len(), 1, "the page was sent twice");
    let row = job();
    assert_eq!(row.trim(), "done|2", "the e-mail page job");
    let b_log = b.log_text();
    assert!(
        b_log
            .lines()
            .any(|l| l.contains("page sent") && l.contains(&number)),
        "node B did not send the page:\n{b_log}"
    );
}
