//! The ticket's domain types: its life cycle. Severity is [`crate::triage::Severity`], the
//! caller's language [`crate::lang::Lang`], deadlines [`crate::schedule::Due`].

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

pub use crate::lang::Lang;
pub use crate::schedule::Due;
pub use crate::triage::Severity;

/// open → paged → acknowledged → called back → resolved; cancelled from any non-final state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Open,
    Paged,
    Acknowledged,
    CalledBack,
    Resolved,
    Cancelled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::Paged => "paged",
            Status::Acknowledged => "acknowledged",
            Status::CalledBack => "called_back",
            Status::Resolved => "resolved",
            Status::Cancelled => "cancelled",
        }
    }

    pub fn is_final(self) -> bool {
        matches!(self, Status::Resolved | Status::Cancelled)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status name that is none of [`Status`]'s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ticket status \"{0}\"")]
pub struct UnknownStatus(pub String);

impl FromStr for Status {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, UnknownStatus> {
        Ok(match s {
            "open" => Status::Open,
            "paged" => Status::Paged,
            "acknowledged" => Status::Acknowledged,
            "called_back" => Status::CalledBack,
            "resolved" => Status::Resolved,
            "cancelled" => Status::Cancelled,
            other => return Err(UnknownStatus(other.to_string())),
        })
    }
}
