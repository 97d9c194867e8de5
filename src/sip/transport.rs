//! The tokio shell around [`Endpoint`]: UDP and TCP sockets on one address, the timer, and
//! channels to the call flows. One task owns the endpoint, so the state machine needs no lock.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, error, info, warn};

use super::endpoint::{
    Credentials, EndReason, Endpoint, EndpointConfig, EndpointStats, Event, IncomingCall, LegId,
    OutboundCall, Peer, RegisterSpec, RegistrationState, RngSeed, Transport,
};
use super::message::{frame_stream, Frame, Uri};
use super::routing::{NumberSet, SourceKey, TrustedSources};
use super::transaction::Timers;
use super::SipConfig;
use crate::media::NegotiatedMedia;

#[derive(Debug, thiserror::Error)]
pub enum SipError {
    #[error("cannot listen on {addr} ({proto}): {source}")]
    Bind {
        addr: SocketAddr,
        proto: &'static str,
        source: std::io::Error,
    },
    #[error("invalid [sip] listen address \"{0}\"")]
    BadListen(String),
    #[error("the SIP service has stopped")]
    Stopped,
    #[error("cannot resolve {0}")]
    Resolve(String),
    #[error("\"{0}\" is not a SIP URI")]
    BadUri(String),
    #[error("the SIP service failed: {0}")]
    Failed(String),
}

/// What the SIP service has refused, dropped or survived: the endpoint's counters plus the
/// transport's. Read with [`SipHandle::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SipStats {
    pub endpoint: EndpointStats,
    /// Sources the rate limiter remembers now (bounded).
    pub rate_tracked_sources: usize,
    /// Panics caught while handling one message or timer; the message got 500 where it could.
    pub contained_panics: u64,
    /// TCP connections open now.
    pub tcp_open: usize,
    /// TCP connections closed at once because a limit was reached.
    pub tcp_refused: u64,
    /// TCP connections closed for silence, a message that never completed, or a peer that
    /// did not read what we sent.
    pub tcp_cut: u64,
}

/// What happens to one leg after it was offered or placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegEvent {
    Confirmed {
        media: Option<NegotiatedMedia>,
    },
    MediaUpdated {
        media: NegotiatedMedia,
    },
    Dtmf {
        digit: char,
        duration_ms: Option<u32>,
    },
    Ringing,
    Answered {
        media: Option<NegotiatedMedia>,
    },
    Ended {
        reason: EndReason,
    },
}

enum Command {
    Answer(LegId, SocketAddr),
    Ring(LegId),
    Reject(LegId, u16),
    Hangup(LegId),
    Place(
        Box<OutboundCall>,
        oneshot::Sender<(LegId, mpsc::UnboundedReceiver<LegEvent>)>,
    ),
    Register(Box<RegisterSpec>),
    Drain,
    Shutdown,
}

/// Commands for one leg. Dropping it hangs the leg up, so a call flow that ends for any
/// reason never leaves a call open.
#[derive(Debug)]
pub struct LegHandle {
    id: LegId,
    commands: mpsc::UnboundedSender<Command>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Command")
    }
}

impl LegHandle {
    pub fn id(&self) -> LegId {
        self.id
    }
    /// Answers with our media at `local_rtp`.
    pub fn answer(&self, local_rtp: SocketAddr) {
        let _ = self.commands.send(Command::Answer(self.id, local_rtp));
    }
    pub fn ring(&self) {
        let _ = self.commands.send(Command::Ring(self.id));
    }
    pub fn reject(&self, code: u16) {
        let _ = self.commands.send(Command::Reject(self.id, code));
    }
    pub fn hangup(&self) {
        let _ = self.commands.send(Command::Hangup(self.id));
    }
}

impl Drop for LegHandle {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Hangup(self.id));
    }
}

/// An inbound call handed to the call flow.
#[derive(Debug)]
pub struct InboundCall {
    pub call: IncomingCall,
    pub leg: LegHandle,
    pub events: mpsc::UnboundedReceiver<LegEvent>,
}

