//! astreinte: a telephony engine for a business-VoIP provider's support line.
//!
//! One module per concern; ARCHITECTURE.md (at the repository's root) is the map: the rooms,
//! which way they depend, and where a change goes. The sans-I/O cores live in the workspace's
//! `astreinte-core` crate (`crates/core`) and are re-exported here under their usual paths:
//! `sip` (its `endpoint` and message parts; this crate adds the `transport` shell),
//! `call::flow` (the IVR), `paging::{ladder, roster, page_call, facts, wording}`, `schedule`,
//! `triage`, `callback`, `ticket`, `lang`, `config_issue`, `printable`.
//!
//! This crate holds the shells and everything with I/O: `media` moves RTP on its own threads,
//! `call` runs one caller's call over a flow, `shell` is what call shells share, `store` keeps
//! tickets and the page outbox, `live` keeps the settings the console changes (hours, prompts,
//! announcement) in force on every node, `paging` sends pages (channels, planner, worker, the page
//! call's shell), `http` serves the acknowledgement links, health and metrics, `admin` the
//! console, `ops` the CLI, and `engine` wires `serve`. Leaves: `config`, `limits`, `durable`,
//! `panics`.

// The OpenAPI document (`admin::openapi`) is one large `json!`.
#![recursion_limit = "512"]

pub mod admin;
pub mod call;
pub mod config;
pub mod drill;
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
pub mod shell;
pub mod sip;
pub mod store;

// The sans-I/O cores (crates/core), under the paths the engine has always used.
pub use astreinte_core::{callback, config_issue, lang, printable, schedule, ticket, triage};
