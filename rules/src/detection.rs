//! The `detection` block: selections (maps are AND, lists are OR), keywords, field
//! conditions, and their evaluation on an event view.

use std::collections::HashMap;
use std::net::IpAddr;

use yaml_rust2::Yaml;

use crate::condition::{self, Expr};
use crate::error::{RuleError, invalid, unsupported};
use crate::event::{EventView, FieldValues};
use crate::modifiers::{self, Compiled, RefShape, TimePart, ValueMatcher};
use crate::pattern::lower;
use crate::yaml::{entries, scalar};

/// Field where keyword detections (plain lists of strings) are searched.
pub const KEYWORD_FIELD: &str = "message";

/// What the compiler needs besides the YAML: field mapping and `expand` placeholders.
#[derive(Debug, Clone, Default)]
pub struct CompileCtx {
    /// Sigma field name → logward field names (any of them may match).
    pub fields: HashMap<String, Vec<String>>,
    /// `%name%` → values, for `expand`.
    pub placeholders: HashMap<String, Vec<String>>,
}

impl CompileCtx {
    /// The names a Sigma field is read from: the name itself, always, then the mapped
    /// candidates (the mapping adds names, it never replaces the one the rule wrote).
    fn map_field(&self, f: &str) -> Vec<String> {
        let mut out = vec![f.to_owned()];
        for m in self.fields.get(f).into_iter().flatten() {
            if !out.contains(m) {
                out.push(m.clone());
            }
        }
        out
    }
}

/// One `field|modifiers: values` condition.
#[derive(Debug, Clone)]
pub struct FieldCond {
    fields: Vec<String>,
    c: Compiled,
}

/// A selection: AND over a map's conditions, OR over a list's items.
#[derive(Debug, Clone)]
pub enum Selection {
    /// A map: every condition holds.
    All(Vec<FieldCond>),
    /// A list: any item holds.
    Any(Vec<Selection>),
}

/// A compiled `detection` block.
#[derive(Debug, Clone)]
pub struct DetectionBlock {
    names: Vec<String>,
    sels: Vec<Selection>,
    cond: Expr,
}

/// Literal requirements: the rule can match only if one `(field, literal)` is present.
pub type Req = Vec<(String, String)>;

impl DetectionBlock {
    /// Compiles a `detection` mapping. `at` prefixes error constructs (`detection`, `filter`).
    pub fn compile(y: &Yaml, ctx: &CompileCtx, at: &str) -> Result<Self, RuleError> {
        let mut names = Vec::new();
        let mut sels = Vec::new();
        let mut cond_text = None;
        for (name, v) in entries(y, at)? {
            match name.as_str() {
                "condition" => cond_text = Some(condition_text(v)?),
                "timeframe" => {
                    return Err(unsupported(
                        format!("{at}.timeframe"),
                        "'timeframe' is deprecated; use a correlation rule with 'timespan'",
                    ));
                }
                _ => {
                    let sat = format!("{at}.{name}");
                    sels.push(selection(v, ctx, &sat, 0)?);
                    names.push(name);
                }
            }
        }
        let text = cond_text.ok_or_else(|| {
            RuleError::new(
                format!("{at}.condition"),
                crate::error::ErrorKind::Missing("condition"),
            )
        })?;
        let cond = condition::parse(&text, &names).map_err(|mut e| {
            e.construct = format!("{at}.condition");
            e
        })?;
        Ok(Self { names, sels, cond })
    }

    /// Whether the event matches.
    pub fn matches(&self, ev: &dyn EventView) -> bool {
        self.cond
            .eval(&mut |i| self.sels.get(i).is_some_and(|s| s.matches(ev)))
    }

    /// The selection names, in order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Literals of which one must be present for a match, or `None` when the rule cannot be
    /// prefiltered (negations, regexes, numbers, …).
    pub fn requirement(&self) -> Option<Req> {
        expr_req(&self.cond, &self.sels)
    }
}

fn condition_text(v: &Yaml) -> Result<String, RuleError> {
    match v {
        Yaml::Array(a) if !a.is_empty() => {
            let parts: Option<Vec<String>> = a.iter().map(scalar).collect();
            let parts = parts
                .ok_or_else(|| invalid("condition", "must be a string or a list of strings"))?;
            Ok(parts
                .iter()
                .map(|p| format!("({p})"))
                .collect::<Vec<_>>()
                .join(" or "))
        }
        v => scalar(v).ok_or_else(|| invalid("condition", "must be a string")),
    }
}

