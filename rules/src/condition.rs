//! The `condition` expression: `and`, `or`, `not`, parentheses, `1 of x*`, `all of them`.

use crate::error::{ErrorKind, RuleError};

/// Deepest nesting of parentheses and `not` accepted.
const MAX_DEPTH: usize = 64;

/// A parsed condition over selection indices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// A selection, by index.
    Sel(usize),
    /// `not`
    Not(Box<Expr>),
    /// `and`
    And(Vec<Expr>),
    /// `or`
    Or(Vec<Expr>),
    /// `N of …` (at least N), or `all of …` when `all`.
    Of {
        n: usize,
        all: bool,
        sels: Vec<usize>,
    },
}

impl Expr {
    /// Evaluates with `sel(i)` giving the result of selection `i`.
    pub fn eval(&self, sel: &mut dyn FnMut(usize) -> bool) -> bool {
        match self {
            Expr::Sel(i) => sel(*i),
            Expr::Not(e) => !e.eval(sel),
            Expr::And(v) => v.iter().all(|e| e.eval(sel)),
            Expr::Or(v) => v.iter().any(|e| e.eval(sel)),
            Expr::Of { n, all, sels } => {
                if *all {
                    sels.iter().all(|i| sel(*i))
                } else {
                    sels.iter().filter(|i| sel(**i)).take(*n).count() >= *n
                }
            }
        }
    }
}

fn err(msg: impl Into<String>) -> RuleError {
    RuleError::new("condition", ErrorKind::Condition(msg.into()))
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Open,
    Close,
    Word(String),
}

fn tokenize(s: &str) -> Result<Vec<Token>, RuleError> {
    let mut out = Vec::new();
    let mut word = String::new();
    for c in s.chars() {
        match c {
            '(' | ')' | ' ' | '\t' | '\n' | '\r' => {
                if !word.is_empty() {
                    out.push(Token::Word(std::mem::take(&mut word)));
                }
                match c {
                    '(' => out.push(Token::Open),
                    ')' => out.push(Token::Close),
                    _ => {}
                }
            }
            '|' => {
                return Err(RuleError::new(
                    "condition",
                    ErrorKind::Unsupported(
                        "aggregation expressions ('| count() …') are deprecated; use a correlation rule"
                            .into(),
                    ),
                ));
            }
            c if c.is_alphanumeric() || matches!(c, '_' | '-' | '*' | '.') => word.push(c),
            c => return Err(err(format!("unexpected character '{c}'"))),
        }
    }
    if !word.is_empty() {
        out.push(Token::Word(word));
    }
    Ok(out)
}

struct Parser<'a> {
    toks: Vec<Token>,
    pos: usize,
    names: &'a [String],
}

fn is_kw(t: Option<&Token>, kw: &str) -> bool {
    matches!(t, Some(Token::Word(w)) if w.eq_ignore_ascii_case(kw))
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.toks.get(self.pos)
    }

    fn or(&mut self, depth: usize) -> Result<Expr, RuleError> {
        let mut v = vec![self.and(depth)?];
        while is_kw(self.peek(), "or") {
            self.pos += 1;
            v.push(self.and(depth)?);
        }
        Ok(if v.len() == 1 {
            v.remove(0)
        } else {
            Expr::Or(v)
        })
    }

    fn and(&mut self, depth: usize) -> Result<Expr, RuleError> {
        let mut v = vec![self.not(depth)?];
        while is_kw(self.peek(), "and") {
            self.pos += 1;
            v.push(self.not(depth)?);
        }
        Ok(if v.len() == 1 {
            v.remove(0)
        } else {
            Expr::And(v)
        })
    }

    fn not(&mut self, depth: usize) -> Result<Expr, RuleError> {
        if depth > MAX_DEPTH {
            return Err(err(format!("nested deeper than {MAX_DEPTH}")));
        }
        if is_kw(self.peek(), "not") {
            self.pos += 1;
            return Ok(Expr::Not(Box::new(self.not(depth + 1)?)));
        }
        self.primary(depth)
    }

    fn primary(&mut self, depth: usize) -> Result<Expr, RuleError> {
        let tok = self.peek().cloned();
        self.pos += 1;
        match tok {
            None => Err(err("unexpected end")),
            Some(Token::Close) => Err(err("unexpected ')'")),
            Some(Token::Open) => {
                let e = self.or(depth + 1)?;
                if self.peek() != Some(&Token::Close) {
                    return Err(err("missing ')'"));
                }
                self.pos += 1;
                Ok(e)
            }
            Some(Token::Word(w)) => {
                if is_kw(self.peek(), "of") {
                    self.pos += 1;
                    return self.quantified(&w);
                }
                if ["and", "or", "not", "of", "them"]
                    .iter()
                    .any(|k| w.eq_ignore_ascii_case(k))
                {
                    return Err(err(format!("unexpected '{w}'")));
                }
                if w.contains('*') {
                    return Err(err(format!("wildcard '{w}' needs '1 of' or 'all of'")));
                }
                self.names
                    .iter()
                    .position(|n| *n == w)
                    .map(Expr::Sel)
                    .ok_or_else(|| err(format!("unknown selection '{w}'")))
            }
        }
    }

    fn quantified(&mut self, q: &str) -> Result<Expr, RuleError> {
        let (n, all) = if q.eq_ignore_ascii_case("all") {
            (0, true)
        } else if q.eq_ignore_ascii_case("any") {
            (1, false)
        } else {
            match q.parse::<usize>() {
                Ok(n) if n >= 1 => (n, false),
                _ => return Err(err(format!("'{q} of': expected a number or 'all'"))),
            }
        };
        let Some(Token::Word(target)) = self.peek().cloned() else {
            return Err(err("'of' needs a selection pattern or 'them'"));
        };
        self.pos += 1;
        let sels: Vec<usize> = if target.eq_ignore_ascii_case("them") {
            (0..self.names.len())
                .filter(|i| !self.names[*i].starts_with('_'))
                .collect()
        } else {
            (0..self.names.len())
                .filter(|i| glob(&target, &self.names[*i]))
                .collect()
        };
        if sels.is_empty() {
            return Err(err(format!("'{q} of {target}' matches no selection")));
        }
        Ok(Expr::Of { n, all, sels })
    }
}

