//! SIP messages: parsing (RFC 3261 §7, §25) and serialisation.
//!
//! Parsing is deliberately split in two: [`parse`] frames a message and splits its header
//! section into named fields (unfolding continuation lines, expanding compact names, decoding
//! each line on its own so one bad byte never loses the headers after it), and the typed
//! accessors below parse a field only when someone asks. Validation of what a request must
//! carry lives in `validate.rs`.

use std::fmt::{self, Write as _};

/// A request method. Unknown methods are kept verbatim (they get 501).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    Invite,
    Ack,
    Bye,
    Cancel,
    Options,
    Register,
    Info,
    Update,
    Prack,
    Subscribe,
    Notify,
    Refer,
    Message,
    Publish,
    Other(String),
}

impl Method {
    pub fn from_token(s: &str) -> Method {
        match s {
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "BYE" => Method::Bye,
            "CANCEL" => Method::Cancel,
            "OPTIONS" => Method::Options,
            "REGISTER" => Method::Register,
            "INFO" => Method::Info,
            "UPDATE" => Method::Update,
            "PRACK" => Method::Prack,
            "SUBSCRIBE" => Method::Subscribe,
            "NOTIFY" => Method::Notify,
            "REFER" => Method::Refer,
            "MESSAGE" => Method::Message,
            "PUBLISH" => Method::Publish,
            other => Method::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Options => "OPTIONS",
            Method::Register => "REGISTER",
            Method::Info => "INFO",
            Method::Update => "UPDATE",
            Method::Prack => "PRACK",
            Method::Subscribe => "SUBSCRIBE",
            Method::Notify => "NOTIFY",
            Method::Refer => "REFER",
            Method::Message => "MESSAGE",
            Method::Publish => "PUBLISH",
            Method::Other(s) => s,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One header field as received (name canonicalised, value unfolded and trimmed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub name: String,
    pub value: String,
    /// The line held bytes that were not UTF-8 (replaced by U+FFFD in `value`).
    pub lossy: bool,
}

/// The header section, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(pub Vec<Header>);

impl Headers {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    }

    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    }

    pub fn count(&self, name: &str) -> usize {
        self.0
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .count()
    }

    /// Every comma-separated element of every occurrence of a list header.
    pub fn list(&self, name: &str) -> Vec<String> {
        let mut out = Vec::new();
        for v in self.get_all(name) {
            for part in split_list(v) {
                let part = trim_lws(part);
                if !part.is_empty() {
                    out.push(part.to_string());
                }
            }
        }
        out
    }

    pub fn push(&mut self, name: &str, value: impl Into<String>) {
        self.0.push(Header {
            name: name.to_string(),
            value: value.into(),
            lossy: false,
        });
    }

    pub fn remove(&mut self, name: &str) {
        self.0.retain(|h| !h.name.eq_ignore_ascii_case(name));
    }

    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        self.remove(name);
        self.push(name, value);
    }

    pub fn cseq(&self) -> Option<CSeq> {
        self.get("CSeq").and_then(CSeq::parse)
    }

    /// The first Via value (the one a response goes back along).
    pub fn top_via(&self) -> Option<Via> {
        let first = self
            .get("Via")
            .and_then(|v| split_list(v).into_iter().next())?;
        Via::parse(first)
    }

    pub fn to(&self) -> Option<NameAddr> {
        self.get("To").and_then(NameAddr::parse)
    }

    /// Replaces the first occurrence of `name` keeping its position.
    pub fn set_in_place(&mut self, name: &str, value: String) {
        if let Some(h) = self
            .0
            .iter_mut()
            .find(|h| h.name.eq_ignore_ascii_case(name))
        {
            h.value = value;
        } else {
            self.push(name, value);
        }
    }

    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.list(name)
            .iter()
            .any(|t| t.eq_ignore_ascii_case(token))
    }

    pub fn is_lossy(&self, name: &str) -> bool {
        self.0
            .iter()
            .any(|h| h.lossy && h.name.eq_ignore_ascii_case(name))
    }
}

/// A SIP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    pub uri: String,
    pub version: String,
    pub headers: Headers,
    pub body: Vec<u8>,
}

/// A SIP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub version: String,
    pub code: u16,
    pub reason: String,
    pub headers: Headers,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Request(Request),
    Response(Response),
}

/// Why bytes are not a SIP message. `start` tells whether the start line was a request's, so the
/// caller knows whether a 400 can be sent (it also needs the headers, kept in `headers`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub reason: String,
    pub request_line: Option<(String, String)>,
    /// The status code, when the start line was a readable response's.
    pub status: Option<u16>,
    /// The header lines that could be read; a line refused by the grammar is not among them.
    pub headers: Headers,
    /// The message broke the line grammar (a control byte, a bare CR or LF): bytes that another
    /// reader may split differently, so nothing of it may be acted on as it was meant.
    pub control_bytes: bool,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for ParseError {}

fn perr(reason: impl Into<String>) -> ParseError {
    ParseError {
        reason: reason.into(),
        request_line: None,
        status: None,
        headers: Headers::default(),
        control_bytes: false,
    }
}

