//! The endpoint's transactions and dialogs driven with synthetic time: a 32-second ACK wait or a
//! session timer runs in microseconds.

use std::time::{Duration, Instant};

use astreinte::media::MediaDirection;
use astreinte::sip::endpoint::{
    Caller, Credentials, EndReason, Endpoint, EndpointConfig, Event, LegId, OutboundCall, Peer,
    RegisterSpec, RegistrationState,
};
use astreinte::sip::message::{self, Message, Request, Response};
use astreinte::sip::routing::{NumberSet, TrustedSources};
use astreinte::sip::transaction::Timers;

const PEER: &str = "127.0.0.1:5999";
const SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n";

struct Harness {
    ep: Endpoint,
    now: Instant,
    peer: Peer,
}

fn config(trusted: &str, rate: u32) -> EndpointConfig {
    EndpointConfig {
        local_addr: "127.0.0.1:5060".parse().unwrap(),
        numbers: NumberSet::new(["+15149073400", "611"]),
        trusted: TrustedSources::new(vec![trusted.parse().unwrap()]),
        rate_limit_per_source: rate,
        user_agent: "astreinte-test".into(),
        timers: Timers::default(),
        seed: astreinte::sip::RngSeed([1; 32]),
    }
}

impl Harness {
    fn new() -> Harness {
        Harness::with(config("127.0.0.0/8", 10_000))
    }

    fn with(cfg: EndpointConfig) -> Harness {
        Harness {
            ep: Endpoint::new(cfg),
            now: Instant::now(),
            peer: Peer::udp(PEER.parse().unwrap()),
        }
    }

    fn send(&mut self, text: &str) {
        let text = text.replace('\n', "\r\n").replace("\r\r\n", "\r\n");
        self.ep.handle_input(self.now, self.peer, text.as_bytes());
    }

    fn send_raw(&mut self, bytes: &[u8]) {
        self.ep.handle_input(self.now, self.peer, bytes);
    }

    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        while let Some(t) = self.ep.poll_timeout() {
            if t > end {
                break;
            }
            self.now = t.max(self.now);
            self.ep.handle_timeout(self.now);
        }
        self.now = end;
    }

    fn sent(&mut self) -> Vec<Message> {
        let mut out = Vec::new();
        while let Some(t) = self.ep.poll_transmit() {
            out.push(message::parse(&t.bytes).expect("endpoint sends valid SIP"));
        }
        out
    }

    fn responses(&mut self) -> Vec<Response> {
        self.sent()
            .into_iter()
            .filter_map(|m| match m {
                Message::Response(r) => Some(r),
                _ => None,
            })
            .collect()
    }

    fn codes(&mut self) -> Vec<u16> {
        self.responses().iter().map(|r| r.code).collect()
    }

    fn events(&mut self) -> Vec<Event> {
        let mut out = Vec::new();
        while let Some(e) = self.ep.poll_event() {
            out.push(e);
        }
        out
    }

    fn incoming_leg(&mut self) -> LegId {
        self.events()
            .into_iter()
            .find_map(|e| match e {
                Event::Incoming(c) => Some(c.leg),
                _ => None,
            })
            .expect("an incoming call")
    }
}

fn invite(call_id: &str, branch: &str, extra: &str, body: &str) -> String {
    let ctype = if body.is_empty() {
        ""
    } else {
        "Content-Type: application/sdp\n"
    };
    format!(
        "INVITE sip:5149073400@127.0.0.1 SIP/2.0\nVia: SIP/2.0/UDP {PEER};branch={branch}\nMax-Forwards: 70\nFrom: \"Caller\" <sip:5145550100@127.0.0.1>;tag=caller1\nTo: <sip:5149073400@127.0.0.1>\nCall-ID: {call_id}\nCSeq: 1 INVITE\nContact: <sip:caller@{PEER}>\n{extra}{ctype}Content-Length: {}\n\n{body}",
        body.len()
    )
}

fn in_dialog(
    method: &str,
    call_id: &str,
    to_tag: &str,
    cseq: u32,
    branch: &str,
    extra: &str,
    body: &str,
) -> String {
    format!(
        "{method} sip:astreinte@127.0.0.1:5060 SIP/2.0\nVia: SIP/2.0/UDP {PEER};branch={branch}\nMax-Forwards: 70\nFrom: \"Caller\" <sip:5145550100@127.0.0.1>;tag=caller1\nTo: <sip:5149073400@127.0.0.1>;tag={to_tag}\nCall-ID: {call_id}\nCSeq: {cseq} {method}\n{extra}Content-Length: {}\n\n{body}",
        body.len()
    )
}

fn to_tag(r: &Response) -> String {
    r.to()
        .and_then(|t| t.tag().map(str::to_string))
        .expect("To tag")
}

/// INVITE → 100 → answer → 200 → ACK; returns (leg, our tag).
fn established(h: &mut Harness, call_id: &str, extra: &str) -> (LegId, String) {
    h.send(&invite(call_id, "z9hG4bKinv1", extra, SDP));
    assert_eq!(h.codes(), vec![100]);
    let leg = h.incoming_leg();
    assert!(h.ep.answer(h.now, leg, "127.0.0.1:20000".parse().unwrap()));
    let ok = h.responses();
    assert_eq!(ok.len(), 1);
    assert_eq!(ok[0].code, 200);
    let tag = to_tag(&ok[0]);
    h.send(&in_dialog("ACK", call_id, &tag, 1, "z9hG4bKack1", "", ""));
    assert!(matches!(h.events().as_slice(), [Event::Confirmed { .. }]));
    (leg, tag)
}

