//! Gzipped rotations (`.N.gz`) as dockerd writes them: created under their final name and
//! filled progressively while the plain `.N` still exists, then the plain file is unlinked.
//!
//! A `.gz` is readable only once it is whole: its plain twin is gone and its gzip trailer
//! (CRC-32 and ISIZE) matches what decompressing it gives. Until then nothing is decoded for
//! reading. Every decoder reads a frozen snapshot of the file (its length when the decoder was
//! made) through positional reads, and a decoder that failed or saw the end of its snapshot
//! before the end of the gzip stream is dropped, never reused: flate2's inflate loop spins
//! without progress when fed again after a premature end.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

use super::FP_BYTES;

/// What checking a `.gz` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GzReady {
    /// Whole and verified: its uncompressed length and head.
    Ready,
    /// Not yet (the plain twin still exists, or the stream ends before its trailer so far).
    Pending(&'static str),
    /// Checked part of the stream within the step's budget; call again.
    Progress,
    /// The stream cannot be decoded, or its trailer does not match.
    Corrupt(String),
}

/// A reader of a file's first `limit` bytes by positional reads (the descriptor's offset is
/// never used, so several readers share one file).
struct Snapshot<'f> {
    file: &'f File,
    pos: u64,
    limit: u64,
}

impl io::Read for Snapshot<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.limit.saturating_sub(self.pos);
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        loop {
            match self.file.read_at(&mut buf[..want], self.pos) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Ok(n) => {
                    self.pos += n as u64;
                    return Ok(n);
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// A decoder over a frozen snapshot, owning nothing but its progress (the file is lent to
/// each step, so no decoder outlives a failure of the file).
struct Decoding {
    /// Compressed bytes decoded so far and the snapshot length.
    in_pos: u64,
    limit: u64,
    /// Uncompressed bytes produced so far.
    out_pos: u64,
    inflate: flate2::Decompress,
    crc: flate2::Crc,
    /// Whether the gzip header was parsed (`in_pos` then points into the deflate data).
    body: bool,
    /// The deflate stream ended (`in_pos` then points at the trailer).
    ended: bool,
}

/// Chunk of compressed input read at a time.
const IN_CHUNK: usize = 64 * 1024;

impl Decoding {
    fn new(limit: u64) -> Self {
        Self {
            in_pos: 0,
            limit,
            out_pos: 0,
            inflate: flate2::Decompress::new(false),
            crc: flate2::Crc::new(),
            body: false,
            ended: false,
        }
    }

    /// Produces up to `out.len()` uncompressed bytes; `Ok(0)` only at the end of the deflate
    /// stream. An error means the snapshot ends early or the data is corrupt: the decoder
    /// must then be dropped.
    fn read(&mut self, file: &File, out: &mut [u8]) -> io::Result<usize> {
        if !self.body {
            let snap = Snapshot {
                file,
                pos: 0,
                limit: self.limit,
            };
            self.in_pos = header_len(&snap)?;
            self.body = true;
        }
        if self.ended || out.is_empty() {
            return Ok(0);
        }
        let mut input = vec![0u8; IN_CHUNK];
        loop {
            let mut snap = Snapshot {
                file,
                pos: self.in_pos,
                limit: self.limit,
            };
            let n = read_full(&mut snap, &mut input)?;
            let before = (self.inflate.total_in(), self.inflate.total_out());
            let status = self
                .inflate
                .decompress(&input[..n], out, flate2::FlushDecompress::None)
                .map_err(|e| invalid(format!("corrupt deflate stream: {e}")))?;
            let consumed = self.inflate.total_in() - before.0;
            let produced = usize::try_from(self.inflate.total_out() - before.1)
                .map_err(|_| invalid("output overflow".into()))?;
            self.in_pos += consumed;
            self.crc.update(&out[..produced]);
            self.out_pos += produced as u64;
            if status == flate2::Status::StreamEnd {
                self.ended = true;
                return Ok(produced);
            }
            if produced > 0 {
                return Ok(produced);
            }
            // No output: progress must come from input, else the snapshot ended early.
            if consumed == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "gzip stream ends before its trailer",
                ));
            }
        }
    }

    /// After the deflate stream ended: checks the trailer against what was produced.
    fn check_trailer(&self, file: &File) -> Result<(), GzReady> {
        let mut trailer = [0u8; 8];
        let mut snap = Snapshot {
            file,
            pos: self.in_pos,
            limit: self.limit,
        };
        let n = read_full(&mut snap, &mut trailer).map_err(|e| GzReady::Corrupt(e.to_string()))?;
        if n < 8 {
            return Err(GzReady::Pending("gzip trailer not written yet"));
        }
        let crc = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
        let isize = u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]);
        // ISIZE is the length modulo 2^32.
        let len32 = (self.out_pos & 0xffff_ffff) as u32;
        if crc != self.crc.sum() || isize != len32 {
            return Err(GzReady::Corrupt(format!(
                "gzip trailer does not match: crc {crc:08x} vs {:08x}, size {isize} vs {len32}",
                self.crc.sum()
            )));
        }
        if self.in_pos + 8 != self.limit {
            return Err(GzReady::Corrupt(format!(
                "{} bytes after the gzip member",
                self.limit - self.in_pos - 8
            )));
        }
        Ok(())
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

