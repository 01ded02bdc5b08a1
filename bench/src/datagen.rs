//! The seeded data generator: realistic log lines of several families with a realistic
//! size mix, attack sequences mixed in at a given rate, written as Docker json-file
//! layout or JSON lines. The same seed gives the same bytes.

use std::io::Write;
use std::path::{Path, PathBuf};

/// A small, fast, seeded PRNG (xorshift64*); good enough for test data.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    pub fn chance(&mut self, per_million: u64) -> bool {
        self.below(1_000_000) < per_million
    }
}

fn ip(r: &mut Rng) -> String {
    format!(
        "{}.{}.{}.{}",
        10 + r.below(200),
        r.below(256),
        r.below(256),
        1 + r.below(254)
    )
}

const USERS: &[&str] = &[
    "alice",
    "bob",
    "carol",
    "deploy",
    "ubuntu",
    "git",
    "postgres",
    "svc-backup",
];
const BAD_USERS: &[&str] = &[
    "admin", "test", "oracle", "pi", "guest", "user1", "support", "ftpuser",
];
const PATHS: &[&str] = &[
    "/",
    "/api/v1/orders",
    "/api/v1/users/42",
    "/static/app.js",
    "/healthz",
    "/login",
    "/metrics",
    "/img/logo.png",
];
const AGENTS: &[&str] = &[
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
    "curl/8.5.0",
    "kube-probe/1.29",
    "Go-http-client/1.1",
];
const COMMANDS: &[&str] = &[
    "/usr/bin/systemctl restart nginx",
    "/usr/bin/apt-get update",
    "/bin/cat /var/log/syslog",
    "/usr/bin/docker ps",
];

/// The families of lines, each with its share (per thousand) of the mix.
const MIX: &[(Family, u64)] = &[
    (Family::Nginx, 300),
    (Family::JsonApp, 250),
    (Family::Sshd, 120),
    (Family::Sudo, 50),
    (Family::Cron, 60),
    (Family::Dockerd, 60),
    (Family::Audit, 80),
    (Family::StackTrace, 75),
    (Family::Huge, 5),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Nginx,
    JsonApp,
    Sshd,
    Sudo,
    Cron,
    Dockerd,
    Audit,
    StackTrace,
    Huge,
}

/// Generates lines.
pub struct Generator {
    rng: Rng,
    /// Attack lines per million lines.
    pub attack_rate_ppm: u64,
    seq: u64,
}

impl Generator {
    pub fn new(seed: u64, attack_rate_ppm: u64) -> Self {
        Generator {
            rng: Rng::new(seed),
            attack_rate_ppm,
            seq: 0,
        }
    }

    /// The next line (without newline) and its family.
    pub fn line(&mut self) -> (Family, String) {
        self.seq += 1;
        if self.attack_rate_ppm > 0 && self.rng.chance(self.attack_rate_ppm) {
            return (Family::Sshd, self.attack());
        }
        let mut roll = self.rng.below(1000);
        let family = MIX
            .iter()
            .find(|(_, share)| {
                if roll < *share {
                    true
                } else {
                    roll -= share;
                    false
                }
            })
            .map_or(Family::Nginx, |(f, _)| *f);
        (family, self.family_line(family))
    }

