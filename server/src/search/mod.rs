//! Executes validated searches across the day partitions a time range touches: total
//! count, one page sorted by timestamp with a stable tie-break and its cursor, field
//! projection and highlighted snippets. Every search runs against a time budget.

pub(crate) mod aggregate;
pub(crate) mod fields;
pub mod query;
pub(crate) mod tail;
pub(crate) mod tail_hub;

use std::cell::Cell;
use std::cmp::Reverse;
use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Map, Value};
use tantivy::collector::{Count, TopDocs};
use tantivy::query::{BooleanQuery, Occur, Query, RangeQuery};
use tantivy::snippet::SnippetGenerator;
use tantivy::{DateTime, DocAddress, DocId, Searcher, SegmentReader, TantivyDocument, Term};

use crate::error::ErrorClass;
use crate::search::query::{Cursor, Order, QueryError, RangeParams, SearchParams, build_query};
use crate::store::{Store, StoreError};

/// Longest snippet of `message`, in characters.
const SNIPPET_CHARS: usize = 200;
/// The member of an event's JSON with the base64 of a message that is not valid UTF-8
/// (`message` then shows it with U+FFFD replacements).
pub const MESSAGE_B64: &str = "message_b64";

/// The body of a successful search.
#[derive(Debug, Serialize, serde::Deserialize)]
pub struct SearchResponse {
    pub total: usize,
    pub hits: Vec<Value>,
    pub next_cursor: Option<String>,
    /// The page stopped at `[limits] search_max_response_bytes` before `limit` hits;
    /// `next_cursor` continues after the last hit sent.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

/// A search that failed: the request's fault, the store's, or the time budget's.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "the query ran past its time budget of {0:?}; narrow the time range or make the query more selective"
    )]
    Timeout(Duration),
}

impl SearchError {
    /// The class a client sees.
    pub fn status(&self) -> ErrorClass {
        match self {
            SearchError::Query(q) => q.status(),
            SearchError::Store(s) => s.status(),
            SearchError::Timeout(_) => ErrorClass::Timeout,
        }
    }
}

impl From<tantivy::TantivyError> for SearchError {
    fn from(e: tantivy::TantivyError) -> Self {
        SearchError::Store(StoreError::Search(e))
    }
}

/// When a request must be done by; checked between partitions and while collecting.
#[derive(Debug, Clone)]
pub struct Deadline {
    at: Instant,
    budget: Duration,
    expired: Arc<AtomicBool>,
}

impl Deadline {
    pub fn after(budget: Duration) -> Deadline {
        Deadline {
            at: Instant::now() + budget,
            budget,
            expired: Arc::new(AtomicBool::new(false)),
        }
    }

    /// An error once the budget is spent.
    pub fn check(&self) -> Result<(), SearchError> {
        if self.expired.load(Ordering::Relaxed) || Instant::now() >= self.at {
            self.expired.store(true, Ordering::Relaxed);
            return Err(SearchError::Timeout(self.budget));
        }
        Ok(())
    }

    /// A cheap per-document probe: looks at the clock every 4096 calls.
    fn probe(&self) -> impl Fn() -> bool + use<> {
        let (at, expired, calls) = (self.at, self.expired.clone(), Cell::new(0_u32));
        move || {
            let n = calls.get().wrapping_add(1);
            calls.set(n);
            if n % 4096 == 0 && Instant::now() >= at {
                expired.store(true, Ordering::Relaxed);
            }
            expired.load(Ordering::Relaxed)
        }
    }
}

/// Counts the events matching a query in a time range.
pub fn count(store: &Store, p: &RangeParams, deadline: &Deadline) -> Result<usize, SearchError> {
    let query = build_query(
        &store.query_parser(),
        &store.schema,
        &p.query,
        p.start,
        p.end,
    )?;
    count_query(store, query.as_ref(), p.start, p.end, deadline)
}

fn count_query(
    store: &Store,
    query: &dyn Query,
    start: Option<i64>,
    end: Option<i64>,
    deadline: &Deadline,
) -> Result<usize, SearchError> {
    let mut total = 0;
    for (_, searcher) in store.searchers(start, end) {
        deadline.check()?;
        total += searcher.search(query, &Count)?;
    }
    deadline.check()?;
    Ok(total)
}

