//! Covers (on-call overrides) in the console and the CLI: one technician cannot silence the
//! ladder (issue 23 item 3). A technician covers only a rotation they take turns in, for at
//! most `[paging] max_cover_days`, and removes their own covers; no change by anyone leaves a
//! ladder level with nobody or with the person of a lower level unless an admin forces it
//! (audited); the console and `astreinte oncall now` warn of such a ladder.
//!
//! In-process on a real socket with a temp SQLite store; each request says who makes it with
//! an `x-test-user: name:role[:person]` header (what the authentication layer would have found).

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::Arc;

use astreinte::admin::auth::{CurrentUser, Role};
use astreinte::admin::AdminState;
use astreinte::config::Config;
use astreinte::store::Store;
use chrono::{Duration, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};

struct Console {
    base: String,
    store: Store,
    config: PathBuf,
    _dir: tempfile::TempDir,
}

/// tech1 and tech2 take turns at "oncall"; Claire is the "director" rotation; the ladder pages
/// who is on call, then the director.
const ROSTER: &str = r#"
[[paging.people]]
id = "tech1"
name = "Martin Roy"
email = "tech1@example.net"
[[paging.people]]
id = "tech2"
name = "Julie Tremblay"
email = "tech2@example.net"
[[paging.people]]
id = "claire"
name = "Claire Gagnon"
email = "claire@example.net"
[[paging.rotations]]
id = "oncall"
people = ["tech1", "tech2"]
[[paging.rotations]]
id = "director"
people = ["claire"]
[paging.ladder]
levels = [["oncall"], ["director"]]
"#;

async fn as_user(
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    // "name:role", or "name:role:person" for a login linked to a person.
    let who = req
        .headers()
        .get("x-test-user")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let mut parts = v.splitn(3, ':');
            let name = parts.next()?.to_string();
            let role = Role::parse(parts.next()?)?;
            Some(CurrentUser {
                person: parts.next().map(str::to_string),
                ..CurrentUser::new(name, role)
            })
        });
    if let Some(user) = who {
        req.extensions_mut().insert(user);
    }
    next.run(req).await
}

async fn console(paging: &str) -> Console {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/astreinte.db", dir.path().display());
    let text = format!("[store]\nurl = \"{url}\"\n{paging}");
    let path = dir.path().join("astreinte.toml");
    std::fs::write(&path, &text).unwrap();
    let config = Config::parse(&path, &text).unwrap();
    let store = Store::connect(&config.store).await.unwrap();
    astreinte::paging::service::seed_people(&store, &config.paging)
        .await
        .unwrap();
    let state = AdminState {
        store: store.clone(),
        secure_cookies: false,
        login_limiter: Default::default(),
        media: None,
        config: Arc::new(config),
    };
    let app = axum::Router::new()
        .merge(astreinte::admin::oncall::routes())
        .layer(axum::middleware::from_fn(as_user))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Console {
        base,
        store,
        config: path,
        _dir: dir,
    }
}