/// Long form of a compact header name (RFC 3261 §7.3.3 and later RFCs), and the canonical
/// spelling of common ones.
fn canonical_name(name: &str) -> String {
    if name.len() == 1 {
        let long = match name.as_bytes()[0].to_ascii_lowercase() {
            b'i' => "Call-ID",
            b'm' => "Contact",
            b'e' => "Content-Encoding",
            b'l' => "Content-Length",
            b'c' => "Content-Type",
            b'f' => "From",
            b's' => "Subject",
            b'k' => "Supported",
            b't' => "To",
            b'v' => "Via",
            b'o' => "Event",
            b'r' => "Refer-To",
            b'b' => "Referred-By",
            b'u' => "Allow-Events",
            b'x' => "Session-Expires",
            b'a' => "Accept-Contact",
            b'j' => "Reject-Contact",
            b'd' => "Request-Disposition",
            b'y' => "Identity",
            b'n' => "Identity-Info",
            _ => return name.to_string(),
        };
        return long.to_string();
    }
    const KNOWN: &[&str] = &[
        "Via",
        "From",
        "To",
        "Call-ID",
        "CSeq",
        "Contact",
        "Max-Forwards",
        "Content-Length",
        "Content-Type",
        "Route",
        "Record-Route",
        "Require",
        "Proxy-Require",
        "Supported",
        "Allow",
        "Accept",
        "Session-Expires",
        "Min-SE",
        "Date",
        "Expires",
        "WWW-Authenticate",
        "Proxy-Authenticate",
        "Authorization",
        "Proxy-Authorization",
        "User-Agent",
        "Server",
        "Reason",
        "Warning",
        "Unsupported",
        "Retry-After",
        "Subject",
        "Content-Encoding",
        "Content-Disposition",
        "Info-Package",
    ];
    for k in KNOWN {
        if k.eq_ignore_ascii_case(name) {
            return (*k).to_string();
        }
    }
    name.to_string()
}

pub(crate) fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            '-' | '.' | '!' | '%' | '*' | '_' | '+' | '`' | '\'' | '~'
        )
}

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.chars().all(is_token_char)
}

/// SIP linear white space within a header value (RFC 3261 §25.1: SP / HTAB; folding is undone
/// by [`parse`]). Not `char::is_whitespace`: U+00A0 and other Unicode spaces are plain bytes
/// to SIP, and a byte offset found with a Unicode predicate must never be advanced by one.
pub(crate) fn is_lws(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// `s` without leading and trailing SP/HTAB.
pub(crate) fn trim_lws(s: &str) -> &str {
    s.trim_matches(is_lws)
}

/// Where the header section ends: (index of the first body byte, header section length).
/// Accepts CRLFCRLF, and LFLF from sloppy senders.
fn header_end(buf: &[u8]) -> Option<(usize, usize)> {
    let crlf = memchr::memmem::find(buf, b"\r\n\r\n").map(|i| (i + 4, i));
    let lf = memchr::memmem::find(buf, b"\n\n").map(|i| (i + 2, i));
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(if a.1 <= b.1 { a } else { b }),
        (a, b) => a.or(b),
    }
}

/// The outcome of framing bytes from a stream (TCP): a whole message, more bytes needed, or a
/// framing error after which the connection cannot be trusted.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A message occupies `buf[..len]` (after `skip` leading CRLF keep-alives).
    Message {
        skip: usize,
        len: usize,
    },
    NeedMore,
    Invalid(String),
}

/// Largest header section we buffer from a stream before giving up on the peer.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Largest body we accept.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// Finds one message in a stream buffer (RFC 3261 §18.3: Content-Length is mandatory).
pub fn frame_stream(buf: &[u8]) -> Frame {
    let skip = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    let rest = &buf[skip..];
    if rest.is_empty() {
        return Frame::NeedMore;
    }
    let Some((body_start, head_len)) = header_end(rest) else {
        if rest.len() > MAX_HEADER_BYTES {
            return Frame::Invalid("header section too long".into());
        }
        return Frame::NeedMore;
    };
    let head = String::from_utf8_lossy(&rest[..head_len]);
    let mut length: Option<usize> = None;
    for line in head.split('\n') {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("l") {
            match value.trim().parse::<usize>() {
                Ok(n) if n <= MAX_BODY_BYTES => length = Some(n),
                _ => return Frame::Invalid("invalid Content-Length".into()),
            }
        }
    }
    let Some(length) = length else {
        return Frame::Invalid("Content-Length is required over a stream transport".into());
    };
    if rest.len() < body_start + length {
        return Frame::NeedMore;
    }
    Frame::Message {
        skip,
        len: body_start + length,
    }
}

