//! What every call shell shares, the caller's IVR (`call::ivr`, and its line test) and the
//! technician's page call (`paging::phone`): one [`CallLeg`] per SIP leg, which merges the
//! leg's SIP and media events into the few [`LegInput`]s a flow needs, the engine's stop
//! signal and a polite hang-up. Both shells drive a sans-I/O flow from the core crate
//! (`IvrFlow`, `PageCallFlow`) with these; neither imports the other.

use std::net::IpAddr;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::media::{
    CallStats, DigitSource, MediaEvent, MediaSession, PlaybackId, RecordingSummary,
};
use crate::sip::{LegEvent, LegHandle};

/// Resolves once the engine is asked to stop; never if nobody can ask any more.
pub async fn stop_requested(stopping: &mut watch::Receiver<bool>) {
    if stopping.wait_for(|&stop| stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Waits (2 s at most) for the answer to our BYE, so a stopping engine does not close the SIP
/// service under a call that is still hanging up.
pub async fn await_bye_answered(events: &mut mpsc::UnboundedReceiver<LegEvent>) {
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(ev) = events.recv().await {
            if matches!(ev, LegEvent::Ended { .. }) {
                break;
            }
        }
    })
    .await;
}

/// What happened on a leg, as a call flow needs to know it.
#[derive(Debug)]
pub enum LegInput {
    /// The call is up: the ACK to our 200 OK came (a call we answered), or the peer's 200 OK
    /// (a call we placed). Its media is already applied.
    Answered,
    /// A key, whichever way it came (RFC 4733, in-band, SIP INFO: the media thread hears each
    /// press once).
    Key {
        digit: char,
        source: DigitSource,
    },
    PlaybackFinished(PlaybackId),
    RecordingFinished(RecordingSummary),
    /// No RTP from the peer for the inactivity timeout, while not on hold.
    MediaTimeout,
    /// The media thread failed or closed this leg: nothing more will come from it.
    MediaFailed,
    /// The SIP leg ended (BYE, CANCEL, a failure response, a timeout), with why.
    Ended(String),
}

/// One SIP leg and its media session, as a call shell holds them. Media updates (re-INVITEs)
/// are applied here and SIP INFO keys handed to the media thread, so the shell only sees
/// [`LegInput`]s.
pub struct CallLeg {
    pub leg: LegHandle,
    events: mpsc::UnboundedReceiver<LegEvent>,
    pub session: MediaSession,
    /// Where an inbound call's signalling came from (RTP may latch to it besides the SDP's
    /// address); `None` for a call we placed, whose SDP address is taken.
    sip_peer: Option<IpAddr>,
    sip_open: bool,
    media_open: bool,
    answered: bool,
    /// We sent BYE or CANCEL.
    hung_up: bool,
}

impl CallLeg {
    /// A call we answered (or are about to): `sip_peer` is where its INVITE came from.
    pub fn inbound(
        leg: LegHandle,
        events: mpsc::UnboundedReceiver<LegEvent>,
        session: MediaSession,
        sip_peer: IpAddr,
    ) -> Self {
        Self::new(leg, events, session, Some(sip_peer))
    }

    /// A call we placed.
    pub fn outbound(
        leg: LegHandle,
        events: mpsc::UnboundedReceiver<LegEvent>,
        session: MediaSession,
    ) -> Self {
        Self::new(leg, events, session, None)
    }

    fn new(
        leg: LegHandle,
        events: mpsc::UnboundedReceiver<LegEvent>,
        session: MediaSession,
        sip_peer: Option<IpAddr>,
    ) -> Self {
        CallLeg {
            leg,
            events,
            session,
            sip_peer,
            sip_open: true,
            media_open: true,
            answered: false,
            hung_up: false,
        }
    }

    /// Whether the call was answered (see [`LegInput::Answered`]).
    pub fn is_answered(&self) -> bool {
        self.answered
    }

    /// Whether the SIP leg can still end (it has not reported [`LegInput::Ended`]).
    pub fn is_up(&self) -> bool {
        self.sip_open
    }

    fn apply(&self, media: crate::media::NegotiatedMedia) {
        let peer = self.sip_peer.unwrap_or(media.remote_rtp.ip());
        self.session.apply(media.with_signalling_peer(peer));
    }

    /// Waits for the next thing the flow must hear about. Cancel-safe: nothing is lost when
    /// another branch of a `select!` wins. Once both the SIP leg and the media have ended it
    /// says `Ended` at once, so a shell never waits on a call that is gone.
    pub async fn next(&mut self) -> LegInput {
        loop {
            if !self.sip_open && !self.media_open {
                return LegInput::Ended("the call ended".to_string());
            }
            tokio::select! {
                ev = self.events.recv(), if self.sip_open => match ev {
                    Some(LegEvent::Confirmed { media }) | Some(LegEvent::Answered { media }) => {
                        if let Some(m) = media {
                            self.apply(m);
                        }
                        self.answered = true;
                        return LegInput::Answered;
                    }
                    Some(LegEvent::MediaUpdated { media }) => self.apply(media),
                    Some(LegEvent::Dtmf { digit, .. }) => self.session.inject_digit(digit),
                    Some(LegEvent::Ringing) => {}
                    Some(LegEvent::Ended { reason }) => {
                        self.sip_open = false;
                        return LegInput::Ended(reason.to_string());
                    }
                    None => {
                        self.sip_open = false;
                        return LegInput::Ended("the call ended".to_string());
                    }
                },
                ev = self.session.next_event(), if self.media_open => match ev {
                    Some(MediaEvent::Digit { digit, source }) => {
                        return LegInput::Key { digit, source }
                    }
                    Some(MediaEvent::PlaybackFinished(id)) => return LegInput::PlaybackFinished(id),
                    Some(MediaEvent::RecordingFinished(r)) => {
                        return LegInput::RecordingFinished(r)
                    }
                    Some(MediaEvent::MediaTimeout) => return LegInput::MediaTimeout,
                    Some(MediaEvent::Failed) => return LegInput::MediaFailed,
                    Some(MediaEvent::SpeechStarted | MediaEvent::SpeechEnded) => {}
                    None => {
                        self.media_open = false;
                        return LegInput::MediaFailed;
                    }
                },
            }
        }
    }

    /// Sends BYE (or CANCEL while it rings); [`CallLeg::await_hangup`] waits for its answer.
    pub fn hangup(&mut self) {
        self.leg.hangup();
        self.hung_up = true;
    }

    /// After [`CallLeg::hangup`], waits (2 s at most) for the leg to end, so a stopping engine
    /// does not close the SIP service under it. A call we placed that never answered is not
    /// waited for: its CANCEL needs no goodbye.
    pub async fn await_hangup(&mut self) {
        let inbound = self.sip_peer.is_some();
        if self.hung_up && self.sip_open && (self.answered || inbound) {
            await_bye_answered(&mut self.events).await;
            self.sip_open = false;
        }
    }

    /// Closes the media session (its statistics are logged by the media thread).
    pub async fn close(self) -> CallStats {
        self.session.close().await
    }

    /// Hangs up, waits for the goodbye, closes the media.
    pub async fn hang_up_and_close(mut self) -> CallStats {
        if self.sip_open {
            self.hangup();
            self.await_hangup().await;
        }
        self.close().await
    }
}
