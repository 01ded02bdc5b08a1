//! The journald source end to end: real `.journal` files written by systemd-journal-remote
//! into a directory, followed by the real collector through the real journalctl, shipped to
//! the real server, checked through the search API.
//! - Follow: entries of a file present at start and of a file added later each arrive once,
//!   with their fields; Docker journald-driver entries carry container metadata; kernel
//!   audit records (execve, user add, failed login) are parsed; binary and oversize fields
//!   are marked and cut, never fatal.
//! - Restart: `kill -9` of the collector again and again while files are added: lost = 0 and
//!   duplicated = 0 (the send journal holds journald entries whole).
//! - Filters: units, identifiers, priority and matches select entries, and a stretch of
//!   filtered entries still moves the saved cursor.
//! - Bad cursors: a corrupt cursor and a vacuumed one each give one gap event, and reading
//!   goes on.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use logward_e2e::docker::Rng;
use logward_e2e::journal::{Entry, available, collector_args, write_journal};
use logward_e2e::{FakeContainer, Proc, Server};
use serde_json::Value;

const T0: i64 = 1_714_557_600_000_000;
const WAIT: Duration = Duration::from_secs(90);

struct Setup {
    _tmp: tempfile::TempDir,
    server: Server,
    journal_dir: PathBuf,
    docker_dir: PathBuf,
    state_dir: PathBuf,
    config: PathBuf,
}

fn setup() -> Setup {
    let tmp = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&tmp.path().join("data"), &[]).expect("server starts");
    let journal_dir = tmp.path().join("journal");
    let docker_dir = tmp.path().join("docker");
    std::fs::create_dir_all(&journal_dir).expect("journal dir");
    std::fs::create_dir_all(&docker_dir).expect("docker dir");
    let config = tmp.path().join("collector.toml");
    std::fs::write(
        &config,
        "journal_start = \"beginning\"\nbatch_linger_ms = 20\n",
    )
    .expect("config");
    Setup {
        state_dir: tmp.path().join("state"),
        _tmp: tmp,
        server,
        journal_dir,
        docker_dir,
        config,
    }
}

impl Setup {
    fn collector(&self) -> Proc {
        let args = collector_args(
            &self.server.grpc_url(),
            &self.journal_dir,
            &self.docker_dir,
            &self.state_dir,
            &self.config,
        );
        Proc::spawn("logward-collector", &args, &[]).expect("collector starts")
    }

    fn events(&self, q: &str) -> Vec<Value> {
        self.server.all_events(q).expect("search")
    }

    /// How often each message starting with `prefix` is in the index.
    fn counts(&self, prefix: &str) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for event in self.events(&format!("message:\"{prefix}\"")) {
            let message = event["message"].as_str().unwrap_or_default().to_owned();
            if message.starts_with(prefix) {
                *counts.entry(message).or_default() += 1;
            }
        }
        counts
    }
}

/// A field's values, whether the API gave a string or an array.
fn values(event: &Value, name: &str) -> Vec<String> {
    match &event["fields"][name] {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

fn check_fields(event: &Value, expected: &[(&str, &str)]) {
    for (name, value) in expected {
        assert_eq!(values(event, name), [*value], "field {name} of {event}");
    }
}

fn by_message<'a>(events: &'a [Value], message: &str) -> &'a Value {
    events
        .iter()
        .find(|e| e["message"] == message)
        .unwrap_or_else(|| panic!("no event {message:?}"))
}

fn numbered(prefix: &str, range: std::ops::Range<i64>) -> Vec<Entry> {
    range
        .map(|i| {
            Entry::new(T0 + i * 1000, &format!("{prefix} {i}"))
                .field("SYSLOG_IDENTIFIER", "app")
                .field("PRIORITY", "6")
        })
        .collect()
}

