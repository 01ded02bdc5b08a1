//! The collector's configuration: every setting, its default, and a pure validation.
//!
//! The same struct is read from the TOML config file (`#[serde(deny_unknown_fields)]`, every
//! key optional) and filled in from flags and environment by [`crate::cli`]. The server embeds
//! the collector in its all-in-one mode and builds a `Config` directly.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::container::filter::{Filter, FilterSpec};

/// Default gRPC address of the logward server.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:7420";
/// Default directory Docker keeps its containers (and their json-file logs) in.
pub const DEFAULT_DOCKER_DIR: &str = "/var/lib/docker/containers";
/// Default directory the collector keeps its checkpoint and send journal in.
pub const DEFAULT_STATE_DIR: &str = "./logward-collector-state";

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

/// The largest batch we allow ourselves to build: tonic's default receive limit is 4 MiB,
/// and a batch may overshoot `batch_max_bytes` by at most one event's metadata.
pub const MAX_BATCH_BYTES: usize = 3 * MIB;
/// The most events a batch may hold: the server's default `[limits] max_events_per_batch`,
/// so that a collector never builds a batch a default server refuses.
pub const MAX_BATCH_EVENTS: usize = 10_000;

/// Everything the collector needs to run.
///
/// Memory is bounded by `(max_in_flight + 1) * batch_max_bytes` for batches (the window plus
/// the batch being filled) plus, per container, one read buffer of at most
/// `2 * max_event_bytes` and one pending partial-line event of at most `max_event_bytes`
/// (only the oldest unread file of a container is read; the others hold just a descriptor).
///
/// `Debug` never shows the token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// gRPC address of the logward server (`https://` for TLS, `http://` for plaintext).
    pub server: String,
    /// PEM bundle of the CA certificates that verify the server (`https://` only). Without
    /// it the bundled public web roots (webpki-roots) verify the server.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (chain) for mutual TLS; needs `client_key` and `https://`.
    pub client_cert: Option<PathBuf>,
    /// PEM private key of `client_cert`.
    pub client_key: Option<PathBuf>,
    /// Name to verify in the server's certificate when it differs from the URL's host.
    pub server_name: Option<String>,
    /// File holding the bearer token sent to the server (white space around it is trimmed).
    pub token_file: Option<PathBuf>,
    /// The bearer token, sent as `authorization: Bearer <token>`. Never read from the TOML
    /// file: the command line fills it from `token_file` or `LOGWARD_TOKEN`, an embedding
    /// program sets it in code, and [`crate::run`] reads `token_file` when it is unset.
    #[serde(skip)]
    pub token: Option<String>,
    /// Compression of the batches sent: `none`, `gzip` or `zstd`.
    pub compression: Compression,
    /// Directory holding Docker's `<id>/<id>-json.log` and `<id>/config.v2.json` files.
    pub docker_dir: PathBuf,
    /// Do not collect Docker container logs.
    pub no_docker: bool,
    /// Do not collect the systemd journal.
    pub no_journald: bool,
    /// Read the journal files of this directory (`journalctl --directory`) instead of the
    /// system journal.
    pub journal_dir: Option<PathBuf>,
    /// Read exactly these journal files (`journalctl --file`) instead of the system journal.
    pub journal_files: Vec<PathBuf>,
    /// Where the journal is read from on the very first start (no journald checkpoint yet):
    /// `now`, `boot` (the current boot) or `beginning` (the oldest retained entry).
    pub journal_start: JournalStart,
    /// Journal entries: keep only these systemd units (`_SYSTEMD_UNIT`; empty: all).
    pub include_units: Vec<String>,
    /// Journal entries: drop these systemd units.
    pub exclude_units: Vec<String>,
    /// Journal entries: keep only these `SYSLOG_IDENTIFIER`s (empty: all).
    pub include_identifiers: Vec<String>,
    /// Journal entries: drop these `SYSLOG_IDENTIFIER`s.
    pub exclude_identifiers: Vec<String>,
    /// Journal entries: keep only `PRIORITY` at or below this (0 emerg … 7 debug); entries
    /// without a priority (kernel audit records) are kept.
    pub min_priority: Option<u8>,
    /// Journal matches `FIELD=value`, passed to journalctl (same field: any; different
    /// fields: all).
    pub matches: Vec<String>,
    /// The journalctl binary.
    pub journalctl: PathBuf,
    /// Directory for the collector's identity, checkpoint and send journal.
    pub state_dir: PathBuf,
    /// Host name stamped on every event.
    pub hostname: String,
    /// A batch is cut once it holds this many events.
    pub batch_max_events: usize,
    /// A batch is cut before its encoded size would exceed this many bytes.
    pub batch_max_bytes: usize,
    /// A non-empty batch is cut at the latest this many milliseconds after its first event.
    pub batch_linger_ms: u64,
    /// How many batches may be sent and not yet acknowledged; reading stops while it is full.
    pub max_in_flight: usize,
    /// How often (milliseconds) the Docker directory is scanned and files are read when
    /// inotify is unavailable (with inotify, changes are followed as they happen).
    pub poll_interval_ms: u64,
    /// Longest event message in bytes; longer lines keep their head and are flagged
    /// with the field `logward.truncated`.
    pub max_event_bytes: usize,
    /// On shutdown, how long (milliseconds) to wait for acks of batches in flight.
    pub shutdown_grace_ms: u64,
    /// Where a log without a checkpoint starts on the very first start (no state file yet):
    /// `beginning`, or `end` (rotated files are skipped, live files start at their end).
    /// Later starts, and files that appear later, always read from the beginning.
    pub read_from: ReadFrom,
    /// With inotify working, how often (milliseconds) the Docker directory is still rescanned
    /// as a safety net (inotify drives everything else).
    pub rescan_interval_ms: u64,
    /// Address of the collector's own `/metrics` and `/healthz` listener; off when unset.
    pub metrics_addr: Option<SocketAddr>,
    /// Collect only containers whose name matches one of these globs (empty: all).
    pub include_names: Vec<String>,
    /// Never collect containers whose name matches one of these globs.
    pub exclude_names: Vec<String>,
    /// Collect only containers whose image matches one of these globs (empty: all).
    pub include_images: Vec<String>,
    /// Never collect containers whose image matches one of these globs.
    pub exclude_images: Vec<String>,
    /// `key` or `key=glob`: collect only containers with every one of these labels.
    pub include_labels: Vec<String>,
    /// `key` or `key=glob`: never collect containers with any of these labels.
    pub exclude_labels: Vec<String>,
    /// Also collect the collector's own container (found from `/proc/self`), off by default.
    pub include_self: bool,
}

