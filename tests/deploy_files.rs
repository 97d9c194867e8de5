//! The deployment files (issue #14): docker-compose.yml is valid and agrees with the nodes'
//! configs and Kamailio's node list; deploy/kamailio/kamailio.cfg passes Kamailio's own check
//! and, run for real, spreads SIPp calls over two stand-in nodes, fails over when one dies and
//! stops sending calls to one that drains (OPTIONS 503).
//!
//! Needs kamailio, docker-compose (its `config` only: no Docker engine) and SIPp; a missing
//! one fails the test with how to install it (scripts/test.sh installs them).

mod common;

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::kamailio::{self, Kamailio};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn missing_tool(tool: &str, package: &str) -> ! {
    let hint = format!("install it with `apt-get install {package}` (scripts/test.sh does)");
    if std::env::var_os("CI").is_some() {
        panic!("{tool} is missing on this CI machine: {hint}");
    }
    panic!("{tool} is missing: {hint}; the deployment tests need it");
}

fn run(cmd: &mut Command, tool: &str, package: &str) -> Output {
    match cmd.output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => missing_tool(tool, package),
        Err(e) => panic!("running {tool}: {e}"),
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

// ---- static checks -------------------------------------------------------------------------

#[test]
fn compose_file_is_valid() {
    let out = run(
        Command::new("docker-compose")
            .arg("-f")
            .arg(repo().join("docker-compose.yml"))
            .args(["config", "-q"]),
        "docker-compose",
        "docker-compose",
    );
    assert!(
        out.status.success(),
        "docker-compose config:\n{}",
        text(&out)
    );
}

#[test]
fn kamailio_cfg_passes_kamailio_check_with_defaults_and_test_overrides() {
    kamailio::require_kamailio();
    let out = run(
        Command::new(kamailio::program("kamailio"))
            .arg("-c")
            .arg("-f")
            .arg(kamailio::cfg_path()),
        "kamailio",
        "kamailio",
    );
    assert!(
        out.status.success() && text(&out).contains("config file ok"),
        "kamailio -c (defaults):\n{}",
        text(&out)
    );
    // The overrides the harness gives, and those docker-compose.yml gives.
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(kamailio::program("kamailio"));
    cmd.arg("-c").arg("-f").arg(kamailio::cfg_path());
    for define in kamailio::test_defines(dir.path(), 5999, 1) {
        cmd.arg("-A").arg(define);
    }
    let out = run(&mut cmd, "kamailio", "kamailio");
    assert!(
        out.status.success() && text(&out).contains("udp: 127.0.0.1 [127.0.0.1]:5999"),
        "kamailio -c (test overrides):\n{}",
        text(&out)
    );
    let compose = compose_config();
    let mut cmd = Command::new(kamailio::program("kamailio"));
    cmd.arg("-c").arg("-f").arg(kamailio::cfg_path());
    for arg in compose["services"]["kamailio"]["command"]
        .as_array()
        .expect("kamailio's command in docker-compose.yml")
    {
        let arg = arg.as_str().unwrap();
        // The compose address does not exist here: listen on loopback instead, keep the rest.
        cmd.arg(if arg.starts_with("LISTEN_IP=") {
            "LISTEN_IP=127.0.0.1"
        } else {
            arg
        });
    }
    let out = run(&mut cmd, "kamailio", "kamailio");
    assert!(
        out.status.success(),
        "kamailio -c (compose overrides):\n{}",
        text(&out)
    );
}

fn compose_node_configs() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("deploy/compose"))
        .expect("deploy/compose")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn compose_node_configs_pass_check_config() {
    let files = compose_node_configs();
    assert!(files.len() >= 2, "two node configs at least: {files:?}");
    for file in files {
        let out = Command::new(env!("CARGO_BIN_EXE_astreinte"))
            .arg("check-config")
            .arg("--config")
            .arg(&file)
            .env("ASTREINTE_LOG", "warn")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: check-config failed:\n{}",
            file.display(),
            text(&out)
        );
    }
}

