//! The store's budgets, on a real index in a temp dir.
use super::*;
use crate::metrics::Metrics;
use crate::store::partition::DAY_NANOS;

/// One batch whose events are each on a different UTC day: every event is stored and
/// acked, while at most `max_open_writers` index writers were ever open (each writer
/// beyond the budget closed another after committing its partition early).
#[tokio::test]
async fn a_batch_spanning_many_days_stays_within_the_writer_budget() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = StoreOptions::for_tests();
    assert_eq!(options.max_open_writers, 4);
    let metrics = Arc::new(Metrics::new());
    let (store, writer) = Store::open(dir.path(), &options, metrics.clone()).expect("open");
    let days = 40_i64;
    let events: Vec<WireEvent> = (0..days)
        .map(|d| WireEvent {
            timestamp_nanos: d * DAY_NANOS + 1,
            host: "h".into(),
            message: format!("day {d}").into_bytes().into(),
            ..Default::default()
        })
        .collect();
    let ack = store.append("c1".into(), 1, events).await.expect("append");
    assert_eq!((ack.sequence, ack.duplicates), (1, 0));
    let stored: u64 = store
        .searchers(None, None)
        .iter()
        .map(|(_, s)| s.num_docs())
        .sum();
    assert_eq!(stored, days as u64);
    assert_eq!(store.searchers(None, None).len(), days as usize);
    assert_eq!(
        metrics.early_partition_commits.get(),
        (days - 4) as u64,
        "every writer beyond the budget closed one"
    );
    store.shutdown().await;
    writer.join().await;

    // The early commits belong to the group commit: after a restart all is there once.
    let (store, writer) = Store::open(dir.path(), &options, metrics).expect("reopen");
    let stored: u64 = store
        .searchers(None, None)
        .iter()
        .map(|(_, s)| s.num_docs())
        .sum();
    assert_eq!(stored, days as u64);
    store.shutdown().await;
    writer.join().await;
}
