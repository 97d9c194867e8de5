//! Which numbers the engine may call back.
//!
//! The engine dials the callback number later (a technician's call, or a page), so a number
//! typed by a caller must never become a toll-fraud path: only North American numbers whose
//! national part starts with an allowed prefix are taken, and premium, operator, international
//! and short service numbers never are, whatever the allow list says.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Québec's area codes and North American toll-free: the default `[ivr] callback_allow`.
pub const DEFAULT_ALLOWED_PREFIXES: &[&str] = &[
    "418", "438", "450", "514", "579", "581", "819", "873", "367", "354", "263",
    "468", // Québec
    "800", "833", "844", "855", "866", "877", "888", // toll-free
];

/// Area codes and exchanges that bill the caller (or us) at premium rates, or reach test and
/// service lines: never dialled, even when a prefix would allow them.
const DENIED_AREA_CODES: &[&str] = &["900", "976"];
const DENIED_EXCHANGES: &[&str] = &["976", "950", "958", "959"];

/// Longest extension we keep (PBX extensions are short; a long tail is a mistake or a trick).
const MAX_EXTENSION_DIGITS: usize = 8;
/// Longest keyed string looked at; anything longer is malformed.
const MAX_KEYED: usize = 32;

/// A number the engine may call back: `+1NXXNXXXXXX`, with an optional extension.
///
/// Only [`CallbackPolicy::check`] and [`CallbackPolicy::from_caller_id`] make one from what a
/// caller gave, so a number `[ivr] callback_allow` refused can never become a ticket's callback
/// number (`store::NewTicket` takes only this type). Records the engine wrote itself (an
/// intake, a stored ticket) are read back with [`CallbackNumber::from_record`], which still
/// refuses premium, operator, service and foreign numbers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct CallbackNumber {
    /// The ten national digits (area code, exchange, line).
    national: String,
    extension: Option<String>,
}

impl CallbackNumber {
    /// The ten national digits, e.g. `5149073400` (what the caller hears read back).
    pub fn national(&self) -> &str {
        &self.national
    }

    /// E.164: `+15149073400`.
    pub fn e164(&self) -> String {
        format!("+1{}", self.national)
    }

    /// Digits to key after the call is answered, if any.
    pub fn extension(&self) -> Option<&str> {
        self.extension.as_deref()
    }

    /// A number the engine stored itself (`+15149073400`, `+15149073400;ext=12`, or the bare
    /// digits), read back. The toll-fraud rules still apply (premium, operator, service and
    /// foreign numbers are refused); the allow list was applied when the caller gave it.
    /// None for an empty or refused record (a ticket written before the rule held).
    pub fn from_record(record: &str) -> Option<CallbackNumber> {
        let record = record.trim();
        let (number, extension) = match record.split_once(";ext=") {
            Some((n, ext)) => (n, Some(ext)),
            None => (record, None),
        };
        let number = number.strip_prefix('+').unwrap_or(number);
        let keyed = match extension {
            Some(ext) => format!("{number}*{ext}"),
            None => number.to_string(),
        };
        CallbackPolicy::any_dialable().check(&keyed).ok()
    }
}

impl From<CallbackNumber> for String {
    fn from(n: CallbackNumber) -> String {
        n.to_string()
    }
}

impl TryFrom<String> for CallbackNumber {
    type Error = CallbackRefusal;

    fn try_from(s: String) -> Result<CallbackNumber, CallbackRefusal> {
        CallbackNumber::from_record(&s).ok_or(CallbackRefusal::NotAllowed)
    }
}

/// What a page says instead of a number to call when the caller left none we may call: their
/// caller ID and what they keyed, as information only (never a link, never "call back at").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoCallbackNumber<'a> {
    /// The caller ID as received (empty or "anonymous" when hidden).
    pub caller: &'a str,
    /// The last number the caller keyed that was refused, if any.
    pub keyed: Option<&'a str>,
}

impl<'a> NoCallbackNumber<'a> {
    /// From a ticket's caller and answers (`callback_refused`, set by the IVR).
    pub fn of(caller: &'a str, answers: &'a std::collections::BTreeMap<String, String>) -> Self {
        NoCallbackNumber {
            caller,
            keyed: answers
                .get("callback_refused")
                .map(String::as_str)
                .filter(|k| !k.is_empty()),
        }
    }

    fn hidden(&self) -> bool {
        let c = self.caller.trim();
        c.is_empty() || c.eq_ignore_ascii_case("anonymous")
    }

    /// "the caller ID +19005551234 may not be called back; they keyed 19005551234"
    pub fn en(&self) -> String {
        let mut s = if self.hidden() {
            "the caller ID is hidden".to_string()
        } else {
            format!(
                "the caller ID {} may not be called back",
                self.caller.trim()
            )
        };
        if let Some(k) = self.keyed {
            s.push_str(&format!("; they keyed {k}, which is not allowed"));
        }
        s
    }

