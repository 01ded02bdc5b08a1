//! The one field table: every field of the event JSON with its kind and what it may be
//! used for. The schema's checks, the query parser's field check, aggregations,
//! `GET /api/v1/fields` and the detector's view all read it.

/// How a field's values are indexed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// Exact, case-sensitive values.
    Keyword,
    /// Tokenized full text.
    Text,
    /// A timestamp.
    Date,
}

impl FieldKind {
    /// The name `GET /api/v1/fields` gives the kind.
    pub fn name(self) -> &'static str {
        match self {
            FieldKind::Keyword => "keyword",
            FieldKind::Text => "text",
            FieldKind::Date => "date",
        }
    }
}

/// One fixed field of the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldDef {
    /// The dotted name a query, an aggregation or a rule uses.
    pub name: &'static str,
    pub kind: FieldKind,
    /// A query may name it (`name:value`).
    pub searchable: bool,
    /// `GET /api/v1/aggregate` may count it: by value (terms) or, for a date, in a
    /// histogram.
    pub aggregatable: bool,
}

const fn field(name: &'static str, kind: FieldKind, aggregatable: bool) -> FieldDef {
    FieldDef {
        name,
        kind,
        searchable: true,
        aggregatable,
    }
}

/// The fixed fields, in the order the API lists them.
pub const FIELDS: &[FieldDef] = &[
    field("id", FieldKind::Keyword, false),
    field("timestamp", FieldKind::Date, true),
    field("received_at", FieldKind::Date, false),
    field("host", FieldKind::Keyword, true),
    field("source", FieldKind::Keyword, true),
    field("stream", FieldKind::Keyword, true),
    field("message", FieldKind::Text, false),
    field("container.id", FieldKind::Keyword, true),
    field("container.name", FieldKind::Keyword, true),
    field("container.image", FieldKind::Keyword, true),
    field("container.image_id", FieldKind::Keyword, true),
];

/// Families of dynamic fields: a prefix, the placeholder the docs give the rest, the
/// kind, and whether their values can be counted.
pub const FAMILIES: &[(&str, &str, FieldKind, bool)] = &[
    ("container.labels.", "<label>", FieldKind::Keyword, true),
    ("fields.", "<name>", FieldKind::Text, true),
];

/// The JSON objects a query may name whole (`container:x` searches every sub-field).
const OBJECTS: &[&str] = &["container", "container.labels", "fields"];

/// The fixed field or the family a name belongs to, as (kind, aggregatable).
pub fn lookup(name: &str) -> Option<(FieldKind, bool)> {
    if let Some(f) = FIELDS.iter().find(|f| f.name == name) {
        return Some((f.kind, f.aggregatable));
    }
    FAMILIES.iter().find_map(|(prefix, _, kind, agg)| {
        name.strip_prefix(prefix)
            .filter(|rest| !rest.is_empty())
            .map(|_| (*kind, *agg))
    })
}

/// True for a name a query may use: a field, a family member, an object, or a path
/// under `container.labels.` (label names are free).
pub fn is_searchable(name: &str) -> bool {
    OBJECTS.contains(&name)
        || name.starts_with("container.labels.")
        || FIELDS.iter().any(|f| f.name == name && f.searchable)
        || lookup(name).is_some()
}

/// True for a field whose values a terms aggregation can count.
pub fn is_terms_aggregatable(name: &str) -> bool {
    lookup(name).is_some_and(|(kind, agg)| agg && kind != FieldKind::Date)
}

/// The names a query may use, for error messages.
pub fn searchable_list() -> String {
    names(|f| f.searchable).join(", ")
}

/// The names a terms aggregation may count, for error messages.
pub fn terms_list() -> String {
    let mut all = names(|f| f.aggregatable && f.kind != FieldKind::Date);
    let last = all.pop().unwrap_or_default();
    format!("{} or {last}", all.join(", "))
}

fn names(keep: impl Fn(&FieldDef) -> bool) -> Vec<String> {
    FIELDS
        .iter()
        .filter(|f| keep(f))
        .map(|f| f.name.to_owned())
        .chain(
            FAMILIES
                .iter()
                .map(|(prefix, placeholder, _, _)| format!("{prefix}{placeholder}")),
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str, searchable: bool, terms: bool) {
        assert_eq!(is_searchable(name), searchable, "searchable {name:?}");
        assert_eq!(is_terms_aggregatable(name), terms, "terms {name:?}");
    }

    #[test]
    fn the_table_answers_for_fixed_fields_families_and_objects() {
        check("host", true, true);
        check("message", true, false);
        check("timestamp", true, false);
        check("id", true, false);
        check("container.image_id", true, true);
        check("container.labels.app", true, true);
        check("container.labels.", true, false);
        check("container", true, false);
        check("container.labels", true, false);
        check("fields.user", true, true);
        check("fields.", false, false);
        check("fields", true, false);
        check("hostname", false, false);
        check("container.nope", false, false);
    }

    #[test]
    fn lists_name_the_fields_in_table_order() {
        assert_eq!(
            searchable_list(),
            "id, timestamp, received_at, host, source, stream, message, container.id, \
             container.name, container.image, container.image_id, container.labels.<label>, \
             fields.<name>"
        );
        assert_eq!(
            terms_list(),
            "host, source, stream, container.id, container.name, container.image, \
             container.image_id, container.labels.<label> or fields.<name>"
        );
    }
}