#[test]
fn answered_call_carries_sdp_answer_and_dialog_headers() {
    let mut h = Harness::new();
    h.send(&invite("c1", "z9hG4bK1", "", SDP));
    assert_eq!(h.codes(), vec![100]);
    let leg = h.incoming_leg();
    h.ep.answer(h.now, leg, "127.0.0.1:20000".parse().unwrap());
    let ok = h.responses().remove(0);
    assert_eq!(ok.code, 200);
    let body = String::from_utf8(ok.body.clone()).unwrap();
    assert!(body.contains("m=audio 20000 RTP/AVP 0 101"), "{body}");
    assert!(ok.headers.get("Contact").is_some());
    assert!(ok.headers.get("Allow").unwrap().contains("BYE"));
    assert_eq!(ok.headers.get("Content-Type"), Some("application/sdp"));
    assert!(ok
        .headers
        .get("Via")
        .unwrap()
        .contains("received=127.0.0.1"));
}

#[test]
fn retransmitted_invite_is_absorbed_and_offered_once() {
    let mut h = Harness::new();
    let inv = invite("c2", "z9hG4bK2", "", SDP);
    h.send(&inv);
    h.send(&inv);
    h.send(&inv);
    assert_eq!(h.codes(), vec![100, 100, 100]);
    let incoming = h
        .events()
        .iter()
        .filter(|e| matches!(e, Event::Incoming(_)))
        .count();
    assert_eq!(incoming, 1);
}

#[test]
fn unacknowledged_2xx_is_retransmitted_then_the_call_is_ended_with_bye() {
    let mut h = Harness::new();
    h.send(&invite("c3", "z9hG4bK3", "", SDP));
    h.codes();
    let leg = h.incoming_leg();
    h.ep.answer(h.now, leg, "127.0.0.1:20000".parse().unwrap());
    assert_eq!(h.codes(), vec![200]);
    let mut retransmits = 0;
    let mut bye = false;
    for _ in 0..40 {
        h.advance(Duration::from_secs(1));
        for m in h.sent() {
            match m {
                Message::Response(r) if r.code == 200 => retransmits += 1,
                Message::Request(r) if r.method.as_str() == "BYE" => bye = true,
                _ => {}
            }
        }
    }
    // T1 doubling to T2: 0.5, 1, 2, 4, 4, 4... within 32 s is 10 retransmissions.
    assert!((9..=11).contains(&retransmits), "{retransmits}");
    assert!(bye, "a BYE after 64*T1 without ACK");
    assert!(h.events().contains(&Event::Ended {
        leg,
        reason: EndReason::NoAck
    }));
}

#[test]
fn cancel_before_answer_gives_200_and_487_then_ack_stops_retransmissions() {
    let mut h = Harness::new();
    h.send(&invite("c4", "z9hG4bK4", "", SDP));
    h.codes();
    let leg = h.incoming_leg();
    h.send(&format!(
        "CANCEL sip:5149073400@127.0.0.1 SIP/2.0\nVia: SIP/2.0/UDP {PEER};branch=z9hG4bK4\nMax-Forwards: 70\nFrom: \"Caller\" <sip:5145550100@127.0.0.1>;tag=caller1\nTo: <sip:5149073400@127.0.0.1>\nCall-ID: c4\nCSeq: 1 CANCEL\nContent-Length: 0\n\n"
    ));
    let rs = h.responses();
    assert_eq!(
        rs.iter().map(|r| r.code).collect::<Vec<_>>(),
        vec![200, 487]
    );
    assert_eq!(rs[1].cseq().unwrap().method, "INVITE");
    assert!(h.events().contains(&Event::Ended {
        leg,
        reason: EndReason::Cancelled
    }));
    // Without ACK the 487 is retransmitted (timer G)...
    h.advance(Duration::from_millis(600));
    assert_eq!(h.codes(), vec![487]);
    // ...and the ACK (same branch) stops it.
    let tag = to_tag(&rs[1]);
    h.send(
        &in_dialog("ACK", "c4", &tag, 1, "z9hG4bK4", "", "")
            .replace("sip:astreinte@127.0.0.1:5060", "sip:5149073400@127.0.0.1"),
    );
    h.advance(Duration::from_secs(10));
    assert_eq!(h.codes(), Vec::<u16>::new());
    // The answer that arrives too late does nothing.
    assert!(!h.ep.answer(h.now, leg, "127.0.0.1:20000".parse().unwrap()));
}

#[test]
fn cancel_for_unknown_transaction_gets_481() {
    let mut h = Harness::new();
    h.send(&format!(
        "CANCEL sip:611@127.0.0.1 SIP/2.0\nVia: SIP/2.0/UDP {PEER};branch=z9hG4bKnone\nFrom: <sip:a@b>;tag=1\nTo: <sip:611@127.0.0.1>\nCall-ID: nope\nCSeq: 1 CANCEL\nContent-Length: 0\n\n"
    ));
    assert_eq!(h.codes(), vec![481]);
}

#[test]
fn bye_from_caller_ends_the_call() {
    let mut h = Harness::new();
    let (leg, tag) = established(&mut h, "c5", "");
    h.send(&in_dialog("BYE", "c5", &tag, 2, "z9hG4bKbye", "", ""));
    assert_eq!(h.codes(), vec![200]);
    assert!(h.events().contains(&Event::Ended {
        leg,
        reason: EndReason::RemoteBye
    }));
    // A retransmitted BYE gets the same answer from the transaction.
    h.send(&in_dialog("BYE", "c5", &tag, 2, "z9hG4bKbye", "", ""));
    assert_eq!(h.codes(), vec![200]);
    // A new BYE for the ended dialog gets 481.
    h.send(&in_dialog("BYE", "c5", &tag, 3, "z9hG4bKbye2", "", ""));
    assert_eq!(h.codes(), vec![481]);
}

