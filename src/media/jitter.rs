//! A small receive jitter buffer for the recorder (sans-I/O): reorders packets by extended
//! sequence number, drops duplicates and late packets, and fills gaps with silence once a packet
//! `depth` places later has arrived (or the caller drains it at the end).
//!
//! It waits only when there is a hole: the packet due next is played out at once, and the usual
//! in-order packet is not even copied in ([`Push::Now`]). With a thousand calls the ring of each
//! is cold in cache by the time its next packet comes; reading and writing it for every packet
//! cost more than the rest of the buffer's work.

/// Samples per slot: up to one 30 ms packet at 8 kHz. Longer payloads are cut to this.
pub const FRAME: usize = 240;
const CAP: usize = 16;
/// Beyond this many missing packets (1 s), the buffer jumps instead of emitting silence.
pub const MAX_GAP: u64 = 50;
/// This many consecutive packets, each one after the other, all behind what was played out:
/// not late packets but a sender that restarted its numbering a little back (larger jumps are
/// told by [`crate::media::stats::RecvStats`]). The buffer then starts again from them
/// ([`Push::Restart`]) instead of dropping the rest of the stream as late.
pub const RESYNC_AFTER: u32 = 3;

#[derive(Clone, Copy)]
struct Slot {
    seq: u64,
    len: u16,
    pcm: [i16; FRAME],
}

