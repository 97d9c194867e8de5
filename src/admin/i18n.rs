//! The console in French or English, chosen per reader. A logged-in user gets the language they
//! chose with the switch in the header (kept on their user, so it follows them from the phone
//! to the desktop), else their person's language (the person they are linked to, else the one
//! whose id is their login name), else the browser's `Accept-Language`, else French (the line is
//! French first). Logged out (the login page): the `astreinte_lang` cookie the switch also sets,
//! else the browser, else French.
//!
//! Pages are written once, in English; on their way out, [`localize`] tells their scripts the
//! reader's language, the schedule's zone and the user's role (`UI_LANG`, `UI_ZONE`, `UI_ROLE`,
//! used by console.js to write times as "02:14 HAE"), marks `<body data-role>` (console.css
//! hides what the role cannot use), and, for French, puts every phrase of [`FR`] in French.
//! Text built by the scripts themselves uses `L(english, french)` from console.js.

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use super::auth::CurrentUser;
use super::pages::{escape, I18N_MARK, LANG_MARK};
use super::AdminState;
use astreinte_core::lang::Lang;

/// The cookie that keeps the reader's choice.
pub const LANG_COOKIE: &str = "astreinte_lang";

/// Largest page rewritten (ours are 2–20 KB).
const MAX_PAGE_BYTES: usize = 4 * 1024 * 1024;

/// The reader's choice in the cookie, if any.
pub fn cookie_lang(headers: &HeaderMap) -> Option<Lang> {
    let jar = axum_extra::extract::cookie::CookieJar::from_headers(headers);
    match jar
        .get(LANG_COOKIE)
        .map(|c| c.value().trim().to_ascii_lowercase())
    {
        Some(v) if v == "fr" => Some(Lang::Fr),
        Some(v) if v == "en" => Some(Lang::En),
        _ => None,
    }
}

/// The first of French or English the browser asks for, by its weights (`fr-CA,fr;q=0.9,en;q=0.8`).
pub fn accept_language(value: &str) -> Option<Lang> {
    let mut best: Option<(f32, usize, Lang)> = None;
    for (i, item) in value.split(',').enumerate().take(32) {
        let mut parts = item.split(';');
        let tag = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .find_map(|p| p.trim().strip_prefix("q=").map(str::to_string))
            .and_then(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        let lang = if tag == "fr" || tag.starts_with("fr-") {
            Lang::Fr
        } else if tag == "en" || tag.starts_with("en-") {
            Lang::En
        } else {
            continue;
        };
        if q <= 0.0 {
            continue;
        }
        // Highest weight wins; among equals, the first listed.
        if best.is_none_or(|(bq, bi, _)| q > bq || (q == bq && i < bi)) {
            best = Some((q, i, lang));
        }
    }
    best.map(|(_, _, l)| l)
}

/// The reader's language: see the module's comment.
pub async fn reader_lang(
    state: &AdminState,
    headers: &HeaderMap,
    user: Option<&CurrentUser>,
) -> Lang {
    if let Some(u) = user {
        if let Some(l) = u.lang {
            return l;
        }
        match state.store.people().await {
            Ok(people) => {
                if let Some(p) = people.iter().find(|p| p.id == u.person_id()) {
                    return Lang::from_tag(&p.language);
                }
            }
            Err(e) => tracing::warn!(error = %e, "console: cannot read the people for a language"),
        }
    } else if let Some(l) = cookie_lang(headers) {
        return l;
    }
    headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .and_then(accept_language)
        .unwrap_or(Lang::Fr)
}

/// Only a path of this site ("/x"; never "//host" nor "/\host").
fn local_path(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && !n.chars().any(char::is_control) =>
        {
            n.to_string()
        }
        _ => "/tickets".to_string(),
    }
}

#[derive(Debug, Deserialize)]
struct SwitchQuery {
    to: Option<String>,
    next: Option<String>,
}

