//! The console's web pages: server-rendered shells whose scripts read and change everything
//! through the same `/api` the scripts use. One layout, one stylesheet, one small script
//! (`console.js`: `api(method, path, body)` adds the CSRF token and sends a logged-out user to
//! the login page).

use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::Router;

use super::AdminState;

const STYLE: &str = include_str!("assets/console.css");
const SCRIPT: &str = include_str!("assets/console.js");

/// The console's navigation: (path, label).
pub const NAV: &[(&str, &str)] = &[
    ("/tickets", "Tickets"),
    ("/sla", "SLA"),
    ("/drill", "Drill"),
    ("/oncall", "On call"),
    ("/hours", "Hours"),
    ("/prompts", "Prompts"),
    ("/announcements", "Announcements"),
    ("/audit", "Audit"),
];

/// Escapes text for HTML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A console page: the layout around `body` (trusted HTML written by the console itself), then
/// `script` (the page's own code, which may use `api()` from console.js).
pub fn page(title: &str, active: &str, body: &str, script: &str) -> Html<String> {
    let mut nav = String::new();
    for (path, label) in NAV {
        let class = if *path == active {
            " class=\"active\""
        } else {
            ""
        };
        nav.push_str(&format!("<a href=\"{path}\"{class}>{label}</a>"));
    }
    Html(format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · astreinte</title><link rel=\"stylesheet\" href=\"/assets/console.css\">\
         <script src=\"/assets/console.js\"></script></head>\
         <body><header><strong>astreinte</strong><nav>{nav}</nav>\
         <span id=\"me\"></span> <button id=\"logout\" type=\"button\">Log out</button></header>\
         <main><h1>{title}</h1>{body}</main><script>{script}</script></body></html>",
        title = escape(title),
    ))
}

async fn style() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE)
}

async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
}

pub fn routes() -> Router<AdminState> {
    Router::new()
        .route("/assets/console.css", get(style))
        .route("/assets/console.js", get(script))
}
