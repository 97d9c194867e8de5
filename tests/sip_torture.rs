//! RFC 4475 torture messages fed to the endpoint (sans-I/O): each one is answered as the RFC
//! describes, and none panics, whole or cut or mangled.

use std::path::PathBuf;
use std::time::Instant;

use astreinte::sip::endpoint::{Endpoint, EndpointConfig, Event, Peer};
use astreinte::sip::message::{self, Message};
use astreinte::sip::routing::{NumberSet, TrustedSources};
use astreinte::sip::transaction::Timers;

fn endpoint(numbers: NumberSet) -> Endpoint {
    Endpoint::new(EndpointConfig {
        local_addr: "127.0.0.1:5060".parse().unwrap(),
        numbers,
        trusted: TrustedSources::new(vec!["127.0.0.0/8".parse().unwrap()]),
        rate_limit_per_source: 10_000,
        user_agent: "astreinte-test".into(),
        timers: Timers::default(),
        seed: astreinte::sip::RngSeed([1; 32]),
    })
}

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/sip-torture")
        .join(format!("{name}.dat"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

struct Outcome {
    codes: Vec<u16>,
    responses: Vec<message::Response>,
    incoming: bool,
}

fn feed(ep: &mut Endpoint, bytes: &[u8]) -> Outcome {
    let src = Peer::udp("127.0.0.1:5999".parse().unwrap());
    ep.handle_input(Instant::now(), src, bytes);
    let mut responses = Vec::new();
    while let Some(t) = ep.poll_transmit() {
        assert_eq!(t.to, src, "responses go back to the source");
        match message::parse(&t.bytes) {
            Ok(Message::Response(r)) => responses.push(r),
            other => panic!("endpoint sent something that is not a response: {other:?}"),
        }
    }
    let mut incoming = false;
    while let Some(ev) = ep.poll_event() {
        if matches!(ev, Event::Incoming(_)) {
            incoming = true;
        }
    }
    Outcome {
        codes: responses.iter().map(|r| r.code).collect(),
        responses,
        incoming,
    }
}

fn run(name: &str) -> Outcome {
    let mut ep = endpoint(NumberSet::accept_any());
    feed(&mut ep, &fixture(name))
}

fn assert_codes(name: &str, expected: &[u16]) -> Outcome {
    let out = run(name);
    assert_eq!(out.codes, expected, "{name}");
    out
}

// §3.1.1: valid messages, parsed and answered normally.

#[test]
fn valid_invites_are_offered_as_calls() {
    for name in ["esc01", "longreq", "inv2543"] {
        let out = assert_codes(name, &[100]);
        assert!(out.incoming, "{name} should reach the call flow");
    }
}

/// wsinv carries a To tag: an INVITE for a dialog we do not have is answered 481 (RFC 3261
/// §12.2.2), which needs every header of that message read right.
#[test]
fn wsinv_whitespace_and_folding_are_understood() {
    assert_codes("wsinv", &[481]);
    let msg = match message::parse(&fixture("wsinv")).unwrap() {
        Message::Request(r) => r,
        _ => panic!(),
    };
    assert_eq!(msg.headers.get("Max-Forwards"), Some("0068"));
    let vias = msg.headers.list("Via");
    assert_eq!(vias.len(), 3, "{vias:?}");
    assert_eq!(msg.cseq().unwrap().seq, 9);
    assert_eq!(msg.from().unwrap().tag(), Some("98asjd8"));
    assert_eq!(msg.to().unwrap().tag(), Some("1918181833n"));
    assert_eq!(msg.headers.get("Subject"), Some(""));
}

#[test]
fn valid_options_get_200() {
    for name in ["lwsdisp", "semiuri", "transports"] {
        let out = assert_codes(name, &[200]);
        assert!(out.responses[0].headers.get("Allow").is_some());
    }
}

#[test]
fn unknown_methods_get_501_with_allow() {
    for name in ["intmeth", "esc02"] {
        let out = assert_codes(name, &[501]);
        assert!(out.responses[0]
            .headers
            .get("Allow")
            .unwrap()
            .contains("INVITE"));
    }
}

#[test]
fn register_and_message_are_not_allowed_here() {
    for name in ["escnull", "dblreq", "mpart01"] {
        let out = assert_codes(name, &[405]);
        assert!(out.responses[0].headers.get("Allow").is_some(), "{name}");
    }
}

#[test]
fn valid_responses_parse_and_are_absorbed() {
    for name in ["unreason", "noreason"] {
        let parsed = message::parse(&fixture(name));
        assert!(
            matches!(parsed, Ok(Message::Response(_))),
            "{name}: {parsed:?}"
        );
        assert_codes(name, &[]);
    }
}

#[test]
fn mpart01_body_is_kept_byte_exact() {
    let raw = fixture("mpart01");
    let Ok(Message::Request(r)) = message::parse(&raw) else {
        panic!()
    };
    assert_eq!(r.body.len(), 553);
    assert!(r.body.contains(&0u8), "the binary part keeps its NUL bytes");
}

// §3.1.2: invalid messages, answered 400 (505 for the version) or dropped.

#[test]
fn invalid_requests_get_400_with_a_warning() {
    for name in [
        "badinv01",
        "clerr",
        "ncl",
        "scalar02",
        "quotbal",
        "ltgtruri",
        "lwsruri",
        "lwsstart",
        "trws",
        "escruri",
        "baddate",
        "regbadct",
        "badaspec",
        "baddn",
        "mismatch01",
        "mismatch02",
    ] {
        let out = assert_codes(name, &[400]);
        let warning = out.responses[0].headers.get("Warning").unwrap_or_default();
        assert!(warning.starts_with("399 astreinte \""), "{name}: {warning}");
        assert!(!out.incoming, "{name}");
    }
}

#[test]
fn bad_version_gets_505() {
    assert_codes("badvers", &[505]);
}

#[test]
fn invalid_responses_are_dropped() {
    for name in ["scalarlg", "bigcode"] {
        assert_codes(name, &[]);
    }
}

// §3.2–3.4: transaction and application layer.

#[test]
fn application_layer_answers() {
    assert_codes("badbranch", &[200]);
    assert_codes("insuf", &[400]);
    assert_codes("unkscm", &[416]);
    assert_codes("novelsc", &[416]);
    assert_codes("unksm2", &[405]);
    assert_codes("regaut01", &[405]);
    assert_codes("multi01", &[400]);
    assert_codes("mcl01", &[400]);
    assert_codes("bcast", &[]);
    assert_codes("zeromf", &[200]);
    assert_codes("cparam01", &[405]);
    assert_codes("cparam02", &[405]);
    assert_codes("regescrt", &[405]);
    assert_codes("sdp01", &[406]);
}

#[test]
fn unknown_require_gets_420_listing_both() {
    let out = assert_codes("bext01", &[420]);
    let unsupported = out.responses[0].headers.get("Unsupported").unwrap();
    assert!(unsupported.contains("nothingSupportsThis"));
    assert!(unsupported.contains("nothingSupportsThisEither"));
    assert!(
        !unsupported.contains("noProxiesSupportThis"),
        "Proxy-Require is for proxies"
    );
}

#[test]
fn unknown_content_type_gets_415_with_accept() {
    let out = assert_codes("invut", &[415]);
    assert_eq!(
        out.responses[0].headers.get("Accept"),
        Some("application/sdp")
    );
}

#[test]
fn numbers_not_served_get_404() {
    let mut ep = endpoint(NumberSet::new(["+15149073400", "611"]));
    let out = feed(&mut ep, &fixture("longreq"));
    assert_eq!(out.codes, vec![404]);
}

#[test]
fn every_message_has_its_test() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sip-torture");
    let count = std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "dat")
        })
        .count();
    assert_eq!(count, 49);
}

/// Every prefix of every message and many mangled copies: never a panic, and a second endpoint
/// call after the garbage still works.
#[test]
fn truncated_and_mangled_messages_never_panic() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sip-torture");
    let mut ep = endpoint(NumberSet::accept_any());
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|x| x != "dat") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        for cut in (0..bytes.len()).step_by(7) {
            feed(&mut ep, &bytes[..cut]);
        }
        for _ in 0..200 {
            let mut m = bytes.clone();
            for _ in 0..4 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let i = (seed as usize) % m.len();
                m[i] = (seed >> 32) as u8;
            }
            feed(&mut ep, &m);
        }
    }
    let out = feed(
        &mut ep,
        b"OPTIONS sip:611@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKafter\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:611@127.0.0.1>\r\nCall-ID: after-garbage\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(out.codes, vec![200]);
}
