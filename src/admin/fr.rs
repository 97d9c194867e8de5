//! Text the server writes for people, in French: API errors (`error_fr` beside `error`), the
//! triage's reasons on a ticket, the ladder's warnings, and the night drill's explanations.
//!
//! The English stays what it was (scripts and logs read it); the console shows the French to a
//! French reader. Two tools:
//!
//! - [`message`]: a whole message matched against [`MESSAGES`], English templates whose `{}`
//!   holes take any text; each hole's text is itself put in French where a template or phrase
//!   knows it (a ticket's status, a ladder gap inside a refusal). A message made of parts joined
//!   by "; " is done part by part. Unknown text gives None (the caller keeps the English).
//! - [`drill`]: the drill's explanations are built from many small pieces around names and
//!   durations: they are put in French phrase by phrase ([`DRILL`]), longest first.
//!
//! Vocabulary follows the console's table (`i18n::FR`): billet, avis (a page), prise en charge,
//! rappel, échéance, courriel, garde, remplacement.

use std::sync::OnceLock;

/// English message templates and their French. `{}` is a hole; holes come in the same order in
/// both. A template without a hole is an exact phrase.
pub const MESSAGES: &[(&str, &str)] = &[
    // Logging in and rights.
    ("wrong name or password", "nom ou mot de passe erroné"),
    ("missing or wrong CSRF token: reload the page", "jeton CSRF absent ou erroné : rechargez la page"),
    ("too many login attempts; wait a minute", "trop de tentatives de connexion; attendez une minute"),
    ("too many login attempts for this name from many addresses; log in from an address you have used before, or wait",
     "trop de tentatives de connexion pour ce nom depuis de nombreuses adresses; connectez-vous depuis une adresse déjà utilisée, ou attendez"),
    ("your session has ended (logged out, expired or disabled): log in again",
     "votre session a pris fin (déconnexion, expiration ou compte désactivé) : reconnectez-vous"),
    ("log in first (or send an API token as Authorization: Bearer …)",
     "connectez-vous d'abord (ou envoyez un jeton d'API dans Authorization: Bearer …)"),
    ("the Authorization header must be \"Bearer <API token>\" (astreinte users token NAME makes one)",
     "l'en-tête Authorization doit être « Bearer <jeton d'API> » (astreinte users token NOM en crée un)"),
    ("this API token is unknown or revoked, or its user is disabled",
     "ce jeton d'API est inconnu ou révoqué, ou son utilisateur est désactivé"),
    ("an API token has no session to end: revoke it with astreinte users revoke-token ID",
     "un jeton d'API n'a pas de session à terminer : révoquez-le avec astreinte users revoke-token ID"),
    ("send JSON {\"name\": …, \"password\": …} with Content-Type: application/json",
     "envoyez du JSON {\"name\": …, \"password\": …} avec Content-Type: application/json"),
    ("send JSON {\"name\": …, \"password\": …}", "envoyez du JSON {\"name\": …, \"password\": …}"),
    ("a login is a name and a password: at most 4 KiB", "une connexion, c'est un nom et un mot de passe : au plus 4 Kio"),
    ("{} may not do this (needs the {} role)", "{} ne peut pas faire ceci (il faut le rôle {})"),
    ("Admin", "admin"),
    ("Technician", "technicien"),
    ("Viewer", "lecture seule"),
    ("write /lang?to=fr or /lang?to=en", "écrivez /lang?to=fr ou /lang?to=en"),
    ("to= is \"fr\" or \"en\"", "to= vaut « fr » ou « en »"),
    // The store.
    ("the database did not answer; try again in a moment", "la base de données ne répond pas; réessayez dans un moment"),
    ("no ticket numbered {}", "aucun billet portant le numéro {}"),
    ("ticket {} is {}: it cannot be {}", "le billet {} est {} : il ne peut pas être {}"),
    ("ticket {} changed while being updated; try again", "le billet {} a changé pendant la mise à jour; réessayez"),
    ("open", "ouvert"),
    ("paged", "avisé"),
    ("acknowledged", "pris en charge"),
    ("called_back", "rappelé"),
    ("marked called back", "marqué rappelé"),
    ("resolved", "résolu"),
    ("cancelled", "annulé"),
    ("reclassified", "reclassé"),
    // Tickets.
    ("\"{}\" is not a tracking number (8 digits, the last one a check digit)",
     "« {} » n'est pas un numéro de suivi (8 chiffres, le dernier étant un chiffre de contrôle)"),
    ("a reclassification needs a reason: every change of severity keeps its why",
     "un reclassement demande une raison : chaque changement de gravité garde son pourquoi"),
    ("a reclassification needs a severity: \"S1\", \"S2\" or \"S3\"",
     "un reclassement demande une gravité : « S1 », « S2 » ou « S3 »"),
    ("limit=\"{}\" is not a number from 1 to {}", "limit=« {} » n'est pas un nombre de 1 à {}"),
    ("ticket {} has no voicemail", "le billet {} n'a pas de message vocal"),
    ("the voicemail of ticket {} cannot be read now; try again",
     "le message vocal du billet {} ne peut pas être lu pour l'instant; réessayez"),
    ("the voicemail of ticket {} is neither in the store nor on this node's disk",
     "le message vocal du billet {} n'est ni dans la base ni sur le disque de ce nœud"),
    ("the voicemail of ticket {} is too large ({} bytes)", "le message vocal du billet {} est trop gros ({} octets)"),
    ("the schedule configuration is invalid: new deadlines cannot be computed",
     "la configuration de l'horaire est invalide : les nouvelles échéances ne peuvent pas être calculées"),
    ("the schedule is invalid", "l'horaire est invalide"),
    ("the body is not the expected JSON: {}", "le corps n'est pas le JSON attendu : {}"),
    ("the query string: {}", "la chaîne de requête : {}"),
    // SLA report and audit.
    ("{}=\"{}\" is not a date: write it as YYYY-MM-DD, e.g. 2025-03-01",
     "{}=« {} » n'est pas une date : écrivez-la AAAA-MM-JJ, p. ex. 2025-03-01"),
    ("from ({}) is after to ({}): the report needs from ≤ to", "from ({}) est après to ({}) : le rapport demande from ≤ to"),
    ("{} to {} is longer than {} days: ask for a shorter range", "du {} au {}, c'est plus de {} jours : demandez une période plus courte"),
    ("{}={} is not a whole number", "{}={} n'est pas un nombre entier"),
    ("limit={}: ask for 1 to {} events", "limit={} : demandez de 1 à {} événements"),
    // On call.
    ("only an admin may set someone else's cover: your login \"{}\" is linked to person \"{}\", not \"{}\" (an admin changes the link with `astreinte users link {} PERSON_ID`)",
     "seul un admin peut mettre quelqu'un d'autre de garde : votre nom de connexion « {} » est lié à la personne « {} », pas à « {} » (un admin change le lien avec `astreinte users link {} ID_PERSONNE`)"),
    ("only an admin may set someone else's cover: your login \"{}\" is linked to no person, so the console takes you for the person whose id is \"{}\", not \"{}\"; if you are \"{}\", an admin links your login with `astreinte users link {} {}`",
     "seul un admin peut mettre quelqu'un d'autre de garde : votre nom de connexion « {} » n'est lié à aucune personne, la console vous prend donc pour la personne dont l'identifiant est « {} », pas « {} »; si vous êtes « {} », un admin lie votre nom de connexion avec `astreinte users link {} {}`"),
    ("{} is not in rotation \"{}\": a technician may cover only a rotation they take turns in",
     "{} ne fait pas partie de la rotation « {} » : un technicien ne peut remplacer que dans une rotation dont il fait partie"),
    ("a technician's cover lasts at most {} days ([paging] max_cover_days); this one lasts {}: split it, or ask an admin",
     "le remplacement d'un technicien dure au plus {} jours ([paging] max_cover_days); celui-ci dure {} : divisez-le, ou demandez à un admin"),
    ("{} days {} h", "{} jours {} h"),
    ("{} days", "{} jours"),
    ("no rotation \"{}\"", "aucune rotation « {} »"),
    ("no person \"{}\"", "aucune personne « {} »"),
    ("an override must end after it starts", "un remplacement doit finir après avoir commencé"),
    ("keep the reason under 200 characters", "gardez la raison sous 200 caractères"),
    ("only an admin may force a change that leaves the ladder short",
     "seul un admin peut forcer un changement qui laisse l'échelle de remontée incomplète"),
    ("this change would leave the escalation ladder short: {}; confirm with \"force\": true if it is meant",
     "ce changement laisserait l'échelle de remontée incomplète : {}; confirmez avec « force »: true si c'est voulu"),
    ("this change would leave the escalation ladder short: {}; ask an admin",
     "ce changement laisserait l'échelle de remontée incomplète : {}; demandez à un admin"),
    ("{} (from {})", "{} (à partir du {})"),
    ("level {} ({}) would have nobody on call", "le niveau {} ({}) n'aurait personne de garde"),
    ("level {} ({}) has nobody on call", "le niveau {} ({}) n'a personne de garde"),
    ("level {} ({}) would be {} ({}), who is already level {}", "le niveau {} ({}) serait {} ({}), déjà au niveau {}"),
    ("level {} ({}) is {} ({}), who is already level {}", "le niveau {} ({}) est {} ({}), déjà au niveau {}"),
    ("no override {}", "aucun remplacement {}"),
    ("override {} was posted by {}: a technician may remove only a cover they posted",
     "le remplacement {} a été ajouté par {} : un technicien ne peut retirer que ses propres remplacements"),
    ("{} has no channel that can be paged", "{} n'a aucun canal par lequel l'aviser"),
    // Hours.
    ("\"{}\" is not a date: write 2026-12-26", "« {} » n'est pas une date : écrivez 2026-12-26"),
    ("\"{}\" is not a local time: write 2026-12-24T12:00", "« {} » n'est pas une heure locale : écrivez 2026-12-24T12:00"),
    ("\"{}\" is not a time: write 2026-12-24T17:30 (local) or RFC 3339",
     "« {} » n'est pas une heure : écrivez 2026-12-24T17:30 (heure locale) ou RFC 3339"),
    ("{} does not exist in {} (a daylight-saving gap)", "{} n'existe pas dans {} (saut de l'heure avancée)"),
    ("a closure must end after it starts", "une fermeture doit finir après avoir commencé"),
    ("give a name of 1 to 100 characters, on one line", "donnez un nom de 1 à 100 caractères, sur une ligne"),
    ("year must be between 2000 and 2100", "l'année doit être entre 2000 et 2100"),
    ("{} is not a holiday", "{} n'est pas un jour férié"),
    ("no hours change {}", "aucun changement d'horaire {}"),
    // Announcements.
    ("phase must be investigating, identified or monitoring",
     "la phase doit être « enquête en cours », « cause identifiée » ou « sous surveillance »"),
    ("the {} text is empty: callers hear one language or the other",
     "le texte {} est vide : les appelants entendent l'une ou l'autre langue"),
    ("the {} text is over 600 characters: keep it to what a caller can hear in a minute",
     "le texte {} dépasse 600 caractères : tenez-vous-en à ce qu'un appelant peut entendre en une minute"),
    ("fr", "français"),
    ("en", "anglais"),
    ("there is no announcement now: callers go straight to the menu",
     "aucune annonce en ce moment : les appelants vont directement au menu"),
    ("there is no announcement to end", "aucune annonce à terminer"),
    ("language is fr or en", "la langue est fr ou en"),
    ("speech synthesis stopped", "la synthèse vocale s'est arrêtée"),
    ("the stored audio is not a WAV", "l'audio conservé n'est pas un WAV"),
    ("cannot write the preview", "impossible d'écrire l'aperçu"),
    // Prompts.
    ("no prompt named \"{}\": see GET /api/prompts for the prompts of prompts/manifest.toml",
     "aucun message nommé « {} » : voyez GET /api/prompts pour les messages de prompts/manifest.toml"),
    ("no language \"{}\": prompts exist in {}", "aucune langue « {} » : les messages existent en {}"),
    ("version must be a whole number (0: the default)", "la version doit être un nombre entier (0 : celle par défaut)"),
    ("version must be 0 (the default) or more", "la version doit être 0 (celle par défaut) ou plus"),
    ("{} has no bundled recording", "{} n'a pas d'enregistrement fourni"),
    ("{} has no version {}", "{} n'a pas de version {}"),
    ("version {} of {} cannot be read; upload it again", "la version {} de {} ne peut pas être lue; téléversez-la de nouveau"),
    ("send JSON {\"version\": N} (0: the default): {}", "envoyez du JSON {\"version\": N} (0 : celle par défaut) : {}"),
    ("other uploads are being converted; try again in a minute",
     "d'autres téléversements sont en conversion; réessayez dans une minute"),
    ("the conversion stopped unexpectedly; try again", "la conversion s'est arrêtée de façon inattendue; réessayez"),
    ("stored prompt unreadable", "message conservé illisible"),
    ("{}: send the audio file itself as the body with Content-Type {}",
     "{} : envoyez le fichier audio lui-même comme corps, avec Content-Type {}"),
    ("no Content-Type", "aucun Content-Type"),
    ("the file is empty", "le fichier est vide"),
    ("the file is {} MB; the largest accepted is {} MB", "le fichier fait {} Mo; le plus gros accepté fait {} Mo"),
    ("the file is larger than {} MB, the largest accepted", "le fichier dépasse {} Mo, le plus gros accepté"),
    ("this is not an audio file that can be read: send a WAV, MP3 or Ogg/Vorbis file",
     "ce n'est pas un fichier audio lisible : envoyez un fichier WAV, MP3 ou Ogg/Vorbis"),
    ("the {} file could not be decoded ({}); export it again and retry",
     "le fichier {} n'a pas pu être décodé ({}); exportez-le de nouveau et réessayez"),
    ("the {} file is not supported: {}", "le fichier {} n'est pas pris en charge : {}"),
    ("the recording is longer than {} s; shorten it", "l'enregistrement dure plus de {} s; raccourcissez-le"),
    ("the recording lasts only {} s; a prompt must last at least {} s",
     "l'enregistrement ne dure que {} s; un message doit durer au moins {} s"),
    ("the recording is clipped: {} % of its samples are at full scale (at most {} % is accepted); record it again at a lower level",
     "l'enregistrement sature : {} % de ses échantillons sont au maximum (au plus {} % est accepté); enregistrez-le de nouveau à un niveau plus bas"),
    ("the recording is silent: its level is {}, below {} dBFS; check the microphone",
     "l'enregistrement est silencieux : son niveau est {}, sous {} dBFS; vérifiez le microphone"),
    // The drill.
    ("no drill report yet: `astreinte drill … --console URL` posts one",
     "aucun rapport d'exercice pour l'instant : `astreinte drill … --console URL` en publie un"),
    ("a drill report is at most {} MiB", "un rapport d'exercice fait au plus {} Mio"),
    ("not a drill report (the JSON `astreinte drill --json` writes): {}",
     "ce n'est pas un rapport d'exercice (le JSON qu'écrit `astreinte drill --json`) : {}"),
    ("not a drill report: {}", "ce n'est pas un rapport d'exercice : {}"),
    ("the stored drill report cannot be read: {}", "le rapport d'exercice conservé ne peut pas être lu : {}"),
    // Triage: the reasons kept on a ticket (config/triage-rules.toml and the classifier).
    ("no emergency-menu choice: treated as major until support re-evaluates it",
     "aucun choix au menu d'urgence : traité comme majeur jusqu'à ce que le soutien le réévalue"),
    ("caller chose 1: service not working, business cannot operate",
     "l'appelant a choisi 1 : service hors d'usage, l'entreprise ne peut pas fonctionner"),
    ("caller chose 2: service partly working", "l'appelant a choisi 2 : service partiellement fonctionnel"),
    ("caller chose 3: little or no effect on operations", "l'appelant a choisi 3 : peu ou pas d'effet sur les activités"),
    ("the voicemail holds no speech: call back to learn the problem",
     "le message vocal ne contient aucune parole : rappeler pour connaître le problème"),
    ("key {} is not an emergency-menu choice", "la touche {} n'est pas un choix du menu d'urgence"),
    ("transcript mentions {} ({}, {}): kept {}", "la transcription mentionne {} ({}, {}) : {} maintenu"),
    ("transcript mentions {} ({}): raised from {} to {}", "la transcription mentionne {} ({}) : relevé de {} à {}"),
    ("transcript mentions {} ({}): {}", "la transcription mentionne {} ({}) : {}"),
    ("suspected platform incident: {} distinct customers opened tickets within {} minutes: raised from {} to {}",
     "incident de plateforme soupçonné : {} clients distincts ont ouvert des billets en {} minutes : relevé de {} à {}"),
    ("suspected platform incident: {} distinct customers opened tickets within {} minutes",
     "incident de plateforme soupçonné : {} clients distincts ont ouvert des billets en {} minutes"),
    ("calls impossible", "appels impossibles"),
    ("service partly working", "service partiellement fonctionnel"),
    ("minor", "mineur"),
];

