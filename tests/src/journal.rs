//! Real journal files for the journald tests: journal export-format text turned into
//! `.journal` files by systemd-journal-remote, read by the collector through the real
//! `journalctl`. Without those tools the tests skip on a laptop and fail under CI.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

use crate::in_ci;

/// Debian's systemd-journal-remote (package `systemd-journal-remote`).
pub const JOURNAL_REMOTE: &str = "/lib/systemd/systemd-journal-remote";
/// The boot id every test entry carries.
pub const BOOT_ID: &str = "0123456789abcdef0123456789abcdef";

/// Whether the journal tools are here; skips with a message (fails under CI) if not.
pub fn available(test: &str) -> bool {
    let remote = Path::new(JOURNAL_REMOTE).is_file();
    let journalctl = Command::new("journalctl")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if remote && journalctl {
        return true;
    }
    let msg =
        format!("{test}: needs {JOURNAL_REMOTE} and journalctl (run scripts/setup-test-deps.sh)");
    assert!(!in_ci(), "{msg}");
    eprintln!("skipping {msg}");
    false
}

/// One journal entry in export format.
#[derive(Debug, Clone)]
pub struct Entry {
    fields: Vec<(String, Vec<u8>)>,
}

impl Entry {
    /// An entry written at `realtime_us` (µs since the epoch) with MESSAGE `message`.
    pub fn new(realtime_us: i64, message: &str) -> Self {
        Self {
            fields: vec![
                (
                    "__REALTIME_TIMESTAMP".into(),
                    realtime_us.to_string().into(),
                ),
                (
                    "__MONOTONIC_TIMESTAMP".into(),
                    (realtime_us - 1_714_000_000_000_000)
                        .max(1)
                        .to_string()
                        .into(),
                ),
                ("_BOOT_ID".into(), BOOT_ID.into()),
                ("_HOSTNAME".into(), "journal-host".into()),
                ("MESSAGE".into(), message.as_bytes().to_vec()),
            ],
        }
    }

    /// Adds a text field (repeat the call to repeat the field).
    pub fn field(mut self, name: &str, value: &str) -> Self {
        self.fields.push((name.into(), value.as_bytes().to_vec()));
        self
    }

    /// Adds a field with arbitrary bytes.
    pub fn binary(mut self, name: &str, value: &[u8]) -> Self {
        self.fields.push((name.into(), value.to_vec()));
        self
    }
}

/// The export-format text of `entries`: `KEY=value` lines, binary-safe `KEY\n<le64><bytes>`
/// for values with newlines or non-text bytes, a blank line after each entry.
pub fn export(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in entries {
        for (name, value) in &entry.fields {
            let text = std::str::from_utf8(value).is_ok_and(|t| !t.contains('\n'));
            out.extend_from_slice(name.as_bytes());
            if text {
                out.push(b'=');
                out.extend_from_slice(value);
            } else {
                out.push(b'\n');
                out.extend_from_slice(&(value.len() as u64).to_le_bytes());
                out.extend_from_slice(value);
            }
            out.push(b'\n');
        }
        out.push(b'\n');
    }
    out
}

/// Writes `entries` as the journal file `dir/name.journal`. The file is made in a staging
/// directory beside `dir` and renamed into place, so a following journalctl never sees it
/// half-written.
pub fn write_journal(dir: &Path, name: &str, entries: &[Entry]) -> anyhow::Result<PathBuf> {
    let staging = dir.with_extension("staging");
    std::fs::create_dir_all(&staging)?;
    std::fs::create_dir_all(dir)?;
    let export_path = staging.join(format!("{name}.export"));
    std::fs::write(&export_path, export(entries))?;
    let staged = staging.join(format!("{name}.journal"));
    let out = Command::new(JOURNAL_REMOTE)
        .arg(format!("--output={}", staged.display()))
        .arg(&export_path)
        .output()
        .context("run systemd-journal-remote")?;
    if !out.status.success() {
        bail!(
            "systemd-journal-remote failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let target = dir.join(format!("{name}.journal"));
    std::fs::rename(&staged, &target)?;
    Ok(target)
}

/// The collector's flags for reading `journal_dir` (Docker json-file collection off,
/// `docker_dir` still used to enrich journald-driver containers), with `config` as its file.
pub fn collector_args(
    server_url: &str,
    journal_dir: &Path,
    docker_dir: &Path,
    state_dir: &Path,
    config: &Path,
) -> Vec<String> {
    [
        "--server",
        server_url,
        "--journal-dir",
        &journal_dir.display().to_string(),
        "--docker-dir",
        &docker_dir.display().to_string(),
        "--no-docker",
        "--state-dir",
        &state_dir.display().to_string(),
        "--hostname",
        "jhost",
        "--config",
        &config.display().to_string(),
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}
