//! SIP: the sans-I/O parts live in `astreinte_core::sip` (message, validation, transactions,
//! SDP, routing, digest, and `endpoint`, the state machine) and are re-exported here; this room
//! adds the tokio shell (`transport`) that gives the endpoint UDP and TCP sockets.

pub use astreinte_core::sip::*;

pub mod transport;

pub use transport::{CallRequest, InboundCall, LegEvent, LegHandle, SipHandle};
