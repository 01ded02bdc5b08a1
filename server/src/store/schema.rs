//! The tantivy schema of an event, and the conversions between the wire event,
//! the index document and the event JSON of the API.

use base64::Engine as _;
use std::collections::BTreeMap;

use logward_proto::{Event as WireEvent, Source, StreamKind};
use serde::Serialize;
use tantivy::schema::{
    DateOptions, DateTimePrecision, Field, IndexRecordOption, JsonObjectOptions, OwnedValue,
    STORED, STRING, Schema, TEXT, TextFieldIndexing, Value,
};
use tantivy::{DateTime, TantivyDocument};

/// Name of the tokenizer used for exact-match keyword values inside JSON objects.
const RAW: &str = "raw";

/// Handles to every field of the index schema.
#[derive(Clone, Debug)]
pub struct EventSchema {
    pub schema: Schema,
    pub id: Field,
    /// A 64-bit hash of `id`, a fast field that breaks timestamp ties in sort order.
    pub uid: Field,
    /// The store generation of the commit that added the document (see `manifest`).
    pub generation: Field,
    pub timestamp: Field,
    pub received_at: Field,
    pub host: Field,
    pub source: Field,
    pub stream: Field,
    pub message: Field,
    pub container: Field,
    pub fields: Field,
    /// The exact bytes of a message that is not valid UTF-8 (stored only; `message`
    /// holds its lossy text for search). Shown as `message_b64`.
    pub message_raw: Field,
}

impl EventSchema {
    /// Builds the schema. Keyword fields are exact and case-sensitive; `message` and
    /// the values under `fields` are tokenized full text.
    pub fn new() -> Self {
        let mut b = Schema::builder();
        let date = || {
            DateOptions::default()
                .set_indexed()
                .set_fast()
                .set_stored()
                .set_precision(DateTimePrecision::Nanoseconds)
        };
        let id = b.add_text_field("id", STRING | STORED);
        let uid = b.add_u64_field("_uid", tantivy::schema::FAST);
        let generation = b.add_u64_field(
            "_gen",
            tantivy::schema::NumericOptions::default()
                .set_indexed()
                .set_fast(),
        );
        let timestamp = b.add_date_field("timestamp", date());
        let received_at = b.add_date_field("received_at", date());
        let keyword = STRING | STORED | tantivy::schema::FAST;
        let host = b.add_text_field("host", keyword.clone());
        let source = b.add_text_field("source", keyword.clone());
        let stream = b.add_text_field("stream", keyword);
        let message = b.add_text_field("message", TEXT | STORED);
        let container = b.add_json_field(
            "container",
            JsonObjectOptions::default()
                .set_stored()
                .set_fast(RAW)
                .set_expand_dots_enabled()
                .set_indexing_options(
                    TextFieldIndexing::default()
                        .set_tokenizer(RAW)
                        .set_index_option(IndexRecordOption::Basic),
                ),
        );
        let fields = b.add_json_field(
            "fields",
            JsonObjectOptions::default()
                .set_stored()
                .set_fast(RAW)
                .set_expand_dots_enabled()
                .set_indexing_options(
                    TextFieldIndexing::default()
                        .set_tokenizer("default")
                        .set_index_option(IndexRecordOption::WithFreqsAndPositions),
                ),
        );
        let message_raw = b.add_bytes_field("message_raw", STORED);
        EventSchema {
            schema: b.build(),
            id,
            uid,
            generation,
            timestamp,
            received_at,
            host,
            source,
            stream,
            message,
            container,
            fields,
            message_raw,
        }
    }

