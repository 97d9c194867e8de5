//! RTCP sender and receiver reports (RFC 3550 §6.4), built into and parsed from caller buffers.

/// One reception report block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportBlock {
    pub ssrc: u32,
    pub fraction_lost: u8,
    /// 24-bit signed cumulative loss.
    pub cumulative_lost: i32,
    pub ext_highest_seq: u32,
    pub jitter: u32,
    pub lsr: u32,
    pub dlsr: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderInfo {
    pub ntp: u64,
    pub rtp_ts: u32,
    pub packets: u32,
    pub octets: u32,
}

fn put_block(out: &mut [u8], b: &ReportBlock) {
    out[0..4].copy_from_slice(&b.ssrc.to_be_bytes());
    let cl = (b.cumulative_lost.clamp(-0x80_0000, 0x7F_FFFF) as u32) & 0x00FF_FFFF;
    out[4..8].copy_from_slice(&((b.fraction_lost as u32) << 24 | cl).to_be_bytes());
    out[8..12].copy_from_slice(&b.ext_highest_seq.to_be_bytes());
    out[12..16].copy_from_slice(&b.jitter.to_be_bytes());
    out[16..20].copy_from_slice(&b.lsr.to_be_bytes());
    out[20..24].copy_from_slice(&b.dlsr.to_be_bytes());
}

/// Write an SR (with `sender`) or RR (without) carrying at most one report block. Returns the
/// length written; `out` must hold 52 bytes.
pub fn write_report(
    out: &mut [u8; 52],
    ssrc: u32,
    sender: Option<SenderInfo>,
    block: Option<ReportBlock>,
) -> usize {
    let rc = block.is_some() as u8;
    let (pt, mut len) = if sender.is_some() {
        (200u8, 28)
    } else {
        (201u8, 8)
    };
    if block.is_some() {
        len += 24;
    }
    out[0] = 0x80 | rc;
    out[1] = pt;
    out[2..4].copy_from_slice(&((len / 4 - 1) as u16).to_be_bytes());
    out[4..8].copy_from_slice(&ssrc.to_be_bytes());
    let mut at = 8;
    if let Some(s) = sender {
        out[8..16].copy_from_slice(&s.ntp.to_be_bytes());
        out[16..20].copy_from_slice(&s.rtp_ts.to_be_bytes());
        out[20..24].copy_from_slice(&s.packets.to_be_bytes());
        out[24..28].copy_from_slice(&s.octets.to_be_bytes());
        at = 28;
    }
    if let Some(b) = block {
        put_block(&mut out[at..at + 24], &b);
    }
    len
}

/// What we keep from a peer's compound RTCP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PeerReport {
    /// Middle 32 bits of the NTP time of the peer's last SR (for our LSR).
    pub sr_ntp_mid: Option<u32>,
    /// The first report block about us.
    pub block: Option<ReportBlock>,
}

/// Parse a compound RTCP packet; unknown packet types are skipped, malformed input yields what
/// was parsed before it.
pub fn parse(mut buf: &[u8]) -> PeerReport {
    let mut rep = PeerReport::default();
    while buf.len() >= 8 {
        if buf[0] >> 6 != 2 {
            break;
        }
        let rc = (buf[0] & 0x1F) as usize;
        let pt = buf[1];
        let len = (u16::from_be_bytes([buf[2], buf[3]]) as usize + 1) * 4;
        let Some(pkt) = buf.get(..len) else { break };
        let blocks_at = match pt {
            200 if pkt.len() >= 28 => {
                rep.sr_ntp_mid = Some(u32::from_be_bytes([pkt[10], pkt[11], pkt[12], pkt[13]]));
                Some(28)
            }
            201 => Some(8),
            _ => None,
        };
        if let Some(at) = blocks_at {
            if rc > 0 && rep.block.is_none() {
                if let Some(b) = pkt.get(at..at + 24) {
                    let w = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
                    let lost_word = w(4);
                    // Sign-extend the 24-bit cumulative count.
                    let cl = ((lost_word << 8) as i32) >> 8;
                    rep.block = Some(ReportBlock {
                        ssrc: w(0),
                        fraction_lost: (lost_word >> 24) as u8,
                        cumulative_lost: cl,
                        ext_highest_seq: w(8),
                        jitter: w(12),
                        lsr: w(16),
                        dlsr: w(20),
                    });
                }
            }
        }
        buf = &buf[len..];
    }
    rep
}

/// NTP timestamp (RFC 5905 64-bit) from Unix time in nanoseconds.
pub fn ntp_from_unix_ns(ns: u128) -> u64 {
    const UNIX_TO_NTP: u64 = 2_208_988_800;
    let secs = (ns / 1_000_000_000) as u64 + UNIX_TO_NTP;
    let frac = (((ns % 1_000_000_000) as u64) << 32) / 1_000_000_000;
    secs << 32 | frac
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sr_with_block_round_trips() {
        let mut buf = [0u8; 52];
        let block = ReportBlock {
            ssrc: 0xAABBCCDD,
            fraction_lost: 64,
            cumulative_lost: -3,
            ext_highest_seq: 70000,
            jitter: 12,
            lsr: 0x1234_5678,
            dlsr: 65536,
        };
        let sender = SenderInfo {
            ntp: 0x0102_0304_0506_0708,
            rtp_ts: 160,
            packets: 10,
            octets: 1600,
        };
        let n = write_report(&mut buf, 7, Some(sender), Some(block));
        assert_eq!(n, 52);
        assert_eq!(buf[1], 200);
        let rep = parse(&buf[..n]);
        assert_eq!(rep.block, Some(block));
        assert_eq!(rep.sr_ntp_mid, Some(0x0304_0506));
    }

    #[test]
    fn rr_and_garbage() {
        let mut buf = [0u8; 52];
        let n = write_report(&mut buf, 7, None, None);
        assert_eq!(n, 8);
        assert_eq!(buf[1], 201);
        assert_eq!(parse(&buf[..n]), PeerReport::default());
        assert_eq!(parse(&[0xFF; 3]), PeerReport::default());
        assert_eq!(
            parse(&[0x81, 200, 0xFF, 0xFF, 0, 0, 0, 0]),
            PeerReport::default()
        );
    }

    #[test]
    fn ntp_conversion() {
        assert_eq!(ntp_from_unix_ns(0) >> 32, 2_208_988_800);
        assert_eq!(ntp_from_unix_ns(500_000_000) & 0xFFFF_FFFF, 1 << 31);
    }
}
