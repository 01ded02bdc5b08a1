//! Human-readable durations in the config and the API: `500ms`, `30s`, `5m`, `4h`, `1d`, `1w`.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration written as a number and a unit (`ms`, `s`, `m`, `h`, `d`, `w`); `0` is zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    /// Seconds.
    pub const fn secs(s: u64) -> Self {
        Self(Duration::from_secs(s))
    }

    /// Minutes.
    pub const fn mins(m: u64) -> Self {
        Self(Duration::from_secs(m * 60))
    }

    /// Hours.
    pub const fn hours(h: u64) -> Self {
        Self(Duration::from_secs(h * 3600))
    }

    /// The same span as a `time::Duration`, saturating.
    pub fn as_time(self) -> time::Duration {
        time::Duration::try_from(self.0).unwrap_or(time::Duration::MAX)
    }

    /// True for a zero span, which means "off" where documented.
    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }
}

/// Parses `30s`, `5m`, `1h30m` is not accepted: one number, one unit.
pub fn parse_duration(s: &str) -> Result<HumanDuration, String> {
    let s = s.trim();
    if s == "0" {
        return Ok(HumanDuration::default());
    }
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid duration '{s}': expected a number and a unit like 30s"))?;
    let ms_per_unit: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 604_800_000,
        _ => {
            return Err(format!(
                "invalid duration '{s}': unit must be one of ms s m h d w"
            ));
        }
    };
    let ms = n
        .checked_mul(ms_per_unit)
        .ok_or_else(|| format!("invalid duration '{s}': too large"))?;
    Ok(HumanDuration(Duration::from_millis(ms)))
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        let units = [
            (604_800_000, "w"),
            (86_400_000, "d"),
            (3_600_000, "h"),
            (60_000, "m"),
            (1_000, "s"),
        ];
        if ms == 0 {
            return f.write_str("0");
        }
        for (size, unit) in units {
            if ms.is_multiple_of(size) {
                return write!(f, "{}{unit}", ms / size);
            }
        }
        write!(f, "{ms}ms")
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Result<u64, ()>) {
        let got = parse_duration(input)
            .map(|d| d.0.as_millis() as u64)
            .map_err(|_| ());
        assert_eq!(got, expected, "input {input:?}");
    }

    #[test]
    fn parses_units() {
        check("0", Ok(0));
        check("500ms", Ok(500));
        check("30s", Ok(30_000));
        check("5m", Ok(300_000));
        check("4h", Ok(14_400_000));
        check("1d", Ok(86_400_000));
        check("1w", Ok(604_800_000));
        check("", Err(()));
        check("5", Err(()));
        check("m", Err(()));
        check("1h30m", Err(()));
        check("-1s", Err(()));
        check("99999999999999999999d", Err(()));
    }

    #[test]
    fn displays_round_trip() {
        for s in ["0", "500ms", "30s", "5m", "4h", "1d", "1w", "90s"] {
            assert_eq!(parse_duration(s).map(|d| d.to_string()), Ok(s.to_owned()));
        }
    }
}
