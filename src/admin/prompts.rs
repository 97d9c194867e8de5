//! Prompts in the console: every prompt of the manifest per language, its text, what plays now
//! (the bundled default, version 0, or an uploaded version), its audio, uploads (converted to
//! 8 kHz mono 16-bit by `media::convert`, refused with the reason) and roll-backs. Every change
//! is an audit event and reaches calls on this node at once and on the others within
//! `live::POLL` (the live-settings service, `crate::live`).
//!
//! - `GET  /api/prompts` → `[{lang, name, text, version, is_default}]`, sorted by language and name
//! - `GET  /api/prompts/{lang}/{name}/audio[?version=N]` → `audio/wav` (N = 0: the default)
//! - `PUT  /api/prompts/{lang}/{name}` (body: the audio file) → 201 and the new version
//! - `GET  /api/prompts/{lang}/{name}/versions` → `[{version, uploaded_by, uploaded_at, seconds, active}]`
//! - `POST /api/prompts/{lang}/{name}/rollback` `{"version": N}` → 200 (N = 0: the default)
//! - `GET  /prompts`: the page

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::auth::{CurrentUser, Role};
use super::{pages, AdminState, ApiError};
use crate::live::prompts as live_prompts;
pub use crate::live::prompts::{manifest, ManifestPrompt};
use crate::media::convert::{self, ConvertError, MAX_UPLOAD_BYTES};
use crate::media::prompts::LANGUAGES;
use crate::store::audit::NewAudit;
use crate::store::prompts::NewPromptVersion;

/// The content types an upload may be sent with (the format itself is read from the bytes).
pub const UPLOAD_TYPES: [&str; 6] = [
    "audio/wav",
    "audio/x-wav",
    "audio/wave",
    "audio/mpeg",
    "audio/ogg",
    "application/octet-stream",
];

/// The manifest prompt `lang/name`, or a 400/404 that says what is wrong.
fn known(lang: &str, name: &str) -> Result<&'static ManifestPrompt, ApiError> {
    if !LANGUAGES.contains(&lang) {
        return Err(ApiError::not_found(format!(
            "no language \"{}\": prompts exist in {}",
            shorten(lang),
            LANGUAGES.join(" and ")
        )));
    }
    let well_formed = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !well_formed {
        return Err(ApiError::bad_request(format!(
            "\"{}\" is not a prompt name: names are lowercase letters, digits and dashes \
             (e.g. welcome, main-menu)",
            shorten(name)
        )));
    }
    manifest()
        .iter()
        .find(|p| p.name == name)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "no prompt named \"{name}\": see GET /api/prompts for the prompts of prompts/manifest.toml"
            ))
        })
}

/// At most 40 characters of what someone sent, for a message.
fn shorten(s: &str) -> String {
    let mut out: String = s.chars().take(40).collect();
    if s.chars().count() > 40 {
        out.push('…');
    }
    out
}

#[derive(Debug, Serialize)]
struct PromptRow {
    lang: &'static str,
    name: String,
    text: String,
    /// 0 when the bundled default plays.
    version: i64,
    is_default: bool,
}

async fn list(
    State(state): State<AdminState>,
    _user: CurrentUser,
) -> Result<Json<Vec<PromptRow>>, ApiError> {
    let active: HashMap<(String, String), i64> = state
        .store
        .active_prompt_versions()
        .await
        .map_err(ApiError::store)?
        .into_iter()
        .map(|(l, n, v)| ((l, n), v))
        .collect();
    let mut rows = Vec::new();
    for lang in LANGUAGES {
        for p in manifest() {
            let version = active
                .get(&(lang.to_string(), p.name.clone()))
                .copied()
                .unwrap_or(0);
            rows.push(PromptRow {
                lang,
                name: p.name.clone(),
                text: p.texts.get(lang).cloned().unwrap_or_default(),
                version,
                is_default: version == 0,
            });
        }
    }
    rows.sort_by(|a, b| (a.lang, &a.name).cmp(&(b.lang, &b.name)));
    Ok(Json(rows))
}

