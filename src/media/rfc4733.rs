//! RFC 4733 telephone-event receiver and sender (sans-I/O).
//!
//! The receiver turns a stream of event packets into one digit per key press: the RTP timestamp
//! identifies the event (§2.5.1.2: all packets of one event share the start timestamp), so
//! updates of a long press, the three end-packet retransmissions and network duplicates all
//! collapse into the digit reported at the first packet seen for that timestamp.

/// The digit of a DTMF event code (0-9, *, #, A-D), `None` for other events (flash, tones).
pub fn event_to_digit(event: u8) -> Option<char> {
    match event {
        0..=9 => Some((b'0' + event) as char),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some((b'A' + event - 12) as char),
        _ => None,
    }
}

/// The event code for a digit, the inverse of [`event_to_digit`].
pub fn digit_to_event(digit: char) -> Option<u8> {
    match digit {
        '0'..='9' => Some(digit as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        'A'..='D' => Some(digit as u8 - b'A' + 12),
        'a'..='d' => Some(digit as u8 - b'a' + 12),
        _ => None,
    }
}

/// One parsed telephone-event payload (§2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    pub event: u8,
    pub end: bool,
    pub volume: u8,
    pub duration: u16,
}

impl TelephoneEvent {
    /// Parse the first 4-byte block of a payload; `None` if it is too short.
    pub fn parse(payload: &[u8]) -> Option<TelephoneEvent> {
        let b = payload.get(..4)?;
        Some(TelephoneEvent {
            event: b[0],
            end: b[1] & 0x80 != 0,
            volume: b[1] & 0x3F,
            duration: u16::from_be_bytes([b[2], b[3]]),
        })
    }

    pub fn write(&self, out: &mut [u8; 4]) {
        out[0] = self.event;
        out[1] = (if self.end { 0x80 } else { 0 }) | (self.volume & 0x3F);
        out[2..4].copy_from_slice(&self.duration.to_be_bytes());
    }
}

/// Collapses telephone-event packets into digits.
#[derive(Debug, Default)]
pub struct EventReceiver {
    /// Timestamps of the most recent events reported, newest last (a small ring: packets of
    /// an older event arriving late after a newer one must not report it twice).
    recent: [Option<u32>; 4],
    next: usize,
}

impl EventReceiver {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feed one telephone-event packet's event (parsed with [`TelephoneEvent::parse`]) and
    /// RTP timestamp. Returns the digit when this packet is the first seen of a new event,
    /// `None` otherwise.
    pub fn handle_event(&mut self, timestamp: u32, ev: TelephoneEvent) -> Option<char> {
        let digit = event_to_digit(ev.event)?;
        if self.recent.contains(&Some(timestamp)) {
            return None;
        }
        self.recent[self.next] = Some(timestamp);
        self.next = (self.next + 1) % self.recent.len();
        Some(digit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A packet's payload through the parse the media thread does first.
    fn feed(r: &mut EventReceiver, timestamp: u32, payload: &[u8]) -> Option<char> {
        TelephoneEvent::parse(payload).and_then(|ev| r.handle_event(timestamp, ev))
    }

    fn pkt(event: u8, end: bool, duration: u16) -> [u8; 4] {
        let mut b = [0u8; 4];
        TelephoneEvent {
            event,
            end,
            volume: 10,
            duration,
        }
        .write(&mut b);
        b
    }

    #[test]
    fn one_digit_per_event_with_updates_and_three_end_packets() {
        let mut r = EventReceiver::new();
        let mut got = vec![];
        // '5' at ts 1000: start, 4 updates, 3 end packets.
        for d in [160u16, 320, 480, 640, 800] {
            got.extend(feed(&mut r, 1000, &pkt(5, false, d)));
        }
        for _ in 0..3 {
            got.extend(feed(&mut r, 1000, &pkt(5, true, 960)));
        }
        assert_eq!(got, vec!['5']);
    }

    #[test]
    fn long_press_is_one_digit_and_same_key_twice_is_two() {
        let mut r = EventReceiver::new();
        let mut got = vec![];
        // A 3-second press: 150 updates (duration wraps past u16 in a real long press; the
        // timestamp stays, so it stays one event).
        for i in 1..=150u16 {
            got.extend(feed(&mut r, 8000, &pkt(1, false, i.wrapping_mul(160))));
        }
        got.extend(feed(&mut r, 8000, &pkt(1, true, 24000)));
        // Same key again: new timestamp, new digit.
        got.extend(feed(&mut r, 40000, &pkt(1, false, 160)));
        got.extend(feed(&mut r, 40000, &pkt(1, true, 800)));
        assert_eq!(got, vec!['1', '1']);
    }

    #[test]
    fn duplicates_reordering_and_lost_start_packets() {
        let mut r = EventReceiver::new();
        let mut got = vec![];
        // Only the end packets of '#' arrive (start lost): still one digit.
        got.extend(feed(&mut r, 500, &pkt(11, true, 800)));
        got.extend(feed(&mut r, 500, &pkt(11, true, 800)));
        // '*' then a late duplicate of '#' after it: not reported twice.
        got.extend(feed(&mut r, 2000, &pkt(10, false, 160)));
        got.extend(feed(&mut r, 500, &pkt(11, true, 800)));
        got.extend(feed(&mut r, 2000, &pkt(10, true, 480)));
        assert_eq!(got, vec!['#', '*']);
    }

    #[test]
    fn malformed_and_non_digit_events_are_ignored() {
        let mut r = EventReceiver::new();
        assert_eq!(feed(&mut r, 1, &[]), None);
        assert_eq!(feed(&mut r, 1, &[1, 2, 3]), None);
        assert_eq!(feed(&mut r, 1, &pkt(16, false, 160)), None); // flash
        assert_eq!(feed(&mut r, 1, &pkt(200, false, 160)), None);
        assert_eq!(feed(&mut r, 2, &pkt(15, false, 160)), Some('D'));
    }

    #[test]
    fn digit_codes_round_trip() {
        for e in 0..16 {
            let d = event_to_digit(e).unwrap();
            assert_eq!(digit_to_event(d), Some(e));
        }
        assert_eq!(digit_to_event('x'), None);
    }
}
