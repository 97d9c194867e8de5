//! The calling side: client transactions, responses to what we sent, BYE and CANCEL,
//! outbound calls (pages) with digest authentication.

use std::time::{Duration, Instant};

use tracing::{info, info_span};

use super::super::digest::challenge_of;
use super::*;

impl Endpoint {
    // -- responses (client side) --------------------------------------------------------------

    pub(super) fn handle_response(&mut self, now: Instant, from: Peer, resp: Response) {
        let (Some(via), Some(cseq)) = (resp.top_via(), resp.cseq()) else {
            return;
        };
        let Some(branch) = via.branch().map(str::to_string) else {
            return;
        };
        let txn_id = format!("{branch}|{}", cseq.method);
        // A response is only taken from where the request went: a stranger who guesses a
        // branch cannot answer, ring or refuse our calls.
        if let Some(txn) = self.client_txns.get(&txn_id) {
            if !self.is_dialog_peer(txn.peer, from) {
                self.stats.strangers_in_dialog += 1;
                debug!(source = %from.addr, "response from a stranger to our request: dropped");
                return;
            }
        }
        let Some(txn) = self.client_txns.get_mut(&txn_id) else {
            // A retransmitted 2xx to our INVITE after the transaction ended: ACK it again.
            if cseq.method == "INVITE" && (200..300).contains(&resp.code) {
                self.reack(from, &resp);
            }
            return;
        };
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
                    self.reack(from, &resp);
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
                let invite = self.client_txns.remove(&txn_id).and_then(|t| t.invite);
                if let (ClientPurpose::Invite(leg), Some(invite)) = (purpose, invite) {
                    if !self.legs.contains_key(&leg) {
                        // Answered after we hung up (our CANCEL lost the race): the dialog
                        // exists at the far end, so ACK it and BYE it (RFC 3261 §15).
                        self.ack_and_bye_stray_2xx(now, peer, &invite, &resp);
                        return;
                    }
                }
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

    /// A final response to our request that broke the grammar (see `handle_unparseable`): its
    /// transaction ends as failed, an INVITE's non-2xx is ACKed from the lines that could be
    /// read, and the call ends with the reason. Its challenge, if any, is never answered.
    pub(super) fn abandon_refused_final(
        &mut self,
        now: Instant,
        from: Peer,
        headers: &message::Headers,
        reason: &str,
    ) {
        let (Some(via), Some(cseq)) = (headers.top_via(), headers.cseq()) else {
            return;
        };
        let Some(branch) = via.branch() else {
            return;
        };
        let txn_id = format!("{branch}|{}", cseq.method);
        let Some(txn) = self.client_txns.get(&txn_id) else {
            return;
        };
        if !self.is_dialog_peer(txn.peer, from)
            || matches!(txn.state, ClientState::Completed | ClientState::Terminated)
        {
            return;
        }
        let (purpose, peer) = (txn.purpose, txn.peer);
        let ack = match (&txn.invite, headers.get("To")) {
            (Some(invite), Some(_)) => {
                let readable = Response {
                    version: "SIP/2.0".into(),
                    code: 400,
                    reason: String::new(),
                    headers: headers.clone(),
                    body: Vec::new(),
                };
                Some(build_non2xx_ack(invite, &readable))
            }
            _ => None,
        };
        self.client_txns.remove(&txn_id);
        if let Some(ack) = ack {
            self.send(peer, ack);
        }
        match purpose {
            ClientPurpose::Invite(leg) => {
                self.end_leg(leg, EndReason::BadResponse(reason.to_string()));
            }
            ClientPurpose::Register => self.registration_failed(now, None),
            ClientPurpose::Bye | ClientPurpose::Cancel => {}
        }
    }

    pub(super) fn reack(&mut self, from: Peer, resp: &Response) {
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
            if !self.is_dialog_peer(leg.peer, from) {
                return;
            }
            if let Some(ack) = leg.ack_for_2xx.clone() {
                let peer = leg.peer;
                self.send(peer, ack);
            }
        }
    }

    pub(super) fn start_client_txn(
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

    pub(super) fn send_bye(&mut self, now: Instant, leg_id: LegId) {
        let Some(leg) = self.legs.get_mut(&leg_id) else {
            return;
        };
        leg.local_cseq += 1;
        let bye = self.in_dialog_request(leg_id, Method::Bye);
        if let Some((peer, bye)) = bye {
            self.start_client_txn(now, peer, bye, ClientPurpose::Bye);
        }
    }

    pub(super) fn in_dialog_request(
        &mut self,
        leg_id: LegId,
        method: Method,
    ) -> Option<(Peer, Request)> {
        let branch = new_branch(&mut self.rng);
        let leg = self.legs.get(&leg_id)?;
        let mut req = Request::new(method.clone(), leg.remote_target.clone());
        req.headers
            .push("Via", self.via(leg.peer.transport, &branch));
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

    pub(super) fn end_leg(&mut self, leg_id: LegId, reason: EndReason) {
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
        let call_id = format!("{}@astreinte", random_token(&mut self.rng, 20));
        let local_tag = random_token(&mut self.rng, 10);
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

    pub(super) fn send_invite(
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

    pub(super) fn outbound_final(&mut self, now: Instant, leg_id: LegId, resp: Response) {
        let code = resp.code;
        let Some(leg) = self.legs.get_mut(&leg_id) else {
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
                let auth = ch.authorize(
                    &cred,
                    "INVITE",
                    &leg.remote_target,
                    &random_token(&mut self.rng, 12),
                );
                self.send_invite(now, leg_id, Some((header, auth)));
                return;
            }
        }
        self.end_leg(leg_id, EndReason::Rejected(code));
    }

    /// ACK then BYE for a 2xx whose leg we already ended.
    pub(super) fn ack_and_bye_stray_2xx(
        &mut self,
        now: Instant,
        peer: Peer,
        invite: &Request,
        ok: &Response,
    ) {
        let target = ok
            .headers
            .list("Contact")
            .first()
            .and_then(|c| header_uri(c))
            .unwrap_or_else(|| invite.uri.clone());
        let seq = invite.cseq().map(|c| c.seq).unwrap_or(1);
        let mut requests = Vec::with_capacity(2);
        for (method, cseq) in [(Method::Ack, seq), (Method::Bye, seq + 1)] {
            let mut r = Request::new(method.clone(), target.clone());
            let branch = new_branch(&mut self.rng);
            r.headers.push("Via", self.via(peer.transport, &branch));
            r.headers.push("Max-Forwards", "70");
            for route in ok.headers.list("Record-Route").iter().rev() {
                r.headers.push("Route", route.clone());
            }
            for name in ["From", "Call-ID"] {
                if let Some(v) = invite.headers.get(name) {
                    r.headers.push(name, v);
                }
            }
            if let Some(to) = ok.headers.get("To") {
                r.headers.push("To", to);
            }
            r.headers.push("CSeq", format!("{cseq} {method}"));
            requests.push(r);
        }
        let mut requests = requests.into_iter();
        if let Some(ack) = requests.next() {
            self.send(peer, ack.to_bytes());
        }
        if let Some(bye) = requests.next() {
            self.start_client_txn(now, peer, bye, ClientPurpose::Bye);
        }
    }
}

/// ACK for a non-2xx final response (RFC 3261 §17.1.1.3).
pub(super) fn build_non2xx_ack(invite: &Request, resp: &Response) -> Vec<u8> {
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
pub(super) fn build_cancel(invite: &Request) -> Request {
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
