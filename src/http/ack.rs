//! Signed acknowledgement links: `{public_url}/ack/{ticket}?p={person}&e={expires}&s={sig}`,
//! where `sig` is the hex HMAC-SHA256 of `"ack\n{ticket}\n{person}\n{expires}"` under the
//! installation's key (kept in the database, so every node signs and checks alike).
//!
//! The link names the person it was sent to, so the acknowledgement is logged under their name;
//! it expires so that an old e-mail found later cannot acknowledge a new ticket's worth of trust.

use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Shortest signing key accepted: below this, links could be forged by guessing.
pub const MIN_KEY_BYTES: usize = 16;
/// Longest tracking number a link may carry (they are far shorter).
const MAX_TICKET_LEN: usize = 32;
/// Longest person id a link may carry.
const MAX_PERSON_LEN: usize = 128;
/// Hex characters of an HMAC-SHA256.
const SIG_HEX_LEN: usize = 64;

/// Why a link is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// Not signed by this installation, or altered after signing.
    #[error("the link's signature does not match")]
    BadSignature,
    /// Genuine, but older than `[http] ack_link_hours`.
    #[error("the link has expired")]
    Expired,
    /// A part is missing, too long or of the wrong form; says which.
    #[error("the link is damaged: {0}")]
    Malformed(&'static str),
}

/// A signing key too short to be safe.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the link-signing key has {0} bytes; at least {MIN_KEY_BYTES} are needed (32 random bytes are usual)")]
pub struct WeakKey(pub usize);

/// Makes and checks acknowledgement links.
#[derive(Clone)]
pub struct AckLinks {
    /// Keyed once; cloned per link (cheap, and the key is not re-hashed).
    mac: HmacSha256,
    public_url: String,
    ttl: Duration,
}

