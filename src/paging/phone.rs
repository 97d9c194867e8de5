//! Phone pages: astreinte calls the person, says in their language the severity, the tracking
//! number, the customer and the number to call back, then offers "1 to acknowledge, 2 to hear
//! the voicemail, 3 to acknowledge and be connected to the customer now". Option 3 places the
//! callback itself, through `[sip.outbound]`, to the ticket's validated callback number only,
//! and bridges the two legs; the moment the customer answers is recorded (`callback_connected`).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use super::config::PhoneConfig;
use super::facts::PageFacts;
use super::wording;
use crate::media::prompts::Clip;
use crate::media::{MediaEngine, MediaEvent, MediaSession, PlayOptions, PromptRef};
use crate::sip::digest::Credentials;
use crate::sip::{CallRequest, LegEvent, LegHandle, SipHandle};
use crate::store::{Action, Store, VoicemailWav, MAX_VOICEMAIL_BYTES};

/// Checks a ticket's callback number against the callback policy (`[ivr] callback_allow`):
/// the E.164 form to dial, or why it may not be dialled.
pub type CallbackCheck = Arc<dyn Fn(&str) -> Result<String, String> + Send + Sync>;

/// How a phone page ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PhoneOutcome {
    /// The person pressed 1 or 3.
    Acknowledged { by_key: char },
    /// Answered, heard the page, pressed nothing (or hung up): not acknowledged.
    AnsweredWithoutKey,
    /// Busy, rejected, not answered in time: the reason.
    NotAnswered(String),
    /// The call could not be placed at all (no route, SIP stopped).
    CannotCall(String),
}

/// What a key does in the page menu.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MenuChoice {
    Acknowledge,
    HearVoicemail,
    AcknowledgeAndConnect,
    Unknown,
}

