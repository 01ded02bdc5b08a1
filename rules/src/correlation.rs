//! Correlation rules on the stream: `event_count`, `value_count`, `temporal`,
//! `temporal_ordered`, `value_sum`, `value_avg`, `value_percentile`, `value_median`, with
//! bounded per-group state.

use std::collections::{HashMap, VecDeque};

use yaml_rust2::Yaml;

use crate::error::{ErrorKind, RuleError, invalid, unsupported};
use crate::event::EventView;
use crate::rule::Meta;
use crate::yaml::{entries, get, opt_str, scalar, str_list};

/// A reference to an event given by the caller: its index in the stream and optional id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct EventRef {
    /// Position in the caller's stream (line number for `rules test`).
    pub index: u64,
    /// The event's id, when the caller has one.
    pub id: Option<std::sync::Arc<str>>,
}

/// The correlation type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Number of matching events.
    EventCount,
    /// Number of distinct values of a field.
    ValueCount,
    /// All (or N of the) rules matched, in any order.
    Temporal,
    /// All rules matched in the listed order.
    TemporalOrdered,
    /// Sum of a field.
    ValueSum,
    /// Mean of a field.
    ValueAvg,
    /// A percentile of a field.
    ValuePercentile,
    /// The median of a field.
    ValueMedian,
}

/// A condition: every bound given must hold (`gt: 3, lte: 10` is a range).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cond {
    gt: Option<f64>,
    gte: Option<f64>,
    lt: Option<f64>,
    lte: Option<f64>,
    eq: Option<f64>,
    neq: Option<f64>,
}

impl Cond {
    /// Whether `x` satisfies every bound.
    pub fn holds(&self, x: f64) -> bool {
        self.gt.is_none_or(|b| x > b)
            && self.gte.is_none_or(|b| x >= b)
            && self.lt.is_none_or(|b| x < b)
            && self.lte.is_none_or(|b| x <= b)
            && self.eq.is_none_or(|b| x == b)
            && self.neq.is_none_or(|b| x != b)
    }
    /// Whether a growing count can only make it true (then it fires as soon as it holds);
    /// otherwise it is decided when the window closes.
    fn monotone(&self) -> bool {
        self.lt.is_none() && self.lte.is_none() && self.eq.is_none() && self.neq.is_none()
    }
}

/// A parsed correlation rule.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Metadata.
    pub meta: Meta,
    /// The type.
    pub kind: Kind,
    /// Referenced rules (id, name or title), in order.
    pub rules: Vec<String>,
    /// `group-by` field names (or aliases).
    pub group_by: Vec<String>,
    /// `timespan` in nanoseconds.
    pub timespan: i64,
    /// The condition.
    pub cond: Cond,
    /// The field of `value_*` types.
    pub field: Option<String>,
    /// The percentile of `value_percentile` (0–100).
    pub percentile: f64,
    /// alias → (rule reference → field).
    pub aliases: HashMap<String, HashMap<String, String>>,
    /// `generate`: the referenced rules also report their own matches.
    pub generate: bool,
    /// For each position of `rules`, the first position that names the same loaded rule
    /// (set by the engine; the identity after parsing). A rule listed several times is fed
    /// once per event, so one event fills one position: `temporal_ordered` with
    /// `[failed, failed, failed, ok]` needs three failures, then a success.
    pub canon: Vec<usize>,
}

/// Parses a duration such as `30s`, `5m`, `1h`, `2d`, `1w` into nanoseconds.
pub fn parse_timespan(s: &str) -> Option<i64> {
    let s = s.trim();
    let unit = s.chars().last()?;
    let n: i64 = s[..s.len() - unit.len_utf8()]
        .parse()
        .ok()
        .filter(|n| *n > 0)?;
    let mult: i64 = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        'w' => 604_800,
        _ => return None,
    };
    n.checked_mul(mult)?.checked_mul(1_000_000_000)
}

