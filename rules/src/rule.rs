//! Sigma documents: detection rules, correlation rules and filters, with their metadata.

use yaml_rust2::Yaml;

use crate::error::{ErrorKind, RuleError, invalid, unsupported};
use crate::yaml::{self, get, opt_str, str_list};

/// The `logsource` of a rule or filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Logsource {
    /// `product`
    pub product: Option<String>,
    /// `service`
    pub service: Option<String>,
    /// `category`
    pub category: Option<String>,
}

impl std::fmt::Display for Logsource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = [
            ("product", &self.product),
            ("service", &self.service),
            ("category", &self.category),
        ]
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
        .collect();
        write!(
            f,
            "{}",
            if parts.is_empty() {
                "(any)".to_owned()
            } else {
                parts.join(" ")
            }
        )
    }
}

/// Metadata shared by all documents.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Meta {
    /// `title` (required)
    pub title: String,
    /// `id`
    pub id: Option<String>,
    /// `name` (how correlations and filters may refer to a rule)
    pub name: Option<String>,
    /// `status`
    pub status: Option<String>,
    /// `level`
    pub level: Option<String>,
    /// `description`
    pub description: Option<String>,
    /// `tags`
    pub tags: Vec<String>,
    /// `falsepositives`
    pub falsepositives: Vec<String>,
    /// `logsource`
    pub logsource: Logsource,
}

impl Meta {
    /// The label used in errors and output: the id, else the title.
    pub fn label(&self) -> &str {
        self.id.as_deref().unwrap_or(&self.title)
    }
    /// Whether `r` names this document (by id, name or title).
    pub fn is_named(&self, r: &str) -> bool {
        self.id.as_deref() == Some(r) || self.name.as_deref() == Some(r) || self.title == r
    }
}

/// One Sigma document.
#[derive(Debug, Clone)]
pub enum Document {
    /// A detection rule; `detection` is compiled by the engine with its mapping.
    Rule { meta: Meta, detection: Yaml },
    /// A correlation rule (`correlation:` block).
    Correlation { meta: Meta, correlation: Yaml },
    /// A filter (`filter:` block).
    Filter { meta: Meta, filter: Yaml },
}

impl Document {
    /// The document's metadata.
    pub fn meta(&self) -> &Meta {
        match self {
            Document::Rule { meta, .. }
            | Document::Correlation { meta, .. }
            | Document::Filter { meta, .. } => meta,
        }
    }
}

const LEVELS: &[&str] = &["informational", "low", "medium", "high", "critical"];
const STATUSES: &[&str] = &[
    "stable",
    "test",
    "experimental",
    "deprecated",
    "unsupported",
];

/// Parses a YAML text of one or more documents. A YAML error fails the whole text;
/// otherwise each document gives its own result.
pub fn parse_documents(text: &str) -> Result<Vec<Result<Document, RuleError>>, RuleError> {
    parse_documents_with(text, &yaml::YamlLimits::default())
}

/// [`parse_documents`] with explicit YAML budgets (`max_yaml_depth`).
pub fn parse_documents_with(
    text: &str,
    lim: &yaml::YamlLimits,
) -> Result<Vec<Result<Document, RuleError>>, RuleError> {
    Ok(yaml::load_with(text, lim)?
        .iter()
        .map(parse_document)
        .collect())
}

/// Parses one YAML document into a Sigma document.
pub fn parse_document(y: &Yaml) -> Result<Document, RuleError> {
    if !matches!(y, Yaml::Hash(_)) {
        return Err(invalid("", "a Sigma document must be a mapping"));
    }
    let title = opt_str(y, "title", "title").unwrap_or(None);
    let label = opt_str(y, "id", "id")
        .ok()
        .flatten()
        .or(title.clone())
        .unwrap_or_default();
    parse_inner(y, title).map_err(|e| e.in_rule(&label))
}

fn parse_inner(y: &Yaml, title: Option<String>) -> Result<Document, RuleError> {
    if let Some(action) = opt_str(y, "action", "action")? {
        return Err(unsupported(
            "action",
            format!("rule collections ('action: {action}')"),
        ));
    }
    let title = title.ok_or_else(|| RuleError::new("title", ErrorKind::Missing("title")))?;
    if title.is_empty() || title.len() > 256 {
        return Err(invalid("title", "must be 1 to 256 characters"));
    }
    let level = opt_str(y, "level", "level")?;
    if let Some(l) = &level
        && !LEVELS.contains(&l.as_str())
    {
        return Err(invalid(
            "level",
            format!("'{l}' is not one of {}", LEVELS.join(", ")),
        ));
    }
    let status = opt_str(y, "status", "status")?;
    if let Some(s) = &status
        && !STATUSES.contains(&s.as_str())
    {
        return Err(invalid(
            "status",
            format!("'{s}' is not one of {}", STATUSES.join(", ")),
        ));
    }
    let logsource = match get(y, "logsource") {
        None | Some(Yaml::Null) => Logsource::default(),
        Some(ls @ Yaml::Hash(_)) => Logsource {
            product: opt_str(ls, "product", "logsource.product")?,
            service: opt_str(ls, "service", "logsource.service")?,
            category: opt_str(ls, "category", "logsource.category")?,
        },
        Some(_) => return Err(invalid("logsource", "must be a mapping")),
    };
    let meta = Meta {
        title,
        id: opt_str(y, "id", "id")?,
        name: opt_str(y, "name", "name")?,
        status,
        level,
        description: opt_str(y, "description", "description")?,
        tags: str_list(y, "tags", "tags")?,
        falsepositives: str_list(y, "falsepositives", "falsepositives")?,
        logsource,
    };
    let present = |k: &str| get(y, k).is_some_and(|v| !matches!(v, Yaml::Null));
    match (
        present("detection"),
        present("correlation"),
        present("filter"),
    ) {
        (true, false, false) => Ok(Document::Rule {
            meta,
            detection: get(y, "detection").cloned().unwrap_or(Yaml::Null),
        }),
        (false, true, false) => Ok(Document::Correlation {
            meta,
            correlation: get(y, "correlation").cloned().unwrap_or(Yaml::Null),
        }),
        (false, false, true) => Ok(Document::Filter {
            meta,
            filter: get(y, "filter").cloned().unwrap_or(Yaml::Null),
        }),
        (false, false, false) => Err(RuleError::new(
            "detection",
            ErrorKind::Missing("detection, correlation or filter"),
        )),
        _ => Err(invalid(
            "",
            "a document has exactly one of detection, correlation, filter",
        )),
    }
}