/// `docker-compose config` (what compose itself makes of the file: anchors merged, paths
/// absolute), as JSON through Python's yaml module (docker-compose's own dependency).
fn compose_config() -> serde_json::Value {
    let out = run(
        Command::new("docker-compose")
            .arg("-f")
            .arg(repo().join("docker-compose.yml"))
            .arg("config"),
        "docker-compose",
        "docker-compose",
    );
    assert!(
        out.status.success(),
        "docker-compose config:\n{}",
        text(&out)
    );
    let mut py = Command::new("python3")
        .args([
            "-c",
            "import sys, json, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 (installed with docker-compose)");
    std::io::Write::write_all(py.stdin.as_mut().unwrap(), &out.stdout).unwrap();
    let json = py.wait_with_output().unwrap();
    assert!(json.status.success(), "yaml to json failed");
    serde_json::from_slice(&json.stdout).expect("compose config as JSON")
}

fn service_ip(compose: &serde_json::Value, service: &str) -> IpAddr {
    compose["services"][service]["networks"]["astreinte"]["ipv4_address"]
        .as_str()
        .unwrap_or_else(|| panic!("{service}: no fixed ipv4_address on network astreinte"))
        .parse()
        .unwrap()
}

/// The host file mounted at `target` in `service`, if any.
fn mounted(compose: &serde_json::Value, service: &str, target: &str) -> Option<PathBuf> {
    let volumes = compose["services"][service]["volumes"].as_array()?;
    volumes.iter().find_map(|v| match v {
        serde_json::Value::String(s) => {
            let mut parts = s.split(':');
            let (src, dst) = (parts.next()?, parts.next()?);
            (dst == target).then(|| PathBuf::from(src))
        }
        v => (v["target"].as_str()? == target)
            .then(|| v["source"].as_str().map(PathBuf::from))
            .flatten(),
    })
}

/// UDP ports published one to one (host port = container port).
fn published_udp(compose: &serde_json::Value, service: &str) -> HashSet<u16> {
    let mut set = HashSet::new();
    for p in compose["services"][service]["ports"]
        .as_array()
        .into_iter()
        .flatten()
    {
        match p {
            serde_json::Value::String(s) => {
                // "LOW-HIGH:LOW-HIGH/udp" or "PORT:PORT/udp"
                let Some(spec) = s.strip_suffix("/udp") else {
                    continue;
                };
                let Some((host, cont)) = spec.rsplit_once(':') else {
                    continue;
                };
                if host != cont {
                    continue;
                }
                let (lo, hi) = cont.split_once('-').unwrap_or((cont, cont));
                set.extend(lo.parse::<u16>().unwrap()..=hi.parse::<u16>().unwrap());
            }
            p => {
                if p["protocol"] == "udp" && p["published"].as_u64() == p["target"].as_u64() {
                    let port = p["target"].as_u64().unwrap();
                    set.insert(port as u16);
                }
            }
        }
    }
    set
}

#[test]
fn systemd_unit_waits_out_the_default_drain() {
    let unit = std::fs::read_to_string(repo().join("deploy/systemd/astreinte.service")).unwrap();
    let timeout: u64 = unit
        .lines()
        .find_map(|l| l.strip_prefix("TimeoutStopSec="))
        .and_then(|v| v.trim().parse().ok())
        .expect("TimeoutStopSec= in seconds");
    let drain = astreinte::sip::SipConfig::default().drain_secs;
    assert!(
        timeout > drain,
        "TimeoutStopSec={timeout} would SIGKILL a node still draining (drain_secs {drain})"
    );
    assert!(unit.contains("AmbientCapabilities=CAP_SYS_NICE"));
}

/// The image starts without any capability (no file capability on the binary, none asked of
/// compose), and its own config serves HTTP where its health check asks (issue #22; the
/// containers themselves are run by scripts/compose-test.sh).
#[test]
fn image_needs_no_capability_and_its_config_serves_the_health_check() {
    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    let instructions: Vec<&str> = dockerfile
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect();
    assert!(
        !instructions.iter().any(|l| l.contains("setcap")),
        "the Dockerfile gives the binary a file capability: a container without it in its \
         bounding set cannot even start the binary"
    );
    let compose = std::fs::read_to_string(repo().join("docker-compose.yml")).unwrap();
    assert!(
        !compose
            .lines()
            .any(|l| l.trim_start().starts_with("cap_add")),
        "docker-compose.yml asks for a capability the image no longer needs"
    );
    // The config the image copies to /etc/astreinte/astreinte.toml.
    let copy = instructions
        .iter()
        .find(|l| l.starts_with("COPY ") && l.contains("/etc/astreinte/"))
        .expect("the Dockerfile copies a config to /etc/astreinte/");
    let config = copy.split_whitespace().nth(1).expect("COPY SRC DEST");
    let path = repo().join(config);
    let out = Command::new(env!("CARGO_BIN_EXE_astreinte"))
        .arg("check-config")
        .arg("--config")
        .arg(&path)
        .env("ASTREINTE_LOG", "warn")
        .output()
        .unwrap();
    assert!(out.status.success(), "{config}: {}", text(&out));
    let (parsed, _) = astreinte::config::Config::load(Some(&path)).expect("the image's config");
    let listen = parsed
        .http
        .listen
        .clone()
        .expect("the image's config has an [http] listen");
    let health = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("ENV ASTREINTE_HEALTH_URL="))
        .expect("ENV ASTREINTE_HEALTH_URL in the Dockerfile");
    let port = listen.rsplit(':').next().expect("host:port");
    assert!(
        health.contains(&format!(":{port}/readyz"))
            && (listen.starts_with("0.0.0.0:") || listen.starts_with("127.0.0.1:")),
        "the health check asks {health}, the image's HTTP listens on {listen}"
    );
    // On a host, the embedded defaults listen on loopback only (the console on 127.0.0.1:8080,
    // as a self-hosted tool's first start does; SIP on loopback).
    let (defaults, _) =
        astreinte::config::Config::load(Some(&repo().join("config/astreinte.toml"))).unwrap();
    assert_eq!(
        defaults.http.listen.as_deref(),
        Some("127.0.0.1:8080"),
        "config/astreinte.toml's console listens beyond loopback"
    );
}

