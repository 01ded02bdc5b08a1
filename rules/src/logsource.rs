//! Logsource and field mapping: which logward events a Sigma `logsource` means, and which
//! logward field a Sigma field name reads. Plain data, loadable by the caller.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use yaml_rust2::Yaml;

use crate::detection::CompileCtx;
use crate::error::{ErrorKind, RuleError, invalid};
use crate::rule::Logsource;

/// The shipped default mapping (see docs/RULES.md).
pub const DEFAULT_MAPPING_YAML: &str = include_str!("default_mapping.yml");

/// One logsource entry: the keys it applies to and the predicate on events.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogsourceMapping {
    /// `product` it applies to; `None` matches any.
    #[serde(default)]
    pub product: Option<String>,
    /// `service` it applies to.
    #[serde(default)]
    pub service: Option<String>,
    /// `category` it applies to.
    #[serde(default)]
    pub category: Option<String>,
    /// A Sigma selection (map = AND, list of maps = OR) on logward field names.
    pub when: serde_json::Value,
}

/// The whole mapping: logsources, field names and `expand` placeholders.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingConfig {
    /// Logsource entries.
    #[serde(default)]
    pub logsources: Vec<LogsourceMapping>,
    /// Sigma field → logward fields.
    #[serde(default)]
    pub fields: HashMap<String, Vec<String>>,
    /// `%name%` → values.
    #[serde(default)]
    pub placeholders: HashMap<String, Vec<String>>,
}

impl MappingConfig {
    /// The shipped defaults.
    pub fn defaults() -> Self {
        Self::from_yaml(DEFAULT_MAPPING_YAML).unwrap_or_default()
    }

    /// Parses a mapping from YAML text (TOML or JSON callers can use serde directly).
    pub fn from_yaml(text: &str) -> Result<Self, RuleError> {
        let docs = crate::yaml::load(text)?;
        let doc = docs
            .first()
            .cloned()
            .unwrap_or(Yaml::Hash(Default::default()));
        serde_json::from_value(yaml_to_json(&doc))
            .map_err(|e| RuleError::new("mapping", ErrorKind::Invalid(e.to_string())))
    }

    /// The compile context (field names, placeholders) for rules.
    pub fn compile_ctx(&self) -> CompileCtx {
        CompileCtx {
            fields: self.fields.clone(),
            placeholders: self.placeholders.clone(),
        }
    }

    /// The entries a rule's logsource selects, checking that every key it sets is covered.
    pub fn resolve(&self, ls: &Logsource) -> Result<Vec<&LogsourceMapping>, RuleError> {
        let eq =
            |m: &Option<String>, r: &Option<String>| m.is_none() || m.as_deref() == r.as_deref();
        let hits: Vec<&LogsourceMapping> = self
            .logsources
            .iter()
            .filter(|m| {
                eq(&m.product, &ls.product)
                    && eq(&m.service, &ls.service)
                    && eq(&m.category, &ls.category)
            })
            .collect();
        let covered = |k: &Option<String>, f: fn(&LogsourceMapping) -> &Option<String>| {
            k.is_none() || hits.iter().any(|m| f(m).is_some())
        };
        if covered(&ls.product, |m| &m.product)
            && covered(&ls.service, |m| &m.service)
            && covered(&ls.category, |m| &m.category)
        {
            Ok(hits)
        } else {
            Err(RuleError::new(
                "logsource",
                ErrorKind::Logsource(ls.to_string()),
            ))
        }
    }
}

/// Builds the predicate of a resolved logsource as a detection over the events.
pub fn predicate(
    hits: &[&LogsourceMapping],
    ctx: &CompileCtx,
) -> Result<Option<crate::detection::DetectionBlock>, RuleError> {
    if hits.is_empty() {
        return Ok(None);
    }
    let mut h = yaml_rust2::yaml::Hash::new();
    let mut names = Vec::new();
    for (i, m) in hits.iter().enumerate() {
        let name = format!("ls{i}");
        h.insert(Yaml::String(name.clone()), json_to_yaml(&m.when));
        names.push(name);
    }
    h.insert(
        Yaml::String("condition".into()),
        Yaml::String(names.join(" and ")),
    );
    // Logsource predicates use logward names directly: no field mapping.
    let raw = CompileCtx {
        fields: HashMap::new(),
        placeholders: ctx.placeholders.clone(),
    };
    crate::detection::DetectionBlock::compile(&Yaml::Hash(h), &raw, "mapping.when")
        .map(Some)
        .map_err(|e| invalid("logsource", format!("bad mapping predicate: {e}")))
}

/// YAML → JSON (for serde). Non-string keys become their text.
pub fn yaml_to_json(y: &Yaml) -> serde_json::Value {
    use serde_json::Value;
    match y {
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Integer(i) => Value::from(*i),
        Yaml::Real(r) => r
            .parse::<f64>()
            .map_or_else(|_| Value::String(r.clone()), Value::from),
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Array(a) => Value::Array(a.iter().map(yaml_to_json).collect()),
        Yaml::Hash(h) => Value::Object(
            h.iter()
                .map(|(k, v)| (crate::yaml::scalar(k).unwrap_or_default(), yaml_to_json(v)))
                .collect(),
        ),
        Yaml::Null | Yaml::Alias(_) | Yaml::BadValue => Value::Null,
    }
}

/// JSON → YAML (for compiling predicates with the detection compiler).
pub fn json_to_yaml(v: &serde_json::Value) -> Yaml {
    use serde_json::Value;
    match v {
        Value::Null => Yaml::Null,
        Value::Bool(b) => Yaml::Boolean(*b),
        Value::Number(n) => n
            .as_i64()
            .map_or_else(|| Yaml::Real(n.to_string()), Yaml::Integer),
        Value::String(s) => Yaml::String(s.clone()),
        Value::Array(a) => Yaml::Array(a.iter().map(json_to_yaml).collect()),
        Value::Object(o) => Yaml::Hash(
            o.iter()
                .map(|(k, v)| (Yaml::String(k.clone()), json_to_yaml(v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(ls: &Logsource, expected_entries: Result<usize, &str>) {
        let m = MappingConfig::defaults();
        match (m.resolve(ls), expected_entries) {
            (Ok(h), Ok(n)) => assert_eq!(h.len(), n, "{ls}"),
            (Err(e), Err(msg)) => assert!(e.to_string().contains(msg), "{e}"),
            (got, want) => panic!("{ls}: got {got:?}, want {want:?}"),
        }
    }

    fn ls(p: Option<&str>, s: Option<&str>, c: Option<&str>) -> Logsource {
        Logsource {
            product: p.map(Into::into),
            service: s.map(Into::into),
            category: c.map(Into::into),
        }
    }

    #[test]
    fn defaults_parse_and_cover_the_shipped_logsources() {
        assert!(!MappingConfig::defaults().logsources.is_empty());
        check(&ls(Some("linux"), Some("sshd"), None), Ok(2));
        check(&ls(Some("linux"), None, None), Ok(1));
        check(&ls(Some("docker"), None, None), Ok(1));
        check(&ls(Some("logward"), Some("posture"), None), Ok(2));
        check(&ls(None, None, None), Ok(0));
        check(
            &ls(Some("windows"), Some("security"), None),
            Err("product=windows"),
        );
        check(&ls(Some("linux"), Some("nope"), None), Err("not mapped"));
        check(
            &ls(Some("linux"), None, Some("process_creation")),
            Err("not mapped"),
        );
    }
}
