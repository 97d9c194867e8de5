//! The HTTP server on `[http] listen`: signed acknowledgement links, `/healthz`, `/readyz` and
//! Prometheus `/metrics`. The admin console (a later issue) adds its routes to [`routes`] and
//! its shared state to [`HttpState`].
//!
//! - [`ack`]: signing and checking the links written in pages;
//! - [`ack_routes`]: the pages behind a link (a GET shows, only a POST acknowledges);
//! - [`health`]: liveness, readiness and what the engine reports about its parts;
//! - [`metrics`]: the Prometheus exposition;
//! - [`server`]: the shared state, the router and the server's life.

pub mod ack;
pub mod ack_routes;
pub mod conn;
pub mod health;
pub mod metrics;
mod page;
pub mod server;

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

use serde::Deserialize;

use crate::config_issue::{ConfigIssue, KeySeg};

pub use ack::{AckLinks, LinkError, WeakKey};
pub use conn::{serve_admitted, ConnectionTimeouts, HttpAdmission};
pub use health::{ComponentHealth, EngineProbe};
pub use metrics::{ChannelCounters, EngineMetrics};
pub use server::{router, routes, serve, serve_app, AckHook, HttpState};

/// Longest validity of an acknowledgement link that config accepts: 30 days.
const MAX_ACK_LINK_HOURS: u32 = 720;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// "127.0.0.1:8080"; absent = no HTTP server.
    #[serde(default)]
    pub listen: Option<String>,
    /// Base of the links written in pages ("https://astreinte.example.net"); default
    /// "http://<listen>".
    #[serde(default)]
    pub public_url: Option<String>,
    /// A link older than this is refused (410).
    #[serde(default = "default_ack_link_hours")]
    pub ack_link_hours: u32,
    /// Reverse proxies (CIDR) in front of the console whose `X-Forwarded-For` is believed, so
    /// login limits and the audit log see the person's address, not the proxy's. Empty: the
    /// header is ignored (anyone could write it).
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Most connections held at once (the open-file budget may lower it; see `limits`).
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Most connections one address (an IPv6 /64) holds; behind a trusted proxy, most requests
    /// in progress per forwarded client.
    #[serde(default = "default_max_connections_per_source")]
    pub max_connections_per_source: usize,
    /// A request head must arrive within this many seconds of the connection or of the last
    /// answer (slowloris).
    #[serde(default = "default_header_timeout_secs")]
    pub header_timeout_secs: u64,
    /// A connection with no request running and no byte moving is closed after this long.
    #[serde(default = "default_idle_timeout_secs")]
    pub idle_timeout_secs: u64,
    /// A request, its body included, must be answered within this many seconds (408).
    #[serde(default = "default_request_timeout_secs")]
    pub request_timeout_secs: u64,
    /// Who may read `/metrics` (addresses or networks; behind a trusted proxy, the forwarded
    /// client). Default: this host only.
    #[serde(default = "default_metrics_allow")]
    pub metrics_allow: Vec<String>,
}

fn default_metrics_allow() -> Vec<String> {
    vec!["127.0.0.0/8".into(), "::1/128".into()]
}

fn default_ack_link_hours() -> u32 {
    72
}
fn default_max_connections() -> usize {
    1024
}
fn default_max_connections_per_source() -> usize {
    32
}
fn default_header_timeout_secs() -> u64 {
    10
}
fn default_idle_timeout_secs() -> u64 {
    30
}
fn default_request_timeout_secs() -> u64 {
    120
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: None,
            public_url: None,
            ack_link_hours: default_ack_link_hours(),
            trusted_proxies: Vec::new(),
            max_connections: default_max_connections(),
            max_connections_per_source: default_max_connections_per_source(),
            header_timeout_secs: default_header_timeout_secs(),
            idle_timeout_secs: default_idle_timeout_secs(),
            request_timeout_secs: default_request_timeout_secs(),
            metrics_allow: default_metrics_allow(),
        }
    }
}

