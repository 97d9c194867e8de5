//! Tracking-number lookups by phone, limited across calls.
//!
//! In one call, three misses end it (`flow::MAX_STATUS_MISSES`); a caller who calls again
//! starts over. This limit spans calls: each calling number (or source) may look up so many
//! tracking numbers per hour, whatever the answers were, so nobody can walk the numbers.
//!
//! A trusted trunk (`[sip] trusted`) carries every caller, so a limit on its address would be
//! one limit for all customers: behind it, the key is the caller's number. A source that is not
//! trusted, or a hidden caller ID, is keyed by its address (an IPv4 address, an IPv6 /64); hidden
//! callers through one trunk share that allowance.
//!
//! Memory is bounded: keys whose allowance is whole again are forgotten; past
//! [`MAX_KEYS`] remembered keys, new keys share one allowance until old ones are forgotten.

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use crate::sip::routing::{SourceKey, TrustedSources};

/// Most keys remembered at once.
pub const MAX_KEYS: usize = 65_536;
/// Forget idle keys every this many checks.
const PRUNE_EVERY: u64 = 256;

/// Whose allowance a lookup takes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LookupKey {
    /// The calling number (digits), for a caller behind a trusted trunk.
    Number(String),
    /// The source address, when it is not trusted or the caller ID is hidden.
    Source(SourceKey),
    /// Every new key while the table is full.
    Overflow,
}

/// The lookup was refused: too many from this key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("too many tracking-number lookups from {key:?}")]
pub struct OverLimit {
    pub key: LookupKey,
}

type Limiter<C> = RateLimiter<
    LookupKey,
    DefaultKeyedStateStore<LookupKey>,
    C,
    NoOpMiddleware<<C as Clock>::Instant>,
>;

/// Lookups allowed per key and hour, shared by every call of the engine.
pub struct StatusLimits<C: Clock = DefaultClock> {
    limiter: Limiter<C>,
    trusted: TrustedSources,
    checks: std::sync::atomic::AtomicU64,
    max_keys: usize,
}

impl std::fmt::Debug for StatusLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatusLimits")
            .field("keys", &self.limiter.len())
            .finish_non_exhaustive()
    }
}

impl StatusLimits {
    /// `per_hour` lookups per key (0 is taken as 1), on the real clock.
    pub fn new(per_hour: u32, trusted: TrustedSources) -> StatusLimits {
        StatusLimits::with_clock(per_hour, trusted, DefaultClock::default())
    }
}

impl<C: Clock> StatusLimits<C> {
    pub fn with_clock(per_hour: u32, trusted: TrustedSources, clock: C) -> StatusLimits<C> {
        let quota = Quota::per_hour(NonZeroU32::new(per_hour).unwrap_or(NonZeroU32::MIN));
        StatusLimits {
            limiter: RateLimiter::new(quota, DefaultKeyedStateStore::default(), clock),
            trusted,
            checks: std::sync::atomic::AtomicU64::new(0),
            max_keys: MAX_KEYS,
        }
    }

    /// The key for a caller: their number behind a trusted source, else the source.
    pub fn key(&self, caller: Option<&str>, source: IpAddr) -> LookupKey {
        let number = caller
            .filter(|c| !c.eq_ignore_ascii_case("anonymous"))
            .and_then(crate::store::accounts::normalise_number);
        match number {
            Some(n) if self.trusted.allows(source) => LookupKey::Number(n),
            _ => LookupKey::Source(SourceKey::of(source)),
        }
    }

    /// Takes one lookup from the caller's allowance.
    pub fn check(&self, caller: Option<&str>, source: IpAddr) -> Result<(), OverLimit> {
        let mut key = self.key(caller, source);
        let n = self
            .checks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if n % PRUNE_EVERY == 0 {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
        if self.limiter.len() >= self.max_keys {
            key = LookupKey::Overflow;
        }
        self.limiter
            .check_key(&key)
            .map(|_| ())
            .map_err(|_| OverLimit { key })
    }

    /// Keys remembered now (at most [`MAX_KEYS`] and the shared one).
    pub fn tracked(&self) -> usize {
        self.limiter.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;
    use std::time::Duration;

    fn limits(per_hour: u32) -> (StatusLimits<FakeRelativeClock>, FakeRelativeClock) {
        let clock = FakeRelativeClock::default();
        let trusted = TrustedSources::new(vec!["10.0.0.0/8".parse().unwrap()]);
        (
            StatusLimits::with_clock(per_hour, trusted, clock.clone()),
            clock,
        )
    }

    const TRUNK: &str = "10.0.0.1";
    const STRANGER: &str = "192.0.2.7";

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn behind_a_trusted_trunk_each_calling_number_has_its_allowance() {
        let (l, clock) = limits(3);
        for _ in 0..3 {
            assert!(l.check(Some("+15145550100"), ip(TRUNK)).is_ok());
        }
        let refused = l.check(Some("5145550100"), ip(TRUNK)).unwrap_err();
        assert_eq!(refused.key, LookupKey::Number("15145550100".into()));
        // Another customer on the same trunk is not refused.
        assert!(l.check(Some("+14185550123"), ip(TRUNK)).is_ok());
        // The allowance comes back with time.
        clock.advance(Duration::from_secs(20 * 60));
        assert!(l.check(Some("+15145550100"), ip(TRUNK)).is_ok());
        assert!(l.check(Some("+15145550100"), ip(TRUNK)).is_err());
    }

    #[test]
    fn an_untrusted_source_or_a_hidden_number_is_keyed_by_address() {
        let (l, _) = limits(2);
        // A stranger changing caller IDs still spends one allowance.
        assert!(l.check(Some("+15145550100"), ip(STRANGER)).is_ok());
        assert!(l.check(Some("+15145550101"), ip(STRANGER)).is_ok());
        assert!(l.check(Some("+15145550102"), ip(STRANGER)).is_err());
        assert_eq!(
            l.key(Some("anonymous"), ip(TRUNK)),
            LookupKey::Source(SourceKey::of(ip(TRUNK)))
        );
        assert_eq!(
            l.key(None, ip("2001:db8::1")),
            l.key(None, ip("2001:db8::ffff"))
        );
    }

    #[test]
    fn memory_stays_bounded() {
        let (mut l, _) = limits(1);
        l.max_keys = 1_000;
        let trunk = ip(TRUNK);
        for i in 0..3_000u64 {
            let _ = l.check(Some(&format!("+1514{:07}", i)), trunk);
        }
        assert!(l.tracked() <= 1_001, "{}", l.tracked());
        // Past the table's size, new numbers share one allowance (spent at once).
        assert!(l.check(Some("+18195550000"), trunk).is_err());
    }
}
