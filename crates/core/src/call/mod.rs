//! The caller's side of a call, as sans-I/O flows: [`flow::IvrFlow`] is the IVR.

pub use crate::callback;
pub mod flow;
