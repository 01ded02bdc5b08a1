//! Journal entries to events, the entry filters, and the journald gap event. Pure: no I/O.

use logward_proto::{Container, Event, Source, StreamKind, Values};
use prost::Message as _;
use prost::bytes::Bytes;

use super::decode::JournalEntry;
use crate::config::Config;
use crate::stamp::{self, FIELD_EVENT, set_values as set};

/// Set on Docker journald-driver entries whose `CONTAINER_*` fields did not come from a
/// container engine; holds the `_COMM` that sent them.
pub const FIELD_CONTAINER_UNVERIFIED: &str = "logward.container_unverified";
/// Fields removed whole because the event was still too large after truncation.
pub const FIELD_DROPPED: &str = "logward.dropped_fields";
/// Set on events whose entry had no `__REALTIME_TIMESTAMP` (the time read is used).
pub const FIELD_NO_TIMESTAMP: &str = "logward.timestamp_missing";

/// Which entries are shipped. Units and identifiers are exact names; a unit without a dot
/// means `<name>.service`, as with `journalctl -u`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntryFilter {
    include_units: Vec<String>,
    exclude_units: Vec<String>,
    include_identifiers: Vec<String>,
    exclude_identifiers: Vec<String>,
    min_priority: Option<u8>,
}

fn unit_name(unit: &str) -> String {
    if unit.contains('.') {
        unit.to_owned()
    } else {
        format!("{unit}.service")
    }
}

impl EntryFilter {
    /// The filters of a configuration.
    pub fn new(config: &Config) -> Self {
        Self {
            include_units: config.include_units.iter().map(|u| unit_name(u)).collect(),
            exclude_units: config.exclude_units.iter().map(|u| unit_name(u)).collect(),
            include_identifiers: config.include_identifiers.clone(),
            exclude_identifiers: config.exclude_identifiers.clone(),
            min_priority: config.min_priority,
        }
    }

    /// Whether `entry` is shipped. An entry without `PRIORITY` passes `min_priority`.
    pub fn accepts(&self, entry: &JournalEntry) -> bool {
        let first = |k: &str| entry.fields.get(k).and_then(|v| v.first());
        let unit = first("_SYSTEMD_UNIT");
        let ident = first("SYSLOG_IDENTIFIER");
        let listed = |list: &[String], v: Option<&String>| v.is_some_and(|v| list.contains(v));
        if !self.include_units.is_empty() && !listed(&self.include_units, unit) {
            return false;
        }
        if listed(&self.exclude_units, unit) {
            return false;
        }
        if !self.include_identifiers.is_empty() && !listed(&self.include_identifiers, ident) {
            return false;
        }
        if listed(&self.exclude_identifiers, ident) {
            return false;
        }
        match (
            self.min_priority,
            first("PRIORITY").and_then(|p| p.parse::<u8>().ok()),
        ) {
            (Some(min), Some(priority)) => priority <= min,
            _ => true,
        }
    }
}

/// The event of a journal entry. `container` is the entry's container metadata (enriched
/// by the reader) when it came from a container engine's journald driver.
pub fn to_event(
    entry: JournalEntry,
    hostname: &str,
    container: Option<Container>,
    now_nanos: i64,
    max_event_bytes: usize,
) -> Event {
    let mut event = Event {
        timestamp_nanos: entry.timestamp_nanos,
        message: Bytes::from(entry.message),
        ..stamp::event(hostname, Source::Journald)
    };
    if entry.timestamp_nanos == 0 {
        event.timestamp_nanos = now_nanos;
        set(&mut event, FIELD_NO_TIMESTAMP, vec!["true".to_owned()]);
    }
    for (name, values) in entry.fields {
        event.fields.insert(name, Values { values });
    }
    if let Some(reference) = entry.container {
        if reference.verified {
            event.source = Source::Docker as i32;
            event.stream = match entry.stream {
                Some("stderr") => StreamKind::Stderr as i32,
                Some("stdout") => StreamKind::Stdout as i32,
                _ => StreamKind::Unspecified as i32,
            };
        } else {
            let comm = event
                .fields
                .get("_COMM")
                .and_then(|v| v.values.first().cloned())
                .unwrap_or_else(|| "unknown".to_owned());
            set(&mut event, FIELD_CONTAINER_UNVERIFIED, vec![comm]);
        }
        event.container = container;
    }
    cap_event(&mut event, max_event_bytes);
    event
}

/// Room for fields beside a message of `max_event_bytes`.
pub const FIELD_BUDGET: usize = 256 * 1024;

/// Removes the largest fields until the event's encoded size is at most `limit` plus
/// [`FIELD_BUDGET`]; they are named in `logward.dropped_fields`.
pub fn cap_event(event: &mut Event, limit: usize) {
    let mut dropped = Vec::new();
    while event.encoded_len() > limit + FIELD_BUDGET {
        let largest = event
            .fields
            .iter()
            .filter(|(k, _)| !k.starts_with("logward."))
            .max_by_key(|(_, v)| v.values.iter().map(String::len).sum::<usize>())
            .map(|(k, _)| k.clone());
        let Some(name) = largest else {
            break;
        };
        event.fields.remove(&name);
        dropped.push(name);
    }
    if !dropped.is_empty() {
        set(event, FIELD_DROPPED, dropped);
    }
}