impl std::fmt::Debug for AckLinks {
    // The key stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AckLinks")
            .field("public_url", &self.public_url)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl AckLinks {
    /// `key`: the installation's secret (32 random bytes); `public_url`: the base of the links
    /// (`HttpConfig::public_url`); `ttl`: how long a link stays valid.
    pub fn new(key: &[u8], public_url: &str, ttl: Duration) -> Result<AckLinks, WeakKey> {
        if key.len() < MIN_KEY_BYTES {
            return Err(WeakKey(key.len()));
        }
        // HMAC takes a key of any length; the error cannot happen but is not unwrapped.
        let mac = HmacSha256::new_from_slice(key).map_err(|_| WeakKey(key.len()))?;
        Ok(AckLinks {
            mac,
            public_url: public_url.trim().trim_end_matches('/').to_string(),
            ttl,
        })
    }

    /// How long a link made now stays valid.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The link that lets `person` acknowledge `ticket`, valid from `now` for the TTL.
    pub fn link(&self, ticket: &str, person: &str, now: DateTime<Utc>) -> String {
        let expires = (now + self.ttl).timestamp().to_string();
        let sig = hex::encode(self.sign(ticket, person, &expires));
        format!(
            "{}/ack/{}?p={}&e={expires}&s={sig}",
            self.public_url,
            url_encode(ticket),
            url_encode(person)
        )
    }

    /// Checks a link's parts as received (`expires` and `sig` still text). The signature is
    /// checked before the expiry, so a forged link is never told it merely expired.
    pub fn verify(
        &self,
        ticket: &str,
        person: &str,
        expires: &str,
        sig: &str,
        now: DateTime<Utc>,
    ) -> Result<(), LinkError> {
        check_ticket(ticket)?;
        check_person(person)?;
        let expires_at = parse_expires(expires)?;
        if sig.len() != SIG_HEX_LEN {
            return Err(LinkError::Malformed("the signature has the wrong length"));
        }
        let tag = hex::decode(sig)
            .map_err(|_| LinkError::Malformed("the signature is not hexadecimal"))?;
        let mut mac = self.mac.clone();
        feed(&mut mac, ticket, person, expires);
        // Constant time: a timing difference must not reveal how much of a guess was right.
        mac.verify_slice(&tag)
            .map_err(|_| LinkError::BadSignature)?;
        if now.timestamp() > expires_at {
            return Err(LinkError::Expired);
        }
        Ok(())
    }

    fn sign(&self, ticket: &str, person: &str, expires: &str) -> Vec<u8> {
        let mut mac = self.mac.clone();
        feed(&mut mac, ticket, person, expires);
        mac.finalize().into_bytes().to_vec()
    }
}

/// The signed text. Fields are separated by '\n', which none of them may contain (tickets and
/// expiry are digits, person ids have no control characters), so no two links sign alike.
fn feed(mac: &mut HmacSha256, ticket: &str, person: &str, expires: &str) {
    mac.update(b"ack\n");
    mac.update(ticket.as_bytes());
    mac.update(b"\n");
    mac.update(person.as_bytes());
    mac.update(b"\n");
    mac.update(expires.as_bytes());
}

/// A tracking number: digits only, bounded.
pub fn check_ticket(ticket: &str) -> Result<(), LinkError> {
    if ticket.is_empty() || ticket.len() > MAX_TICKET_LEN {
        return Err(LinkError::Malformed(
            "the tracking number is missing or too long",
        ));
    }
    if !ticket.bytes().all(|b| b.is_ascii_digit()) {
        return Err(LinkError::Malformed(
            "the tracking number is not all digits",
        ));
    }
    Ok(())
}

fn check_person(person: &str) -> Result<(), LinkError> {
    if person.is_empty() || person.len() > MAX_PERSON_LEN {
        return Err(LinkError::Malformed("the person is missing or too long"));
    }
    if person.chars().any(char::is_control) {
        return Err(LinkError::Malformed(
            "the person contains control characters",
        ));
    }
    Ok(())
}

fn parse_expires(expires: &str) -> Result<i64, LinkError> {
    // Digits only: "+5" or " 5" would parse but sign differently from what we wrote.
    if expires.is_empty() || expires.len() > 19 || !expires.bytes().all(|b| b.is_ascii_digit()) {
        return Err(LinkError::Malformed("the expiry is not a number"));
    }
    expires
        .parse()
        .map_err(|_| LinkError::Malformed("the expiry is not a number"))
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn links() -> AckLinks {
        AckLinks::new(KEY, "https://a.example/", Duration::hours(72)).unwrap()
    }

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 3, 13, 3, 0, 0).unwrap()
    }

    /// The parts of a link as the server receives them (query decoded).
    struct Parts {
        ticket: String,
        person: String,
        expires: String,
        sig: String,
    }

    fn parts(link: &str) -> Parts {
        let rest = link.strip_prefix("https://a.example/ack/").unwrap();
        let (ticket, query) = rest.split_once('?').unwrap();
        let mut p = Parts {
            ticket: ticket.into(),
            person: String::new(),
            expires: String::new(),
            sig: String::new(),
        };
        for pair in query.split('&') {
            let (k, v) = pair.split_once('=').unwrap();
            let v = percent_decode(v);
            match k {
                "p" => p.person = v,
                "e" => p.expires = v,
                "s" => p.sig = v,
                other => panic!("unexpected parameter {other}"),
            }
        }
        p
    }

    fn percent_decode(s: &str) -> String {
        let mut out = Vec::new();
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%' {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                i += 3;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        String::from_utf8(out).unwrap()
    }

    fn check(l: &AckLinks, p: &Parts, now: DateTime<Utc>) -> Result<(), LinkError> {
        l.verify(&p.ticket, &p.person, &p.expires, &p.sig, now)
    }

    #[test]
    fn a_link_has_the_documented_shape_and_verifies() {
        let l = links();
        let link = l.link("20250313001", "tech1", t0());
        let expires = (t0() + Duration::hours(72)).timestamp();
        assert!(
            link.starts_with(&format!(
                "https://a.example/ack/20250313001?p=tech1&e={expires}&s="
            )),
            "{link}"
        );
        // The signature is the documented HMAC, so another implementation can check it.
        let mut mac = HmacSha256::new_from_slice(KEY).unwrap();
        mac.update(format!("ack\n20250313001\ntech1\n{expires}").as_bytes());
        let want = hex::encode(mac.finalize().into_bytes());
        assert!(link.ends_with(&format!("&s={want}")), "{link}");
        assert_eq!(check(&l, &parts(&link), t0()), Ok(()));
        assert_eq!(check(&l, &parts(&link), t0() + Duration::hours(71)), Ok(()));
    }

    #[test]
    fn a_person_id_is_url_encoded_and_still_verifies() {
        let l = links();
        let link = l.link("42", "Zoé Tremblay&co=1", t0());
        assert!(link.contains("p=Zo%C3%A9%20Tremblay%26co%3D1&"), "{link}");
        let p = parts(&link);
        assert_eq!(p.person, "Zoé Tremblay&co=1");
        assert_eq!(check(&l, &p, t0()), Ok(()));
    }

    #[test]
    fn any_tampered_part_is_a_bad_signature() {
        let l = links();
        let good = parts(&l.link("20250313001", "tech1", t0()));
        let mut p = parts(&l.link("20250313001", "tech1", t0()));
        p.ticket = "20250313002".into();
        assert_eq!(check(&l, &p, t0()), Err(LinkError::BadSignature));

        let mut p = parts(&l.link("20250313001", "tech1", t0()));
        p.person = "director".into();
        assert_eq!(check(&l, &p, t0()), Err(LinkError::BadSignature));

        // Extending one's own link is no more possible than shortening it.
        let mut p = parts(&l.link("20250313001", "tech1", t0()));
        p.expires = (good.expires.parse::<i64>().unwrap() + 3600).to_string();
        assert_eq!(check(&l, &p, t0()), Err(LinkError::BadSignature));

        let mut p = parts(&l.link("20250313001", "tech1", t0()));
        let flipped = if p.sig.ends_with('0') { '1' } else { '0' };
        p.sig.pop();
        p.sig.push(flipped);
        assert_eq!(check(&l, &p, t0()), Err(LinkError::BadSignature));
    }

    #[test]
    fn another_installations_key_does_not_verify() {
        let theirs = AckLinks::new(&[7u8; 32], "https://a.example", Duration::hours(72)).unwrap();
        let p = parts(&theirs.link("20250313001", "tech1", t0()));
        assert_eq!(check(&links(), &p, t0()), Err(LinkError::BadSignature));
        assert_eq!(check(&theirs, &p, t0()), Ok(()));
    }

    #[test]
    fn an_old_link_has_expired_but_only_after_its_lifetime() {
        let l = links();
        let p = parts(&l.link("20250313001", "tech1", t0()));
        assert_eq!(check(&l, &p, t0() + Duration::hours(72)), Ok(()));
        assert_eq!(
            check(&l, &p, t0() + Duration::hours(72) + Duration::seconds(1)),
            Err(LinkError::Expired)
        );
        // A forged old link is refused for its signature, not its age.
        let mut forged = parts(&l.link("20250313001", "tech1", t0()));
        forged.person = "coo".into();
        assert_eq!(
            check(&l, &forged, t0() + Duration::days(30)),
            Err(LinkError::BadSignature)
        );
    }

    #[test]
    fn malformed_parts_are_named() {
        let l = links();
        let p = parts(&l.link("20250313001", "tech1", t0()));
        let m = |t: &str, who: &str, e: &str, s: &str| l.verify(t, who, e, s, t0());
        for (t, who, e, s) in [
            ("", "tech1", p.expires.as_str(), p.sig.as_str()),
            ("12a", "tech1", &p.expires, &p.sig),
            (&"1".repeat(33), "tech1", &p.expires, &p.sig),
            (&p.ticket, "", &p.expires, &p.sig),
            (&p.ticket, "te\nch1", &p.expires, &p.sig),
            (&p.ticket, &"x".repeat(129), &p.expires, &p.sig),
            (&p.ticket, "tech1", "", &p.sig),
            (&p.ticket, "tech1", "soon", &p.sig),
            (&p.ticket, "tech1", "+1741", &p.sig),
            (&p.ticket, "tech1", &"9".repeat(25), &p.sig),
            (&p.ticket, "tech1", &p.expires, ""),
            (&p.ticket, "tech1", &p.expires, &p.sig[..63]),
            (&p.ticket, "tech1", &p.expires, &"zz".repeat(32)),
        ] {
            assert!(
                matches!(m(t, who, e, s), Err(LinkError::Malformed(_))),
                "{t:?} {who:?} {e:?} {s:?}"
            );
        }
    }

    #[test]
    fn short_keys_are_refused() {
        assert_eq!(
            AckLinks::new(b"", "https://a", Duration::hours(1)).unwrap_err(),
            WeakKey(0)
        );
        assert!(AckLinks::new(&[1u8; 15], "https://a", Duration::hours(1)).is_err());
        assert!(AckLinks::new(&[1u8; 16], "https://a", Duration::hours(1)).is_ok());
    }

    #[test]
    fn the_key_is_not_in_debug_output() {
        let text = format!("{:?}", links());
        assert!(!text.contains("0123456789abcdef"), "{text}");
    }
}
