//! The server's configuration: a TOML file, overridden by environment and flags, with
//! validation in a pure function.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::store::partition::RetentionPolicy;
use crate::store::{MergeOptions, StoreOptions};

/// The whole server configuration. Every key has a default, so an empty file is valid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the index and the embedded collector's state live (`--data-dir`).
    pub data_dir: PathBuf,
    /// Address of the gRPC ingest listener for collectors (`--grpc-addr`).
    pub grpc_addr: SocketAddr,
    /// Address of the HTTP API listener: search, health, metrics (`--http-addr`).
    pub http_addr: SocketAddr,
    /// Also run a collector for this host inside the server (`--with-collector`).
    pub with_collector: bool,
    /// Index tuning.
    pub index: IndexConfig,
    /// What is kept, and for how long.
    pub retention: RetentionConfig,
    /// Keys of the collector's own config file, for the embedded collector of
    /// `with_collector`. Its `server` is always this server; its `state_dir`
    /// defaults to `<data_dir>/collector`.
    pub collector: toml::Table,
    /// Directory of Sigma rule files (`*.yml`, `*.yaml`) loaded beside the built-in
    /// pack and hot-reloaded when a file changes (`--rules-dir`); none by default.
    pub rules_dir: Option<PathBuf>,
    /// Live detection settings.
    pub rules: RulesConfig,
    /// Extra extractors, run before the built-in ones.
    pub extract: Vec<crate::ingest::extract::ExtractConfig>,
    /// Alerting: alerts from detections, flood control, silences and notification
    /// channels (see docs/ALERTING.md). Absent, or without channels, alerting is off.
    pub alerting: Option<logward_alert::AlertingConfig>,
    /// TLS, collector credentials and API tokens (see docs/SECURITY.md).
    pub security: crate::security::SecurityConfig,
    /// Bounds on what clients may ask: message sizes, rates, concurrency, query cost.
    pub limits: crate::limits::LimitsConfig,
}

/// Live detection: the built-in pack, reloading, correlation time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RulesConfig {
    /// Load the built-in rule pack (tune it with Sigma filters in `rules_dir`).
    pub builtin: bool,
    /// How often the rules directory is checked for changes, in ms.
    pub reload_interval_ms: u64,
    /// How often correlation windows advance to the wall clock, in ms.
    pub advance_interval_ms: u64,
    /// Raise "host stopped sending" when a host that sent events sends none for this
    /// many seconds; 0 turns it off.
    pub silent_host_after_s: u64,
}

impl Default for RulesConfig {
    fn default() -> Self {
        RulesConfig {
            builtin: true,
            reload_interval_ms: 1000,
            advance_interval_ms: 1000,
            silent_host_after_s: 1800,
        }
    }
}

/// Tuning of the index writers: one per day partition being written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IndexConfig {
    /// Memory of one partition's writer, shared by its threads, in MiB (at least 16).
    pub writer_heap_mb: usize,
    /// Indexing threads of one partition's writer.
    pub indexing_threads: usize,
    /// Partition writers kept open at once (late events open older days' writers);
    /// memory is bounded by `writer_heap_mb × max_open_writers`.
    pub max_open_writers: usize,
    /// Merge segments once this many of a similar size exist; 0 turns merging off.
    pub merge_min_segments: usize,
    /// Segments with more documents than this are no longer merged.
    pub merge_max_docs: usize,
    /// Longest time a received batch waits for the group commit that acks it, in ms.
    /// Lower means fresher search and faster acks, higher means fewer, larger segments.
    pub commit_interval_ms: u64,
    /// Commit at once when this many events are waiting, whatever the interval.
    pub commit_max_docs: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./logward-data"),
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 7420)),
            http_addr: SocketAddr::from(([127, 0, 0, 1], 7421)),
            with_collector: false,
            index: IndexConfig::default(),
            retention: RetentionConfig::default(),
            collector: toml::Table::new(),
            rules_dir: None,
            rules: RulesConfig::default(),
            extract: Vec::new(),
            alerting: None,
            security: crate::security::SecurityConfig::default(),
            limits: crate::limits::LimitsConfig::default(),
        }
    }
}

