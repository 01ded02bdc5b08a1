//! Built-in extractors for authentication and accounts: sshd, sudo, su, and the
//! shadow-utils tools (useradd, groupadd, usermod, userdel, passwd, gpasswd).

use regex::Regex;

use super::{Out, push};

/// Compiled patterns of the authentication extractors.
pub struct Auth {
    ssh: Vec<(Regex, &'static str)>,
    su_to: Regex,
    su_pam_fail: Regex,
    accounts: Vec<(Regex, &'static str)>,
}

fn re(p: &str) -> Regex {
    // The patterns are constants of this file, compiled by the tests.
    Regex::new(p).unwrap_or_else(|e| panic!("built-in pattern {p:?}: {e}"))
}

const FROM: &str = r"(?P<ip>[0-9A-Fa-f.:]+) port (?P<port>\d+)";

impl Auth {
    pub fn new() -> Auth {
        let ssh = [
            (
                r"^(?P<ev>Failed|Accepted) (?P<method>password|publickey|keyboard-interactive(?:/pam)?|hostbased|gssapi-with-mic) for (?:invalid user )?(?P<user>\S*) from ",
                "auth",
            ),
            (r"^Invalid user (?P<user>\S*) from ", "invalid_user"),
            (
                r"^(?:error: )?maximum authentication attempts exceeded for (?:invalid user )?(?P<user>\S*) from ",
                "max_auth_attempts",
            ),
            (
                r"^Disconnected from (?:(?:authenticating |invalid )?user (?P<user>\S*) )?",
                "disconnect",
            ),
            (r"^Received disconnect from ", "disconnect"),
            (
                r"^Connection closed by (?:(?:authenticating |invalid )?user (?P<user>\S*) )?",
                "connection_closed",
            ),
        ]
        .into_iter()
        .map(|(p, ev)| (re(&format!("{p}{FROM}")), ev))
        .collect();
        let accounts = [
            (r"^new user: name=(?P<user>[^,\s]+)", "user_added"),
            (r"^new group: name=(?P<group>[^,\s]+)", "group_added"),
            (
                r"^add '(?P<user>[^']+)' to group '(?P<group>[^']+)'",
                "user_added_to_group",
            ),
            (
                r"^user (?P<user>\S+) added by \S+ to group (?P<group>\S+)",
                "user_added_to_group",
            ),
            (
                r"^(?:change|lock|unlock) user '(?P<user>[^']+)'",
                "user_modified",
            ),
            (r"^delete user '(?P<user>[^']+)'", "user_deleted"),
            (
                r"^pam_unix\((?:passwd|chpasswd|chage):chauthtok\): password changed for (?P<user>\S+)",
                "password_changed",
            ),
            (
                r"^password for '(?P<user>[^']+)' changed by",
                "password_changed",
            ),
        ]
        .into_iter()
        .map(|(p, ev)| (re(p), ev))
        .collect();
        Auth {
            ssh,
            su_to: re(r"^(?P<failed>FAILED SU )?\(to (?P<target>[^)]+)\) (?P<user>\S+) on "),
            su_pam_fail: re(
                r"^pam_unix\(su(?:-l)?:auth\): authentication failure;.*\bruser=(?P<user>\S*)\s.*\buser=(?P<target>\S+)",
            ),
            accounts,
        }
    }

    /// sshd and sshd-session lines.
    pub fn sshd(&self, m: &str, out: &mut Out) {
        for (re, ev) in &self.ssh {
            let Some(c) = re.captures(m) else { continue };
            let event = if *ev == "auth" {
                let method = c.name("method").map_or("", |x| x.as_str());
                let method = method.split('/').next().unwrap_or(method);
                let ok = c.name("ev").is_some_and(|x| x.as_str() == "Accepted");
                push(out, "ssh.method", method);
                match (ok, method) {
                    (true, "publickey") => "accepted_publickey",
                    (false, "publickey") => "failed_publickey",
                    (true, _) => "accepted_password",
                    (false, _) => "failed_password",
                }
            } else {
                ev
            };
            push(out, "ssh.event", event);
            if let Some(u) = c.name("user") {
                push(out, "ssh.user", u.as_str());
            }
            if let Some(ip) = c.name("ip") {
                push(out, "ssh.src_ip", ip.as_str());
            }
            if let Some(p) = c.name("port") {
                push(out, "ssh.src_port", p.as_str());
            }
            return;
        }
    }

    /// `su` lines (util-linux and pam_unix).
    pub fn su(&self, m: &str, out: &mut Out) {
        let (c, failed) = if let Some(c) = self.su_to.captures(m) {
            let failed = c.name("failed").is_some();
            (c, failed)
        } else if let Some(c) = self.su_pam_fail.captures(m) {
            (c, true)
        } else {
            return;
        };
        push(out, "su.event", if failed { "failure" } else { "success" });
        if let Some(u) = c.name("user").filter(|u| !u.as_str().is_empty()) {
            push(out, "su.user", u.as_str());
        }
        if let Some(t) = c.name("target") {
            push(out, "su.target_user", t.as_str());
        }
    }

    /// useradd, groupadd, usermod, userdel, passwd, chpasswd, gpasswd lines.
    pub fn accounts(&self, m: &str, out: &mut Out) {
        for (re, ev) in &self.accounts {
            let Some(c) = re.captures(m) else { continue };
            push(out, "account.event", ev);
            if let Some(u) = c.name("user") {
                push(out, "account.user", u.as_str());
            }
            if let Some(g) = c.name("group") {
                push(out, "account.group", g.as_str());
            }
            return;
        }
    }
}

/// sudo lines: `alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/id`,
/// with an optional reason before the first `KEY=` part, and pam_unix auth failures.
pub fn sudo(m: &str, out: &mut Out) {
    if let Some(rest) = m.strip_prefix("pam_unix(sudo:auth): authentication failure;") {
        push(out, "sudo.event", "auth_failure");
        let mut kv = Vec::new();
        super::generic::kv(rest, false, &mut kv);
        for (k, v) in kv {
            if k == "kv.ruser" && !v.is_empty() {
                push(out, "sudo.user", &v);
            } else if k == "kv.user" && !v.is_empty() {
                push(out, "sudo.target_user", &v);
            }
        }
        return;
    }
    let Some((user, rest)) = m.split_once(" : ") else {
        return;
    };
    let user = user.trim();
    if user.is_empty() || user.contains(' ') || !rest.contains("COMMAND=") {
        return;
    }
    let (parts, command) = match rest.split_once("COMMAND=") {
        Some((p, c)) => (p, Some(c.trim())),
        None => (rest, None),
    };
    let mut event = "command";
    for part in parts.split(" ; ") {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("TTY=") {
            push(out, "sudo.tty", v);
        } else if let Some(v) = part.strip_prefix("PWD=") {
            push(out, "sudo.pwd", v);
        } else if let Some(v) = part.strip_prefix("USER=") {
            push(out, "sudo.target_user", v);
        } else if part.contains("incorrect password attempt") {
            event = "incorrect_password";
            let n = part.split(' ').next().unwrap_or("");
            if n.bytes().all(|b| b.is_ascii_digit()) && !n.is_empty() {
                push(out, "sudo.failed_attempts", n);
            }
        } else if part.contains("NOT in sudoers") || part.contains("not allowed to") {
            event = "not_in_sudoers";
        } else if part.contains("password is required") || part.contains("authentication failure") {
            event = "auth_failure";
        }
    }
    if let Some(c) = command {
        push(out, "sudo.command", c);
    }
    push(out, "sudo.user", user);
    push(out, "sudo.event", event);
}
