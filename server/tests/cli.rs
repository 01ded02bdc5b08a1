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

const RULE: &str = "title: Failed ssh password
id: 7d1c2e2a-0000-4000-8000-000000000001
status: test
level: medium
logsource:
  product: linux
  service: sshd
detection:
  sel:
    message|contains: 'Failed password'
  condition: sel
";

#[test]
fn rules_check_reports_each_bad_file_and_fails() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("good.yml"), RULE).expect("write");
    let out = server()
        .args(["rules", "check"])
        .arg(dir.path())
        .output()
        .expect("runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(
        dir.path().join("bad.yml"),
        "title: broken\ndetection:\n  condition: nope\n",
    )
    .expect("write");
    let out = server()
        .args(["rules", "check"])
        .arg(dir.path())
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("bad.yml") && stderr.contains("nope"),
        "{stderr}"
    );
    assert!(!stderr.contains("good.yml"), "{stderr}");
}

#[test]
fn rules_test_prints_one_json_line_per_detection() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rule = dir.path().join("rule.yml");
    std::fs::write(&rule, RULE).expect("write");
    let events = dir.path().join("events.jsonl");
    let lines = [
        r#"{"message":"Accepted publickey for bob"}"#,
        r#"{"message":"Failed password for root from 203.0.113.9 port 22 ssh2"}"#,
    ];
    std::fs::write(&events, lines.join("\n")).expect("write");
    let out = server()
        .args(["rules", "test", "--ignore-logsource"])
        .arg(&rule)
        .arg(&events)
        .output()
        .expect("runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let detections: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(detections.len(), 1, "{stdout}");
    assert_eq!(
        detections[0]["rule_id"],
        "7d1c2e2a-0000-4000-8000-000000000001"
    );
    assert_eq!(detections[0]["level"], "medium");
    assert_eq!(detections[0]["event_index"], 1);
    let missing = server()
        .args(["rules", "test"])
        .arg(&rule)
        .arg("/nonexistent.jsonl")
        .output()
        .expect("runs");
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot read"));
}