#[derive(Debug, Deserialize)]
struct AudioQuery {
    version: Option<i64>,
}

async fn audio(
    State(state): State<AdminState>,
    _user: CurrentUser,
    Path((lang, name)): Path<(String, String)>,
    query: Result<Query<AudioQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    known(&lang, &name)?;
    let Query(query) = query
        .map_err(|_| ApiError::bad_request("version must be a whole number (0: the default)"))?;
    let version = match query.version {
        Some(v) if v < 0 => {
            return Err(ApiError::bad_request(
                "version must be 0 (the default) or more",
            ))
        }
        Some(v) => v,
        None => state
            .store
            .active_prompt_versions()
            .await
            .map_err(ApiError::store)?
            .into_iter()
            .find(|(l, n, _)| *l == lang && *n == name)
            .map_or(0, |(_, _, v)| v),
    };
    let wav = if version == 0 {
        let pcm = live_prompts::default_pcm(&format!("{lang}/{name}")).ok_or_else(|| {
            ApiError::not_found(format!("{lang}/{name} has no bundled recording"))
        })?;
        convert::encode_wav(&pcm)
    } else {
        state
            .store
            .prompt_audio(&lang, &name, version)
            .await
            .map_err(ApiError::store)?
            .ok_or_else(|| ApiError::not_found(format!("{lang}/{name} has no version {version}")))?
    };
    Ok((
        [
            (header::CONTENT_TYPE, "audio/wav"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        wav,
    )
        .into_response())
}

/// A version as the API shows it.
#[derive(Debug, Serialize)]
struct VersionJson {
    version: i64,
    uploaded_by: Option<String>,
    uploaded_at: Option<DateTime<Utc>>,
    seconds: f64,
    active: bool,
}

async fn versions(
    State(state): State<AdminState>,
    _user: CurrentUser,
    Path((lang, name)): Path<(String, String)>,
) -> Result<Json<Vec<VersionJson>>, ApiError> {
    known(&lang, &name)?;
    let uploaded = state
        .store
        .prompt_versions(&lang, &name)
        .await
        .map_err(ApiError::store)?;
    let default_active = !uploaded.iter().any(|v| v.active);
    let default_seconds = live_prompts::default_pcm(&format!("{lang}/{name}"))
        .map_or(0.0, |p| p.len() as f64 / f64::from(convert::RATE));
    let mut out: Vec<VersionJson> = uploaded
        .into_iter()
        .map(|v| VersionJson {
            version: v.version,
            uploaded_by: Some(v.uploaded_by),
            uploaded_at: Some(v.uploaded_at),
            seconds: v.seconds,
            active: v.active,
        })
        .collect();
    out.push(VersionJson {
        version: 0,
        uploaded_by: None,
        uploaded_at: None,
        seconds: default_seconds,
        active: default_active,
    });
    Ok(Json(out))
}

/// Uploads converted at once (see `upload`).
static CONVERSIONS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);
/// How long an upload waits for a conversion slot before it is told to retry.
const CONVERSION_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

async fn upload(
    State(state): State<AdminState>,
    user: CurrentUser,
    Path((lang, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    user.require(Role::Admin)?;
    let prompt = known(&lang, &name)?;
    // A few conversions at once, each a core and tens of MB: more wait their turn briefly,
    // then are told to retry, before their body is read (eight parallel bombs took 382 MB).
    let _permit = match tokio::time::timeout(CONVERSION_WAIT, CONVERSIONS.acquire()).await {
        Ok(Ok(p)) => p,
        _ => {
            tracing::warn!(user = %user.name, "prompt upload refused: conversions busy");
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "other uploads are being converted; try again in a minute",
            ));
        }
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        });
    match content_type.as_deref() {
        Some(t) if UPLOAD_TYPES.contains(&t) => {}
        other => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "{}: send the audio file itself as the body with Content-Type {}",
                    other.map_or("no Content-Type".to_string(), |t| format!(
                        "Content-Type {} is not accepted",
                        shorten(t)
                    )),
                    UPLOAD_TYPES.join(", ")
                ),
            ))
        }
    }
    let body: Bytes = axum::body::to_bytes(body, MAX_UPLOAD_BYTES)
        .await
        .map_err(|_| too_large())?;
    // Decoding and resampling a minute of audio is CPU work: off the async threads.
    let converted = tokio::task::spawn_blocking(move || convert::convert(&body))
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the conversion stopped unexpectedly; try again",
            )
        })?
        .map_err(|e| match e {
            ConvertError::TooLarge { .. } => too_large(),
            other => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, other.to_string()),
        })?;
    let before = state
        .store
        .active_prompt_versions()
        .await
        .map_err(ApiError::store)?
        .into_iter()
        .find(|(l, n, _)| *l == lang && *n == name)
        .map_or(0, |(_, _, v)| v);
    let at = Utc::now();
    let wav = converted.wav();
    let v = state
        .store
        .add_prompt_version(&NewPromptVersion {
            lang: &lang,
            name: &name,
            wav: &wav,
            seconds: converted.seconds(),
            uploaded_by: &user.name,
            at,
        })
        .await
        .map_err(ApiError::store)?;
    let full = format!("{lang}/{name}");
    if let Some(media) = &state.media {
        live_prompts::apply(media, &full, Some(&converted.pcm));
    }
    audit(
        &state,
        &user,
        "prompt.upload",
        &full,
        json!({ "version": before }),
        json!({
            "version": v.version,
            "seconds": v.seconds,
            "format": converted.format,
            "source_rate": converted.source_rate,
            "source_channels": converted.source_channels,
        }),
        at,
    )
    .await;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "lang": v.lang,
            "name": v.name,
            "text": prompt.texts.get(lang.as_str()).cloned().unwrap_or_default(),
            "version": v.version,
            "is_default": false,
            "active": v.active,
            "seconds": v.seconds,
            "uploaded_by": v.uploaded_by,
            "uploaded_at": v.uploaded_at,
            "format": converted.format,
        })),
    ))
}

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "the file is larger than {} MB, the largest accepted",
            MAX_UPLOAD_BYTES / (1024 * 1024)
        ),
    )
}

