//! Table tests of the extractors: real-format lines from `server/tests/fixtures/extract.jsonl`.

use std::collections::BTreeMap;

use logward_proto::{Container, Event as WireEvent, Source, Values};
use serde_json::Value;

use super::*;

const FIXTURES: &str = include_str!("../../../tests/fixtures/extract.jsonl");

/// Builds the event of a fixture line: `source`, `msg`, and optional `id`
/// (SYSLOG_IDENTIFIER), `unit`, `transport`, `image`.
fn event(case: &Value) -> WireEvent {
    let s = |k: &str| case.get(k).and_then(Value::as_str);
    let mut fields = HashMap::new();
    for (key, name) in [
        ("id", "SYSLOG_IDENTIFIER"),
        ("unit", "_SYSTEMD_UNIT"),
        ("transport", "_TRANSPORT"),
    ] {
        if let Some(v) = s(key) {
            fields.insert(
                name.to_owned(),
                Values {
                    values: vec![v.to_owned()],
                },
            );
        }
    }
    let source = match s("source") {
        Some("docker") => Source::Docker,
        Some("collector") => Source::Collector,
        _ => Source::Journald,
    };
    WireEvent {
        source: source as i32,
        message: s("msg").unwrap_or("").as_bytes().to_vec().into(),
        container: s("image").map(|i| Container {
            image: i.to_owned(),
            ..Default::default()
        }),
        fields,
        ..Default::default()
    }
}

fn check(x: &Extractors, case: &Value, expected: &BTreeMap<String, String>) {
    let mut ev = event(case);
    let before: Vec<String> = ev.fields.keys().cloned().collect();
    x.apply(&mut ev);
    let got: BTreeMap<String, String> = ev
        .fields
        .iter()
        .filter(|(k, _)| !before.contains(k))
        .map(|(k, v)| (k.clone(), v.values.join("|")))
        .collect();
    assert_eq!(&got, expected, "{case}");
}

#[test]
fn fixture_lines() {
    let configured: Vec<ExtractConfig> = vec![
        ExtractConfig {
            name: "app_kv".into(),
            when: When {
                image: vec!["acme/billing*".into()],
                ..When::default()
            },
            kind: Kind::Kv,
            pattern: None,
        },
        ExtractConfig {
            name: "app_logfmt".into(),
            when: When {
                container: vec!["api".into()],
                ..When::default()
            },
            kind: Kind::Logfmt,
            pattern: None,
        },
        ExtractConfig {
            name: "haproxy".into(),
            when: When {
                identifier: vec!["haproxy".into()],
                ..When::default()
            },
            kind: Kind::Regex,
            pattern: Some(
                r"^(?P<haproxy__client>[\d.]+):\d+ .*? (?P<haproxy__status>\d{3}) ".into(),
            ),
        },
    ];
    let x = Extractors::new(&configured).expect("valid extractors");
    let mut n = 0;
    for line in FIXTURES
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
    {
        let case: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        let expected: BTreeMap<String, String> = serde_json::from_value(case["expect"].clone())
            .unwrap_or_else(|e| panic!("{line}: {e}"));
        let mut case = case;
        if let Some(name) = case
            .get("container")
            .and_then(Value::as_str)
            .map(str::to_owned)
        {
            case["image"] = Value::String(
                case.get("image")
                    .and_then(Value::as_str)
                    .unwrap_or("x")
                    .into(),
            );
            let mut ev = event(&case);
            if let Some(c) = ev.container.as_mut() {
                c.name = name;
            }
            let before: Vec<String> = ev.fields.keys().cloned().collect();
            x.apply(&mut ev);
            let got: BTreeMap<String, String> = ev
                .fields
                .iter()
                .filter(|(k, _)| !before.contains(k))
                .map(|(k, v)| (k.clone(), v.values.join("|")))
                .collect();
            assert_eq!(got, expected, "{line}");
        } else {
            check(&x, &case, &expected);
        }
        n += 1;
    }
    assert!(n >= 40, "only {n} fixture lines");
}

#[test]
fn globs() {
    for (p, s, want) in [
        ("nginx*", "nginx:1.25", true),
        ("*nginx*", "docker.io/library/nginx:1.25", true),
        ("*ssh*", "linuxserver/openssh-server", true),
        ("sshd@*", "sshd@3-10.0.0.1:22-10.0.0.2:5000.service", true),
        ("nginx", "nginx:1", false),
        ("a*b*c", "axxbyyc", true),
        ("a*b*c", "axxcyyb", false),
        ("*", "", true),
    ] {
        assert_eq!(glob(p, s), want, "{p} {s}");
    }
}

#[test]
fn bad_configs() {
    let bad = |kind: Kind, pattern: Option<&str>| ExtractConfig {
        name: "x".into(),
        when: When::default(),
        kind,
        pattern: pattern.map(str::to_owned),
    };
    assert!(bad(Kind::Regex, None).validate().is_err());
    assert!(bad(Kind::Regex, Some("(unclosed")).validate().is_err());
    assert!(bad(Kind::Regex, Some("no captures")).validate().is_err());
    assert!(bad(Kind::Kv, Some("(?P<a>x)")).validate().is_err());
    assert!(bad(Kind::Json, None).validate().is_ok());
}

#[test]
fn hostile_input_never_panics() {
    let x = Extractors::new(&[]).expect("built-ins");
    let long = "a".repeat(200_000);
    for msg in [
        "",
        "=",
        "\"",
        "a=\"unterminated",
        "k=\u{e9}\"\u{e9}",
        "{",
        "{\"a\":",
        &long,
        "Failed password for",
    ] {
        for id in [
            "sshd", "sudo", "su", "useradd", "dockerd", "kernel", "nginx",
        ] {
            let case = serde_json::json!({"source": "journald", "id": id, "msg": msg});
            let _ = x.extract(&event(&case));
        }
    }
}

/// Found by the `extractors` fuzz target: a logfmt backslash before a multi-byte character
/// sliced the message inside that character (a panic in ingest, from any local process
/// that can log as dockerd).
#[test]
fn logfmt_escape_before_a_multibyte_character() {
    for (message, expected) in [
        (
            "k=\"\\\u{e9}\" x=1",
            vec![("kv.k", "\u{e9}"), ("kv.x", "1")],
        ),
        ("k=\"a\\\u{1f600}b\"", vec![("kv.k", "a\u{1f600}b")]),
        ("k=\"\\n\\t\\\"\"", vec![("kv.k", "\n\t\"")]),
    ] {
        let mut out = Vec::new();
        generic::kv(message, true, &mut out);
        let got: Vec<(&str, &str)> = out.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(got, expected, "{message:?}");
    }
    let x = Extractors::new(&[]).expect("built-ins");
    let case =
        serde_json::json!({"source": "journald", "id": "dockerd", "msg": "msg=\"\\\u{e9}\""});
    let _ = x.extract(&event(&case));
}

/// Found by the `extractors` fuzz target: JSON arrays added up to `MAX_FIELDS` values each,
/// past the extractor's `MAX_FIELDS` bound.
#[test]
fn json_arrays_count_against_the_field_cap() {
    let many = |n: usize| (0..n).map(|i| i.to_string()).collect::<Vec<_>>().join(",");
    let message = format!(r#"{{"a":[{}],"b":[{}],"c":"x"}}"#, many(63), many(64));
    let mut out = Vec::new();
    generic::json(&message, &mut out);
    assert_eq!(out.len(), generic::MAX_FIELDS);
}
