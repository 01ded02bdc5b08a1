//! What the collector stamps on events, whichever source read them: the host and the
//! source, the time now for events without one of their own, and the `logward.*` fields that
//! mark events the collector changed or made itself.

use logward_proto::{Container, Event, Source, Values};

/// Field set on events whose message was cut at `max_event_bytes`.
pub const FIELD_TRUNCATED: &str = "logward.truncated";
/// Field set on lines that could not be decoded; holds the error.
pub const FIELD_DECODE_ERROR: &str = "logward.decode_error";
/// `logward.event`: what kind of collector event this is (`posture` or `gap`).
pub const FIELD_EVENT: &str = "logward.event";

/// The current time in nanoseconds since the Unix epoch.
pub fn now_nanos() -> i64 {
    let nanos = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
    i64::try_from(nanos).unwrap_or(i64::MAX)
}

/// An empty event stamped with the host it was collected on and the source that read it.
pub fn event(host: &str, source: Source) -> Event {
    Event {
        host: host.to_owned(),
        source: source as i32,
        ..Event::default()
    }
}

/// An event the collector makes itself (`source = collector`), at `now_nanos`, about
/// `container` if there is one.
pub fn collector_event(host: &str, container: Option<&Container>, now_nanos: i64) -> Event {
    Event {
        container: container.cloned(),
        timestamp_nanos: now_nanos,
        ..event(host, Source::Collector)
    }
}

/// Sets field `name` to the one value `value`.
pub fn set_field(event: &mut Event, name: &str, value: &str) {
    set_values(event, name, vec![value.to_owned()]);
}

/// Sets field `name` to `values`.
pub fn set_values(event: &mut Event, name: &str, values: Vec<String>) {
    event.fields.insert(name.to_owned(), Values { values });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collector_events_carry_host_time_and_container() {
        let container = Container {
            id: "c1".into(),
            ..Container::default()
        };
        let event = collector_event("box", Some(&container), 42);
        assert_eq!(
            (event.host.as_str(), event.source, event.timestamp_nanos),
            ("box", Source::Collector as i32, 42)
        );
        assert_eq!(event.container, Some(container));
        assert_eq!(collector_event("box", None, 1).container, None);
    }

    #[test]
    fn fields_are_replaced_not_appended() {
        let mut event = event("box", Source::Docker);
        set_field(&mut event, FIELD_TRUNCATED, "true");
        set_values(&mut event, FIELD_TRUNCATED, vec!["a".into(), "b".into()]);
        assert_eq!(event.fields[FIELD_TRUNCATED].values, ["a", "b"]);
    }

    #[test]
    fn now_is_after_2024() {
        assert!(now_nanos() > 1_704_067_200_000_000_000);
    }
}