/// The application's side of the SIP service.
#[derive(Debug, Clone)]
pub struct SipHandle {
    commands: mpsc::UnboundedSender<Command>,
    local_addr: SocketAddr,
    advertised: SocketAddr,
    registration: watch::Receiver<Option<RegistrationState>>,
    stats: watch::Receiver<SipStats>,
}

/// What to call and as whom.
#[derive(Debug, Clone)]
pub struct CallRequest {
    /// e.g. "sip:+15145001004@trunk.example.net"
    pub target: String,
    /// Outbound proxy URI; the target's host otherwise.
    pub proxy: Option<String>,
    pub from: String,
    pub credentials: Option<Credentials>,
    pub local_rtp: SocketAddr,
}

impl SipHandle {
    /// The address SIP listens on (UDP and TCP).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address written in Contact and SDP: `public_address`, or the listen address.
    pub fn advertised_addr(&self) -> SocketAddr {
        self.advertised
    }

    /// Places an outbound call (paging). Never driven by a caller's request: only by the
    /// engine's own paging jobs, so there is no toll-fraud path.
    pub async fn place_call(
        &self,
        req: CallRequest,
    ) -> Result<(LegHandle, mpsc::UnboundedReceiver<LegEvent>), SipError> {
        let hop_uri = req.proxy.clone().unwrap_or_else(|| req.target.clone());
        let next_hop = resolve(&hop_uri).await?;
        let call = OutboundCall {
            target: req.target,
            next_hop,
            from: req.from,
            credentials: req.credentials,
            local_rtp: req.local_rtp,
        };
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Place(Box::new(call), tx))
            .map_err(|_| SipError::Stopped)?;
        let (id, events) = rx.await.map_err(|_| SipError::Stopped)?;
        Ok((
            LegHandle {
                id,
                commands: self.commands.clone(),
            },
            events,
        ))
    }

    /// The latest upstream registration state, if one is configured.
    pub fn registration(&self) -> watch::Receiver<Option<RegistrationState>> {
        self.registration.clone()
    }

    /// The latest counters (refreshed at least ten times a second while SIP is busy).
    pub fn stats(&self) -> SipStats {
        *self.stats.borrow()
    }

    /// Stops taking new calls: OPTIONS probes and new INVITEs get 503 from now on, so a load
    /// balancer (Kamailio's dispatcher) takes this node out; calls in progress go on.
    pub fn drain(&self) {
        let _ = self.commands.send(Command::Drain);
    }

    pub fn shutdown(&self) {
        let _ = self.commands.send(Command::Shutdown);
    }
}

/// Resolves a SIP URI's host and port (default 5060) and transport parameter.
pub async fn resolve(uri: &str) -> Result<Peer, SipError> {
    let u = Uri::parse(uri).ok_or_else(|| SipError::BadUri(uri.to_string()))?;
    let port = u.port.unwrap_or(5060);
    let host = u
        .host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let addr = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|_| SipError::Resolve(uri.to_string()))?
        .next()
        .ok_or_else(|| SipError::Resolve(uri.to_string()))?;
    let transport = match u.params.get("transport") {
        Some(t) if t.eq_ignore_ascii_case("tcp") => Transport::Tcp,
        _ => Transport::Udp,
    };
    Ok(Peer { transport, addr })
}

enum TcpIn {
    Opened(SocketAddr, mpsc::Sender<Vec<u8>>),
    Message(SocketAddr, Vec<u8>),
    Closed(SocketAddr),
}

/// Messages queued towards one TCP peer. A peer that reads nothing while we write fills it
/// and is disconnected, instead of growing our memory.
const TCP_OUT_QUEUE: usize = 256;
/// Framed messages from all TCP connections waiting for the endpoint. Full, the readers
/// wait: TCP's own flow control then slows the senders, not our memory.
const TCP_IN_QUEUE: usize = 4096;
/// A message begun on a TCP connection must be complete this soon (a slow-drip sender
/// otherwise holds a connection and a buffer forever).
const TCP_MESSAGE_DEADLINE: Duration = Duration::from_secs(10);
/// More contained panics than this within [`PANIC_WINDOW`] means the endpoint itself is
/// broken: the service stops (and `serve` exits non-zero) rather than limp on.
const PANIC_LIMIT: u32 = 20;
const PANIC_WINDOW: Duration = Duration::from_secs(10);

