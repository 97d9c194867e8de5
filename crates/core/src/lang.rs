//! The one language type: a caller's, a ticket's, a person's, a page's. The support line is
//! French first: anything that does not say English is French.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    Fr,
    En,
}

impl Lang {
    /// `"fr"` or `"en"`: the prompt directory and the ticket's language.
    pub fn as_str(self) -> &'static str {
        match self {
            Lang::Fr => "fr",
            Lang::En => "en",
        }
    }

    /// From a stored or configured language tag: English for "en", "en-CA", "EN"...; French
    /// for anything else, an empty or unknown tag included.
    pub fn from_tag(tag: &str) -> Lang {
        let tag = tag.trim();
        if tag.len() >= 2 && tag.as_bytes()[..2].eq_ignore_ascii_case(b"en") {
            Lang::En
        } else {
            Lang::Fr
        }
    }
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn english_tags_are_english_and_everything_else_french() {
        for tag in ["en", "EN", "en-CA", " en-us "] {
            assert_eq!(Lang::from_tag(tag), Lang::En, "{tag}");
        }
        for tag in ["fr", "fr-CA", "", "e", "es"] {
            assert_eq!(Lang::from_tag(tag), Lang::Fr, "{tag}");
        }
    }
}
