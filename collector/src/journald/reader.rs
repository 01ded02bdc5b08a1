//! The journalctl process: which arguments, the cursor probe, and the follow loop that
//! restarts journalctl with backoff and resumes after the last cursor read.

use std::ffi::OsString;
use std::io::{self, BufRead, BufReader, Read as _};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::config::JournalStart;

/// What journalctl reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// The system journal (journalctl's default).
    System,
    /// `--directory DIR`.
    Dir(PathBuf),
    /// `--file FILE`, for each file.
    Files(Vec<PathBuf>),
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::System => write!(f, "the system journal"),
            Self::Dir(dir) => write!(f, "directory {}", dir.display()),
            Self::Files(files) => {
                let names: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
                write!(f, "files {}", names.join(", "))
            }
        }
    }
}

/// Where a follow starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum From {
    /// After this entry.
    After(String),
    /// The configured first start.
    Start(JournalStart),
}

/// Arguments selecting the journal and the matches.
pub fn base_args(location: &Location, matches: &[String]) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["--no-pager".into(), "--all".into()];
    match location {
        Location::System => {}
        Location::Dir(dir) => {
            args.push("--directory".into());
            args.push(dir.into());
        }
        Location::Files(files) => {
            for file in files {
                args.push("--file".into());
                args.push(file.into());
            }
        }
    }
    args.push("--output=json".into());
    args.extend(matches.iter().map(OsString::from));
    args
}

/// Arguments of the follow process. Matches must come last, so they are inserted before
/// the base arguments' matches by the caller passing `base` last.
pub fn follow_args(location: &Location, matches: &[String], from: &From) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["--follow".into()];
    match from {
        // With --follow journalctl shows only the last 10 entries unless told otherwise,
        // even after a cursor.
        From::After(cursor) => {
            args.push(format!("--after-cursor={cursor}").into());
            args.push("--no-tail".into());
        }
        From::Start(JournalStart::Beginning) => args.push("--no-tail".into()),
        From::Start(JournalStart::Boot) => {
            args.push("--boot".into());
            args.push("--no-tail".into());
        }
        From::Start(JournalStart::Now) => args.push("--lines=0".into()),
    }
    args.extend(base_args(location, matches));
    args
}

/// What the probe of a cursor found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// The entry is in the journal.
    Valid,
    /// The cursor cannot be resumed from; why.
    Invalid(String),
    /// journalctl could not read the journal at all (retry later).
    Unavailable(String),
}

/// Reads one line of at most `cap` bytes into `buf` (without the newline); the rest of a
/// longer line is skipped. `Ok(None)` at the end of input; `Ok(Some(true))` if cut.
pub fn read_line_capped(
    reader: &mut impl BufRead,
    buf: &mut Vec<u8>,
    cap: usize,
) -> io::Result<Option<bool>> {
    buf.clear();
    let mut cut = false;
    let mut any = false;
    loop {
        let chunk = match reader.fill_buf() {
            Ok(chunk) => chunk,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            return Ok(any.then_some(cut));
        }
        any = true;
        let (part, used, done) = match memchr_newline(chunk) {
            Some(i) => (&chunk[..i], i + 1, true),
            None => (chunk, chunk.len(), false),
        };
        let room = cap.saturating_sub(buf.len());
        if part.len() > room {
            cut = true;
        }
        buf.extend_from_slice(&part[..part.len().min(room)]);
        reader.consume(used);
        if done {
            return Ok(Some(cut));
        }
    }
}

fn memchr_newline(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b == b'\n')
}

/// A journalctl process shared with whoever must be able to kill it.
pub type SharedChild = Arc<Mutex<Option<Child>>>;

/// Starts journalctl with `args`, stdout piped, stderr kept (its last bytes) for the log.
pub fn spawn(
    journalctl: &PathBuf,
    args: &[OsString],
    shared: &SharedChild,
) -> io::Result<(std::process::ChildStdout, std::thread::JoinHandle<String>)> {
    let mut child = Command::new(journalctl)
        .args(args)
        .env("SYSTEMD_COLORS", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| io::Error::other("journalctl has no stdout"))?;
    let stderr = child.stderr.take();
    let err_thread = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut stderr) = stderr {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                text.push_str(&String::from_utf8_lossy(&buf[..n]));
                if text.len() > 8192 {
                    let cut = text.len() - 4096;
                    let cut = (cut..text.len())
                        .find(|&i| text.is_char_boundary(i))
                        .unwrap_or(0);
                    text.drain(..cut);
                }
            }
        }
        text.trim().to_owned()
    });
    *shared.lock().unwrap_or_else(PoisonError::into_inner) = Some(child);
    Ok((stdout, err_thread))
}

/// Waits for the shared child (killing it first when `kill`) and describes how it ended.
pub fn reap(shared: &SharedChild, kill: bool) -> Option<std::process::ExitStatus> {
    let mut child = shared
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take()?;
    if kill {
        let _ = child.kill();
    }
    child.wait().ok()
}

