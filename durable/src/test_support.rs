//! Helpers shared by the crate's tests: directory listings, an unwritable directory.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

/// The names in `dir`, sorted.
pub(crate) fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// A directory this process cannot create files in: a mode 0555 directory under `tmp`, or,
/// when that does not stop us (running as root), `/sys`, where even root gets EACCES.
pub(crate) fn unwritable_dir(tmp: &Path) -> PathBuf {
    let dir = tmp.join("read-only");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o555)).unwrap();
    let probe = dir.join("probe");
    if std::fs::write(&probe, b"").is_err() {
        return dir;
    }
    std::fs::remove_file(&probe).unwrap();
    eprintln!("mode 0555 does not stop this process (root?): using /sys instead");
    let sys = PathBuf::from("/sys");
    assert!(
        std::fs::write(sys.join("logward-durable-probe"), b"").is_err(),
        "no unwritable directory found"
    );
    sys
}