    fn family_line(&mut self, family: Family) -> String {
        let n = self.seq;
        let r = &mut self.rng;
        match family {
            Family::Nginx => {
                let ip = ip(r);
                let status = *r.pick(&[200, 200, 200, 200, 304, 404, 500, 301]);
                format!(
                    "{ip} - - [01/May/2024:10:{:02}:{:02} +0000] \"GET {} HTTP/1.1\" {status} {} \"-\" \"{}\"",
                    r.below(60),
                    r.below(60),
                    r.pick(PATHS),
                    r.below(50_000),
                    r.pick(AGENTS)
                )
            }
            Family::JsonApp => {
                let pad = "x".repeat(r.below(1500) as usize);
                format!(
                    "{{\"ts\":\"2024-05-01T10:00:00.{:06}Z\",\"level\":\"{}\",\"msg\":\"request handled\",\"req_id\":\"{:016x}\",\"user\":\"{}\",\"latency_ms\":{},\"route\":\"{}\",\"detail\":\"{pad}\"}}",
                    n % 1_000_000,
                    r.pick(&["info", "info", "info", "warn", "error", "debug"]),
                    r.next_u64(),
                    r.pick(USERS),
                    r.below(900),
                    r.pick(PATHS)
                )
            }
            Family::Sshd => {
                let ip = ip(r);
                let pid = 1000 + r.below(60000);
                match r.below(4) {
                    0 => format!(
                        "sshd[{pid}]: Accepted publickey for {} from {ip} port {} ssh2: ED25519 SHA256:{:x}",
                        r.pick(USERS),
                        1024 + r.below(60000),
                        r.next_u64()
                    ),
                    1 => format!(
                        "sshd[{pid}]: Failed password for {} from {ip} port {} ssh2",
                        r.pick(USERS),
                        1024 + r.below(60000)
                    ),
                    2 => format!(
                        "sshd[{pid}]: Invalid user {} from {ip} port {}",
                        r.pick(BAD_USERS),
                        1024 + r.below(60000)
                    ),
                    _ => format!(
                        "sshd[{pid}]: Disconnected from user {} {ip} port {}",
                        r.pick(USERS),
                        1024 + r.below(60000)
                    ),
                }
            }
            Family::Sudo => format!(
                "sudo: {} : TTY=pts/{} ; PWD=/home/{} ; USER=root ; COMMAND={}",
                r.pick(USERS),
                r.below(5),
                r.pick(USERS),
                r.pick(COMMANDS)
            ),
            Family::Cron => format!(
                "CRON[{}]: ({}) CMD (/usr/local/bin/backup --incremental >/dev/null 2>&1)",
                1000 + r.below(60000),
                r.pick(USERS)
            ),
            Family::Dockerd => format!(
                "time=\"2024-05-01T10:00:00.{:09}Z\" level=info msg=\"{}\" container={:064x}",
                r.below(1_000_000_000),
                r.pick(&[
                    "Container started",
                    "Container died",
                    "exec created",
                    "image pulled",
                    "network connected"
                ]),
                r.next_u64()
            ),
            Family::Audit => format!(
                "type=SYSCALL msg=audit(1714557600.{:03}:{n}): arch=c000003e syscall=59 success=yes exit=0 a0=55d1 a1=55d2 a2=55d3 a3=0 items=2 ppid={} pid={} auid=1000 uid=0 gid=0 euid=0 comm=\"{}\" exe=\"/usr/bin/{}\" key=\"exec\"",
                r.below(1000),
                1 + r.below(30000),
                1 + r.below(30000),
                r.pick(&["bash", "curl", "python3", "apt"]),
                r.pick(&["bash", "curl", "python3", "apt"])
            ),
            Family::StackTrace => format!(
                "    at com.example.orders.OrderService.process(OrderService.java:{})\n\tat java.base/java.lang.Thread.run(Thread.java:1583) caused by java.io.IOException: Connection reset by peer",
                r.below(900)
            ),
            Family::Huge => {
                let size = 20_000 + r.below(80_000) as usize;
                let mut s = String::with_capacity(size);
                s.push_str("dump: ");
                while s.len() < size {
                    s.push_str("lorem ipsum dolor sit amet ");
                }
                s
            }
        }
    }

    /// One line of an attack: brute force from a fixed address.
    fn attack(&mut self) -> String {
        let user = *self.rng.pick(BAD_USERS);
        format!(
            "sshd[4242]: Failed password for invalid user {user} from 203.0.113.66 port {} ssh2",
            40000 + self.rng.below(20000)
        )
    }
}

/// Docker's json-file encoding of one line, split into 16 KiB chunks like Docker does.
pub fn docker_json_lines(out: &mut Vec<u8>, line: &str, stream: &str, time: &str) {
    const CHUNK: usize = 16 * 1024;
    let mut rest = line;
    loop {
        let mut cut = rest.len().min(CHUNK);
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        let (head, tail) = rest.split_at(cut);
        let log = if tail.is_empty() {
            format!("{head}\n")
        } else {
            head.to_owned()
        };
        let _ = serde_json::to_writer(
            &mut *out,
            &serde_json::json!({"log": log, "stream": stream, "time": time}),
        );
        out.push(b'\n');
        if tail.is_empty() {
            break;
        }
        rest = tail;
    }
}

