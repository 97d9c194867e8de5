//! Who may call, and which numbers are answered: number matching in E.164 forms, the trusted
//! source list, and a per-source rate limiter. All pure; time is an input.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use ipnet::IpNet;

/// Canonical form of a dialled number: digits only, with North American 10-digit and
/// 11-digit forms folded to E.164 (`+1NXXNXXXXXX`). Short codes (611) stay as they are.
///
/// `+15149073400`, `15149073400`, `5149073400`, `+1 (514) 907-3400` → `+15149073400`.
pub fn normalize_number(s: &str) -> Option<String> {
    let s = s.trim();
    let plus = s.starts_with('+');
    let mut digits = String::with_capacity(s.len());
    for (i, c) in s.chars().enumerate() {
        match c {
            '0'..='9' => digits.push(c),
            '+' if i == 0 => {}
            ' ' | '-' | '.' | '(' | ')' => {}
            _ => return None,
        }
    }
    if digits.is_empty() || digits.len() > 15 {
        return None;
    }
    Some(match (plus, digits.len()) {
        (false, 10) => format!("+1{digits}"),
        (false, 11) if digits.starts_with('1') => format!("+{digits}"),
        (true, _) => format!("+{digits}"),
        _ => digits,
    })
}

/// The numbers this engine answers.
#[derive(Debug, Clone)]
pub struct NumberSet {
    numbers: Vec<String>,
    accept_any: bool,
}

impl NumberSet {
    pub fn new<I: IntoIterator<Item = S>, S: AsRef<str>>(numbers: I) -> NumberSet {
        NumberSet {
            numbers: numbers
                .into_iter()
                .filter_map(|n| normalize_number(n.as_ref()))
                .collect(),
            accept_any: false,
        }
    }

    /// Answers every user part. For protocol tests (RFC 4475) only; never from configuration.
    pub fn accept_any() -> NumberSet {
        NumberSet {
            numbers: Vec::new(),
            accept_any: true,
        }
    }

    /// The canonical number if the Request-URI user is one of ours.
    pub fn lookup(&self, user: &str) -> Option<String> {
        if self.accept_any {
            return Some(normalize_number(user).unwrap_or_else(|| user.to_string()));
        }
        // A user part may carry ";isub=" or visual separators; tel-style "user=phone" params
        // are outside the user part already.
        let user = user.split(';').next().unwrap_or(user);
        let n = normalize_number(user)?;
        self.numbers.iter().find(|m| **m == n).cloned()
    }
}

/// Sources allowed to send INVITE.
#[derive(Debug, Clone)]
pub struct TrustedSources(Vec<IpNet>);

impl TrustedSources {
    pub fn new(nets: Vec<IpNet>) -> TrustedSources {
        TrustedSources(nets)
    }

    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        self.0.iter().any(|n| n.contains(&ip))
    }
}

/// What the limiter says of one more request from a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateVerdict {
    Allow,
    /// Over the limit: answer 503 once so a well-behaved peer backs off.
    Refuse,
    /// Still over the limit: drop silently (never amplify a flood).
    Drop,
}

/// The unit one limit applies to: an IPv4 address, or an IPv6 /64 (one customer's network:
/// a host given a /64 can send from 2^64 addresses, so a /128 key would be no limit at all).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceKey {
    V4(u32),
    V6Prefix64(u64),
}

