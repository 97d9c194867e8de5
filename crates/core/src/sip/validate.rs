//! What a request must carry before anything acts on it (RFC 3261 §8.2, RFC 4475).
//!
//! Each failure names what is wrong; the endpoint sends it back in a `Warning` header.

use super::message::{is_lws, uri_scheme, CSeq, NameAddr, Request, Uri, Via};

/// A request refused before it reaches a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub code: u16,
    pub warning: String,
}

fn bad(warning: impl Into<String>) -> Rejection {
    Rejection {
        code: 400,
        warning: warning.into(),
    }
}

/// Header fields that may appear once only.
const SINGLE: &[&str] = &[
    "Call-ID",
    "CSeq",
    "From",
    "To",
    "Max-Forwards",
    "Content-Length",
    "Content-Type",
    "Expires",
    "Date",
];

/// Checks a parsed request; `Ok` means its framing headers can be trusted.
pub fn validate_request(req: &Request) -> Result<(), Rejection> {
    if !req.version.eq_ignore_ascii_case("SIP/2.0") {
        return Err(Rejection {
            code: 505,
            warning: format!("SIP version {} is not supported", req.version),
        });
    }
    for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
        if req.headers.count(name) == 0 {
            return Err(bad(format!("missing {name} header")));
        }
        if req.headers.is_lossy(name) {
            return Err(bad(format!("{name} header is not valid UTF-8")));
        }
    }
    for name in SINGLE {
        if req.headers.count(name) > 1 {
            return Err(bad(format!("more than one {name} header")));
        }
    }
    for (i, v) in req.headers.list("Via").iter().enumerate() {
        if Via::parse(v).is_none() {
            return Err(bad(format!("Via header {} is malformed", i + 1)));
        }
    }
    let cseq = req
        .headers
        .get("CSeq")
        .and_then(CSeq::parse)
        .ok_or_else(|| bad("CSeq is malformed (a number below 2^31 and a method)"))?;
    if cseq.method != req.method.as_str() {
        return Err(bad(format!(
            "CSeq method {} does not match the request method {}",
            cseq.method, req.method
        )));
    }
    for name in ["From", "To"] {
        let v = req.headers.get(name).unwrap_or_default();
        if NameAddr::parse(v).is_none() {
            return Err(bad(format!("{name} header is malformed")));
        }
    }
    if req
        .call_id()
        .is_none_or(|c| c.is_empty() || c.contains(char::is_whitespace))
    {
        return Err(bad("Call-ID is malformed"));
    }
    if let Some(mf) = req.headers.get("Max-Forwards") {
        let ok = !mf.is_empty()
            && mf.bytes().all(|b| b.is_ascii_digit())
            && mf.parse::<u32>().is_ok_and(|n| n <= 255);
        if !ok {
            return Err(bad("Max-Forwards is not a number from 0 to 255"));
        }
    }
    for name in ["Contact", "Route", "Record-Route"] {
        for v in req.headers.list(name) {
            if v == "*" && name == "Contact" {
                continue;
            }
            if NameAddr::parse(&v).is_none() {
                return Err(bad(format!("{name} header is malformed")));
            }
        }
    }
    if let Some(date) = req.headers.get("Date") {
        if !valid_date(date) {
            return Err(bad("Date header is not an RFC 1123 date in GMT"));
        }
    }
    if let Some(exp) = req.headers.get("Expires") {
        if exp.is_empty() || !exp.bytes().all(|b| b.is_ascii_digit()) || exp.parse::<u32>().is_err()
        {
            return Err(bad("Expires is not a number of seconds below 2^32"));
        }
    }
    // Request-URI: a SIP URI must parse and may not carry headers (RFC 3261 §19.1.5); another
    // scheme is well-formed if it looks like an absolute URI (it will get 416).
    if req.uri.starts_with('<') || req.uri.contains(char::is_whitespace) {
        return Err(bad("Request-URI is malformed"));
    }
    match uri_scheme(&req.uri).as_deref() {
        Some("sip") | Some("sips") => {
            let uri = Uri::parse(&req.uri).ok_or_else(|| bad("Request-URI is malformed"))?;
            if uri.has_headers {
                return Err(bad("Request-URI may not contain headers"));
            }
        }
        Some(_) => {}
        None => return Err(bad("Request-URI is not an absolute URI")),
    }
    Ok(())
}

/// `Date: Sat, 13 Nov 2010 23:29:00 GMT` (RFC 3261 §20.17: RFC 1123 form, GMT only).
fn valid_date(v: &str) -> bool {
    let parts: Vec<&str> = v.split(is_lws).filter(|p| !p.is_empty()).collect();
    if parts.len() != 6 || parts[5] != "GMT" {
        return false;
    }
    let wkday_ok = parts[0]
        .strip_suffix(',')
        .is_some_and(|d| ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"].contains(&d));
    let day_ok = parts[1].len() == 2 && parts[1].parse::<u8>().is_ok_and(|d| (1..=31).contains(&d));
    let month_ok = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .contains(&parts[2]);
    let year_ok = parts[3].len() == 4 && parts[3].bytes().all(|b| b.is_ascii_digit());
    let time: Vec<&str> = parts[4].split(':').collect();
    let time_ok = time.len() == 3
        && time
            .iter()
            .all(|t| t.len() == 2 && t.bytes().all(|b| b.is_ascii_digit()));
    wkday_ok && day_ok && month_ok && year_ok && time_ok
}

#[cfg(test)]
mod tests {
    use super::super::message::{parse, Message};
    use super::*;

    #[test]
    fn via_with_nbsp_is_a_400_not_a_panic() {
        let msg = "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP\u{a0}192.0.2.1;branch=z9hG4bK1\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
        let Ok(Message::Request(req)) = parse(msg.as_bytes()) else {
            panic!("the message frames");
        };
        let r = validate_request(&req).unwrap_err();
        assert_eq!(
            (r.code, r.warning.as_str()),
            (400, "Via header 1 is malformed")
        );
        let fixed = msg.replace('\u{a0}', " ");
        let Ok(Message::Request(req)) = parse(fixed.as_bytes()) else {
            panic!("the message frames");
        };
        assert_eq!(validate_request(&req), Ok(()));
    }

    #[test]
    fn dates() {
        assert!(valid_date("Sat, 15 Oct 2005 04:44:56 GMT"));
        assert!(!valid_date("Fri, 01 Jan 2010 16:00:00 EST"));
        assert!(!valid_date("yesterday"));
        assert!(!valid_date("Sat,\u{a0}15 Oct 2005 04:44:56 GMT"));
    }
}
