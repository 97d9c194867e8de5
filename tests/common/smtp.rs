//! A real SMTP server for tests: Python's aiosmtpd writing every message it receives into a
//! maildir. Stopped on drop.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct SmtpServer {
    child: Child,
    pub port: u16,
    pub maildir: tempfile::TempDir,
}

impl SmtpServer {
    /// Starts aiosmtpd on a free port. Under CI a missing aiosmtpd fails the test; elsewhere
    /// the test is told to install it (`pip install aiosmtpd`).
    pub fn start() -> SmtpServer {
        let maildir = tempfile::tempdir().expect("maildir");
        let port = super::free_port();
        let child = Command::new("python3")
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(maildir.path().join("mail"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3");
        let mut s = SmtpServer {
            child,
            port,
            maildir,
        };
        super::wait::wait_until(
            "aiosmtpd to accept connections",
            Duration::from_secs(15),
            || {
                if let Ok(Some(status)) = s.child.try_wait() {
                    panic!(
                        "aiosmtpd did not start ({status}): install it with `pip install aiosmtpd`"
                    );
                }
                std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            },
        );
        s
    }

    /// The raw messages received so far.
    pub fn messages(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            if let Ok(entries) = std::fs::read_dir(self.maildir.path().join("mail").join(sub)) {
                out.extend(entries.flatten().map(|e| e.path()));
            }
        }
        out.sort();
        out
    }

    /// Waits until `n` messages arrived.
    pub fn wait_messages(&self, n: usize, within: Duration) -> Vec<PathBuf> {
        super::wait::poll_until(within, || self.messages().len() >= n);
        self.messages()
    }

    /// Parses a stored message with Python's `email` package: subject, recipients and the
    /// attachments (file name, content type, decoded bytes as hex).
    pub fn parse(&self, message: &std::path::Path) -> serde_json::Value {
        let script = r#"
import email, json, sys
from email import policy
m = email.message_from_binary_file(open(sys.argv[1], 'rb'), policy=policy.default)
att = []
for part in m.iter_attachments():
    att.append({"filename": part.get_filename(), "type": part.get_content_type(),
                "hex": part.get_payload(decode=True).hex()})
body = m.get_body(preferencelist=('plain',))
print(json.dumps({"subject": str(m["subject"]), "to": str(m["to"]), "from": str(m["from"]),
                  "body": body.get_content() if body else "", "attachments": att}))
"#;
        let out = Command::new("python3")
            .args(["-c", script])
            .arg(message)
            .output()
            .expect("python3");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("parsed message")
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