#[test]
fn compose_nodes_trust_kamailio_and_agree_with_its_node_list() {
    let compose = compose_config();
    let subnet: ipnet::IpNet = compose["networks"]["astreinte"]["ipam"]["config"][0]["subnet"]
        .as_str()
        .expect("a fixed subnet for network astreinte")
        .parse()
        .unwrap();
    let kamailio_ip = service_ip(&compose, "kamailio");
    assert!(subnet.contains(&kamailio_ip));
    // Kamailio listens on its fixed address.
    let command: Vec<&str> = compose["services"]["kamailio"]["command"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(
        command.contains(&format!("LISTEN_IP={kamailio_ip}").as_str()),
        "kamailio's command should listen on {kamailio_ip}: {command:?}"
    );
    let list_file = mounted(&compose, "kamailio", "/etc/kamailio")
        .expect("deploy/kamailio mounted at /etc/kamailio")
        .join("dispatcher.list");
    let list = std::fs::read_to_string(&list_file).expect("dispatcher.list");
    let listed: HashSet<String> = list
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            (f.next() == Some("1")).then(|| f.next().unwrap().to_string())
        })
        .collect();

    let mut nodes = Vec::new();
    let services = compose["services"].as_object().unwrap();
    for name in services.keys() {
        let Some(config_file) = mounted(&compose, name, "/etc/astreinte/astreinte.toml") else {
            continue;
        };
        let config: toml::Value =
            toml::from_str(&std::fs::read_to_string(&config_file).unwrap()).unwrap();
        let sip = &config["sip"];
        // The service manager must wait out the drain before it kills.
        let drain = sip
            .get("drain_secs")
            .and_then(toml::Value::as_integer)
            .map_or(astreinte::sip::SipConfig::default().drain_secs, |d| {
                d as u64
            });
        let grace = compose["services"][name]["stop_grace_period"]
            .as_str()
            .and_then(|g| g.strip_suffix('s'))
            .and_then(|g| g.parse::<u64>().ok())
            .unwrap_or(10);
        assert!(
            grace > drain,
            "{name}: stop_grace_period {grace} s does not outlast [sip] drain_secs {drain} s"
        );
        let ip = service_ip(&compose, name);
        let trusted: Vec<ipnet::IpNet> = sip["trusted"]
            .as_array()
            .expect("[sip] trusted")
            .iter()
            .map(|t| {
                let t = t.as_str().unwrap();
                t.parse()
                    .or_else(|_| t.parse::<IpAddr>().map(ipnet::IpNet::from))
                    .unwrap()
            })
            .collect();
        assert!(
            trusted.iter().any(|n| n.contains(&kamailio_ip)),
            "{name} ({}): [sip] trusted {trusted:?} does not name Kamailio's {kamailio_ip}",
            config_file.display()
        );
        assert_eq!(
            sip["public_address"].as_str(),
            Some(ip.to_string().as_str()),
            "{name}: public_address should be its compose address"
        );
        let port: SocketAddr = sip["listen"].as_str().unwrap().parse().unwrap();
        let uri = format!("sip:{ip}:{}", port.port());
        assert!(
            listed.contains(&uri),
            "{name}: {uri} missing from {} ({listed:?})",
            list_file.display()
        );
        let (lo, hi) = config["media"]["rtp_ports"]
            .as_str()
            .unwrap()
            .split_once('-')
            .unwrap();
        let range: Vec<u16> = (lo.parse().unwrap()..=hi.parse::<u16>().unwrap()).collect();
        let published = published_udp(&compose, name);
        assert!(
            range.iter().all(|p| published.contains(p)),
            "{name}: RTP ports {lo}-{hi} are not all published one to one"
        );
        nodes.push((name.clone(), range));
    }
    assert!(nodes.len() >= 2, "two nodes at least: {nodes:?}");
    assert_eq!(listed.len(), nodes.len(), "one dispatcher entry per node");
    for (i, (a, ra)) in nodes.iter().enumerate() {
        for (b, rb) in &nodes[i + 1..] {
            assert!(
                ra.iter().all(|p| !rb.contains(p)),
                "{a} and {b} share RTP ports"
            );
        }
    }
}

