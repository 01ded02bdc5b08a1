//! The field catalog of `GET /api/v1/fields`: the fixed fields of the field table and
//! the label and further-field names seen in the newest partitions.

use serde::Serialize;

use crate::store::Store;

/// One entry of `GET /api/v1/fields`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct FieldInfo {
    pub name: String,
    /// `keyword` (exact), `text` (tokenized), `date` or `object`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// A query may name it (`name:value`).
    pub searchable: bool,
    /// `GET /api/v1/aggregate` may count its values.
    pub aggregatable: bool,
}

/// Most dynamic field names (labels, further fields) listed.
const MAX_DYNAMIC_FIELDS: usize = 1_000;

/// The fixed fields of the event and, from the two newest partitions, the label and
/// further-field names seen in the data.
pub fn field_catalog(store: &Store) -> Vec<FieldInfo> {
    let info = |name: &str, kind, aggregatable| FieldInfo {
        name: name.to_owned(),
        kind,
        searchable: true,
        aggregatable,
    };
    let mut out = vec![
        info("id", "keyword", false),
        info("timestamp", "date", true),
        info("received_at", "date", false),
        info("host", "keyword", true),
        info("source", "keyword", true),
        info("stream", "keyword", true),
        info("message", "text", false),
        info("container.id", "keyword", true),
        info("container.name", "keyword", true),
        info("container.image", "keyword", true),
        info("container.image_id", "keyword", true),
    ];
    let mut dynamic = std::collections::BTreeSet::new();
    for (_, searcher) in store.searchers(None, None).iter().rev().take(2) {
        for segment in searcher.segment_readers() {
            for meta in segment.fields_metadata().unwrap_or_default() {
                let name = meta.field_name;
                let keep = name.starts_with("container.labels.")
                    || (name.starts_with("fields.") && name.len() > "fields.".len());
                if keep && dynamic.len() < MAX_DYNAMIC_FIELDS {
                    dynamic.insert(name);
                }
            }
        }
    }
    for name in dynamic {
        let kind = if name.starts_with("fields.") {
            "text"
        } else {
            "keyword"
        };
        out.push(info(&name, kind, true));
    }
    out
}
