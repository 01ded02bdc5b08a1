//! The hardened deployment on the real Docker engine (issue 9, docs/DEPLOY.md): the
//! collector image is built from this build's binary by `deploy/docker/build-image.sh`
//! (`FROM scratch`, no registry) and run with every hardening flag of
//! `deploy/docker/run-collector.sh`: read-only root, all capabilities dropped and none
//! added, no-new-privileges, memory, pids and CPU limits, its own network, Docker's log
//! directory mounted read-only and its checkpoints on a volume. It must ship a busybox
//! workload's lines over TLS, with a collector token, to a `logward-server` on the host,
//! with container name, image and the token's identity; its
//! process must really hold no capability; its own posture event must raise no detection
//! of the built-in rules (tuned by `deploy/rules/`), while the unhardened workload's does.
//! Skips without an engine; fails under `CI=true`.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use logward_e2e::docker::{IMAGE, engine_available, ensure_image};
use logward_e2e::hardened::{Cleanup, docker, inspect, proc_security, repo_root};
use logward_e2e::tls::Ca;
use logward_e2e::{Server, bin_path};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(40);
const MARKERS: usize = 5;
/// "Container without a memory or pids limit": the workload runs without limits.
const NO_LIMITS_RULE: &str = "16707fea-f472-46b9-997a-19f487e1e12b";

/// Both tests import the busybox image; one at a time, so that no untagged copy is left.
fn busybox_image() {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    ensure_image().expect("busybox test image");
}

fn run_id() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    format!("{:x}", now ^ (u64::from(std::process::id()) << 40))
}