    /// Turns a wire event into an index document.
    pub fn document(&self, event: &WireEvent, meta: &EventMeta<'_>) -> TantivyDocument {
        let mut doc = TantivyDocument::new();
        doc.add_text(self.id, meta.id);
        doc.add_u64(self.uid, meta.uid);
        doc.add_u64(self.generation, meta.generation);
        let ts = event_timestamp(event, meta.received_at_nanos);
        doc.add_date(self.timestamp, DateTime::from_timestamp_nanos(ts));
        doc.add_date(
            self.received_at,
            DateTime::from_timestamp_nanos(meta.received_at_nanos),
        );
        doc.add_text(self.host, &event.host);
        doc.add_text(self.source, source_name(event.source()));
        if let Some(stream) = stream_name(event.stream()) {
            doc.add_text(self.stream, stream);
        }
        doc.add_text(self.message, String::from_utf8_lossy(&event.message));
        if let Some(c) = &event.container {
            let mut obj = BTreeMap::new();
            for (key, value) in [
                ("id", &c.id),
                ("name", &c.name),
                ("image", &c.image),
                ("image_id", &c.image_id),
            ] {
                if !value.is_empty() {
                    obj.insert(key.to_owned(), OwnedValue::Str(value.clone()));
                }
            }
            if !c.labels.is_empty() {
                let labels = c
                    .labels
                    .iter()
                    .map(|(k, v)| (k.clone(), OwnedValue::Str(v.clone())));
                obj.insert("labels".to_owned(), OwnedValue::Object(labels.collect()));
            }
            doc.add_object(self.container, obj);
        }
        let mut fields: BTreeMap<String, OwnedValue> = event
            .fields
            .iter()
            .filter(|(_, v)| !v.values.is_empty())
            .map(|(k, v)| {
                let value = match v.values.as_slice() {
                    [one] => OwnedValue::Str(one.clone()),
                    many => OwnedValue::Array(many.iter().cloned().map(OwnedValue::Str).collect()),
                };
                (k.clone(), value)
            })
            .collect();
        if std::str::from_utf8(&event.message).is_err() {
            doc.add_bytes(self.message_raw, &event.message);
            fields.insert(
                "logward.invalid_utf8".to_owned(),
                OwnedValue::Str("true".to_owned()),
            );
        }
        if !fields.is_empty() {
            doc.add_object(self.fields, fields);
        }
        doc
    }

    /// Turns a stored document back into the API's event JSON.
    pub fn event_json(&self, doc: &TantivyDocument) -> EventJson {
        let text = |f: Field| doc.get_first(f).and_then(|v| v.as_str().map(str::to_owned));
        let date = |f: Field| {
            doc.get_first(f)
                .and_then(|v| v.as_datetime())
                .map(|d| format_nanos(d.into_timestamp_nanos()))
        };
        let object = |f: Field| doc.get_first(f).map(|v| owned_to_json(OwnedValue::from(v)));
        let container = object(self.container).and_then(|c| match c {
            serde_json::Value::Object(map) => Some(map),
            _ => None,
        });
        let fields = match object(self.fields) {
            Some(serde_json::Value::Object(map)) => map,
            _ => serde_json::Map::new(),
        };
        EventJson {
            id: text(self.id).unwrap_or_default(),
            timestamp: date(self.timestamp).unwrap_or_default(),
            received_at: date(self.received_at),
            host: text(self.host).unwrap_or_default(),
            source: text(self.source).unwrap_or_default(),
            message: text(self.message).unwrap_or_default(),
            message_b64: doc
                .get_first(self.message_raw)
                .and_then(|v| v.as_bytes())
                .map(|raw| base64::engine::general_purpose::STANDARD.encode(raw)),
            stream: text(self.stream),
            container,
            fields,
        }
    }
}

impl Default for EventSchema {
    fn default() -> Self {
        Self::new()
    }
}

/// Server-side facts about an event that the wire event does not carry.
#[derive(Debug)]
pub struct EventMeta<'a> {
    /// `<collector id>-<sequence>-<index in batch>`.
    pub id: &'a str,
    pub uid: u64,
    pub received_at_nanos: i64,
    /// The store generation this document is committed in.
    pub generation: u64,
}

/// The timestamp an event is stored under: its own, or the receive time when it has none.
pub fn event_timestamp(event: &WireEvent, received_at_nanos: i64) -> i64 {
    if event.timestamp_nanos == 0 {
        received_at_nanos
    } else {
        event.timestamp_nanos
    }
}

/// An event as the API shows it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct EventJson {
    pub id: String,
    /// RFC 3339, UTC, nine fractional digits.
    pub timestamp: String,
    pub received_at: Option<String>,
    pub host: String,
    pub source: String,
    pub message: String,
    /// Base64 of the exact bytes, present only when the message is not valid UTF-8
    /// (`message` then holds its lossy text, with U+FFFD for the bad bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_b64: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    pub container: Option<serde_json::Map<String, serde_json::Value>>,
    pub fields: serde_json::Map<String, serde_json::Value>,
}

