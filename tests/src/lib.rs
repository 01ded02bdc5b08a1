//! Helpers for the end-to-end tests: start the real `logward-server` and
//! `logward-collector` binaries on free ports with temp dirs, write Docker json-file
//! logs in the real on-disk layout, and query the HTTP API.

pub mod docker;
pub mod grpc;
pub mod hardened;
pub mod journal;
pub mod sinks;
pub mod tls;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;

/// Path of a workspace binary next to the test executable (`target/<profile>/<name>`).
/// `LOGWARD_BIN_DIR` overrides the directory. Under cargo, the binaries are brought up
/// to date first, so `cargo test -p logward-e2e` never drives stale binaries.
pub fn bin_path(name: &str) -> PathBuf {
    static BUILT: std::sync::Once = std::sync::Once::new();
    let dir = match (BIN_DIR.get(), std::env::var_os("LOGWARD_BIN_DIR")) {
        (Some(dir), _) => dir.clone(),
        (None, Some(dir)) => PathBuf::from(dir),
        (None, None) => {
            BUILT.call_once(build_binaries);
            let exe = std::env::current_exe().expect("test executable path");
            // target/<profile>/deps/<test> -> target/<profile>
            exe.parent()
                .and_then(Path::parent)
                .expect("target dir")
                .to_path_buf()
        }
    };
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing; `cargo test --workspace` builds it (or run `cargo build --workspace --bins`)",
        path.display()
    );
    path
}

static BIN_DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Makes [`bin_path`] look in `dir` (and build nothing); for harnesses such as the
/// benchmarks, whose binaries sit next to their own executable.
pub fn use_bin_dir(dir: PathBuf) {
    let _ = BIN_DIR.set(dir);
}

/// Builds the workspace's binaries in the profile of this test executable.
/// `cargo test --no-run` resolves features exactly as the surrounding `cargo test
/// --workspace` did, so there it is a no-op; after a narrower `cargo test -p
/// logward-e2e` it brings the binaries up to date.
fn build_binaries() {
    if std::env::var_os("LOGWARD_BIN_DIR").is_some() {
        return;
    }
    let Some(cargo) = std::env::var_os("CARGO") else {
        return;
    };
    let exe = std::env::current_exe().expect("test executable path");
    let release = exe.components().any(|c| c.as_os_str() == "release");
    let mut cmd = Command::new(cargo);
    cmd.args(["test", "--workspace", "--no-run", "--quiet"]);
    if release {
        cmd.arg("--release");
    }
    let status = cmd.status().expect("cargo runs");
    assert!(status.success(), "building the binaries failed: {status}");
}

/// A running binary whose stderr is collected line by line.
pub struct Proc {
    pub child: Child,
    pub name: &'static str,
    log: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    /// Starts `bin` with `args`; logs go to a buffer shown when a test fails.
    pub fn spawn(
        name: &'static str,
        args: &[String],
        env: &[(&str, &str)],
    ) -> anyhow::Result<Proc> {
        let mut cmd = Command::new(bin_path(name));
        cmd.args(args)
            .env("NO_COLOR", "1")
            .env(
                "RUST_LOG",
                std::env::var("LOGWARD_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        let stderr = child.stderr.take().context("stderr")?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if std::env::var_os("LOGWARD_TEST_ECHO").is_some() {
                    eprintln!("[{name}] {line}");
                }
                sink.lock().expect("log lock").push(line);
            }
        });
        Ok(Proc { child, name, log })
    }

    /// Every line the process logged so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().expect("log lock").clone()
    }

    /// Waits for a log line containing `needle` and returns it.
    pub fn wait_for_log(&mut self, needle: &str, timeout: Duration) -> anyhow::Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self.log().into_iter().find(|l| l.contains(needle)) {
                return Ok(line);
            }
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{} exited with {status} before logging {needle:?}:\n{}",
                    self.name,
                    self.log().join("\n")
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not log {needle:?} in {timeout:?}:\n{}",
                    self.name,
                    self.log().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then waits for a clean exit.
    pub fn terminate(&mut self, timeout: Duration) -> anyhow::Result<std::process::ExitStatus> {
        let pid = self.child.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .context("kill -TERM")?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                bail!(
                    "{} did not stop within {timeout:?} of SIGTERM:\n{}",
                    self.name,
                    self.log().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL (`kill -9`).
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("---- {} log ----\n{}", self.name, self.log().join("\n"));
        }
    }
}