/// Parses one message from a datagram, or from a frame cut by [`frame_stream`].
///
/// Over UDP, bytes past Content-Length are ignored (RFC 3261 §18.3) and a message without it
/// takes the rest of the datagram as its body.
pub fn parse(buf: &[u8]) -> Result<Message, ParseError> {
    let start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .ok_or_else(|| perr("empty message"))?;
    let buf = &buf[start..];
    // A datagram whose header section has no terminating blank line is still parsed (the
    // datagram's end ends it), so it can be answered.
    let (body_start, head_len) = header_end(buf).unwrap_or((buf.len(), buf.len()));
    let head = &buf[..head_len];

    // The line grammar (RFC 3261 §7.3.1, §25.1): a header line ends with CRLF, and inside it
    // no control byte but HTAB, except a quoted-pair's second byte (never CR or LF). A reader
    // that took a bare CR or LF as a line end would see other headers than we do, so such a
    // line is refused, not mended. Senders that end every line with LF alone stay welcome.
    let segments: Vec<&[u8]> = head.split(|&b| b == b'\n').collect();
    let crlf = segments.first().is_some_and(|s| s.ends_with(b"\r"));
    let mut grammar_error: Option<String> = None;
    if crlf && buf[head_len..].starts_with(b"\n\n") {
        grammar_error = Some("the header section ends with a bare LF".into());
    }
    let mut lines: Vec<Line> = Vec::new();
    let folds_next = |i: usize| {
        segments
            .get(i + 1)
            .and_then(|n| n.first())
            .is_some_and(|&b| b == b' ' || b == b'\t')
    };
    let mut previous_bare_lf = false;
    for (i, raw) in segments.iter().enumerate() {
        let (raw, had_cr) = match raw.strip_suffix(b"\r") {
            Some(r) => (r, true),
            None => (*raw, false),
        };
        // In a CRLF message, an LF alone ends a line only for a lenient reader: unless it
        // folds, the line it ends and the one it starts are each read two ways.
        let bare_lf = crlf && !had_cr && i + 1 < segments.len() && !folds_next(i);
        let mut fault = control_byte_fault(raw);
        if bare_lf || previous_bare_lf {
            fault = fault.or(Some("a bare LF"));
        }
        previous_bare_lf = bare_lf;
        let (text, lossy) = match std::str::from_utf8(raw) {
            Ok(s) => (s.to_string(), false),
            Err(_) => (String::from_utf8_lossy(raw).into_owned(), true),
        };
        if text.starts_with([' ', '\t']) && !lines.is_empty() {
            // Continuation line (RFC 3261 §7.3.1): folds into the previous one with one space.
            if let Some(prev) = lines.last_mut() {
                prev.text.push(' ');
                prev.text.push_str(text.trim_start());
                prev.lossy |= lossy;
                prev.fault = prev.fault.or(fault);
            }
        } else {
            lines.push(Line { text, lossy, fault });
        }
    }
    let mut iter = lines.into_iter();
    let first = iter.next().ok_or_else(|| perr("empty message"))?;
    let (start_line, start_lossy) = (first.text, first.lossy);
    if let Some(fault) = first.fault {
        grammar_error = Some(format!("the start line holds {fault}"));
    }

    let mut headers = Headers::default();
    let mut header_error: Option<String> = None;
    for line in iter {
        if let Some(fault) = line.fault {
            grammar_error
                .get_or_insert_with(|| format!("header {} holds {fault}", line_name(&line.text)));
            continue;
        }
        let Line {
            text: line, lossy, ..
        } = line;
        if line.is_empty() {
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            header_error.get_or_insert_with(|| format!("header line without a colon: {line:.40}"));
            continue;
        };
        let name = name.trim_end_matches([' ', '\t']);
        if !is_token(name) {
            header_error.get_or_insert_with(|| format!("invalid header name \"{name:.40}\""));
            continue;
        }
        headers.0.push(Header {
            name: canonical_name(name),
            value: value.trim().to_string(),
            lossy,
        });
    }

    let body_all = &buf[body_start.min(buf.len())..];

    if let Some(rest) = start_line.strip_prefix("SIP/") {
        let _ = rest;
        return parse_response(&start_line, headers, grammar_error, header_error, body_all);
    }

    // Request-Line = Method SP Request-URI SP SIP-Version: exactly single spaces.
    let parts: Vec<&str> = start_line.split(' ').collect();
    let request_line = if parts.len() >= 2 {
        Some((parts[0].to_string(), parts[1].to_string()))
    } else {
        None
    };
    let fail = |reason: String, headers: Headers| ParseError {
        reason,
        request_line: request_line.clone(),
        status: None,
        headers,
        control_bytes: false,
    };
    if start_lossy {
        return Err(fail("request line is not valid UTF-8".into(), headers));
    }
    if parts.len() != 3 || parts.iter().any(|p| p.is_empty()) {
        return Err(fail(
            "malformed request line (Method SP Request-URI SP SIP-Version, single spaces)".into(),
            headers,
        ));
    }
    let (method, uri, version) = (parts[0], parts[1], parts[2]);
    if !is_token(method) {
        return Err(fail(format!("invalid method \"{method:.40}\""), headers));
    }
    if let Some(e) = grammar_error {
        let mut e = fail(e, headers);
        e.control_bytes = true;
        return Err(e);
    }
    if let Some(e) = header_error {
        return Err(fail(e, headers));
    }
    let body = match body_for(&headers, body_all) {
        Ok(b) => b,
        Err(e) => return Err(fail(e, headers)),
    };
    Ok(Message::Request(Request {
        method: Method::from_token(method),
        uri: uri.to_string(),
        version: version.to_string(),
        headers,
        body,
    }))
}

fn parse_response(
    start_line: &str,
    headers: Headers,
    grammar_error: Option<String>,
    header_error: Option<String>,
    body_all: &[u8],
) -> Result<Message, ParseError> {
    let mut parts = start_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let code = parts.next().unwrap_or_default();
    let reason = parts.next();
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(perr(format!("invalid status code \"{code:.20}\"")));
    }
    let code: u16 = code.parse().map_err(|_| perr("invalid status code"))?;
    if !(100..700).contains(&code) {
        return Err(perr("status code out of range"));
    }
    let Some(reason) = reason else {
        return Err(perr("status line without a reason phrase separator"));
    };
    if let Some(e) = grammar_error {
        // Kept with the readable headers, so the transaction it answers can be told.
        return Err(ParseError {
            reason: e,
            request_line: None,
            status: Some(code),
            headers,
            control_bytes: true,
        });
    }
    if let Some(e) = header_error {
        return Err(perr(e));
    }
    let body = body_for(&headers, body_all).map_err(perr)?;
    Ok(Message::Response(Response {
        version: version.to_string(),
        code,
        reason: reason.to_string(),
        headers,
        body,
    }))
}

/// One header line as read, before it is split into name and value.
struct Line {
    text: String,
    lossy: bool,
    /// What breaks the line grammar in it, if anything.
    fault: Option<&'static str>,
}

