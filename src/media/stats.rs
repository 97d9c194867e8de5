//! Receive statistics per RFC 3550: extended sequence numbers (A.1), loss (A.3), interarrival
//! jitter (A.8), and an estimated MOS from a simplified E-model (ITU-T G.107).

/// Per-stream receive statistics (sans-I/O: arrival times are inputs, in RTP clock units).
#[derive(Debug, Clone, Default)]
pub struct RecvStats {
    initialised: bool,
    base_seq: u32,
    max_seq: u16,
    /// Sequence cycles × 65536, capped at [`MAX_CYCLES`] so crafted wrap after wrap cannot
    /// overflow it (nor the extended numbers built on it).
    cycles: u64,
    /// Packets of the current stream (since the last restart), for the loss figures.
    received_stream: u64,
    /// Packets received in all, across restarts.
    pub received: u64,
    /// Times the sender restarted its stream (a sequence jump beyond A.1's limits, or a new
    /// SSRC): the extended sequence numbers start again from the new packet.
    pub restarts: u64,
    expected_prior: u64,
    received_prior: u64,
    transit: Option<i64>,
    /// Jitter estimate ×16 (RFC 3550 A.8 fixed-point form).
    jitter16: u64,
}

/// A.1's limits.
const MAX_DROPOUT: u16 = 3000;
const MAX_MISORDER: u16 = 100;
/// Cap of `cycles`: extended numbers stay below 2^48, far from overflowing any sum over them.
const MAX_CYCLES: u64 = 1 << 47;

impl RecvStats {
    /// Account one packet; returns its extended sequence number, or `None` when it is far out
    /// of order (then it is counted but the caller may drop it).
    pub fn handle_packet(&mut self, seq: u16, rtp_ts: u32, arrival: u32) -> Option<u64> {
        if !self.initialised {
            self.initialised = true;
            self.base_seq = seq as u32;
            self.max_seq = seq;
            self.cycles = 0;
        }
        self.received += 1;
        self.received_stream += 1;
        let udelta = seq.wrapping_sub(self.max_seq);
        let ext = if udelta < MAX_DROPOUT {
            if seq < self.max_seq {
                self.cycles = (self.cycles + (1 << 16)).min(MAX_CYCLES);
            }
            self.max_seq = seq;
            self.cycles + seq as u64
        } else if udelta <= u16::MAX - MAX_MISORDER {
            // A very large jump: a restarted sender. Re-base.
            self.restart();
            self.initialised = true;
            self.base_seq = seq as u32;
            self.max_seq = seq;
            self.received_stream = 1;
            seq as u64
        } else {
            // Late, reordered: belongs to the current or previous cycle.
            let cycles = if seq > self.max_seq {
                self.cycles.saturating_sub(1 << 16)
            } else {
                self.cycles
            };
            cycles + seq as u64
        };
        // A.8: D = (Rj - Ri) - (Sj - Si); J += (|D| - J) / 16.
        let transit = arrival.wrapping_sub(rtp_ts) as i32 as i64;
        if let Some(prev) = self.transit {
            let d = (transit - prev).unsigned_abs();
            let j = self.jitter16 as i64 + d as i64 - ((self.jitter16 as i64 + 8) >> 4);
            self.jitter16 = j.max(0) as u64;
        }
        self.transit = Some(transit);
        Some(ext)
    }

    /// The sender restarted its stream (a new SSRC): the next packet starts a new sequence.
    /// Totals (`received`, jitter) are kept; loss is counted afresh.
    pub fn restart(&mut self) {
        self.restarts += 1;
        self.initialised = false;
        self.cycles = 0;
        self.received_stream = 0;
        self.expected_prior = 0;
        self.received_prior = 0;
        self.transit = None;
    }

    pub fn extended_max(&self) -> u64 {
        self.cycles + self.max_seq as u64
    }

    pub fn expected(&self) -> u64 {
        if !self.initialised {
            return 0;
        }
        self.extended_max() + 1 - self.base_seq as u64
    }

    /// Cumulative lost (may be negative with duplicates, as in RFC 3550).
    pub fn lost(&self) -> i64 {
        self.expected() as i64 - self.received_stream as i64
    }

    /// Interarrival jitter in RTP timestamp units.
    pub fn jitter(&self) -> u32 {
        (self.jitter16 >> 4) as u32
    }

    /// Fraction lost since the previous call (8-bit fixed point, for RTCP RR), and resets the
    /// interval.
    pub fn take_fraction_lost(&mut self) -> u8 {
        let expected = self.expected();
        let expected_interval = expected.saturating_sub(self.expected_prior);
        self.expected_prior = expected;
        let received_interval = self.received_stream.saturating_sub(self.received_prior);
        self.received_prior = self.received_stream;
        let lost_interval = expected_interval as i64 - received_interval as i64;
        if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / expected_interval as i64).min(255) as u8
        }
    }
}

