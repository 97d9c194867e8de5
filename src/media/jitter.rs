//! A small receive jitter buffer for the recorder (sans-I/O): reorders packets by extended
//! sequence number, drops duplicates and late packets, and fills gaps with silence once a packet
//! `depth` places later has arrived (or the caller drains it at the end).

/// Samples per slot: up to one 30 ms packet at 8 kHz. Longer payloads are cut to this.
pub const FRAME: usize = 240;
const CAP: usize = 16;
/// Beyond this many missing packets (1 s), the buffer jumps instead of emitting silence.
pub const MAX_GAP: u64 = 50;

#[derive(Clone, Copy)]
struct Slot {
    seq: u64,
    filled: bool,
    len: u16,
    pcm: [i16; FRAME],
}

const EMPTY: Slot = Slot {
    seq: u64::MAX,
    filled: false,
    len: 0,
    pcm: [0; FRAME],
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    Accepted,
    Duplicate,
    /// Older than what was already played out.
    Late,
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
    pub gaps: u64,
    pub duplicates: u64,
    pub late: u64,
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
            gaps: 0,
            duplicates: 0,
            late: 0,
        }
    }

    pub fn push(&mut self, ext_seq: u64, pcm: &[i16]) -> Push {
        self.unpark();
        let next = *self.next.get_or_insert(ext_seq);
        if ext_seq < next {
            self.late += 1;
            return Push::Late;
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
        let i = (ext_seq % CAP as u64) as usize;
        if self.slots[i].filled && self.slots[i].seq == ext_seq {
            self.duplicates += 1;
            return Push::Duplicate;
        }
        // Written in place: only the packet's samples are copied.
        fill(&mut self.slots[i], ext_seq, &pcm[..len]);
        self.highest = self.highest.max(ext_seq);
        Push::Accepted
    }

    /// The next frame to write, when enough later packets have arrived to stop waiting for it.
    pub fn pop_ready(&mut self) -> Option<Out<'_>> {
        let next = self.next?;
        if self.highest < next + self.depth {
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
                self.unpark();
                return Out::Skipped(skipped);
            }
        }
        let i = (next % CAP as u64) as usize;
        self.next = Some(next + 1);
        // The slot is handed out as it is (no copy); a packet parked for it waits until the
        // next push or pop (`unpark` at their start), so it cannot overwrite it first.
        if self.slots[i].filled && self.slots[i].seq == next {
            self.slots[i].filled = false;
            let len = self.slots[i].len as usize;
            Out::Frame(&self.slots[i].pcm[..len])
        } else {
            self.gaps += 1;
            Out::Gap
        }
    }

    fn any_buffered_before(&self, p: u64) -> bool {
        let next = self.next.unwrap_or(0);
        self.slots
            .iter()
            .any(|s| s.filled && s.seq >= next && s.seq < p)
    }

    fn unpark(&mut self) {
        let next = self.next.unwrap_or(0);
        if let Some(p) = self.pending {
            if p < next + CAP as u64 {
                let i = (p % CAP as u64) as usize;
                self.slots[i] = *self.pending_slot;
                self.pending = None;
            }
        }
    }
}

fn fill(slot: &mut Slot, seq: u64, pcm: &[i16]) {
    slot.seq = seq;
    slot.filled = true;
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
            jb.push(s, &frame(s as i16));
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
        assert_eq!(jb.duplicates, 1);
        assert_eq!(jb.late, 1);
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
}
