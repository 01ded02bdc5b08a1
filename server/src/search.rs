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
