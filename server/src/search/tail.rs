//! `GET /api/v1/tail`: a Server-Sent Events stream of new events matching a query, as the
//! writer takes them (before their commit), from the store's tap.
//!
//! Each SSE `id` is `<received_at nanos>.<uid hex>`; batches get strictly increasing
//! receive times, so ids only grow. A client that reconnects with `Last-Event-ID` first
//! gets, from the committed index, every matching event after that id (once the batches
//! tapped before it reconnected are committed), then the live stream, with nothing
//! twice. Matching runs the real query on a small in-memory index of the new batches,
//! so tail and search agree on what matches.

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use tantivy::collector::DocSetCollector;
use tantivy::directory::RamDirectory;
use tantivy::query::Query;
use tantivy::{Index, TantivyDocument};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tracing::debug;

use crate::metrics::Metrics;
use crate::search::query::{CheckedQuery, Order, QueryError, build_query};
use crate::search::{Deadline, top_keys};
use crate::store::event_id::{EventId, event_uid};
use crate::store::schema::EventMeta;
use crate::store::{Store, TapBatch};

/// Most events replayed from the index on a resume; past that the client gets `gap`.
pub const MAX_RESUME_EVENTS: usize = 10_000;
/// Most events matched in one in-memory index.
const MAX_EVENTS_PER_ROUND: usize = 20_000;
/// Longest wait for batches tapped before a resume to be committed.
const RESUME_COMMIT_WAIT: Duration = Duration::from_secs(5);

/// A validated tail request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TailParams {
    pub query: CheckedQuery,
    pub heartbeat: Duration,
    /// The `Last-Event-ID` to resume after: (received_at nanos, uid).
    pub resume_after: Option<(i64, u64)>,
}

fn sse_id((at, uid): (i64, u64)) -> String {
    format!("{at}.{uid:x}")
}

/// Starts the stream: checks the query at once (a bad one is a 400), then feeds the
/// SSE response from a task that ends when the client goes away. `budget` bounds the
/// resume's search (`[limits] search_timeout_ms`); `slot` (a `max_tail_clients` permit)
/// is held until the stream ends.
pub fn start(
    store: Store,
    metrics: Arc<Metrics>,
    params: TailParams,
    budget: Duration,
    slot: impl Send + 'static,
) -> Result<Sse<impl futures::Stream<Item = Result<SseEvent, Infallible>>>, QueryError> {
    let TailParams {
        query: text,
        heartbeat,
        resume_after,
    } = params;
    let query = build_query(&store.query_parser(), &store.schema, &text, None, None)?;
    let (tx, rx) = mpsc::channel::<Result<SseEvent, Infallible>>(256);
    let taps = store.subscribe();
    let tapped = store.tapped_received_at();
    tokio::spawn(async move {
        metrics.tail_clients.inc();
        run(store, query, resume_after, budget, taps, tapped, tx).await;
        metrics.tail_clients.dec();
        drop(slot);
    });
    Ok(Sse::new(ReceiverStream::new(rx))
        .keep_alive(KeepAlive::new().interval(heartbeat).text("heartbeat")))
}

/// Events as (received_at, uid) key and JSON text.
type KeyedJson = Vec<((i64, u64), String)>;

type Tx = mpsc::Sender<Result<SseEvent, Infallible>>;

/// An event of the stream: its id and its JSON, which `serde_json` writes on one line
/// (CR, LF and every control character of a message are escaped inside strings), so a
/// stored line can never end the event or forge another.
fn data_event(key: (i64, u64), json: &str) -> SseEvent {
    SseEvent::default().id(sse_id(key)).data(json)
}

/// An `event: error` whose data is `{"error": "..."}`: one JSON line, so that no text
/// in a message can end the event or forge another.
fn error_event(message: &str) -> SseEvent {
    SseEvent::default()
        .event("error")
        .data(serde_json::json!({ "error": message }).to_string())
}