/// A running `logward-server` on ephemeral loopback ports.
pub struct Server {
    pub proc: Proc,
    pub grpc: String,
    pub http: String,
}

impl Server {
    /// Starts the server with `--data-dir data_dir` on port 0 and reads back its ports.
    pub fn start(data_dir: &Path, extra: &[String]) -> anyhow::Result<Server> {
        Server::start_at(data_dir, "127.0.0.1:0", extra)
    }

    /// Starts the server with its gRPC listener on `grpc_addr` (e.g. a Docker network
    /// gateway, port 0) and HTTP on loopback port 0, and reads back its ports.
    pub fn start_at(data_dir: &Path, grpc_addr: &str, extra: &[String]) -> anyhow::Result<Server> {
        let mut args = vec![
            "--data-dir".to_owned(),
            data_dir.display().to_string(),
            "--grpc-addr".to_owned(),
            grpc_addr.to_owned(),
            "--http-addr".to_owned(),
            "127.0.0.1:0".to_owned(),
        ];
        args.extend_from_slice(extra);
        let mut proc = Proc::spawn("logward-server", &args, &[])?;
        let line = proc.wait_for_log("logward-server listening", Duration::from_secs(30))?;
        let grpc = field(&line, "grpc").context("grpc address in log")?;
        let http = field(&line, "http").context("http address in log")?;
        Ok(Server { proc, grpc, http })
    }

    /// Starts the server with `config` (TOML text) written to `server.toml` beside
    /// `data_dir`.
    pub fn start_with_config(data_dir: &Path, config: &str) -> anyhow::Result<Server> {
        let dir = data_dir.parent().context("data dir has a parent")?;
        let path = dir.join("server.toml");
        std::fs::write(&path, config).with_context(|| format!("write {}", path.display()))?;
        Server::start(
            data_dir,
            &["--config".to_owned(), path.display().to_string()],
        )
    }

