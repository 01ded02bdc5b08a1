//! The extraction stage: fills structured fields (`fields.ssh.user`, `fields.http.status`,
//! …) from messages before rules run and before indexing. Each extractor is selected by
//! a predicate on the event (source, journald identifier / unit / transport, container
//! image or name); built-ins cover sshd, sudo, su, the account tools, dockerd, the
//! kernel, nginx/apache access lines and JSON-in-message; `[[extract]]` entries of the
//! config add regex, key=value, logfmt or JSON extractors. Pure: no I/O.

mod auth;
pub mod generic;
mod system;

use std::collections::HashMap;

use logward_proto::{Event as WireEvent, Source, Values};
use regex::Regex;
use serde::{Deserialize, Serialize};

/// Extracted (field, value) pairs, in order.
pub type Out = Vec<(String, String)>;

/// Longest message the extractors look at; longer messages are left as they are.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

fn push(out: &mut Out, k: &str, v: &str) {
    if !v.is_empty() {
        out.push((k.to_owned(), v.to_owned()));
    }
}

/// A predicate on the event. Every key given must hold; a list holds when any of its
/// entries does (`*` is a wildcard). An empty predicate selects every event.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct When {
    /// The event's source: `docker`, `journald` or `collector`.
    pub source: Option<String>,
    /// journald `SYSLOG_IDENTIFIER` (or `_COMM` when there is none).
    pub identifier: Vec<String>,
    /// journald `_SYSTEMD_UNIT`.
    pub unit: Vec<String>,
    /// journald `_TRANSPORT` (`kernel`, `audit`, `syslog`, `journal`, `stdout`).
    pub transport: Vec<String>,
    /// The container's image (`nginx*`, `*/postgres:*`).
    pub image: Vec<String>,
    /// The container's name.
    pub container: Vec<String>,
}

/// The kind of a configured extractor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A regular expression with named captures; `__` in a name stands for a dot.
    Regex,
    /// `key=value` pairs, into `kv.<key>`.
    Kv,
    /// A JSON object message, into `json.<key>`.
    Json,
    /// logfmt, into `kv.<key>`.
    Logfmt,
}

/// One `[[extract]]` entry of the config file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtractConfig {
    /// The extractor's name; events it fills get `logward.parser = <name>`.
    pub name: String,
    /// Which events it runs on.
    #[serde(default)]
    pub when: When,
    /// What it does.
    pub kind: Kind,
    /// The regular expression of `kind = "regex"`.
    #[serde(default)]
    pub pattern: Option<String>,
}

impl ExtractConfig {
    /// Checks the entry (the pattern compiles) without touching the system.
    pub fn validate(&self) -> Result<(), String> {
        let name = &self.name;
        if name.is_empty() || name.len() > 64 {
            return Err("[[extract]] name must be 1 to 64 characters long".into());
        }
        match (self.kind, &self.pattern) {
            (Kind::Regex, None) => Err(format!(
                "[[extract]] '{name}': kind = \"regex\" needs a pattern"
            )),
            (Kind::Regex, Some(p)) => {
                let re =
                    Regex::new(p).map_err(|e| format!("[[extract]] '{name}': pattern: {e}"))?;
                if re.capture_names().flatten().next().is_none() {
                    return Err(format!(
                        "[[extract]] '{name}': pattern has no named capture (?P<field>…)"
                    ));
                }
                Ok(())
            }
            (_, Some(_)) => Err(format!(
                "[[extract]] '{name}': pattern is only for kind = \"regex\""
            )),
            (_, None) => Ok(()),
        }
    }
}

enum Run {
    Regex(Regex),
    Kv,
    Logfmt,
    Json,
    Sshd,
    Sudo,
    Su,
    Accounts,
    Dockerd,
    Kernel,
    Http,
}

struct Extractor {
    name: String,
    when: Vec<When>,
    run: Run,
}

/// The compiled extractors: configured ones first, then the built-ins.
pub struct Extractors {
    list: Vec<Extractor>,
    auth: auth::Auth,
    system: system::System,
}

fn w(source: Option<&str>, key: fn(&mut When) -> &mut Vec<String>, vals: &[&str]) -> When {
    let mut when = When {
        source: source.map(str::to_owned),
        ..When::default()
    };
    *key(&mut when) = vals.iter().map(|s| (*s).to_owned()).collect();
    when
}

fn builtins() -> Vec<Extractor> {
    let jd = Some("journald");
    let dk = Some("docker");
    fn ident(w: &mut When) -> &mut Vec<String> {
        &mut w.identifier
    }
    fn unit(w: &mut When) -> &mut Vec<String> {
        &mut w.unit
    }
    fn image(w: &mut When) -> &mut Vec<String> {
        &mut w.image
    }
    fn transport(w: &mut When) -> &mut Vec<String> {
        &mut w.transport
    }
    let b = |name: &str, when: Vec<When>, run: Run| Extractor {
        name: name.to_owned(),
        when,
        run,
    };
    vec![
        b(
            "sshd",
            vec![
                w(jd, ident, &["sshd", "sshd-session"]),
                w(jd, unit, &["ssh.service", "sshd.service", "sshd@*"]),
                w(dk, image, &["*ssh*"]),
            ],
            Run::Sshd,
        ),
        b("sudo", vec![w(jd, ident, &["sudo"])], Run::Sudo),
        b("su", vec![w(jd, ident, &["su"])], Run::Su),
        b(
            "accounts",
            vec![w(
                jd,
                ident,
                &[
                    "useradd", "groupadd", "usermod", "userdel", "groupmod", "passwd", "chpasswd",
                    "gpasswd",
                ],
            )],
            Run::Accounts,
        ),
        b(
            "dockerd",
            vec![w(jd, ident, &["dockerd"]), w(jd, unit, &["docker.service"])],
            Run::Dockerd,
        ),
        b(
            "kernel",
            vec![
                w(jd, transport, &["kernel", "audit"]),
                w(jd, ident, &["kernel", "audit"]),
            ],
            Run::Kernel,
        ),
        b(
            "http_access",
            vec![
                w(jd, ident, &["nginx", "apache2", "httpd"]),
                w(dk, image, &["*nginx*", "*httpd*", "*apache*"]),
            ],
            Run::Http,
        ),
        b("json", vec![w(dk, ident, &[])], Run::Json),
    ]
}

