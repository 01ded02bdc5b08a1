//! `GET /api/v1/aggregate`: the top values of a keyword field with their counts (terms),
//! or event counts per time bucket (date histogram, with a fixed or automatic interval),
//! over the events matching a query in a time range. Partitions are aggregated with
//! tantivy's distributed aggregation collector and merged.

use serde::Serialize;
use serde_json::json;
use tantivy::aggregation::agg_req::Aggregations;
use tantivy::aggregation::agg_result::{AggregationResult, BucketEntries, BucketResult};
use tantivy::aggregation::intermediate_agg_result::IntermediateAggregationResults;
use tantivy::aggregation::{
    AggContextParams, AggregationLimitsGuard, DistributedAggregationCollector, Key,
};
use tantivy::tokenizer::TokenizerManager;

use crate::search::query::{QueryError, RangeParams, build_query};
use crate::search::{Deadline, SearchError};
use crate::store::Store;
use crate::store::fields;
use crate::store::partition::DAY_NANOS;
use crate::store::schema::format_nanos;

/// Largest `size` of a terms aggregation.
pub const MAX_TERMS: usize = 1_000;
/// Most buckets of a date histogram.
pub const MAX_BUCKETS: i64 = 10_000;
/// Buckets an automatic interval aims at, at most.
const AUTO_BUCKETS: i64 = 100;
/// Intervals an automatic histogram picks from.
const NICE_INTERVALS: &[(&str, i64)] = &[
    ("1s", 1_000_000_000),
    ("5s", 5_000_000_000),
    ("10s", 10_000_000_000),
    ("30s", 30_000_000_000),
    ("1m", 60_000_000_000),
    ("5m", 300_000_000_000),
    ("10m", 600_000_000_000),
    ("30m", 1_800_000_000_000),
    ("1h", 3_600_000_000_000),
    ("3h", 10_800_000_000_000),
    ("12h", 43_200_000_000_000),
    ("1d", DAY_NANOS),
    ("7d", 7 * DAY_NANOS),
    ("30d", 30 * DAY_NANOS),
    ("365d", 365 * DAY_NANOS),
];

/// What to aggregate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AggKind {
    Terms {
        field: String,
        size: usize,
    },
    /// `None` picks an interval from the time range.
    DateHistogram {
        interval: Option<(String, i64)>,
    },
}

/// A validated aggregation request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregateParams {
    pub range: RangeParams,
    pub kind: AggKind,
}

/// One bucket of the answer.
#[derive(Debug, Serialize, serde::Deserialize, PartialEq)]
pub struct Bucket {
    /// The field value (terms) or the bucket start, RFC 3339 (histogram).
    pub key: String,
    /// Bucket start in Unix milliseconds (histogram only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_ms: Option<i64>,
    pub count: u64,
}

/// The body of a successful aggregation.
#[derive(Debug, Serialize, serde::Deserialize)]
pub struct AggregateResponse {
    /// Events matching the query and range.
    pub total: u64,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    pub buckets: Vec<Bucket>,
    /// Terms only: matching events whose value is not among the buckets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub other_count: Option<u64>,
}

/// True for a field whose values can be counted: keyword fields and the JSON objects'
/// leaves.
pub fn is_aggregatable(field: &str) -> bool {
    fields::is_terms_aggregatable(field)
}

/// Parses a fixed interval: a positive whole number and a unit ms, s, m, h or d.
pub fn parse_interval(v: &str) -> Result<i64, String> {
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (digits, unit) = v.split_at(split);
    let n: i64 = digits.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
        format!("{v:?}: expected a positive number and a unit (ms, s, m, h or d), e.g. 5m")
    })?;
    let unit_nanos = match unit {
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        "d" => DAY_NANOS,
        _ => {
            return Err(format!(
                "{v:?}: unknown unit {unit:?}; use ms, s, m, h or d"
            ));
        }
    };
    n.checked_mul(unit_nanos)
        .filter(|n| *n <= 3650 * DAY_NANOS)
        .ok_or_else(|| format!("{v:?} is longer than ten years"))
}

/// The automatic interval for a time span: the shortest nice one that makes at most
/// [`AUTO_BUCKETS`] buckets.
pub fn auto_interval(span_nanos: i64) -> (&'static str, i64) {
    NICE_INTERVALS
        .iter()
        .copied()
        .find(|(_, n)| span_nanos / n < AUTO_BUCKETS)
        .unwrap_or(("365d", 365 * DAY_NANOS))
}

