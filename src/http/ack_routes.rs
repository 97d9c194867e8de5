//! The pages behind an acknowledgement link.
//!
//! `GET /ack/{ticket}?p&e&s` only shows the ticket and a button: mail scanners and link previews
//! fetch links, and must never acknowledge a ticket in a technician's name. The button POSTs the
//! same signed parameters to `/ack/{ticket}`, which acknowledges (idempotently: a second POST
//! says who already did).

use axum::extract::rejection::{FormRejection, PathRejection, QueryRejection};
use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Deserialize;
use tracing::{error, info, info_span, warn, Instrument};

use super::ack::{check_ticket, LinkError};
use super::page::{escape, Page};
use super::server::HttpState;
use crate::call::callback::{CallbackNumber, NoCallbackNumber};
use crate::store::{Action, Event, Status, StoreError, Ticket};

/// The signed parameters, from the query (GET) or the form (POST). Optional so that a missing
/// one is our 400 page rather than the framework's.
#[derive(Debug, Default, Deserialize)]
pub struct AckParams {
    p: Option<String>,
    e: Option<String>,
    s: Option<String>,
}

/// `GET /ack/{ticket}`: the ticket and a confirm button, or who already took it.
pub async fn show(
    State(state): State<HttpState>,
    ticket: Result<Path<String>, PathRejection>,
    params: Result<Query<AckParams>, QueryRejection>,
) -> Page {
    let ticket = ticket.map(|Path(t)| t).unwrap_or_default();
    let span = info_span!("ack_link", ticket = %short(&ticket), method = "GET");
    async move {
        let params = params.map(|Query(p)| p).map_err(|e| e.status());
        let link = match checked(&state, &ticket, params, Utc::now()) {
            Ok(link) => link,
            Err(page) => return page,
        };
        let t = match state.store.ticket(&ticket).await {
            Ok(t) => t,
            Err(e) => return store_failure(&state, e),
        };
        if matches!(t.status, Status::Open | Status::Paged) {
            confirm_page(&state, &t, &link)
        } else {
            state_page(&state, &ticket).await
        }
    }
    .instrument(span)
    .await
}

/// `POST /ack/{ticket}` (form fields p, e, s): acknowledges in the person's name.
pub async fn acknowledge(
    State(state): State<HttpState>,
    ticket: Result<Path<String>, PathRejection>,
    params: Result<Form<AckParams>, FormRejection>,
) -> Page {
    let ticket = ticket.map(|Path(t)| t).unwrap_or_default();
    let span = info_span!("ack_link", ticket = %short(&ticket), method = "POST");
    async move {
        let params = params.map(|Form(p)| p).map_err(|e| e.status());
        let now = Utc::now();
        let person = match checked(&state, &ticket, params, now) {
            Ok(link) => link.person,
            Err(page) => return page,
        };
        let by = format!("{person} (link)");
        let result = state
            .store
            .transition(
                &ticket,
                Action::Acknowledge,
                &by,
                Some("acknowledged by the signed link"),
                now,
            )
            .await;
        match result {
            Ok(t) => {
                info!(person = %person, "ticket acknowledged by link");
                if let Some(hook) = &state.on_ack {
                    hook(&ticket);
                }
                acknowledged_page(&state, &t, &person, now)
            }
            // Already taken (or changed under us): say by whom; a repeat POST is harmless.
            Err(StoreError::BadTransition { .. } | StoreError::Conflict(_)) => {
                state_page(&state, &ticket).await
            }
            Err(e) => store_failure(&state, e),
        }
    }
    .instrument(span)
    .await
}

/// A link's parameters once checked.
struct SignedLink {
    person: String,
    expires: String,
    sig: String,
}

/// Checks the request's parts and signature; the link on success, else the refusal page.
fn checked(
    state: &HttpState,
    ticket: &str,
    params: Result<AckParams, StatusCode>,
    now: DateTime<Utc>,
) -> Result<SignedLink, Page> {
    let params = match params {
        Ok(p) => p,
        Err(StatusCode::PAYLOAD_TOO_LARGE) => return Err(too_large()),
        Err(_) => return Err(malformed("the parameters cannot be read")),
    };
    check_ticket(ticket).map_err(refusal)?;
    let (Some(person), Some(expires), Some(sig)) = (params.p, params.e, params.s) else {
        return Err(malformed("a part of the link is missing"));
    };
    state
        .links
        .verify(ticket, &person, &expires, &sig, now)
        .map_err(refusal)?;
    Ok(SignedLink {
        person,
        expires,
        sig,
    })
}

