//! Transaction identity and timers (RFC 3261 §17), shared by the endpoint's server and client
//! transactions. The state lives in the endpoint; this module holds the pieces that are pure.

use std::time::Duration;

use super::message::{Method, Request, Via};

/// RFC 3261 §17.1.1.1 timer values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    pub t1: Duration,
    pub t2: Duration,
    pub t4: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

impl Timers {
    /// Timers B, F, H, J and the 2xx/ACK wait: 64*T1.
    pub fn t64(&self) -> Duration {
        self.t1 * 64
    }
}

/// The key a request is matched to its server transaction with (RFC 3261 §17.2.3).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TxnKey {
    pub branch: String,
    pub sent_by: String,
    /// INVITE for INVITE and its ACK; the method otherwise (CANCEL has its own transaction).
    pub method: String,
}

pub const MAGIC_COOKIE: &str = "z9hG4bK";

impl TxnKey {
    /// The key of a received request. Requests from RFC 2543 peers (no magic cookie) are keyed
    /// by the fields §17.2.3 lists for them.
    pub fn for_request(req: &Request, via: &Via) -> TxnKey {
        let method = match req.method {
            Method::Ack => "INVITE".to_string(),
            ref m => m.as_str().to_string(),
        };
        match via.branch() {
            Some(b) if b.starts_with(MAGIC_COOKIE) => TxnKey {
                branch: b.to_string(),
                sent_by: via.sent_by(),
                method,
            },
            _ => {
                let from_tag = req
                    .from()
                    .and_then(|f| f.tag().map(str::to_string))
                    .unwrap_or_default();
                let cseq = req.cseq().map(|c| c.seq).unwrap_or(0);
                TxnKey {
                    branch: format!(
                        "2543|{}|{}|{}|{}",
                        req.uri,
                        req.call_id().unwrap_or_default(),
                        from_tag,
                        cseq
                    ),
                    sent_by: via.sent_by(),
                    method,
                }
            }
        }
    }
}

/// Next retransmission interval: doubling, capped at T2 when `cap` (timers E and G), uncapped
/// for timer A.
pub fn backoff(current: Duration, timers: &Timers, cap: bool) -> Duration {
    let next = current * 2;
    if cap {
        next.min(timers.t2)
    } else {
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retransmission_schedule_matches_rfc3261() {
        let t = Timers::default();
        let mut i = t.t1;
        let mut seen = vec![i];
        for _ in 0..5 {
            i = backoff(i, &t, true);
            seen.push(i);
        }
        let ms: Vec<u128> = seen.iter().map(|d| d.as_millis()).collect();
        assert_eq!(ms, vec![500, 1000, 2000, 4000, 4000, 4000]);
        assert_eq!(
            backoff(Duration::from_secs(8), &t, false),
            Duration::from_secs(16)
        );
        assert_eq!(t.t64(), Duration::from_secs(32));
    }
}