#[derive(Debug, Deserialize)]
struct Rollback {
    version: i64,
}

async fn rollback(
    State(state): State<AdminState>,
    user: CurrentUser,
    Path((lang, name)): Path<(String, String)>,
    body: Result<Json<Rollback>, JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    user.require(Role::Admin)?;
    known(&lang, &name)?;
    let Json(Rollback { version }) = body.map_err(|e| {
        ApiError::bad_request(format!(
            "send JSON {{\"version\": N}} (0: the default): {}",
            e.body_text()
        ))
    })?;
    if version < 0 {
        return Err(ApiError::bad_request(
            "version must be 0 (the default) or more",
        ));
    }
    let full = format!("{lang}/{name}");
    // The audio to play, read before the change so an unknown version changes nothing.
    let pcm = if version == 0 {
        None
    } else {
        let wav = state
            .store
            .prompt_audio(&lang, &name, version)
            .await
            .map_err(ApiError::store)?
            .ok_or_else(|| ApiError::not_found(format!("{full} has no version {version}")))?;
        Some(convert::decode_wav_8k(&wav).map_err(|e| {
            tracing::warn!(prompt = %full, version, error = %e, "stored prompt unreadable");
            ApiError::new(
                StatusCode::CONFLICT,
                format!("version {version} of {full} cannot be read; upload it again"),
            )
        })?)
    };
    let at = Utc::now();
    let before = state
        .store
        .activate_prompt_version(&lang, &name, (version > 0).then_some(version))
        .await
        .map_err(|e| match e {
            crate::store::StoreError::Invalid(m) => ApiError::not_found(m),
            other => ApiError::store(other),
        })?;
    if let Some(media) = &state.media {
        live_prompts::apply(media, &full, pcm.as_deref());
    }
    audit(
        &state,
        &user,
        "prompt.rollback",
        &full,
        json!({ "version": before.unwrap_or(0) }),
        json!({ "version": version }),
        at,
    )
    .await;
    Ok(Json(json!({
        "lang": lang,
        "name": name,
        "version": version,
        "is_default": version == 0,
    })))
}