/// Retention: whole day partitions are deleted on a schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Delete partitions whose day ended more than this many days ago; 0 keeps all.
    pub max_age_days: u32,
    /// Delete the oldest partitions while all together take more MiB; 0 is no limit.
    /// The newest partition is always kept.
    pub max_total_mb: u64,
    /// How often retention runs, in seconds.
    pub check_interval_s: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            max_age_days: 0,
            max_total_mb: 0,
            check_interval_s: 3600,
        }
    }
}

impl Default for IndexConfig {
    fn default() -> Self {
        IndexConfig {
            writer_heap_mb: 64,
            indexing_threads: 1,
            max_open_writers: 4,
            merge_min_segments: 8,
            merge_max_docs: 5_000_000,
            commit_interval_ms: 200,
            commit_max_docs: 100_000,
        }
    }
}

/// A configuration that cannot work.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error("data_dir must not be empty")]
    EmptyDataDir,
    #[error("index.writer_heap_mb is {0}; it must be between 16 and 65536")]
    WriterHeap(usize),
    #[error("index.commit_interval_ms is {0}; it must be between 1 and 60000")]
    CommitInterval(u64),
    #[error("index.commit_max_docs must be at least 1")]
    CommitMaxDocs,
    #[error("index.indexing_threads is {0}; it must be between 1 and 8")]
    IndexingThreads(usize),
    #[error("index.max_open_writers is {0}; it must be between 1 and 64")]
    MaxOpenWriters(usize),
    #[error("index.writer_heap_mb / index.indexing_threads must be at least 16 MiB per thread")]
    HeapPerThread,
    #[error("retention.check_interval_s is {0}; it must be between 1 and 86400")]
    RetentionInterval(u64),
    #[error("grpc_addr and http_addr are both {0}")]
    SameAddr(SocketAddr),
    #[error("[collector]: {0}")]
    Collector(String),
    #[error("rules.{0} is {1}; it must be between 100 and 3600000")]
    RulesInterval(&'static str, u64),
    #[error("rules_dir must not be empty")]
    EmptyRulesDir,
    #[error("{0}")]
    Extract(String),
    #[error("[alerting]: {0}")]
    Alerting(String),
    #[error(transparent)]
    Security(#[from] crate::security::SecurityError),
    #[error(transparent)]
    Limits(#[from] crate::limits::LimitError),
}

impl Config {
    /// Checks the configuration without touching the system.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.data_dir.as_os_str().is_empty() {
            return Err(ConfigError::EmptyDataDir);
        }
        if !(16..=65_536).contains(&self.index.writer_heap_mb) {
            return Err(ConfigError::WriterHeap(self.index.writer_heap_mb));
        }
        if !(1..=60_000).contains(&self.index.commit_interval_ms) {
            return Err(ConfigError::CommitInterval(self.index.commit_interval_ms));
        }
        if self.index.commit_max_docs == 0 {
            return Err(ConfigError::CommitMaxDocs);
        }
        if !(1..=8).contains(&self.index.indexing_threads) {
            return Err(ConfigError::IndexingThreads(self.index.indexing_threads));
        }
        if self.index.writer_heap_mb / self.index.indexing_threads < 16 {
            return Err(ConfigError::HeapPerThread);
        }
        if !(1..=64).contains(&self.index.max_open_writers) {
            return Err(ConfigError::MaxOpenWriters(self.index.max_open_writers));
        }
        if !(1..=86_400).contains(&self.retention.check_interval_s) {
            return Err(ConfigError::RetentionInterval(
                self.retention.check_interval_s,
            ));
        }
        if self.grpc_addr == self.http_addr && self.grpc_addr.port() != 0 {
            return Err(ConfigError::SameAddr(self.grpc_addr));
        }
        for (name, v) in [
            ("reload_interval_ms", self.rules.reload_interval_ms),
            ("advance_interval_ms", self.rules.advance_interval_ms),
        ] {
            if !(100..=3_600_000).contains(&v) {
                return Err(ConfigError::RulesInterval(name, v));
            }
        }
        if self
            .rules_dir
            .as_ref()
            .is_some_and(|d| d.as_os_str().is_empty())
        {
            return Err(ConfigError::EmptyRulesDir);
        }
        let mut names: Vec<&str> = Vec::new();
        for x in &self.extract {
            x.validate().map_err(ConfigError::Extract)?;
            if names.contains(&x.name.as_str()) {
                return Err(ConfigError::Extract(format!(
                    "[[extract]] name '{}' is used twice",
                    x.name
                )));
            }
            names.push(&x.name);
        }
        if let Some(a) = &self.alerting {
            a.validate()
                .map_err(|e| ConfigError::Alerting(e.to_string()))?;
        }
        self.security.validate()?;
        self.limits.validate()?;
        self.collector_config("http://127.0.0.1:1")?;
        Ok(())
    }

    /// The alerting configuration when alerting is on (an `[alerting]` table with at
    /// least one channel).
    pub fn alerting_enabled(&self) -> Option<&logward_alert::AlertingConfig> {
        self.alerting.as_ref().filter(|a| !a.channels.is_empty())
    }

    /// The embedded collector's configuration, sending to `server_url`.
    pub fn collector_config(
        &self,
        server_url: &str,
    ) -> Result<logward_collector::Config, ConfigError> {
        let mut table = self.collector.clone();
        table.insert("server".into(), toml::Value::String(server_url.to_owned()));
        if !table.contains_key("state_dir") {
            let dir = self.data_dir.join("collector");
            table.insert(
                "state_dir".into(),
                toml::Value::String(dir.to_string_lossy().into_owned()),
            );
        }
        let config: logward_collector::Config = table
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Collector(e.message().to_owned()))?;
        config
            .validate()
            .map_err(|e| ConfigError::Collector(e.to_string()))?;
        Ok(config)
    }

    /// The detector's options derived from `rules_dir` and `[rules]`.
    pub fn detect_options(&self) -> crate::detect::DetectOptions {
        crate::detect::DetectOptions {
            data_dir: self.data_dir.clone(),
            builtin: self.rules.builtin,
            rules_dir: self.rules_dir.clone(),
            reload_interval: Duration::from_millis(self.rules.reload_interval_ms),
            advance_interval: Duration::from_millis(self.rules.advance_interval_ms),
            silent_host_after: (self.rules.silent_host_after_s > 0)
                .then(|| Duration::from_secs(self.rules.silent_host_after_s)),
        }
    }

    /// The store's options derived from `[index]`.
    pub fn store_options(&self) -> StoreOptions {
        StoreOptions {
            writer_heap_bytes: self.index.writer_heap_mb * 1024 * 1024,
            indexing_threads: self.index.indexing_threads,
            max_open_writers: self.index.max_open_writers,
            commit_interval: Duration::from_millis(self.index.commit_interval_ms),
            commit_max_docs: self.index.commit_max_docs,
            merge: MergeOptions {
                min_segments: self.index.merge_min_segments,
                max_docs: self.index.merge_max_docs,
            },
            retention: RetentionPolicy {
                max_age_days: self.retention.max_age_days,
                max_total_bytes: self.retention.max_total_mb.saturating_mul(1024 * 1024),
            },
            retention_interval: Duration::from_secs(self.retention.check_interval_s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(toml_text: &str, expected: Result<(), &str>) {
        let parsed: Result<Config, String> =
            toml::from_str(toml_text).map_err(|e: toml::de::Error| e.to_string());
        let got = parsed.and_then(|c| c.validate().map_err(|e| e.to_string()));
        match (&got, expected) {
            (Ok(()), Ok(())) => {}
            (Err(g), Err(e)) => assert!(g.contains(e), "{toml_text:?}: {g:?} lacks {e:?}"),
            _ => panic!("{toml_text:?}: got {got:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn alerting_section() {
        let on = "[alerting]\n[[alerting.channels]]\nname = \"siem\"\n[alerting.channels.webhook]\nurl = \"http://127.0.0.1:9/h\"\nallow_targets = [\"127.0.0.1/32\"]\n";
        check(on, Ok(()));
        let c: Config = toml::from_str(on).expect("parses");
        assert!(c.alerting_enabled().is_some());
        let c: Config = toml::from_str("[alerting]\ntick = \"2s\"").expect("parses");
        assert!(c.alerting.is_some() && c.alerting_enabled().is_none());
        assert!(Config::default().alerting_enabled().is_none());
        check("[alerting]\nbogus = 1", Err("unknown field `bogus`"));
        check("[alerting]\ntick = \"0\"", Err("[alerting]: "));
        check(
            "[alerting]\n[[alerting.channels]]\nname = \"x\"\n",
            Err("needs exactly one of"),
        );
    }

    #[test]
    fn config_files() {
        check("", Ok(()));
        check(
            "data_dir = \"/var/lib/logward\"\nwith_collector = true",
            Ok(()),
        );
        check("[index]\ncommit_interval_ms = 50", Ok(()));
        check("colour = 1", Err("unknown field `colour`"));
        check("[index]\nwriter_heap_mb = 1", Err("writer_heap_mb is 1"));
        check(
            "[index]\ncommit_interval_ms = 0",
            Err("commit_interval_ms is 0"),
        );
        check("grpc_addr = \"nowhere\"", Err("invalid socket address"));
        check(
            "grpc_addr = \"127.0.0.1:9\"\nhttp_addr = \"127.0.0.1:9\"",
            Err("are both"),
        );
        check("[collector]\nbogus = true", Err("[collector]"));
        check(
            "[limits]\nmax_events_per_batch = 0",
            Err("max_events_per_batch is 0"),
        );
        check(
            "[[security.collectors]]\nidentity = \"a\"",
            Err("needs token_sha256"),
        );
        check(
            "[retention]\nmax_age_days = 30\nmax_total_mb = 1024",
            Ok(()),
        );
        check(
            "[retention]\ncheck_interval_s = 0",
            Err("check_interval_s is 0"),
        );
        check("[retention]\nmax_age = 3", Err("unknown field `max_age`"));
        check(
            "[index]\nindexing_threads = 0",
            Err("indexing_threads is 0"),
        );
        check(
            "[index]\nwriter_heap_mb = 32\nindexing_threads = 4",
            Err("per thread"),
        );
        check(
            "[index]\nmax_open_writers = 0",
            Err("max_open_writers is 0"),
        );
        check("[index]\nmerge_min_segments = 0", Ok(()));
        check(
            "rules_dir = \"/etc/logward/rules\"\n[rules]\nbuiltin = false",
            Ok(()),
        );
        check(
            "[rules]\nreload_interval_ms = 5",
            Err("reload_interval_ms is 5"),
        );
        check("[rules]\nbogus = 1", Err("unknown field `bogus`"));
        check(
            "[[extract]]\nname = \"app\"\nkind = \"logfmt\"\nwhen = { image = [\"acme/*\"] }",
            Ok(()),
        );
        check(
            "[[extract]]\nname = \"re\"\nkind = \"regex\"\npattern = \"(?P<user>\\\\w+\"",
            Err("pattern"),
        );
        check(
            "[[extract]]\nname = \"x\"\nkind = \"xml\"",
            Err("unknown variant"),
        );
        check(
            "[[extract]]\nname = \"x\"\nkind = \"kv\"\nwhen = { colour = \"red\" }",
            Err("unknown field `colour`"),
        );
    }

    #[test]
    fn embedded_collector_defaults_under_data_dir() {
        let config = Config {
            data_dir: PathBuf::from("/d"),
            ..Config::default()
        };
        let c = config
            .collector_config("http://127.0.0.1:5")
            .expect("valid");
        assert_eq!(c.server, "http://127.0.0.1:5");
        assert_eq!(c.state_dir, PathBuf::from("/d/collector"));
    }
}