/// Compression of the batches sent to the server (the server accepts all of them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Uncompressed.
    None,
    /// gzip (level 6).
    Gzip,
    /// zstd (level 3): about as small as gzip at a fraction of its CPU cost.
    #[default]
    Zstd,
}

impl Compression {
    /// The gRPC encoding, `None` for no compression.
    pub fn encoding(self) -> Option<tonic::codec::CompressionEncoding> {
        match self {
            Self::None => None,
            Self::Gzip => Some(tonic::codec::CompressionEncoding::Gzip),
            Self::Zstd => Some(tonic::codec::CompressionEncoding::Zstd),
        }
    }
}

/// Where the journal is read from when there is no journald checkpoint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JournalStart {
    /// Only entries written from now on.
    Now,
    /// Entries of the current boot.
    #[default]
    Boot,
    /// The oldest retained entry.
    Beginning,
}

/// Where logs without a checkpoint start on the very first start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadFrom {
    /// Everything on disk, rotated files first.
    #[default]
    Beginning,
    /// Only what is written from now on.
    End,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            server: DEFAULT_SERVER.to_owned(),
            ca_file: None,
            client_cert: None,
            client_key: None,
            server_name: None,
            token_file: None,
            token: None,
            compression: Compression::default(),
            docker_dir: PathBuf::from(DEFAULT_DOCKER_DIR),
            no_docker: false,
            no_journald: false,
            journal_dir: None,
            journal_files: Vec::new(),
            journal_start: JournalStart::Boot,
            include_units: Vec::new(),
            exclude_units: Vec::new(),
            include_identifiers: Vec::new(),
            exclude_identifiers: Vec::new(),
            min_priority: None,
            matches: Vec::new(),
            journalctl: PathBuf::from("journalctl"),
            state_dir: PathBuf::from(DEFAULT_STATE_DIR),
            hostname: machine_hostname(),
            batch_max_events: 1000,
            batch_max_bytes: MIB,
            batch_linger_ms: 100,
            max_in_flight: 8,
            poll_interval_ms: 250,
            max_event_bytes: MIB,
            shutdown_grace_ms: 5000,
            read_from: ReadFrom::Beginning,
            rescan_interval_ms: 10_000,
            metrics_addr: None,
            include_names: Vec::new(),
            exclude_names: Vec::new(),
            include_images: Vec::new(),
            exclude_images: Vec::new(),
            include_labels: Vec::new(),
            exclude_labels: Vec::new(),
            include_self: false,
        }
    }
}

