//! The tokio shell around [`Endpoint`]: UDP and TCP sockets on one address, the timer, and
//! channels to the call flows. One task owns the endpoint, so the state machine needs no lock.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, info, warn};

use super::endpoint::{
    Credentials, EndReason, Endpoint, EndpointConfig, Event, IncomingCall, LegId, OutboundCall,
    Peer, RegisterSpec, RegistrationState, Transport,
};
use super::message::{frame_stream, Frame, Uri};
use super::routing::{NumberSet, TrustedSources};
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
    Opened(SocketAddr, mpsc::UnboundedSender<Vec<u8>>),
    Message(SocketAddr, Vec<u8>),
    Closed(SocketAddr),
}

/// Binds UDP and TCP on `[sip] listen` and runs the endpoint until shutdown.
/// Returns the handle and the stream of inbound calls.
pub async fn start(
    config: &SipConfig,
) -> Result<
    (
        SipHandle,
        mpsc::Receiver<InboundCall>,
        tokio::task::JoinHandle<()>,
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
    let ep = Endpoint::new(EndpointConfig {
        local_addr: advertised,
        numbers: NumberSet::new(&config.numbers),
        trusted: TrustedSources::new(config.trusted_nets()),
        rate_limit_per_source: config.rate_limit_per_source,
        user_agent: config.user_agent.clone(),
        timers: Timers::default(),
    });
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let (incoming_tx, incoming_rx) = mpsc::channel(1024);
    let (reg_tx, reg_rx) = watch::channel(None);
    let handle = SipHandle {
        commands: cmd_tx.clone(),
        local_addr: bound,
        advertised,
        registration: reg_rx,
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
    };
    let task = tokio::spawn(shell.run(tcp, cmd_rx));
    Ok((handle, incoming_rx, task))
}

struct Shell {
    ep: Endpoint,
    udp: UdpSocket,
    conns: HashMap<SocketAddr, mpsc::UnboundedSender<Vec<u8>>>,
    legs: HashMap<LegId, mpsc::UnboundedSender<LegEvent>>,
    incoming: mpsc::Sender<InboundCall>,
    commands: mpsc::UnboundedSender<Command>,
    registration: watch::Sender<Option<RegistrationState>>,
}

