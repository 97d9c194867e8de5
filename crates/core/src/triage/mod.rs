//! Severity classification: S1, S2 or S3, with the reasons that produced it.
//!
//! Rules are data (config/triage-rules.toml, embedded as the default): the keypress in the
//! emergency menu, the voicemail's speech activity, bilingual transcript phrases, and
//! correlation across customers (a suspected platform incident raises to S1).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use chrono::Duration;
use serde::{Deserialize, Serialize};

use crate::config_issue::{ConfigIssue, KeySeg};

/// The default rules, compiled in so triage works without a file.
pub const DEFAULT_RULES: &str = include_str!("../../../../config/triage-rules.toml");

/// Guide section 5.1.2. Ordered by urgency: `S1 < S2 < S3`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Severity {
    S1,
    S2,
    S3,
}

impl Severity {
    /// The more urgent of the two.
    pub fn most_urgent(self, other: Severity) -> Severity {
        self.min(other)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::S1 => "S1",
            Severity::S2 => "S2",
            Severity::S3 => "S3",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("\"{0}\" is not a severity (write S1, S2 or S3)")]
pub struct BadSeverity(pub String);

impl FromStr for Severity {
    type Err = BadSeverity;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_uppercase().as_str() {
            "S1" | "1" => Ok(Severity::S1),
            "S2" | "2" => Ok(Severity::S2),
            "S3" | "3" => Ok(Severity::S3),
            _ => Err(BadSeverity(s.to_string())),
        }
    }
}

/// `[triage]`: where the rules live (absent: the embedded default).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriageConfig {
    #[serde(default)]
    pub rules: Option<PathBuf>,
}

