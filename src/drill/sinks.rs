//! The drill's receivers of written pages: a mail sink (SMTP) and a webhook sink (HTTP), each
//! on a real socket, each switchable on a timeline between up, down (connections cut at once,
//! as a server that is gone) and failing (SMTP 421/451, HTTP 503), as a real night's relays do.
//!
//! Every page the engine delivers is kept as a [`Receipt`] with its page key (the e-mail's
//! `X-Astreinte-Page`, the webhook's `page.key`), so the report can count a page sent twice.
//! They are sinks for a drill, not servers for the field: one message at a time per
//! connection, no TLS, no authentication, bounded lines and bodies.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tracing::{debug, info_span, Instrument};

/// The longest SMTP command line read (RFC 5321 allows 512; a little room).
const MAX_LINE: usize = 1024;
/// The largest message or webhook body kept (a page's WAV is about 3 MB).
const MAX_BODY: usize = 16 << 20;

/// What a sink does now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkMode {
    /// Accepts and keeps every page.
    Up,
    /// Gone: connections are cut as soon as they are accepted.
    Down,
    /// There but failing: SMTP answers 421 at once, HTTP 503.
    Failing,
}

/// The switch the drill's timeline flips; cheap to clone, shared with the sink's tasks.
#[derive(Debug, Clone)]
pub struct SinkSwitch(Arc<AtomicU8>);

impl Default for SinkSwitch {
    fn default() -> Self {
        SinkSwitch(Arc::new(AtomicU8::new(0)))
    }
}

impl SinkSwitch {
    pub fn set(&self, mode: SinkMode) {
        let v = match mode {
            SinkMode::Up => 0,
            SinkMode::Down => 1,
            SinkMode::Failing => 2,
        };
        self.0.store(v, Ordering::Relaxed);
    }

    pub fn mode(&self) -> SinkMode {
        match self.0.load(Ordering::Relaxed) {
            1 => SinkMode::Down,
            2 => SinkMode::Failing,
            _ => SinkMode::Up,
        }
    }
}

/// One page a sink accepted.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Receipt {
    pub at: DateTime<Utc>,
    /// "email" or "webhook".
    pub channel: &'static str,
    /// `ticket:phase:level:round:person:channel`, when the page carried one.
    pub page_key: Option<String>,
    /// The tracking number (from the key, else the webhook's `ticket.number`).
    pub ticket: Option<String>,
    /// Who it was for (from the key, else the webhook's `page.person.id`).
    pub person: Option<String>,
    /// The e-mail's subject, or the webhook's `text`.
    pub headline: String,
    /// Carried by another ticket's page (pages to one person grouped): the same e-mail or
    /// webhook call told of this ticket too.
    pub carried: bool,
}

impl Receipt {
    fn new(channel: &'static str, page_key: Option<String>, headline: String) -> Receipt {
        let mut parts = page_key.as_deref().map(|k| k.split(':'));
        let ticket = parts.as_mut().and_then(|p| p.next()).map(str::to_string);
        let person = parts.as_mut().and_then(|p| p.nth(3)).map(str::to_string);
        Receipt {
            at: Utc::now(),
            channel,
            page_key,
            ticket,
            person,
            headline,
            carried: false,
        }
    }

    /// The receipts of the other tickets' pages that this one carried (`keys`).
    fn carried<'a>(
        &'a self,
        keys: impl Iterator<Item = &'a str> + 'a,
    ) -> impl Iterator<Item = Receipt> + 'a {
        keys.filter(|k| !k.is_empty())
            .take(MAX_CARRIED)
            .map(move |k| Receipt {
                at: self.at,
                carried: true,
                ..Receipt::new(self.channel, Some(k.to_string()), self.headline.clone())
            })
    }
}

/// Pages one page may carry (the engine lists at most 50).
const MAX_CARRIED: usize = 200;

/// What a sink shares with its tasks.
#[derive(Debug, Default)]
struct Ledger {
    receipts: Mutex<Vec<Receipt>>,
    /// Deliveries refused while down or failing.
    refused: AtomicU64,
}

impl Ledger {
    fn keep(&self, r: Receipt) {
        if let Ok(mut list) = self.receipts.lock() {
            list.push(r);
        }
    }

