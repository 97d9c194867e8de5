//! Upstream registration with digest authentication, refreshed before it expires.

use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::super::digest::challenge_of;
use super::*;

impl Endpoint {
    // -- registration -----------------------------------------------------------------------

    /// Starts (or replaces) the upstream registration; it is refreshed before it expires.
    pub fn register(&mut self, now: Instant, spec: RegisterSpec) {
        self.registration = Some(Registration {
            spec,
            call_id: format!("{}@astreinte", random_token(&mut self.rng, 20)),
            local_tag: random_token(&mut self.rng, 10),
            cseq: 0,
            auth_attempts: 0,
            branch: None,
        });
        self.send_register(now, None);
    }

    pub(super) fn send_register(
        &mut self,
        now: Instant,
        authorization: Option<(&'static str, String)>,
    ) {
        let contact = self.contact();
        let Some(reg) = self.registration.as_mut() else {
            return;
        };
        reg.cseq += 1;
        let branch = new_branch(&mut self.rng);
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

    pub(super) fn registration_response(&mut self, now: Instant, resp: Response) {
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
                    &random_token(&mut self.rng, 12),
                );
                self.send_register(now, Some((header, auth)));
                return;
            }
        }
        self.registration_failed(now, Some(code));
    }

    pub(super) fn registration_failed(&mut self, now: Instant, code: Option<u16>) {
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
}