fn audit(at: i64, ty: &str, serial: &str, body: &str) -> Entry {
    Entry::new(T0 + at, &format!("{ty} {body}"))
        .field("_TRANSPORT", "audit")
        .field("_AUDIT_TYPE_NAME", ty)
        .field("_AUDIT_ID", serial)
}

#[test]
fn follows_a_journal_directory_with_fields_containers_audit_and_hostile_values() {
    if !available("journald follow") {
        return;
    }
    let s = setup();
    let full_id = format!("{:064x}", 0xa11_u64);
    FakeContainer::create(
        &s.docker_dir,
        &full_id,
        "api",
        "example/api:2",
        &[("app", "api")],
    )
    .expect("container");
    let mut first = numbered("follow entry", 0..20);
    first[0] = first[0]
        .clone()
        .field("_SYSTEMD_UNIT", "ssh.service")
        .field("_PID", "777")
        .field("_UID", "0")
        .field("_GID", "0")
        .field("_COMM", "sshd")
        .field("_EXE", "/usr/sbin/sshd")
        .field("_CMDLINE", "sshd: root [priv]")
        .field("_TRANSPORT", "syslog")
        .field("TAG", "a")
        .field("TAG", "b");
    first.push(
        Entry::new(T0 + 100_000, "container says hi")
            .field("CONTAINER_ID", &full_id[..12])
            .field("CONTAINER_ID_FULL", &full_id)
            .field("CONTAINER_NAME", "api")
            .field("IMAGE_NAME", "example/api:2")
            .field("CONTAINER_TAG", &full_id[..12])
            .field("_COMM", "dockerd")
            .field("PRIORITY", "3"),
    );
    first.push(
        Entry::new(T0 + 100_001, "unknown container says hi")
            .field("CONTAINER_ID", "beefbeefbeef")
            .field("CONTAINER_NAME", "worker")
            .field("IMAGE_NAME", "example/worker:1")
            .field("_COMM", "dockerd")
            .field("PRIORITY", "6"),
    );
    first.push(audit(
        200_000,
        "SYSCALL",
        "4567",
        r#"arch=c000003e syscall=59 success=yes exit=0 ppid=1 pid=4242 auid=1000 uid=0 euid=0 comm="curl" exe="/usr/bin/curl" key="exec""#,
    ));
    first.push(audit(
        200_001,
        "EXECVE",
        "4567",
        "argc=2 a0=\"curl\" a1=687474703A2F2F782F792E7368",
    ));
    first.push(audit(
        200_002,
        "ADD_USER",
        "90",
        r#"pid=900 uid=0 auid=1000 ses=3 msg='op=add-user id=1001 exe="/usr/sbin/useradd" hostname=web1 addr=? terminal=pts/0 res=success'"#,
    ));
    first.push(audit(
        200_003,
        "USER_LOGIN",
        "91",
        r#"pid=777 uid=0 auid=4294967295 ses=4294967295 msg='op=login acct="root" exe="/usr/sbin/sshd" hostname=? addr=203.0.113.9 terminal=ssh res=failed'"#,
    ));
    first.push(Entry::new(T0 + 300_000, "binary entry").binary("BLOB", &[0, 255, 1, b'\n', 2]));
    first.push(
        Entry::new(T0 + 300_001, &format!("huge {}", "m".repeat(1_200_000)))
            .field("BIG", &"x".repeat(200_000)),
    );
    write_journal(&s.journal_dir, "first", &first).expect("first journal");
    let mut collector = s.collector();
    collector
        .wait_for_log("journald source reading", WAIT)
        .expect("journald found");
    let total = first.len() as u64;
    s.server
        .wait_for_total("host:jhost", total, WAIT)
        .expect("first file shipped");

    // A file added while the collector follows the directory.
    let later: Vec<Entry> = numbered("follow later", 1000..1010);
    write_journal(&s.journal_dir, "second", &later).expect("second journal");
    s.server
        .wait_for_total("host:jhost", total + 10, WAIT)
        .expect("added file shipped");

    let counts = s.counts("follow");
    assert_eq!(counts.len(), 30, "{counts:?}");
    assert!(counts.values().all(|&n| n == 1), "duplicates: {counts:?}");

    let events = s.events("host:jhost");
    let ssh = by_message(&events, "follow entry 0");
    assert_eq!(ssh["source"], "journald");
    assert_eq!(ssh["timestamp"], "2024-05-01T10:00:00.000000000Z");
    check_fields(
        ssh,
        &[
            ("_SYSTEMD_UNIT", "ssh.service"),
            ("SYSLOG_IDENTIFIER", "app"),
            ("PRIORITY", "6"),
            ("_HOSTNAME", "journal-host"),
            ("_PID", "777"),
            ("_UID", "0"),
            ("_GID", "0"),
            ("_COMM", "sshd"),
            ("_EXE", "/usr/sbin/sshd"),
            ("_CMDLINE", "sshd: root [priv]"),
            ("_TRANSPORT", "syslog"),
            ("_BOOT_ID", logward_e2e::journal::BOOT_ID),
        ],
    );
    assert_eq!(values(ssh, "TAG"), ["a", "b"]);
    assert!(ssh["fields"].get("__CURSOR").is_none());
    assert!(ssh["fields"].get("__MONOTONIC_TIMESTAMP").is_none());

    let docker = by_message(&events, "container says hi");
    assert_eq!(docker["source"], "docker");
    assert_eq!(docker["stream"], "stderr");
    assert_eq!(docker["container"]["id"], full_id.as_str());
    assert_eq!(docker["container"]["name"], "api");
    assert_eq!(docker["container"]["image"], "example/api:2");
    assert_eq!(
        docker["container"]["labels"]["app"], "api",
        "enriched from config.v2.json"
    );
    let unknown = by_message(&events, "unknown container says hi");
    assert_eq!(unknown["container"]["name"], "worker");
    assert_eq!(unknown["container"]["image"], "example/worker:1");
    assert_eq!(unknown["stream"], "stdout");
    let found = s.events("container.name:api AND source:docker");
    assert_eq!(found.len(), 1, "searchable like json-file containers");

    let syscall = events
        .iter()
        .find(|e| values(e, "type") == ["SYSCALL"])
        .expect("syscall record");
    check_fields(
        syscall,
        &[
            ("audit.serial", "4567"),
            ("syscall", "59"),
            ("success", "yes"),
            ("exe", "/usr/bin/curl"),
            ("comm", "curl"),
            ("auid", "1000"),
            ("euid", "0"),
            ("key", "exec"),
        ],
    );
    let execve = events
        .iter()
        .find(|e| values(e, "type") == ["EXECVE"])
        .expect("execve record");
    check_fields(
        execve,
        &[
            ("audit.serial", "4567"),
            ("a0", "curl"),
            ("a1", "http://x/y.sh"),
        ],
    );
    let add_user = events
        .iter()
        .find(|e| values(e, "type") == ["ADD_USER"])
        .expect("add user record");
    check_fields(
        add_user,
        &[
            ("op", "add-user"),
            ("exe", "/usr/sbin/useradd"),
            ("res", "success"),
        ],
    );
    let login = events
        .iter()
        .find(|e| values(e, "type") == ["USER_LOGIN"])
        .expect("failed login record");
    check_fields(
        login,
        &[("acct", "root"), ("addr", "203.0.113.9"), ("res", "failed")],
    );

    let binary = by_message(&events, "binary entry");
    assert_eq!(values(binary, "logward.binary_fields"), ["BLOB"]);
    assert_eq!(values(binary, "BLOB"), ["\u{0}\u{fffd}\u{1}\n\u{2}"]);
    let huge = events
        .iter()
        .find(|e| {
            e["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("huge "))
        })
        .expect("huge entry");
    assert_eq!(huge["message"].as_str().map(str::len), Some(1 << 20));
    assert_eq!(values(huge, "logward.truncated_fields"), ["BIG", "MESSAGE"]);
    assert_eq!(values(huge, "BIG")[0].len(), 64 * 1024);
    assert!(
        collector.child.try_wait().expect("wait").is_none(),
        "still running"
    );
    collector.terminate(Duration::from_secs(10)).expect("stops");
}

#[test]
fn kill_9_while_entries_are_added_loses_and_duplicates_nothing() {
    if !available("journald kill -9") {
        return;
    }
    let s = setup();
    let mut rng = Rng::new(0x10_0e);
    let rounds = 6;
    let per_file = 200;
    for round in 0..rounds {
        let mut collector = s.collector();
        let start = round * per_file;
        write_journal(
            &s.journal_dir,
            &format!("part{round}"),
            &numbered("restart entry", start..start + per_file),
        )
        .expect("journal");
        std::thread::sleep(Duration::from_millis(rng.range(50, 700)));
        collector.kill9();
    }
    // Many entries wait after the last cursor when the last collector starts.
    let start = rounds * per_file;
    write_journal(
        &s.journal_dir,
        "last",
        &numbered("restart entry", start..start + per_file),
    )
    .expect("journal");
    let rounds = rounds + 1;
    let mut collector = s.collector();
    let n = (rounds * per_file) as u64;
    s.server
        .wait_for_total("message:restart", n, WAIT)
        .expect("every entry arrives");
    // Settle: anything resent late would show up as a duplicate.
    std::thread::sleep(Duration::from_secs(1));
    let counts = s.counts("restart entry");
    let lost: Vec<i64> = (0..rounds * per_file)
        .filter(|i| !counts.contains_key(&format!("restart entry {i}")))
        .collect();
    assert!(lost.is_empty(), "lost: {lost:?}");
    let dup: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dup.is_empty(), "duplicated: {dup:?}");
    collector.terminate(Duration::from_secs(10)).expect("stops");
}