impl MenuChoice {
    pub fn of(key: char) -> MenuChoice {
        match key {
            '1' => MenuChoice::Acknowledge,
            '2' => MenuChoice::HearVoicemail,
            '3' => MenuChoice::AcknowledgeAndConnect,
            _ => MenuChoice::Unknown,
        }
    }
}

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
        let mut session = match self.media.open_session(&call_id) {
            Ok(s) => s,
            Err(e) => return PhoneOutcome::CannotCall(format!("no media port: {e}")),
        };
        let (leg, mut events) = match self.place(&dial, &session).await {
            Ok(x) => x,
            Err(e) => {
                session.close().await;
                return PhoneOutcome::CannotCall(e);
            }
        };
        // Ringing, up to ring_secs.
        let ring = tokio::time::sleep(Duration::from_secs(u64::from(self.config.ring_secs)));
        tokio::pin!(ring);
        let answered_media = loop {
            tokio::select! {
                ev = events.recv() => match ev {
                    Some(LegEvent::Answered { media }) => break media,
                    Some(LegEvent::Ended { reason }) => {
                        session.close().await;
                        return PhoneOutcome::NotAnswered(format!("{reason}"));
                    }
                    Some(_) => {}
                    None => {
                        session.close().await;
                        return PhoneOutcome::NotAnswered("the call ended".into());
                    }
                },
                _ = &mut ring => {
                    leg.hangup();
                    session.close().await;
                    return PhoneOutcome::NotAnswered(format!("no answer in {} s", self.config.ring_secs));
                }
            }
        };
        if let Some(m) = answered_media {
            let peer = m.remote_rtp.ip();
            session.apply(m.with_signalling_peer(peer));
        }
        let _ = answered.send(());
        info!(ticket = %facts.ticket, "page answered");
        let outcome = self.menu(facts, &leg, &mut events, &mut session).await;
        leg.hangup();
        crate::call::await_bye_answered(&mut events).await;
        session.close().await;
        outcome
    }

    /// The page said and its menu, until a choice or `menu_repeats` rounds without one.
    async fn menu(
        &self,
        facts: &PageFacts,
        leg: &LegHandle,
        events: &mut mpsc::UnboundedReceiver<LegEvent>,
        session: &mut MediaSession,
    ) -> PhoneOutcome {
        let lang = wording::spoken_lang(facts);
        let speech: Vec<PromptRef> = wording::spoken_page(facts, lang)
            .into_iter()
            .map(PromptRef::from)
            .collect();
        let menu = [PromptRef::named(format!("{lang}/page-menu"))];
        let mut rounds = 0u32;
        let mut playing = self.play(session, &speech);
        // The voicemail, once loaded: this call's own, played again on a second 2 without
        // another read, and freed when the call ends.
        let mut voicemail: Option<Clip> = None;
        loop {
            let key = tokio::select! {
                ev = events.recv() => match ev {
                    Some(LegEvent::Dtmf { digit, .. }) => Some(digit),
                    Some(LegEvent::Ended { .. }) | None => break,
                    Some(LegEvent::MediaUpdated { media }) => {
                        let peer = media.remote_rtp.ip();
                        session.apply(media.with_signalling_peer(peer));
                        None
                    }
                    Some(_) => None,
                },
                ev = session.next_event() => match ev {
                    Some(MediaEvent::Digit { digit, .. }) => Some(digit),
                    Some(MediaEvent::PlaybackFinished(id)) if Some(id) == playing => {
                        rounds += 1;
                        if rounds >= self.config.menu_repeats {
                            // Give the last round a moment for a late key.
                            match wait_key(events, session, Duration::from_secs(6)).await {
                                Some(k) => Some(k),
                                None => break,
                            }
                        } else {
                            playing = self.play(session, &[speech.clone(), menu.to_vec()].concat());
                            None
                        }
                    }
                    Some(MediaEvent::MediaTimeout) | Some(MediaEvent::Failed) | None => break,
                    Some(_) => None,
                },
            };
            let Some(key) = key else { continue };
            match MenuChoice::of(key) {
                MenuChoice::Acknowledge => {
                    self.acknowledge(facts, key).await;
                    self.say_and_wait(
                        session,
                        events,
                        &[
                            format!("{lang}/page-acknowledged"),
                            format!("{lang}/page-goodbye"),
                        ],
                    )
                    .await;
                    return PhoneOutcome::Acknowledged { by_key: key };
                }
                MenuChoice::AcknowledgeAndConnect => {
                    self.acknowledge(facts, key).await;
                    self.connect(facts, lang, leg, events, session).await;
                    return PhoneOutcome::Acknowledged { by_key: key };
                }
                MenuChoice::HearVoicemail => {
                    if voicemail.is_none() {
                        voicemail = self.voicemail_clip(facts).await;
                    }
                    let mut list = match &voicemail {
                        Some(vm) => vec![PromptRef::clip(vm.clone())],
                        None => vec![PromptRef::named(format!("{lang}/page-no-voicemail"))],
                    };
                    list.extend(menu.iter().cloned());
                    playing = self.play(session, &list);
                }
                MenuChoice::Unknown => {
                    playing = self.play(session, &menu);
                }
            }
        }
        PhoneOutcome::AnsweredWithoutKey
    }

    fn play(&self, session: &MediaSession, list: &[PromptRef]) -> Option<crate::media::PlaybackId> {
        match session.play(
            list,
            PlayOptions {
                barge_in: true,
                repeat: false,
            },
        ) {
            Ok(id) => Some(id),
            Err(e) => {
                warn!(error = %e, "cannot play the page");
                None
            }
        }
    }

    /// Says `names` to the end (or until the person hangs up).
    async fn say_and_wait(
        &self,
        session: &mut MediaSession,
        events: &mut mpsc::UnboundedReceiver<LegEvent>,
        names: &[String],
    ) {
        let list: Vec<PromptRef> = names.iter().map(PromptRef::named).collect();
        let Ok(id) = session.play(
            &list,
            PlayOptions {
                barge_in: false,
                repeat: false,
            },
        ) else {
            return;
        };
        let limit = tokio::time::sleep(Duration::from_secs(20));
        tokio::pin!(limit);
        loop {
            tokio::select! {
                ev = session.next_event() => match ev {
                    Some(MediaEvent::PlaybackFinished(p)) if p == id => return,
                    Some(MediaEvent::Failed) | Some(MediaEvent::MediaTimeout) | None => return,
                    Some(_) => {}
                },
                ev = events.recv() => if matches!(ev, Some(LegEvent::Ended { .. }) | None) { return },
                _ = &mut limit => return,
            }
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

    /// Option 3: calls the ticket's callback number and bridges the person to the customer
    /// until one of them hangs up.
    async fn connect(
        &self,
        facts: &PageFacts,
        lang: &str,
        leg: &LegHandle,
        events: &mut mpsc::UnboundedReceiver<LegEvent>,
        session: &mut MediaSession,
    ) {
        let number = match (self.callback_check)(&facts.callback_number) {
            Ok(n) => n,
            Err(why) => {
                warn!(ticket = %facts.ticket, %why, "the callback number may not be dialled");
                self.say_and_wait(
                    session,
                    events,
                    &[
                        format!("{lang}/page-callback-refused"),
                        format!("{lang}/page-goodbye"),
                    ],
                )
                .await;
                return;
            }
        };
        let dial = match self.dial(&number) {
            Ok(d) => d,
            Err(why) => {
                warn!(ticket = %facts.ticket, %why, "cannot dial the customer");
                self.say_and_wait(
                    session,
                    events,
                    &[
                        format!("{lang}/page-callback-refused"),
                        format!("{lang}/page-goodbye"),
                    ],
                )
                .await;
                return;
            }
        };
        let _ = session.play(
            &[PromptRef::named(format!("{lang}/page-connecting"))],
            PlayOptions {
                barge_in: false,
                repeat: false,
            },
        );
        let customer_session = match self
            .media
            .open_session_near(&format!("callback-{}", facts.ticket), session)
        {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "no media for the callback leg");
                return;
            }
        };
        let (cleg, mut cevents) = match self.place(&dial, &customer_session).await {
            Ok(x) => x,
            Err(e) => {
                warn!(ticket = %facts.ticket, error = %e, "cannot place the callback");
                customer_session.close().await;
                self.say_and_wait(
                    session,
                    events,
                    &[format!("{lang}/page-customer-no-answer")],
                )
                .await;
                return;
            }
        };
        let ring = tokio::time::sleep(Duration::from_secs(u64::from(
            self.config.callback_ring_secs,
        )));
        tokio::pin!(ring);
        let media = loop {
            tokio::select! {
                ev = cevents.recv() => match ev {
                    Some(LegEvent::Answered { media }) => break Some(media),
                    Some(LegEvent::Ended { reason }) => {
                        info!(ticket = %facts.ticket, %reason, "the customer did not answer");
                        break None;
                    }
                    Some(_) => {}
                    None => break None,
                },
                ev = events.recv() => if matches!(ev, Some(LegEvent::Ended { .. }) | None) {
                    // The technician hung up while the customer's phone rang.
                    cleg.hangup();
                    customer_session.close().await;
                    return;
                },
                _ = &mut ring => {
                    cleg.hangup();
                    break None;
                }
            }
        };
        let Some(media) = media else {
            customer_session.close().await;
            self.say_and_wait(
                session,
                events,
                &[
                    format!("{lang}/page-customer-no-answer"),
                    format!("{lang}/page-goodbye"),
                ],
            )
            .await;
            return;
        };
        let connected_at = Utc::now();
        if let Some(m) = media {
            let peer = m.remote_rtp.ip();
            customer_session.apply(m.with_signalling_peer(peer));
        }
        session.stop_playback();
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
        if let Err(e) = session.bridge(&customer_session) {
            warn!(error = %e, "cannot bridge the customer");
        }
        // Until either side hangs up.
        loop {
            tokio::select! {
                ev = cevents.recv() => if matches!(ev, Some(LegEvent::Ended { .. }) | None) { break },
                ev = events.recv() => match ev {
                    Some(LegEvent::Ended { .. }) | None => break,
                    Some(LegEvent::MediaUpdated { media }) => {
                        let peer = media.remote_rtp.ip();
                        session.apply(media.with_signalling_peer(peer));
                    }
                    Some(_) => {}
                },
            }
        }
        session.unbridge();
        cleg.hangup();
        crate::call::await_bye_answered(&mut cevents).await;
        customer_session.close().await;
        let _ = leg;
    }
}