/// Checks that `cursor` names an entry still in the journal: `--cursor` shows the entry at
/// the cursor first (inclusive), so a first entry with another cursor, or none at all while
/// the journal holds entries, means the cursor is vacuumed, corrupt or from elsewhere.
pub fn probe(
    journalctl: &PathBuf,
    location: &Location,
    cursor: &str,
    stop: &AtomicBool,
) -> io::Result<Probe> {
    let shared: SharedChild = Arc::default();
    let mut args: Vec<OsString> = vec![format!("--cursor={cursor}").into()];
    args.extend(base_args(location, &[]));
    let (stdout, err_thread) = spawn(journalctl, &args, &shared)?;
    let mut line = Vec::new();
    let first = read_line_capped(&mut BufReader::new(stdout), &mut line, 64 << 20)?;
    let status = reap(&shared, true);
    let stderr = err_thread.join().unwrap_or_default();
    if stop.load(Ordering::Relaxed) {
        return Ok(Probe::Unavailable("stopping".to_owned()));
    }
    if first.is_some() {
        let found = serde_json::from_slice::<serde_json::Value>(&line)
            .ok()
            .and_then(|v| {
                v.get("__CURSOR")
                    .and_then(|c| c.as_str().map(str::to_owned))
            });
        return Ok(if found.as_deref() == Some(cursor) {
            Probe::Valid
        } else {
            Probe::Invalid("the entry at the cursor is gone (vacuumed, rotated away, or the cursor belongs to another journal)".to_owned())
        });
    }
    // Nothing printed: does the journal hold anything at all?
    let mut args: Vec<OsString> = vec!["--lines=1".into()];
    args.extend(base_args(location, &[]));
    let holder: SharedChild = Arc::default();
    let (stdout, err2) = spawn(journalctl, &args, &holder)?;
    let any = read_line_capped(&mut BufReader::new(stdout), &mut line, 64 << 20)?.is_some();
    let last = reap(&holder, false);
    let stderr2 = err2.join().unwrap_or_default();
    if !last.is_some_and(|s| s.success()) {
        return Ok(Probe::Unavailable(format!(
            "journalctl cannot read {location}: {stderr2}"
        )));
    }
    if !status.is_some_and(|s| s.success()) {
        return Ok(Probe::Invalid(format!(
            "journalctl rejected the cursor: {stderr}"
        )));
    }
    Ok(if any {
        Probe::Invalid("the cursor is past the end of the journal".to_owned())
    } else {
        Probe::Invalid("the journal holds no entries any more".to_owned())
    })
}

/// Sleeps `d` in short steps; false if `stop` was set meanwhile.
pub fn sleep_unless_stopped(d: Duration, stop: &AtomicBool) -> bool {
    let step = Duration::from_millis(50);
    let mut left = d;
    while !left.is_zero() {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        let now = left.min(step);
        std::thread::sleep(now);
        left -= now;
    }
    !stop.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[OsString]) -> Vec<String> {
        args.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn follow_arguments_per_start_and_location() {
        let m = vec!["_SYSTEMD_UNIT=ssh.service".to_owned()];
        let dir = Location::Dir("/j".into());
        assert_eq!(
            strings(&follow_args(&dir, &m, &From::After("s=1".into()))),
            [
                "--follow",
                "--after-cursor=s=1",
                "--no-tail",
                "--no-pager",
                "--all",
                "--directory",
                "/j",
                "--output=json",
                "_SYSTEMD_UNIT=ssh.service"
            ]
        );
        let files = Location::Files(vec!["/a.journal".into(), "/b.journal".into()]);
        let args = strings(&follow_args(&files, &[], &From::Start(JournalStart::Boot)));
        assert_eq!(&args[..3], ["--follow", "--boot", "--no-tail"]);
        assert!(args.ends_with(&[
            "--file".into(),
            "/a.journal".into(),
            "--file".into(),
            "/b.journal".into(),
            "--output=json".into()
        ]));
        let now = strings(&follow_args(
            &Location::System,
            &[],
            &From::Start(JournalStart::Now),
        ));
        assert_eq!(now[..2], ["--follow", "--lines=0"]);
    }

    #[test]
    fn long_lines_are_cut_and_the_rest_skipped() {
        let input = b"short\nxxxxxxxxxxxxxxxxxxxx\nlast";
        let mut reader = BufReader::with_capacity(4, &input[..]);
        let mut buf = Vec::new();
        let mut got = Vec::new();
        while let Some(cut) = read_line_capped(&mut reader, &mut buf, 8).unwrap() {
            got.push((String::from_utf8_lossy(&buf).into_owned(), cut));
        }
        assert_eq!(
            got,
            [
                ("short".to_owned(), false),
                ("xxxxxxxx".to_owned(), true),
                ("last".to_owned(), false)
            ]
        );
    }
}
