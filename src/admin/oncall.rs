//! On call in the console: who is on call now and next, rotations and overrides, the ladder
//! and its offsets per severity, and "send a test page" to a person.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::{CurrentUser, Role};
use super::pages::page;
use super::{AdminState, ApiError};
use crate::paging::roster::{LadderGap, Override};
use crate::paging::view::{describe_gaps, gaps_of_change, CoverChange};
use crate::store::audit::NewAudit;

fn tz(state: &AdminState) -> chrono_tz::Tz {
    state
        .config
        .schedule
        .timezone
        .parse()
        .unwrap_or(chrono_tz::America::Toronto)
}

async fn oncall(
    State(state): State<AdminState>,
    _user: CurrentUser,
) -> Result<Json<Value>, ApiError> {
    let mut v = crate::paging::view::oncall_json(
        &state.store,
        &state.config.paging,
        &state.config.schedule.sla,
        tz(&state),
        Utc::now(),
    )
    .await
    .map_err(view_error)?;
    v["rotations_config"] = json!(state
        .config
        .paging
        .rotations
        .iter()
        .map(|r| json!({"id": r.id, "people": r.people, "every": r.every, "handover": r.handover}))
        .collect::<Vec<_>>());
    // The ladder's warnings in French too, for a French reader.
    let fr = |w: &Value| -> Value {
        json!(w
            .as_array()
            .map(|a| a
                .iter()
                .filter_map(Value::as_str)
                .map(|s| super::fr::message(s).unwrap_or_else(|| s.to_string()))
                .collect::<Vec<_>>())
            .unwrap_or_default())
    };
    v["warnings_fr"] = fr(&v["warnings"]);
    if let Some(levels) = v["ladder"].as_array_mut() {
        for l in levels {
            l["warnings_fr"] = fr(&l["warnings"]);
        }
    }
    Ok(Json(v))
}

async fn people(
    State(state): State<AdminState>,
    _user: CurrentUser,
) -> Result<Json<Value>, ApiError> {
    let people = state.store.people().await.map_err(ApiError::store)?;
    Ok(Json(json!(people)))
}

async fn overrides(
    State(state): State<AdminState>,
    _user: CurrentUser,
) -> Result<Json<Value>, ApiError> {
    let list = state
        .store
        .overrides(Utc::now())
        .await
        .map_err(ApiError::store)?;
    Ok(Json(json!(list)))
}

#[derive(Debug, Deserialize)]
struct NewOverride {
    rotation: String,
    person: String,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    #[serde(default)]
    reason: String,
    /// An admin confirms a change that leaves a ladder level empty or with someone a lower
    /// level already pages (recorded in the audit log).
    #[serde(default)]
    force: bool,
}

/// `?force=true` on a removal: as [`NewOverride::force`].
#[derive(Debug, Deserialize)]
struct Force {
    #[serde(default)]
    force: bool,
}

fn view_error(e: crate::paging::view::ViewError) -> ApiError {
    match e {
        crate::paging::view::ViewError::Store(e) => ApiError::store(e),
        crate::paging::view::ViewError::Config(m) => {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, m)
        }
    }
}

/// The gaps `change` would bring to the ladder: none, or forced by an admin (returned, for the
/// audit log), else a 409 that names each level and person (403 if a non-admin forces).
async fn check_gaps(
    state: &AdminState,
    user: &CurrentUser,
    change: &CoverChange,
    force: bool,
    now: DateTime<Utc>,
) -> Result<Vec<(DateTime<Utc>, LadderGap)>, ApiError> {
    if force && user.role < Role::Admin {
        return Err(ApiError::forbidden(
            "only an admin may force a change that leaves the ladder short",
        ));
    }
    let tz = tz(state);
    let gaps = gaps_of_change(&state.store, &state.config.paging, tz, now, change)
        .await
        .map_err(view_error)?;
    if gaps.is_empty() || force {
        return Ok(gaps);
    }
    let who = if user.role >= Role::Admin {
        "confirm with \"force\": true if it is meant"
    } else {
        "ask an admin"
    };
    Err(ApiError::new(
        StatusCode::CONFLICT,
        format!(
            "this change would leave the escalation ladder short: {}; {who}",
            describe_gaps(&gaps, tz)
        ),
    ))
}

