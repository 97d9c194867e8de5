//! The console's authentication in-process: the real router on a temp SQLite store, served on
//! 127.0.0.1 with the peer address known (as `serve` does), and the CLI for users and tokens.
//! Cookies are handled by hand (reqwest's cookie jar is not enabled). The store half (users,
//! sessions, tokens, the append-only audit log) also runs on PostgreSQL (ASTREINTE_TEST_PG_URL;
//! required when CI is set).

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;

use astreinte::admin::auth::{self, CurrentUser, LoginLimiter, Role};
use astreinte::admin::{AdminState, ApiError};
use astreinte::config::Config;
use astreinte::store::audit::NewAudit;
use astreinte::store::{Store, StoreConfig};
use axum::routing::post;
use axum::Router;
use chrono::Utc;
use reqwest::header::{HeaderMap, SET_COOKIE};
use reqwest::StatusCode;
use serde_json::{json, Value};

mod common;
use common::backends::pg;

const PASSWORD: &str = "correct horse battery staple";

struct Console {
    base: String,
    store: Store,
    config: PathBuf,
    url: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

/// A test-only change that needs an admin, behind the same authentication layer.
async fn admin_only(user: CurrentUser) -> Result<&'static str, ApiError> {
    user.require(Role::Admin)?;
    Ok("done")
}

async fn console_with(secure_cookies: bool, limiter: LoginLimiter) -> Console {
    console_configured(secure_cookies, limiter, Config::default()).await
}

async fn console_configured(secure_cookies: bool, limiter: LoginLimiter, cfg: Config) -> Console {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/data/astreinte.db", dir.path().display());
    let config = dir.path().join("astreinte.toml");
    std::fs::write(&config, format!("[store]\nurl = \"{url}\"\n")).unwrap();
    let store = Store::connect(&StoreConfig::with_url(url.clone()))
        .await
        .unwrap();
    let state = AdminState {
        store: store.clone(),
        secure_cookies,
        login_limiter: Arc::new(limiter),
        media: None,
        config: Arc::new(cfg),
    };
    let test_routes = Router::new()
        .route("/api/test/admin-only", post(admin_only))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
        .with_state(state.clone());
    let app = astreinte::admin::router(state).merge(test_routes);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await;
    });
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    Console {
        base,
        store,
        config,
        url,
        http,
        _dir: dir,
    }
}

async fn console() -> Console {
    console_with(false, LoginLimiter::default()).await
}

impl Console {
    async fn add_user(&self, name: &str, role: &str) {
        let hash = auth::hash_password(PASSWORD.to_string()).await.unwrap();
        self.store
            .create_user(name, role, &hash, "test", Utc::now())
            .await
            .unwrap();
    }

    async fn login_raw(&self, name: &str, password: &str) -> reqwest::Response {
        self.http
            .post(format!("{}/api/login", self.base))
            .json(&json!({ "name": name, "password": password }))
            .send()
            .await
            .unwrap()
    }

