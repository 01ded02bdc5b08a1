//! Proves the harness works end to end: `--quick` runs every workload against the real
//! binaries and reports a figure for each. It asserts nothing about speed.

#[test]
fn quick_run_reports_every_workload() {
    let report = logward_bench::run_all(&logward_bench::Opts::new(true)).expect("quick run");
    for w in ["W1", "W2", "W3", "W4", "W5", "W6"] {
        assert!(
            report.rows.iter().any(|r| r.workload == w),
            "{w} missing:\n{}",
            report.markdown()
        );
    }
    assert!(
        report
            .rows
            .iter()
            .all(|r| r.value.is_finite() && r.value >= 0.0),
        "{}",
        report.markdown()
    );
    let doc = logward_bench::report::document(&report);
    assert!(doc.contains("| W2 | server ingest"), "{doc}");
    eprintln!("{}", report.markdown());
}