/// Runs the search. Blocking: call it from a blocking thread.
pub fn search(
    store: &Store,
    params: &SearchParams,
    deadline: &Deadline,
) -> Result<SearchResponse, SearchError> {
    let schema = &store.schema;
    let base = build_query(
        &store.query_parser(),
        schema,
        &params.query,
        params.start,
        params.end,
    )?;
    let total = count_query(store, base.as_ref(), params.start, params.end, deadline)?;
    if params.limit == 0 {
        return Ok(SearchResponse {
            total,
            hits: Vec::new(),
            next_cursor: None,
            truncated: false,
        });
    }
    let after = params.cursor.map(|c| (c.timestamp_nanos, c.uid));
    let page_query: Box<dyn Query> = match params.cursor {
        None => base.box_clone(),
        Some(c) => {
            // Prune by timestamp; the exact (timestamp, uid) cut happens in the sort key.
            let at = Term::from_field_date(
                schema.timestamp,
                DateTime::from_timestamp_nanos(c.timestamp_nanos),
            );
            let range = match c.order {
                Order::Desc => RangeQuery::new(Bound::Unbounded, Bound::Included(at)),
                Order::Asc => RangeQuery::new(Bound::Included(at), Bound::Unbounded),
            };
            Box::new(BooleanQuery::new(vec![
                (Occur::Must, base.box_clone()),
                (Occur::Must, Box::new(range)),
            ]))
        }
    };
    let (mut start, mut end) = (params.start, params.end);
    if let Some((ts, _)) = after {
        match params.order {
            // The end is exclusive: one past the cursor's time, or no end at all when
            // that is past the largest time.
            Order::Desc => {
                if let Some(past) = ts.checked_add(1) {
                    end = Some(end.map_or(past, |e| e.min(past)));
                }
            }
            Order::Asc => start = Some(start.map_or(ts, |s| s.max(ts))),
        }
    }
    let mut parts = store.searchers(start, end);
    if params.order == Order::Desc {
        parts.reverse();
    }
    // Partitions hold disjoint days, so once a page is full the later ones cannot
    // contribute.
    let mut keys: Vec<((i64, u64), usize, DocAddress)> = Vec::new();
    for (i, (_, searcher)) in parts.iter().enumerate() {
        if keys.len() >= params.limit {
            break;
        }
        deadline.check()?;
        let found = top_keys(
            searcher,
            page_query.as_ref(),
            params.order,
            after,
            params.limit,
            "timestamp",
            deadline,
        )?;
        keys.extend(found.into_iter().map(|(k, addr)| (k, i, addr)));
    }
    deadline.check()?;
    keys.truncate(params.limit);
    let mut hits = Vec::with_capacity(keys.len());
    let (mut bytes, mut truncated) = (0_usize, false);
    let mut snippets: Vec<Option<SnippetGenerator>> = (0..parts.len()).map(|_| None).collect();
    for (_, part, addr) in &keys {
        let searcher = &parts[*part].1;
        let doc: TantivyDocument = searcher.doc(*addr)?;
        let mut hit = serde_json::to_value(schema.event_json(&doc)).unwrap_or(Value::Null);
        if let Some(fields) = &params.fields {
            hit = project(&hit, fields);
        }
        if params.highlight {
            if snippets[*part].is_none() {
                let mut generator =
                    SnippetGenerator::create(searcher, base.as_ref(), schema.message)?;
                generator.set_max_num_chars(SNIPPET_CHARS);
                snippets[*part] = Some(generator);
            }
            if let (Some(generator), Value::Object(obj)) = (&snippets[*part], &mut hit) {
                let snippet = generator.snippet_from_doc(&doc);
                let ranges: Vec<[usize; 2]> = snippet
                    .highlighted()
                    .iter()
                    .map(|r| [r.start, r.end])
                    .collect();
                obj.insert(
                    "highlight".to_owned(),
                    serde_json::json!({"message": {
                        "fragment": snippet.fragment(),
                        "ranges": ranges,
                        "html": snippet.to_html(),
                    }}),
                );
            }
        }
        let size = serde_json::to_vec(&hit).map_or(0, |b| b.len());
        if !hits.is_empty() && bytes.saturating_add(size) > params.max_response_bytes {
            truncated = true;
            break;
        }
        bytes = bytes.saturating_add(size);
        hits.push(hit);
    }
    let sent = &keys[..hits.len()];
    let next_cursor = (truncated || keys.len() == params.limit)
        .then(|| sent.last())
        .flatten()
        .map(|&((timestamp_nanos, uid), _, _)| {
            Cursor {
                order: params.order,
                timestamp_nanos,
                uid,
            }
            .encode()
        });
    Ok(SearchResponse {
        total,
        hits,
        next_cursor,
        truncated,
    })
}