/// The hardening flags of `deploy/docker/run-collector.sh`, for a collector on `network`.
fn collector_flags(network: &str, labels: &[&str], volume: &str, config: &str) -> Vec<String> {
    let mut flags: Vec<String> = [
        "--network",
        network,
        "--user",
        "0:0",
        "--read-only",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "--memory",
        "256m",
        "--memory-swap",
        "256m",
        "--pids-limit",
        "64",
        "--cpus",
        "1",
        "--log-opt",
        "max-size=10m",
        "--mount",
        "type=bind,src=/var/lib/docker/containers,dst=/var/lib/docker/containers,readonly",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    flags.push("--mount".into());
    flags.push(format!(
        "type=volume,src={volume},dst=/var/lib/logward-collector"
    ));
    flags.push("--mount".into());
    flags.push(format!(
        "type=bind,src={config},dst=/etc/logward/collector.toml,readonly"
    ));
    for label in labels {
        flags.push("--label".into());
        flags.push((*label).to_owned());
    }
    flags
}

/// A collector token from `logward-server token new`, and the config entry it prints.
fn new_token(identity: &str) -> (String, String) {
    let out = std::process::Command::new(bin_path("logward-server"))
        .args(["token", "new", "--identity", identity])
        .output()
        .expect("logward-server token new");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let token = text
        .lines()
        .find_map(|l| l.strip_prefix("token: "))
        .unwrap_or_else(|| panic!("no token in {text}"))
        .trim()
        .to_owned();
    let entry = &text[text.find("[[security.collectors]]").expect("config entry")..];
    (token, entry.to_owned())
}

fn str_field<'a>(hit: &'a Value, name: &str) -> Vec<&'a str> {
    match &hit["fields"][name] {
        Value::String(s) => vec![s.as_str()],
        Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// Ids of every event (any source) of container `name`.
fn event_ids(server: &Server, name: &str) -> BTreeSet<String> {
    server
        .all_events(&format!("container.name:\"{name}\""))
        .expect("search")
        .iter()
        .filter_map(|hit| hit["id"].as_str().map(str::to_owned))
        .collect()
}

fn detections(server: &Server) -> Vec<Value> {
    let (status, body) = server
        .get("/api/v1/detections?limit=10000")
        .expect("detections");
    assert_eq!(status, 200, "{body}");
    body["detections"].as_array().cloned().unwrap_or_default()
}

fn detections_of(all: &[Value], ids: &BTreeSet<String>) -> Vec<Value> {
    all.iter()
        .filter(|d| {
            d["event_ids"].as_array().is_some_and(|e| {
                e.iter()
                    .any(|id| id.as_str().is_some_and(|i| ids.contains(i)))
            })
        })
        .cloned()
        .collect()
}

#[test]
fn hardened_collector_container_ships_logs_and_passes_its_own_posture_rules() {
    if !engine_available("hardened_container") {
        return;
    }
    busybox_image();
    let run = run_id();
    let test_label = format!("logward.test={run}");
    let mut docker_objects = Cleanup::default();
    let tmp = tempfile::tempdir().unwrap();

    // The server runs on the host and listens on the gateway of the test's own network,
    // where the collector container reaches it.
    let network = format!("lw-hard-{run}");
    let gateway = docker_objects
        .network(&network, &test_label)
        .expect("network");
    // TLS with a test CA (the collector verifies the certificate's name `localhost`
    // through `--server-name`, as the gateway address is not in it) and a collector token
    // made by `logward-server token new`, stored hashed in the config.
    let certs = tmp.path().join("certs");
    std::fs::create_dir(&certs).unwrap();
    let ca = Ca::new("logward hardened test CA").expect("CA");
    let ca_file = ca.write(&certs, "ca.pem").unwrap();
    let (cert, key) = ca.server().unwrap().write(&certs, "server").unwrap();
    let identity = format!("hardened-{run}");
    let (token, collector_entry) = new_token(&identity);
    let token_file = certs.join("collector.token");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    let server_config = tmp.path().join("server.toml");
    std::fs::write(
        &server_config,
        format!(
            "[security.tls]\ncert = \"{}\"\nkey = \"{}\"\nhttp = false\n\n{collector_entry}",
            cert.display(),
            key.display()
        ),
    )
    .unwrap();
    let rules_dir = repo_root().join("deploy/rules");
    let server = Server::start_at(
        &tmp.path().join("data"),
        &format!("{gateway}:0"),
        &[
            "--config".to_owned(),
            server_config.display().to_string(),
            "--rules-dir".to_owned(),
            rules_dir.display().to_string(),
        ],
    )
    .expect("server");
    let (status, rules) = server.get("/api/v1/rules").expect("rules");
    assert_eq!(status, 200);
    assert_eq!(rules["errors"], Value::Array(vec![]), "deploy/rules loads");

    // The workload: the unhardened busybox image, printing marker lines.
    let work = format!("lw-hard-work-{run}");
    let script = format!(
        "i=0; while [ $i -lt {MARKERS} ]; do i=$((i+1)); echo \"hardened-marker {run} line $i\"; done; sleep 120"
    );
    docker_objects
        .run(
            &work,
            &[
                "--network".into(),
                network.clone(),
                "--label".into(),
                test_label.clone(),
                IMAGE.into(),
                "sh".into(),
                "-c".into(),
                script,
            ],
        )
        .expect("workload");

    // The collector image, from this build's binary, with no registry.
    let image = format!("logward-collector:test-{run}");
    docker_objects
        .build_image(
            "collector",
            &bin_path("logward-collector"),
            &image,
            &test_label,
        )
        .expect("collector image builds with deploy/docker/build-image.sh");
    let config = tmp.path().join("collector.toml");
    std::fs::write(
        &config,
        format!("include_labels = [\"logward.test={run}\"]\ninclude_self = true\n"),
    )
    .unwrap();
    let collector = format!("lw-hard-collector-{run}");
    let volume = docker_objects.volume(&format!("lw-hard-state-{run}"));
    let mut args = collector_flags(
        &network,
        &[&test_label, "logward.component=collector"],
        &volume,
        &config.display().to_string(),
    );
    for (file, target) in [
        (&ca_file, "/etc/logward/ca.pem"),
        (&token_file, "/etc/logward/collector.token"),
    ] {
        args.push("--mount".to_owned());
        args.push(format!(
            "type=bind,src={},dst={target},readonly",
            file.display()
        ));
    }
    args.extend([
        "--env".to_owned(),
        format!("LOGWARD_HOSTNAME=hardened-{run}"),
        "--env".to_owned(),
        "LOGWARD_TOKEN_FILE=/etc/logward/collector.token".to_owned(),
        image.clone(),
        "--config".to_owned(),
        "/etc/logward/collector.toml".to_owned(),
        "--server".to_owned(),
        format!("https://{}", server.grpc),
        "--ca-file".to_owned(),
        "/etc/logward/ca.pem".to_owned(),
        "--server-name".to_owned(),
        "localhost".to_owned(),
    ]);
    docker_objects
        .run(&collector, &args)
        .expect("hardened collector starts");

    // 1. The workload's lines arrive, with its container name and image.
    let markers = format!("container.name:\"{work}\" AND source:docker");
    server
        .wait_for_total(&markers, MARKERS as u64, WAIT)
        .expect("the workload's lines arrive through the hardened collector");
    let hits = server.all_events(&markers).expect("search");
    let messages: Vec<&str> = hits
        .iter()
        .map(|h| h["message"].as_str().unwrap_or_default())
        .collect();
    let expected: Vec<String> = (1..=MARKERS)
        .map(|i| format!("hardened-marker {run} line {i}"))
        .collect();
    assert_eq!(messages, expected);
    for hit in &hits {
        assert_eq!(hit["container"]["image"], IMAGE, "{hit}");
        assert_eq!(hit["host"], identity.as_str(), "{hit}");
        assert_eq!(
            str_field(hit, "logward.identity"),
            [identity.as_str()],
            "the server stamps the token's identity: {hit}"
        );
    }

    // 2. The collector's posture as Docker records it, and as its process really is.
    let info = inspect(&collector).expect("inspect collector");
    let host = &info["HostConfig"];
    assert_eq!(
        info["Config"]["User"], "0:0",
        "explicit uid 0 (see DEPLOY.md)"
    );
    assert_eq!(host["ReadonlyRootfs"], true);
    assert_eq!(host["Privileged"], false);
    assert_eq!(host["CapDrop"], serde_json::json!(["ALL"]));
    assert!(
        host["CapAdd"].is_null() || host["CapAdd"] == serde_json::json!([]),
        "{}",
        host["CapAdd"]
    );
    assert_eq!(
        host["SecurityOpt"],
        serde_json::json!(["no-new-privileges"])
    );
    assert_eq!(host["Memory"], 256 * 1024 * 1024);
    assert_eq!(host["PidsLimit"], 64);
    assert_eq!(host["NanoCpus"], 1_000_000_000_u64);
    assert_eq!(host["NetworkMode"], network.as_str());
    assert!(host["PidMode"].as_str().unwrap_or_default().is_empty());
    assert_ne!(host["IpcMode"], "host");
    let mounts = info["Mounts"].as_array().cloned().unwrap_or_default();
    for mount in &mounts {
        let source = mount["Source"].as_str().unwrap_or_default();
        assert!(!source.ends_with("docker.sock"), "{mount}");
        if mount["Destination"] == "/var/lib/logward-collector" {
            assert_eq!(mount["Type"], "volume", "checkpoints on a volume: {mount}");
        } else {
            assert_eq!(mount["RW"], false, "read-only mount: {mount}");
        }
    }
    let proc = proc_security(&collector).expect("/proc status of the collector");
    assert_eq!(
        proc.caps, [0; 5],
        "no capability in any set (inh, prm, eff, bnd, amb): {proc:?}"
    );
    assert!(proc.no_new_privs, "{proc:?}");
    assert_eq!(proc.seccomp, 2, "Docker's default seccomp filter: {proc:?}");

    // 3. Its own posture event arrives and raises no detection; the unhardened workload's
    //    does, which proves the posture rules ran.
    let posture = |name: &str| {
        format!("source:collector AND fields.logward.event:posture AND container.name:\"{name}\"")
    };
    server
        .wait_for_total(&posture(&collector), 1, WAIT)
        .expect("the collector reports its own posture");
    server
        .wait_for_total(&posture(&work), 1, WAIT)
        .expect("the workload's posture");
    let own = &server.all_events(&posture(&collector)).expect("search")[0];
    assert_eq!(str_field(own, "posture.user"), ["0:0"], "{own}");
    assert_eq!(str_field(own, "posture.readonly_rootfs"), ["true"], "{own}");
    assert_eq!(str_field(own, "posture.cap_drop"), ["ALL"], "{own}");
    assert!(str_field(own, "posture.cap_add").is_empty(), "{own}");
    assert_eq!(str_field(own, "posture.no_new_privileges"), ["true"]);
    assert_eq!(str_field(own, "posture.memory_limit"), ["268435456"]);
    assert_eq!(str_field(own, "posture.pids_limit"), ["64"]);
    assert_eq!(str_field(own, "posture.seccomp"), ["default"]);
    assert_eq!(str_field(own, "posture.docker_socket_mounted"), ["false"]);

    let work_ids = event_ids(&server, &work);
    let deadline = Instant::now() + WAIT;
    loop {
        let found = detections_of(&detections(&server), &work_ids);
        if found.iter().any(|d| d["rule_id"] == NO_LIMITS_RULE) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the unhardened workload raised no 'no memory or pids limit' detection: {found:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Detection runs before the commit that makes an event searchable, so every event of
    // the collector found here has been through the rules.
    let own_ids = event_ids(&server, &collector);
    assert!(!own_ids.is_empty());
    let own_detections = detections_of(&detections(&server), &own_ids);
    assert!(
        own_detections.is_empty(),
        "logward's own collector container raised detections: {own_detections:#?}"
    );

    // 4. A graceful stop keeps the checkpoints on the volume (not in the read-only root).
    docker(&["stop", "--time", "20", &collector]).expect("docker stop");
    let exit = docker(&["inspect", "--format", "{{.State.ExitCode}}", &collector]).unwrap();
    assert_eq!(exit, "0", "the collector stops cleanly on SIGTERM");
    let state = docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--read-only",
        "--cap-drop",
        "ALL",
        "--mount",
        &format!("type=volume,src={volume},dst=/state,readonly"),
        IMAGE,
        "cat",
        "/state/state.json",
    ])
    .expect("state.json on the volume");
    assert!(state.contains("collector_id"), "{state}");
}

/// Why the collector image runs as uid 0 without capabilities rather than as a non-root
/// user (docs/DEPLOY.md): under `no-new-privileges`, no non-root user can list Docker's
/// `0710 root:root` directories, even with `--cap-add DAC_READ_SEARCH`, because Docker
/// puts added capabilities only in the bounding set of a non-root process. If this test
/// fails, the engine grants them (ambient capabilities): switch the collector to
/// `--user 10001:0 --cap-add DAC_READ_SEARCH` and update DEPLOY.md.
#[test]
fn non_root_cannot_read_docker_logs_under_no_new_privileges() {
    if !engine_available("hardened_container") {
        return;
    }
    busybox_image();
    let dir = "/var/lib/docker/containers";
    for extra in [&[][..], &["--cap-add", "DAC_READ_SEARCH"][..]] {
        let mut args = vec![
            "run",
            "--rm",
            "--network",
            "none",
            "--user",
            "10001:0",
            "--read-only",
            "--cap-drop",
            "ALL",
            "--security-opt",
            "no-new-privileges",
        ];
        args.extend_from_slice(extra);
        let mount = format!("type=bind,src={dir},dst={dir},readonly");
        args.extend(["--mount", &mount, IMAGE, "sh", "-c"]);
        let script = format!(
            "busybox grep CapEff /proc/self/status; busybox ls {dir} >/dev/null && echo LISTED"
        );
        args.push(&script);
        let out = std::process::Command::new("docker")
            .args(&args)
            .output()
            .expect("docker run");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stdout.contains("LISTED") && stderr.contains("Permission denied"),
            "a non-root user listed {dir} with {extra:?}: the engine grants added \
             capabilities to non-root users; see this test's doc comment\n{stdout}\n{stderr}"
        );
        assert!(
            stdout.contains("CapEff:\t0000000000000000"),
            "{extra:?}: {stdout}"
        );
    }
}
