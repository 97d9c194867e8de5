//! The night drill (issue 20), sans-I/O: the scenario a runner plays against a running engine,
//! and the report of what it observed: did the 30/60-minute promise hold?
//!
//! - `scenario`: the TOML file (callers, technicians' phones, the trunk, SMTP and webhook
//!   windows, faults), in night time, with the `time_scale` that compresses it.
//! - `report`: per ticket a verdict (called back on time, or the top of the ladder paged by the
//!   target minus the margin, or missed and why), totals, duplicate pages, lost calls; a
//!   terminal table and JSON.
//! - `svg`: the night drawn, one line per ticket.
//! - `timeline`: the scenario's cues (calls, sink outages, faults) at their wall offsets.
//!
//! The runner (sockets, processes, the clock) lives in the engine; it hands plain data here.

pub mod report;
pub mod scenario;
mod svg;
pub mod timeline;

pub use report::{
    Ack, CallTrace, MetBy, Night, NightReport, PageResult, PageTrace, TicketTrace, TicketVerdict,
    Verdict,
};
pub use scenario::{Scenario, ScenarioError};
