//! Logins, sessions, API tokens, roles and CSRF: the contract the other console modules build
//! on. Handlers take a [`CurrentUser`]; the layer [`authenticate`] puts it in the request when a
//! valid session cookie (with its CSRF token on changes) or an API token comes with it.
//!
//! - Sessions: `POST /api/login` sets `astreinte_session` (32 random bytes, hex; HttpOnly,
//!   SameSite=Strict, Secure over https), 12 h sliding. The database keeps only the SHA-256 of
//!   the cookie's value, so a leaked database does not log anyone in.
//! - CSRF: a cookie-authenticated request other than GET/HEAD carries `X-CSRF-Token` (from
//!   `/api/me` or the login answer), compared in constant time.
//! - API tokens: `Authorization: Bearer ast_…` (`astreinte users token NAME`), stored hashed;
//!   no CSRF token needed (a browser never sends them by itself).
//! - Passwords: argon2id (PHC strings), hashed and checked on the blocking pool; a login for an
//!   unknown name checks against a dummy hash so names cannot be probed by timing.
//! - Logins are rate limited per source address and per name ([`LoginLimiter`]).

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{OnceLock, RwLock};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::{AdminState, ApiError};
use crate::store::StoreError;

/// The session cookie's name.
pub const COOKIE: &str = "astreinte_session";
/// The header that carries the session's CSRF token on changes.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// A session ends after this long without use.
pub const SESSION_LIFETIME: chrono::Duration = chrono::Duration::hours(12);
/// A session's expiry (and an API token's last use) is written at most this often.
const TOUCH_EVERY: chrono::Duration = chrono::Duration::seconds(60);
/// Password length, in characters.
pub const MIN_PASSWORD: usize = 12;
pub const MAX_PASSWORD: usize = 256;
/// API tokens start with this (easy to spot in a leaked file or a secret scanner).
pub const TOKEN_PREFIX: &str = "ast_";

const WRONG_LOGIN: &str = "wrong name or password";
const BAD_CSRF: &str = "missing or wrong CSRF token: reload the page";
const TOO_MANY: &str = "too many login attempts; wait a minute";

/// What a user may do: an admin everything; a technician tickets and their own on-call; a
/// viewer only reads.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Viewer,
    Technician,
    Admin,
}

impl Role {
    /// As stored and shown: "viewer", "technician", "admin".
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Technician => "technician",
            Role::Admin => "admin",
        }
    }
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "technician" => Some(Role::Technician),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The logged-in user of a request (a session cookie, or a bearer API token).
#[derive(Debug, Clone)]
pub struct CurrentUser {
    pub name: String,
    pub role: Role,
}

impl CurrentUser {
    /// 403 unless the user's role is at least `min`.
    pub fn require(&self, min: Role) -> Result<(), ApiError> {
        if self.role >= min {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "{} may not do this (needs the {min:?} role)",
                self.name
            )))
        }
    }
}

/// Handlers take a `CurrentUser`: the authentication layer (`authenticate`) has checked the
/// session cookie (and its CSRF token on changes) or the API token and put the user in the
/// request; without one the request is refused with 401.
impl<S: Send + Sync> FromRequestParts<S> for CurrentUser {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<CurrentUser>()
            .cloned()
            .ok_or_else(ApiError::unauthorized)
    }
}

/// How the request's user was authenticated (put beside [`CurrentUser`] by the layer).
#[derive(Debug, Clone)]
enum Via {
    /// A session cookie: the SHA-256 of its value, and the session's CSRF token.
    Session {
        id_hash: String,
        csrf_token: String,
    },
    Token,
}

// ---------------------------------------------------------------------------------------------
// Secrets and passwords

/// 32 random bytes from the OS, hex.
pub fn new_secret() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

/// A new API token: `ast_` and 32 random bytes, hex.
pub fn new_api_token() -> String {
    format!("{TOKEN_PREFIX}{}", new_secret())
}