/// `*`-only glob, linear-time backtracking (no exponential blow-up).
fn glob(p: &str, s: &str) -> bool {
    let (p, s): (Vec<char>, Vec<char>) = (p.chars().collect(), s.chars().collect());
    let (mut i, mut j, mut star, mut mark) = (0, 0, None, 0);
    while j < s.len() {
        if i < p.len() && p[i] != '*' && p[i] == s[j] {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some(i);
            mark = j;
            i += 1;
        } else if let Some(st) = star {
            i = st + 1;
            mark += 1;
            j = mark;
        } else {
            return false;
        }
    }
    p[i..].iter().all(|c| *c == '*')
}

/// Parses `condition` against the detection's selection names (in order).
pub fn parse(condition: &str, names: &[String]) -> Result<Expr, RuleError> {
    let toks = tokenize(condition)?;
    if toks.is_empty() {
        return Err(err("empty condition"));
    }
    if toks.len() > 10_000 {
        return Err(err("condition is too long"));
    }
    let mut p = Parser {
        toks,
        pos: 0,
        names,
    };
    let e = p.or(0)?;
    if p.pos < p.toks.len() {
        return Err(err(format!(
            "unexpected {:?} after the expression",
            p.toks[p.pos]
        )));
    }
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(cond: &str, expected: Result<&[(&[bool], bool)], &str>) {
        let names: Vec<String> = ["sel1", "sel2", "filter", "_hidden"]
            .map(String::from)
            .to_vec();
        match (parse(cond, &names), expected) {
            (Ok(e), Ok(cases)) => {
                for (sels, want) in cases {
                    assert_eq!(e.eval(&mut |i| sels[i]), *want, "{cond} with {sels:?}");
                }
            }
            (Err(e), Err(msg)) => assert!(e.to_string().contains(msg), "{cond}: {e}"),
            (got, _) => panic!("{cond}: unexpected {got:?}"),
        }
    }

    #[test]
    fn precedence_is_not_then_and_then_or() {
        check(
            "sel1 or sel2 and not filter",
            Ok(&[
                (&[false, true, false, false], true),
                (&[false, true, true, false], false),
            ]),
        );
        check(
            "(sel1 or sel2) and not filter",
            Ok(&[(&[true, false, true, false], false)]),
        );
        check("not not sel1", Ok(&[(&[true, false, false, false], true)]));
    }

    #[test]
    fn quantifiers_select_by_pattern_and_them_skips_underscore() {
        check("1 of sel*", Ok(&[(&[false, true, false, false], true)]));
        check("all of sel*", Ok(&[(&[true, false, true, true], false)]));
        check("all of them", Ok(&[(&[true, true, true, false], true)]));
        check("2 of them", Ok(&[(&[true, false, false, true], false)]));
    }

    #[test]
    fn malformed_conditions_are_named_errors() {
        check("sel1 and", Err("unexpected end"));
        check("sel1 | count() > 5", Err("deprecated"));
        check("nope", Err("unknown selection 'nope'"));
        check("1 of x*", Err("matches no selection"));
        check("(sel1", Err("missing ')'"));
        check("sel1 sel2", Err("after the expression"));
        check(&"(".repeat(500), Err("nested deeper"));
    }
}
