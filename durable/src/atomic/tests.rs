//! Tests for the atomic replace: contents, temp files, failures and their context.

use std::io;

use super::*;
use crate::Error;
use crate::test_support::{entries, unwritable_dir};

#[test]
fn replaces_contents_and_leaves_no_temp() {
    let tmp = tempfile::tempdir().unwrap();
    atomic_replace(tmp.path(), "state.json", b"one").unwrap();
    atomic_replace(tmp.path(), "state.json", b"two, longer").unwrap();
    atomic_replace(tmp.path(), "state.json", b"").unwrap();
    atomic_replace(tmp.path(), "state.json", b"three").unwrap();
    assert_eq!(
        std::fs::read(tmp.path().join("state.json")).unwrap(),
        b"three"
    );
    assert_eq!(entries(tmp.path()), ["state.json"]);
}

#[test]
fn stale_temps_do_not_block_and_are_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let names = [
        "m.json.tmp",
        "m.json.tmp.12.0",
        "m.json.tmp.x",
        "m.json.tmpx",
        "other.json.tmp",
        "m.json",
    ];
    for name in names {
        std::fs::write(tmp.path().join(name), b"left behind").unwrap();
    }
    atomic_replace(tmp.path(), "m.json", b"new").unwrap();
    assert_eq!(std::fs::read(tmp.path().join("m.json")).unwrap(), b"new");
    assert_eq!(remove_stale_temps(tmp.path(), "m.json").unwrap(), 3);
    assert_eq!(
        entries(tmp.path()),
        ["m.json", "m.json.tmpx", "other.json.tmp"]
    );
    assert_eq!(remove_stale_temps(tmp.path(), "m.json").unwrap(), 0);
    assert_eq!(
        remove_stale_temps(&tmp.path().join("missing"), "m.json").unwrap(),
        0
    );
}

fn check_temp_name(file: &str, expected: bool) {
    assert_eq!(is_temp_of(OsStr::new(file), "a.log"), expected, "{file}");
}

#[test]
fn temp_names() {
    check_temp_name("a.log.tmp", true);
    check_temp_name("a.log.tmp.1.2", true);
    check_temp_name("a.log.tmp.", true);
    check_temp_name("a.log", false);
    check_temp_name("a.log.tmpfoo", false);
    check_temp_name("b.log.tmp", false);
    check_temp_name("xa.log.tmp", false);
    check_temp_name("a.log.1", false);
}

/// Asserts that `result` failed at `op` on a path under `dir` with `kind`.
fn check_failure(result: Result<()>, op: &str, dir: &Path, kind: io::ErrorKind) {
    let error = result.expect_err("must fail");
    assert_eq!(error.op(), op, "{error}");
    assert!(error.path().starts_with(dir), "{error}");
    assert_eq!(error.io_kind(), Some(kind), "{error}");
    let text = error.to_string();
    assert!(text.starts_with(op), "{text}");
    assert!(text.contains(&*dir.to_string_lossy()), "{text}");
}

#[test]
fn target_that_is_a_directory_fails_at_rename_and_cleans_the_temp() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("state.json")).unwrap();
    std::fs::write(tmp.path().join("state.json/inside"), b"x").unwrap();
    let result = atomic_replace(tmp.path(), "state.json", b"data");
    let error = result.as_ref().expect_err("must fail");
    assert_eq!(error.op(), "rename", "{error}");
    assert!(
        matches!(
            error.io_kind(),
            Some(io::ErrorKind::IsADirectory | io::ErrorKind::DirectoryNotEmpty)
        ),
        "{error}"
    );
    assert_eq!(entries(tmp.path()), ["state.json"], "temp removed");
    assert!(tmp.path().join("state.json/inside").exists());
}

#[test]
fn missing_or_non_directory_dir_fails_at_create() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("missing");
    check_failure(
        atomic_replace(&missing, "f", b"x"),
        "create",
        &missing,
        io::ErrorKind::NotFound,
    );
    let file = tmp.path().join("a-file");
    std::fs::write(&file, b"").unwrap();
    check_failure(
        atomic_replace(&file, "f", b"x"),
        "create",
        &file,
        io::ErrorKind::NotADirectory,
    );
    check_failure(
        sync_dir(&missing),
        "fsync directory",
        &missing,
        io::ErrorKind::NotFound,
    );
}

#[test]
fn unwritable_directory_fails_at_create_with_permission_denied() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = unwritable_dir(tmp.path());
    check_failure(
        atomic_replace(&dir, "state.json", b"x"),
        "create",
        &dir,
        io::ErrorKind::PermissionDenied,
    );
    assert!(!dir.join("state.json").exists());
}

#[test]
fn errors_keep_operation_and_path_in_parts() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("missing");
    let error: Error = atomic_replace(&missing, "f", b"x").unwrap_err();
    let (op, path, source) = error.into_parts();
    assert_eq!(op, "create");
    assert!(path.starts_with(&missing));
    assert_eq!(source.kind(), io::ErrorKind::NotFound);
}

#[test]
fn converts_to_an_io_error_of_the_same_kind_that_names_op_and_path() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("missing");
    let error = io::Error::from(atomic_replace(&missing, "f", b"x").unwrap_err());
    assert_eq!(error.kind(), io::ErrorKind::NotFound);
    let text = error.to_string();
    assert!(
        text.starts_with("create ") && text.contains("missing/f.tmp."),
        "{text}"
    );
}
