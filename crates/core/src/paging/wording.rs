//! What pages say, in the person's language: the words and formats shared by the e-mail, the
//! webhook (and the SMS line it carries) and the phone. Each channel assembles its message from
//! these; none writes a severity, a time or a number its own way.
//!
//! Everything a caller could have influenced (company, caller ID, IVR answers) goes through
//! [`one_line`] before it is written.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::facts::{PageFacts, PageReason};
use crate::media::PromptCue;
use crate::triage::Severity;

/// The language of a page: the person's.
pub use crate::lang::Lang;

/// French unless the person reads English ("en", "en-CA"...): the support line is French first.
pub fn lang_of(facts: &PageFacts) -> Lang {
    Lang::from_tag(facts.language())
}

/// A value that came from outside (caller ID, company, IVR answers) folded to one line: control
/// and bidirectional-override characters become spaces, runs of spaces one, and at most
/// `max_chars` characters are kept (an ellipsis says some were cut).
pub fn one_line(value: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(value.len().min(max_chars));
    let mut count = 0;
    let mut pending_space = false;
    for c in value.chars() {
        if c.is_control() || c.is_whitespace() || is_invisible_format(c) {
            pending_space = !out.is_empty();
            continue;
        }
        let needed = usize::from(pending_space) + 1;
        if count + needed > max_chars {
            out.push('…');
            return out;
        }
        if pending_space {
            out.push(' ');
            count += 1;
            pending_space = false;
        }
        out.push(c);
        count += 1;
    }
    out
}

/// Characters that reorder or hide text: they could make a line read differently than it is.
fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

/// A callback number as people write it: "15145550100" → "+1 514-555-0100" (NANP); other
/// numbers are shown as given.
pub fn display_number(digits: &str) -> String {
    let d = digits.trim();
    let nanp = d.len() == 11 && d.starts_with('1') && d.bytes().all(|b| b.is_ascii_digit());
    match (nanp, d.get(1..4), d.get(4..7), d.get(7..11)) {
        (true, Some(area), Some(exchange), Some(line)) => format!("+1 {area}-{exchange}-{line}"),
        _ => one_line(d, 32),
    }
}

/// The zone's abbreviation at `t`, in French for the zones of North America ("HNE" for EST,
/// "HAE" for EDT); other zones keep theirs.
fn zone_abbrev(t: &DateTime<Tz>, lang: Lang) -> String {
    let abbrev = t.format("%Z").to_string();
    if lang == Lang::En {
        return abbrev;
    }
    let french = match abbrev.as_str() {
        "EST" => "HNE",
        "EDT" => "HAE",
        "CST" => "HNC",
        "CDT" => "HAC",
        "MST" => "HNR",
        "MDT" => "HAR",
        "PST" => "HNP",
        "PDT" => "HAP",
        "AST" => "HNA",
        "ADT" => "HAA",
        "NST" => "HNT",
        "NDT" => "HAT",
        _ => return abbrev,
    };
    french.to_string()
}

/// "02:47 (HNE)": a time of day in the schedule's zone.
pub fn local_time(t: DateTime<Utc>, tz: Tz, lang: Lang) -> String {
    let local = t.with_timezone(&tz);
    format!("{} ({})", local.format("%H:%M"), zone_abbrev(&local, lang))
}

/// "2024-11-05 02:47 (HNE)": a date and time in the schedule's zone.
pub fn local_date_time(t: DateTime<Utc>, tz: Tz, lang: Lang) -> String {
    let local = t.with_timezone(&tz);
    format!(
        "{} ({})",
        local.format("%Y-%m-%d %H:%M"),
        zone_abbrev(&local, lang)
    )
}

/// The tracking number as it may appear in a subject or file name (digits, letters, '-').
pub fn safe_ticket(ticket: &str) -> String {
    let s: String = ticket
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(40)
        .collect();
    if s.is_empty() {
        "?".to_string()
    } else {
        s
    }
}

