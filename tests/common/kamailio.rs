//! Kamailio with the repository's `deploy/kamailio/kamailio.cfg`, on a free loopback port, in
//! front of the given nodes (dispatcher set 1). The config file is used as shipped: every
//! test setting is a `-A NAME=VALUE` define (see the top of the file). Kamailio runs in its
//! own process group, which is terminated (then killed) on drop, even when the test panics.

use std::net::{SocketAddr, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

// Its own copy of the helper: benches/cluster.rs loads this file without the rest of `common`.
#[allow(clippy::duplicate_mod)]
#[path = "wait.rs"]
mod wait;

/// The shipped config file.
pub fn cfg_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kamailio/kamailio.cfg")
}

/// A Kamailio program (`kamailio`, `kamcmd`): from PATH, else from /usr/sbin, where Debian
/// puts it and where a user's PATH often does not go.
pub fn program(name: &str) -> PathBuf {
    let in_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
        .unwrap_or(false);
    let sbin = Path::new("/usr/sbin").join(name);
    if !in_path && sbin.is_file() {
        sbin
    } else {
        PathBuf::from(name)
    }
}

/// Panics (never skips) when `kamailio` is not installed, with how to install it.
pub fn require_kamailio() {
    if Command::new(program("kamailio"))
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_err()
    {
        let hint = "install it with `apt-get install kamailio` (scripts/test.sh does)";
        if std::env::var_os("CI").is_some() {
            panic!("kamailio is missing on this CI machine: {hint}");
        }
        panic!("kamailio is missing: {hint}; the deployment tests need it");
    }
}

/// The `-A` defines the harness gives the config (the file itself is never edited).
pub fn test_defines(dir: &Path, port: u16, probe_interval_secs: u32) -> Vec<String> {
    vec![
        "LISTEN_IP=127.0.0.1".into(),
        format!("SIP_PORT={port}"),
        format!(
            "DISPATCHER_LIST=\"{}\"",
            dir.join("dispatcher.list").display()
        ),
        format!("PING_INTERVAL={probe_interval_secs}"),
        "CHILDREN=2".into(),
        format!("CTL_SOCKET=\"unix:{}\"", dir.join("kamailio_ctl").display()),
    ]
}

pub struct Kamailio {
    /// Where it listens, UDP and TCP.
    pub addr: SocketAddr,
    child: Option<Child>,
    dir: tempfile::TempDir,
    log: PathBuf,
}

impl Kamailio {
    /// Starts Kamailio dispatching to `nodes`, probing them every `probe_interval_secs`, and
    /// waits (up to 10 s) until it answers OPTIONS.
    pub fn start(nodes: &[SocketAddr], probe_interval_secs: u32) -> Kamailio {
        require_kamailio();
        let dir = tempfile::tempdir().expect("tempdir");
        let list: String = nodes.iter().map(|n| format!("1 sip:{n}\n")).collect();
        std::fs::write(dir.path().join("dispatcher.list"), list).expect("write dispatcher.list");
        let log = dir.path().join("kamailio.log");
        let mut kamailio = Kamailio {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            child: None,
            dir,
            log,
        };
        // The port is free when picked but may be taken before Kamailio binds it: a start that
        // fails is retried on another port.
        for attempt in 1..=3 {
            let port = super::free_port();
            kamailio.addr.set_port(port);
            kamailio.spawn(probe_interval_secs);
            match kamailio.wait_ready() {
                Ok(()) => return kamailio,
                Err(why) if attempt < 3 && why.contains("exited") => kamailio.stop(),
                Err(why) => panic!("kamailio not ready: {why}\n{}", kamailio.log()),
            }
        }
        unreachable!()
    }

    /// The command line used (for the failure messages and the docs).
    pub fn command(dir: &Path, port: u16, probe_interval_secs: u32) -> Command {
        let mut cmd = Command::new(program("kamailio"));
        cmd.args(["-DD", "-E", "-f"])
            .arg(cfg_path())
            .arg("-Y")
            .arg(dir)
            .arg("-P")
            .arg(dir.join("kamailio.pid"))
            .arg("-w")
            .arg(dir)
            .args(["-m", "256"]);
        for define in test_defines(dir, port, probe_interval_secs) {
            cmd.arg("-A").arg(define);
        }
        cmd
    }

