//! The SIP user agent as a sans-I/O state machine.
//!
//! Like `quinn-proto`'s `Connection`, an [`Endpoint`] never reads a clock or touches a socket:
//! bytes and `now` come in through `handle_*`, the application's decisions through commands
//! (`answer`, `reject`, `hangup`, `place_call`, `register`), and what to send, what happened and
//! when to wake come out of `poll_transmit`, `poll_event` and `poll_timeout`. The tokio shell in
//! `transport.rs` does the I/O; tests drive it with synthetic time.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::Rng;
use tracing::{debug, info, info_span, warn, Span};

use super::digest::challenge_of;
use super::message::{
    self, reason_phrase, split_list, uri_scheme, Message, Method, NameAddr, Request, Response, Uri,
};
use super::routing::{NumberSet, RateLimiter, RateVerdict, TrustedSources};
use super::sdp::{self, LocalSdp, Negotiation, NegotiationError};
use super::transaction::{backoff, Timers, TxnKey};
use super::validate::{validate_request, Rejection};
use crate::media::{MediaDirection, NegotiatedMedia};

/// Methods we accept; sent in `Allow`.
pub const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, UPDATE";
/// Extensions we understand; sent in `Supported`.
pub const SUPPORTED: &str = "timer";
/// Smallest session interval we accept (RFC 4028 §4).
pub const MIN_SE: u32 = 90;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    pub fn via_name(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        }
    }
}

/// A remote transport address: UDP datagrams or a TCP connection to/from `addr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Peer {
    pub transport: Transport,
    pub addr: SocketAddr,
}

impl Peer {
    pub fn udp(addr: SocketAddr) -> Peer {
        Peer {
            transport: Transport::Udp,
            addr,
        }
    }
    pub fn tcp(addr: SocketAddr) -> Peer {
        Peer {
            transport: Transport::Tcp,
            addr,
        }
    }
    fn reliable(&self) -> bool {
        self.transport == Transport::Tcp
    }
}

/// Bytes to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub to: Peer,
    pub bytes: Vec<u8>,
}

/// A call leg handle, unique within an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LegId(pub u64);

impl fmt::Display for LegId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "leg-{}", self.0)
    }
}

/// Who is calling, as the INVITE says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub display: Option<String>,
    pub uri: String,
    /// The user part of the From URI (usually the caller's number).
    pub user: Option<String>,
}

/// An inbound call waiting for the application's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingCall {
    pub leg: LegId,
    pub call_id: String,
    pub caller: Caller,
    /// The dialled number in canonical form (one of `[sip] numbers`).
    pub number: String,
    pub source: Peer,
    /// Negotiated from the INVITE's offer; None when the INVITE had no SDP (the answer comes in
    /// the ACK and is reported by `Confirmed`).
    pub media: Option<NegotiatedMedia>,
}

/// Why a leg ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndReason {
    /// The peer sent BYE.
    RemoteBye,
    /// We hung up.
    LocalHangup,
    /// The caller cancelled before the answer.
    Cancelled,
    /// Our 2xx was never acknowledged (64*T1).
    NoAck,
    /// The session timer ran out without a refresh (RFC 4028).
    SessionExpired,
    /// The far end refused our INVITE with this status.
    Rejected(u16),
    /// The far end never answered our request (timer B/F).
    Timeout,
    /// We refused the call (application's reject).
    Refused(u16),
}

impl fmt::Display for EndReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndReason::RemoteBye => f.write_str("remote hung up"),
            EndReason::LocalHangup => f.write_str("local hang-up"),
            EndReason::Cancelled => f.write_str("cancelled by caller"),
            EndReason::NoAck => f.write_str("no ACK for 2xx"),
            EndReason::SessionExpired => f.write_str("session timer expired"),
            EndReason::Rejected(c) => write!(f, "rejected by peer with {c}"),
            EndReason::Timeout => f.write_str("peer did not answer"),
            EndReason::Refused(c) => write!(f, "refused with {c}"),
        }
    }
}

/// Where an upstream registration stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrationState {
    Registered {
        expires: u32,
    },
    Failed {
        code: Option<u16>,
        retry_in: Duration,
    },
}

/// What happened, for the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Incoming(IncomingCall),
    /// Our 2xx was acknowledged: the call is up. `media` is set if the ACK carried the answer.
    Confirmed {
        leg: LegId,
        media: Option<NegotiatedMedia>,
    },
    /// A re-INVITE or UPDATE changed the media (hold, resume, codec, address).
    MediaUpdated {
        leg: LegId,
        media: NegotiatedMedia,
    },
    /// A DTMF digit arrived by SIP INFO.
    Dtmf {
        leg: LegId,
        digit: char,
        duration_ms: Option<u32>,
    },
    /// Our outbound INVITE is ringing.
    Ringing {
        leg: LegId,
    },
    /// Our outbound INVITE was answered.
    Answered {
        leg: LegId,
        media: Option<NegotiatedMedia>,
    },
    Ended {
        leg: LegId,
        reason: EndReason,
    },
    Registration(RegistrationState),
}

pub use super::digest::Credentials;

/// An outbound call to place.
#[derive(Debug, Clone)]
pub struct OutboundCall {
    /// Request-URI, e.g. `sip:+15145001004@trunk.example.net`.
    pub target: String,
    /// Where to send it: the outbound proxy or the target's host, already resolved.
    pub next_hop: Peer,
    /// Our identity in From.
    pub from: String,
    pub credentials: Option<Credentials>,
    pub local_rtp: SocketAddr,
}

/// An upstream registration to keep alive.
#[derive(Debug, Clone)]
pub struct RegisterSpec {
    pub registrar: String,
    pub aor: String,
    pub credentials: Credentials,
    pub expires: u32,
    pub next_hop: Peer,
}

/// Static settings of an endpoint.
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    /// Address written in Via and Contact.
    pub local_addr: SocketAddr,
    pub numbers: NumberSet,
    pub trusted: TrustedSources,
    pub rate_limit_per_source: u32,
    pub user_agent: String,
    pub timers: Timers,
}

// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServerState {
    Proceeding,
    Completed,
    Confirmed,
    /// RFC 6026: a 2xx was sent; absorb retransmitted INVITEs.
    Accepted,
    Terminated,
}