/// A key within `wait`, from SIP INFO or the media (RFC 4733, in-band).
async fn wait_key(
    events: &mut mpsc::UnboundedReceiver<LegEvent>,
    session: &mut MediaSession,
    wait: Duration,
) -> Option<char> {
    let limit = tokio::time::sleep(wait);
    tokio::pin!(limit);
    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                Some(LegEvent::Dtmf { digit, .. }) => return Some(digit),
                Some(LegEvent::Ended { .. }) | None => return None,
                Some(_) => {}
            },
            ev = session.next_event() => match ev {
                Some(MediaEvent::Digit { digit, .. }) => return Some(digit),
                Some(MediaEvent::MediaTimeout) | Some(MediaEvent::Failed) | None => return None,
                Some(_) => {}
            },
            _ = &mut limit => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_three_keys_do_anything() {
        assert_eq!(MenuChoice::of('1'), MenuChoice::Acknowledge);
        assert_eq!(MenuChoice::of('2'), MenuChoice::HearVoicemail);
        assert_eq!(MenuChoice::of('3'), MenuChoice::AcknowledgeAndConnect);
        for k in ['0', '4', '9', '*', '#', 'A'] {
            assert_eq!(MenuChoice::of(k), MenuChoice::Unknown);
        }
    }
}