const EMPTY: Slot = Slot {
    seq: u64::MAX,
    len: 0,
    pcm: [0; FRAME],
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a packet pushed with `Push::Now` is not kept: play its audio out now"]
pub enum Push {
    /// The packet due next: not copied in; the caller plays its audio out now, then drains
    /// what may follow it with [`JitterBuffer::pop_ready`].
    Now,
    /// Held until the packets before it are played out (or given up).
    Accepted,
    Duplicate,
    /// Older than what was already played out.
    Late,
    /// The stream restarted behind what was played out (see [`RESYNC_AFTER`]): the packet is
    /// not kept. The caller drains what is held ([`JitterBuffer::pop_any`]), calls
    /// [`JitterBuffer::restart`], and pushes the packet again.
    Restart,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Out<'a> {
    Frame(&'a [i16]),
    /// One packet's worth of silence for a lost packet.
    Gap,
    /// A jump over `n` missing packets (more than [`MAX_GAP`]): the recorder writes no audio
    /// for it (the stream restarted or the network went away for long).
    Skipped(u64),
}

pub struct JitterBuffer {
    slots: Box<[Slot; CAP]>,
    next: Option<u64>,
    highest: u64,
    depth: u64,
    pending: Option<u64>,
    pending_slot: Box<Slot>,
    /// Bit `seq % CAP` set: that slot holds a packet (all within `next..next + CAP`). Kept
    /// beside the header so a check does not touch the ring.
    filled: u16,
    /// Bit k set: packet `next - 1 - k` was played out (received, not a gap): a copy of it is
    /// a duplicate, not a late packet.
    played: u64,
    /// Consecutive packets refused as late or duplicate, and the last of them.
    rejected_run: u32,
    last_rejected: u64,
    pub gaps: u64,
    pub duplicates: u64,
    pub late: u64,
    pub restarts: u64,
}

impl JitterBuffer {
    /// `depth` in packets (1..CAP-1): how long to wait for a missing packet before giving up.
    pub fn new(depth: usize) -> Self {
        JitterBuffer {
            slots: Box::new([EMPTY; CAP]),
            next: None,
            highest: 0,
            depth: depth.clamp(1, CAP - 1) as u64,
            pending: None,
            pending_slot: Box::new(EMPTY),
            filled: 0,
            played: 0,
            rejected_run: 0,
            last_rejected: 0,
            gaps: 0,
            duplicates: 0,
            late: 0,
            restarts: 0,
        }
    }

    /// Start again from the next packet pushed (a new stream); what was held is forgotten, so
    /// drain it first with [`JitterBuffer::pop_any`]. Counters are kept.
    pub fn restart(&mut self) {
        self.next = None;
        self.highest = 0;
        self.pending = None;
        self.filled = 0;
        self.played = 0;
        self.rejected_run = 0;
        self.restarts += 1;
    }

    /// A packet refused as late or duplicate: `true` when it is the [`RESYNC_AFTER`]th of a
    /// run of consecutive numbers, i.e. a restarted stream.
    fn rejected(&mut self, ext_seq: u64) -> bool {
        if self.rejected_run > 0 && ext_seq == self.last_rejected.wrapping_add(1) {
            self.rejected_run += 1;
        } else {
            self.rejected_run = 1;
        }
        self.last_rejected = ext_seq;
        self.rejected_run >= RESYNC_AFTER
    }

    pub fn push(&mut self, ext_seq: u64, pcm: &[i16]) -> Push {
        self.unpark();
        let next = *self.next.get_or_insert(ext_seq);
        if ext_seq < next {
            if self.rejected(ext_seq) {
                return Push::Restart;
            }
            let back = next - 1 - ext_seq;
            if back < 64 && self.played & (1 << back) != 0 {
                self.duplicates += 1;
                return Push::Duplicate;
            }
            self.late += 1;
            return Push::Late;
        }
        self.rejected_run = 0;
        if ext_seq == next && !self.is_filled(next) {
            self.advance(true);
            self.highest = self.highest.max(ext_seq);
            return Push::Now;
        }
        if self.pending == Some(ext_seq) {
            self.duplicates += 1;
            return Push::Duplicate;
        }
        let len = pcm.len().min(FRAME);
        if ext_seq >= next + CAP as u64 {
            // Too far ahead to hold in the ring yet: park it until the ring drains to it.
            // (The caller drains after every push, so at most one is ever parked.)
            if let Some(p) = self.pending {
                if p > ext_seq {
                    // Keep the nearer one; the farther is dropped as a loss.
                    return Push::Late;
                }
            }
            self.pending = Some(ext_seq);
            fill(&mut self.pending_slot, ext_seq, &pcm[..len]);
            self.highest = self.highest.max(ext_seq);
            return Push::Accepted;
        }
        if self.is_filled(ext_seq) {
            self.duplicates += 1;
            return Push::Duplicate;
        }
        // Written in place: only the packet's samples are copied.
        let i = (ext_seq % CAP as u64) as usize;
        fill(&mut self.slots[i], ext_seq, &pcm[..len]);
        self.filled |= 1 << i;
        self.highest = self.highest.max(ext_seq);
        Push::Accepted
    }

    /// The next frame to write: the packet due, once it is here, or silence for it when enough
    /// later packets have arrived to stop waiting for it.
    pub fn pop_ready(&mut self) -> Option<Out<'_>> {
        let next = self.next?;
        if !self.is_filled(next) && self.highest < next + self.depth {
            return None;
        }
        Some(self.emit())
    }

    /// Drain everything held, gaps included (end of a recording). Call until `None`.
    pub fn pop_any(&mut self) -> Option<Out<'_>> {
        let next = self.next?;
        if next > self.highest {
            return None;
        }
        Some(self.emit())
    }

    fn emit(&mut self) -> Out<'_> {
        self.unpark();
        let next = self.next.unwrap_or(0);
        // A long hole with nothing buffered before the parked packet: jump over it.
        if let Some(p) = self.pending {
            if p - next > MAX_GAP && !self.any_buffered_before(p) {
                let skipped = p - next;
                self.next = Some(p);
                self.played = 0;
                self.unpark();
                return Out::Skipped(skipped);
            }
        }
        let i = (next % CAP as u64) as usize;
        // The slot is handed out as it is (no copy); a packet parked for it waits until the
        // next push or pop (`unpark` at their start), so it cannot overwrite it first.
        if self.is_filled(next) && self.slots[i].seq == next {
            self.filled &= !(1 << i);
            self.advance(true);
            let len = self.slots[i].len as usize;
            Out::Frame(&self.slots[i].pcm[..len])
        } else {
            self.filled &= !(1 << i);
            self.advance(false);
            self.gaps += 1;
            Out::Gap
        }
    }

    fn is_filled(&self, seq: u64) -> bool {
        self.filled & (1 << (seq % CAP as u64)) != 0
    }

    /// `next` moves on past a packet played out (`true`) or a gap.
    fn advance(&mut self, played: bool) {
        self.next = Some(self.next.unwrap_or(0) + 1);
        self.played = self.played << 1 | played as u64;
    }

    fn any_buffered_before(&self, p: u64) -> bool {
        let next = self.next.unwrap_or(0);
        (next..p.min(next + CAP as u64)).any(|s| self.is_filled(s))
    }

    fn unpark(&mut self) {
        let next = self.next.unwrap_or(0);
        if let Some(p) = self.pending {
            if p < next + CAP as u64 {
                let i = (p % CAP as u64) as usize;
                self.slots[i] = *self.pending_slot;
                self.filled |= 1 << i;
                self.pending = None;
            }
        }
    }
}