fn set_cursor(state_dir: &Path, cursor: &str) {
    let path = state_dir.join("state.json");
    let mut state: Value =
        serde_json::from_slice(&std::fs::read(&path).expect("state")).expect("state json");
    assert!(
        state["journald_cursor"].is_string(),
        "a cursor was saved: {state}"
    );
    state["journald_cursor"] = Value::from(cursor);
    std::fs::write(&path, serde_json::to_vec(&state).expect("json")).expect("write state");
}

fn saved_cursor(state_dir: &Path) -> String {
    let path = state_dir.join("state.json");
    let state: Value =
        serde_json::from_slice(&std::fs::read(path).expect("state")).expect("state json");
    state["journald_cursor"]
        .as_str()
        .expect("cursor")
        .to_owned()
}

fn gaps(s: &Setup) -> Vec<Value> {
    s.events("source:collector")
        .into_iter()
        .filter(|e| values(e, "gap.reason") == ["cursor_invalid"])
        .collect()
}

#[test]
fn corrupt_and_vacuumed_cursors_give_a_gap_event_and_reading_goes_on() {
    if !available("journald bad cursors") {
        return;
    }
    let s = setup();
    write_journal(&s.journal_dir, "a", &numbered("cursor a", 0..5)).expect("journal a");
    let mut collector = s.collector();
    s.server
        .wait_for_total("message:cursor", 5, WAIT)
        .expect("a shipped");
    collector.terminate(Duration::from_secs(10)).expect("stops");
    assert!(gaps(&s).is_empty());

    // A corrupt cursor: journalctl rejects it.
    set_cursor(&s.state_dir, "this is not a cursor");
    write_journal(&s.journal_dir, "b", &numbered("cursor b", 100..105)).expect("journal b");
    let mut collector = s.collector();
    collector
        .wait_for_log("journald cursor is not in the journal", WAIT)
        .expect("loud log line");
    s.server
        .wait_for_total("message:\"cursor b\"", 5, WAIT)
        .expect("reading goes on after a corrupt cursor");
    s.server
        .wait_for_total("source:collector", 1, WAIT)
        .expect("gap event");
    collector.terminate(Duration::from_secs(10)).expect("stops");
    let gap = gaps(&s);
    assert_eq!(gap.len(), 1, "{gap:?}");
    assert_eq!(values(&gap[0], "gap.source"), ["journald"]);
    assert_eq!(values(&gap[0], "logward.event"), ["gap"]);

    // A vacuumed cursor: the file holding it is deleted.
    let cursor = saved_cursor(&s.state_dir);
    assert!(cursor.contains("i=5"), "cursor at the end of b: {cursor}");
    std::fs::remove_file(s.journal_dir.join("b.journal")).expect("vacuum b");
    write_journal(&s.journal_dir, "c", &numbered("cursor c", 200..205)).expect("journal c");
    let mut collector = s.collector();
    s.server
        .wait_for_total("message:\"cursor c\"", 5, WAIT)
        .expect("reading goes on after a vacuumed cursor");
    s.server
        .wait_for_total("source:collector", 2, WAIT)
        .expect("second gap event");
    let gap = gaps(&s);
    assert_eq!(gap.len(), 2, "{gap:?}");
    let counts = s.counts("cursor c");
    assert!(counts.values().all(|&n| n == 1), "{counts:?}");
    collector.terminate(Duration::from_secs(10)).expect("stops");
}