impl Spec {
    /// Parses the `correlation` block.
    pub fn parse(meta: Meta, c: &Yaml, doc_generate: bool) -> Result<Self, RuleError> {
        let at = "correlation";
        let ty = opt_str(c, "type", "correlation.type")?
            .ok_or_else(|| RuleError::new("correlation.type", ErrorKind::Missing("type")))?;
        let kind = match ty.as_str() {
            "event_count" => Kind::EventCount,
            "value_count" => Kind::ValueCount,
            "temporal" => Kind::Temporal,
            "temporal_ordered" => Kind::TemporalOrdered,
            "value_sum" => Kind::ValueSum,
            "value_avg" => Kind::ValueAvg,
            "value_percentile" => Kind::ValuePercentile,
            "value_median" => Kind::ValueMedian,
            other => return Err(unsupported("correlation.type", format!("type '{other}'"))),
        };
        let rules = str_list(c, "rules", "correlation.rules")?;
        if rules.is_empty() {
            return Err(RuleError::new(
                "correlation.rules",
                ErrorKind::Missing("rules"),
            ));
        }
        let ts = opt_str(c, "timespan", "correlation.timespan")?
            .or(opt_str(c, "timeframe", "correlation.timeframe")?)
            .ok_or_else(|| {
                RuleError::new("correlation.timespan", ErrorKind::Missing("timespan"))
            })?;
        let timespan = parse_timespan(&ts).ok_or_else(|| {
            invalid(
                "correlation.timespan",
                format!("'{ts}' is not like 30s, 5m, 1h, 2d"),
            )
        })?;
        let mut cond = Cond::default();
        let mut field = None;
        let mut percentile = 50.0;
        match get(c, "condition") {
            None | Some(Yaml::Null) => {
                if !matches!(kind, Kind::Temporal | Kind::TemporalOrdered) {
                    return Err(RuleError::new(
                        "correlation.condition",
                        ErrorKind::Missing("condition"),
                    ));
                }
            }
            Some(y) => {
                for (k, v) in entries(y, "correlation.condition")? {
                    let cat = format!("correlation.condition.{k}");
                    let num = || {
                        scalar(v)
                            .and_then(|s| s.parse::<f64>().ok())
                            .ok_or_else(|| invalid(cat.clone(), "must be a number"))
                    };
                    match k.as_str() {
                        "gt" => cond.gt = Some(num()?),
                        "gte" => cond.gte = Some(num()?),
                        "lt" => cond.lt = Some(num()?),
                        "lte" => cond.lte = Some(num()?),
                        "eq" => cond.eq = Some(num()?),
                        "neq" => cond.neq = Some(num()?),
                        "field" => field = scalar(v),
                        "percentile" => percentile = num()?,
                        other => return Err(unsupported(cat, format!("condition key '{other}'"))),
                    }
                }
            }
        }
        let needs_field = !matches!(
            kind,
            Kind::EventCount | Kind::Temporal | Kind::TemporalOrdered
        );
        if needs_field && field.is_none() {
            return Err(RuleError::new(
                "correlation.condition.field",
                ErrorKind::Missing("field"),
            ));
        }
        if !(0.0..=100.0).contains(&percentile) {
            return Err(invalid(
                "correlation.condition.percentile",
                "must be within 0..=100",
            ));
        }
        let mut aliases = HashMap::new();
        if let Some(a) = get(c, "aliases").filter(|a| !matches!(a, Yaml::Null)) {
            for (alias, m) in entries(a, "correlation.aliases")? {
                let mut per = HashMap::new();
                for (r, f) in entries(m, "correlation.aliases")? {
                    let f = scalar(f)
                        .ok_or_else(|| invalid("correlation.aliases", "fields must be strings"))?;
                    per.insert(r, f);
                }
                aliases.insert(alias, per);
            }
        }
        let generate = match get(c, "generate") {
            Some(Yaml::Boolean(b)) => *b,
            None => doc_generate,
            Some(_) => return Err(invalid("correlation.generate", "must be true or false")),
        };
        let _ = at;
        let canon = (0..rules.len()).collect();
        Ok(Self {
            canon,
            meta,
            kind,
            rules,
            group_by: str_list(c, "group-by", "correlation.group-by")?,
            timespan,
            cond,
            field,
            percentile,
            aliases,
            generate,
        })
    }
}

/// Limits of the correlation state.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Group keys per correlation rule; the oldest key is evicted past it.
    pub max_group_keys: usize,
    /// Events (or values) kept per group key; the oldest are dropped past it.
    pub max_events_per_key: usize,
    /// How far behind the newest event time an event may be and still count (ns).
    pub out_of_order_tolerance: i64,
    /// Event references listed in one detection.
    pub max_refs: usize,
}

/// A correlation detection before the engine adds metadata.
#[derive(Debug, Clone)]
pub struct Fired {
    /// group-by field → value
    pub group: Vec<(String, String)>,
    /// The contributing events, oldest first.
    pub events: Vec<EventRef>,
    /// The aggregated value that met the condition.
    pub value: f64,
}

#[derive(Debug, Clone, Default)]
struct Group {
    generation: u64,
    /// (time, rule position, value, ref) in time order.
    items: VecDeque<(i64, usize, Option<String>, EventRef)>,
    first: i64,
}

