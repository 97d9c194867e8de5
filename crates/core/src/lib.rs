//! astreinte's cores: the parts of the engine that decide, with every input given and every
//! output returned. Nothing here opens a socket, reads the clock, draws from the operating
//! system's randomness or awaits: time arrives as `now`, randomness as a seeded RNG, and what to
//! send or do leaves as values the engine's shells (tokio, the store, HTTP, the media threads)
//! carry out. Cargo keeps it so: see this crate's `Cargo.toml` and `clippy.toml`.
//!
//! - `sip`: message parsing and validation, transactions, dialogs, SDP offer/answer, routing and
//!   digest authentication; `sip::endpoint` is the SIP state machine.
//! - `call::flow`: the caller's IVR; `paging::page_call`: the technician's page call.
//! - `paging::{ladder, roster, facts, wording}`: who is paged when, and what a page says.
//! - `schedule`: business hours, holidays, SLA deadlines; `triage`: S1/S2/S3.
//! - `ticket`, `lang`, `callback`: the ticket's domain types.
//! - `drill`: the night drill's scenario file and its report (table, JSON, SVG).
//! - `media`: what SIP negotiates and what a flow asks to play (the media engine moves it).
//! - leaves: `config_issue` (configuration errors naming key and fix), `printable`.

pub mod call;
pub mod callback;
pub mod config_issue;
pub mod drill;
pub mod lang;
pub mod media;
pub mod paging;
pub mod printable;
pub mod schedule;
pub mod sip;
pub mod ticket;
pub mod triage;

/// An origin for tests' synthetic time: read once, nothing waits on it (an `Instant` cannot be
/// made otherwise).
#[cfg(test)]
#[allow(clippy::disallowed_methods)]
pub(crate) fn test_origin() -> std::time::Instant {
    std::time::Instant::now()
}
