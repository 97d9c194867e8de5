//! astreinte: a telephony engine for a business-VoIP provider's support line.
//!
//! One module per concern; ARCHITECTURE.md (at the repository's root) is the map: the rooms,
//! which way they depend, and where a change goes. In short: `sip` speaks SIP (its `endpoint`
//! is sans-I/O), `media` moves RTP on its own threads, `call` runs one caller's call (`flow` is
//! the sans-I/O IVR), `callback` says which numbers may be called back, `schedule` knows the
//! hours and SLA deadlines, `triage` classifies, `store` keeps tickets and the page outbox,
//! `live` keeps the settings the console changes (hours, prompts, announcement) in force,
//! `paging` wakes the on-call ladder (`roster` and `ladder` are sans-I/O), `http` serves the
//! acknowledgement links, health and metrics, `admin` the console, `ops` the CLI, and `engine`
//! wires `serve`. Leaves: `config`, `config_issue`, `limits`, `printable`, `durable`, `panics`.

// The OpenAPI document (`admin::openapi`) is one large `json!`.
#![recursion_limit = "512"]

pub mod admin;
pub mod call;
pub mod callback;
pub mod config;
pub mod config_issue;
pub mod durable;
pub mod engine;
/// Entry points for the fuzz targets (`fuzz/`) and their regression test; not an API.
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod limits;
pub mod live;
pub mod media;
pub mod ops;
pub mod paging;
pub mod panics;
pub mod printable;
pub mod schedule;
pub mod sip;
pub mod store;
pub mod triage;