/// `GET /lang?to=fr&next=/tickets`: keeps the choice on the logged-in user (and in a cookie,
/// for the login page) and goes back. The session cookie is SameSite=Strict: a link from
/// another site cannot change a user's language.
async fn switch(
    State(state): State<AdminState>,
    headers: HeaderMap,
    query: Result<Query<SwitchQuery>, QueryRejection>,
) -> Response {
    let Ok(Query(q)) = query else {
        return super::ApiError::bad_request("write /lang?to=fr or /lang?to=en").into_response();
    };
    let lang = match q.to.as_deref().map(str::trim) {
        Some("fr") => Lang::Fr,
        Some("en") => Lang::En,
        _ => {
            return super::ApiError::bad_request("to= is \"fr\" or \"en\"").into_response();
        }
    };
    if let Some(name) = super::auth::session_user(&state, &headers).await {
        if let Err(e) = state.store.set_user_lang(&name, Some(lang.as_str())).await {
            tracing::warn!(error = %e, user = %name, "console: cannot keep a user's language");
        }
    }
    let mut r = Redirect::to(&local_path(q.next.as_deref())).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{LANG_COOKIE}={lang}; Path=/; SameSite=Lax; Max-Age=31536000"
    )) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

pub fn routes() -> Router<AdminState> {
    Router::new().route("/lang", get(switch))
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

/// The layer: see the module's comment. Only HTML answers are touched.
pub async fn localize(State(state): State<AdminState>, request: Request, next: Next) -> Response {
    let headers = request.headers().clone();
    let user = request.extensions().get::<CurrentUser>().cloned();
    let here = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let response = next.run(request).await;
    let html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if !html {
        return response;
    }
    let lang = reader_lang(&state, &headers, user.as_ref()).await;
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_PAGE_BYTES).await else {
        return Response::from_parts(parts, Body::empty());
    };
    let text = String::from_utf8_lossy(&bytes);
    let zone = super::tickets::zone(&state);
    let role = user.as_ref().map(|u| u.role.as_str()).unwrap_or("");
    let out = render(&text, lang, zone.name(), role, &here);
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_LANGUAGE,
        HeaderValue::from_static(if lang == Lang::Fr { "fr" } else { "en" }),
    );
    Response::from_parts(parts, Body::from(out))
}

/// A page in `lang`, its scripts told the zone and role (see the module's comment).
pub fn render(page: &str, lang: Lang, zone: &str, role: &str, here: &str) -> String {
    let vars = format!(
        "<script>const UI_LANG = {}; const UI_ZONE = {}; const UI_ROLE = {};</script>",
        serde_json::json!(lang.as_str()),
        serde_json::json!(zone),
        serde_json::json!(role),
    );
    let (other, label) = match lang {
        Lang::Fr => ("en", "<span lang=\"en\">English</span>"),
        Lang::En => ("fr", "<span lang=\"fr\">Français</span>"),
    };
    let switch = format!(
        "<a class=\"lang\" href=\"/lang?to={other}&amp;next={}\">{label}</a>",
        escape(&url_encode(here))
    );
    let mut out = page
        .replacen(I18N_MARK, &vars, 1)
        .replacen(LANG_MARK, &switch, 1)
        .replacen("<html lang=\"en\">", &format!("<html lang=\"{lang}\">"), 1);
    if !role.is_empty() {
        out = out.replacen("<body>", &format!("<body data-role=\"{role}\">"), 1);
    }
    if lang == Lang::Fr {
        out = french(&out);
    }
    out
}

/// Every phrase of [`FR`] in French, longest first (so a long phrase wins over a word in it).
pub fn french(page: &str) -> String {
    let mut phrases: Vec<&(&str, &str)> = FR.iter().collect();
    phrases.sort_by_key(|(en, _)| std::cmp::Reverse(en.len()));
    let mut out = page.to_string();
    for (en, fr) in phrases {
        if out.contains(en) {
            out = out.replace(en, fr);
        }
    }
    out
}