async fn run(
    store: Store,
    query: Box<dyn Query>,
    resume_after: Option<(i64, u64)>,
    budget: Duration,
    mut taps: broadcast::Receiver<Arc<TapBatch>>,
    tapped: i64,
    tx: Tx,
) {
    let mut last = resume_after;
    if let Some(after) = resume_after {
        let mut committed = store.committed_received_at();
        let _ =
            tokio::time::timeout(RESUME_COMMIT_WAIT, committed.wait_for(|c| *c >= tapped)).await;
        let (s, q) = (store.clone(), query.box_clone());
        let replay =
            tokio::task::spawn_blocking(move || replay(&s, q.as_ref(), after, budget)).await;
        let (events, truncated) = match replay {
            Ok(Ok(found)) => found,
            Ok(Err(message)) => {
                let _ = tx.send(Ok(error_event(&message))).await;
                return;
            }
            Err(e) => {
                let _ = tx.send(Ok(error_event(&e.to_string()))).await;
                return;
            }
        };
        if truncated {
            let note = serde_json::json!({"message": format!("more than {MAX_RESUME_EVENTS} events since Last-Event-ID; search for the rest")});
            let _ = tx
                .send(Ok(SseEvent::default().event("gap").data(note.to_string())))
                .await;
        }
        for (key, json) in events {
            if tx.send(Ok(data_event(key, &json))).await.is_err() {
                return;
            }
            last = Some(key);
        }
    }
    loop {
        let first = tokio::select! {
            got = taps.recv() => got,
            () = tx.closed() => return,
        };
        let mut batches = Vec::new();
        match first {
            Ok(b) => batches.push(b),
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                let note = serde_json::json!({"missed_batches": missed, "message": "the stream fell behind; search for the events in between"});
                if tx
                    .send(Ok(SseEvent::default()
                        .event("lagged")
                        .data(note.to_string())))
                    .await
                    .is_err()
                {
                    return;
                }
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
        let mut n: usize = batches[0].events.len();
        while n < MAX_EVENTS_PER_ROUND {
            match taps.try_recv() {
                Ok(b) => {
                    n += b.events.len();
                    batches.push(b);
                }
                Err(_) => break,
            }
        }
        let (s, q) = (store.clone(), query.box_clone());
        let matched =
            tokio::task::spawn_blocking(move || match_batches(&s, q.as_ref(), &batches)).await;
        let matched = match matched {
            Ok(Ok(m)) => m,
            Ok(Err(message)) => {
                debug!(error = %message, "tail matching failed");
                let _ = tx.send(Ok(error_event(&message))).await;
                return;
            }
            Err(e) => {
                let message = e.to_string();
                debug!(error = %message, "tail matching failed");
                let _ = tx.send(Ok(error_event(&message))).await;
                return;
            }
        };
        for (key, json) in matched {
            if last.is_some_and(|l| key <= l) {
                continue;
            }
            if tx.send(Ok(data_event(key, &json))).await.is_err() {
                return;
            }
            last = Some(key);
        }
    }
}

/// Matching events of the committed index after `after`, in (received_at, uid) order.
fn replay(
    store: &Store,
    query: &dyn Query,
    after: (i64, u64),
    budget: Duration,
) -> Result<(KeyedJson, bool), String> {
    let deadline = Deadline::after(budget);
    let mut found = Vec::new();
    for (_, searcher) in store.searchers(None, None) {
        let keys = top_keys(
            &searcher,
            query,
            Order::Asc,
            Some(after),
            MAX_RESUME_EVENTS + 1,
            "received_at",
            &deadline,
        )
        .map_err(|e| e.to_string())?;
        for (key, addr) in keys {
            let doc: TantivyDocument = searcher.doc(addr).map_err(|e| e.to_string())?;
            let json =
                serde_json::to_string(&store.schema.event_json(&doc)).map_err(|e| e.to_string())?;
            found.push((key, json));
        }
    }
    found.sort_by_key(|(k, _)| *k);
    let truncated = found.len() > MAX_RESUME_EVENTS;
    found.truncate(MAX_RESUME_EVENTS);
    Ok((found, truncated))
}

/// Indexes the batches in memory and runs the query on them; matching events in
/// (received_at, uid) order.
fn match_batches(
    store: &Store,
    query: &dyn Query,
    batches: &[Arc<TapBatch>],
) -> Result<KeyedJson, String> {
    let schema = &store.schema;
    let mut writer = Index::builder()
        .schema(schema.schema.clone())
        .single_segment_index_writer(RamDirectory::create(), 15_000_000)
        .map_err(|e| e.to_string())?;
    for batch in batches {
        for (i, event) in batch.events.iter().enumerate() {
            let id = EventId::new(&batch.collector_id, batch.sequence, i).to_string();
            let meta = EventMeta {
                id: &id,
                uid: event_uid(&id),
                received_at_nanos: batch.received_at_nanos,
                generation: 0,
            };
            writer
                .add_document(schema.document(event, &meta))
                .map_err(|e| e.to_string())?;
        }
    }
    let index = writer.finalize().map_err(|e| e.to_string())?;
    let searcher = index.reader().map_err(|e| e.to_string())?.searcher();
    let docs: HashSet<tantivy::DocAddress> = searcher
        .search(query, &DocSetCollector)
        .map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(docs.len());
    for addr in docs {
        let doc: TantivyDocument = searcher.doc(addr).map_err(|e| e.to_string())?;
        let json = schema.event_json(&doc);
        let at = doc
            .get_first(schema.received_at)
            .and_then(|v| tantivy::schema::Value::as_datetime(&v))
            .map_or(0, tantivy::DateTime::into_timestamp_nanos);
        let key = (at, event_uid(&json.id));
        out.push((
            key,
            serde_json::to_string(&json).map_err(|e| e.to_string())?,
        ));
    }
    out.sort_by_key(|(k, _)| *k);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use axum::response::IntoResponse;

    use super::*;

    /// The bytes an SSE response sends for `events`.
    async fn wire(events: Vec<SseEvent>) -> String {
        let stream = futures::stream::iter(events.into_iter().map(Ok::<_, Infallible>));
        let body = Sse::new(stream).into_response().into_body();
        let bytes = axum::body::to_bytes(body, usize::MAX).await.expect("body");
        String::from_utf8(bytes.to_vec()).expect("utf-8")
    }

    /// One helper: the events a hostile text makes, and their lines.
    async fn check(text: &str) {
        let json = serde_json::to_string(&serde_json::json!({ "message": text })).expect("json");
        let got = wire(vec![data_event((5, 255), &json), error_event(text)]).await;
        let events: Vec<&str> = got.trim_end_matches('\n').split("\n\n").collect();
        assert_eq!(events.len(), 2, "{text:?} made {got:?}");
        assert_eq!(events[0], format!("id: 5.ff\ndata: {json}"), "{text:?}");
        assert!(
            events[1].starts_with("event: error\ndata: {\"error\":"),
            "{got:?}"
        );
        assert_eq!(events[1].lines().count(), 2, "{got:?}");
        assert!(!got.contains('\r'), "{got:?}");
        for line in got.lines().filter(|l| !l.is_empty()) {
            assert!(
                line.starts_with("id: ") || line.starts_with("data: ") || line == "event: error",
                "forged line {line:?} from {text:?}"
            );
        }
    }

    #[tokio::test]
    async fn no_message_can_end_an_event_or_forge_one() {
        check("plain").await;
        check("a\r\nevent: admin\r\ndata: forged\r\n\r\nid: 9").await;
        check("\n\nevent: x\ndata: y\n\n").await;
        check("\r\rretry: 1\r").await;
        check("\u{1b}[31mred\u{1b}[0m \u{0} \u{7f} \u{2028}\u{2029} \u{fffd}").await;
    }
}