    /// The URL a collector uses to reach this server.
    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.grpc)
    }

    /// The URL a collector uses to reach this server over TLS.
    pub fn grpc_tls_url(&self) -> String {
        format!("https://{}", self.grpc)
    }

    /// The server's peak resident memory so far, in KiB (`VmHWM`; Linux only).
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.proc.child.id())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
    }

    /// GET on the HTTP API; returns status and JSON body (or the body as a string).
    pub fn get(&self, path_and_query: &str) -> anyhow::Result<(u16, Value)> {
        let url = format!("http://{}{}", self.http, path_and_query);
        let response = reqwest::blocking::get(&url).with_context(|| format!("GET {url}"))?;
        let status = response.status().as_u16();
        let text = response.text()?;
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((status, body))
    }

    /// Runs a search with the given query-string pairs and expects a 200.
    pub fn search(&self, params: &[(&str, &str)]) -> anyhow::Result<Value> {
        let qs: String = params
            .iter()
            .map(|(k, v)| format!("{k}={}", encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let (status, body) = self.get(&format!("/api/v1/search?{qs}"))?;
        if status != 200 {
            bail!("search {qs} answered {status}: {body}");
        }
        Ok(body)
    }

    /// Every event matching `q`, in ascending time order, following cursors.
    pub fn all_events(&self, q: &str) -> anyhow::Result<Vec<Value>> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut params = vec![("q", q), ("order", "asc"), ("limit", "1000")];
            if let Some(c) = &cursor {
                params.push(("cursor", c.as_str()));
            }
            let body = self.search(&params)?;
            out.extend(body["hits"].as_array().cloned().unwrap_or_default());
            match body["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return Ok(out),
            }
        }
    }

    /// Polls until `q` matches at least `n` events; returns the final total.
    pub fn wait_for_total(&self, q: &str, n: u64, timeout: Duration) -> anyhow::Result<u64> {
        let deadline = Instant::now() + timeout;
        loop {
            let total = self.search(&[("q", q), ("limit", "0")])?["total"]
                .as_u64()
                .unwrap_or(0);
            if total >= n {
                return Ok(total);
            }
            if Instant::now() > deadline {
                bail!("only {total} of {n} events matching {q:?} after {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The flags of a collector that ships `docker_dir` to `server_url` under `hostname`
/// (journald off), keeping its state in `state_dir`.
pub fn collector_args(
    server_url: &str,
    docker_dir: &Path,
    state_dir: &Path,
    hostname: &str,
) -> Vec<String> {
    vec![
        "--server".to_owned(),
        server_url.to_owned(),
        "--docker-dir".to_owned(),
        docker_dir.display().to_string(),
        "--state-dir".to_owned(),
        state_dir.display().to_string(),
        "--hostname".to_owned(),
        hostname.to_owned(),
        "--no-journald".to_owned(),
    ]
}

/// Reads `key=value` from a tracing log line.
fn field(line: &str, key: &str) -> Option<String> {
    let pat = format!("{key}=");
    let start = line.find(&pat)? + pat.len();
    Some(
        line[start..]
            .split_whitespace()
            .next()?
            .trim_matches('"')
            .to_owned(),
    )
}

/// Percent-encodes a query-string value.
pub fn encode(v: &str) -> String {
    let mut out = String::new();
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One container in the real json-file layout: `<dir>/<id>/<id>-json.log` and
/// `<dir>/<id>/config.v2.json`.
pub struct FakeContainer {
    pub id: String,
    pub dir: PathBuf,
}

impl FakeContainer {
    /// Creates the container directory and its `config.v2.json`.
    pub fn create(
        docker_dir: &Path,
        id: &str,
        name: &str,
        image: &str,
        labels: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let dir = docker_dir.join(id);
        std::fs::create_dir_all(&dir)?;
        let labels: serde_json::Map<String, Value> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Value::from(*v)))
            .collect();
        let config = serde_json::json!({
            "StreamConfig": {},
            "State": {"Running": true, "Pid": 4242, "StartedAt": "2024-05-01T10:00:00.000000000Z"},
            "ID": id,
            "Created": "2024-05-01T09:59:59.123456789Z",
            "Managed": false,
            "Path": "/bin/sh",
            "Args": ["-c", "run"],
            "Config": {
                "Hostname": &id[..12],
                "User": "",
                "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                "Cmd": ["/bin/sh", "-c", "run"],
                "Image": image,
                "Labels": labels,
            },
            "Image": "sha256:4b1fa3b7d2a5b0d0e0f5c3f0d0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3",
            "Name": format!("/{name}"),
            "Driver": "overlay2",
            "LogPath": dir.join(format!("{id}-json.log")).display().to_string(),
        });
        std::fs::write(dir.join("config.v2.json"), serde_json::to_vec(&config)?)?;
        Ok(FakeContainer {
            id: id.to_owned(),
            dir,
        })
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join(format!("{}-json.log", self.id))
    }

    /// Appends lines as Docker's json-file driver writes them.
    pub fn append(&self, lines: &[DockerLine<'_>]) -> anyhow::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())?;
        let mut buf = Vec::new();
        for l in lines {
            let log = if l.partial {
                l.log.to_owned()
            } else {
                format!("{}\n", l.log)
            };
            serde_json::to_writer(
                &mut buf,
                &serde_json::json!({"log": log, "stream": l.stream, "time": l.time}),
            )?;
            buf.push(b'\n');
        }
        f.write_all(&buf)?;
        Ok(())
    }
}

/// One line to write, as Docker would.
pub struct DockerLine<'a> {
    pub log: &'a str,
    pub stream: &'a str,
    /// RFC 3339 with nanoseconds, as Docker writes it.
    pub time: &'a str,
    /// A 16 KiB chunk of a longer line: written without its trailing `\n`.
    pub partial: bool,
}

/// RFC 3339 with nine fractional digits for `base + i` milliseconds, as Docker writes.
pub fn docker_time(base_unix_secs: i64, millis: i64) -> String {
    let nanos = i128::from(base_unix_secs) * 1_000_000_000 + i128::from(millis) * 1_000_000 + 123;
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(nanos).expect("valid time");
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:9]Z"
    );
    t.format(&fmt).expect("formats")
}

/// True under CI, where missing real parts fail instead of skipping.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}