/// The console's phrases in French. An English phrase is replaced wherever it appears in a page
/// (its HTML and its scripts' string literals), so each is written as it stands there, with
/// its delimiters: never a bare word a script compares or uses as a class (`"closed"`,
/// `"default"`): such text is written with `L(english, french)` in the script instead.
pub const FR: &[(&str, &str)] = &[
    // The layout.
    (">Skip to content<", ">Aller au contenu<"),
    (">Menu<", ">Menu<"),
    ("aria-label=\"Console\"", "aria-label=\"Console\""),
    (">Tickets<", ">Billets<"),
    ("<title>Tickets ·", "<title>Billets ·"),
    (">Drill<", ">Exercice<"),
    ("<title>Drill ·", "<title>Exercice ·"),
    (">On call<", ">Garde<"),
    ("<title>On call ·", "<title>Garde ·"),
    (">Hours<", ">Heures<"),
    ("<title>Hours ·", "<title>Heures ·"),
    (">Prompts<", ">Messages<"),
    ("<title>Prompts ·", "<title>Messages ·"),
    (">Announcements<", ">Annonces<"),
    ("<title>Announcements ·", "<title>Annonces ·"),
    (">Audit<", ">Journal<"),
    (">Audit log<", ">Journal des changements<"),
    ("<title>Audit log ·", "<title>Journal des changements ·"),
    (">Log out<", ">Déconnexion<"),
    ("<title>Ticket ", "<title>Billet "),
    ("<h1>Ticket ", "<h1>Billet "),
    ("<title>SLA report ·", "<title>Rapport d'entente de service ·"),
    (">SLA report<", ">Rapport d'entente de service<"),
    // Login.
    ("<title>Log in ·", "<title>Connexion ·"),
    (">Log in<", ">Se connecter<"),
    ("<label>Name ", "<label>Nom "),
    ("<label>Password ", "<label>Mot de passe "),
    ("\"the server did not answer: \"", "\"le serveur ne répond pas : \""),
    // Tickets.
    ("Open tickets first (most urgent callback first), then the most recent closed ones.",
     "Billets ouverts d'abord (rappel le plus urgent en tête), puis les derniers fermés."),
    ("The countdown runs to the callback target (to the resolution target once called back): amber in\nthe last 10 minutes, red when missed.",
     "Le compte à rebours va jusqu'à l'échéance de rappel (de résolution une fois rappelé) : ambre\ndans les 10 dernières minutes, rouge une fois dépassée."),
    ("The list refreshes every 10 seconds.", "La liste se met à jour toutes les 10 secondes."),
    ("Times are in ", "Heures du fuseau "),
    (">Loading…<", ">Chargement…<"),
    ("\"Loading…\"", "\"Chargement…\""),
    (">Number<", ">Numéro<"),
    (">Severity<", ">Gravité<"),
    (">Status<", ">État<"),
    (">Company / caller<", ">Entreprise / appelant<"),
    (">Call back<", ">Rappeler au<"),
    (">Callback due<", ">Rappel dû<"),
    (">Clock<", ">Échéance<"),
    (">Who<", ">Qui<"),
    (">← All tickets<", ">← Tous les billets<"),
    (">All tickets<", ">Tous les billets<"),
    (">Acknowledge<", ">Prendre en charge<"),
    (">Called back<", ">Rappelé<"),
    (">Resolve<", ">Résoudre<"),
    (">Reclassify<", ">Reclasser<"),
    ("Reclassify as ", "Reclasser en "),
    (">S1 critical<", ">S1 critique<"),
    (">S2 major<", ">S2 majeur<"),
    (">S3 minor<", ">S3 mineur<"),
    ("placeholder=\"Why (required)\"", "placeholder=\"Pourquoi (obligatoire)\""),
    ("placeholder=\"Reason or note (optional)\"", "placeholder=\"Raison ou note (facultative)\""),
    (">Note (optional)<", ">Note (facultative)<"),
    (">Why (required)<", ">Pourquoi (obligatoire)<"),
    ("<h2>Voicemail</h2>", "<h2>Message vocal</h2>"),
    ("<h2>Account</h2>", "<h2>Compte</h2>"),
    ("<h2>IVR answers</h2>", "<h2>Réponses au menu vocal</h2>"),
    ("<h2>Why this severity</h2>", "<h2>Pourquoi cette gravité</h2>"),
    ("<h2>History</h2>", "<h2>Historique</h2>"),
    ("<h2>Pages</h2>", "<h2>Avis de garde</h2>"),
    ("<h2>Who is on it</h2>", "<h2>Qui s'en occupe</h2>"),
    (">When<", ">Quand<"),
    (">What<", ">Quoi<"),
    (">Change<", ">Changement<"),
    (">By<", ">Par<"),
    (">Reason<", ">Raison<"),
    (">Channel<", ">Canal<"),
    (">To<", ">À<"),
    (">Address<", ">Adresse<"),
    (">Level<", ">Niveau<"),
    (">State<", ">État<"),
    (">Run at<", ">Prévu à<"),
    (">Attempts<", ">Essais<"),
    (">Last error<", ">Dernière erreur<"),
    (">Role<", ">Rôle<"),
    (">Name<", ">Nom<"),
    (">Phone<", ">Téléphone<"),
    (">E-mail<", ">Courriel<"),
    (">Language<", ">Langue<"),
    // Added with the phone layout and the filters.
    (">Tracking number<", ">Numéro de suivi<"),
    (">Find<", ">Trouver<"),
    ("<label>Severity ", "<label>Gravité "),
    ("<label>Status ", "<label>État "),
    ("<label>Sort ", "<label>Trier "),
    (">All<", ">Tous<"),
    (">Open<", ">Ouverts<"),
    (">Not acknowledged<", ">Pas pris en charge<"),
    (">Acknowledged<", ">Pris en charge<"),
    (">Most urgent first<", ">Plus urgent d'abord<"),
    (">Newest first<", ">Plus récent d'abord<"),
    (">Only mine<", ">Seulement les miens<"),
    (">Notify me of new S1 tickets<", ">M'aviser des nouveaux billets S1<"),
    ("Clock: <span", "Échéance : <span"),
    ("<label>Rotation ", "<label>Rotation "),
    ("<label>Person ", "<label>Personne "),
    ("<label>To <", "<label>Au <"),
    ("<label>Reason ", "<label>Raison "),
    ("A technician may put themselves on call, for a bounded time, in a rotation they take turns in: the console knows you as the person your login is linked to (an admin links it with <code>astreinte users link</code>), else as the person whose id is your login name.",
     "Un technicien peut se mettre de garde, pour une durée bornée, dans une rotation dont il fait partie : la console vous reconnaît comme la personne à laquelle votre nom de connexion est lié (un admin le lie avec <code>astreinte users link</code>), sinon comme la personne dont l'identifiant est votre nom de connexion."),
    (">Test page<", ">Avis d'essai<"),
    ("<label>Date and time ", "<label>Date et heure "),
    ("<label>Date ", "<label>Date "),
    ("<label>Name <input id=\"h-name\"", "<label>Nom <input id=\"h-name\""),
    ("<label>Name <input id=\"c-name\"", "<label>Nom <input id=\"c-name\""),
    ("<label>Holidays of ", "<label>Jours fériés de "),
    ("aria-label=\"French\"", "aria-label=\"Français\""),
    ("aria-label=\"English\"", "aria-label=\"Anglais\""),
    ("<label>Find a prompt ", "<label>Trouver un message "),
    ("The last night drill's report", "Le rapport du dernier exercice de nuit"),
    (", README \"Drilling a deployment\"). Drill tickets are marked DRILL ×N and stay out of the SLA report.",
     ", README « Drilling a deployment »). Les billets d'exercice portent la marque EXERCICE ×N et restent hors du rapport d'entente de service."),
    (">Verdict<", ">Verdict<"),
    (">Why<", ">Pourquoi<"),
    ("alt=\"the night drawn: one line per ticket\"", "alt=\"la nuit dessinée : une ligne par billet\""),
    // On call.
    ("<h2>Now</h2>", "<h2>Maintenant</h2>"),
    (">Rotation<", ">Rotation<"),
    (">On call now<", ">De garde<"),
    (">Until<", ">Jusqu'à<"),
    (">Next<", ">Ensuite<"),
    ("<h2>The escalation ladder</h2>", "<h2>L'échelle de remontée</h2>"),
    (">S1 (min)<", ">S1 (min)<"),
    ("<h2>Overrides</h2>", "<h2>Remplacements</h2>"),
    (">Person<", ">Personne<"),
    (">From<", ">Du<"),
    ("<h2>People</h2>", "<h2>Personnes</h2>"),
    (">Id<", ">Identifiant<"),
    (">Add an override<", ">Ajouter un remplacement<"),
    ("placeholder=\"Reason\"", "placeholder=\"Raison\""),
    ("admin: confirm even if a ladder level is left empty or the same as a lower one",
     "admin : confirmer même si un niveau de l'échelle reste vide ou identique à un niveau inférieur"),
    (">Send a test page<", ">Envoyer un avis d'essai<"),
    (">Remove<", ">Retirer<"),
    ("\"nobody\"", "\"personne\""),
    ("\" (override)\"", "\" (remplacement)\""),
    ("\" from \"", "\" à partir du \""),
    ("\"⚠ Warning: \"", "\"⚠ Attention : \""),
    ("\"test page sent (ticket \"", "\"avis d'essai envoyé (billet \""),
    // Hours.
    ("<h2>Are we open at…</h2>", "<h2>Sommes-nous ouverts le…</h2>"),
    (">Check<", ">Vérifier<"),
    ("<h2>Opening hours ", "<h2>Heures d'ouverture "),
    ("<h3>Planned maintenance</h3>", "<h3>Entretien planifié</h3>"),
    (">Source<", ">Source<"),
    (">Closed<", ">Fermé<"),
    (">Date<", ">Date<"),
    ("placeholder=\"Name\"", "placeholder=\"Nom\""),
    (">Add a closed day<", ">Ajouter un jour de fermeture<"),
    ("<h2>Closures</h2>", "<h2>Fermetures</h2>"),
    (">Add a closure<", ">Ajouter une fermeture<"),
    ("\"worked\"", "\"travaillé\""),
    ("\" (observed)\"", "\" (observé)\""),
    (">Undo<", ">Annuler<"),
    (">Work this day<", ">Travailler ce jour<"),
    ("\"OPEN\"", "\"OUVERT\""),
    ("\"CLOSED\"", "\"FERMÉ\""),
    ("\"closes \"", "\"ferme \""),
    ("\"opens \"", "\"ouvre \""),
    // Announcements.
    ("> French &nbsp;", "> Français &nbsp;"),
    ("> English</p>", "> Anglais</p>"),
    (">End the announcement<", ">Terminer l'annonce<"),
    ("<h2>Announce an incident</h2>", "<h2>Annoncer un incident</h2>"),
    ("<label>Phase ", "<label>Phase "),
    ("<label>French<br>", "<label>Français<br>"),
    ("<label>English<br>", "<label>Anglais<br>"),
    (">Announce<", ">Annoncer<"),
    (">investigating<", ">enquête en cours<"),
    (">identified<", ">cause identifiée<"),
    (">monitoring<", ">sous surveillance<"),
    ("\"No announcement: callers go straight to the menu.\"",
     "\"Aucune annonce : les appelants vont directement au menu.\""),
    ("\" since \"", "\" depuis \""),
    ("\" (by \"", "\" (par \""),
    // SLA.
    ("<label>From ", "<label>Du "),
    ("<label>To (included) ", "<label>Au (inclus) "),
    (">Show<", ">Afficher<"),
    (">met<", ">respecté<"),
    (">missed (late callback)<", ">manqué (rappel en retard)<"),
    (">no callback, past target<", ">pas de rappel, échéance passée<"),
    (">no callback yet, within target<", ">pas encore de rappel, dans les délais<"),
    ("<h2>Per severity</h2>", "<h2>Par gravité</h2>"),
    (">Tickets</th>", ">Billets</th>"),
    (">Called back</th>", ">Rappelés</th>"),
    (">Within target<", ">Dans les délais<"),
    (">Missed<", ">Manqués<"),
    (">Past target, no callback<", ">Échéance passée, sans rappel<"),
    (">Median to callback<", ">Médiane jusqu'au rappel<"),
    (">p90 to callback<", ">p90 jusqu'au rappel<"),
    ("<h2>Per week</h2>", "<h2>Par semaine</h2>"),
    (">Week of<", ">Semaine du<"),
    (">Met<", ">Respectés<"),
    (">Pending<", ">En attente<"),
    ("<h2>Misses</h2>", "<h2>Manqués</h2>"),
    (">Ticket<", ">Billet<"),
    (">Minutes late<", ">Minutes de retard<"),
    ("<th>All</th>", "<th>Tous</th>"),
    ("No tickets in this range.", "Aucun billet dans cette période."),
    ("No misses.", "Aucun manqué."),
    ("\"not called back\"", "\"pas rappelé\""),
    ("\" to \" + r.to", "\" au \" + r.to"),
    ("\"), as of \"", "\"), en date du \""),
    ("Callback targets per week (weeks start on Monday, days in ",
     "Échéances de rappel par semaine (les semaines commencent le lundi, jours du fuseau "),
    ("); cancelled tickets are left out, as in <code>astreinte sla report</code>.",
     "); les billets annulés sont exclus, comme dans <code>astreinte sla report</code>."),
    ("aria-label=\"Callback targets met and missed per week and severity\"",
     "aria-label=\"Échéances de rappel respectées et manquées par semaine et par gravité\""),
    ("bars: S1, S2, S3 per week (week of Monday, MM-DD)", "barres : S1, S2, S3 par semaine (semaine du lundi, MM-JJ)"),
    // Prompts.
    ("What callers hear, per language. Upload a WAV, MP3 or Ogg file (converted to\n8 kHz mono; at most 60 s and 20 MB); earlier versions are kept and can be restored.\nA change reaches new calls at once; a prompt already playing finishes.",
     "Ce qu'entendent les appelants, par langue. Téléversez un fichier WAV, MP3 ou Ogg (converti en\n8 kHz mono; au plus 60 s et 20 Mo); les versions antérieures sont gardées et peuvent être rétablies.\nUn changement s'applique aussitôt aux nouveaux appels; un message déjà en cours finit de jouer."),
    (">Prompt<", ">Message<"),
    (">Text<", ">Texte<"),
    (">Listen<", ">Écouter<"),
    (">Version<", ">Version<"),
    (">Upload<", ">Téléverser<"),
    (">History<", ">Historique<"),
    (">versions<", ">versions<"),
    ("\"Upload a new recording of \"", "\"Téléverser un nouvel enregistrement de \""),
    ("\"<strong>(playing)</strong>\"", "\"<strong>(en service)</strong>\""),
    (">roll back<", ">rétablir<"),
    ("\"uploading…\"", "\"téléversement…\""),
    ("\"back to the default\"", "\"retour au message par défaut\""),
    ("\" plays again\"", "\" joue de nouveau\""),
    // Audit.
    (">Action<", ">Action<"),
    (">Target<", ">Cible<"),
    (">Before → after<", ">Avant → après<"),
    (">Older events<", ">Événements plus anciens<"),
    ("\"No change recorded yet.\"", "\"Aucun changement enregistré.\""),
    // Drill.
    ("\"PROMISE HELD\"", "\"PROMESSE TENUE\""),
    ("\"PROMISE BROKEN\"", "\"PROMESSE NON TENUE\""),
    ("\"<p>Met: \"", "\"<p>Respectés : \""),
    ("\". Missed: \"", "\". Manqués : \""),
    ("\". Duplicate pages: \"", "\". Avis en double : \""),
    ("\". Calls without a ticket: \"", "\". Appels sans billet : \""),
    ("\". Posted by \"", "\". Publié par \""),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_browser_language_goes_by_weight_then_order() {
        assert_eq!(accept_language("fr-CA,fr;q=0.9,en;q=0.8"), Some(Lang::Fr));
        assert_eq!(accept_language("en-US,en;q=0.9,fr;q=0.5"), Some(Lang::En));
        assert_eq!(accept_language("de, en;q=0.2, fr;q=0.7"), Some(Lang::Fr));
        assert_eq!(accept_language("de, fr;q=0"), None);
        assert_eq!(accept_language(""), None);
        assert_eq!(accept_language(";;;q=,,,"), None);
    }

    #[test]
    fn the_switch_only_goes_back_to_this_site() {
        assert_eq!(local_path(Some("/tickets?x=1")), "/tickets?x=1");
        for bad in ["//evil.example", "/\\evil", "https://evil", "", "/a\nb"] {
            assert_eq!(local_path(Some(bad)), "/tickets", "{bad:?}");
        }
    }

    #[test]
    fn a_french_page_says_its_language_and_its_phrases_in_french() {
        let page = super::super::pages::page("Tickets", "/tickets", "<p>x</p>", "").0;
        let out = render(&page, Lang::Fr, "America/Toronto", "viewer", "/tickets");
        assert!(out.contains("<html lang=\"fr\">"), "{out}");
        assert!(
            out.contains(">Billets<") && out.contains(">Déconnexion<"),
            "{out}"
        );
        assert!(out.contains("<body data-role=\"viewer\">"), "{out}");
        assert!(out.contains("UI_ZONE = \"America/Toronto\""), "{out}");
        assert!(out.contains("/lang?to=en&amp;next=/tickets"), "{out}");
        // What the scripts compare stays as it is.
        let js =
            "<script>if (Notification.permission === \"default\") x(' class=\"closed\"');</script>";
        let out = render(js, Lang::Fr, "UTC", "", "/");
        assert!(
            out.contains("=== \"default\"") && out.contains("class=\"closed\""),
            "{out}"
        );
        let en = render(&page, Lang::En, "America/Toronto", "admin", "/tickets");
        assert!(
            en.contains(">Tickets<") && en.contains("/lang?to=fr"),
            "{en}"
        );
    }
}
