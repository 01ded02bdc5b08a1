//! The audit events the collector makes itself (`source = collector`): a container's posture
//! and a gap (log lines lost before they were read).

use logward_proto::{Container, Event};
use prost::bytes::Bytes;

use super::posture::Posture;
use crate::stamp::{FIELD_EVENT, set_values as set};

/// Why lines were lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GapReason {
    /// A file shrank below what was read (it was truncated or rewritten).
    Truncated,
    /// A file was deleted (rotated away) before it was read to its end.
    DeletedBeforeRead,
    /// A file failed to read repeatedly (e.g. a `.gz` dockerd never finished) and was given up.
    Unreadable,
}

impl GapReason {
    /// The `gap.reason` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Truncated => "truncated",
            Self::DeletedBeforeRead => "deleted_before_read",
            Self::Unreadable => "unreadable",
        }
    }
}

/// The posture audit event of a container.
pub fn posture_event(
    host: &str,
    container: &Container,
    posture: &Posture,
    now_nanos: i64,
) -> Event {
    let mut event = crate::stamp::collector_event(host, Some(container), now_nanos);
    event.message = Bytes::from(format!(
        "container posture: {} ({}) {}",
        display_name(container),
        if container.image.is_empty() {
            "unknown image"
        } else {
            &container.image
        },
        posture.summary()
    ));
    set(&mut event, FIELD_EVENT, vec!["posture".to_owned()]);
    for (name, values) in posture.fields() {
        if !values.is_empty() {
            set(&mut event, name, values);
        }
    }
    event
}

/// A gap audit event: lines of `file` were lost before they were read.
pub fn gap_event(
    host: &str,
    container: &Container,
    file: &str,
    bytes_lost_estimate: u64,
    reason: GapReason,
    now_nanos: i64,
) -> Event {
    let mut event = crate::stamp::collector_event(host, Some(container), now_nanos);
    event.message = Bytes::from(format!(
        "log gap: about {bytes_lost_estimate} bytes of {file} of container {} were lost before \
         they were read ({})",
        display_name(container),
        reason.as_str()
    ));
    set(&mut event, FIELD_EVENT, vec!["gap".to_owned()]);
    set(
        &mut event,
        "gap.container",
        vec![display_name(container).to_owned()],
    );
    set(&mut event, "gap.file", vec![file.to_owned()]);
    set(
        &mut event,
        "gap.bytes_lost_estimate",
        vec![bytes_lost_estimate.to_string()],
    );
    set(&mut event, "gap.reason", vec![reason.as_str().to_owned()]);
    event
}

fn display_name(container: &Container) -> &str {
    if container.name.is_empty() {
        &container.id
    } else {
        &container.name
    }
}

#[cfg(test)]
mod tests {
    use logward_proto::Source;

    use super::*;

    fn container() -> Container {
        Container {
            id: "c1".into(),
            name: "web".into(),
            image: "nginx:1.25".into(),
            ..Container::default()
        }
    }

    fn check(event: &Event, message_start: &str, fields: &[(&str, &[&str])]) {
        let message = String::from_utf8_lossy(&event.message);
        assert!(message.starts_with(message_start), "{message}");
        assert_eq!(event.source, Source::Collector as i32);
        for (name, values) in fields {
            assert_eq!(event.fields[*name].values, *values, "{name}");
        }
    }

    #[test]
    fn posture_event_carries_prefixed_fields_and_a_readable_message() {
        let posture = Posture {
            privileged: true,
            user: "root".into(),
            cap_add: vec!["SYS_ADMIN".into(), "NET_RAW".into()],
            ..Posture::default()
        };
        let event = posture_event("box", &container(), &posture, 7);
        check(
            &event,
            "container posture: web (nginx:1.25) privileged=true user=root",
            &[
                ("logward.event", &["posture"]),
                ("posture.privileged", &["true"]),
                ("posture.cap_add", &["SYS_ADMIN", "NET_RAW"]),
            ],
        );
        assert!(
            !event.fields.contains_key("posture.cap_drop"),
            "empty lists are left out"
        );
    }

    #[test]
    fn gap_event_names_container_file_estimate_and_reason() {
        let event = gap_event(
            "box",
            &container(),
            "/d/c1/c1-json.log.2",
            4096,
            GapReason::DeletedBeforeRead,
            7,
        );
        check(
            &event,
            "log gap: about 4096 bytes of /d/c1/c1-json.log.2 of container web",
            &[
                ("logward.event", &["gap"]),
                ("gap.container", &["web"]),
                ("gap.file", &["/d/c1/c1-json.log.2"]),
                ("gap.bytes_lost_estimate", &["4096"]),
                ("gap.reason", &["deleted_before_read"]),
            ],
        );
    }
}