    /// The same in French.
    pub fn fr(&self) -> String {
        let mut s = if self.hidden() {
            "l'afficheur de l'appelant est masqué".to_string()
        } else {
            format!(
                "l'afficheur de l'appelant, {}, ne peut pas être rappelé",
                self.caller.trim()
            )
        };
        if let Some(k) = self.keyed {
            s.push_str(&format!(" ; il a composé le {k}, refusé"));
        }
        s
    }
}

/// `+15149073400`, or `+15149073400;ext=123` (RFC 3966) with an extension.
impl fmt::Display for CallbackNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "+1{}", self.national)?;
        if let Some(ext) = &self.extension {
            write!(f, ";ext={ext}")?;
        }
        Ok(())
    }
}

/// Why a keyed number was not taken; the flow says "invalid" or "refused" accordingly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CallbackRefusal {
    /// Not a ten-digit North American number (with an optional extension after star).
    #[error("not a ten-digit North American number")]
    Malformed,
    /// A real number we will not dial: premium, foreign, operator, service, or outside the
    /// allow list.
    #[error("a number we do not call back")]
    NotAllowed,
}

/// A prefix in `[ivr] callback_allow` that cannot be right.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackPolicyError {
    #[error(
        "callback prefix \"{0}\" must be 1 to 10 digits of the national number (e.g. \"514\")"
    )]
    NotDigits(String),
    #[error(
        "callback prefix \"{0}\" cannot start a North American area code (they start with 2-9)"
    )]
    BadAreaCode(String),
    #[error("callback prefix \"{0}\" would allow premium-rate numbers (900, 976)")]
    Premium(String),
}

/// The allow list of callback numbers: prefixes of the ten-digit national number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackPolicy {
    prefixes: Vec<String>,
}

impl Default for CallbackPolicy {
    fn default() -> Self {
        CallbackPolicy {
            prefixes: DEFAULT_ALLOWED_PREFIXES
                .iter()
                .map(|p| p.to_string())
                .collect(),
        }
    }
}

