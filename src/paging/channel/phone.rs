//! The phone: the person's phone is called, the page is said, and a key acknowledges it
//! ([`crate::paging::phone::PhonePager`]).

use tokio::sync::oneshot;
use tracing::info;

use super::{ChannelTarget, Outbound, PageChannel, SendFuture, Sent};
use crate::paging::config::PagingConfig;
use crate::paging::facts::PagedPerson;
use crate::paging::phone::PhoneOutcome;
use crate::paging::ChannelError;

/// `"phone"`: a call to the person's SIP URI or number.
pub struct Phone;

impl PageChannel for Phone {
    fn name(&self) -> &'static str {
        "phone"
    }

    fn is_call(&self) -> bool {
        true
    }

    fn reaches(&self, person: &PagedPerson, _config: &PagingConfig) -> Vec<ChannelTarget> {
        person
            .phone
            .iter()
            .map(|phone| ChannelTarget::new(&Phone, None, phone))
            .collect()
    }

    /// The moment the person answers, the page is delivered; what they do next is recorded by
    /// the phone pager (acknowledgement, callback). Busy, rejected or unanswered is a failed
    /// page; answered without a key is noted.
    fn send<'a>(&'a self, out: Outbound<'a>) -> SendFuture<'a> {
        Box::pin(async move {
            let Some(pager) = &out.worker.phone else {
                return Err(ChannelError::Unavailable(
                    "phone pages are not available".into(),
                ));
            };
            let (answered_tx, mut answered_rx) = oneshot::channel();
            let call = pager.page(&out.job.target, out.facts, answered_tx);
            tokio::pin!(call);
            let mut answered = out.answered;
            let mut tell = |answer: bool| {
                if answer {
                    if let Some(tx) = answered.take() {
                        let _ = tx.send("answered");
                    }
                }
            };
            let mut waiting = true;
            let outcome = loop {
                tokio::select! {
                    r = &mut answered_rx, if waiting => {
                        waiting = false;
                        tell(r.is_ok());
                    }
                    outcome = &mut call => break outcome,
                }
            };
            if waiting {
                tell(answered_rx.try_recv().is_ok());
            }
            match outcome {
                PhoneOutcome::Acknowledged { by_key } => {
                    info!(key = %by_key, "phone page acknowledged");
                    Ok(Sent::default())
                }
                PhoneOutcome::AnsweredWithoutKey => {
                    info!("phone page answered without a key: not acknowledged");
                    Ok(Sent {
                        note: None,
                        followup: Some((
                            "page_unacknowledged",
                            "answered, but no key was pressed".into(),
                        )),
                    })
                }
                // After an answer, the page was delivered and this is not a failure.
                PhoneOutcome::NotAnswered(why) | PhoneOutcome::CannotCall(why) => {
                    Err(ChannelError::Permanent(why))
                }
            }
        })
    }
}