impl SourceKey {
    pub fn of(ip: IpAddr) -> SourceKey {
        match ip {
            IpAddr::V4(v4) => SourceKey::V4(u32::from(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => SourceKey::V4(u32::from(v4)),
                None => SourceKey::V6Prefix64((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

/// Most sources the limiter remembers at once. Past that (a flood from spoofed addresses),
/// new sources share one bucket: the table cannot grow, and sources already known keep
/// their own allowance.
pub const RATE_TABLE_CAPACITY: usize = 65_536;

/// A token bucket per source (see [`SourceKey`]): `rate` requests per second, bursts up to
/// `rate`. Bounded: at most `capacity` sources, then one shared overflow bucket.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    capacity: usize,
    buckets: HashMap<SourceKey, Bucket>,
    /// Full when first needed (time is an input: there is no "now" at construction).
    overflow: Option<Bucket>,
    last_sweep: Option<Instant>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
    refused: bool,
}

impl Bucket {
    fn full(rate: f64, now: Instant) -> Bucket {
        Bucket {
            tokens: rate,
            at: now,
            refused: false,
        }
    }

    fn take(&mut self, rate: f64, now: Instant) -> RateVerdict {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(rate);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            self.refused = false;
            RateVerdict::Allow
        } else if !self.refused {
            self.refused = true;
            RateVerdict::Refuse
        } else {
            RateVerdict::Drop
        }
    }
}

/// A bucket idle this long has refilled completely: forgetting it changes nothing.
const REFILL: Duration = Duration::from_secs(1);

impl RateLimiter {
    pub fn new(rate_per_second: u32) -> RateLimiter {
        RateLimiter::with_capacity(rate_per_second, RATE_TABLE_CAPACITY)
    }

    pub fn with_capacity(rate_per_second: u32, capacity: usize) -> RateLimiter {
        let rate = f64::from(rate_per_second.max(1));
        RateLimiter {
            rate,
            capacity: capacity.max(1),
            buckets: HashMap::new(),
            overflow: None,
            last_sweep: None,
        }
    }

    /// Sources currently remembered (never more than the capacity).
    pub fn tracked_sources(&self) -> usize {
        self.buckets.len()
    }

    pub fn check(&mut self, ip: IpAddr, now: Instant) -> RateVerdict {
        let key = SourceKey::of(ip);
        let rate = self.rate;
        if let Some(b) = self.buckets.get_mut(&key) {
            return b.take(rate, now);
        }
        if self.buckets.len() >= self.capacity {
            self.sweep(now);
        }
        if self.buckets.len() >= self.capacity {
            return self
                .overflow
                .get_or_insert_with(|| Bucket::full(rate, now))
                .take(rate, now);
        }
        self.buckets
            .entry(key)
            .or_insert(Bucket::full(rate, now))
            .take(rate, now)
    }

    /// Forgets sources whose buckets have refilled. Runs only when the table is full, and at
    /// most ten times a second, so a flood of new sources cannot make every packet O(n).
    fn sweep(&mut self, now: Instant) {
        let due = self
            .last_sweep
            .is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_millis(100));
        if !due {
            return;
        }
        self.last_sweep = Some(now);
        self.buckets
            .retain(|_, b| now.saturating_duration_since(b.at) < REFILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e164_forms_are_one_number() {
        let set = NumberSet::new(["+15149073400", "611"]);
        for form in ["+15149073400", "15149073400", "5149073400", "514-907-3400"] {
            assert_eq!(set.lookup(form).as_deref(), Some("+15149073400"), "{form}");
        }
        assert_eq!(set.lookup("611").as_deref(), Some("611"));
        assert_eq!(set.lookup("+611"), None);
        assert_eq!(set.lookup("5149073401"), None);
        assert_eq!(set.lookup("alice"), None);
        assert_eq!(set.lookup(""), None);
    }

    #[test]
    fn trusted_networks() {
        let t = TrustedSources::new(vec![
            "127.0.0.0/8".parse().unwrap(),
            "10.1.0.0/16".parse().unwrap(),
        ]);
        assert!(t.allows("127.0.0.1".parse().unwrap()));
        assert!(t.allows("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!t.allows("10.2.0.1".parse().unwrap()));
    }

    #[test]
    fn flood_is_refused_once_then_dropped_then_allowed_again() {
        let mut rl = RateLimiter::new(10);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let t0 = crate::test_origin();
        for _ in 0..10 {
            assert_eq!(rl.check(ip, t0), RateVerdict::Allow);
        }
        assert_eq!(rl.check(ip, t0), RateVerdict::Refuse);
        assert_eq!(rl.check(ip, t0), RateVerdict::Drop);
        // another source is unaffected
        assert_eq!(
            rl.check("192.0.2.2".parse().unwrap(), t0),
            RateVerdict::Allow
        );
        assert_eq!(
            rl.check(ip, t0 + Duration::from_millis(200)),
            RateVerdict::Allow
        );
    }

    #[test]
    fn an_ipv6_slash_64_is_one_source() {
        let mut rl = RateLimiter::new(2);
        let t0 = crate::test_origin();
        assert_eq!(
            rl.check("2001:db8:1:2::1".parse().unwrap(), t0),
            RateVerdict::Allow
        );
        assert_eq!(
            rl.check("2001:db8:1:2::ffff".parse().unwrap(), t0),
            RateVerdict::Allow
        );
        // A third address of the same /64: over the limit.
        assert_eq!(
            rl.check("2001:db8:1:2:abcd::9".parse().unwrap(), t0),
            RateVerdict::Refuse
        );
        // Another /64 has its own allowance.
        assert_eq!(
            rl.check("2001:db8:1:3::1".parse().unwrap(), t0),
            RateVerdict::Allow
        );
        // An IPv4-mapped address is the IPv4 source.
        assert_eq!(
            SourceKey::of("::ffff:192.0.2.1".parse().unwrap()),
            SourceKey::of("192.0.2.1".parse().unwrap())
        );
    }

    #[test]
    fn a_spoofed_flood_cannot_grow_the_table_and_known_sources_keep_their_allowance() {
        let mut rl = RateLimiter::with_capacity(5, 100);
        let t0 = crate::test_origin();
        let known: IpAddr = "198.51.100.7".parse().unwrap();
        assert_eq!(rl.check(known, t0), RateVerdict::Allow);
        // 100,000 different sources within one second.
        let mut allowed = 0;
        for i in 0..100_000u32 {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            if rl.check(ip, t0 + Duration::from_micros(u64::from(i) * 5)) == RateVerdict::Allow {
                allowed += 1;
            }
            assert!(rl.tracked_sources() <= 100);
        }
        // 99 got their own bucket; the rest shared one (5 a second, a burst of 5 plus refill).
        assert!(allowed <= 99 + 5 + 3, "{allowed}");
        // The known source still has its own bucket.
        assert_eq!(
            rl.check(known, t0 + Duration::from_millis(500)),
            RateVerdict::Allow
        );
        // Once the flood is over, idle buckets are forgotten and new sources are tracked again.
        let later = t0 + Duration::from_secs(3);
        let fresh: IpAddr = "203.0.113.1".parse().unwrap();
        assert_eq!(rl.check(fresh, later), RateVerdict::Allow);
        assert!(rl.tracked_sources() <= 2, "{}", rl.tracked_sources());
    }
}
