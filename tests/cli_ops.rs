//! The operator CLI against a temp SQLite store: what an admin or a script sees.

use astreinte::call::callback::CallbackNumber;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use astreinte::schedule::{Schedule, ScheduleConfig};
use astreinte::store::{NewTicket, Store, StoreConfig, Voicemail};
use astreinte::triage::Severity;
use chrono::{TimeZone, Utc};

struct Env {
    _dir: tempfile::TempDir,
    config: PathBuf,
    url: String,
}

fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/data/astreinte.db", dir.path().display());
    let config = dir.path().join("astreinte.toml");
    std::fs::write(&config, format!("[store]\nurl = \"{url}\"\n")).unwrap();
    Env {
        _dir: dir,
        config,
        url,
    }
}

fn run(env: &Env, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_astreinte"));
    cmd.args(args)
        .arg("--config")
        .arg(&env.config)
        .env("ASTREINTE_LOG", "warn");
    cmd.output().unwrap()
}

fn ok(env: &Env, args: &[&str]) -> String {
    let out = run(env, args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn fails(env: &Env, args: &[&str]) -> String {
    let out = run(env, args);
    assert!(!out.status.success(), "{args:?} should fail");
    String::from_utf8(out.stderr).unwrap()
}

async fn seed(url: &str, n: usize) -> Vec<String> {
    let store = Store::connect(&StoreConfig::with_url(url)).await.unwrap();
    let sched = Schedule::from_config(&ScheduleConfig::default()).unwrap();
    let at = Utc.with_ymd_and_hms(2025, 3, 13, 3, 0, 0).unwrap();
    let mut out = Vec::new();
    for i in 0..n {
        let sev = if i % 2 == 0 {
            Severity::S1
        } else {
            Severity::S2
        };
        let t = store
            .create_ticket(&NewTicket {
                severity: sev,
                caller: format!("1514555010{i}"),
                callback_number: CallbackNumber::from_record(&format!("1514555010{i}")),
                account_id: None,
                language: "fr".into(),
                voicemail: Some(Voicemail {
                    path: format!("/vm/{i}.wav"),
                    seconds: 12.0,
                    speech_detected: true,
                }),
                answers: Default::default(),
                classification_reasons: vec!["caller chose 1".into()],
                suspected_incident: false,
                time_scale: astreinte::schedule::TimeScale::REAL,
                created_at: at,
                due: sched.due(sev, at),
                pages: vec![],
                actor: "ivr".into(),
            })
            .await
            .unwrap();
        out.push(t.number);
    }
    store.close().await;
    out
}

#[test]
fn migrate_creates_the_store_and_is_idempotent() {
    let e = env();
    // Every migration the repository ships is applied on a new store.
    let shipped =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite"))
            .map(|d| {
                d.filter(|f| {
                    f.as_ref()
                        .is_ok_and(|f| f.path().extension().is_some_and(|x| x == "sql"))
                })
                .count()
            })
            .unwrap_or(0);
    assert!(shipped >= 11, "{shipped} migrations found");
    let first = ok(&e, &["migrate"]);
    assert!(
        first.contains(&format!("sqlite: {shipped} migration(s) applied")),
        "{first}"
    );
    assert!(ok(&e, &["migrate"]).contains("sqlite: 0 migration(s) applied"));
    let path = e.url.trim_start_matches("sqlite://");
    assert!(Path::new(path).exists());
}

/// During a rolling upgrade a node of the previous release may start on a database the new
/// release has migrated: it runs on it (the migrations only add) instead of failing on the
/// migration it does not know (issue 22).
#[test]
fn migrate_runs_on_a_database_a_newer_release_migrated() {
    let e = env();
    ok(&e, &["migrate"]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let pool = sqlx::SqlitePool::connect(&e.url).await.unwrap();
        sqlx::query(
            "INSERT INTO _sqlx_migrations \
             (version, description, installed_on, success, checksum, execution_time) \
             VALUES (99990101000000, 'a newer release', CURRENT_TIMESTAMP, 1, x'00', 1)",
        )
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;
    });
    let again = ok(&e, &["migrate"]);
    assert!(again.contains("sqlite: 0 migration(s) applied"), "{again}");
}

/// `tickets voicemail N --out FILE` writes the WAV from the store: an operator on any node gets
/// it, even once the recording node's file is gone (issue 14).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tickets_voicemail_writes_the_recording_from_the_store() {
    let e = env();
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("vm.wav");
    let wav: Vec<u8> = (0..50_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&rec, &wav).unwrap();
    let store = Store::connect(&StoreConfig::with_url(e.url.as_str()))
        .await
        .unwrap();
    let sched = Schedule::from_config(&ScheduleConfig::default()).unwrap();
    let at = Utc.with_ymd_and_hms(2025, 3, 13, 3, 0, 0).unwrap();
    let t = store
        .create_ticket(&NewTicket {
            severity: Severity::S1,
            caller: "15145550100".into(),
            callback_number: CallbackNumber::from_record("15145550100"),
            account_id: None,
            language: "fr".into(),
            voicemail: Some(Voicemail {
                path: rec.display().to_string(),
                seconds: 3.1,
                speech_detected: true,
            }),
            answers: Default::default(),
            classification_reasons: vec!["caller chose 1".into()],
            suspected_incident: false,
            time_scale: astreinte::schedule::TimeScale::REAL,
            created_at: at,
            due: sched.due(Severity::S1, at),
            pages: vec![],
            actor: "ivr".into(),
        })
        .await
        .unwrap();
    store.close().await;
    std::fs::remove_file(&rec).unwrap();

    let out = dir.path().join("out.wav");
    let text = ok(
        &e,
        &[
            "tickets",
            "voicemail",
            &t.number,
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(text.contains("from the store"), "{text}");
    assert!(std::fs::read(&out).unwrap() == wav, "not the recording");
    let show = ok(&e, &["tickets", "show", &t.number]);
    assert!(show.contains("audio in the store: 50000 bytes"), "{show}");
    // A ticket whose recording is neither in the store nor here says where to look.
    let old = seed(&e.url, 1).await;
    let err = fails(
        &e,
        &[
            "tickets",
            "voicemail",
            &old[0],
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(err.contains("not in the store"), "{err}");
}

#[test]
fn schedule_at_explains_holidays_hours_and_maintenance() {
    let e = env();
    let v: serde_json::Value = serde_json::from_str(&ok(
        &e,
        &["schedule", "at", "2025-12-25T12:00:00-05:00", "--json"],
    ))
    .unwrap();
    assert_eq!(v["open"], false);
    assert_eq!(v["reason"], "holiday: Christmas Day (Noël)");
    assert_eq!(v["next_change"], "2025-12-26T13:00:00Z");
    let text = ok(&e, &["schedule", "at", "2025-03-12T18:00:30-04:00"]);
    assert!(text.contains("OPEN (business hours)"), "{text}");
    assert!(text.contains("closes at 2025-03-12 18:01 EDT"), "{text}");
    let text = ok(&e, &["schedule", "at", "2025-03-11T02:00:00-04:00"]);
    assert!(text.contains("CLOSED (outside business hours)"), "{text}");
    assert!(
        text.contains("maintenance window in progress: Tue 00:01-04:00"),
        "{text}"
    );
    let err = fails(&e, &["schedule", "at", "tomorrow"]);
    assert!(err.contains("RFC 3339"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tickets_list_show_and_update() {
    let e = env();
    let nums = seed(&e.url, 3).await;
    let list: Vec<serde_json::Value> =
        serde_json::from_str(&ok(&e, &["tickets", "list", "--json", "--open"])).unwrap();
    assert_eq!(list.len(), 3);
    for key in [
        "number",
        "severity",
        "status",
        "caller",
        "callback_number",
        "created_at",
        "callback_due_at",
        "voicemail_path",
        "voicemail_seconds",
        "speech_detected",
        "classification_reasons",
    ] {
        assert!(list[0].get(key).is_some(), "missing {key}: {}", list[0]);
    }
    // S1 tickets (due in 30 min) come before the S2 one.
    assert_eq!(list[0]["severity"], "S1");
    assert_eq!(list[2]["severity"], "S2");

    let n = &nums[0];
    let grouped = format!("{} {}", &n[..4], &n[4..]);
    assert!(ok(&e, &["tickets", "ack", &grouped, "--by", "marie"]).contains("acknowledged"));
    ok(
        &e,
        &[
            "tickets",
            "callback",
            n,
            "--by",
            "marie",
            "--reason",
            "spoke to Lise",
        ],
    );
    ok(
        &e,
        &[
            "tickets",
            "resolve",
            n,
            "--by",
            "marie",
            "--reason",
            "router replaced",
        ],
    );
    let err = fails(&e, &["tickets", "ack", n, "--by", "paul"]);
    assert!(
        err.contains("is resolved: it cannot be acknowledged"),
        "{err}"
    );
    let err = fails(
        &e,
        &[
            "tickets",
            "reclassify",
            &nums[1],
            "--by",
            "marie",
            "--severity",
            "S3",
        ],
    );
    assert!(err.contains("--reason"), "{err}");
    ok(
        &e,
        &[
            "tickets",
            "reclassify",
            &nums[1],
            "--by",
            "marie",
            "--severity",
            "S3",
            "--reason",
            "only the portal",
        ],
    );

    let show: serde_json::Value =
        serde_json::from_str(&ok(&e, &["tickets", "show", n, "--json"])).unwrap();
    assert_eq!(show["status"], "resolved");
    let kinds: Vec<&str> = show["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "created",
            "classified",
            "acknowledged",
            "called_back",
            "resolved"
        ]
    );
    let text = ok(&e, &["tickets", "show", &nums[1]]);
    assert!(
        text.contains("reclassified S2 → S3 by marie: only the portal"),
        "{text}"
    );

    let open: Vec<serde_json::Value> =
        serde_json::from_str(&ok(&e, &["tickets", "list", "--json", "--open"])).unwrap();
    assert_eq!(open.len(), 2);
    let err = fails(&e, &["tickets", "show", "12345674"]);
    assert!(err.contains("no ticket numbered 12345674"), "{err}");
    let err = fails(&e, &["tickets", "show", "12345678"]);
    assert!(err.contains("not a tracking number"), "{err}");
    let table = ok(&e, &["tickets", "list"]);
    assert!(table.starts_with("NUMBER"), "{table}");
    assert_eq!(table.lines().count(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sla_report_and_accounts_import() {
    let e = env();
    let nums = seed(&e.url, 2).await;
    ok(&e, &["tickets", "callback", &nums[0], "--by", "marie"]);
    let v: serde_json::Value = serde_json::from_str(&ok(
        &e,
        &[
            "sla",
            "report",
            "--from",
            "2025-03-01",
            "--to",
            "2025-04-01",
            "--json",
        ],
    ))
    .unwrap();
    let s1 = &v["severities"][0];
    assert_eq!(s1["severity"], "S1");
    assert_eq!(s1["tickets"], 1);
    // Called back "now", long after the 30-minute target of a 2025 ticket: a miss.
    assert_eq!(s1["misses"].as_array().unwrap().len(), 1);
    let text = ok(
        &e,
        &[
            "sla",
            "report",
            "--from",
            "2025-03-01",
            "--to",
            "2025-04-01",
        ],
    );
    assert!(text.contains("S2: 1 ticket(s), 0 called back"), "{text}");

    let csv = e.config.with_file_name("accounts.csv");
    std::fs::write(
        &csv,
        "account,company,address,numbers,technical_name,technical_email\nACME,Acme inc.,,5145550199;5145550198,Jean Roy,jean@acme.example\n",
    )
    .unwrap();
    assert!(
        ok(&e, &["accounts", "import", csv.to_str().unwrap()]).contains("1 account(s) imported")
    );
    let a = ok(&e, &["accounts", "show", "ACME"]);
    assert!(
        a.contains("15145550199") && a.contains("technical: Jean Roy"),
        "{a}"
    );
    std::fs::write(&csv, "account,company,numbers\nBAD,Bad,abc\n").unwrap();
    let err = fails(&e, &["accounts", "import", csv.to_str().unwrap()]);
    assert!(
        err.contains("line 2") && err.contains("nothing imported"),
        "{err}"
    );
}

#[test]
fn schedule_holidays_and_triage_check() {
    let e = env();
    let text = ok(&e, &["schedule", "holidays", "2027"]);
    assert!(
        text.contains("2027-12-25 Sat  Christmas Day (Noël)"),
        "{text}"
    );
    assert!(
        text.contains("2027-12-27 Mon  Christmas Day (Noël) (observed)"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 9);
    let out = Command::new(env!("CARGO_BIN_EXE_astreinte"))
        .args(["triage", "check", "--transcript", "we cannot receive faxes"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("S2\n"), "{text}");
    let rules = e.config.with_file_name("rules.toml");
    std::fs::write(
        &rules,
        "default_severity = \"S3\"\ndefault_reason = \"nothing matched\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_astreinte"))
        .args([
            "triage",
            "check",
            "--rules",
            rules.to_str().unwrap(),
            "--transcript",
            "no dial tone",
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8(out.stdout).unwrap().starts_with("S3\n"));
    std::fs::write(&rules, "default_severity = \"S7\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_astreinte"))
        .args(["triage", "check", "--rules", rules.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .contains("triage rules"));
}

#[test]
fn check_config_names_a_missing_prompt_and_its_file() {
    let e = env();
    let prompts = e._dir.path().join("prompts");
    for lang in ["fr", "en"] {
        std::fs::create_dir_all(prompts.join(lang)).unwrap();
        let src = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("prompts")
            .join(lang);
        for f in std::fs::read_dir(src).unwrap().flatten() {
            std::fs::copy(f.path(), prompts.join(lang).join(f.file_name())).unwrap();
        }
    }
    let text = std::fs::read_to_string(&e.config).unwrap();
    std::fs::write(
        &e.config,
        format!("{text}\n[media]\nprompts_dir = \"{}\"\n", prompts.display()),
    )
    .unwrap();
    ok(&e, &["check-config"]);
    std::fs::remove_file(prompts.join("fr/after-hours-menu.wav")).unwrap();
    let err = fails(&e, &["check-config"]);
    assert!(err.contains("fr/after-hours-menu"), "{err}");
    assert!(err.contains("after-hours-menu.wav"), "{err}");
    assert!(err.contains("make-prompts.sh"), "{err}");
}

/// A roster of two technicians (weekly hand-over Monday 08:00) and a director.
fn paging_env() -> Env {
    let e = env();
    let text = std::fs::read_to_string(&e.config).unwrap();
    std::fs::write(
        &e.config,
        format!(
            r#"{text}
[[paging.people]]
id = "tech1"
name = "Martin Roy"
phone = "sip:tech1@10.0.0.5:5060"
email = "tech1@example.net"
[[paging.people]]
id = "tech2"
name = "Julie Tremblay"
phone = "+15145551234"
language = "en"
[[paging.people]]
id = "director"
name = "Directrice"
email = "director@example.net"
[[paging.rotations]]
id = "oncall"
people = ["tech1", "tech2"]
start = "2026-01-05"
[paging.ladder]
levels = [["oncall"], ["director"]]
"#
        ),
    )
    .unwrap();
    e
}

#[test]
fn oncall_now_says_who_is_on_call_and_next_and_an_override_changes_it() {
    let e = paging_env();
    // Monday 2026-01-05 08:00 is tech1's first week; Wednesday the 7th is in it.
    let at = "2026-01-07T12:00:00-05:00";
    let v: serde_json::Value =
        serde_json::from_str(&ok(&e, &["oncall", "now", "--json", "--at", at])).unwrap();
    let r = &v["rotations"][0];
    assert_eq!(r["now"]["person"], "tech1", "{v:#}");
    assert_eq!(r["next"]["person"], "tech2", "{v:#}");
    assert_eq!(r["now"]["until"], "2026-01-12T13:00:00Z", "{v:#}");
    // The ladder: level 1 pages who is on call, level 2 the director; offsets from the SLA
    // (the top 5 min, a minute to arrive and the 1-minute group window before the target).
    assert_eq!(v["ladder"][0]["people"][0]["id"], "tech1", "{v:#}");
    assert_eq!(v["ladder"][1]["people"][0]["id"], "director", "{v:#}");
    assert_eq!(v["ladder"][1]["s1_offset_minutes"], 23, "{v:#}");
    assert_eq!(v["ladder"][1]["s2_offset_minutes"], 53, "{v:#}");
    // tech2 covers Wednesday afternoon to Thursday morning.
    let out = ok(
        &e,
        &[
            "oncall",
            "override",
            "--rotation",
            "oncall",
            "--person",
            "tech2",
            "--from",
            "2026-01-07T11:00:00-05:00",
            "--to",
            "2026-01-08T08:00:00-05:00",
            "--reason",
            "swap",
        ],
    );
    assert!(out.contains("tech2 covers oncall"), "{out}");
    let v: serde_json::Value =
        serde_json::from_str(&ok(&e, &["oncall", "now", "--json", "--at", at])).unwrap();
    assert_eq!(v["rotations"][0]["now"]["person"], "tech2", "{v:#}");
    assert_eq!(v["rotations"][0]["now"]["by_override"], true, "{v:#}");
    let text = ok(&e, &["oncall", "now", "--at", at]);
    assert!(text.contains("Julie Tremblay (tech2)"), "{text}");
    assert!(text.contains("by override"), "{text}");
    // Refusals say why.
    let err = fails(
        &e,
        &[
            "oncall",
            "override",
            "--rotation",
            "nights",
            "--person",
            "tech2",
            "--from",
            "now",
            "--to",
            "2030-01-01",
        ],
    );
    assert!(err.contains("no rotation \"nights\""), "{err}");
    let err = fails(
        &e,
        &[
            "oncall",
            "override",
            "--rotation",
            "oncall",
            "--person",
            "ghost",
            "--from",
            "now",
            "--to",
            "2030-01-01",
        ],
    );
    assert!(err.contains("no person \"ghost\""), "{err}");
    let err = fails(
        &e,
        &[
            "oncall",
            "override",
            "--rotation",
            "oncall",
            "--person",
            "tech2",
            "--from",
            "2026-01-08",
            "--to",
            "2026-01-07",
        ],
    );
    assert!(err.contains("after --from"), "{err}");
}

#[test]
fn people_set_checks_like_the_config_and_list_shows_them() {
    let e = paging_env();
    ok(
        &e,
        &[
            "people",
            "set",
            "coo",
            "--name",
            "Chef des opérations",
            "--phone",
            "+15147004428",
        ],
    );
    let v: serde_json::Value =
        serde_json::from_str(&ok(&e, &["people", "list", "--json"])).unwrap();
    let ids: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["coo", "director", "tech1", "tech2"]);
    let err = fails(
        &e,
        &[
            "people",
            "set",
            "bad",
            "--name",
            "X",
            "--phone",
            "514 555 1234",
        ],
    );
    assert!(err.contains("phone") && err.contains("fix:"), "{err}");
    let err = fails(&e, &["people", "set", "nochannel", "--name", "X"]);
    assert!(err.contains("fix:"), "{err}");
}

#[test]
fn check_config_names_file_line_and_fix_for_a_bad_ladder() {
    let e = env();
    let bad = e.config.with_file_name("bad.toml");
    std::fs::write(
        &bad,
        r#"[[paging.people]]
id = "tech1"
name = "Martin Roy"
email = "tech1@example.net"

[paging.ladder]
levels = [["tech1"], ["directeur"]]
s1 = ["0s", "20m"]
s2 = ["0s", "10m", "5m"]
"#,
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_astreinte"))
        .args(["check-config", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("bad.toml:7: paging.ladder.levels[1][0]"),
        "{err}"
    );
    assert!(err.contains("directeur"), "{err}");
    assert!(err.contains("bad.toml:9: paging.ladder.s2"), "{err}");
    assert!(err.matches("fix:").count() >= 2, "{err}");
}