/// The drill's explanation pieces (crates/core `drill::report::explain`), replaced wherever
/// they appear, longest first.
pub const DRILL: &[(&str, &str)] = &[
    (
        "nobody was paged before the target",
        "personne n'a été avisé avant l'échéance",
    ),
    ("nobody was paged", "personne n'a été avisé"),
    (
        " pages reached nobody, first: ",
        " avis n'ont joint personne, le premier : ",
    ),
    (
        " page reached nobody, first: ",
        " avis n'a joint personne : ",
    ),
    ("the first page came ", "le premier avis est parti "),
    (" before the target", " avant l'échéance"),
    (" after the target", " après l'échéance"),
    ("at the target", "à l'échéance"),
    ("the top (level ", "le sommet de l'échelle (niveau "),
    ("level ", "niveau "),
    (") was paged ", ") a été avisé "),
    (") was never paged", ") n'a jamais été avisé"),
    (
        "no page to the top (",
        "aucun avis au sommet de l'échelle (",
    ),
    (") reached anyone", ") n'a joint personne"),
    (", later than the ", ", après la marge de "),
    (" margin", ""),
    ("acknowledged by ", "pris en charge par "),
    ("nobody acknowledged", "personne n'a pris en charge"),
    ("never called back", "jamais rappelé"),
    ("called back ", "rappelé "),
    ("phone not answered", "téléphone : sans réponse"),
    ("phone answered", "téléphone : répondu"),
    ("phone delivered", "téléphone : remis"),
    ("phone busy", "téléphone : occupé"),
    ("phone failed", "téléphone : échec"),
    ("phone ", "téléphone : "),
    ("email not answered", "courriel : sans réponse"),
    ("email answered", "courriel : répondu"),
    ("email delivered", "courriel : remis"),
    ("email busy", "courriel : occupé"),
    ("email failed", "courriel : échec"),
    ("email ", "courriel : "),
    (" not answered", " : sans réponse"),
    (" answered", " : répondu"),
    (" delivered", " : remis"),
    (" busy", " : occupé"),
    (" failed", " : échec"),
];