/// A sort key, (date field nanos, uid), and the document it belongs to.
pub type Keyed = ((i64, u64), DocAddress);

/// The first `limit` documents of one partition in (`field`, uid) order, strictly after
/// `after`.
pub fn top_keys(
    searcher: &Searcher,
    query: &dyn Query,
    order: Order,
    after: Option<(i64, u64)>,
    limit: usize,
    field: &'static str,
    deadline: &Deadline,
) -> Result<Vec<Keyed>, SearchError> {
    let out = match order {
        Order::Desc => {
            let d = deadline.clone();
            let collector = TopDocs::with_limit(limit).order_by(move |seg: &SegmentReader| {
                let key = sort_key(seg, field);
                let expired = d.probe();
                move |doc: DocId| {
                    let k = key(doc);
                    (!expired() && after.is_none_or(|a| k < a)).then_some(k)
                }
            });
            searcher
                .search(query, &collector)?
                .into_iter()
                .filter_map(|(k, addr)| k.map(|k| (k, addr)))
                .collect()
        }
        Order::Asc => {
            let d = deadline.clone();
            let collector = TopDocs::with_limit(limit).order_by(move |seg: &SegmentReader| {
                let key = sort_key(seg, field);
                let expired = d.probe();
                move |doc: DocId| {
                    let k = key(doc);
                    (!expired() && after.is_none_or(|a| k > a)).then_some(Reverse(k))
                }
            });
            searcher
                .search(query, &collector)?
                .into_iter()
                .filter_map(|(k, addr)| k.map(|Reverse(k)| (k, addr)))
                .collect()
        }
    };
    deadline.check()?;
    Ok(out)
}

/// Reads (date field nanos, uid) of a document from the fast fields.
fn sort_key(seg: &SegmentReader, field: &str) -> impl Fn(DocId) -> (i64, u64) + use<> {
    let fast = seg.fast_fields();
    let ts = fast
        .date(field)
        .ok()
        .map(|c| c.first_or_default_col(DateTime::default()));
    let uid = fast.u64("_uid").ok().map(|c| c.first_or_default_col(0));
    move |doc| {
        let t = ts
            .as_ref()
            .map_or(0, |c| c.get_val(doc).into_timestamp_nanos());
        let u = uid.as_ref().map_or(0, |c| c.get_val(doc));
        (t, u)
    }
}

