//! The store's options and the values it hands out: acks and tapped batches.

use std::time::Duration;

use logward_proto::Event as WireEvent;

use crate::store::partition::RetentionPolicy;

/// How merges are picked: tantivy's log merge policy, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MergeOptions {
    /// Segments of one size class that trigger a merge; 0 disables merging.
    pub min_segments: usize,
    /// Segments with more documents are not merged any more.
    pub max_docs: usize,
}

/// Tuning of the writer.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub writer_heap_bytes: usize,
    pub indexing_threads: usize,
    pub max_open_writers: usize,
    pub commit_interval: Duration,
    pub commit_max_docs: usize,
    pub merge: MergeOptions,
    pub retention: RetentionPolicy,
    pub retention_interval: Duration,
}

impl StoreOptions {
    /// Small settings for unit tests.
    pub fn for_tests() -> StoreOptions {
        StoreOptions {
            writer_heap_bytes: 16 << 20,
            indexing_threads: 1,
            max_open_writers: 4,
            commit_interval: Duration::from_millis(5),
            commit_max_docs: 10_000,
            merge: MergeOptions {
                min_segments: 8,
                max_docs: 1_000_000,
            },
            retention: RetentionPolicy {
                max_age_days: 0,
                max_total_bytes: 0,
            },
            retention_interval: Duration::from_secs(3600),
        }
    }
}

/// What the server answers for a stored batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckInfo {
    pub sequence: u64,
    pub duplicates: u32,
    pub high_water: u64,
}

/// A batch as the writer took it, before its commit: what the tap publishes.
#[derive(Debug)]
pub struct TapBatch {
    pub collector_id: String,
    pub sequence: u64,
    /// Server receive time of the batch; strictly increasing from batch to batch.
    pub received_at_nanos: i64,
    pub events: Vec<WireEvent>,
}
