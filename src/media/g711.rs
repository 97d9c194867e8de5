//! G.711 µ-law (PCMU) and A-law (PCMA), bit-exact to ITU-T G.711 as implemented by the ITU-T
//! reference software (G.191 STL `g711.c`): 16-bit linear samples in and out, the 14-bit (µ-law)
//! and 13-bit (A-law) values left-justified.
//!
//! Decoding is a 256-entry table built at compile time; encoding is a segment search on the
//! magnitude (a leading-zeros count), no table and no branch per bit.

use super::types::Codec;

const fn ulaw_expand(code: u8) -> i16 {
    // G.191 ulaw_expand: invert, split sign/exponent/mantissa, rebuild the segment midpoint.
    let inv = !code;
    let exponent = ((inv >> 4) & 0x07) as i32;
    let mantissa = (inv & 0x0F) as i32;
    let step = 4 << (exponent + 1);
    let magnitude = (0x80 << exponent) + step * mantissa + step / 2 - 4 * 33;
    if code < 0x80 {
        -magnitude as i16
    } else {
        magnitude as i16
    }
}

const fn alaw_expand(code: u8) -> i16 {
    // G.191 alaw_expand: undo the even-bit inversion, rebuild the segment midpoint.
    let ix = (code ^ 0x55) & 0x7F;
    let exponent = (ix >> 4) as i32;
    let mut mantissa = (ix & 0x0F) as i32;
    if exponent > 0 {
        mantissa += 16;
    }
    mantissa = (mantissa << 4) + 8;
    if exponent > 1 {
        mantissa <<= exponent - 1;
    }
    if code > 0x7F {
        mantissa as i16
    } else {
        -mantissa as i16
    }
}

const fn build_table(alaw: bool) -> [i16; 256] {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = if alaw {
            alaw_expand(i as u8)
        } else {
            ulaw_expand(i as u8)
        };
        i += 1;
    }
    t
}

/// µ-law code → 16-bit linear sample.
pub static ULAW_TO_LINEAR: [i16; 256] = build_table(false);
/// A-law code → 16-bit linear sample.
pub static ALAW_TO_LINEAR: [i16; 256] = build_table(true);

/// 16-bit linear sample → µ-law code (G.191 `ulaw_compress`).
#[inline]
pub const fn linear_to_ulaw(sample: i16) -> u8 {
    let x = sample as i32;
    // Negative values use the one's complement, as the reference does: (~x) >> 2.
    let mut absno = if x < 0 {
        ((!x) >> 2) + 33
    } else {
        (x >> 2) + 33
    };
    if absno > 0x1FFF {
        absno = 0x1FFF;
    }
    // Segment number: position of the highest set bit above bit 5 (absno >= 33 so bit 5 or up).
    let segno = (32 - (absno as u32 >> 6).leading_zeros()) as i32 + 1;
    let high = 8 - segno;
    let low = 0x0F - ((absno >> segno) & 0x0F);
    let mut out = ((high << 4) | low) as u8;
    if x >= 0 {
        out |= 0x80;
    }
    out
}

/// 16-bit linear sample → A-law code (G.191 `alaw_compress`).
#[inline]
pub const fn linear_to_alaw(sample: i16) -> u8 {
    let x = sample as i32;
    let mut ix = if x < 0 { (!x) >> 4 } else { x >> 4 };
    if ix > 15 {
        // Segment from the highest set bit: ix in 16..=31 is segment 1, each doubling one more.
        let iexp = (32 - (ix as u32).leading_zeros()) as i32 - 4;
        ix = (ix >> (iexp - 1)) - 16 + (iexp << 4);
    }
    if x >= 0 {
        ix |= 0x80;
    }
    (ix as u8) ^ 0x55
}

#[inline]
pub fn decode_sample(codec: Codec, code: u8) -> i16 {
    match codec {
        Codec::Pcmu => ULAW_TO_LINEAR[code as usize],
        Codec::Pcma => ALAW_TO_LINEAR[code as usize],
    }
}

