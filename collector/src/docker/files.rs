//! A container's log files on disk: the live `<id>-json.log`, its rotations `.1`, `.2`, …
//! (gzipped as `.N.gz` under `compress=true`), their fingerprints, and a positional reader
//! over plain and gzipped files alike.
//!
//! Offsets are always offsets in the uncompressed bytes, so a file that Docker compressed
//! after rotating it is still the same file at the same offsets; its fingerprint (computed over
//! the uncompressed first line) is what finds it again.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};

use crate::checkpoint::FileKey;
use gz::{GzFile, GzReady};

pub mod gz;

/// The fingerprint covers the first line, or this many bytes when the first line is longer.
pub const FP_BYTES: usize = 256;

/// One log file of a container as listed in its directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFile {
    /// Full path.
    pub path: PathBuf,
    /// 0 for the live file, N for `.N` / `.N.gz`.
    pub rotation: u32,
    /// Gzipped (`.gz`).
    pub gz: bool,
}

/// Parses a file name of `container_id`'s log set; pure.
pub fn classify(container_id: &str, name: &str) -> Option<(u32, bool)> {
    let rest = name.strip_prefix(container_id)?.strip_prefix("-json.log")?;
    if rest.is_empty() {
        return Some((0, false));
    }
    let rest = rest.strip_prefix('.')?;
    let (number, gz) = match rest.strip_suffix(".gz") {
        Some(number) => (number, true),
        None => (rest, false),
    };
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u32 = number.parse().ok()?;
    (n > 0).then_some((n, gz))
}

/// Lists the log files of the container in `dir` (named `container_id`), oldest first: the
/// highest rotation number first, the live file last.
pub fn list_container(dir: &Path, container_id: &str) -> io::Result<Vec<LogFile>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if let Some((rotation, gz)) = classify(container_id, &name) {
            files.push(LogFile {
                path: entry.path(),
                rotation,
                gz,
            });
        }
    }
    files.sort_by(|a, b| b.rotation.cmp(&a.rotation).then(a.gz.cmp(&b.gz)));
    Ok(files)
}

/// The fingerprint of a file's head; `None` while it holds neither a complete first line nor
/// [`FP_BYTES`] bytes. Pure.
pub fn fingerprint(head: &[u8]) -> Option<u32> {
    let end = match head.iter().position(|&b| b == b'\n') {
        Some(i) if i < FP_BYTES => i + 1,
        _ if head.len() >= FP_BYTES => FP_BYTES,
        _ => return None,
    };
    let mut crc = flate2::Crc::new();
    crc.update(&head[..end]);
    Some(crc.sum())
}

/// An open log file, plain or gzipped, read at uncompressed offsets.
pub struct LogReader {
    file: File,
    gz: Option<Box<GzFile>>,
}

impl LogReader {
    /// Opens `path`; `gz` selects decompression (nothing is decoded until the file is
    /// checked whole, see [`gz`]).
    pub fn open(path: &Path, gz: bool) -> io::Result<Self> {
        let file = File::open(path)?;
        let gz = gz.then(|| Box::new(GzFile::new(path)));
        Ok(Self { file, gz })
    }

    /// Device and inode of the open file.
    pub fn dev_ino(&self) -> io::Result<(u64, u64)> {
        let meta = self.file.metadata()?;
        Ok((meta.dev(), meta.ino()))
    }

    /// Whether the file is gzipped.
    pub fn is_gz(&self) -> bool {
        self.gz.is_some()
    }

    /// The size on disk (compressed for a `.gz`).
    pub fn disk_len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    /// One bounded step of checking a `.gz` whole (at most `budget` uncompressed bytes);
    /// a plain file is always ready.
    pub fn check(&mut self, budget: u64) -> GzReady {
        match &mut self.gz {
            Some(gz) => gz.check(&self.file, budget),
            None => GzReady::Ready,
        }
    }