impl CallbackPolicy {
    /// From `[ivr] callback_allow`: national prefixes such as `"514"` or `"514907"`; a leading
    /// `+1` is accepted and dropped. A prefix that would allow premium numbers is refused.
    pub fn new<I, S>(prefixes: I) -> Result<Self, CallbackPolicyError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut out = Vec::new();
        for p in prefixes {
            let raw = p.as_ref().trim();
            let digits = raw.strip_prefix("+1").unwrap_or(raw);
            if digits.is_empty() || digits.len() > 10 || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(CallbackPolicyError::NotDigits(raw.to_string()));
            }
            if !matches!(digits.as_bytes()[0], b'2'..=b'9') {
                return Err(CallbackPolicyError::BadAreaCode(raw.to_string()));
            }
            // "9" or "97" would let 900 or 976 through were the deny list not there; refuse
            // them so the config says what is really allowed.
            if DENIED_AREA_CODES
                .iter()
                .any(|d| d.starts_with(digits) || digits.starts_with(d))
            {
                return Err(CallbackPolicyError::Premium(raw.to_string()));
            }
            out.push(digits.to_string());
        }
        Ok(CallbackPolicy { prefixes: out })
    }

    /// Every North American number the fixed toll-fraud rules let through (reading back
    /// records; never for what a caller keys).
    fn any_dialable() -> CallbackPolicy {
        CallbackPolicy {
            prefixes: (2..=9).map(|d| d.to_string()).collect(),
        }
    }

    pub fn prefixes(&self) -> &[String] {
        &self.prefixes
    }

    /// Checks a number keyed by the caller (digits, then `*` and an extension; the ending `#`
    /// already removed).
    pub fn check(&self, keyed: &str) -> Result<CallbackNumber, CallbackRefusal> {
        if keyed.is_empty() || keyed.len() > MAX_KEYED {
            return Err(CallbackRefusal::Malformed);
        }
        let (number, extension) = match keyed.split_once('*') {
            None => (keyed, None),
            Some((n, ext)) => {
                if ext.is_empty()
                    || ext.len() > MAX_EXTENSION_DIGITS
                    || !ext.bytes().all(|b| b.is_ascii_digit())
                {
                    return Err(CallbackRefusal::Malformed);
                }
                (n, Some(ext.to_string()))
            }
        };
        if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
            return Err(CallbackRefusal::Malformed);
        }
        let national = self.national(number)?;
        Ok(CallbackNumber {
            national: national.to_string(),
            extension,
        })
    }

    /// The caller's number from the From user part, when it is a number we may call back.
    /// Hidden, anonymous or malformed caller IDs are never assumed to be a number.
    pub fn from_caller_id(&self, user_part: Option<&str>) -> Option<CallbackNumber> {
        let user = user_part?;
        let digits = match user.strip_prefix('+') {
            // With a '+', only +1 is North American: "+44 20 7…" must not pass as ten digits.
            Some(rest) if rest.len() == 11 && rest.starts_with('1') => rest,
            Some(_) => return None,
            None if user.len() == 10 || (user.len() == 11 && user.starts_with('1')) => user,
            None => return None,
        };
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let national = self.national(digits).ok()?;
        Some(CallbackNumber {
            national: national.to_string(),
            extension: None,
        })
    }

    /// The ten national digits of an all-digit `number`, if we may dial it.
    fn national<'a>(&self, number: &'a str) -> Result<&'a str, CallbackRefusal> {
        // Operator (0), international (011) and operator-assisted (00, 01x) calls.
        if number.starts_with('0') {
            return Err(CallbackRefusal::NotAllowed);
        }
        // N11 (211, 311, 411, 611, 711, 811, 911) and other short service codes.
        if number.len() == 3 && number.ends_with("11") {
            return Err(CallbackRefusal::NotAllowed);
        }
        // Carrier access codes (101XXXX).
        if number.starts_with("10") && number.len() != 11 {
            return Err(CallbackRefusal::NotAllowed);
        }
        let national = match number.len() {
            10 => number,
            11 if number.starts_with('1') => &number[1..],
            _ => return Err(CallbackRefusal::Malformed),
        };
        let (npa, rest) = national.split_at(3);
        let nxx = &rest[..3];
        if !matches!(npa.as_bytes()[0], b'2'..=b'9') || !matches!(nxx.as_bytes()[0], b'2'..=b'9') {
            return Err(CallbackRefusal::Malformed);
        }
        if DENIED_AREA_CODES.contains(&npa)
            || DENIED_EXCHANGES.contains(&nxx)
            || npa.ends_with("11")
            || nxx.ends_with("11")
        {
            return Err(CallbackRefusal::NotAllowed);
        }
        if !self
            .prefixes
            .iter()
            .any(|p| national.starts_with(p.as_str()))
        {
            return Err(CallbackRefusal::NotAllowed);
        }
        Ok(national)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(keyed: &str) -> CallbackNumber {
        CallbackPolicy::default()
            .check(keyed)
            .unwrap_or_else(|e| panic!("{keyed}: {e}"))
    }

    fn refused(keyed: &str) -> CallbackRefusal {
        match CallbackPolicy::default().check(keyed) {
            Ok(n) => panic!("{keyed} was taken as {n}"),
            Err(e) => e,
        }
    }

    #[test]
    fn quebec_and_toll_free_numbers_are_taken() {
        let n = ok("5149073400");
        assert_eq!(n.e164(), "+15149073400");
        assert_eq!(n.national(), "5149073400");
        assert_eq!(n.extension(), None);
        assert_eq!(n.to_string(), "+15149073400");
        assert_eq!(ok("15149073400"), n);
        for p in DEFAULT_ALLOWED_PREFIXES {
            ok(&format!("{p}2345678"));
        }
        assert_eq!(ok("18772435520").e164(), "+18772435520");
    }

    #[test]
    fn an_extension_follows_star() {
        let n = ok("5149073400*1234");
        assert_eq!(n.extension(), Some("1234"));
        assert_eq!(n.to_string(), "+15149073400;ext=1234");
        assert_eq!(refused("5149073400*"), CallbackRefusal::Malformed);
        assert_eq!(refused("5149073400*12*3"), CallbackRefusal::Malformed);
        assert_eq!(refused("5149073400*123456789"), CallbackRefusal::Malformed);
        assert_eq!(refused("*123"), CallbackRefusal::Malformed);
    }

    #[test]
    fn malformed_numbers_get_invalid() {
        for keyed in [
            "",
            "514907340",    // nine digits
            "514907340012", // twelve
            "25149073400",  // eleven without the 1
            "5141073400",   // exchange starting with 1
            "1149073400",   // area code starting with 1
            "9073400",      // seven-digit local
            "514A073400",
            "514#073400",
            "5149073400*12A",
            &"5".repeat(40),
        ] {
            assert_eq!(refused(keyed), CallbackRefusal::Malformed, "{keyed}");
        }
    }

    #[test]
    fn toll_fraud_numbers_are_refused() {
        for keyed in [
            "9005551234",      // premium
            "19005551234",     // premium with the 1
            "9765551234",      // premium
            "5149765555",      // in-area premium exchange
            "5149505555",      // carrier access exchange
            "011441234567890", // international
            "0114412345678",
            "0",            // operator
            "00",           // long-distance operator
            "01144",        // operator-assisted international
            "015149073400", // operator-assisted
            "911",          // emergency services
            "411",          // directory assistance
            "611",          // repair
            "1010321",      // carrier access code
            "5144115555",   // N11 exchange
            "4115551234",   // N11 area code
            "2125551234",   // New York: a real number, not ours to call
            "4165551234",   // Toronto
            "8765551234",   // Jamaica: NANP, but international rates
            "8095551234",   // Dominican Republic
            "2845551234",   // British Virgin Islands
            "9005551234*12",
        ] {
            assert_eq!(refused(keyed), CallbackRefusal::NotAllowed, "{keyed}");
        }
    }

    #[test]
    fn premium_is_refused_even_when_allowed_by_config() {
        assert!(matches!(
            CallbackPolicy::new(["900"]),
            Err(CallbackPolicyError::Premium(_))
        ));
        assert!(matches!(
            CallbackPolicy::new(["9"]),
            Err(CallbackPolicyError::Premium(_))
        ));
        // A broad but legal prefix still never reaches 976 exchanges or 900.
        let p = CallbackPolicy::new(["5", "8"]).unwrap();
        assert_eq!(p.check("5149765555"), Err(CallbackRefusal::NotAllowed));
        assert!(p.check("5149073400").is_ok());
    }

    #[test]
    fn bad_prefixes_are_refused_with_a_reason() {
        assert!(matches!(
            CallbackPolicy::new(["51a"]),
            Err(CallbackPolicyError::NotDigits(_))
        ));
        assert!(matches!(
            CallbackPolicy::new([""]),
            Err(CallbackPolicyError::NotDigits(_))
        ));
        assert!(matches!(
            CallbackPolicy::new(["011"]),
            Err(CallbackPolicyError::BadAreaCode(_))
        ));
        let p = CallbackPolicy::new(["+1514", "819555"]).unwrap();
        assert_eq!(p.prefixes(), ["514", "819555"]);
        assert!(p.check("8195551234").is_ok());
        assert_eq!(p.check("8192221234"), Err(CallbackRefusal::NotAllowed));
        assert_eq!(p.check("4182221234"), Err(CallbackRefusal::NotAllowed));
    }

    #[test]
    fn records_are_read_back_but_premium_never() {
        let n = ok("5149073400*12");
        assert_eq!(CallbackNumber::from_record(&n.to_string()), Some(n.clone()));
        let json = serde_json::to_string(&n).unwrap();
        assert_eq!(json, "\"+15149073400;ext=12\"");
        assert_eq!(serde_json::from_str::<CallbackNumber>(&json).unwrap(), n);
        assert_eq!(
            CallbackNumber::from_record("+15145550100").map(|c| c.e164()),
            Some("+15145550100".into())
        );
        for refused in [
            "",
            "+19005551234",
            "19005551234",
            "+15149765555",
            "anonymous",
            "611",
        ] {
            assert_eq!(CallbackNumber::from_record(refused), None, "{refused}");
        }
        assert!(serde_json::from_str::<CallbackNumber>("\"+19005551234\"").is_err());
    }

    #[test]
    fn a_missing_number_is_told_as_information() {
        let mut answers = std::collections::BTreeMap::new();
        answers.insert("callback_refused".to_string(), "19005551234".to_string());
        let note = NoCallbackNumber::of("+19005551234", &answers);
        assert_eq!(
            note.en(),
            "the caller ID +19005551234 may not be called back; they keyed 19005551234, which is not allowed"
        );
        assert!(note.fr().contains("+19005551234"));
        let none = std::collections::BTreeMap::new();
        let hidden = NoCallbackNumber::of("anonymous", &none);
        assert_eq!(hidden.en(), "the caller ID is hidden");
    }

    #[test]
    fn caller_id_is_taken_only_when_it_is_an_allowed_number() {
        let p = CallbackPolicy::default();
        let n = p.from_caller_id(Some("+15149073400")).unwrap();
        assert_eq!(n.e164(), "+15149073400");
        assert_eq!(p.from_caller_id(Some("15149073400")), Some(n.clone()));
        assert_eq!(p.from_caller_id(Some("5149073400")), Some(n));
        for hidden in [
            None,
            Some(""),
            Some("anonymous"),
            Some("Anonymous"),
            Some("restricted"),
            Some("unavailable"),
            Some("+"),
            Some("+514907340"),
            Some("+4420712345"),   // foreign, ten digits after '+'
            Some("+442071234567"), // foreign
            Some("+19005551234"),  // premium
            Some("+12125551234"),  // not in the allow list
            Some("514-907-3400"),
            Some("5149073400;npdi"),
            Some("100"), // an extension
            Some("911"),
        ] {
            assert_eq!(p.from_caller_id(hidden), None, "{hidden:?}");
        }
    }
}
