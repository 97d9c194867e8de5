//! On-call paging: who is on call ([`roster`]), when each level of the escalation ladder is
//! paged ([`ladder`], sans-I/O: time is an input), and the work that sends pages from the
//! store's outbox over each channel ([`phone`], [`email`], [`webhook`]). The channels are
//! registered in [`channel`], and what every page says is written in [`wording`].
//!
//! The ladder is a pure function of a ticket's state and the time: the planner asks it what is
//! due and enqueues page jobs under a dedup key, so a restart, a second node or a planner that
//! runs twice never sends one page twice, and a node that was down pages at most once per level
//! when it comes back.

pub mod channel;
pub mod config;
pub mod email;
pub mod phone;
pub mod planner;
pub mod service;
pub mod view;
pub mod webhook;
pub mod worker;

// The sans-I/O parts live in the core crate.
pub use astreinte_core::paging::{facts, ladder, page_call, roster, wording};

pub use config::PagingConfig;
pub use facts::PageFacts;

/// Why a channel could not deliver a page.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// Worth retrying: the server is down, busy, timed out, or answered 4xx (SMTP) / 5xx (HTTP).
    #[error("{0} (will retry)")]
    Transient(String),
    /// Retrying the same thing will fail the same way: a refused address, a 4xx from a webhook.
    #[error("{0}")]
    Permanent(String),
    /// The channel is not set up on this node (no SIP for phone pages): the page fails, not
    /// retried, and the channel's counts are left as they are.
    #[error("{0}")]
    Unavailable(String),
}

impl ChannelError {
    /// The same failure, for another job the same page carried.
    pub fn same(&self) -> ChannelError {
        match self {
            ChannelError::Transient(e) => ChannelError::Transient(e.clone()),
            ChannelError::Permanent(e) => ChannelError::Permanent(e.clone()),
            ChannelError::Unavailable(e) => ChannelError::Unavailable(e.clone()),
        }
    }
}