/// Records a change. The change is made by then: a failure to record it is logged loudly
/// rather than reported as if the change had failed.
#[allow(clippy::too_many_arguments)]
async fn audit(
    state: &AdminState,
    user: &CurrentUser,
    action: &str,
    target: &str,
    before: serde_json::Value,
    after: serde_json::Value,
    at: DateTime<Utc>,
) {
    let event = NewAudit {
        actor: &user.name,
        action,
        target,
        before: Some(before),
        after: Some(after),
        at,
    };
    if let Err(e) = state.store.audit(&event).await {
        tracing::error!(error = %e, action, target, actor = %user.name, "audit event not recorded");
    }
}

const PAGE_BODY: &str = r#"<p class="muted">What callers hear, per language. Upload a WAV, MP3 or Ogg file (converted to
8 kHz mono; at most 60 s and 20 MB); earlier versions are kept and can be restored.
A change reaches new calls at once; a prompt already playing finishes.</p>
<p class="tools"><label>Find a prompt <input id="prompt-filter" type="search" autocomplete="off"></label></p>
<p id="page-status" class="status" role="status"></p>
<div id="prompts"></div>"#;

const PAGE_SCRIPT: &str = r#"
const UPLOAD_TYPES = ["audio/wav", "audio/x-wav", "audio/wave", "audio/mpeg", "audio/ogg"];

function promptPath(lang, name) {
  return "/api/prompts/" + encodeURIComponent(lang) + "/" + encodeURIComponent(name);
}

function rowHtml(p) {
  const key = p.lang + "/" + p.name;
  const kind = p.is_default ? "default" : "uploaded";
  const kindText = p.is_default ? L("default", "par défaut") : L("uploaded", "téléversé");
  return '<tr data-prompt="' + esc(key) + '" data-version="' + esc(p.version) + '">' +
    '<td class="name"><code>' + esc(p.name) + '</code></td>' +
    '<td class="text">' + esc(p.text) + '</td>' +
    '<td><audio controls preload="none" aria-label="' + esc(L("Listen to ", "Écouter ") + key) + '" src="' + esc(promptPath(p.lang, p.name) + "/audio?version=" + p.version) + '"></audio></td>' +
    '<td><span class="version">' + (p.is_default ? "0" : esc(p.version)) + '</span> ' +
    '<span class="kind ' + kind + '">' + esc(kindText) + '</span></td>' +
    '<td class="need-admin"><input type="file" class="upload" accept="audio/*,.wav,.mp3,.ogg" aria-label="Upload a new recording of ' + esc(key) + '">' +
    ' <span class="status" role="status"></span></td>' +
    '<td><details class="versions"><summary>versions</summary><ul></ul></details></td>' +
    '</tr>';
}

function setStatus(el, text, ok) {
  el.textContent = text;
  el.className = "status " + (ok ? "notice" : "error");
}

async function loadVersions(row) {
  const key = row.dataset.prompt;
  const [lang, name] = key.split("/");
  const ul = row.querySelector(".versions ul");
  try {
    const versions = await api("GET", promptPath(lang, name) + "/versions");
    ul.innerHTML = versions.map(v =>
      '<li data-version="' + esc(v.version) + '"' + (v.active ? ' class="active"' : '') + '>' +
      (v.version === 0 ? L("default", "par défaut") : "v" + esc(v.version) + " · " + esc(v.uploaded_by) + " · " +
        esc(fmtWhen(v.uploaded_at))) +
      " · " + esc(v.seconds.toFixed(1)) + " s " +
      (v.active ? "<strong>(playing)</strong>"
        : '<button type="button" class="rollback need-admin" data-version="' + esc(v.version) + '">roll back</button>') +
      '</li>').join("");
  } catch (e) {
    ul.innerHTML = '<li class="error">' + esc(e.message) + '</li>';
  }
}

