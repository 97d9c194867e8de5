//! Webhooks: signed JSON per person paged, or PagerDuty events per ticket
//! ([`crate::paging::webhook::WebhookSender`]).

use super::{ChannelTarget, Outbound, PageChannel, SendFuture, Sent};
use crate::paging::config::PagingConfig;
use crate::paging::facts::PagedPerson;
use crate::paging::webhook::{WebhookEvent, WebhookFormat};
use crate::paging::ChannelError;

/// `"webhook:<id>"`: one `[[paging.webhooks]]` receiver.
pub struct Webhook;

impl PageChannel for Webhook {
    fn name(&self) -> &'static str {
        "webhook"
    }

    fn has_instances(&self) -> bool {
        true
    }

    /// Every JSON receiver hears of every person paged. A PagerDuty receiver holds one incident
    /// per ticket: the planner triggers, acknowledges and resolves it for the ticket, not per
    /// person.
    fn reaches(&self, _person: &PagedPerson, config: &PagingConfig) -> Vec<ChannelTarget> {
        config
            .webhooks
            .iter()
            .filter(|w| w.format == WebhookFormat::Json)
            .map(|w| ChannelTarget::new(&Webhook, Some(&w.id), &w.id))
            .collect()
    }

    fn send<'a>(&'a self, out: Outbound<'a>) -> SendFuture<'a> {
        Box::pin(async move {
            let id = out.instance.unwrap_or_default();
            let worker = out.worker;
            let Some(w) = worker.channels.webhooks.iter().find(|w| w.id == id) else {
                return Err(ChannelError::Permanent(format!(
                    "webhook \"{id}\" is no longer configured"
                )));
            };
            let by = if out.job.reason == "acknowledge" {
                worker.acknowledger(&out.facts.ticket).await
            } else {
                String::new()
            };
            let event = match out.job.reason.as_str() {
                "acknowledge" => WebhookEvent::Acknowledged {
                    facts: out.facts,
                    by: &by,
                },
                "resolve" => WebhookEvent::Resolved { facts: out.facts },
                _ => WebhookEvent::Page(out.facts),
            };
            worker
                .webhook_sender
                .send(w, &event, out.now)
                .await
                .map(|()| Sent::default())
        })
    }
}