/// A template cut at its holes: the literal pieces around them.
struct Template {
    pieces: Vec<&'static str>,
    fr: &'static str,
    literal_len: usize,
}

fn templates() -> &'static [Template] {
    static T: OnceLock<Vec<Template>> = OnceLock::new();
    T.get_or_init(|| {
        let mut out: Vec<Template> = MESSAGES
            .iter()
            .map(|(en, fr)| {
                let pieces: Vec<&'static str> = en.split("{}").collect();
                Template {
                    literal_len: pieces.iter().map(|p| p.len()).sum(),
                    pieces,
                    fr,
                }
            })
            .collect();
        // The most specific first: more fixed text, then fewer holes.
        out.sort_by_key(|t| (std::cmp::Reverse(t.literal_len), t.pieces.len()));
        out
    })
}

/// The holes' texts if `text` is `pieces` around holes (each non-empty), the first holes as
/// short as a match allows.
fn holes<'a>(text: &'a str, pieces: &[&str]) -> Option<Vec<&'a str>> {
    let (first, rest) = pieces.split_first()?;
    let after = text.strip_prefix(first)?;
    if rest.is_empty() {
        return after.is_empty().then(Vec::new);
    }
    let mut caps = Vec::with_capacity(rest.len());
    fill(after, rest, &mut caps).then_some(caps)
}