/// `*` matches any run of characters; everything else is literal.
pub fn glob(pattern: &str, s: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = s.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for p in middle {
        match rest.find(p) {
            Some(i) => rest = &rest[i + p.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

fn first<'a>(fields: &'a HashMap<String, Values>, key: &str) -> Option<&'a str> {
    fields
        .get(key)
        .and_then(|v| v.values.first())
        .map(String::as_str)
}

fn any(pats: &[String], value: Option<&str>) -> bool {
    pats.is_empty() || value.is_some_and(|v| pats.iter().any(|p| glob(p, v)))
}

impl When {
    /// Whether the event satisfies the predicate.
    pub fn holds(&self, ev: &WireEvent) -> bool {
        if let Some(src) = &self.source {
            let name = match Source::try_from(ev.source) {
                Ok(s) => crate::store::schema::source_name(s),
                Err(_) => "",
            };
            if name != src {
                return false;
            }
        }
        let f = &ev.fields;
        let c = ev.container.as_ref();
        any(
            &self.identifier,
            first(f, "SYSLOG_IDENTIFIER").or_else(|| first(f, "_COMM")),
        ) && any(&self.unit, first(f, "_SYSTEMD_UNIT"))
            && any(&self.transport, first(f, "_TRANSPORT"))
            && any(&self.image, c.map(|c| c.image.as_str()))
            && any(&self.container, c.map(|c| c.name.as_str()))
    }
}

impl Extractors {
    /// The built-ins after the configured extractors (which must be valid).
    pub fn new(configured: &[ExtractConfig]) -> Result<Extractors, String> {
        let mut list = Vec::new();
        for x in configured {
            x.validate()?;
            let run = match (x.kind, &x.pattern) {
                (Kind::Regex, Some(p)) => Run::Regex(Regex::new(p).map_err(|e| e.to_string())?),
                (Kind::Kv, _) => Run::Kv,
                (Kind::Logfmt, _) => Run::Logfmt,
                (Kind::Json, _) => Run::Json,
                (Kind::Regex, None) => return Err(format!("[[extract]] '{}': no pattern", x.name)),
            };
            list.push(Extractor {
                name: x.name.clone(),
                when: vec![x.when.clone()],
                run,
            });
        }
        list.extend(builtins());
        Ok(Extractors {
            list,
            auth: auth::Auth::new(),
            system: system::System::new(),
        })
    }

    /// The fields every selected extractor finds in the message, with `logward.parser`.
    pub fn extract(&self, ev: &WireEvent) -> Out {
        let mut out = Out::new();
        if ev.message.len() > MAX_MESSAGE_BYTES {
            return out;
        }
        let msg = String::from_utf8_lossy(&ev.message);
        let m = msg.trim_end();
        let mut parsers = Vec::new();
        for x in &self.list {
            if !x.when.iter().any(|w| w.holds(ev)) {
                continue;
            }
            let before = out.len();
            match &x.run {
                Run::Regex(re) => generic::regex(re, m, &mut out),
                Run::Kv => generic::kv(m, false, &mut out),
                Run::Logfmt => generic::kv(m, true, &mut out),
                Run::Json => generic::json(m, &mut out),
                Run::Sshd => self.auth.sshd(m, &mut out),
                Run::Sudo => auth::sudo(m, &mut out),
                Run::Su => self.auth.su(m, &mut out),
                Run::Accounts => self.auth.accounts(m, &mut out),
                Run::Dockerd => self.system.dockerd(m, &mut out),
                Run::Kernel => self.system.kernel(m, &mut out),
                Run::Http => self.system.http(m, &mut out),
            }
            if out.len() > before {
                parsers.push(x.name.clone());
            }
        }
        for p in parsers {
            out.push(("logward.parser".to_owned(), p));
        }
        out
    }

    /// Adds the extracted fields to the event; fields the source already set are kept
    /// as they are. Returns whether anything was added.
    pub fn apply(&self, ev: &mut WireEvent) -> bool {
        let out = self.extract(ev);
        if out.is_empty() {
            return false;
        }
        let mut ours: Vec<String> = Vec::new();
        for (k, v) in out {
            if ev.fields.contains_key(&k) && !ours.contains(&k) {
                continue;
            }
            if !ours.contains(&k) {
                ours.push(k.clone());
            }
            ev.fields.entry(k).or_default().values.push(v);
        }
        true
    }
}

#[cfg(test)]
mod tests;
