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
//! - Logins are rate limited per source address, per name and source, and per name from
//!   addresses that never logged in as it ([`LoginLimiter`]): failures from one address never
//!   lock the same name out of another.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

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
use astreinte_core::lang::Lang;

/// A stored language choice ("fr", "en"); anything else is no choice.
fn stored_lang(s: Option<&str>) -> Option<Lang> {
    match s {
        Some("fr") => Some(Lang::Fr),
        Some("en") => Some(Lang::En),
        _ => None,
    }
}

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
const BESIEGED: &str = "too many login attempts for this name from many addresses; \
     log in from an address you have used before, or wait";

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
    /// The roster's person this login is linked to (`astreinte users link`), if any.
    pub person: Option<String>,
    /// The console language the user chose with the switch, if any.
    pub lang: Option<Lang>,
}

impl CurrentUser {
    /// A user with no person link and no language chosen (what tests and scripts start from).
    pub fn new(name: impl Into<String>, role: Role) -> CurrentUser {
        CurrentUser {
            name: name.into(),
            role,
            person: None,
            lang: None,
        }
    }

    /// The roster's person id this user acts as: their link, else their login name (so a
    /// deployment that named logins after person ids keeps working unlinked).
    pub fn person_id(&self) -> &str {
        self.person.as_deref().unwrap_or(&self.name)
    }

    /// Whether an acknowledgement's actor ("tech1", "tech1 (phone)", "tech1 (link)") is this
    /// user or their person.
    pub fn acknowledged(&self, actor: &str) -> bool {
        let who = actor
            .strip_suffix(" (phone)")
            .or_else(|| actor.strip_suffix(" (link)"))
            .unwrap_or(actor);
        who == self.name || who == self.person_id()
    }

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

/// Why a login attempt is refused before its password is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// This source, or this name from this source, is over its quota: wait this long.
    Busy(Duration),
    /// This name is over its quota from all the addresses that never logged in as it (many
    /// addresses guessing one password); an address that did still gets through.
    Besieged(Duration),
}

impl Refusal {
    pub fn wait(self) -> Duration {
        match self {
            Refusal::Busy(d) | Refusal::Besieged(d) => d,
        }
    }
}

/// Rate limits login attempts (successful or not), counted before the password is hashed:
///
/// - per source, whatever the name (20 a minute): one address cannot spray names;
/// - per name *and* source (5 a minute): one address cannot guess one password quickly, and
///   its failures never count against the same name from another address, so a stranger
///   cannot lock anyone out;
/// - per name from addresses that never logged in as it (a ceiling, 30 an hour): many
///   addresses together cannot guess one password quickly either. An address that logged in
///   as the name before (in the last `KNOWN_FOR`) skips this ceiling, so the real person still
///   gets in from where they usually work while strangers besiege their name. A refused
///   attempt is refused outright: delaying it instead would not bound guesses made in
///   parallel, and queueing them would make the real person wait behind the attacker.
///
/// Keys whose quota is full again are forgotten every `PRUNE_EVERY` attempts; a keyed store
/// that still holds more than `MAX_KEYS` live keys (addresses or names sprayed by an attacker)
/// starts over empty, so memory stays bounded. The known addresses live in memory: a restart
/// forgets them until each person logs in again.
pub struct LoginLimiter {
    per_source: Quota,
    per_pair: Quota,
    per_name: Quota,
    by_source: RwLock<DefaultKeyedRateLimiter<Source>>,
    by_pair: RwLock<DefaultKeyedRateLimiter<(String, Source)>>,
    by_name: RwLock<DefaultKeyedRateLimiter<String>>,
    /// Per name, the sources that logged in as it and when they last did.
    known: Mutex<HashMap<String, Vec<(Source, Instant)>>>,
    checks: AtomicU64,
    /// At most this many argon2 checks at once (each takes ~19 MiB and a core for ~50 ms).
    hashing: tokio::sync::Semaphore,
}