#[inline]
pub fn encode_sample(codec: Codec, sample: i16) -> u8 {
    match codec {
        Codec::Pcmu => linear_to_ulaw(sample),
        Codec::Pcma => linear_to_alaw(sample),
    }
}

/// Decode `input` into `out` (the shorter length wins); returns the number of samples written.
pub fn decode(codec: Codec, input: &[u8], out: &mut [i16]) -> usize {
    let table = match codec {
        Codec::Pcmu => &ULAW_TO_LINEAR,
        Codec::Pcma => &ALAW_TO_LINEAR,
    };
    let n = input.len().min(out.len());
    for (o, &c) in out[..n].iter_mut().zip(&input[..n]) {
        *o = table[c as usize];
    }
    n
}

/// Encode `input` into `out` (the shorter length wins); returns the number of bytes written.
pub fn encode(codec: Codec, input: &[i16], out: &mut [u8]) -> usize {
    let n = input.len().min(out.len());
    match codec {
        Codec::Pcmu => {
            for (o, &s) in out[..n].iter_mut().zip(&input[..n]) {
                *o = linear_to_ulaw(s);
            }
        }
        Codec::Pcma => {
            for (o, &s) in out[..n].iter_mut().zip(&input[..n]) {
                *o = linear_to_alaw(s);
            }
        }
    }
    n
}

/// The code for digital silence in `codec` (what the encoder gives for 0).
pub const fn silence_code(codec: Codec) -> u8 {
    match codec {
        Codec::Pcmu => 0xFF,
        Codec::Pcma => 0xD5,
    }
}

const fn build_transcode(from_alaw: bool) -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = if from_alaw {
            linear_to_ulaw(alaw_expand(i as u8))
        } else {
            linear_to_alaw(ulaw_expand(i as u8))
        };
        i += 1;
    }
    t
}

/// µ-law code → A-law code (decode then encode, precomputed).
pub static ULAW_TO_ALAW: [u8; 256] = build_transcode(false);
/// A-law code → µ-law code.
pub static ALAW_TO_ULAW: [u8; 256] = build_transcode(true);

