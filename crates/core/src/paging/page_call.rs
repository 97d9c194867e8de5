//! The technician's page call as a sans-I/O state machine, beside the caller's
//! [`IvrFlow`](crate::call::flow::IvrFlow): the phone rings, the person hears the page and its
//! menu (1 acknowledge, 2 hear the voicemail, 3 acknowledge and be connected to the customer),
//! and the call ends with a [`PhoneOutcome`].
//!
//! Every input is a method taking `now` (answered, a key, the end of a prompt, the customer's
//! leg, a timer); what to do leaves through [`PageCallFlow::poll_action`] and when to wake
//! through [`PageCallFlow::poll_timeout`]. The engine's call shell carries the actions out
//! (SIP, media, the store) and hangs the page leg up once the flow [is done](PageCallFlow::is_done).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::media::PromptCue;

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

/// The page call's clocks and patience (`[paging.phone]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageCallTimers {
    /// How long the person's phone rings before the page counts as not answered.
    pub ring: Duration,
    /// Rounds of the page and its menu before the call ends without a key.
    pub menu_repeats: u32,
    /// After the last round, how long a late key is still waited for.
    pub late_key: Duration,
    /// The longest a closing message ("acknowledged, goodbye") is waited for.
    pub say_limit: Duration,
    /// How long the customer's phone rings on option 3.
    pub callback_ring: Duration,
}

impl PageCallTimers {
    /// The engine's fixed patience around `[paging.phone]`'s ring and repeats.
    pub fn new(ring: Duration, menu_repeats: u32, callback_ring: Duration) -> PageCallTimers {
        PageCallTimers {
            ring,
            menu_repeats,
            late_key: Duration::from_secs(6),
            say_limit: Duration::from_secs(20),
            callback_ring,
        }
    }
}

/// One thing to say: a prompt, or the ticket's voicemail (which the shell has loaded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageSay {
    Cue(PromptCue),
    Voicemail,
}

/// What the shell must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageAction {
    /// Play these, replacing what plays; report its end with `on_playback_finished`.
    Play {
        items: Vec<PageSay>,
        barge_in: bool,
    },
    StopPlayback,
    /// Load the ticket's voicemail and answer with `on_voicemail`.
    LoadVoicemail,
    /// Record the acknowledgement on the ticket.
    Acknowledge {
        key: char,
    },
    /// Check and dial the ticket's callback number, answering with `on_customer`.
    DialCustomer,
    /// The customer answered: record the ticket as called back, now.
    RecordCalledBack,
    /// Join the person and the customer.
    Bridge,
    Unbridge,
    /// End the customer's leg (and free its media).
    HangUpCustomer,
}

/// What happened to the customer's leg (option 3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CustomerLeg {
    /// The number may not be dialled (not a number we call back, or no route to it).
    Refused(String),
    /// The call could not be placed (no media port, SIP refused it at once).
    CannotCall(String),
    /// Placed: the customer's phone rings.
    Ringing,
    Answered,
    /// The customer's leg ended (not answered, busy, or hung up).
    Ended,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Voicemail {
    NotLoaded,
    /// Asked for; play it when it comes.
    Loading,
    Loaded,
    Missing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Ringing {
        until: Instant,
    },
    /// The page and its menu, round after round.
    Menu {
        rounds: u32,
    },
    /// After the last round: a late key still counts.
    LastChance {
        until: Instant,
    },
    /// A closing message, not interruptible, then the end.
    Closing {
        until: Instant,
    },
    /// Option 3: waiting for the shell to place the customer's call.
    Dialling,
    CustomerRinging {
        until: Instant,
    },
    Bridged,
    Done,
}

/// One technician's page call.
#[derive(Debug)]
pub struct PageCallFlow {
    timers: PageCallTimers,
    lang: String,
    /// The page itself (who, what, which ticket), said before each menu.
    speech: Vec<PromptCue>,
    state: State,
    voicemail: Voicemail,
    /// The key that acknowledged (1 or 3).
    acknowledged_by: Option<char>,
    actions: VecDeque<PageAction>,
    outcome: Option<PhoneOutcome>,
}

impl PageCallFlow {
    /// The call has been placed at `now` and rings; `speech` is the page in `lang`'s words
    /// (`wording::spoken_page`).
    pub fn new(
        now: Instant,
        timers: PageCallTimers,
        lang: &str,
        speech: Vec<PromptCue>,
    ) -> PageCallFlow {
        PageCallFlow {
            timers,
            lang: lang.to_string(),
            speech,
            state: State::Ringing {
                until: now + timers.ring,
            },
            voicemail: Voicemail::NotLoaded,
            acknowledged_by: None,
            actions: VecDeque::new(),
            outcome: None,
        }
    }

