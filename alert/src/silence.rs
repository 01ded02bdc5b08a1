//! Silences: matchers over a detection's labels, a time span and a comment; `silences.jsonl`.

use std::collections::BTreeMap;
use std::path::Path;

use regex::Regex;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::detection::Labels;
use crate::duration::HumanDuration;
use crate::error::{Error, Result};
use crate::journal::{Journal, Keyed};

/// How a matcher compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MatchOp {
    /// Some value equals.
    #[serde(rename = "=")]
    Eq,
    /// No value equals.
    #[serde(rename = "!=")]
    NotEq,
    /// Some value matches the (whole-string) regex.
    #[serde(rename = "=~")]
    Regex,
    /// No value matches the regex.
    #[serde(rename = "!~")]
    NotRegex,
}

/// One condition on a label (`rule`, `level`, `host`, `container`, `image`, `tag`, or any
/// field / group-key name). An absent label compares as `""`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Matcher {
    /// The label.
    pub name: String,
    /// The value or regex.
    pub value: String,
    /// `=` (default), `!=`, `=~` or `!~`.
    #[serde(default = "default_op")]
    pub op: MatchOp,
    #[serde(skip)]
    regex: Option<Regex>,
}

fn default_op() -> MatchOp {
    MatchOp::Eq
}

impl PartialEq for Matcher {
    fn eq(&self, o: &Self) -> bool {
        (&self.name, &self.value, self.op) == (&o.name, &o.value, o.op)
    }
}

impl Matcher {
    /// A matcher; regexes are compiled (anchored) here.
    pub fn new(name: &str, op: MatchOp, value: &str) -> Result<Self> {
        let mut m = Matcher {
            name: name.to_owned(),
            value: value.to_owned(),
            op,
            regex: None,
        };
        m.compile()?;
        Ok(m)
    }

    fn compile(&mut self) -> Result<()> {
        if self.name.is_empty() {
            return Err(Error::Invalid("matcher name is empty".to_owned()));
        }
        if matches!(self.op, MatchOp::Regex | MatchOp::NotRegex) {
            let re = Regex::new(&format!("^(?:{})$", self.value))
                .map_err(|e| Error::Invalid(format!("matcher '{}': bad regex: {e}", self.name)))?;
            self.regex = Some(re);
        }
        Ok(())
    }

    fn hit(&self, v: &str) -> bool {
        match &self.regex {
            Some(re) => re.is_match(v),
            None => v == self.value,
        }
    }

    /// True when the labels satisfy this matcher.
    pub fn matches(&self, labels: &Labels) -> bool {
        let values = labels.values(&self.name);
        let any = if values.is_empty() {
            self.hit("")
        } else {
            values.iter().any(|v| self.hit(v))
        };
        match self.op {
            MatchOp::Eq | MatchOp::Regex => any,
            MatchOp::NotEq | MatchOp::NotRegex => !any,
        }
    }
}

/// A silence as stored and returned by the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Silence {
    /// Unique id.
    pub id: String,
    /// All must match.
    pub matchers: Vec<Matcher>,
    /// Active from.
    #[serde(with = "time::serde::rfc3339")]
    pub starts_at: OffsetDateTime,
    /// Active until (exclusive); expiring sets it to now.
    #[serde(with = "time::serde::rfc3339")]
    pub ends_at: OffsetDateTime,
    /// Why.
    pub comment: String,
    /// Who.
    pub created_by: String,
    /// When it was made.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl Keyed for Silence {
    fn key(&self) -> &str {
        &self.id
    }
}

/// State of a silence at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SilenceState {
    /// Starts later.
    Pending,
    /// Suppressing now.
    Active,
    /// Over.
    Expired,
}

impl Silence {
    /// Pending, active or expired at `now`.
    pub fn state(&self, now: OffsetDateTime) -> SilenceState {
        if now < self.starts_at {
            SilenceState::Pending
        } else if now < self.ends_at {
            SilenceState::Active
        } else {
            SilenceState::Expired
        }
    }

    /// True when active at `now` and every matcher matches.
    pub fn silences(&self, labels: &Labels, now: OffsetDateTime) -> bool {
        self.state(now) == SilenceState::Active && self.matchers.iter().all(|m| m.matches(labels))
    }
}

/// Body of `POST /api/v1/silences`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSilence {
    /// All must match; at least one must not match the empty string.
    pub matchers: Vec<Matcher>,
    /// Start; default now.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub starts_at: Option<OffsetDateTime>,
    /// End; give this or `duration`.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub ends_at: Option<OffsetDateTime>,
    /// Length from the start, e.g. `2h`; give this or `ends_at`.
    #[serde(default)]
    pub duration: Option<HumanDuration>,
    /// Why (required).
    pub comment: String,
    /// Who; default `api`.
    #[serde(default)]
    pub created_by: Option<String>,
}

