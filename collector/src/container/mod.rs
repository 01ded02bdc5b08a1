//! What every source knows about containers, whichever way their lines reach the collector
//! (Docker's json-file logs, its journald driver): their metadata from the engine's
//! `config.v2.json`, which of them are collected, and which one the collector runs in.

pub mod filter;
pub mod meta;

/// The id of the container this process runs in, if any (see [`filter::own_container_id`]).
pub fn own_container_id(hostname: &str) -> Option<String> {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let id = filter::own_container_id(
        &read("/proc/self/cgroup"),
        &read("/proc/self/mountinfo"),
        hostname,
    );
    if let Some(id) = &id {
        tracing::info!(container = %id, "running in a container: its own logs are not collected (include_self = true to collect them)");
    }
    id
}
