//! Phone pages: astreinte calls the person, says in their language the severity, the tracking
//! number, the customer and the number to call back, then offers "1 to acknowledge, 2 to hear
//! the voicemail, 3 to acknowledge and be connected to the customer now". Option 3 places the
//! callback itself, through `[sip.outbound]`, to the ticket's validated callback number only,
//! and bridges the two legs; the moment the customer answers is recorded (`callback_connected`).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use super::config::PhoneConfig;
use super::facts::PageFacts;
use super::wording;
use crate::media::prompts::Clip;
use crate::media::{MediaEngine, MediaSession, PlayOptions, PlaybackId, PromptRef};
use crate::shell::{CallLeg, LegInput};
use crate::sip::digest::Credentials;
use crate::sip::{CallRequest, LegEvent, LegHandle, SipHandle};
use crate::store::{Action, Store, VoicemailWav, MAX_VOICEMAIL_BYTES};

/// Checks a ticket's callback number against the callback policy (`[ivr] callback_allow`):
/// the E.164 form to dial, or why it may not be dialled.
pub type CallbackCheck = Arc<dyn Fn(&str) -> Result<String, String> + Send + Sync>;

use crate::paging::page_call::{CustomerLeg, PageAction, PageCallFlow, PageCallTimers, PageSay};
pub use crate::paging::page_call::{MenuChoice, PhoneOutcome};

/// The trunk, for people and customers reached by number.
#[derive(Debug, Clone, Default)]
pub struct Trunk {
    /// Outbound proxy URI (e.g. "sip:trunk.example.net:5060").
    pub proxy: Option<String>,
    pub from: Option<String>,
    pub credentials: Option<Credentials>,
}

/// Where and how to call one address.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Dial {
    target: String,
    proxy: Option<String>,
}

/// Places phone pages.
pub struct PhonePager {
    pub sip: SipHandle,
    pub media: MediaEngine,
    pub store: Store,
    /// The address written in our SDP.
    pub advertised: IpAddr,
    pub trunk: Trunk,
    pub config: PhoneConfig,
    pub callback_check: CallbackCheck,
}

impl PhonePager {
    pub fn new(
        sip: SipHandle,
        media: MediaEngine,
        store: Store,
        advertised: IpAddr,
        trunk: Trunk,
        config: PhoneConfig,
        callback_check: CallbackCheck,
    ) -> PhonePager {
        PhonePager {
            sip,
            media,
            store,
            advertised,
            trunk,
            config,
            callback_check,
        }
    }

    /// A SIP URI is called directly; a number ("+15145551234") through the trunk.
    fn dial(&self, address: &str) -> Result<Dial, String> {
        if address.starts_with("sip:") || address.starts_with("sips:") {
            return Ok(Dial {
                target: address.to_string(),
                proxy: None,
            });
        }
        let digits: String = address.chars().filter(char::is_ascii_digit).collect();
        if digits.is_empty() || !address.starts_with('+') {
            return Err(format!(
                "\"{address}\" is neither a SIP URI nor a +E.164 number"
            ));
        }
        let Some(proxy) = &self.trunk.proxy else {
            return Err(format!(
                "no [sip.outbound] proxy configured to call {address}"
            ));
        };
        let host = proxy
            .trim_start_matches("sips:")
            .trim_start_matches("sip:")
            .split(';')
            .next()
            .unwrap_or_default();
        Ok(Dial {
            target: format!("sip:+{digits}@{host}"),
            proxy: Some(proxy.clone()),
        })
    }

    fn caller_identity(&self) -> String {
        self.trunk
            .from
            .clone()
            .unwrap_or_else(|| format!("sip:astreinte@{}", self.sip.advertised_addr()))
    }

    async fn place(
        &self,
        dial: &Dial,
        session: &MediaSession,
    ) -> Result<(LegHandle, mpsc::UnboundedReceiver<LegEvent>), String> {
        let req = CallRequest {
            target: dial.target.clone(),
            proxy: dial.proxy.clone(),
            from: self.caller_identity(),
            credentials: dial.proxy.as_ref().and(self.trunk.credentials.clone()),
            local_rtp: SocketAddr::new(self.advertised, session.local_rtp_addr().port()),
        };
        self.sip.place_call(req).await.map_err(|e| e.to_string())
    }

