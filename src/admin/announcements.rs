//! Announcements in the console: set, change and end the incident announcement (phase, text per
//! language spoken with the prompts' voice), and hear what a caller hears now. Every node plays
//! the store's current one (`live::LiveSettings::announcement`).

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::{CurrentUser, Role};
use super::pages::page;
use super::{AdminState, ApiError};
use crate::store::announcements::PHASES;
use crate::store::audit::NewAudit;
use crate::store::NewAnnouncement;

async fn current(
    State(state): State<AdminState>,
    _user: CurrentUser,
) -> Result<Json<Value>, ApiError> {
    let a = state
        .store
        .current_announcement()
        .await
        .map_err(ApiError::store)?;
    Ok(Json(json!(a)))
}

#[derive(Debug, Deserialize)]
struct SetAnnouncement {
    phase: String,
    fr: String,
    en: String,
}

fn check_text(lang: &str, text: &str) -> Result<String, ApiError> {
    let t = text.trim();
    if t.is_empty() {
        return Err(ApiError::bad_request(format!(
            "the {lang} text is empty: callers hear one language or the other"
        )));
    }
    if t.chars().count() > 600 {
        return Err(ApiError::bad_request(format!(
            "the {lang} text is over 600 characters: keep it to what a caller can hear in a minute"
        )));
    }
    // Never let text become espeak-ng options or control input.
    Ok(t.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim_start_matches('-')
        .to_string())
}

async fn set(
    State(state): State<AdminState>,
    user: CurrentUser,
    Json(req): Json<SetAnnouncement>,
) -> Result<Json<Value>, ApiError> {
    user.require(Role::Admin)?;
    if !PHASES.contains(&req.phase.as_str()) {
        return Err(ApiError::bad_request(
            "phase must be investigating, identified or monitoring",
        ));
    }
    let fr = check_text("French", &req.fr)?;
    let en = check_text("English", &req.en)?;
    let (f, e) = (fr.clone(), en.clone());
    let audio = tokio::task::spawn_blocking(move || {
        let a = crate::media::speech::announcement_wav(&f, "fr", None)?;
        let b = crate::media::speech::announcement_wav(&e, "en-us", None)?;
        Ok::<_, crate::media::speech::SpeechError>((a, b))
    })
    .await
    .map_err(|_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "speech synthesis stopped",
        )
    })?
    .map_err(|e| match e {
        crate::media::speech::SpeechError::Length(_) => ApiError::bad_request(e.to_string()),
        other => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, other.to_string()),
    })?;
    let before = state
        .store
        .current_announcement()
        .await
        .map_err(ApiError::store)?;
    let now = Utc::now();
    let id = state
        .store
        .set_announcement(&NewAnnouncement {
            phase: req.phase.clone(),
            text_fr: fr.clone(),
            text_en: en.clone(),
            audio_fr: audio.0,
            audio_en: audio.1,
            set_by: user.name.clone(),
            at: now,
        })
        .await
        .map_err(ApiError::store)?;
    let after = json!({"id": id, "phase": req.phase, "text_fr": fr, "text_en": en});
    state
        .store
        .audit(&NewAudit {
            actor: &user.name,
            action: "announcement.set",
            target: &req.phase,
            before: before.and_then(|b| serde_json::to_value(b).ok()),
            after: Some(after.clone()),
            at: now,
        })
        .await
        .map_err(ApiError::store)?;
    Ok(Json(after))
}

async fn clear(State(state): State<AdminState>, user: CurrentUser) -> Result<StatusCode, ApiError> {
    user.require(Role::Admin)?;
    let before = state
        .store
        .current_announcement()
        .await
        .map_err(ApiError::store)?;
    let now = Utc::now();
    if !state
        .store
        .clear_announcement(now)
        .await
        .map_err(ApiError::store)?
    {
        return Err(ApiError::not_found("there is no announcement to end"));
    }
    let phase = before.as_ref().map_or(String::new(), |b| b.phase.clone());
    state
        .store
        .audit(&NewAudit {
            actor: &user.name,
            action: "announcement.clear",
            target: &phase,
            before: before.and_then(|b| serde_json::to_value(b).ok()),
            after: None,
            at: now,
        })
        .await
        .map_err(ApiError::store)?;
    Ok(StatusCode::NO_CONTENT)
}