#[test]
fn engine_hangup_sends_bye_retransmitted_until_answered() {
    let mut h = Harness::new();
    let (leg, tag) = established(&mut h, "c6", "");
    h.ep.hangup(h.now, leg);
    let sent = h.sent();
    let Message::Request(bye) = &sent[0] else {
        panic!("{sent:?}")
    };
    assert_eq!(bye.method.as_str(), "BYE");
    assert_eq!(bye.uri, format!("sip:caller@{PEER}"));
    assert_eq!(bye.from().unwrap().tag(), Some(tag.as_str()));
    assert_eq!(bye.to().unwrap().tag(), Some("caller1"));
    assert!(h.events().contains(&Event::Ended {
        leg,
        reason: EndReason::LocalHangup
    }));
    h.advance(Duration::from_millis(600));
    assert_eq!(h.sent().len(), 1, "BYE retransmitted after T1");
    let branch = bye.top_via().unwrap().branch().unwrap().to_string();
    h.send(&format!(
        "SIP/2.0 200 OK\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch={branch}\nFrom: {}\nTo: {}\nCall-ID: c6\nCSeq: {}\nContent-Length: 0\n\n",
        bye.headers.get("From").unwrap(), bye.headers.get("To").unwrap(), bye.headers.get("CSeq").unwrap()
    ));
    h.advance(Duration::from_secs(40));
    assert_eq!(h.sent().len(), 0, "no retransmission after the 200");
    assert_eq!(h.ep.transactions(), 0, "transactions are cleaned up");
}

#[test]
fn reinvite_hold_and_resume() {
    let mut h = Harness::new();
    let (leg, tag) = established(&mut h, "c7", "");
    let hold = SDP.replace("a=rtpmap", "a=sendonly\r\na=rtpmap");
    h.send(&in_dialog(
        "INVITE",
        "c7",
        &tag,
        2,
        "z9hG4bKre1",
        "Content-Type: application/sdp\n",
        &hold,
    ));
    let ok = h.responses().remove(0);
    assert_eq!(ok.code, 200);
    let body = String::from_utf8(ok.body).unwrap();
    assert!(body.contains("a=recvonly"), "{body}");
    assert!(body.contains(" 2 IN IP4"), "SDP version bumped: {body}");
    let ev = h.events();
    assert!(
        matches!(ev.as_slice(), [Event::MediaUpdated { leg: l, media }] if *l == leg && media.direction == MediaDirection::RecvOnly),
        "{ev:?}"
    );
    h.send(&in_dialog("ACK", "c7", &tag, 2, "z9hG4bKack2", "", ""));
    h.send(&in_dialog(
        "INVITE",
        "c7",
        &tag,
        3,
        "z9hG4bKre2",
        "Content-Type: application/sdp\n",
        SDP,
    ));
    let ok = h.responses().remove(0);
    assert!(String::from_utf8(ok.body).unwrap().contains("a=sendrecv"));
    assert!(
        matches!(h.events().as_slice(), [Event::MediaUpdated { media, .. }] if media.direction == MediaDirection::SendRecv)
    );
}

#[test]
fn reinvite_without_sdp_offers_and_reads_answer_in_ack() {
    let mut h = Harness::new();
    let (leg, tag) = established(&mut h, "c8", "");
    h.send(&in_dialog("INVITE", "c8", &tag, 2, "z9hG4bKre3", "", ""));
    let ok = h.responses().remove(0);
    assert!(String::from_utf8(ok.body)
        .unwrap()
        .contains("m=audio 20000 RTP/AVP 0 8 101"));
    let pcma = SDP.replace("RTP/AVP 0 8 101", "RTP/AVP 8 101");
    h.send(&in_dialog(
        "ACK",
        "c8",
        &tag,
        2,
        "z9hG4bKack3",
        "Content-Type: application/sdp\n",
        &pcma,
    ));
    let ev = h.events();
    assert!(
        matches!(ev.as_slice(), [Event::MediaUpdated { leg: l, media }] if *l == leg && media.codec == astreinte::media::Codec::Pcma),
        "{ev:?}"
    );
}

#[test]
fn reinvite_with_no_common_codec_gets_488_and_the_call_goes_on() {
    let mut h = Harness::new();
    let (leg, tag) = established(&mut h, "c9", "");
    let g729 = SDP.replace("RTP/AVP 0 8 101", "RTP/AVP 18");
    h.send(&in_dialog(
        "INVITE",
        "c9",
        &tag,
        2,
        "z9hG4bKre4",
        "Content-Type: application/sdp\n",
        &g729,
    ));
    assert_eq!(h.codes(), vec![488]);
    h.send(&in_dialog("BYE", "c9", &tag, 3, "z9hG4bKbye9", "", ""));
    assert_eq!(h.codes(), vec![200]);
    assert!(h.events().contains(&Event::Ended {
        leg,
        reason: EndReason::RemoteBye
    }));
}

#[test]
fn update_with_sdp_is_answered() {
    let mut h = Harness::new();
    let (_, tag) = established(&mut h, "c10", "");
    let hold = SDP.replace("a=rtpmap", "a=inactive\r\na=rtpmap");
    h.send(&in_dialog(
        "UPDATE",
        "c10",
        &tag,
        2,
        "z9hG4bKup",
        "Content-Type: application/sdp\n",
        &hold,
    ));
    let ok = h.responses().remove(0);
    assert_eq!(ok.code, 200);
    assert!(String::from_utf8(ok.body).unwrap().contains("a=inactive"));
}

