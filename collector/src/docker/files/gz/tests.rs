//! Tests for the `.gz` check: partial streams wait, a twin blocks, a bad trailer is corrupt,
//! and a verified file reads at uncompressed offsets. No step can spin.

use std::io::Write as _;

use super::*;

use crate::docker::tests::rotation::dockerd;

fn text() -> Vec<u8> {
    (0..3000)
        .flat_map(|i| dockerd::encode_entry(format!("line {i}\n").as_bytes(), "stdout", i))
        .collect()
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
}

fn append(path: &Path, bytes: &[u8]) {
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(bytes).unwrap();
}

/// Checks `gz` as the chain does, and returns the verdict with the file's bytes if ready.
fn check(gz: &mut GzFile, path: &Path) -> GzReady {
    let file = File::open(path).unwrap();
    gz.check(&file, u64::MAX)
}

#[test]
fn a_gz_being_written_is_pending_until_whole_then_reads_the_same_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let plain = text();
    let whole = dockerd::gzip_like_dockerd(&plain, 42);
    let path = tmp.path().join("c-json.log.1.gz");
    let header = dockerd::go_gzip_header(br#"{"lastTime":"1970-01-01T00:00:00.000000042Z"}"#);
    // The header and the first 8 bytes of deflate data, as in issue 15.
    write(&path, &whole[..header.len() + 8]);
    let mut gz = GzFile::new(&path);
    for _ in 0..3 {
        assert_eq!(
            check(&mut gz, &path),
            GzReady::Pending("gzip stream ends before its trailer")
        );
    }
    // All but the trailer's last byte: still not whole.
    append(&path, &whole[header.len() + 8..whole.len() - 1]);
    assert!(matches!(check(&mut gz, &path), GzReady::Pending(_)));
    append(&path, &whole[whole.len() - 1..]);
    assert_eq!(check(&mut gz, &path), GzReady::Ready);
    assert_eq!(gz.len(), Some(plain.len() as u64));
    assert_eq!(gz.head(), Some(&plain[..FP_BYTES]));
    let file = File::open(&path).unwrap();
    for offset in [5000u64, 100, 90_000, 0, plain.len() as u64 - 10] {
        let mut buf = [0u8; 64];
        let n = gz.read_at(&file, &mut buf, offset).unwrap();
        let at = usize::try_from(offset).unwrap();
        assert_eq!(buf[..n], plain[at..at + n], "offset {offset}");
    }
}

#[test]
fn a_gz_is_not_read_while_its_plain_twin_exists() {
    let tmp = tempfile::tempdir().unwrap();
    let plain = text();
    let twin = tmp.path().join("c-json.log.1");
    let path = tmp.path().join("c-json.log.1.gz");
    write(&twin, &plain);
    write(&path, &dockerd::gzip_like_dockerd(&plain, 1));
    let mut gz = GzFile::new(&path);
    assert!(matches!(check(&mut gz, &path), GzReady::Pending(_)));
    let file = File::open(&path).unwrap();
    let err = gz.read_at(&file, &mut [0u8; 8], 0).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    std::fs::remove_file(&twin).unwrap();
    assert_eq!(check(&mut gz, &path), GzReady::Ready);
}

#[test]
fn a_wrong_trailer_or_garbage_is_corrupt() {
    let tmp = tempfile::tempdir().unwrap();
    let plain = text();
    let whole = dockerd::gzip_like_dockerd(&plain, 1);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("bad crc", {
            let mut b = whole.clone();
            let at = b.len() - 8;
            b[at] ^= 1;
            b
        }),
        ("bad size", {
            let mut b = whole.clone();
            let at = b.len() - 1;
            b[at] ^= 1;
            b
        }),
        ("trailing bytes", {
            let mut b = whole.clone();
            b.extend_from_slice(b"junk");
            b
        }),
        ("not gzip", plain[..100].to_vec()),
    ];
    for (name, bytes) in cases {
        let path = tmp.path().join("c-json.log.2.gz");
        write(&path, &bytes);
        let mut gz = GzFile::new(&path);
        assert!(
            matches!(check(&mut gz, &path), GzReady::Corrupt(_)),
            "{name}"
        );
    }
}

#[test]
fn checking_runs_in_bounded_steps() {
    let tmp = tempfile::tempdir().unwrap();
    let plain = text();
    let path = tmp.path().join("c-json.log.1.gz");
    write(&path, &dockerd::gzip_like_dockerd(&plain, 1));
    let mut gz = GzFile::new(&path);
    let file = File::open(&path).unwrap();
    let mut steps = 0;
    while gz.check(&file, 10_000) == GzReady::Progress {
        steps += 1;
        assert!(steps < 1000);
    }
    assert!(steps >= plain.len() / (64 * 1024), "{steps} steps");
    assert_eq!(gz.check(&file, 10_000), GzReady::Ready);
    assert_eq!(gz.len(), Some(plain.len() as u64));
}