    fn receipts(&self) -> Vec<Receipt> {
        self.receipts.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

/// A running sink; stops when dropped.
#[derive(Debug)]
pub struct Sink {
    addr: SocketAddr,
    ledger: Arc<Ledger>,
    task: JoinHandle<()>,
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Sink {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every page accepted so far, in the order they arrived.
    pub fn receipts(&self) -> Vec<Receipt> {
        self.ledger.receipts()
    }

    /// Deliveries cut or refused while the sink was down or failing.
    pub fn refused(&self) -> u64 {
        self.ledger.refused.load(Ordering::Relaxed)
    }

    /// A mail sink (SMTP, plain) on `bind`: the engine's `[paging.smtp] url` is
    /// `smtp://ADDR`.
    pub async fn mail(bind: SocketAddr, switch: SinkSwitch) -> std::io::Result<Sink> {
        Self::serve(bind, switch, |stream, ledger, switch| async move {
            if let Err(e) = smtp_session(stream, &ledger, &switch).await {
                debug!(error = %e, "SMTP session ended");
            }
        })
        .await
    }

    /// A webhook sink (HTTP/1.1) on `bind`: any path, JSON bodies.
    pub async fn webhook(bind: SocketAddr, switch: SinkSwitch) -> std::io::Result<Sink> {
        Self::serve(bind, switch, |stream, ledger, switch| async move {
            let service = hyper::service::service_fn(move |req| {
                let (ledger, switch) = (ledger.clone(), switch.clone());
                async move { Ok::<_, std::convert::Infallible>(webhook(req, &ledger, &switch).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                debug!(error = %e, "webhook connection ended");
            }
        })
        .await
    }

    async fn serve<F, Fut>(
        bind: SocketAddr,
        switch: SinkSwitch,
        session: F,
    ) -> std::io::Result<Sink>
    where
        F: Fn(TcpStream, Arc<Ledger>, SinkSwitch) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let ledger = Arc::new(Ledger::default());
        let shared = ledger.clone();
        let task = tokio::spawn(
            async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    if switch.mode() == SinkMode::Down {
                        // Gone: the connection is cut before a byte is said.
                        shared.refused.fetch_add(1, Ordering::Relaxed);
                        drop(stream);
                        continue;
                    }
                    tokio::spawn(session(stream, shared.clone(), switch.clone()));
                }
            }
            .instrument(info_span!("drill_sink", %addr)),
        );
        Ok(Sink { addr, ledger, task })
    }
}

/// One SMTP conversation: EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT.
async fn smtp_session(
    stream: TcpStream,
    ledger: &Ledger,
    switch: &SinkSwitch,
) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    if switch.mode() == SinkMode::Failing {
        ledger.refused.fetch_add(1, Ordering::Relaxed);
        write
            .write_all(b"421 drill: service not available\r\n")
            .await?;
        return Ok(());
    }
    write.write_all(b"220 astreinte-drill ESMTP\r\n").await?;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = (&mut read)
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut line)
            .await?;
        if n == 0 {
            return Ok(());
        }
        if !line.ends_with(b"\n") {
            write.write_all(b"500 line too long\r\n").await?;
            return Ok(());
        }
        let text = String::from_utf8_lossy(&line);
        let verb = text
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" => b"250-astreinte-drill\r\n250 8BITMIME\r\n",
            "HELO" | "MAIL" | "RCPT" | "RSET" | "NOOP" => b"250 OK\r\n",
            "QUIT" => {
                write.write_all(b"221 bye\r\n").await?;
                return Ok(());
            }
            "DATA" => {
                write.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
                let message = read_data(&mut read).await?;
                if switch.mode() != SinkMode::Up {
                    ledger.refused.fetch_add(1, Ordering::Relaxed);
                    write.write_all(b"451 drill: try again later\r\n").await?;
                    continue;
                }
                let Some(message) = message else {
                    write.write_all(b"552 message too large\r\n").await?;
                    return Ok(());
                };
                let key = header_of(&message, "X-Astreinte-Page");
                let subject = header_of(&message, "Subject")
                    .map(|s| decode_words(&s))
                    .unwrap_or_default();
                let receipt = Receipt::new("email", key, subject);
                let carried = header_of(&message, "X-Astreinte-Carried").unwrap_or_default();
                for r in receipt.carried(carried.split_whitespace()) {
                    ledger.keep(r);
                }
                ledger.keep(receipt);
                b"250 kept\r\n"
            }
            _ => b"502 not implemented\r\n",
        };
        write.write_all(reply).await?;
    }
}

/// The message after DATA, up to the lone dot; `None` past [`MAX_BODY`] (read to its end).
async fn read_data<R: tokio::io::AsyncBufRead + Unpin>(
    read: &mut R,
) -> std::io::Result<Option<String>> {
    let mut message = String::new();
    let mut too_large = false;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = (&mut *read)
            .take(MAX_LINE as u64 * 64)
            .read_until(b'\n', &mut line)
            .await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if line == b".\r\n" || line == b".\n" {
            return Ok((!too_large).then_some(message));
        }
        if message.len() + line.len() > MAX_BODY {
            too_large = true;
        }
        if !too_large {
            // Dot-stuffing undone (RFC 5321 4.5.2).
            let l = line.strip_prefix(b".").unwrap_or(&line);
            message.push_str(&String::from_utf8_lossy(l));
        }
    }
}

/// A header's value (unfolded) from a message's header section.
fn header_of(message: &str, name: &str) -> Option<String> {
    let head = message.split("\r\n\r\n").next().unwrap_or(message);
    let mut value: Option<String> = None;
    for line in head.split("\r\n") {
        if let Some(v) = value.as_mut() {
            if line.starts_with([' ', '\t']) {
                v.push_str(line);
                continue;
            }
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.trim().eq_ignore_ascii_case(name) {
                value = Some(v.trim().to_string());
            }
        }
    }
    value
}