/// "30 days", "7 days 1 h".
fn span(d: chrono::Duration) -> String {
    let (days, hours) = (d.num_days(), d.num_hours() % 24);
    if hours == 0 {
        format!("{days} days")
    } else {
        format!("{days} days {hours} h")
    }
}

fn gaps_json(gaps: &[(DateTime<Utc>, LadderGap)]) -> Value {
    json!(gaps
        .iter()
        .map(|(at, g)| json!({"from": at, "gap": g.describe(true)}))
        .collect::<Vec<_>>())
}

/// Why a technician may not set this cover, and how their login becomes the right person.
fn not_yours(user: &CurrentUser, person: &str) -> String {
    let name: String = user.name.chars().take(40).collect();
    let person: String = person.chars().take(40).collect();
    match &user.person {
        Some(mine) => format!(
            "only an admin may set someone else's cover: your login \"{name}\" is linked to \
             person \"{}\", not \"{person}\" (an admin changes the link with \
             `astreinte users link {name} PERSON_ID`)",
            mine.chars().take(40).collect::<String>()
        ),
        None => format!(
            "only an admin may set someone else's cover: your login \"{name}\" is linked to no \
             person, so the console takes you for the person whose id is \"{name}\", not \
             \"{person}\"; if you are \"{person}\", an admin links your login with \
             `astreinte users link {name} {person}`"
        ),
    }
}

async fn add_override(
    State(state): State<AdminState>,
    user: CurrentUser,
    Json(o): Json<NewOverride>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    // A technician may put themselves on call; others' cover is an admin's to set. "Themselves"
    // is the person their login is linked to, else the one whose id is their login name.
    if user.role < Role::Admin && !(user.role == Role::Technician && user.person_id() == o.person) {
        return Err(ApiError::forbidden(not_yours(&user, &o.person)));
    }
    let Some(rotation) = state
        .config
        .paging
        .rotations
        .iter()
        .find(|r| r.id == o.rotation)
    else {
        return Err(ApiError::bad_request(format!(
            "no rotation \"{}\"",
            o.rotation.chars().take(40).collect::<String>()
        )));
    };
    // A technician covers only a rotation they take turns in, and for a bounded time: one
    // cover must not put them in the director's place, or on call for a century.
    if user.role < Role::Admin {
        if !rotation.people.iter().any(|p| p == user.person_id()) {
            return Err(ApiError::forbidden(format!(
                "{} is not in rotation \"{}\": a technician may cover only a rotation they take turns in",
                user.person_id(),
                rotation.id
            )));
        }
        let max_days = state.config.paging.max_cover_days;
        if o.to - o.from > chrono::Duration::days(i64::from(max_days)) {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!(
                    "a technician's cover lasts at most {max_days} days ([paging] max_cover_days); this one lasts {}: split it, or ask an admin",
                    span(o.to - o.from)
                ),
            ));
        }
    }
    let people = state.store.people().await.map_err(ApiError::store)?;
    if !people.iter().any(|p| p.id == o.person) {
        return Err(ApiError::bad_request(format!(
            "no person \"{}\"",
            o.person.chars().take(40).collect::<String>()
        )));
    }
    if o.to <= o.from {
        return Err(ApiError::bad_request(
            "an override must end after it starts",
        ));
    }
    if o.reason.chars().count() > 200 {
        return Err(ApiError::bad_request(
            "keep the reason under 200 characters",
        ));
    }
    let now = Utc::now();
    let change = CoverChange::Add(Override {
        id: 0,
        rotation: o.rotation.clone(),
        person: o.person.clone(),
        from: o.from,
        to: o.to,
        reason: o.reason.clone(),
    });
    let gaps = check_gaps(&state, &user, &change, o.force, now).await?;
    let id = state
        .store
        .add_override(
            &o.rotation,
            &o.person,
            o.from,
            o.to,
            &o.reason,
            &user.name,
            now,
        )
        .await
        .map_err(ApiError::store)?;
    let mut after = json!({"id": id, "rotation": o.rotation, "person": o.person, "from": o.from, "to": o.to, "reason": o.reason});
    if !gaps.is_empty() {
        tracing::warn!(actor = %user.name, override_id = id, gaps = %describe_gaps(&gaps, tz(&state)), "an admin forced a cover that leaves the ladder short");
        after["forced"] = json!(true);
        after["gaps"] = gaps_json(&gaps);
    }
    state
        .store
        .audit(&NewAudit {
            actor: &user.name,
            action: "override.add",
            target: &o.rotation,
            before: None,
            after: Some(after.clone()),
            at: now,
        })
        .await
        .map_err(ApiError::store)?;
    Ok((StatusCode::CREATED, Json(after)))
}