/// What the database keeps of a session id or an API token: its SHA-256, hex.
pub fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Equality whose time does not depend on where the inputs differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Why a password is refused, in words for the person choosing it.
pub fn check_password_rules(password: &str) -> Result<(), String> {
    let n = password.chars().count();
    if n < MIN_PASSWORD {
        return Err(format!(
            "the password has {n} characters: use at least {MIN_PASSWORD} (a few words make a good one)"
        ));
    }
    if n > MAX_PASSWORD {
        return Err(format!(
            "the password has {n} characters: use at most {MAX_PASSWORD}"
        ));
    }
    Ok(())
}

fn hash_now(password: &str) -> Result<String, String> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let mut salt = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| format!("argon2 salt: {e}"))?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("argon2: {e}"))
}

fn verify_now(password: &str, phc: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    match PasswordHash::new(phc) {
        Ok(h) => argon2::Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok(),
        Err(e) => {
            tracing::warn!(error = %e, "console: a stored password hash is not a PHC string");
            false
        }
    }
}

/// A hash nobody's password matches, checked for unknown names so they take as long.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash_now(&new_secret()).unwrap_or_default())
}

/// Checks the rules and hashes `password` (argon2id, default parameters, PHC string) on the
/// blocking pool.
pub async fn hash_password(password: String) -> Result<String, String> {
    check_password_rules(&password)?;
    tokio::task::spawn_blocking(move || hash_now(&password))
        .await
        .map_err(|e| format!("hashing stopped: {e}"))?
}

/// Whether `password` matches `phc` (None: an unknown user, checked against a dummy hash so it
/// takes the same time), on the blocking pool.
pub async fn verify_password(password: String, phc: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || match phc {
        Some(h) => verify_now(&password, &h),
        None => {
            let _ = verify_now(&password, dummy_hash());
            false
        }
    })
    .await
    .unwrap_or(false)
}

// ---------------------------------------------------------------------------------------------
// Login rate limiting

/// Where a login attempt comes from: an IPv4 address, an IPv6 /64 (one host usually has a whole
/// /64), or one shared bucket when the server does not know the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Source {
    V4([u8; 4]),
    V6Prefix([u8; 8]),
    Unknown,
}

impl Source {
    fn of(ip: Option<IpAddr>) -> Source {
        match ip.map(|ip| ip.to_canonical()) {
            Some(IpAddr::V4(a)) => Source::V4(a.octets()),
            Some(IpAddr::V6(a)) => {
                let o = a.octets();
                let mut p = [0u8; 8];
                p.copy_from_slice(&o[..8]);
                Source::V6Prefix(p)
            }
            None => Source::Unknown,
        }
    }
}

/// Rate limits login attempts (successful or not) per source and per name. Keys whose quota
/// is full again are forgotten every `PRUNE_EVERY` attempts; a keyed store that still holds
/// more than `MAX_KEYS` live keys (addresses or names sprayed by an attacker) starts over
/// empty, so memory stays bounded.
pub struct LoginLimiter {
    per_source: Quota,
    per_name: Quota,
    by_source: RwLock<DefaultKeyedRateLimiter<Source>>,
    by_name: RwLock<DefaultKeyedRateLimiter<String>>,
    checks: AtomicU64,
    /// At most this many argon2 checks at once (each takes ~19 MiB and a core for ~50 ms).
    hashing: tokio::sync::Semaphore,
}

const MAX_KEYS: usize = 100_000;
const PRUNE_EVERY: u64 = 1024;

impl std::fmt::Debug for LoginLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginLimiter")
            .field("per_source", &self.per_source)
            .field("per_name", &self.per_name)
            .finish_non_exhaustive()
    }
}

impl Default for LoginLimiter {
    /// 5 attempts a minute per name, 20 a minute per source (bursts, refilled evenly).
    fn default() -> Self {
        LoginLimiter::new(5, 20)
    }
}

fn per_minute(n: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN))
}

/// Keyed stores are only read-locked to count; the write lock is taken to start one over.
fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

