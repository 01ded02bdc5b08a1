//! A container's security posture from its `hostconfig.json` (plus the user and AppArmor
//! profile from `config.v2.json`); pure, no I/O.
//!
//! Every item becomes a `posture.*` field of the container's posture audit event; which
//! hardening practice (P1, P2, P5, P6, P8) each serves is in docs/COLLECTOR.md.

use serde::Deserialize;

/// What the container-hardening practices care about in one container's configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Posture {
    /// Runs `--privileged`.
    pub privileged: bool,
    /// `root`, or the configured user (`1000`, `app:app`, …).
    pub user: String,
    /// `--read-only`.
    pub readonly_rootfs: bool,
    /// `--cap-add`, as Docker stores them.
    pub cap_add: Vec<String>,
    /// `--cap-drop`, as Docker stores them.
    pub cap_drop: Vec<String>,
    /// `--security-opt no-new-privileges`.
    pub no_new_privileges: bool,
    /// `default`, `unconfined` or `custom` (a profile given inline).
    pub seccomp: String,
    /// `default`, `unconfined`, or the profile name.
    pub apparmor: String,
    /// Memory limit in bytes, `none` when unlimited.
    pub memory_limit: String,
    /// Pids limit, `none` when unlimited.
    pub pids_limit: String,
    /// CPUs (`1.5`), or `quota/period` in microseconds, `none` when unlimited.
    pub cpu_limit: String,
    /// `bridge`, `host`, `none`, `container:<id>` or a network name.
    pub network_mode: String,
    /// `private`, `host` or `container:<id>`.
    pub pid_mode: String,
    /// `private`, `shareable`, `host`, `container:<id>`, …
    pub ipc_mode: String,
    /// Host paths mounted into the container, as `source:target`.
    pub host_mounts: Vec<String>,
    /// The Docker socket (or a directory holding it) is mounted.
    pub docker_socket_mounted: bool,
}