/// An admin removes any cover; a technician, a cover they posted themselves.
async fn remove_override(
    State(state): State<AdminState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    Query(Force { force }): Query<Force>,
) -> Result<StatusCode, ApiError> {
    user.require(Role::Technician)?;
    let now = Utc::now();
    let before = state
        .store
        .overrides(now - chrono::Duration::days(400))
        .await
        .map_err(ApiError::store)?
        .into_iter()
        .find(|o| o.id == id);
    if user.role < Role::Admin {
        match &before {
            None => return Err(ApiError::not_found(format!("no override {id}"))),
            Some(b) if b.created_by != user.name => {
                return Err(ApiError::forbidden(format!(
                "override {id} was posted by {}: a technician may remove only a cover they posted",
                b.created_by
            )))
            }
            Some(_) => {}
        }
    }
    let gaps = check_gaps(&state, &user, &CoverChange::Remove(id), force, now).await?;
    if !gaps.is_empty() {
        tracing::warn!(actor = %user.name, override_id = id, gaps = %describe_gaps(&gaps, tz(&state)), "an admin forced a cover's removal that leaves the ladder short");
    }
    if !state
        .store
        .remove_override(id)
        .await
        .map_err(ApiError::store)?
    {
        return Err(ApiError::not_found(format!("no override {id}")));
    }
    state
        .store
        .audit(&NewAudit {
            actor: &user.name,
            action: "override.remove",
            target: &id.to_string(),
            before: before.and_then(|b| serde_json::to_value(b).ok()),
            after: (!gaps.is_empty()).then(|| json!({"forced": true, "gaps": gaps_json(&gaps)})),
            at: Utc::now(),
        })
        .await
        .map_err(ApiError::store)?;
    Ok(StatusCode::NO_CONTENT)
}

/// The page jobs of a test page: one for each channel `person` gets, as the planner would
/// page them ([`crate::paging::channel::channels_for`]), under dedup keys `<key>:<channel>`.
fn test_pages(
    person: &crate::store::PersonRow,
    paging: &crate::paging::PagingConfig,
    key: &str,
    now: DateTime<Utc>,
) -> Vec<crate::store::NewPage> {
    let paged = crate::paging::facts::PagedPerson::from(person.clone());
    crate::paging::channel::channels_for(&paged, paging)
        .into_iter()
        .map(|to| crate::store::NewPage {
            person: Some(person.id.clone()),
            level: 1,
            reason: "notice".into(),
            dedup_key: Some(format!("{key}:{}", to.channel)),
            ..crate::store::NewPage::simple(&to.channel.to_string(), &to.target, now)
        })
        .collect()
}

