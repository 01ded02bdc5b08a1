//! A simulator of dockerd's json-file log driver, so tests are no kinder than the real thing.
//!
//! What it does, as moby's `daemon/logger/jsonfilelog` and `loggerutils/logfile.go` do:
//! - lines longer than the copier's 16 KiB buffer become partial entries of 16 KiB each
//!   (cut at byte boundaries, without `\n`), each with its own timestamp;
//! - the capacity check runs before every entry, partial chunks included: once the live file
//!   holds `max_size` bytes or more, it is rotated before the entry is written (so a file
//!   overshoots `max_size` by up to one entry and a long line can straddle two files);
//! - rotation: with `compress`, `.{max_file-1}.gz` is unlinked and `.N-1.gz` renamed to
//!   `.N.gz`; without, the same on plain names; then the live file is renamed to `.1` and a
//!   new empty live file created (`max_file = 1`: the live file is unlinked instead);
//! - compression: `.1.gz` is created under its final name and filled progressively while
//!   `.1` exists (Go's gzip header with `FEXTRA` holding `{"lastTime":...}`), then `.1` is
//!   unlinked; the next rotation waits for it to finish;
//! - the JSON encoding: keys `log`, `stream`, `time` in that order; `"`, `\\`, `\n`, `\r`
//!   escaped as such, other control bytes and `<`, `>`, `&` as `\u00XX`, U+2028/U+2029 as
//!   `\u2028`/`\u2029`, invalid UTF-8 as `\ufffd`; time in UTC RFC 3339 with trailing zeros
//!   of the fraction trimmed.

#![allow(dead_code)]

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// The copier's buffer: a longer line is cut into partial entries of this size.
pub const CHUNK: usize = 16 * 1024;

/// Encodes one json-file entry (with its trailing `\n`).
pub fn encode_entry(log: &[u8], stream: &str, time_nanos: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(log.len() + 64);
    out.push(b'{');
    let mut first = true;
    if !log.is_empty() {
        first = false;
        out.extend_from_slice(b"\"log\":");
        write_string(&mut out, log);
    }
    if !stream.is_empty() {
        if !first {
            out.push(b',');
        }
        first = false;
        out.extend_from_slice(b"\"stream\":");
        write_string(&mut out, stream.as_bytes());
    }
    if !first {
        out.push(b',');
    }
    out.extend_from_slice(b"\"time\":\"");
    out.extend_from_slice(rfc3339_nano(time_nanos).as_bytes());
    out.extend_from_slice(b"\"}\n");
    out
}

fn write_string(out: &mut Vec<u8>, s: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let mut i = 0;
    while i < s.len() {
        let b = s[i];
        if b < 0x80 {
            match b {
                b'\\' | b'"' => out.extend_from_slice(&[b'\\', b]),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                _ if b < 0x20 || b == b'<' || b == b'>' || b == b'&' => {
                    out.extend_from_slice(b"\\u00");
                    out.push(HEX[usize::from(b >> 4)]);
                    out.push(HEX[usize::from(b & 0xf)]);
                }
                _ => out.push(b),
            }
            i += 1;
            continue;
        }
        let width = utf8_width(&s[i..]);
        match width {
            None => {
                out.extend_from_slice(b"\\ufffd");
                i += 1;
            }
            Some(w) => {
                let c = &s[i..i + w];
                if c == "\u{2028}".as_bytes() {
                    out.extend_from_slice(b"\\u2028");
                } else if c == "\u{2029}".as_bytes() {
                    out.extend_from_slice(b"\\u2029");
                } else {
                    out.extend_from_slice(c);
                }
                i += w;
            }
        }
    }
    out.push(b'"');
}

/// The byte length of the valid UTF-8 character at the start of `s`, `None` if invalid.
fn utf8_width(s: &[u8]) -> Option<usize> {
    let w = match s[0] {
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => return None,
    };
    let c = s.get(..w)?;
    std::str::from_utf8(c).ok().map(|_| w)
}

