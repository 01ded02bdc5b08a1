//! The neutral event view the engine reads, an owned implementation, and JSON flattening.

use std::borrow::Cow;
use std::collections::HashMap;

use serde_json::Value;

/// The values of one field of an event. A field may be absent, single- or multi-valued.
#[derive(Debug, Clone, Default)]
pub struct FieldValues<'a>(Vals<'a>);

#[derive(Debug, Clone, Default)]
enum Vals<'a> {
    #[default]
    Absent,
    One(Cow<'a, str>),
    Slice(&'a [String]),
    Many(Vec<Cow<'a, str>>),
}

impl<'a> FieldValues<'a> {
    /// The field does not exist (or is null).
    pub fn absent() -> Self {
        Self(Vals::Absent)
    }
    /// One value.
    pub fn one(v: impl Into<Cow<'a, str>>) -> Self {
        Self(Vals::One(v.into()))
    }
    /// Values borrowed from a slice (an empty slice is an absent field).
    pub fn slice(v: &'a [String]) -> Self {
        if v.is_empty() {
            Self::absent()
        } else {
            Self(Vals::Slice(v))
        }
    }
    /// Several values (none is an absent field).
    pub fn many(v: Vec<Cow<'a, str>>) -> Self {
        if v.is_empty() {
            Self::absent()
        } else {
            Self(Vals::Many(v))
        }
    }
    /// Whether the field exists.
    pub fn is_present(&self) -> bool {
        !matches!(self.0, Vals::Absent)
    }
    /// The values, in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        let (one, slice, many): (Option<&str>, &[String], &[Cow<'a, str>]) = match &self.0 {
            Vals::Absent => (None, &[], &[]),
            Vals::One(v) => (Some(v), &[], &[]),
            Vals::Slice(s) => (None, s, &[]),
            Vals::Many(m) => (None, &[], m),
        };
        one.into_iter()
            .chain(slice.iter().map(String::as_str))
            .chain(many.iter().map(|c| c.as_ref()))
    }
    /// The first value.
    pub fn first(&self) -> Option<&str> {
        self.iter().next()
    }
}

/// Field lookup on an event: the engine's one plug point for event types.
///
/// Field names are logward names after field mapping (`message`, `host`, `container.name`,
/// `container.labels.app`, `fields.SYSLOG_IDENTIFIER` or bare `SYSLOG_IDENTIFIER`).
pub trait EventView {
    /// The values of `field`; absent when the event has no such field or it is null.
    fn get(&self, field: &str) -> FieldValues<'_>;
}

/// An owned event: a flat map of field name to values. Used by tests and `rules test`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnedEvent {
    fields: HashMap<String, Vec<String>>,
}

impl OwnedEvent {
    /// An empty event.
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds a value to `field` (repeated calls make a multi-valued field).
    pub fn push(&mut self, field: impl Into<String>, value: impl Into<String>) {
        self.fields
            .entry(field.into())
            .or_default()
            .push(value.into());
    }
    /// Builder form of [`OwnedEvent::push`].
    #[must_use]
    pub fn with(mut self, field: &str, value: &str) -> Self {
        self.push(field, value);
        self
    }
    /// The field names.
    pub fn field_names(&self) -> impl Iterator<Item = &str> {
        self.fields.keys().map(String::as_str)
    }

    /// Flattens a JSON object: logward's event JSON (see README "The event") or a flat
    /// field map. Nested objects become dotted names (`container.labels.app`), arrays become
    /// multi-valued fields, numbers and booleans become their text, nulls are left out.
    /// Every `fields.X` is also reachable as bare `X` unless an event field has that name.
    pub fn from_json(value: &Value) -> Self {
        let mut ev = Self::new();
        if let Value::Object(map) = value {
            for (k, v) in map {
                ev.flatten(k.clone(), v);
            }
        }
        let aliases: Vec<(String, Vec<String>)> = ev
            .fields
            .iter()
            .filter_map(|(k, v)| k.strip_prefix("fields.").map(|b| (b.to_owned(), v.clone())))
            .collect();
        for (bare, vals) in aliases {
            ev.fields.entry(bare).or_insert(vals);
        }
        ev
    }

    fn flatten(&mut self, name: String, v: &Value) {
        match v {
            Value::Null => {}
            Value::Object(m) => {
                for (k, v) in m {
                    self.flatten(format!("{name}.{k}"), v);
                }
            }
            Value::Array(a) => {
                for v in a {
                    match v {
                        Value::Null => {}
                        Value::String(s) => self.push(name.clone(), s.clone()),
                        Value::Object(_) | Value::Array(_) => self.flatten(name.clone(), v),
                        other => self.push(name.clone(), other.to_string()),
                    }
                }
            }
            Value::String(s) => self.push(name, s.clone()),
            other => self.push(name, other.to_string()),
        }
    }
}

impl EventView for OwnedEvent {
    fn get(&self, field: &str) -> FieldValues<'_> {
        self.fields
            .get(field)
            .map_or_else(FieldValues::absent, |v| FieldValues::slice(v))
    }
}

impl<T: EventView + ?Sized> EventView for &T {
    fn get(&self, field: &str) -> FieldValues<'_> {
        (**self).get(field)
    }
}
