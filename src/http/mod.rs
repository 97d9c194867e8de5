//! The HTTP server on `[http] listen`: acknowledgement links, health, metrics; the admin
//! console (a later issue) builds on it. (Helper-owned: see the brief.)

use serde::Deserialize;

use crate::config_issue::ConfigIssue;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    #[serde(default)]
    pub listen: Option<String>,
    #[serde(default)]
    pub public_url: Option<String>,
    #[serde(default)]
    pub ack_link_hours: u32,
}

impl HttpConfig {
    pub fn validate(&self, _issues: &mut Vec<ConfigIssue>) {}
}

// ---- temporary compile stub ----
use std::sync::Arc;
pub mod ack {
    pub struct AckLinks;
    impl AckLinks {
        pub fn new(_k: &[u8], _u: &str, _t: chrono::Duration) -> AckLinks { AckLinks }
        pub fn link(&self, t: &str, _p: &str, _n: chrono::DateTime<chrono::Utc>) -> String { t.into() }
    }
}
impl HttpConfig {
    pub fn public_url(&self) -> Option<String> { self.public_url.clone() }
}
pub struct ComponentHealth { pub name: &'static str, pub failure: Option<String> }
pub struct ChannelCounters { pub channel: String, pub sent: u64, pub failed: u64, pub retried: u64, pub failing: bool }
pub struct EngineMetrics { pub sip: crate::sip::transport::SipStats, pub media_contained_panics: u64, pub calls_active: u64, pub calls_total: u64, pub pages: Vec<ChannelCounters> }
pub trait EngineProbe: Send + Sync + 'static {
    fn components(&self) -> Vec<ComponentHealth>;
    fn metrics(&self) -> EngineMetrics;
}
pub struct HttpState { pub store: crate::store::Store, pub links: Arc<ack::AckLinks>, pub probe: Arc<dyn EngineProbe>, pub on_ack: Option<Arc<dyn Fn(&str) + Send + Sync>> }
pub async fn serve(_l: tokio::net::TcpListener, _s: HttpState, _stop: impl std::future::Future<Output = ()> + Send + 'static) -> std::io::Result<()> { Ok(()) }