/// The machine's host name, lossily converted to UTF-8.
pub fn machine_hostname() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}

/// Why a [`Config`] was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A setting has a value the collector cannot work with.
    #[error("invalid `{key}`: {reason}")]
    Invalid {
        /// The config key (same name as the flag, in snake_case).
        key: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

pub(crate) fn invalid(key: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        reason: reason.into(),
    }
}

impl Config {
    /// Checks every setting. Pure: touches neither the file system nor the network.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let uri: tonic::codegen::http::Uri = self
            .server
            .parse()
            .map_err(|e| invalid("server", format!("{:?} is not a URL: {e}", self.server)))?;
        match uri.scheme_str() {
            Some("http" | "https") => {}
            _ => {
                return Err(invalid(
                    "server",
                    format!("{:?} must start with http:// or https://", self.server),
                ));
            }
        }
        if uri.host().is_none_or(str::is_empty) {
            return Err(invalid("server", format!("{:?} has no host", self.server)));
        }
        if !self.no_docker && self.docker_dir.as_os_str().is_empty() {
            return Err(invalid("docker_dir", "must not be empty"));
        }
        if self.state_dir.as_os_str().is_empty() {
            return Err(invalid("state_dir", "must not be empty"));
        }
        if self.hostname.trim().is_empty() {
            return Err(invalid("hostname", "must not be empty"));
        }
        if !(1..=MAX_BATCH_EVENTS).contains(&self.batch_max_events) {
            return Err(invalid(
                "batch_max_events",
                format!("must be between 1 and {MAX_BATCH_EVENTS}"),
            ));
        }
        if !(KIB..=MAX_BATCH_BYTES).contains(&self.batch_max_bytes) {
            return Err(invalid(
                "batch_max_bytes",
                format!("must be between {KIB} and {MAX_BATCH_BYTES}"),
            ));
        }
        if self.max_in_flight == 0 || self.max_in_flight > 1024 {
            return Err(invalid("max_in_flight", "must be between 1 and 1024"));
        }
        if self.poll_interval_ms < 10 || self.poll_interval_ms > 60_000 {
            return Err(invalid("poll_interval_ms", "must be between 10 and 60000"));
        }
        if self.batch_linger_ms > 60_000 {
            return Err(invalid("batch_linger_ms", "must be at most 60000"));
        }
        if self.max_event_bytes < 256 || self.max_event_bytes > self.batch_max_bytes {
            return Err(invalid(
                "max_event_bytes",
                format!(
                    "must be between 256 and batch_max_bytes ({})",
                    self.batch_max_bytes
                ),
            ));
        }
        if self.shutdown_grace_ms > 600_000 {
            return Err(invalid("shutdown_grace_ms", "must be at most 600000"));
        }
        if !(100..=3_600_000).contains(&self.rescan_interval_ms) {
            return Err(invalid(
                "rescan_interval_ms",
                "must be between 100 and 3600000",
            ));
        }
        if self.journal_dir.is_some() && !self.journal_files.is_empty() {
            return Err(invalid(
                "journal_files",
                "give either journal_dir or journal_files, not both",
            ));
        }
        if self
            .journal_dir
            .as_ref()
            .is_some_and(|d| d.as_os_str().is_empty())
        {
            return Err(invalid("journal_dir", "must not be empty"));
        }
        if self.min_priority.is_some_and(|p| p > 7) {
            return Err(invalid("min_priority", "must be between 0 and 7"));
        }
        for m in &self.matches {
            let ok = m.split_once('=').is_some_and(|(field, _)| {
                !field.is_empty()
                    && field
                        .bytes()
                        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
            });
            if !ok {
                return Err(invalid(
                    "matches",
                    format!("{m:?} is not FIELD=value with an upper-case journal field name"),
                ));
            }
        }
        let lists: [(&'static str, &[String]); 6] = [
            ("include_names", &self.include_names),
            ("exclude_names", &self.exclude_names),
            ("include_images", &self.include_images),
            ("exclude_images", &self.exclude_images),
            ("include_labels", &self.include_labels),
            ("exclude_labels", &self.exclude_labels),
        ];
        for (key, list) in lists {
            let spec = match key {
                "include_labels" => FilterSpec {
                    include_labels: list.to_vec(),
                    ..FilterSpec::default()
                },
                "exclude_labels" => FilterSpec {
                    exclude_labels: list.to_vec(),
                    ..FilterSpec::default()
                },
                _ => FilterSpec {
                    include_names: list.to_vec(),
                    ..FilterSpec::default()
                },
            };
            Filter::new(&spec).map_err(|e| invalid(key, e.to_string()))?;
        }
        crate::security::validate(self)
    }

