//! Change notification for the Docker directory with inotify (the `notify` crate): wakes the
//! main loop when a log grows (read) or files come and go (rescan). Where inotify does not
//! work, the main loop falls back to scanning every `poll_interval_ms`.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use notify::event::{EventKind, ModifyKind};
use notify::{RecommendedWatcher, RecursiveMode, Watcher as _};
use tokio::sync::Notify;

/// What the watcher saw since the main loop last looked.
#[derive(Default)]
pub struct Signals {
    wake: Notify,
    data: AtomicBool,
    scan: AtomicBool,
}

impl Signals {
    /// Waits for the next notification.
    pub async fn notified(&self) {
        self.wake.notified().await;
    }

    /// Takes the flags: (a rescan is needed, new data was written).
    pub fn take(&self) -> (bool, bool) {
        (
            self.scan.swap(false, Ordering::AcqRel),
            self.data.swap(false, Ordering::AcqRel),
        )
    }
}

/// A live inotify watch; dropping it stops watching.
pub struct DirWatcher {
    _watcher: RecommendedWatcher,
}

/// Watches `dir` recursively; events set flags in `signals` and wake the main loop.
pub fn watch(dir: &Path, signals: Arc<Signals>) -> notify::Result<DirWatcher> {
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        match event {
            Ok(event) => match event.kind {
                EventKind::Access(_) => return,
                EventKind::Modify(ModifyKind::Data(_)) => {
                    signals.data.store(true, Ordering::Release);
                }
                _ => signals.scan.store(true, Ordering::Release),
            },
            // Lost events (queue overflow) or a watch error: rescan to be safe.
            Err(_) => signals.scan.store(true, Ordering::Release),
        }
        signals.wake.notify_one();
    })?;
    watcher.watch(dir, RecursiveMode::Recursive)?;
    Ok(DirWatcher { _watcher: watcher })
}
