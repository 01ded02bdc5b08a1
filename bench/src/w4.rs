//! W4: the Sigma engine over the generated lines at 10, 100 and 1,000 rules, single-event
//! and with correlations, beside a naive evaluation that runs every rule's regular
//! expression on every event one by one.

use std::time::Instant;

use logward_rules::{Engine, EngineConfig, EventRef, EventView, OwnedEvent, documents_from_str};

use crate::Opts;
use crate::datagen::{Family, Generator};
use crate::report::Row;

const WORDS: &[&str] = &[
    "invalid user",
    "segfault",
    "authentication failure",
    "reverse shell",
    "nc -e",
    "chmod 777",
    "wget http",
    "/etc/shadow",
    "base64 -d",
    "xmrig",
    "docker.sock",
    "iptables -F",
    "useradd",
    "crontab",
    "masscan",
    "hydra",
];

/// `n` rules over the shipped log sources; every tenth is a correlation when asked.
fn rules(n: usize, correlations: bool) -> (String, Vec<regex::Regex>) {
    let mut yaml = String::new();
    let mut naive = Vec::new();
    for i in 0..n {
        let w = WORDS[i % WORDS.len()];
        let (logsource, detection) = match i % 4 {
            0 => (
                "{product: linux, service: sshd}",
                format!("  sel:\n    message|contains|all: ['{w}', 'from 10.{i}.']\n"),
            ),
            1 => (
                "{product: linux, service: sudo}",
                format!("  sel:\n    message|contains: 'COMMAND=/usr/bin/{w}{i}'\n"),
            ),
            2 => (
                "{product: docker}",
                format!("  sel:\n    message|contains: '{w} {i}'\n    stream: stderr\n"),
            ),
            _ => (
                "{product: docker}",
                format!("  sel:\n    message|re: '\"level\":\"error\".*{w}-{i}'\n"),
            ),
        };
        yaml.push_str(&format!(
            "title: bench rule {i}\nid: bench-{i}\nlevel: medium\nlogsource: {logsource}\ndetection:\n{detection}  condition: sel\n---\n"
        ));
        // An escaped word and a number always make a valid pattern.
        if let Ok(re) = regex::Regex::new(&format!("(?i){}.*{i}", regex::escape(w))) {
            naive.push(re);
        }
        if correlations && i % 10 == 0 {
            yaml.push_str(&format!(
                "title: bench burst {i}\nid: bench-burst-{i}\nlevel: high\ncorrelation:\n  type: event_count\n  rules: [bench-{i}]\n  group-by: [host]\n  timespan: 1m\n  condition: {{gte: 5}}\n---\n"
            ));
        }
    }
    (yaml, naive)
}

/// Events shaped as the server stores them: journald-like host lines and container output.
fn events(n: usize) -> Vec<OwnedEvent> {
    let mut g = Generator::new(4, 2000);
    (0..n)
        .map(|i| {
            let (family, line) = g.line();
            let ident = match family {
                Family::Sshd => Some("sshd"),
                Family::Sudo => Some("sudo"),
                Family::Cron => Some("CRON"),
                Family::Dockerd => Some("dockerd"),
                _ => None,
            };
            let mut e = OwnedEvent::new()
                .with("message", &line)
                .with("host", &format!("h{}", i % 8));
            match ident {
                Some(id) => {
                    e = e
                        .with("source", "journald")
                        .with("fields.SYSLOG_IDENTIFIER", id);
                }
                None => {
                    e = e
                        .with("source", "docker")
                        .with("stream", if i % 5 == 0 { "stderr" } else { "stdout" })
                        .with("container.name", "web");
                }
            }
            e
        })
        .collect()
}

/// W4 rows.
pub fn run(opts: &Opts) -> anyhow::Result<Vec<Row>> {
    let evs = events(opts.w4_events);
    let mut rows = Vec::new();
    for &n in &[10usize, 100, 1000] {
        for correlations in [false, true] {
            let (yaml, naive) = rules(n, correlations);
            let docs =
                documents_from_str(&yaml).map_err(|e| anyhow::anyhow!("bench rules: {e:?}"))?;
            let mut engine = Engine::new(&docs, &EngineConfig::default())
                .map_err(|e| anyhow::anyhow!("bench rules: {e:?}"))?;
            let started = Instant::now();
            let mut detections = 0usize;
            for (i, e) in evs.iter().enumerate() {
                let ts = 1_714_557_600_000_000_000 + i as i64 * 1_000_000;
                detections += engine
                    .process(
                        e,
                        ts,
                        &EventRef {
                            index: i as u64,
                            id: None,
                        },
                    )
                    .len();
            }
            let rate = evs.len() as f64 / started.elapsed().as_secs_f64();
            let kind = if correlations {
                "with correlations"
            } else {
                "single-event"
            };
            let mut row = Row::new("W4", format!("{n} rules, {kind}"), rate, "events/s")
                .target(match n {
                    100 => "≥ 200k/s per core",
                    1000 => "≥ 50k/s per core",
                    _ => "",
                })
                .note(format!("{detections} detections, one core"));
            if !correlations {
                let started = Instant::now();
                let mut hits = 0usize;
                for e in &evs {
                    let values = e.get("message");
                    let message = values.first().unwrap_or_default();
                    hits += naive.iter().filter(|r| r.is_match(message)).count();
                }
                std::hint::black_box(hits);
                row = row.baseline(
                    "naive: every rule's regex in turn",
                    evs.len() as f64 / started.elapsed().as_secs_f64(),
                );
            }
            rows.push(row);
        }
    }
    Ok(rows)
}