/// The first control byte in a line that RFC 3261's grammar does not allow there: any but HTAB,
/// except as the second byte of a quoted-pair (never CR or LF).
pub fn control_byte_fault(line: &[u8]) -> Option<&'static str> {
    let mut in_quote = false;
    let mut escaped = false;
    for &b in line {
        if escaped {
            escaped = false;
            if b != b'\r' && b != b'\n' {
                continue;
            }
        }
        match b {
            b'\\' if in_quote => escaped = true,
            b'"' => in_quote = !in_quote,
            b'\r' => return Some("a bare CR"),
            b'\n' => return Some("a bare LF"),
            0 => return Some("a NUL byte"),
            b'\t' => {}
            b if b < 0x20 || b == 0x7f => return Some("a control byte"),
            _ => {}
        }
    }
    None
}

/// A header line's name for an error message: its name when that is a token.
fn line_name(line: &str) -> String {
    match line.split_once(':') {
        Some((name, _)) if is_token(name.trim_end_matches([' ', '\t'])) => name
            .trim_end_matches([' ', '\t'])
            .chars()
            .take(40)
            .collect(),
        _ => "line".into(),
    }
}

/// Whether a byte may not appear in a header as we send it: every ASCII control but HTAB.
fn is_unsendable(b: u8) -> bool {
    (b < 0x20 && b != b'\t') || b == 0x7f
}

/// Writes `text` into a header section being built, each control byte as `?`: whatever a peer
/// managed to get into a value we copy, no line we send can be split by it (RFC 3261's
/// quoted-pair keeps an escaped one valid: `\?`).
fn push_sendable(s: &mut String, text: &str) {
    if !text.bytes().any(is_unsendable) {
        s.push_str(text);
        return;
    }
    s.extend(text.chars().map(|c| {
        if c.is_ascii() && is_unsendable(c as u8) {
            '?'
        } else {
            c
        }
    }));
}

/// Where the header section of a message we are about to send holds a control byte other than
/// the CRLF that ends each line (HTAB aside): `None` for a clean message. The fuzz targets and
/// tests hold everything the endpoint sends to it.
pub fn unsendable_byte(msg: &[u8]) -> Option<usize> {
    let head_len = memchr::memmem::find(msg, b"\r\n\r\n").map_or(msg.len(), |i| i + 2);
    let head = &msg[..head_len];
    for (i, &b) in head.iter().enumerate() {
        let line_end = (b == b'\r' && head.get(i + 1) == Some(&b'\n'))
            || (b == b'\n' && i > 0 && head[i - 1] == b'\r');
        if is_unsendable(b) && !line_end {
            return Some(i);
        }
    }
    None
}

fn body_for(headers: &Headers, body_all: &[u8]) -> Result<Vec<u8>, String> {
    let count = headers.count("Content-Length");
    if count > 1 {
        return Err("more than one Content-Length".into());
    }
    match headers.get("Content-Length") {
        None => Ok(body_all.to_vec()),
        Some(v) => {
            if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("invalid Content-Length \"{v:.20}\""));
            }
            let n: usize = v
                .parse()
                .map_err(|_| format!("Content-Length {v:.20} is too large"))?;
            if n > body_all.len() {
                return Err(format!(
                    "Content-Length {n} exceeds the {} bytes received",
                    body_all.len()
                ));
            }
            Ok(body_all[..n].to_vec())
        }
    }
}

/// Splits a header value at top-level commas (not inside quotes or angle brackets).
pub fn split_list(v: &str) -> Vec<&str> {
    split_top_level(v, ',')
}

/// Splits at `sep` outside quoted strings (with their escapes) and angle brackets.
fn split_top_level(v: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth_angle = 0i32;
    let mut in_quote = false;
    let mut escaped = false;
    let mut start = 0;
    for (i, c) in v.char_indices() {
        if in_quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_quote = false;
            }
            continue;
        }
        match c {
            '"' => in_quote = true,
            '<' => depth_angle += 1,
            '>' => depth_angle -= 1,
            c if c == sep && depth_angle == 0 => {
                out.push(&v[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    out.push(&v[start..]);
    out
}

// ---------------------------------------------------------------------------------------------
// Serialisation

impl Request {
    pub fn new(method: Method, uri: impl Into<String>) -> Request {
        Request {
            method,
            uri: uri.into(),
            version: "SIP/2.0".into(),
            headers: Headers::default(),
            body: Vec::new(),
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut s = String::with_capacity(512 + self.body.len());
        push_sendable(&mut s, self.method.as_str());
        s.push(' ');
        push_sendable(&mut s, &self.uri);
        s.push_str(" SIP/2.0\r\n");
        write_headers(&mut s, &self.headers, self.body.len());
        let mut out = s.into_bytes();
        out.extend_from_slice(&self.body);
        out
    }

    pub fn call_id(&self) -> Option<&str> {
        self.headers.get("Call-ID")
    }

    pub fn cseq(&self) -> Option<CSeq> {
        self.headers.cseq()
    }

    pub fn top_via(&self) -> Option<Via> {
        self.headers.top_via()
    }

    pub fn from(&self) -> Option<NameAddr> {
        self.headers.get("From").and_then(NameAddr::parse)
    }

    pub fn to(&self) -> Option<NameAddr> {
        self.headers.to()
    }
}

impl Response {
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut s = String::with_capacity(512 + self.body.len());
        let _ = write!(s, "SIP/2.0 {} ", self.code);
        push_sendable(&mut s, &self.reason);
        s.push_str("\r\n");
        write_headers(&mut s, &self.headers, self.body.len());
        let mut out = s.into_bytes();
        out.extend_from_slice(&self.body);
        out
    }

    pub fn cseq(&self) -> Option<CSeq> {
        self.headers.cseq()
    }

    pub fn top_via(&self) -> Option<Via> {
        self.headers.top_via()
    }

    pub fn to(&self) -> Option<NameAddr> {
        self.headers.to()
    }
}

fn write_headers(s: &mut String, headers: &Headers, body_len: usize) {
    for h in &headers.0 {
        if h.name.eq_ignore_ascii_case("Content-Length") {
            continue;
        }
        push_sendable(s, &h.name);
        s.push_str(": ");
        push_sendable(s, &h.value);
        s.push_str("\r\n");
    }
    let _ = write!(s, "Content-Length: {body_len}\r\n\r\n");
}

/// Standard reason phrases for the codes we send.
pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        100 => "Trying",
        180 => "Ringing",
        183 => "Session Progress",
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        422 => "Session Interval Too Small",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        491 => "Request Pending",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "Version Not Supported",
        _ => "Unknown",
    }
}

// ---------------------------------------------------------------------------------------------
// Typed header values

/// CSeq: sequence number and method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    pub seq: u32,
    pub method: String,
}

