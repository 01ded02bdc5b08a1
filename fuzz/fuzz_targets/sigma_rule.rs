//! Fuzzes the Sigma rule pipeline: YAML loading (`yaml::load`, aliases and size refused),
//! rule and correlation parsing (`documents_from_str`), compilation (`Engine::new`:
//! modifiers, wildcards, regexes, CIDRs, placeholders, logsource mapping, prefilter), then
//! matching and correlation over events.
//!
//! Input: rule YAML, optionally followed by a NUL byte and JSON-lines events (logward
//! event JSON or flat field maps); without the NUL a fixed sample of the built-in test
//! events is used. Checks beyond "no panic": compiling the same documents twice gives the
//! same verdict, and two engines built from them give the same detections on the same
//! events (the engine is pure: no clock, no I/O). Events are run with and without
//! logsource routing.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use logward_rules::loader::event_time;
use logward_rules::{Detection, Engine, EngineConfig, EventRef, OwnedEvent, documents_from_str};

/// The two engine settings (the logsource mapping is parsed once, not per input).
fn configs() -> &'static [EngineConfig; 2] {
    static CONFIGS: OnceLock<[EngineConfig; 2]> = OnceLock::new();
    CONFIGS.get_or_init(|| {
        [true, false].map(|ignore_logsource| EngineConfig {
            ignore_logsource,
            ..EngineConfig::default()
        })
    })
}

/// Two events of each built-in test file: sshd, sudo, accounts, containers, posture.
fn sample_events() -> &'static [(OwnedEvent, i64)] {
    static EVENTS: OnceLock<Vec<(OwnedEvent, i64)>> = OnceLock::new();
    EVENTS.get_or_init(|| {
        let files = [
            include_str!("../../rules/tests/builtin/access.jsonl"),
            include_str!("../../rules/tests/builtin/accounts.jsonl"),
            include_str!("../../rules/tests/builtin/benign.jsonl"),
            include_str!("../../rules/tests/builtin/container.jsonl"),
            include_str!("../../rules/tests/builtin/host.jsonl"),
            include_str!("../../rules/tests/builtin/posture.jsonl"),
            include_str!("../../rules/tests/builtin/tampering.jsonl"),
        ];
        let lines = files
            .iter()
            .flat_map(|text| text.lines().filter(|l| l.starts_with('{')).take(2));
        parse_events(lines.map(str::as_bytes))
    })
}

/// JSON-lines events as the `rules test` command reads them (bad lines skipped).
fn parse_events<'a>(lines: impl Iterator<Item = &'a [u8]>) -> Vec<(OwnedEvent, i64)> {
    lines
        .filter_map(|l| serde_json::from_slice::<serde_json::Value>(l).ok())
        .filter(serde_json::Value::is_object)
        .map(|v| (OwnedEvent::from_json(&v), event_time(&v)))
        .collect()
}

/// Every detection of `events`, then of the final `advance`, as sorted text (correlation
/// groups may come out in hash-map order).
fn run(engine: &mut Engine, events: &[(OwnedEvent, i64)]) -> Vec<String> {
    let mut out: Vec<Detection> = Vec::new();
    for (i, (ev, ts)) in events.iter().enumerate() {
        let r = EventRef {
            index: i as u64,
            id: None,
        };
        out.extend(engine.process(ev, *ts, &r));
    }
    out.extend(engine.advance(i64::MAX));
    let mut lines: Vec<String> = out.iter().map(|d| format!("{d:?}")).collect();
    lines.sort();
    lines
}

fuzz_target!(|data: &[u8]| {
    let (rules, own_events) = match data.iter().position(|b| *b == 0) {
        Some(i) => (
            &data[..i],
            Some(parse_events(data[i + 1..].split(|b| *b == b'\n'))),
        ),
        None => (data, None),
    };
    let events = own_events.as_deref().unwrap_or(sample_events());
    let Ok(text) = std::str::from_utf8(rules) else {
        return;
    };
    let Ok(docs) = documents_from_str(text) else {
        return;
    };
    let [ignoring, routing] = configs();
    let (a, b) = (Engine::new(&docs, ignoring), Engine::new(&docs, ignoring));
    match (a, b) {
        (Ok(mut a), Ok(mut b)) => {
            assert_eq!(a.rule_count(), b.rule_count());
            assert_eq!(run(&mut a, events), run(&mut b, events), "engines disagree");
        }
        (Err(a), Err(b)) => {
            assert_eq!(a.len(), b.len(), "compilation is not deterministic");
            return;
        }
        _ => panic!("compilation is not deterministic"),
    }
    if let Ok(mut engine) = Engine::new(&docs, routing) {
        run(&mut engine, events);
    }
});
