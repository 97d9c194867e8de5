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

/// A token bucket per source address: `rate` requests per second, bursts up to `rate`.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    buckets: HashMap<IpAddr, Bucket>,
    last_sweep: Option<Instant>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
    refused: bool,
}

impl RateLimiter {
    pub fn new(rate_per_second: u32) -> RateLimiter {
        RateLimiter {
            rate: f64::from(rate_per_second.max(1)),
            buckets: HashMap::new(),
            last_sweep: None,
        }
    }

    pub fn check(&mut self, ip: IpAddr, now: Instant) -> RateVerdict {
        self.sweep(now);
        let rate = self.rate;
        let b = self.buckets.entry(ip).or_insert(Bucket {
            tokens: rate,
            at: now,
            refused: false,
        });
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate).min(rate);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            b.refused = false;
            RateVerdict::Allow
        } else if !b.refused {
            b.refused = true;
            RateVerdict::Refuse
        } else {
            RateVerdict::Drop
        }
    }

    /// Forget idle sources so a spoofed-address flood cannot grow the table forever.
    fn sweep(&mut self, now: Instant) {
        let due = self
            .last_sweep
            .is_none_or(|t| now.saturating_duration_since(t) > Duration::from_secs(10));
        if due && self.buckets.len() > 1024 {
            self.buckets
                .retain(|_, b| now.saturating_duration_since(b.at) < Duration::from_secs(10));
        }
        if due {
            self.last_sweep = Some(now);
        }
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
        let t0 = Instant::now();
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
}
