//! The `logward-server` binary's command line: flags, config errors and exit codes.
//! (Also makes `cargo test` build the binary that the e2e tests drive.)

use std::process::Command;

fn server() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_logward-server"));
    cmd.env_remove("LOGWARD_SERVER_CONFIG")
        .env_remove("LOGWARD_DATA_DIR")
        .env("NO_COLOR", "1");
    cmd
}

fn check(args: &[&str], config: Option<&str>, code: i32, stderr_has: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = server();
    if let Some(text) = config {
        let path = dir.path().join("server.toml");
        std::fs::write(&path, text).expect("write config");
        cmd.arg("--config").arg(path);
    }
    let out = cmd.args(args).output().expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(code),
        "{args:?}: stdout {stdout}\nstderr {stderr}"
    );
    assert!(
        stderr.contains(stderr_has) || stdout.contains(stderr_has),
        "{args:?}: output lacks {stderr_has:?}:\n{stdout}\n{stderr}"
    );
}

#[test]
fn help_lists_the_contract_flags() {
    for flag in [
        "--config",
        "--data-dir",
        "--grpc-addr",
        "--http-addr",
        "--with-collector",
    ] {
        check(&["--help"], None, 0, flag);
    }
}

#[test]
fn bad_input_is_a_clear_error_not_a_panic() {
    check(
        &["--grpc-addr", "nowhere"],
        None,
        2,
        "invalid value 'nowhere'",
    );
    check(&["--bogus"], None, 2, "unexpected argument '--bogus'");
    check(&[], Some("colour = 1"), 1, "unknown field `colour`");
    check(
        &[],
        Some("[index]\nwriter_heap_mb = 1"),
        1,
        "writer_heap_mb is 1",
    );
    check(
        &["--config", "/nonexistent/logward.toml"],
        None,
        1,
        "cannot read config file",
    );
}
