//! The request parameters of the HTTP API: pure parsing of the query string's
//! (name, value) pairs into the typed requests of the search and detect stages.
//! Unknown and repeated parameters are refused and named; times are parsed by
//! [`crate::clock::parse_time`]. The query text is checked once, by
//! [`CheckedQuery::parse`], after every other parameter.

use std::time::Duration;

use crate::clock::parse_time;
use crate::detect::log::{ListParams, MAX_LIMIT as MAX_LIST_LIMIT};
use crate::search::aggregate::{
    AggKind, AggregateParams, MAX_BUCKETS, MAX_TERMS, is_aggregatable, parse_interval,
};
use crate::search::query::{
    ABSURD_LIMIT, CheckedQuery, Cursor, DEFAULT_LIMIT, MAX_LIMIT, Order, QueryError, QueryLimits,
    RangeParams, SearchParams, is_known_field, unknown_field,
};
use crate::search::tail::TailParams;

/// Parameters of `GET /api/v1/search`.
const SEARCH_PARAMS: &str = "q, start, end, limit, cursor, order, fields or highlight";

/// Validates the raw query-string pairs of `GET /api/v1/search`.
pub fn parse_search_params(
    pairs: &[(String, String)],
    now_nanos: i64,
    limits: &QueryLimits,
) -> Result<SearchParams, QueryError> {
    let mut text = String::new();
    let mut seen: Vec<&str> = Vec::new();
    let mut p = SearchParams {
        query: CheckedQuery::all(),
        start: None,
        end: None,
        limit: DEFAULT_LIMIT,
        cursor: None,
        order: Order::Desc,
        fields: None,
        highlight: false,
        max_response_bytes: usize::MAX,
    };
    let mut cursor_text = None;
    for (name, value) in pairs {
        if seen.contains(&name.as_str()) {
            return Err(QueryError::Repeated(name.clone()));
        }
        seen.push(name);
        match name.as_str() {
            "q" => text.clone_from(value),
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
    p.query = CheckedQuery::parse(&text, limits)?;
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

/// Splits raw pairs into known parameters, refusing unknown and repeated ones, and
/// reads `q`, `start` and `end` (when `allowed` has them).
pub fn parse_common<'a>(
    pairs: &'a [(String, String)],
    allowed: &[&str],
    expected: &'static str,
    now_nanos: i64,
    limits: &QueryLimits,
) -> Result<(RangeParams, OtherParams<'a>), QueryError> {
    let mut text = String::new();
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
            "q" => text.clone_from(value),
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
    range.query = CheckedQuery::parse(&text, limits)?;
    Ok((range, rest))
}

const AGG_PARAMS: &str = "q, start, end, type, field, size or interval";

/// Validates the raw query-string pairs of `GET /api/v1/aggregate`.
pub fn parse_aggregate_params(
    pairs: &[(String, String)],
    now_nanos: i64,
    limits: &QueryLimits,
) -> Result<AggregateParams, QueryError> {
    let allowed = ["q", "start", "end", "type", "field", "size", "interval"];
    let (range, rest) = parse_common(pairs, &allowed, AGG_PARAMS, now_nanos, limits)?;
    let get = |name: &str| rest.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
    let bad = |name: &'static str, message: String| QueryError::BadParameter { name, message };
    let kind = match get("type").unwrap_or("terms") {
        "terms" => {
            if get("interval").is_some() {
                return Err(bad(
                    "interval",
                    "applies to type=date_histogram only".into(),
                ));
            }
            let field = get("field").ok_or_else(|| bad("field", "is required for terms".into()))?;
            if !is_aggregatable(field) {
                return Err(bad(
                    "field",
                    format!(
                        "{field:?} cannot be aggregated; use {}",
                        crate::store::fields::terms_list()
                    ),
                ));
            }
            let size = match get("size") {
                None => 10,
                Some(v) => match v.parse::<usize>() {
                    Ok(n) if (1..=MAX_TERMS).contains(&n) => n,
                    _ => {
                        return Err(bad(
                            "size",
                            format!("{v:?} is not a whole number from 1 to {MAX_TERMS}"),
                        ));
                    }
                },
            };
            AggKind::Terms {
                field: field.to_owned(),
                size,
            }
        }
        "date_histogram" => {
            if let Some(f) = get("field")
                && f != "timestamp"
            {
                return Err(bad(
                    "field",
                    format!("{f:?}: a date histogram counts by timestamp only"),
                ));
            }
            if get("size").is_some() {
                return Err(bad("size", "applies to type=terms only".into()));
            }
            let interval = match get("interval") {
                None | Some("auto") => None,
                Some(v) => Some((
                    v.to_owned(),
                    parse_interval(v).map_err(|m| bad("interval", m))?,
                )),
            };
            if let (Some((text, nanos)), Some(s), Some(e)) = (&interval, range.start, range.end)
                && (e - s) / nanos > MAX_BUCKETS
            {
                return Err(bad(
                    "interval",
                    format!(
                        "{text} over this time range makes more than {MAX_BUCKETS} buckets; use a longer interval or 'auto'"
                    ),
                ));
            }
            AggKind::DateHistogram { interval }
        }
        other => {
            return Err(bad(
                "type",
                format!("{other:?} is neither 'terms' nor 'date_histogram'"),
            ));
        }
    };
    Ok(AggregateParams { range, kind })
}

const TAIL_PARAMS: &str = "q or heartbeat";

/// Validates the query string and the `Last-Event-ID` header of `GET /api/v1/tail`.
pub fn parse_tail_params(
    pairs: &[(String, String)],
    last_event_id: Option<&str>,
    limits: &QueryLimits,
) -> Result<TailParams, QueryError> {
    let (RangeParams { query, .. }, rest) =
        parse_common(pairs, &["q", "heartbeat"], TAIL_PARAMS, 0, limits)?;
    let mut heartbeat = Duration::from_secs(15);
    for (name, value) in rest {
        if name == "heartbeat" {
            heartbeat = value
                .parse::<u64>()
                .ok()
                .filter(|s| (1..=300).contains(s))
                .map(Duration::from_secs)
                .ok_or_else(|| QueryError::BadParameter {
                    name: "heartbeat",
                    message: format!("{value:?} is not a number of seconds from 1 to 300"),
                })?;
        }
    }
    let resume_after = match last_event_id {
        None => None,
        Some(text) => Some(
            parse_event_id(text).ok_or_else(|| QueryError::BadParameter {
                name: "Last-Event-ID",
                message: format!("{text:?} is not an event id sent by this stream"),
            })?,
        ),
    };
    Ok(TailParams {
        query,
        heartbeat,
        resume_after,
    })
}

fn parse_event_id(text: &str) -> Option<(i64, u64)> {
    let (at, uid) = text.trim().split_once('.')?;
    Some((at.parse().ok()?, u64::from_str_radix(uid, 16).ok()?))
}

const LEVELS: &[&str] = &["informational", "low", "medium", "high", "critical"];
const EXPECTED: &str = "rule, level, since, until or limit";

/// Parses the query parameters of `GET /api/v1/detections`.
pub fn parse_list_params(
    pairs: &[(String, String)],
    now_nanos: i64,
) -> Result<ListParams, QueryError> {
    let mut p = ListParams {
        rule: None,
        level: Vec::new(),
        since: None,
        until: None,
        limit: 100,
    };
    let mut seen: Vec<&str> = Vec::new();
    for (k, v) in pairs {
        if seen.contains(&k.as_str()) {
            return Err(QueryError::Repeated(k.clone()));
        }
        seen.push(k);
        let name: &'static str = match k.as_str() {
            "rule" => "rule",
            "level" => "level",
            "since" => "since",
            "until" => "until",
            "limit" => "limit",
            _ => {
                return Err(QueryError::UnknownParameter {
                    name: k.clone(),
                    expected: EXPECTED,
                });
            }
        };
        let bad = |message: String| QueryError::BadParameter { name, message };
        match name {
            "rule" => p.rule = Some(v.clone()),
            "level" => {
                for l in v.split(',').map(str::trim).filter(|l| !l.is_empty()) {
                    if !LEVELS.contains(&l) {
                        return Err(bad(format!(
                            "'{l}' is not a level; expected one of {}",
                            LEVELS.join(", ")
                        )));
                    }
                    p.level.push(l.to_owned());
                }
            }
            "since" => p.since = Some(parse_time(v, now_nanos).map_err(bad)?),
            "until" => p.until = Some(parse_time(v, now_nanos).map_err(bad)?),
            "limit" => {
                let n: usize = v
                    .parse()
                    .map_err(|_| bad(format!("'{v}' is not a count")))?;
                if n == 0 || n > MAX_LIST_LIMIT {
                    return Err(bad(format!("must be between 1 and {MAX_LIST_LIMIT}")));
                }
                p.limit = n;
            }
            _ => {}
        }
    }
    if let (Some(s), Some(u)) = (p.since, p.until)
        && s > u
    {
        return Err(QueryError::BadParameter {
            name: "until",
            message: "is before since".into(),
        });
    }
    Ok(p)
}

#[cfg(test)]
mod tests;
