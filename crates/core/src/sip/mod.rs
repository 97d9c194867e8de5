//! SIP as sans-I/O code: message parsing and validation, transactions, dialogs, SDP
//! offer/answer, routing and digest authentication. `endpoint` is the state machine; the
//! engine's `sip::transport` gives it UDP and TCP sockets.
//!
//! We do not use rsip/rsipstack: see the note on the SIP issue. Our parser keeps every header
//! after a bad byte, understands compact forms, and passes the RFC 4475 corpus; the transaction
//! layer is ours so that timers are inputs and tests run faster than real time.

pub mod config;
pub mod digest;
pub mod endpoint;
pub mod message;
pub mod routing;
pub mod sdp;
pub mod transaction;
pub mod validate;

pub use config::SipConfig;
pub use endpoint::{
    Caller, Credentials, EndReason, Endpoint, EndpointConfig, Event, IncomingCall, LegId, Peer,
    RngSeed, Transport,
};