impl Shell {
    async fn run(mut self, tcp: TcpListener, mut commands: mpsc::UnboundedReceiver<Command>) {
        let (tcp_tx, mut tcp_rx) = mpsc::unbounded_channel::<TcpIn>();
        let accept_tx = tcp_tx.clone();
        let acceptor = tokio::spawn(async move {
            loop {
                match tcp.accept().await {
                    Ok((stream, addr)) => {
                        let _ = stream.set_nodelay(true);
                        spawn_connection(stream, addr, accept_tx.clone());
                    }
                    Err(e) => {
                        warn!(error = %e, "TCP accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                }
            }
        });
        let mut buf = vec![0u8; 65_536];
        loop {
            self.flush(&tcp_tx).await;
            let deadline = self.ep.poll_timeout();
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = self.udp.recv_from(&mut buf) => match r {
                    Ok((n, src)) => {
                        self.ep.handle_input(Instant::now(), Peer::udp(src), &buf[..n]);
                        // Drain what else is already queued before flushing, to batch work.
                        for _ in 0..64 {
                            match self.udp.try_recv_from(&mut buf) {
                                Ok((n, src)) => self.ep.handle_input(Instant::now(), Peer::udp(src), &buf[..n]),
                                Err(_) => break,
                            }
                        }
                    }
                    Err(e) => debug!(error = %e, "UDP receive error"),
                },
                Some(msg) = tcp_rx.recv() => match msg {
                    TcpIn::Opened(addr, tx) => { self.conns.insert(addr, tx); }
                    TcpIn::Message(addr, bytes) => self.ep.handle_input(Instant::now(), Peer::tcp(addr), &bytes),
                    TcpIn::Closed(addr) => { self.conns.remove(&addr); }
                },
                Some(cmd) = commands.recv() => {
                    if !self.command(cmd) {
                        break;
                    }
                }
                _ = sleep => self.ep.handle_timeout(Instant::now()),
            }
        }
        self.flush(&tcp_tx).await;
        acceptor.abort();
        info!("SIP stopped");
    }

    /// Applies a command; false means shut down.
    fn command(&mut self, cmd: Command) -> bool {
        let now = Instant::now();
        match cmd {
            Command::Answer(leg, rtp) => {
                self.ep.answer(now, leg, rtp);
            }
            Command::Ring(leg) => self.ep.ring(now, leg),
            Command::Reject(leg, code) => self.ep.reject(now, leg, code),
            Command::Hangup(leg) => self.ep.hangup(now, leg),
            Command::Place(call, reply) => {
                let leg = self.ep.place_call(now, *call);
                let (tx, rx) = mpsc::unbounded_channel();
                self.legs.insert(leg, tx);
                if reply.send((leg, rx)).is_err() {
                    self.ep.hangup(now, leg);
                }
            }
            Command::Register(spec) => self.ep.register(now, *spec),
            Command::Shutdown => return false,
        }
        true
    }

    async fn flush(&mut self, tcp_tx: &mpsc::UnboundedSender<TcpIn>) {
        while let Some(t) = self.ep.poll_transmit() {
            match t.to.transport {
                Transport::Udp => {
                    if let Err(e) = self.udp.send_to(&t.bytes, t.to.addr).await {
                        debug!(to = %t.to.addr, error = %e, "UDP send failed");
                    }
                }
                Transport::Tcp => match self.conns.get(&t.to.addr) {
                    Some(conn) => {
                        let _ = conn.send(t.bytes);
                    }
                    None => {
                        // No connection yet (outbound over TCP): open one and queue the bytes.
                        let (tx, rx) = mpsc::unbounded_channel();
                        let _ = tx.send(t.bytes);
                        self.conns.insert(t.to.addr, tx);
                        spawn_outbound_connection(t.to.addr, rx, tcp_tx.clone());
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
                        self.ep.reject(Instant::now(), leg, 503);
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

fn spawn_connection(stream: TcpStream, addr: SocketAddr, to_shell: mpsc::UnboundedSender<TcpIn>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let _ = to_shell.send(TcpIn::Opened(addr, tx));
    tokio::spawn(connection(stream, addr, rx, to_shell));
}

fn spawn_outbound_connection(
    addr: SocketAddr,
    rx: mpsc::UnboundedReceiver<Vec<u8>>,
    to_shell: mpsc::UnboundedSender<TcpIn>,
) {
    tokio::spawn(async move {
        match TcpStream::connect(addr).await {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                connection(stream, addr, rx, to_shell).await;
            }
            Err(e) => {
                warn!(%addr, error = %e, "TCP connect failed");
                let _ = to_shell.send(TcpIn::Closed(addr));
            }
        }
    });
}

/// One TCP connection: frames messages by Content-Length (RFC 3261 §18.3) and writes what the
/// shell queues. A peer that breaks framing gets a 400 when its request can be read, then the
/// connection is closed: after a framing error nothing on it can be trusted.
async fn connection(
    stream: TcpStream,
    addr: SocketAddr,
    mut outgoing: mpsc::UnboundedReceiver<Vec<u8>>,
    to_shell: mpsc::UnboundedSender<TcpIn>,
) {
    let (mut reader, mut writer) = stream.into_split();
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    let mut chunk = vec![0u8; 16_384];
    loop {
        tokio::select! {
            r = reader.read(&mut chunk) => {
                let n = match r {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                buf.extend_from_slice(&chunk[..n]);
                let mut broken = false;
                loop {
                    match frame_stream(&buf) {
                        Frame::Message { skip, len } => {
                            let msg = buf[skip..skip + len].to_vec();
                            buf.drain(..skip + len);
                            let _ = to_shell.send(TcpIn::Message(addr, msg));
                        }
                        Frame::NeedMore => break,
                        Frame::Invalid(reason) => {
                            debug!(%addr, %reason, "TCP framing error: closing");
                            // Let the endpoint answer 400 if it can read the request.
                            if !buf.is_empty() {
                                let _ = to_shell.send(TcpIn::Message(addr, std::mem::take(&mut buf)));
                            }
                            broken = true;
                            break;
                        }
                    }
                }
                if broken {
                    // Give the shell a moment to queue the 400, then close.
                    if let Ok(Some(bytes)) = tokio::time::timeout(std::time::Duration::from_millis(200), outgoing.recv()).await {
                        let _ = writer.write_all(&bytes).await;
                    }
                    break;
                }
            }
            out = outgoing.recv() => match out {
                Some(bytes) => {
                    if writer.write_all(&bytes).await.is_err() {
                        break;
                    }
                }
                None => break,
            },
        }
    }
    let _ = to_shell.send(TcpIn::Closed(addr));
}
