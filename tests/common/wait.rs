//! Waiting on an event instead of sleeping for it: a condition is polled against a deadline,
//! and a wait that runs out names what it waited for and for how long. The one sleep here is
//! the poll interval (1 ms, doubling up to 50 ms: quick for what comes at once, cheap for what
//! takes seconds).
//!
//! `wait_*` panic when the deadline passes; `poll_*` return `false` / `None` so the caller can
//! fail with its own context (an engine log). Files that do not load all of `common` take this
//! one alone: `#[path = "common/wait.rs"] mod wait;`.

#![allow(dead_code)]

use std::future::Future;
use std::time::{Duration, Instant};

const FIRST_POLL: Duration = Duration::from_millis(1);
const MAX_POLL: Duration = Duration::from_millis(50);

fn next_pause(pause: Duration) -> Duration {
    (pause * 2).min(MAX_POLL)
}

fn timed_out(what: &str, within: Duration) -> String {
    format!("timed out after {within:?} waiting for {what}")
}

/// Polls `f` until it gives `Some`, for up to `within` (`f` is tried once more at the
/// deadline); `None` if it never did.
pub fn poll_for<T>(within: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + within;
    let mut pause = FIRST_POLL;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = next_pause(pause);
    }
}

/// Polls `cond` until it holds, for up to `within`; whether it did.
pub fn poll_until(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    poll_for(within, || cond().then_some(())).is_some()
}

/// Polls `f` until it gives `Some` and returns it; panics after `within`, naming `what`.
#[track_caller]
pub fn wait_for<T>(what: &str, within: Duration, f: impl FnMut() -> Option<T>) -> T {
    match poll_for(within, f) {
        Some(v) => v,
        None => panic!("{}", timed_out(what, within)),
    }
}

/// Polls `cond` until it holds; panics after `within`, naming `what`.
#[track_caller]
pub fn wait_until(what: &str, within: Duration, cond: impl FnMut() -> bool) {
    if !poll_until(within, cond) {
        panic!("{}", timed_out(what, within));
    }
}

/// Like [`wait_until`], with `context()` (e.g. the engine's log) added to the panic message.
#[track_caller]
pub fn wait_until_or(
    what: &str,
    within: Duration,
    cond: impl FnMut() -> bool,
    context: impl FnOnce() -> String,
) {
    if !poll_until(within, cond) {
        panic!("{}:\n{}", timed_out(what, within), context());
    }
}

/// Like [`wait_for`], with `context()` added to the panic message.
#[track_caller]
pub fn wait_for_or<T>(
    what: &str,
    within: Duration,
    f: impl FnMut() -> Option<T>,
    context: impl FnOnce() -> String,
) -> T {
    match poll_for(within, f) {
        Some(v) => v,
        None => panic!("{}:\n{}", timed_out(what, within), context()),
    }
}

/// [`poll_for`] for an async check, sleeping on the runtime's timer between tries.
pub async fn poll_for_async<T, F>(within: Duration, mut f: impl FnMut() -> F) -> Option<T>
where
    F: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    let mut pause = FIRST_POLL;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        tokio::time::sleep(pause.min(deadline - now)).await;
        pause = next_pause(pause);
    }
}

/// [`wait_for`] for an async check.
pub async fn wait_for_async<T, F>(what: &str, within: Duration, f: impl FnMut() -> F) -> T
where
    F: Future<Output = Option<T>>,
{
    match poll_for_async(within, f).await {
        Some(v) => v,
        None => panic!("{}", timed_out(what, within)),
    }
}

/// [`wait_until`] for an async check.
pub async fn wait_until_async<F>(what: &str, within: Duration, mut cond: impl FnMut() -> F)
where
    F: Future<Output = bool>,
{
    let found = poll_for_async(within, || {
        let c = cond();
        async move { c.await.then_some(()) }
    })
    .await;
    if found.is_none() {
        panic!("{}", timed_out(what, within));
    }
}
