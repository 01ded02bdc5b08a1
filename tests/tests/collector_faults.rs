//! Faults around the real collector, set-based: N numbered lines are written (and rotated the
//! way Docker rotates json-file logs), and what is searchable must be exactly those lines.
//! - `kill -9` of the collector at 24 seeded-random moments while lines are written and
//!   rotated: lost = 0 and duplicated = 0.
//! - The server stopped for a while and restarted: lost = 0.
//! - A garbage checkpoint: a loud warning and a re-read from the start, never a skip ahead.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use logward_e2e::docker::{Rng, free_port, server_on};
use logward_e2e::{DockerLine, FakeContainer, Proc, Server, collector_args, docker_time};

const BASE: i64 = 1_714_557_600;
const WAIT: Duration = Duration::from_secs(120);
/// Rotate the live file once it is this big (Docker's `max-size`).
const MAX_SIZE: u64 = 16 * 1024;

fn id() -> String {
    format!("{:064x}", 0xfa17_u64)
}

/// Appends lines `range` to the container's live log, rotating like Docker: `.N` → `.N+1`,
/// live → `.1`, then a new live file. Nothing is deleted, so nothing may be lost.
fn write_rotating(c: &FakeContainer, range: std::ops::Range<usize>) {
    let texts: Vec<(String, String)> = range
        .map(|i| (format!("fault line {i}"), docker_time(BASE, i as i64)))
        .collect();
    let lines: Vec<DockerLine<'_>> = texts
        .iter()
        .map(|(log, time)| DockerLine {
            log,
            stream: "stdout",
            time,
            partial: false,
        })
        .collect();
    c.append(&lines).expect("append");
    if std::fs::metadata(c.log_path()).map_or(0, |m| m.len()) > MAX_SIZE {
        let rotated = |n: u32| PathBuf::from(format!("{}.{n}", c.log_path().display()));
        let mut top = 1;
        while rotated(top).exists() {
            top += 1;
        }
        for n in (1..top).rev() {
            std::fs::rename(rotated(n), rotated(n + 1)).expect("rotate");
        }
        std::fs::rename(c.log_path(), rotated(1)).expect("rotate");
        std::fs::write(c.log_path(), "").expect("new log");
    }
}

fn collector(server: &Server, docker_dir: &Path, state_dir: &Path) -> Proc {
    let args = collector_args(&server.grpc_url(), docker_dir, state_dir, "faults");
    Proc::spawn("logward-collector", &args, &[]).expect("collector starts")
}

/// Counts of every `fault line N` message in the index.
fn counts(server: &Server) -> BTreeMap<usize, usize> {
    let mut counts = BTreeMap::new();
    for hit in server.all_events("source:docker").expect("search") {
        let message = hit["message"].as_str().unwrap_or_default();
        let n = message
            .strip_prefix("fault line ")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("unexpected message {message:?}"));
        *counts.entry(n).or_default() += 1;
    }
    counts
}

fn check_exactly_once(server: &Server, n: usize) {
    server
        .wait_for_total("source:docker", n as u64, WAIT)
        .expect("every line arrives");
    let counts = counts(server);
    let lost: Vec<usize> = (0..n).filter(|i| !counts.contains_key(i)).collect();
    let duplicated: Vec<(&usize, &usize)> = counts.iter().filter(|(_, c)| **c > 1).collect();
    assert!(lost.is_empty(), "lost {} lines: {lost:?}", lost.len());
    assert!(duplicated.is_empty(), "duplicated: {duplicated:?}");
    assert_eq!(counts.len(), n);
}

#[test]
fn kill_9_at_random_moments_loses_and_duplicates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let docker = tmp.path().join("containers");
    let state = tmp.path().join("state");
    let server = Server::start(&tmp.path().join("data"), &[]).expect("server");
    let c = FakeContainer::create(&docker, &id(), "faulty", "app:1", &[]).unwrap();
    std::fs::write(c.log_path(), "").unwrap();

    const KILLS: usize = 24;
    const PER_ROUND: usize = 500;
    let mut rng = Rng::new(0x5eed_1234);
    let mut next = 0;
    for round in 0..KILLS {
        let mut proc = collector(&server, &docker, &state);
        // Write while it runs, in small chunks, then kill it at a random moment.
        let chunks = rng.range(2, 10) as usize;
        for _ in 0..chunks {
            let end = next + PER_ROUND / chunks;
            write_rotating(&c, next..end);
            next = end;
            std::thread::sleep(Duration::from_millis(rng.range(5, 60)));
        }
        std::thread::sleep(Duration::from_millis(rng.range(0, 300)));
        proc.kill9();
        // Sometimes lines arrive while no collector runs at all.
        if round % 3 == 0 {
            write_rotating(&c, next..next + 50);
            next += 50;
        }
    }
    let _last = collector(&server, &docker, &state);
    check_exactly_once(&server, next);
}

#[test]
fn server_down_for_a_while_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let docker = tmp.path().join("containers");
    let data = tmp.path().join("data");
    let port = free_port().unwrap();
    let mut server = server_on(&data, port).expect("server");
    let c = FakeContainer::create(&docker, &id(), "faulty", "app:1", &[]).unwrap();
    std::fs::write(c.log_path(), "").unwrap();
    let mut collector = collector(&server, &docker, &tmp.path().join("state"));

    for chunk in 0..10 {
        write_rotating(&c, chunk * 200..(chunk + 1) * 200);
    }
    server
        .wait_for_total("source:docker", 500, WAIT)
        .expect("some lines arrive");
    server.proc.terminate(Duration::from_secs(30)).unwrap();

    // The files are the buffer: they keep growing and rotating while the server is away.
    for chunk in 10..40 {
        write_rotating(&c, chunk * 200..(chunk + 1) * 200);
        std::thread::sleep(Duration::from_millis(50));
    }
    server = server_on(&data, port).expect("server restarts");
    check_exactly_once(&server, 40 * 200);
    collector.terminate(Duration::from_secs(30)).unwrap();
}

#[test]
fn garbage_checkpoint_is_loud_and_everything_is_read_again() {
    let tmp = tempfile::tempdir().unwrap();
    let docker = tmp.path().join("containers");
    let state = tmp.path().join("state");
    let server = Server::start(&tmp.path().join("data"), &[]).expect("server");
    let c = FakeContainer::create(&docker, &id(), "faulty", "app:1", &[]).unwrap();
    for chunk in 0..5 {
        write_rotating(&c, chunk * 200..(chunk + 1) * 200);
    }
    let mut first = collector(&server, &docker, &state);
    check_exactly_once(&server, 1000);
    first.terminate(Duration::from_secs(30)).unwrap();

    std::fs::write(state.join("state.json"), b"\x00{\"version\": garbage").unwrap();
    let mut second = collector(&server, &docker, &state);
    second
        .wait_for_log("collector state is corrupt", Duration::from_secs(30))
        .expect("a loud warning");
    // A new identity re-reads from the start: every line twice, none skipped.
    server
        .wait_for_total("source:docker", 2000, WAIT)
        .expect("everything is read again");
    let counts = counts(&server);
    assert!((0..1000).all(|i| counts.get(&i) == Some(&2)), "{counts:?}");
    second.terminate(Duration::from_secs(30)).unwrap();
}
