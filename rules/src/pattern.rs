//! Sigma string values: wildcards (`*`, `?`, escaped with `\`), and their compiled matchers.

use std::borrow::Cow;

use memchr::memmem;
use regex::Regex;

use crate::error::{ErrorKind, RuleError};

/// A piece of a Sigma string value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tok {
    /// Literal text.
    Lit(String),
    /// `*`: any run of characters, possibly empty.
    Star,
    /// `?`: exactly one character.
    One,
}

/// Splits a Sigma value into literals and wildcards. `\*`, `\?` and `\\` are literal;
/// a backslash before any other character (or at the end) is a plain backslash.
pub fn parse_wildcards(value: &str) -> Vec<Tok> {
    let mut out = Vec::new();
    let mut lit = String::new();
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.peek() {
                Some(&n @ ('*' | '?' | '\\')) => {
                    lit.push(n);
                    chars.next();
                }
                _ => lit.push('\\'),
            },
            '*' | '?' => {
                if !lit.is_empty() {
                    out.push(Tok::Lit(std::mem::take(&mut lit)));
                }
                out.push(if c == '*' { Tok::Star } else { Tok::One });
            }
            _ => lit.push(c),
        }
    }
    if !lit.is_empty() {
        out.push(Tok::Lit(lit));
    }
    out
}

/// Lower-cases `v` only when it has something to lower-case.
pub fn lower(v: &str) -> Cow<'_, str> {
    if v.is_ascii() && !v.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Borrowed(v)
    } else {
        Cow::Owned(v.to_lowercase())
    }
}

#[derive(Debug, Clone)]
enum Shape {
    Exact(String),
    Prefix(String),
    Suffix(String),
    Contains(Box<memmem::Finder<'static>>),
    Any,
    Glob(Regex),
}

/// A compiled string pattern; case-insensitive unless built `cased`.
#[derive(Debug, Clone)]
pub struct StrMatcher {
    shape: Shape,
    cased: bool,
    literals: Vec<String>,
}

impl StrMatcher {
    /// Compiles tokens. Consecutive stars merge; common shapes avoid regexes.
    pub fn new(toks: &[Tok], cased: bool) -> Result<Self, RuleError> {
        let mut t: Vec<Tok> = Vec::with_capacity(toks.len());
        for tok in toks {
            let tok = match tok {
                Tok::Lit(s) if !cased => Tok::Lit(s.to_lowercase()),
                other => other.clone(),
            };
            match (&tok, t.last_mut()) {
                (Tok::Star, Some(Tok::Star)) => {}
                (Tok::Lit(s), Some(Tok::Lit(p))) => p.push_str(s),
                _ => t.push(tok),
            }
        }
        let literals = t
            .iter()
            .filter_map(|x| {
                if let Tok::Lit(s) = x {
                    Some(s.clone())
                } else {
                    None
                }
            })
            .collect();
        let shape = match t.as_slice() {
            [] => Shape::Exact(String::new()),
            [Tok::Lit(s)] => Shape::Exact(s.clone()),
            [Tok::Star] => Shape::Any,
            [Tok::Lit(s), Tok::Star] => Shape::Prefix(s.clone()),
            [Tok::Star, Tok::Lit(s)] => Shape::Suffix(s.clone()),
            [Tok::Star, Tok::Lit(s), Tok::Star] => {
                Shape::Contains(Box::new(memmem::Finder::new(s.as_bytes()).into_owned()))
            }
            _ => {
                let mut re = String::from("(?s)^");
                for x in &t {
                    match x {
                        Tok::Lit(s) => re.push_str(&regex::escape(s)),
                        Tok::Star => re.push_str(".*"),
                        Tok::One => re.push('.'),
                    }
                }
                re.push('$');
                let re = Regex::new(&re)
                    .map_err(|e| RuleError::new("", ErrorKind::Regex(e.to_string())))?;
                Shape::Glob(re)
            }
        };
        Ok(Self {
            shape,
            cased,
            literals,
        })
    }

    /// A matcher for an exact literal (no wildcard interpretation).
    pub fn literal(s: &str, cased: bool) -> Result<Self, RuleError> {
        Self::new(&[Tok::Lit(s.to_owned())], cased)
    }

    /// The literal pieces that any matching value contains (lower-cased unless cased).
    pub fn literals(&self) -> &[String] {
        &self.literals
    }

    /// Whether `v` matches.
    pub fn matches(&self, v: &str) -> bool {
        let v = if self.cased {
            Cow::Borrowed(v)
        } else {
            lower(v)
        };
        let v = v.as_ref();
        match &self.shape {
            Shape::Exact(s) => v == s,
            Shape::Prefix(s) => v.starts_with(s.as_str()),
            Shape::Suffix(s) => v.ends_with(s.as_str()),
            Shape::Contains(f) => f.find(v.as_bytes()).is_some(),
            Shape::Any => true,
            Shape::Glob(re) => re.is_match(v),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(pattern: &str, value: &str, expected: bool) {
        let m = StrMatcher::new(&parse_wildcards(pattern), false).expect("compiles");
        assert_eq!(m.matches(value), expected, "{pattern:?} vs {value:?}");
    }

    #[test]
    fn wildcards_and_escapes_follow_sigma() {
        for (p, v, e) in [
            ("a*c", "abbbc", true),
            ("a?c", "abc", true),
            ("a?c", "abbc", false),
            (r"a\*c", "a*c", true),
            (r"a\*c", "abc", false),
            (r"a\?c", "abc", false),
            (r"c:\windows\*", r"C:\Windows\system32", false),
            (r"c:\windows\\*", r"C:\Windows\system32", true),
            (r"a\\*", r"a\xyz", true),
            (r"a\\*", r"a\\", true),
            ("*", "", true),
            ("", "", true),
            ("", "x", false),
            ("ÄB*", "äbc", true),
        ] {
            check(p, v, e);
        }
    }
}