impl CSeq {
    /// RFC 3261 §8.1.1.5: the number must be below 2**31.
    pub fn parse(v: &str) -> Option<CSeq> {
        let mut it = v.split(is_lws).filter(|w| !w.is_empty());
        let num = it.next()?;
        let method = it.next()?;
        if it.next().is_some() || !num.bytes().all(|b| b.is_ascii_digit()) || num.len() > 10 {
            return None;
        }
        let seq: u64 = num.parse().ok()?;
        if seq >= 1 << 31 || !is_token(method) {
            return None;
        }
        Some(CSeq {
            seq: seq as u32,
            method: method.to_string(),
        })
    }
}

/// Generic `;name=value` parameters; values may be quoted strings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(pub Vec<(String, Option<String>)>);

impl Params {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.as_deref())
    }

    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| k.eq_ignore_ascii_case(name))
    }

    /// Parses `;a=b;c` (the leading `;` already removed is fine too). LWS around `;` and `=` is
    /// allowed (RFC 3261 §25.1 SEMI, EQUAL); an empty parameter is an error.
    fn parse(s: &str) -> Option<Params> {
        let mut out = Vec::new();
        let s = trim_lws(s);
        if s.is_empty() {
            return Some(Params(out));
        }
        let s = s.strip_prefix(';').unwrap_or(s);
        for part in split_semis(s) {
            let part = trim_lws(part);
            if part.is_empty() {
                return None;
            }
            match part.split_once('=') {
                Some((k, v)) => {
                    let k = trim_lws(k);
                    let v = trim_lws(v);
                    if !is_token(k) || v.is_empty() {
                        return None;
                    }
                    let v = if v.starts_with('"') {
                        unquote(v)?
                    } else if v
                        .chars()
                        .all(|c| is_token_char(c) || c == ':' || c == '[' || c == ']')
                    {
                        v.to_string()
                    } else {
                        return None;
                    };
                    out.push((k.to_string(), Some(v)));
                }
                None => {
                    if !is_token(part) {
                        return None;
                    }
                    out.push((part.to_string(), None));
                }
            }
        }
        Some(Params(out))
    }
}

/// Splits at semicolons outside quoted strings.
fn split_semis(s: &str) -> Vec<&str> {
    split_top_level(s, ';')
}

/// The content of a quoted string (RFC 3261 quoted-pair unescaped); None if unbalanced.
fn unquote(s: &str) -> Option<String> {
    let inner = s.strip_prefix('"')?;
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?),
            '"' => {
                return trim_lws(chars.as_str()).is_empty().then_some(out);
            }
            c => out.push(c),
        }
    }
    None
}

/// A SIP or SIPS URI (RFC 3261 §19.1), or another absolute URI kept opaque.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uri {
    pub scheme: String,
    /// Percent-decoded user part, if any.
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
    pub params: Params,
    /// Whether the URI carried `?headers`.
    pub has_headers: bool,
}

impl Uri {
    /// Parses a SIP/SIPS URI; other schemes return None (see [`uri_scheme`]).
    pub fn parse(s: &str) -> Option<Uri> {
        if s.is_empty()
            || s.chars()
                .any(|c| c.is_whitespace() || c == '<' || c == '>' || c == '"')
        {
            return None;
        }
        let (scheme, rest) = s.split_once(':')?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "sip" && scheme != "sips" {
            return None;
        }
        // The user part may hold '?', ';' and ',' (RFC 3261 user-unreserved); it ends at the
        // last '@', since '@' cannot appear unescaped after it.
        let (user, after_user) = match rest.rfind('@') {
            Some(i) => (Some(&rest[..i]), &rest[i + 1..]),
            None => (None, rest),
        };
        let (hostpart, has_headers) = match after_user.split_once('?') {
            Some((r, h)) => {
                if h.is_empty() {
                    return None;
                }
                (r, true)
            }
            None => (after_user, false),
        };
        let (hostport, params) = match hostpart.split_once(';') {
            Some((h, p)) => (h, Params::parse(p)?),
            None => (hostpart, Params::default()),
        };
        let (host, port) = split_host_port(hostport)?;
        let user = match user {
            Some(u) => {
                if u.is_empty() {
                    return None;
                }
                Some(percent_decode(u)?)
            }
            None => None,
        };
        Some(Uri {
            scheme,
            user,
            host,
            port,
            params,
            has_headers,
        })
    }

    /// `sip:user@host:port` without parameters, for display and logs.
    pub fn short(&self) -> String {
        let mut s = format!("{}:", self.scheme);
        if let Some(u) = &self.user {
            s.push_str(u);
            s.push('@');
        }
        s.push_str(&self.host);
        if let Some(p) = self.port {
            let _ = write!(s, ":{p}");
        }
        s
    }
}