    /// Calls `address` and pages `facts.person` about `facts.ticket`. `answered` fires the moment
    /// the person picks up (the page is then delivered, whatever follows).
    ///
    /// The shell of [`PageCallFlow`]: it feeds the flow the page leg's events, the media's, the
    /// customer's leg and the clock, and carries out what the flow asks.
    pub async fn page(
        &self,
        address: &str,
        facts: &PageFacts,
        answered: oneshot::Sender<()>,
    ) -> PhoneOutcome {
        let dial = match self.dial(address) {
            Ok(d) => d,
            Err(e) => return PhoneOutcome::CannotCall(e),
        };
        let call_id = format!("page-{}-{}", facts.ticket, Utc::now().timestamp_millis());
        let session = match self.media.open_session(&call_id) {
            Ok(s) => s,
            Err(e) => return PhoneOutcome::CannotCall(format!("no media port: {e}")),
        };
        let (leg, events) = match self.place(&dial, &session).await {
            Ok(x) => x,
            Err(e) => {
                session.close().await;
                return PhoneOutcome::CannotCall(e);
            }
        };
        let lang = wording::spoken_lang(facts);
        let timers = PageCallTimers::new(
            Duration::from_secs(u64::from(self.config.ring_secs)),
            self.config.menu_repeats,
            Duration::from_secs(u64::from(self.config.callback_ring_secs)),
        );
        let mut flow = PageCallFlow::new(
            Instant::now(),
            timers,
            lang,
            wording::spoken_page(facts, lang),
        );
        let mut call = PageCall {
            facts,
            leg: CallLeg::outbound(leg, events, session),
            answered: Some(answered),
            playing: None,
            voicemail: None,
            customer: None,
        };
        while !flow.is_done() {
            while let Some(action) = flow.poll_action() {
                self.carry_out(action, &mut flow, &mut call).await;
            }
            if flow.is_done() {
                break;
            }
            call.next_input(&mut flow).await;
        }
        // What the flow asked last (hanging the customer up) before the page leg goes.
        while let Some(action) = flow.poll_action() {
            self.carry_out(action, &mut flow, &mut call).await;
        }
        if let Some(customer) = call.customer.take() {
            customer.leg.hang_up_and_close().await;
        }
        call.leg.hang_up_and_close().await;
        flow.outcome()
            .cloned()
            .unwrap_or(PhoneOutcome::AnsweredWithoutKey)
    }

    /// Does what the page call's flow asks; what it learns goes back into the flow.
    async fn carry_out(
        &self,
        action: PageAction,
        flow: &mut PageCallFlow,
        call: &mut PageCall<'_>,
    ) {
        let facts = call.facts;
        match action {
            PageAction::Play { items, barge_in } => {
                let list: Vec<PromptRef> = items
                    .into_iter()
                    .filter_map(|item| match item {
                        PageSay::Cue(cue) => Some(PromptRef::from(cue)),
                        PageSay::Voicemail => call.voicemail.clone().map(PromptRef::clip),
                    })
                    .collect();
                call.playing = match call.leg.session.play(
                    &list,
                    PlayOptions {
                        barge_in,
                        repeat: false,
                    },
                ) {
                    Ok(id) => Some(id),
                    Err(e) => {
                        warn!(ticket = %facts.ticket, error = %e, "cannot play the page");
                        flow.on_play_failed(Instant::now());
                        None
                    }
                };
            }
            PageAction::StopPlayback => {
                call.leg.session.stop_playback();
                call.playing = None;
            }
            PageAction::LoadVoicemail => {
                call.voicemail = self.voicemail_clip(facts).await;
                flow.on_voicemail(Instant::now(), call.voicemail.is_some());
            }
            PageAction::Acknowledge { key } => self.acknowledge(facts, key).await,
            PageAction::DialCustomer => {
                let leg = self.dial_customer(facts, &call.leg.session).await;
                let report = match leg {
                    Ok(customer) => {
                        call.customer = Some(customer);
                        CustomerLeg::Ringing
                    }
                    Err(report) => report,
                };
                flow.on_customer(Instant::now(), report);
            }
            PageAction::RecordCalledBack => {
                if let Some(customer) = &call.customer {
                    self.record_called_back(facts, &customer.number).await;
                }
            }
            PageAction::Bridge => {
                if let Some(customer) = &call.customer {
                    if let Err(e) = call.leg.session.bridge(&customer.leg.session) {
                        warn!(ticket = %facts.ticket, error = %e, "cannot bridge the customer");
                    }
                }
            }
            PageAction::Unbridge => call.leg.session.unbridge(),
            PageAction::HangUpCustomer => {
                if let Some(customer) = call.customer.take() {
                    customer.leg.hang_up_and_close().await;
                }
            }
        }
    }

