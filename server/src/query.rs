//! Parsing of search requests: parameters, times, cursors and the query string. Pure
//! functions; every error says what is wrong and where, and becomes a 400.

use std::ops::Bound;

use tantivy::query::{AllQuery, BooleanQuery, Occur, Query, QueryParser, RangeQuery};
use tantivy::query_grammar::{UserInputAst, UserInputLeaf};
use tantivy::{DateTime, Term};

use crate::schema::{CONTAINER_FIELDS, EventSchema, QUERYABLE_FIELDS};

/// The default and the largest page size.
pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 10_000;
/// Longest query string accepted.
pub const MAX_QUERY_BYTES: usize = 16 * 1024;
/// Deepest nesting of parentheses accepted.
pub const MAX_NESTING: usize = 16;
/// Most clauses (terms, phrases, ranges) in one query.
pub const MAX_CLAUSES: usize = 256;
/// Shortest prefix before a trailing `*`: a shorter one expands to too many terms.
pub const MIN_PREFIX_CHARS: usize = 2;
/// Largest limit that is still clamped; a number past it is an error.
pub const ABSURD_LIMIT: u64 = 1_000_000_000;

/// A request parameter or query that cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("unknown parameter '{name}'; expected {expected}")]
    UnknownParameter {
        name: String,
        expected: &'static str,
    },
    #[error("parameter '{0}' is given more than once")]
    Repeated(String),
    #[error("parameter '{name}': {message}")]
    BadParameter { name: &'static str, message: String },
    #[error("query syntax error in {query:?}: {message}")]
    Syntax { query: String, message: String },
    #[error("unknown field '{field}'; known fields are {known}")]
    UnknownField { field: String, known: String },
    #[error("query is {0} bytes long, longer than the {MAX_QUERY_BYTES}-byte limit")]
    TooLong(usize),
    #[error("invalid query: {0}")]
    Invalid(String),
    #[error("query too complex: {0}")]
    TooComplex(String),
}

/// Sort order by timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Desc,
    Asc,
}

/// Where the previous page ended: the sort key of its last hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub order: Order,
    pub timestamp_nanos: i64,
    pub uid: u64,
}

impl Cursor {
    /// Opaque text form: order letter, timestamp, uid.
    pub fn encode(&self) -> String {
        let o = if self.order == Order::Desc { 'd' } else { 'a' };
        format!("{o}{}.{:x}", self.timestamp_nanos, self.uid)
    }

    pub fn decode(text: &str) -> Option<Cursor> {
        let order = match text.as_bytes().first()? {
            b'd' => Order::Desc,
            b'a' => Order::Asc,
            _ => return None,
        };
        let (ts, uid) = text.get(1..)?.split_once('.')?;
        Some(Cursor {
            order,
            timestamp_nanos: ts.parse().ok()?,
            uid: u64::from_str_radix(uid, 16).ok()?,
        })
    }
}

/// A validated search request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchParams {
    pub query: String,
    /// Inclusive lower bound, Unix nanoseconds.
    pub start: Option<i64>,
    /// Exclusive upper bound, Unix nanoseconds.
    pub end: Option<i64>,
    pub limit: usize,
    pub cursor: Option<Cursor>,
    pub order: Order,
    /// Field projection: only these fields of each hit; `None` is the whole event.
    pub fields: Option<Vec<String>>,
    /// Add a highlighted snippet of `message` to each hit.
    pub highlight: bool,
}

/// Parameters of `GET /api/v1/search`.
const SEARCH_PARAMS: &str = "q, start, end, limit, cursor, order, fields or highlight";

