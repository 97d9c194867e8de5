//! `[sip]` configuration.

use std::net::SocketAddr;

use ipnet::IpNet;
use serde::Deserialize;

use crate::config_issue::{ConfigIssue, KeySeg};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SipConfig {
    /// Address and port for both UDP and TCP.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Numbers answered; E.164 variants of one number are one number.
    #[serde(default = "default_numbers")]
    pub numbers: Vec<String>,
    /// Networks allowed to send INVITE.
    #[serde(default = "default_trusted")]
    pub trusted: Vec<String>,
    /// Requests per second one source may send before it is answered 503 (then dropped).
    #[serde(default = "default_rate")]
    pub rate_limit_per_source: u32,
    /// TCP connections held at once, from everyone; past that new ones are closed at once.
    #[serde(default = "default_tcp_max_connections")]
    pub tcp_max_connections: usize,
    /// TCP connections one untrusted source (an IPv4 address, an IPv6 /64) may hold.
    #[serde(default = "default_tcp_max_per_source")]
    pub tcp_max_per_source: usize,
    /// A TCP connection silent this long is closed (a phone's keep-alives are far more often).
    #[serde(default = "default_tcp_idle_secs")]
    pub tcp_idle_secs: u64,
    /// On the first SIGTERM the node drains: it answers OPTIONS and new calls 503 (a load
    /// balancer sends new calls elsewhere) and waits up to this long for its calls to end
    /// before it hangs up the rest. 0 stops at once. A second signal always stops at once.
    #[serde(default = "default_drain_secs")]
    pub drain_secs: u64,
    /// Value of the User-Agent / Server header. No version by default: a scanner must not
    /// learn which bugs to try from it (`astreinte --version` tells the admin).
    #[serde(default = "default_user_agent")]
    pub user_agent: String,
    /// Address written in Contact and SDP when `listen` is a wildcard address.
    #[serde(default)]
    pub public_address: Option<String>,
    #[serde(default)]
    pub outbound: Option<OutboundConfig>,
    #[serde(default)]
    pub register: Option<RegisterConfig>,
}

/// Where and how outbound calls (pages) are placed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboundConfig {
    /// Outbound proxy, e.g. "sip:proxy.example.net:5060;transport=udp".
    #[serde(default)]
    pub proxy: Option<String>,
    /// Identity placed in From, e.g. "sip:astreinte@example.net".
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
}

/// Upstream registration (`[sip.register]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterConfig {
    /// Registrar URI, e.g. "sip:registrar.example.net".
    pub registrar: String,
    /// Address of record, e.g. "sip:5149073400@example.net".
    pub aor: String,
    pub username: String,
    pub password: String,
    #[serde(default = "default_expires")]
    pub expires: u32,
}

fn default_listen() -> String {
    "127.0.0.1:5060".into()
}
fn default_numbers() -> Vec<String> {
    ["+15149073400", "+18772435520", "+18773151920", "611"]
        .into_iter()
        .map(String::from)
        .collect()
}
fn default_trusted() -> Vec<String> {
    vec!["127.0.0.0/8".into(), "::1/128".into()]
}
fn default_rate() -> u32 {
    200
}
fn default_tcp_max_connections() -> usize {
    4096
}
fn default_tcp_max_per_source() -> usize {
    32
}
fn default_tcp_idle_secs() -> u64 {
    300
}
fn default_drain_secs() -> u64 {
    // An after-hours voicemail is at most 3 minutes, an in-hours wait for a technician 5.
    300
}
fn default_user_agent() -> String {
    "astreinte".into()
}
fn default_expires() -> u32 {
    3600
}

impl Default for SipConfig {
    fn default() -> Self {
        SipConfig {
            listen: default_listen(),
            numbers: default_numbers(),
            trusted: default_trusted(),
            rate_limit_per_source: default_rate(),
            tcp_max_connections: default_tcp_max_connections(),
            tcp_max_per_source: default_tcp_max_per_source(),
            tcp_idle_secs: default_tcp_idle_secs(),
            drain_secs: default_drain_secs(),
            user_agent: default_user_agent(),
            public_address: None,
            outbound: None,
            register: None,
        }
    }
}

