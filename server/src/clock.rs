//! Time: the wall clock and the parsing of user-given times. Imports nothing of the
//! server's stages, so every stage may use it.

/// The current time in Unix nanoseconds (saturating far in the future).
pub fn now_nanos() -> i64 {
    i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos()).unwrap_or(i64::MAX)
}

/// Parses a time: RFC 3339, Unix milliseconds, `now`, or `now-15m` / `now+1h`
/// (units ms, s, m, h, d, w). Returns Unix nanoseconds.
pub fn parse_time(value: &str, now_nanos: i64) -> Result<i64, String> {
    let v = value.trim();
    if let Some(rest) = v.strip_prefix("now") {
        if rest.is_empty() {
            return Ok(now_nanos);
        }
        let (sign, amount) = match rest.as_bytes()[0] {
            b'-' => (-1_i64, &rest[1..]),
            b'+' => (1_i64, &rest[1..]),
            _ => {
                return Err(format!(
                    "{value:?}: expected now, now-<n><unit> or now+<n><unit>"
                ));
            }
        };
        let split = amount
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(amount.len());
        let (digits, unit) = amount.split_at(split);
        let n: i64 = digits
            .parse()
            .map_err(|_| format!("{value:?}: missing a number after now{}", &rest[..1]))?;
        let unit_nanos: i64 = match unit {
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60 * 1_000_000_000,
            "h" => 3_600 * 1_000_000_000,
            "d" => 86_400 * 1_000_000_000,
            "w" => 7 * 86_400 * 1_000_000_000,
            _ => {
                return Err(format!(
                    "{value:?}: unknown unit {unit:?}; use ms, s, m, h, d or w"
                ));
            }
        };
        return n
            .checked_mul(unit_nanos)
            .and_then(|d| now_nanos.checked_add(sign * d))
            .ok_or_else(|| format!("{value:?} is out of range"));
    }
    if !v.is_empty()
        && v.bytes()
            .enumerate()
            .all(|(i, b)| b.is_ascii_digit() || (i == 0 && b == b'-'))
    {
        let ms: i64 = v
            .parse()
            .map_err(|_| format!("{value:?} is out of range"))?;
        return ms
            .checked_mul(1_000_000)
            .ok_or_else(|| format!("{value:?} is out of range"));
    }
    let t = time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
        .map_err(|e| {
            format!("{value:?} is neither RFC 3339, Unix milliseconds nor now-<n><unit>: {e}")
        })?;
    i64::try_from(t.unix_timestamp_nanos()).map_err(|_| format!("{value:?} is out of range"))
}