/// Sends a test page to a person on each of their channels, as a ticket of its own (severity
/// S3, its caller [`crate::store::TEST_PAGE_CALLER`]): the pages go out and are delivered, and
/// the ticket stays out of the console's queue and the SLA report.
async fn test_page(
    State(state): State<AdminState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    user.require(Role::Admin)?;
    let people = state.store.people().await.map_err(ApiError::store)?;
    let Some(person) = people.into_iter().find(|p| p.id == id) else {
        return Err(ApiError::not_found(format!(
            "no person \"{}\"",
            id.chars().take(40).collect::<String>()
        )));
    };
    let now = Utc::now();
    let schedule = crate::schedule::Schedule::from_config(&state.config.schedule)
        .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "the schedule is invalid"))?;
    let mut answers = std::collections::BTreeMap::new();
    answers.insert(
        "test_page".to_string(),
        format!("sent by {} from the console", user.name),
    );
    let key = format!("test:{}:{}", person.id, now.timestamp_millis());
    let pages = test_pages(&person, &state.config.paging, &key, now);
    if pages.is_empty() {
        return Err(ApiError::bad_request(format!(
            "{} has no channel that can be paged",
            person.name
        )));
    }
    let ticket = crate::store::NewTicket {
        severity: crate::triage::Severity::S3,
        caller: crate::store::TEST_PAGE_CALLER.into(),
        callback_number: None,
        account_id: None,
        language: person.language.clone(),
        voicemail: None,
        answers,
        classification_reasons: vec!["a test page from the console".into()],
        suspected_incident: false,
        time_scale: schedule.sla().time_scale,
        created_at: now,
        due: schedule.due(crate::triage::Severity::S3, now),
        pages,
        actor: user.name.clone(),
    };
    let t = state
        .store
        .create_ticket(&ticket)
        .await
        .map_err(ApiError::store)?;
    state
        .store
        .audit(&NewAudit {
            actor: &user.name,
            action: "page.test",
            target: &person.id,
            before: None,
            after: Some(json!({"ticket": t.number})),
            at: now,
        })
        .await
        .map_err(ApiError::store)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"ticket": t.number, "person": person.id})),
    ))
}

async fn oncall_page(_user: CurrentUser) -> axum::response::Html<String> {
    page("On call", "/oncall", ONCALL_BODY, ONCALL_SCRIPT)
}

const ONCALL_BODY: &str = r##"
<section><h2>Now</h2><table id="rotations"><thead><tr><th>Rotation</th><th>On call now</th><th>Until</th><th>Next</th></tr></thead><tbody></tbody></table></section>
<section><h2>The escalation ladder</h2><div id="ladder-warnings" class="error"></div><table id="ladder"><thead><tr><th>Level</th><th>Who</th><th>S1 (min)</th><th>S2 (min)</th></tr></thead><tbody></tbody></table></section>
<section><h2>Overrides</h2><table id="overrides"><thead><tr><th>Rotation</th><th>Person</th><th>From</th><th>To</th><th>Reason</th><th><span class="sr-only">Remove</span></th></tr></thead><tbody></tbody></table>
<p id="cover-help" class="muted need-technician">A technician may put themselves on call, for a bounded time, in a rotation they take turns in: the console knows you as the person your login is linked to (an admin links it with <code>astreinte users link</code>), else as the person whose id is your login name.</p>
<form id="add-override" class="tools need-technician"><label>Rotation <select id="o-rotation"></select></label> <label>Person <select id="o-person"></select></label>
<label>From <input id="o-from" type="datetime-local" required></label> <label>To <input id="o-to" type="datetime-local" required></label>
<label>Reason <input id="o-reason"></label> <button>Add an override</button>
<label class="need-admin"><input id="o-force" type="checkbox"> admin: confirm even if a ladder level is left empty or the same as a lower one</label></form></section>
<section><h2>People</h2><table id="people"><thead><tr><th>Id</th><th>Name</th><th>Phone</th><th>E-mail</th><th>Language</th><th><span class="sr-only">Test page</span></th></tr></thead><tbody></tbody></table></section>
<p id="message" class="error" role="status"></p>
"##;

