//! Helpers for the hardened-deployment test: images built by `deploy/docker/build-image.sh`
//! (no registry), a user-defined Docker network whose gateway a host process listens on,
//! containers and volumes removed by guards even when a test fails, `docker inspect`, and
//! the capability sets of a container's process read from `/proc`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use serde_json::Value;

/// The repository root (the parent of the `tests` crate).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Runs `docker <args>` and returns its trimmed stdout, or an error with its stderr.
pub fn docker<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> anyhow::Result<String> {
    let mut cmd = Command::new("docker");
    cmd.args(args);
    run(&mut cmd)
}

fn run(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd.output().with_context(|| format!("{cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Best-effort `docker <args>` for clean-up: output discarded, errors ignored.
fn quietly(args: &[&str]) {
    let _ = Command::new("docker")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// `docker inspect <name>` as JSON (the first and only element).
pub fn inspect(name: &str) -> anyhow::Result<Value> {
    let text = docker(&["inspect", name])?;
    let mut all: Vec<Value> = serde_json::from_str(&text).context("docker inspect JSON")?;
    all.pop().context("docker inspect returned nothing")
}

/// Docker objects created by a test, removed in reverse order when the guard drops:
/// containers first, then volumes, networks and images.
#[derive(Default)]
pub struct Cleanup {
    containers: Vec<String>,
    volumes: Vec<String>,
    networks: Vec<String>,
    images: Vec<String>,
}

impl Cleanup {
    /// Builds an image of `kind` (`server`, `collector`, `sinks`) from `binary` with
    /// `deploy/docker/build-image.sh`, labelled `label`; the guard removes it.
    pub fn build_image(
        &mut self,
        kind: &str,
        binary: &Path,
        tag: &str,
        label: &str,
    ) -> anyhow::Result<()> {
        self.images.push(tag.to_owned());
        let script = repo_root().join("deploy/docker/build-image.sh");
        run(Command::new("bash")
            .arg(script)
            .arg(kind)
            .arg(binary)
            .arg(tag)
            .env("LOGWARD_IMAGE_LABELS", label))?;
        Ok(())
    }

    /// Creates a bridge network; returns its gateway address (the host's address on it).
    pub fn network(&mut self, name: &str, label: &str) -> anyhow::Result<String> {
        self.networks.push(name.to_owned());
        docker(&["network", "create", "--label", label, name])?;
        let gateway = docker(&[
            "network",
            "inspect",
            "--format",
            "{{range .IPAM.Config}}{{.Gateway}} {{end}}",
            name,
        ])?;
        gateway
            .split_whitespace()
            .find(|g| g.parse::<std::net::Ipv4Addr>().is_ok())
            .map(str::to_owned)
            .with_context(|| format!("no IPv4 gateway on network {name}: {gateway:?}"))
    }

    /// Registers a named volume for removal (Docker creates it on first use).
    pub fn volume(&mut self, name: &str) -> String {
        self.volumes.push(name.to_owned());
        name.to_owned()
    }

    /// `docker run -d --name <name> <args…>` (args end with the image and its command).
    pub fn run(&mut self, name: &str, args: &[String]) -> anyhow::Result<String> {
        self.containers.push(name.to_owned());
        let mut all = vec!["run".to_owned(), "-d".to_owned(), "--name".to_owned()];
        all.push(name.to_owned());
        all.extend_from_slice(args);
        docker(&all)
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for name in &self.containers {
                if let Ok(out) = Command::new("docker").args(["logs", name]).output() {
                    eprintln!(
                        "---- docker logs {name} ----\n{}{}",
                        String::from_utf8_lossy(&out.stdout),
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
            }
        }
        for name in self.containers.iter().rev() {
            quietly(&["rm", "-f", "-v", name]);
        }
        for name in &self.volumes {
            quietly(&["volume", "rm", "-f", name]);
        }
        for name in &self.networks {
            quietly(&["network", "rm", name]);
        }
        for tag in &self.images {
            quietly(&["rmi", "-f", tag]);
        }
    }
}

/// The security-relevant lines of `/proc/<pid>/status` of a container's main process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcSecurity {
    /// Real, effective, saved and filesystem uids.
    pub uid: Vec<u32>,
    /// `CapInh`, `CapPrm`, `CapEff`, `CapBnd`, `CapAmb` as bit masks.
    pub caps: [u64; 5],
    /// `NoNewPrivs`.
    pub no_new_privs: bool,
    /// `Seccomp`: 0 off, 1 strict, 2 filter.
    pub seccomp: u8,
}

/// Reads [`ProcSecurity`] of the main process of a running container (as the host sees it).
pub fn proc_security(container: &str) -> anyhow::Result<ProcSecurity> {
    let pid = docker(&["inspect", "--format", "{{.State.Pid}}", container])?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("/proc/{pid}/status of {container}"))?;
    parse_status(&status)
}

/// Parses the lines of `/proc/<pid>/status` that [`ProcSecurity`] holds.
pub fn parse_status(status: &str) -> anyhow::Result<ProcSecurity> {
    let get = |key: &str| -> anyhow::Result<&str> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .map(str::trim)
            .with_context(|| format!("no {key} in /proc status"))
    };
    let cap = |key: &str| -> anyhow::Result<u64> {
        u64::from_str_radix(get(key)?, 16).with_context(|| format!("{key} is not hex"))
    };
    Ok(ProcSecurity {
        uid: get("Uid")?
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()?,
        caps: [
            cap("CapInh")?,
            cap("CapPrm")?,
            cap("CapEff")?,
            cap("CapBnd")?,
            cap("CapAmb")?,
        ],
        no_new_privs: get("NoNewPrivs")? == "1",
        seccomp: get("Seccomp")?.parse()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Option<&ProcSecurity>) {
        assert_eq!(parse_status(input).ok().as_ref(), expected, "{input}");
    }

    #[test]
    fn parses_proc_status() {
        let full = "Name:\tlogward-collect\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n\
                    CapInh:\t0000000000000000\nCapPrm:\t0000000000000000\n\
                    CapEff:\t0000000000000000\nCapBnd:\t0000000000000004\n\
                    CapAmb:\t0000000000000000\nNoNewPrivs:\t1\nSeccomp:\t2\n";
        check(
            full,
            Some(&ProcSecurity {
                uid: vec![0, 0, 0, 0],
                caps: [0, 0, 0, 4, 0],
                no_new_privs: true,
                seccomp: 2,
            }),
        );
        check(&full.replace("NoNewPrivs:\t1\n", ""), None);
        check(
            &full.replace("CapEff:\t0000000000000000", "CapEff:\tzz"),
            None,
        );
    }
}
