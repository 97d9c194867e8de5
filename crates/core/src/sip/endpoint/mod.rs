//! The SIP user agent as a sans-I/O state machine.
//!
//! Like `quinn-proto`'s `Connection`, an [`Endpoint`] never reads a clock or touches a socket:
//! bytes and `now` come in through `handle_*`, the application's decisions through commands
//! (`answer`, `reject`, `hangup`, `place_call`, `register`), and what to send, what happened and
//! when to wake come out of `poll_transmit`, `poll_event` and `poll_timeout`. The tokio shell in
//! `transport.rs` does the I/O; tests drive it with synthetic time.
//!
//! One file per side of the protocol: `uas` answers requests (the support line's calls),
//! `uac` sends them (BYE, CANCEL, outbound pages), `register` keeps an upstream registration,
//! `build` writes the common headers of what we send.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use tracing::{debug, info, warn, Span};

use super::message::{
    self, reason_phrase, split_list, uri_scheme, Message, Method, NameAddr, Request, Response, Uri,
};
use super::routing::{NumberSet, RateLimiter, RateVerdict, TrustedSources};
use super::sdp::{self, LocalSdp, Negotiation, NegotiationError};
use super::transaction::{backoff, Timers, TxnKey};
use super::validate::{validate_request, Rejection};
use crate::media::{MediaDirection, NegotiatedMedia};

mod build;
mod register;
mod uac;
mod uas;

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

impl Caller {
    /// As the engine keeps a caller: the user part and display name are percent-decoded, so
    /// they may hold any byte; controls are dropped and lengths bounded
    /// ([`crate::printable::identity`]). A user part left empty is no user part.
    pub fn normalised(self) -> Caller {
        let keep = |s: String| {
            let s = crate::printable::identity(&s);
            (!s.is_empty()).then_some(s)
        };
        Caller {
            display: self.display.and_then(keep),
            uri: self
                .uri
                .chars()
                .filter(|c| !crate::printable::is_control(*c))
                .collect(),
            user: self.user.and_then(keep),
        }
    }
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
    /// The far end's final response broke the SIP grammar (a control byte in a header): we
    /// acted on none of it, credentials for its challenge included.
    BadResponse(String),
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
            EndReason::BadResponse(why) => write!(f, "malformed response from peer ({why})"),
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

/// What the endpoint refused or contained, for logs and metrics. Each counter only grows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EndpointStats {
    /// Datagrams and framed messages received.
    pub received: u64,
    /// Dropped unread: their source was over its rate limit.
    pub rate_dropped: u64,
    /// Answered 503 because their source was over its rate limit.
    pub rate_refused: u64,
    /// Answered without keeping a transaction (OPTIONS, refusals, junk).
    pub stateless_answers: u64,
    /// In-dialog requests (BYE, re-INVITE, UPDATE, INFO, CANCEL, ACK) from an address that is
    /// not the dialog's peer: refused as if the dialog did not exist.
    pub strangers_in_dialog: u64,
    /// Calls refused because the endpoint holds as many calls as it may.
    pub over_capacity: u64,
    /// Messages that broke the line grammar (a bare CR or LF, a NUL or another control byte
    /// in a header): requests answered 400, responses dropped.
    pub control_bytes_refused: u64,
}

/// Most calls (legs) one endpoint holds; past that an INVITE is answered 503 statelessly.
pub const MAX_LEGS: usize = 20_000;

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
    /// Where tags, branches, Call-IDs, cnonces and the SDP session id come from. The engine
    /// draws it from the operating system at start; a fixed one makes a test repeat exactly.
    pub seed: RngSeed,
}

/// The seed of an endpoint's randomness. Its `Debug` does not show it: it would let a reader
/// of the log predict the next Call-ID and tag.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RngSeed(pub [u8; 32]);

