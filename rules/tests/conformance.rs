//! Conformance suite: one fixture per construct in `tests/conformance/*.yml`, each a rule
//! with events that must match and events that must not (or an expected error).

use logward_rules::logsource::yaml_to_json;
use logward_rules::{Engine, EngineConfig, EventRef, OwnedEvent, rule, yaml};

fn check(name: &str, text: &str) {
    let docs = yaml::load(text).unwrap_or_else(|e| panic!("{name}: fixture YAML: {e}"));
    let fx = &docs[0];
    let use_logsource = yaml::get(fx, "use_logsource").is_some();
    let rules: Vec<_> = match yaml::get(fx, "rules") {
        Some(yaml_rust2::Yaml::Array(a)) => a.clone(),
        _ => vec![
            yaml::get(fx, "rule")
                .cloned()
                .unwrap_or_else(|| panic!("{name}: no rule")),
        ],
    };
    let parsed: Result<Vec<_>, _> = rules.iter().map(rule::parse_document).collect();
    let cfg = EngineConfig {
        ignore_logsource: !use_logsource,
        strict: yaml::get(fx, "strict").is_some(),
        ..EngineConfig::default()
    };
    let built = parsed
        .map_err(|e| vec![e])
        .and_then(|d| Engine::new(&d, &cfg));
    if let Some(want) = yaml::get(fx, "error").and_then(yaml::scalar) {
        match built {
            Err(errs) => {
                let all: Vec<String> = errs.iter().map(ToString::to_string).collect();
                assert!(
                    all.iter().any(|e| e.contains(&want)),
                    "{name}: want '{want}', got {all:?}"
                );
            }
            Ok(_) => panic!("{name}: expected error '{want}', rule compiled"),
        }
        return;
    }
    let mut engine = built.unwrap_or_else(|e| panic!("{name}: {e:?}"));
    if let Some(want) = yaml::get(fx, "inactive").and_then(yaml::scalar) {
        let got: Vec<String> = engine.inactive().iter().map(|i| i.reason.clone()).collect();
        assert!(
            got.iter().any(|r| r.contains(&want)),
            "{name}: want inactive '{want}', got {got:?}"
        );
    }
    for (key, expected) in [("match", true), ("no_match", false)] {
        let Some(yaml_rust2::Yaml::Array(events)) = yaml::get(fx, key) else {
            continue;
        };
        for (i, ev) in events.iter().enumerate() {
            let event = OwnedEvent::from_json(&yaml_to_json(ev));
            let got = !engine
                .process(
                    &event,
                    0,
                    &EventRef {
                        index: i as u64,
                        id: None,
                    },
                )
                .is_empty();
            assert_eq!(got, expected, "{name}: {key}[{i}] = {ev:?}");
        }
    }
}

#[test]
fn every_conformance_fixture_behaves_as_declared() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("fixture dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    files.sort();
    assert!(files.len() >= 20, "fixtures missing");
    for f in files {
        let text = std::fs::read_to_string(&f).expect("read fixture");
        check(&f.file_name().unwrap_or_default().to_string_lossy(), &text);
    }
}
