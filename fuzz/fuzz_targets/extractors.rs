//! Fuzzes the server's extraction stage (`Extractors::extract`) with the input as the
//! message of events that select each built-in extractor (sshd, sudo, su, accounts,
//! dockerd, kernel, nginx/apache access, JSON-in-message) and configured regex, key=value,
//! logfmt and JSON extractors; also the generic `kv` and `json` functions directly.
//!
//! Checks beyond "no panic": every field name is non-empty; every `logward.parser` entry
//! names an extractor and comes after the fields; a generic extractor adds at most
//! `MAX_FIELDS` fields and clips values to `MAX_VALUE_BYTES`; a message over
//! `MAX_MESSAGE_BYTES` is left alone; `apply` never overwrites a field the source set.
#![no_main]

use std::collections::HashMap;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use logward_proto::{Container, Event, Source, Values};
use logward_server::extract::generic::{self, MAX_FIELDS, MAX_VALUE_BYTES};
use logward_server::extract::{ExtractConfig, Extractors, Kind, MAX_MESSAGE_BYTES, When};

const PARSERS: &[&str] = &[
    "app_regex",
    "app_kv",
    "app_logfmt",
    "app_json",
    "sshd",
    "sudo",
    "su",
    "accounts",
    "dockerd",
    "kernel",
    "http_access",
    "json",
];

fn extractors() -> &'static Extractors {
    static X: OnceLock<Extractors> = OnceLock::new();
    X.get_or_init(|| {
        let when = |image: &str| When {
            image: vec![image.to_owned()],
            ..When::default()
        };
        let configured = [
            (
                "app_regex",
                "re",
                Kind::Regex,
                Some(r"^(?P<app__client>[\d.]+):\d+ .*? (?P<app__status>\d{3}) (?P<rest>.*)$"),
            ),
            ("app_kv", "kv", Kind::Kv, None),
            ("app_logfmt", "logfmt", Kind::Logfmt, None),
            ("app_json", "json", Kind::Json, None),
        ]
        .map(|(name, image, kind, pattern)| ExtractConfig {
            name: name.to_owned(),
            when: when(image),
            kind,
            pattern: pattern.map(str::to_owned),
        });
        Extractors::new(&configured).expect("fuzz extractors are valid")
    })
}

/// (source, fields, container image): one event shape per extractor.
const CONTEXTS: &[(Source, &[(&str, &str)], Option<&str>)] = &[
    (Source::Journald, &[("SYSLOG_IDENTIFIER", "sshd")], None),
    (Source::Journald, &[("SYSLOG_IDENTIFIER", "sudo")], None),
    (Source::Journald, &[("SYSLOG_IDENTIFIER", "su")], None),
    (Source::Journald, &[("SYSLOG_IDENTIFIER", "useradd")], None),
    (
        Source::Journald,
        &[("_SYSTEMD_UNIT", "docker.service")],
        None,
    ),
    (Source::Journald, &[("_TRANSPORT", "kernel")], None),
    (
        Source::Journald,
        &[("_TRANSPORT", "audit"), ("SYSLOG_IDENTIFIER", "audit")],
        None,
    ),
    (Source::Journald, &[("SYSLOG_IDENTIFIER", "nginx")], None),
    (Source::Docker, &[], Some("library/nginx:1.25")),
    (Source::Docker, &[], Some("re")),
    (Source::Docker, &[], Some("kv")),
    (Source::Docker, &[], Some("logfmt")),
    (Source::Docker, &[("ssh.user", "preset")], Some("json")),
];

fn event(source: Source, fields: &[(&str, &str)], image: Option<&str>, message: &[u8]) -> Event {
    Event {
        source: source as i32,
        message: message.to_vec().into(),
        fields: fields
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    Values {
                        values: vec![v.to_string()],
                    },
                )
            })
            .collect::<HashMap<_, _>>(),
        container: image.map(|i| Container {
            image: i.to_owned(),
            name: "c".to_owned(),
            ..Container::default()
        }),
        ..Event::default()
    }
}

fuzz_target!(|data: &[u8]| {
    let x = extractors();
    for (source, fields, image) in CONTEXTS {
        let ev = event(*source, fields, *image, data);
        let out = x.extract(&ev);
        if data.len() > MAX_MESSAGE_BYTES {
            assert!(out.is_empty(), "oversized message was parsed");
        }
        let first_parser = out.iter().position(|(k, _)| k == "logward.parser");
        for (i, (k, v)) in out.iter().enumerate() {
            assert!(!k.is_empty(), "empty field name");
            if k == "logward.parser" {
                assert!(PARSERS.contains(&v.as_str()), "unknown parser {v}");
            } else {
                assert!(
                    first_parser.is_none_or(|p| i < p),
                    "field after the parser list"
                );
            }
        }
        let mut applied = ev.clone();
        x.apply(&mut applied);
        for (k, v) in &ev.fields {
            assert_eq!(&applied.fields[k], v, "apply overwrote {k}");
        }
    }
    let text = String::from_utf8_lossy(data);
    for logfmt in [false, true] {
        let mut out = Vec::new();
        generic::kv(&text, logfmt, &mut out);
        assert!(out.len() <= MAX_FIELDS);
        for (k, v) in &out {
            assert!(k.starts_with("kv.") && k.len() > 3, "bad key {k:?}");
            assert!(v.len() <= MAX_VALUE_BYTES, "value of {k} not clipped");
        }
    }
    let mut out = Vec::new();
    generic::json(&text, &mut out);
    assert!(out.len() <= MAX_FIELDS, "json added {} fields", out.len());
    for (k, v) in &out {
        assert!(k.starts_with("json."), "bad key {k:?}");
        assert!(v.len() <= MAX_VALUE_BYTES, "value of {k} not clipped");
    }
});