fn fill(slot: &mut Slot, seq: u64, pcm: &[i16]) {
    slot.seq = seq;
    slot.len = pcm.len() as u16;
    slot.pcm[..pcm.len()].copy_from_slice(pcm);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(v: i16) -> [i16; FRAME] {
        [v; FRAME]
    }

    /// Push in order given, draining after each push as the media path does; then drain all.
    fn run(jb: &mut JitterBuffer, seqs: &[u64]) -> Vec<String> {
        let mut out = vec![];
        let mut take = |o: Out<'_>| match o {
            Out::Frame(f) => out.push(format!("{}", f[0])),
            Out::Gap => out.push("gap".into()),
            Out::Skipped(n) => out.push(format!("skip{n}")),
        };
        for &s in seqs {
            let mut pushed = jb.push(s, &frame(s as i16));
            if pushed == Push::Restart {
                while let Some(o) = jb.pop_any() {
                    take(o);
                }
                jb.restart();
                pushed = jb.push(s, &frame(s as i16));
            }
            if pushed == Push::Now {
                take(Out::Frame(&frame(s as i16)));
            }
            while let Some(o) = jb.pop_ready() {
                take(o);
            }
        }
        while let Some(o) = jb.pop_any() {
            take(o);
        }
        out
    }

    #[test]
    fn in_order_packets_are_played_out_at_once_without_a_copy() {
        let mut jb = JitterBuffer::new(3);
        for s in 100..200 {
            assert_eq!(jb.push(s, &frame(1)), Push::Now);
            assert_eq!(jb.pop_ready(), None);
        }
        // A hole: 201 waits for 200 until 203 has come (depth 3), then 200 is silence.
        assert_eq!(jb.push(201, &frame(201)), Push::Accepted);
        assert_eq!(jb.pop_ready(), None);
        assert_eq!(jb.push(202, &frame(202)), Push::Accepted);
        assert_eq!(jb.pop_ready(), None);
        assert_eq!(jb.push(203, &frame(203)), Push::Accepted);
        assert_eq!(jb.pop_ready(), Some(Out::Gap));
        assert_eq!(jb.pop_ready(), Some(Out::Frame(&frame(201)[..])));
        assert_eq!(jb.pop_ready(), Some(Out::Frame(&frame(202)[..])));
        assert_eq!(jb.pop_ready(), Some(Out::Frame(&frame(203)[..])));
        assert_eq!(jb.pop_ready(), None);
        assert_eq!(jb.push(204, &frame(1)), Push::Now);
        assert_eq!(jb.push(200, &frame(1)), Push::Late);
        assert_eq!(jb.push(199, &frame(1)), Push::Duplicate);
    }

    #[test]
    fn reorders_within_depth() {
        let mut jb = JitterBuffer::new(3);
        assert_eq!(
            run(&mut jb, &[1, 3, 2, 5, 4, 6]),
            ["1", "2", "3", "4", "5", "6"]
        );
        assert_eq!(jb.gaps, 0);
    }

    #[test]
    fn drops_duplicates_and_late_packets() {
        let mut jb = JitterBuffer::new(2);
        assert_eq!(
            run(&mut jb, &[10, 11, 11, 12, 13, 10, 14]),
            ["10", "11", "12", "13", "14"]
        );
        // Both the second 11 and the second 10 repeat packets already played out; a late
        // packet is one whose place went to silence (see `fills_losses_with_silence_once`).
        assert_eq!(jb.duplicates, 2);
        assert_eq!(jb.late, 0);
    }

    #[test]
    fn fills_losses_with_silence_once() {
        let mut jb = JitterBuffer::new(2);
        assert_eq!(
            run(&mut jb, &[1, 2, 4, 5, 6, 9, 10, 11]),
            ["1", "2", "gap", "4", "5", "6", "gap", "gap", "9", "10", "11"]
        );
        assert_eq!(jb.gaps, 3);
        // A late arrival of a packet already replaced by silence is dropped.
        let mut jb = JitterBuffer::new(1);
        assert_eq!(run(&mut jb, &[1, 3, 2, 4]), ["1", "gap", "3", "4"]);
        assert_eq!(jb.late, 1);
    }

    #[test]
    fn a_packet_parked_a_whole_ring_ahead_does_not_overwrite_the_one_due() {
        // 17 lands in 1's slot (16 slots): 1 must still come out before 17 takes its place.
        let mut jb = JitterBuffer::new(2);
        let out = run(&mut jb, &[1, 17]);
        assert_eq!(out[0], "1");
        assert_eq!(&out[1..16], vec!["gap"; 15].as_slice());
        assert_eq!(out[16], "17");
        assert_eq!(out.len(), 17);
    }

    #[test]
    fn gaps_beyond_the_ring_are_filled_and_long_holes_skipped() {
        let mut jb = JitterBuffer::new(2);
        let out = run(&mut jb, &[1, 2, 30, 31]);
        assert_eq!(out.len(), 31);
        assert_eq!(out.iter().filter(|s| *s == "gap").count(), 27);
        assert_eq!(out[29], "30");
        let mut jb = JitterBuffer::new(2);
        assert_eq!(
            run(&mut jb, &[1, 2, 1000, 1001]),
            ["1", "2", "skip997", "1000", "1001"]
        );
    }

    #[test]
    fn a_stream_restarted_a_little_back_is_kept_after_a_few_packets() {
        // Played up to 119, then the sender starts again at 100: 100 and 101 are dropped as
        // late, 102 shows a restart, and from there on everything is kept.
        let mut jb = JitterBuffer::new(3);
        let mut seqs: Vec<u64> = (90..120).collect();
        seqs.extend(100..140);
        let out = run(&mut jb, &seqs);
        assert_eq!(out.len(), 30 + 40 - (RESYNC_AFTER as usize - 1));
        assert_eq!(out[30], "102");
        assert_eq!(out.last().map(String::as_str), Some("139"));
        assert_eq!(jb.restarts, 1);
        // Genuinely late or duplicate packets, not consecutive, are still only dropped.
        let mut jb = JitterBuffer::new(1);
        assert_eq!(run(&mut jb, &[1, 2, 3, 4, 2, 5, 3, 6, 1, 7]).len(), 7);
        assert_eq!(jb.restarts, 0);
    }
}
