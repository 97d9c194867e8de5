//! E-mail: the page, with the voicemail attached, over `[paging.smtp]`
//! ([`crate::paging::email::Mailer`]).

use super::{ChannelTarget, Outbound, PageChannel, SendFuture, Sent};
use crate::paging::config::PagingConfig;
use crate::paging::facts::PagedPerson;
use crate::paging::ChannelError;

/// `"email"`: to the person's address, when `[paging.smtp]` is set.
pub struct Email;

impl PageChannel for Email {
    fn name(&self) -> &'static str {
        "email"
    }

    fn reaches(&self, person: &PagedPerson, config: &PagingConfig) -> Vec<ChannelTarget> {
        match (&person.email, config.smtp.is_some()) {
            (Some(email), true) => vec![ChannelTarget::new(&Email, None, email)],
            _ => Vec::new(),
        }
    }

    fn send<'a>(&'a self, out: Outbound<'a>) -> SendFuture<'a> {
        Box::pin(async move {
            match &out.worker.mailer {
                Some(m) => m
                    .send_page(&out.job.target, out.facts, &out.worker.store)
                    .await
                    .map(|()| Sent::default()),
                None => Err(ChannelError::Permanent(
                    "no [paging.smtp] configured".into(),
                )),
            }
        })
    }
}
