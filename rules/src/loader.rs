//! The thin file layer behind `logward-server rules check` and `rules test`: reads files,
//! runs the pure engine, and returns output lines and exit status.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::correlation::EventRef;
use crate::engine::{Detection, Engine, EngineConfig};
use crate::error::RuleError;
use crate::event::OwnedEvent;
use crate::rule::{Document, parse_documents_with};
use crate::yaml::YamlLimits;

/// Every `.yml`/`.yaml` file under the paths (files are taken as given), sorted.
pub fn rule_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, (PathBuf, std::io::Error)> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut stack = vec![p.clone()];
            while let Some(d) = stack.pop() {
                let rd = std::fs::read_dir(&d).map_err(|e| (d.clone(), e))?;
                for entry in rd {
                    let path = entry.map_err(|e| (d.clone(), e))?.path();
                    if path.is_dir() {
                        stack.push(path);
                    } else if path.extension().is_some_and(|e| e == "yml" || e == "yaml") {
                        out.push(path);
                    }
                }
            }
        } else {
            out.push(p.clone());
        }
    }
    out.sort();
    Ok(out)
}

/// The result of `rules check`.
#[derive(Debug, Default)]
pub struct CheckReport {
    /// Files read.
    pub files: usize,
    /// Documents (rules, correlations, filters) found.
    pub documents: usize,
    /// (file, error) in file order.
    pub errors: Vec<(PathBuf, String)>,
    /// (file, warning): rules that load inactive (logsource not mapped).
    pub warnings: Vec<(PathBuf, String)>,
}

impl CheckReport {
    /// 0 when everything is valid, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        i32::from(!self.errors.is_empty())
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (p, e) in &self.errors {
            writeln!(f, "{}: {e}", p.display())?;
        }
        for (p, w) in &self.warnings {
            writeln!(f, "{}: warning: {w}", p.display())?;
        }
        write!(
            f,
            "checked {} files, {} documents: {} errors",
            self.files,
            self.documents,
            self.errors.len()
        )?;
        if !self.warnings.is_empty() {
            write!(f, ", {} warnings", self.warnings.len())?;
        }
        Ok(())
    }
}

/// Loads and parses files, keeping which file each document came from.
fn load(
    paths: &[PathBuf],
    opts: &CheckOptions,
    report: &mut CheckReport,
) -> (Vec<Document>, HashMap<String, PathBuf>) {
    let mut docs = Vec::new();
    let mut origin = HashMap::new();
    let files = match rule_files(paths) {
        Ok(f) => f,
        Err((p, e)) => {
            report.errors.push((p, format!("cannot read: {e}")));
            return (docs, origin);
        }
    };
    for file in files {
        report.files += 1;
        let text = match std::fs::read(&file) {
            Ok(b) => match String::from_utf8(b) {
                Ok(t) => t,
                Err(e) => {
                    let at = e.utf8_error().valid_up_to();
                    report.errors.push((
                        file,
                        format!("cannot read: not valid UTF-8 (byte offset {at})"),
                    ));
                    continue;
                }
            },
            Err(e) => {
                report.errors.push((file, format!("cannot read: {e}")));
                continue;
            }
        };
        match parse_documents_with(&text, &opts.yaml) {
            Err(e) => report.errors.push((file, e.to_string())),
            Ok(results) => {
                for r in results {
                    report.documents += 1;
                    match r {
                        Ok(d) => {
                            origin.insert(d.meta().label().to_owned(), file.clone());
                            docs.push(d);
                        }
                        Err(e) => report.errors.push((file.clone(), e.to_string())),
                    }
                }
            }
        }
    }
    (docs, origin)
}

fn compile(
    docs: &[Document],
    origin: &HashMap<String, PathBuf>,
    cfg: &EngineConfig,
    report: &mut CheckReport,
) -> Option<Engine> {
    match Engine::new(docs, cfg) {
        Ok(e) => Some(e),
        Err(errs) => {
            for e in errs {
                let file = origin.get(&e.rule).cloned().unwrap_or_default();
                report.errors.push((file, e.to_string()));
            }
            None
        }
    }
}

/// `rules check PATH…`: validates every rule, correlation and filter under the paths
/// against the default mapping.
pub fn check_paths(paths: &[PathBuf]) -> CheckReport {
    check_paths_with(paths, &CheckOptions::default())
}

/// Options of `rules check` and of loading rule texts.
#[derive(Debug, Clone, Copy, Default)]
pub struct CheckOptions {
    /// YAML budgets (`[limits] max_yaml_depth`).
    pub yaml: YamlLimits,
    /// `--strict`: a rule whose logsource has no mapping is an error, not a warning.
    pub strict: bool,
}

/// [`check_paths`] with options.
pub fn check_paths_with(paths: &[PathBuf], opts: &CheckOptions) -> CheckReport {
    let mut report = CheckReport::default();
    let (docs, origin) = load(paths, opts, &mut report);
    let cfg = EngineConfig {
        strict: opts.strict,
        ..EngineConfig::default()
    };
    if let Some(engine) = compile(&docs, &origin, &cfg, &mut report) {
        for r in engine.inactive() {
            let file = origin.get(&r.rule_id).cloned().unwrap_or_default();
            report.warnings.push((
                file,
                format!("rule '{}': inactive: {}", r.rule_id, r.reason),
            ));
        }
    }
    report.warnings.sort_by(|a, b| a.0.cmp(&b.0));
    report.errors.sort_by(|a, b| a.0.cmp(&b.0));
    report
}