/// Go's `time.RFC3339Nano` of a UTC time: fraction with trailing zeros trimmed (none if 0).
pub fn rfc3339_nano(time_nanos: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(time_nanos))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let mut s = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    let nanos = t.nanosecond();
    if nanos != 0 {
        let frac = format!("{nanos:09}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    s.push('Z');
    s
}

/// Go's gzip header for a writer at the default level with `Header.Extra` set: no mtime,
/// `XFL` 0, `OS` 255 (unknown).
pub fn go_gzip_header(extra: &[u8]) -> Vec<u8> {
    let mut h = vec![0x1f, 0x8b, 8, 0x04, 0, 0, 0, 0, 0, 255];
    let xlen = u16::try_from(extra.len()).expect("extra fits");
    h.extend_from_slice(&xlen.to_le_bytes());
    h.extend_from_slice(extra);
    h
}

/// A whole `.gz` as dockerd writes it for `plain`, whose last entry was at `last_nanos`.
pub fn gzip_like_dockerd(plain: &[u8], last_nanos: i64) -> Vec<u8> {
    let extra = format!(r#"{{"lastTime":"{}"}}"#, rfc3339_nano(last_nanos));
    let mut out = go_gzip_header(extra.as_bytes());
    let mut deflate =
        flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    deflate.write_all(plain).expect("in memory");
    out.extend_from_slice(&deflate.finish().expect("in memory"));
    let mut crc = flate2::Crc::new();
    crc.update(plain);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    out.extend_from_slice(&((plain.len() as u64 & 0xffff_ffff) as u32).to_le_bytes());
    out
}

/// Options of the driver (`--log-opt max-size`, `max-file`, `compress`).
#[derive(Debug, Clone, Copy)]
pub struct Opts {
    pub max_size: u64,
    pub max_file: u32,
    pub compress: bool,
}

/// A compression in progress: the whole output, and how much of it is on disk.
struct Compressing {
    bytes: Vec<u8>,
    written: usize,
    out: File,
}

/// One container's json-file driver writing into `dir`.
pub struct Dockerd {
    dir: PathBuf,
    id: String,
    opts: Opts,
    live: File,
    size: u64,
    last_nanos: i64,
    clock: i64,
    compressing: Option<Compressing>,
    /// Entries written, rotations done.
    pub entries: u64,
    pub rotations: u64,
}

impl Dockerd {
    /// A driver for container `id` writing `dir/<id>-json.log`; the clock starts at
    /// `start_nanos` and moves 1 µs and a bit per entry.
    pub fn new(dir: &Path, id: &str, opts: Opts, start_nanos: i64) -> Self {
        std::fs::create_dir_all(dir).expect("container dir");
        let path = dir.join(format!("{id}-json.log"));
        let live = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .expect("live file");
        let size = live.metadata().map(|m| m.len()).unwrap_or(0);
        Self {
            dir: dir.to_owned(),
            id: id.to_owned(),
            opts,
            live,
            size,
            last_nanos: start_nanos,
            clock: start_nanos,
            compressing: None,
            entries: 0,
            rotations: 0,
        }
    }

    /// The live file's path.
    pub fn live_path(&self) -> PathBuf {
        self.dir.join(format!("{}-json.log", self.id))
    }

    /// The path of rotation `n` (`.n`, or `.n.gz`).
    pub fn rotated_path(&self, n: u32, gz: bool) -> PathBuf {
        let ext = if gz { ".gz" } else { "" };
        self.dir.join(format!("{}-json.log.{n}{ext}", self.id))
    }

    /// Logs one line written by the container (without its `\n`), as the copier does:
    /// cut into 16 KiB partial entries, the last one carrying the `\n`.
    pub fn log(&mut self, stream: &str, line: &[u8]) {
        let mut rest = line;
        while rest.len() >= CHUNK {
            // The copier's buffer is full and holds no newline: a partial entry.
            let (chunk, tail) = rest.split_at(CHUNK);
            self.entry(stream, chunk);
            rest = tail;
        }
        let mut last = rest.to_vec();
        last.push(b'\n');
        self.entry(stream, &last);
    }

    /// Writes one entry (`log` exactly as given): the capacity check, then the write.
    pub fn entry(&mut self, stream: &str, log: &[u8]) {
        self.clock += 1_000 + (self.entries % 7) as i64 * 10;
        let bytes = encode_entry(log, stream, self.clock);
        if self.size >= self.opts.max_size {
            self.rotate();
        }
        self.live.write_all(&bytes).expect("write entry");
        self.size += bytes.len() as u64;
        self.last_nanos = self.clock;
        self.entries += 1;
    }

    /// Rotates now (the capacity check found the live file full).
    pub fn rotate(&mut self) {
        // rotateMu: the previous compression finishes first.
        self.finish_compression();
        let live = self.live_path();
        let max = self.opts.max_file;
        if max >= 2 {
            let gz = self.opts.compress;
            let _ = std::fs::remove_file(self.rotated_path(max - 1, gz));
            for i in (2..max).rev() {
                let _ = std::fs::rename(self.rotated_path(i - 1, gz), self.rotated_path(i, gz));
            }
            std::fs::rename(&live, self.rotated_path(1, false)).expect("rename live");
        } else {
            std::fs::remove_file(&live).expect("unlink live");
        }
        self.live = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&live)
            .expect("new live file");
        self.size = 0;
        self.rotations += 1;
        if max >= 2 && self.opts.compress {
            let plain = std::fs::read(self.rotated_path(1, false)).expect("read .1");
            let bytes = gzip_like_dockerd(&plain, self.last_nanos);
            let out = OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .open(self.rotated_path(1, true))
                .expect("create .1.gz");
            self.compressing = Some(Compressing {
                bytes,
                written: 0,
                out,
            });
        }
    }

    /// Whether a compression is in progress.
    pub fn is_compressing(&self) -> bool {
        self.compressing.is_some()
    }

    /// Writes up to `n` more bytes of the `.gz` in progress; when all is written, closes it
    /// and unlinks `.1`. Returns whether the compression is finished (or none was running).
    pub fn compress_step(&mut self, n: usize) -> bool {
        let Some(c) = &mut self.compressing else {
            return true;
        };
        let end = c.written.saturating_add(n).min(c.bytes.len());
        c.out.write_all(&c.bytes[c.written..end]).expect("write gz");
        c.written = end;
        if c.written < c.bytes.len() {
            return false;
        }
        self.compressing = None;
        std::fs::remove_file(self.rotated_path(1, false)).expect("unlink .1");
        true
    }

    /// Finishes the compression in progress, if any.
    pub fn finish_compression(&mut self) {
        while !self.compress_step(usize::MAX) {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(log: &[u8], expected: &str) {
        let got = encode_entry(log, "stdout", 1_704_164_645_000_000_000);
        assert_eq!(String::from_utf8_lossy(&got), expected, "{log:?}");
    }

    #[test]
    fn json_encoding_matches_dockerd() {
        let t = r#""time":"2024-01-02T03:04:05Z"}"#;
        check(
            b"hi\n",
            &format!("{{\"log\":\"hi\\n\",\"stream\":\"stdout\",{t}\n"),
        );
        check(
            b"<a href=\"x\">&</a>\t\\\r\n",
            &format!(
                "{{\"log\":\"\\u003ca href=\\\"x\\\"\\u003e\\u0026\\u003c/a\\u003e\\u0009\\\\\\r\\n\",\"stream\":\"stdout\",{t}\n"
            ),
        );
        check(
            "é\u{2028}\u{2029}😀".as_bytes(),
            &format!("{{\"log\":\"é\\u2028\\u2029😀\",\"stream\":\"stdout\",{t}\n"),
        );
        check(
            b"\xff\xe2\x82",
            &format!("{{\"log\":\"\\ufffd\\ufffd\\ufffd\",\"stream\":\"stdout\",{t}\n"),
        );
        check(b"", &format!("{{\"stream\":\"stdout\",{t}\n"));
    }

    #[test]
    fn time_is_trimmed_rfc3339_nano() {
        let cases: &[(i64, &str)] = &[
            (0, "1970-01-01T00:00:00Z"),
            (1_704_164_645_500_000_000, "2024-01-02T03:04:05.5Z"),
            (1_704_164_645_000_000_001, "2024-01-02T03:04:05.000000001Z"),
            (1_704_164_645_123_450_000, "2024-01-02T03:04:05.12345Z"),
        ];
        for (nanos, text) in cases {
            assert_eq!(rfc3339_nano(*nanos), *text);
        }
    }

    #[test]
    fn gzip_header_is_gos_with_last_time() {
        let gz = gzip_like_dockerd(b"x\n", 1_704_164_645_500_000_000);
        let extra = br#"{"lastTime":"2024-01-02T03:04:05.5Z"}"#;
        let mut expected = vec![0x1f, 0x8b, 8, 4, 0, 0, 0, 0, 0, 255, extra.len() as u8, 0];
        expected.extend_from_slice(extra);
        assert_eq!(gz[..expected.len()], expected[..]);
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut out).unwrap();
        assert_eq!(out, b"x\n");
    }

    #[test]
    fn capacity_is_checked_before_every_entry_including_partial_chunks() {
        let tmp = tempfile::tempdir().unwrap();
        let opts = Opts {
            max_size: 20_000,
            max_file: 3,
            compress: false,
        };
        let mut d = Dockerd::new(tmp.path(), "c", opts, 0);
        d.log("stdout", &vec![b'a'; 10_000]);
        // Two 16 KiB chunks and a final 100 bytes: the first chunk still passes the check
        // (10 KB < 20 KB) and overshoots; the second finds the file full and rotates.
        d.log("stdout", &vec![b'b'; 2 * CHUNK + 100]);
        assert_eq!((d.entries, d.rotations), (4, 1));
        let one = std::fs::read_to_string(d.rotated_path(1, false)).unwrap();
        let one: Vec<&str> = one.lines().collect();
        assert_eq!(one.len(), 2);
        assert!(one[1].starts_with("{\"log\":\"bbb"));
        assert!(!one[1].contains("\\n\""), "a partial chunk has no newline");
        let live = std::fs::read_to_string(d.live_path()).unwrap();
        let live: Vec<&str> = live.lines().collect();
        assert_eq!(live.len(), 2);
        assert!(
            live[1].contains("\\n\",\"stream\":\"stdout\""),
            "{}",
            live[1]
        );
    }

    #[test]
    fn compression_is_progressive_under_the_final_name_then_unlinks_the_plain_file() {
        let tmp = tempfile::tempdir().unwrap();
        let opts = Opts {
            max_size: 100,
            max_file: 3,
            compress: true,
        };
        let mut d = Dockerd::new(tmp.path(), "c", opts, 0);
        for i in 0..3 {
            d.log("stdout", format!("line {i} {}", "x".repeat(100)).as_bytes());
        }
        // Third entry rotated twice: .2.gz is finished, .1.gz is in progress.
        assert!(d.is_compressing());
        assert!(d.rotated_path(1, false).exists());
        assert_eq!(std::fs::metadata(d.rotated_path(1, true)).unwrap().len(), 0);
        assert!(d.rotated_path(2, true).exists());
        assert!(!d.rotated_path(2, false).exists());
        assert!(!d.compress_step(20));
        assert_eq!(
            std::fs::metadata(d.rotated_path(1, true)).unwrap().len(),
            20
        );
        d.finish_compression();
        assert!(!d.rotated_path(1, false).exists());
        let gz = std::fs::read(d.rotated_path(1, true)).unwrap();
        let mut out = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gz[..]), &mut out)
            .unwrap();
        assert!(out.contains("line 1"), "{out}");
        // max_file = 3: the next rotation drops .2.gz.
        d.log("stdout", b"last");
        d.log("stdout", b"after");
        assert!(!d.rotated_path(3, true).exists());
    }
}