/// Validates the raw query-string pairs of `GET /api/v1/search`.
pub fn parse_search_params(
    pairs: &[(String, String)],
    now_nanos: i64,
) -> Result<SearchParams, QueryError> {
    let mut seen: Vec<&str> = Vec::new();
    let mut p = SearchParams {
        query: String::new(),
        start: None,
        end: None,
        limit: DEFAULT_LIMIT,
        cursor: None,
        order: Order::Desc,
        fields: None,
        highlight: false,
    };
    let mut cursor_text = None;
    for (name, value) in pairs {
        if seen.contains(&name.as_str()) {
            return Err(QueryError::Repeated(name.clone()));
        }
        seen.push(name);
        match name.as_str() {
            "q" => p.query = value.clone(),
            "start" => p.start = Some(parse_time(value, now_nanos).map_err(|m| bad("start", m))?),
            "end" => p.end = Some(parse_time(value, now_nanos).map_err(|m| bad("end", m))?),
            "limit" => p.limit = parse_limit(value).map_err(|m| bad("limit", m))?,
            "order" => {
                p.order = match value.as_str() {
                    "desc" => Order::Desc,
                    "asc" => Order::Asc,
                    _ => {
                        return Err(bad(
                            "order",
                            format!("{value:?} is neither 'desc' nor 'asc'"),
                        ));
                    }
                }
            }
            "cursor" => cursor_text = Some(value),
            "fields" => p.fields = Some(parse_projection(value)?),
            "highlight" => p.highlight = parse_bool("highlight", value)?,
            other => {
                return Err(QueryError::UnknownParameter {
                    name: other.to_owned(),
                    expected: SEARCH_PARAMS,
                });
            }
        }
    }
    if p.query.len() > MAX_QUERY_BYTES {
        return Err(QueryError::TooLong(p.query.len()));
    }
    if let (Some(s), Some(e)) = (p.start, p.end)
        && s >= e
    {
        return Err(bad("end", "must be later than start".to_owned()));
    }
    if let Some(text) = cursor_text {
        let cursor = Cursor::decode(text).ok_or_else(|| {
            bad(
                "cursor",
                format!("{text:?} is not a cursor returned by this API"),
            )
        })?;
        if cursor.order != p.order {
            return Err(bad(
                "cursor",
                "was made for the other sort order".to_owned(),
            ));
        }
        p.cursor = Some(cursor);
    }
    Ok(p)
}

fn bad(name: &'static str, message: String) -> QueryError {
    QueryError::BadParameter { name, message }
}

fn parse_limit(value: &str) -> Result<usize, String> {
    let n: u64 = value
        .parse()
        .map_err(|_| format!("{value:?} is not a whole number from 0 to {ABSURD_LIMIT}"))?;
    if n > ABSURD_LIMIT {
        return Err(format!(
            "{value} is absurd; pages hold at most {MAX_LIMIT} hits (larger limits up to {ABSURD_LIMIT} are clamped)"
        ));
    }
    Ok(usize::try_from(n).unwrap_or(MAX_LIMIT).min(MAX_LIMIT))
}

fn parse_bool(name: &'static str, value: &str) -> Result<bool, QueryError> {
    match value {
        "true" | "1" | "" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(bad(name, format!("{value:?} is neither true nor false"))),
    }
}

/// Parses `fields=a,b,container.name`: every name must be a field of the event.
fn parse_projection(value: &str) -> Result<Vec<String>, QueryError> {
    let names: Vec<String> = value
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .collect();
    if names.is_empty() {
        return Err(bad("fields", "names no field".to_owned()));
    }
    if names.len() > 64 {
        return Err(bad("fields", "names more than 64 fields".to_owned()));
    }
    for name in &names {
        if !is_known_field(name) {
            return Err(unknown_field(name));
        }
    }
    Ok(names)
}

/// Parameters other than q, start and end, as (name, value).
pub type OtherParams<'a> = Vec<(&'a str, &'a str)>;

/// The query and time range that count, aggregate and tail share.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RangeParams {
    pub query: String,
    pub start: Option<i64>,
    pub end: Option<i64>,
}

