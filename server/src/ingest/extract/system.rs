//! Built-in extractors for the host: dockerd daemon messages, kernel messages (OOM
//! kills, AppArmor / SELinux / seccomp denials, module loads) and nginx/apache access
//! lines in the common and combined formats.

use regex::Regex;

use super::{Out, push};

/// Compiled patterns of the host extractors.
pub struct System {
    api_call: Regex,
    oom: Regex,
    module: Regex,
    access: Regex,
}

fn re(p: &str) -> Regex {
    // The patterns are constants of this file, compiled by the tests.
    Regex::new(p).unwrap_or_else(|e| panic!("built-in pattern {p:?}: {e}"))
}

impl System {
    pub fn new() -> System {
        System {
            api_call: re(
                r"^Calling POST /(?:v[\d.]+/)?(?P<kind>containers|exec)/(?P<id>[^/\s]+)/(?P<op>exec|start|kill|stop|restart)\b",
            ),
            oom: re(
                r"(?:Out of memory|Memory cgroup out of memory): Kill(?:ed)? process (?P<pid>\d+) \((?P<comm>[^)]*)\)",
            ),
            module: re(
                r"^(?P<module>[\w-]+): (?:loading out-of-tree module taints kernel|module verification failed|module is from the staging directory|module license '[^']*' taints kernel)",
            ),
            access: re(
                r#"^(?P<ip>\S+) \S+ \S+ \[[^\]]+\] "(?P<method>[A-Z]+) (?P<path>\S+)[^"]*" (?P<status>\d{3}) (?P<bytes>\d+|-)(?: "(?P<referrer>[^"]*)" "(?P<ua>[^"]*)")?"#,
            ),
        }
    }

    /// dockerd lines: logfmt (`time=… level=… msg="…"`) with API calls, exec form data
    /// and containerd task events.
    pub fn dockerd(&self, m: &str, out: &mut Out) {
        let mut kv = Vec::new();
        super::generic::kv(m, true, &mut kv);
        let get = |k: &str| kv.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let Some(msg) = get("kv.msg") else { return };
        if let Some(c) = self.api_call.captures(msg) {
            let id = c.name("id").map_or("", |x| x.as_str());
            let event = match (
                c.name("kind").map(|x| x.as_str()),
                c.name("op").map(|x| x.as_str()),
            ) {
                (Some("containers"), Some("exec")) => "exec_create",
                (Some("exec"), Some("start")) => "exec_start",
                (Some("containers"), Some("start")) => "container_start",
                (Some("containers"), Some("kill")) => "container_kill",
                (Some("containers"), Some("stop")) => "container_stop",
                (Some("containers"), Some("restart")) => "container_restart",
                _ => return,
            };
            push(out, "dockerd.event", event);
            let field = if event == "exec_start" {
                "dockerd.exec_id"
            } else {
                "dockerd.container"
            };
            push(out, field, id);
            return;
        }
        if let Some(form) = msg.strip_prefix("form data: ") {
            if let Ok(serde_json::Value::Object(o)) = serde_json::from_str(form)
                && let Some(serde_json::Value::Array(cmd)) = o.get("Cmd")
                && o.contains_key("AttachStdin")
            {
                let words: Vec<&str> = cmd.iter().filter_map(|v| v.as_str()).collect();
                push(out, "dockerd.event", "exec_config");
                push(out, "dockerd.exec_cmd", &words.join(" "));
            }
            return;
        }
        if let Some(topic) = get("kv.topic") {
            let event = match topic {
                "/tasks/exec-added" => "exec_create",
                "/tasks/exec-started" => "exec_start",
                "/tasks/start" => "container_start",
                "/tasks/exit" => "container_die",
                "/tasks/oom" => "container_oom",
                _ => return,
            };
            push(out, "dockerd.event", event);
            if let Some(c) = get("kv.container").or(get("kv.id")) {
                push(out, "dockerd.container", c);
            }
        }
    }

    /// Kernel and audit lines.
    pub fn kernel(&self, m: &str, out: &mut Out) {
        if let Some(c) = self.oom.captures(m) {
            push(out, "kernel.event", "oom_kill");
            push(out, "kernel.pid", c.name("pid").map_or("", |x| x.as_str()));
            push(
                out,
                "kernel.process",
                c.name("comm").map_or("", |x| x.as_str()),
            );
            return;
        }
        let audit = |out: &mut Out, event: &str| {
            let mut kv = Vec::new();
            super::generic::kv(m, false, &mut kv);
            push(out, "kernel.event", event);
            for (k, v) in kv {
                let name = match k.as_str() {
                    "kv.comm" => "kernel.process",
                    "kv.pid" => "kernel.pid",
                    "kv.profile" => "kernel.profile",
                    "kv.operation" => "kernel.operation",
                    "kv.syscall" => "kernel.syscall",
                    "kv.name" if event == "module_load" => "kernel.module",
                    "kv.scontext" if event == "selinux_denied" => "kernel.profile",
                    _ => continue,
                };
                push(out, name, &v);
            }
        };
        if m.contains("apparmor=\"DENIED\"") {
            audit(out, "apparmor_denied");
        } else if m.contains("avc:  denied") || m.contains("avc: denied") {
            audit(out, "selinux_denied");
            if let Some(op) = m.split_once("{ ").and_then(|(_, r)| r.split_once(" }")) {
                push(out, "kernel.operation", op.0.trim());
            }
        } else if m.contains("type=1326 ") || m.contains("type=SECCOMP ") {
            audit(out, "seccomp");
        } else if m.contains("type=1330 ") || m.contains("type=KERN_MODULE ") {
            audit(out, "module_load");
        } else if let Some(c) = self.module.captures(m) {
            push(out, "kernel.event", "module_load");
            push(
                out,
                "kernel.module",
                c.name("module").map_or("", |x| x.as_str()),
            );
        }
    }

    /// nginx / apache access lines (common and combined log formats).
    pub fn http(&self, m: &str, out: &mut Out) {
        let Some(c) = self.access.captures(m) else {
            return;
        };
        for (cap, field) in [
            ("ip", "http.client_ip"),
            ("method", "http.method"),
            ("path", "http.path"),
            ("status", "http.status"),
            ("bytes", "http.bytes"),
            ("referrer", "http.referrer"),
            ("ua", "http.user_agent"),
        ] {
            if let Some(v) = c.name(cap).map(|x| x.as_str()).filter(|v| *v != "-") {
                push(out, field, v);
            }
        }
    }
}