fn keyword(v: &Yaml, mods: &[&str], ctx: &CompileCtx, at: &str) -> Result<FieldCond, RuleError> {
    let has_shape = mods
        .iter()
        .any(|m| matches!(*m, "contains" | "startswith" | "endswith" | "re"));
    let mut m: Vec<&str> = mods.to_vec();
    if !has_shape {
        m.push("contains");
    }
    Ok(FieldCond {
        fields: vec![KEYWORD_FIELD.to_owned()],
        c: modifiers::compile(&m, v, &ctx.placeholders, at)?,
    })
}

fn selection(y: &Yaml, ctx: &CompileCtx, at: &str, depth: usize) -> Result<Selection, RuleError> {
    match y {
        Yaml::Hash(_) => {
            let mut conds = Vec::new();
            for (key, v) in entries(y, at)? {
                let mut parts = key.split('|');
                let field = parts.next().unwrap_or_default();
                let mods: Vec<&str> = parts.collect();
                let cat = format!("{at}.{key}");
                if field.is_empty() {
                    conds.push(keyword(v, &mods, ctx, &cat)?);
                    continue;
                }
                if matches!(v, Yaml::Hash(_)) {
                    return Err(invalid(cat, "a field's value must be a scalar or a list"));
                }
                let mut c = modifiers::compile(&mods, v, &ctx.placeholders, &cat)?;
                for vm in &mut c.values {
                    if let ValueMatcher::FieldRef { field, .. } = vm {
                        *field = ctx.map_field(field).remove(0);
                    }
                }
                conds.push(FieldCond {
                    fields: ctx.map_field(field),
                    c,
                });
            }
            if conds.is_empty() {
                return Err(invalid(at, "empty selection"));
            }
            Ok(Selection::All(conds))
        }
        Yaml::Array(items) => {
            if items.is_empty() {
                return Err(invalid(at, "empty list"));
            }
            if depth > 0 && items.iter().any(|i| matches!(i, Yaml::Array(_))) {
                return Err(invalid(at, "lists nested in lists"));
            }
            let scalars: Vec<&Yaml> = items
                .iter()
                .filter(|i| !matches!(i, Yaml::Hash(_)))
                .collect();
            let mut out = Vec::new();
            if !scalars.is_empty() {
                let list = Yaml::Array(scalars.into_iter().cloned().collect());
                out.push(Selection::All(vec![keyword(&list, &[], ctx, at)?]));
            }
            for i in items.iter().filter(|i| matches!(i, Yaml::Hash(_))) {
                out.push(selection(i, ctx, at, depth + 1)?);
            }
            Ok(Selection::Any(out))
        }
        Yaml::Null => Err(invalid(at, "empty selection")),
        v => Ok(Selection::All(vec![keyword(v, &[], ctx, at)?])),
    }
}

impl Selection {
    fn matches(&self, ev: &dyn EventView) -> bool {
        match self {
            Selection::All(c) => c.iter().all(|c| c.matches(ev)),
            Selection::Any(s) => s.iter().any(|s| s.matches(ev)),
        }
    }

    fn requirement(&self) -> Option<Req> {
        match self {
            Selection::All(c) => best(c.iter().map(FieldCond::requirement)),
            Selection::Any(s) => union(s.iter().map(Selection::requirement)),
        }
    }
}

impl FieldCond {
    /// Whether the event satisfies this condition (any of the mapped field names).
    pub fn matches(&self, ev: &dyn EventView) -> bool {
        if self.c.exists == Some(false) {
            // Absent means absent under every name the field is read from.
            return self.fields.iter().all(|f| !ev.get(f).is_present());
        }
        self.fields.iter().any(|f| {
            let vals = ev.get(f);
            if let Some(want) = self.c.exists {
                return vals.is_present() == want;
            }
            let mut one = |m: &ValueMatcher| value_matches(m, &vals, ev);
            if self.c.all {
                self.c.values.iter().all(&mut one)
            } else {
                self.c.values.iter().any(one)
            }
        })
    }

