//! `GET /api/v1/tail`: a Server-Sent Events stream of new events matching a query, as the
//! writer takes them (before their commit), from the store's tap.
//!
//! Each SSE `id` is `<received_at nanos>.<uid hex>`; batches get strictly increasing
//! receive times, so ids only grow. A client that reconnects with `Last-Event-ID` first
//! gets, from the committed index, every matching event after that id (once the batches
//! tapped before it reconnected are committed), then the live stream, with nothing
//! twice. Matching runs the real query on a small in-memory index of the new batches,
//! built once for every client by the hub (`tail_hub.rs`), so tail and search agree on
//! what matches and a slow client never holds more than its byte budget.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::StreamExt;
use tantivy::TantivyDocument;
use tantivy::query::Query;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::metrics::Metrics;
use crate::search::query::{CheckedQuery, Order, QueryError, build_query};
use crate::search::tail_hub::{Live, LiveReceiver, TailHub};
use crate::search::{Deadline, top_keys};
use crate::store::Store;

/// Most events replayed from the index on a resume; past that the client gets `gap`.
pub const MAX_RESUME_EVENTS: usize = 10_000;
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

/// What one tail stream may use: the resume's search time (`[limits]
/// search_timeout_ms`), its unsent live events (`tail_max_buffer_bytes`) and its replay
/// (`tail_max_replay_bytes`).
#[derive(Debug, Clone, Copy)]
pub struct TailBudget {
    pub search: Duration,
    pub buffer_bytes: usize,
    pub replay_bytes: usize,
}

/// Starts the stream: checks the query at once (a bad one is a 400), registers it with
/// the hub (before any replay, so nothing falls between), then feeds the SSE response
/// from a task that ends when the client goes away. `slot` (a `max_tail_clients`
/// permit) is held until the stream ends.
pub fn start<S: Send + 'static>(
    store: Store,
    metrics: Arc<Metrics>,
    hub: &TailHub,
    params: TailParams,
    budget: TailBudget,
    slot: S,
) -> Result<Sse<impl futures::Stream<Item = Result<SseEvent, Infallible>> + use<S>>, QueryError> {
    let TailParams {
        query: text,
        heartbeat,
        resume_after,
    } = params;
    let query = build_query(&store.query_parser(), &store.schema, &text, None, None)?;
    let live_query = (!text.is_all()).then(|| query.box_clone());
    let live = hub.register(live_query, budget.buffer_bytes);
    let buffered = live.buffered.clone();
    let (tx, rx) = mpsc::channel::<(usize, SseEvent)>(256);
    let tapped = store.tapped_received_at();
    tokio::spawn(async move {
        metrics.tail_clients.inc();
        run(store, query, resume_after, budget, tapped, live, tx).await;
        metrics.tail_clients.dec();
        drop(slot);
    });
    let stream = ReceiverStream::new(rx).map(move |(cost, event)| {
        buffered.fetch_sub(cost, Ordering::AcqRel);
        Ok(event)
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(heartbeat).text("heartbeat")))
}

/// Events as (received_at, uid) key and JSON text.
type KeyedJson = Vec<((i64, u64), String)>;

/// The stream's items with the bytes each holds against the live budget.
type Tx = mpsc::Sender<(usize, SseEvent)>;

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
    budget: TailBudget,
    tapped: i64,
    mut live: LiveReceiver,
    tx: Tx,
) {
    let send = |event: SseEvent| tx.send((0, event));
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
                let _ = send(error_event(&message)).await;
                return;
            }
            Err(e) => {
                let _ = send(error_event(&e.to_string())).await;
                return;
            }
        };
        if truncated {
            let note = serde_json::json!({"message": format!(
                "more than {MAX_RESUME_EVENTS} events or {} bytes since Last-Event-ID; search for the rest",
                budget.replay_bytes
            )});
            let _ = send(SseEvent::default().event("gap").data(note.to_string())).await;
        }
        for (key, json) in events {
            if send(data_event(key, &json)).await.is_err() {
                return;
            }
            last = Some(key);
        }
    }
    loop {
        let item = tokio::select! {
            got = live.rx.recv() => got,
            () = tx.closed() => return,
        };
        let Some(item) = item else { return };
        let cost = item.cost();
        let event = match item {
            Live::Event((key, json)) => {
                if last.is_some_and(|l| key <= l) {
                    live.buffered.fetch_sub(cost, Ordering::AcqRel);
                    continue;
                }
                last = Some(key);
                data_event(key, &json)
            }
            Live::Gap { missed } => {
                let note = serde_json::json!({"missed_events": missed, "message": "this client read too slowly; the events in between were not sent; search for them"});
                SseEvent::default().event("gap").data(note.to_string())
            }
            Live::Lagged { missed_batches } => {
                let note = serde_json::json!({"missed_batches": missed_batches, "message": "the stream fell behind; search for the events in between"});
                SseEvent::default().event("lagged").data(note.to_string())
            }
        };
        if tx.send((cost, event)).await.is_err() {
            return;
        }
    }
}

/// Matching events of the committed index after `after`, in (received_at, uid) order.
fn replay(
    store: &Store,
    query: &dyn Query,
    after: (i64, u64),
    budget: TailBudget,
) -> Result<(KeyedJson, bool), String> {
    let deadline = Deadline::after(budget.search);
    let mut bytes = 0_usize;
    let mut over = false;
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
            bytes = bytes.saturating_add(json.len());
            if bytes > budget.replay_bytes {
                over = true;
                break;
            }
            found.push((key, json));
        }
    }
    found.sort_by_key(|(k, _)| *k);
    let truncated = over || found.len() > MAX_RESUME_EVENTS;
    found.truncate(MAX_RESUME_EVENTS);
    Ok((found, truncated))
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