#[derive(Debug)]
struct ServerTxn {
    peer: Peer,
    is_invite: bool,
    state: ServerState,
    last_response: Option<Vec<u8>>,
    retransmit_interval: Duration,
    leg: Option<LegId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientState {
    Calling,
    Proceeding,
    Completed,
    Terminated,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientPurpose {
    /// The INVITE of an outbound leg.
    Invite(LegId),
    /// A BYE we sent; nothing waits for it.
    Bye,
    /// A CANCEL of our INVITE.
    Cancel,
    Register,
}

#[derive(Debug)]
struct ClientTxn {
    peer: Peer,
    request: Vec<u8>,
    is_invite: bool,
    state: ClientState,
    interval: Duration,
    purpose: ClientPurpose,
    /// Kept for INVITE: the ACK of a non-2xx reuses its Via, From, Call-ID, Request-URI.
    invite: Option<Request>,
    ack: Option<Vec<u8>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LegState {
    /// Inbound INVITE received, not yet answered.
    Offered,
    /// Our outbound INVITE is in progress.
    Calling,
    /// 2xx sent, waiting for ACK.
    Answered,
    Up,
}

#[derive(Debug)]
struct PendingOk {
    bytes: Vec<u8>,
    cseq: u32,
    interval: Duration,
    /// The 2xx carried our offer (INVITE without SDP): the ACK carries the answer.
    offer_in_ok: bool,
}

#[derive(Debug)]
struct Leg {
    call_id: String,
    inbound: bool,
    state: LegState,
    local_tag: String,
    remote_tag: Option<String>,
    /// Our party's header value (without tag) and theirs.
    local_party: String,
    remote_party: String,
    remote_target: String,
    route_set: Vec<String>,
    local_cseq: u32,
    remote_cseq: Option<u32>,
    peer: Peer,
    /// The INVITE server transaction still waiting for our final answer.
    invite_txn: Option<TxnKey>,
    invite_request: Option<Request>,
    negotiation: Option<Negotiation>,
    local_sdp: Option<LocalSdp>,
    media: Option<NegotiatedMedia>,
    pending_ok: Option<PendingOk>,
    /// A re-INVITE of theirs is between 2xx and ACK, or one of ours is in progress.
    reinvite_pending: bool,
    session_interval: Option<Duration>,
    session_deadline: Option<Instant>,
    /// For outbound legs: the INVITE client transaction's branch, credentials, ACK for 2xx.
    out_branch: Option<String>,
    credentials: Option<Credentials>,
    auth_attempts: u8,
    ack_for_2xx: Option<Vec<u8>>,
    span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKind {
    ServerRetransmit,
    ServerTimeout,
    ClientRetransmit,
    ClientTimeout,
    ClientCleanup,
    OkRetransmit,
    AckTimeout,
    SessionExpiry,
    RegisterRefresh,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum TimerTarget {
    Server(String, String, String),
    Client(String),
    Leg(LegId),
    Registration,
}

#[derive(Debug)]
struct Registration {
    spec: RegisterSpec,
    call_id: String,
    local_tag: String,
    cseq: u32,
    auth_attempts: u8,
    branch: Option<String>,
}

/// The user agent.
pub struct Endpoint {
    config: EndpointConfig,
    server_txns: HashMap<TxnKey, ServerTxn>,
    client_txns: HashMap<String, ClientTxn>,
    legs: HashMap<LegId, Leg>,
    /// (Call-ID, local tag) → leg.
    dialogs: HashMap<(String, String), LegId>,
    next_leg: u64,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    timers: BinaryHeap<Reverse<(Instant, TimerKind, TimerTarget)>>,
    rate: RateLimiter,
    registration: Option<Registration>,
    sdp_session: u64,
}

fn random_token(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

fn new_branch() -> String {
    format!("z9hG4bK{}", random_token(16))
}

/// The URI inside a header value like `"Bob" <sip:bob@h>;tag=1` or `sip:bob@h;tag=1`.
fn header_uri(value: &str) -> Option<String> {
    NameAddr::parse(value).map(|n| n.uri)
}

/// A header value with any `;tag=` removed (for storing a party; the tag is kept apart).
fn without_tag(value: &str) -> String {
    match NameAddr::parse(value) {
        Some(n) => {
            let mut s = match &n.display {
                Some(d) => format!("\"{}\" <{}>", d.replace('"', ""), n.uri),
                None => format!("<{}>", n.uri),
            };
            for (k, v) in &n.params.0 {
                if k.eq_ignore_ascii_case("tag") {
                    continue;
                }
                s.push(';');
                s.push_str(k);
                if let Some(v) = v {
                    s.push('=');
                    s.push_str(v);
                }
            }
            s
        }
        None => value.to_string(),
    }
}

fn with_tag(party: &str, tag: Option<&str>) -> String {
    match tag {
        Some(t) => format!("{party};tag={t}"),
        None => party.to_string(),
    }
}

impl Endpoint {
    pub fn new(config: EndpointConfig) -> Endpoint {
        let rate = RateLimiter::new(config.rate_limit_per_source);
        Endpoint {
            config,
            server_txns: HashMap::new(),
            client_txns: HashMap::new(),
            legs: HashMap::new(),
            dialogs: HashMap::new(),
            next_leg: 1,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            timers: BinaryHeap::new(),
            rate,
            registration: None,
            sdp_session: rand::thread_rng().gen_range(1_000_000..9_999_999),
        }
    }

    pub fn config(&self) -> &EndpointConfig {
        &self.config
    }

    /// Number of legs that have not ended.
    pub fn active_legs(&self) -> usize {
        self.legs.len()
    }

    /// Number of live server and client transactions (for tests and metrics).
    pub fn transactions(&self) -> usize {
        self.server_txns.len() + self.client_txns.len()
    }

    // -- outputs ----------------------------------------------------------------------------

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When `handle_timeout` should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((at, _, _))| *at)
    }

    fn schedule(&mut self, at: Instant, kind: TimerKind, target: TimerTarget) {
        self.timers.push(Reverse((at, kind, target)));
    }

    fn send(&mut self, to: Peer, bytes: Vec<u8>) {
        self.transmits.push_back(Transmit { to, bytes });
    }

    // -- input ------------------------------------------------------------------------------

    /// A datagram, or one framed message from a stream, arrived from `from`.
    pub fn handle_input(&mut self, now: Instant, from: Peer, bytes: &[u8]) {
        match message::parse(bytes) {
            Ok(Message::Request(req)) => self.handle_request(now, from, req),
            Ok(Message::Response(resp)) => self.handle_response(now, from, resp),
            Err(e) => self.handle_unparseable(now, from, e),
        }
    }

    fn handle_unparseable(&mut self, now: Instant, from: Peer, e: message::ParseError) {
        // A request whose Via we can read gets a 400 naming the problem; anything else
        // (responses, garbage) is dropped: there is nobody to tell.
        if e.request_line.is_none() || e.headers.count("Via") == 0 {
            debug!(source = %from.addr, reason = %e.reason, "dropped unparseable message");
            return;
        }
        if self.rate.check(from.addr.ip(), now) != RateVerdict::Allow {
            return;
        }
        warn!(source = %from.addr, reason = %e.reason, "malformed request answered 400");
        let resp = self.build_response_from_headers(&e.headers, from, 400, Some(&e.reason));
        self.send(from, resp.to_bytes());
    }

    fn handle_request(&mut self, now: Instant, from: Peer, req: Request) {
        // ACKs are never answered, so they are never refused either; everything else counts.
        if req.method != Method::Ack {
            match self.rate.check(from.addr.ip(), now) {
                RateVerdict::Allow => {}
                RateVerdict::Refuse => {
                    warn!(source = %from.addr, "request rate exceeded: 503");
                    if let Ok(()) = validate_request(&req) {
                        let mut r = self.response(&req, from, 503, None);
                        r.headers.push("Retry-After", "5");
                        self.send(from, r.to_bytes());
                    }
                    return;
                }
                RateVerdict::Drop => return,
            }
        }
        if let Err(Rejection { code, warning }) = validate_request(&req) {
            warn!(source = %from.addr, method = %req.method, code, reason = %warning, "invalid request refused");
            // Responses go back to the source address, so even a request whose Via we
            // cannot read can be told what is wrong.
            if req.method != Method::Ack && req.headers.count("Via") > 0 {
                let r = self.response(&req, from, code, Some(&warning));
                self.send(from, r.to_bytes());
            }
            return;
        }
        let Some(via) = req.top_via() else {
            return;
        };
        let key = TxnKey::for_request(&req, &via);

        // Retransmissions and ACKs of an existing server transaction.
        if let Some(txn) = self.server_txns.get_mut(&key) {
            if req.method == Method::Ack {
                if txn.state == ServerState::Completed {
                    txn.state = ServerState::Confirmed;
                    let wait = if txn.peer.reliable() {
                        Duration::ZERO
                    } else {
                        self.config.timers.t4
                    };
                    let target = TimerTarget::Server(
                        key.branch.clone(),
                        key.sent_by.clone(),
                        key.method.clone(),
                    );
                    self.schedule(now + wait, TimerKind::ServerTimeout, target);
                    return;
                }
                if txn.state == ServerState::Confirmed {
                    return;
                }
                // An ACK with the INVITE's branch after a 2xx (RFC 2543 peers do this): it
                // belongs to the dialog.
            } else {
                if let Some(bytes) = txn.last_response.clone() {
                    let peer = txn.peer;
                    self.send(peer, bytes);
                }
                return;
            }
        }

        match req.method {
            Method::Ack => self.handle_ack(now, from, req),
            Method::Cancel => self.handle_cancel(now, from, req, key),
            _ => self.handle_new_request(now, from, req, key),
        }
    }

    fn new_server_txn(&mut self, key: &TxnKey, from: Peer, is_invite: bool) {
        self.server_txns.insert(
            key.clone(),
            ServerTxn {
                peer: from,
                is_invite,
                state: ServerState::Proceeding,
                last_response: None,
                retransmit_interval: self.config.timers.t1,
                leg: None,
            },
        );
    }

    /// Sends a response through its server transaction, moving the transaction's state.
    fn respond(&mut self, now: Instant, key: &TxnKey, resp: Response) {
        let Some(txn) = self.server_txns.get_mut(key) else {
            return;
        };
        let bytes = resp.to_bytes();
        let peer = txn.peer;
        let code = resp.code;
        txn.last_response = Some(bytes.clone());
        let target =
            TimerTarget::Server(key.branch.clone(), key.sent_by.clone(), key.method.clone());
        let t = self.config.timers;
        if code >= 200 {
            if txn.is_invite && code < 300 {
                txn.state = ServerState::Accepted;
                self.schedule(now + t.t64(), TimerKind::ServerTimeout, target);
            } else if txn.is_invite {
                txn.state = ServerState::Completed;
                if !peer.reliable() {
                    txn.retransmit_interval = t.t1;
                    self.schedule(now + t.t1, TimerKind::ServerRetransmit, target.clone());
                }
                self.schedule(now + t.t64(), TimerKind::ServerTimeout, target);
            } else {
                txn.state = ServerState::Completed;
                let wait = if peer.reliable() {
                    Duration::ZERO
                } else {
                    t.t64()
                };
                self.schedule(now + wait, TimerKind::ServerTimeout, target);
            }
        }
        self.send(peer, bytes);
    }

    fn handle_new_request(&mut self, now: Instant, from: Peer, req: Request, key: TxnKey) {
        let is_invite = req.method == Method::Invite;
        self.new_server_txn(&key, from, is_invite);

        match &req.method {
            Method::Other(_) => {
                let mut r = self.response(&req, from, 501, None);
                r.headers.push("Allow", ALLOW);
                return self.respond(now, &key, r);
            }
            Method::Register
            | Method::Message
            | Method::Subscribe
            | Method::Notify
            | Method::Publish
            | Method::Refer
            | Method::Prack => {
                let mut r = self.response(&req, from, 405, None);
                r.headers.push("Allow", ALLOW);
                return self.respond(now, &key, r);
            }
            _ => {}
        }
        match uri_scheme(&req.uri).as_deref() {
            Some("sip") | Some("sips") => {}
            _ => {
                let r = self.response(&req, from, 416, Some("only sip: and sips: URIs are served"));
                return self.respond(now, &key, r);
            }
        }
        let unsupported = unsupported_requirements(&req);
        if !unsupported.is_empty() {
            let mut r = self.response(&req, from, 420, None);
            r.headers.push("Unsupported", unsupported.join(", "));
            return self.respond(now, &key, r);
        }
        let to_tag = req.to().and_then(|t| t.tag().map(str::to_string));
        if let Some(tag) = to_tag {
            let call_id = req.call_id().unwrap_or_default().to_string();
            return match self.dialogs.get(&(call_id, tag)).copied() {
                Some(leg) => self.handle_in_dialog(now, from, req, key, leg),
                None => {
                    let r = self.response(&req, from, 481, None);
                    self.respond(now, &key, r)
                }
            };
        }
        match req.method {
            Method::Options => {
                let r = self.options_response(&req, from);
                self.respond(now, &key, r)
            }
            Method::Invite => self.handle_invite(now, from, req, key),
            _ => {
                // BYE, INFO, UPDATE outside a dialog.
                let r = self.response(&req, from, 481, None);
                self.respond(now, &key, r)
            }
        }
    }

    fn options_response(&self, req: &Request, from: Peer) -> Response {
        let mut r = self.response(req, from, 200, None);
        r.headers.push("Allow", ALLOW);
        r.headers.push(
            "Accept",
            "application/sdp, application/dtmf-relay, application/dtmf",
        );
        r.headers.push("Supported", SUPPORTED);
        r
    }

    fn handle_invite(&mut self, now: Instant, from: Peer, req: Request, key: TxnKey) {
        let call_id = req.call_id().unwrap_or_default().to_string();
        if !self.config.trusted.allows(from.addr.ip()) {
            warn!(call_id = %call_id, source = %from.addr, "INVITE from an untrusted source refused");
            let r = self.response(&req, from, 403, Some("source not trusted"));
            return self.respond(now, &key, r);
        }
        let user = Uri::parse(&req.uri)
            .and_then(|u| u.user)
            .unwrap_or_default();
        let Some(number) = self.config.numbers.lookup(&user) else {
            info!(call_id = %call_id, source = %from.addr, number = %user, "INVITE for a number not served: 404");
            let r = self.response(&req, from, 404, Some("number not served here"));
            return self.respond(now, &key, r);
        };
        if let Err((code, warning)) = check_invite_content(&req) {
            let mut r = self.response(&req, from, code, Some(&warning));
            if code == 415 {
                r.headers.push("Accept", "application/sdp");
            }
            return self.respond(now, &key, r);
        }
        let session_interval = match session_expires(&req) {
            Some(se) if se < MIN_SE => {
                let mut r = self.response(&req, from, 422, None);
                r.headers.push("Min-SE", MIN_SE.to_string());
                return self.respond(now, &key, r);
            }
            Some(se) if uac_supports_timer(&req) => Some(Duration::from_secs(u64::from(se))),
            _ => None,
        };
        let negotiation = if req.body.is_empty() {
            None
        } else {
            match sdp::negotiate(&req.body, from.addr.ip()) {
                Ok(n) => Some(n),
                Err(e) => {
                    let (code, text) = match e {
                        NegotiationError::Sdp(_) => (400, e.to_string()),
                        _ => (488, e.to_string()),
                    };
                    let mut r = self.response(&req, from, code, None);
                    r.headers
                        .push("Warning", format!("305 astreinte \"{text}\""));
                    return self.respond(now, &key, r);
                }
            }
        };

        let leg_id = LegId(self.next_leg);
        self.next_leg += 1;
        let local_tag = random_token(10);
        let from_value = req.headers.get("From").unwrap_or_default();
        let to_value = req.headers.get("To").unwrap_or_default();
        let from_na = NameAddr::parse(from_value);
        let remote_tag = from_na.as_ref().and_then(|f| f.tag().map(str::to_string));
        let remote_target = req
            .headers
            .list("Contact")
            .first()
            .and_then(|c| header_uri(c))
            .or_else(|| header_uri(from_value))
            .unwrap_or_else(|| req.uri.clone());
        let route_set = req.headers.list("Record-Route");
        let caller = Caller {
            display: from_na.as_ref().and_then(|f| f.display.clone()),
            uri: from_na.as_ref().map(|f| f.uri.clone()).unwrap_or_default(),
            user: from_na
                .as_ref()
                .and_then(|f| f.sip_uri())
                .and_then(|u| u.user),
        };
        let span = info_span!("call", call_id = %call_id, leg = leg_id.0, dir = "in");
        let media = negotiation.as_ref().map(|n| n.media);
        self.legs.insert(
            leg_id,
            Leg {
                call_id: call_id.clone(),
                inbound: true,
                state: LegState::Offered,
                local_tag: local_tag.clone(),
                remote_tag,
                local_party: without_tag(to_value),
                remote_party: without_tag(from_value),
                remote_target,
                route_set,
                local_cseq: 0,
                remote_cseq: req.cseq().map(|c| c.seq),
                peer: from,
                invite_txn: Some(key.clone()),
                invite_request: Some(req.clone()),
                negotiation,
                local_sdp: None,
                media,
                pending_ok: None,
                reinvite_pending: false,
                session_interval,
                session_deadline: None,
                out_branch: None,
                credentials: None,
                auth_attempts: 0,
                ack_for_2xx: None,
                span,
            },
        );
        self.dialogs.insert((call_id.clone(), local_tag), leg_id);
        if let Some(txn) = self.server_txns.get_mut(&key) {
            txn.leg = Some(leg_id);
        }
        if let Some(leg) = self.legs.get(&leg_id) {
            info!(parent: &leg.span, caller = %caller.uri, %number, source = %from.addr, transport = from.transport.via_name(), "call started");
        }
        let trying = self.response(&req, from, 100, None);
        self.respond(now, &key, trying);
        self.events.push_back(Event::Incoming(IncomingCall {
            leg: leg_id,
            call_id,
            caller,
            number,
            source: from,
            media,
        }));
    }

    fn handle_cancel(&mut self, now: Instant, from: Peer, req: Request, key: TxnKey) {
        self.new_server_txn(&key, from, false);
        let invite_key = TxnKey {
            method: "INVITE".into(),
            ..key.clone()
        };
        let pending = self
            .server_txns
            .get(&invite_key)
            .filter(|t| t.state == ServerState::Proceeding)
            .and_then(|t| t.leg);
        let Some(leg_id) = pending else {
            let r = self.response(&req, from, 481, None);
            return self.respond(now, &key, r);
        };
        let ok = self.response(&req, from, 200, None);
        self.respond(now, &key, ok);
        if let Some(invite) = self
            .legs
            .get(&leg_id)
            .and_then(|l| l.invite_request.clone())
        {
            let local_tag = self.legs.get(&leg_id).map(|l| l.local_tag.clone());
            let mut r = self.response(&invite, from, 487, None);
            set_to_tag(&mut r, local_tag.as_deref());
            self.respond(now, &invite_key, r);
        }
        self.end_leg(leg_id, EndReason::Cancelled);
    }

    fn handle_ack(&mut self, now: Instant, from: Peer, req: Request) {
        let _ = from;
        let call_id = req.call_id().unwrap_or_default().to_string();
        let Some(tag) = req.to().and_then(|t| t.tag().map(str::to_string)) else {
            return;
        };
        let Some(&leg_id) = self.dialogs.get(&(call_id, tag)) else {
            return;
        };
        let cseq = req.cseq().map(|c| c.seq);
        let Some(leg) = self.legs.get_mut(&leg_id) else {
            return;
        };
        let Some(pending) = &leg.pending_ok else {
            return; // a retransmitted ACK
        };
        if Some(pending.cseq) != cseq {
            return;
        }
        let offer_in_ok = pending.offer_in_ok;
        leg.pending_ok = None;
        let was_reinvite = leg.state == LegState::Up;
        leg.state = LegState::Up;
        leg.reinvite_pending = false;
        let mut media = None;
        if offer_in_ok && !req.body.is_empty() {
            match sdp::read_answer(&req.body, leg.peer.addr.ip()) {
                Ok(m) => {
                    leg.media = Some(m);
                    media = Some(m);
                }
                Err(e) => {
                    // The answer in an ACK cannot be refused; the call cannot go on (RFC 3261
                    // §13.3.1.4 says to BYE it).
                    warn!(parent: &leg.span, error = %e, "unusable SDP answer in ACK: hanging up");
                    self.hangup(now, leg_id);
                    return;
                }
            }
        }
        if let Some(interval) = leg.session_interval {
            leg.session_deadline = Some(now + interval);
            self.schedule(
                now + interval,
                TimerKind::SessionExpiry,
                TimerTarget::Leg(leg_id),
            );
        }
        if was_reinvite {
            if let Some(m) = media {
                self.events.push_back(Event::MediaUpdated {
                    leg: leg_id,
                    media: m,
                });
            }
        } else {
            self.events
                .push_back(Event::Confirmed { leg: leg_id, media });
        }
    }

    fn handle_in_dialog(
        &mut self,
        now: Instant,
        from: Peer,
        req: Request,
        key: TxnKey,
        leg_id: LegId,
    ) {
        let cseq = req.cseq().map(|c| c.seq).unwrap_or(0);
        {
            let Some(leg) = self.legs.get_mut(&leg_id) else {
                let r = self.response(&req, from, 481, None);
                return self.respond(now, &key, r);
            };
            // RFC 3261 §12.2.2: a lower CSeq than the last one is out of order.
            if let Some(last) = leg.remote_cseq {
                if cseq <= last && req.method != Method::Ack {
                    let r = self.response(&req, from, 500, Some("CSeq out of order"));
                    return self.respond(now, &key, r);
                }
            }
            leg.remote_cseq = Some(cseq);
        }
        match req.method {
            Method::Bye => {
                let r = self.response(&req, from, 200, None);
                self.respond(now, &key, r);
                // A BYE before our 2xx was acknowledged still ends the call.
                self.end_leg(leg_id, EndReason::RemoteBye);
            }
            Method::Options => {
                let r = self.options_response(&req, from);
                self.respond(now, &key, r);
            }
            Method::Info => self.handle_info(now, from, req, key, leg_id),
            Method::Invite | Method::Update => self.handle_reoffer(now, from, req, key, leg_id),
            _ => {
                let mut r = self.response(&req, from, 405, None);
                r.headers.push("Allow", ALLOW);
                self.respond(now, &key, r);
            }
        }
    }

    fn handle_info(&mut self, now: Instant, from: Peer, req: Request, key: TxnKey, leg_id: LegId) {
        if req.body.is_empty() {
            let r = self.response(&req, from, 200, None);
            return self.respond(now, &key, r);
        }
        let ctype = req
            .headers
            .get("Content-Type")
            .map(|c| c.split(';').next().unwrap_or(c).trim().to_ascii_lowercase())
            .unwrap_or_default();
        let body = String::from_utf8_lossy(&req.body);
        let parsed = match ctype.as_str() {
            "application/dtmf-relay" => parse_dtmf_relay(&body),
            "application/dtmf" => parse_dtmf_digit(body.trim()).map(|d| (d, None)),
            _ => {
                let mut r = self.response(&req, from, 415, None);
                r.headers
                    .push("Accept", "application/dtmf-relay, application/dtmf");
                return self.respond(now, &key, r);
            }
        };
        match parsed {
            Some((digit, duration_ms)) => {
                let r = self.response(&req, from, 200, None);
                self.respond(now, &key, r);
                self.events.push_back(Event::Dtmf {
                    leg: leg_id,
                    digit,
                    duration_ms,
                });
            }
            None => {
                let r = self.response(&req, from, 400, Some("DTMF body has no valid Signal"));
                self.respond(now, &key, r);
            }
        }
    }

    /// re-INVITE and UPDATE: hold, resume, codec change, session refresh.
    fn handle_reoffer(
        &mut self,
        now: Instant,
        from: Peer,
        req: Request,
        key: TxnKey,
        leg_id: LegId,
    ) {
        let is_invite = req.method == Method::Invite;
        let (busy, state) = match self.legs.get(&leg_id) {
            Some(l) => (l.reinvite_pending || l.pending_ok.is_some(), l.state),
            None => return,
        };
        if state != LegState::Up && is_invite {
            let mut r = self.response(&req, from, 500, Some("previous INVITE not complete"));
            r.headers.push("Retry-After", "1");
            return self.respond(now, &key, r);
        }
        if busy && is_invite {
            let r = self.response(&req, from, 491, None);
            return self.respond(now, &key, r);
        }
        if let Err((code, warning)) = check_invite_content(&req) {
            let r = self.response(&req, from, code, Some(&warning));
            return self.respond(now, &key, r);
        }
        if let Some(se) = session_expires(&req) {
            if se < MIN_SE {
                let mut r = self.response(&req, from, 422, None);
                r.headers.push("Min-SE", MIN_SE.to_string());
                return self.respond(now, &key, r);
            }
        }
        let neg = if req.body.is_empty() {
            None
        } else {
            match sdp::negotiate(&req.body, from.addr.ip()) {
                Ok(n) => Some(n),
                Err(e) => {
                    // The session goes on as it was (RFC 3264 §8).
                    let mut r = self.response(&req, from, 488, None);
                    r.headers.push("Warning", format!("305 astreinte \"{e}\""));
                    return self.respond(now, &key, r);
                }
            }
        };
        let uac_timer = uac_supports_timer(&req);
        let se = session_expires(&req);
        let Some(leg) = self.legs.get_mut(&leg_id) else {
            return;
        };
        if let (Some(se), true) = (se, uac_timer) {
            leg.session_interval = Some(Duration::from_secs(u64::from(se)));
        }
        if let Some(interval) = leg.session_interval {
            leg.session_deadline = Some(now + interval);
            self.schedule(
                now + interval,
                TimerKind::SessionExpiry,
                TimerTarget::Leg(leg_id),
            );
        }
        let Some(leg) = self.legs.get_mut(&leg_id) else {
            return;
        };
        let mut body = Vec::new();
        let mut offer_in_ok = false;
        let mut updated = None;
        if let Some(mut local) = leg.local_sdp {
            match neg {
                Some(n) => {
                    local.version += 1;
                    body = sdp::answer(&n, &local);
                    leg.media = Some(n.media);
                    updated = Some(n.media);
                    leg.negotiation = Some(n);
                }
                None if is_invite => {
                    local.version += 1;
                    let dir = leg.media.map(|m| m.direction).unwrap_or_default();
                    body = sdp::offer(&local, dir);
                    offer_in_ok = true;
                }
                None => {}
            }
            leg.local_sdp = Some(local);
        }
        let span = leg.span.clone();
        let interval = leg.session_interval;
        let local_tag = leg.local_tag.clone();
        let mut r = self.response(&req, from, 200, None);
        set_to_tag(&mut r, Some(&local_tag));
        self.add_dialog_headers(&mut r, interval, uac_timer);
        if !body.is_empty() {
            r.headers.push("Content-Type", "application/sdp");
            r.body = body;
        }
        if is_invite {
            if let Some(leg) = self.legs.get_mut(&leg_id) {
                leg.reinvite_pending = true;
            }
            let cseq = req.cseq().map(|c| c.seq).unwrap_or(0);
            self.send_2xx_until_ack(now, &key, leg_id, r, cseq, offer_in_ok);
        } else {
            self.respond(now, &key, r);
        }
        if let Some(m) = updated {
            info!(parent: &span, direction = ?m.direction, codec = ?m.codec, "media updated by {}", req.method);
            self.events.push_back(Event::MediaUpdated {
                leg: leg_id,
                media: m,
            });
        }
    }

    fn add_dialog_headers(&self, r: &mut Response, session: Option<Duration>, uac_timer: bool) {
        r.headers.push("Contact", self.contact());
        r.headers.push("Allow", ALLOW);
        r.headers.push("Supported", SUPPORTED);
        if let (Some(se), true) = (session, uac_timer) {
            r.headers
                .push("Session-Expires", format!("{};refresher=uac", se.as_secs()));
            r.headers.push("Require", "timer");
        }
    }

    /// Sends a 2xx to an INVITE and keeps it for retransmission until the ACK comes
    /// (RFC 3261 §13.3.1.4); without ACK the call is ended with BYE.
    fn send_2xx_until_ack(
        &mut self,
        now: Instant,
        key: &TxnKey,
        leg_id: LegId,
        ok: Response,
        cseq: u32,
        offer_in_ok: bool,
    ) {
        let bytes = ok.to_bytes();
        self.respond(now, key, ok);
        if let Some(leg) = self.legs.get_mut(&leg_id) {
            leg.pending_ok = Some(PendingOk {
                bytes,
                cseq,
                interval: self.config.timers.t1,
                offer_in_ok,
            });
        }
        self.arm_ok_timers(now, leg_id);
    }

    fn arm_ok_timers(&mut self, now: Instant, leg_id: LegId) {
        let Some(leg) = self.legs.get(&leg_id) else {
            return;
        };
        if !leg.peer.reliable() {
            self.schedule(
                now + self.config.timers.t1,
                TimerKind::OkRetransmit,
                TimerTarget::Leg(leg_id),
            );
        }
        self.schedule(
            now + self.config.timers.t64(),
            TimerKind::AckTimeout,
            TimerTarget::Leg(leg_id),
        );
    }

    // -- responses (client side) --------------------------------------------------------------

    fn handle_response(&mut self, now: Instant, from: Peer, resp: Response) {
        let (Some(via), Some(cseq)) = (resp.top_via(), resp.cseq()) else {
            return;
        };
        let Some(branch) = via.branch().map(str::to_string) else {
            return;
        };
        let txn_id = format!("{branch}|{}", cseq.method);
        let Some(txn) = self.client_txns.get_mut(&txn_id) else {
            // A retransmitted 2xx to our INVITE after the transaction ended: ACK it again.
            if cseq.method == "INVITE" && (200..300).contains(&resp.code) {
                self.reack(&resp);
            }
            return;
        };
        let _ = from;
        let code = resp.code;
        let purpose = txn.purpose;
        let peer = txn.peer;
        match txn.state {
            ClientState::Completed | ClientState::Terminated => {
                if txn.is_invite && code >= 300 {
                    if let Some(ack) = txn.ack.clone() {
                        self.send(peer, ack);
                    }
                } else if txn.is_invite && code >= 200 {
                    self.reack(&resp);
                }
                return;
            }
            _ => {}
        }
        if code < 200 {
            txn.state = ClientState::Proceeding;
            if let ClientPurpose::Invite(leg) = purpose {
                if code == 180 || code == 183 {
                    self.events.push_back(Event::Ringing { leg });
                }
            }
            return;
        }
        let t = self.config.timers;
        if txn.is_invite {
            if code >= 300 {
                // ACK in the same transaction (RFC 3261 §17.1.1.3).
                let ack = txn.invite.as_ref().map(|inv| build_non2xx_ack(inv, &resp));
                txn.ack = ack.clone();
                txn.state = ClientState::Completed;
                if let Some(ack) = ack {
                    self.send(peer, ack);
                }
                let wait = if peer.reliable() {
                    Duration::ZERO
                } else {
                    Duration::from_secs(32)
                };
                self.schedule(
                    now + wait,
                    TimerKind::ClientCleanup,
                    TimerTarget::Client(txn_id),
                );
            } else {
                txn.state = ClientState::Terminated;
                self.client_txns.remove(&txn_id);
            }
        } else {
            txn.state = ClientState::Completed;
            let wait = if peer.reliable() {
                Duration::ZERO
            } else {
                t.t4
            };
            self.schedule(
                now + wait,
                TimerKind::ClientCleanup,
                TimerTarget::Client(txn_id),
            );
        }
        match purpose {
            ClientPurpose::Invite(leg) => self.outbound_final(now, leg, resp),
            ClientPurpose::Register => self.registration_response(now, resp),
            ClientPurpose::Bye | ClientPurpose::Cancel => {}
        }
    }

    fn reack(&mut self, resp: &Response) {
        let Some(call_id) = resp.headers.get("Call-ID") else {
            return;
        };
        let local_tag = resp
            .headers
            .get("From")
            .and_then(NameAddr::parse)
            .and_then(|f| f.tag().map(str::to_string));
        let Some(tag) = local_tag else {
            return;
        };
        if let Some(leg) = self
            .dialogs
            .get(&(call_id.to_string(), tag))
            .and_then(|id| self.legs.get(id))
        {
            if let Some(ack) = leg.ack_for_2xx.clone() {
                let peer = leg.peer;
                self.send(peer, ack);
            }
        }
    }

    fn start_client_txn(
        &mut self,
        now: Instant,
        peer: Peer,
        req: Request,
        purpose: ClientPurpose,
    ) -> String {
        let branch = req
            .top_via()
            .and_then(|v| v.branch().map(str::to_string))
            .unwrap_or_default();
        let txn_id = format!("{branch}|{}", req.method);
        let is_invite = req.method == Method::Invite;
        let bytes = req.to_bytes();
        let t = self.config.timers;
        self.client_txns.insert(
            txn_id.clone(),
            ClientTxn {
                peer,
                request: bytes.clone(),
                is_invite,
                state: ClientState::Calling,
                interval: t.t1,
                purpose,
                invite: is_invite.then(|| req.clone()),
                ack: None,
            },
        );
        if !peer.reliable() {
            self.schedule(
                now + t.t1,
                TimerKind::ClientRetransmit,
                TimerTarget::Client(txn_id.clone()),
            );
        }
        self.schedule(
            now + t.t64(),
            TimerKind::ClientTimeout,
            TimerTarget::Client(txn_id.clone()),
        );
        self.send(peer, bytes);
        txn_id
    }

    // -- commands ---------------------------------------------------------------------------

    /// Sends 180 Ringing for an offered inbound leg.
    pub fn ring(&mut self, now: Instant, leg_id: LegId) {
        let Some(leg) = self.legs.get(&leg_id) else {
            return;
        };
        let (Some(key), Some(req)) = (leg.invite_txn.clone(), leg.invite_request.clone()) else {
            return;
        };
        let tag = leg.local_tag.clone();
        let peer = leg.peer;
        let mut r = self.response(&req, peer, 180, None);
        set_to_tag(&mut r, Some(&tag));
        r.headers.push("Contact", self.contact());
        self.respond(now, &key, r);
    }

    /// Answers an offered inbound leg with media at `local_rtp`. Returns false if the leg is
    /// no longer waiting (cancelled meanwhile).
    pub fn answer(&mut self, now: Instant, leg_id: LegId, local_rtp: SocketAddr) -> bool {
        let session = self.sdp_session;
        self.sdp_session += 1;
        let Some(leg) = self.legs.get_mut(&leg_id) else {
            return false;
        };
        if leg.state != LegState::Offered {
            return false;
        }
        let (Some(key), Some(req)) = (leg.invite_txn.take(), leg.invite_request.take()) else {
            return false;
        };
        let local = LocalSdp {
            session_id: session,
            version: 1,
            rtp: local_rtp,
        };
        leg.local_sdp = Some(local);
        let (body, offer_in_ok) = match &leg.negotiation {
            Some(n) => (sdp::answer(n, &local), false),
            None => (sdp::offer(&local, MediaDirection::SendRecv), true),
        };
        leg.state = LegState::Answered;
        let tag = leg.local_tag.clone();
        let peer = leg.peer;
        let interval = leg.session_interval;
        let span = leg.span.clone();
        let mut r = self.response(&req, peer, 200, None);
        set_to_tag(&mut r, Some(&tag));
        for rr in req.headers.get_all("Record-Route") {
            r.headers.push("Record-Route", rr);
        }
        self.add_dialog_headers(&mut r, interval, interval.is_some());
        r.headers.push("Content-Type", "application/sdp");
        r.body = body;
        let cseq = req.cseq().map(|c| c.seq).unwrap_or(0);
        self.send_2xx_until_ack(now, &key, leg_id, r, cseq, offer_in_ok);
        info!(parent: &span, rtp = %local_rtp, "answered");
        true
    }

    /// Refuses an offered inbound leg.
    pub fn reject(&mut self, now: Instant, leg_id: LegId, code: u16) {
        let code = if (300..700).contains(&code) {
            code
        } else {
            480
        };
        let Some(leg) = self.legs.get_mut(&leg_id) else {
            return;
        };
        let (Some(key), Some(req)) = (leg.invite_txn.take(), leg.invite_request.take()) else {
            return;
        };
        let tag = leg.local_tag.clone();
        let peer = leg.peer;
        let mut r = self.response(&req, peer, code, None);
        set_to_tag(&mut r, Some(&tag));
        self.respond(now, &key, r);
        self.end_leg(leg_id, EndReason::Refused(code));
    }

    /// Ends a leg whatever its state: BYE when up, CANCEL while our INVITE rings, 480 while
    /// an inbound INVITE waits for us.
    pub fn hangup(&mut self, now: Instant, leg_id: LegId) {
        let Some(leg) = self.legs.get(&leg_id) else {
            return;
        };
        match leg.state {
            LegState::Offered => self.reject(now, leg_id, 480),
            LegState::Calling => {
                let cancel = leg
                    .out_branch
                    .as_ref()
                    .and_then(|b| self.client_txns.get(&format!("{b}|INVITE")))
                    .and_then(|t| t.invite.as_ref())
                    .map(build_cancel);
                let peer = leg.peer;
                if let Some(cancel) = cancel {
                    self.start_client_txn(now, peer, cancel, ClientPurpose::Cancel);
                }
                self.end_leg(leg_id, EndReason::LocalHangup);
            }
            LegState::Answered | LegState::Up => {
                self.send_bye(now, leg_id);
                self.end_leg(leg_id, EndReason::LocalHangup);
            }
        }
    }

    fn send_bye(&mut self, now: Instant, leg_id: LegId) {
        let Some(leg) = self.legs.get_mut(&leg_id) else {
            return;
        };
        leg.local_cseq += 1;
        let bye = self.in_dialog_request(leg_id, Method::Bye);
        if let Some((peer, bye)) = bye {
            self.start_client_txn(now, peer, bye, ClientPurpose::Bye);
        }
    }

    fn in_dialog_request(&self, leg_id: LegId, method: Method) -> Option<(Peer, Request)> {
        let leg = self.legs.get(&leg_id)?;
        let mut req = Request::new(method.clone(), leg.remote_target.clone());
        req.headers
            .push("Via", self.via(leg.peer.transport, &new_branch()));
        req.headers.push("Max-Forwards", "70");
        // UAS keeps Record-Route order, UAC reverses it (RFC 3261 §12.1).
        let routes: Vec<&String> = if leg.inbound {
            leg.route_set.iter().collect()
        } else {
            leg.route_set.iter().rev().collect()
        };
        for r in routes {
            req.headers.push("Route", r.clone());
        }
        req.headers
            .push("From", with_tag(&leg.local_party, Some(&leg.local_tag)));
        req.headers
            .push("To", with_tag(&leg.remote_party, leg.remote_tag.as_deref()));
        req.headers.push("Call-ID", leg.call_id.clone());
        req.headers
            .push("CSeq", format!("{} {}", leg.local_cseq, method));
        req.headers
            .push("User-Agent", self.config.user_agent.clone());
        Some((leg.peer, req))
    }

    fn end_leg(&mut self, leg_id: LegId, reason: EndReason) {
        if let Some(leg) = self.legs.remove(&leg_id) {
            self.dialogs
                .remove(&(leg.call_id.clone(), leg.local_tag.clone()));
            info!(parent: &leg.span, %reason, "call ended");
            self.events.push_back(Event::Ended {
                leg: leg_id,
                reason,
            });
        }
    }

    /// Places an outbound call. Progress comes as `Ringing`, `Answered` or `Ended` events.
    pub fn place_call(&mut self, now: Instant, call: OutboundCall) -> LegId {
        let leg_id = LegId(self.next_leg);
        self.next_leg += 1;
        let call_id = format!("{}@astreinte", random_token(20));
        let local_tag = random_token(10);
        let session = self.sdp_session;
        self.sdp_session += 1;
        let local = LocalSdp {
            session_id: session,
            version: 1,
            rtp: call.local_rtp,
        };
        let local_party = format!("<{}>", call.from);
        let remote_party = format!("<{}>", call.target);
        let span = info_span!("call", call_id = %call_id, leg = leg_id.0, dir = "out");
        info!(parent: &span, target = %call.target, via = %call.next_hop.addr, "placing call");
        self.legs.insert(
            leg_id,
            Leg {
                call_id: call_id.clone(),
                inbound: false,
                state: LegState::Calling,
                local_tag: local_tag.clone(),
                remote_tag: None,
                local_party,
                remote_party,
                remote_target: call.target.clone(),
                route_set: Vec::new(),
                local_cseq: 1,
                remote_cseq: None,
                peer: call.next_hop,
                invite_txn: None,
                invite_request: None,
                negotiation: None,
                local_sdp: Some(local),
                media: None,
                pending_ok: None,
                reinvite_pending: false,
                session_interval: None,
                session_deadline: None,
                out_branch: None,
                credentials: call.credentials,
                auth_attempts: 0,
                ack_for_2xx: None,
                span,
            },
        );
        self.dialogs.insert((call_id, local_tag), leg_id);
        self.send_invite(now, leg_id, None);
        leg_id
    }

    fn send_invite(
        &mut self,
        now: Instant,
        leg_id: LegId,
        authorization: Option<(&'static str, String)>,
    ) {
        let Some((peer, mut req)) = self.in_dialog_request(leg_id, Method::Invite) else {
            return;
        };
        let Some(leg) = self.legs.get(&leg_id) else {
            return;
        };
        req.headers.push("Contact", self.contact());
        req.headers.push("Allow", ALLOW);
        req.headers.push("Supported", SUPPORTED);
        if let Some((name, value)) = authorization {
            req.headers.push(name, value);
        }
        if let Some(local) = &leg.local_sdp {
            req.headers.push("Content-Type", "application/sdp");
            req.body = sdp::offer(local, MediaDirection::SendRecv);
        }
        let branch = req
            .top_via()
            .and_then(|v| v.branch().map(str::to_string))
            .unwrap_or_default();
        if let Some(leg) = self.legs.get_mut(&leg_id) {
            leg.out_branch = Some(branch);
        }
        self.start_client_txn(now, peer, req, ClientPurpose::Invite(leg_id));
    }

    fn outbound_final(&mut self, now: Instant, leg_id: LegId, resp: Response) {
        let code = resp.code;
        let Some(leg) = self.legs.get_mut(&leg_id) else {
            // Answered after we hung up: ACK and BYE it (RFC 3261 §15).
            return;
        };
        if (200..300).contains(&code) {
            leg.remote_tag = resp.to().and_then(|t| t.tag().map(str::to_string));
            if let Some(c) = resp
                .headers
                .list("Contact")
                .first()
                .and_then(|c| header_uri(c))
            {
                leg.remote_target = c;
            }
            leg.route_set = resp.headers.list("Record-Route");
            let media = sdp::read_answer(&resp.body, leg.peer.addr.ip()).ok();
            leg.media = media;
            leg.state = LegState::Up;
            let seq = resp.cseq().map(|c| c.seq).unwrap_or(leg.local_cseq);
            let span = leg.span.clone();
            if let Some((peer, mut ack)) = self.in_dialog_request(leg_id, Method::Ack) {
                ack.headers.set("CSeq", format!("{seq} ACK"));
                let bytes = ack.to_bytes();
                if let Some(leg) = self.legs.get_mut(&leg_id) {
                    leg.ack_for_2xx = Some(bytes.clone());
                }
                self.send(peer, bytes);
            }
            info!(parent: &span, "outbound call answered");
            self.events
                .push_back(Event::Answered { leg: leg_id, media });
            return;
        }
        if leg.auth_attempts == 0 {
            if let (Some((ch, header)), Some(cred)) = (challenge_of(&resp), leg.credentials.clone())
            {
                leg.auth_attempts += 1;
                leg.local_cseq += 1;
                let auth = ch.authorize(&cred, "INVITE", &leg.remote_target, &random_token(12));
                self.send_invite(now, leg_id, Some((header, auth)));
                return;
            }
        }
        self.end_leg(leg_id, EndReason::Rejected(code));
    }

    // -- registration -----------------------------------------------------------------------

    /// Starts (or replaces) the upstream registration; it is refreshed before it expires.
    pub fn register(&mut self, now: Instant, spec: RegisterSpec) {
        self.registration = Some(Registration {
            spec,
            call_id: format!("{}@astreinte", random_token(20)),
            local_tag: random_token(10),
            cseq: 0,
            auth_attempts: 0,
            branch: None,
        });
        self.send_register(now, None);
    }

    fn send_register(&mut self, now: Instant, authorization: Option<(&'static str, String)>) {
        let contact = self.contact();
        let Some(reg) = self.registration.as_mut() else {
            return;
        };
        reg.cseq += 1;
        let branch = new_branch();
        reg.branch = Some(branch.clone());
        let peer = reg.spec.next_hop;
        let mut req = Request::new(Method::Register, reg.spec.registrar.clone());
        let via = format!(
            "SIP/2.0/{} {};branch={branch};rport",
            peer.transport.via_name(),
            self.config.local_addr
        );
        req.headers.push("Via", via);
        req.headers.push("Max-Forwards", "70");
        req.headers
            .push("From", format!("<{}>;tag={}", reg.spec.aor, reg.local_tag));
        req.headers.push("To", format!("<{}>", reg.spec.aor));
        req.headers.push("Call-ID", reg.call_id.clone());
        req.headers.push("CSeq", format!("{} REGISTER", reg.cseq));
        req.headers.push("Contact", contact);
        req.headers.push("Expires", reg.spec.expires.to_string());
        req.headers
            .push("User-Agent", self.config.user_agent.clone());
        if let Some((name, value)) = authorization {
            req.headers.push(name, value);
        }
        self.start_client_txn(now, peer, req, ClientPurpose::Register);
    }

    fn registration_response(&mut self, now: Instant, resp: Response) {
        let Some(reg) = self.registration.as_mut() else {
            return;
        };
        let code = resp.code;
        if (200..300).contains(&code) {
            reg.auth_attempts = 0;
            let granted = resp
                .headers
                .list("Contact")
                .iter()
                .filter_map(|c| NameAddr::parse(c))
                .find_map(|c| c.params.get("expires").and_then(|e| e.parse::<u32>().ok()))
                .or_else(|| resp.headers.get("Expires").and_then(|e| e.parse().ok()))
                .unwrap_or(reg.spec.expires);
            // Refresh well before expiry: at 85 %, and at least 5 s ahead.
            let refresh = Duration::from_secs(u64::from(granted)).mul_f64(0.85);
            let refresh = refresh.max(Duration::from_secs(1));
            info!(registrar = %reg.spec.registrar, expires = granted, "registered");
            self.schedule(
                now + refresh,
                TimerKind::RegisterRefresh,
                TimerTarget::Registration,
            );
            self.events
                .push_back(Event::Registration(RegistrationState::Registered {
                    expires: granted,
                }));
            return;
        }
        if let Some((ch, header)) = challenge_of(&resp) {
            // A second challenge is only worth answering when the nonce was stale.
            if reg.auth_attempts == 0 || (reg.auth_attempts == 1 && ch.stale) {
                reg.auth_attempts += 1;
                let auth = ch.authorize(
                    &reg.spec.credentials,
                    "REGISTER",
                    &reg.spec.registrar,
                    &random_token(12),
                );
                self.send_register(now, Some((header, auth)));
                return;
            }
        }
        self.registration_failed(now, Some(code));
    }

    fn registration_failed(&mut self, now: Instant, code: Option<u16>) {
        let retry_in = Duration::from_secs(60);
        if let Some(reg) = self.registration.as_mut() {
            reg.auth_attempts = 0;
            warn!(registrar = %reg.spec.registrar, ?code, "registration failed; retrying in 60 s");
        }
        self.schedule(
            now + retry_in,
            TimerKind::RegisterRefresh,
            TimerTarget::Registration,
        );
        self.events
            .push_back(Event::Registration(RegistrationState::Failed {
                code,
                retry_in,
            }));
    }

    // -- timers -----------------------------------------------------------------------------

    /// Runs every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((at, _, _))) = self.timers.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((_, kind, target))) = self.timers.pop() else {
                break;
            };
            self.fire(now, kind, target);
        }
    }

    fn fire(&mut self, now: Instant, kind: TimerKind, target: TimerTarget) {
        let t = self.config.timers;
        match (kind, target) {
            (TimerKind::ServerRetransmit, TimerTarget::Server(b, s, m)) => {
                let key = TxnKey {
                    branch: b,
                    sent_by: s,
                    method: m,
                };
                let Some(txn) = self.server_txns.get_mut(&key) else {
                    return;
                };
                if txn.state != ServerState::Completed {
                    return;
                }
                txn.retransmit_interval = backoff(txn.retransmit_interval, &t, true);
                let next = txn.retransmit_interval;
                let (peer, bytes) = (txn.peer, txn.last_response.clone());
                if let Some(bytes) = bytes {
                    self.send(peer, bytes);
                }
                let target = TimerTarget::Server(key.branch, key.sent_by, key.method);
                self.schedule(now + next, TimerKind::ServerRetransmit, target);
            }
            (TimerKind::ServerTimeout, TimerTarget::Server(b, s, m)) => {
                let key = TxnKey {
                    branch: b,
                    sent_by: s,
                    method: m,
                };
                if let Some(txn) = self.server_txns.get_mut(&key) {
                    txn.state = ServerState::Terminated;
                }
                self.server_txns.remove(&key);
            }
            (TimerKind::ClientRetransmit, TimerTarget::Client(id)) => {
                let Some(txn) = self.client_txns.get_mut(&id) else {
                    return;
                };
                let resend = matches!(
                    (txn.is_invite, txn.state),
                    (true, ClientState::Calling)
                        | (false, ClientState::Calling | ClientState::Proceeding)
                );
                if !resend {
                    return;
                }
                txn.interval = if txn.is_invite {
                    backoff(txn.interval, &t, false)
                } else if txn.state == ClientState::Proceeding {
                    t.t2
                } else {
                    backoff(txn.interval, &t, true)
                };
                let (peer, bytes, next) = (txn.peer, txn.request.clone(), txn.interval);
                self.send(peer, bytes);
                self.schedule(
                    now + next,
                    TimerKind::ClientRetransmit,
                    TimerTarget::Client(id),
                );
            }
            (TimerKind::ClientTimeout, TimerTarget::Client(id)) => {
                let Some(txn) = self.client_txns.get(&id) else {
                    return;
                };
                if matches!(txn.state, ClientState::Completed | ClientState::Terminated) {
                    return;
                }
                let purpose = txn.purpose;
                self.client_txns.remove(&id);
                match purpose {
                    ClientPurpose::Invite(leg) => self.end_leg(leg, EndReason::Timeout),
                    ClientPurpose::Register => self.registration_failed(now, None),
                    ClientPurpose::Bye | ClientPurpose::Cancel => {}
                }
            }
            (TimerKind::ClientCleanup, TimerTarget::Client(id)) => {
                self.client_txns.remove(&id);
            }
            (TimerKind::OkRetransmit, TimerTarget::Leg(leg_id)) => {
                let Some(leg) = self.legs.get_mut(&leg_id) else {
                    return;
                };
                let peer = leg.peer;
                let Some(p) = leg.pending_ok.as_mut() else {
                    return;
                };
                p.interval = backoff(p.interval, &t, true);
                let (bytes, next) = (p.bytes.clone(), p.interval);
                self.send(peer, bytes);
                self.schedule(
                    now + next,
                    TimerKind::OkRetransmit,
                    TimerTarget::Leg(leg_id),
                );
            }
            (TimerKind::AckTimeout, TimerTarget::Leg(leg_id)) => {
                let waiting = self
                    .legs
                    .get(&leg_id)
                    .is_some_and(|l| l.pending_ok.is_some());
                if waiting {
                    if let Some(leg) = self.legs.get(&leg_id) {
                        warn!(parent: &leg.span, "no ACK for our 2xx: sending BYE");
                    }
                    if let Some(leg) = self.legs.get_mut(&leg_id) {
                        leg.pending_ok = None;
                    }
                    self.send_bye(now, leg_id);
                    self.end_leg(leg_id, EndReason::NoAck);
                }
            }
            (TimerKind::SessionExpiry, TimerTarget::Leg(leg_id)) => {
                let expired = self
                    .legs
                    .get(&leg_id)
                    .and_then(|l| l.session_deadline)
                    .is_some_and(|d| d <= now);
                if expired {
                    self.send_bye(now, leg_id);
                    self.end_leg(leg_id, EndReason::SessionExpired);
                }
            }
            (TimerKind::RegisterRefresh, TimerTarget::Registration)
                if self.registration.is_some() =>
            {
                self.send_register(now, None);
            }
            _ => {}
        }
    }

    // -- message construction ---------------------------------------------------------------

    fn via(&self, transport: Transport, branch: &str) -> String {
        format!(
            "SIP/2.0/{} {};branch={branch};rport",
            transport.via_name(),
            self.config.local_addr
        )
    }

    fn contact(&self) -> String {
        format!("<sip:astreinte@{}>", self.config.local_addr)
    }

    /// A response to `req`: Via (with received/rport), From, To, Call-ID, CSeq copied.
    fn response(&self, req: &Request, from: Peer, code: u16, warning: Option<&str>) -> Response {
        self.build_response_from_headers(&req.headers, from, code, warning)
    }

    fn build_response_from_headers(
        &self,
        headers: &message::Headers,
        from: Peer,
        code: u16,
        warning: Option<&str>,
    ) -> Response {
        let mut r = Response {
            version: "SIP/2.0".into(),
            code,
            reason: reason_phrase(code).into(),
            headers: Default::default(),
            body: Vec::new(),
        };
        let mut first = true;
        for v in headers.get_all("Via") {
            for part in split_list(v) {
                let part = part.trim();
                if part.is_empty() {
                    continue;
                }
                if first {
                    first = false;
                    let mut top = part.to_string();
                    top.push_str(&format!(";received={}", from.addr.ip()));
                    if let Some(pos) = top.find(";rport") {
                        let after = &top[pos + 6..];
                        if after.is_empty() || after.starts_with(';') {
                            top.insert_str(pos + 6, &format!("={}", from.addr.port()));
                        }
                    }
                    r.headers.push("Via", top);
                } else {
                    r.headers.push("Via", part);
                }
            }
        }
        for name in ["From", "To", "Call-ID", "CSeq"] {
            if let Some(v) = headers.get(name) {
                r.headers.push(name, v);
            }
        }
        if code > 100 {
            let to = r.headers.get("To").map(str::to_string);
            if let Some(to) = to {
                if NameAddr::parse(&to).is_some_and(|n| n.tag().is_none()) {
                    r.headers
                        .set_in_place("To", format!("{to};tag={}", random_token(10)));
                }
            }
        }
        r.headers.push("Server", self.config.user_agent.clone());
        if let Some(w) = warning {
            r.headers.push(
                "Warning",
                format!("399 astreinte \"{}\"", w.replace('"', "'")),
            );
        }
        r
    }
}

/// Puts our dialog tag on a response's To (replacing any tag `response` invented).
fn set_to_tag(r: &mut Response, tag: Option<&str>) {
    let Some(tag) = tag else {
        return;
    };
    let Some(to) = r.headers.get("To").map(str::to_string) else {
        return;
    };
    let base = without_tag(&to);
    r.headers.set_in_place("To", format!("{base};tag={tag}"));
}

/// Require options we do not support (RFC 3261 §8.2.2.3). Proxy-Require is for proxies.
fn unsupported_requirements(req: &Request) -> Vec<String> {
    if req.method == Method::Cancel || req.method == Method::Ack {
        return Vec::new();
    }
    req.headers
        .list("Require")
        .into_iter()
        .filter(|opt| !SUPPORTED.split(", ").any(|s| s.eq_ignore_ascii_case(opt)))
        .collect()
}

/// Content and Accept checks on an INVITE (RFC 3261 §8.2.3, §21.4.7).
fn check_invite_content(req: &Request) -> Result<(), (u16, String)> {
    if !req.body.is_empty() {
        let ctype = req
            .headers
            .get("Content-Type")
            .map(|c| c.split(';').next().unwrap_or(c).trim().to_ascii_lowercase())
            .unwrap_or_default();
        if ctype != "application/sdp" {
            return Err((415, format!("body type \"{ctype}\" not supported")));
        }
        if let Some(enc) = req.headers.get("Content-Encoding") {
            if !enc.eq_ignore_ascii_case("identity") {
                return Err((415, format!("content encoding \"{enc}\" not supported")));
            }
        }
    }
    let accept = req.headers.list("Accept");
    if req.headers.count("Accept") > 0
        && !accept.is_empty()
        && !accept.iter().any(|a| {
            let a = a.split(';').next().unwrap_or(a).trim();
            a.eq_ignore_ascii_case("application/sdp")
                || a.eq_ignore_ascii_case("application/*")
                || a == "*/*"
        })
    {
        return Err((406, "we can only answer with application/sdp".into()));
    }
    Ok(())
}

fn session_expires(req: &Request) -> Option<u32> {
    req.headers
        .get("Session-Expires")
        .and_then(|v| v.split(';').next())
        .and_then(|v| v.trim().parse().ok())
}

fn uac_supports_timer(req: &Request) -> bool {
    req.headers.has_token("Supported", "timer") || req.headers.has_token("Require", "timer")
}

/// `Signal=5\r\nDuration=160` (application/dtmf-relay).
fn parse_dtmf_relay(body: &str) -> Option<(char, Option<u32>)> {
    let mut digit = None;
    let mut duration = None;
    for line in body.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        match k.trim().to_ascii_lowercase().as_str() {
            "signal" => digit = parse_dtmf_digit(v.trim()),
            "duration" => duration = v.trim().parse().ok(),
            _ => {}
        }
    }
    digit.map(|d| (d, duration))
}

fn parse_dtmf_digit(s: &str) -> Option<char> {
    match s {
        "10" => Some('*'),
        "11" => Some('#'),
        _ => {
            let mut chars = s.chars();
            let c = chars.next()?.to_ascii_uppercase();
            if chars.next().is_some() {
                return None;
            }
            matches!(c, '0'..='9' | '*' | '#' | 'A'..='D').then_some(c)
        }
    }
}

/// ACK for a non-2xx final response (RFC 3261 §17.1.1.3).
fn build_non2xx_ack(invite: &Request, resp: &Response) -> Vec<u8> {
    let mut ack = Request::new(Method::Ack, invite.uri.clone());
    if let Some(v) = invite.headers.get("Via") {
        ack.headers.push("Via", v);
    }
    ack.headers.push("Max-Forwards", "70");
    for r in invite.headers.get_all("Route") {
        ack.headers.push("Route", r);
    }
    if let Some(f) = invite.headers.get("From") {
        ack.headers.push("From", f);
    }
    if let Some(t) = resp.headers.get("To") {
        ack.headers.push("To", t);
    }
    if let Some(c) = invite.headers.get("Call-ID") {
        ack.headers.push("Call-ID", c);
    }
    if let Some(c) = invite.cseq() {
        ack.headers.push("CSeq", format!("{} ACK", c.seq));
    }
    ack.to_bytes()
}

/// CANCEL for a pending INVITE (RFC 3261 §9.1).
fn build_cancel(invite: &Request) -> Request {
    let mut c = Request::new(Method::Cancel, invite.uri.clone());
    if let Some(v) = invite.headers.get("Via") {
        c.headers.push("Via", v);
    }
    c.headers.push("Max-Forwards", "70");
    for r in invite.headers.get_all("Route") {
        c.headers.push("Route", r);
    }
    for name in ["From", "To", "Call-ID"] {
        if let Some(v) = invite.headers.get(name) {
            c.headers.push(name, v);
        }
    }
    if let Some(cs) = invite.cseq() {
        c.headers.push("CSeq", format!("{} CANCEL", cs.seq));
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtmf_bodies() {
        assert_eq!(
            parse_dtmf_relay("Signal=5\r\nDuration=160\r\n"),
            Some(('5', Some(160)))
        );
        assert_eq!(parse_dtmf_relay("Signal= #\r\n"), Some(('#', None)));
        assert_eq!(parse_dtmf_relay("Signal=11\r\n"), Some(('#', None)));
        assert_eq!(parse_dtmf_relay("Signal=Z\r\n"), None);
        assert_eq!(parse_dtmf_digit("*"), Some('*'));
        assert_eq!(parse_dtmf_digit("55"), None);
    }
}