impl LoginLimiter {
    /// `per_name` and `per_source` attempts a minute (0 is taken as 1).
    pub fn new(per_name: u32, per_source: u32) -> LoginLimiter {
        let (per_name, per_source) = (per_minute(per_name), per_minute(per_source));
        LoginLimiter {
            per_source,
            per_name,
            by_source: RwLock::new(RateLimiter::keyed(per_source)),
            by_name: RwLock::new(RateLimiter::keyed(per_name)),
            checks: AtomicU64::new(0),
            hashing: tokio::sync::Semaphore::new(4),
        }
    }

    /// Counts an attempt; Err(how long to wait) when the source or the name is over its quota.
    fn check(&self, ip: Option<IpAddr>, name: &str) -> Result<(), Duration> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY == PRUNE_EVERY - 1 {
            self.prune();
        }
        {
            let l = read(&self.by_source);
            let now = l.clock().now();
            l.check_key(&Source::of(ip))
                .map_err(|e| e.wait_time_from(now))?;
        }
        let key: String = name.trim().to_lowercase().chars().take(64).collect();
        let l = read(&self.by_name);
        let now = l.clock().now();
        l.check_key(&key).map_err(|e| e.wait_time_from(now))?;
        Ok(())
    }

    fn prune(&self) {
        read(&self.by_source).retain_recent();
        read(&self.by_name).retain_recent();
        if read(&self.by_source).len() > MAX_KEYS {
            tracing::warn!(
                "console: the login limiter saw too many sources in a minute: starting over"
            );
            *self.by_source.write().unwrap_or_else(|p| p.into_inner()) =
                RateLimiter::keyed(self.per_source);
        }
        if read(&self.by_name).len() > MAX_KEYS {
            tracing::warn!(
                "console: the login limiter saw too many names in a minute: starting over"
            );
            *self.by_name.write().unwrap_or_else(|p| p.into_inner()) =
                RateLimiter::keyed(self.per_name);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The layer

/// Paths that never need a user: they ignore credentials (a stale cookie must not keep anyone
/// from the login page).
fn is_public(path: &str) -> bool {
    matches!(path, "/" | "/login" | "/api/login") || path.starts_with("/assets/")
}

fn session_cookie(headers: &HeaderMap) -> Option<String> {
    let jar = axum_extra::extract::cookie::CookieJar::from_headers(headers);
    jar.get(COOKIE)
        .map(|c| c.value().to_string())
        .filter(|v| !v.is_empty())
}

fn set_cookie(value: &str, max_age: i64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("astreinte_session=; Path=/; Max-Age=0"))
}

fn clear_cookie(secure: bool) -> HeaderValue {
    set_cookie("", 0, secure)
}

/// A 401 that also tells the browser to forget its (stale) session cookie.
fn stale_session(state: &AdminState, message: &str) -> Response {
    let mut r = ApiError::new(StatusCode::UNAUTHORIZED, message).into_response();
    r.headers_mut()
        .append(header::SET_COOKIE, clear_cookie(state.secure_cookies));
    r
}

fn role_of(s: &str) -> Result<Role, ApiError> {
    Role::parse(s)
        .ok_or_else(|| ApiError::store(StoreError::Corrupt(format!("\"{s}\" is not a role"))))
}

/// The authentication layer: puts the request's [`CurrentUser`] in its extensions when a valid
/// session cookie (with its CSRF token on changes) or API token comes with it. Without any
/// credentials the request goes on anonymous (handlers that take a `CurrentUser` answer 401);
/// credentials that are present but wrong get a 401 here. A browser asking for a page without
/// a login is sent to the login page.
pub async fn authenticate(
    State(state): State<AdminState>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let path = request.uri().path().to_string();
    if is_public(&path) {
        return next.run(request).await;
    }
    let wants_page = request.method() == Method::GET
        && !path.starts_with("/api/")
        && request
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/html"));
    let next_url = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| path.clone());
    let refresh_cookie = match identify(&state, &mut request).await {
        Ok(refresh) => refresh,
        Err(r) => {
            return if wants_page && r.status() == StatusCode::UNAUTHORIZED {
                to_login(r, &next_url)
            } else {
                r
            }
        }
    };
    let mut response = next.run(request).await;
    if let Some(cookie) = refresh_cookie {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    if wants_page && response.status() == StatusCode::UNAUTHORIZED {
        return to_login(response, &next_url);
    }
    response
}

/// A 303 to the login page that comes back to `next`, keeping any Set-Cookie of `r`.
fn to_login(r: Response, next: &str) -> Response {
    let mut out = Redirect::to(&format!("/login?next={}", url_encode(next))).into_response();
    for c in r.headers().get_all(header::SET_COOKIE) {
        out.headers_mut().append(header::SET_COOKIE, c.clone());
    }
    out
}

fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Resolves the request's credentials into a [`CurrentUser`] (and [`Via`]) in its extensions.
/// Ok(Some(cookie)) when the session's expiry slid and the browser's cookie should follow.
async fn identify(
    state: &AdminState,
    request: &mut axum::extract::Request,
) -> Result<Option<HeaderValue>, Response> {
    let now = Utc::now();
    if let Some(auth) = request.headers().get(header::AUTHORIZATION) {
        let token = auth
            .to_str()
            .ok()
            .and_then(|v| {
                let (scheme, rest) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            })
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "the Authorization header must be \"Bearer <API token>\" (astreinte users token NAME makes one)",
                )
                .into_response()
            })?;
        let found = state
            .store
            .api_token_user(&secret_hash(token))
            .await
            .map_err(|e| ApiError::store(e).into_response())?;
        let Some(t) = found else {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "this API token is unknown or revoked, or its user is disabled",
            )
            .into_response());
        };
        let role = role_of(&t.role).map_err(IntoResponse::into_response)?;
        if t.last_used.is_none_or(|u| now - u >= TOUCH_EVERY) {
            if let Err(e) = state.store.touch_api_token(t.token_id, now).await {
                tracing::warn!(error = %e, "console: cannot note an API token's use");
            }
        }
        request.extensions_mut().insert(CurrentUser {
            name: t.user_name,
            role,
        });
        request.extensions_mut().insert(Via::Token);
        return Ok(None);
    }
    let Some(cookie) = session_cookie(request.headers()) else {
        return Ok(None);
    };
    let id_hash = secret_hash(&cookie);
    let session = state
        .store
        .session(&id_hash, now)
        .await
        .map_err(|e| ApiError::store(e).into_response())?;
    let Some(s) = session else {
        return Err(stale_session(
            state,
            "your session has ended (logged out, expired or disabled): log in again",
        ));
    };
    let role = role_of(&s.role).map_err(IntoResponse::into_response)?;
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        let sent = request
            .headers()
            .get(CSRF_HEADER)
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        if !constant_time_eq(sent, s.csrf_token.as_bytes()) {
            return Err(ApiError::forbidden(BAD_CSRF).into_response());
        }
    }
    let mut refresh = None;
    if now - s.last_seen >= TOUCH_EVERY {
        match state
            .store
            .touch_session(&id_hash, now, now + SESSION_LIFETIME)
            .await
        {
            Ok(()) => {
                refresh = Some(set_cookie(
                    &cookie,
                    SESSION_LIFETIME.num_seconds(),
                    state.secure_cookies,
                ))
            }
            Err(e) => tracing::warn!(error = %e, "console: cannot slide a session's expiry"),
        }
    }
    request.extensions_mut().insert(CurrentUser {
        name: s.user_name,
        role,
    });
    request.extensions_mut().insert(Via::Session {
        id_hash,
        csrf_token: s.csrf_token,
    });
    Ok(refresh)
}