/// Why a `hostconfig.json` could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid hostconfig.json: {0}")]
pub struct PostureError(String);

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawHostConfig {
    #[serde(default)]
    privileged: bool,
    #[serde(default)]
    readonly_rootfs: bool,
    #[serde(default)]
    cap_add: Option<Vec<String>>,
    #[serde(default)]
    cap_drop: Option<Vec<String>>,
    #[serde(default)]
    security_opt: Option<Vec<String>>,
    #[serde(default)]
    memory: i64,
    #[serde(default)]
    nano_cpus: i64,
    #[serde(default)]
    cpu_quota: i64,
    #[serde(default)]
    cpu_period: i64,
    #[serde(default)]
    pids_limit: Option<i64>,
    #[serde(default)]
    network_mode: String,
    #[serde(default)]
    pid_mode: String,
    #[serde(default)]
    ipc_mode: String,
    #[serde(default)]
    binds: Option<Vec<String>>,
    #[serde(default)]
    mounts: Option<Vec<RawMount>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawMount {
    #[serde(default)]
    r#type: String,
    #[serde(default)]
    source: String,
    #[serde(default)]
    target: String,
}

/// Parses `hostconfig.json`; `user` and `apparmor_profile` come from `config.v2.json`
/// (`Config.User`, `AppArmorProfile`).
pub fn parse_host_config(
    bytes: &[u8],
    user: &str,
    apparmor_profile: &str,
) -> Result<Posture, PostureError> {
    let raw: RawHostConfig =
        serde_json::from_slice(bytes).map_err(|e| PostureError(e.to_string()))?;
    let mut posture = Posture {
        privileged: raw.privileged,
        user: match user {
            "" => "root".to_owned(),
            other => other.to_owned(),
        },
        readonly_rootfs: raw.readonly_rootfs,
        cap_add: raw.cap_add.unwrap_or_default(),
        cap_drop: raw.cap_drop.unwrap_or_default(),
        seccomp: "default".to_owned(),
        apparmor: match apparmor_profile {
            "" | "docker-default" => "default".to_owned(),
            other => other.to_owned(),
        },
        memory_limit: positive(raw.memory),
        pids_limit: positive(raw.pids_limit.unwrap_or(0)),
        cpu_limit: cpu_limit(raw.nano_cpus, raw.cpu_quota, raw.cpu_period),
        network_mode: match raw.network_mode.as_str() {
            "" | "default" => "bridge".to_owned(),
            other => other.to_owned(),
        },
        pid_mode: or_private(raw.pid_mode),
        ipc_mode: or_private(raw.ipc_mode),
        ..Posture::default()
    };
    // Docker runs privileged containers with neither seccomp nor AppArmor confinement.
    if posture.privileged {
        posture.seccomp = "unconfined".to_owned();
        posture.apparmor = "unconfined".to_owned();
    }
    for opt in raw.security_opt.unwrap_or_default() {
        let (name, value) = opt
            .split_once(['=', ':'])
            .map_or((opt.as_str(), ""), |(n, v)| (n, v));
        match name {
            "no-new-privileges" => posture.no_new_privileges = value != "false",
            "seccomp" if value == "unconfined" => posture.seccomp = value.to_owned(),
            "seccomp" if !posture.privileged => posture.seccomp = "custom".to_owned(),
            "apparmor" if !value.is_empty() => posture.apparmor = value.to_owned(),
            _ => {}
        }
    }
    let binds = raw
        .binds
        .unwrap_or_default()
        .into_iter()
        .filter_map(|bind| {
            let mut parts = bind.splitn(3, ':');
            let source = parts.next()?.to_owned();
            let target = parts.next().unwrap_or_default().to_owned();
            // Named volumes have no leading `/`.
            source.starts_with('/').then_some((source, target))
        });
    let mounts = raw
        .mounts
        .unwrap_or_default()
        .into_iter()
        .filter(|m| m.r#type == "bind")
        .map(|m| (m.source, m.target));
    for (source, target) in binds.chain(mounts) {
        posture.docker_socket_mounted |= exposes_docker_socket(&source);
        posture.host_mounts.push(format!("{source}:{target}"));
    }
    Ok(posture)
}

/// The socket itself, or a directory that holds it.
fn exposes_docker_socket(source: &str) -> bool {
    let source = source.trim_end_matches('/');
    source.ends_with("/docker.sock")
        || matches!(
            source,
            "" | "/var/run" | "/run" | "/var/run/docker" | "/run/docker"
        )
}

fn positive(value: i64) -> String {
    if value > 0 {
        value.to_string()
    } else {
        "none".to_owned()
    }
}

fn or_private(mode: String) -> String {
    if mode.is_empty() {
        "private".to_owned()
    } else {
        mode
    }
}

fn cpu_limit(nano_cpus: i64, quota: i64, period: i64) -> String {
    if nano_cpus > 0 {
        let whole = nano_cpus / 1_000_000_000;
        let frac = nano_cpus % 1_000_000_000;
        if frac == 0 {
            return whole.to_string();
        }
        let frac = format!("{frac:09}");
        return format!("{whole}.{}", frac.trim_end_matches('0'));
    }
    if quota > 0 {
        let period = if period > 0 { period } else { 100_000 };
        return format!("{quota}/{period}");
    }
    "none".to_owned()
}

impl Posture {
    /// The event fields, each under `posture.`; list items are multi-valued.
    pub fn fields(&self) -> Vec<(&'static str, Vec<String>)> {
        let one = |v: &str| vec![v.to_owned()];
        let flag = |b: bool| vec![b.to_string()];
        vec![
            ("posture.privileged", flag(self.privileged)),
            ("posture.user", one(&self.user)),
            ("posture.readonly_rootfs", flag(self.readonly_rootfs)),
            ("posture.cap_add", self.cap_add.clone()),
            ("posture.cap_drop", self.cap_drop.clone()),
            ("posture.no_new_privileges", flag(self.no_new_privileges)),
            ("posture.seccomp", one(&self.seccomp)),
            ("posture.apparmor", one(&self.apparmor)),
            ("posture.memory_limit", one(&self.memory_limit)),
            ("posture.pids_limit", one(&self.pids_limit)),
            ("posture.cpu_limit", one(&self.cpu_limit)),
            ("posture.network_mode", one(&self.network_mode)),
            ("posture.pid_mode", one(&self.pid_mode)),
            ("posture.ipc_mode", one(&self.ipc_mode)),
            ("posture.host_mounts", self.host_mounts.clone()),
            (
                "posture.docker_socket_mounted",
                flag(self.docker_socket_mounted),
            ),
        ]
    }

    /// One line a human can read: `privileged=true user=root …`.
    pub fn summary(&self) -> String {
        let list = |items: &[String]| {
            if items.is_empty() {
                "-".to_owned()
            } else {
                items.join(",")
            }
        };
        format!(
            "privileged={} user={} readonly_rootfs={} cap_add={} cap_drop={} \
             no_new_privileges={} seccomp={} apparmor={} memory={} pids={} cpus={} network={} \
             pid={} ipc={} host_mounts={} docker_socket={}",
            self.privileged,
            self.user,
            self.readonly_rootfs,
            list(&self.cap_add),
            list(&self.cap_drop),
            self.no_new_privileges,
            self.seccomp,
            self.apparmor,
            self.memory_limit,
            self.pids_limit,
            self.cpu_limit,
            self.network_mode,
            self.pid_mode,
            self.ipc_mode,
            list(&self.host_mounts),
            self.docker_socket_mounted,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &[u8], user: &str, apparmor: &str, expected: &str) {
        let posture = parse_host_config(input, user, apparmor).unwrap();
        assert_eq!(posture.summary(), expected);
    }

    #[test]
    fn privileged_fixture_reports_every_over_permission() {
        check(
            include_bytes!("../../tests/fixtures/hostconfig-privileged.json"),
            "",
            "",
            "privileged=true user=root readonly_rootfs=false cap_add=SYS_ADMIN,NET_ADMIN \
             cap_drop=MKNOD no_new_privileges=false seccomp=unconfined apparmor=unconfined \
             memory=none pids=none cpus=none network=host pid=host ipc=host \
             host_mounts=/var/run/docker.sock:/var/run/docker.sock,/srv/data:/data,/etc:/host/etc \
             docker_socket=true",
        );
    }

    #[test]
    fn hardened_fixture_reports_its_limits_and_drops() {
        check(
            include_bytes!("../../tests/fixtures/hostconfig-hardened.json"),
            "1000",
            "docker-default",
            "privileged=false user=1000 readonly_rootfs=true cap_add=- cap_drop=ALL \
             no_new_privileges=true seccomp=default apparmor=default memory=268435456 \
             pids=100 cpus=1.5 network=bridge pid=private ipc=private host_mounts=- \
             docker_socket=false",
        );
    }

    #[test]
    fn security_options_and_limits_in_their_forms() {
        let cases: &[(&str, &str)] = &[
            (r#"{}"#, "seccomp=default apparmor=default"),
            (
                r#"{"SecurityOpt":["seccomp:unconfined","apparmor:my-prof"]}"#,
                "seccomp=unconfined apparmor=my-prof",
            ),
            (
                r#"{"SecurityOpt":["seccomp={\"defaultAction\":\"SCMP_ACT_ALLOW\"}"]}"#,
                "seccomp=custom apparmor=default",
            ),
            (
                r#"{"SecurityOpt":["no-new-privileges:false"]}"#,
                "seccomp=default apparmor=default",
            ),
        ];
        for (json, expected) in cases {
            let summary = parse_host_config(json.as_bytes(), "", "")
                .unwrap()
                .summary();
            assert!(summary.contains(expected), "{json}: {summary}");
        }
        let cpu: &[(i64, i64, i64, &str)] = &[
            (0, 0, 0, "none"),
            (2_000_000_000, 0, 0, "2"),
            (500_000_000, 0, 0, "0.5"),
            (0, 50_000, 0, "50000/100000"),
            (0, 20_000, 50_000, "20000/50000"),
        ];
        for (nano, quota, period, expected) in cpu {
            assert_eq!(cpu_limit(*nano, *quota, *period), *expected);
        }
        assert!(parse_host_config(b"[1,2]", "", "").is_err());
        assert!(parse_host_config(b"{\"Privileged\":\"yes\"}", "", "").is_err());
    }
}
