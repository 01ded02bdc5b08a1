//! The all-in-one command: `logward-server --with-collector` runs a collector for this
//! host inside the server. It says which sources it found and where it looked, keeps
//! running without Docker, and picks Docker logs up once they appear.

use std::time::Duration;

use logward_e2e::{DockerLine, FakeContainer, Server, docker_time};

const WAIT: Duration = Duration::from_secs(60);

fn config_file(dir: &std::path::Path, docker_dir: &std::path::Path) -> String {
    let path = dir.join("logward.toml");
    let text = format!(
        "[collector]\ndocker_dir = {:?}\nhostname = \"aio-host\"\nno_journald = true\n",
        docker_dir.display().to_string()
    );
    std::fs::write(&path, text).expect("write config");
    path.display().to_string()
}

#[test]
fn without_docker_it_starts_says_so_and_picks_docker_up_later() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let docker_dir = tmp.path().join("containers-not-yet");
    let config = config_file(tmp.path(), &docker_dir);
    let data_dir = tmp.path().join("data");
    let mut server = Server::start(
        &data_dir,
        &["--with-collector".into(), "--config".into(), config],
    )
    .expect("server starts");

    let line = server
        .proc
        .wait_for_log("docker source unavailable", Duration::from_secs(20))
        .expect("says docker is missing");
    assert!(
        line.contains("containers-not-yet"),
        "names where it looked: {line}"
    );
    server
        .proc
        .wait_for_log("journald source", Duration::from_secs(5))
        .expect("speaks of journald");
    let (status, body) = server.get("/healthz").expect("healthz");
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));

    // Docker appears: its logs flow with no restart.
    let id = format!("{:064x}", 0xfeed_u64);
    let c = FakeContainer::create(
        &docker_dir,
        &id,
        "late",
        "busybox:1.36",
        &[("tier", "late")],
    )
    .expect("container");
    let times: Vec<String> = (0..20).map(|i| docker_time(1_714_557_600, i)).collect();
    let msgs: Vec<String> = (0..20).map(|i| format!("late line {i}")).collect();
    let lines: Vec<DockerLine<'_>> = msgs
        .iter()
        .zip(&times)
        .map(|(m, t)| DockerLine {
            log: m,
            stream: "stdout",
            time: t,
            partial: false,
        })
        .collect();
    c.append(&lines).expect("append");
    server
        .wait_for_total("container.name:late", 20, WAIT)
        .expect("lines arrive");
    let hits = server
        .all_events("container.labels.tier:late")
        .expect("search");
    assert_eq!(hits.len(), 20);
    assert!(hits.iter().all(|h| h["host"] == "aio-host"));
    assert_eq!(hits[0]["message"], "late line 0");
    assert_eq!(hits[19]["message"], "late line 19");

    // The collector's state lives under the data dir.
    assert!(
        data_dir.join("collector").join("state.json").exists(),
        "embedded collector state in <data-dir>/collector"
    );
    let status = server
        .proc
        .terminate(Duration::from_secs(30))
        .expect("stops on SIGTERM");
    assert!(status.success(), "exit status {status}");
}
