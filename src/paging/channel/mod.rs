//! Paging channels. Each is one type behind [`PageChannel`]: who it reaches
//! ([`PageChannel::reaches`]) and how it sends ([`PageChannel::send`]); what it says is in
//! [`super::wording`]. They are registered in [`REGISTRY`] and nowhere else: the ladder's
//! configuration checks, the planner, the worker and the console's test page all go through it,
//! and [`channels_for`] is the one fan-out ("which channels does this person get").
//!
//! A page job stores its channel as a string ("phone", "email", "webhook:ops"): [`Channel`]
//! reads and writes that form, so stored rows and metrics labels are those of before.

mod email;
mod phone;
mod webhook;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use tokio::sync::oneshot;

use super::config::PagingConfig;
use super::facts::{PageFacts, PagedPerson};
use super::ladder::KnownChannels;
use super::worker::Worker;
use super::ChannelError;
use crate::store::PageJob;

pub use email::Email;
pub use phone::Phone;
pub use webhook::Webhook;

/// Every channel, in the order a person's pages are made (phone first: it rings at once).
pub static REGISTRY: &[&dyn PageChannel] = &[&Phone, &Email, &Webhook];

/// One way of paging people.
pub trait PageChannel: Sync {
    /// How `[paging.ladder] repeat_channels`, `[paging.in_hours] channels`, page jobs and
    /// metrics name it.
    fn name(&self) -> &'static str;

    /// Whether its jobs name one of several receivers after a colon ("webhook:ops").
    fn has_instances(&self) -> bool {
        false
    }

    /// A call: it lasts minutes, so the worker gives it its own budget, counts it among the
    /// calls in progress, and never retries it (the ladder's repeats call again).
    fn is_call(&self) -> bool {
        false
    }

    /// Who it reaches: the pages `person` gets on it under `config` (none when the person has
    /// no address for it, or it is not set up).
    fn reaches(&self, person: &PagedPerson, config: &PagingConfig) -> Vec<ChannelTarget>;

    /// How it sends one page job. A channel that delivers before it is done (a call, answered)
    /// says so through [`Outbound::answered`].
    fn send<'a>(&'a self, out: Outbound<'a>) -> SendFuture<'a>;
}

/// What [`PageChannel::send`] returns.
pub type SendFuture<'a> = Pin<Box<dyn Future<Output = Result<Sent, ChannelError>> + Send + 'a>>;

/// One page job to send, and what to send it with.
pub struct Outbound<'a> {
    pub job: &'a PageJob,
    /// The receiver named after the colon ("ops" in "webhook:ops").
    pub instance: Option<&'a str>,
    pub facts: &'a PageFacts,
    /// The worker's senders (mailer, phone pager, webhooks), the channels' settings
    /// ([`Worker::channels`]) and the store.
    pub worker: &'a Worker,
    pub now: DateTime<Utc>,
    /// Fire with a note ("answered") the moment the page is delivered, if before `send` ends.
    pub answered: Option<oneshot::Sender<&'static str>>,
}

/// A page sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sent {
    /// Said after the history line: "email to … (escalation): <note>".
    pub note: Option<String>,
    /// A further line for the ticket's history once delivered: (event kind, what happened),
    /// written "<channel> to <who>: <what>".
    pub followup: Option<(&'static str, String)>,
}

/// A page job's channel as stored ("phone", "email", "webhook:ops"): read with [`FromStr`],
/// written with [`fmt::Display`].
#[derive(Clone)]
pub struct Channel {
    kind: &'static dyn PageChannel,
    instance: Option<String>,
}

/// A stored channel that no registered channel reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown channel \"{0}\"")]
pub struct UnknownChannel(pub String);

impl Channel {
    /// The channel `kind`, of receiver `instance` if it has several.
    pub fn new(kind: &'static dyn PageChannel, instance: Option<&str>) -> Channel {
        Channel {
            kind,
            instance: instance.map(str::to_string),
        }
    }