    /// Option 3's first half: the callback number checked, then the customer's phone rung.
    async fn dial_customer(
        &self,
        facts: &PageFacts,
        session: &MediaSession,
    ) -> Result<CustomerCall, CustomerLeg> {
        let number = (self.callback_check)(&facts.callback_number).map_err(|why| {
            warn!(ticket = %facts.ticket, %why, "the callback number may not be dialled");
            CustomerLeg::Refused(why)
        })?;
        let dial = self.dial(&number).map_err(|why| {
            warn!(ticket = %facts.ticket, %why, "cannot dial the customer");
            CustomerLeg::Refused(why)
        })?;
        let customer_session = self
            .media
            .open_session_near(&format!("callback-{}", facts.ticket), session)
            .map_err(|e| {
                warn!(ticket = %facts.ticket, error = %e, "no media for the callback leg");
                CustomerLeg::CannotCall(format!("no media port: {e}"))
            })?;
        match self.place(&dial, &customer_session).await {
            Ok((leg, events)) => Ok(CustomerCall {
                number,
                leg: CallLeg::outbound(leg, events, customer_session),
            }),
            Err(e) => {
                warn!(ticket = %facts.ticket, error = %e, "cannot place the callback");
                customer_session.close().await;
                Err(CustomerLeg::CannotCall(e))
            }
        }
    }

    /// The customer answered option 3's call: the ticket is called back, now.
    async fn record_called_back(&self, facts: &PageFacts, number: &str) {
        let connected_at = Utc::now();
        let by = facts
            .person
            .as_ref()
            .map_or_else(|| "phone".to_string(), |p| p.id.clone());
        let reason = format!(
            "{by} connected to +{} by the phone page",
            number.trim_start_matches('+')
        );
        match self
            .store
            .transition_as(
                &facts.ticket,
                Action::CalledBack,
                "callback_connected",
                &by,
                Some(&reason),
                connected_at,
            )
            .await
        {
            Ok(t) => {
                info!(ticket = %facts.ticket, met = t.called_back_at.is_some_and(|c| c <= t.callback_due_at), "customer called back")
            }
            Err(e) => warn!(ticket = %facts.ticket, error = %e, "callback not recorded"),
        }
    }

