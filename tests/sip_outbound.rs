//! Outbound SIP for paging, against SIPp as the far end: a call to a phone that demands digest
//! authentication, and an upstream registration with auth and refresh.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use astreinte::sip::endpoint::RegistrationState;
use astreinte::sip::transport::{self, CallRequest, LegEvent};
use astreinte::sip::{config::RegisterConfig, Credentials, SipConfig};
use common::{free_media_base, free_port, scenario};

struct Far {
    child: Child,
    port: u16,
}

impl Far {
    fn start(file: &str) -> Far {
        let port = free_port();
        let media = free_media_base();
        let child = Command::new("sipp")
            .args(["-sf", scenario(file).to_str().unwrap()])
            .args([
                "-i",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-mp",
                &media.to_string(),
            ])
            .args([
                "-m",
                "1",
                "-timeout",
                "20s",
                "-timeout_error",
                "-nostdin",
                "-bg",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run sipp");
        // Ready once SIPp holds its SIP port.
        common::wait::wait_until("SIPp to bind its port", Duration::from_secs(10), || {
            std::net::UdpSocket::bind(("127.0.0.1", port)).is_err()
        });
        Far { child, port }
    }

    /// Waits for SIPp (run with -bg it forks: wait for its port to be released).
    fn wait_success(&mut self) -> bool {
        let _ = self.child.wait();
        common::wait::poll_until(Duration::from_secs(10), || {
            std::net::UdpSocket::bind(("127.0.0.1", self.port)).is_ok()
        })
    }
}

impl Drop for Far {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

fn sip_config() -> SipConfig {
    SipConfig {
        listen: "127.0.0.1:0".into(),
        ..SipConfig::default()
    }
}

async fn next_event(events: &mut tokio::sync::mpsc::UnboundedReceiver<LegEvent>) -> LegEvent {
    tokio::time::timeout(Duration::from_secs(10), events.recv())
        .await
        .expect("event within 10 s")
        .expect("event")
}

/// A page call to the far end on `far_port`, with the pager's credentials.
fn pager_call(far_port: u16, local_rtp: &str) -> CallRequest {
    CallRequest {
        target: format!("sip:tech@127.0.0.1:{far_port}"),
        proxy: None,
        from: "sip:astreinte@127.0.0.1".into(),
        credentials: Some(Credentials {
            username: "pager".into(),
            password: "s3cret".into(),
        }),
        local_rtp: local_rtp.parse().unwrap(),
    }
}

#[tokio::test]
async fn page_call_authenticates_is_answered_and_hung_up() {
    let far = Far::start("uas_auth.xml");
    let far_port = far.port;
    let (sip, _incoming, task) = transport::start(&sip_config()).await.unwrap();
    let (leg, mut events) = sip
        .place_call(pager_call(far_port, "127.0.0.1:30998"))
        .await
        .unwrap();
    assert_eq!(next_event(&mut events).await, LegEvent::Ringing);
    match next_event(&mut events).await {
        LegEvent::Answered { media: Some(m) } => assert_eq!(m.codec, astreinte::media::Codec::Pcma),
        other => panic!("{other:?}"),
    }
    leg.hangup();
    assert!(matches!(
        next_event(&mut events).await,
        LegEvent::Ended { .. }
    ));
    // Let the BYE transaction finish before SIPp is judged.
    let mut far = far;
    let ok = tokio::task::spawn_blocking(move || far.wait_success())
        .await
        .unwrap();
    assert!(ok);
    sip.shutdown();
    let _ = task.await;
}

#[tokio::test]
async fn registration_authenticates_and_refreshes() {
    let far = Far::start("registrar_auth.xml");
    let mut cfg = sip_config();
    cfg.register = Some(RegisterConfig {
        registrar: format!("sip:127.0.0.1:{}", far.port),
        aor: "sip:5149073400@127.0.0.1".into(),
        username: "5149073400".into(),
        password: "pw".into(),
        expires: 3600,
    });
    let (sip, _incoming, task) = transport::start(&cfg).await.unwrap();
    let mut reg = sip.registration();
    let mut states = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while states.len() < 2 {
        tokio::time::timeout_at(deadline, reg.changed())
            .await
            .expect("registration events")
            .unwrap();
        let state = reg.borrow().clone();
        states.push(state);
    }
    assert_eq!(
        states[0],
        Some(RegistrationState::Registered { expires: 2 })
    );
    assert_eq!(
        states[1],
        Some(RegistrationState::Registered { expires: 3600 })
    );
    sip.shutdown();
    let _ = task.await;
    drop(far);
}

/// A far end that answers our INVITE with a 407 whose realm carries `realm_bytes` (a bare CR,
/// a NUL), then records every datagram we send it for two seconds.
fn hostile_challenger(realm_bytes: &'static [u8]) -> (u16, std::thread::JoinHandle<Vec<Vec<u8>>>) {
    use astreinte::sip::message::{parse, Message};
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = sock.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut buf = [0u8; 8192];
        let (n, from) = sock.recv_from(&mut buf).expect("our INVITE");
        let Ok(Message::Request(invite)) = parse(&buf[..n]) else {
            panic!("not a request: {:?}", String::from_utf8_lossy(&buf[..n]));
        };
        let h = |name| invite.headers.get(name).unwrap_or_default().to_string();
        let mut resp = format!(
            "SIP/2.0 407 Proxy Authentication Required\r\nVia: {}\r\nFrom: {}\r\nTo: {};tag=far\r\nCall-ID: {}\r\nCSeq: {}\r\nProxy-Authenticate: Digest realm=\"atlanta.com",
            h("Via"), h("From"), h("To"), h("Call-ID"), h("CSeq")
        )
        .into_bytes();
        resp.extend_from_slice(realm_bytes);
        resp.extend_from_slice(b"\", nonce=\"n0nce\", algorithm=MD5\r\nContent-Length: 0\r\n\r\n");
        sock.send_to(&resp, from).unwrap();
        let mut seen = Vec::new();
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let until = std::time::Instant::now() + Duration::from_secs(2);
        while std::time::Instant::now() < until {
            if let Ok((n, _)) = sock.recv_from(&mut buf) {
                seen.push(buf[..n].to_vec());
            }
        }
        seen
    });
    (port, handle)
}

#[tokio::test]
async fn a_challenge_with_a_control_byte_in_its_realm_is_never_answered() {
    for realm in [
        &b"\rP-Asserted-Identity: <sip:+15145550000@x>"[..],
        b"\0P-Asserted-Identity: <sip:+15145550000@x>",
    ] {
        let (far_port, far) = hostile_challenger(realm);
        let (sip, _incoming, task) = transport::start(&sip_config()).await.unwrap();
        let (_leg, mut events) = sip
            .place_call(pager_call(far_port, "127.0.0.1:30996"))
            .await
            .unwrap();
        // The page fails at once, saying why, rather than waiting out timer B (32 s).
        match next_event(&mut events).await {
            LegEvent::Ended { reason } => {
                let why = reason.to_string();
                assert!(why.contains("malformed response"), "{why}");
            }
            other => panic!("{other:?}"),
        }
        let sent = tokio::task::spawn_blocking(move || far.join().unwrap())
            .await
            .unwrap();
        for m in &sent {
            let text = String::from_utf8_lossy(m);
            assert!(
                !text.contains("Proxy-Authorization"),
                "credentials sent: {text:?}"
            );
            assert!(!text.contains("P-Asserted-Identity"), "injected: {text:?}");
            assert!(!text.starts_with("INVITE "), "a second INVITE: {text:?}");
            assert_eq!(
                astreinte::sip::message::unsendable_byte(m),
                None,
                "{text:?}"
            );
        }
        // The 407 was ACKed from the lines that could be read.
        assert!(
            sent.iter().any(|m| m.starts_with(b"ACK ")),
            "{:?}",
            sent.iter()
                .map(|m| String::from_utf8_lossy(m))
                .collect::<Vec<_>>()
        );
        sip.shutdown();
        let _ = task.await;
    }
}