const MAX_KEYS: usize = 100_000;
const PRUNE_EVERY: u64 = 1024;
/// An address that logged in as a name stays known to it this long after its last login.
const KNOWN_FOR: Duration = Duration::from_secs(30 * 24 * 3600);
/// Known addresses kept per name (the most recent ones).
const KNOWN_PER_NAME: usize = 16;

impl std::fmt::Debug for LoginLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginLimiter")
            .field("per_source", &self.per_source)
            .field("per_pair", &self.per_pair)
            .field("per_name", &self.per_name)
            .finish_non_exhaustive()
    }
}

impl Default for LoginLimiter {
    /// 5 attempts a minute per name and source, 20 a minute per source, and 30 an hour per
    /// name from unknown addresses (bursts, refilled evenly).
    fn default() -> Self {
        LoginLimiter::new(5, 20)
    }
}

fn nonzero(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

/// Keyed stores are only read-locked to count; the write lock is taken to start one over.
fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

/// The name as the limiter keys it: "Alice " and "alice" are one account.
fn name_key(name: &str) -> String {
    name.trim().to_lowercase().chars().take(64).collect()
}

impl LoginLimiter {
    /// `per_pair` attempts a minute for one name from one source, `per_source` a minute from
    /// one source (0 is taken as 1), and the default ceiling per name (30 an hour).
    pub fn new(per_pair: u32, per_source: u32) -> LoginLimiter {
        LoginLimiter::with_ceiling(per_pair, per_source, 30)
    }

    /// As [`LoginLimiter::new`], with `per_name_hourly` attempts an hour for one name from all
    /// the addresses that never logged in as it.
    pub fn with_ceiling(per_pair: u32, per_source: u32, per_name_hourly: u32) -> LoginLimiter {
        let per_source = Quota::per_minute(nonzero(per_source));
        let per_pair = Quota::per_minute(nonzero(per_pair));
        let per_name = Quota::per_hour(nonzero(per_name_hourly));
        LoginLimiter {
            per_source,
            per_pair,
            per_name,
            by_source: RwLock::new(RateLimiter::keyed(per_source)),
            by_pair: RwLock::new(RateLimiter::keyed(per_pair)),
            by_name: RwLock::new(RateLimiter::keyed(per_name)),
            known: Mutex::new(HashMap::new()),
            checks: AtomicU64::new(0),
            hashing: tokio::sync::Semaphore::new(4),
        }
    }

    /// Counts an attempt, before its password is checked.
    #[cfg(test)]
    fn check(&self, ip: Option<IpAddr>, name: &str) -> Result<(), Refusal> {
        self.check_at(ip, name, Instant::now())
    }

    #[cfg(test)]
    fn check_at(&self, ip: Option<IpAddr>, name: &str, now: Instant) -> Result<(), Refusal> {
        self.check_source(ip, now)?;
        self.check_name(ip, name, now)
    }

    /// The first half of [`LoginLimiter::check`], before the request's body is read: a
    /// source over its quota is refused without reading what it sends.
    fn check_source(&self, ip: Option<IpAddr>, now: Instant) -> Result<(), Refusal> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY == PRUNE_EVERY - 1 {
            self.prune(now);
        }
        let l = read(&self.by_source);
        let t = l.clock().now();
        l.check_key(&Source::of(ip))
            .map_err(|e| Refusal::Busy(e.wait_time_from(t)))
    }

    /// The second half, once the name is known.
    fn check_name(&self, ip: Option<IpAddr>, name: &str, now: Instant) -> Result<(), Refusal> {
        let source = Source::of(ip);
        let key = name_key(name);
        {
            let l = read(&self.by_pair);
            let t = l.clock().now();
            l.check_key(&(key.clone(), source))
                .map_err(|e| Refusal::Busy(e.wait_time_from(t)))?;
        }
        if self.is_known(&key, source, now) {
            return Ok(());
        }
        let l = read(&self.by_name);
        let t = l.clock().now();
        l.check_key(&key)
            .map_err(|e| Refusal::Besieged(e.wait_time_from(t)))
    }

    /// Remembers that `ip` logged in as `name`: it skips the name's ceiling from now on.
    fn succeeded(&self, ip: Option<IpAddr>, name: &str) {
        self.succeeded_at(ip, name, Instant::now());
    }

    fn succeeded_at(&self, ip: Option<IpAddr>, name: &str, now: Instant) {
        let source = Source::of(ip);
        // A server that cannot tell peers apart cannot vouch for one.
        if source == Source::Unknown {
            return;
        }
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        if known.len() >= MAX_KEYS {
            known.clear();
        }
        let list = known.entry(name_key(name)).or_default();
        list.retain(|(s, _)| *s != source);
        list.push((source, now));
        if list.len() > KNOWN_PER_NAME {
            list.remove(0);
        }
    }

    fn is_known(&self, key: &str, source: Source, now: Instant) -> bool {
        if source == Source::Unknown {
            return false;
        }
        let known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        known.get(key).is_some_and(|list| {
            list.iter()
                .any(|(s, at)| *s == source && now.saturating_duration_since(*at) < KNOWN_FOR)
        })
    }

    fn prune(&self, now: Instant) {
        read(&self.by_source).retain_recent();
        read(&self.by_pair).retain_recent();
        read(&self.by_name).retain_recent();
        if read(&self.by_source).len() > MAX_KEYS {
            tracing::warn!(
                "console: the login limiter saw too many sources in a minute: starting over"
            );
            *self.by_source.write().unwrap_or_else(|p| p.into_inner()) =
                RateLimiter::keyed(self.per_source);
        }
        if read(&self.by_pair).len() > MAX_KEYS {
            tracing::warn!(
                "console: the login limiter saw too many names and sources in a minute: starting over"
            );
            *self.by_pair.write().unwrap_or_else(|p| p.into_inner()) =
                RateLimiter::keyed(self.per_pair);
        }
        if read(&self.by_name).len() > MAX_KEYS {
            tracing::warn!(
                "console: the login limiter saw too many names in an hour: starting over"
            );
            *self.by_name.write().unwrap_or_else(|p| p.into_inner()) =
                RateLimiter::keyed(self.per_name);
        }
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        known.retain(|_, list| {
            list.retain(|(_, at)| now.saturating_duration_since(*at) < KNOWN_FOR);
            !list.is_empty()
        });
    }
}