#[test]
fn info_dtmf_reaches_the_call() {
    let mut h = Harness::new();
    let (leg, tag) = established(&mut h, "c11", "");
    h.send(&in_dialog(
        "INFO",
        "c11",
        &tag,
        2,
        "z9hG4bKi1",
        "Content-Type: application/dtmf-relay\n",
        "Signal=2\r\nDuration=160\r\n",
    ));
    h.send(&in_dialog(
        "INFO",
        "c11",
        &tag,
        3,
        "z9hG4bKi2",
        "Content-Type: application/dtmf\n",
        "#",
    ));
    h.send(&in_dialog(
        "INFO",
        "c11",
        &tag,
        4,
        "z9hG4bKi3",
        "Content-Type: text/plain\n",
        "hello",
    ));
    assert_eq!(h.codes(), vec![200, 200, 415]);
    let digits: Vec<char> = h
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::Dtmf { leg: l, digit, .. } if l == leg => Some(digit),
            _ => None,
        })
        .collect();
    assert_eq!(digits, vec!['2', '#']);
}

#[test]
fn session_timer_is_honoured_and_expires_with_bye() {
    let mut h = Harness::new();
    h.send(&invite(
        "c12",
        "z9hG4bK12",
        "Supported: timer\nSession-Expires: 120\n",
        SDP,
    ));
    h.codes();
    let leg = h.incoming_leg();
    h.ep.answer(h.now, leg, "127.0.0.1:20000".parse().unwrap());
    let ok = h.responses().remove(0);
    assert_eq!(ok.headers.get("Session-Expires"), Some("120;refresher=uac"));
    assert_eq!(ok.headers.get("Require"), Some("timer"));
    let tag = to_tag(&ok);
    h.send(&in_dialog("ACK", "c12", &tag, 1, "z9hG4bKa12", "", ""));
    h.events();
    // A refresh at 60 s keeps it alive past 120 s...
    h.advance(Duration::from_secs(60));
    h.send(&in_dialog(
        "UPDATE",
        "c12",
        &tag,
        2,
        "z9hG4bKu12",
        "Supported: timer\nSession-Expires: 120\n",
        "",
    ));
    assert_eq!(h.codes(), vec![200]);
    h.advance(Duration::from_secs(70));
    assert!(h.events().is_empty(), "refreshed session still up at 130 s");
    // ...and without another one it ends at 180 s.
    h.advance(Duration::from_secs(60));
    assert!(h.events().contains(&Event::Ended {
        leg,
        reason: EndReason::SessionExpired
    }));
    let sent = h.sent();
    assert!(sent
        .iter()
        .any(|m| matches!(m, Message::Request(r) if r.method.as_str() == "BYE")));
}

#[test]
fn session_interval_too_small_gets_422() {
    let mut h = Harness::new();
    h.send(&invite(
        "c13",
        "z9hG4bK13",
        "Supported: timer\nSession-Expires: 30\n",
        SDP,
    ));
    let r = h.responses();
    assert_eq!(r[0].code, 422);
    assert_eq!(r[0].headers.get("Min-SE"), Some("90"));
}

#[test]
fn required_100rel_is_refused_politely() {
    let mut h = Harness::new();
    h.send(&invite("c14", "z9hG4bK14", "Require: 100rel\n", SDP));
    let r = h.responses();
    assert_eq!(r[0].code, 420);
    assert_eq!(r[0].headers.get("Unsupported"), Some("100rel"));
    // Merely supported is fine.
    h.send(&invite(
        "c15",
        "z9hG4bK15",
        "Supported: 100rel, timer\n",
        SDP,
    ));
    assert_eq!(h.codes(), vec![100]);
}

#[test]
fn no_common_codec_gets_488_unknown_number_404_untrusted_403() {
    let mut h = Harness::new();
    h.send(&invite(
        "c16",
        "z9hG4bK16",
        "",
        &SDP.replace("RTP/AVP 0 8 101", "RTP/AVP 18 9"),
    ));
    assert_eq!(h.codes(), vec![488]);
    h.send(&invite("c17", "z9hG4bK17", "", SDP).replace(
        "sip:5149073400@127.0.0.1 SIP",
        "sip:5149073499@127.0.0.1 SIP",
    ));
    assert_eq!(h.codes(), vec![404]);
    // E.164 forms of a served number are one number.
    h.send(&invite("c18", "z9hG4bK18", "", SDP).replace(
        "sip:5149073400@127.0.0.1 SIP",
        "sip:+15149073400@127.0.0.1 SIP",
    ));
    assert_eq!(h.codes(), vec![100]);
    let mut h = Harness::with(config("192.0.2.0/24", 10_000));
    h.send(&invite("c19", "z9hG4bK19", "", SDP));
    assert_eq!(h.codes(), vec![403]);
    assert!(
        h.events().is_empty(),
        "no call is offered from an untrusted source"
    );
}

#[test]
fn invite_without_sdp_gets_offer_and_answer_comes_in_ack() {
    let mut h = Harness::new();
    h.send(&invite("c20", "z9hG4bK20", "", ""));
    h.codes();
    let leg = h.incoming_leg();
    h.ep.answer(h.now, leg, "127.0.0.1:20002".parse().unwrap());
    let ok = h.responses().remove(0);
    assert!(String::from_utf8(ok.body.clone())
        .unwrap()
        .contains("m=audio 20002 RTP/AVP 0 8 101"));
    let tag = to_tag(&ok);
    h.send(&in_dialog(
        "ACK",
        "c20",
        &tag,
        1,
        "z9hG4bKa20",
        "Content-Type: application/sdp\n",
        SDP,
    ));
    let ev = h.events();
    assert!(
        matches!(ev.as_slice(), [Event::Confirmed { media: Some(m), .. }] if m.remote_rtp.port() == 40000),
        "{ev:?}"
    );
}

