//! What the rooms that contain panics (SIP's message handling, media's per-call work) share:
//! the text of a caught panic, for the log.

/// The message a panic carried (`panic!("…")` gives a `&str` or a `String`).
pub fn message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}