/// Splits raw pairs into known parameters, refusing unknown and repeated ones, and
/// reads `q`, `start` and `end` (when `allowed` has them).
pub fn parse_common<'a>(
    pairs: &'a [(String, String)],
    allowed: &[&str],
    expected: &'static str,
    now_nanos: i64,
) -> Result<(RangeParams, OtherParams<'a>), QueryError> {
    let mut seen: Vec<&str> = Vec::new();
    let mut range = RangeParams::default();
    let mut rest = Vec::new();
    for (name, value) in pairs {
        if seen.contains(&name.as_str()) {
            return Err(QueryError::Repeated(name.clone()));
        }
        seen.push(name);
        if !allowed.contains(&name.as_str()) {
            return Err(QueryError::UnknownParameter {
                name: name.clone(),
                expected,
            });
        }
        match name.as_str() {
            "q" => range.query = value.clone(),
            "start" => {
                range.start = Some(parse_time(value, now_nanos).map_err(|m| bad("start", m))?);
            }
            "end" => range.end = Some(parse_time(value, now_nanos).map_err(|m| bad("end", m))?),
            other => rest.push((other, value.as_str())),
        }
    }
    if range.query.len() > MAX_QUERY_BYTES {
        return Err(QueryError::TooLong(range.query.len()));
    }
    if let (Some(s), Some(e)) = (range.start, range.end)
        && s >= e
    {
        return Err(bad("end", "must be later than start".to_owned()));
    }
    Ok((range, rest))
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

/// Builds the tantivy query for a query string and an optional time range.
/// Field names are checked against the event schema first, so an unknown field is
/// named in the error instead of silently matching nothing.
pub fn build_query(
    parser: &QueryParser,
    schema: &EventSchema,
    q: &str,
    start: Option<i64>,
    end: Option<i64>,
) -> Result<Box<dyn Query>, QueryError> {
    let trimmed = q.trim();
    let user: Box<dyn Query> = if trimmed.is_empty() || trimmed == "*" {
        Box::new(AllQuery)
    } else {
        check_nesting(trimmed)?;
        let ast =
            tantivy::query_grammar::parse_query(trimmed).map_err(|_| syntax_error(trimmed))?;
        let mut clauses = 0;
        check_fields(&ast, &mut clauses)?;
        parser
            .parse_query(trimmed)
            .map_err(|e| map_parser_error(trimmed, &e))?
    };
    if start.is_none() && end.is_none() {
        return Ok(user);
    }
    let bound = |nanos: Option<i64>, inclusive: bool| match nanos {
        None => Bound::Unbounded,
        Some(n) => {
            let term = Term::from_field_date(schema.timestamp, DateTime::from_timestamp_nanos(n));
            if inclusive {
                Bound::Included(term)
            } else {
                Bound::Excluded(term)
            }
        }
    };
    let range = RangeQuery::new(bound(start, true), bound(end, false));
    Ok(Box::new(BooleanQuery::new(vec![
        (Occur::Must, user),
        (Occur::Must, Box::new(range)),
    ])))
}

/// Refuses nesting deeper than [`MAX_NESTING`] before the recursive parser sees it.
fn check_nesting(q: &str) -> Result<(), QueryError> {
    let (mut depth, mut deepest, mut quoted, mut escaped) = (0_usize, 0_usize, false, false);
    for c in q.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            '(' if !quoted => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            ')' if !quoted => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    if deepest > MAX_NESTING {
        return Err(QueryError::TooComplex(format!(
            "parentheses nest {deepest} deep; at most {MAX_NESTING} are allowed"
        )));
    }
    Ok(())
}

fn syntax_error(q: &str) -> QueryError {
    let (_, errors) = tantivy::query_grammar::parse_query_lenient(q);
    let message = match errors.first() {
        Some(e) => format!("{} at character {}", e.message, e.pos),
        None => "cannot parse".to_owned(),
    };
    QueryError::Syntax {
        query: q.to_owned(),
        message,
    }
}

fn map_parser_error(q: &str, e: &tantivy::query::QueryParserError) -> QueryError {
    use tantivy::query::QueryParserError as E;
    match e {
        E::FieldDoesNotExist(field) => unknown_field(field),
        E::SyntaxError(m) => QueryError::Syntax {
            query: q.to_owned(),
            message: m.clone(),
        },
        other => QueryError::Invalid(other.to_string()),
    }
}

pub fn unknown_field(field: &str) -> QueryError {
    QueryError::UnknownField {
        field: field.to_owned(),
        known: "id, timestamp, received_at, host, source, stream, message, container.id, \
                container.name, container.image, container.image_id, container.labels.<label>, \
                fields.<name>"
            .to_owned(),
    }
}

/// Checks that every field the query names exists in the event JSON, that no prefix
/// is too broad, and that the query has at most [`MAX_CLAUSES`] leaves.
fn check_fields(ast: &UserInputAst, clauses: &mut usize) -> Result<(), QueryError> {
    match ast {
        UserInputAst::Clause(subs) => subs
            .iter()
            .try_for_each(|(_, sub)| check_fields(sub, clauses)),
        UserInputAst::Boost(sub, _) => check_fields(sub, clauses),
        UserInputAst::Leaf(leaf) => {
            *clauses += 1;
            if *clauses > MAX_CLAUSES {
                return Err(QueryError::TooComplex(format!(
                    "more than {MAX_CLAUSES} terms"
                )));
            }
            let field = match leaf.as_ref() {
                UserInputLeaf::Literal(lit) => {
                    let wild = lit.prefix || lit.phrase.contains(['*', '?']);
                    let solid = lit
                        .phrase
                        .chars()
                        .filter(|c| !matches!(c, '*' | '?'))
                        .count();
                    if wild && solid < MIN_PREFIX_CHARS {
                        return Err(QueryError::TooComplex(format!(
                            "the wildcard {:?} is too broad; give at least {MIN_PREFIX_CHARS} other characters beside '*' and '?'",
                            lit.phrase
                        )));
                    }
                    lit.field_name.as_deref()
                }
                UserInputLeaf::Range { field, .. }
                | UserInputLeaf::Set { field, .. }
                | UserInputLeaf::Regex { field, .. } => field.as_deref(),
                UserInputLeaf::Exists { field } => {
                    if matches!(field.as_str(), "message" | "id") {
                        return Err(QueryError::Invalid(format!(
                            "'{field}:*' is not supported: existence queries work on host, source, \
                             stream, timestamp, received_at, container.* and fields.*"
                        )));
                    }
                    Some(field.as_str())
                }
                UserInputLeaf::All => None,
            };
            match field {
                Some(f) if !is_known_field(f) => Err(unknown_field(f)),
                _ => Ok(()),
            }
        }
    }
}

/// True for a field of the event JSON a query or projection may name.
pub fn is_known_field(name: &str) -> bool {
    if QUERYABLE_FIELDS.contains(&name) {
        return true;
    }
    if let Some(sub) = name.strip_prefix("container.") {
        return CONTAINER_FIELDS.contains(&sub) || sub == "labels" || sub.starts_with("labels.");
    }
    name.strip_prefix("fields.")
        .is_some_and(|sub| !sub.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000_000_000;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// One helper for the whole table: the parsed params, or the error text.
    fn check(input: &[(&str, &str)], expected: &Result<SearchParams, &str>) {
        let got = parse_search_params(&pairs(input), NOW).map_err(|e| e.to_string());
        match (&got, expected) {
            (Ok(g), Ok(e)) => assert_eq!(g, e, "input {input:?}"),
            (Err(g), Err(e)) => assert!(g.contains(e), "input {input:?}: error {g:?} lacks {e:?}"),
            _ => panic!("input {input:?}: got {got:?}, expected {expected:?}"),
        }
    }

    fn params() -> SearchParams {
        SearchParams {
            query: String::new(),
            start: None,
            end: None,
            limit: 100,
            cursor: None,
            order: Order::Desc,
            fields: None,
            highlight: false,
        }
    }

    #[test]
    fn search_parameters() {
        check(&[], &Ok(params()));
        check(
            &[("q", "error"), ("limit", "5"), ("order", "asc")],
            &Ok(SearchParams {
                query: "error".into(),
                limit: 5,
                order: Order::Asc,
                ..params()
            }),
        );
        check(
            &[("limit", "99999999")],
            &Ok(SearchParams {
                limit: MAX_LIMIT,
                ..params()
            }),
        );
        check(
            &[("limit", "0")],
            &Ok(SearchParams {
                limit: 0,
                ..params()
            }),
        );
        check(&[("limit", "-1")], &Err("parameter 'limit'"));
        check(&[("limit", "ten")], &Err("not a whole number"));
        check(
            &[("limit", "99999999999999999999999")],
            &Err("not a whole number"),
        );
        check(&[("limit", "2000000000")], &Err("absurd"));
        check(&[("fields", "id,colour")], &Err("unknown field 'colour'"));
        check(&[("fields", ",")], &Err("names no field"));
        check(&[("highlight", "maybe")], &Err("neither true nor false"));
        check(
            &[
                ("fields", "id, container.labels.a.b"),
                ("highlight", "true"),
            ],
            &Ok(SearchParams {
                fields: Some(vec!["id".into(), "container.labels.a.b".into()]),
                highlight: true,
                ..params()
            }),
        );
        check(&[("order", "up")], &Err("neither 'desc' nor 'asc'"));
        check(&[("start", "yesterday")], &Err("parameter 'start'"));
        check(
            &[("start", "now-1h")],
            &Ok(SearchParams {
                start: Some(NOW - 3_600_000_000_000),
                ..params()
            }),
        );
        check(
            &[("end", "1700000000000")],
            &Ok(SearchParams {
                end: Some(NOW),
                ..params()
            }),
        );
        check(
            &[("start", "2023-11-14T22:13:20Z")],
            &Ok(SearchParams {
                start: Some(NOW),
                ..params()
            }),
        );
        check(
            &[("start", "now"), ("end", "now-1m")],
            &Err("later than start"),
        );
        check(&[("colour", "red")], &Err("unknown parameter 'colour'"));
        check(&[("q", "a"), ("q", "b")], &Err("more than once"));
        check(&[("cursor", "zzz")], &Err("parameter 'cursor'"));
        check(&[("cursor", "a5.ff")], &Err("other sort order"));
        check(
            &[("cursor", "d5.ff")],
            &Ok(SearchParams {
                cursor: Some(Cursor {
                    order: Order::Desc,
                    timestamp_nanos: 5,
                    uid: 255,
                }),
                ..params()
            }),
        );
    }

    #[test]
    fn relative_and_absolute_times() {
        assert_eq!(parse_time("now", NOW), Ok(NOW));
        assert_eq!(parse_time("now+2d", NOW), Ok(NOW + 2 * 86_400_000_000_000));
        assert_eq!(parse_time("now-250ms", NOW), Ok(NOW - 250_000_000));
        assert!(
            parse_time("now-5y", NOW)
                .unwrap_err()
                .contains("unknown unit")
        );
        assert!(
            parse_time("now-99999999999999w", NOW)
                .unwrap_err()
                .contains("out of range")
        );
        assert_eq!(
            parse_time("2023-11-14T23:13:20.5+01:00", NOW),
            Ok(NOW + 500_000_000)
        );
    }

    #[test]
    fn cursor_round_trips() {
        let c = Cursor {
            order: Order::Asc,
            timestamp_nanos: -12,
            uid: u64::MAX,
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
    }

    fn query_error(q: &str) -> Option<String> {
        let schema = EventSchema::new();
        let mut parser = QueryParser::new(
            schema.schema.clone(),
            vec![schema.message],
            tantivy::tokenizer::TokenizerManager::default(),
        );
        parser.set_conjunction_by_default();
        build_query(&parser, &schema, q, None, None)
            .err()
            .map(|e| e.to_string())
    }

    #[test]
    fn queries_name_only_real_fields() {
        for ok in [
            "error",
            "*",
            "",
            "host:web1 AND source:docker",
            "container.name:nginx",
            "container.labels.app:api",
            "container.labels.com.docker.compose.service:web",
            "fields.SYSLOG_IDENTIFIER:sshd",
            "\"connection reset\" OR message:timeout",
            "timestamp:[2024-01-01T00:00:00Z TO 2024-01-02T00:00:00Z]",
            "message:fail*",
            "-stream:stderr error",
        ] {
            assert_eq!(query_error(ok), None, "{ok}");
        }
        for (bad, expected) in [
            ("colour:red", "unknown field 'colour'"),
            ("container.colour:red", "unknown field 'container.colour'"),
            ("_uid:1", "unknown field '_uid'"),
            ("fields.:x", "unknown field"),
            ("message:*", "'message:*' is not supported"),
            ("(error", "syntax error"),
            ("timestamp:[yesterday TO now]", "invalid query"),
            ("message:a*", "too broad"),
            ("\"a\"*", "too broad"),
            ("*", ""),
            ("host:*?", "too broad"),
            ("message:/.*/", "invalid query"),
            ("((((((((((((((((((a))))))))))))))))))", "nest 18 deep"),
            ("\"((((((((((((((((((a\"", ""),
        ]
        .into_iter()
        .chain([(
            String::leak(
                (0..300)
                    .map(|i| format!("x{i}"))
                    .collect::<Vec<_>>()
                    .join(" OR "),
            ) as &str,
            "more than 256 terms",
        )]) {
            if expected.is_empty() {
                assert_eq!(query_error(bad), None, "{bad}");
                continue;
            }
            let got = query_error(bad).unwrap_or_default();
            assert!(got.contains(expected), "{bad}: {got:?} lacks {expected:?}");
        }
    }
}
