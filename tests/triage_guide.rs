//! Triage read like the guide's examples (section 5.1.2).

use astreinte::triage::{Severity, Triage, TriageInput};

fn said(text: &str) -> (Severity, Vec<String>) {
    let c = Triage::embedded().classify(&TriageInput {
        transcript: Some(text),
        ..Default::default()
    });
    (c.severity, c.reasons)
}

#[test]
fn cannot_place_or_receive_calls_is_s1() {
    assert_eq!(
        said("We cannot place or receive calls since this morning").0,
        Severity::S1
    );
    assert_eq!(
        said("Bonjour, on a aucun appel qui rentre, pas de tonalité").0,
        Severity::S1
    );
    assert_eq!(said("No dial tone on all our phones").0, Severity::S1);
    assert_eq!(said("C'est la PANNE totale ici").0, Severity::S1);
}

#[test]
fn cannot_receive_faxes_is_s2() {
    let (s, reasons) = said("We cannot receive faxes");
    assert_eq!(s, Severity::S2);
    assert!(reasons.iter().any(|r| r.contains("\"fax\"")), "{reasons:?}");
    assert_eq!(said("Le télécopieur ne fonctionne pas").0, Severity::S2);
    assert_eq!(
        said("Impossible de faire un appel interurbain").0,
        Severity::S2
    );
    assert_eq!(said("Long distance does not work").0, Severity::S2);
    assert_eq!(
        said("les conversations coupent, il y a de l'écho").0,
        Severity::S2
    );
    assert_eq!(
        said("je ne reçois plus ma messagerie vocale").0,
        Severity::S2
    );
}

#[test]
fn portal_and_softphone_trouble_is_s3() {
    assert_eq!(
        said("I have trouble logging in to the web portal").0,
        Severity::S3
    );
    assert_eq!(said("Le softphone ne se connecte pas").0, Severity::S3);
}

#[test]
fn keypress_is_primary_and_transcript_only_raises() {
    let t = Triage::embedded();
    let c = t.classify(&TriageInput {
        keypress: Some('3'),
        transcript: Some("no dial tone anywhere"),
        ..Default::default()
    });
    assert_eq!(c.severity, Severity::S1);
    assert!(c.reasons[0].contains("caller chose 3"), "{:?}", c.reasons);
    assert!(
        c.reasons[1].contains("raised from S3 to S1"),
        "{:?}",
        c.reasons
    );
    let c = t.classify(&TriageInput {
        keypress: Some('1'),
        transcript: Some("the portal is slow"),
        ..Default::default()
    });
    assert_eq!(
        c.severity,
        Severity::S1,
        "a minor phrase never lowers the caller's choice"
    );
}

#[test]
fn no_keypress_no_transcript_defaults_to_s2_and_no_speech_is_a_reason() {
    let c = Triage::embedded().classify(&TriageInput {
        speech_detected: Some(false),
        ..Default::default()
    });
    assert_eq!(c.severity, Severity::S2);
    assert!(
        c.reasons.iter().any(|r| r.contains("no speech")),
        "{:?}",
        c.reasons
    );
}

#[test]
fn several_customers_at_once_is_a_suspected_platform_incident() {
    let t = Triage::embedded();
    let recent = vec!["ACME".to_string(), "BOULANGERIE-ST-DENIS".to_string()];
    let c = t.classify(&TriageInput {
        keypress: Some('2'),
        customer: Some("CLINIQUE-VERDUN"),
        recent_customers: &recent,
        ..Default::default()
    });
    assert_eq!(c.severity, Severity::S1);
    assert!(c.suspected_incident);
    assert!(
        c.reasons.last().unwrap().contains("3 distinct customers"),
        "{:?}",
        c.reasons
    );
    // The same customer calling three times is not a platform incident.
    let same = vec!["ACME".to_string()];
    let c = t.classify(&TriageInput {
        keypress: Some('2'),
        customer: Some("ACME"),
        recent_customers: &same,
        ..Default::default()
    });
    assert_eq!(c.severity, Severity::S2);
    assert!(!c.suspected_incident);
}

#[test]
fn rules_are_data_and_bad_files_are_refused() {
    let t = Triage::from_toml(
        "default_severity = \"S3\"\ndefault_reason = \"r\"\n[[keywords]]\nseverity = \"S1\"\nlabel = \"x\"\nphrases = [\"brouhaha\"]\n",
    )
    .unwrap();
    let c = t.classify(&TriageInput {
        transcript: Some("Quel brouhaha!"),
        ..Default::default()
    });
    assert_eq!(c.severity, Severity::S1);
    assert!(Triage::from_toml("default_severity = \"S9\"\ndefault_reason = \"r\"\n").is_err());
    assert_eq!("s2".parse::<Severity>().unwrap(), Severity::S2);
    assert_eq!(Severity::S1.to_string(), "S1");
    assert!("S4".parse::<Severity>().is_err());
}