fn refusal(e: LinkError) -> Page {
    match e {
        LinkError::Malformed(why) => malformed(why),
        LinkError::BadSignature => {
            warn!("acknowledgement link with a bad signature");
            Page::message(
                StatusCode::FORBIDDEN,
                "Lien non valide / Invalid link",
                "Ce lien n'a pas été signé par astreinte, ou il a été modifié. Rien n'a été \
                 changé. Utilisez le lien reçu tel quel, ou accusez réception par téléphone.",
                "This link was not signed by astreinte, or it was altered. Nothing was changed. \
                 Use the link exactly as you received it, or acknowledge by phone.",
            )
        }
        LinkError::Expired => {
            info!("expired acknowledgement link");
            Page::message(
                StatusCode::GONE,
                "Lien expiré / Link expired",
                "Ce lien a expiré. Si le billet attend encore, accusez réception par téléphone \
                 (touche 1) ou avec « astreinte tickets ack ».",
                "This link has expired. If the ticket is still waiting, acknowledge by phone \
                 (press 1) or with \"astreinte tickets ack\".",
            )
        }
    }
}

fn malformed(why: &str) -> Page {
    info!(why, "malformed acknowledgement link");
    Page::message(
        StatusCode::BAD_REQUEST,
        "Lien abîmé / Damaged link",
        "Ce lien d'accusé de réception est incomplet ou abîmé. Ouvrez le lien complet reçu \
         dans la page, ou accusez réception par téléphone.",
        &format!(
            "This acknowledgement link is incomplete or damaged ({why}). Open the whole link \
             from the page you received, or acknowledge by phone."
        ),
    )
}

fn too_large() -> Page {
    Page::message(
        StatusCode::PAYLOAD_TOO_LARGE,
        "Requête trop grande / Request too large",
        "Cette requête est bien plus grande qu'un accusé de réception.",
        "This request is far larger than an acknowledgement.",
    )
}

fn store_failure(state: &HttpState, e: StoreError) -> Page {
    if let StoreError::NoSuchTicket(_) = e {
        return Page::message(
            StatusCode::NOT_FOUND,
            "Billet introuvable / No such ticket",
            "Aucun billet ne porte ce numéro.",
            "No ticket has this number.",
        );
    }
    state.count_store_error();
    error!(error = %e, "acknowledgement link: the store failed");
    Page::message(
        StatusCode::SERVICE_UNAVAILABLE,
        "Réessayez / Try again",
        "La base de données ne répond pas. Réessayez dans une minute, ou accusez réception \
         par téléphone.",
        "The database is not answering. Try again in a minute, or acknowledge by phone.",
    )
}

/// The ticket's facts and one button that POSTs the same signed parameters.
fn confirm_page(state: &HttpState, t: &Ticket, link: &SignedLink) -> Page {
    let hidden = |name: &str, value: &str| {
        format!(
            "<input type=\"hidden\" name=\"{name}\" value=\"{}\">",
            escape(value)
        )
    };
    let body = format!(
        "<p lang=\"fr\">Billet n° {n} pour {who}. Ouvrir ce lien ne prend pas le billet : \
         appuyez sur le bouton.</p>\n\
         <p lang=\"en\">Ticket {n} for {who}. Opening this link does not take the ticket: \
         press the button.</p>\n{facts}\n\
         <form method=\"post\" action=\"{action}\">{p}{e}{s}\
         <button type=\"submit\">Je prends ce billet / I take this ticket</button></form>",
        n = escape(&t.number),
        who = escape(&link.person),
        facts = facts(t, state.zone, Utc::now()),
        // Relative to /ack/{ticket}: still right behind a proxy that adds a path prefix.
        action = escape(&t.number),
        p = hidden("p", &link.person),
        e = hidden("e", &link.expires),
        s = hidden("s", &link.sig),
    );
    Page::new(StatusCode::OK, "Accuser réception / Acknowledge", body)
}

