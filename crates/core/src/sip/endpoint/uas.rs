//! The answering side: requests in, server transactions, inbound dialogs (INVITE, ACK,
//! CANCEL, BYE, re-INVITE/UPDATE, INFO, OPTIONS), and the application's answer/ring/reject.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tracing::{info, info_span, warn};

use super::*;

impl Endpoint {
    pub(super) fn handle_request(&mut self, now: Instant, from: Peer, req: Request) {
        if let Err(Rejection { code, warning }) = validate_request(&req) {
            warn!(source = %from.addr, method = %req.method, code, reason = %warning, "invalid request refused");
            // Responses go back to the source address, so even a request whose Via we
            // cannot read can be told what is wrong.
            if req.method != Method::Ack && req.headers.count("Via") > 0 {
                let r = self.response(&req, from, code, Some(&warning));
                self.reply_stateless(from, r);
            }
            return;
        }
        let Some(via) = req.top_via() else {
            return;
        };
        let key = TxnKey::for_request(&req, &via);

        // Retransmissions and ACKs of an existing server transaction (from its peer only: a
        // stranger who copies the branch learns nothing and changes nothing).
        let from_txn_peer = self
            .server_txns
            .get(&key)
            .map(|t| self.is_dialog_peer(t.peer, from));
        if from_txn_peer == Some(false) {
            self.stats.strangers_in_dialog += 1;
            warn!(source = %from.addr, method = %req.method, "request matching another peer's transaction: dropped");
            return;
        }
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

    pub(super) fn new_server_txn(&mut self, key: &TxnKey, from: Peer, is_invite: bool) {
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
    pub(super) fn respond(&mut self, now: Instant, key: &TxnKey, resp: Response) {
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

    /// A request that matches no transaction. Only what opens or continues a dialog gets a
    /// server transaction; everything else is answered statelessly.
    pub(super) fn handle_new_request(
        &mut self,
        now: Instant,
        from: Peer,
        req: Request,
        key: TxnKey,
    ) {
        match &req.method {
            Method::Other(_) => {
                let mut r = self.response(&req, from, 501, None);
                r.headers.push("Allow", ALLOW);
                return self.reply_stateless(from, r);
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
                return self.reply_stateless(from, r);
            }
            _ => {}
        }
        match uri_scheme(&req.uri).as_deref() {
            Some("sip") | Some("sips") => {}
            _ => {
                let r = self.response(&req, from, 416, Some("only sip: and sips: URIs are served"));
                return self.reply_stateless(from, r);
            }
        }
        let unsupported = unsupported_requirements(&req);
        if !unsupported.is_empty() {
            let mut r = self.response(&req, from, 420, None);
            r.headers.push("Unsupported", unsupported.join(", "));
            return self.reply_stateless(from, r);
        }
        let to_tag = req.to().and_then(|t| t.tag().map(str::to_string));
        if let Some(tag) = to_tag {
            let call_id = req.call_id().unwrap_or_default().to_string();
            let leg = self.dialogs.get(&(call_id, tag)).copied();
            let peer = leg.and_then(|l| self.legs.get(&l)).map(|l| l.peer);
            return match (leg, peer) {
                (Some(leg), Some(peer)) if self.is_dialog_peer(peer, from) => {
                    self.new_server_txn(&key, from, req.method == Method::Invite);
                    self.handle_in_dialog(now, from, req, key, leg)
                }
                (Some(leg), _) => {
                    // Someone who knows the Call-ID and tags but is not the caller: answered
                    // exactly as a guess would be, so the dialog is neither hijacked nor confirmed.
                    self.stats.strangers_in_dialog += 1;
                    if let Some(l) = self.legs.get(&leg) {
                        warn!(parent: &l.span, source = %from.addr, method = %req.method, "in-dialog request from a stranger: 481");
                    }
                    let r = self.response(&req, from, 481, None);
                    self.reply_stateless(from, r)
                }
                (None, _) => {
                    let r = self.response(&req, from, 481, None);
                    self.reply_stateless(from, r)
                }
            };
        }
        match req.method {
            Method::Options if self.draining => {
                // A load balancer's probe (Kamailio's dispatcher): mark this node inactive.
                let mut r = self.response(&req, from, 503, Some("draining"));
                r.headers.push("Retry-After", "60");
                self.reply_stateless(from, r)
            }
            Method::Options => {
                let r = self.options_response(&req, from);
                self.reply_stateless(from, r)
            }
            Method::Invite => self.handle_invite(now, from, req, key),
            _ => {
                // BYE, INFO, UPDATE outside a dialog.
                let r = self.response(&req, from, 481, None);
                self.reply_stateless(from, r)
            }
        }
    }

    pub(super) fn options_response(&mut self, req: &Request, from: Peer) -> Response {
        let mut r = self.response(req, from, 200, None);
        r.headers.push("Allow", ALLOW);
        r.headers.push(
            "Accept",
            "application/sdp, application/dtmf-relay, application/dtmf",
        );
        r.headers.push("Supported", SUPPORTED);
        r
    }

    pub(super) fn handle_invite(&mut self, now: Instant, from: Peer, req: Request, key: TxnKey) {
        let call_id = req.call_id().unwrap_or_default().to_string();
        if !self.config.trusted.allows(from.addr.ip()) {
            warn!(call_id = %call_id, source = %from.addr, "INVITE from an untrusted source refused");
            let r = self.response(&req, from, 403, Some("source not trusted"));
            return self.reply_stateless(from, r);
        }
        let user = Uri::parse(&req.uri)
            .and_then(|u| u.user)
            .unwrap_or_default();
        let Some(number) = self.config.numbers.lookup(&user) else {
            info!(call_id = %call_id, source = %from.addr, number = %user, "INVITE for a number not served: 404");
            let r = self.response(&req, from, 404, Some("number not served here"));
            return self.reply_stateless(from, r);
        };
        if self.draining {
            // Before the proxy's next probe notices, a new call may still come: 503 makes the
            // proxy try another node (RFC 3261 16.7), and the caller never hears this one.
            info!(call_id = %call_id, source = %from.addr, "INVITE while draining: 503");
            let mut r = self.response(&req, from, 503, Some("draining"));
            r.headers.push("Retry-After", "60");
            return self.reply_stateless(from, r);
        }
        if self.legs.len() >= MAX_LEGS {
            self.stats.over_capacity += 1;
            warn!(call_id = %call_id, calls = self.legs.len(), "at capacity: 503");
            let mut r = self.response(&req, from, 503, Some("at capacity"));
            r.headers.push("Retry-After", "30");
            return self.reply_stateless(from, r);
        }
        if let Err((code, warning)) = check_invite_content(&req) {
            let mut r = self.response(&req, from, code, Some(&warning));
            if code == 415 {
                r.headers.push("Accept", "application/sdp");
            }
            return self.reply_stateless(from, r);
        }
        let session_interval = match session_expires(&req) {
            Some(se) if se < MIN_SE => {
                let mut r = self.response(&req, from, 422, None);
                r.headers.push("Min-SE", MIN_SE.to_string());
                return self.reply_stateless(from, r);
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
                    return self.reply_stateless(from, r);
                }
            }
        };

        self.new_server_txn(&key, from, true);
        let leg_id = LegId(self.next_leg);
        self.next_leg += 1;
        let local_tag = random_token(&mut self.rng, 10);
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
        // Only trusted sources reach here, so a P-Asserted-Identity is believed (RFC 3325):
        // behind a proxy it names the caller as the carrier saw them.
        let caller = asserted_caller(&req)
            .unwrap_or_else(|| Caller {
                display: from_na.as_ref().and_then(|f| f.display.clone()),
                uri: from_na.as_ref().map(|f| f.uri.clone()).unwrap_or_default(),
                user: from_na
                    .as_ref()
                    .and_then(|f| f.sip_uri())
                    .and_then(|u| u.user),
            })
            .normalised();
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

    pub(super) fn handle_cancel(&mut self, now: Instant, from: Peer, req: Request, key: TxnKey) {
        let invite_key = TxnKey {
            method: "INVITE".into(),
            ..key.clone()
        };
        let pending = self
            .server_txns
            .get(&invite_key)
            .filter(|t| t.state == ServerState::Proceeding)
            .and_then(|t| Some((t.leg?, t.peer)));
        let leg_id = match pending {
            Some((leg, peer)) if self.is_dialog_peer(peer, from) => leg,
            Some(_) => {
                self.stats.strangers_in_dialog += 1;
                warn!(source = %from.addr, "CANCEL from a stranger: 481");
                let r = self.response(&req, from, 481, None);
                return self.reply_stateless(from, r);
            }
            None => {
                let r = self.response(&req, from, 481, None);
                return self.reply_stateless(from, r);
            }
        };
        self.new_server_txn(&key, from, false);
        let ok = self.response(&req, from, 200, None);
        self.respond(now, &key, ok);
        if let Some((invite_key, r)) = self.response_to_offer(leg_id, 487) {
            self.respond(now, &invite_key, r);
        }
        self.end_leg(leg_id, EndReason::Cancelled);
    }

    pub(super) fn handle_ack(&mut self, now: Instant, from: Peer, req: Request) {
        let call_id = req.call_id().unwrap_or_default().to_string();
        let Some(tag) = req.to().and_then(|t| t.tag().map(str::to_string)) else {
            return;
        };
        let Some(&leg_id) = self.dialogs.get(&(call_id, tag)) else {
            return;
        };
        let cseq = req.cseq().map(|c| c.seq);
        let peer = match self.legs.get(&leg_id) {
            Some(leg) => leg.peer,
            None => return,
        };
        if !self.is_dialog_peer(peer, from) {
            self.stats.strangers_in_dialog += 1;
            return;
        }
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

    pub(super) fn handle_in_dialog(
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

    pub(super) fn handle_info(
        &mut self,
        now: Instant,
        from: Peer,
        req: Request,
        key: TxnKey,
        leg_id: LegId,
    ) {
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
    pub(super) fn handle_reoffer(
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
                return self.reply_stateless(from, r);
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

    pub(super) fn add_dialog_headers(
        &self,
        r: &mut Response,
        session: Option<Duration>,
        uac_timer: bool,
    ) {
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
    pub(super) fn send_2xx_until_ack(
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

    pub(super) fn arm_ok_timers(&mut self, now: Instant, leg_id: LegId) {
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

    // -- commands ---------------------------------------------------------------------------

    /// Sends 180 Ringing for an offered inbound leg.
    pub fn ring(&mut self, now: Instant, leg_id: LegId) {
        let Some((key, mut r)) = self.response_to_offer(leg_id, 180) else {
            return;
        };
        r.headers.push("Contact", self.contact());
        self.respond(now, &key, r);
    }

    /// A response to a leg's pending INVITE, with our dialog tag. A final one (≥ 200) takes the
    /// INVITE from the leg: nothing else may answer it after.
    pub(super) fn response_to_offer(
        &mut self,
        leg_id: LegId,
        code: u16,
    ) -> Option<(TxnKey, Response)> {
        let leg = self.legs.get_mut(&leg_id)?;
        let (key, req) = if code >= 200 {
            (leg.invite_txn.take()?, leg.invite_request.take()?)
        } else {
            (leg.invite_txn.clone()?, leg.invite_request.clone()?)
        };
        let tag = leg.local_tag.clone();
        let peer = leg.peer;
        let mut r = self.response(&req, peer, code, None);
        set_to_tag(&mut r, Some(&tag));
        Some((key, r))
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
        let Some((key, r)) = self.response_to_offer(leg_id, code) else {
            return;
        };
        self.respond(now, &key, r);
        self.end_leg(leg_id, EndReason::Refused(code));
    }
}

/// Puts our dialog tag on a response's To (replacing any tag `response` invented).
pub(super) fn set_to_tag(r: &mut Response, tag: Option<&str>) {
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
pub(super) fn unsupported_requirements(req: &Request) -> Vec<String> {
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
pub(super) fn check_invite_content(req: &Request) -> Result<(), (u16, String)> {
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

pub(super) fn session_expires(req: &Request) -> Option<u32> {
    req.headers
        .get("Session-Expires")
        .and_then(|v| v.split(';').next())
        .and_then(|v| v.trim().parse().ok())
}

pub(super) fn uac_supports_timer(req: &Request) -> bool {
    req.headers.has_token("Supported", "timer") || req.headers.has_token("Require", "timer")
}

/// `Signal=5\r\nDuration=160` (application/dtmf-relay).
pub(super) fn parse_dtmf_relay(body: &str) -> Option<(char, Option<u32>)> {
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

pub(super) fn parse_dtmf_digit(s: &str) -> Option<char> {
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

/// The caller as the first usable P-Asserted-Identity names them (a sip:/sips: URI with a user
/// part, or a tel: URI); `None` without one.
fn asserted_caller(req: &Request) -> Option<Caller> {
    req.headers
        .list("P-Asserted-Identity")
        .iter()
        .filter_map(|v| NameAddr::parse(v))
        .find_map(|na| {
            let user = match na.uri.get(..4) {
                Some(scheme) if scheme.eq_ignore_ascii_case("tel:") => {
                    let number = na.uri[4..].split(';').next().unwrap_or_default();
                    (!number.is_empty()).then(|| number.to_string())
                }
                _ => na.sip_uri().and_then(|u| u.user),
            }?;
            Some(Caller {
                display: na.display.clone(),
                uri: na.uri.clone(),
                user: Some(user),
            })
        })
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