// ---- Kamailio for real, in front of SIPp stand-ins ------------------------------------------

/// A stand-in node: SIPp with tests/sipp/uas_node.xml, answering probes and calls, logging every
/// message it gets.
struct Node {
    child: Option<Child>,
    addr: SocketAddr,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Node {
    fn start(draining: bool) -> Node {
        for _ in 0..3 {
            let dir = tempfile::tempdir().unwrap();
            let port = common::free_port();
            let log = dir.path().join("messages.log");
            let mut cmd = Command::new("sipp");
            cmd.current_dir(dir.path())
                .arg("-sf")
                .arg(common::scenario("uas_node.xml"))
                .args(["-i", "127.0.0.1", "-p", &port.to_string()])
                .args(["-mp", &common::free_media_base().to_string()])
                .args(["-nostdin", "-trace_msg", "-message_file"])
                .arg(&log)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0);
            if draining {
                cmd.args(["-set", "draining", "1"]);
            }
            let mut child = match cmd.spawn() {
                Ok(c) => c,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    missing_tool("sipp", "sip-tester")
                }
                Err(e) => panic!("sipp: {e}"),
            };
            // A port taken in between makes SIPp exit at once: try another. It is up once
            // it holds its port.
            let up =
                common::wait::wait_for("SIPp to bind or exit", Duration::from_secs(10), || {
                    if !matches!(child.try_wait(), Ok(None)) {
                        return Some(false);
                    }
                    holds_udp_port(child.id(), port).then_some(true)
                });
            if up {
                return Node {
                    child: Some(child),
                    addr: SocketAddr::from(([127, 0, 0, 1], port)),
                    log,
                    _dir: dir,
                };
            }
        }
        panic!("sipp (uas_node.xml) would not start");
    }

    /// Call-IDs of the INVITEs this node got.
    fn calls(&self) -> HashSet<String> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let mut calls = HashSet::new();
        let mut in_invite = false;
        for line in text.lines() {
            if line.starts_with("INVITE ") {
                in_invite = true;
            } else if line.starts_with("-----") {
                in_invite = false;
            } else if in_invite {
                if let Some(id) = line.strip_prefix("Call-ID:") {
                    calls.insert(id.trim().to_string());
                    in_invite = false;
                }
            }
        }
        calls
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `calls` calls (INVITE, 200, ACK, BYE) through the proxy with tests/sipp/uac_via_proxy.xml,
/// which checks the Record-Route and the P-Asserted-Identity the node saw.
fn call_through(kam: &Kamailio, scenario: &str, calls: u32) -> Output {
    for attempt in 1..=3 {
        let work = tempfile::tempdir().unwrap();
        let out = run(
            Command::new("sipp")
                .current_dir(work.path())
                .arg(kam.addr.to_string())
                .arg("-sf")
                .arg(common::scenario(scenario))
                .args(["-s", "611", "-i", "127.0.0.1"])
                .args(["-p", &common::free_port().to_string()])
                .args(["-mp", &common::free_media_base().to_string()])
                .args(["-m", &calls.to_string(), "-r", "10", "-l", "10"])
                .args([
                    "-timeout",
                    "20s",
                    "-timeout_error",
                    "-nostdin",
                    "-trace_err",
                ])
                .stdin(Stdio::null()),
            "sipp",
            "sip-tester",
        );
        let mut errors = String::new();
        for e in std::fs::read_dir(work.path()).unwrap().flatten() {
            errors.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
        }
        let bind_failed =
            text(&out).contains("Unable to bind") || errors.contains("Unable to bind");
        if out.status.success() || !bind_failed || attempt == 3 {
            if !out.status.success() {
                eprintln!("--- sipp errors\n{errors}");
            }
            return out;
        }
    }
    unreachable!()
}

