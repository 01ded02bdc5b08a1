//! Durable files for every logward crate: an atomic whole-file replace and an append-only,
//! fsynced JSON-lines log that recovers from a torn tail.
//!
//! * [`atomic_replace`] writes `dir/name` so that a crash leaves either the old or the new
//!   contents: a uniquely named temp file in the same directory, write, fsync, rename over
//!   the target, fsync of the directory. The temp file is removed when a step fails;
//!   [`remove_stale_temps`] clears those a killed process left behind.
//! * [`Log`] is the byte-level log: one record per `\n`-terminated line. [`Log::open`]
//!   hands every complete line to the caller's parser; the torn tail (trailing lines that
//!   do not end in a newline or do not parse) is truncated away and reported in the
//!   [`Recovery`], a bad line before the last good one is skipped and reported (or, with
//!   [`CorruptLines::Fail`], refused). Appends are fsynced (one fsync for a batch) unless
//!   [`LogOptions::sync`] is off; [`Log::compact`] rewrites the log through
//!   [`atomic_replace`]; [`LogOptions::max_bytes`] is a size budget whose refusals are
//!   counted.
//! * [`JsonLines`] is the typed log of serde records on top of [`Log`].
//!
//! The crate does no logging: what recovery found is returned, for the caller to log,
//! count and report with its own context.

mod atomic;
mod error;
mod json;
mod log;

pub use atomic::{atomic_replace, remove_stale_temps, sync_dir};
pub use error::{Error, Result};
pub use json::{JsonLines, Recovered, encode_line};
pub use log::{CorruptLines, Log, LogOptions, Recovery, SkippedLine, TornTail, read_lines};

#[cfg(test)]
mod test_support;