/// The TCP limits of `[sip]`, and who holds connections now.
#[derive(Debug)]
struct TcpLimits {
    max_total: usize,
    max_per_source: usize,
    idle: Duration,
    trusted: TrustedSources,
    open: Mutex<TcpOpen>,
}

#[derive(Debug, Default)]
struct TcpOpen {
    total: usize,
    per_source: HashMap<SourceKey, usize>,
    refused: u64,
    cut: u64,
}

impl TcpLimits {
    /// Takes a slot for a new connection from `ip`, or says no.
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<TcpSlot> {
        let key = SourceKey::of(ip);
        let trusted = self.trusted.allows(ip);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let mine = open.per_source.get(&key).copied().unwrap_or(0);
        if open.total >= self.max_total || (!trusted && mine >= self.max_per_source) {
            open.refused += 1;
            return None;
        }
        open.total += 1;
        *open.per_source.entry(key).or_insert(0) += 1;
        Some(TcpSlot {
            limits: Arc::clone(self),
            key,
        })
    }

    fn count_cut(&self) {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).cut += 1;
    }

    fn snapshot(&self) -> (usize, u64, u64) {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        (open.total, open.refused, open.cut)
    }
}

/// One admitted connection; dropping it frees the slot.
#[derive(Debug)]
struct TcpSlot {
    limits: Arc<TcpLimits>,
    key: SourceKey,
}

impl Drop for TcpSlot {
    fn drop(&mut self) {
        let mut open = self.limits.open.lock().unwrap_or_else(|p| p.into_inner());
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.per_source.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.per_source.remove(&self.key);
            }
        }
    }
}

/// Binds UDP and TCP on `[sip] listen` and runs the endpoint until shutdown.
/// Returns the handle and the stream of inbound calls.
pub async fn start(
    config: &SipConfig,
) -> Result<
    (
        SipHandle,
        mpsc::Receiver<InboundCall>,
        tokio::task::JoinHandle<Result<(), SipError>>,
    ),
    SipError,
> {
    let listen = config
        .listen_addr()
        .ok_or_else(|| SipError::BadListen(config.listen.clone()))?;
    let udp = UdpSocket::bind(listen)
        .await
        .map_err(|source| SipError::Bind {
            addr: listen,
            proto: "UDP",
            source,
        })?;
    let bound = udp.local_addr().map_err(|source| SipError::Bind {
        addr: listen,
        proto: "UDP",
        source,
    })?;
    // TCP on the same port as UDP (port 0 in tests: the port UDP got).
    let tcp = TcpListener::bind(bound)
        .await
        .map_err(|source| SipError::Bind {
            addr: bound,
            proto: "TCP",
            source,
        })?;
    let advertised = match (&config.public_address, bound.ip().is_unspecified()) {
        (Some(ip), _) => SocketAddr::new(ip.parse().unwrap_or(bound.ip()), bound.port()),
        (None, true) => SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), bound.port()),
        (None, false) => bound,
    };
    let trusted = TrustedSources::new(config.trusted_nets());
    let tcp_limits = Arc::new(TcpLimits {
        max_total: config.tcp_max_connections.max(1),
        max_per_source: config.tcp_max_per_source.max(1),
        idle: Duration::from_secs(config.tcp_idle_secs.max(1)),
        trusted: trusted.clone(),
        open: Mutex::new(TcpOpen::default()),
    });
    let ep = Endpoint::new(EndpointConfig {
        local_addr: advertised,
        numbers: NumberSet::new(&config.numbers),
        trusted,
        rate_limit_per_source: config.rate_limit_per_source,
        user_agent: config.user_agent.clone(),
        timers: Timers::default(),
        // Fresh from the operating system on every start: tags and Call-IDs never repeat.
        seed: RngSeed(rand::random()),
    });
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let (incoming_tx, incoming_rx) = mpsc::channel(1024);
    let (reg_tx, reg_rx) = watch::channel(None);
    let (stats_tx, stats_rx) = watch::channel(SipStats::default());
    let handle = SipHandle {
        commands: cmd_tx.clone(),
        local_addr: bound,
        advertised,
        registration: reg_rx,
        stats: stats_rx,
    };
    if let Some(reg) = &config.register {
        let next_hop = resolve(&reg.registrar).await?;
        let _ = cmd_tx.send(Command::Register(Box::new(RegisterSpec {
            registrar: reg.registrar.clone(),
            aor: reg.aor.clone(),
            credentials: Credentials {
                username: reg.username.clone(),
                password: reg.password.clone(),
            },
            expires: reg.expires,
            next_hop,
        })));
    }
    info!(udp = %bound, tcp = %bound, "SIP listening");
    let shell = Shell {
        ep,
        udp,
        conns: HashMap::new(),
        legs: HashMap::new(),
        incoming: incoming_tx,
        commands: cmd_tx,
        registration: reg_tx,
        stats: stats_tx,
        stats_at: Instant::now(),
        tcp_limits,
        panics: PanicCounter::default(),
    };
    let task = tokio::spawn(shell.run(tcp, cmd_rx));
    Ok((handle, incoming_rx, task))
}

