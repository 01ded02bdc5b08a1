//! The W1 peer from Debian's packages: rsyslog's `imfile` tails the same Docker
//! json-file logs and `omfwd` forwards every line over TCP to a loopback sink here,
//! which counts lines. rsyslog forwards the raw lines (it does not decode the JSON).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

use crate::procstat::{Usage, usage};

/// Where Debian puts rsyslogd, if it is installed.
pub fn rsyslogd() -> Option<PathBuf> {
    ["/usr/sbin/rsyslogd", "/sbin/rsyslogd"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// A TCP sink that counts newline-terminated lines and bytes on every connection.
pub async fn line_sink() -> std::io::Result<(u16, Arc<AtomicU64>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let lines = Arc::new(AtomicU64::new(0));
    let counter = lines.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 256 << 10];
                while let Ok(n) = sock.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    let lf = buf[..n].iter().filter(|b| **b == b'\n').count();
                    counter.fetch_add(lf as u64, Ordering::Relaxed);
                }
            });
        }
    });
    Ok((port, lines))
}

/// The rsyslog configuration: imfile (inotify) on every `*-json.log`, omfwd TCP with
/// the raw line as the message.
fn config(docker_dir: &Path, work: &Path, port: u16) -> String {
    format!(
        r#"global(workDirectory="{work}" maxMessageSize="64k")
module(load="imfile")
template(name="raw" type="string" string="%rawmsg%")
ruleset(name="fwd") {{
  action(type="omfwd" target="127.0.0.1" port="{port}" protocol="tcp" template="raw"
         queue.type="LinkedList" queue.size="100000")
}}
input(type="imfile" file="{dir}/*/*-json.log" tag="docker" ruleset="fwd")
"#,
        work = work.display(),
        dir = docker_dir.display(),
    )
}

/// Runs rsyslogd until the sink counted `lines`; returns seconds and rsyslogd's usage.
pub async fn run_rsyslog(
    rsyslogd: &Path,
    docker_dir: &Path,
    scratch: &Path,
    lines: u64,
) -> anyhow::Result<(f64, Usage)> {
    let work = scratch.join("rsyslog-work");
    std::fs::create_dir_all(&work)?;
    let (port, count) = line_sink().await?;
    let conf = scratch.join("rsyslog.conf");
    std::fs::write(&conf, config(docker_dir, &work, port))?;
    let started = Instant::now();
    let child = std::process::Command::new(rsyslogd)
        .arg("-n")
        .arg("-f")
        .arg(&conf)
        .arg("-i")
        .arg(scratch.join("rsyslogd.pid"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let mut child = Killed(child);
    let pid = child.0.id();
    let deadline = started + Duration::from_secs(900);
    let mut last = usage(pid).unwrap_or_default();
    while count.load(Ordering::Relaxed) < lines {
        if Instant::now() > deadline {
            bail!(
                "rsyslog: only {} of {lines} lines after 900 s",
                count.load(Ordering::Relaxed)
            );
        }
        if let Some(status) = child.0.try_wait()? {
            let mut err = String::new();
            if let Some(mut e) = child.0.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            bail!("rsyslogd exited ({status}):\n{err}");
        }
        if let Some(u) = usage(pid) {
            last = u;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    let u = usage(pid).unwrap_or(last);
    drop(child);
    Ok((secs, u))
}

/// Kills and reaps the child when dropped.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