fn acknowledged_page(state: &HttpState, t: &Ticket, person: &str, now: DateTime<Utc>) -> Page {
    let callback = callback_of(t);
    let number = display_number(&callback);
    let call = if callback.is_empty() {
        let none = NoCallbackNumber::of(&t.caller, &t.answers);
        format!(
            "<p lang=\"fr\">Aucun numéro de rappel valide ({}) : écoutez le message vocal.</p>\n\
             <p lang=\"en\">No valid callback number ({}): listen to the voicemail.</p>",
            escape(&none.fr()),
            escape(&none.en()),
        )
    } else {
        format!(
            "<p lang=\"fr\">C'est noté, {who} : rappelez le client au \
             <a href=\"tel:{tel}\">{number}</a> avant {due}.</p>\n\
             <p lang=\"en\">Acknowledged, {who}: call the customer back at \
             <a href=\"tel:{tel}\">{number}</a> by {due}.</p>",
            who = escape(person),
            tel = escape(&tel_uri(&callback)),
            number = escape(&number),
            due = escape(&local_time(t.callback_due_at, state.zone)),
        )
    };
    Page::new(
        StatusCode::OK,
        "Pris en charge / Acknowledged",
        format!("{call}\n{}", facts(t, state.zone, now)),
    )
}

/// The page for a ticket that is no longer waiting: its state, who and when.
async fn state_page(state: &HttpState, number: &str) -> Page {
    let t = match state.store.ticket(number).await {
        Ok(t) => t,
        Err(e) => return store_failure(state, e),
    };
    let events = match state.store.events(number).await {
        Ok(ev) => ev,
        Err(e) => return store_failure(state, e),
    };
    let (title, fr, en) = match t.status {
        Status::Acknowledged => (
            "Déjà pris en charge / Already acknowledged",
            "Ce billet a déjà été pris en charge.",
            "This ticket was already acknowledged.",
        ),
        Status::CalledBack => (
            "Client déjà rappelé / Already called back",
            "Le client a déjà été rappelé.",
            "The customer was already called back.",
        ),
        Status::Resolved => (
            "Billet résolu / Ticket resolved",
            "Ce billet est déjà résolu.",
            "This ticket is already resolved.",
        ),
        Status::Cancelled => (
            "Billet annulé / Ticket cancelled",
            "Ce billet a été annulé : il n'y a rien à faire.",
            "This ticket was cancelled: there is nothing to do.",
        ),
        // Still waiting (the transition raced with another): the link works again.
        Status::Open | Status::Paged => (
            "Billet en attente / Ticket waiting",
            "Ce billet attend toujours : rouvrez le lien pour le prendre.",
            "This ticket is still waiting: open the link again to take it.",
        ),
    };
    let history = history(&events, state.zone);
    Page::new(
        StatusCode::OK,
        title,
        format!(
            "<p lang=\"fr\">{}</p>\n<p lang=\"en\">{}</p>\n{history}\n{}",
            escape(fr),
            escape(en),
            facts(&t, state.zone, Utc::now())
        ),
    )
}

/// Who took the ticket along, and when: its acknowledgement, callback and closing events.
fn history(events: &[Event], zone: Tz) -> String {
    let mut items = String::new();
    for ev in events {
        let label = match ev.kind.as_str() {
            "acknowledged" => "Pris en charge / Acknowledged",
            "called_back" => "Rappelé / Called back",
            "callback_connected" => "Client joint / Customer reached",
            "resolved" => "Résolu / Resolved",
            "cancelled" => "Annulé / Cancelled",
            _ => continue,
        };
        items.push_str(&format!(
            "<li>{label} : {actor}, {at}</li>",
            actor = escape(&ev.actor),
            at = escape(&local_time(ev.at, zone)),
        ));
    }
    if items.is_empty() {
        String::new()
    } else {
        format!("<ul>{items}</ul>")
    }
}

/// The number to call: the ticket's, if it is still one we may dial (a ticket written before
/// refused numbers were kept out offers none); empty when there is none.
fn callback_of(t: &Ticket) -> String {
    CallbackNumber::from_record(&t.callback_number)
        .map(|c| c.e164())
        .unwrap_or_default()
}