// ---------------------------------------------------------------------------------------------
// The layer

/// Paths that never need a user: they ignore credentials (a stale cookie must not keep anyone
/// from the login page).
fn is_public(path: &str) -> bool {
    matches!(path, "/" | "/login" | "/api/login" | "/lang") || path.starts_with("/assets/")
}

/// The name of the user whose live session cookie comes with `headers`, if any (for the
/// public paths, which the layer does not identify: the language switch).
pub async fn session_user(state: &AdminState, headers: &HeaderMap) -> Option<String> {
    let cookie = session_cookie(headers)?;
    match state.store.session(&secret_hash(&cookie), Utc::now()).await {
        Ok(s) => s.map(|s| s.user_name),
        Err(e) => {
            tracing::warn!(error = %e, "console: cannot read a session");
            None
        }
    }
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
            person: t.person_id,
            lang: stored_lang(t.lang.as_deref()),
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
        person: s.person_id,
        lang: stored_lang(s.lang.as_deref()),
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
    /// The roster's person the login is linked to (null: not linked).
    person_id: Option<String>,
    /// The person id the console takes the user for: the link, else the login name.
    person: String,
    /// The console language the user chose (null: none yet).
    lang: Option<Lang>,
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

/// The most a login request may send: a name and a password, JSON-quoted.
const MAX_LOGIN_BODY: usize = 4 * 1024;

fn refused_login(refusal: Refusal, name: Option<&str>, source_text: &str) -> Response {
    let (message, why) = match refusal {
        Refusal::Busy(_) => (TOO_MANY, "too many attempts from this source"),
        Refusal::Besieged(_) => (
            BESIEGED,
            "too many attempts on this name from unknown addresses",
        ),
    };
    tracing::warn!(user = ?name, source = %source_text, why, "console login refused");
    let wait = refusal.wait();
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let mut r = ApiError::new(StatusCode::TOO_MANY_REQUESTS, message).into_response();
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    // The body may be unread: the connection must not be reused for the next request.
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

async fn login(State(state): State<AdminState>, request: axum::extract::Request) -> Response {
    let (parts, body) = request.into_parts();
    let headers = parts.headers;
    // Behind the console's reverse proxy, the person's address (never a header anyone sent).
    let source = crate::http::client_ip(
        peer(&parts.extensions),
        &headers,
        &state.config.http.trusted_proxy_nets(),
    );
    let source_text = source.map_or_else(|| "unknown".to_string(), |ip| ip.to_string());
    // The limiter speaks before the body is read: a flood of large bodies from one address
    // costs it nothing past its quota (issue 23).
    if let Err(refusal) = state.login_limiter.check_source(source, Instant::now()) {
        return refused_login(refusal, None, &source_text);
    }
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
    let body: Bytes = match axum::body::to_bytes(body, MAX_LOGIN_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "a login is a name and a password: at most 4 KiB",
            )
            .into_response()
        }
    };
    let Ok(LoginBody { name, password }) = serde_json::from_slice::<LoginBody>(&body) else {
        return ApiError::bad_request("send JSON {\"name\": …, \"password\": …}").into_response();
    };
    if let Err(refusal) = state
        .login_limiter
        .check_name(source, &name, Instant::now())
    {
        return refused_login(refusal, Some(&name), &source_text);
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
    state.login_limiter.succeeded(source, &user.name);
    tracing::info!(user = ?user.name, source = %source_text, role = %role, "console login");
    let mut r = Json(Me {
        person: user.person_id.clone().unwrap_or_else(|| user.name.clone()),
        person_id: user.person_id,
        lang: stored_lang(user.lang.as_deref()),
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
        person: user.person_id().to_string(),
        person_id: user.person,
        lang: user.lang,
        name: user.name,
        role: user.role,
        csrf_token,
    })
}

async fn root() -> Redirect {
    Redirect::to("/tickets")
}

const LOGIN_PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><!--i18n-->
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Log in · astreinte</title><link rel="stylesheet" href="/assets/console.css"></head>
<body><main class="login" id="main"><h1>astreinte</h1>
<p><!--lang-switch--></p>
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
    const fr = typeof UI_LANG === "string" && UI_LANG === "fr";
    let message = (fr ? "refusé (HTTP " : "refused (HTTP ") + r.status + ")";
    try { const d = await r.json(); message = (fr && d.error_fr) || d.error || message; } catch (e) { /* not JSON */ }
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

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn the_limiter_counts_a_name_per_source_without_case() {
        let l = LoginLimiter::new(2, 100);
        assert!(l.check(ip("192.0.2.1"), "alice").is_ok());
        assert!(l.check(None, "Alice").is_ok());
        assert!(l.check(ip("192.0.2.1"), "Alice").is_ok());
        let wait = l.check(ip("192.0.2.1"), " ALICE ").unwrap_err();
        assert!(matches!(wait, Refusal::Busy(_)), "{wait:?}");
        assert!(wait.wait() > Duration::ZERO && wait.wait() <= Duration::from_secs(30));
        assert!(l.check(ip("192.0.2.1"), "bob").is_ok());
        let l = LoginLimiter::new(100, 1);
        assert!(l.check(ip("192.0.2.1"), "a").is_ok());
        assert!(l.check(ip("192.0.2.1"), "b").is_err());
        assert!(
            l.check(None, "c").is_ok(),
            "an unknown peer has its own bucket"
        );
    }

    #[test]
    fn failures_from_one_address_never_lock_the_name_out_of_another() {
        let l = LoginLimiter::default();
        for _ in 0..5 {
            assert!(l.check(ip("192.0.2.66"), "tech1").is_ok());
        }
        assert!(matches!(
            l.check(ip("192.0.2.66"), "tech1"),
            Err(Refusal::Busy(_))
        ));
        assert!(l.check(ip("192.0.2.7"), "tech1").is_ok());
        // One IPv6 host is one address, whatever it picks in its /64.
        for i in 1..=5 {
            assert!(l.check(ip(&format!("2001:db8::{i}")), "tech1").is_ok());
        }
        assert!(l.check(ip("2001:db8::99"), "tech1").is_err());
        assert!(l.check(ip("2001:db8:0:1::1"), "tech1").is_ok());
    }

    #[test]
    fn many_addresses_hit_the_name_ceiling_but_a_known_address_gets_through() {
        let l = LoginLimiter::with_ceiling(5, 20, 3);
        let t0 = Instant::now();
        // The person logged in from home last week.
        l.succeeded_at(ip("198.51.100.10"), "Tech1", t0);
        for i in 1..=3 {
            assert!(l
                .check_at(ip(&format!("203.0.113.{i}")), "tech1", t0)
                .is_ok());
        }
        let r = l.check_at(ip("203.0.113.4"), "tech1", t0).unwrap_err();
        assert!(matches!(r, Refusal::Besieged(_)), "{r:?}");
        assert!(r.wait() > Duration::from_secs(60), "{r:?}");
        // Home is known: it skips the ceiling (its own quota still holds).
        for _ in 0..5 {
            assert!(l.check_at(ip("198.51.100.10"), "tech1", t0).is_ok());
        }
        assert!(matches!(
            l.check_at(ip("198.51.100.10"), "tech1", t0),
            Err(Refusal::Busy(_))
        ));
        // Another name is not besieged.
        assert!(l.check_at(ip("203.0.113.5"), "tech2", t0).is_ok());
        // Known for KNOWN_FOR after the last login, then a stranger again.
        assert!(l.is_known("tech1", Source::of(ip("198.51.100.10")), t0 + KNOWN_FOR / 2));
        assert!(!l.is_known("tech1", Source::of(ip("198.51.100.10")), t0 + KNOWN_FOR));
        l.prune(t0 + KNOWN_FOR);
        assert!(read_known(&l).is_empty());
        // A server that cannot tell peers apart vouches for none.
        l.succeeded_at(None, "tech1", t0);
        assert!(!l.is_known("tech1", Source::Unknown, t0));
    }

    #[test]
    fn known_addresses_are_bounded_per_name() {
        let l = LoginLimiter::default();
        let t0 = Instant::now();
        for i in 0..40 {
            l.succeeded_at(ip(&format!("192.0.2.{i}")), "tech1", t0);
        }
        l.succeeded_at(ip("192.0.2.39"), "tech1", t0);
        let known = read_known(&l);
        assert_eq!(known["tech1"].len(), KNOWN_PER_NAME);
        assert!(l.is_known("tech1", Source::of(ip("192.0.2.39")), t0));
        assert!(!l.is_known("tech1", Source::of(ip("192.0.2.0")), t0));
    }

    fn read_known(l: &LoginLimiter) -> HashMap<String, Vec<(Source, Instant)>> {
        l.known.lock().unwrap().clone()
    }

    #[test]
    fn next_urls_are_encoded() {
        assert_eq!(
            url_encode("/tickets?open=1&x=é"),
            "/tickets%3Fopen%3D1%26x%3D%C3%A9"
        );
    }
}
