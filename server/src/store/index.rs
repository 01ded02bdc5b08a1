//! One day's tantivy index and its reader, opened from `<data_dir>/partitions/<day>`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

use tantivy::directory::MmapDirectory;
use tantivy::{Index, IndexReader, ReloadPolicy};

use crate::store::error::StoreError;
use crate::store::partition::day_name;
use crate::store::schema::EventSchema;

/// One day of the index.
#[derive(Clone)]
pub struct Partition {
    pub day: i64,
    pub index: Index,
    pub reader: IndexReader,
}

/// The partitions by day, shared by the writer (which adds and drops them) and searches.
pub type Partitions = Arc<RwLock<BTreeMap<i64, Partition>>>;

/// Opens (or creates) the partition of `day` under `dir`.
pub(crate) fn open_partition(
    dir: &Path,
    day: i64,
    schema: &EventSchema,
) -> Result<Partition, StoreError> {
    let path = dir.join(day_name(day));
    std::fs::create_dir_all(&path).map_err(|source| StoreError::CreateDir {
        path: path.clone(),
        source,
    })?;
    let open_err = |source| StoreError::Open {
        path: path.clone(),
        source,
    };
    let mmap = MmapDirectory::open(&path).map_err(|e| open_err(e.into()))?;
    let index = Index::open_or_create(mmap, schema.schema.clone()).map_err(open_err)?;
    let reader = index
        .reader_builder()
        .reload_policy(ReloadPolicy::Manual)
        .try_into()
        .map_err(open_err)?;
    Ok(Partition { day, index, reader })
}
