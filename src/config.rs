//! The engine's configuration: one TOML file, one section per room.
//!
//! Each section type lives beside the code it configures and reports semantic problems as
//! [`ConfigIssue`]s naming a key path; this module turns the path into a line of the file, so
//! every error says file, line and fix without the sections knowing about spans.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::call::CallConfig;
use crate::media::MediaConfig;
use crate::schedule::ScheduleConfig;
use crate::sip::SipConfig;
use crate::store::StoreConfig;

/// The default configuration, also compiled in so `serve` runs from any directory.
pub const DEFAULT_CONFIG_TEXT: &str = include_str!("../config/astreinte.toml");
/// Where `serve` and `check-config` look when no `--config` is given.
pub const DEFAULT_CONFIG_PATH: &str = "config/astreinte.toml";

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub sip: SipConfig,
    #[serde(default)]
    pub media: MediaConfig,
    #[serde(default)]
    pub store: StoreConfig,
    #[serde(default)]
    pub schedule: ScheduleConfig,
    #[serde(default)]
    pub triage: crate::triage::TriageConfig,
    #[serde(default)]
    pub call: CallConfig,
    #[serde(default)]
    pub ivr: crate::call::ivr::IvrConfig,
    #[serde(default)]
    pub paging: crate::paging::PagingConfig,
    #[serde(default)]
    pub http: crate::http::HttpConfig,
    #[serde(default)]
    pub drill: DrillConfig,
}

/// `[drill]`: a drill deployment's time compression (see `TimeScale`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrillConfig {
    /// 1 (real time) unless this deployment is drilled.
    #[serde(default = "real_time")]
    pub time_scale: u32,
}

fn real_time() -> u32 {
    1
}

impl Default for DrillConfig {
    fn default() -> Self {
        DrillConfig {
            time_scale: real_time(),
        }
    }
}

impl DrillConfig {
    /// The scale, or an issue naming the key.
    pub fn scale(&self, issues: &mut Vec<ConfigIssue>) -> crate::schedule::TimeScale {
        match crate::schedule::TimeScale::new(self.time_scale) {
            Some(s) => s,
            None => {
                issues.push(ConfigIssue::new(
                    vec![KeySeg::Key("drill"), KeySeg::Key("time_scale")],
                    format!(
                        "{} is not a time scale (1 is real time, at most {})",
                        self.time_scale,
                        crate::schedule::TimeScale::MAX
                    ),
                    "remove [drill] on the production line; a drill deployment uses e.g. 60 (30 minutes in 30 s)",
                ));
                crate::schedule::TimeScale::REAL
            }
        }
    }
}

pub use crate::config_issue::{ConfigIssue, KeySeg};

/// A configuration error located in its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocatedIssue {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub key: Option<String>,
    pub message: String,
    pub fix: String,
}

impl fmt::Display for LocatedIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        write!(f, ": ")?;
        if let Some(key) = &self.key {
            write!(f, "{key}: ")?;
        }
        write!(f, "{}\n  fix: {}", self.message, self.fix)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read the configuration: {source}\n  fix: check the path, or omit --config to use {DEFAULT_CONFIG_PATH}")]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{}", render_issues(.0))]
    Invalid(Vec<LocatedIssue>),
}

fn render_issues(issues: &[LocatedIssue]) -> String {
    let mut out = String::new();
    for (i, issue) in issues.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&issue.to_string());
    }
    out
}

impl Config {
    /// Loads `path`, or the default file, or (when that is absent too) the embedded defaults.
    pub fn load(path: Option<&Path>) -> Result<(Config, PathBuf), ConfigError> {
        let (file, text) = match path {
            Some(p) => (
                p.to_path_buf(),
                std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    file: p.to_path_buf(),
                    source,
                })?,
            ),
            None => {
                let p = PathBuf::from(DEFAULT_CONFIG_PATH);
                match std::fs::read_to_string(&p) {
                    Ok(text) => (p, text),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => (
                        PathBuf::from("<embedded config/astreinte.toml>"),
                        DEFAULT_CONFIG_TEXT.to_string(),
                    ),
                    Err(source) => return Err(ConfigError::Read { file: p, source }),
                }
            }
        };
        let config = Config::parse(&file, &text)?;
        Ok((config, file))
    }

    /// Parses and validates a configuration text; `file` only names it in errors.
    pub fn parse(file: &Path, text: &str) -> Result<Config, ConfigError> {
        let mut config: Config = match toml::from_str(text) {
            Ok(c) => c,
            Err(e) => {
                let line = e.span().map(|s| line_of(text, s.start));
                return Err(ConfigError::Invalid(vec![LocatedIssue {
                    file: file.to_path_buf(),
                    line,
                    key: None,
                    message: e.message().trim().to_string(),
                    fix: syntax_fix(e.message()),
                }]));
            }
        };
        // Media trusts what SIP trusts (media does not import sip: the list is handed down).
        config.media.trusted = config.sip.trusted_nets();
        let mut issues = Vec::new();
        // The SLA clocks and the ladder read the drill's scale where they read their targets.
        config.schedule.sla.time_scale = config.drill.scale(&mut issues);
        config.sip.validate(&mut issues);
        config.media.validate(&mut issues);
        config.store.validate(&mut issues);
        config.schedule.validate(&mut issues);
        config.triage.validate(read_rules_file, &mut issues);
        config.call.validate(&mut issues);
        config.ivr.validate(&mut issues);
        config.paging.validate(&config.schedule.sla, &mut issues);
        config.http.validate(&mut issues);
        if issues.is_empty() {
            return Ok(config);
        }
        let doc = toml_edit::ImDocument::parse(text.to_string()).ok();
        let located = issues
            .into_iter()
            .map(|issue| LocatedIssue {
                file: file.to_path_buf(),
                line: doc
                    .as_ref()
                    .and_then(|d| span_of(d.as_item(), &issue.path))
                    .map(|offset| line_of(text, offset)),
                key: Some(issue.key_path()),
                message: issue.message,
                fix: issue.fix,
            })
            .collect();
        Err(ConfigError::Invalid(located))
    }
}