fn read_full(r: &mut impl io::Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// Length of the gzip header at the start of `r` (RFC 1952, with FEXTRA, FNAME, FCOMMENT and
/// FHCRC), or an error if it is not complete or not gzip.
fn header_len(r: &Snapshot<'_>) -> io::Result<u64> {
    let mut fixed = [0u8; 10];
    let mut snap = Snapshot {
        file: r.file,
        pos: 0,
        limit: r.limit,
    };
    if read_full(&mut snap, &mut fixed)? < 10 {
        return Err(eof("gzip header not written yet"));
    }
    if fixed[0] != 0x1f || fixed[1] != 0x8b || fixed[2] != 8 {
        return Err(invalid("not a gzip file".into()));
    }
    let flags = fixed[3];
    if flags & 0x04 != 0 {
        let mut xlen = [0u8; 2];
        if read_full(&mut snap, &mut xlen)? < 2 {
            return Err(eof("gzip header not written yet"));
        }
        snap.pos += u64::from(u16::from_le_bytes(xlen));
    }
    for flag in [0x08u8, 0x10] {
        if flags & flag != 0 {
            // A zero-terminated string.
            let mut byte = [0u8; 1];
            loop {
                if read_full(&mut snap, &mut byte)? < 1 {
                    return Err(eof("gzip header not written yet"));
                }
                if byte[0] == 0 {
                    break;
                }
            }
        }
    }
    if flags & 0x02 != 0 {
        snap.pos += 2;
    }
    if snap.pos > snap.limit {
        return Err(eof("gzip header not written yet"));
    }
    Ok(snap.pos)
}

fn eof(msg: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, msg)
}

/// The plain file a `.gz` was compressed from (`x.1.gz` → `x.1`).
pub fn twin_of(path: &Path) -> Option<PathBuf> {
    let name = path.to_str()?.strip_suffix(".gz")?;
    Some(PathBuf::from(name))
}

/// A `.gz` log file: checked in bounded steps, then read at uncompressed offsets.
pub struct GzFile {
    path: PathBuf,
    /// Set once the file is whole: its uncompressed length, head and compressed length.
    verified: Option<Verified>,
    /// The check in progress (kept between steps only while it has neither failed nor met
    /// the end of its snapshot).
    checking: Option<(Decoding, Vec<u8>)>,
    /// The decoder reads are served from.
    reading: Option<Decoding>,
}

#[derive(Debug, Clone)]
struct Verified {
    len: u64,
    head: Vec<u8>,
    compressed: u64,
}

impl GzFile {
    /// A `.gz` found at `path` (nothing is read yet).
    pub fn new(path: &Path) -> Self {
        Self {
            path: path.to_owned(),
            verified: None,
            checking: None,
            reading: None,
        }
    }

    /// Whether the file was verified whole.
    pub fn is_ready(&self) -> bool {
        self.verified.is_some()
    }

    /// The uncompressed length, once verified.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> Option<u64> {
        self.verified.as_ref().map(|v| v.len)
    }

    /// The compressed length when verified.
    pub fn compressed_len(&self) -> Option<u64> {
        self.verified.as_ref().map(|v| v.compressed)
    }

    /// The first [`FP_BYTES`] uncompressed bytes (fewer if the file is shorter), once verified.
    pub fn head(&self) -> Option<&[u8]> {
        self.verified.as_ref().map(|v| v.head.as_slice())
    }

    /// One bounded step of checking: decodes at most `budget` uncompressed bytes.
    pub fn check(&mut self, file: &File, budget: u64) -> GzReady {
        if self.verified.is_some() {
            return GzReady::Ready;
        }
        if twin_of(&self.path).is_some_and(|twin| twin.exists()) {
            self.checking = None;
            return GzReady::Pending("the plain file it is compressed from still exists");
        }
        let limit = match file.metadata() {
            Ok(meta) => meta.len(),
            Err(e) => return GzReady::Corrupt(e.to_string()),
        };
        let (mut dec, mut head) = self
            .checking
            .take()
            .unwrap_or_else(|| (Decoding::new(limit), Vec::new()));
        let mut out = vec![0u8; 64 * 1024];
        let mut done = 0u64;
        loop {
            match dec.read(file, &mut out) {
                Ok(0) => break,
                Ok(n) => {
                    let keep = (FP_BYTES - head.len()).min(n);
                    head.extend_from_slice(&out[..keep]);
                    done += n as u64;
                    if done >= budget {
                        self.checking = Some((dec, head));
                        return GzReady::Progress;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    return GzReady::Pending("gzip stream ends before its trailer");
                }
                Err(e) => return GzReady::Corrupt(e.to_string()),
            }
        }
        if let Err(verdict) = dec.check_trailer(file) {
            return verdict;
        }
        self.verified = Some(Verified {
            len: dec.out_pos,
            head,
            compressed: limit,
        });
        GzReady::Ready
    }

    /// Reads at the uncompressed `offset` of a verified file: forward reads continue one
    /// decoder, a backward one starts again from the beginning. A failed decoder is dropped.
    pub fn read_at(&mut self, file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let Some(verified) = &self.verified else {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "gzip log file not verified whole yet",
            ));
        };
        if offset >= verified.len || buf.is_empty() {
            return Ok(0);
        }
        let compressed = verified.compressed;
        let mut dec = match self.reading.take() {
            Some(dec) if dec.out_pos <= offset => dec,
            _ => Decoding::new(compressed),
        };
        let mut scratch = vec![0u8; 64 * 1024];
        while dec.out_pos < offset {
            let want = scratch
                .len()
                .min(usize::try_from(offset - dec.out_pos).unwrap_or(usize::MAX));
            if dec.read(file, &mut scratch[..want])? == 0 {
                return Err(invalid(
                    "gzip log file is shorter than when verified".into(),
                ));
            }
        }
        let n = dec.read(file, buf)?;
        self.reading = Some(dec);
        Ok(n)
    }
}

#[cfg(test)]
mod tests;
