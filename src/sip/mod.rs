//! SIP: message parsing and validation, transactions, dialogs, SDP offer/answer, routing,
//! digest authentication (all sans-I/O), and the tokio transport shell around them.

pub mod config;
pub mod message;
pub mod routing;

pub use config::SipConfig;