pub fn source_name(source: Source) -> &'static str {
    match source {
        Source::Docker => "docker",
        Source::Journald => "journald",
        Source::Collector => "collector",
        Source::Unspecified => "unknown",
    }
}

pub fn stream_name(stream: StreamKind) -> Option<&'static str> {
    match stream {
        StreamKind::Stdout => Some("stdout"),
        StreamKind::Stderr => Some("stderr"),
        StreamKind::Unspecified => None,
    }
}

/// Formats Unix nanoseconds as RFC 3339 in UTC with nine fractional digits.
pub fn format_nanos(nanos: i64) -> String {
    const FORMAT: &[time::format_description::FormatItem<'_>] = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:9]Z"
    );
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(nanos))
        .ok()
        .and_then(|t| t.format(FORMAT).ok())
        .unwrap_or_else(|| nanos.to_string())
}

fn owned_to_json(value: OwnedValue) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        OwnedValue::Null => J::Null,
        OwnedValue::Str(s) => J::String(s),
        OwnedValue::U64(n) => J::from(n),
        OwnedValue::I64(n) => J::from(n),
        OwnedValue::F64(n) => J::from(n),
        OwnedValue::Bool(b) => J::Bool(b),
        OwnedValue::Date(d) => J::String(format_nanos(d.into_timestamp_nanos())),
        OwnedValue::Array(items) => J::Array(items.into_iter().map(owned_to_json).collect()),
        OwnedValue::Object(entries) => J::Object(
            entries
                .into_iter()
                .map(|(k, v)| (k, owned_to_json(v)))
                .collect(),
        ),
        other => J::String(format!("{other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::event_id::event_uid;
    use logward_proto::{Container, Values};

    #[test]
    fn document_round_trips_to_event_json() {
        let schema = EventSchema::new();
        let event = WireEvent {
            timestamp_nanos: 1_700_000_000_123_456_789,
            host: "web1".into(),
            source: Source::Docker as i32,
            message: "hello \u{e9}".as_bytes().to_vec().into(),
            stream: StreamKind::Stderr as i32,
            container: Some(Container {
                id: "abc".into(),
                name: "nginx".into(),
                image: "nginx:1.25".into(),
                image_id: String::new(),
                labels: [("app".to_owned(), "api".to_owned())].into(),
            }),
            fields: [(
                "multi".to_owned(),
                Values {
                    values: vec!["a".into(), "b".into()],
                },
            )]
            .into(),
        };
        let meta = EventMeta {
            id: "c-1-0",
            uid: event_uid("c-1-0"),
            received_at_nanos: 5,
            generation: 1,
        };
        let json = schema.event_json(&schema.document(&event, &meta));
        assert_eq!(json.id, "c-1-0");
        assert_eq!(json.timestamp, "2023-11-14T22:13:20.123456789Z");
        assert_eq!(
            json.received_at.as_deref(),
            Some("1970-01-01T00:00:00.000000005Z")
        );
        assert_eq!(json.stream.as_deref(), Some("stderr"));
        assert_eq!(json.message, "hello \u{e9}");
        let c = json.container.expect("container");
        assert_eq!(c["name"], "nginx");
        assert_eq!(c["labels"]["app"], "api");
        assert!(c.get("image_id").is_none());
        assert_eq!(json.fields["multi"], serde_json::json!(["a", "b"]));
    }

    #[test]
    fn invalid_utf8_is_flagged_not_dropped() {
        let schema = EventSchema::new();
        let event = WireEvent {
            message: vec![b'a', 0xff, b'b'].into(),
            ..Default::default()
        };
        let meta = EventMeta {
            id: "x",
            uid: 1,
            received_at_nanos: 7,
            generation: 1,
        };
        let json = schema.event_json(&schema.document(&event, &meta));
        assert_eq!(json.message, "a\u{fffd}b");
        assert_eq!(json.fields["logward.invalid_utf8"], "true");
        // A zero timestamp falls back to the receive time.
        assert_eq!(json.timestamp, "1970-01-01T00:00:00.000000007Z");
    }
}