/// The running state of one correlation rule.
#[derive(Debug)]
pub struct State {
    spec: Spec,
    groups: HashMap<Vec<String>, Group>,
    order: VecDeque<(Vec<String>, u64)>,
    next_gen: u64,
    watermark: i64,
    /// Group keys evicted because of the cap.
    pub evictions: u64,
    /// Events too late (behind the watermark by more than the tolerance).
    pub late: u64,
    /// Events dropped from a group past `max_events_per_key`.
    pub truncated: u64,
}

impl State {
    /// New state for a spec.
    pub fn new(spec: Spec) -> Self {
        Self {
            spec,
            groups: HashMap::new(),
            order: VecDeque::new(),
            next_gen: 0,
            watermark: i64::MIN,
            evictions: 0,
            late: 0,
            truncated: 0,
        }
    }

    /// The spec.
    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    /// Live group keys.
    pub fn keys(&self) -> usize {
        self.groups.len()
    }

    /// Feeds a match of referenced rule `pos` (its index in `spec.rules`, `rule_ref` its
    /// reference text). Returns a detection when the condition is met.
    pub fn on_match(
        &mut self,
        pos: usize,
        ev: &dyn EventView,
        ts: i64,
        r: EventRef,
        lim: &Limits,
    ) -> Vec<Fired> {
        let mut out = Vec::new();
        if ts < self.watermark.saturating_sub(lim.out_of_order_tolerance) {
            self.late += 1;
            return out;
        }
        if ts > self.watermark {
            self.watermark = ts;
            out.extend(self.expire(lim));
        }
        let rule_ref = self.spec.rules.get(pos).cloned().unwrap_or_default();
        let key: Vec<String> = self
            .spec
            .group_by
            .iter()
            .map(|g| {
                let f = self
                    .spec
                    .aliases
                    .get(g)
                    .and_then(|m| m.get(&rule_ref))
                    .unwrap_or(g);
                ev.get(f).first().unwrap_or_default().to_owned()
            })
            .collect();
        let value = self.spec.field.as_ref().and_then(|f| {
            let f = self
                .spec
                .aliases
                .get(f)
                .and_then(|m| m.get(&rule_ref))
                .unwrap_or(f);
            ev.get(f).first().map(str::to_owned)
        });
        if self.spec.field.is_some() && value.is_none() {
            return out;
        }
        if !self.groups.contains_key(&key) {
            while self.groups.len() >= lim.max_group_keys.max(1) {
                let Some((k, g)) = self.order.pop_front() else {
                    break;
                };
                if self.groups.get(&k).is_some_and(|x| x.generation == g) {
                    self.groups.remove(&k);
                    self.evictions += 1;
                }
            }
            self.next_gen += 1;
            self.groups.insert(
                key.clone(),
                Group {
                    generation: self.next_gen,
                    items: VecDeque::new(),
                    first: ts,
                },
            );
            self.order.push_back((key.clone(), self.next_gen));
            if self.order.len() > 2 * lim.max_group_keys.max(16) {
                let groups = &self.groups;
                self.order
                    .retain(|(k, g)| groups.get(k).is_some_and(|x| x.generation == *g));
            }
        }
        let Some(group) = self.groups.get_mut(&key) else {
            return out;
        };
        let at = group.items.partition_point(|(t, ..)| *t <= ts);
        group.items.insert(at, (ts, pos, value, r));
        group.first = group.first.min(ts);
        if group.items.len() > lim.max_events_per_key.max(1) {
            group.items.pop_front();
            self.truncated += 1;
        }
        if self.spec.cond.monotone()
            || matches!(self.spec.kind, Kind::Temporal | Kind::TemporalOrdered)
        {
            let span = self.spec.timespan;
            group
                .items
                .retain(|(t, ..)| *t >= ts - span && *t <= ts + span);
            if let Some((value, refs)) = evaluate(&self.spec, group, ts, lim) {
                let group_vals = self
                    .spec
                    .group_by
                    .iter()
                    .cloned()
                    .zip(key.iter().cloned())
                    .collect();
                self.groups.remove(&key);
                out.push(Fired {
                    group: group_vals,
                    events: refs,
                    value,
                });
            }
        }
        out
    }

    /// Moves time to `now` (the caller's clock, or the newest event time) and closes windows
    /// that ended before `now - tolerance`. Non-monotone conditions (`lt`, `eq`, …) are
    /// decided here.
    pub fn advance(&mut self, now: i64, lim: &Limits) -> Vec<Fired> {
        self.watermark = self.watermark.max(now);
        self.expire(lim)
    }