    /// The file's length in uncompressed bytes: for a plain file its size; for a gzipped
    /// one its verified length, `u64::MAX` before it is verified.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> io::Result<u64> {
        match &self.gz {
            Some(gz) => Ok(gz.len().unwrap_or(u64::MAX)),
            None => Ok(self.file.metadata()?.len()),
        }
    }

    /// Reads at the uncompressed `offset`. A gzipped file must be verified first (see
    /// [`Self::check`]); it is read forward, and a backward seek decompresses again from the
    /// start.
    pub fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let Some(gz) = &mut self.gz else {
            return loop {
                match self.file.read_at(buf, offset) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    other => break other,
                }
            };
        };
        gz.read_at(&self.file, buf, offset)
    }

    /// The fingerprint of this file's head, if it has one yet.
    /// A `.gz` not yet verified is checked whole first (unbounded: for replay, not the
    /// reading loop, which checks in steps); one that is not whole is an error.
    pub fn fingerprint(&mut self) -> io::Result<Option<u32>> {
        if let Some(gz) = &mut self.gz {
            return match gz.check(&self.file, u64::MAX) {
                GzReady::Ready => Ok(gz.head().and_then(fingerprint)),
                GzReady::Pending(why) => Err(io::Error::new(io::ErrorKind::WouldBlock, why)),
                GzReady::Progress => Err(io::Error::other("gzip check did not finish")),
                GzReady::Corrupt(why) => Err(io::Error::new(io::ErrorKind::InvalidData, why)),
            };
        }
        let mut head = [0u8; FP_BYTES];
        let mut filled = 0;
        while filled < FP_BYTES {
            let n = self.read_at(&mut head[filled..], filled as u64)?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        Ok(fingerprint(&head[..filled]))
    }

    /// The full key, if the file has a fingerprint yet.
    pub fn key(&mut self) -> io::Result<Option<FileKey>> {
        let (dev, ino) = self.dev_ino()?;
        Ok(self.fingerprint()?.map(|fp| FileKey { dev, ino, fp }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_of_a_log_set() {
        let id = "abc123";
        let cases: &[(&str, Option<(u32, bool)>)] = &[
            ("abc123-json.log", Some((0, false))),
            ("abc123-json.log.1", Some((1, false))),
            ("abc123-json.log.12", Some((12, false))),
            ("abc123-json.log.2.gz", Some((2, true))),
            ("abc123-json.log.0", None),
            ("abc123-json.log.", None),
            ("abc123-json.log.x", None),
            ("abc123-json.log.1.gz.tmp", None),
            ("abc123-json.log.gz", None),
            ("other-json.log", None),
            ("config.v2.json", None),
        ];
        for (name, expected) in cases {
            assert_eq!(classify(id, name), *expected, "{name}");
        }
    }

    #[test]
    fn fingerprint_needs_a_line_or_enough_bytes() {
        let long = vec![b'x'; FP_BYTES + 10];
        let cases: &[(&[u8], bool)] = &[
            (b"", false),
            (b"{\"log\":\"partial", false),
            (b"{\"log\":\"a\\n\"}\n", true),
            (&long, true),
        ];
        for (head, has) in cases {
            assert_eq!(fingerprint(head).is_some(), *has, "{head:?}");
        }
        assert_eq!(
            fingerprint(b"a\nb"),
            fingerprint(b"a\nc"),
            "only the first line"
        );
        assert_ne!(fingerprint(b"a\n"), fingerprint(b"b\n"));
        assert_eq!(fingerprint(&long), fingerprint(&long[..FP_BYTES]));
    }

    #[test]
    fn gzipped_file_reads_at_uncompressed_offsets_with_the_same_fingerprint() {
        use std::io::Write as _;
        let tmp = tempfile::tempdir().unwrap();
        let text: Vec<u8> = (0..2000)
            .flat_map(|i| format!("line {i}\n").into_bytes())
            .collect();
        // Not the `.gz`'s twin (a `.gz` is read only once its twin is gone).
        let plain = tmp.path().join("a-json.log.2");
        std::fs::write(&plain, &text).unwrap();
        let gz_path = tmp.path().join("a-json.log.1.gz");
        let mut enc = flate2::write::GzEncoder::new(
            File::create(&gz_path).unwrap(),
            flate2::Compression::default(),
        );
        enc.write_all(&text).unwrap();
        enc.finish().unwrap();

        let mut a = LogReader::open(&plain, false).unwrap();
        let mut b = LogReader::open(&gz_path, true).unwrap();
        assert_eq!(a.fingerprint().unwrap(), b.fingerprint().unwrap());
        for offset in [5000u64, 100, 9000, 0] {
            let (mut x, mut y) = ([0u8; 64], [0u8; 64]);
            let n = a.read_at(&mut x, offset).unwrap();
            let m = b.read_at(&mut y, offset).unwrap();
            assert_eq!(x[..n], y[..m], "offset {offset}");
        }
    }
}
