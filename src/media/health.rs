//! How a media thread tells the engine it is alive: its state (failed or not, its receive
//! backend, contained panics), the guard that marks it failed when it ends unexpectedly.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use super::types::MediaBackend;

/// What a media thread shares with the engine: written by the thread, read by `health` and
/// `backends` (atomics; the lock only once the thread has died).
#[derive(Default)]
pub(crate) struct ShardState {
    failed: AtomicBool,
    reason: Mutex<Option<String>>,
    backend: AtomicU8,
    /// Why the kernel refused this thread an io_uring ring (seccomp, an old kernel), if it did.
    uring_refused: Mutex<Option<String>>,
    pub(crate) panics: AtomicU64,
}

impl ShardState {
    pub(crate) fn set_backend(&self, b: MediaBackend) {
        self.backend.store(b as u8, Ordering::Relaxed);
    }

    pub(crate) fn set_uring_refused(&self, why: String) {
        if let Ok(mut r) = self.uring_refused.lock() {
            *r = Some(why);
        }
    }

    pub(crate) fn uring_refused(&self) -> Option<String> {
        self.uring_refused.lock().ok().and_then(|r| r.clone())
    }

    pub(crate) fn backend(&self) -> MediaBackend {
        match self.backend.load(Ordering::Relaxed) {
            x if x == MediaBackend::IoUring as u8 => MediaBackend::IoUring,
            x if x == MediaBackend::EpollPerTick as u8 => MediaBackend::EpollPerTick,
            _ => MediaBackend::Epoll,
        }
    }

    /// Why the thread stopped, once it has (None while it runs).
    pub(crate) fn failure(&self) -> Option<String> {
        if !self.failed.load(Ordering::Acquire) {
            return None;
        }
        Some(
            self.reason
                .lock()
                .ok()
                .and_then(|r| r.clone())
                .unwrap_or_default(),
        )
    }

    pub(crate) fn fail(&self, reason: String) {
        if let Ok(mut r) = self.reason.lock() {
            r.get_or_insert(reason);
        }
        self.failed.store(true, Ordering::Release);
    }
}

/// Set on the media thread's way out: a thread that ends other than by `shutdown` (a panic
/// that escaped the per-call guards, an epoll failure) marks its shard failed.
pub(crate) struct ExitGuard {
    pub(crate) state: Arc<ShardState>,
    pub(crate) clean: bool,
}

impl Drop for ExitGuard {
    fn drop(&mut self) {
        if !self.clean {
            let why = if std::thread::panicking() {
                "panicked"
            } else {
                "ended unexpectedly"
            };
            tracing::error!(reason = why, "media thread stopped: its calls are lost");
            self.state.fail(why.into());
        }
    }
}
