//! logward-rules: a streaming Sigma engine (rules, correlations, filters) over a neutral
//! event view. Pure: no I/O in the engine, time comes in with each event.
//!
//! ```text
//! YAML ─► rule::parse_documents ─► Engine::new(docs, config) ─► engine.process(event, ts, ref)
//!                                   (logsource routing, literal prefilter,   └► Vec<Detection>
//!                                    filters, correlation state)            engine.advance(now)
//! ```
//! `loader` holds the file-reading wrappers behind `rules check` and `rules test`.

pub mod condition;
pub mod correlation;
pub mod detection;
pub mod engine;
pub mod error;
pub mod event;
pub mod loader;
pub mod logsource;
pub mod modifiers;
pub mod pattern;
pub mod prefilter;
pub mod regex_lit;
pub mod rule;
pub mod yaml;

pub use condition::Expr;
pub use correlation::{EventRef, Limits};
pub use engine::{
    ClockSkew, CorrelationStats, Detection, Engine, EngineConfig, EngineStats, InactiveRule,
    RestoreReport, SNAPSHOT_VERSION, Snapshot,
};
pub use error::{ErrorKind, RuleError};
pub use event::{EventView, FieldValues, OwnedEvent};
pub use loader::{
    CheckOptions, CheckReport, DetectionLine, TestError, check_paths, check_paths_with,
    documents_from_str, load_documents, test_events, test_events_str,
};
pub use logsource::{LogsourceMapping, MappingConfig};
pub use rule::{Document, Logsource, Meta, parse_documents, parse_documents_with};
pub use yaml::YamlLimits;
