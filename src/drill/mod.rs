//! The night drill (issue 20): `astreinte drill` plays every role outside the engine over real
//! sockets and reports whether the 30/60-minute promise held. The scenario, its timeline and
//! the report are the core crate's (`astreinte_core::drill`); this room holds what touches
//! sockets, processes and the clock.
//!
//! - `command`: `astreinte drill` (check a scenario; report on a night from the console).
//! - `play`: the night played: the timeline's cues carried out on a stage of roles and sinks.
//! - `roles`: the callers (`DrillCaller`) and the phones (`PhoneBank`: technicians and the
//!   trunk's customers) on the engine's own SIP stack, with their own RTP (`RtpPeer`).
//! - `faults`: the timeline's faults, run by the operator's commands (`--fault kill-a=…`).
//! - `sinks`: the mail and webhook receivers of written pages, switchable down or failing.
//! - `observe`: each ticket's history from the console's API, joined with the sinks' receipts.

pub mod command;
pub mod faults;
pub mod observe;
pub mod play;
pub mod roles;
pub mod sinks;