fn fill<'a>(text: &'a str, pieces: &[&str], caps: &mut Vec<&'a str>) -> bool {
    let Some((lit, rest)) = pieces.split_first() else {
        return text.is_empty();
    };
    if rest.is_empty() {
        // The last hole runs to the final piece, which ends the text.
        return match text.strip_suffix(lit) {
            Some(cap) if !cap.is_empty() => {
                caps.push(cap);
                true
            }
            _ => false,
        };
    }
    let mut from = 1;
    while from <= text.len() {
        let Some(found) = text.get(from..).and_then(|t| t.find(lit)) else {
            return false;
        };
        let at = from + found;
        caps.push(&text[..at]);
        if fill(&text[at + lit.len()..], rest, caps) {
            return true;
        }
        caps.pop();
        from = at + 1;
        while from < text.len() && !text.is_char_boundary(from) {
            from += 1;
        }
    }
    false
}

/// `en` in French, if [`MESSAGES`] knows it (see the module's comment).
pub fn message(en: &str) -> Option<String> {
    message_at(en, 0)
}

fn message_at(en: &str, depth: usize) -> Option<String> {
    if en.is_empty() || depth > 8 {
        return None;
    }
    // Inside a message, parts joined by "; " (several ladder gaps) are done one by one, so a
    // template never takes the end of one part and the start of the next.
    if depth > 0 && en.contains("; ") {
        return parts(en, depth);
    }
    for t in templates() {
        let Some(caps) = holes(en, &t.pieces) else {
            continue;
        };
        let mut caps = caps.into_iter();
        let mut out = String::with_capacity(t.fr.len() + en.len());
        let mut pieces = t.fr.split("{}");
        if let Some(p) = pieces.next() {
            out.push_str(p);
        }
        for p in pieces {
            if let Some(c) = caps.next() {
                out.push_str(&message_at(c, depth + 1).unwrap_or_else(|| c.to_string()));
            }
            out.push_str(p);
        }
        return Some(out);
    }
    // A whole message made of parts joined by "; ".
    if en.contains("; ") {
        return parts(en, depth);
    }
    None
}

