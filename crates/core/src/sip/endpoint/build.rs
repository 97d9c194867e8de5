//! The headers every message we send carries: Via, Contact, and responses built from requests.

use super::*;

impl Endpoint {
    // -- message construction ---------------------------------------------------------------

    pub(super) fn via(&self, transport: Transport, branch: &str) -> String {
        format!(
            "SIP/2.0/{} {};branch={branch};rport",
            transport.via_name(),
            self.config.local_addr
        )
    }

    pub(super) fn contact(&self) -> String {
        format!("<sip:astreinte@{}>", self.config.local_addr)
    }

    /// A response to `req`: Via (with received/rport), From, To, Call-ID, CSeq copied.
    pub(super) fn response(
        &mut self,
        req: &Request,
        from: Peer,
        code: u16,
        warning: Option<&str>,
    ) -> Response {
        self.build_response_from_headers(&req.headers, from, code, warning)
    }

    pub(super) fn build_response_from_headers(
        &mut self,
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
                    r.headers.set_in_place(
                        "To",
                        format!("{to};tag={}", random_token(&mut self.rng, 10)),
                    );
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