/// Transcode one G.711 code into the other law through a 256-entry table.
#[inline]
pub fn transcode_byte(from: Codec, to: Codec, code: u8) -> u8 {
    match (from, to) {
        (Codec::Pcmu, Codec::Pcma) => ULAW_TO_ALAW[code as usize],
        (Codec::Pcma, Codec::Pcmu) => ALAW_TO_ULAW[code as usize],
        _ => code,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The reconstruction levels of G.711 Table 2 (µ-law) and Table 1 (A-law), written from the
    // standard's segment structure rather than from the code above: for each segment its first
    // reconstruction value and its step, in the standard's own units (µ-law 0..8031 on a 14-bit
    // scale of 8159, A-law 1..4032 on a 13-bit scale of 4096). Left-justified to 16 bits, µ-law
    // values are ×4 and A-law values ×8.
    const ULAW_SEGMENTS: [(i32, i32); 8] = [
        (0, 2),
        (33, 4),
        (99, 8),
        (231, 16),
        (495, 32),
        (1023, 64),
        (2079, 128),
        (4191, 256),
    ];
    const ALAW_SEGMENTS: [(i32, i32); 8] = [
        (1, 2),
        (33, 2),
        (66, 4),
        (132, 8),
        (264, 16),
        (528, 32),
        (1056, 64),
        (2112, 128),
    ];

    /// µ-law: code = sign bit | inverted (segment << 4 | step index).
    fn ulaw_reference(code: u8) -> i16 {
        let inv = !code;
        let seg = ((inv >> 4) & 7) as usize;
        let q = (inv & 15) as i32;
        let (first, step) = ULAW_SEGMENTS[seg];
        // Segment 0 of µ-law starts at 0 with step 2 but its first interval is 1 wide: the
        // reconstruction values are 0, 2, 4, ... 30; others are first + q * step.
        let v = (first + q * step) * 4;
        if code & 0x80 != 0 {
            v as i16
        } else {
            -v as i16
        }
    }

    /// A-law: code ^ 0x55 = sign bit | segment << 4 | step index.
    fn alaw_reference(code: u8) -> i16 {
        let ix = code ^ 0x55;
        let seg = ((ix >> 4) & 7) as usize;
        let q = (ix & 15) as i32;
        let (first, step) = ALAW_SEGMENTS[seg];
        let v = (first + q * step) * 8;
        if code & 0x80 != 0 {
            v as i16
        } else {
            -v as i16
        }
    }

    #[test]
    fn ulaw_decodes_all_256_codes_to_the_standard_levels() {
        for code in 0..=255u8 {
            assert_eq!(
                ULAW_TO_LINEAR[code as usize],
                ulaw_reference(code),
                "µ-law code {code:#04x}"
            );
        }
        assert_eq!(ULAW_TO_LINEAR[0x80], 32124);
        assert_eq!(ULAW_TO_LINEAR[0x00], -32124);
        assert_eq!(ULAW_TO_LINEAR[0xFF], 0);
        assert_eq!(ULAW_TO_LINEAR[0x7F], 0);
    }

    #[test]
    fn alaw_decodes_all_256_codes_to_the_standard_levels() {
        for code in 0..=255u8 {
            assert_eq!(
                ALAW_TO_LINEAR[code as usize],
                alaw_reference(code),
                "A-law code {code:#04x}"
            );
        }
        assert_eq!(ALAW_TO_LINEAR[0xD5], 8);
        assert_eq!(ALAW_TO_LINEAR[0x55], -8);
        assert_eq!(ALAW_TO_LINEAR[0xAA], 32256);
        assert_eq!(ALAW_TO_LINEAR[0x2A], -32256);
    }

    /// The reference encoders, transcribed loop for loop from G.191 `g711.c`.
    fn ulaw_compress_ref(x: i16) -> u8 {
        let x = x as i32;
        let mut absno = if x < 0 {
            ((!x) >> 2) + 33
        } else {
            (x >> 2) + 33
        };
        if absno > 0x1FFF {
            absno = 0x1FFF;
        }
        let mut i = absno >> 6;
        let mut segno = 1;
        while i != 0 {
            segno += 1;
            i >>= 1;
        }
        let high = 0x8 - segno;
        let low = 0xF - ((absno >> segno) & 0xF);
        let mut out = (high << 4) | low;
        if x >= 0 {
            out |= 0x80;
        }
        out as u8
    }

    fn alaw_compress_ref(x: i16) -> u8 {
        let x = x as i32;
        let mut ix = if x < 0 { (!x) >> 4 } else { x >> 4 };
        if ix > 15 {
            let mut iexp = 1;
            while ix > 16 + 15 {
                ix >>= 1;
                iexp += 1;
            }
            ix -= 16;
            ix += iexp << 4;
        }
        if x >= 0 {
            ix |= 0x80;
        }
        (ix ^ 0x55) as u8
    }

    #[test]
    fn encoders_match_the_reference_on_every_16_bit_input() {
        for x in i16::MIN..=i16::MAX {
            assert_eq!(linear_to_ulaw(x), ulaw_compress_ref(x), "µ-law {x}");
            assert_eq!(linear_to_alaw(x), alaw_compress_ref(x), "A-law {x}");
        }
    }

    /// Decision values (interval boundaries) at every segment edge: the sample just below the
    /// edge lands in the top step of the lower segment, the sample at it in the first step of
    /// the next one.
    #[test]
    fn encoders_switch_segment_exactly_at_the_decision_values() {
        // µ-law positive decision values between segments, in 16-bit units: (first level of
        // segment s) - (half a step of segment s) ... from the standard: 31, 95, 223, 479, 991,
        // 2015, 4063 on the 14-bit scale, × 4.
        let ulaw_edges = [31, 95, 223, 479, 991, 2015, 4063];
        for (s, &edge) in ulaw_edges.iter().enumerate() {
            let at = (edge * 4) as i16;
            let below = at - 1;
            let seg_at = (!linear_to_ulaw(at) >> 4) & 7;
            let seg_below = (!linear_to_ulaw(below) >> 4) & 7;
            assert_eq!(seg_below as usize, s, "µ-law below edge {edge}");
            assert_eq!(seg_at as usize, s + 1, "µ-law at edge {edge}");
            assert_eq!((!linear_to_ulaw(below)) & 15, 15);
            assert_eq!((!linear_to_ulaw(at)) & 15, 0);
            // Negative side: the reference uses one's complement, so -edge*4-1 is the edge.
            let neg_at = -(edge * 4) as i16 - 1;
            assert_eq!((!linear_to_ulaw(neg_at) >> 4) & 7, s as u8 + 1);
            assert_eq!((!linear_to_ulaw(neg_at + 1) >> 4) & 7, s as u8);
        }
        // A-law decision values between segments on the 13-bit scale: 32, 64, 128, ..., 2048, × 8.
        let alaw_edges = [32, 64, 128, 256, 512, 1024, 2048];
        for (s, &edge) in alaw_edges.iter().enumerate() {
            let at = (edge * 8) as i16;
            let seg = |x: i16| ((linear_to_alaw(x) ^ 0x55) >> 4) & 7;
            assert_eq!(seg(at - 1) as usize, s, "A-law below edge {edge}");
            assert_eq!(seg(at) as usize, s + 1, "A-law at edge {edge}");
            assert_eq!(seg(-(at) - 1) as usize, s + 1);
            assert_eq!(seg(-(at)) as usize, s);
        }
        // Saturation.
        assert_eq!(linear_to_ulaw(i16::MAX), 0x80);
        assert_eq!(linear_to_ulaw(i16::MIN), 0x00);
        assert_eq!(linear_to_alaw(i16::MAX), 0xAA);
        assert_eq!(linear_to_alaw(i16::MIN), 0x2A);
    }

    #[test]
    fn every_code_round_trips_through_its_level() {
        for code in 0..=255u8 {
            let u = linear_to_ulaw(ULAW_TO_LINEAR[code as usize]);
            // µ-law has two zeros (0x7F and 0xFF); both decode to 0, which encodes to 0xFF.
            let want = if code == 0x7F { 0xFF } else { code };
            assert_eq!(u, want, "µ-law {code:#04x}");
            assert_eq!(
                linear_to_alaw(ALAW_TO_LINEAR[code as usize]),
                code,
                "A-law {code:#04x}"
            );
        }
        assert_eq!(linear_to_ulaw(0), silence_code(Codec::Pcmu));
        assert_eq!(linear_to_alaw(0), silence_code(Codec::Pcma));
    }

    #[test]
    fn slices_and_transcoding() {
        let pcm = [0i16, 1000, -1000, 32000, -32000];
        let mut u = [0u8; 5];
        let mut back = [0i16; 5];
        assert_eq!(encode(Codec::Pcmu, &pcm, &mut u), 5);
        assert_eq!(decode(Codec::Pcmu, &u, &mut back), 5);
        for (a, b) in pcm.iter().zip(&back) {
            assert!((*a as i32 - *b as i32).abs() <= 1024);
        }
        for code in 0..=255u8 {
            let a = transcode_byte(Codec::Pcmu, Codec::Pcma, code);
            assert_eq!(a, linear_to_alaw(ULAW_TO_LINEAR[code as usize]));
            assert_eq!(transcode_byte(Codec::Pcma, Codec::Pcma, code), code);
            assert_eq!(
                transcode_byte(Codec::Pcma, Codec::Pcmu, code),
                linear_to_ulaw(ALAW_TO_LINEAR[code as usize])
            );
        }
    }
}