/// The loud gap event of a journald cursor that is not in the journal any more.
pub fn cursor_gap_event(hostname: &str, cursor: &str, reason: &str, now_nanos: i64) -> Event {
    let mut event = Event {
        message: Bytes::from(format!(
            "log gap: the journal cursor is not in the journal any more ({reason}); entries \
             after it may be lost; reading resumes at the oldest retained entry"
        )),
        ..stamp::collector_event(hostname, None, now_nanos)
    };
    set(&mut event, FIELD_EVENT, vec!["gap".to_owned()]);
    set(&mut event, "gap.reason", vec!["cursor_invalid".to_owned()]);
    set(&mut event, "gap.source", vec!["journald".to_owned()]);
    set(&mut event, "gap.cursor", vec![cursor.to_owned()]);
    set(&mut event, "gap.detail", vec![reason.to_owned()]);
    event
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journald::decode::decode_entry;

    fn entry(json: &str) -> JournalEntry {
        decode_entry(json.as_bytes(), 1 << 20, 1 << 16).expect("entry")
    }

    fn check(config: fn(&mut Config), expected: &[(&str, bool)]) {
        let mut c = Config::default();
        config(&mut c);
        let filter = EntryFilter::new(&c);
        for (json, accepted) in expected {
            assert_eq!(filter.accepts(&entry(json)), *accepted, "{json}");
        }
    }

    const SSH: &str = r#"{"__CURSOR":"c","_SYSTEMD_UNIT":"ssh.service","SYSLOG_IDENTIFIER":"sshd","PRIORITY":"6"}"#;
    const CRON: &str = r#"{"__CURSOR":"c","_SYSTEMD_UNIT":"cron.service","SYSLOG_IDENTIFIER":"CRON","PRIORITY":"3"}"#;
    const AUDIT: &str = r#"{"__CURSOR":"c","_TRANSPORT":"audit","MESSAGE":"x"}"#;

    #[test]
    fn filters_on_units_identifiers_and_priority() {
        check(|_| {}, &[(SSH, true), (CRON, true), (AUDIT, true)]);
        check(
            |c| c.include_units = vec!["ssh".into()],
            &[(SSH, true), (CRON, false), (AUDIT, false)],
        );
        check(
            |c| c.exclude_units = vec!["cron.service".into()],
            &[(SSH, true), (CRON, false), (AUDIT, true)],
        );
        check(
            |c| c.include_identifiers = vec!["CRON".into()],
            &[(SSH, false), (CRON, true)],
        );
        check(
            |c| c.exclude_identifiers = vec!["sshd".into()],
            &[(SSH, false), (CRON, true), (AUDIT, true)],
        );
        check(
            |c| c.min_priority = Some(4),
            &[(SSH, false), (CRON, true), (AUDIT, true)],
        );
    }

    #[test]
    fn docker_entries_become_docker_events_only_from_the_engine() {
        let json = r#"{"__CURSOR":"c","__REALTIME_TIMESTAMP":"5","MESSAGE":"hi","PRIORITY":"3","CONTAINER_ID":"abc","CONTAINER_NAME":"db","_COMM":"dockerd"}"#;
        let c = Container {
            id: "abc".into(),
            name: "db".into(),
            ..Container::default()
        };
        let event = to_event(entry(json), "h", Some(c.clone()), 9, 1 << 20);
        assert_eq!(event.source, Source::Docker as i32);
        assert_eq!(event.stream, StreamKind::Stderr as i32);
        assert_eq!(event.container, Some(c.clone()));
        assert_eq!(event.timestamp_nanos, 5000);
        let forged = json.replace("dockerd", "python3");
        let event = to_event(entry(&forged), "h", Some(c), 9, 1 << 20);
        assert_eq!(event.source, Source::Journald as i32);
        assert_eq!(event.fields[FIELD_CONTAINER_UNVERIFIED].values, ["python3"]);
    }

    #[test]
    fn oversize_events_lose_their_largest_fields() {
        let big = "z".repeat(60_000);
        let json = format!(
            r#"{{"__CURSOR":"c","MESSAGE":"m","A":"{big}","B":"{big}","D":"{big}","E":"{big}","F":"{big}","C":"small"}}"#
        );
        let event = to_event(entry(&json), "h", None, 9, 10_000);
        assert!(event.encoded_len() <= 10_000 + FIELD_BUDGET);
        assert_eq!(event.fields[FIELD_DROPPED].values.len(), 1);
        assert!(event.fields.contains_key("C"));
        assert_eq!(event.fields[FIELD_NO_TIMESTAMP].values, ["true"]);
        assert_eq!(event.timestamp_nanos, 9);
    }
}