    fn expire(&mut self, lim: &Limits) -> Vec<Fired> {
        let cutoff = self.watermark.saturating_sub(lim.out_of_order_tolerance);
        let span = self.spec.timespan;
        let monotone = self.spec.cond.monotone()
            || matches!(self.spec.kind, Kind::Temporal | Kind::TemporalOrdered);
        let mut out = Vec::new();
        let mut dead = Vec::new();
        for (k, g) in &mut self.groups {
            if monotone {
                while g.items.front().is_some_and(|(t, ..)| *t < cutoff - span) {
                    g.items.pop_front();
                }
                if g.items.is_empty() {
                    dead.push(k.clone());
                }
            } else if g.first.saturating_add(span) < cutoff {
                let end = g.first.saturating_add(span);
                g.items.retain(|(t, ..)| *t <= end);
                if let Some((value, refs)) = evaluate(&self.spec, g, end, lim) {
                    let group = self
                        .spec
                        .group_by
                        .iter()
                        .cloned()
                        .zip(k.iter().cloned())
                        .collect();
                    out.push(Fired {
                        group,
                        events: refs,
                        value,
                    });
                }
                dead.push(k.clone());
            }
        }
        for k in dead {
            self.groups.remove(&k);
        }
        out.sort_by(|a, b| a.events.first().cmp(&b.events.first()));
        out
    }
}

fn refs(items: &VecDeque<(i64, usize, Option<String>, EventRef)>, lim: &Limits) -> Vec<EventRef> {
    items
        .iter()
        .take(lim.max_refs)
        .map(|(.., r)| r.clone())
        .collect()
}

fn evaluate(spec: &Spec, g: &Group, _now: i64, lim: &Limits) -> Option<(f64, Vec<EventRef>)> {
    let nums = || -> Vec<f64> {
        g.items
            .iter()
            .filter_map(|(_, _, v, _)| v.as_deref()?.trim().parse::<f64>().ok())
            .collect()
    };
    let value = match spec.kind {
        Kind::EventCount => g.items.len() as f64,
        Kind::ValueCount => {
            let mut v: Vec<&str> = g
                .items
                .iter()
                .filter_map(|(_, _, v, _)| v.as_deref())
                .collect();
            v.sort_unstable();
            v.dedup();
            v.len() as f64
        }
        Kind::ValueSum => nums().iter().sum(),
        Kind::ValueAvg => {
            let n = nums();
            if n.is_empty() {
                return None;
            } else {
                n.iter().sum::<f64>() / n.len() as f64
            }
        }
        Kind::ValuePercentile | Kind::ValueMedian => {
            let mut n = nums();
            if n.is_empty() {
                return None;
            }
            n.sort_by(f64::total_cmp);
            let p = if spec.kind == Kind::ValueMedian {
                50.0
            } else {
                spec.percentile
            };
            let rank = ((p / 100.0) * (n.len() - 1) as f64).round() as usize;
            n[rank.min(n.len() - 1)]
        }
        Kind::Temporal => {
            // Each position is filled by a distinct event of the rule it names.
            let mut seen = vec![false; spec.rules.len()];
            for (_, p, ..) in &g.items {
                let free = (0..spec.rules.len())
                    .find(|&i| !seen[i] && spec.canon.get(i).copied().unwrap_or(i) == *p);
                if let Some(i) = free {
                    seen[i] = true;
                }
            }
            let n = seen.iter().filter(|s| **s).count() as f64;
            let need = if spec.cond == Cond::default() {
                spec.rules.len() as f64
            } else {
                f64::NAN
            };
            if need.is_nan() {
                return spec.cond.holds(n).then(|| (n, refs(&g.items, lim)));
            }
            return (n >= need).then(|| (n, refs(&g.items, lim)));
        }
        Kind::TemporalOrdered => {
            // Greedy: the earliest occurrence of each rule in order, within the window.
            let mut next = 0;
            let mut used = Vec::new();
            for (i, (_, p, ..)) in g.items.iter().enumerate() {
                if spec.canon.get(next).copied().unwrap_or(next) == *p {
                    used.push(i);
                    next += 1;
                    if next == spec.rules.len() {
                        let r = used
                            .iter()
                            .filter_map(|i| g.items.get(*i))
                            .map(|(.., r)| r.clone());
                        return Some((next as f64, r.take(lim.max_refs).collect()));
                    }
                }
            }
            return None;
        }
    };
    spec.cond.holds(value).then(|| (value, refs(&g.items, lim)))
}
