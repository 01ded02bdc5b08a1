//! The real Docker engine: containers built from a local busybox image write numbered lines
//! fast through `--log-driver json-file` with `max-size=64k,max-file=3`, so their logs rotate
//! many times. The collector reads the real `/var/lib/docker/containers`, filtered to this
//! test's containers by a unique label. Every line must be searchable exactly once with the
//! right container name, image and labels, and the posture events of a privileged and a
//! hardened container must say so. Skips without an engine; fails under `CI=true`.

use std::collections::BTreeMap;
use std::time::Duration;

use logward_e2e::docker::{Containers, IMAGE, engine_available, ensure_image};
use logward_e2e::{Proc, Server};
use serde_json::Value;

const LINES: usize = 6000;
const WAIT: Duration = Duration::from_secs(180);

/// Numbered lines, 200 at a time with a pause, about 10,000 lines a second at most.
fn script(name: &str) -> String {
    format!(
        "i=0; while [ $i -lt {LINES} ]; do i=$((i+1)); \
         echo \"{name} line $i padding-to-make-the-lines-a-little-longer\"; \
         if [ $((i % 200)) -eq 0 ]; then usleep 20000; fi; done"
    )
}

fn field<'a>(hit: &'a Value, name: &str) -> Vec<&'a str> {
    match &hit["fields"][name] {
        Value::String(s) => vec![s.as_str()],
        Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

#[test]
fn real_engine_rotating_logs_arrive_exactly_once_with_posture() {
    if !engine_available("docker_engine") {
        return;
    }
    ensure_image().expect("test image");
    let run_id = format!("{:x}", std::process::id() as u64 * 7919 + now_secs());
    let label = format!("logward.test={run_id}");
    let names = [
        format!("lw-plain-{run_id}"),
        format!("lw-priv-{run_id}"),
        format!("lw-hard-{run_id}"),
    ];

    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("data"), &[]).expect("server");
    let config = tmp.path().join("collector.toml");
    std::fs::write(
        &config,
        format!("include_labels = [\"logward.test={run_id}\"]\n"),
    )
    .unwrap();
    let args = [
        "--config".to_owned(),
        config.display().to_string(),
        "--server".to_owned(),
        server.grpc_url(),
        "--docker-dir".to_owned(),
        "/var/lib/docker/containers".to_owned(),
        "--state-dir".to_owned(),
        tmp.path().join("state").display().to_string(),
        "--hostname".to_owned(),
        "engine".to_owned(),
        "--no-journald".to_owned(),
    ];
    let _collector = Proc::spawn("logward-collector", &args, &[]).expect("collector");

    let mut containers = Containers::default();
    let log_opts = [
        "--log-driver",
        "json-file",
        "--log-opt",
        "max-size=64k",
        "--log-opt",
        "max-file=3",
        "--label",
        &label,
        "--label",
        "app=engine-test",
    ];
    let extra: [&[&str]; 3] = [
        &[],
        &["--privileged"],
        &[
            "--read-only",
            "--cap-drop",
            "ALL",
            "--user",
            "1000",
            "--security-opt",
            "no-new-privileges",
        ],
    ];
    let mut writers = Vec::new();
    for (name, extra) in names.iter().zip(extra) {
        let mut args: Vec<&str> = log_opts.to_vec();
        args.extend_from_slice(extra);
        match containers.run(name, &args, &script(name)) {
            Ok(_) => writers.push(name.clone()),
            // A nested engine may refuse `--privileged` at start; the container exists all the
            // same (created, never started), and its posture must still be reported.
            Err(error)
                if extra.contains(&"--privileged")
                    && format!("{error:#}").contains("operation not permitted") =>
            {
                eprintln!(
                    "note: this engine cannot start privileged containers; checking its posture only: {error:#}"
                );
            }
            Err(error) => panic!("docker run: {error:#}"),
        }
    }
    containers
        .wait_all(Duration::from_secs(120))
        .expect("containers finish");

    let query = format!("source:docker AND container.labels.logward.test:{run_id}");
    server
        .wait_for_total(&query, (LINES * writers.len()) as u64, WAIT)
        .expect("every line arrives");
    let mut seen: BTreeMap<(String, usize), usize> = BTreeMap::new();
    for hit in server.all_events(&query).expect("search") {
        let container = &hit["container"];
        let name = container["name"].as_str().unwrap_or_default().to_owned();
        assert!(writers.contains(&name), "unexpected container {name}");
        assert_eq!(container["image"], IMAGE, "{hit}");
        assert_eq!(container["labels"]["app"], "engine-test", "{hit}");
        assert_eq!(
            container["labels"]["logward.test"],
            run_id.as_str(),
            "{hit}"
        );
        let message = hit["message"].as_str().unwrap_or_default();
        let n: usize = message
            .strip_prefix(&format!("{name} line "))
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("unexpected message {message:?}"));
        *seen.entry((name, n)).or_default() += 1;
    }
    for name in &writers {
        let lost: Vec<usize> = (1..=LINES)
            .filter(|i| !seen.contains_key(&(name.clone(), *i)))
            .collect();
        assert!(
            lost.is_empty(),
            "{name} lost {} lines: {lost:?}",
            lost.len()
        );
    }
    let duplicated: Vec<_> = seen.iter().filter(|(_, c)| **c > 1).collect();
    assert!(duplicated.is_empty(), "duplicated: {duplicated:?}");

    let posture_query = format!(
        "source:collector AND container.labels.logward.test:{run_id} AND fields.logward.event:posture"
    );
    server
        .wait_for_total(&posture_query, names.len() as u64, WAIT)
        .expect("posture events");
    let postures: BTreeMap<String, Value> = server
        .all_events(&posture_query)
        .expect("search")
        .into_iter()
        .map(|hit| {
            (
                hit["container"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                hit,
            )
        })
        .collect();
    let privileged = &postures[&names[1]];
    assert_eq!(
        field(privileged, "posture.privileged"),
        ["true"],
        "{privileged}"
    );
    assert_eq!(field(privileged, "posture.seccomp"), ["unconfined"]);
    assert!(
        privileged["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with(&format!(
                "container posture: {} ({IMAGE}) privileged=true user=root",
                names[1]
            )),
        "{privileged}"
    );
    let hardened = &postures[&names[2]];
    assert_eq!(
        field(hardened, "posture.privileged"),
        ["false"],
        "{hardened}"
    );
    assert_eq!(field(hardened, "posture.readonly_rootfs"), ["true"]);
    assert_eq!(field(hardened, "posture.cap_drop"), ["ALL"]);
    assert_eq!(field(hardened, "posture.user"), ["1000"]);
    assert_eq!(field(hardened, "posture.no_new_privileges"), ["true"]);
    let plain = &postures[&names[0]];
    assert_eq!(field(plain, "posture.user"), ["root"], "{plain}");
    assert_eq!(field(plain, "posture.readonly_rootfs"), ["false"]);
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