/// What a caller choosing `lang` hears before the menu now: the phase's notice, then the
/// announcement, through G.711 µ-law as a phone would, as a WAV.
async fn preview(
    State(state): State<AdminState>,
    _user: CurrentUser,
    Path(lang): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    if lang != "fr" && lang != "en" {
        return Err(ApiError::not_found("language is fr or en"));
    }
    let Some(a) = state
        .store
        .current_announcement()
        .await
        .map_err(ApiError::store)?
    else {
        return Err(ApiError::not_found(
            "there is no announcement now: callers go straight to the menu",
        ));
    };
    let mut pcm: Vec<i16> = Vec::new();
    if let Some(media) = &state.media {
        let prompts = media.prompts();
        if let Some(id) = prompts.id(&format!("{lang}/incident-{}", a.phase)) {
            if let Some(p) = prompts.get(id) {
                let mut out = vec![0i16; p.pcmu.len()];
                crate::media::g711::decode(crate::media::Codec::Pcmu, &p.pcmu, &mut out);
                pcm.extend(out);
            }
        }
    }
    let audio = if lang == "fr" {
        &a.audio_fr
    } else {
        &a.audio_en
    };
    let reader = hound::WavReader::new(std::io::Cursor::new(audio)).map_err(|_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the stored audio is not a WAV",
        )
    })?;
    let samples: Vec<i16> = reader.into_samples::<i16>().map_while(Result::ok).collect();
    let mut enc = vec![0u8; samples.len()];
    crate::media::g711::encode(crate::media::Codec::Pcmu, &samples, &mut enc);
    let mut heard = vec![0i16; enc.len()];
    crate::media::g711::decode(crate::media::Codec::Pcmu, &enc, &mut heard);
    pcm.extend(heard);
    let mut wav = Vec::new();
    {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::new(std::io::Cursor::new(&mut wav), spec).map_err(|_| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot write the preview",
            )
        })?;
        for s in &pcm {
            w.write_sample(*s).map_err(|_| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "cannot write the preview",
                )
            })?;
        }
        w.finalize().map_err(|_| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot write the preview",
            )
        })?;
    }
    Ok((
        [
            (header::CONTENT_TYPE, "audio/wav"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        wav,
    ))
}

async fn announcements_page(_user: CurrentUser) -> axum::response::Html<String> {
    page("Announcements", "/announcements", BODY, SCRIPT)
}

const BODY: &str = r##"
<section><h2>Now</h2><p id="current" class="status">…</p>
<p><audio id="hear-fr" controls aria-label="French"></audio> French &nbsp; <audio id="hear-en" controls aria-label="English"></audio> English</p>
<button id="end" type="button" class="need-admin">End the announcement</button></section>
<section class="need-admin"><h2>Announce an incident</h2>
<form id="set"><label>Phase <select id="phase"><option value="investigating">investigating</option><option value="identified">identified</option><option value="monitoring">monitoring</option></select></label><br>
<label>French<br><textarea id="fr" rows="3" cols="80" style="width:100%" required></textarea></label><br>
<label>English<br><textarea id="en" rows="3" cols="80" style="width:100%" required></textarea></label><br>
<button>Announce</button></form></section>
<p id="message" class="error" role="status"></p>
"##;

const SCRIPT: &str = r##"
const PHASE_WORDS = { investigating: ["investigating", "enquête en cours"], identified: ["identified", "cause identifiée"],
  monitoring: ["monitoring", "sous surveillance"], resolved: ["resolved", "résolu"] };
function phaseWord(p) { const w = PHASE_WORDS[p]; return w ? L(w[0], w[1]) : String(p); }
async function load() {
  const a = await api("GET", "/api/announcement");
  const cur = document.getElementById("current");
  if (!a) { cur.textContent = "No announcement: callers go straight to the menu."; }
  else { cur.textContent = phaseWord(a.phase) + " since " + fmtWhen(a.set_at) + " (by " + a.set_by + "): " + a.text_fr + " / " + a.text_en; }
  for (const l of ["fr", "en"]) {
    const el = document.getElementById("hear-" + l);
    if (a) el.src = "/api/announcement/preview/" + l + "?t=" + Date.now(); else el.removeAttribute("src");
  }
}
async function act(f) {
  const m = document.getElementById("message"); m.textContent = "";
  try { await f(); await load(); } catch (e) { m.textContent = e.message; }
}
document.getElementById("end").addEventListener("click", () => act(() => api("DELETE", "/api/announcement")));
document.getElementById("set").addEventListener("submit", e => { e.preventDefault();
  act(() => api("PUT", "/api/announcement", {phase: document.getElementById("phase").value,
    fr: document.getElementById("fr").value, en: document.getElementById("en").value})); });
me().then(load);
"##;

pub fn routes() -> Router<AdminState> {
    Router::new()
        .route("/announcements", get(announcements_page))
        .route("/api/announcement", get(current).put(set).delete(clear))
        .route("/api/announcement/preview/{lang}", get(preview))
}