fn syntax_fix(message: &str) -> String {
    if message.contains("unknown field") {
        "remove or rename the key; the expected keys are listed in the message and in config/astreinte.toml".into()
    } else if message.contains("invalid type") {
        "give the value the type shown in config/astreinte.toml (strings in quotes, lists in [ ])"
            .into()
    } else {
        "correct the TOML syntax at that line (see config/astreinte.toml for a valid example)"
            .into()
    }
}

/// The largest rules file read (`[triage] rules`): a path to a device or a log file must not
/// fill the memory at start.
pub const MAX_RULES_FILE_BYTES: u64 = 1 << 20;

/// The text of a rules file named by the configuration, at most [`MAX_RULES_FILE_BYTES`].
pub fn read_rules_file(path: &Path) -> std::io::Result<String> {
    use std::io::Read as _;
    let file = std::fs::File::open(path)?;
    let mut text = String::new();
    file.take(MAX_RULES_FILE_BYTES + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > MAX_RULES_FILE_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "larger than {} KiB: is it the rules file?",
                MAX_RULES_FILE_BYTES / 1024
            ),
        ));
    }
    Ok(text)
}

/// 1-based line of a byte offset.
pub fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Byte offset of the deepest part of `path` that exists in the document.
fn span_of(root: &toml_edit::Item, path: &[KeySeg]) -> Option<usize> {
    let mut item = root;
    let mut best = None;
    for seg in path {
        let next = match seg {
            KeySeg::Key(k) => item.get(*k),
            KeySeg::Name(k) => item.get(k.as_str()),
            KeySeg::Index(i) => item.get(*i),
        };
        match next {
            Some(n) => {
                item = n;
                if let Some(span) = n.span() {
                    best = Some(span.start);
                } else if let Some(table) = n.as_table() {
                    if let Some(span) = table.span() {
                        best = Some(span.start);
                    }
                }
            }
            None => break,
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_is_valid() {
        let c = Config::parse(Path::new("default"), DEFAULT_CONFIG_TEXT);
        assert!(c.is_ok(), "{:?}", c.err());
    }

    /// One source for the guide's targets: the embedded file writes out exactly the values a
    /// config without `[schedule.sla]` gets, and the IVR tells callers the same.
    #[test]
    fn the_embedded_sla_is_the_default_sla() {
        let c = Config::parse(Path::new("default"), DEFAULT_CONFIG_TEXT).unwrap();
        assert_eq!(c.schedule.sla, crate::schedule::SlaConfig::default());
        let told = crate::call::flow::CallbackTargets::default();
        assert_eq!(
            (told.s1_minutes, told.s2_minutes),
            (
                c.schedule.sla.s1_callback_minutes,
                c.schedule.sla.s2_callback_minutes
            )
        );
    }

    /// `[drill] time_scale` reaches the SLA clocks (and so the ladder); 0 is refused with the
    /// line and a fix.
    #[test]
    fn drill_time_scale_reaches_the_sla_and_is_checked() {
        let c = Config::parse(Path::new("d.toml"), "[drill]\ntime_scale = 60\n").unwrap();
        assert_eq!(c.schedule.sla.time_scale.factor(), 60);
        let real = Config::parse(Path::new("d.toml"), "").unwrap();
        assert!(!real.schedule.sla.time_scale.is_drill());
        let err = Config::parse(Path::new("d.toml"), "[drill]\ntime_scale = 0\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("d.toml:2: drill.time_scale"), "{err}");
        assert!(err.contains("fix:"), "{err}");
    }

    #[test]
    fn syntax_error_names_line() {
        let text = "[sip]\nlisten = \"127.0.0.1:5060\"\nnumbers = [\"611\"\n";
        let err = Config::parse(Path::new("x.toml"), text)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("x.toml:"), "{err}");
        assert!(err.contains("fix:"), "{err}");
    }

    #[test]
    fn unknown_key_is_refused_with_line() {
        let text = "[sip]\nlisten = \"127.0.0.1:5060\"\nlisen = 3\n";
        let err = Config::parse(Path::new("x.toml"), text)
            .unwrap_err()
            .to_string();
        assert!(err.contains("x.toml:3"), "{err}");
        assert!(err.contains("unknown field"), "{err}");
    }

    #[test]
    fn semantic_error_names_line_key_and_fix() {
        let text = "[sip]\nlisten = \"127.0.0.1:5060\"\ntrusted = [\n  \"127.0.0.0/8\",\n  \"10.0.0/8\",\n]\n";
        let err = Config::parse(Path::new("x.toml"), text)
            .unwrap_err()
            .to_string();
        assert!(err.contains("x.toml:5: sip.trusted[1]"), "{err}");
        assert!(err.contains("fix:"), "{err}");
    }
}