const ONCALL_SCRIPT: &str = r##"
function when(s) { return s ? fmtWhen(s) : ""; }
let myLogin = "";
let myPerson = "";
let myLinked = false;
async function load() {
  const v = await api("GET", "/api/oncall");
  document.querySelector("#rotations tbody").innerHTML = v.rotations.map(r =>
    "<tr><td>" + esc(r.rotation) + "</td><td>" + (r.now ? esc(r.now.name) + (r.now.by_override ? " (override)" : "") : "nobody") +
    "</td><td>" + (r.now ? esc(when(r.now.until)) : "") + "</td><td>" + (r.next ? esc(r.next.name) + " from " + esc(when(r.next.from)) : "") + "</td></tr>").join("");
  document.getElementById("ladder-warnings").innerHTML = (L(v.warnings, v.warnings_fr || v.warnings) || []).map(w => "<p>⚠ Warning: " + esc(w) + "</p>").join("");
  document.querySelector("#ladder tbody").innerHTML = v.ladder.map(l =>
    "<tr" + ((l.warnings || []).length ? " class='error'" : "") + "><td>" + l.level + "</td><td>" + esc(l.slots.join(", ")) + " → " + esc(l.people.map(p => p.name).join(", ") || "nobody") +
    ((l.warnings || []).length ? " ⚠ " + esc(L(l.warnings, l.warnings_fr || l.warnings).join("; ")) : "") +
    "</td><td>" + esc(l.s1_offset_minutes) + "</td><td>" + esc(l.s2_offset_minutes) + "</td></tr>").join("");
  document.getElementById("o-rotation").innerHTML = v.rotations_config.map(r => "<option>" + esc(r.id) + "</option>").join("");
  const people = await api("GET", "/api/people");
  // A technician covers only as themselves: the person their login is linked to, else the
  // person whose id is their login name (/api/me says which).
  const mine = people.filter(p => p.id === myPerson);
  const choices = UI_ROLE === "admin" ? people : mine;
  document.getElementById("o-person").innerHTML = choices.map(p => "<option value='" + esc(p.id) + "'" + (p.id === myPerson ? " selected" : "") + ">" + esc(p.name) + "</option>").join("");
  if (UI_ROLE === "technician" && !mine.length) {
    const help = document.getElementById("cover-help");
    help.className = "banner";
    const link = "astreinte users link " + myLogin + " PERSON_ID";
    help.textContent = myLinked
      ? L("Your login \"" + myLogin + "\" is linked to person \"" + myPerson + "\", who is not in the roster, so the console cannot put you on call: ask an admin to link your login to your person (" + link + "), or to add the cover.",
        "Votre nom de connexion « " + myLogin + " » est lié à la personne « " + myPerson + " », absente de la liste de garde : la console ne peut pas vous mettre de garde. Demandez à un admin de lier votre nom de connexion à votre personne (" + link + "), ou d'ajouter le remplacement.")
      : L("Your login \"" + myLogin + "\" is linked to no person of the roster, so the console cannot put you on call: ask an admin to link it to your person (" + link + "), or to add the cover.",
        "Votre nom de connexion « " + myLogin + " » n'est lié à aucune personne de la liste de garde : la console ne peut pas vous mettre de garde. Demandez à un admin de le lier à votre personne (" + link + "), ou d'ajouter le remplacement.");
    document.querySelector("#add-override button").disabled = true;
  }
  document.querySelector("#people tbody").innerHTML = people.map(p =>
    "<tr><td>" + esc(p.id) + "</td><td>" + esc(p.name) + "</td><td>" + esc(p.phone) + "</td><td>" + esc(p.email) + "</td><td>" + esc(p.language) +
    "</td><td><button class='need-admin' data-test='" + esc(p.id) + "'>Send a test page</button></td></tr>").join("");
  const o = await api("GET", "/api/oncall/overrides");
  document.querySelector("#overrides tbody").innerHTML = o.map(x =>
    "<tr><td>" + esc(x.rotation) + "</td><td>" + esc(x.person) + "</td><td>" + esc(when(x.starts_at)) + "</td><td>" + esc(when(x.ends_at)) +
    "</td><td>" + esc(x.reason) + "</td><td>" + (UI_ROLE === "admin" || (UI_ROLE === "technician" && x.created_by === myLogin) ? "<button data-remove='" + x.id + "'>Remove</button>" : "") + "</td></tr>").join("");
}
async function act(f, done) {
  const m = document.getElementById("message");
  m.textContent = ""; m.className = "error";
  try { const r = await f(); if (done) { m.className = "notice"; m.textContent = done(r); } await load(); } catch (e) { m.textContent = e.message; }
}
document.addEventListener("click", e => {
  const t = e.target;
  if (t.dataset.remove) act(() => api("DELETE", "/api/oncall/overrides/" + t.dataset.remove + (document.getElementById("o-force").checked ? "?force=true" : "")));
  if (t.dataset.test) act(() => api("POST", "/api/people/" + encodeURIComponent(t.dataset.test) + "/test-page"), r => "test page sent (ticket " + r.ticket + ")");
});
document.getElementById("add-override").addEventListener("submit", e => { e.preventDefault();
  const iso = id => new Date(document.getElementById(id).value).toISOString();
  act(() => api("POST", "/api/oncall/overrides", {rotation: document.getElementById("o-rotation").value,
    person: document.getElementById("o-person").value, from: iso("o-from"), to: iso("o-to"),
    reason: document.getElementById("o-reason").value, force: document.getElementById("o-force").checked})); });
