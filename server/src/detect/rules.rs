//! Rule loading: the built-in pack (embedded at build time from `rules/builtin/`) and
//! the rules directory, re-read when a file changes. A file that does not parse keeps
//! its previous good version; a set that does not compile keeps the previous engine.
//! Every problem is logged and listed by `GET /api/v1/rules`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use logward_rules::{Document, Engine, EngineConfig, RuleError, documents_from_str};
use serde::Serialize;
use tracing::{error, info};

include!(concat!(env!("OUT_DIR"), "/builtin_rules.rs"));

/// One loaded rule, correlation or filter, as `GET /api/v1/rules` lists it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RuleInfo {
    pub id: String,
    pub title: String,
    /// `rule`, `correlation` or `filter`.
    pub kind: &'static str,
    /// `builtin` or the file's path.
    pub source: String,
    /// The Sigma status (stable, test, experimental, …).
    pub status: Option<String>,
    pub level: Option<String>,
    pub tags: Vec<String>,
}

/// A problem found while loading.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LoadError {
    /// `builtin:<file>` or the file's path.
    pub source: String,
    pub error: String,
    /// What happened instead: the previous version is kept, or the file is not loaded.
    pub effect: String,
}

/// What is loaded now.
#[derive(Debug, Clone, Serialize, Default)]
pub struct RulesStatus {
    pub builtin: bool,
    pub rules_dir: Option<PathBuf>,
    /// Unix nanoseconds of the last (re)load that changed the engine.
    pub loaded_at_nanos: i64,
    pub rules: Vec<RuleInfo>,
    pub errors: Vec<LoadError>,
}

type Fingerprint = Vec<(PathBuf, Option<SystemTime>, u64)>;

/// Loads the pack and the directory, and reloads on change.
pub struct Loader {
    builtin: bool,
    dir: Option<PathBuf>,
    cfg: EngineConfig,
    builtin_docs: Vec<(String, Vec<Document>)>,
    builtin_errors: Vec<LoadError>,
    good: HashMap<PathBuf, Vec<Document>>,
    fingerprint: Option<Fingerprint>,
}

fn info(doc: &Document, source: &str) -> RuleInfo {
    let m = doc.meta();
    RuleInfo {
        id: m.label().to_owned(),
        title: m.title.clone(),
        kind: match doc {
            Document::Rule { .. } => "rule",
            Document::Correlation { .. } => "correlation",
            Document::Filter { .. } => "filter",
        },
        source: source.to_owned(),
        status: m.status.clone(),
        level: m.level.clone(),
        tags: m.tags.clone(),
    }
}