/// Parts joined by "; ", each in French where known; None if none is known.
fn parts(en: &str, depth: usize) -> Option<String> {
    let parts: Vec<(&str, Option<String>)> = en
        .split("; ")
        .map(|p| (p, message_at(p, depth + 1)))
        .collect();
    if parts.iter().all(|(_, fr)| fr.is_none()) {
        return None;
    }
    Some(
        parts
            .into_iter()
            .map(|(en, fr)| fr.unwrap_or_else(|| en.to_string()))
            .collect::<Vec<_>>()
            .join("; "),
    )
}

/// A drill explanation in French (see the module's comment).
pub fn drill(en: &str) -> String {
    static SORTED: OnceLock<Vec<&'static (&'static str, &'static str)>> = OnceLock::new();
    let phrases = SORTED.get_or_init(|| {
        let mut v: Vec<_> = DRILL.iter().collect();
        v.sort_by_key(|(en, _)| std::cmp::Reverse(en.len()));
        v
    });
    // One pass, left to right, so French already written is never matched again.
    let mut out = String::with_capacity(en.len() + en.len() / 4);
    let mut rest = en;
    'outer: while !rest.is_empty() {
        for (from, to) in phrases.iter() {
            if let Some(after) = rest.strip_prefix(from) {
                out.push_str(to);
                rest = after;
                continue 'outer;
            }
        }
        let mut chars = rest.chars();
        if let Some(c) = chars.next() {
            out.push(c);
        }
        rest = chars.as_str();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_with_their_values_read_in_french() {
        assert_eq!(
            message("no ticket numbered 12345678").as_deref(),
            Some("aucun billet portant le numéro 12345678")
        );
        assert_eq!(
            message("ticket 12345678 is called_back: it cannot be acknowledged").as_deref(),
            Some("le billet 12345678 est rappelé : il ne peut pas être pris en charge")
        );
        assert_eq!(
            message("ada may not do this (needs the Admin role)").as_deref(),
            Some("ada ne peut pas faire ceci (il faut le rôle admin)")
        );
        assert_eq!(message("something nobody wrote"), None);
        assert_eq!(message(""), None);
    }

    #[test]
    fn a_refusal_naming_several_gaps_reads_in_french_throughout() {
        let en =
            "this change would leave the escalation ladder short: level 1 (oncall) would have \
                  nobody on call (from 2026-03-12 02:00 EDT); level 2 (director) would be tech1 \
                  (Martin Roy), who is already level 1 (from 2026-03-13 08:00 EDT); ask an admin";
        let fr = message(en).unwrap_or_default();
        assert_eq!(
            fr,
            "ce changement laisserait l'échelle de remontée incomplète : le niveau 1 (oncall) \
             n'aurait personne de garde (à partir du 2026-03-12 02:00 EDT); le niveau 2 \
             (director) serait tech1 (Martin Roy), déjà au niveau 1 (à partir du 2026-03-13 \
             08:00 EDT); demandez à un admin"
        );
    }

    #[test]
    fn triage_reasons_read_in_french() {
        assert_eq!(
            message("transcript mentions \"panne\", \"hors service\" (calls impossible): raised from S2 to S1").as_deref(),
            Some("la transcription mentionne \"panne\", \"hors service\" (appels impossibles) : relevé de S2 à S1")
        );
        assert_eq!(
            message("transcript mentions \"fax\" (service partly working, S2): kept S1").as_deref(),
            Some("la transcription mentionne \"fax\" (service partiellement fonctionnel, S2) : S1 maintenu")
        );
    }

    #[test]
    fn a_drill_explanation_reads_in_french() {
        let en = "level 2 (tech-b) was paged 18 min before the target (phone not answered, email delivered); \
                  acknowledged by tech-b (phone) 3 min after the target; never called back; \
                  the top (level 4) was never paged";
        assert_eq!(
            drill(en),
            "niveau 2 (tech-b) a été avisé 18 min avant l'échéance (téléphone : sans réponse, courriel : remis); \
             pris en charge par tech-b (phone) 3 min après l'échéance; jamais rappelé; \
             le sommet de l'échelle (niveau 4) n'a jamais été avisé"
        );
    }

    #[test]
    fn holes_take_text_with_the_pieces_inside_it() {
        assert_eq!(
            holes("a (b) (c) x", &["", " (", ") x"]),
            Some(vec!["a", "b) (c"])
        );
        assert_eq!(holes("é x", &["", " x"]), Some(vec!["é"]));
        assert_eq!(holes(" x", &["", " x"]), None);
    }
}