/// A generated Docker directory.
#[derive(Debug, Clone)]
pub struct DockerData {
    pub dir: PathBuf,
    pub files: usize,
    /// Lines as written by applications (a split line counts once).
    pub events: u64,
    /// Bytes of log text (the `log` values), the "raw log" of MiB/s figures.
    pub raw_bytes: u64,
    /// Bytes on disk of the json-file logs.
    pub file_bytes: u64,
}

/// Writes `files` containers with about `bytes_per_file` of raw log each, in Docker's
/// on-disk layout with `config.v2.json`.
pub fn write_docker_dir(
    dir: &Path,
    files: usize,
    bytes_per_file: u64,
    seed: u64,
) -> std::io::Result<DockerData> {
    let mut data = DockerData {
        dir: dir.to_owned(),
        files,
        events: 0,
        raw_bytes: 0,
        file_bytes: 0,
    };
    for f in 0..files {
        let id = format!("{:064x}", 0xbe7c_0000_u64 + f as u64);
        let cdir = dir.join(&id);
        std::fs::create_dir_all(&cdir)?;
        let config = serde_json::json!({
            "ID": id,
            "Name": format!("/bench-{f}"),
            "Image": "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "Created": "2024-05-01T09:00:00.000000000Z",
            "Config": {"Image": format!("bench/app-{}:1.0", f % 5), "Labels": {"bench": "true", "shard": format!("{}", f % 4)}},
        });
        std::fs::write(cdir.join("config.v2.json"), serde_json::to_vec(&config)?)?;
        let mut g = Generator::new(seed ^ (f as u64 + 1), 0);
        let mut out = Vec::with_capacity(bytes_per_file as usize + 4096);
        let mut raw = 0u64;
        let mut ms = 0u64;
        while raw < bytes_per_file {
            let (_, line) = g.line();
            ms += 1;
            let time = format!(
                "2024-05-01T10:{:02}:{:02}.{:03}000000Z",
                (ms / 60_000) % 60,
                (ms / 1000) % 60,
                ms % 1000
            );
            docker_json_lines(
                &mut out,
                &line,
                if ms.is_multiple_of(7) {
                    "stderr"
                } else {
                    "stdout"
                },
                &time,
            );
            raw += line.len() as u64 + 1;
            data.events += 1;
        }
        data.raw_bytes += raw;
        data.file_bytes += out.len() as u64;
        std::fs::File::create(cdir.join(format!("{id}-json.log")))?.write_all(&out)?;
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_lines_and_a_realistic_mix() {
        let mut a = Generator::new(7, 1000);
        let mut b = Generator::new(7, 1000);
        let mut families = std::collections::HashMap::new();
        let mut sizes = Vec::new();
        for _ in 0..20_000 {
            let (fa, la) = a.line();
            let (_, lb) = b.line();
            assert_eq!(la, lb);
            *families.entry(format!("{fa:?}")).or_insert(0) += 1;
            sizes.push(la.len());
        }
        assert!(families.len() >= 8, "{families:?}");
        sizes.sort_unstable();
        assert!(
            sizes[sizes.len() / 2] > 80 && sizes[sizes.len() / 2] < 2048,
            "median {}",
            sizes[sizes.len() / 2]
        );
        assert!(*sizes.last().unwrap_or(&0) >= 20_000, "some huge lines");
    }

    #[test]
    fn long_lines_are_split_into_docker_chunks() {
        let mut out = Vec::new();
        let line = "é".repeat(20_000);
        docker_json_lines(&mut out, &line, "stdout", "2024-05-01T10:00:00.000000000Z");
        let chunks: Vec<serde_json::Value> = out
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).expect("json"))
            .collect();
        assert_eq!(chunks.len(), 3);
        let joined: String = chunks
            .iter()
            .map(|c| c["log"].as_str().unwrap_or_default())
            .collect();
        assert_eq!(joined, format!("{line}\n"));
        assert!(
            !chunks[0]["log"]
                .as_str()
                .unwrap_or_default()
                .ends_with('\n')
        );
    }
}
