//! Real notification receivers for the alerting tests: an SMTP server (aiosmtpd writing a
//! Maildir) and an HTTP webhook receiver, plus the small helpers those tests share.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
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

/// One request the webhook receiver got.
#[derive(Clone, Debug)]
pub struct Hook {
    /// Header names in lowercase.
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    /// When the request was read.
    pub at: Instant,
}

/// A real HTTP receiver on `127.0.0.1:port`: answers 200 to every request and records it.
pub fn receiver(port: u16) -> Arc<Mutex<Vec<Hook>>> {
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind receiver");
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = got.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let sink = sink.clone();
            std::thread::spawn(move || {
                if let Some(hook) = read_request(&stream) {
                    sink.lock().expect("lock").push(hook);
                }
                let mut s = &stream;
                let _ = s.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
            });
        }
    });
    got
}

fn read_request(stream: &TcpStream) -> Option<Hook> {
    let mut r = BufReader::new(stream);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let mut headers = HashMap::new();
    loop {
        line.clear();
        r.read_line(&mut line).ok()?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(':')?;
        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
    }
    let len: usize = headers.get("content-length")?.parse().ok()?;
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some(Hook {
        headers,
        body,
        at: Instant::now(),
    })
}
