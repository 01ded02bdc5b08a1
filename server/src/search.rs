//! Executes a validated search against the index: total count, one page sorted by
//! timestamp with a stable tie-break, and the cursor for the next page.

use std::cmp::Reverse;
use std::ops::Bound;

use serde::Serialize;
use tantivy::collector::{Count, TopDocs};
use tantivy::query::{BooleanQuery, Occur, Query, RangeQuery};
use tantivy::{DateTime, DocId, SegmentReader, TantivyDocument, Term};

use crate::query::{Cursor, Order, QueryError, SearchParams, build_query};
use crate::schema::EventJson;
use crate::store::{Store, StoreError};

/// The body of a successful search.
#[derive(Debug, Serialize, serde::Deserialize)]
pub struct SearchResponse {
    pub total: usize,
    pub hits: Vec<EventJson>,
    pub next_cursor: Option<String>,
}

/// A search that failed: the request's fault, or the store's.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<tantivy::TantivyError> for SearchError {
    fn from(e: tantivy::TantivyError) -> Self {
        SearchError::Store(StoreError::Search(e))
    }
}

/// Runs the search. Blocking: call it from a blocking thread.
pub fn search(store: &Store, params: &SearchParams) -> Result<SearchResponse, SearchError> {
    let schema = &store.schema;
    let base = build_query(
        &store.index,
        schema,
        &params.query,
        params.start,
        params.end,
    )?;
    let searcher = store.reader.searcher();
    let total = searcher.search(base.as_ref(), &Count)?;
    if params.limit == 0 {
        return Ok(SearchResponse {
            total,
            hits: Vec::new(),
            next_cursor: None,
        });
    }
    let page_query: Box<dyn Query> = match params.cursor {
        None => base,
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
                (Occur::Must, base),
                (Occur::Must, Box::new(range)),
            ]))
        }
    };
    let keys: Vec<(i64, u64, tantivy::DocAddress)> = match params.order {
        Order::Desc => {
            let after = params.cursor.map(|c| (c.timestamp_nanos, c.uid));
            let collector =
                TopDocs::with_limit(params.limit).order_by(move |seg: &SegmentReader| {
                    let key = sort_key(seg);
                    move |doc: DocId| {
                        let k = key(doc);
                        after.is_none_or(|a| k < a).then_some(k)
                    }
                });
            searcher
                .search(page_query.as_ref(), &collector)?
                .into_iter()
                .filter_map(|(k, addr)| k.map(|(ts, uid)| (ts, uid, addr)))
                .collect()
        }
        Order::Asc => {
            let after = params.cursor.map(|c| (c.timestamp_nanos, c.uid));
            let collector =
                TopDocs::with_limit(params.limit).order_by(move |seg: &SegmentReader| {
                    let key = sort_key(seg);
                    move |doc: DocId| {
                        let k = key(doc);
                        after.is_none_or(|a| k > a).then_some(Reverse(k))
                    }
                });
            searcher
                .search(page_query.as_ref(), &collector)?
                .into_iter()
                .filter_map(|(k, addr)| k.map(|Reverse((ts, uid))| (ts, uid, addr)))
                .collect()
        }
    };
    let mut hits = Vec::with_capacity(keys.len());
    for (_, _, addr) in &keys {
        let doc: TantivyDocument = searcher.doc(*addr)?;
        hits.push(schema.event_json(&doc));
    }
    let next_cursor = (keys.len() == params.limit)
        .then(|| keys.last())
        .flatten()
        .map(|&(timestamp_nanos, uid, _)| {
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
    })
}

/// Reads (timestamp nanos, uid) of a document from the fast fields.
fn sort_key(seg: &SegmentReader) -> impl Fn(DocId) -> (i64, u64) + use<> {
    let fast = seg.fast_fields();
    let ts = fast
        .date("timestamp")
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

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::Arc;
    use std::time::Duration;

    use logward_proto::Event as WireEvent;

    use super::*;
    use crate::metrics::Metrics;
    use crate::query::{DEFAULT_LIMIT, parse_search_params};
    use crate::store::StoreOptions;

    fn options() -> StoreOptions {
        StoreOptions {
            writer_heap_bytes: 32 << 20,
            commit_interval: Duration::from_millis(5),
            commit_max_docs: 10_000,
        }
    }

    /// A store holding `n` events; timestamps repeat in groups of 4 to exercise ties.
    async fn store_with(n: usize) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, _writer) =
            Store::open(dir.path(), &options(), Arc::new(Metrics::new())).expect("open");
        let events: Vec<WireEvent> = (0..n)
            .map(|i| WireEvent {
                timestamp_nanos: 1_000_000_000 * (i as i64 / 4) + 1,
                host: if i % 2 == 0 { "even" } else { "odd" }.into(),
                message: format!("event number {i}").into_bytes().into(),
                ..Default::default()
            })
            .collect();
        let ack = store
            .append("c1".into(), 1, events, 42)
            .await
            .expect("append");
        assert_eq!(ack.sequence, 1);
        (dir, store)
    }

    fn params(pairs: &[(&str, &str)]) -> SearchParams {
        let owned: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        parse_search_params(&owned, 0).expect("valid params")
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
            let r = search(store, &params(&p)).expect("search");
            seen.extend(r.hits.iter().map(|h| h.id.clone()));
            let stamps: Vec<&str> = r.hits.iter().map(|h| h.timestamp.as_str()).collect();
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
    }

    #[tokio::test]
    async fn totals_time_ranges_and_limits() {
        let (_dir, store) = store_with(40).await;
        let r = search(&store, &params(&[("limit", "0")])).expect("search");
        assert_eq!((r.total, r.hits.len(), r.next_cursor), (40, 0, None));
        let r = search(&store, &params(&[])).expect("search");
        assert_eq!((r.total, r.hits.len()), (40, 40.min(DEFAULT_LIMIT)));
        // Seconds 2..5 hold events 8..=19: start inclusive, end exclusive.
        let r = search(&store, &params(&[("start", "2000"), ("end", "5000")])).expect("search");
        assert_eq!(r.total, 12);
        let r = search(&store, &params(&[("q", "\"number 17\"")])).expect("search");
        assert_eq!(r.total, 1);
        assert_eq!(r.hits[0].message, "event number 17");
        assert_eq!(r.hits[0].id, "c1-1-17");
        assert_eq!(
            r.hits[0].received_at.as_deref(),
            Some("1970-01-01T00:00:00.000000042Z")
        );
    }

    #[tokio::test]
    async fn resent_batches_are_acked_not_indexed_twice() {
        let (_dir, store) = store_with(10).await;
        let again = vec![WireEvent::default(); 10];
        let ack = store
            .append("c1".into(), 1, again, 43)
            .await
            .expect("append");
        assert_eq!((ack.duplicates, ack.high_water), (10, 1));
        assert_eq!(store.high_water("c1".into()).await.expect("hw"), 1);
        assert_eq!(store.high_water("other".into()).await.expect("hw"), 0);
        let r = search(&store, &params(&[("limit", "0")])).expect("search");
        assert_eq!(r.total, 10);
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
        ] {
            match search(&store, &params(&[("q", q)])) {
                Ok(_) | Err(SearchError::Query(_)) => {}
                Err(SearchError::Store(e)) => panic!("{q:?} became a server error: {e}"),
            }
        }
    }
}
