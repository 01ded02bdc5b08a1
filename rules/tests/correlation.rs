//! Correlation timelines in `tests/correlation/*.yml`: rules, events at times `t` (seconds),
//! and the expected detections as `rule_id: [event indices]`, in order.

use logward_rules::logsource::yaml_to_json;
use logward_rules::{Engine, EngineConfig, EventRef, OwnedEvent, rule, yaml};

fn check(name: &str, text: &str) {
    let fx = &yaml::load(text).unwrap_or_else(|e| panic!("{name}: {e}"))[0];
    let docs: Vec<_> = match yaml::get(fx, "rules") {
        Some(yaml_rust2::Yaml::Array(a)) => a
            .iter()
            .map(|d| rule::parse_document(d).unwrap_or_else(|e| panic!("{name}: {e}")))
            .collect(),
        _ => panic!("{name}: no rules"),
    };
    let mut cfg = EngineConfig {
        ignore_logsource: true,
        ..EngineConfig::default()
    };
    if let Some(n) = yaml::get(fx, "max_group_keys").and_then(yaml::scalar) {
        cfg.limits.max_group_keys = n.parse().unwrap_or(1);
    }
    let mut engine = Engine::new(&docs, &cfg).unwrap_or_else(|e| panic!("{name}: {e:?}"));
    let mut got = Vec::new();
    if let Some(yaml_rust2::Yaml::Array(events)) = yaml::get(fx, "events") {
        for (i, ev) in events.iter().enumerate() {
            let t: i64 = yaml::get(ev, "t")
                .and_then(yaml::scalar)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let event = OwnedEvent::from_json(&yaml_to_json(ev));
            got.extend(engine.process(
                &event,
                t * 1_000_000_000,
                &EventRef {
                    index: i as u64,
                    id: None,
                },
            ));
        }
    }
    got.extend(engine.advance(i64::MAX));
    let got: Vec<String> = got
        .iter()
        .map(|d| {
            let idx: Vec<String> = d.events.iter().map(|e| e.index.to_string()).collect();
            format!("{}: [{}]", d.rule_id, idx.join(", "))
        })
        .collect();
    let want: Vec<String> = match yaml::get(fx, "expect") {
        Some(yaml_rust2::Yaml::Array(a)) => a.iter().filter_map(yaml::scalar).collect(),
        _ => Vec::new(),
    };
    assert_eq!(got, want, "{name}");
    if let Some(ev) = yaml::get(fx, "evictions").and_then(yaml::scalar) {
        let s = engine.stats();
        assert_eq!(
            s.correlations[0].evictions.to_string(),
            ev,
            "{name}: evictions"
        );
    }
}

#[test]
fn every_correlation_timeline_gives_the_expected_detections() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/correlation");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("dir")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    assert!(!files.is_empty());
    for f in files {
        check(
            &f.display().to_string(),
            &std::fs::read_to_string(&f).expect("read"),
        );
    }
}