/// Contained panics, and whether they come too fast to go on.
#[derive(Debug, Default)]
struct PanicCounter {
    total: u64,
    window_start: Option<Instant>,
    in_window: u32,
}

impl PanicCounter {
    /// Counts one.
    fn count(&mut self, now: Instant) {
        self.total += 1;
        match self.window_start {
            Some(t) if now.saturating_duration_since(t) < PANIC_WINDOW => self.in_window += 1,
            _ => {
                self.window_start = Some(now);
                self.in_window = 1;
            }
        }
    }

    /// Whether more than [`PANIC_LIMIT`] came within [`PANIC_WINDOW`].
    fn exhausted(&self) -> bool {
        self.in_window > PANIC_LIMIT
    }
}

struct Shell {
    ep: Endpoint,
    udp: UdpSocket,
    conns: HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>,
    legs: HashMap<LegId, mpsc::UnboundedSender<LegEvent>>,
    incoming: mpsc::Sender<InboundCall>,
    commands: mpsc::UnboundedSender<Command>,
    registration: watch::Sender<Option<RegistrationState>>,
    stats: watch::Sender<SipStats>,
    stats_at: Instant,
    tcp_limits: Arc<TcpLimits>,
    panics: PanicCounter,
}

impl Shell {
    /// Runs until shutdown (`Ok`) or until the endpoint panics too often to be trusted (`Err`:
    /// `serve` then exits non-zero so the service manager restarts the engine).
    async fn run(
        mut self,
        tcp: TcpListener,
        mut commands: mpsc::UnboundedReceiver<Command>,
    ) -> Result<(), SipError> {
        let (tcp_tx, mut tcp_rx) = mpsc::channel::<TcpIn>(TCP_IN_QUEUE);
        let accept_tx = tcp_tx.clone();
        let limits = Arc::clone(&self.tcp_limits);
        let acceptor = tokio::spawn(async move {
            loop {
                match tcp.accept().await {
                    Ok((stream, addr)) => match limits.admit(addr.ip()) {
                        Some(slot) => {
                            let _ = stream.set_nodelay(true);
                            spawn_connection(stream, addr, slot, accept_tx.clone());
                        }
                        None => {
                            debug!(%addr, "TCP connection over the limits: closed");
                            drop(stream);
                        }
                    },
                    Err(e) => {
                        warn!(error = %e, "TCP accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        });
        let mut buf = vec![0u8; 65_536];
        let outcome = loop {
            self.flush(&tcp_tx);
            self.publish_stats(false);
            let deadline = self.ep.poll_timeout();
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
                    None => std::future::pending().await,
                }
            };
            let healthy = tokio::select! {
                r = self.udp.recv_from(&mut buf) => match r {
                    Ok((n, src)) => {
                        let mut ok = self.input(Peer::udp(src), &buf[..n]);
                        // Drain what else is already queued before flushing, to batch work.
                        for _ in 0..64 {
                            match self.udp.try_recv_from(&mut buf) {
                                Ok((n, src)) => ok &= self.input(Peer::udp(src), &buf[..n]),
                                Err(_) => break,
                            }
                        }
                        ok
                    }
                    Err(e) => {
                        debug!(error = %e, "UDP receive error");
                        true
                    }
                },
                Some(msg) = tcp_rx.recv() => match msg {
                    TcpIn::Opened(addr, tx) => { self.conns.insert(addr, tx); true }
                    TcpIn::Message(addr, bytes) => self.input(Peer::tcp(addr), &bytes),
                    TcpIn::Closed(addr) => { self.conns.remove(&addr); true }
                },
                Some(cmd) = commands.recv() => {
                    match self.guarded("command", |ep| Self::apply(ep, cmd)) {
                        Some(CommandOutcome::Shutdown) => break Ok(()),
                        Some(CommandOutcome::Placed(leg, reply)) => {
                            let (tx, rx) = mpsc::unbounded_channel();
                            self.legs.insert(leg, tx);
                            if reply.send((leg, rx)).is_err() {
                                self.guarded("hangup", |ep| ep.hangup(Instant::now(), leg));
                            }
                            true
                        }
                        Some(CommandOutcome::Done) => true,
                        None => !self.panics.exhausted(),
                    }
                }
                _ = sleep => {
                    let r = self.guarded("timer", |ep| ep.handle_timeout(Instant::now()));
                    r.is_some() || !self.panics.exhausted()
                }
            };
            if !healthy {
                break Err(SipError::Failed(format!(
                    "more than {PANIC_LIMIT} panics within {} s",
                    PANIC_WINDOW.as_secs()
                )));
            }
        };
        self.flush(&tcp_tx);
        self.publish_stats(true);
        acceptor.abort();
        match &outcome {
            Ok(()) => info!("SIP stopped"),
            Err(e) => error!(component = "sip", error = %e, "SIP failed"),
        }
        outcome
    }

    /// Runs `f` on the endpoint, containing a panic: it is logged and counted, and the
    /// endpoint goes on with the next message (None tells the caller it happened).
    fn guarded<R>(&mut self, what: &str, f: impl FnOnce(&mut Endpoint) -> R) -> Option<R> {
        match std::panic::catch_unwind(AssertUnwindSafe(|| f(&mut self.ep))) {
            Ok(r) => Some(r),
            Err(payload) => {
                let text = crate::panics::message(payload.as_ref());
                self.panics.count(Instant::now());
                error!(component = "sip", during = what, panic = %text, "panic contained");
                self.publish_stats(true);
                None
            }
        }
    }

    /// One message in. A panic while handling it is contained to it: the request gets a 500
    /// when it can be read, and the service goes on. False: too many panics, stop.
    fn input(&mut self, from: Peer, bytes: &[u8]) -> bool {
        if self
            .guarded("message", |ep| {
                // Lets this module's tests prove that a panic is contained to one message;
                // compiled only into its unit tests, never into the engine.
                #[cfg(test)]
                if bytes.starts_with(b"PANIC ") {
                    panic!("test-only panic trigger");
                }
                ep.handle_input(Instant::now(), from, bytes)
            })
            .is_some()
        {
            return true;
        }
        warn!(source = %from.addr, bytes = bytes.len(), "message that caused a panic answered 500");
        let _ = self.guarded("500", |ep| ep.answer_internal_error(from, bytes));
        !self.panics.exhausted()
    }

    fn publish_stats(&mut self, force: bool) {
        let now = Instant::now();
        if !force && now.saturating_duration_since(self.stats_at) < Duration::from_millis(100) {
            return;
        }
        self.stats_at = now;
        let (tcp_open, tcp_refused, tcp_cut) = self.tcp_limits.snapshot();
        let _ = self.stats.send(SipStats {
            endpoint: self.ep.stats(),
            rate_tracked_sources: self.ep.rate_tracked_sources(),
            contained_panics: self.panics.total,
            tcp_open,
            tcp_refused,
            tcp_cut,
        });
    }

    /// Applies a command to the endpoint (run under [`Shell::guarded`]).
    fn apply(ep: &mut Endpoint, cmd: Command) -> CommandOutcome {
        let now = Instant::now();
        match cmd {
            Command::Answer(leg, rtp) => {
                ep.answer(now, leg, rtp);
            }
            Command::Ring(leg) => ep.ring(now, leg),
            Command::Reject(leg, code) => ep.reject(now, leg, code),
            Command::Hangup(leg) => ep.hangup(now, leg),
            Command::Place(call, reply) => {
                return CommandOutcome::Placed(ep.place_call(now, *call), reply)
            }
            Command::Register(spec) => ep.register(now, *spec),
            Command::Drain => ep.drain(),
            Command::Shutdown => return CommandOutcome::Shutdown,
        }
        CommandOutcome::Done
    }

    /// Sends what the endpoint queued. Never waits: a UDP socket buffer that is full drops the
    /// datagram (SIP retransmits), and a TCP peer whose queue is full is disconnected.
    fn flush(&mut self, tcp_tx: &mpsc::Sender<TcpIn>) {
        while let Some(t) = self.ep.poll_transmit() {
            match t.to.transport {
                Transport::Udp => {
                    if let Err(e) = self.udp.try_send_to(&t.bytes, t.to.addr) {
                        debug!(to = %t.to.addr, error = %e, "UDP send failed");
                    }
                }
                Transport::Tcp => match self.conns.get(&t.to.addr) {
                    Some(conn) => {
                        if conn.try_send(t.bytes).is_err() {
                            warn!(peer = %t.to.addr, "TCP peer does not read what we send: disconnected");
                            self.tcp_limits.count_cut();
                            // Dropping the sender ends the connection task, which closes it.
                            self.conns.remove(&t.to.addr);
                        }
                    }
                    None => {
                        // No connection yet (outbound over TCP): open one and queue the bytes.
                        let (tx, rx) = mpsc::channel(TCP_OUT_QUEUE);
                        let _ = tx.try_send(t.bytes);
                        self.conns.insert(t.to.addr, tx);
                        spawn_outbound_connection(
                            t.to.addr,
                            rx,
                            tcp_tx.clone(),
                            Arc::clone(&self.tcp_limits),
                        );
                    }
                },
            }
        }
        while let Some(ev) = self.ep.poll_event() {
            self.dispatch(ev);
        }
    }

    fn dispatch(&mut self, ev: Event) {
        let (leg, lev) = match ev {
            Event::Incoming(call) => {
                let (tx, rx) = mpsc::unbounded_channel();
                let leg = call.leg;
                let inbound = InboundCall {
                    call,
                    leg: LegHandle {
                        id: leg,
                        commands: self.commands.clone(),
                    },
                    events: rx,
                };
                match self.incoming.try_send(inbound) {
                    Ok(()) => {
                        self.legs.insert(leg, tx);
                    }
                    Err(_) => {
                        // No flow can take it (overload or shutting down).
                        warn!(%leg, "no call flow available: 503");
                        self.guarded("reject", |ep| ep.reject(Instant::now(), leg, 503));
                    }
                }
                return;
            }
            Event::Confirmed { leg, media } => (leg, LegEvent::Confirmed { media }),
            Event::MediaUpdated { leg, media } => (leg, LegEvent::MediaUpdated { media }),
            Event::Dtmf {
                leg,
                digit,
                duration_ms,
            } => (leg, LegEvent::Dtmf { digit, duration_ms }),
            Event::Ringing { leg } => (leg, LegEvent::Ringing),
            Event::Answered { leg, media } => (leg, LegEvent::Answered { media }),
            Event::Ended { leg, reason } => {
                if let Some(tx) = self.legs.remove(&leg) {
                    let _ = tx.send(LegEvent::Ended { reason });
                }
                return;
            }
            Event::Registration(state) => {
                let _ = self.registration.send(Some(state));
                return;
            }
        };
        if let Some(tx) = self.legs.get(&leg) {
            let _ = tx.send(lev);
        }
    }
}

/// What a command did, for the shell to finish outside the endpoint.
enum CommandOutcome {
    Done,
    Placed(
        LegId,
        oneshot::Sender<(LegId, mpsc::UnboundedReceiver<LegEvent>)>,
    ),
    Shutdown,
}

fn spawn_connection(
    stream: TcpStream,
    addr: SocketAddr,
    slot: TcpSlot,
    to_shell: mpsc::Sender<TcpIn>,
) {
    let (tx, rx) = mpsc::channel(TCP_OUT_QUEUE);
    tokio::spawn(async move {
        if to_shell.send(TcpIn::Opened(addr, tx)).await.is_err() {
            return;
        }
        connection(stream, addr, rx, to_shell, slot).await;
    });
}

fn spawn_outbound_connection(
    addr: SocketAddr,
    rx: mpsc::Receiver<Vec<u8>>,
    to_shell: mpsc::Sender<TcpIn>,
    limits: Arc<TcpLimits>,
) {
    tokio::spawn(async move {
        // Our own connections count towards the total too (a trusted peer is not capped).
        let Some(slot) = limits.admit(addr.ip()) else {
            warn!(%addr, "no TCP connection slot for an outbound request");
            let _ = to_shell.send(TcpIn::Closed(addr)).await;
            return;
        };
        match TcpStream::connect(addr).await {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                connection(stream, addr, rx, to_shell, slot).await;
            }
            Err(e) => {
                warn!(%addr, error = %e, "TCP connect failed");
                let _ = to_shell.send(TcpIn::Closed(addr)).await;
            }
        }
    });
}

/// One TCP connection: frames messages by Content-Length (RFC 3261 §18.3) and writes what the
/// shell queues. A peer that breaks framing gets a 400 when its request can be read, then the
/// connection is closed: after a framing error nothing on it can be trusted. A connection
/// silent for `[sip] tcp_idle_secs`, or whose message is not complete within
/// [`TCP_MESSAGE_DEADLINE`], is closed too.
async fn connection(
    stream: TcpStream,
    addr: SocketAddr,
    mut outgoing: mpsc::Receiver<Vec<u8>>,
    to_shell: mpsc::Sender<TcpIn>,
    slot: TcpSlot,
) {
    let idle = slot.limits.idle;
    let (mut reader, mut writer) = stream.into_split();
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    let mut chunk = vec![0u8; 16_384];
    let mut last_activity = tokio::time::Instant::now();
    // When the first byte of a message still incomplete arrived.
    let mut partial_since: Option<tokio::time::Instant> = None;
    loop {
        let deadline = match partial_since {
            Some(t) => (t + TCP_MESSAGE_DEADLINE).min(last_activity + idle),
            None => last_activity + idle,
        };
        tokio::select! {
            r = reader.read(&mut chunk) => {
                let n = match r {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                last_activity = tokio::time::Instant::now();
                buf.extend_from_slice(&chunk[..n]);
                let mut broken = false;
                loop {
                    match frame_stream(&buf) {
                        Frame::Message { skip, len } => {
                            let msg = buf[skip..skip + len].to_vec();
                            buf.drain(..skip + len);
                            partial_since = None;
                            if to_shell.send(TcpIn::Message(addr, msg)).await.is_err() {
                                broken = true;
                                break;
                            }
                        }
                        Frame::NeedMore => break,
                        Frame::Invalid(reason) => {
                            debug!(%addr, %reason, "TCP framing error: closing");
                            // Let the endpoint answer 400 if it can read the request.
                            if !buf.is_empty() {
                                let _ = to_shell.send(TcpIn::Message(addr, std::mem::take(&mut buf))).await;
                            }
                            // Give the shell a moment to queue the 400, then close.
                            if let Ok(Some(bytes)) = tokio::time::timeout(Duration::from_millis(200), outgoing.recv()).await {
                                let _ = writer.write_all(&bytes).await;
                            }
                            broken = true;
                            break;
                        }
                    }
                }
                if broken {
                    break;
                }
                // Keep-alive CRLFs alone are not a message in progress.
                let pending = buf.iter().any(|&b| b != b'\r' && b != b'\n');
                if !pending {
                    buf.clear();
                    partial_since = None;
                } else if partial_since.is_none() {
                    partial_since = Some(last_activity);
                }
            }
            out = outgoing.recv() => match out {
                Some(bytes) => {
                    if writer.write_all(&bytes).await.is_err() {
                        break;
                    }
                    last_activity = tokio::time::Instant::now();
                }
                None => break,
            },
            _ = tokio::time::sleep_until(deadline) => {
                let why = if partial_since.is_some_and(|t| t + TCP_MESSAGE_DEADLINE <= deadline) {
                    "a message was not completed in time"
                } else {
                    "silent too long"
                };
                debug!(%addr, why, "TCP connection closed");
                slot.limits.count_cut();
                break;
            }
        }
    }
    let _ = to_shell.send(TcpIn::Closed(addr)).await;
    drop(slot);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(branch: &str) -> String {
        format!(
            "OPTIONS sip:611@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK{branch}\r\nMax-Forwards: 70\r\nFrom: <sip:t@127.0.0.1>;tag=1\r\nTo: <sip:611@127.0.0.1>\r\nCall-ID: {branch}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        )
    }

    async fn ask(sock: &UdpSocket, to: SocketAddr, text: &str) -> Option<String> {
        sock.send_to(text.as_bytes(), to).await.ok()?;
        let mut buf = vec![0u8; 4096];
        // A bound, not a pause: a contained panic writes its backtrace first, which takes
        // seconds on a loaded machine.
        let (n, _) = tokio::time::timeout(Duration::from_secs(15), sock.recv_from(&mut buf))
            .await
            .ok()?
            .ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    fn test_config() -> SipConfig {
        SipConfig {
            listen: "127.0.0.1:0".into(),
            ..SipConfig::default()
        }
    }

    #[tokio::test]
    async fn a_panic_is_contained_to_its_message_and_answered_500() {
        let (sip, _incoming, task) = start(&test_config()).await.unwrap();
        let to = sip.local_addr();
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let panicking = options("boom").replacen("OPTIONS ", "PANIC ", 1);
        let answer = ask(&sock, to, &panicking).await.expect("an answer");
        assert!(answer.starts_with("SIP/2.0 500 "), "{answer}");
        // The service goes on.
        let answer = ask(&sock, to, &options("after")).await.expect("an answer");
        assert!(answer.starts_with("SIP/2.0 200 "), "{answer}");
        assert_eq!(sip.stats().contained_panics, 1);
        assert!(!task.is_finished());
        sip.shutdown();
        assert!(matches!(task.await, Ok(Ok(()))));
    }

    #[tokio::test]
    async fn a_service_that_keeps_panicking_stops_with_an_error() {
        let (sip, _incoming, task) = start(&test_config()).await.unwrap();
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        for i in 0..=PANIC_LIMIT {
            let msg = options(&format!("p{i}")).replacen("OPTIONS ", "PANIC ", 1);
            sock.send_to(msg.as_bytes(), sip.local_addr())
                .await
                .unwrap();
        }
        let outcome = tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("the service stops");
        assert!(
            matches!(outcome, Ok(Err(SipError::Failed(_)))),
            "{outcome:?}"
        );
    }
}