/// An aggregation refused by tantivy's own limits (buckets, memory) is the request's
/// fault: a 400 that says so, not a store failure.
fn request_error(e: tantivy::TantivyError) -> SearchError {
    match e {
        tantivy::TantivyError::AggregationError(a) => QueryError::TooComplex(format!(
            "{a}; narrow the time range or use a longer interval"
        ))
        .into(),
        other => other.into(),
    }
}

/// Runs the aggregation. Blocking: call it from a blocking thread.
pub fn aggregate(
    store: &Store,
    p: &AggregateParams,
    deadline: &Deadline,
) -> Result<AggregateResponse, SearchError> {
    let r = &p.range;
    let query = build_query(
        &store.query_parser(),
        &store.schema,
        &r.query,
        r.start,
        r.end,
    )?;
    let parts = store.searchers(r.start, r.end);
    let (request, interval) = match &p.kind {
        AggKind::Terms { field, size } => (
            json!({"agg": {"terms": {"field": field, "size": size, "segment_size": (size * 10).max(100)}}}),
            None,
        ),
        AggKind::DateHistogram { interval } => {
            // Without start or end, the partitions' days bound the range.
            let first = parts
                .first()
                .map_or(0, |(d, _)| d.saturating_mul(DAY_NANOS));
            let last = parts.last().map_or(DAY_NANOS, |(d, _)| {
                d.saturating_add(1).saturating_mul(DAY_NANOS)
            });
            let (start, end) = (r.start.unwrap_or(first), r.end.unwrap_or(last));
            let (text, nanos) = match interval {
                Some((text, nanos)) => (text.clone(), *nanos),
                None => {
                    let (text, nanos) = auto_interval(end.saturating_sub(start));
                    (text.to_owned(), nanos)
                }
            };
            let span = end.saturating_sub(start);
            if span / nanos > MAX_BUCKETS {
                let (suggested, _) = auto_interval(span);
                return Err(QueryError::BadParameter {
                    name: "interval",
                    message: format!("{text} over the stored time range makes more than {MAX_BUCKETS} buckets; give start and end, or a longer interval such as interval={suggested}"),
                }
                .into());
            }
            let mut hist =
                json!({"field": "timestamp", "fixed_interval": text, "min_doc_count": 0});
            if let (Some(s), Some(e)) = (r.start, r.end) {
                hist["extended_bounds"] =
                    json!({"min": s / 1_000_000, "max": e.saturating_sub(1) / 1_000_000});
            }
            (json!({"agg": {"date_histogram": hist}}), Some(text))
        }
    };
    let aggs: Aggregations = serde_json::from_value(request)
        .map_err(|e| QueryError::Invalid(format!("aggregation request: {e}")))?;
    let limits = || AggregationLimitsGuard::new(Some(200_000_000), Some(MAX_BUCKETS as u32 + 10));
    let mut merged: Option<IntermediateAggregationResults> = None;
    let mut total = 0_u64;
    for (_, searcher) in &parts {
        deadline.check()?;
        let collector = DistributedAggregationCollector::from_aggs(
            aggs.clone(),
            AggContextParams::new(limits(), TokenizerManager::default()),
        );
        let (count, fruit) = searcher
            .search(query.as_ref(), &(tantivy::collector::Count, collector))
            .map_err(request_error)?;
        total += count as u64;
        match &mut merged {
            None => merged = Some(fruit),
            Some(m) => m.merge_fruits(fruit).map_err(request_error)?,
        }
    }
    deadline.check()?;
    let (field, kind) = match &p.kind {
        AggKind::Terms { field, .. } => (Some(field.clone()), "terms"),
        AggKind::DateHistogram { .. } => (None, "date_histogram"),
    };
    let mut response = AggregateResponse {
        total,
        kind: kind.to_owned(),
        field,
        interval,
        buckets: Vec::new(),
        other_count: matches!(p.kind, AggKind::Terms { .. }).then_some(0),
    };
    let Some(merged) = merged else {
        return Ok(response);
    };
    let mut results = merged.into_final_result(aggs, limits())?;
    match results.0.remove("agg") {
        Some(AggregationResult::BucketResult(BucketResult::Terms {
            buckets,
            sum_other_doc_count,
            ..
        })) => {
            response.other_count = Some(sum_other_doc_count);
            response.buckets = buckets
                .into_iter()
                .map(|b| Bucket {
                    key: key_text(&b.key),
                    key_ms: None,
                    count: b.doc_count,
                })
                .collect();
        }
        Some(AggregationResult::BucketResult(BucketResult::Histogram { buckets })) => {
            let entries = match buckets {
                BucketEntries::Vec(v) => v,
                BucketEntries::HashMap(m) => m.into_values().collect(),
            };
            response.buckets = entries
                .into_iter()
                .map(|b| {
                    let ms = match b.key {
                        Key::F64(f) => f as i64,
                        Key::I64(i) => i,
                        Key::U64(u) => i64::try_from(u).unwrap_or(i64::MAX),
                        Key::Str(_) => 0,
                    };
                    Bucket {
                        key: format_nanos(ms.saturating_mul(1_000_000)),
                        key_ms: Some(ms),
                        count: b.doc_count,
                    }
                })
                .collect();
            response.buckets.sort_by_key(|b| b.key_ms);
        }
        _ => {}
    }
    Ok(response)
}