/// The scheme of an absolute URI, lower-cased, if the text looks like one.
pub fn uri_scheme(s: &str) -> Option<String> {
    let (scheme, _) = s.split_once(':')?;
    let ok = !scheme.is_empty()
        && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    ok.then(|| scheme.to_ascii_lowercase())
}

/// `host[:port]` with IPv6 references in brackets.
pub fn split_host_port(s: &str) -> Option<(String, Option<u16>)> {
    let s = trim_lws(s);
    if s.is_empty() {
        return None;
    }
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let end = rest.find(']')?;
        let host = &s[..end + 2];
        let after = &rest[end + 1..];
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => return None,
        };
        (host, port)
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    if host.is_empty()
        || !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '[' | ']' | ':'))
    {
        return None;
    }
    let port = match port {
        Some(p) => {
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            Some(p.parse::<u16>().ok()?)
        }
        None => None,
    };
    Some((host.to_ascii_lowercase(), port))
}

/// Percent-decodes a URI component. A `%` not followed by two hex digits is an error.
pub fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// A name-addr or addr-spec with header parameters: From, To, Contact, Route, Record-Route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    pub display: Option<String>,
    /// The URI text as written (without angle brackets).
    pub uri: String,
    pub params: Params,
}

impl NameAddr {
    pub fn parse(v: &str) -> Option<NameAddr> {
        let v = trim_lws(v);
        if v.is_empty() {
            return None;
        }
        let (display, after_display) = if v.starts_with('"') {
            // quoted display name
            let mut escaped = false;
            let mut end = None;
            for (i, c) in v.char_indices().skip(1) {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == '"' {
                    end = Some(i);
                    break;
                }
            }
            let end = end?;
            // `end` is the offset of the closing '"', one byte long.
            (
                Some(unquote(&v[..=end])?),
                v[end + 1..].trim_start_matches(is_lws),
            )
        } else if let Some(lt) = v.find('<') {
            let disp = trim_lws(&v[..lt]);
            // An unquoted display name is tokens separated by LWS (RFC 3261 §25.1).
            if !disp.split(is_lws).filter(|w| !w.is_empty()).all(is_token) {
                return None;
            }
            ((!disp.is_empty()).then(|| disp.to_string()), &v[lt..])
        } else {
            (None, v)
        };

        if let Some(inner) = after_display.strip_prefix('<') {
            let end = inner.find('>')?;
            let uri = &inner[..end];
            if uri.is_empty()
                || uri.starts_with(char::is_whitespace)
                || uri.ends_with(char::is_whitespace)
            {
                return None;
            }
            if uri_scheme(uri).is_none() || uri.chars().any(char::is_whitespace) {
                return None;
            }
            let rest = trim_lws(&inner[end + 1..]);
            let params = if rest.is_empty() {
                Params::default()
            } else {
                Params::parse(rest.strip_prefix(';')?)?
            };
            return Some(NameAddr {
                display,
                uri: uri.to_string(),
                params,
            });
        }
        if display.is_some() {
            return None;
        }
        // addr-spec without brackets: the URI cannot contain ',', ';' or '?' (§20); what
        // follows the first ';' is header parameters.
        let (uri, params) = match split_semis(v).split_first() {
            Some((first, rest)) if !rest.is_empty() => {
                let idx = first.len();
                (trim_lws(first), Params::parse(&v[idx..])?)
            }
            _ => (v, Params::default()),
        };
        if uri.contains('?') || uri.contains(',') || uri.chars().any(char::is_whitespace) {
            return None;
        }
        uri_scheme(uri)?;
        Some(NameAddr {
            display: None,
            uri: uri.to_string(),
            params,
        })
    }

    pub fn tag(&self) -> Option<&str> {
        self.params.get("tag")
    }

    pub fn sip_uri(&self) -> Option<Uri> {
        Uri::parse(&self.uri)
    }
}

/// One Via value (RFC 3261 §20.42).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    pub version: String,
    pub transport: String,
    pub host: String,
    pub port: Option<u16>,
    pub params: Params,
}

impl Via {
    /// Parses one Via value; LWS around '/' and ';' is allowed.
    pub fn parse(v: &str) -> Option<Via> {
        let mut rest = trim_lws(v);
        let mut fields = Vec::with_capacity(3);
        for i in 0..3 {
            // sent-protocol = name SLASH version SLASH transport, then LWS before sent-by.
            // The separator is a char: skip it by its UTF-8 length, never by one byte.
            let (end, sep) = rest
                .char_indices()
                .find(|&(_, c)| if i < 2 { c == '/' } else { is_lws(c) })?;
            let field = trim_lws(&rest[..end]);
            if !is_token(field) {
                return None;
            }
            fields.push(field.to_string());
            rest = rest[end + sep.len_utf8()..].trim_start_matches(is_lws);
        }
        if !fields[0].eq_ignore_ascii_case("SIP") {
            return None;
        }
        let (sent_by, params) = match rest.find(';') {
            Some(i) => (&rest[..i], Params::parse(&rest[i..])?),
            None => (rest, Params::default()),
        };
        let (host, port) = split_host_port(trim_lws(sent_by))?;
        Some(Via {
            version: fields[1].clone(),
            transport: fields[2].to_ascii_uppercase(),
            host,
            port,
            params,
        })
    }

    pub fn branch(&self) -> Option<&str> {
        self.params.get("branch")
    }