impl HttpConfig {
    pub fn validate(&self, issues: &mut Vec<ConfigIssue>) {
        let listen = self
            .listen
            .as_deref()
            .map(|l| (l, l.trim().parse::<SocketAddr>()));
        if let Some((text, Err(_))) = &listen {
            issues.push(ConfigIssue::new(
                vec![KeySeg::Key("http"), KeySeg::Key("listen")],
                format!("\"{text}\" is not an address and port to listen on"),
                "write an IP address and a port such as \"127.0.0.1:8080\" or \"[::]:8080\"",
            ));
        }
        match &self.public_url {
            Some(url) => {
                if let Err(why) = check_public_url(url) {
                    issues.push(ConfigIssue::new(
                        vec![KeySeg::Key("http"), KeySeg::Key("public_url")],
                        format!("\"{url}\" cannot be the base of acknowledgement links: {why}"),
                        "write the address people's phones reach this server at, such as \
                         \"https://astreinte.example.net\" (no ?query or #fragment)",
                    ));
                }
            }
            None => {
                // Links derived from 0.0.0.0 or [::] would lead nowhere from a phone.
                if let Some((_, Ok(addr))) = &listen {
                    if addr.ip().is_unspecified() {
                        issues.push(ConfigIssue::new(
                            vec![KeySeg::Key("http"), KeySeg::Key("public_url")],
                            format!(
                                "the server listens on every address ({addr}), so the \
                                 acknowledgement links cannot be derived from http.listen"
                            ),
                            "set http.public_url to the address people reach this server at, \
                             such as \"https://astreinte.example.net\"",
                        ));
                    }
                }
            }
        }
        let networks = [
            ("trusted_proxies", &self.trusted_proxies, "proxy"),
            ("metrics_allow", &self.metrics_allow, "scraper"),
        ];
        for (key, list, what) in networks {
            for (i, p) in list.iter().enumerate() {
                if parse_net(p).is_none() {
                    issues.push(ConfigIssue::new(
                        vec![KeySeg::Key("http"), KeySeg::Key(key), KeySeg::Index(i)],
                        format!("\"{p}\" is not an address or a CIDR network"),
                        format!(
                            "write the {what}'s network such as \"10.0.0.0/8\", or one host as \"192.0.2.7\""
                        ),
                    ));
                }
            }
        }
        let counts = [
            ("max_connections", self.max_connections, 1_000_000),
            (
                "max_connections_per_source",
                self.max_connections_per_source,
                self.max_connections.max(1),
            ),
        ];
        for (name, value, most) in counts {
            if !(1..=most).contains(&value) {
                issues.push(ConfigIssue::new(
                    vec![KeySeg::Key("http"), KeySeg::Key(name)],
                    format!("{value} is not a usable number of connections"),
                    format!("write a number from 1 to {most}"),
                ));
            }
        }
        let times = [
            ("header_timeout_secs", self.header_timeout_secs, 300, 10),
            ("idle_timeout_secs", self.idle_timeout_secs, 3_600, 30),
            (
                "request_timeout_secs",
                self.request_timeout_secs,
                3_600,
                120,
            ),
        ];
        for (name, value, most, example) in times {
            if !(1..=most).contains(&value) {
                issues.push(ConfigIssue::new(
                    vec![KeySeg::Key("http"), KeySeg::Key(name)],
                    format!("{value} seconds is not a usable timeout"),
                    format!("write a number of seconds from 1 to {most}, such as {example}"),
                ));
            }
        }
        if !(1..=MAX_ACK_LINK_HOURS).contains(&self.ack_link_hours) {
            issues.push(ConfigIssue::new(
                vec![KeySeg::Key("http"), KeySeg::Key("ack_link_hours")],
                format!(
                    "{} hours is not a usable lifetime for an acknowledgement link",
                    self.ack_link_hours
                ),
                format!("write a number of hours from 1 to {MAX_ACK_LINK_HOURS}, such as 72"),
            ));
        }
    }

    /// The base of the links written in pages, without a trailing '/': `public_url` when set,
    /// else derived from `listen`; `None` without either.
    pub fn public_url(&self) -> Option<String> {
        match (&self.public_url, &self.listen) {
            (Some(url), _) => Some(url.trim().trim_end_matches('/').to_string()),
            (None, Some(listen)) => Some(format!("http://{}", listen.trim())),
            (None, None) => None,
        }
    }

    /// `trusted_proxies` as networks (a bare address is a /32 or /128); invalid entries, which
    /// `validate` reports, are left out.
    pub fn trusted_proxy_nets(&self) -> Vec<IpNet> {
        self.trusted_proxies
            .iter()
            .filter_map(|p| parse_net(p))
            .collect()
    }

    /// `metrics_allow`, parsed (validation named the bad entries).
    pub fn metrics_allow_nets(&self) -> Vec<IpNet> {
        self.metrics_allow
            .iter()
            .filter_map(|p| parse_net(p))
            .collect()
    }

    /// The connection timeouts, as the server applies them.
    pub fn timeouts(&self) -> conn::ConnectionTimeouts {
        conn::ConnectionTimeouts {
            header: std::time::Duration::from_secs(self.header_timeout_secs.max(1)),
            idle: std::time::Duration::from_secs(self.idle_timeout_secs.max(1)),
            request: std::time::Duration::from_secs(self.request_timeout_secs.max(1)),
        }
    }