#[test]
fn filters_select_entries_and_filtered_stretches_move_the_cursor() {
    if !available("journald filters") {
        return;
    }
    let s = setup();
    std::fs::write(
        &s.config,
        "journal_start = \"beginning\"\nbatch_linger_ms = 20\n\
         exclude_identifiers = [\"noise\"]\nmin_priority = 4\n\
         include_units = [\"ssh\", \"cron.service\"]\nmatches = [\"_TRANSPORT=syslog\"]\n",
    )
    .expect("config");
    let entry = |i: i64, unit: &str, ident: &str, priority: &str, transport: &str| {
        Entry::new(T0 + i * 1000, &format!("filter {i} {unit} {ident}"))
            .field("_SYSTEMD_UNIT", unit)
            .field("SYSLOG_IDENTIFIER", ident)
            .field("PRIORITY", priority)
            .field("_TRANSPORT", transport)
    };
    let mut entries = vec![
        entry(0, "ssh.service", "sshd", "3", "syslog"), // kept
        entry(1, "cron.service", "CRON", "4", "syslog"), // kept
        entry(2, "ssh.service", "sshd", "6", "syslog"), // priority too low
        entry(3, "nginx.service", "nginx", "3", "syslog"), // unit not included
        entry(4, "ssh.service", "sshd", "3", "stdout"), // match fails
    ];
    // A long filtered stretch at the end.
    entries.extend((5..60).map(|i| entry(i, "ssh.service", "noise", "3", "syslog")));
    write_journal(&s.journal_dir, "f", &entries).expect("journal");
    let mut collector = s.collector();
    s.server
        .wait_for_total("message:filter", 2, WAIT)
        .expect("kept entries");
    // The cursor moves to the last (filtered) entry without any new event.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let cursor = std::fs::read(s.state_dir.join("state.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .and_then(|v| v["journald_cursor"].as_str().map(str::to_owned));
        // Sequence numbers in cursors are hex: entry 60 of the file is i=3c.
        if cursor.as_deref().is_some_and(|c| c.contains(";i=3c;")) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "cursor never reached the filtered stretch's end: {cursor:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    collector.terminate(Duration::from_secs(10)).expect("stops");
    let messages: Vec<String> = s
        .events("message:filter")
        .iter()
        .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        messages,
        ["filter 0 ssh.service sshd", "filter 1 cron.service CRON"]
    );
}