    /// `host:port` as a string, the sent-by used in transaction matching.
    pub fn sent_by(&self) -> String {
        match self.port {
            Some(p) => format!("{}:{p}", self.host),
            None => self.host.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(text: &str) -> Request {
        match parse(text.as_bytes()) {
            Ok(Message::Request(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn compact_headers_are_expanded() {
        let r = req("OPTIONS sip:a@b SIP/2.0\r\nv: SIP/2.0/UDP h;branch=z9hG4bK1\r\ni: abc\r\nf: <sip:x@y>;tag=1\r\nt: sip:a@b\r\nl: 0\r\n\r\n");
        assert_eq!(r.call_id(), Some("abc"));
        assert_eq!(
            r.top_via()
                .and_then(|v| v.branch().map(String::from))
                .as_deref(),
            Some("z9hG4bK1")
        );
        assert_eq!(
            r.from().and_then(|f| f.tag().map(String::from)).as_deref(),
            Some("1")
        );
    }

    #[test]
    fn non_utf8_byte_keeps_following_headers() {
        let mut msg = b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nSubject: caf\xe9\r\nCall-ID: after\r\nl: 0\r\n\r\n".to_vec();
        msg.extend_from_slice(b"");
        let r = match parse(&msg) {
            Ok(Message::Request(r)) => r,
            other => panic!("{other:?}"),
        };
        assert_eq!(r.call_id(), Some("after"));
        assert!(r.headers.is_lossy("Subject"));
    }

    #[test]
    fn via_with_lws_and_several_values() {
        let v = Via::parse(
            "SIP  / 2.0  / TCP     spindle.example.com   ;\r\n  branch  =   z9hG4bK9ikj8"
                .replace("\r\n", "")
                .as_str(),
        )
        .unwrap();
        assert_eq!(v.transport, "TCP");
        assert_eq!(v.branch(), Some("z9hG4bK9ikj8"));
        assert!(Via::parse("SIP/2.0/UDP 192.0.2.15;;").is_none());
    }

    /// A Via whose transport and host are separated by U+00A0 (two UTF-8 bytes) used to slice
    /// one byte past a Unicode-whitespace match, inside the character, and panic.
    #[test]
    fn via_with_nbsp_is_malformed_not_a_panic() {
        assert!(Via::parse("SIP/2.0/UDP\u{a0}host;branch=z9hG4bK1").is_none());
        assert!(Via::parse("SIP/2.0/UDP\u{a0}\u{a0}host").is_none());
        assert!(Via::parse("SIP/2.0/UDP\u{3000}host").is_none());
        assert!(Via::parse("SIP\u{a0}/2.0/UDP host").is_none());
        // The whole datagram: it parses, and the Via is simply unusable.
        let r = req("OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP\u{a0}192.0.2.1;branch=z9hG4bK1\r\nCall-ID: x\r\nl: 0\r\n\r\n");
        assert!(r.top_via().is_none());
        // SP and HTAB are still LWS.
        let v = Via::parse("SIP/2.0/UDP\t192.0.2.1:5070 ;branch=z9hG4bK1").unwrap();
        assert_eq!((v.host.as_str(), v.port), ("192.0.2.1", Some(5070)));
    }

    #[test]
    fn unicode_spaces_are_not_lws() {
        assert!(CSeq::parse("1\u{a0}OPTIONS").is_none());
        assert_eq!(CSeq::parse("1 \tOPTIONS").map(|c| c.seq), Some(1));
        assert!(NameAddr::parse("\u{a0}<sip:a@b>").is_none());
        assert!(NameAddr::parse("<sip:a@b>;tag=1\u{a0}").is_none());
        assert!(NameAddr::parse("\"A\"\u{a0}<sip:a@b>").is_none());
        assert!(NameAddr::parse("Bob\u{a0}Smith <sip:a@b>").is_none());
        assert!(NameAddr::parse("Bob Smith\t<sip:a@b>").is_some());
        assert!(Params::parse(";tag=1\u{a0}").is_none());
        assert!(split_host_port("\u{a0}example.com").is_none());
        assert!(Uri::parse("sip:a@b\u{a0}").is_none());
        // Multi-byte characters next to every separator the parsers cut at.
        for v in [
            "é<sip:a@b>",
            "\"é\"<sip:a@b>;tag=é",
            "sip:é@b;é",
            "<sip:a@b>é",
            "\"\\é\"<sip:a@b>",
        ] {
            let _ = NameAddr::parse(v);
        }
        for v in ["[é]:1", "[::1]é", "é:é", "[", "[]"] {
            let _ = split_host_port(v);
        }
        assert_eq!(
            split_list("a,é,<é,é>,\"é,\\é\""),
            ["a", "é", "<é,é>", "\"é,\\é\""]
        );
    }

    #[test]
    fn name_addr_forms() {
        assert!(NameAddr::parse("caller<sip:caller@example.com>;tag=323").is_some());
        assert!(NameAddr::parse("\"Watson, Thomas\" < sip:t.watson@example.org >").is_none());
        assert!(NameAddr::parse("Bell, Alexander <sip:a.g.bell@example.com>;tag=43").is_none());
        assert!(NameAddr::parse("\"Mr. J. User <sip:j.user@example.com>").is_none());
        assert!(NameAddr::parse("sip:user@example.com?Route=%3Csip:sip.example.com%3E").is_none());
        let n = NameAddr::parse("sip:+19725552222@gw1.example.net;unknownparam").unwrap();
        assert_eq!(n.uri, "sip:+19725552222@gw1.example.net");
        assert!(n.params.has("unknownparam"));
    }

    #[test]
    fn stream_framing() {
        let m = b"\r\nOPTIONS sip:a@b SIP/2.0\r\nContent-Length: 2\r\n\r\nhiOPT";
        match frame_stream(m) {
            Frame::Message { skip, len } => {
                assert_eq!(skip, 2);
                assert!(m[skip..skip + len].ends_with(b"hi"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            frame_stream(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 5\r\n\r\nhi"),
            Frame::NeedMore
        );
        assert!(matches!(
            frame_stream(b"OPTIONS sip:a@b SIP/2.0\r\n\r\n"),
            Frame::Invalid(_)
        ));
    }

    #[test]
    fn uri_parts() {
        let u = Uri::parse("sip:+15149073400@10.0.0.1:5080;user=phone").unwrap();
        assert_eq!(u.user.as_deref(), Some("+15149073400"));
        assert_eq!(u.port, Some(5080));
        assert_eq!(u.params.get("user"), Some("phone"));
        assert!(Uri::parse("sip:user@example.com; lr").is_none());
        assert!(Uri::parse("sip:[::1]:5060").is_some());
    }

    fn options_with(subject: &[u8]) -> Vec<u8> {
        let mut m = b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
            From: <sip:x@h>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nSubject: "
            .to_vec();
        m.extend_from_slice(subject);
        m.extend_from_slice(b"\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n");
        m
    }

    #[test]
    fn control_bytes_in_a_header_are_refused_with_the_rest_kept_for_the_400() {
        for (bytes, fault) in [
            (&b"a\rMax-Forwards: 0"[..], "a bare CR"),
            (b"a\0Max-Forwards: 0", "a NUL byte"),
            (b"a\nMax-Forwards: 0", "a bare LF"),
            (b"a\x1b[31m", "a control byte"),
            (b"a\x7f", "a control byte"),
        ] {
            let e = parse(&options_with(bytes)).unwrap_err();
            assert!(e.control_bytes, "{bytes:?}");
            assert!(e.request_line.is_some());
            assert!(e.reason.contains(fault), "{bytes:?}: {}", e.reason);
            // The offending line is gone; the ones a 400 needs are there.
            assert!(e.headers.get("Subject").is_none());
            assert_eq!(e.headers.get("Call-ID"), Some("c"));
            assert!(e.headers.get("Via").is_some());
            assert!(e.headers.get_all("Max-Forwards").all(|v| v == "70"));
        }
    }

    #[test]
    fn folds_tabs_lf_only_messages_and_quoted_pairs_stay_valid() {
        // A fold with a bare LF, a tab inside a value.
        assert!(parse(&options_with(b"a\n  folded\tb")).is_ok());
        // A sender that ends every line with LF alone.
        let lf = b"OPTIONS sip:a@b SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\nCall-ID: c\n\
            CSeq: 1 OPTIONS\nContent-Length: 0\n\n";
        assert!(parse(lf).is_ok());
        // RFC 4475 intmeth: a quoted-pair may escape NUL, BEL and DEL, never CR.
        let quoted =
            b"OPTIONS sip:a@b SIP/2.0\r\nTo: \"BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f\" <sip:a@b>\r\n\
            Content-Length: 0\r\n\r\n";
        assert!(parse(quoted).is_ok());
        let escaped_cr = b"OPTIONS sip:a@b SIP/2.0\r\nTo: \"a\\\rb\" <sip:a@b>\r\n\
            Content-Length: 0\r\n\r\n";
        assert!(parse(escaped_cr).unwrap_err().control_bytes);
    }

    #[test]
    fn a_header_section_ended_by_a_bare_lf_is_refused() {
        let m = b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nSubject: a\n\n\
            Max-Forwards: 0\r\n\r\n";
        let e = parse(m).unwrap_err();
        assert!(e.control_bytes, "{}", e.reason);
    }

    #[test]
    fn a_response_with_a_control_byte_keeps_its_status_and_readable_headers() {
        let m = b"SIP/2.0 407 Proxy Authentication Required\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
            CSeq: 1 INVITE\r\nProxy-Authenticate: Digest realm=\"a\rP-Asserted-Identity: x\", nonce=\"n\"\r\n\
            Content-Length: 0\r\n\r\n";
        let e = parse(m).unwrap_err();
        assert_eq!(e.status, Some(407));
        assert!(e.control_bytes);
        assert!(e.headers.get("Proxy-Authenticate").is_none());
        assert!(e.headers.top_via().is_some());
        // The start line too.
        let e = parse(b"SIP/2.0 200 O\0K\r\nCSeq: 1 INVITE\r\n\r\n").unwrap_err();
        assert!(e.control_bytes && e.status == Some(200), "{}", e.reason);
    }

    #[test]
    fn nothing_we_send_carries_a_control_byte() {
        let mut r = Request::new(Method::Options, "sip:a\r\n@b");
        r.headers.push("To", "\"x\\\0y\" <sip:a@b>");
        r.headers.push("Subject", "a\rInjected: 1\n\x1b[31m\x7f");
        let bytes = r.to_bytes();
        assert_eq!(
            unsendable_byte(&bytes),
            None,
            "{:?}",
            String::from_utf8_lossy(&bytes)
        );
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("Subject: a?Injected: 1??[31m?\r\n"), "{text}");
        assert!(text.contains("To: \"x\\?y\" <sip:a@b>"), "{text}");
        let resp = Response {
            version: "SIP/2.0".into(),
            code: 400,
            reason: "bad\r\nX: 1".into(),
            headers: Headers::default(),
            body: b"\0\r\n\x01".to_vec(),
        };
        // The body is the body's own business (SDP, binary).
        assert_eq!(unsendable_byte(&resp.to_bytes()), None);
        assert_eq!(
            unsendable_byte(b"OPTIONS x SIP/2.0\r\nA: \rb\r\n\r\n"),
            Some(22)
        );
    }
}