/// The short line that heads an e-mail and is the whole of an SMS: severity, ticket and due
/// time ("[S1] Billet 4821337 — rappeler avant 02:47 (HNE)").
pub fn headline(facts: &PageFacts, lang: Lang) -> String {
    let due = local_time(facts.callback_due_at, facts.timezone, lang);
    let ticket = safe_ticket(&facts.ticket);
    let sev = facts.severity;
    let drill = drill_mark(facts, lang);
    match lang {
        Lang::Fr => format!("{drill}[{sev}] Billet {ticket} — rappeler avant {due}"),
        Lang::En => format!("{drill}[{sev}] Ticket {ticket} — call back before {due}"),
    }
}

/// "[EXERCICE ×60] " / "[DRILL ×60] " before every written page of a drill ticket, so that a
/// drill is never taken for a customer's emergency; empty for a real ticket.
pub fn drill_mark(facts: &PageFacts, lang: Lang) -> String {
    let scale = facts.time_scale;
    match (scale.is_drill(), lang) {
        (false, _) => String::new(),
        (true, Lang::Fr) => format!("[EXERCICE {scale}] "),
        (true, Lang::En) => format!("[DRILL {scale}] "),
    }
}

pub fn severity_words(sev: Severity, lang: Lang) -> &'static str {
    match (sev, lang) {
        (Severity::S1, Lang::Fr) => "critique",
        (Severity::S2, Lang::Fr) => "majeur",
        (Severity::S3, Lang::Fr) => "mineur",
        (Severity::S1, Lang::En) => "critical",
        (Severity::S2, Lang::En) => "major",
        (Severity::S3, Lang::En) => "minor",
    }
}

pub fn reason_words(reason: PageReason, lang: Lang) -> &'static str {
    match (reason, lang) {
        (PageReason::Escalation, Lang::Fr) => "premier appel à ce niveau",
        (PageReason::Repeat, Lang::Fr) => "relance : personne n'a encore pris le billet en charge",
        (PageReason::CallbackOverdue, Lang::Fr) => {
            "pris en charge, mais le client n'a pas été rappelé et l'échéance approche"
        }
        (PageReason::Notice, Lang::Fr) => "avis au groupe de soutien",
        (PageReason::Escalation, Lang::En) => "first page at this level",
        (PageReason::Repeat, Lang::En) => "repeat: nobody has acknowledged the ticket yet",
        (PageReason::CallbackOverdue, Lang::En) => {
            "acknowledged, but the customer has not been called back and the deadline is near"
        }
        (PageReason::Notice, Lang::En) => "notice to the support group",
    }
}

/// The subject line, with the company when known: an incident list shows nothing else.
pub fn headline_with_company(facts: &PageFacts, lang: Lang) -> String {
    let head = headline(facts, lang);
    match facts.company.as_deref().map(|c| one_line(c, 80)) {
        Some(c) if !c.is_empty() => format!("{head} — {c}"),
        _ => head,
    }
}

/// A page in one short line that an SMS gateway can send as is: severity, ticket, company, the
/// number to call back and by when.
pub fn short_page(facts: &PageFacts) -> String {
    let lang = lang_of(facts);
    let sev = facts.severity;
    let ticket = safe_ticket(&facts.ticket);
    let company = facts
        .company
        .as_deref()
        .map(|c| one_line(c, 40))
        .filter(|c| !c.is_empty());
    let due = local_time(facts.callback_due_at, facts.timezone, lang);
    let number = Some(facts.callback_number.trim())
        .filter(|n| !n.is_empty())
        .map(display_number);
    let (word, sep) = match lang {
        Lang::Fr => ("Billet", " :"),
        Lang::En => ("Ticket", ":"),
    };
    let drill = drill_mark(facts, lang);
    let head = match company {
        Some(c) => format!("{drill}[{sev}] {word} {ticket}, {c}{sep}"),
        None => format!("{drill}[{sev}] {word} {ticket}{sep}"),
    };
    let text = match (lang, number) {
        (Lang::Fr, Some(n)) => format!("{head} rappeler le {n} avant {due}"),
        (Lang::Fr, None) => format!(
            "{head} aucun numéro de rappel ({}), avant {due}",
            one_line(&no_callback_fr(facts), 100)
        ),
        (Lang::En, Some(n)) => format!("{head} call {n} back before {due}"),
        (Lang::En, None) => format!(
            "{head} no callback number ({}), before {due}",
            one_line(&no_callback_en(facts), 100)
        ),
    };
    match (facts.also.len(), lang) {
        (0, _) => text,
        (n, Lang::Fr) => format!("{text} (+{n} autres billets vous attendent)"),
        (n, Lang::En) => format!("{text} (+{n} more tickets waiting for you)"),
    }
}

