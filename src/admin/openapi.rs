//! The API's description, served at `/api/openapi.json` (OpenAPI 3.0). Written here beside the
//! routes rather than generated: the API is small, and the schemathesis test in
//! `tests/console_openapi.rs` drives every operation from this document against the running
//! console, so a route and its description cannot drift apart unnoticed.

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::AdminState;

fn error_responses(extra: &[(&str, &str)]) -> Value {
    let mut r = json!({
        "401": {"description": "not logged in", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
        "403": {"description": "the role does not allow it, or the CSRF token is missing", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
    });
    for (code, what) in extra {
        r[*code] = json!({"description": what, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
    }
    r
}

fn op(
    summary: &str,
    params: Value,
    body: Option<Value>,
    ok: (&str, Value),
    errors: &[(&str, &str)],
) -> Value {
    let mut responses = error_responses(errors);
    responses[ok.0] = ok.1;
    let mut o = json!({"summary": summary, "responses": responses});
    if params.as_array().is_some_and(|a| !a.is_empty()) {
        o["parameters"] = params;
    }
    if let Some(b) = body {
        o["requestBody"] = b;
    }
    o
}

fn json_ok(description: &str, schema: Value) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": schema}}})
}

fn json_body(schema: Value) -> Value {
    json!({"required": true, "content": {"application/json": {"schema": schema}}})
}

fn path_param(name: &str, schema: Value) -> Value {
    json!({"name": name, "in": "path", "required": true, "schema": schema})
}

fn query_param(name: &str, schema: Value) -> Value {
    json!({"name": name, "in": "query", "required": false, "schema": schema})
}

fn wav_ok() -> Value {
    json!({"description": "8 kHz mono 16-bit WAV", "content": {"audio/wav": {"schema": {"type": "string", "format": "binary"}}}})
}

/// The document.
pub fn document() -> Value {
    let ticket_no = json!({"type": "string", "pattern": "^[0-9]{8}$"});
    let number = path_param("number", ticket_no);
    let lang = path_param("lang", json!({"type": "string", "enum": ["fr", "en"]}));
    let prompt_name = path_param(
        "name",
        json!({"type": "string", "pattern": "^[a-z0-9-]{1,64}$"}),
    );
    let reason_body = json_body(
        json!({"type": "object", "properties": {"reason": {"type": "string", "maxLength": 500}}}),
    );
    let ticket = json!({"$ref": "#/components/schemas/Ticket"});
    let no_content = json!({"description": "done"});
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "astreinte console API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Tickets and their SLA clocks, prompts, the on-call roster, hours and incident announcements. Log in with POST /api/login (a session cookie; changes then need the X-CSRF-Token header from /api/me) or send an API token (`astreinte users token NAME`) as Authorization: Bearer."
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}, {"session": []}],
        "paths": {
            "/api/login": {"post": {
                "summary": "Log in (sets the session cookie)",
                "security": [],
                "requestBody": json_body(json!({"type": "object", "required": ["name", "password"], "properties": {"name": {"type": "string"}, "password": {"type": "string"}}})),
                "responses": {
                    "200": json_ok("logged in", json!({"$ref": "#/components/schemas/Me"})),
                    "400": {"description": "malformed", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
                    "401": {"description": "wrong name or password", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
                    "422": {"description": "malformed", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
                    "429": {"description": "too many attempts", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
                }
            }},
            "/api/logout": {"post": op("Log out", json!([]), None, ("204", no_content.clone()), &[])},
            "/api/me": {"get": op("The logged-in user and the CSRF token", json!([]), None, ("200", json_ok("the user", json!({"$ref": "#/components/schemas/Me"}))), &[])},
            "/api/audit": {"get": op("The audit log, newest first (admin)",
                json!([query_param("limit", json!({"type": "integer", "minimum": 1, "maximum": 1000})), query_param("before", json!({"type": "integer"}))]),
                None, ("200", json_ok("audit events", json!({"type": "array", "items": {"type": "object"}}))), &[("400", "bad query")])},
            "/api/tickets": {"get": op("Tickets, open first (most urgent callback first)",
                json!([query_param("open", json!({"type": "boolean"})), query_param("limit", json!({"type": "integer", "minimum": 1, "maximum": 1000}))]),
                None, ("200", json_ok("tickets", json!({"type": "array", "items": ticket.clone()}))), &[("400", "bad query")])},
            "/api/tickets/{number}": {"get": op("One ticket with its events and page jobs",
                json!([number.clone()]), None, ("200", json_ok("the ticket", ticket.clone())), &[("400", "malformed number"), ("404", "no such ticket")])},
            "/api/tickets/{number}/voicemail": {"get": op("The ticket's voicemail",
                json!([number.clone()]), None, ("200", wav_ok()), &[("400", "malformed number"), ("404", "no such ticket or no voicemail")])},
            "/api/tickets/{number}/acknowledge": {"post": op("A technician takes the ticket in charge",
                json!([number.clone()]), Some(reason_body.clone()), ("200", json_ok("the ticket", ticket.clone())), &[("400", "malformed"), ("404", "no such ticket"), ("409", "not allowed from its status"), ("422", "malformed body")])},
            "/api/tickets/{number}/callback": {"post": op("The customer was called back",
                json!([number.clone()]), Some(reason_body.clone()), ("200", json_ok("the ticket", ticket.clone())), &[("400", "malformed"), ("404", "no such ticket"), ("409", "not allowed from its status"), ("422", "malformed body")])},
            "/api/tickets/{number}/resolve": {"post": op("The problem is solved",
                json!([number.clone()]), Some(reason_body), ("200", json_ok("the ticket", ticket.clone())), &[("400", "malformed"), ("404", "no such ticket"), ("409", "not allowed from its status"), ("422", "malformed body")])},
            "/api/tickets/{number}/reclassify": {"post": op("Change the severity, with a reason",
                json!([number]), Some(json_body(json!({"type": "object", "required": ["severity", "reason"], "properties": {"severity": {"type": "string", "enum": ["S1", "S2", "S3"]}, "reason": {"type": "string", "minLength": 1, "maxLength": 500}}}))),
                ("200", json_ok("the ticket", ticket)), &[("400", "malformed"), ("404", "no such ticket"), ("409", "not allowed from its status"), ("422", "malformed body")])},
            "/api/sla/report": {"get": op("Callbacks within target per week and severity",
                json!([query_param("from", json!({"type": "string", "format": "date"})), query_param("to", json!({"type": "string", "format": "date"}))]),
                None, ("200", json_ok("the report", json!({"type": "object"}))), &[("400", "bad dates")])},
            "/api/drill/report": {
                "get": op("The last night drill's report (astreinte drill)", json!([]), None, ("200", json_ok("the report", json!({"type": "object"}))), &[("404", "no drill report yet")]),
                "post": op("Keep a night drill's report, as `astreinte drill --json` writes it (admin)", json!([]),
                    Some(json_body(json!({"type": "object", "required": ["name", "tickets", "met", "missed", "promise_held"]}))),
                    ("201", json_ok("what was kept", json!({"type": "object"}))), &[("400", "not a drill report"), ("413", "too large")])
            },
            "/api/drill/report.svg": {"get": op("The last drill report's picture, drawn by the console", json!([]), None,
                ("200", json!({"description": "SVG", "content": {"image/svg+xml": {"schema": {"type": "string"}}}})), &[("404", "no drill report yet")])},
            "/api/prompts": {"get": op("Every prompt of the manifest in both languages",
                json!([]), None, ("200", json_ok("prompts", json!({"type": "array", "items": {"$ref": "#/components/schemas/Prompt"}}))), &[])},
            "/api/prompts/{lang}/{name}": {"put": {
                "summary": "Upload a new version (WAV, MP3 or OGG; converted to 8 kHz mono 16-bit); it plays on the next calls",
                "parameters": [lang.clone(), prompt_name.clone()],
                "requestBody": {"required": true, "content": {"audio/wav": {"schema": {"type": "string", "format": "binary"}}, "audio/mpeg": {"schema": {"type": "string", "format": "binary"}}, "audio/ogg": {"schema": {"type": "string", "format": "binary"}}, "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
                "responses": {
                    "201": json_ok("the new version", json!({"$ref": "#/components/schemas/Prompt"})),
                    "400": {"description": "not audio, or a bad name"}, "401": {"description": "not logged in"}, "403": {"description": "not an admin"},
                    "404": {"description": "no such prompt"}, "413": {"description": "too big"}, "415": {"description": "not an audio type"}, "422": {"description": "refused: silent, clipped, too long or too short"}
                }
            }},
            "/api/prompts/{lang}/{name}/audio": {"get": op("A prompt's audio (the one playing, or ?version=N; 0 is the bundled default)",
                json!([lang.clone(), prompt_name.clone(), query_param("version", json!({"type": "integer", "minimum": 0}))]), None, ("200", wav_ok()), &[("400", "bad query"), ("404", "no such prompt or version")])},
            "/api/prompts/{lang}/{name}/versions": {"get": op("A prompt's versions",
                json!([lang.clone(), prompt_name.clone()]), None, ("200", json_ok("versions", json!({"type": "array", "items": {"type": "object"}}))), &[("400", "bad name"), ("404", "no such prompt")])},
            "/api/prompts/{lang}/{name}/rollback": {"post": op("Make an earlier version (0: the bundled default) play again",
                json!([lang, prompt_name]), Some(json_body(json!({"type": "object", "required": ["version"], "properties": {"version": {"type": "integer", "minimum": 0}}}))),
                ("200", json_ok("the prompt", json!({"$ref": "#/components/schemas/Prompt"}))), &[("400", "bad name"), ("404", "no such prompt or version"), ("422", "malformed body")])},
            "/api/oncall": {"get": op("Who is on call now and next, and whom each ladder level pages", json!([]), None, ("200", json_ok("the roster", json!({"type": "object"}))), &[])},
            "/api/oncall/overrides": {
                "get": op("Overrides in force or to come", json!([]), None, ("200", json_ok("overrides", json!({"type": "array", "items": {"type": "object"}}))), &[]),
                "post": op("Someone covers a rotation from/to (admin, or a technician for themselves in a rotation they belong to, for at most [paging] max_cover_days); refused with 409 if a ladder level would be left empty or the same person as a lower level, unless an admin sends force", json!([]),
                    Some(json_body(json!({"type": "object", "required": ["rotation", "person", "from", "to"], "properties": {"rotation": {"type": "string"}, "person": {"type": "string"}, "from": {"type": "string", "format": "date-time"}, "to": {"type": "string", "format": "date-time"}, "reason": {"type": "string", "maxLength": 200}, "force": {"type": "boolean", "description": "admin only: confirm a change that leaves the ladder short (audited)"}}}))),
                    ("201", json_ok("the override", json!({"type": "object"}))), &[("400", "unknown rotation or person, or bad times"), ("403", "someone else's cover, a rotation the technician is not in, or force from a non-admin"), ("409", "a ladder level would be left empty or the same person as a lower level"), ("422", "malformed body, or a technician's cover longer than max_cover_days")])
            },
            "/api/oncall/overrides/{id}": {"delete": op("Remove an override (admin, or the technician who posted it); 409 if a ladder level would be left empty or the same person as a lower level, unless an admin sends force=true", json!([path_param("id", json!({"type": "integer"})), query_param("force", json!({"type": "boolean"}))]), None, ("204", no_content.clone()), &[("400", "bad id"), ("403", "a cover someone else posted, or force from a non-admin"), ("404", "no such override"), ("409", "a ladder level would be left empty or the same person as a lower level")])},
            "/api/people": {"get": op("People who can be paged", json!([]), None, ("200", json_ok("people", json!({"type": "array", "items": {"type": "object"}}))), &[])},
            "/api/people/{id}/test-page": {"post": op("Send a test page to a person (admin)", json!([path_param("id", json!({"type": "string", "maxLength": 64}))]), None,
                ("202", json_ok("the test ticket", json!({"type": "object"}))), &[("400", "no channel"), ("404", "no such person")])},
            "/api/hours": {"get": op("Opening hours, the year's holidays, closures, maintenance",
                json!([query_param("year", json!({"type": "integer", "minimum": 2000, "maximum": 2100}))]), None, ("200", json_ok("hours", json!({"type": "object"}))), &[("400", "bad year")])},
            "/api/hours/at": {"get": op("Are we open at a time (RFC 3339, or local YYYY-MM-DDTHH:MM)",
                json!([query_param("time", json!({"type": "string"}))]), None, ("200", json_ok("openness", json!({"type": "object"}))), &[("400", "not a time")])},
            "/api/hours/holidays": {"post": op("Add a closed day (admin)", json!([]),
                Some(json_body(json!({"type": "object", "required": ["date", "name"], "properties": {"date": {"type": "string", "format": "date"}, "name": {"type": "string", "minLength": 1, "maxLength": 100}}}))),
                ("201", json_ok("the change", json!({"type": "object"}))), &[("400", "bad date or name"), ("422", "malformed body")])},
            "/api/hours/holidays/{date}/work": {"post": op("Work a computed holiday (admin)", json!([path_param("date", json!({"type": "string", "format": "date"}))]), None,
                ("201", json_ok("the change", json!({"type": "object"}))), &[("400", "bad date"), ("404", "not a holiday")])},
            "/api/hours/closures": {"post": op("Add a closure (admin)", json!([]),
                Some(json_body(json!({"type": "object", "required": ["from", "to", "name"], "properties": {"from": {"type": "string"}, "to": {"type": "string"}, "name": {"type": "string", "minLength": 1, "maxLength": 100}}}))),
                ("201", json_ok("the change", json!({"type": "object"}))), &[("400", "bad times or name"), ("422", "malformed body")])},
            "/api/hours/changes/{id}": {"delete": op("Undo an admin change to the hours (admin)", json!([path_param("id", json!({"type": "integer"}))]), None, ("204", no_content.clone()), &[("400", "bad id"), ("404", "no such change")])},
            "/api/announcement": {
                "get": op("The incident announcement callers hear before the menu, or null", json!([]), None, ("200", json_ok("the announcement", json!({"type": "object", "nullable": true}))), &[]),
                "put": op("Announce an incident (spoken with the prompts' voice) (admin)", json!([]),
                    Some(json_body(json!({"type": "object", "required": ["phase", "fr", "en"], "properties": {"phase": {"type": "string", "enum": ["investigating", "identified", "monitoring"]}, "fr": {"type": "string", "minLength": 1, "maxLength": 600}, "en": {"type": "string", "minLength": 1, "maxLength": 600}}}))),
                    ("200", json_ok("the announcement", json!({"type": "object"}))), &[("400", "bad phase or text"), ("422", "malformed body"), ("503", "speech synthesis unavailable")]),
                "delete": op("End the announcement (admin)", json!([]), None, ("204", no_content), &[("404", "none to end")])
            },
            "/api/announcement/preview/{lang}": {"get": op("What a caller hears before the menu now", json!([path_param("lang", json!({"type": "string", "enum": ["fr", "en"]}))]), None, ("200", wav_ok()), &[("404", "no announcement")])}
        },
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": "astreinte_session"}
            },
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}, "error_fr": {"type": "string", "description": "The same message in French, when the console knows it (the console shows it to French readers)"}}},
                "Me": {"type": "object", "required": ["name", "role", "person"], "properties": {"name": {"type": "string"}, "role": {"type": "string", "enum": ["admin", "technician", "viewer"]}, "csrf_token": {"type": "string", "nullable": true},
                    "person_id": {"type": "string", "nullable": true, "description": "The roster's person the login is linked to (astreinte users link), null when it is not"},
                    "person": {"type": "string", "description": "The person id the console takes the user for (covering their own shift, their tickets): the link, else the login name"},
                    "lang": {"type": "string", "nullable": true, "description": "The console language the user chose (fr or en), null before any choice"}}},
                "Prompt": {"type": "object", "required": ["lang", "name", "version", "is_default"], "properties": {"lang": {"type": "string"}, "name": {"type": "string"}, "text": {"type": "string"}, "version": {"type": "integer"}, "is_default": {"type": "boolean"}}},
                "Ticket": {"type": "object", "required": ["number", "severity", "status", "created_at", "callback_due_at"], "properties": {
                    "number": {"type": "string"}, "severity": {"type": "string", "enum": ["S1", "S2", "S3"]},
                    "status": {"type": "string", "enum": ["open", "paged", "acknowledged", "called_back", "resolved", "cancelled"]},
                    "caller": {"type": "string"}, "callback_number": {"type": "string"}, "company": {"type": "string", "nullable": true},
                    "created_at": {"type": "string", "format": "date-time"}, "callback_due_at": {"type": "string", "format": "date-time"},
                    "seconds_to_target": {"type": "integer"},
                    "on_ticket": {"type": "object", "description": "Who is on the ticket: the people paged, the highest level reached, who acknowledged it, the failing page channels",
                        "properties": {"paged_to": {"type": "array", "items": {"type": "string"}}, "paged_ids": {"type": "array", "items": {"type": "string"}},
                            "level": {"type": "integer"}, "acknowledged_by": {"type": "string", "nullable": true},
                            "failing": {"type": "array", "items": {"type": "string"}}}},
                    "mine": {"type": "boolean", "description": "In the list: the reader's person was paged for it, or the reader acknowledged it"},
                    "classification_reasons_fr": {"type": "array", "items": {"type": "string"}, "description": "One ticket: why this severity, in French"},
                    "test_page": {"type": "boolean", "description": "A test page's ticket (one ticket's page only): never in the list nor the SLA report"}
                }}
            }
        }
    })
}

async fn openapi() -> Json<Value> {
    Json(document())
}

pub fn routes() -> Router<AdminState> {
    Router::new().route("/api/openapi.json", get(openapi))
}