    /// How long an acknowledgement link stays valid.
    pub fn ack_link_ttl(&self) -> chrono::Duration {
        chrono::Duration::hours(i64::from(self.ack_link_hours))
    }
}

/// The address of the person behind a request: the TCP peer, unless that peer is a trusted
/// proxy, in which case `X-Forwarded-For` is read from the right (each proxy appends the address
/// it saw) and the first address that is not a trusted proxy is the client. Whatever a client
/// wrote further left is never believed; an unreadable entry stops the walk.
pub fn client_ip(
    peer: Option<IpAddr>,
    headers: &axum::http::HeaderMap,
    trusted: &[IpNet],
) -> Option<IpAddr> {
    let is_proxy = |ip: &IpAddr| trusted.iter().any(|n| n.contains(&canonical(*ip)));
    let mut client = peer?;
    if !is_proxy(&client) {
        return Some(client);
    }
    let hops = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect::<Vec<_>>();
    for hop in hops.iter().rev() {
        let Some(ip) = parse_hop(hop) else { break };
        client = ip;
        if !is_proxy(&ip) {
            break;
        }
    }
    Some(client)
}

/// One X-Forwarded-For entry: "192.0.2.1", "2001:db8::1", "[2001:db8::1]:443", "192.0.2.1:80".
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .map(canonical)
}

/// "10.0.0.0/8", "192.0.2.7" or "::1".
fn parse_net(p: &str) -> Option<IpNet> {
    let p = p.trim();
    p.parse::<IpNet>()
        .ok()
        .or_else(|| p.parse::<IpAddr>().ok().map(IpNet::from))
}

pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// Whether `url` is an http(s) URL with a host and no query or fragment; the reason if not.
fn check_public_url(url: &str) -> Result<(), &'static str> {
    let lower = url.to_ascii_lowercase();
    let scheme_len = if lower.starts_with("https://") {
        "https://".len()
    } else if lower.starts_with("http://") {
        "http://".len()
    } else {
        return Err("it does not start with http:// or https://");
    };
    let rest = url.get(scheme_len..).unwrap_or("");
    if url.contains(['?', '#']) {
        return Err("it has a query or a fragment");
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("it contains spaces or control characters");
    }
    let authority = rest.split('/').next().unwrap_or("");
    if authority.contains('@') {
        return Err("it carries a user name or password");
    }
    let (host, port) = split_host_port(authority);
    if host.is_empty() {
        return Err("it has no host");
    }
    if let Some(port) = port {
        if port.parse::<u16>().is_err() {
            return Err("its port is not a number from 0 to 65535");
        }
    }
    Ok(())
}