fn join(errors: &[RuleError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// The rule files of `dir` (`*.yml`, `*.yaml`, not hidden), sorted, with mtime and size.
fn scan(dir: &Path) -> Fingerprint {
    let mut out: Fingerprint = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| {
                    let p = e.path();
                    let name = p.file_name()?.to_str()?;
                    let yaml = name.ends_with(".yml") || name.ends_with(".yaml");
                    if name.starts_with('.') || !yaml {
                        return None;
                    }
                    let meta = e.metadata().ok().filter(std::fs::Metadata::is_file)?;
                    Some((p, meta.modified().ok(), meta.len()))
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

impl Loader {
    pub fn new(builtin: bool, dir: Option<PathBuf>) -> Loader {
        let mut builtin_docs = Vec::new();
        let mut builtin_errors = Vec::new();
        if builtin {
            for (name, text) in BUILTIN_RULES {
                match documents_from_str(text) {
                    Ok(docs) => builtin_docs.push(((*name).to_owned(), docs)),
                    Err(e) => builtin_errors.push(LoadError {
                        source: format!("builtin:{name}"),
                        error: join(&e),
                        effect: "not loaded".into(),
                    }),
                }
            }
        }
        Loader {
            builtin,
            dir,
            cfg: EngineConfig::default(),
            builtin_docs,
            builtin_errors,
            good: HashMap::new(),
            fingerprint: None,
        }
    }

    /// Reads the directory if it changed since the last call; returns the new engine and
    /// status when the rule set changed, `Err(status)` when the new set was refused (the
    /// caller keeps its engine), `Ok(None)` when nothing changed.
    pub fn reload(&mut self, now_nanos: i64) -> Result<Option<(Engine, RulesStatus)>, RulesStatus> {
        let fp = self.dir.as_deref().map(scan).unwrap_or_default();
        if self.fingerprint.as_ref() == Some(&fp) {
            return Ok(None);
        }
        self.fingerprint = Some(fp.clone());
        let mut status = RulesStatus {
            builtin: self.builtin,
            rules_dir: self.dir.clone(),
            loaded_at_nanos: now_nanos,
            rules: Vec::new(),
            errors: self.builtin_errors.clone(),
        };
        let docs: Vec<Document> = Vec::new();
        let present: Vec<PathBuf> = fp.iter().map(|(p, _, _)| p.clone()).collect();
        self.good.retain(|p, _| present.contains(p));
        // Per file: the docs to try now, and whether that is the previous good version.
        // The built-in files take part like the others (but have no previous version).
        let mut files: Vec<(PathBuf, Vec<Document>, bool)> = self
            .builtin_docs
            .iter()
            .map(|(name, d)| (PathBuf::from(format!("builtin:{name}")), d.clone(), true))
            .collect();
        for path in &present {
            let parsed = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read: {e}"))
                .and_then(|text| documents_from_str(&text).map_err(|e| join(&e)));
            match parsed {
                Ok(d) => files.push((path.clone(), d, false)),
                Err(error) => {
                    let kept = self.good.get(path).cloned();
                    self.refuse(&mut status, path, error, kept.is_some());
                    if let Some(d) = kept {
                        files.push((path.clone(), d, true));
                    }
                }
            }
        }
        // A file whose rules do not compile falls back to its previous good version
        // (then is left out), so one bad file never blocks the others.
        for _ in 0..=files.len() {
            let mut all = docs.clone();
            all.extend(files.iter().flat_map(|(_, d, _)| d.iter().cloned()));
            let errors = match Engine::new(&all, &self.cfg) {
                Ok(engine) => {
                    for (path, d, _) in &files {
                        let source = path.display().to_string();
                        if source.starts_with("builtin:") {
                            status.rules.extend(d.iter().map(|x| info(x, "builtin")));
                            continue;
                        }
                        status.rules.extend(d.iter().map(|x| info(x, &source)));
                        self.good.insert(path.clone(), d.clone());
                    }
                    info!(
                        rules = status.rules.len(),
                        errors = status.errors.len(),
                        "rules loaded"
                    );
                    return Ok(Some((engine, status)));
                }
                Err(errors) => errors,
            };
            let culprit = files.iter().position(|(_, d, _)| {
                d.iter()
                    .any(|x| errors.iter().any(|e| e.rule == x.meta().label()))
            });
            let Some(i) = culprit else {
                let error = join(&errors);
                error!(%error, "rule set refused; the previous rules stay active");
                status.errors.push(LoadError {
                    source: self
                        .dir
                        .as_ref()
                        .map_or("builtin".into(), |d| d.display().to_string()),
                    error,
                    effect: "the previous rule set is kept".into(),
                });
                return Err(status);
            };
            let (path, d, was_previous) = files.remove(i);
            let mine: Vec<&RuleError> = errors
                .iter()
                .filter(|e| d.iter().any(|x| e.rule == x.meta().label()))
                .collect();
            let error = mine
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ");
            let previous = self.good.get(&path).cloned().filter(|_| !was_previous);
            self.refuse(&mut status, &path, error, previous.is_some());
            if let Some(prev) = previous {
                files.push((path, prev, true));
            } else {
                self.good.remove(&path);
            }
        }
        Err(status)
    }

    fn refuse(&self, status: &mut RulesStatus, path: &Path, error: String, kept: bool) {
        let source = path.display().to_string();
        let effect = if kept {
            "the previous version of the file is kept"
        } else {
            "the file is not loaded"
        };
        error!(file = %source, %error, effect, "invalid rule file");
        status.errors.push(LoadError {
            source,
            error,
            effect: effect.into(),
        });
    }
}