fn key_text(key: &Key) -> String {
    match key {
        Key::Str(s) => s.clone(),
        Key::F64(f) => f.to_string(),
        Key::I64(i) => i.to_string(),
        Key::U64(u) => u.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::params::parse_aggregate_params;
    use crate::search::query::QueryLimits;

    fn check(input: &[(&str, &str)], expected: &Result<AggKind, &str>) {
        let pairs: Vec<(String, String)> = input
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let got = parse_aggregate_params(&pairs, 0, &QueryLimits::CEILING)
            .map(|p| p.kind)
            .map_err(|e| e.to_string());
        match (&got, expected) {
            (Ok(g), Ok(e)) => assert_eq!(g, e, "{input:?}"),
            (Err(g), Err(e)) => assert!(g.contains(e), "{input:?}: {g:?} lacks {e:?}"),
            _ => panic!("{input:?}: got {got:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn aggregate_parameters() {
        let terms = |f: &str, size| AggKind::Terms {
            field: f.into(),
            size,
        };
        check(&[("field", "host")], &Ok(terms("host", 10)));
        check(
            &[
                ("type", "terms"),
                ("field", "container.labels.com.x"),
                ("size", "3"),
            ],
            &Ok(terms("container.labels.com.x", 3)),
        );
        check(&[("field", "message")], &Err("cannot be aggregated"));
        check(&[("field", "colour")], &Err("cannot be aggregated"));
        check(&[], &Err("'field': is required"));
        check(
            &[("field", "host"), ("size", "100000")],
            &Err("from 1 to 1000"),
        );
        check(&[("field", "host"), ("size", "0")], &Err("from 1 to 1000"));
        check(
            &[("type", "date_histogram")],
            &Ok(AggKind::DateHistogram { interval: None }),
        );
        check(
            &[("type", "date_histogram"), ("interval", "5m")],
            &Ok(AggKind::DateHistogram {
                interval: Some(("5m".into(), 300_000_000_000)),
            }),
        );
        check(
            &[("type", "date_histogram"), ("interval", "5y")],
            &Err("unknown unit"),
        );
        check(
            &[("type", "date_histogram"), ("interval", "0s")],
            &Err("positive number"),
        );
        check(
            &[
                ("type", "date_histogram"),
                ("interval", "1ms"),
                ("start", "0"),
                ("end", "86400000"),
            ],
            &Err("more than 10000 buckets"),
        );
        check(
            &[("type", "pie")],
            &Err("neither 'terms' nor 'date_histogram'"),
        );
        check(
            &[("field", "host"), ("bogus", "1")],
            &Err("unknown parameter 'bogus'"),
        );
    }

    #[test]
    fn automatic_intervals_stay_under_a_hundred_buckets() {
        assert_eq!(auto_interval(60 * 1_000_000_000).0, "1s");
        assert_eq!(auto_interval(3_600 * 1_000_000_000).0, "1m");
        assert_eq!(auto_interval(DAY_NANOS).0, "30m");
        assert_eq!(auto_interval(30 * DAY_NANOS).0, "12h");
        assert_eq!(auto_interval(i64::MAX).0, "365d");
    }
}
