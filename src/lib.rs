//! astreinte: a telephony engine for a business-VoIP provider's support line.
//!
//! One module per concern (see DESIGN.md): `sip` speaks SIP, `media` moves RTP, `call` runs the
//! flow of one call, `schedule` knows the hours, `store` keeps tickets, `triage` classifies them.
//! Protocol and business logic are sans-I/O state machines; the async shells sit at the edges.

// The OpenAPI document (`admin::openapi`) is one large `json!`.
#![recursion_limit = "512"]

pub mod admin;
pub mod call;
pub mod config;
pub mod config_issue;
pub mod durable;
pub mod engine;
/// Entry points for the fuzz targets (`fuzz/`) and their regression test; not an API.
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod limits;
pub mod media;
pub mod ops;
pub mod paging;
pub mod panics;
pub mod printable;
pub mod schedule;
pub mod sip;
pub mod store;
pub mod triage;