/// "[S1] Billet 4821337 pris en charge par tech1", in one short line.
pub fn short_acknowledged(facts: &PageFacts, by: &str) -> String {
    let sev = facts.severity;
    let ticket = safe_ticket(&facts.ticket);
    let lang = lang_of(facts);
    let drill = drill_mark(facts, lang);
    match lang {
        Lang::Fr => {
            format!(
                "{drill}[{sev}] Billet {ticket} pris en charge par {}",
                one_line(by, 60)
            )
        }
        Lang::En => {
            format!(
                "{drill}[{sev}] Ticket {ticket} acknowledged by {}",
                one_line(by, 60)
            )
        }
    }
}

/// "[S1] Billet 4821337 résolu", in one short line.
pub fn short_resolved(facts: &PageFacts) -> String {
    let sev = facts.severity;
    let ticket = safe_ticket(&facts.ticket);
    let lang = lang_of(facts);
    let drill = drill_mark(facts, lang);
    match lang {
        Lang::Fr => format!("{drill}[{sev}] Billet {ticket} résolu"),
        Lang::En => format!("{drill}[{sev}] Ticket {ticket} resolved"),
    }
}

fn no_callback_en(facts: &PageFacts) -> String {
    facts.no_callback().map(|n| n.en()).unwrap_or_default()
}

fn no_callback_fr(facts: &PageFacts) -> String {
    facts.no_callback().map(|n| n.fr()).unwrap_or_default()
}

/// The language of a page call's prompts: "en" for a person whose language is exactly "en",
/// else "fr" (the prompts exist in these two).
pub fn spoken_lang(facts: &PageFacts) -> &'static str {
    lang_of(facts).as_str()
}