async function refreshRow(row) {
  const list = await api("GET", "/api/prompts");
  const p = list.find(x => x.lang + "/" + x.name === row.dataset.prompt);
  if (!p) return row;
  const tmp = document.createElement("tbody");
  tmp.innerHTML = rowHtml(p);
  const fresh = tmp.firstElementChild;
  row.replaceWith(fresh);
  return fresh;
}

async function onUpload(input) {
  let row = input.closest("tr");
  const status = row.querySelector(".status");
  const file = input.files && input.files[0];
  if (!file) return;
  const [lang, name] = row.dataset.prompt.split("/");
  const type = UPLOAD_TYPES.includes(file.type) ? file.type : "application/octet-stream";
  setStatus(status, "uploading…", true);
  try {
    const v = await api("PUT", promptPath(lang, name), file, type);
    row = await refreshRow(row);
    setStatus(row.querySelector(".status"), "version " + v.version + " uploaded (" + v.seconds.toFixed(1) + " s); it plays from now on", true);
    const d = row.querySelector(".versions");
    if (d.open) await loadVersions(row);
  } catch (e) {
    setStatus(status, e.message, false);
    input.value = "";
  }
}

async function onRollback(button) {
  let row = button.closest("tr");
  const [lang, name] = row.dataset.prompt.split("/");
  const version = Number(button.dataset.version);
  const status = row.querySelector(".status");
  try {
    await api("POST", promptPath(lang, name) + "/rollback", { version });
    row = await refreshRow(row);
    setStatus(row.querySelector(".status"), version === 0 ? "back to the default" : "version " + version + " plays again", true);
    const d = row.querySelector(".versions");
    d.open = true;
    await loadVersions(row);
  } catch (e) {
    setStatus(status, e.message, false);
  }
}

async function load() {
  const root = document.getElementById("prompts");
  try {
    // Who is logged in, for the header (not needed to show the prompts).
    await me().catch(() => null);
    const list = await api("GET", "/api/prompts");
    const langs = [...new Set(list.map(p => p.lang))];
    root.innerHTML = langs.map(lang =>
      '<section data-lang="' + esc(lang) + '"><h2>' + esc(lang === "fr" ? "Français (fr)" : lang === "en" ? "English (en)" : lang) + '</h2>' +
      '<table class="prompts"><thead><tr><th>Prompt</th><th>Text</th><th>Listen</th><th>Version</th><th class="need-admin">Upload</th><th>History</th></tr></thead><tbody>' +
      list.filter(p => p.lang === lang).map(rowHtml).join("") +
      '</tbody></table></section>').join("");
  } catch (e) {
    setStatus(document.getElementById("page-status"), e.message, false);
  }
}

// 118 prompts: a word of the name or the text narrows them.
document.getElementById("prompt-filter").addEventListener("input", e => {
  const q = e.target.value.trim().toLowerCase();
  document.querySelectorAll("tr[data-prompt]").forEach(tr => { tr.hidden = !!q && !tr.textContent.toLowerCase().includes(q); });
});
document.addEventListener("change", e => {
  if (e.target.matches("input.upload")) onUpload(e.target);
});
document.addEventListener("click", e => {
  if (e.target.matches("button.rollback")) onRollback(e.target);
});
document.addEventListener("toggle", e => {
  if (e.target.matches && e.target.matches("details.versions") && e.target.open) loadVersions(e.target.closest("tr"));
}, true);
load();
"#;

/// The page; without a login, the login page (which comes back here).
async fn page(user: Option<axum::Extension<CurrentUser>>) -> Response {
    match user {
        Some(_) => pages::page("Prompts", "/prompts", PAGE_BODY, PAGE_SCRIPT).into_response(),
        None => axum::response::Redirect::to("/login?next=/prompts").into_response(),
    }
}

pub fn routes() -> Router<AdminState> {
    Router::new()
        .route("/prompts", get(page))
        .route("/api/prompts", get(list))
        .route(
            "/api/prompts/{lang}/{name}",
            axum::routing::put(upload).layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES)),
        )
        .route("/api/prompts/{lang}/{name}/audio", get(audio))
        .route("/api/prompts/{lang}/{name}/versions", get(versions))
        .route("/api/prompts/{lang}/{name}/rollback", post(rollback))
}