#[test]
fn flooding_source_is_refused_then_dropped() {
    // The peer is not trusted (trusted sources are not rate limited).
    let mut h = Harness::with(config("10.0.0.0/8", 5));
    for i in 0..8 {
        h.send(&format!(
            "OPTIONS sip:611@127.0.0.1 SIP/2.0\nVia: SIP/2.0/UDP {PEER};branch=z9hG4bKo{i}\nFrom: <sip:a@b>;tag=1\nTo: <sip:611@127.0.0.1>\nCall-ID: o{i}\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n"
        ));
    }
    assert_eq!(h.codes(), vec![200, 200, 200, 200, 200, 503]);
}

#[test]
fn a_trusted_proxy_is_never_throttled_by_the_per_source_limit() {
    // Behind Kamailio every request comes from one address: at a limit of 5 a second, 500
    // OPTIONS and 100 calls in the same instant all get their answers.
    let mut h = Harness::with(config("127.0.0.0/8", 5));
    for i in 0..500 {
        h.send(&format!(
            "OPTIONS sip:611@127.0.0.1 SIP/2.0\nVia: SIP/2.0/UDP {PEER};branch=z9hG4bKt{i}\nFrom: <sip:a@b>;tag=1\nTo: <sip:611@127.0.0.1>\nCall-ID: t{i}\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n"
        ));
    }
    assert_eq!(h.codes(), vec![200; 500]);
    for i in 0..100 {
        h.send(&invite(
            &format!("tc{i}"),
            &format!("z9hG4bKtc{i}"),
            "",
            SDP,
        ));
    }
    assert_eq!(h.codes(), vec![100; 100]);
    let stats = h.ep.stats();
    assert_eq!((stats.rate_refused, stats.rate_dropped), (0, 0));
}