/// A header with RFC 2047 encoded words (`=?utf-8?b?...?=`, `=?utf-8?q?...?=`) as text; the
/// white space between two encoded words goes (RFC 2047 6.2). Words in another charset, or
/// that do not decode, stay as they came.
fn decode_words(value: &str) -> String {
    use base64::Engine as _;
    let mut out = String::new();
    let mut last_was_word = false;
    let mut pending_space = String::new();
    for token in value.split_inclusive([' ', '\t']) {
        let word = token.trim_end_matches([' ', '\t']);
        let space = &token[word.len()..];
        let decoded = word
            .strip_prefix("=?")
            .and_then(|w| w.strip_suffix("?="))
            .and_then(|w| {
                let mut parts = w.splitn(3, '?');
                let (charset, enc, text) = (parts.next()?, parts.next()?, parts.next()?);
                if !charset.eq_ignore_ascii_case("utf-8") {
                    return None;
                }
                let bytes = match enc {
                    "b" | "B" => base64::engine::general_purpose::STANDARD
                        .decode(text)
                        .ok()?,
                    "q" | "Q" => q_decode(text)?,
                    _ => return None,
                };
                String::from_utf8(bytes).ok()
            });
        match decoded {
            Some(text) => {
                if !last_was_word {
                    out.push_str(&pending_space);
                }
                out.push_str(&text);
                last_was_word = true;
            }
            None => {
                out.push_str(&pending_space);
                out.push_str(word);
                last_was_word = false;
            }
        }
        pending_space = space.to_string();
    }
    out.push_str(&pending_space);
    out
}

/// The Q encoding: `_` is a space, `=XX` a byte.
fn q_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len());
    let mut bytes = text.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'_' => out.push(b' '),
            b'=' => {
                let hex = [bytes.next()?, bytes.next()?];
                out.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
            }
            _ => out.push(b),
        }
    }
    Some(out)
}

async fn webhook(
    req: Request<hyper::body::Incoming>,
    ledger: &Ledger,
    switch: &SinkSwitch,
) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, text: &'static str| {
        let mut r = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
        *r.status_mut() = status;
        r
    };
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return reply(StatusCode::PAYLOAD_TOO_LARGE, "body too large\n"),
    };
    if switch.mode() != SinkMode::Up {
        ledger.refused.fetch_add(1, Ordering::Relaxed);
        return reply(StatusCode::SERVICE_UNAVAILABLE, "drill: failing\n");
    }
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return reply(StatusCode::BAD_REQUEST, "not JSON\n");
    };
    let text = |path: &[&str]| {
        let mut at = &v;
        for p in path {
            at = at.get(*p)?;
        }
        at.as_str().map(str::to_string)
    };
    let mut receipt = Receipt::new(
        "webhook",
        text(&["page", "key"]),
        text(&["text"]).unwrap_or_default(),
    );
    receipt.ticket = receipt.ticket.or_else(|| text(&["ticket", "number"]));
    receipt.person = receipt.person.or_else(|| text(&["page", "person", "id"]));
    let carried = v
        .pointer("/page/carried")
        .and_then(|c| c.as_array())
        .map(|list| {
            list.iter()
                .filter_map(|c| c.get("key")?.as_str())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    for r in receipt.carried(carried.into_iter()) {
        ledger.keep(r);
    }
    ledger.keep(receipt);
    reply(StatusCode::OK, "kept\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_names_its_ticket_and_person() {
        let r = Receipt::new(
            "email",
            Some("4821337:climb:2:0:tech1:email".into()),
            "s".into(),
        );
        assert_eq!(r.ticket.as_deref(), Some("4821337"));
        assert_eq!(r.person.as_deref(), Some("tech1"));
        let none = Receipt::new("email", None, "s".into());
        assert_eq!((none.ticket, none.person), (None, None));
    }

    #[test]
    fn encoded_words_are_decoded_and_the_space_between_them_dropped() {
        assert_eq!(
            decode_words(
                "[EXERCICE =?utf-8?b?w5c2MF0=?= [S1] Billet 4821337 =?utf-8?b?4oCU?= rappeler"
            ),
            "[EXERCICE ×60] [S1] Billet 4821337 — rappeler"
        );
        assert_eq!(decode_words("=?UTF-8?Q?a_b?= =?UTF-8?Q?=C3=A9?="), "a bé");
        assert_eq!(decode_words("=?latin1?q?x?= plain"), "=?latin1?q?x?= plain");
        assert_eq!(decode_words("=?utf-8?b?!!!?="), "=?utf-8?b?!!!?=");
    }

    #[test]
    fn headers_are_read_unfolded_and_only_from_the_head() {
        let m = "Subject: [S1] Billet\r\n 4821337\r\nX-Astreinte-Page: k:1\r\n\r\nX-Astreinte-Page: body\r\n";
        assert_eq!(
            header_of(m, "subject").as_deref(),
            Some("[S1] Billet 4821337")
        );
        assert_eq!(header_of(m, "X-Astreinte-Page").as_deref(), Some("k:1"));
        assert_eq!(header_of(m, "To"), None);
    }
}