    fn spawn(&mut self, probe_interval_secs: u32) {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("kamailio log");
        let err = out.try_clone().expect("kamailio log");
        let child = Kamailio::command(self.dir.path(), self.addr.port(), probe_interval_secs)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            // Its own process group: Drop signals the main process and every child it forked.
            .process_group(0)
            .spawn()
            .expect("start kamailio");
        self.child = Some(child);
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(format!("kamailio exited early ({status})"));
                }
            }
            // 200 while a node takes calls; 503 would mean every node failed its probe, which
            // is an answer too (the tests check the status they expect).
            if self.options_status(Duration::from_millis(200)).is_some() {
                return Ok(());
            }
        }
        Err("no answer to OPTIONS within 10 s".into())
    }

    /// Sends one OPTIONS to the proxy itself and returns the status line of the answer.
    pub fn options_status(&self, wait: Duration) -> Option<String> {
        let sock = UdpSocket::bind("127.0.0.1:0").ok()?;
        sock.set_read_timeout(Some(wait)).ok()?;
        let local = sock.local_addr().ok()?;
        let n: u32 = rand::random();
        let msg = format!(
            "OPTIONS sip:{addr} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKkam{n}\r\nFrom: <sip:probe@{local}>;tag=k{n}\r\nTo: <sip:{addr}>\r\nCall-ID: kamailio-ready-{n}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            addr = self.addr
        );
        sock.send_to(msg.as_bytes(), self.addr).ok()?;
        let mut buf = [0u8; 4096];
        let (len, _) = sock.recv_from(&mut buf).ok()?;
        let text = String::from_utf8_lossy(&buf[..len]);
        let line = text.lines().next()?;
        line.starts_with("SIP/2.0 ").then(|| line.to_string())
    }

    /// The dispatcher's view of the nodes: (URI, flags) with flags as kamcmd prints them
    /// ("AP": active and probed, "IP": inactive and probed, "TP": trying).
    pub fn node_states(&self) -> Vec<(String, String)> {
        let out = Command::new(program("kamcmd"))
            .arg("-s")
            .arg(format!(
                "unix:{}",
                self.dir.path().join("kamailio_ctl").display()
            ))
            .arg("dispatcher.list")
            .output();
        let Ok(out) = out else {
            return Vec::new();
        };
        let text = String::from_utf8_lossy(&out.stdout);
        let mut states = Vec::new();
        let mut uri = None;
        for line in text.lines() {
            let line = line.trim();
            if let Some(u) = line.strip_prefix("URI: ") {
                uri = Some(u.to_string());
            } else if let Some(f) = line.strip_prefix("FLAGS: ") {
                if let Some(u) = uri.take() {
                    states.push((u, f.to_string()));
                }
            }
        }
        states
    }

    /// Waits until the node at `node` is active (`true`) or inactive (`false`) in the
    /// dispatcher; panics with the log after `within`.
    pub fn wait_node(&self, node: SocketAddr, active: bool, within: Duration) {
        let uri = format!("sip:{node}");
        let mut states = Vec::new();
        let became = wait::poll_until(within, || {
            states = self.node_states();
            states
                .iter()
                .find(|(u, _)| *u == uri)
                .is_some_and(|(_, f)| f.starts_with('A') == active)
        });
        if !became {
            panic!(
                "node {node} not {} within {within:?}: {states:?}\n{}",
                if active { "active" } else { "inactive" },
                self.log()
            );
        }
    }

    /// Kamailio's log (standard error) so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Its working directory (dispatcher list, pid file, control socket, log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Terminates the process group (SIGTERM, then SIGKILL after 5 s) and reaps the main
    /// process. Idempotent.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pgid = child.id() as libc::pid_t;
        // SAFETY: plain signal sends to the group we created (its id is our child's pid, which
        // stays reserved while the child is unreaped or any member of the group lives).
        unsafe {
            libc::kill(-pgid, libc::SIGTERM);
        }
        let exited = wait::poll_until(Duration::from_secs(5), || {
            matches!(child.try_wait(), Ok(Some(_)))
        });
        if !exited {
            // SAFETY: as above; the leader is still unreaped, so the group id is ours.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
            let _ = child.wait();
        }
        // Workers that outlived the main process (it normally takes them down with it).
        wait::poll_until(Duration::from_secs(1), || {
            // SAFETY: signal 0 only checks whether the group still has members.
            if unsafe { libc::kill(-pgid, 0) } != 0 {
                return true;
            }
            // SAFETY: the group still has members, so its id has not been reused.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
            false
        });
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        self.stop();
    }
}