/// What a page call says, in prompts of `lang`: severity, tracking number, customer, callback
/// number, then the menu.
pub fn spoken_page(facts: &PageFacts, lang: &str) -> Vec<PromptCue> {
    let mut list = Vec::new();
    if facts.time_scale.is_drill() {
        list.push(PromptCue::named(format!("{lang}/page-drill")));
    }
    list.push(PromptCue::named(format!("{lang}/page-intro")));
    let sev = match facts.severity {
        Severity::S1 => "1",
        Severity::S2 => "2",
        Severity::S3 => "3",
    };
    list.push(PromptCue::named(format!("{lang}/page-severity-{sev}")));
    if matches!(facts.reason, PageReason::CallbackOverdue) || facts.level > 1 {
        list.push(PromptCue::named(format!("{lang}/page-escalated")));
    }
    list.push(PromptCue::named(format!("{lang}/page-ticket")));
    list.push(PromptCue::digits(lang, facts.ticket.clone()));
    // A company name would need speech synthesis at page time; its account number is said
    // instead (the e-mail and webhook carry the name).
    if let Some(code) = facts
        .account_code
        .as_deref()
        .filter(|c| c.chars().any(|ch| ch.is_ascii_digit()))
    {
        list.push(PromptCue::named(format!("{lang}/page-account")));
        list.push(PromptCue::digits(lang, code.to_string()));
    }
    if !facts.callback_number.is_empty() {
        list.push(PromptCue::named(format!("{lang}/page-callback-number")));
        list.push(PromptCue::digits(lang, facts.callback_number.clone()));
    }
    // A page that carries others (grouped) says so; they are listed in the e-mail.
    if !facts.also.is_empty() {
        list.push(PromptCue::named(format!("{lang}/page-more")));
    }
    list.push(PromptCue::named(format!("{lang}/page-menu")));
    list
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::TimeZone;

    use super::*;
    use crate::paging::facts::PagedPerson;

    fn facts(lang: &str) -> PageFacts {
        let created = Utc.with_ymd_and_hms(2024, 11, 5, 7, 17, 0).unwrap();
        PageFacts {
            ticket: "4821337".into(),
            ticket_id: 1,
            severity: Severity::S1,
            status: "paged".into(),
            company: Some("Acme".into()),
            account_code: Some("AC-1042".into()),
            caller: "15145550100".into(),
            callback_number: "15145550100".into(),
            created_at: created,
            callback_due_at: created + chrono::Duration::minutes(30),
            timezone: chrono_tz::America::Toronto,
            level: 2,
            reason: PageReason::Escalation,
            person: Some(PagedPerson {
                id: "tech1".into(),
                name: "Martin Roy".into(),
                language: lang.into(),
                phone: None,
                email: None,
            }),
            answers: BTreeMap::new(),
            classification_reasons: vec![],
            voicemail_path: None,
            voicemail_seconds: None,
            ack_url: None,
            console_url: None,
            time_scale: crate::schedule::TimeScale::REAL,
            page_key: None,
            also: Vec::new(),
        }
    }

    /// A drill ticket's written pages say so first, in the person's language; a real one's
    /// never do.
    #[test]
    fn a_drill_is_marked_on_every_written_page() {
        let mut f = facts("fr");
        assert!(!headline(&f, Lang::Fr).contains("EXERCICE"));
        f.time_scale = crate::schedule::TimeScale::new(60).unwrap();
        assert!(headline(&f, Lang::Fr).starts_with("[EXERCICE ×60] [S1] Billet 4821337"));
        assert!(headline(&f, Lang::En).starts_with("[DRILL ×60] [S1] Ticket 4821337"));
        assert!(short_page(&f).starts_with("[EXERCICE ×60] "));
        assert!(short_acknowledged(&f, "tech1").starts_with("[EXERCICE ×60] "));
        assert!(short_resolved(&f).starts_with("[EXERCICE ×60] "));
        let said = spoken_page(&f, "fr");
        assert_eq!(said[0], PromptCue::named("fr/page-drill"));
        f.time_scale = crate::schedule::TimeScale::REAL;
        assert_eq!(spoken_page(&f, "fr")[0], PromptCue::named("fr/page-intro"));
    }

    #[test]
    fn every_channel_writes_the_same_severity_ticket_and_due_time() {
        let f = facts("fr");
        let head = headline(&f, Lang::Fr);
        assert_eq!(head, "[S1] Billet 4821337 — rappeler avant 02:47 (HNE)");
        assert_eq!(
            headline_with_company(&f, Lang::Fr),
            format!("{head} — Acme")
        );
        assert_eq!(
            short_page(&f),
            "[S1] Billet 4821337, Acme : rappeler le +1 514-555-0100 avant 02:47 (HNE)"
        );
        let f = facts("en-CA");
        assert_eq!(
            short_page(&f),
            "[S1] Ticket 4821337, Acme: call +1 514-555-0100 back before 02:47 (EST)"
        );
        assert_eq!(
            short_acknowledged(&f, "tech1"),
            "[S1] Ticket 4821337 acknowledged by tech1"
        );
        assert_eq!(short_resolved(&f), "[S1] Ticket 4821337 resolved");
    }

    #[test]
    fn a_page_call_says_severity_escalation_ticket_account_and_number_then_the_menu() {
        // The prompts exist in "fr" and "en": "en-CA" hears French, as before.
        assert_eq!(spoken_lang(&facts("en")), "en");
        // One language rule for every channel: "en-CA" reads English on the phone too.
        assert_eq!(spoken_lang(&facts("en-CA")), "en");
        let named = |s: &str| PromptCue::named(s.to_string());
        let digits = |d: &str| PromptCue::digits("en", d.to_string());
        assert_eq!(
            spoken_page(&facts("en"), "en"),
            [
                named("en/page-intro"),
                named("en/page-severity-1"),
                named("en/page-escalated"),
                named("en/page-ticket"),
                digits("4821337"),
                named("en/page-account"),
                digits("AC-1042"),
                named("en/page-callback-number"),
                digits("15145550100"),
                named("en/page-menu"),
            ]
        );
    }
}
