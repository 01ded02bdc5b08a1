//! Helpers for tests that drive the real Docker engine and for the collector fault tests: a
//! tiny local image built with `docker import` (no registry), containers removed by a guard
//! even when a test fails, a server on a fixed port that survives restarts, and a seeded PRNG.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};

use crate::{Proc, Server, in_ci};

/// Tag of the local test image: Debian's static busybox and nothing else.
pub const IMAGE: &str = "logward-test-busybox:1";

/// Whether a Docker engine answers. Under `CI=true` a missing engine is a failure; elsewhere
/// the caller skips with the message printed here.
pub fn engine_available(test: &str) -> bool {
    let ok = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let readable = std::fs::read_dir("/var/lib/docker/containers").is_ok();
    if ok && readable {
        return true;
    }
    let why = if ok {
        "/var/lib/docker/containers is not readable (run as root)"
    } else {
        "`docker info` failed: no Docker engine"
    };
    assert!(!in_ci(), "{test}: {why}, and CI=true requires it");
    eprintln!("SKIPPED {test}: {why}");
    false
}

/// Builds [`IMAGE`] from `/bin/busybox` (Debian's `busybox-static`) if it is not there yet.
pub fn ensure_image() -> anyhow::Result<()> {
    let exists = Command::new("docker")
        .args(["image", "inspect", IMAGE])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?
        .success();
    if exists {
        return Ok(());
    }
    let busybox = Path::new("/bin/busybox");
    if !busybox.exists() {
        bail!("/bin/busybox is missing: install busybox-static (scripts/setup-test-deps.sh)");
    }
    let root = tempfile::tempdir()?;
    let bin = root.path().join("bin");
    std::fs::create_dir_all(&bin)?;
    std::fs::copy(busybox, bin.join("busybox"))?;
    for applet in ["sh", "echo", "seq", "sleep", "usleep", "cat"] {
        std::os::unix::fs::symlink("busybox", bin.join(applet))?;
    }
    let tar = root.path().join("rootfs.tar");
    run(Command::new("tar")
        .arg("-C")
        .arg(root.path())
        .arg("-cf")
        .arg(&tar)
        .arg("bin"))?;
    run(Command::new("docker").arg("import").arg(&tar).arg(IMAGE))?;
    Ok(())
}

fn run(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd.output().with_context(|| format!("{cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Containers started by a test, removed (`docker rm -f`) when the guard drops.
#[derive(Default)]
pub struct Containers {
    names: Vec<String>,
}

impl Containers {
    /// `docker run -d --name <name> <args…> IMAGE sh -c <script>`; returns the container id.
    pub fn run(&mut self, name: &str, args: &[&str], script: &str) -> anyhow::Result<String> {
        self.names.push(name.to_owned());
        let mut cmd = Command::new("docker");
        cmd.args(["run", "-d", "--name", name]).args(args);
        cmd.args([IMAGE, "sh", "-c", script]);
        run(&mut cmd)
    }

    /// Waits until every container has exited.
    pub fn wait_all(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = std::time::Instant::now() + timeout;
        for name in &self.names {
            loop {
                let running = run(Command::new("docker").args([
                    "inspect",
                    "--format",
                    "{{.State.Running}}",
                    name,
                ]))?;
                if running == "false" {
                    break;
                }
                if std::time::Instant::now() > deadline {
                    bail!("container {name} still running after {timeout:?}");
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Ok(())
    }
}

impl Drop for Containers {
    fn drop(&mut self) {
        for name in &self.names {
            let _ = Command::new("docker")
                .args(["rm", "-f", name])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Starts the server with its gRPC listener on a fixed port, so that a collector keeps
/// reaching it across server restarts.
pub fn server_on(data_dir: &Path, grpc_port: u16) -> anyhow::Result<Server> {
    let args = vec![
        "--data-dir".to_owned(),
        data_dir.display().to_string(),
        "--grpc-addr".to_owned(),
        format!("127.0.0.1:{grpc_port}"),
        "--http-addr".to_owned(),
        "127.0.0.1:0".to_owned(),
    ];
    let mut proc = Proc::spawn("logward-server", &args, &[])?;
    let line = proc.wait_for_log("logward-server listening", Duration::from_secs(30))?;
    let http = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("http="))
        .context("http address in log")?
        .trim_matches('"')
        .to_owned();
    Ok(Server {
        proc,
        grpc: format!("127.0.0.1:{grpc_port}"),
        http,
    })
}

/// A tiny seeded xorshift64* PRNG: "random" moments that replay the same on every run.
pub struct Rng(u64);

impl Rng {
    /// A generator from a non-zero seed.
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    /// A number in `[low, high)`.
    pub fn range(&mut self, low: u64, high: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
        low + x % (high - low).max(1)
    }
}