async fn call(
    c: &Console,
    user: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let client = reqwest::Client::new();
    let mut req = client
        .request(method.parse().unwrap(), format!("{}{path}", c.base))
        .header("x-test-user", user);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

const TECH1: &str = "tech1:technician";
const TECH2: &str = "tech2:technician";
const ADMIN: &str = "ada:admin";

fn cover(rotation: &str, person: &str, from: chrono::DateTime<Utc>, days: i64) -> Value {
    json!({"rotation": rotation, "person": person, "from": from, "to": from + Duration::days(days), "reason": "test"})
}

fn error(v: &Value) -> &str {
    v["error"].as_str().unwrap_or_default()
}

fn cli(c: &Console, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_astreinte"))
        .args(args)
        .arg("--config")
        .arg(&c.config)
        .env("ASTREINTE_LOG", "error")
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_technician_covers_only_their_own_rotation_for_a_bounded_time() {
    let c = console(ROSTER).await;
    let now = Utc::now();
    // The director's rotation, until 2126: not theirs to take.
    let (s, e) = call(
        &c,
        TECH1,
        "POST",
        "/api/oncall/overrides",
        Some(json!({"rotation": "director", "person": "tech1", "from": now, "to": "2126-01-01T00:00:00Z"})),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{e}");
    assert!(
        error(&e).contains("tech1 is not in rotation \"director\""),
        "{e}"
    );
    // Their own rotation, but for 30 days: the limit is said.
    let (s, e) = call(
        &c,
        TECH1,
        "POST",
        "/api/oncall/overrides",
        Some(cover("oncall", "tech1", now, 30)),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert!(error(&e).contains("at most 7 days"), "{e}");
    assert!(error(&e).contains("max_cover_days"), "{e}");
    // Someone else in their rotation: still an admin's to set.
    let (s, e) = call(
        &c,
        TECH1,
        "POST",
        "/api/oncall/overrides",
        Some(cover("oncall", "tech2", now, 1)),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{e}");
    // Only an admin may force.
    let mut forced = cover("oncall", "tech1", now, 1);
    forced["force"] = json!(true);
    let (s, e) = call(&c, TECH1, "POST", "/api/oncall/overrides", Some(forced)).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{e}");
    assert!(c.store.overrides(now).await.unwrap().is_empty());
    // Three days of their own rotation: accepted, and they are on call.
    let (s, mine) = call(
        &c,
        TECH1,
        "POST",
        "/api/oncall/overrides",
        Some(cover("oncall", "tech1", now - Duration::hours(1), 3)),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{mine}");
    let (_, v) = call(&c, TECH1, "GET", "/api/oncall", None).await;
    assert_eq!(v["ladder"][0]["people"][0]["id"], "tech1", "{v}");
    assert_eq!(v["warnings"], json!([]), "{v}");
    // An admin's covers are not bounded.
    let (s, theirs) = call(
        &c,
        ADMIN,
        "POST",
        "/api/oncall/overrides",
        Some(cover("oncall", "tech1", now + Duration::days(10), 30)),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{theirs}");
    // tech1 removes the cover they posted, not the admin's; tech2 removes neither.
    let mine = mine["id"].as_i64().unwrap();
    let theirs = theirs["id"].as_i64().unwrap();
    for (user, id, want) in [
        (TECH2, mine, StatusCode::FORBIDDEN),
        (TECH1, theirs, StatusCode::FORBIDDEN),
        (TECH1, 9999, StatusCode::NOT_FOUND),
        (TECH1, mine, StatusCode::NO_CONTENT),
        (ADMIN, theirs, StatusCode::NO_CONTENT),
    ] {
        let (s, e) = call(
            &c,
            user,
            "DELETE",
            &format!("/api/oncall/overrides/{id}"),
            None,
        )
        .await;
        assert_eq!(s, want, "{user} removes {id}: {e}");
    }
    assert!(c.store.overrides(now).await.unwrap().is_empty());
    let removed = c.store.audit_events(10, None).await.unwrap();
    assert!(
        removed
            .iter()
            .any(|a| a.action == "override.remove" && a.actor == "tech1"),
        "{removed:?}"
    );

    // The limit is the config's.
    let c = console(&format!("[paging]\nmax_cover_days = 2\n{ROSTER}")).await;
    let (s, e) = call(
        &c,
        TECH1,
        "POST",
        "/api/oncall/overrides",
        Some(cover("oncall", "tech1", now, 3)),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert!(error(&e).contains("at most 2 days"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_making_level_2_the_person_of_level_1_is_refused_unless_an_admin_forces() {
    let c = console(ROSTER).await;
    let now = Utc::now();
    // tech1 is on call for the next three days.
    let (s, e) = call(
        &c,
        TECH1,
        "POST",
        "/api/oncall/overrides",
        Some(cover("oncall", "tech1", now - Duration::hours(1), 3)),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{e}");
    // Making tech1 the director too would page tech1 twice and Claire never.
    let director = cover("director", "tech1", now - Duration::hours(1), 1);
    let (s, e) = call(
        &c,
        ADMIN,
        "POST",
        "/api/oncall/overrides",
        Some(director.clone()),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{e}");
    assert!(
        error(&e)
            .contains("level 2 (director) would be tech1 (Martin Roy), who is already level 1"),
        "{e}"
    );
    assert!(error(&e).contains("\"force\": true"), "{e}");
    assert_eq!(c.store.overrides(now).await.unwrap().len(), 1);
    // The CLI refuses it alike.
    let out = cli(
        &c,
        &[
            "oncall",
            "override",
            "--rotation",
            "director",
            "--person",
            "tech1",
            "--from",
            "now",
            "--to",
            &(now + Duration::hours(2)).to_rfc3339(),
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("level 2 (director) would be tech1 (Martin Roy), who is already level 1"),
        "{err}"
    );
    assert!(err.contains("--force"), "{err}");
    assert_eq!(c.store.overrides(now).await.unwrap().len(), 1);

    // An admin confirms: done, and the audit log says it was forced.
    let mut forced = director.clone();
    forced["force"] = json!(true);
    let (s, o) = call(&c, ADMIN, "POST", "/api/oncall/overrides", Some(forced)).await;
    assert_eq!(s, StatusCode::CREATED, "{o}");
    assert_eq!(o["forced"], true, "{o}");
    let audit = c.store.audit_events(10, None).await.unwrap();
    let add = audit
        .iter()
        .find(|a| a.action == "override.add" && a.actor == "ada")
        .expect("the forced change is audited");
    let after = add.after.as_ref().unwrap();
    assert_eq!(after["forced"], true, "{after}");
    assert!(
        after["gaps"].to_string().contains("level 2 (director)"),
        "{after}"
    );

    // The console's view warns of the ladder, beside the level and above it.
    let (_, v) = call(&c, TECH1, "GET", "/api/oncall", None).await;
    let warning = "level 2 (director) is tech1 (Martin Roy), who is already level 1";
    assert_eq!(v["warnings"], json!([warning]), "{v}");
    assert_eq!(v["ladder"][1]["warnings"], json!([warning]), "{v}");
    assert_eq!(v["ladder"][0]["warnings"], json!([]), "{v}");
    let (_, page) = call(&c, TECH1, "GET", "/oncall", None).await;
    assert!(
        page.as_str()
            .unwrap_or_default()
            .contains("ladder-warnings"),
        "{page}"
    );
    // So does `astreinte oncall now`.
    let out = cli(&c, &["oncall", "now"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains(&format!("WARNING: {warning}")), "{text}");

    // A technician's own cover is held to the same rule: tech2 on call while tech2 is the
    // second level (tech1 holds "oncall" first, whoever's week it is).
    let c = console(&ROSTER.replace(
        "levels = [[\"oncall\"], [\"director\"]]",
        "levels = [[\"oncall\"], [\"tech2\"]]",
    ))
    .await;
    let (s, e) = call(
        &c,
        TECH1,
        "POST",
        "/api/oncall/overrides",
        Some(cover("oncall", "tech1", now - Duration::hours(1), 3)),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{e}");
    let (s, e) = call(
        &c,
        TECH2,
        "POST",
        "/api/oncall/overrides",
        Some(cover("oncall", "tech2", now, 1)),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{e}");
    assert!(
        error(&e)
            .contains("level 2 (tech2) would be tech2 (Julie Tremblay), who is already level 1"),
        "{e}"
    );
    assert!(error(&e).contains("ask an admin"), "{e}");
}

/// Issue 21: a login need not be named after its person id. Unlinked, the refusal says how to
/// link it; linked, the technician covers their own shift (and only theirs) and removes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_technician_whose_login_is_not_their_person_id_covers_once_linked() {
    let c = console(ROSTER).await;
    let now = Utc::now();
    // "mroy" is Martin Roy, person tech1, but the login is not linked yet.
    let (s, e) = call(
        &c,
        "mroy:technician",
        "POST",
        "/api/oncall/overrides",
        Some(cover("oncall", "tech1", now, 1)),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{e}");
    assert!(
        error(&e).contains("linked to no person")
            && error(&e).contains("`astreinte users link mroy tech1`"),
        "{e}"
    );
    // A French reader gets the same refusal in French, with the same command.
    let fr = e["error_fr"].as_str().unwrap_or_default();
    assert!(
        fr.contains("n'est lié à aucune personne")
            && fr.contains("`astreinte users link mroy tech1`"),
        "{e}"
    );
    assert!(c.store.overrides(now).await.unwrap().is_empty());

    // Linked to tech1: their own shift is theirs to cover.
    const MROY: &str = "mroy:technician:tech1";
    let (s, v) = call(
        &c,
        MROY,
        "POST",
        "/api/oncall/overrides",
        Some(cover("oncall", "tech1", now, 2)),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let covers = c.store.overrides(now).await.unwrap();
    assert_eq!(covers.len(), 1);
    assert_eq!(
        (covers[0].person.as_str(), covers[0].created_by.as_str()),
        ("tech1", "mroy")
    );
    // Someone else's still is not, and the refusal names their link.
    let (s, e) = call(
        &c,
        MROY,
        "POST",
        "/api/oncall/overrides",
        Some(cover("oncall", "tech2", now, 1)),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{e}");
    assert!(
        error(&e).contains("is linked to person \"tech1\", not \"tech2\""),
        "{e}"
    );
    // Nor a rotation their person is not in.
    let (s, e) = call(
        &c,
        MROY,
        "POST",
        "/api/oncall/overrides",
        Some(cover("director", "tech1", now, 1)),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{e}");
    assert!(
        error(&e).contains("tech1 is not in rotation \"director\""),
        "{e}"
    );
    // They remove the cover they posted.
    let (s, e) = call(
        &c,
        MROY,
        "DELETE",
        &format!("/api/oncall/overrides/{}", covers[0].id),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{e}");
    assert!(c.store.overrides(now).await.unwrap().is_empty());
}
