//! Thin, panic-free helpers over `yaml-rust2`: loading with guards, and typed access.

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::{Yaml, YamlLoader};

use crate::error::{ErrorKind, RuleError, invalid};

/// Largest YAML text accepted, in bytes (a rule file is a few KiB).
pub const MAX_YAML_BYTES: usize = 4 << 20;
/// Most YAML events (nodes) in one text, so that nothing explodes in memory.
const MAX_EVENTS: usize = 1_000_000;

/// Default deepest nesting of sequences and mappings accepted (`[limits] max_yaml_depth`).
/// A Sigma rule nests about 5 levels; the loaders and the tree walks recurse per level.
pub const DEFAULT_MAX_YAML_DEPTH: usize = 64;

/// Budgets of one YAML load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct YamlLimits {
    /// Deepest nesting of sequences and mappings; deeper texts are refused before any
    /// recursive step runs.
    pub max_yaml_depth: usize,
}

impl Default for YamlLimits {
    fn default() -> Self {
        Self {
            max_yaml_depth: DEFAULT_MAX_YAML_DEPTH,
        }
    }
}

/// Parses a (multi-document) YAML text with the default limits.
pub fn load(text: &str) -> Result<Vec<Yaml>, RuleError> {
    load_with(text, &YamlLimits::default())
}

/// Parses a (multi-document) YAML text. Aliases are refused: Sigma does not use them and
/// they allow exponential expansion ("billion laughs"). The text is first walked event by
/// event without recursion (the parser's own state machine), so that nesting deeper than
/// `max_yaml_depth`, which would overflow the stack of the recursive tree builder, is
/// refused with an error naming the limit.
pub fn load_with(text: &str, lim: &YamlLimits) -> Result<Vec<Yaml>, RuleError> {
    let yaml_err = |m: String| RuleError::new("", ErrorKind::Yaml(m));
    if text.len() > MAX_YAML_BYTES {
        return Err(yaml_err(format!(
            "text is larger than {MAX_YAML_BYTES} bytes"
        )));
    }
    let too_deep = || {
        RuleError::new(
            "",
            ErrorKind::Limit {
                limit: "max_yaml_depth",
                max: lim.max_yaml_depth,
                what: "YAML nesting depth",
            },
        )
    };
    let mut parser = Parser::new_from_str(text);
    let mut depth = 0usize;
    let mut events = 0usize;
    loop {
        // The scanner reads flow collections ahead and stops by itself past 255 levels of
        // `[`/`{`; that is the same budget exceeded.
        let (ev, _mark) = parser.next_token().map_err(|e| {
            if e.info().contains("recursion limit") {
                too_deep()
            } else {
                yaml_err(e.to_string())
            }
        })?;
        events += 1;
        if events > MAX_EVENTS {
            return Err(yaml_err(format!("more than {MAX_EVENTS} nodes")));
        }
        match ev {
            Event::SequenceStart(..) | Event::MappingStart(..) => {
                depth += 1;
                if depth > lim.max_yaml_depth {
                    return Err(too_deep());
                }
            }
            Event::SequenceEnd | Event::MappingEnd => depth = depth.saturating_sub(1),
            Event::Alias(_) => return Err(yaml_err("aliases (*name) are not supported".into())),
            Event::StreamEnd => break,
            _ => {}
        }
    }
    let docs = YamlLoader::load_from_str(text).map_err(|e| yaml_err(e.to_string()))?;
    Ok(docs
        .into_iter()
        .filter(|d| !matches!(d, Yaml::Null | Yaml::BadValue))
        .collect())
}

/// A scalar as text: strings, numbers and booleans; `None` for null and collections.
pub fn scalar(y: &Yaml) -> Option<String> {
    match y {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The value under `key` in a mapping.
pub fn get<'a>(y: &'a Yaml, key: &str) -> Option<&'a Yaml> {
    match y {
        Yaml::Hash(h) => h
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v),
        _ => None,
    }
}

/// A string under `key` (numbers are accepted as text), or `None` when absent.
pub fn opt_str(y: &Yaml, key: &str, at: &str) -> Result<Option<String>, RuleError> {
    match get(y, key) {
        None | Some(Yaml::Null) => Ok(None),
        Some(v) => scalar(v)
            .map(Some)
            .ok_or_else(|| invalid(at, format!("'{key}' must be a string"))),
    }
}

/// A string or a list of strings under `key`.
pub fn str_list(y: &Yaml, key: &str, at: &str) -> Result<Vec<String>, RuleError> {
    match get(y, key) {
        None | Some(Yaml::Null) => Ok(Vec::new()),
        Some(Yaml::Array(a)) => a
            .iter()
            .map(|v| scalar(v).ok_or_else(|| invalid(at, format!("'{key}' must list strings"))))
            .collect(),
        Some(v) => scalar(v)
            .map(|s| vec![s])
            .ok_or_else(|| invalid(at, format!("'{key}' must be a string or a list"))),
    }
}

/// The keys of a mapping as text, in order (non-text keys are an error).
pub fn entries<'a>(y: &'a Yaml, at: &str) -> Result<Vec<(String, &'a Yaml)>, RuleError> {
    match y {
        Yaml::Hash(h) => h
            .iter()
            .map(|(k, v)| {
                scalar(k)
                    .map(|k| (k, v))
                    .ok_or_else(|| invalid(at, "mapping keys must be strings"))
            })
            .collect(),
        _ => Err(invalid(at, "must be a mapping")),
    }
}
