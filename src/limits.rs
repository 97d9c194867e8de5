//! Resources that several rooms draw from, and the shares that keep one room from starving
//! another: the process's open files, and connections per source.
//!
//! A support call needs file descriptors (its RTP and RTCP sockets, its recording) that a
//! stranger's idle HTTP or SIP TCP connections must never be able to use up. At start the soft
//! open-file limit is raised to the hard one, the calls' share is reserved first, and what is
//! left is split between the HTTP server and SIP over TCP, each capped by its own setting
//! ([`OpenFileBudget`]). Each server then admits connections through a [`ConnectionLimits`].

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Descriptors kept for everything but calls and connections: SIP's UDP socket and listeners,
/// the runtime's epoll and io_uring, the store's pool, log files, outgoing SMTP and webhook
/// connections, prompts being read.
pub const BASE_RESERVE: u64 = 256;

/// The open-file shares computed at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenFileBudget {
    /// The soft limit before start raised it.
    pub soft_before: u64,
    /// The soft limit the process runs with.
    pub soft: u64,
    /// Kept for calls (RTP and RTCP sockets, one recording per call pair) and the base.
    pub reserved: u64,
    /// Most connections the HTTP server holds at once.
    pub http_connections: usize,
    /// Most SIP connections over TCP at once.
    pub sip_tcp_connections: usize,
    /// Set when the limit cannot even cover the reserve: said at start and in `/readyz`.
    pub shortfall: Option<String>,
}

impl OpenFileBudget {
    /// Splits `soft` open files: `rtp_ports` sockets (the media range: RTP and RTCP) and a
    /// recording per two of them, plus [`BASE_RESERVE`], come first; the HTTP server and SIP TCP
    /// each get up to half of the rest, never more than they are configured for, and at least
    /// a few so that an admin can still log in on a starved machine.
    pub fn split(
        soft_before: u64,
        soft: u64,
        rtp_ports: u64,
        http_wanted: usize,
        sip_tcp_wanted: usize,
    ) -> OpenFileBudget {
        let reserved = BASE_RESERVE + rtp_ports + rtp_ports / 2;
        let left = soft.saturating_sub(reserved);
        let half = usize::try_from(left / 2).unwrap_or(usize::MAX);
        const FLOOR: usize = 8;
        let shortfall = (left < 2 * FLOOR as u64).then(|| {
            format!(
                "the open-file limit ({soft}) leaves no room beside the {reserved} kept for calls \
                 ({rtp_ports} RTP/RTCP ports, their recordings, {BASE_RESERVE} for the rest): \
                 raise it (systemd LimitNOFILE=, ulimit -n) or narrow [media] rtp_ports"
            )
        });
        OpenFileBudget {
            soft_before,
            soft,
            reserved,
            http_connections: http_wanted.min(half).max(FLOOR),
            sip_tcp_connections: sip_tcp_wanted.min(half).max(FLOOR),
            shortfall,
        }
    }

    /// Raises the soft limit to the hard one (no privilege needed), then [`Self::split`]s it.
    pub fn at_start(rtp_ports: u64, http_wanted: usize, sip_tcp_wanted: usize) -> OpenFileBudget {
        let (soft_before, soft) = raise_open_files();
        OpenFileBudget::split(soft_before, soft, rtp_ports, http_wanted, sip_tcp_wanted)
    }
}

/// Raises this process's soft limit on open files to its hard limit; the soft limit before and
/// after (the same when it could not be raised). Every call holds two sockets and a recording:
/// the usual soft limit of 1,024 would refuse calls from about 340 on, while service managers
/// commonly allow far more as the hard limit.
pub fn raise_open_files() -> (u64, u64) {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let before = getrlimit(Resource::Nofile);
    let soft_before = before.current.unwrap_or(u64::MAX);
    if before.current == before.maximum {
        return (soft_before, soft_before);
    }
    let raised = Rlimit {
        current: before.maximum,
        maximum: before.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => (soft_before, before.maximum.unwrap_or(u64::MAX)),
        Err(_) => (soft_before, soft_before),
    }
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The server holds as many connections as its share allows.
    Total,
    /// This source holds as many as one source may.
    PerSource,
}

/// Connections a server holds, in all and per source, with the counts `/readyz` and the log
/// report. `K` is how sources are told apart (an address, a /64).
#[derive(Debug)]
pub struct ConnectionLimits<K> {
    max_total: usize,
    max_per_source: usize,
    open: Mutex<Open<K>>,
    refused_total: AtomicU64,
    refused_per_source: AtomicU64,
}

#[derive(Debug)]
struct Open<K> {
    total: usize,
    per_source: HashMap<K, usize>,
    /// When the total cap was last hit, so `/readyz` can say it for a while after.
    full_at: Option<Instant>,
    /// When the log last said so (at most every [`LOG_EVERY`]).
    logged_at: Option<Instant>,
}

/// How long after the cap was last hit `/readyz` still mentions it, and how often the log may.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

impl<K: Eq + Hash + Clone> ConnectionLimits<K> {
    pub fn new(max_total: usize, max_per_source: usize) -> Arc<ConnectionLimits<K>> {
        Arc::new(ConnectionLimits {
            max_total: max_total.max(1),
            max_per_source: max_per_source.max(1),
            open: Mutex::new(Open {
                total: 0,
                per_source: HashMap::new(),
                full_at: None,
                logged_at: None,
            }),
            refused_total: AtomicU64::new(0),
            refused_per_source: AtomicU64::new(0),
        })
    }