fn assert_calls_ok(kam: &Kamailio, out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: sipp failed ({:?})\n--- sipp\n{}\n--- kamailio\n{}",
        out.status.code(),
        text(out),
        kam.log()
    );
}

#[test]
fn kamailio_spreads_calls_and_fails_over_when_a_node_dies() {
    let started = Instant::now();
    let a = Node::start(false);
    let mut b = Node::start(false);
    let kam = Kamailio::start(&[a.addr, b.addr], 1);
    assert_eq!(
        kam.options_status(Duration::from_secs(2)).as_deref(),
        Some("SIP/2.0 200 OK"),
        "the proxy's own OPTIONS"
    );

    // Round robin: both nodes get calls.
    let out = call_through(&kam, "uac_via_proxy.xml", 10);
    assert_calls_ok(&kam, &out, "10 calls over two nodes");
    let (on_a, on_b) = (a.calls().len(), b.calls().len());
    assert_eq!(on_a + on_b, 10, "a {on_a}, b {on_b}");
    assert!(on_a >= 4 && on_b >= 4, "round robin: a {on_a}, b {on_b}");

    // Node b dies: calls sent to it before the probes notice go to a after FR_INVITE_MS.
    b.kill();
    let out = call_through(&kam, "uac_via_proxy.xml", 10);
    assert_calls_ok(&kam, &out, "10 calls right after node b died");
    assert_eq!(a.calls().len(), on_a + 10, "every call on the live node");
    assert!(kam.log().contains("retried on node"), "{}", kam.log());

    // Within the probe interval (+ the probe's own timeout) b is inactive and gets no call at
    // all: no call waits for it any more.
    kam.wait_node(b.addr, false, Duration::from_secs(8));
    let failed_before = kam.log().matches("marking it inactive").count();
    let t = Instant::now();
    let out = call_through(&kam, "uac_via_proxy.xml", 6);
    assert_calls_ok(&kam, &out, "6 calls once node b is inactive");
    assert_eq!(a.calls().len(), on_a + 16);
    assert_eq!(
        kam.log().matches("marking it inactive").count(),
        failed_before,
        "no call tried the dead node:\n{}",
        kam.log()
    );
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn kamailio_sends_no_call_to_a_draining_node() {
    let mut a = Node::start(false);
    let b = Node::start(true);
    let kam = Kamailio::start(&[a.addr, b.addr], 1);
    // b answers the probes 503: inactive after the first.
    kam.wait_node(b.addr, false, Duration::from_secs(8));
    kam.wait_node(a.addr, true, Duration::from_secs(8));
    let out = call_through(&kam, "uac_via_proxy.xml", 6);
    assert_calls_ok(&kam, &out, "6 calls with node b draining");
    assert_eq!(a.calls().len(), 6);
    assert_eq!(b.calls().len(), 0, "a draining node gets no new call");

    // No node left: the proxy says so to a trunk's keep-alive, and refuses calls with 503.
    a.kill();
    kam.wait_node(a.addr, false, Duration::from_secs(8));
    assert_eq!(
        kam.options_status(Duration::from_secs(2)).as_deref(),
        Some("SIP/2.0 503 No Node Available")
    );
    let out = call_through(&kam, "uac_503.xml", 1);
    assert_calls_ok(&kam, &out, "a call with no node left gets 503");
}

/// Whether process `pid` has a UDP socket bound to `port` (its open sockets, found in
/// /proc/net/udp by inode).
fn holds_udp_port(pid: u32, port: u16) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    let inodes: Vec<String> = fds
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
        })
        .collect();
    let table = std::fs::read_to_string("/proc/net/udp").unwrap_or_default();
    table.lines().skip(1).any(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        f.len() > 9
            && f[1].rsplit(':').next() == Some(format!("{port:04X}").as_str())
            && inodes.iter().any(|i| i == f[9])
    })
}
