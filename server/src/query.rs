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
/// Deepest nesting of parentheses accepted (fixed: it bounds the parser's recursion).
pub const MAX_NESTING: usize = 16;
/// Most `(` and `NOT` in one query, wherever they stand (quoted or not). The grammar
/// recurses only on these, so this bounds its stack depth however a query is crafted
/// (a debug build needs about 10 KiB of stack per level of the lenient parser; 128
/// levels fit a default 2 MiB thread stack with room to spare).
pub const MAX_GROUP_TOKENS: usize = 128;
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
    #[error("query is {len} bytes long; limits.query_max_bytes is {max}")]
    TooLong { len: usize, max: usize },
    #[error(
        "query too complex: more than {max} terms, phrases, set values and boolean groups; limits.query_max_clauses is {max}"
    )]
    TooManyClauses { max: usize },
    #[error("query too complex: {0}; at most {MAX_NESTING} levels of nesting are allowed")]
    TooDeep(String),
    #[error("invalid query: {0}")]
    Invalid(String),
    #[error("query too complex: {0}")]
    TooComplex(String),
}

impl QueryError {
    /// The limit this error enforces, as (`[limits]` key, value), for the metrics and
    /// the error body. Nesting is a fixed limit, named `query_max_nesting`.
    pub fn limit(&self) -> Option<(&'static str, usize)> {
        match self {
            QueryError::TooLong { max, .. } => Some(("query_max_bytes", *max)),
            QueryError::TooManyClauses { max } => Some(("query_max_clauses", *max)),
            QueryError::TooDeep(_) => Some(("query_max_nesting", MAX_NESTING)),
            _ => None,
        }
    }
}

/// The configurable cost bounds of one query string (`[limits]` `query_max_bytes` and
/// `query_max_clauses`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryLimits {
    /// Longest query string, in bytes.
    pub max_bytes: usize,
    /// Most terms, phrases, set values and boolean groups.
    pub max_clauses: usize,
}

impl QueryLimits {
    /// The largest values `[limits]` validation allows; [`build_query`] applies these,
    /// the API applies the configured ones first with [`check_query`].
    pub const CEILING: QueryLimits = QueryLimits {
        max_bytes: 1 << 20,
        max_clauses: 100_000,
    };
}

impl Default for QueryLimits {
    fn default() -> Self {
        QueryLimits::from(&crate::limits::LimitsConfig::default())
    }
}

impl From<&crate::limits::LimitsConfig> for QueryLimits {
    fn from(l: &crate::limits::LimitsConfig) -> Self {
        QueryLimits {
            max_bytes: l.query_max_bytes,
            max_clauses: l.query_max_clauses,
        }
    }
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

/// Checks a query string against `limits` before anything expensive: nesting first
/// (a linear scan, so that the recursive parser never sees a deep query), then length,
/// syntax, field names, wildcard breadth and the number of clauses. Pure.
pub fn check_query(q: &str, limits: &QueryLimits) -> Result<(), QueryError> {
    parse_checked(q, limits).map(|_| ())
}

/// The checked syntax tree of a query; `None` for the match-all query.
fn parse_checked(q: &str, limits: &QueryLimits) -> Result<Option<UserInputAst>, QueryError> {
    // tantivy's parser asserts (and panics) on a NUL in a JSON field path; no query
    // needs one.
    if q.contains('\0') {
        return Err(QueryError::Invalid(
            "the query holds a NUL character".into(),
        ));
    }
    check_nesting(q)?;
    if q.len() > limits.max_bytes {
        return Err(QueryError::TooLong {
            len: q.len(),
            max: limits.max_bytes,
        });
    }
    let trimmed = q.trim();
    if trimmed.is_empty() || trimmed == "*" {
        return Ok(None);
    }
    let ast = tantivy::query_grammar::parse_query(trimmed).map_err(|_| syntax_error(trimmed))?;
    let mut clauses = 0;
    check_ast(&ast, limits.max_clauses, &mut clauses)?;
    Ok(Some(ast))
}

/// Builds the tantivy query for a query string and an optional time range.
/// Field names are checked against the event schema first, so an unknown field is
/// named in the error instead of silently matching nothing. Applies
/// [`QueryLimits::CEILING`]; the API checks the configured limits first.
pub fn build_query(
    parser: &QueryParser,
    schema: &EventSchema,
    q: &str,
    start: Option<i64>,
    end: Option<i64>,
) -> Result<Box<dyn Query>, QueryError> {
    let user: Box<dyn Query> = match parse_checked(q, &QueryLimits::CEILING)? {
        None => Box::new(AllQuery),
        Some(_) => {
            let trimmed = q.trim();
            parser
                .parse_query(trimmed)
                .map_err(|e| map_parser_error(trimmed, &e))?
        }
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

/// Refuses queries that could make the recursive parser deep, before it sees them:
/// more than [`MAX_GROUP_TOKENS`] `(` and `NOT` anywhere (a bound that no quoting can
/// hide), or parentheses nested deeper than [`MAX_NESTING`] as the grammar reads them
/// (`"…"` and `'…'` quote, `\` escapes). Linear in the query's length.
fn check_nesting(q: &str) -> Result<(), QueryError> {
    let groups = q.bytes().filter(|b| *b == b'(').count() + q.matches("NOT").count();
    if groups > MAX_GROUP_TOKENS {
        return Err(QueryError::TooDeep(format!(
            "{groups} '(' and NOT in one query, more than {MAX_GROUP_TOKENS}"
        )));
    }
    let (mut depth, mut deepest, mut quote, mut escaped) = (0_usize, 0_usize, None, false);
    for c in q.chars() {
        match (c, quote) {
            _ if escaped => escaped = false,
            ('\\', _) => escaped = true,
            ('"' | '\'', None) => quote = Some(c),
            (c, Some(open)) if c == open => quote = None,
            ('(', None) => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            (')', None) => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    if deepest > MAX_NESTING {
        return Err(QueryError::TooDeep(format!(
            "parentheses nest {deepest} deep"
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

/// Checks that every field the query names exists in the event JSON and that no prefix
/// is too broad, counting clauses (each term, phrase, range and set value, and each
/// boolean group of more than one) against `max`.
fn check_ast(ast: &UserInputAst, max: usize, clauses: &mut usize) -> Result<(), QueryError> {
    let mut count = |n: usize| {
        *clauses = clauses.saturating_add(n);
        if *clauses > max {
            Err(QueryError::TooManyClauses { max })
        } else {
            Ok(())
        }
    };
    match ast {
        UserInputAst::Clause(subs) => {
            if subs.len() > 1 {
                count(1)?;
            }
            subs.iter()
                .try_for_each(|(_, sub)| check_ast(sub, max, clauses))
        }
        UserInputAst::Boost(sub, _) => check_ast(sub, max, clauses),
        UserInputAst::Leaf(leaf) => {
            match leaf.as_ref() {
                UserInputLeaf::Set { elements, .. } => count(elements.len().max(1))?,
                _ => count(1)?,
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
mod tests;