    pub fn max_total(&self) -> usize {
        self.max_total
    }

    pub fn max_per_source(&self) -> usize {
        self.max_per_source
    }

    /// Takes a slot for `source`; `exempt` sources (a trusted proxy, counted by its clients
    /// elsewhere) skip the per-source cap, never the total. `Err` also says whether this refusal
    /// is the first in [`LOG_EVERY`], so the caller logs a flood once, not per connection.
    pub fn admit(
        self: &Arc<Self>,
        source: K,
        exempt: bool,
        now: Instant,
    ) -> Result<ConnectionSlot<K>, (Refusal, bool)> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let refusal = if open.total >= self.max_total {
            open.full_at = Some(now);
            Some(Refusal::Total)
        } else if !exempt
            && open.per_source.get(&source).copied().unwrap_or(0) >= self.max_per_source
        {
            Some(Refusal::PerSource)
        } else {
            None
        };
        if let Some(refusal) = refusal {
            match refusal {
                Refusal::Total => self.refused_total.fetch_add(1, Ordering::Relaxed),
                Refusal::PerSource => self.refused_per_source.fetch_add(1, Ordering::Relaxed),
            };
            let log = open
                .logged_at
                .is_none_or(|t| now.saturating_duration_since(t) >= LOG_EVERY);
            if log {
                open.logged_at = Some(now);
            }
            return Err((refusal, log));
        }
        open.total += 1;
        *open.per_source.entry(source.clone()).or_insert(0) += 1;
        Ok(ConnectionSlot {
            limits: Arc::clone(self),
            source,
        })
    }

    /// Connections held now.
    pub fn open(&self) -> usize {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).total
    }

    /// Sources holding at least one connection now.
    pub fn sources(&self) -> usize {
        self.open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .per_source
            .len()
    }

    /// Connections refused since start: (over the total, over a source's share).
    pub fn refused(&self) -> (u64, u64) {
        (
            self.refused_total.load(Ordering::Relaxed),
            self.refused_per_source.load(Ordering::Relaxed),
        )
    }

    /// Whether the total cap was hit within [`LOG_EVERY`] of `now`.
    pub fn recently_full(&self, now: Instant) -> bool {
        self.open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .full_at
            .is_some_and(|t| now.saturating_duration_since(t) < LOG_EVERY)
    }
}

/// One admitted connection (or request); dropping it frees the slot.
#[derive(Debug)]
pub struct ConnectionSlot<K: Eq + Hash + Clone> {
    limits: Arc<ConnectionLimits<K>>,
    source: K,
}

impl<K: Eq + Hash + Clone> Drop for ConnectionSlot<K> {
    fn drop(&mut self) {
        let mut open = self.limits.open.lock().unwrap_or_else(|p| p.into_inner());
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.per_source.get_mut(&self.source) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.per_source.remove(&self.source);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_served_first_and_the_rest_is_shared() {
        // 10,000 RTP ports: 10,000 sockets and 5,000 recordings kept before anyone else.
        let b = OpenFileBudget::split(1024, 1_048_576, 10_000, 1024, 4096);
        assert_eq!(b.reserved, 256 + 15_000);
        assert_eq!((b.http_connections, b.sip_tcp_connections), (1024, 4096));
        assert!(b.shortfall.is_none());
        // A low limit: each server gets half of what the calls leave.
        let b = OpenFileBudget::split(300, 2_000, 1_000, 1024, 4096);
        assert_eq!(b.reserved, 1_756);
        assert_eq!((b.http_connections, b.sip_tcp_connections), (122, 122));
        // Too low for the calls themselves: said, and the servers keep a floor.
        let b = OpenFileBudget::split(300, 300, 1_000, 1024, 4096);
        assert!(b.shortfall.as_deref().is_some_and(|s| s.contains("300")));
        assert_eq!(b.http_connections, 8);
    }

    #[test]
    fn a_source_gets_its_share_and_the_total_holds() {
        let now = Instant::now();
        let limits = ConnectionLimits::<u32>::new(4, 2);
        let a1 = limits.admit(1, false, now).unwrap();
        let _a2 = limits.admit(1, false, now).unwrap();
        assert_eq!(
            limits.admit(1, false, now).unwrap_err(),
            (Refusal::PerSource, true)
        );
        // Logged once per period, not per connection.
        assert_eq!(
            limits.admit(1, false, now).unwrap_err(),
            (Refusal::PerSource, false)
        );
        // An exempt source (a trusted proxy) skips the per-source cap, not the total.
        let _p1 = limits.admit(9, true, now).unwrap();
        let _p2 = limits.admit(9, true, now).unwrap();
        assert!(!limits.recently_full(now));
        assert_eq!(limits.admit(9, true, now).unwrap_err().0, Refusal::Total);
        assert!(limits.recently_full(now));
        assert!(!limits.recently_full(now + LOG_EVERY));
        assert_eq!(limits.open(), 4);
        // A closed connection frees its slot.
        drop(a1);
        assert_eq!(limits.open(), 3);
        assert!(limits.admit(1, false, now).is_ok());
        assert_eq!(limits.refused(), (1, 2));
    }
}
