//! Tracking numbers ("numéros de suivi").
//!
//! Eight digits: seven random digits (first one never 0, so nobody drops a leading zero) and a
//! Luhn check digit. Eight digits read aloud in two groups of four ("4821 0937"); the check
//! digit catches any single wrong digit and most swapped neighbours when a number is typed back
//! on a keypad or read over the phone. Random rather than sequential: several nodes need no
//! shared counter, and numbers do not reveal the ticket volume. With 9 million numbers the
//! store retries on the rare collision (the unique index decides).

use rand::Rng;

/// The Luhn check digit for `payload` (digits only).
pub fn luhn_digit(payload: &str) -> Option<u8> {
    let mut sum = 0u32;
    for (i, c) in payload.bytes().rev().enumerate() {
        if !c.is_ascii_digit() {
            return None;
        }
        let mut d = (c - b'0') as u32;
        if i % 2 == 0 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    Some(((10 - sum % 10) % 10) as u8)
}

/// A tracking number from a seven-digit payload (1_000_000..=9_999_999).
pub fn from_payload(payload: u32) -> String {
    let p = format!("{payload:07}");
    let check = luhn_digit(&p).unwrap_or(0);
    format!("{p}{check}")
}

/// A fresh random tracking number.
pub fn random() -> String {
    from_payload(rand::thread_rng().gen_range(1_000_000..=9_999_999))
}

/// Whether `s` is a well-formed tracking number (8 digits, check digit right). Lets the IVR
/// and the CLI refuse a mistyped number before looking it up.
pub fn is_valid(s: &str) -> bool {
    s.len() == 8
        && s.bytes().all(|b| b.is_ascii_digit())
        && !s.starts_with('0')
        && luhn_digit(&s[..7]) == Some(s.as_bytes()[7] - b'0')
}

/// "48210937" → "4821 0937", for read-back and print.
pub fn grouped(s: &str) -> String {
    if s.len() == 8 {
        format!("{} {}", &s[..4], &s[4..])
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_digit_catches_single_errors_and_swaps() {
        let n = from_payload(4_821_093);
        assert!(is_valid(&n), "{n}");
        assert_eq!(n.len(), 8);
        // Every single-digit change is caught.
        for i in 0..8 {
            for d in b'0'..=b'9' {
                let mut b = n.clone().into_bytes();
                if b[i] == d {
                    continue;
                }
                b[i] = d;
                let m = String::from_utf8(b).unwrap();
                assert!(!is_valid(&m), "{m} should be invalid");
            }
        }
        assert_eq!(luhn_digit("7992739871"), Some(3));
        assert_eq!(grouped("48210937"), "4821 0937");
        for _ in 0..1000 {
            assert!(is_valid(&random()));
        }
    }
}
