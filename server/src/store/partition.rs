//! Time partitions: one tantivy index per UTC day of the event timestamp, named
//! `YYYY-MM-DD` under `<data_dir>/partitions/`, and the pure retention policy that picks
//! which whole partitions to delete.

use std::path::Path;

/// Nanoseconds in a day.
pub const DAY_NANOS: i64 = 86_400 * 1_000_000_000;

/// The partition (days since the Unix epoch, UTC) of a timestamp in nanoseconds.
pub fn day_of(nanos: i64) -> i64 {
    nanos.div_euclid(DAY_NANOS)
}

/// The directory name of a day: `YYYY-MM-DD`.
pub fn day_name(day: i64) -> String {
    let date = time::Date::from_julian_day(unix_day_to_julian(day)).unwrap_or(time::Date::MIN);
    format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

/// Parses a directory name made by [`day_name`]; other names are not partitions.
pub fn parse_day_name(name: &str) -> Option<i64> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let date = time::Date::parse(name, format).ok()?;
    (day_name(i64::from(date.to_julian_day()) - JULIAN_UNIX_EPOCH) == name)
        .then(|| i64::from(date.to_julian_day()) - JULIAN_UNIX_EPOCH)
}

const JULIAN_UNIX_EPOCH: i64 = 2_440_588;

fn unix_day_to_julian(day: i64) -> i32 {
    i32::try_from(day + JULIAN_UNIX_EPOCH).unwrap_or(0)
}

/// The days a query may touch: every partition whose day overlaps `[start, end)`.
pub fn overlaps(day: i64, start: Option<i64>, end: Option<i64>) -> bool {
    // In i128, so that the day holding `i64::MAX` still ends after it.
    let first = i128::from(day) * i128::from(DAY_NANOS);
    let after_last = first + i128::from(DAY_NANOS);
    start.is_none_or(|s| i128::from(s) < after_last) && end.is_none_or(|e| i128::from(e) > first)
}

/// What retention keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Delete partitions whose whole day is older than this many days; 0 keeps all.
    pub max_age_days: u32,
    /// Delete the oldest partitions while all of them together take more bytes; 0 is no
    /// limit. The newest partition is never deleted for size.
    pub max_total_bytes: u64,
}

/// Picks the partitions to delete, oldest first. `partitions` holds (day, bytes) in any
/// order; `today` is the current day.
pub fn expired(partitions: &[(i64, u64)], today: i64, policy: RetentionPolicy) -> Vec<i64> {
    let mut sorted = partitions.to_vec();
    sorted.sort_unstable();
    let mut out = Vec::new();
    let mut total: u64 = sorted.iter().map(|(_, b)| b).sum();
    for (i, &(day, bytes)) in sorted.iter().enumerate() {
        let too_old = policy.max_age_days > 0 && day < today - i64::from(policy.max_age_days);
        let too_big =
            policy.max_total_bytes > 0 && total > policy.max_total_bytes && i + 1 < sorted.len();
        if too_old || too_big {
            out.push(day);
            total -= bytes;
        }
    }
    out
}

/// Bytes of the files directly in a partition directory (tantivy keeps no sub-dirs).
pub fn dir_bytes(path: &Path) -> u64 {
    std::fs::read_dir(path)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .filter(std::fs::Metadata::is_file)
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: (&[(i64, u64)], i64, u32, u64), expected: &[i64]) {
        let (parts, today, max_age_days, max_total_bytes) = input;
        let policy = RetentionPolicy {
            max_age_days,
            max_total_bytes,
        };
        assert_eq!(expired(parts, today, policy), expected, "{input:?}");
    }

    #[test]
    fn retention_deletes_whole_old_or_oversized_partitions_oldest_first() {
        let parts: &[(i64, u64)] = &[(100, 10), (98, 10), (99, 10), (90, 10)];
        check((parts, 100, 0, 0), &[]);
        check((parts, 100, 1, 0), &[90, 98]);
        check((parts, 100, 30, 0), &[]);
        check((parts, 100, 0, 25), &[90, 98]);
        check((parts, 100, 0, 1), &[90, 98, 99]);
        check((parts, 100, 5, 35), &[90]);
        check((&[], 100, 1, 1), &[]);
    }

    #[test]
    fn days_round_trip_through_names_including_before_1970() {
        for (nanos, name) in [
            (0, "1970-01-01"),
            (DAY_NANOS - 1, "1970-01-01"),
            (-1, "1969-12-31"),
            (1_714_557_600_000_000_000, "2024-05-01"),
        ] {
            let day = day_of(nanos);
            assert_eq!(day_name(day), name);
            assert_eq!(parse_day_name(name), Some(day));
        }
        assert_eq!(parse_day_name("manifest.json"), None);
        assert_eq!(parse_day_name("2024-5-1"), None);
    }

    #[test]
    fn a_day_overlaps_only_ranges_that_touch_it() {
        assert!(overlaps(1, None, None));
        assert!(overlaps(1, Some(DAY_NANOS), Some(DAY_NANOS + 1)));
        assert!(!overlaps(1, Some(2 * DAY_NANOS), None));
        assert!(!overlaps(1, None, Some(DAY_NANOS)));
        assert!(overlaps(1, Some(2 * DAY_NANOS - 1), None));
    }
}