impl NewSilence {
    /// Checks the request and makes the silence (pure).
    pub fn build(mut self, now: OffsetDateTime) -> Result<Silence> {
        let invalid = |m: &str| Err(Error::Invalid(m.to_owned()));
        if self.matchers.is_empty() {
            return invalid("a silence needs at least one matcher");
        }
        for m in &mut self.matchers {
            m.compile()?;
        }
        let empty = Labels::default();
        if self.matchers.iter().all(|m| m.matches(&empty)) {
            return invalid(
                "at least one matcher must not match the empty string (it would silence everything)",
            );
        }
        if self.comment.trim().is_empty() {
            return invalid("comment is required");
        }
        let starts_at = self.starts_at.unwrap_or(now);
        let ends_at = match (self.ends_at, self.duration) {
            (Some(e), None) => e,
            (None, Some(d)) => starts_at + d.as_time(),
            _ => return invalid("give exactly one of ends_at and duration"),
        };
        if ends_at <= starts_at || ends_at <= now {
            return invalid("ends_at must be after starts_at and in the future");
        }
        Ok(Silence {
            id: uuid::Uuid::new_v4().to_string(),
            matchers: self.matchers,
            starts_at,
            ends_at,
            comment: self.comment,
            created_by: self.created_by.unwrap_or_else(|| "api".to_owned()),
            created_at: now,
        })
    }
}

/// The silences, in memory and in their log; expired ones are dropped after a day.
pub(crate) struct SilenceStore {
    journal: Journal,
    silences: BTreeMap<String, Silence>,
}

impl SilenceStore {
    pub(crate) fn open(dir: &Path) -> Result<Self> {
        let (journal, mut silences) = Journal::open::<Silence>(&dir.join("silences.jsonl"))?;
        for s in silences.values_mut() {
            for m in &mut s.matchers {
                m.compile()?;
            }
        }
        Ok(SilenceStore { journal, silences })
    }

    pub(crate) fn add(&mut self, s: Silence) -> Result<()> {
        self.journal.append([&s], [])?;
        self.silences.insert(s.id.clone(), s);
        Ok(())
    }

    /// Expires a silence now; `None` when there is no such silence.
    pub(crate) fn expire(&mut self, id: &str, now: OffsetDateTime) -> Result<Option<Silence>> {
        let Some(s) = self.silences.get_mut(id) else {
            return Ok(None);
        };
        if s.ends_at > now {
            s.ends_at = now;
            if s.starts_at > now {
                s.starts_at = now;
            }
        }
        let s = s.clone();
        self.journal.append([&s], [])?;
        Ok(Some(s))
    }

    pub(crate) fn list(&self) -> Vec<Silence> {
        self.silences.values().cloned().collect()
    }

    /// The id of the first active silence matching the labels.
    pub(crate) fn matching(&self, labels: &Labels, now: OffsetDateTime) -> Option<&str> {
        self.silences
            .values()
            .find(|s| s.silences(labels, now))
            .map(|s| s.id.as_str())
    }

    /// Forgets silences expired for more than a day.
    pub(crate) fn gc(&mut self, now: OffsetDateTime) -> Result<()> {
        let old: Vec<String> = self
            .silences
            .values()
            .filter(|s| s.ends_at + time::Duration::DAY < now)
            .map(|s| s.id.clone())
            .collect();
        if old.is_empty() {
            return Ok(());
        }
        for id in &old {
            self.silences.remove(id);
        }
        self.journal.compact(self.silences.values())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        let mut l = Labels::default();
        for (k, v) in pairs {
            l.set(k, v);
        }
        l.0.insert("tag".into(), vec!["attack.t1059".into(), "web".into()]);
        l
    }

    fn check(op: MatchOp, name: &str, value: &str, expected: bool) {
        let l = labels(&[("rule", "r1"), ("host", "web1"), ("container", "nginx")]);
        let m = Matcher::new(name, op, value).unwrap();
        assert_eq!(m.matches(&l), expected, "{name} {op:?} {value}");
    }

    #[test]
    fn matchers() {
        check(MatchOp::Eq, "host", "web1", true);
        check(MatchOp::Eq, "host", "web", false);
        check(MatchOp::NotEq, "host", "web2", true);
        check(MatchOp::Regex, "host", "web.*", true);
        check(MatchOp::Regex, "host", "eb", false);
        check(MatchOp::NotRegex, "container", "ngi.*", false);
        check(MatchOp::Eq, "tag", "web", true);
        check(MatchOp::NotEq, "tag", "web", false);
        check(MatchOp::Eq, "missing", "", true);
        check(MatchOp::NotEq, "missing", "x", true);
    }

    #[test]
    fn requests_are_checked() {
        let now = OffsetDateTime::from_unix_timestamp(1_000_000).unwrap();
        let req = |m: Vec<Matcher>, d: Option<&str>, c: &str| NewSilence {
            matchers: m,
            starts_at: None,
            ends_at: None,
            duration: d.map(|d| crate::duration::parse_duration(d).unwrap()),
            comment: c.into(),
            created_by: None,
        };
        let host = || Matcher::new("host", MatchOp::Eq, "web1").unwrap();
        assert!(req(vec![host()], Some("1h"), "maint").build(now).is_ok());
        assert!(req(vec![], Some("1h"), "maint").build(now).is_err());
        assert!(req(vec![host()], None, "maint").build(now).is_err());
        assert!(req(vec![host()], Some("1h"), " ").build(now).is_err());
        let all = Matcher::new("host", MatchOp::Regex, ".*").unwrap();
        assert!(req(vec![all], Some("1h"), "maint").build(now).is_err());
        assert!(Matcher::new("host", MatchOp::Regex, "(").is_err());
    }
}