// ---------------------------------------------------------------------------------------------
// Handlers

#[derive(serde::Serialize)]
struct Me {
    name: String,
    role: Role,
    /// Send it as X-CSRF-Token with every change (null for API tokens, which need none).
    csrf_token: Option<String>,
}

#[derive(serde::Deserialize)]
struct LoginBody {
    name: String,
    password: String,
}

fn peer(extensions: &axum::http::Extensions) -> Option<IpAddr> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(a)| a.ip())
}

async fn login(
    State(state): State<AdminState>,
    extensions: axum::http::Extensions,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/json"));
    if !json {
        return ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send JSON {\"name\": …, \"password\": …} with Content-Type: application/json",
        )
        .into_response();
    }
    let Ok(LoginBody { name, password }) = serde_json::from_slice::<LoginBody>(&body) else {
        return ApiError::bad_request("send JSON {\"name\": …, \"password\": …}").into_response();
    };
    // Behind the console's reverse proxy, the person's address (never a header anyone sent).
    let source = crate::http::client_ip(
        peer(&extensions),
        &headers,
        &state.config.http.trusted_proxy_nets(),
    );
    let source_text = source.map_or_else(|| "unknown".to_string(), |ip| ip.to_string());
    if let Err(wait) = state.login_limiter.check(source, &name) {
        tracing::warn!(user = ?name, source = %source_text, "console login refused: too many attempts");
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let mut r = ApiError::new(StatusCode::TOO_MANY_REQUESTS, TOO_MANY).into_response();
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        return r;
    }
    if name.is_empty() || name.len() > 256 || password.chars().count() > MAX_PASSWORD {
        tracing::warn!(user = ?name, source = %source_text, "console login failed: malformed");
        return ApiError::new(StatusCode::UNAUTHORIZED, WRONG_LOGIN).into_response();
    }
    let creds = match state.store.user_credentials(&name).await {
        Ok(c) => c,
        Err(e) => return ApiError::store(e).into_response(),
    };
    let ok = {
        let _permit = state.login_limiter.hashing.acquire().await;
        verify_password(password, creds.as_ref().map(|c| c.password_hash.clone())).await
    };
    let user = match creds {
        Some(c) if ok && !c.disabled => c,
        other => {
            let why = match other {
                None => "no such user",
                Some(c) if c.disabled => "user disabled",
                Some(_) => "wrong password",
            };
            tracing::warn!(user = ?name, source = %source_text, why, "console login failed");
            return ApiError::new(StatusCode::UNAUTHORIZED, WRONG_LOGIN).into_response();
        }
    };
    let role = match role_of(&user.role) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let now = Utc::now();
    if let Some(old) = session_cookie(&headers) {
        let _ = state.store.delete_session(&secret_hash(&old)).await;
    }
    let id = new_secret();
    let csrf_token = new_secret();
    if let Err(e) = state
        .store
        .create_session(
            &secret_hash(&id),
            &user.name,
            &csrf_token,
            now,
            now + SESSION_LIFETIME,
        )
        .await
    {
        return ApiError::store(e).into_response();
    }
    tracing::info!(user = ?user.name, source = %source_text, role = %role, "console login");
    let mut r = Json(Me {
        name: user.name,
        role,
        csrf_token: Some(csrf_token),
    })
    .into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie(&id, SESSION_LIFETIME.num_seconds(), state.secure_cookies),
    );
    r
}