    pub fn kind(&self) -> &'static dyn PageChannel {
        self.kind
    }

    /// "webhook" for "webhook:ops".
    pub fn name(&self) -> &'static str {
        self.kind.name()
    }

    /// "ops" for "webhook:ops".
    pub fn instance(&self) -> Option<&str> {
        self.instance.as_deref()
    }
}

impl FromStr for Channel {
    type Err = UnknownChannel;

    fn from_str(s: &str) -> Result<Channel, UnknownChannel> {
        let (name, instance) = match s.split_once(':') {
            Some((name, id)) => (name, Some(id)),
            None => (s, None),
        };
        let kind = by_name(name).ok_or_else(|| UnknownChannel(s.to_string()))?;
        match (kind.has_instances(), instance) {
            (true, Some(id)) if !id.is_empty() => Ok(Channel::new(kind, Some(id))),
            (false, None) => Ok(Channel::new(kind, None)),
            _ => Err(UnknownChannel(s.to_string())),
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.instance {
            Some(id) => write!(f, "{}:{id}", self.kind.name()),
            None => f.write_str(self.kind.name()),
        }
    }
}

impl fmt::Debug for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Channel({self})")
    }
}

impl PartialEq for Channel {
    fn eq(&self, other: &Self) -> bool {
        self.kind.name() == other.kind.name() && self.instance == other.instance
    }
}

impl Eq for Channel {}

/// One page a person gets: on which channel, to which address (a SIP URI or number, an e-mail
/// address, a webhook id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelTarget {
    pub channel: Channel,
    pub target: String,
}

impl ChannelTarget {
    pub fn new(kind: &'static dyn PageChannel, instance: Option<&str>, target: &str) -> Self {
        ChannelTarget {
            channel: Channel::new(kind, instance),
            target: target.to_string(),
        }
    }
}

/// The fan-out: every page `person` gets under `config`, channel by channel in [`REGISTRY`]
/// order. The planner keeps those the ladder allows; the console's test page sends them all.
pub fn channels_for(person: &PagedPerson, config: &PagingConfig) -> Vec<ChannelTarget> {
    REGISTRY
        .iter()
        .flat_map(|c| c.reaches(person, config))
        .collect()
}

/// The registered channel called `name` ("webhook", not "webhook:ops").
pub fn by_name(name: &str) -> Option<&'static dyn PageChannel> {
    REGISTRY.iter().copied().find(|c| c.name() == name)
}

/// The registered channels' names, for the ladder's configuration checks.
pub fn known() -> KnownChannels<'static> {
    static NAMES: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    KnownChannels(NAMES.get_or_init(|| REGISTRY.iter().map(|c| c.name()).collect()))
}

/// `"phone", "email" or "webhook"`: the names configuration may use, for messages.
pub fn names_for_people() -> String {
    known().for_people()
}

