//! The console's web pages: server-rendered shells whose scripts read and change everything
//! through the same `/api` the scripts use. One layout, one stylesheet, one small script
//! (`console.js`: `api(method, path, body)` adds the CSRF token and sends a logged-out user to
//! the login page).

use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::Router;

use super::auth::Role;
use super::AdminState;

const STYLE: &str = include_str!("assets/console.css");
const SCRIPT: &str = include_str!("assets/console.js");

/// The console's navigation: (path, label, the least role that can use the page). Links a
/// role cannot use are not shown to it (see `.need-admin` in console.css).
pub const NAV: &[(&str, &str, Role)] = &[
    ("/tickets", "Tickets", Role::Viewer),
    ("/sla", "SLA", Role::Viewer),
    ("/drill", "Drill", Role::Admin),
    ("/oncall", "On call", Role::Viewer),
    ("/hours", "Hours", Role::Viewer),
    ("/prompts", "Prompts", Role::Viewer),
    ("/announcements", "Announcements", Role::Viewer),
    ("/audit", "Audit", Role::Admin),
];

/// The CSS class that hides a control from users below `role`.
pub fn role_class(role: Role) -> &'static str {
    match role {
        Role::Admin => "need-admin",
        Role::Technician => "need-technician",
        Role::Viewer => "",
    }
}

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
/// `script` (the page's own code, which may use `api()` from console.js). Written in English;
/// `i18n::localize` gives it the reader's language, zone and role on its way out.
pub fn page(title: &str, active: &str, body: &str, script: &str) -> Html<String> {
    let mut nav = String::new();
    for (path, label, role) in NAV {
        let mut classes = vec![role_class(*role)];
        if *path == active {
            classes.push("active");
        }
        let classes = classes.join(" ");
        let current = if *path == active {
            " aria-current=\"page\""
        } else {
            ""
        };
        nav.push_str(&format!(
            "<a href=\"{path}\" class=\"{}\"{current}>{label}</a>",
            classes.trim()
        ));
    }
    Html(format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">{I18N_MARK}\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · astreinte</title><link rel=\"stylesheet\" href=\"/assets/console.css\">\
         <script src=\"/assets/console.js\"></script></head>\
         <body><a class=\"skip\" href=\"#main\">Skip to content</a>\
         <header id=\"top\"><strong>astreinte</strong>\
         <button id=\"menu-toggle\" type=\"button\" aria-expanded=\"false\" aria-controls=\"nav\">Menu</button>\
         <nav id=\"nav\" aria-label=\"Console\">{nav}</nav>\
         <span class=\"who\"><span id=\"me\"></span>{LANG_MARK}\
         <button id=\"logout\" type=\"button\">Log out</button></span></header>\
         <main id=\"main\" tabindex=\"-1\"><h1>{title}</h1>{body}</main><script>{script}</script></body></html>",
        title = escape(title),
    ))
}

/// Where `i18n::localize` puts the page's language, zone and role (for its scripts).
pub const I18N_MARK: &str = "<!--i18n-->";
/// Where `i18n::localize` puts the link to the other language.
pub const LANG_MARK: &str = "<!--lang-switch-->";

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