impl SipConfig {
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.listen.parse().ok()
    }

    pub fn trusted_nets(&self) -> Vec<IpNet> {
        self.trusted.iter().filter_map(|t| parse_net(t)).collect()
    }

    pub fn validate(&self, issues: &mut Vec<ConfigIssue>) {
        let key = |k: &'static str| vec![KeySeg::Key("sip"), KeySeg::Key(k)];
        if self.listen.parse::<SocketAddr>().is_err() {
            issues.push(ConfigIssue::new(
                key("listen"),
                format!("\"{}\" is not an address:port", self.listen),
                "write an IP address and a port, e.g. \"127.0.0.1:5060\" or \"0.0.0.0:5060\"",
            ));
        }
        if self.numbers.is_empty() {
            issues.push(ConfigIssue::new(
                key("numbers"),
                "no number is answered",
                "list at least one number, e.g. numbers = [\"+15149073400\", \"611\"]",
            ));
        }
        for (i, n) in self.numbers.iter().enumerate() {
            if crate::sip::routing::normalize_number(n).is_none() {
                issues.push(ConfigIssue::new(
                    vec![KeySeg::Key("sip"), KeySeg::Key("numbers"), KeySeg::Index(i)],
                    format!("\"{n}\" is not a phone number"),
                    "write digits, optionally with a leading +, e.g. \"+15149073400\" or \"611\"",
                ));
            }
        }
        for (i, t) in self.trusted.iter().enumerate() {
            if parse_net(t).is_none() {
                issues.push(ConfigIssue::new(
                    vec![KeySeg::Key("sip"), KeySeg::Key("trusted"), KeySeg::Index(i)],
                    format!("\"{t}\" is not a CIDR network"),
                    "write a network such as \"10.0.0.0/8\", or one host as \"192.0.2.7/32\"",
                ));
            }
        }
        if self.rate_limit_per_source == 0 {
            issues.push(ConfigIssue::new(
                key("rate_limit_per_source"),
                "a limit of 0 refuses every request",
                "set a positive number of requests per second, e.g. 200",
            ));
        }
        if self.tcp_max_connections == 0 || self.tcp_max_per_source == 0 {
            issues.push(ConfigIssue::new(
                key(if self.tcp_max_connections == 0 { "tcp_max_connections" } else { "tcp_max_per_source" }),
                "a limit of 0 refuses every TCP connection",
                "set a positive number, e.g. tcp_max_connections = 4096 and tcp_max_per_source = 32",
            ));
        }
        if self.tcp_idle_secs < 30 {
            issues.push(ConfigIssue::new(
                key("tcp_idle_secs"),
                format!(
                    "{} seconds would cut phones between their keep-alives",
                    self.tcp_idle_secs
                ),
                "use at least 30 seconds (300 is usual)",
            ));
        }
        if self.drain_secs > 86_400 {
            issues.push(ConfigIssue::new(
                key("drain_secs"),
                format!("{} seconds is more than a day", self.drain_secs),
                "use the longest call you are willing to wait for, e.g. 300 (0 stops at once)",
            ));
        }
        if self.public_address.is_none()
            && self.listen_addr().is_some_and(|a| a.ip().is_unspecified())
        {
            issues.push(ConfigIssue::new(
                key("listen"),
                format!("\"{}\" listens on every interface, so Contact and SDP need an address peers can reach", self.listen),
                "add public_address = \"203.0.113.5\" (this machine's address as the trunk sees it) to [sip]",
            ));
        }
        if let Some(addr) = &self.public_address {
            if addr.parse::<std::net::IpAddr>().is_err() {
                issues.push(ConfigIssue::new(
                    key("public_address"),
                    format!("\"{addr}\" is not an IP address"),
                    "write the address peers reach this engine at, e.g. \"203.0.113.5\"",
                ));
            }
        }
        if let Some(reg) = &self.register {
            if crate::sip::message::Uri::parse(&reg.registrar).is_none() {
                issues.push(ConfigIssue::new(
                    vec![
                        KeySeg::Key("sip"),
                        KeySeg::Key("register"),
                        KeySeg::Key("registrar"),
                    ],
                    format!("\"{}\" is not a SIP URI", reg.registrar),
                    "write a URI such as \"sip:registrar.example.net\"",
                ));
            }
            if crate::sip::message::Uri::parse(&reg.aor).is_none() {
                issues.push(ConfigIssue::new(
                    vec![
                        KeySeg::Key("sip"),
                        KeySeg::Key("register"),
                        KeySeg::Key("aor"),
                    ],
                    format!("\"{}\" is not a SIP URI", reg.aor),
                    "write the address of record, e.g. \"sip:5149073400@example.net\"",
                ));
            }
            if reg.expires < 60 {
                issues.push(ConfigIssue::new(
                    vec![
                        KeySeg::Key("sip"),
                        KeySeg::Key("register"),
                        KeySeg::Key("expires"),
                    ],
                    format!("{} seconds is too short a registration", reg.expires),
                    "use at least 60 seconds (3600 is usual)",
                ));
            }
        }
        if let Some(out) = &self.outbound {
            if let Some(proxy) = &out.proxy {
                if crate::sip::message::Uri::parse(proxy).is_none() {
                    issues.push(ConfigIssue::new(
                        vec![
                            KeySeg::Key("sip"),
                            KeySeg::Key("outbound"),
                            KeySeg::Key("proxy"),
                        ],
                        format!("\"{proxy}\" is not a SIP URI"),
                        "write a URI such as \"sip:proxy.example.net:5060\"",
                    ));
                }
            }
        }
    }
}

fn parse_net(s: &str) -> Option<IpNet> {
    s.parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<std::net::IpAddr>().ok().map(IpNet::from))
}
