//! The server's configuration: a TOML file, overridden by environment and flags, with
//! validation in a pure function.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::store::StoreOptions;

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
    /// Keys of the collector's own config file, for the embedded collector of
    /// `with_collector`. Its `server` is always this server; its `state_dir`
    /// defaults to `<data_dir>/collector`.
    pub collector: toml::Table,
}

/// Tuning of the index writer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IndexConfig {
    /// Memory for the index writer, shared by its threads, in MiB (at least 16).
    pub writer_heap_mb: usize,
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
            collector: toml::Table::new(),
        }
    }
}

impl Default for IndexConfig {
    fn default() -> Self {
        IndexConfig {
            writer_heap_mb: 128,
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
    #[error("grpc_addr and http_addr are both {0}")]
    SameAddr(SocketAddr),
    #[error("[collector]: {0}")]
    Collector(String),
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
        if self.grpc_addr == self.http_addr && self.grpc_addr.port() != 0 {
            return Err(ConfigError::SameAddr(self.grpc_addr));
        }
        self.collector_config("http://127.0.0.1:1")?;
        Ok(())
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

    /// The store's options derived from `[index]`.
    pub fn store_options(&self) -> StoreOptions {
        StoreOptions {
            writer_heap_bytes: self.index.writer_heap_mb * 1024 * 1024,
            commit_interval: Duration::from_millis(self.index.commit_interval_ms),
            commit_max_docs: self.index.commit_max_docs,
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