/// Estimated MOS (1..4.5) from one-way delay, jitter (ms) and loss (%), simplified E-model for
/// G.711 (Ie = 0, Bpl ~ 25 folded into the 2.5 per % slope).
pub fn estimate_mos(one_way_delay_ms: f64, jitter_ms: f64, loss_percent: f64) -> f64 {
    let eff = one_way_delay_ms + 2.0 * jitter_ms + 10.0;
    let mut r = if eff < 160.0 {
        93.2 - eff / 40.0
    } else {
        93.2 - (eff - 120.0) / 10.0
    };
    r -= 2.5 * loss_percent.max(0.0);
    let r = r.clamp(0.0, 100.0);
    (1.0 + 0.035 * r + 0.000007 * r * (r - 60.0) * (100.0 - r)).clamp(1.0, 4.5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_stream_has_no_loss_and_no_jitter() {
        let mut s = RecvStats::default();
        for i in 0..1000u32 {
            let seq = (65000u32 + i) as u16; // wraps
            let ext = s.handle_packet(seq, i * 160, 5000 + i * 160).unwrap();
            assert_eq!(ext, 65000 + i as u64);
        }
        assert_eq!(s.expected(), 1000);
        assert_eq!(s.lost(), 0);
        assert_eq!(s.jitter(), 0);
        assert_eq!(s.take_fraction_lost(), 0);
    }

    #[test]
    fn loss_and_fraction_lost() {
        let mut s = RecvStats::default();
        for i in 0..100u32 {
            if i % 4 == 1 {
                continue; // lose 25 %
            }
            s.handle_packet(i as u16, i * 160, i * 160);
        }
        // Highest received is 99: expected 100, received 75.
        assert_eq!(s.lost(), 25);
        assert_eq!(s.take_fraction_lost(), 64); // 25 % of 256
        for i in 100..200u32 {
            s.handle_packet(i as u16, i * 160, i * 160);
        }
        assert_eq!(s.take_fraction_lost(), 0);
    }

    #[test]
    fn jitter_converges_to_the_rfc_estimate() {
        // Alternating transit +0/+80 units (10 ms): |D| is always 80, so J -> 80.
        let mut s = RecvStats::default();
        for i in 0..2000u32 {
            let extra = if i % 2 == 0 { 0 } else { 80 };
            s.handle_packet(i as u16, i * 160, i * 160 + extra);
        }
        assert!((78..=80).contains(&s.jitter()), "jitter {}", s.jitter());
    }

    #[test]
    fn reordered_late_packet_across_wrap_keeps_its_cycle() {
        let mut s = RecvStats::default();
        s.handle_packet(65534, 0, 0);
        s.handle_packet(1, 480, 480); // 65535 and 0 missing, wrapped
        assert_eq!(s.handle_packet(65535, 160, 500), Some(65535));
        assert_eq!(s.handle_packet(0, 320, 500), Some(65536));
        assert_eq!(s.lost(), 0);
    }

    #[test]
    fn mos_orders_conditions() {
        let good = estimate_mos(20.0, 2.0, 0.0);
        let lossy = estimate_mos(20.0, 2.0, 5.0);
        let awful = estimate_mos(400.0, 80.0, 20.0);
        assert!(good > 4.3 && good <= 4.5, "{good}");
        assert!(lossy < good && lossy > 3.0, "{lossy}");
        assert!(awful < 2.0, "{awful}");
    }

    #[test]
    fn a_restarted_stream_is_flagged_and_counted_in_full() {
        let mut s = RecvStats::default();
        for i in 0..50u32 {
            s.handle_packet((30000 + i) as u16, i * 160, i * 160);
        }
        // The phone restarts its stream: sequence 20,000 back, timestamp elsewhere.
        assert_eq!(s.handle_packet(10000, 9_999_999, 8000), Some(10000));
        assert_eq!(s.restarts, 1);
        assert_eq!(s.handle_packet(10001, 10_000_159, 8160), Some(10001));
        assert_eq!(s.received, 52);
        assert_eq!(s.lost(), 0);
        // A new SSRC, told by the caller.
        s.restart();
        assert_eq!(s.handle_packet(7, 0, 9000), Some(7));
        assert_eq!(s.restarts, 2);
        assert_eq!(s.lost(), 0);
        assert_eq!(s.received, 53);
    }

    #[test]
    fn crafted_wraps_cannot_overflow_the_cycle_count() {
        // 2,999 forward each time: 1.5 M packets wrap 68,000 times, past a u32 cycle count.
        let mut s = RecvStats::default();
        let mut seq = 0u16;
        let mut last = 0;
        for i in 0..1_500_000u32 {
            seq = seq.wrapping_add(2999);
            last = s.handle_packet(seq, i, i).unwrap_or(last);
        }
        assert!(last < 1 << 48, "extended numbers stay bounded: {last}");
        assert!(s.expected() > 0);
        let _ = s.take_fraction_lost();
    }
}