me().then(u => { if (u) { myLogin = u.name; myPerson = u.person || u.name; myLinked = !!u.person_id; load(); } });
"##;

pub fn routes() -> Router<AdminState> {
    Router::new()
        .route("/oncall", get(oncall_page))
        .route("/api/oncall", get(oncall))
        .route("/api/oncall/overrides", get(overrides).post(add_override))
        .route("/api/oncall/overrides/{id}", delete(remove_override))
        .route("/api/people", get(people))
        .route("/api/people/{id}/test-page", post(test_page))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_test_page_goes_on_every_channel_the_person_gets_webhooks_included() {
        let paging: crate::paging::PagingConfig = toml::from_str(
            r#"
[smtp]
url = "smtp://127.0.0.1:25"
from = "astreinte@example.net"
[[webhooks]]
id = "ops"
url = "https://example.net/hook"
secret = "a-long-enough-test-secret"
[[webhooks]]
id = "pd"
url = "https://events.pagerduty.com/v2/enqueue"
format = "pagerduty"
routing_key = "R0UT1NGK3Y"
"#,
        )
        .unwrap();
        let person = crate::store::PersonRow {
            id: "tech1".into(),
            name: "Martin Roy".into(),
            phone: Some("sip:tech1@10.0.0.5".into()),
            email: Some("tech1@example.net".into()),
            language: "fr".into(),
        };
        let now = Utc::now();
        let pages = test_pages(&person, &paging, "test:tech1:1", now);
        let got: Vec<_> = pages
            .iter()
            .map(|p| {
                (
                    p.channel.as_str(),
                    p.target.as_str(),
                    p.dedup_key.as_deref().unwrap_or(""),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("phone", "sip:tech1@10.0.0.5", "test:tech1:1:phone"),
                ("email", "tech1@example.net", "test:tech1:1:email"),
                ("webhook:ops", "ops", "test:tech1:1:webhook:ops"),
            ]
        );
        for p in &pages {
            assert_eq!(p.person.as_deref(), Some("tech1"));
            assert_eq!((p.level, p.reason.as_str(), p.run_at), (1, "notice", now));
        }
        // The same people and channels as the planner's fan-out.
        let paged = crate::paging::facts::PagedPerson::from(person.clone());
        let fanned: Vec<String> = crate::paging::channel::channels_for(&paged, &paging)
            .iter()
            .map(|t| t.channel.to_string())
            .collect();
        assert_eq!(
            fanned,
            pages.iter().map(|p| p.channel.clone()).collect::<Vec<_>>()
        );
        // Without [paging.smtp] and without a phone, the webhook alone.
        let mut no_smtp = paging.clone();
        no_smtp.smtp = None;
        let mail_only = crate::store::PersonRow {
            phone: None,
            ..person
        };
        let pages = test_pages(&mail_only, &no_smtp, "k", now);
        assert_eq!(
            pages.iter().map(|p| p.channel.as_str()).collect::<Vec<_>>(),
            ["webhook:ops"]
        );
        no_smtp.webhooks.clear();
        assert!(test_pages(&mail_only, &no_smtp, "k", now).is_empty());
    }
}
