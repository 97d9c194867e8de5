//! The night drill (issue 20), sans-I/O: the scenario a runner plays against a running engine.
//!
//! - `scenario`: the TOML file (callers, technicians' phones, the trunk, SMTP and webhook
//!   windows, faults), in night time, with the `time_scale` that compresses it.
//!
//! The runner (sockets, processes, the clock) lives in the engine; it hands plain data here.

pub mod scenario;

pub use scenario::{Scenario, ScenarioError};