    /// Logs in; returns the session cookie ("astreinte_session=…") and the CSRF token.
    async fn login(&self, name: &str) -> (String, String) {
        let r = self.login_raw(name, PASSWORD).await;
        assert_eq!(r.status(), StatusCode::OK);
        let cookie = session_cookie(r.headers()).expect("a session cookie");
        let body: Value = r.json().await.unwrap();
        (cookie, body["csrf_token"].as_str().unwrap().to_string())
    }

    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.get(format!("{}{path}", self.base))
    }
    fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.post(format!("{}{path}", self.base))
    }

    fn cli(&self, args: &[&str], stdin: Option<&str>) -> std::process::Output {
        let mut child = Command::new(env!("CARGO_BIN_EXE_astreinte"))
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .env("ASTREINTE_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        if let Some(s) = stdin {
            input.write_all(s.as_bytes()).unwrap();
        }
        drop(input);
        child.wait_with_output().unwrap()
    }

    fn cli_ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.cli(args, stdin);
        assert!(
            out.status.success(),
            "{args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

/// The "astreinte_session=…" pair of a Set-Cookie header.
fn session_cookie(h: &HeaderMap) -> Option<String> {
    let v = h.get(SET_COOKIE)?.to_str().ok()?;
    let pair = v.split(';').next()?.trim().to_string();
    pair.starts_with("astreinte_session=").then_some(pair)
}

fn set_cookie(h: &HeaderMap) -> String {
    h.get(SET_COOKIE)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

async fn error_of(r: reqwest::Response) -> String {
    let v: Value = r.json().await.unwrap();
    v["error"].as_str().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_cookies_csrf_and_logout() {
    let c = console().await;
    c.add_user("alice", "admin").await;

    let r = c.get("/api/me").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // Wrong password and unknown name: the same answer.
    for (name, pw) in [("alice", "not the right password"), ("nobody", PASSWORD)] {
        let r = c.login_raw(name, pw).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert!(session_cookie(r.headers()).is_none());
        assert_eq!(error_of(r).await, "wrong name or password");
    }
    // Not JSON (a cross-site form could send text/plain): refused before any check.
    let r = c
        .post("/api/login")
        .header("Content-Type", "text/plain")
        .body(format!(r#"{{"name":"alice","password":"{PASSWORD}"}}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let r = c.login_raw("alice", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::OK);
    let flags = set_cookie(r.headers());
    assert!(flags.contains("HttpOnly"), "{flags}");
    assert!(flags.contains("SameSite=Strict"), "{flags}");
    assert!(flags.contains("Path=/"), "{flags}");
    assert!(flags.contains("Max-Age=43200"), "{flags}");
    assert!(!flags.contains("Secure"), "plain http: {flags}");
    let cookie = session_cookie(r.headers()).unwrap();
    let value = cookie.trim_start_matches("astreinte_session=");
    assert_eq!(value.len(), 64, "32 random bytes in hex: {value}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["name"], "alice");
    assert_eq!(body["role"], "admin");
    let csrf = body["csrf_token"].as_str().unwrap().to_string();

    let r = c
        .get("/api/me")
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let me: Value = r.json().await.unwrap();
    assert_eq!(
        me,
        json!({ "name": "alice", "role": "admin", "csrf_token": csrf,
                "person_id": null, "person": "alice", "lang": null })
    );

    // A change with the cookie needs the CSRF token.
    let r = c
        .post("/api/test/admin-only")
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        error_of(r).await,
        "missing or wrong CSRF token: reload the page"
    );
    let r = c
        .post("/api/test/admin-only")
        .header("Cookie", &cookie)
        .header("X-CSRF-Token", "0".repeat(64))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = c
        .post("/api/test/admin-only")
        .header("Cookie", &cookie)
        .header("X-CSRF-Token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.text().await.unwrap(), "done");

    // A cookie that is not a session: 401 (not anonymous), and the browser is told to drop it.
    let r = c
        .get("/api/me")
        .header("Cookie", "astreinte_session=forged")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(set_cookie(r.headers()).contains("Max-Age=0"));
    // ...but it never keeps anyone from the login page.
    let r = c
        .get("/login")
        .header("Cookie", "astreinte_session=forged")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // Logout: needs the CSRF token too, then ends the session and clears the cookie.
    let r = c
        .post("/api/logout")
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = c
        .post("/api/logout")
        .header("Cookie", &cookie)
        .header("X-CSRF-Token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(set_cookie(r.headers()).contains("Max-Age=0"));
    let r = c
        .get("/api/me")
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // The session id is not in the database, only its hash.
    let pool = sqlx::SqlitePool::connect(&c.url).await.unwrap();
    let stored: Vec<String> = sqlx::query_scalar("SELECT id_hash FROM sessions")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert!(stored.iter().all(|h| h != value));
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookies_are_secure_over_https() {
    let c = console_with(true, LoginLimiter::default()).await;
    c.add_user("alice", "viewer").await;
    let r = c.login_raw("alice", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::OK);
    let flags = set_cookie(r.headers());
    assert!(flags.contains("; Secure"), "{flags}");
    assert!(flags.contains("HttpOnly") && flags.contains("SameSite=Strict"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_redirects_and_the_login_page() {
    let c = console().await;
    let r = c.get("/").send().await.unwrap();
    assert!(r.status().is_redirection());
    assert_eq!(r.headers()["location"], "/tickets");

    let r = c.get("/login").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let html = r.text().await.unwrap();
    assert!(html.contains("<form id=\"login\""));
    assert!(html.contains("/api/login"));
    assert!(!html.contains("<nav>"), "the login page has no navigation");

    // A browser asking for a page without a login goes to the login page, and comes back.
    let r = c
        .get("/audit?x=1")
        .header("Accept", "text/html,application/xhtml+xml")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/login?next=/audit%3Fx%3D1");
    // A script gets the 401.
    let r = c.get("/audit").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_users_and_bearer_tokens() {
    let c = console().await;
    // The password comes from standard input; a short one is refused with the reason.
    let out = c.cli(&["users", "add", "ops", "--role", "admin"], Some("short\n"));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("at least 12"), "{err}");
    let out = c.cli(&["users", "add", "ops", "--role", "boss"], Some("x\n"));
    assert!(!out.status.success());
    c.cli_ok(
        &["users", "add", "ops", "--role", "admin"],
        Some(&format!("{PASSWORD}\n")),
    );
    let token = c.cli_ok(&["users", "token", "ops", "--label", "backup"], None);
    let token = token.trim().to_string();
    assert!(token.starts_with("ast_") && token.len() == 68, "{token}");
    assert!(c.cli_ok(&["users", "list"], None).contains("ops admin"));

    let r = c.get("/api/me").bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let me: Value = r.json().await.unwrap();
    assert_eq!(me["name"], "ops");
    assert_eq!(me["role"], "admin");
    assert!(me["csrf_token"].is_null());
    // No CSRF token needed with a bearer token.
    let r = c
        .post("/api/test/admin-only")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // Wrong credentials are refused, not taken as anonymous.
    let r = c
        .get("/api/me")
        .bearer_auth("ast_0000")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = c
        .get("/api/me")
        .header("Authorization", "Basic b3BzOnB3")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(error_of(r).await.contains("Bearer"));

    // The audit log has the user and the token, by "cli", never the token itself.
    let events = c.store.audit_events(10, None).await.unwrap();
    let actions: Vec<_> = events.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["token.create", "user.add"]);
    assert!(events.iter().all(|e| e.actor == "cli" && e.target == "ops"));
    assert_eq!(events[1].after.as_ref().unwrap()["role"], "admin");
    let r = c
        .get("/api/audit")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let text = r.text().await.unwrap();
    assert!(
        !text.contains(&token[4..]),
        "a token leaked into the audit log"
    );
    let listed: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert_eq!(listed[0]["action"], "token.create");
    assert!(c.cli_ok(&["audit"], None).contains("user.add"));

    // Revoked: 401.
    let out = c.cli_ok(&["users", "tokens", "ops", "--json"], None);
    let listed: Value = serde_json::from_str(&out).unwrap();
    let id = listed[0]["id"].as_i64().unwrap().to_string();
    c.cli_ok(&["users", "revoke-token", &id], None);
    let r = c.get("/api/me").bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // Disabled: its tokens and sessions stop working, and it cannot log in.
    let token2 = c
        .cli_ok(&["users", "token", "ops"], None)
        .trim()
        .to_string();
    let (cookie, _) = c.login("ops").await;
    c.cli_ok(&["users", "disable", "ops"], None);
    let r = c.get("/api/me").bearer_auth(&token2).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = c
        .get("/api/me")
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = c.login_raw("ops", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let actions: Vec<_> = c
        .store
        .audit_events(10, None)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(
        actions,
        [
            "user.disable",
            "token.create",
            "token.revoke",
            "token.create",
            "user.add"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_guard_admin_routes_and_the_audit_log() {
    let c = console().await;
    c.add_user("vera", "viewer").await;
    c.add_user("alice", "admin").await;
    let (viewer, viewer_csrf) = c.login("vera").await;
    let r = c
        .post("/api/test/admin-only")
        .header("Cookie", &viewer)
        .header("X-CSRF-Token", &viewer_csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(error_of(r).await.contains("vera may not do this"));
    for path in ["/audit", "/api/audit"] {
        let r = c.get(path).header("Cookie", &viewer).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{path}");
        let r = c.get(path).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{path}");
    }

    let (admin, _) = c.login("alice").await;
    let r = c
        .get("/audit")
        .header("Cookie", &admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let html = r.text().await.unwrap();
    assert!(html.contains("<table id=\"audit\""));
    assert!(html.contains("/assets/console.js"));

    // Paging through the log, newest first, and bad parameters in words.
    for i in 0..5 {
        c.store
            .audit(&NewAudit {
                actor: "alice",
                action: "test.change",
                target: &format!("thing {i}"),
                before: Some(json!({ "n": i })),
                after: Some(json!({ "n": i + 1 })),
                at: Utc::now(),
            })
            .await
            .unwrap();
    }
    let page = |q: &'static str| {
        let c = &c;
        let admin = admin.clone();
        async move {
            let r = c
                .get(&format!("/api/audit{q}"))
                .header("Cookie", &admin)
                .send()
                .await
                .unwrap();
            (r.status(), r.json::<Value>().await.unwrap())
        }
    };
    let (s, first) = page("?limit=2").await;
    assert_eq!(s, StatusCode::OK);
    let first = first.as_array().unwrap().clone();
    assert_eq!(first.len(), 2);
    assert_eq!(first[0]["target"], "thing 4");
    assert_eq!(first[0]["before"], json!({ "n": 4 }));
    assert_eq!(first[0]["after"], json!({ "n": 5 }));
    let before = first[1]["id"].as_i64().unwrap();
    let r = c
        .get(&format!("/api/audit?limit=2&before={before}"))
        .header("Cookie", &admin)
        .send()
        .await
        .unwrap();
    let next: Value = r.json().await.unwrap();
    assert_eq!(next[0]["target"], "thing 2");
    let (s, e) = page("?limit=abc").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(e["error"].as_str().unwrap().contains("not a whole number"));
    let (s, _) = page("?limit=0").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_attempts_are_rate_limited() {
    let c = console().await;
    c.add_user("alice", "admin").await;
    for _ in 0..5 {
        let r = c.login_raw("alice", "not the right password").await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let r = c.login_raw("alice", "not the right password").await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "Retry-After: {wait}");
    assert_eq!(error_of(r).await, "too many login attempts; wait a minute");
    // Even the right password waits now (the name's quota), in any case.
    let r = c.login_raw("ALICE", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);

    // Per source: 20 a minute whatever the names (7 spent above; one more every 3 s).
    let mut refused_after = None;
    for i in 0..30 {
        let r = c.login_raw(&format!("probe{i}"), "whatever it is").await;
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            refused_after = Some(i);
            break;
        }
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let n = refused_after.expect("the source's quota ran out");
    assert!((13..20).contains(&n), "refused after {n} other names");
}

/// Tries `n` different names, each from its own `X-Forwarded-For` address; the attempt at which
/// the source's quota ran out, if it did.
async fn forwarded_logins(c: &Console, n: usize) -> Option<usize> {
    for i in 0..n {
        let r = c
            .http
            .post(format!("{}/api/login", c.base))
            .header("X-Forwarded-For", format!("198.51.100.{}", i + 1))
            .json(&json!({"name": format!("someone{i}"), "password": "guess"}))
            .send()
            .await
            .unwrap();
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            return Some(i);
        }
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    None
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_person_has_their_own_login_quota() {
    // The console's reverse proxy is 127.0.0.1 here: every person arrives from it, and the
    // limiter keys on the address it forwards, so 30 people logging in are not one source.
    let mut cfg = Config::default();
    cfg.http.trusted_proxies = vec!["127.0.0.1/32".into()];
    let c = console_configured(false, LoginLimiter::default(), cfg).await;
    assert_eq!(forwarded_logins(&c, 30).await, None);

    // Without the setting the header is anyone's word: writing a new address each time does
    // not escape the source's quota (20 a minute).
    let c = console().await;
    let n = forwarded_logins(&c, 30).await.expect("the quota ran out");
    assert!((19..=20).contains(&n), "refused after {n}");
}

/// A client whose connections come from `local` (any 127.x address is this host's loopback).
fn client_from(local: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(Some(local.parse().unwrap()))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn login_from(
    c: &Console,
    client: &reqwest::Client,
    forwarded: Option<&str>,
    name: &str,
    password: &str,
) -> reqwest::Response {
    let mut r = client
        .post(format!("{}/api/login", c.base))
        .json(&json!({ "name": name, "password": password }));
    if let Some(f) = forwarded {
        r = r.header("X-Forwarded-For", f);
    }
    r.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_cannot_lock_a_technician_out() {
    let c = console().await;
    c.add_user("tech1", "technician").await;
    let stranger = client_from("127.0.0.2");
    for _ in 0..5 {
        let r = login_from(&c, &stranger, None, "tech1", "not the right password").await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    // The stranger's address is stopped, even with the right password...
    for pw in ["not the right password", PASSWORD] {
        let r = login_from(&c, &stranger, None, "TECH1", pw).await;
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    }
    // ...and tech1 logs in from their own.
    let me = client_from("127.0.0.1");
    let r = login_from(&c, &me, None, "tech1", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_a_stranger_cannot_lock_a_technician_out_either() {
    let mut cfg = Config::default();
    cfg.http.trusted_proxies = vec!["127.0.0.1/32".into()];
    let c = console_configured(false, LoginLimiter::default(), cfg).await;
    c.add_user("tech1", "technician").await;
    let proxy = client_from("127.0.0.1");
    for _ in 0..5 {
        let r = login_from(&c, &proxy, Some("203.0.113.9"), "tech1", "wrong guess").await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let r = login_from(&c, &proxy, Some("203.0.113.9"), "tech1", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    // The proxy's own address is not the person's: another client through it gets in.
    let r = login_from(&c, &proxy, Some("198.51.100.20"), "tech1", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_addresses_against_one_name_are_bounded() {
    // Each address makes one guess: the per-address quotas never bite, the name's ceiling for
    // addresses that never logged in as it does (3 an hour here; 30 by default).
    let mut cfg = Config::default();
    cfg.http.trusted_proxies = vec!["127.0.0.1/32".into()];
    let c = console_configured(false, LoginLimiter::with_ceiling(5, 20, 3), cfg).await;
    c.add_user("tech1", "technician").await;
    let proxy = client_from("127.0.0.1");
    // tech1 logged in from home before the siege (that counts as one attempt from a stranger).
    let home = "198.51.100.20";
    let r = login_from(&c, &proxy, Some(home), "tech1", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::OK);
    let mut guesses = 0;
    let mut refused = None;
    for i in 1..=20 {
        let r = login_from(
            &c,
            &proxy,
            Some(&format!("203.0.113.{i}")),
            "tech1",
            "a guess",
        )
        .await;
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            let wait: u64 = r.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!(wait > 60, "the ceiling refills slowly: Retry-After {wait}");
            assert!(error_of(r).await.contains("from many addresses"));
            refused = Some(i);
            break;
        }
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        guesses += 1;
    }
    assert_eq!(
        refused,
        Some(3),
        "2 guesses after the login from home, then refused"
    );
    assert_eq!(guesses, 2);
    // Even the right password from a new address waits out the siege (its price)...
    let r = login_from(&c, &proxy, Some("192.0.2.200"), "tech1", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    // ...but tech1 still logs in from home.
    let r = login_from(&c, &proxy, Some(home), "tech1", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::OK);
    // Other names are not besieged.
    c.add_user("tech2", "technician").await;
    let r = login_from(&c, &proxy, Some("203.0.113.50"), "tech2", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::OK);
}

// ---------------------------------------------------------------------------------------------
// The store half on both backends.

/// Users, sessions and tokens as the console uses them.
async fn store_flow(s: &Store) {
    let now = Utc::now();
    s.create_user("alice", "admin", "$argon2id$fake", "cli", now)
        .await
        .unwrap();
    assert!(s
        .create_user("alice", "viewer", "$argon2id$fake", "cli", now)
        .await
        .is_err());
    assert!(s
        .create_user("bob", "root", "$argon2id$fake", "cli", now)
        .await
        .is_err());
    let u = s.user("alice").await.unwrap().unwrap();
    assert_eq!((u.role.as_str(), u.disabled), ("admin", false));
    assert_eq!(
        s.user_credentials("alice")
            .await
            .unwrap()
            .unwrap()
            .password_hash,
        "$argon2id$fake"
    );

    let later = now + chrono::Duration::hours(12);
    s.create_session("h1", "alice", "csrf1", now, later)
        .await
        .unwrap();
    let sess = s.session("h1", now).await.unwrap().unwrap();
    assert_eq!(
        (sess.user_name.as_str(), sess.csrf_token.as_str()),
        ("alice", "csrf1")
    );
    assert!(s.session("h1", later).await.unwrap().is_none(), "expired");
    s.touch_session("h1", now, later + chrono::Duration::hours(1))
        .await
        .unwrap();
    assert!(s.session("h1", later).await.unwrap().is_some(), "slid");

    let id = s
        .create_api_token("alice", "t1", "ci", "cli", now)
        .await
        .unwrap();
    assert!(s
        .create_api_token("nobody", "t2", "", "cli", now)
        .await
        .is_err());
    let t = s.api_token_user("t1").await.unwrap().unwrap();
    assert_eq!(
        (t.token_id, t.user_name.as_str(), t.last_used),
        (id, "alice", None)
    );
    s.touch_api_token(id, now).await.unwrap();
    assert!(s
        .api_token_user("t1")
        .await
        .unwrap()
        .unwrap()
        .last_used
        .is_some());

    assert!(s
        .set_user_disabled("alice", true, "cli", now)
        .await
        .unwrap());
    assert!(s.session("h1", now).await.unwrap().is_none());
    assert!(s.api_token_user("t1").await.unwrap().is_none());
    assert!(s
        .set_user_disabled("alice", false, "cli", now)
        .await
        .unwrap());
    assert!(s.api_token_user("t1").await.unwrap().is_some());
    assert!(s.revoke_api_token(id, "cli", now).await.unwrap());
    assert!(!s.revoke_api_token(id, "cli", now).await.unwrap());
    assert!(s.api_token_user("t1").await.unwrap().is_none());
    assert!(s.api_tokens(Some("alice")).await.unwrap()[0].revoked);
    assert_eq!(s.api_tokens(None).await.unwrap().len(), 1);
    assert!(s.api_tokens(Some("bob")).await.unwrap().is_empty());
    assert!(!s
        .set_user_disabled("nobody", true, "cli", now)
        .await
        .unwrap());

    let events = s.audit_events(100, None).await.unwrap();
    let actions: Vec<_> = events.iter().rev().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "user.add",
            "token.create",
            "user.disable",
            "user.enable",
            "token.revoke"
        ]
    );
    let older = s.audit_events(2, Some(events[1].id)).await.unwrap();
    assert_eq!(older.len(), 2);
    assert_eq!(older[0].action, "user.disable");
}

const CHANGES: &[&str] = &[
    "UPDATE audit_events SET actor = 'mallory'",
    "DELETE FROM audit_events",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_and_append_only_audit_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/astreinte.db", dir.path().display());
    let store = Store::connect(&StoreConfig::with_url(url.clone()))
        .await
        .unwrap();
    store_flow(&store).await;
    let raw = sqlx::SqlitePool::connect(&url).await.unwrap();
    for sql in CHANGES {
        let e = sqlx::query(sql).execute(&raw).await.unwrap_err();
        assert!(e.to_string().contains("append-only"), "{sql}: {e}");
    }
    assert_eq!(store.audit_events(100, None).await.unwrap().len(), 5);
    raw.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_and_append_only_audit_on_postgres() {
    let Some(pg) = pg("console_auth").await else {
        return;
    };
    store_flow(&pg.store).await;
    let schema = &pg.schema;
    for sql in CHANGES
        .iter()
        .map(|s| s.replace("audit_events", &format!("{schema}.audit_events")))
        .chain([format!("TRUNCATE {schema}.audit_events")])
    {
        let e = sqlx::query(&sql).execute(&pg.admin).await.unwrap_err();
        assert!(e.to_string().contains("append-only"), "{sql}: {e}");
    }
    assert_eq!(pg.store.audit_events(100, None).await.unwrap().len(), 5);
    pg.drop().await;
}

/// Sends a login's headers announcing `length` bytes of body, and `body` (maybe fewer), from
/// `local`; returns what the server answers within 5 s.
async fn raw_login_from(c: &Console, local: &str, length: usize, body: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server: SocketAddr = c.base.trim_start_matches("http://").parse().unwrap();
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(format!("{local}:0").parse().unwrap()).unwrap();
    let mut s = sock.connect(server).await.unwrap();
    let head = format!(
        "POST /api/login HTTP/1.1\r\nHost: {server}\r\nContent-Type: application/json\r\n\
         Content-Length: {length}\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut got = vec![0u8; 4096];
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), s.read(&mut got))
        .await
        .expect("the server answers without waiting for the rest of the body")
        .unwrap();
    String::from_utf8_lossy(&got[..n]).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_over_its_quota_is_refused_before_its_body_is_read() {
    let c = console().await;
    let stranger = client_from("127.0.0.4");
    for i in 0..20 {
        let r = login_from(&c, &stranger, None, &format!("n{i}"), "a guess").await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    // 60 kB announced, none sent: the answer comes at once, the body is never awaited.
    let answer = raw_login_from(&c, "127.0.0.4", 60_000, b"").await;
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    // A source within its quota may send a login, not a large body.
    let answer = raw_login_from(&c, "127.0.0.5", 10_000, &[b' '; 10_000]).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("at most 4 KiB"), "{answer}");
}

// ---------------------------------------------------------------------------------------------
// Issue 21: a login linked to a paging person; the language kept with the user

/// Two people of the roster, as `serve` seeds them: Bob speaks English, Claire French.
async fn seed_people(s: &Store) {
    use astreinte::store::PersonRow;
    let person = |id: &str, name: &str, language: &str| PersonRow {
        id: id.into(),
        name: name.into(),
        phone: None,
        email: Some(format!("{id}@example.net")),
        language: language.into(),
    };
    s.upsert_people(
        &[
            person("tech-b", "Bob Tremblay", "en"),
            person("tech-c", "Claire Roy", "fr"),
        ],
        "test",
        Utc::now(),
    )
    .await
    .unwrap();
}

async fn link_flow(s: &Store) {
    let now = Utc::now();
    seed_people(s).await;
    // Linked when created; a person the roster does not have is refused, naming the fix.
    let e = s
        .create_user_as(
            "bob",
            "technician",
            "$argon2id$fake",
            Some("ghost"),
            "cli",
            now,
        )
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("\"ghost\"") && e.to_string().contains("astreinte people list"),
        "{e}"
    );
    assert!(s.user("bob").await.unwrap().is_none());
    s.create_user_as(
        "bob",
        "technician",
        "$argon2id$fake",
        Some("tech-b"),
        "cli",
        now,
    )
    .await
    .unwrap();
    s.create_user("carol", "technician", "$argon2id$fake", "cli", now)
        .await
        .unwrap();
    let bob = s.user("bob").await.unwrap().unwrap();
    assert_eq!(
        (bob.person_id.as_deref(), bob.lang.as_deref()),
        (Some("tech-b"), None)
    );
    // Linked later; an unknown person or user changes nothing.
    assert!(s
        .set_user_person("carol", Some("tech-c"), "cli", now)
        .await
        .unwrap());
    assert!(s
        .set_user_person("carol", Some("ghost"), "cli", now)
        .await
        .is_err());
    assert!(!s
        .set_user_person("nobody", Some("tech-c"), "cli", now)
        .await
        .unwrap());
    let users = s.users().await.unwrap();
    let links: Vec<_> = users
        .iter()
        .map(|u| (u.name.as_str(), u.person_id.as_deref()))
        .collect();
    assert_eq!(links, [("bob", Some("tech-b")), ("carol", Some("tech-c"))]);
    // The language: kept per user, and carried by their sessions and API tokens.
    assert!(s.set_user_lang("bob", Some("fr")).await.unwrap());
    assert!(s.set_user_lang("bob", Some("de")).await.is_err());
    assert!(!s.set_user_lang("nobody", Some("en")).await.unwrap());
    s.create_session("hb", "bob", "c", now, now + chrono::Duration::hours(1))
        .await
        .unwrap();
    let sess = s.session("hb", now).await.unwrap().unwrap();
    assert_eq!(
        (sess.person_id.as_deref(), sess.lang.as_deref()),
        (Some("tech-b"), Some("fr"))
    );
    s.create_api_token("carol", "tc", "", "cli", now)
        .await
        .unwrap();
    let t = s.api_token_user("tc").await.unwrap().unwrap();
    assert_eq!(
        (t.person_id.as_deref(), t.lang.as_deref()),
        (Some("tech-c"), None)
    );
    // Unlinked: the login name stands for the person id again.
    assert!(s.set_user_person("carol", None, "cli", now).await.unwrap());
    assert_eq!(s.user("carol").await.unwrap().unwrap().person_id, None);
    // Links are audited, language choices are not.
    let events = s.audit_events(100, None).await.unwrap();
    let linked: Vec<_> = events
        .iter()
        .filter(|e| e.action == "user.link")
        .map(|e| (e.target.as_str(), e.after.clone()))
        .collect();
    assert_eq!(
        linked,
        [
            ("carol", Some(json!({"person_id": null}))),
            ("carol", Some(json!({"person_id": "tech-c"}))),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_link_to_people_and_keep_a_language_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/astreinte.db", dir.path().display());
    let store = Store::connect(&StoreConfig::with_url(url)).await.unwrap();
    link_flow(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_link_to_people_and_keep_a_language_on_postgres() {
    let Some(pg) = pg("console_links").await else {
        return;
    };
    link_flow(&pg.store).await;
    pg.drop().await;
}

impl Console {
    /// A page as a browser sending `cookie` (may be empty) and `accept_language` sees it: its
    /// Content-Language and its text.
    async fn page_in(&self, path: &str, cookie: &str, accept_language: &str) -> (String, String) {
        let mut r = self.get(path).header("Accept", "text/html");
        if !cookie.is_empty() {
            r = r.header("Cookie", cookie);
        }
        if !accept_language.is_empty() {
            r = r.header("Accept-Language", accept_language);
        }
        let r = r.send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        let lang = r
            .headers()
            .get("content-language")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        (lang, r.text().await.unwrap())
    }

    /// The header's switch, followed with `cookie`; returns the Set-Cookie it answers.
    async fn switch(&self, cookie: &str, to: &str) -> String {
        let r = self
            .get(&format!("/lang?to={to}&next=/tickets"))
            .header("Cookie", cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(r.headers()["location"], "/tickets");
        set_cookie(r.headers())
    }
}

/// The phone and the desktop are two browsers (two cookie jars): the choice made on one is what
/// the other gets at the next login, whatever its browser language; each user has their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_language_follows_the_user_from_the_phone_to_the_desktop() {
    let c = console().await;
    seed_people(&c.store).await;
    c.add_user("alice", "admin").await;
    c.add_user("bob", "technician").await;
    c.store
        .set_user_person("bob", Some("tech-b"), "test", Utc::now())
        .await
        .unwrap();

    // Alice, on her phone (a French browser): no choice yet, no person: the browser's French.
    let (phone, _) = c.login("alice").await;
    let (lang, html) = c.page_in("/tickets", &phone, "fr-CA,fr;q=0.9").await;
    assert_eq!(lang, "fr");
    assert!(html.contains(">Billets<"), "{html}");
    // She switches to English there.
    let set = c.switch(&phone, "en").await;
    assert!(set.contains("astreinte_lang=en"), "{set}");
    // Her desktop: a fresh login, no cookie but the session's, a French browser: English.
    let (desktop, _) = c.login("alice").await;
    let (lang, html) = c.page_in("/tickets", &desktop, "fr-CA,fr;q=0.9").await;
    assert_eq!(lang, "en");
    assert!(
        html.contains(">Tickets<") && !html.contains(">Billets<"),
        "{html}"
    );
    let me: Value = c
        .get("/api/me")
        .header("Cookie", &desktop)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (&me["lang"], &me["person_id"], &me["person"]),
        (&json!("en"), &json!(null), &json!("alice"))
    );

    // Bob has chosen nothing: his linked person's English beats his French browser.
    let (bob, body) = {
        let r = c.login_raw("bob", PASSWORD).await;
        let cookie = session_cookie(r.headers()).unwrap();
        (cookie, r.json::<Value>().await.unwrap())
    };
    assert_eq!(
        (&body["person_id"], &body["person"]),
        (&json!("tech-b"), &json!("tech-b"))
    );
    assert_eq!(c.page_in("/tickets", &bob, "fr").await.0, "en");
    // He switches to French; his next session, in an English browser that still holds
    // Alice's "en" cookie, is French: his choice, not the browser's nor the cookie's.
    c.switch(&bob, "fr").await;
    let (bob2, _) = c.login("bob").await;
    let (lang, html) = c
        .page_in("/oncall", &format!("{bob2}; astreinte_lang=en"), "en-US")
        .await;
    assert_eq!(lang, "fr");
    assert!(html.contains(">Garde<"), "{html}");
    // Alice's choice is still hers.
    let (alice3, _) = c.login("alice").await;
    assert_eq!(c.page_in("/tickets", &alice3, "fr").await.0, "en");

    // Logged out (the login page): the switch's cookie, else the browser, else French.
    assert_eq!(c.page_in("/login", "astreinte_lang=en", "fr").await.0, "en");
    assert_eq!(c.page_in("/login", "", "en-US").await.0, "en");
    let (lang, html) = c.page_in("/login", "", "").await;
    assert_eq!(lang, "fr");
    assert!(html.contains(">Se connecter<"), "{html}");
    // A switch without a session only sets the cookie.
    let set = c.switch("", "en").await;
    assert!(set.contains("astreinte_lang=en"), "{set}");
}

/// `astreinte users add --person`, `users link`, `users unlink`, and what `users list` says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_links_a_login_to_a_person() {
    let c = console().await;
    seed_people(&c.store).await;
    let pw = format!("{PASSWORD}\n");
    // An unknown person: refused before anything is created, saying where the ids are.
    let out = c.cli(
        &[
            "users",
            "add",
            "dana",
            "--role",
            "technician",
            "--person",
            "ghost",
        ],
        Some(&pw),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no person \"ghost\"") && err.contains("astreinte people list"),
        "{err}"
    );
    assert!(c.store.user("dana").await.unwrap().is_none());
    let said = c.cli_ok(
        &[
            "users",
            "add",
            "dana",
            "--role",
            "technician",
            "--person",
            "tech-c",
        ],
        Some(&pw),
    );
    assert!(said.contains("linked to person tech-c"), "{said}");
    let list = c.cli_ok(&["users", "list"], None);
    assert!(list.contains("dana technician, person tech-c"), "{list}");
    // Unlinked: the login name stands, and the list says how to change it.
    c.cli_ok(&["users", "unlink", "dana"], None);
    let list = c.cli_ok(&["users", "list"], None);
    assert!(
        list.contains(
            "dana technician, person dana (the login name; `astreinte users link` to change)"
        ),
        "{list}"
    );
    c.cli_ok(&["users", "link", "dana", "tech-b"], None);
    let json: Value = serde_json::from_str(&c.cli_ok(&["users", "list", "--json"], None)).unwrap();
    assert_eq!(json[0]["person_id"], "tech-b");
    for (args, says) in [
        (
            ["users", "link", "nobody", "tech-b"],
            "no user named \"nobody\"",
        ),
        (["users", "link", "dana", "ghost"], "no person \"ghost\""),
    ] {
        let out = c.cli(&args, None);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
    assert_eq!(
        c.store
            .user("dana")
            .await
            .unwrap()
            .unwrap()
            .person_id
            .as_deref(),
        Some("tech-b")
    );
}

/// The words of a page a reader sees without its scripts running: the text outside `<script>`
/// and `<style>`, tags removed, cut into words.
fn visible_words(html: &str) -> Vec<String> {
    // The switch names the other language in that language.
    let html = html.replace("<span lang=\"en\">English</span>", "");
    let mut text = String::new();
    let mut rest = html.as_str();
    while let Some(i) = rest.find('<') {
        text.push_str(&rest[..i]);
        text.push(' ');
        rest = &rest[i..];
        let skip_to = ["<script", "<style"]
            .iter()
            .find(|t| rest.starts_with(**t))
            .map(|t| {
                if *t == "<script" {
                    "</script>"
                } else {
                    "</style>"
                }
            });
        let end = match skip_to {
            Some(close) => rest.find(close).map(|j| j + close.len()),
            None => rest.find('>').map(|j| j + 1),
        };
        rest = &rest[end.unwrap_or(rest.len())..];
    }
    text.push_str(rest);
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// English words no French page of the console has (names and codes aside).
const ENGLISH: &[&str] = &[
    "the",
    "The",
    "and",
    "of",
    "your",
    "Your",
    "you",
    "is",
    "are",
    "with",
    "from",
    "From",
    "by",
    "By",
    "for",
    "when",
    "When",
    "who",
    "Who",
    "what",
    "What",
    "this",
    "not",
    "no",
    "No",
    "in",
    "to",
    "To",
    "Loading",
    "Log",
    "Skip",
    "Tickets",
    "Ticket",
    "Why",
    "Severity",
    "Status",
    "Announce",
    "Drill",
    "Add",
    "Send",
    "Remove",
    "Upload",
    "Show",
    "Find",
    "Sort",
    "Only",
    "Notify",
    "Number",
    "Clock",
    "Level",
    "Name",
    "Password",
    "Language",
    "Phone",
    "People",
    "Overrides",
    "Hours",
    "Prompts",
    "Announcements",
    "Audit",
    "English",
    "French",
    "Closed",
    "Open",
    "Now",
    "Until",
    "Next",
    "Reason",
    "Person",
    "Met",
    "Missed",
];

/// A night with one S1 met and one S2 missed, as `astreinte drill --json` posts it.
fn a_drill_report() -> Value {
    use astreinte_core::drill::{Ack, Night, NightReport, PageResult, PageTrace, TicketTrace};
    use astreinte_core::triage::Severity;
    let start = Utc::now() - chrono::Duration::hours(1);
    let min = |m: i64| start + chrono::Duration::minutes(m);
    let page = |at, channel: &str, level, person: &str, result| PageTrace {
        at,
        channel: channel.into(),
        level,
        round: 1,
        person: person.into(),
        result,
        phase: "climb".into(),
        carried: false,
    };
    let night = Night {
        name: "nuit de test".into(),
        start,
        end: min(60),
        time_scale: 1,
        top_level: 2,
        margin_secs: 300,
        s1_target_secs: 1800,
        s2_target_secs: 3600,
    };
    let tickets = [
        TicketTrace {
            number: "10000017".into(),
            severity: Severity::S1,
            caller: "15145550100".into(),
            voicemail_end: min(0),
            callback_due: min(30),
            pages: vec![page(min(1), "phone", 1, "tech-b", PageResult::Answered)],
            acknowledged: Some(Ack {
                at: min(2),
                by: "tech-b".into(),
            }),
            callback_connected: Some(min(10)),
        },
        TicketTrace {
            number: "10000025".into(),
            severity: Severity::S2,
            caller: "15145550101".into(),
            voicemail_end: min(0),
            callback_due: min(40),
            pages: vec![
                page(min(5), "phone", 1, "tech-c", PageResult::NotAnswered),
                page(min(6), "email", 1, "tech-c", PageResult::Delivered),
            ],
            acknowledged: None,
            callback_connected: None,
        },
    ];
    serde_json::to_value(NightReport::build(night, &tickets, &[])).unwrap()
}

/// Issue 21: a French admin reads French on every page, in the drill's verdicts and
/// explanations, the announcement phases, the ladder and the API's refusals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_reads_in_french_for_a_french_admin() {
    let c = console().await;
    seed_people(&c.store).await;
    c.add_user("alice", "admin").await;
    let (cookie, csrf) = c.login("alice").await;
    c.switch(&cookie, "fr").await;
    // An English browser: the stored choice wins.
    for path in [
        "/tickets",
        "/oncall",
        "/hours",
        "/prompts",
        "/announcements",
        "/audit",
        "/sla",
        "/drill",
    ] {
        let (lang, html) = c.page_in(path, &cookie, "en-US,en").await;
        assert_eq!(lang, "fr", "{path}");
        let english: Vec<String> = visible_words(&html)
            .into_iter()
            .filter(|w| ENGLISH.contains(&w.as_str()))
            .collect();
        assert!(
            english.is_empty(),
            "{path} shows English {english:?}:\n{html}"
        );
    }
    // The login page, logged out in a French browser.
    let (_, html) = c.page_in("/login", "", "fr-CA").await;
    let english: Vec<String> = visible_words(&html)
        .into_iter()
        .filter(|w| ENGLISH.contains(&w.as_str()))
        .collect();
    assert!(english.is_empty(), "/login shows English {english:?}");

    // What the scripts write: the drill's verdicts and the announcement phases in French.
    let (_, drill) = c.page_in("/drill", &cookie, "").await;
    for fr in [
        "\"PROMESSE TENUE\"",
        "\"PROMESSE NON TENUE\"",
        "L(\"met\", \"respecté\")",
        "L(\"MISSED\", \"MANQUÉ\")",
        "\"rappelé à temps\"",
        "\"<p>Respectés : \"",
    ] {
        assert!(drill.contains(fr), "/drill lacks {fr}");
    }
    let (_, ann) = c.page_in("/announcements", &cookie, "").await;
    for fr in [
        ">enquête en cours<",
        ">cause identifiée<",
        ">sous surveillance<",
        "[\"investigating\", \"enquête en cours\"]",
        "\" depuis \"",
        "\"Aucune annonce : les appelants vont directement au menu.\"",
    ] {
        assert!(ann.contains(fr), "/announcements lacks {fr}");
    }

    // The drill report: each missed ticket's explanation in French, with no English left.
    let r = c
        .post("/api/drill/report")
        .header("Cookie", &cookie)
        .header("X-CSRF-Token", &csrf)
        .json(&a_drill_report())
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "{}",
        r.text().await.unwrap()
    );
    let report: Value = c
        .get("/api/drill/report")
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let missed = report["tickets"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["verdict"]["kind"] == "missed"))
        .map(|t| t["verdict"].clone())
        .unwrap_or_else(|| panic!("no missed ticket in {report:#}"));
    let fr = missed["explanation_fr"].as_str().unwrap_or_default();
    assert!(
        fr.contains("avant l'échéance") && fr.contains("personne n'a pris en charge"),
        "{fr}"
    );
    for en in [
        "was",
        "paged",
        "before",
        "after",
        "target",
        "acknowledged",
        "called",
        "back",
        "nobody",
        "level",
        "top",
        "answered",
        "delivered",
    ] {
        assert!(
            !fr.split(|c: char| !c.is_alphanumeric()).any(|w| w == en),
            "{en} in {fr}"
        );
    }

    // Refusals: `error` stays English for scripts, `error_fr` is what the console shows.
    let r = c
        .http
        .delete(format!("{}/api/announcement", c.base))
        .header("Cookie", &cookie)
        .header("X-CSRF-Token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"], "there is no announcement to end");
    assert_eq!(e["error_fr"], "aucune annonce à terminer");
    let r = c
        .post("/api/oncall/overrides")
        .header("Cookie", &cookie)
        .header("X-CSRF-Token", &csrf)
        .json(&json!({"rotation": "night", "person": "tech-b", "from": Utc::now(), "to": Utc::now() + chrono::Duration::hours(1)}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error_fr"], "aucune rotation « night »", "{e}");
    // A session that ended, in French too (the console sends the reader back to log in).
    let r = c
        .get("/api/me")
        .header("Cookie", "astreinte_session=stale")
        .send()
        .await
        .unwrap();
    let e: Value = r.json().await.unwrap();
    assert!(
        e["error_fr"]
            .as_str()
            .is_some_and(|m| m.starts_with("votre session a pris fin")),
        "{e}"
    );
    // The console's script shows `error_fr` to a French reader.
    let js = c
        .get("/assets/console.js")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(js.contains("data.error_fr || data.error"), "{js}");
}