    pub fn poll_action(&mut self) -> Option<PageAction> {
        self.actions.pop_front()
    }

    /// When to call [`PageCallFlow::handle_timeout`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Ringing { until }
            | State::LastChance { until }
            | State::Closing { until }
            | State::CustomerRinging { until } => Some(until),
            _ => None,
        }
    }

    /// Set once the call is over; the shell then hangs the page leg up.
    pub fn outcome(&self) -> Option<&PhoneOutcome> {
        self.outcome.as_ref()
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Whether the person picked up (the page is then delivered, whatever follows).
    pub fn was_answered(&self) -> bool {
        !matches!(self.state, State::Ringing { .. })
            && !matches!(self.outcome, Some(PhoneOutcome::NotAnswered(_)))
    }

    pub fn on_answered(&mut self, _now: Instant) {
        if let State::Ringing { .. } = self.state {
            self.state = State::Menu { rounds: 0 };
            let items = self.speech.iter().cloned().map(PageSay::Cue).collect();
            self.play(items, true);
        }
    }

    /// The page leg ended: the person hung up, or their phone refused the call.
    pub fn on_ended(&mut self, _now: Instant, reason: &str) {
        match self.state {
            State::Ringing { .. } => self.finish(PhoneOutcome::NotAnswered(reason.to_string())),
            State::Menu { .. } | State::LastChance { .. } => {
                self.finish(PhoneOutcome::AnsweredWithoutKey)
            }
            State::Closing { .. } => self.finish_acknowledged(),
            State::Dialling | State::CustomerRinging { .. } => {
                self.actions.push_back(PageAction::HangUpCustomer);
                self.finish_acknowledged();
            }
            State::Bridged => {
                self.actions.push_back(PageAction::Unbridge);
                self.actions.push_back(PageAction::HangUpCustomer);
                self.finish_acknowledged();
            }
            State::Done => {}
        }
    }

    /// A key, from RFC 4733, SIP INFO or in-band detection.
    pub fn on_key(&mut self, now: Instant, key: char) {
        if !matches!(self.state, State::Menu { .. } | State::LastChance { .. }) {
            return;
        }
        let rounds = match self.state {
            State::Menu { rounds } => rounds,
            _ => self.timers.menu_repeats,
        };
        match MenuChoice::of(key) {
            MenuChoice::Acknowledge => {
                self.acknowledged_by = Some(key);
                self.actions.push_back(PageAction::Acknowledge { key });
                self.close_with(&["page-acknowledged", "page-goodbye"], now);
            }
            MenuChoice::AcknowledgeAndConnect => {
                self.acknowledged_by = Some(key);
                self.actions.push_back(PageAction::Acknowledge { key });
                self.actions.push_back(PageAction::DialCustomer);
                self.state = State::Dialling;
            }
            MenuChoice::HearVoicemail => {
                self.state = State::Menu { rounds };
                match self.voicemail {
                    Voicemail::NotLoaded => {
                        self.voicemail = Voicemail::Loading;
                        self.actions.push_back(PageAction::LoadVoicemail);
                    }
                    Voicemail::Loading => {}
                    Voicemail::Loaded | Voicemail::Missing => self.play_voicemail(),
                }
            }
            MenuChoice::Unknown => {
                self.state = State::Menu { rounds };
                let menu = vec![self.cue("page-menu")];
                self.play(menu, true);
            }
        }
    }

    /// The shell loaded the ticket's voicemail (`false`: there is none, or it is unreadable).
    pub fn on_voicemail(&mut self, _now: Instant, loaded: bool) {
        if self.voicemail != Voicemail::Loading {
            return;
        }
        self.voicemail = if loaded {
            Voicemail::Loaded
        } else {
            Voicemail::Missing
        };
        if matches!(self.state, State::Menu { .. }) {
            self.play_voicemail();
        }
    }

    /// The last [`PageAction::Play`] has played to its end.
    pub fn on_playback_finished(&mut self, now: Instant) {
        match self.state {
            State::Menu { rounds } => {
                let rounds = rounds + 1;
                if rounds >= self.timers.menu_repeats {
                    self.state = State::LastChance {
                        until: now + self.timers.late_key,
                    };
                } else {
                    self.state = State::Menu { rounds };
                    let mut items: Vec<PageSay> =
                        self.speech.iter().cloned().map(PageSay::Cue).collect();
                    items.push(self.cue("page-menu"));
                    self.play(items, true);
                }
            }
            State::Closing { .. } => self.finish_acknowledged(),
            _ => {}
        }
    }

    /// The last [`PageAction::Play`] could not start: a closing message is then skipped; in the
    /// menu, keys are still waited for.
    pub fn on_play_failed(&mut self, _now: Instant) {
        if let State::Closing { .. } = self.state {
            self.finish_acknowledged();
        }
    }

    /// No more audio from the person's phone (RTP timeout, media failure).
    pub fn on_media_lost(&mut self, _now: Instant) {
        match self.state {
            State::Menu { .. } | State::LastChance { .. } => {
                self.finish(PhoneOutcome::AnsweredWithoutKey)
            }
            State::Closing { .. } => self.finish_acknowledged(),
            // Ringing has no media yet; while connecting, the customer's leg decides.
            _ => {}
        }
    }

    pub fn on_customer(&mut self, now: Instant, leg: CustomerLeg) {
        match (self.state, leg) {
            (State::Dialling, CustomerLeg::Refused(_)) => {
                self.close_with(&["page-callback-refused", "page-goodbye"], now)
            }
            (State::Dialling, CustomerLeg::CannotCall(_)) => {
                self.close_with(&["page-customer-no-answer", "page-goodbye"], now)
            }
            (State::Dialling, CustomerLeg::Ringing) => {
                self.state = State::CustomerRinging {
                    until: now + self.timers.callback_ring,
                };
                let connecting = vec![self.cue("page-connecting")];
                self.play(connecting, false);
            }
            (State::CustomerRinging { .. }, CustomerLeg::Answered) => {
                self.state = State::Bridged;
                self.actions.push_back(PageAction::StopPlayback);
                self.actions.push_back(PageAction::RecordCalledBack);
                self.actions.push_back(PageAction::Bridge);
            }
            (State::CustomerRinging { .. }, CustomerLeg::Ended) => {
                self.actions.push_back(PageAction::HangUpCustomer);
                self.close_with(&["page-customer-no-answer", "page-goodbye"], now);
            }
            (State::Bridged, CustomerLeg::Ended) => {
                self.actions.push_back(PageAction::Unbridge);
                self.actions.push_back(PageAction::HangUpCustomer);
                self.finish_acknowledged();
            }
            _ => {}
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            State::Ringing { until } if now >= until => self.finish(PhoneOutcome::NotAnswered(
                format!("no answer in {} s", self.timers.ring.as_secs()),
            )),
            State::LastChance { until } if now >= until => {
                self.finish(PhoneOutcome::AnsweredWithoutKey)
            }
            State::Closing { until } if now >= until => self.finish_acknowledged(),
            State::CustomerRinging { until } if now >= until => {
                self.actions.push_back(PageAction::HangUpCustomer);
                self.close_with(&["page-customer-no-answer", "page-goodbye"], now);
            }
            _ => {}
        }
    }

    fn cue(&self, name: &str) -> PageSay {
        PageSay::Cue(PromptCue::named(format!("{}/{name}", self.lang)))
    }

    fn play(&mut self, items: Vec<PageSay>, barge_in: bool) {
        self.actions.push_back(PageAction::Play { items, barge_in });
    }

    fn play_voicemail(&mut self) {
        let first = if self.voicemail == Voicemail::Loaded {
            PageSay::Voicemail
        } else {
            self.cue("page-no-voicemail")
        };
        let menu = self.cue("page-menu");
        self.play(vec![first, menu], true);
    }

    /// Says `names` to their end (or `say_limit`), then the call ends acknowledged.
    fn close_with(&mut self, names: &[&str], now: Instant) {
        let items = names.iter().map(|n| self.cue(n)).collect();
        self.play(items, false);
        self.state = State::Closing {
            until: now + self.timers.say_limit,
        };
    }

    fn finish_acknowledged(&mut self) {
        let outcome = match self.acknowledged_by {
            Some(by_key) => PhoneOutcome::Acknowledged { by_key },
            None => PhoneOutcome::AnsweredWithoutKey,
        };
        self.finish(outcome);
    }

    fn finish(&mut self, outcome: PhoneOutcome) {
        self.state = State::Done;
        self.outcome = Some(outcome);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn timers() -> PageCallTimers {
        PageCallTimers::new(30 * S, 3, 45 * S)
    }

    fn flow(t0: Instant) -> PageCallFlow {
        PageCallFlow::new(
            t0,
            timers(),
            "fr",
            vec![
                PromptCue::named("fr/page-intro"),
                PromptCue::digits("fr", "1042"),
            ],
        )
    }

    fn drain(f: &mut PageCallFlow) -> Vec<PageAction> {
        std::iter::from_fn(|| f.poll_action()).collect()
    }

    fn named(n: &str) -> PageSay {
        PageSay::Cue(PromptCue::named(n))
    }

    fn speech() -> Vec<PageSay> {
        vec![
            named("fr/page-intro"),
            PageSay::Cue(PromptCue::digits("fr", "1042")),
        ]
    }

    /// A flow answered at t0 whose first playback has been drained.
    fn answered(t0: Instant) -> PageCallFlow {
        let mut f = flow(t0);
        f.on_answered(t0);
        assert_eq!(
            drain(&mut f),
            vec![PageAction::Play {
                items: speech(),
                barge_in: true
            }]
        );
        f
    }

    #[test]
    fn a_phone_that_never_answers_is_hung_up_after_the_ring_time() {
        let t0 = crate::test_origin();
        let mut f = flow(t0);
        assert_eq!(f.poll_timeout(), Some(t0 + 30 * S));
        f.handle_timeout(t0 + 29 * S);
        assert!(!f.is_done());
        f.handle_timeout(t0 + 30 * S);
        assert!(f.is_done());
        assert!(!f.was_answered());
        assert_eq!(
            f.outcome(),
            Some(&PhoneOutcome::NotAnswered("no answer in 30 s".into()))
        );
        assert_eq!(drain(&mut f), vec![]);
    }

    #[test]
    fn busy_or_refused_while_ringing_gives_the_reason() {
        let t0 = crate::test_origin();
        let mut f = flow(t0);
        f.on_ended(t0 + 2 * S, "486 Busy Here");
        assert_eq!(
            f.outcome(),
            Some(&PhoneOutcome::NotAnswered("486 Busy Here".into()))
        );
        // Keys or media after the end change nothing.
        f.on_key(t0 + 3 * S, '1');
        assert_eq!(drain(&mut f), vec![]);
    }

    #[test]
    fn press_1_acknowledges_says_goodbye_and_ends() {
        let t0 = crate::test_origin();
        let mut f = answered(t0);
        assert!(f.was_answered());
        f.on_key(t0 + 5 * S, '1');
        assert_eq!(
            drain(&mut f),
            vec![
                PageAction::Acknowledge { key: '1' },
                PageAction::Play {
                    items: vec![named("fr/page-acknowledged"), named("fr/page-goodbye")],
                    barge_in: false
                }
            ]
        );
        // Keys during the goodbye are not a second acknowledgement.
        f.on_key(t0 + 6 * S, '1');
        assert_eq!(drain(&mut f), vec![]);
        assert!(!f.is_done());
        f.on_playback_finished(t0 + 8 * S);
        assert_eq!(
            f.outcome(),
            Some(&PhoneOutcome::Acknowledged { by_key: '1' })
        );
    }

    #[test]
    fn a_goodbye_that_never_ends_is_cut_at_the_say_limit() {
        let t0 = crate::test_origin();
        let mut f = answered(t0);
        f.on_key(t0, '1');
        drain(&mut f);
        assert_eq!(f.poll_timeout(), Some(t0 + 20 * S));
        f.handle_timeout(t0 + 20 * S);
        assert_eq!(
            f.outcome(),
            Some(&PhoneOutcome::Acknowledged { by_key: '1' })
        );
    }

    #[test]
    fn hanging_up_during_the_goodbye_still_counts_the_acknowledgement() {
        let t0 = crate::test_origin();
        let mut f = answered(t0);
        f.on_key(t0, '1');
        drain(&mut f);
        f.on_ended(t0 + S, "BYE");
        assert_eq!(
            f.outcome(),
            Some(&PhoneOutcome::Acknowledged { by_key: '1' })
        );
    }

    #[test]
    fn no_key_repeats_the_page_then_waits_for_a_late_key_then_ends() {
        let t0 = crate::test_origin();
        let mut f = answered(t0);
        let mut round_with_menu = speech();
        round_with_menu.push(named("fr/page-menu"));
        for round in 1..3u32 {
            f.on_playback_finished(t0 + round * 10 * S);
            assert_eq!(
                drain(&mut f),
                vec![PageAction::Play {
                    items: round_with_menu.clone(),
                    barge_in: true
                }],
                "round {round}"
            );
            assert_eq!(f.poll_timeout(), None);
        }
        // Third round over: a late key is still heard for 6 s.
        f.on_playback_finished(t0 + 30 * S);
        assert_eq!(drain(&mut f), vec![]);
        assert_eq!(f.poll_timeout(), Some(t0 + 36 * S));
        f.handle_timeout(t0 + 36 * S);
        assert_eq!(f.outcome(), Some(&PhoneOutcome::AnsweredWithoutKey));
    }

    #[test]
    fn a_late_key_after_the_last_round_still_acknowledges() {
        let t0 = crate::test_origin();
        let mut f = answered(t0);
        for i in 1..=3u32 {
            f.on_playback_finished(t0 + i * 10 * S);
        }
        drain(&mut f);
        f.on_key(t0 + 33 * S, '1');
        assert_eq!(drain(&mut f)[0], PageAction::Acknowledge { key: '1' });
        f.on_playback_finished(t0 + 36 * S);
        assert_eq!(
            f.outcome(),
            Some(&PhoneOutcome::Acknowledged { by_key: '1' })
        );
    }

    #[test]
    fn an_unknown_key_replays_the_menu_only() {
        let t0 = crate::test_origin();
        let mut f = answered(t0);
        for k in ['9', '*', '#', '0'] {
            f.on_key(t0 + S, k);
            assert_eq!(
                drain(&mut f),
                vec![PageAction::Play {
                    items: vec![named("fr/page-menu")],
                    barge_in: true
                }],
                "{k}"
            );
        }
        assert!(!f.is_done());
    }

    #[test]
    fn press_2_loads_the_voicemail_once_and_plays_it_with_the_menu() {
        let t0 = crate::test_origin();
        let mut f = answered(t0);
        f.on_key(t0 + S, '2');
        assert_eq!(drain(&mut f), vec![PageAction::LoadVoicemail]);
        // A second 2 while it loads asks nothing more.
        f.on_key(t0 + S, '2');
        assert_eq!(drain(&mut f), vec![]);
        f.on_voicemail(t0 + 2 * S, true);
        let with_menu = vec![PageAction::Play {
            items: vec![PageSay::Voicemail, named("fr/page-menu")],
            barge_in: true,
        }];
        assert_eq!(drain(&mut f), with_menu);
        // Again: played from what was loaded, not loaded twice.
        f.on_key(t0 + 20 * S, '2');
        assert_eq!(drain(&mut f), with_menu);
        f.on_key(t0 + 25 * S, '1');
        assert_eq!(drain(&mut f)[0], PageAction::Acknowledge { key: '1' });
    }

    #[test]
    fn press_2_without_a_voicemail_says_so() {
        let t0 = crate::test_origin();
        let mut f = answered(t0);
        f.on_key(t0 + S, '2');
        drain(&mut f);
        f.on_voicemail(t0 + S, false);
        assert_eq!(
            drain(&mut f),
            vec![PageAction::Play {
                items: vec![named("fr/page-no-voicemail"), named("fr/page-menu")],
                barge_in: true
            }]
        );
    }

    #[test]
    fn hanging_up_in_the_menu_is_answered_without_key() {
        let t0 = crate::test_origin();
        let mut f = answered(t0);
        f.on_ended(t0 + 4 * S, "BYE");
        assert_eq!(f.outcome(), Some(&PhoneOutcome::AnsweredWithoutKey));
        let mut g = answered(t0);
        g.on_media_lost(t0 + 4 * S);
        assert_eq!(g.outcome(), Some(&PhoneOutcome::AnsweredWithoutKey));
    }

    fn connecting(t0: Instant) -> PageCallFlow {
        let mut f = answered(t0);
        f.on_key(t0 + S, '3');
        assert_eq!(
            drain(&mut f),
            vec![
                PageAction::Acknowledge { key: '3' },
                PageAction::DialCustomer
            ]
        );
        f
    }

    #[test]
    fn press_3_connects_the_customer_and_records_the_callback() {
        let t0 = crate::test_origin();
        let mut f = connecting(t0);
        f.on_customer(t0 + S, CustomerLeg::Ringing);
        assert_eq!(
            drain(&mut f),
            vec![PageAction::Play {
                items: vec![named("fr/page-connecting")],
                barge_in: false
            }]
        );
        assert_eq!(f.poll_timeout(), Some(t0 + 46 * S));
        // Keys and the end of "connecting" change nothing while it rings.
        f.on_key(t0 + 2 * S, '1');
        f.on_playback_finished(t0 + 3 * S);
        assert_eq!(drain(&mut f), vec![]);
        f.on_customer(t0 + 10 * S, CustomerLeg::Answered);
        assert_eq!(
            drain(&mut f),
            vec![
                PageAction::StopPlayback,
                PageAction::RecordCalledBack,
                PageAction::Bridge
            ]
        );
        assert_eq!(f.poll_timeout(), None, "a bridged call has no limit here");
        f.on_customer(t0 + 600 * S, CustomerLeg::Ended);
        assert_eq!(
            drain(&mut f),
            vec![PageAction::Unbridge, PageAction::HangUpCustomer]
        );
        assert_eq!(
            f.outcome(),
            Some(&PhoneOutcome::Acknowledged { by_key: '3' })
        );
    }

    #[test]
    fn the_technician_hanging_up_ends_the_bridge() {
        let t0 = crate::test_origin();
        let mut f = connecting(t0);
        f.on_customer(t0 + S, CustomerLeg::Ringing);
        f.on_customer(t0 + 2 * S, CustomerLeg::Answered);
        drain(&mut f);
        f.on_ended(t0 + 90 * S, "BYE");
        assert_eq!(
            drain(&mut f),
            vec![PageAction::Unbridge, PageAction::HangUpCustomer]
        );
        assert!(f.is_done());
    }

    #[test]
    fn a_customer_who_does_not_answer_is_hung_up_and_the_technician_told() {
        let t0 = crate::test_origin();
        let mut f = connecting(t0);
        f.on_customer(t0 + S, CustomerLeg::Ringing);
        drain(&mut f);
        f.handle_timeout(t0 + 46 * S);
        assert_eq!(
            drain(&mut f),
            vec![
                PageAction::HangUpCustomer,
                PageAction::Play {
                    items: vec![
                        named("fr/page-customer-no-answer"),
                        named("fr/page-goodbye")
                    ],
                    barge_in: false
                }
            ]
        );
        f.on_playback_finished(t0 + 50 * S);
        assert_eq!(
            f.outcome(),
            Some(&PhoneOutcome::Acknowledged { by_key: '3' })
        );
        // A busy customer: the same words.
        let mut g = connecting(t0);
        g.on_customer(t0 + S, CustomerLeg::Ringing);
        drain(&mut g);
        g.on_customer(t0 + 2 * S, CustomerLeg::Ended);
        assert_eq!(drain(&mut g)[0], PageAction::HangUpCustomer);
    }

    #[test]
    fn a_refused_callback_number_is_never_dialled_and_the_technician_told() {
        let t0 = crate::test_origin();
        let mut f = connecting(t0);
        f.on_customer(t0 + S, CustomerLeg::Refused("premium-rate number".into()));
        assert_eq!(
            drain(&mut f),
            vec![PageAction::Play {
                items: vec![named("fr/page-callback-refused"), named("fr/page-goodbye")],
                barge_in: false
            }]
        );
        f.on_playback_finished(t0 + 5 * S);
        assert_eq!(
            f.outcome(),
            Some(&PhoneOutcome::Acknowledged { by_key: '3' })
        );
        let mut g = connecting(t0);
        g.on_customer(t0 + S, CustomerLeg::CannotCall("no media port".into()));
        assert_eq!(
            drain(&mut g),
            vec![PageAction::Play {
                items: vec![
                    named("fr/page-customer-no-answer"),
                    named("fr/page-goodbye")
                ],
                barge_in: false
            }]
        );
        g.on_play_failed(t0 + S);
        assert!(g.is_done());
    }

    #[test]
    fn the_technician_hanging_up_while_the_customer_rings_cancels_the_customer() {
        let t0 = crate::test_origin();
        let mut f = connecting(t0);
        f.on_customer(t0 + S, CustomerLeg::Ringing);
        drain(&mut f);
        f.on_ended(t0 + 5 * S, "BYE");
        assert_eq!(drain(&mut f), vec![PageAction::HangUpCustomer]);
        assert_eq!(
            f.outcome(),
            Some(&PhoneOutcome::Acknowledged { by_key: '3' })
        );
    }

    #[test]
    fn english_pages_speak_english_prompts() {
        let t0 = crate::test_origin();
        let mut f = PageCallFlow::new(t0, timers(), "en", vec![]);
        f.on_answered(t0);
        drain(&mut f);
        f.on_key(t0, '7');
        assert_eq!(
            drain(&mut f),
            vec![PageAction::Play {
                items: vec![named("en/page-menu")],
                barge_in: true
            }]
        );
    }

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