/// "host:port", "[v6]:port", "host" → (host, port).
fn split_host_port(authority: &str) -> (&str, Option<&str>) {
    if let Some(v6) = authority.strip_prefix('[') {
        return match v6.split_once(']') {
            Some((host, after)) => (host, after.strip_prefix(':')),
            None => ("", None),
        };
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issues(cfg: &HttpConfig) -> Vec<ConfigIssue> {
        let mut out = Vec::new();
        cfg.validate(&mut out);
        out
    }

    fn paths(cfg: &HttpConfig) -> Vec<String> {
        issues(cfg).iter().map(ConfigIssue::key_path).collect()
    }

    fn with(listen: Option<&str>, url: Option<&str>, hours: u32) -> HttpConfig {
        HttpConfig {
            listen: listen.map(str::to_string),
            public_url: url.map(str::to_string),
            ack_link_hours: hours,
            ..HttpConfig::default()
        }
    }

    #[test]
    fn defaults_and_a_good_section_pass() {
        assert!(issues(&HttpConfig::default()).is_empty());
        let cfg = with(
            Some("127.0.0.1:8080"),
            Some("https://astreinte.example.net/"),
            72,
        );
        assert!(issues(&cfg).is_empty());
        assert!(issues(&with(Some("[::1]:80"), None, 1)).is_empty());
        assert!(issues(&with(None, Some("http://[2001:db8::1]:8443/base"), 720)).is_empty());
    }

    #[test]
    fn the_section_parses_from_toml_with_its_default_lifetime() {
        let cfg: HttpConfig = toml::from_str("listen = \"127.0.0.1:8080\"").unwrap();
        assert_eq!(cfg.ack_link_hours, 72);
        assert_eq!(cfg.ack_link_ttl(), chrono::Duration::hours(72));
        assert!(toml::from_str::<HttpConfig>("lisen = \"x\"").is_err());
    }

    #[test]
    fn a_listen_address_that_does_not_parse_is_reported_with_its_fix() {
        for bad in ["localhost:8080", "127.0.0.1", "8080", "127.0.0.1:99999"] {
            let found = issues(&with(Some(bad), None, 72));
            assert_eq!(found.len(), 1, "{bad}: {found:?}");
            assert_eq!(found[0].key_path(), "http.listen");
            assert!(found[0].message.contains(bad));
            assert!(found[0].fix.contains("127.0.0.1:8080"));
        }
    }

    #[test]
    fn a_public_url_must_be_http_with_a_host_and_no_query() {
        for bad in [
            "ftp://example.net",
            "example.net",
            "https://",
            "https:///path",
            "https://example.net/?x=1",
            "https://example.net/#top",
            "https://user:pw@example.net",
            "https://example.net:port",
            "https://exa mple.net",
        ] {
            assert_eq!(
                paths(&with(None, Some(bad), 72)),
                vec!["http.public_url"],
                "{bad}"
            );
        }
    }

    #[test]
    fn listening_everywhere_without_a_public_url_is_reported() {
        assert_eq!(
            paths(&with(Some("0.0.0.0:8080"), None, 72)),
            vec!["http.public_url"]
        );
        assert!(paths(&with(Some("0.0.0.0:8080"), Some("https://a.example"), 72)).is_empty());
    }

    #[test]
    fn link_lifetime_is_bounded() {
        assert_eq!(paths(&with(None, None, 0)), vec!["http.ack_link_hours"]);
        assert_eq!(paths(&with(None, None, 721)), vec!["http.ack_link_hours"]);
        assert!(paths(&with(None, None, 720)).is_empty());
    }

    #[test]
    fn public_url_is_configured_else_derived_from_listen() {
        let cfg = with(Some("127.0.0.1:8080"), Some("https://a.example/x/"), 72);
        assert_eq!(cfg.public_url().as_deref(), Some("https://a.example/x"));
        let cfg = with(Some("127.0.0.1:8080"), None, 72);
        assert_eq!(cfg.public_url().as_deref(), Some("http://127.0.0.1:8080"));
        assert_eq!(HttpConfig::default().public_url(), None);
    }

    fn forwarded(values: &[&str]) -> axum::http::HeaderMap {
        let mut h = axum::http::HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    #[test]
    fn client_address_believes_forwarded_for_only_from_a_trusted_proxy() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let proxies = HttpConfig {
            trusted_proxies: vec!["10.0.0.0/8".into(), "192.0.2.9".into()],
            ..HttpConfig::default()
        }
        .trusted_proxy_nets();
        assert_eq!(proxies.len(), 2);
        // A stranger writing the header changes nothing: the limiter keys on the TCP peer.
        let spoof = forwarded(&["1.2.3.4"]);
        assert_eq!(
            client_ip(Some(ip("203.0.113.7")), &spoof, &proxies),
            Some(ip("203.0.113.7"))
        );
        assert_eq!(
            client_ip(Some(ip("203.0.113.7")), &spoof, &[]),
            Some(ip("203.0.113.7"))
        );
        // Through the proxy: the address the proxy saw (rightmost), not what the client wrote
        // to the left of it.
        let h = forwarded(&["1.2.3.4, 198.51.100.20"]);
        assert_eq!(
            client_ip(Some(ip("10.1.1.1")), &h, &proxies),
            Some(ip("198.51.100.20"))
        );
        // Two proxies in a row, over two header lines, one with a port.
        let h = forwarded(&["198.51.100.21", "192.0.2.9:8443"]);
        assert_eq!(
            client_ip(Some(ip("10.1.1.1")), &h, &proxies),
            Some(ip("198.51.100.21"))
        );
        let h = forwarded(&["[2001:db8::5]:443"]);
        assert_eq!(
            client_ip(Some(ip("10.1.1.1")), &h, &proxies),
            Some(ip("2001:db8::5"))
        );
        // Garbage stops the walk at the last address known good; no header: the proxy itself.
        let h = forwarded(&["198.51.100.22, garbage"]);
        assert_eq!(
            client_ip(Some(ip("10.1.1.1")), &h, &proxies),
            Some(ip("10.1.1.1"))
        );
        assert_eq!(
            client_ip(Some(ip("10.1.1.1")), &forwarded(&[]), &proxies),
            Some(ip("10.1.1.1"))
        );
        assert_eq!(client_ip(None, &h, &proxies), None);
        // A bad entry is a config error naming it.
        let bad = HttpConfig {
            trusted_proxies: vec!["10.0.0.0/33".into()],
            ..HttpConfig::default()
        };
        assert_eq!(paths(&bad), vec!["http.trusted_proxies[0]".to_string()]);
    }
}