/// Severity, company, callback number and due time, as a definition list.
fn facts(t: &Ticket, zone: Tz, now: DateTime<Utc>) -> String {
    let company = t
        .company
        .clone()
        .unwrap_or_else(|| "inconnu / unknown".to_string());
    let callback = callback_of(t);
    let (label, number) = if callback.is_empty() {
        let none = NoCallbackNumber::of(&t.caller, &t.answers);
        (
            "Numéro de rappel / Callback number",
            format!("aucun ({}) / none ({})", none.fr(), none.en()),
        )
    } else {
        ("Rappeler au / Call back at", display_number(&callback))
    };
    let minutes = (t.callback_due_at - now).num_minutes();
    let left = if minutes >= 0 {
        format!("dans {minutes} min / in {minutes} min")
    } else {
        let late = -minutes;
        format!("en retard de {late} min / {late} min late")
    };
    format!(
        "<dl><dt>Billet / Ticket</dt><dd>{n}</dd>\
         <dt>Gravité / Severity</dt><dd>{sev}</dd>\
         <dt>Client / Company</dt><dd>{company}</dd>\
         <dt>{label}</dt><dd>{number}</dd>\
         <dt>Rappel dû / Callback due</dt><dd>{due} ({left})</dd>\
         <dt>Statut / Status</dt><dd>{status}</dd></dl>",
        n = escape(&t.number),
        sev = escape(t.severity.as_str()),
        company = escape(&company),
        number = escape(&number),
        due = escape(&local_time(t.callback_due_at, zone)),
        left = escape(&left),
        status = escape(t.status.as_str()),
    )
}

/// "2025-03-12 23:30 EDT" in the schedule's zone.
fn local_time(at: DateTime<Utc>, zone: Tz) -> String {
    at.with_timezone(&zone)
        .format("%Y-%m-%d %H:%M %Z")
        .to_string()
}

/// "15145550100" → "+1 514-555-0100"; other international numbers get a '+'; short codes stay.
fn display_number(number: &str) -> String {
    // Stored as digits, offered as E.164 ("+1514…"): written the same either way.
    let digits = number.strip_prefix('+').unwrap_or(number);
    let all_digits = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
    match (all_digits, digits.strip_prefix('1')) {
        (true, Some(rest)) if rest.len() == 10 => {
            match (rest.get(..3), rest.get(3..6), rest.get(6..)) {
                (Some(area), Some(exchange), Some(line)) => format!("+1 {area}-{exchange}-{line}"),
                _ => number.to_string(),
            }
        }
        (true, _) if digits.len() > 10 => format!("+{digits}"),
        _ => number.to_string(),
    }
}

/// The `tel:` target: "+" and the digits for international numbers, else the digits.
fn tel_uri(digits: &str) -> String {
    let clean: String = digits.chars().filter(char::is_ascii_digit).collect();
    if clean.len() > 10 {
        format!("+{clean}")
    } else {
        clean
    }
}

/// At most 32 characters of an unchecked ticket number, for the log span.
fn short(ticket: &str) -> &str {
    match ticket.char_indices().nth(32) {
        Some((i, _)) => ticket.get(..i).unwrap_or(""),
        None => ticket,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callback_numbers_are_written_for_people() {
        assert_eq!(display_number("15145550100"), "+1 514-555-0100");
        assert_eq!(display_number("33142685300"), "+33142685300");
        assert_eq!(display_number("611"), "611");
        assert_eq!(display_number(""), "");
        assert_eq!(tel_uri("15145550100"), "+15145550100");
        assert_eq!(tel_uri("611"), "611");
    }

    #[test]
    fn history_lists_who_took_the_ticket_escaped() {
        let at = DateTime::parse_from_rfc3339("2025-03-13T03:05:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let ev = |kind: &str, actor: &str| Event {
            at,
            kind: kind.into(),
            actor: actor.into(),
            from_status: None,
            to_status: None,
            from_severity: None,
            to_severity: None,
            reason: None,
        };
        let html = history(
            &[
                ev("created", "ivr"),
                ev("acknowledged", "<b>tech1</b> (link)"),
            ],
            chrono_tz::America::Toronto,
        );
        assert!(
            html.contains("&lt;b&gt;tech1&lt;/b&gt; (link), 2025-03-12 23:05 EDT"),
            "{html}"
        );
        assert!(!html.contains("ivr"));
        assert_eq!(history(&[ev("created", "ivr")], Tz::UTC), "");
    }

    #[test]
    fn short_bounds_what_is_logged() {
        assert_eq!(short("123"), "123");
        assert_eq!(short(&"é".repeat(40)).chars().count(), 32);
    }
}