/// One output line of `rules test`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DetectionLine {
    /// Rule id (title when none).
    pub rule_id: String,
    /// Rule title.
    pub rule_title: String,
    /// Level.
    pub level: Option<String>,
    /// The event (0-based line) of a single-event rule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_index: Option<u64>,
    /// The events of a correlation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_indices: Option<Vec<u64>>,
    /// Group-by values of a correlation.
    pub group: BTreeMap<String, String>,
}

impl From<Detection> for DetectionLine {
    fn from(d: Detection) -> Self {
        let idx: Vec<u64> = d.events.iter().map(|e| e.index).collect();
        Self {
            rule_id: d.rule_id,
            rule_title: d.rule_title,
            level: d.level,
            event_index: if d.correlation {
                None
            } else {
                idx.first().copied()
            },
            event_indices: if d.correlation { Some(idx) } else { None },
            group: d.group.into_iter().collect(),
        }
    }
}

impl fmt::Display for DetectionLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = serde_json::to_string(self).map_err(|_| fmt::Error)?;
        f.write_str(&s)
    }
}

/// Why `rules test` could not run.
#[derive(Debug, thiserror::Error)]
pub enum TestError {
    /// The rules do not load or compile.
    #[error("{0}")]
    Rules(CheckReport),
    /// A line of the events file is not a JSON object.
    #[error("events line {line}: {msg}")]
    Event { line: usize, msg: String },
}

/// The event time in Unix ns: `timestamp` or `@timestamp` (RFC 3339), else 0.
pub fn event_time(v: &serde_json::Value) -> i64 {
    ["timestamp", "@timestamp"]
        .iter()
        .filter_map(|k| v.get(*k)?.as_str())
        .find_map(|s| {
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
        })
        .and_then(|t| i64::try_from(t.unix_timestamp_nanos()).ok())
        .unwrap_or(0)
}

/// Runs the rules over JSON-lines events (logward event JSON or flat field maps) and
/// returns one line per detection. Blank lines are skipped but counted.
pub fn test_events_str(
    docs: &[Document],
    events_jsonl: &[u8],
    ignore_logsource: bool,
) -> Result<Vec<DetectionLine>, TestError> {
    let cfg = EngineConfig {
        ignore_logsource,
        ..EngineConfig::default()
    };
    let mut engine = Engine::new(docs, &cfg).map_err(|errs| {
        TestError::Rules(CheckReport {
            errors: errs
                .into_iter()
                .map(|e| (PathBuf::new(), e.to_string()))
                .collect(),
            ..CheckReport::default()
        })
    })?;
    let mut out = Vec::new();
    let mut last = 0i64;
    for (i, line) in events_jsonl.split(|b| *b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let v: serde_json::Value = serde_json::from_slice(line).map_err(|e| TestError::Event {
            line: i + 1,
            msg: e.to_string(),
        })?;
        if !v.is_object() {
            return Err(TestError::Event {
                line: i + 1,
                msg: "not a JSON object".into(),
            });
        }
        let ts = event_time(&v);
        last = last.max(ts);
        let ev = OwnedEvent::from_json(&v);
        let r = EventRef {
            index: i as u64,
            id: v.get("id").and_then(|x| x.as_str()).map(Into::into),
        };
        out.extend(
            engine
                .process(&ev, ts, &r)
                .into_iter()
                .map(DetectionLine::from),
        );
    }
    out.extend(
        engine
            .advance(i64::MAX)
            .into_iter()
            .map(DetectionLine::from),
    );
    let _ = last;
    Ok(out)
}

/// `rules test RULES_PATH EVENTS.jsonl`: loads the rules (file or directory) and runs
/// them over the events.
pub fn test_events(
    rules: &Path,
    events_jsonl: &[u8],
    ignore_logsource: bool,
) -> Result<Vec<DetectionLine>, TestError> {
    let mut report = CheckReport::default();
    let (docs, _) = load(
        &[rules.to_path_buf()],
        &CheckOptions::default(),
        &mut report,
    );
    if !report.errors.is_empty() {
        return Err(TestError::Rules(report));
    }
    test_events_str(&docs, events_jsonl, ignore_logsource)
}

/// Parses rule documents from text document by document: the valid documents, and one
/// error per invalid document. `Err` only when the text as a whole is refused (YAML syntax,
/// a budget such as `max_yaml_depth`).
pub fn load_documents(
    text: &str,
    lim: &YamlLimits,
) -> Result<(Vec<Document>, Vec<RuleError>), RuleError> {
    let mut docs = Vec::new();
    let mut errors = Vec::new();
    for r in parse_documents_with(text, lim)? {
        match r {
            Ok(d) => docs.push(d),
            Err(e) => errors.push(e),
        }
    }
    Ok((docs, errors))
}

/// Parses rule documents from text (all or nothing), for callers that hold the text.
pub fn documents_from_str(text: &str) -> Result<Vec<Document>, Vec<RuleError>> {
    let results = parse_documents_with(text, &YamlLimits::default()).map_err(|e| vec![e])?;
    let (ok, err): (Vec<_>, Vec<_>) = results.into_iter().partition(Result::is_ok);
    if err.is_empty() {
        Ok(ok.into_iter().filter_map(Result::ok).collect())
    } else {
        Err(err.into_iter().filter_map(Result::err).collect())
    }
}
