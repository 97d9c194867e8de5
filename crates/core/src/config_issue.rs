//! What a section's `validate` reports: a problem at a key path, with its fix. A leaf that every
//! room uses, so that `config.rs` (which assembles every room's section) is imported by none.

/// One segment of a key path such as `sip.trusted[1]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySeg {
    Key(&'static str),
    Name(String),
    Index(usize),
}

/// A semantic problem found by a section's `validate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    pub path: Vec<KeySeg>,
    pub message: String,
    pub fix: String,
}

impl ConfigIssue {
    pub fn new(path: Vec<KeySeg>, message: impl Into<String>, fix: impl Into<String>) -> Self {
        ConfigIssue {
            path,
            message: message.into(),
            fix: fix.into(),
        }
    }

    /// `sip.trusted[1]`
    pub fn key_path(&self) -> String {
        let mut out = String::new();
        for seg in &self.path {
            match seg {
                KeySeg::Key(k) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(k);
                }
                KeySeg::Name(k) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(k);
                }
                KeySeg::Index(i) => out.push_str(&format!("[{i}]")),
            }
        }
        out
    }
}