    /// Whether `server` is `https://` (TLS).
    pub fn uses_tls(&self) -> bool {
        self.server
            .parse::<tonic::codegen::http::Uri>()
            .is_ok_and(|uri| {
                uri.scheme_str()
                    .is_some_and(|s| s.eq_ignore_ascii_case("https"))
            })
    }

    /// The container filters of this configuration.
    pub fn filter_spec(&self) -> FilterSpec {
        FilterSpec {
            include_names: self.include_names.clone(),
            exclude_names: self.exclude_names.clone(),
            include_images: self.include_images.clone(),
            exclude_images: self.exclude_images.clone(),
            include_labels: self.include_labels.clone(),
            exclude_labels: self.exclude_labels.clone(),
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Every field but the token, which shows only whether it is set.
        let token = self.token.as_ref().map(|_| "<redacted>");
        f.debug_struct("Config")
            .field("server", &self.server)
            .field("ca_file", &self.ca_file)
            .field("client_cert", &self.client_cert)
            .field("client_key", &self.client_key)
            .field("server_name", &self.server_name)
            .field("token_file", &self.token_file)
            .field("token", &token)
            .field("compression", &self.compression)
            .field("docker_dir", &self.docker_dir)
            .field("no_docker", &self.no_docker)
            .field("no_journald", &self.no_journald)
            .field("journal_dir", &self.journal_dir)
            .field("journal_files", &self.journal_files)
            .field("journal_start", &self.journal_start)
            .field("include_units", &self.include_units)
            .field("exclude_units", &self.exclude_units)
            .field("include_identifiers", &self.include_identifiers)
            .field("exclude_identifiers", &self.exclude_identifiers)
            .field("min_priority", &self.min_priority)
            .field("matches", &self.matches)
            .field("journalctl", &self.journalctl)
            .field("state_dir", &self.state_dir)
            .field("hostname", &self.hostname)
            .field("batch_max_events", &self.batch_max_events)
            .field("batch_max_bytes", &self.batch_max_bytes)
            .field("batch_linger_ms", &self.batch_linger_ms)
            .field("max_in_flight", &self.max_in_flight)
            .field("poll_interval_ms", &self.poll_interval_ms)
            .field("max_event_bytes", &self.max_event_bytes)
            .field("shutdown_grace_ms", &self.shutdown_grace_ms)
            .field("read_from", &self.read_from)
            .field("rescan_interval_ms", &self.rescan_interval_ms)
            .field("metrics_addr", &self.metrics_addr)
            .field("include_names", &self.include_names)
            .field("exclude_names", &self.exclude_names)
            .field("include_images", &self.include_images)
            .field("exclude_images", &self.exclude_images)
            .field("include_labels", &self.include_labels)
            .field("exclude_labels", &self.exclude_labels)
            .field("include_self", &self.include_self)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let config = Config::default();
        assert_eq!(config.server, DEFAULT_SERVER);
        assert_eq!(config.batch_max_events, 1000);
        assert_eq!(config.batch_max_bytes, MIB);
        assert_eq!(config.max_in_flight, 8);
        config.validate().unwrap();
    }

    #[test]
    fn empty_file_gives_defaults() {
        let config: Config = toml::from_str("").unwrap();
        assert_eq!(config, Config::default());
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = toml::from_str::<Config>("servr = \"http://x:1\"").unwrap_err();
        assert!(err.to_string().contains("servr"), "{err}");
    }

    #[test]
    fn invalid_settings_name_their_key() {
        type Case = (&'static str, fn(&mut Config));
        let cases: &[Case] = &[
            ("server", |c| c.server = "127.0.0.1:7420".into()),
            ("server", |c| c.server = "ftp://host:1".into()),
            ("server", |c| c.server = "not a url".into()),
            ("hostname", |c| c.hostname = " ".into()),
            ("batch_max_events", |c| c.batch_max_events = 0),
            ("batch_max_events", |c| {
                c.batch_max_events = MAX_BATCH_EVENTS + 1;
            }),
            ("batch_max_bytes", |c| c.batch_max_bytes = 10),
            ("batch_max_bytes", |c| c.batch_max_bytes = 64 * MIB),
            ("max_in_flight", |c| c.max_in_flight = 0),
            ("poll_interval_ms", |c| c.poll_interval_ms = 0),
            ("max_event_bytes", |c| c.max_event_bytes = 2 * MIB),
            ("state_dir", |c| c.state_dir = PathBuf::new()),
            ("docker_dir", |c| c.docker_dir = PathBuf::new()),
            ("rescan_interval_ms", |c| c.rescan_interval_ms = 1),
            ("include_names", |c| c.include_names = vec!["web[".into()]),
            ("exclude_images", |c| c.exclude_images = vec!["[".into()]),
            ("include_labels", |c| c.include_labels = vec!["=v".into()]),
            ("min_priority", |c| c.min_priority = Some(8)),
            ("matches", |c| c.matches = vec!["_pid=1".into()]),
            ("matches", |c| c.matches = vec!["NOEQUALS".into()]),
            ("journal_dir", |c| c.journal_dir = Some(PathBuf::new())),
            ("journal_files", |c| {
                c.journal_dir = Some("/j".into());
                c.journal_files = vec!["/j/a.journal".into()];
            }),
        ];
        for (key, mutate) in cases {
            let mut config = Config::default();
            mutate(&mut config);
            match config.validate() {
                Err(ConfigError::Invalid { key: got, .. }) => assert_eq!(got, *key, "{config:?}"),
                Ok(()) => panic!("expected {key} to be rejected: {config:?}"),
            }
        }
    }

    #[test]
    fn new_keys_parse_from_the_file() {
        let config: Config = toml::from_str(
            "read_from = \"end\"\nmetrics_addr = \"127.0.0.1:9000\"\n\
             include_labels = [\"app=web*\"]\nexclude_names = [\"tmp-*\"]\ninclude_self = true\n",
        )
        .unwrap();
        assert_eq!(config.read_from, ReadFrom::End);
        assert_eq!(config.metrics_addr, Some("127.0.0.1:9000".parse().unwrap()));
        assert_eq!(config.include_labels, ["app=web*"]);
        assert!(config.include_self);
        config.validate().unwrap();
        assert!(toml::from_str::<Config>("read_from = \"middle\"").is_err());
        let config: Config = toml::from_str(
            "journal_start = \"beginning\"\nmin_priority = 4\nmatches = [\"_SYSTEMD_UNIT=ssh.service\"]\n\
             exclude_identifiers = [\"CRON\"]\njournal_files = [\"/j/a.journal\"]\n",
        )
        .unwrap();
        assert_eq!(config.journal_start, JournalStart::Beginning);
        assert_eq!(config.min_priority, Some(4));
        config.validate().unwrap();
    }

    #[test]
    fn security_keys_parse_from_the_file_but_the_token_does_not() {
        let config: Config = toml::from_str(
            "server = \"https://logs.example:7420\"\nca_file = \"/etc/logward/ca.pem\"\n\
             client_cert = \"/etc/logward/c.pem\"\nclient_key = \"/etc/logward/c.key\"\n\
             server_name = \"logward.internal\"\ntoken_file = \"/etc/logward/token\"\n\
             compression = \"gzip\"\n",
        )
        .unwrap();
        assert_eq!(config.ca_file, Some(PathBuf::from("/etc/logward/ca.pem")));
        assert_eq!(config.server_name.as_deref(), Some("logward.internal"));
        assert_eq!(config.compression, Compression::Gzip);
        assert_eq!(config.token, None);
        config.validate().unwrap();
        assert_eq!(Config::default().compression, Compression::Zstd);
        assert!(toml::from_str::<Config>("token = \"lw_x\"").is_err());
        assert!(toml::from_str::<Config>("compression = \"brotli\"").is_err());
        let with_token = Config {
            token: Some("lw_secret".into()),
            ..Config::default()
        };
        let debug = format!("{with_token:?}");
        assert!(!debug.contains("lw_secret") && debug.contains("<redacted>"));
        assert!(!toml::to_string(&with_token).unwrap().contains("lw_secret"));
    }

    #[test]
    fn docker_dir_may_be_empty_when_docker_is_off() {
        let config = Config {
            no_docker: true,
            docker_dir: PathBuf::new(),
            ..Config::default()
        };
        config.validate().unwrap();
    }
}
