//! Atomic whole-file replace: temp file, write, fsync, rename, fsync of the directory.

use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Result, io_err};

/// Temp names in use by this process are `<name>.tmp.<pid>.<n>`; `<name>.tmp` is the name
/// the copies this crate replaced used, and is cleared as a stale temp too.
const TEMP_INFIX: &str = ".tmp";
/// How many names are tried when a temp name is taken (a stale file of an earlier process
/// that had the same pid).
const TEMP_ATTEMPTS: u32 = 16;

static NEXT_TEMP: AtomicU64 = AtomicU64::new(0);

/// Replaces `dir/name` by `bytes` so that after a crash it holds either the old or the
/// new contents, and once this returns the new contents are durable.
///
/// The bytes go to a temp file of a unique name in `dir` (created exclusively), which is
/// fsynced, renamed over `dir/name`, and then `dir` is fsynced so that the rename itself
/// survives a power loss. If a step fails the temp file is removed and the error names
/// the step and its path; `dir/name` is then untouched (or, if only the directory fsync
/// failed, already replaced but perhaps not durable).
pub fn atomic_replace(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let (tmp, mut file) = create_temp(dir, name)?;
    let target = dir.join(name);
    let written = file
        .write_all(bytes)
        .map_err(io_err("write", &tmp))
        .and_then(|()| file.sync_all().map_err(io_err("fsync", &tmp)));
    drop(file);
    if let Err(error) =
        written.and_then(|()| std::fs::rename(&tmp, &target).map_err(io_err("rename", &tmp)))
    {
        // Best effort: the temp is garbage either way, and the first error is the one
        // worth reporting.
        let _ = std::fs::remove_file(&tmp);
        return Err(error);
    }
    sync_dir(dir)
}

/// Fsyncs a directory, so that entries created, renamed or removed in it are durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync directory", dir))
}

/// Removes the temp files of `dir/name` that a killed process left behind (including the
/// `<name>.tmp` of the older writers) and returns how many there were. Call it only where
/// no other writer of `dir/name` can be running, such as when the file's owner opens it.
pub fn remove_stale_temps(dir: &Path, name: &str) -> Result<usize> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io_err("list", dir)(e)),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry.map_err(io_err("list", dir))?;
        if !is_temp_of(&entry.file_name(), name) {
            continue;
        }
        let path = entry.path();
        match std::fs::remove_file(&path) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("remove stale temp", &path)(e)),
        }
    }
    Ok(removed)
}

/// Whether `file` is a temp file of `name`: `<name>.tmp` or `<name>.tmp.<anything>`.
fn is_temp_of(file: &OsStr, name: &str) -> bool {
    let Some(file) = file.to_str() else {
        return false;
    };
    file.strip_prefix(name)
        .and_then(|rest| rest.strip_prefix(TEMP_INFIX))
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
}

fn create_temp(dir: &Path, name: &str) -> Result<(PathBuf, File)> {
    let pid = std::process::id();
    let mut attempt = 0;
    loop {
        let n = NEXT_TEMP.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!("{name}{TEMP_INFIX}.{pid}.{n}"));
        match OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(file) => return Ok((tmp, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < TEMP_ATTEMPTS => {
                attempt += 1;
            }
            Err(e) => return Err(io_err("create", &tmp)(e)),
        }
    }
}

#[cfg(test)]
mod tests;
