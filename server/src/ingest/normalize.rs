//! What the server owns in every event, applied after extraction and before the store:
//! the accepted timestamp range, and the flags no collector may set itself. Pure.

use logward_proto::{Event as WireEvent, Values};

/// The first instant accepted as an event time: 1970-01-01T00:00:00Z.
pub const MIN_TIMESTAMP_NANOS: i64 = 0;
/// The first instant no longer accepted: 2200-01-01T00:00:00Z.
pub const MAX_TIMESTAMP_NANOS: i64 = 7_258_118_400 * 1_000_000_000;

/// Set on an event whose timestamp was outside the accepted range: `true`.
pub const OUT_OF_RANGE_FIELD: &str = "logward.timestamp_out_of_range";
/// The event's own timestamp (Unix nanoseconds) when it was out of range.
pub const ORIGINAL_TIMESTAMP_FIELD: &str = "logward.timestamp_original";
/// Set by the store on a message that is not valid UTF-8.
pub const INVALID_UTF8_FIELD: &str = "logward.invalid_utf8";

/// Server-owned flags a collector or an extractor must not set.
const SERVER_FLAGS: &[&str] = &[
    OUT_OF_RANGE_FIELD,
    ORIGINAL_TIMESTAMP_FIELD,
    INVALID_UTF8_FIELD,
];

/// Drops forged server flags and moves a timestamp outside
/// [`MIN_TIMESTAMP_NANOS`, `MAX_TIMESTAMP_NANOS`) to the receive time (timestamp 0 is
/// "unset", which the store replaces by the receive time), keeping the original in
/// [`ORIGINAL_TIMESTAMP_FIELD`]. Returns true when the timestamp was out of range.
pub fn normalize(event: &mut WireEvent) -> bool {
    for flag in SERVER_FLAGS {
        event.fields.remove(*flag);
    }
    let ts = event.timestamp_nanos;
    if ts == 0 || (MIN_TIMESTAMP_NANOS..MAX_TIMESTAMP_NANOS).contains(&ts) {
        return false;
    }
    let one = |v: String| Values { values: vec![v] };
    event
        .fields
        .insert(ORIGINAL_TIMESTAMP_FIELD.to_owned(), one(ts.to_string()));
    event
        .fields
        .insert(OUT_OF_RANGE_FIELD.to_owned(), one("true".to_owned()));
    event.timestamp_nanos = 0;
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(ts: i64, fields: &[(&str, &str)], out_of_range: bool, expected: &[(&str, &str)]) {
        let mut event = WireEvent {
            timestamp_nanos: ts,
            ..Default::default()
        };
        for (k, v) in fields {
            event.fields.insert(
                (*k).to_owned(),
                Values {
                    values: vec![(*v).to_owned()],
                },
            );
        }
        assert_eq!(normalize(&mut event), out_of_range, "{ts}");
        let mut got: Vec<(String, String)> = event
            .fields
            .iter()
            .map(|(k, v)| (k.clone(), v.values.join(",")))
            .collect();
        got.sort();
        let mut want: Vec<(String, String)> = expected
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        want.sort();
        assert_eq!(got, want, "{ts}");
        let kept = if out_of_range { 0 } else { ts };
        assert_eq!(event.timestamp_nanos, kept);
    }

    #[test]
    fn timestamps_outside_the_range_become_the_receive_time() {
        check(1_700_000_000_000_000_000, &[], false, &[]);
        check(0, &[], false, &[]);
        check(MAX_TIMESTAMP_NANOS - 1, &[], false, &[]);
        let max = i64::MAX.to_string();
        check(
            i64::MAX,
            &[],
            true,
            &[
                (ORIGINAL_TIMESTAMP_FIELD, &max),
                (OUT_OF_RANGE_FIELD, "true"),
            ],
        );
        check(
            -1,
            &[],
            true,
            &[
                (ORIGINAL_TIMESTAMP_FIELD, "-1"),
                (OUT_OF_RANGE_FIELD, "true"),
            ],
        );
    }

    #[test]
    fn collectors_cannot_forge_server_flags() {
        check(
            5,
            &[
                (INVALID_UTF8_FIELD, "true"),
                (OUT_OF_RANGE_FIELD, "true"),
                ("user", "bob"),
            ],
            false,
            &[("user", "bob")],
        );
    }
}