impl TriageConfig {
    /// `read` gives a rules file's text (see [`Triage::from_config`]).
    pub fn validate(
        &self,
        read: impl FnOnce(&std::path::Path) -> std::io::Result<String>,
        issues: &mut Vec<ConfigIssue>,
    ) {
        if let Err(e) = Triage::from_config(self, read) {
            issues.push(ConfigIssue::new(
                vec![KeySeg::Key("triage"), KeySeg::Key("rules")],
                e.to_string(),
                "fix the rules file (config/triage-rules.toml shows the format) or remove the key to use the embedded rules",
            ));
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TriageError {
    #[error("{path}: cannot read the triage rules: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("triage rules: {0}")]
    Parse(String),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    default_severity: Severity,
    default_reason: String,
    #[serde(default)]
    keypress: std::collections::BTreeMap<String, KeyRule>,
    #[serde(default)]
    speech: SpeechRule,
    correlation: Option<CorrelationRule>,
    #[serde(default)]
    keywords: Vec<KeywordRule>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyRule {
    severity: Severity,
    reason: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SpeechRule {
    no_speech_reason: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct CorrelationRule {
    window_minutes: u32,
    distinct_customers: usize,
    severity: Severity,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeywordRule {
    severity: Severity,
    label: String,
    phrases: Vec<String>,
}

/// What the call flow knows when it classifies a voicemail.
#[derive(Debug, Clone, Default)]
pub struct TriageInput<'a> {
    /// The key pressed in the emergency menu, if any (primary input).
    pub keypress: Option<char>,
    /// Whether the voicemail held speech (VAD); None when unknown.
    pub speech_detected: Option<bool>,
    /// A transcript, when a transcriber is configured.
    pub transcript: Option<&'a str>,
    /// This caller's identity for correlation: the account code, else the caller's number.
    pub customer: Option<&'a str>,
    /// Distinct customers with tickets within [`Triage::correlation_window`] (from the store).
    pub recent_customers: &'a [String],
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Classification {
    pub severity: Severity,
    pub reasons: Vec<String>,
    /// Several customers at once: probably the platform, not this customer.
    pub suspected_incident: bool,
}

#[derive(Debug, Clone)]
pub struct Triage {
    rules: RulesFile,
    /// Normalised phrases per keyword rule, ready to match.
    phrases: Vec<Vec<(String, String)>>,
}

/// Lower case, accents folded, anything not a letter or digit turned into one space, with a
/// space on both ends so a phrase can be matched at a word start.
pub fn normalise(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push(' ');
    for ch in text.chars().flat_map(|c| c.to_lowercase()) {
        let folded: &str = match ch {
            'à' | 'â' | 'ä' | 'á' => "a",
            'é' | 'è' | 'ê' | 'ë' => "e",
            'î' | 'ï' | 'í' => "i",
            'ô' | 'ö' | 'ó' => "o",
            'ù' | 'û' | 'ü' | 'ú' => "u",
            'ç' => "c",
            'œ' => "oe",
            'æ' => "ae",
            c if c.is_alphanumeric() => {
                out.push(c);
                continue;
            }
            _ => " ",
        };
        if folded == " " && out.ends_with(' ') {
            continue;
        }
        out.push_str(folded);
    }
    if !out.ends_with(' ') {
        out.push(' ');
    }
    out
}

impl Triage {
    /// The embedded default rules.
    pub fn embedded() -> Triage {
        match Triage::from_toml(DEFAULT_RULES) {
            Ok(t) => t,
            // The embedded file is tested; a broken build should not silently triage nothing.
            Err(e) => panic!("embedded triage rules are invalid: {e}"),
        }
    }

    /// From `[triage] rules`: the embedded rules when it names no file, else `read` gives the
    /// file's text (reading files is the engine's part).
    pub fn from_config(
        cfg: &TriageConfig,
        read: impl FnOnce(&std::path::Path) -> std::io::Result<String>,
    ) -> Result<Triage, TriageError> {
        match &cfg.rules {
            None => Triage::from_toml(DEFAULT_RULES),
            Some(path) => {
                let text = read(path).map_err(|source| TriageError::Read {
                    path: path.clone(),
                    source,
                })?;
                Triage::from_toml(&text)
            }
        }
    }

    pub fn from_toml(text: &str) -> Result<Triage, TriageError> {
        let rules: RulesFile =
            toml::from_str(text).map_err(|e| TriageError::Parse(e.to_string()))?;
        for k in rules.keypress.keys() {
            if k.chars().count() != 1 {
                return Err(TriageError::Parse(format!(
                    "keypress \"{k}\" must be a single key (0-9, * or #)"
                )));
            }
        }
        let phrases = rules
            .keywords
            .iter()
            .map(|r| {
                r.phrases
                    .iter()
                    .map(|p| {
                        let n = normalise(p);
                        // Keep the leading space (word start) but not the trailing one, so
                        // "fax" also matches "faxes".
                        (n.trim_end().to_string(), p.clone())
                    })
                    .filter(|(n, _)| !n.trim().is_empty())
                    .collect()
            })
            .collect();
        Ok(Triage { rules, phrases })
    }

    /// How far back the store should look for `recent_customers`.
    pub fn correlation_window(&self) -> Option<Duration> {
        self.rules
            .correlation
            .as_ref()
            .map(|c| Duration::minutes(c.window_minutes as i64))
    }

    pub fn classify(&self, input: &TriageInput<'_>) -> Classification {
        let mut reasons = Vec::new();
        let key_rule = input
            .keypress
            .and_then(|k| self.rules.keypress.get(k.to_string().as_str()));
        let mut severity = key_rule.map(|r| {
            reasons.push(r.reason.clone());
            r.severity
        });
        if let Some(k) = input.keypress {
            if key_rule.is_none() {
                reasons.push(format!("key {k} is not an emergency-menu choice"));
            }
        }

        if let Some(text) = input.transcript {
            let hay = normalise(text);
            for (rule, phrases) in self.rules.keywords.iter().zip(&self.phrases) {
                let hits: Vec<&str> = phrases
                    .iter()
                    .filter(|(n, _)| hay.contains(n.as_str()))
                    .map(|(_, original)| original.as_str())
                    .collect();
                if hits.is_empty() {
                    continue;
                }
                let quoted = hits
                    .iter()
                    .map(|h| format!("\"{h}\""))
                    .collect::<Vec<_>>()
                    .join(", ");
                match severity {
                    Some(s) if rule.severity >= s => {
                        reasons.push(format!(
                            "transcript mentions {quoted} ({}, {}): kept {s}",
                            rule.label, rule.severity
                        ));
                    }
                    Some(s) => {
                        reasons.push(format!(
                            "transcript mentions {quoted} ({}): raised from {s} to {}",
                            rule.label, rule.severity
                        ));
                        severity = Some(rule.severity);
                    }
                    None => {
                        reasons.push(format!(
                            "transcript mentions {quoted} ({}): {}",
                            rule.label, rule.severity
                        ));
                        severity = Some(rule.severity);
                    }
                }
            }
        }

        let mut severity = severity.unwrap_or_else(|| {
            reasons.push(self.rules.default_reason.clone());
            self.rules.default_severity
        });

        if input.speech_detected == Some(false) {
            if let Some(r) = &self.rules.speech.no_speech_reason {
                reasons.push(r.clone());
            }
        }

        let mut suspected_incident = false;
        if let Some(c) = &self.rules.correlation {
            let mut customers: Vec<&str> =
                input.recent_customers.iter().map(|s| s.as_str()).collect();
            if let Some(me) = input.customer {
                customers.push(me);
            }
            customers.sort_unstable();
            customers.dedup();
            if customers.len() >= c.distinct_customers {
                suspected_incident = true;
                let was = severity;
                severity = severity.most_urgent(c.severity);
                reasons.push(format!(
                    "suspected platform incident: {} distinct customers opened tickets within {} minutes{}",
                    customers.len(),
                    c.window_minutes,
                    if was != severity {
                        format!(": raised from {was} to {severity}")
                    } else {
                        String::new()
                    }
                ));
            }
        }

        Classification {
            severity,
            reasons,
            suspected_incident,
        }
    }
}
