//! Absence detection: a host whose events stop arriving for longer than a configured
//! time raises one "host stopped sending" detection per silence. Pure: time comes in.

use std::collections::HashMap;

use logward_rules::Detection;

/// The rule id and title of silence detections (built in; not a Sigma file, since Sigma
/// cannot express the absence of events reliably).
pub const RULE_ID: &str = "logward-host-stopped-sending";
pub const RULE_TITLE: &str = "Host stopped sending";

#[derive(Debug, Clone, Copy)]
struct Host {
    last_ns: i64,
    flagged: bool,
}

/// Last arrival per host, and which hosts are already reported silent.
#[derive(Debug)]
pub struct SilenceTracker {
    after_ns: i64,
    hosts: HashMap<String, Host>,
}

impl SilenceTracker {
    /// Reports a host after `after_ns` nanoseconds without events.
    pub fn new(after_ns: i64) -> Self {
        SilenceTracker {
            after_ns,
            hosts: HashMap::new(),
        }
    }

    /// An event of `host` arrived at `now_ns`; a silent host is live again.
    pub fn seen(&mut self, host: &str, now_ns: i64) {
        if host.is_empty() {
            return;
        }
        match self.hosts.get_mut(host) {
            Some(h) => {
                h.last_ns = h.last_ns.max(now_ns);
                h.flagged = false;
            }
            None => {
                self.hosts.insert(
                    host.to_owned(),
                    Host {
                        last_ns: now_ns,
                        flagged: false,
                    },
                );
            }
        }
    }

    /// Hosts that just passed the silence limit, with the time of their last event.
    pub fn check(&mut self, now_ns: i64) -> Vec<(String, i64)> {
        let mut out: Vec<(String, i64)> = self
            .hosts
            .iter_mut()
            .filter(|(_, h)| !h.flagged && now_ns.saturating_sub(h.last_ns) > self.after_ns)
            .map(|(name, h)| {
                h.flagged = true;
                (name.clone(), h.last_ns)
            })
            .collect();
        out.sort();
        out
    }
}

/// The detection for a host silent since `last_ns` (`last` is its RFC 3339 form). The
/// group carries the time of the last event, so each silence is a detection of its own.
pub fn detection(host: &str, last: &str) -> Detection {
    Detection {
        rule_id: RULE_ID.to_owned(),
        rule_title: RULE_TITLE.to_owned(),
        level: Some("high".to_owned()),
        tags: vec![
            "attack.defense_evasion".to_owned(),
            "attack.t1562.006".to_owned(),
            "logward.p9".to_owned(),
        ],
        group: vec![
            ("host".to_owned(), host.to_owned()),
            ("last_event_at".to_owned(), last.to_owned()),
        ],
        events: Vec::new(),
        correlation: false,
        window: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    /// Steps of (time in s, hosts seen at that time) and the hosts reported after each.
    fn check(steps: &[(i64, &[&str])], expected: &[&[&str]]) {
        let mut t = SilenceTracker::new(60 * S);
        for ((at, seen), want) in steps.iter().zip(expected) {
            for h in *seen {
                t.seen(h, at * S);
            }
            let got: Vec<String> = t.check(at * S).into_iter().map(|(h, _)| h).collect();
            assert_eq!(got, *want, "at {at} s");
        }
    }

    #[test]
    fn a_host_is_reported_once_per_silence() {
        check(
            &[
                (0, &["a", "b"]),
                (30, &["a"]),
                (61, &[]),
                (89, &[]),
                (91, &[]),
                (200, &[]),
            ],
            &[&[], &[], &["b"], &[], &["a"], &[]],
        );
    }

    #[test]
    fn a_host_that_comes_back_is_reported_again_when_it_falls_silent_again() {
        check(
            &[(0, &["a"]), (61, &[]), (70, &["a"]), (120, &[]), (131, &[])],
            &[&[], &["a"], &[], &[], &["a"]],
        );
    }

    #[test]
    fn hosts_never_seen_and_empty_names_are_not_reported() {
        check(&[(0, &[""]), (1000, &[])], &[&[], &[]]);
    }

    #[test]
    fn each_silence_is_its_own_detection() {
        let a = detection("web1", "2024-05-01T10:00:00.000000000Z");
        let b = detection("web1", "2024-05-01T11:00:00.000000000Z");
        assert_ne!(a.group, b.group);
        assert_eq!(a.level.as_deref(), Some("high"));
    }
}