/// The call channel's name: the store leases by one channel name, so a worker whose call
/// budget is spent still takes the other channels' jobs.
pub fn call_channel() -> &'static str {
    REGISTRY
        .iter()
        .find(|c| c.is_call())
        .map_or("phone", |c| c.name())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paging::webhook::{WebhookConfig, WebhookFormat};

    fn person(phone: Option<&str>, email: Option<&str>) -> PagedPerson {
        PagedPerson {
            id: "tech1".into(),
            name: "Martin Roy".into(),
            language: "fr".into(),
            phone: phone.map(str::to_string),
            email: email.map(str::to_string),
        }
    }

    fn hook(id: &str, format: WebhookFormat) -> WebhookConfig {
        WebhookConfig {
            id: id.into(),
            url: format!("https://example.net/{id}"),
            format,
            secret: Some("a-long-enough-test-secret".into()),
            routing_key: Some("rk".into()),
            timeout_secs: 10,
        }
    }

    fn smtp() -> crate::paging::email::SmtpConfig {
        toml::from_str("url = \"smtp://127.0.0.1:25\"\nfrom = \"astreinte@example.net\"\n").unwrap()
    }

    fn stored(t: &[ChannelTarget]) -> Vec<(String, String)> {
        t.iter()
            .map(|t| (t.channel.to_string(), t.target.clone()))
            .collect()
    }

    #[test]
    fn the_stored_form_reads_and_writes_back_the_same() {
        for s in ["phone", "email", "webhook:ops", "webhook:sms-gw_2"] {
            let c: Channel = s.parse().unwrap();
            assert_eq!(c.to_string(), s);
            assert_eq!(c.to_string().parse::<Channel>().unwrap(), c);
        }
        let hook: Channel = "webhook:ops".parse().unwrap();
        assert_eq!((hook.name(), hook.instance()), ("webhook", Some("ops")));
        assert_eq!(hook, Channel::new(&Webhook, Some("ops")));
        assert_ne!(hook, Channel::new(&Webhook, Some("sms")));
        let phone: Channel = "phone".parse().unwrap();
        assert_eq!((phone.name(), phone.instance()), ("phone", None));
        assert!(phone.kind().is_call());
        assert!(!"email".parse::<Channel>().unwrap().kind().is_call());
    }

    #[test]
    fn an_unknown_stored_channel_is_named_in_the_error() {
        for s in [
            "sms",
            "",
            "webhook",
            "webhook:",
            "phone:x",
            "email:ops",
            "Phone",
        ] {
            let e = s.parse::<Channel>().unwrap_err();
            assert_eq!(e, UnknownChannel(s.to_string()));
            assert_eq!(e.to_string(), format!("unknown channel \"{s}\""));
        }
    }

    #[test]
    fn names_come_from_the_registry() {
        assert_eq!(names_for_people(), "\"phone\", \"email\" or \"webhook\"");
        assert_eq!(call_channel(), "phone");
        for c in REGISTRY {
            assert_eq!(by_name(c.name()).map(|k| k.name()), Some(c.name()));
        }
        assert!(by_name("sms").is_none());
    }

    #[test]
    fn a_person_gets_each_channel_they_have_an_address_for_that_is_set_up() {
        let mut config = PagingConfig::default();
        let both = person(Some("sip:tech1@10.0.0.5"), Some("tech1@example.net"));
        // No [paging.smtp], no webhook: the phone only.
        assert_eq!(
            stored(&channels_for(&both, &config)),
            [("phone".to_string(), "sip:tech1@10.0.0.5".to_string())]
        );
        config.smtp = Some(smtp());
        config.webhooks = vec![
            hook("ops", WebhookFormat::Json),
            hook("pd", WebhookFormat::Pagerduty),
            hook("sms", WebhookFormat::Json),
        ];
        // A PagerDuty receiver holds one incident per ticket: it is paged for the ticket, not
        // per person.
        assert_eq!(
            stored(&channels_for(&both, &config)),
            [
                ("phone", "sip:tech1@10.0.0.5"),
                ("email", "tech1@example.net"),
                ("webhook:ops", "ops"),
                ("webhook:sms", "sms"),
            ]
            .map(|(c, t)| (c.to_string(), t.to_string()))
        );
        // Nobody without an address for them is phoned or mailed; webhooks reach everyone.
        assert_eq!(
            stored(&channels_for(&person(None, None), &config)),
            [("webhook:ops", "ops"), ("webhook:sms", "sms")]
                .map(|(c, t)| (c.to_string(), t.to_string()))
        );
        let mail_only = person(None, Some("tech1@example.net"));
        config.webhooks.clear();
        assert_eq!(
            stored(&channels_for(&mail_only, &config)),
            [("email".to_string(), "tech1@example.net".to_string())]
        );
        config.smtp = None;
        assert!(channels_for(&mail_only, &config).is_empty());
    }
}