impl fmt::Debug for RngSeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RngSeed(…)")
    }
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
    /// Tags, branches, Call-IDs and nonces' cnonce: from [`EndpointConfig::seed`].
    rng: ChaCha20Rng,
    stats: EndpointStats,
    /// Set when the node is going away: new calls and keep-alive probes are answered 503 so a
    /// load balancer sends new calls elsewhere, while dialogs in progress carry on.
    draining: bool,
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical_ip(ip: std::net::IpAddr) -> std::net::IpAddr {
    match ip {
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map(std::net::IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

fn random_token(rng: &mut impl Rng, len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..len)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

fn new_branch(rng: &mut impl Rng) -> String {
    format!("z9hG4bK{}", random_token(rng, 16))
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
        let mut rng = ChaCha20Rng::from_seed(config.seed.0);
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
            sdp_session: rng.gen_range(1_000_000..9_999_999),
            rng,
            stats: EndpointStats::default(),
            draining: false,
        }
    }

    /// Starts draining (see [`Endpoint::is_draining`]); it cannot be undone: a draining node stops.
    pub fn drain(&mut self) {
        if !self.draining {
            info!(
                calls = self.legs.len(),
                "draining: new calls and OPTIONS probes get 503"
            );
        }
        self.draining = true;
    }

    pub fn is_draining(&self) -> bool {
        self.draining
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

    /// What was refused, dropped or contained so far.
    pub fn stats(&self) -> EndpointStats {
        self.stats
    }

    /// Sources the rate limiter remembers (bounded, see `routing::RATE_TABLE_CAPACITY`).
    pub fn rate_tracked_sources(&self) -> usize {
        self.rate.tracked_sources()
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
    ///
    /// Every message counts against its source's rate limit before it is even parsed (requests,
    /// responses, ACKs and junk alike), except from `[sip] trusted` sources: a flood costs us a
    /// hash lookup per datagram and nothing else.
    pub fn handle_input(&mut self, now: Instant, from: Peer, bytes: &[u8]) {
        self.stats.received += 1;
        let verdict = if self.config.trusted.allows(from.addr.ip()) {
            RateVerdict::Allow
        } else {
            self.rate.check(from.addr.ip(), now)
        };
        if verdict == RateVerdict::Drop {
            self.stats.rate_dropped += 1;
            return;
        }
        let parsed = message::parse(bytes);
        if verdict == RateVerdict::Refuse {
            self.refuse_over_rate(from, parsed);
            return;
        }
        match parsed {
            Ok(Message::Request(req)) => self.handle_request(now, from, req),
            Ok(Message::Response(resp)) => self.handle_response(now, from, resp),
            Err(e) => self.handle_unparseable(now, from, e),
        }
    }

    /// The first message over a source's limit: a request that can be answered gets one 503
    /// with Retry-After (a well-behaved peer backs off); the rest of the flood is dropped.
    fn refuse_over_rate(&mut self, from: Peer, parsed: Result<Message, message::ParseError>) {
        self.stats.rate_refused += 1;
        let Ok(Message::Request(req)) = parsed else {
            return;
        };
        warn!(source = %from.addr, "request rate exceeded: 503");
        if req.method != Method::Ack && validate_request(&req).is_ok() {
            let mut r = self.response(&req, from, 503, None);
            r.headers.push("Retry-After", "5");
            self.send(from, r.to_bytes());
        }
    }

    /// Answers 500 to a message whose handling panicked, when it is a request we can read.
    /// Kept apart from the normal path so it touches no dialog or transaction.
    pub fn answer_internal_error(&mut self, from: Peer, bytes: &[u8]) {
        let headers = match message::parse(bytes) {
            Ok(Message::Request(req)) if req.method != Method::Ack => req.headers,
            Err(e) if e.request_line.is_some() => e.headers,
            _ => return,
        };
        if headers.count("Via") == 0 {
            return;
        }
        let resp = self.build_response_from_headers(&headers, from, 500, Some("internal error"));
        self.reply_stateless(from, resp);
    }

    fn handle_unparseable(&mut self, now: Instant, from: Peer, e: message::ParseError) {
        if e.control_bytes {
            self.stats.control_bytes_refused += 1;
        }
        if let Some(code) = e.status {
            // Dropped: a response whose lines another reader splits differently says nothing
            // we may act on. A final one still ends what it answers, so a page fails at once
            // with the reason rather than waiting out timer B.
            warn!(source = %from.addr, code, reason = %e.reason, "malformed response dropped");
            if (300..700).contains(&code) {
                self.abandon_refused_final(now, from, &e.headers, &e.reason);
            }
            return;
        }
        // A request whose Via we can read gets a 400 naming the problem; anything else
        // (responses, garbage) is dropped: there is nobody to tell.
        if e.request_line.is_none() || e.headers.count("Via") == 0 {
            debug!(source = %from.addr, reason = %e.reason, "dropped unparseable message");
            return;
        }
        warn!(source = %from.addr, reason = %e.reason, "malformed request answered 400");
        let resp = self.build_response_from_headers(&e.headers, from, 400, Some(&e.reason));
        self.stats.stateless_answers += 1;
        self.send(from, resp.to_bytes());
    }

    /// Answers without a transaction: nothing is kept for the sender, and a retransmission is
    /// simply answered again (RFC 3261 §8.2.7, stateless UAS behaviour). Used for everything
    /// that opens no dialog, so strangers cannot make the endpoint hold state.
    pub(super) fn reply_stateless(&mut self, to: Peer, resp: Response) {
        self.stats.stateless_answers += 1;
        self.send(to, resp.to_bytes());
    }

    /// Whether `from` may act in a dialog whose peer is `peer`: the same address, or (behind a
    /// proxy pair or a trunk with several addresses) a trusted source.
    pub(super) fn is_dialog_peer(&self, peer: Peer, from: Peer) -> bool {
        canonical_ip(peer.addr.ip()) == canonical_ip(from.addr.ip())
            || self.config.trusted.allows(from.addr.ip())
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
}