#[test]
fn responses_acks_and_junk_count_against_the_limit_too() {
    let mut h = Harness::with(config("10.0.0.0/8", 5));
    h.send_raw(b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKx\r\n\r\n");
    h.send_raw(b"\x00junk");
    h.send(&in_dialog("ACK", "nocall", "t", 1, "z9hG4bKa1", "", ""));
    h.send(&in_dialog("ACK", "nocall", "t", 1, "z9hG4bKa2", "", ""));
    h.send_raw(b"\x00junk");
    // Five messages spent the allowance; the sixth is refused (it is junk: no answer), and
    // this OPTIONS is dropped unread.
    h.send_raw(b"\x00junk");
    let options = format!("OPTIONS sip:611@127.0.0.1 SIP/2.0\nVia: SIP/2.0/UDP {PEER};branch=z9hG4bKo\nFrom: <sip:a@b>;tag=1\nTo: <sip:611@127.0.0.1>\nCall-ID: o\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n");
    h.send(&options);
    assert_eq!(h.codes(), Vec::<u16>::new());
    let stats = h.ep.stats();
    assert_eq!((stats.rate_refused, stats.rate_dropped), (1, 1));
    // A second later the source has its allowance back.
    h.advance(Duration::from_secs(1));
    h.send(&options);
    assert_eq!(h.codes(), vec![200]);
}

#[test]
fn options_and_refusals_keep_no_transaction() {
    let mut h = Harness::with(config("10.0.0.0/8", 10_000));
    let req = |method: &str, uri: &str, i: u32| {
        format!("{method} {uri} SIP/2.0\nVia: SIP/2.0/UDP {PEER};branch=z9hG4bKs{i}\nMax-Forwards: 70\nFrom: <sip:a@b>;tag=1\nTo: <{uri}>\nCall-ID: s{i}\nCSeq: 1 {method}\nContact: <sip:a@{PEER}>\nContent-Length: 0\n\n")
    };
    h.send(&req("OPTIONS", "sip:611@127.0.0.1", 1));
    h.send(&req("INVITE", "sip:611@127.0.0.1", 2));
    h.send(&req("FOO", "sip:611@127.0.0.1", 3));
    h.send(&req("REGISTER", "sip:127.0.0.1", 4));
    h.send(&req("BYE", "sip:611@127.0.0.1", 5));
    h.send(&req("OPTIONS", "tel:611", 6));
    assert_eq!(h.codes(), vec![200, 403, 501, 405, 481, 416]);
    assert_eq!(h.ep.transactions(), 0, "nothing is kept for a stranger");
    assert_eq!(h.ep.stats().stateless_answers, 6);
    // A retransmission is answered again, the same way.
    h.send(&req("INVITE", "sip:611@127.0.0.1", 2));
    assert_eq!(h.codes(), vec![403]);
    // No timer was left behind to retransmit a refusal at a spoofed address.
    h.advance(Duration::from_secs(40));
    assert_eq!(h.codes(), Vec::<u16>::new());
}

#[test]
fn a_scanner_cannot_tell_a_served_number_from_an_unknown_one() {
    let mut h = Harness::with(config("10.0.0.0/8", 10_000));
    let mut answers = Vec::new();
    for user in ["611", "5149073400", "999", "alice"] {
        let mut seen = Vec::new();
        for (i, method) in ["OPTIONS", "INVITE", "REGISTER", "SUBSCRIBE"]
            .iter()
            .enumerate()
        {
            let uri = format!("sip:{user}@127.0.0.1");
            h.send(&format!("{method} {uri} SIP/2.0\nVia: SIP/2.0/UDP {PEER};branch=z9hG4bKscan{i}\nMax-Forwards: 70\nFrom: <sip:100@127.0.0.1>;tag=1\nTo: <{uri}>\nCall-ID: scan{i}\nCSeq: 1 {method}\nContact: <sip:100@{PEER}>\nContent-Length: 0\n\n"));
            for r in h.responses() {
                let mut names: Vec<String> = r.headers.0.iter().map(|h| h.name.clone()).collect();
                names.sort();
                seen.push((
                    r.code,
                    r.reason.clone(),
                    names,
                    r.headers.get("Warning").map(str::to_string),
                ));
            }
        }
        answers.push(seen);
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:#?}");
    assert_eq!(
        answers[0].iter().map(|a| a.0).collect::<Vec<_>>(),
        vec![200, 403, 405, 405]
    );
}

#[test]
fn a_stranger_who_knows_the_dialog_cannot_hang_up_or_redirect_the_call() {
    let mut h = Harness::with(config("127.0.0.1/32", 10_000));
    let (leg, tag) = established(&mut h, "hijack", "");
    let caller = h.peer;
    h.peer = Peer::udp("127.0.0.2:5999".parse().unwrap());
    let elsewhere = SDP.replace("c=IN IP4 127.0.0.1", "c=IN IP4 192.0.2.66");
    let reinvite = in_dialog(
        "INVITE",
        "hijack",
        &tag,
        2,
        "z9hG4bKh1",
        "Contact: <sip:x@127.0.0.2:5999>\nContent-Type: application/sdp\n",
        &elsewhere,
    );
    h.send(&reinvite);
    h.send(&in_dialog(
        "UPDATE",
        "hijack",
        &tag,
        3,
        "z9hG4bKh2",
        "Contact: <sip:x@127.0.0.2:5999>\nContent-Type: application/sdp\n",
        &elsewhere,
    ));
    h.send(&in_dialog(
        "INFO",
        "hijack",
        &tag,
        4,
        "z9hG4bKh3",
        "Content-Type: application/dtmf-relay\n",
        "Signal=5\r\nDuration=160\r\n",
    ));
    h.send(&in_dialog("BYE", "hijack", &tag, 5, "z9hG4bKh4", "", ""));
    assert_eq!(h.codes(), vec![481, 481, 481, 481]);
    assert_eq!(h.events(), Vec::<Event>::new(), "nothing reached the call");
    assert_eq!(h.ep.stats().strangers_in_dialog, 4);
    assert_eq!(h.ep.active_legs(), 1);
    // The caller still can.
    h.peer = caller;
    h.send(&in_dialog("BYE", "hijack", &tag, 2, "z9hG4bKbye", "", ""));
    assert_eq!(h.codes(), vec![200]);
    assert!(matches!(
        h.events().as_slice(),
        [Event::Ended { leg: l, reason: EndReason::RemoteBye }] if *l == leg
    ));
}

#[test]
fn a_stranger_cannot_cancel_a_ringing_call() {
    let mut h = Harness::with(config("127.0.0.1/32", 10_000));
    h.send(&invite("ringing", "z9hG4bKr1", "", SDP));
    assert_eq!(h.codes(), vec![100]);
    let _leg = h.incoming_leg();
    let caller = h.peer;
    h.peer = Peer::udp("127.0.0.2:5999".parse().unwrap());
    h.send(&format!("CANCEL sip:5149073400@127.0.0.1 SIP/2.0\nVia: SIP/2.0/UDP {PEER};branch=z9hG4bKr1\nMax-Forwards: 70\nFrom: \"Caller\" <sip:5145550100@127.0.0.1>;tag=caller1\nTo: <sip:5149073400@127.0.0.1>\nCall-ID: ringing\nCSeq: 1 CANCEL\nContent-Length: 0\n\n"));
    // The stranger's copy of the INVITE's branch is not a retransmission either.
    h.send(&invite("ringing", "z9hG4bKr1", "", SDP));
    assert_eq!(h.codes(), vec![481]);
    assert_eq!(h.events(), Vec::<Event>::new());
    h.peer = caller;
    h.send(&format!("CANCEL sip:5149073400@127.0.0.1 SIP/2.0\nVia: SIP/2.0/UDP {PEER};branch=z9hG4bKr1\nMax-Forwards: 70\nFrom: \"Caller\" <sip:5145550100@127.0.0.1>;tag=caller1\nTo: <sip:5149073400@127.0.0.1>\nCall-ID: ringing\nCSeq: 1 CANCEL\nContent-Length: 0\n\n"));
    assert_eq!(h.codes(), vec![200, 487]);
}

#[test]
fn garbage_gets_400_when_answerable_and_is_dropped_otherwise() {
    let mut h = Harness::new();
    h.send_raw(b"\x00\x01\x02garbage");
    h.send_raw(b"");
    h.send_raw(b"SIP/2.0 200 OK\r\n\r\n");
    assert_eq!(h.codes(), Vec::<u16>::new());
    h.send(&format!("INVITE sip:611@127.0.0.1 SIP/2.0\nVia: SIP/2.0/UDP {PEER};branch=z9hG4bKg\nCall-ID: g\nContent-Length: 0\n\n"));
    let r = h.responses();
    assert_eq!(r[0].code, 400);
    assert!(r[0]
        .headers
        .get("Warning")
        .unwrap()
        .contains("missing From"));
}

fn respond_to(req: &Request, code: u16, extra: &str, body: &str) -> String {
    let to = req.headers.get("To").unwrap();
    let to = if code > 100 && !to.contains("tag=") {
        format!("{to};tag=far")
    } else {
        to.to_string()
    };
    format!(
        "SIP/2.0 {code} X\nVia: {}\nFrom: {}\nTo: {to}\nCall-ID: {}\nCSeq: {}\n{extra}Content-Length: {}\n\n{body}",
        req.headers.get("Via").unwrap(),
        req.headers.get("From").unwrap(),
        req.headers.get("Call-ID").unwrap(),
        req.headers.get("CSeq").unwrap(),
        body.len()
    )
}

fn requests(h: &mut Harness) -> Vec<Request> {
    h.sent()
        .into_iter()
        .filter_map(|m| match m {
            Message::Request(r) => Some(r),
            _ => None,
        })
        .collect()
}

#[test]
fn outbound_call_with_proxy_digest_auth() {
    let mut h = Harness::new();
    let leg = h.ep.place_call(
        h.now,
        OutboundCall {
            target: "sip:+15145001004@127.0.0.1:5999".into(),
            next_hop: h.peer,
            from: "sip:astreinte@127.0.0.1".into(),
            credentials: Some(Credentials {
                username: "pager".into(),
                password: "s3cret".into(),
            }),
            local_rtp: "127.0.0.1:20004".parse().unwrap(),
        },
    );
    let inv = requests(&mut h).remove(0);
    assert_eq!(inv.method.as_str(), "INVITE");
    assert!(String::from_utf8(inv.body.clone())
        .unwrap()
        .contains("m=audio 20004"));
    h.send(&respond_to(&inv, 100, "", ""));
    h.send(&respond_to(
        &inv,
        407,
        "Proxy-Authenticate: Digest realm=\"pbx\", nonce=\"abc\", qop=\"auth\"\n",
        "",
    ));
    let sent = requests(&mut h);
    assert_eq!(
        sent[0].method.as_str(),
        "ACK",
        "non-2xx is ACKed in the transaction"
    );
    let inv2 = &sent[1];
    assert_eq!(inv2.method.as_str(), "INVITE");
    assert_eq!(inv2.cseq().unwrap().seq, 2);
    let auth = inv2.headers.get("Proxy-Authorization").unwrap();
    assert!(
        auth.contains("username=\"pager\"")
            && auth.contains("realm=\"pbx\"")
            && auth.contains("qop=auth"),
        "{auth}"
    );
    h.send(&respond_to(inv2, 180, "", ""));
    h.send(&respond_to(
        inv2,
        200,
        "Contact: <sip:tech@127.0.0.1:5999>\nContent-Type: application/sdp\n",
        SDP,
    ));
    let ack = requests(&mut h).remove(0);
    assert_eq!(ack.method.as_str(), "ACK");
    assert_eq!(ack.uri, "sip:tech@127.0.0.1:5999");
    assert_eq!(ack.cseq().unwrap().seq, 2);
    let ev = h.events();
    assert!(ev.contains(&Event::Ringing { leg }));
    assert!(ev
        .iter()
        .any(|e| matches!(e, Event::Answered { leg: l, media: Some(_) } if *l == leg)));
    h.ep.hangup(h.now, leg);
    let bye = requests(&mut h).remove(0);
    assert_eq!(bye.method.as_str(), "BYE");
    assert_eq!(bye.to().unwrap().tag(), Some("far"));
}

#[test]
fn outbound_call_unanswered_times_out_and_rejected_reports_code() {
    let mut h = Harness::new();
    let call = OutboundCall {
        target: "sip:tech@127.0.0.1:5999".into(),
        next_hop: h.peer,
        from: "sip:astreinte@127.0.0.1".into(),
        credentials: None,
        local_rtp: "127.0.0.1:20006".parse().unwrap(),
    };
    let leg = h.ep.place_call(h.now, call.clone());
    h.advance(Duration::from_secs(33));
    let invites = requests(&mut h).len();
    assert!(invites >= 6, "timer A retransmissions: {invites}");
    assert!(h.events().contains(&Event::Ended {
        leg,
        reason: EndReason::Timeout
    }));
    let leg = h.ep.place_call(h.now, call);
    let inv = requests(&mut h).remove(0);
    h.send(&respond_to(&inv, 486, "", ""));
    assert!(h.events().contains(&Event::Ended {
        leg,
        reason: EndReason::Rejected(486)
    }));
}

#[test]
fn registration_authenticates_and_refreshes_before_expiry() {
    let mut h = Harness::new();
    h.ep.register(
        h.now,
        RegisterSpec {
            registrar: "sip:127.0.0.1:5999".into(),
            aor: "sip:5149073400@127.0.0.1".into(),
            credentials: Credentials {
                username: "5149073400".into(),
                password: "pw".into(),
            },
            expires: 600,
            next_hop: h.peer,
        },
    );
    let reg = requests(&mut h).remove(0);
    assert_eq!(reg.method.as_str(), "REGISTER");
    h.send(&respond_to(
        &reg,
        401,
        "WWW-Authenticate: Digest realm=\"reg\", nonce=\"n1\", algorithm=SHA-256\n",
        "",
    ));
    let reg2 = requests(&mut h).remove(0);
    assert!(reg2
        .headers
        .get("Authorization")
        .unwrap()
        .contains("algorithm=SHA-256"));
    assert_eq!(reg2.call_id(), reg.call_id(), "same Call-ID, next CSeq");
    assert_eq!(reg2.cseq().unwrap().seq, reg.cseq().unwrap().seq + 1);
    h.send(&respond_to(
        &reg2,
        200,
        "Contact: <sip:astreinte@127.0.0.1:5060>;expires=600\n",
        "",
    ));
    assert!(h
        .events()
        .contains(&Event::Registration(RegistrationState::Registered {
            expires: 600
        })));
    h.advance(Duration::from_secs(500));
    assert!(requests(&mut h).is_empty());
    h.advance(Duration::from_secs(20));
    // Refreshed at 85 % of 600 s (510 s); unanswered, it is retransmitted on timer E.
    let refresh = requests(&mut h);
    assert!(!refresh.is_empty(), "refresh at 85 % of 600 s");
    assert!(refresh
        .iter()
        .all(|r| r.method.as_str() == "REGISTER" && r.top_via() == refresh[0].top_via()));
    assert_eq!(refresh[0].cseq().unwrap().seq, reg2.cseq().unwrap().seq + 1);
}

#[test]
fn answer_that_beats_our_cancel_is_acked_and_hung_up() {
    let mut h = Harness::new();
    let leg = h.ep.place_call(
        h.now,
        OutboundCall {
            target: "sip:tech@127.0.0.1:5999".into(),
            next_hop: h.peer,
            from: "sip:astreinte@127.0.0.1".into(),
            credentials: None,
            local_rtp: "127.0.0.1:20008".parse().unwrap(),
        },
    );
    let inv = requests(&mut h).remove(0);
    h.send(&respond_to(&inv, 180, "", ""));
    h.ep.hangup(h.now, leg);
    let cancel = requests(&mut h).remove(0);
    assert_eq!(cancel.method.as_str(), "CANCEL");
    assert!(h.events().contains(&Event::Ended {
        leg,
        reason: EndReason::LocalHangup
    }));
    // The phone was answered before the CANCEL arrived.
    h.send(&respond_to(
        &inv,
        200,
        "Contact: <sip:tech@127.0.0.1:5999>\nContent-Type: application/sdp\n",
        SDP,
    ));
    let sent = requests(&mut h);
    let methods: Vec<&str> = sent.iter().map(|r| r.method.as_str()).collect();
    assert_eq!(methods, vec!["ACK", "BYE"]);
    assert_eq!(sent[1].uri, "sip:tech@127.0.0.1:5999");
    assert_eq!(sent[1].to().unwrap().tag(), Some("far"));
    assert_eq!(sent[1].cseq().unwrap().seq, inv.cseq().unwrap().seq + 1);
    assert!(h.events().is_empty(), "the leg was already reported ended");
}

#[test]
fn draining_node_answers_probes_and_new_calls_503_but_keeps_its_calls() {
    let mut h = Harness::new();
    let (leg, tag) = established(&mut h, "d1", "");
    h.send("OPTIONS sip:127.0.0.1:5060 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKo1\nMax-Forwards: 70\nFrom: <sip:kamailio@127.0.0.1>;tag=p1\nTo: <sip:127.0.0.1:5060>\nCall-ID: probe1\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n");
    assert_eq!(h.codes(), vec![200], "a node in service answers the probe");

    h.ep.drain();
    assert!(h.ep.is_draining());
    h.send("OPTIONS sip:127.0.0.1:5060 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKo2\nMax-Forwards: 70\nFrom: <sip:kamailio@127.0.0.1>;tag=p2\nTo: <sip:127.0.0.1:5060>\nCall-ID: probe2\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n");
    let r = h.responses();
    assert_eq!(r.len(), 1);
    assert_eq!(
        r[0].code, 503,
        "the probe tells the dispatcher to stop sending"
    );
    assert_eq!(r[0].headers.get("Retry-After"), Some("60"));

    h.send(&invite("d2", "z9hG4bKd2", "", SDP));
    assert_eq!(h.codes(), vec![503], "a new call goes to another node");
    assert!(
        h.events().is_empty(),
        "no new call is offered while draining"
    );

    // The call in progress goes on: in-dialog requests are answered as before.
    h.send(&in_dialog("OPTIONS", "d1", &tag, 2, "z9hG4bKd1o", "", ""));
    assert_eq!(h.codes(), vec![200]);
    h.send(&in_dialog("BYE", "d1", &tag, 3, "z9hG4bKd1b", "", ""));
    assert_eq!(h.codes(), vec![200]);
    assert!(h
        .events()
        .iter()
        .any(|e| matches!(e, Event::Ended { leg: l, .. } if *l == leg)));
}

fn incoming_caller(h: &mut Harness) -> Caller {
    h.events()
        .into_iter()
        .find_map(|e| match e {
            Event::Incoming(c) => Some(c.caller),
            _ => None,
        })
        .expect("an incoming call")
}

#[test]
fn caller_comes_from_p_asserted_identity_when_a_proxy_sends_one() {
    let mut h = Harness::new();
    // Behind a proxy the From may be anything; the proxy asserts who called (RFC 3325).
    h.send(&invite(
        "p1",
        "z9hG4bKp1",
        "P-Asserted-Identity: \"Acme Desk\" <sip:+15145550142@carrier.example>\n",
        SDP,
    ));
    let caller = incoming_caller(&mut h);
    assert_eq!(caller.user.as_deref(), Some("+15145550142"));
    assert_eq!(caller.display.as_deref(), Some("Acme Desk"));

    // A tel: URI is a number too; an unusable first value falls through to the next.
    h.send(&invite(
        "p2",
        "z9hG4bKp2",
        "P-Asserted-Identity: <sip:carrier.example>, <tel:+15145550143;cpc=ordinary>\n",
        SDP,
    ));
    let caller = incoming_caller(&mut h);
    assert_eq!(caller.user.as_deref(), Some("+15145550143"));

    // Without one, the From's user is the caller.
    h.send(&invite("p3", "z9hG4bKp3", "", SDP));
    let caller = incoming_caller(&mut h);
    assert_eq!(caller.user.as_deref(), Some("5145550100"));
}

#[test]
fn a_p_asserted_identity_that_names_nobody_leaves_the_caller_from_from() {
    // Hostile or empty values: nothing usable, so the From's user stays the caller; no panic.
    for (i, pai) in [
        "<tel:>",
        "<tel:;cpc=x>",
        "<sip:@carrier.example>",
        "<télé:+1514>",
        "garbage without brackets ,,, <",
        ",",
    ]
    .iter()
    .enumerate()
    {
        let mut h = Harness::new();
        h.send(&invite(
            &format!("ph{i}"),
            &format!("z9hG4bKph{i}"),
            &format!("P-Asserted-Identity: {pai}\n"),
            SDP,
        ));
        let caller = incoming_caller(&mut h);
        assert_eq!(caller.user.as_deref(), Some("5145550100"), "{pai}");
    }
}
