//! The field catalog of `GET /api/v1/fields`: the fixed fields of the field table and
//! the label and further-field names seen in the newest partitions.

use serde::Serialize;

use crate::store::Store;
use crate::store::fields::{FAMILIES, FIELDS, lookup};

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
    let mut out: Vec<FieldInfo> = FIELDS
        .iter()
        .map(|f| FieldInfo {
            name: f.name.to_owned(),
            kind: f.kind.name(),
            searchable: f.searchable,
            aggregatable: f.aggregatable,
        })
        .collect();
    let mut dynamic = std::collections::BTreeSet::new();
    for (_, searcher) in store.searchers(None, None).iter().rev().take(2) {
        for segment in searcher.segment_readers() {
            for meta in segment.fields_metadata().unwrap_or_default() {
                let name = meta.field_name;
                let family = FAMILIES.iter().any(|(prefix, ..)| name.starts_with(prefix));
                if family && lookup(&name).is_some() && dynamic.len() < MAX_DYNAMIC_FIELDS {
                    dynamic.insert(name);
                }
            }
        }
    }
    for name in dynamic {
        if let Some((kind, aggregatable)) = lookup(&name) {
            out.push(FieldInfo {
                kind: kind.name(),
                searchable: true,
                aggregatable,
                name,
            });
        }
    }
    out
}
