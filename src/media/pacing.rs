//! Pacing schedule math (sans-I/O): one monotonic schedule per call. The tick index since the
//! call's start gives the RTP timestamp (`ts_base + tick * samples_per_tick`), so nothing drifts;
//! the sequence number counts packets actually sent, so it stays continuous when ticks are
//! skipped. When the media thread wakes late it catches up at most `max_catchup` ticks and skips
//! older ones (their timestamps are jumped over, which a receiver treats as a gap, not a
//! clock skew).

/// Nanoseconds on a monotonic clock (the I/O shell reads `CLOCK_MONOTONIC`).
pub type Nanos = u64;

#[derive(Debug, Clone)]
pub struct Pacer {
    start: Nanos,
    period: Nanos,
    next_tick: u64,
    max_catchup: u64,
    pub skipped_ticks: u64,
}

/// Ticks to send now: `first..first+count`, after skipping `skipped` older ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    pub first: u64,
    pub count: u64,
    pub skipped: u64,
}

impl Pacer {
    pub fn new(start: Nanos, period: Nanos, max_catchup: u64) -> Self {
        Pacer {
            start,
            period: period.max(1),
            next_tick: 0,
            max_catchup: max_catchup.max(1),
            skipped_ticks: 0,
        }
    }

    /// When the next tick is due.
    pub fn next_deadline(&self) -> Nanos {
        self.start + self.next_tick * self.period
    }

    /// Takes the next tick now, ahead of its deadline, and returns it: a new prompt starts at
    /// once instead of at the call's next slot. The ticks after it keep their deadlines (the
    /// far end sees one packet early, which its jitter buffer absorbs).
    ///
    /// At most one tick ahead: when the next deadline is already more than a period away (a
    /// tick was just taken early), none is taken. Prompts replaced faster than the packet rate
    /// (a caller's burst of keys, a playlist replaced a thousand times) must not push the
    /// call's packets into the future, which silenced it for 20 ms per replacement.
    pub fn take_next_early(&mut self, now: Nanos) -> Option<u64> {
        if self.next_deadline() > now.saturating_add(self.period) {
            return None;
        }
        let t = self.next_tick;
        self.next_tick += 1;
        Some(t)
    }

    /// The ticks due at `now` (none if `now` is before the next deadline).
    pub fn poll(&mut self, now: Nanos) -> Due {
        if now < self.next_deadline() {
            return Due {
                first: self.next_tick,
                count: 0,
                skipped: 0,
            };
        }
        let last = (now - self.start) / self.period;
        let due = last + 1 - self.next_tick;
        let skipped = due.saturating_sub(self.max_catchup);
        let first = self.next_tick + skipped;
        let count = due - skipped;
        self.next_tick = last + 1;
        self.skipped_ticks += skipped;
        Due {
            first,
            count,
            skipped,
        }
    }
}

/// The RTP header fields of an outgoing stream, derived from tick indices.
#[derive(Debug, Clone, Copy)]
pub struct RtpClock {
    pub ssrc: u32,
    pub ts_base: u32,
    pub samples_per_tick: u32,
    /// The sequence number of the next packet.
    pub seq: u16,
}

impl RtpClock {
    pub fn timestamp(&self, tick: u64) -> u32 {
        self.ts_base
            .wrapping_add((tick as u32).wrapping_mul(self.samples_per_tick))
    }

    /// Take the next sequence number.
    pub fn next_seq(&mut self) -> u16 {
        let s = self.seq;
        self.seq = self.seq.wrapping_add(1);
        s
    }
}

/// The phase slot of a schedule in a wheel of `slots` slots over one period: calls whose
/// deadlines fall in the same part of the 20 ms cycle wake together.
pub fn wheel_slot(deadline: Nanos, period: Nanos, slots: u64) -> usize {
    ((deadline % period) * slots / period) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn on_time_wakes_send_one_tick_each() {
        let mut p = Pacer::new(1000 * MS, 20 * MS, 3);
        assert_eq!(p.poll(999 * MS).count, 0);
        assert_eq!(
            p.poll(1000 * MS),
            Due {
                first: 0,
                count: 1,
                skipped: 0
            }
        );
        assert_eq!(p.poll(1005 * MS).count, 0);
        assert_eq!(
            p.poll(1020 * MS + 300_000),
            Due {
                first: 1,
                count: 1,
                skipped: 0
            }
        );
        assert_eq!(p.next_deadline(), 1040 * MS);
        // A thousand ticks later, still exactly on the grid: no drift from wake jitter.
        for t in 2..1002u64 {
            let d = p.poll(1000 * MS + t * 20 * MS + (t * 7919) % (4 * MS));
            assert_eq!(
                d,
                Due {
                    first: t,
                    count: 1,
                    skipped: 0
                }
            );
        }
    }

    #[test]
    fn late_wake_catches_up_then_skips() {
        let mut p = Pacer::new(0, 20 * MS, 3);
        assert_eq!(p.poll(0).count, 1);
        // 50 ms late: ticks 1, 2, 3 are due: all three sent.
        assert_eq!(
            p.poll(70 * MS),
            Due {
                first: 1,
                count: 3,
                skipped: 0
            }
        );
        // 200 ms stall: ticks 4..=14 due; send the last 3, skip 8.
        assert_eq!(
            p.poll(290 * MS),
            Due {
                first: 12,
                count: 3,
                skipped: 8
            }
        );
        assert_eq!(p.skipped_ticks, 8);
        assert_eq!(
            p.poll(300 * MS),
            Due {
                first: 15,
                count: 1,
                skipped: 0
            }
        );
    }

    #[test]
    fn timestamps_follow_ticks_and_seq_follows_packets() {
        let mut c = RtpClock {
            ssrc: 1,
            ts_base: u32::MAX - 159,
            samples_per_tick: 160,
            seq: u16::MAX,
        };
        assert_eq!(c.timestamp(0), u32::MAX - 159);
        assert_eq!(c.timestamp(1), 0); // wraps
        assert_eq!(c.timestamp(12), 160 * 11);
        assert_eq!(c.next_seq(), u16::MAX);
        assert_eq!(c.next_seq(), 0);
        // After a skip of 8 ticks the timestamp jumps by 9*160 while seq advances by one.
        let (a, b) = (c.timestamp(3), c.timestamp(12));
        assert_eq!(b.wrapping_sub(a), 9 * 160);
    }

    #[test]
    fn wheel_slots_by_phase() {
        assert_eq!(wheel_slot(0, 20 * MS, 4), 0);
        assert_eq!(wheel_slot(4 * MS, 20 * MS, 4), 0);
        assert_eq!(wheel_slot(5 * MS, 20 * MS, 4), 1);
        assert_eq!(wheel_slot(19 * MS, 20 * MS, 4), 3);
        assert_eq!(wheel_slot(125 * MS, 20 * MS, 4), 1);
    }

    #[test]
    fn a_tick_taken_early_is_not_sent_again_and_the_next_keeps_its_deadline() {
        let mut p = Pacer::new(1_000, 20, 5);
        assert_eq!(p.poll(1_000).count, 1); // tick 0
        assert_eq!(p.take_next_early(1_005), Some(1)); // tick 1, due at 1_020, sent at 1_005
        assert_eq!(p.take_next_early(1_006), None, "one tick ahead at most");
        assert_eq!(p.take_next_early(1_007), None);
        assert_eq!(p.poll(1_020).count, 0);
        assert_eq!(p.next_deadline(), 1_040);
        let due = p.poll(1_040);
        assert_eq!((due.first, due.count), (2, 1));
    }
}