    fn requirement(&self) -> Option<Req> {
        if self.c.exists.is_some() {
            return None;
        }
        let per_value = self.c.values.iter().map(|v| match v {
            ValueMatcher::Str(m) => m.literals().iter().max_by_key(|l| l.len()).map(|l| {
                self.fields
                    .iter()
                    .map(|f| (f.clone(), l.to_lowercase()))
                    .collect()
            }),
            ValueMatcher::Re(_, Some(l)) => Some(
                self.fields
                    .iter()
                    .map(|f| (f.clone(), l.to_lowercase()))
                    .collect(),
            ),
            _ => None,
        });
        if self.c.all {
            best(per_value)
        } else {
            union(per_value)
        }
    }
}

/// The requirement whose weakest literal is longest (for AND).
fn best(reqs: impl Iterator<Item = Option<Req>>) -> Option<Req> {
    reqs.flatten()
        .max_by_key(|r| r.iter().map(|(_, l)| l.len()).min().unwrap_or(0))
        .filter(|r| !r.is_empty())
}

/// All requirements together (for OR); `None` if any alternative has none.
fn union(reqs: impl Iterator<Item = Option<Req>>) -> Option<Req> {
    let mut out = Vec::new();
    for r in reqs {
        out.extend(r?);
    }
    if out.is_empty() { None } else { Some(out) }
}

fn expr_req(e: &Expr, sels: &[Selection]) -> Option<Req> {
    match e {
        Expr::Sel(i) => sels.get(*i)?.requirement(),
        Expr::Not(_) => None,
        Expr::And(v) => best(v.iter().map(|e| expr_req(e, sels))),
        Expr::Or(v) => union(v.iter().map(|e| expr_req(e, sels))),
        Expr::Of { n, all, sels: idx } => {
            let it = idx
                .iter()
                .map(|i| sels.get(*i).and_then(Selection::requirement));
            if *all || *n > 1 && *n >= idx.len() {
                best(it)
            } else {
                union(it)
            }
        }
    }
}

fn value_matches(m: &ValueMatcher, vals: &FieldValues<'_>, ev: &dyn EventView) -> bool {
    match m {
        ValueMatcher::Null => !vals.is_present(),
        ValueMatcher::Str(s) => vals.iter().any(|v| s.matches(v)),
        ValueMatcher::Neq(s) => vals.is_present() && !vals.iter().any(|v| s.matches(v)),
        ValueMatcher::Re(re, _) => vals.iter().any(|v| re.is_match(v)),
        ValueMatcher::Cidr(net) => vals
            .iter()
            .any(|v| v.trim().parse::<IpAddr>().is_ok_and(|ip| net.contains(&ip))),
        ValueMatcher::Cmp(op, n) => vals
            .iter()
            .any(|v| v.trim().parse::<f64>().is_ok_and(|x| op.apply(x, *n))),
        ValueMatcher::Time(part, op, n) => vals
            .iter()
            .any(|v| time_part(v, *part).is_some_and(|x| op.apply(f64::from(x), *n))),
        ValueMatcher::FieldRef {
            field,
            shape,
            cased,
        } => {
            let other = ev.get(field);
            vals.iter().any(|v| {
                other.iter().any(|o| {
                    let (v, o) = if *cased {
                        (v.into(), o.into())
                    } else {
                        (lower(v), lower(o))
                    };
                    match shape {
                        RefShape::Exact => v == o,
                        RefShape::Contains => v.contains(o.as_ref()),
                        RefShape::Prefix => v.starts_with(o.as_ref()),
                        RefShape::Suffix => v.ends_with(o.as_ref()),
                    }
                })
            })
        }
    }
}

fn time_part(v: &str, part: TimePart) -> Option<i32> {
    let t = time::OffsetDateTime::parse(v.trim(), &time::format_description::well_known::Rfc3339)
        .ok()?;
    Some(match part {
        TimePart::Minute => i32::from(t.minute()),
        TimePart::Hour => i32::from(t.hour()),
        TimePart::Day => i32::from(t.day()),
        TimePart::Week => i32::from(t.iso_week()),
        TimePart::Month => i32::from(u8::from(t.month())),
        TimePart::Year => t.year(),
    })
}
