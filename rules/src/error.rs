//! Errors: every problem in a rule names the rule and the construct it is about.

use std::fmt;

/// What is wrong with a rule, a correlation, a filter or a mapping.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    /// The YAML text does not parse.
    #[error("invalid YAML: {0}")]
    Yaml(String),
    /// A required key is missing.
    #[error("missing required key '{0}'")]
    Missing(&'static str),
    /// A value has the wrong shape or type.
    #[error("{0}")]
    Invalid(String),
    /// A construct of the Sigma specification (or a deprecated one) this engine does not support.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A modifier that the Sigma specification does not define.
    #[error("unknown modifier '{0}'")]
    UnknownModifier(String),
    /// The condition expression does not parse or refers to unknown selections.
    #[error("condition: {0}")]
    Condition(String),
    /// A regular expression that does not compile.
    #[error("regular expression: {0}")]
    Regex(String),
    /// A reference (rule name or id, placeholder) that does not resolve.
    #[error("unresolved reference: {0}")]
    Reference(String),
    /// A resource budget was exceeded (`[limits] <limit>`).
    #[error("{what} exceeds {limit} = {max}")]
    Limit {
        /// The budget's config key.
        limit: &'static str,
        /// Its value.
        max: usize,
        /// What was measured.
        what: &'static str,
    },
    /// The rule's logsource has no mapping to logward events.
    #[error("logsource not mapped: {0}")]
    Logsource(String),
}

/// An error in one rule document: which rule, which construct, what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    /// The rule's title or id (empty when the document has neither).
    pub rule: String,
    /// The construct, as a path: `detection.selection.CommandLine|re`, `condition`, `logsource`.
    pub construct: String,
    /// What is wrong.
    pub kind: ErrorKind,
}

impl RuleError {
    /// A new error about `construct`; the rule is filled in by the caller that knows it.
    pub fn new(construct: impl Into<String>, kind: ErrorKind) -> Self {
        Self {
            rule: String::new(),
            construct: construct.into(),
            kind,
        }
    }

    /// Sets the rule this error belongs to, if not set yet.
    #[must_use]
    pub fn in_rule(mut self, rule: &str) -> Self {
        if self.rule.is_empty() {
            self.rule = rule.to_owned();
        }
        self
    }
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rule = if self.rule.is_empty() {
            "<document>"
        } else {
            &self.rule
        };
        if self.construct.is_empty() {
            write!(f, "rule '{rule}': {}", self.kind)
        } else {
            write!(f, "rule '{rule}': {}: {}", self.construct, self.kind)
        }
    }
}

impl std::error::Error for RuleError {}

/// Shorthand for an `Invalid` error at `construct`.
pub(crate) fn invalid(construct: impl Into<String>, msg: impl Into<String>) -> RuleError {
    RuleError::new(construct, ErrorKind::Invalid(msg.into()))
}

/// Shorthand for an `Unsupported` error at `construct`.
pub(crate) fn unsupported(construct: impl Into<String>, msg: impl Into<String>) -> RuleError {
    RuleError::new(construct, ErrorKind::Unsupported(msg.into()))
}