    /// The ticket's voicemail, loaded when the person presses 2 (not before): from the store,
    /// so any node plays it, else from the recording's file. A clip, not a prompt: it belongs
    /// to this call and is freed with it, so hearing voicemails never grows the prompt set.
    async fn voicemail_clip(&self, facts: &PageFacts) -> Option<Clip> {
        let path = facts
            .voicemail_path
            .as_ref()?
            .to_string_lossy()
            .into_owned();
        let wav = match self
            .store
            .voicemail_wav(
                &facts.ticket,
                facts.ticket_id,
                Some(&path),
                MAX_VOICEMAIL_BYTES,
            )
            .await
        {
            VoicemailWav::Found { wav, .. } => wav,
            VoicemailWav::NoVoicemail => return None,
            VoicemailWav::Gone => {
                warn!(ticket = %facts.ticket, path, "the voicemail is neither in the store nor on this node's disk");
                return None;
            }
            VoicemailWav::TooLarge { bytes } => {
                warn!(ticket = %facts.ticket, bytes, "the voicemail is too large to play");
                return None;
            }
            VoicemailWav::Unreadable { why } => {
                warn!(ticket = %facts.ticket, error = %why, "cannot read the voicemail");
                return None;
            }
        };
        let reader = match hound::WavReader::new(std::io::Cursor::new(wav)) {
            Ok(r) => r,
            Err(e) => {
                warn!(ticket = %facts.ticket, error = %e, "the voicemail is not a readable WAV");
                return None;
            }
        };
        let spec = reader.spec();
        if spec.sample_rate != 8000 || spec.channels != 1 || spec.bits_per_sample != 16 {
            warn!(ticket = %facts.ticket, "the voicemail is not 8 kHz mono 16-bit");
            return None;
        }
        let pcm: Vec<i16> = reader.into_samples::<i16>().map_while(Result::ok).collect();
        Some(Clip::new(format!("vm/{}", facts.ticket), &pcm))
    }

    async fn acknowledge(&self, facts: &PageFacts, key: char) {
        let by = facts
            .person
            .as_ref()
            .map_or_else(|| "phone".to_string(), |p| format!("{} (phone)", p.id));
        let reason = format!("key {key} on the phone page");
        match self
            .store
            .transition(
                &facts.ticket,
                Action::Acknowledge,
                &by,
                Some(&reason),
                Utc::now(),
            )
            .await
        {
            Ok(_) => info!(ticket = %facts.ticket, %by, "acknowledged by phone"),
            Err(e) => info!(ticket = %facts.ticket, error = %e, "not acknowledged again"),
        }
    }
}

/// One page call's legs, as the shell holds them.
struct PageCall<'a> {
    facts: &'a PageFacts,
    /// The person's leg and media.
    leg: CallLeg,
    /// Fired when the person picks up; `None` once answered.
    answered: Option<oneshot::Sender<()>>,
    /// The playback whose end the flow waits for.
    playing: Option<PlaybackId>,
    /// The ticket's voicemail once loaded: this call's own, freed when the call ends.
    voicemail: Option<Clip>,
    /// Option 3's call to the customer.
    customer: Option<CustomerCall>,
}

/// The customer's leg on option 3.
struct CustomerCall {
    number: String,
    leg: CallLeg,
}

impl PageCall<'_> {
    /// Waits for the next thing that happens to the call and tells the flow.
    async fn next_input(&mut self, flow: &mut PageCallFlow) {
        let deadline = flow.poll_timeout();
        let timer = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending::<()>().await,
            }
        };
        let customer = self.customer.as_mut();
        let customer_input = async {
            match customer {
                Some(c) => c.leg.next().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            input = self.leg.next() => {
                let now = Instant::now();
                match input {
                    LegInput::Answered => {
                        if let Some(tx) = self.answered.take() {
                            let _ = tx.send(());
                        }
                        info!(ticket = %self.facts.ticket, "page answered");
                        flow.on_answered(now);
                    }
                    LegInput::Key { digit, .. } => flow.on_key(now, digit),
                    LegInput::PlaybackFinished(id) if Some(id) == self.playing => {
                        self.playing = None;
                        flow.on_playback_finished(now);
                    }
                    LegInput::PlaybackFinished(_) | LegInput::RecordingFinished(_) => {}
                    LegInput::MediaTimeout | LegInput::MediaFailed => flow.on_media_lost(now),
                    LegInput::Ended(reason) => flow.on_ended(now, &reason),
                }
            }
            input = customer_input => {
                let now = Instant::now();
                match input {
                    LegInput::Answered => flow.on_customer(now, CustomerLeg::Answered),
                    LegInput::Ended(reason) => {
                        info!(ticket = %self.facts.ticket, %reason, "the customer's leg ended");
                        flow.on_customer(now, CustomerLeg::Ended);
                    }
                    _ => {}
                }
            }
            _ = timer => flow.handle_timeout(Instant::now()),
        }
    }
}
