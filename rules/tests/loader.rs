//! `rules check` and `rules test` library functions, on fixture files.

use std::path::{Path, PathBuf};

use logward_rules::{check_paths, test_events};

fn dir(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/loader")
        .join(p)
}

fn check(paths: &[&str], expected_lines: &[&str], exit: i32) {
    let paths: Vec<PathBuf> = paths.iter().map(|p| dir(p)).collect();
    let report = check_paths(&paths);
    let text = report.to_string();
    for want in expected_lines {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    assert_eq!(report.exit_code(), exit, "{text}");
}

#[test]
fn check_accepts_valid_rules_and_names_file_rule_and_construct_of_errors() {
    check(&["rules"], &["checked 1 files, 2 documents: 0 errors"], 0);
    check(
        &["bad"],
        &[
            "broken.yml: rule 'broken modifier': detection.sel.cmd|contians: unknown modifier 'contians'",
            "broken.yml: rule 'broken condition': detection.condition: condition: unexpected end",
            "yaml_error.yml: rule '<document>': invalid YAML",
            "3 errors",
        ],
        1,
    );
}

#[test]
fn test_prints_one_line_per_detection_with_logsource_routing() {
    let events = std::fs::read(dir("events.jsonl")).expect("events");
    let lines: Vec<String> = test_events(&dir("rules"), &events, false)
        .expect("runs")
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        lines,
        [
            r#"{"rule_id":"0f0e0000-0000-4000-8000-000000000002","rule_title":"SSH brute force","level":"high","event_indices":[0,3],"group":{"host":"web1"}}"#,
        ]
    );
    // Without logsource routing the flat event on line 4 also matches; the base rule is
    // correlation-only (generate: false) so only correlations print.
    let lines = test_events(&dir("rules"), &events, true).expect("runs");
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].event_indices.as_deref(), Some(&[0, 3][..]));
}

#[test]
fn test_reports_bad_event_lines() {
    let err = test_events(&dir("rules"), b"{\"a\":1}\nnot json\n", true).expect_err("bad line");
    assert!(err.to_string().starts_with("events line 2:"), "{err}");
}
