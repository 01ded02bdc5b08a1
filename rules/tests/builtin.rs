//! The built-in pack (`rules/builtin/`): it loads without errors, every rule carries the
//! metadata the pack promises, every fixture in `tests/builtin/*.jsonl` gives exactly the
//! detections it declares, and the benign corpus gives none.
//!
//! Fixture lines are logward event JSON plus two keys the test strips before evaluation:
//! `"expect": [rule ids]`, the detections this event must produce (a correlation is
//! expected on the event that completes it, the last of its contributing events), and
//! `"not": [rule ids]`, the rules this line is a declared negative for. Events run through
//! `test_events`, the code behind `logward-server rules test`, with logsource routing on;
//! each file is one timeline (one engine), windows close at its end.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use logward_rules::{check_paths, test_events, yaml};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn pack() -> PathBuf {
    root().join("builtin")
}

struct PackRule {
    id: String,
    level: String,
    /// For correlations: the rules they reference.
    feeds_from: Vec<String>,
}

fn pack_rules() -> Vec<PackRule> {
    let mut out = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(pack())
        .expect("rules/builtin")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    files.sort();
    for f in files {
        let name = f.display().to_string();
        let docs = yaml::load(&std::fs::read_to_string(&f).expect("read")).expect("yaml");
        for d in &docs {
            let s = |k: &str| yaml::get(d, k).and_then(yaml::scalar).unwrap_or_default();
            let list = |k: &str| yaml::str_list(d, k, k).unwrap_or_default();
            let id = s("id");
            let title = s("title");
            assert!(!title.is_empty(), "{name}: a rule without title");
            assert!(uuid_v4(&id), "{name}: '{title}': id '{id}' is not a UUIDv4");
            for key in ["status", "description", "level"] {
                assert!(!s(key).is_empty(), "{name}: '{title}': no {key}");
            }
            assert_eq!(s("author"), "logward", "{name}: '{title}': author");
            let tags = list("tags");
            assert!(
                tags.iter().any(|t| t.starts_with("logward.p")),
                "{name}: '{title}': no practice tag logward.pN in {tags:?}"
            );
            for t in &tags {
                let ok = t.starts_with("attack.")
                    || t.strip_prefix("logward.p")
                        .and_then(|n| n.parse::<u8>().ok())
                        .is_some_and(|n| (1..=10).contains(&n));
                assert!(ok, "{name}: '{title}': unexpected tag '{t}'");
            }
            assert!(
                !list("falsepositives").is_empty(),
                "{name}: '{title}': no falsepositives"
            );
            let correlation = yaml::get(d, "correlation");
            if correlation.is_none() {
                assert!(
                    yaml::get(d, "logsource").is_some(),
                    "{name}: '{title}': no logsource"
                );
            }
            let feeds_from = correlation
                .map(|c| yaml::str_list(c, "rules", "rules").expect("rules"))
                .unwrap_or_default();
            out.push(PackRule {
                id,
                level: s("level"),
                feeds_from,
            });
        }
    }
    out
}

fn uuid_v4(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.iter().map(|p| p.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
        && s.chars().all(|c| c == '-' || c.is_ascii_hexdigit())
        && parts[2].starts_with('4')
        && parts[3].starts_with(['8', '9', 'a', 'b'])
}

/// (events without the test keys, expected rule ids per line, declared negatives).
type Fixture = (Vec<u8>, BTreeMap<u64, Vec<String>>, BTreeSet<String>);

fn load_fixture(path: &Path) -> Fixture {
    let text = std::fs::read_to_string(path).expect("fixture");
    let mut events = Vec::new();
    let mut expect = BTreeMap::new();
    let mut negatives = BTreeSet::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            events.push(b'\n');
            continue;
        }
        let mut v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("{}:{}: {e}", path.display(), i + 1));
        let obj = v.as_object_mut().expect("object");
        let ids = |x: Option<serde_json::Value>| -> Vec<String> {
            x.and_then(|x| serde_json::from_value(x).ok())
                .unwrap_or_default()
        };
        let mut want = ids(obj.remove("expect"));
        want.sort();
        negatives.extend(ids(obj.remove("not")));
        if !want.is_empty() {
            expect.insert(i as u64, want);
        }
        events.extend(serde_json::to_vec(&v).expect("json"));
        events.push(b'\n');
    }
    (events, expect, negatives)
}

/// Detections by the event index that produced them (a correlation: its last event).
fn run(events: &[u8]) -> BTreeMap<u64, Vec<String>> {
    let lines = test_events(&pack(), events, false).unwrap_or_else(|e| panic!("{e}"));
    let mut got: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for l in lines {
        let at = l
            .event_index
            .or_else(|| l.event_indices.as_ref().and_then(|v| v.last().copied()))
            .expect("an event");
        got.entry(at).or_default().push(l.rule_id);
    }
    for v in got.values_mut() {
        v.sort();
    }
    got
}