async fn logout(
    State(state): State<AdminState>,
    user: CurrentUser,
    extensions: axum::http::Extensions,
) -> Response {
    match extensions.get::<Via>() {
        Some(Via::Session { id_hash, .. }) => {
            if let Err(e) = state.store.delete_session(id_hash).await {
                return ApiError::store(e).into_response();
            }
            tracing::info!(user = ?user.name, source = ?peer(&extensions), "console logout");
            let mut r = StatusCode::NO_CONTENT.into_response();
            r.headers_mut()
                .insert(header::SET_COOKIE, clear_cookie(state.secure_cookies));
            r
        }
        _ => ApiError::bad_request(
            "an API token has no session to end: revoke it with astreinte users revoke-token ID",
        )
        .into_response(),
    }
}

async fn me(user: CurrentUser, extensions: axum::http::Extensions) -> Json<Me> {
    let csrf_token = match extensions.get::<Via>() {
        Some(Via::Session { csrf_token, .. }) => Some(csrf_token.clone()),
        _ => None,
    };
    Json(Me {
        name: user.name,
        role: user.role,
        csrf_token,
    })
}

async fn root() -> Redirect {
    Redirect::to("/tickets")
}

const LOGIN_PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Log in · astreinte</title><link rel="stylesheet" href="/assets/console.css"></head>
<body><main class="login"><h1>astreinte</h1>
<form id="login" autocomplete="on">
<label>Name <input name="name" id="name" autocomplete="username" required autofocus></label>
<label>Password <input name="password" id="password" type="password" autocomplete="current-password" required></label>
<button type="submit">Log in</button>
<p id="error" role="alert"></p>
</form></main>
<script>
"use strict";
// Only a path of this site: "/x", never "//host" nor "/\host" (both leave the site).
function nextUrl() {
  const n = new URLSearchParams(location.search).get("next");
  if (n && n.startsWith("/") && !n.startsWith("//") && !/[\\\u0000-\u001f]/.test(n)) return n;
  return "/tickets";
}
document.getElementById("login").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const error = document.getElementById("error");
  error.textContent = "";
  try {
    const r = await fetch("/api/login", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({
        name: document.getElementById("name").value,
        password: document.getElementById("password").value,
      }),
    });
    if (r.ok) { location.href = nextUrl(); return; }
    let message = r.status + " " + r.statusText;
    try { message = (await r.json()).error || message; } catch (e) { /* not JSON */ }
    error.textContent = message;
  } catch (e) {
    error.textContent = "the server did not answer: " + e.message;
  }
});
</script></body></html>
"#;

