//! Real notification receivers for the alerting tests: an SMTP server (aiosmtpd writing a
//! Maildir), plus the small helpers those tests share.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::in_ci;

const PYTHON: &str = "/usr/bin/python3";

/// A free loopback port (bound and released; good enough for a test's own servers).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// True when aiosmtpd can run; outside CI a missing one skips `test` (false), under
/// `CI=true` it fails.
pub fn aiosmtpd_available(test: &str) -> bool {
    let ok = Command::new(PYTHON)
        .args(["-c", "import aiosmtpd"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        let msg =
            format!("aiosmtpd is not installed (scripts/setup-test-deps.sh): skipping {test}");
        assert!(!in_ci(), "{msg}, which CI=true forbids");
        eprintln!("{msg}");
    }
    ok
}

/// A real SMTP server: aiosmtpd delivering into a Maildir; killed on drop.
pub struct Smtp(Child);

impl Smtp {
    /// Starts aiosmtpd on `127.0.0.1:port`, writing to `maildir`, and waits until it listens.
    pub fn start(port: u16, maildir: &Path) -> Smtp {
        let child = Command::new(PYTHON)
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn aiosmtpd");
        let smtp = Smtp(child);
        wait_until("aiosmtpd listening", Duration::from_secs(30), || {
            TcpStream::connect(("127.0.0.1", port)).ok()
        });
        smtp
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Polls `f` until it gives a value; fails the test after `timeout`, naming `what`.
pub fn wait_until<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?}: {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}
