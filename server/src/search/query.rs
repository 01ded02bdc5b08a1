//! Parsing of search requests: parameters, times, cursors and the query string. Pure
//! functions; every error says what is wrong and where, and becomes a 400.

use std::ops::Bound;

use tantivy::query::{AllQuery, BooleanQuery, Occur, Query, QueryParser, RangeQuery};
use tantivy::query_grammar::{UserInputAst, UserInputLeaf};
use tantivy::{DateTime, Term};

pub use crate::clock::parse_time;
use crate::error::ErrorClass;
use crate::store::fields;
use crate::store::schema::EventSchema;

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
    /// Every query error is the request's fault.
    pub fn status(&self) -> ErrorClass {
        ErrorClass::BadRequest
    }

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
    pub query: CheckedQuery,
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
    /// Most bytes of hits in the response (`[limits] search_max_response_bytes`).
    pub max_response_bytes: usize,
}

/// The query and time range that count, aggregate and tail share.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RangeParams {
    pub query: CheckedQuery,
    pub start: Option<i64>,
    pub end: Option<i64>,
}

/// A query string that passed the one parse that checks it: nesting first (a linear
/// scan, so that the recursive parser never sees a deep query), then length, syntax,
/// field names, wildcard breadth and the number of clauses, against the configured
/// [`QueryLimits`]. Only a `CheckedQuery` can be turned into a tantivy query, so the
/// limits hold by construction. Pure.
#[derive(Debug, Clone)]
pub struct CheckedQuery {
    text: String,
    /// The syntax tree; `None` for the match-all query.
    ast: Option<UserInputAst>,
}

impl CheckedQuery {
    /// Parses and checks `q` against `limits`.
    pub fn parse(q: &str, limits: &QueryLimits) -> Result<Self, QueryError> {
        let ast = parse_checked(q, limits)?;
        Ok(CheckedQuery {
            text: q.to_owned(),
            ast,
        })
    }

    /// The query that matches every event.
    pub fn all() -> Self {
        CheckedQuery {
            text: String::new(),
            ast: None,
        }
    }

    /// The query as the user wrote it.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// True for the match-all query (empty or `*`).
    pub fn is_all(&self) -> bool {
        self.ast.is_none()
    }
}

impl PartialEq for CheckedQuery {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for CheckedQuery {}

impl Default for CheckedQuery {
    fn default() -> Self {
        CheckedQuery::all()
    }
}

/// Tests write expected requests with plain strings; outside tests a query is only
/// ever made by [`CheckedQuery::parse`].
#[cfg(test)]
impl From<&str> for CheckedQuery {
    fn from(q: &str) -> Self {
        CheckedQuery::parse(q, &QueryLimits::CEILING).unwrap_or_else(|_| CheckedQuery {
            text: q.to_owned(),
            ast: None,
        })
    }
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

/// Builds the tantivy query for a checked query and an optional time range, from the
/// syntax tree of the one parse. Field names are checked against the event schema, so
/// an unknown field is named in the error instead of silently matching nothing.
pub fn build_query(
    parser: &QueryParser,
    schema: &EventSchema,
    q: &CheckedQuery,
    start: Option<i64>,
    end: Option<i64>,
) -> Result<Box<dyn Query>, QueryError> {
    let user: Box<dyn Query> = match &q.ast {
        None => Box::new(AllQuery),
        Some(ast) => parser
            .build_query_from_user_input_ast(ast.clone())
            .map_err(|e| map_parser_error(q.text.trim(), &e))?,
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
        known: fields::searchable_list(),
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
    fields::is_searchable(name)
}

#[cfg(test)]
mod tests;