async fn login_page() -> Html<&'static str> {
    Html(LOGIN_PAGE)
}

pub fn routes() -> Router<AdminState> {
    Router::new()
        .route("/", get(root))
        .route("/login", get(login_page))
        .route("/api/login", post(login))
        .route("/api/logout", post(logout))
        .route("/api/me", get(me))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_rules_say_why() {
        assert!(check_password_rules("eleven char")
            .unwrap_err()
            .contains("at least 12"));
        assert!(check_password_rules("twelve chars").is_ok());
        assert!(check_password_rules(&"é".repeat(256)).is_ok());
        assert!(check_password_rules(&"x".repeat(257))
            .unwrap_err()
            .contains("at most 256"));
    }

    #[tokio::test]
    async fn hashes_are_argon2id_and_verify() {
        let h = hash_password("a long enough password".into())
            .await
            .unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_password("a long enough password".into(), Some(h.clone())).await);
        assert!(!verify_password("another long password".into(), Some(h)).await);
        assert!(!verify_password("a long enough password".into(), None).await);
        assert!(!verify_password("x".into(), Some("not a phc string".into())).await);
    }

    #[test]
    fn secrets_are_random_and_only_hashes_are_kept() {
        let (a, b) = (new_secret(), new_secret());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        let t = new_api_token();
        assert!(t.starts_with("ast_") && t.len() == 68);
        assert_eq!(secret_hash("abc").len(), 64);
        assert_ne!(secret_hash(&t), t);
        assert!(constant_time_eq(b"same", b"same"));
        assert!(!constant_time_eq(b"same", b"sane"));
        assert!(!constant_time_eq(b"same", b"same!"));
    }

    #[test]
    fn one_ipv6_host_is_one_source_and_mapped_ipv4_is_ipv4() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(Source::of(Some(a)), Source::of(Some(b)));
        assert_ne!(Source::of(Some(a)), Source::of(Some(c)));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(Source::of(Some(mapped)), Source::of(Some(v4)));
    }

    #[test]
    fn the_limiter_counts_names_without_case_and_sources_apart() {
        let l = LoginLimiter::new(2, 100);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(l.check(Some(ip), "alice").is_ok());
        assert!(l.check(None, "Alice").is_ok());
        let wait = l.check(Some(ip), " ALICE ").unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(30));
        assert!(l.check(Some(ip), "bob").is_ok());
        let l = LoginLimiter::new(100, 1);
        assert!(l.check(Some(ip), "a").is_ok());
        assert!(l.check(Some(ip), "b").is_err());
        assert!(
            l.check(None, "c").is_ok(),
            "an unknown peer has its own bucket"
        );
    }

    #[test]
    fn next_urls_are_encoded() {
        assert_eq!(
            url_encode("/tickets?open=1&x=é"),
            "/tickets%3Fopen%3D1%26x%3D%C3%A9"
        );
    }
}