/// Keeps only the named fields of an event; `container.labels.<key>` and
/// `fields.<name>` may hold dots of their own. `message` brings `message_b64` (the
/// exact bytes of a message that is not valid UTF-8) along when the event has one.
pub fn project(event: &Value, names: &[String]) -> Value {
    let mut out = Map::new();
    for name in names {
        if name == "message"
            && let Some(raw) = event.get(MESSAGE_B64)
        {
            out.insert(MESSAGE_B64.to_owned(), raw.clone());
        }
        let (top, rest) = name.split_once('.').unwrap_or((name.as_str(), ""));
        let Some(value) = event.get(top) else {
            continue;
        };
        if rest.is_empty() {
            out.insert(top.to_owned(), value.clone());
            continue;
        }
        let path: Vec<&str> = match (top, rest.strip_prefix("labels.")) {
            ("container", Some(label)) => vec!["labels", label],
            _ => vec![rest],
        };
        let mut found = Some(value);
        for key in &path {
            found = found.and_then(|v| v.get(*key));
        }
        let Some(found) = found else { continue };
        let mut slot = out
            .entry(top.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        for (i, key) in path.iter().enumerate() {
            let Value::Object(obj) = slot else { break };
            if i + 1 == path.len() {
                obj.insert((*key).to_owned(), found.clone());
                break;
            }
            slot = obj
                .entry((*key).to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::Arc;
    use std::time::Duration;

    use logward_proto::Event as WireEvent;

    use super::*;
    use crate::api::params::parse_search_params;
    use crate::metrics::Metrics;
    use crate::search::query::{CheckedQuery, DEFAULT_LIMIT, QueryLimits};
    use crate::store::StoreOptions;
    use crate::store::partition::DAY_NANOS;

    fn options() -> StoreOptions {
        StoreOptions::for_tests()
    }

    fn deadline() -> Deadline {
        Deadline::after(Duration::from_secs(30))
    }

    /// A store holding `n` events; timestamps repeat in groups of 4 to exercise ties.
    async fn store_with(n: usize) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, _writer) =
            Store::open(dir.path(), &options(), Arc::new(Metrics::new())).expect("open");
        // Every 20 seconds of timestamps is a day: events spread over several partitions.
        let events: Vec<WireEvent> = (0..n)
            .map(|i| WireEvent {
                timestamp_nanos: 1_000_000_000 * (i as i64 / 4) + 1 + (i as i64 / 80) * DAY_NANOS,
                host: if i % 2 == 0 { "even" } else { "odd" }.into(),
                message: format!("event number {i}").into_bytes().into(),
                ..Default::default()
            })
            .collect();
        let ack = store.append("c1".into(), 1, events).await.expect("append");
        assert_eq!(ack.sequence, 1);
        (dir, store)
    }

    fn params(pairs: &[(&str, &str)]) -> SearchParams {
        let owned: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        parse_search_params(&owned, 0, &QueryLimits::CEILING).expect("valid params")
    }

    /// A page stops at its byte budget with a cursor after the last hit sent, and
    /// paging on under the same budget still reaches every hit exactly once.
    #[tokio::test]
    async fn pages_stop_at_the_byte_budget_and_continue() {
        let (_dir, store) = store_with(60).await;
        let one = {
            let mut p = params(&[("limit", "1")]);
            p.max_response_bytes = usize::MAX;
            let r = search(&store, &p, &deadline()).expect("search");
            serde_json::to_vec(&r.hits[0]).expect("json").len()
        };
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let mut pairs = vec![("limit", "50")];
            if let Some(c) = &cursor {
                pairs.push(("cursor", c));
            }
            let mut p = params(&pairs);
            p.max_response_bytes = one * 5 + one / 2;
            let r = search(&store, &p, &deadline()).expect("search");
            pages += 1;
            let bytes: usize = r
                .hits
                .iter()
                .map(|h| serde_json::to_vec(h).expect("json").len())
                .sum();
            assert!(bytes <= p.max_response_bytes, "{bytes} over the budget");
            assert!(!r.hits.is_empty());
            seen.extend(
                r.hits
                    .iter()
                    .map(|h| h["id"].as_str().unwrap_or("").to_owned()),
            );
            match r.next_cursor {
                Some(c) => {
                    assert!(r.truncated || r.hits.len() == 50);
                    cursor = Some(c);
                }
                None => break,
            }
        }
        let n = seen.len();
        seen.sort();
        seen.dedup();
        assert_eq!((n, seen.len()), (60, 60));
        assert!(pages >= 10, "{pages} pages of about 5 hits");
        // A budget smaller than one hit still sends one, so paging always progresses.
        let mut p = params(&[("limit", "50")]);
        p.max_response_bytes = 1;
        let r = search(&store, &p, &deadline()).expect("search");
        assert_eq!(r.hits.len(), 1);
        assert!(r.truncated && r.next_cursor.is_some());
    }

    /// Events at the largest timestamp (stored before ingest bounded timestamps, or
    /// written to the store directly) neither stop paging nor break a histogram.
    #[tokio::test]
    async fn extreme_timestamps_page_and_aggregate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, _writer) =
            Store::open(dir.path(), &options(), Arc::new(Metrics::new())).expect("open");
        let events: Vec<WireEvent> = (0..12_i64)
            .map(|i| WireEvent {
                timestamp_nanos: if i % 2 == 0 {
                    i64::MAX
                } else {
                    1_000_000_000 * i
                },
                host: "h".into(),
                message: format!("event {i}").into_bytes().into(),
                ..Default::default()
            })
            .collect();
        store.append("c1".into(), 1, events).await.expect("append");
        for order in ["desc", "asc"] {
            let mut ids = page_all(&store, order, "4", "");
            assert_eq!(ids.len(), 12, "{order}: {ids:?}");
            ids.sort();
            ids.dedup();
            assert_eq!(ids.len(), 12, "{order}: no event twice");
        }
        for interval in [None, Some("1d"), Some("1h")] {
            let mut pairs = vec![("type".to_owned(), "date_histogram".to_owned())];
            if let Some(i) = interval {
                pairs.push(("interval".to_owned(), i.to_owned()));
            }
            let p = crate::api::params::parse_aggregate_params(&pairs, 0, &QueryLimits::CEILING)
                .expect("params");
            match aggregate::aggregate(&store, &p, &deadline()) {
                Ok(r) => assert_eq!(r.total, 12, "{interval:?}"),
                Err(SearchError::Query(e)) => {
                    let text = e.to_string();
                    assert!(text.contains("interval"), "{interval:?}: {text}");
                }
                Err(e) => panic!("{interval:?}: a server error: {e}"),
            }
        }
    }

    /// Pages through every hit and checks order, totals and that no event repeats.
    fn page_all(store: &Store, order: &str, limit: &str, q: &str) -> Vec<String> {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut p = vec![("order", order), ("limit", limit), ("q", q)];
            if let Some(c) = &cursor {
                p.push(("cursor", c));
            }
            let r = search(store, &params(&p), &deadline()).expect("search");
            seen.extend(
                r.hits
                    .iter()
                    .map(|h| h["id"].as_str().unwrap_or("").to_owned()),
            );
            let stamps: Vec<&str> = r
                .hits
                .iter()
                .map(|h| h["timestamp"].as_str().unwrap_or(""))
                .collect();
            let mut sorted = stamps.clone();
            sorted.sort_unstable();
            if order == "desc" {
                sorted.reverse();
            }
            assert_eq!(stamps, sorted, "page is in {order} order");
            match r.next_cursor {
                Some(c) => cursor = Some(c),
                None => return seen,
            }
        }
    }

    #[tokio::test]
    async fn cursor_paging_visits_every_event_once_in_both_orders() {
        let (_dir, store) = store_with(103).await;
        for order in ["desc", "asc"] {
            for limit in ["1", "7", "103", "500"] {
                let ids = page_all(&store, order, limit, "*");
                let unique: HashSet<&String> = ids.iter().collect();
                assert_eq!(
                    (ids.len(), unique.len()),
                    (103, 103),
                    "order {order} limit {limit}"
                );
            }
        }
        let ids = page_all(&store, "asc", "5", "host:odd");
        assert_eq!(ids.len(), 51);
        assert!(store.searchers(None, None).len() >= 2, "several partitions");
    }

    #[tokio::test]
    async fn a_reopened_store_keeps_every_acked_event_and_its_high_water_marks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let metrics = Arc::new(Metrics::new());
        {
            let (store, writer) =
                Store::open(dir.path(), &options(), metrics.clone()).expect("open");
            for seq in 1..=3_u64 {
                let events = (0..5)
                    .map(|i| WireEvent {
                        timestamp_nanos: (seq as i64) * DAY_NANOS + i,
                        ..Default::default()
                    })
                    .collect();
                store.append("c".into(), seq, events).await.expect("append");
            }
            store.shutdown().await;
            writer.join().await;
        }
        let (store, _writer) = Store::open(dir.path(), &options(), metrics).expect("reopen");
        assert_eq!(store.high_water("c".into()).await.expect("hw"), 3);
        let r = search(&store, &params(&[("limit", "0")]), &deadline()).expect("search");
        assert_eq!(r.total, 15);
        assert_eq!(store.searchers(None, None).len(), 3);
        let r = search(
            &store,
            &params(&[
                ("limit", "0"),
                ("start", &format!("{}", 2 * DAY_NANOS / 1_000_000)),
                ("end", &format!("{}", 3 * DAY_NANOS / 1_000_000)),
            ]),
            &deadline(),
        )
        .expect("search");
        assert_eq!(r.total, 5);
    }

    #[tokio::test]
    async fn totals_time_ranges_and_limits() {
        let (_dir, store) = store_with(40).await;
        let r = search(&store, &params(&[("limit", "0")]), &deadline()).expect("search");
        assert_eq!((r.total, r.hits.len(), r.next_cursor), (40, 0, None));
        let r = search(&store, &params(&[]), &deadline()).expect("search");
        assert_eq!((r.total, r.hits.len()), (40, 40.min(DEFAULT_LIMIT)));
        // Seconds 2..5 hold events 8..=19: start inclusive, end exclusive.
        let r = search(
            &store,
            &params(&[("start", "2000"), ("end", "5000")]),
            &deadline(),
        )
        .expect("search");
        assert_eq!(r.total, 12);
        let r = search(
            &store,
            &params(&[
                ("q", "\"number 17\""),
                ("highlight", "true"),
                ("fields", "id,message,container.name"),
            ]),
            &deadline(),
        )
        .expect("search");
        assert_eq!(r.total, 1);
        assert_eq!(r.hits[0]["message"], "event number 17");
        assert_eq!(r.hits[0]["id"], "c1-1-17");
        assert!(
            r.hits[0].get("host").is_none(),
            "projected away: {}",
            r.hits[0]
        );
        assert_eq!(
            r.hits[0]["highlight"]["message"]["ranges"],
            serde_json::json!([[6, 12], [13, 15]])
        );
    }

    #[tokio::test]
    async fn resent_batches_are_acked_not_indexed_twice() {
        let (_dir, store) = store_with(10).await;
        let again = vec![WireEvent::default(); 10];
        let ack = store.append("c1".into(), 1, again).await.expect("append");
        assert_eq!((ack.duplicates, ack.high_water), (10, 1));
        assert_eq!(store.high_water("c1".into()).await.expect("hw"), 1);
        assert_eq!(store.high_water("other".into()).await.expect("hw"), 0);
        let r = search(&store, &params(&[("limit", "0")]), &deadline()).expect("search");
        assert_eq!(r.total, 10);
    }

    #[test]
    fn projecting_message_keeps_its_exact_bytes_along() {
        let event = serde_json::json!({"id": "x", "message": "a\u{fffd}b", MESSAGE_B64: "YYBi", "host": "h"});
        assert_eq!(
            project(&event, &["message".into()]),
            serde_json::json!({"message": "a\u{fffd}b", MESSAGE_B64: "YYBi"})
        );
        assert_eq!(
            project(&event, &["host".into()]),
            serde_json::json!({"host": "h"})
        );
    }

    #[tokio::test]
    async fn an_exhausted_time_budget_is_a_clear_error() {
        let (_dir, store) = store_with(10).await;
        let spent = Deadline::after(Duration::ZERO);
        let err = search(&store, &params(&[]), &spent).expect_err("times out");
        assert!(err.to_string().contains("time budget"), "{err}");
    }

    #[tokio::test]
    async fn hostile_queries_are_request_errors_never_store_errors() {
        let (_dir, store) = store_with(10).await;
        for q in [
            "message:*",
            "host:*",
            "fields.x:*",
            "message:/[a-z/",
            "message:/.*/",
            "*:*",
            "message:[a TO z]",
            "container:x",
            "(((((((((((((a)))))))))))))",
            "a AND",
            "\"unterminated",
            "host:[a TO",
            "timestamp:>2024-01-01T00:00:00Z",
            "IN [a b]",
            "host: IN [a b]",
            "\u{0}\u{1b}[31m",
            "a*",
            &"(".repeat(5000),
            &format!("{}a{}", "(".repeat(17), ")".repeat(17)),
            &(0..300)
                .map(|i| format!("x{i}"))
                .collect::<Vec<_>>()
                .join(" OR "),
        ] {
            // The one parse checks the query; what passes it goes to the store.
            let searched = CheckedQuery::parse(q, &QueryLimits::CEILING)
                .map_err(SearchError::from)
                .and_then(|query| {
                    let p = SearchParams {
                        query,
                        ..params(&[])
                    };
                    search(&store, &p, &deadline())
                });
            match searched {
                Ok(_) | Err(SearchError::Query(_)) => {}
                Err(e) => panic!("{q:?} became a server error: {e}"),
            }
        }
    }
}