fn fixture_files() -> Vec<PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(root().join("tests/builtin"))
        .expect("tests/builtin")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .filter(|p| !p.ends_with("benign.jsonl"))
        .collect();
    files.sort();
    files
}

#[test]
fn the_pack_passes_rules_check_with_zero_errors() {
    let report = check_paths(&[pack()]);
    assert_eq!(report.exit_code(), 0, "{report}");
    assert!(report.errors.is_empty(), "{report}");
    assert_eq!(report.documents, pack_rules().len(), "{report}");
    assert!(report.files >= 6, "{report}");
}

#[test]
fn every_rule_has_ids_levels_tags_falsepositives_and_a_practice() {
    let rules = pack_rules();
    let ids: BTreeSet<_> = rules.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids.len(), rules.len(), "duplicate ids");
    for r in &rules {
        for f in &r.feeds_from {
            assert!(ids.contains(f.as_str()), "{}: unknown rule {f}", r.id);
        }
    }
}

#[test]
fn every_fixture_gives_exactly_the_declared_detections_and_every_rule_is_covered() {
    let rules = pack_rules();
    let mut positives = BTreeSet::new();
    let mut negatives = BTreeSet::new();
    let files = fixture_files();
    assert!(files.len() >= 6, "fixtures missing: {files:?}");
    for f in &files {
        let (events, expect, neg) = load_fixture(f);
        let got = run(&events);
        assert_eq!(
            got,
            expect,
            "{}: detections by line (0-based), got vs expected",
            f.display()
        );
        positives.extend(expect.into_values().flatten());
        negatives.extend(neg);
    }
    // Every reporting rule fires somewhere and has a declared negative; a correlation-only
    // input rule (informational, generate: false) is covered through its correlation.
    for r in &rules {
        let covered = |id: &str| positives.contains(id);
        if r.level == "informational" {
            let via = rules
                .iter()
                .filter(|c| c.feeds_from.contains(&r.id))
                .any(|c| covered(&c.id));
            assert!(via, "input rule {} feeds no tested correlation", r.id);
            continue;
        }
        assert!(covered(&r.id), "rule {} has no positive fixture", r.id);
        assert!(
            negatives.contains(&r.id),
            "rule {} has no declared negative fixture",
            r.id
        );
    }
}

#[test]
fn the_benign_corpus_produces_no_detections() {
    let path = root().join("tests/builtin/benign.jsonl");
    let (events, expect, _) = load_fixture(&path);
    assert!(expect.is_empty(), "the benign corpus expects nothing");
    let lines = events.iter().filter(|b| **b == b'\n').count();
    assert!(lines >= 40, "benign corpus too small: {lines}");
    let got = run(&events);
    assert!(got.is_empty(), "benign events fired: {got:?}");
}

#[test]
fn new_default_logsources_route_by_identifier() {
    // su, useradd, kernel and dockerd were added to the default mapping for the pack.
    let rules = r"
title: probe su
id: su
logsource: {product: linux, service: su}
detection: {k: [probe], condition: k}
---
title: probe useradd
id: useradd
logsource: {product: linux, service: useradd}
detection: {k: [probe], condition: k}
---
title: probe kernel
id: kernel
logsource: {product: linux, service: kernel}
detection: {k: [probe], condition: k}
---
title: probe dockerd
id: dockerd
logsource: {product: linux, service: dockerd}
detection: {k: [probe], condition: k}
";
    let docs = logward_rules::documents_from_str(rules).expect("parse");
    let ev = |fields: &str, source: &str| {
        format!(r#"{{"source":"{source}","message":"probe","fields":{fields}}}"#)
    };
    let events = [
        ev(r#"{"SYSLOG_IDENTIFIER":"su"}"#, "journald"),
        ev(r#"{"SYSLOG_IDENTIFIER":"usermod"}"#, "journald"),
        ev(
            r#"{"SYSLOG_IDENTIFIER":"kernel","_TRANSPORT":"kernel"}"#,
            "journald",
        ),
        ev(r#"{"_TRANSPORT":"audit"}"#, "journald"),
        ev(
            r#"{"_SYSTEMD_UNIT":"docker.service","SYSLOG_IDENTIFIER":"dockerd"}"#,
            "journald",
        ),
        ev(r#"{"SYSLOG_IDENTIFIER":"sudo"}"#, "journald"),
        ev(r#"{"SYSLOG_IDENTIFIER":"su"}"#, "docker"),
        ev(r#"{"_TRANSPORT":"kernel"}"#, "docker"),
    ]
    .join("\n");
    let got: Vec<String> = logward_rules::test_events_str(&docs, events.as_bytes(), false)
        .expect("runs")
        .into_iter()
        .map(|d| format!("{}@{}", d.rule_id, d.event_index.unwrap_or(99)))
        .collect();
    assert_eq!(
        got,
        ["su@0", "useradd@1", "kernel@2", "kernel@3", "dockerd@4"]
    );
}
