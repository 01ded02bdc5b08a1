//! Correlation rules on the stream: `event_count`, `value_count`, `temporal`,
//! `temporal_ordered`, `value_sum`, `value_avg`, `value_percentile`, `value_median`, with
//! bounded per-group state.

use std::collections::{BTreeMap, HashMap, VecDeque};

use yaml_rust2::Yaml;

use crate::error::{ErrorKind, RuleError, invalid, unsupported};
use crate::event::EventView;
use crate::rule::Meta;
use crate::yaml::{entries, get, opt_str, scalar, str_list};

/// A reference to an event given by the caller: its index in the stream and optional id.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
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

/// Limits of the correlation state and of its time model (all times in ns).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Group keys per correlation rule; the oldest key is evicted past it (counted).
    pub max_group_keys: usize,
    /// Events (or values) kept per group key; the oldest are dropped past it (counted).
    pub max_events_per_key: usize,
    /// How far behind its own group's newest event time an event may be and still count.
    /// Older events are counted as too late (`too_late_events`), never silently dropped.
    pub max_lateness: i64,
    /// An event time further than this ahead of the arrival time (`now`) is judged at
    /// `now` instead, and reported as clock skew.
    pub max_future_skew: i64,
    /// Wall-clock quiet time of a group after which its ended windows are decided
    /// (non-monotone conditions), so a host that goes quiet is still evaluated.
    pub idle_timeout: i64,
    /// Event references listed in one detection.
    pub max_refs: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_group_keys: 10_000,
            max_events_per_key: 10_000,
            max_lateness: 3_600_000_000_000,
            max_future_skew: 300_000_000_000,
            idle_timeout: 300_000_000_000,
            max_refs: 100,
        }
    }
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
    /// Start of the event-time slot (Unix ns, a multiple of the timespan) it belongs to.
    pub window_start: i64,
    /// 1 for the slot's first detection, 2 for its second, … (only `event_count` has more).
    pub window_seq: u32,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Item {
    t: i64,
    pos: usize,
    value: Option<String>,
    r: EventRef,
}

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct Group {
    generation: u64,
    /// Events in event-time order.
    items: Vec<Item>,
    /// The newest event time of this group.
    progress: i64,
    /// The newest arrival time (`now`) of this group.
    last_arrival: i64,
    /// Monotone: slot → detections already emitted.
    fired: BTreeMap<i64, u32>,
    /// Non-monotone: slots below this one are decided.
    closed_below: i64,
}

/// The running state of one correlation rule.
#[derive(Debug)]
pub struct State {
    spec: Spec,
    groups: HashMap<Vec<String>, Group>,
    order: VecDeque<(Vec<String>, u64)>,
    next_gen: u64,
    /// Group keys evicted because of the cap.
    pub evictions: u64,
    /// Events older than their group's newest event time minus `max_lateness` (or in a
    /// window already decided): counted, not used.
    pub late: u64,
    /// Events dropped from a group past `max_events_per_key`.
    pub truncated: u64,
    /// Events seen twice (same id and time), counted once.
    pub duplicates: u64,
}

/// The serializable state of one correlation rule (see [`crate::Engine::snapshot`]).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct StateSnapshot {
    /// The correlation's id or title.
    pub rule_id: String,
    /// A fingerprint of the correlation's definition: state restores only into the same.
    pub fingerprint: String,
    groups: Vec<(Vec<String>, Group)>,
}

impl Spec {
    /// Whether growing the set of events can only make the condition true: such rules fire
    /// as soon as it holds; the others are decided when their window closes.
    pub fn monotone(&self) -> bool {
        match self.kind {
            Kind::Temporal | Kind::TemporalOrdered => true,
            Kind::EventCount | Kind::ValueCount | Kind::ValueSum => self.cond.monotone(),
            Kind::ValueAvg | Kind::ValuePercentile | Kind::ValueMedian => false,
        }
    }

    /// The smallest count that meets a monotone `event_count` condition.
    fn threshold(&self) -> Option<usize> {
        if self.kind != Kind::EventCount || !self.cond.monotone() {
            return None;
        }
        let gt = self.cond.gt.map(|g| g.floor() + 1.0);
        let gte = self.cond.gte.map(f64::ceil);
        let t = gt.into_iter().chain(gte).fold(1.0f64, f64::max);
        (t.is_finite() && t >= 1.0).then_some(t as usize)
    }

    /// A stable text of everything that shapes the state (not the title or level).
    pub fn fingerprint(&self) -> String {
        let mut aliases: Vec<String> = self
            .aliases
            .iter()
            .map(|(a, m)| {
                let mut m: Vec<_> = m.iter().map(|(r, f)| format!("{r}={f}")).collect();
                m.sort();
                format!("{a}:{}", m.join(","))
            })
            .collect();
        aliases.sort();
        format!(
            "{:?}|{:?}|{:?}|{}|{:?}|{:?}|{}|{}",
            self.kind,
            self.rules,
            self.group_by,
            self.timespan,
            self.cond,
            self.field,
            self.percentile,
            aliases.join(";")
        )
    }
}

impl State {
    /// New state for a spec.
    pub fn new(spec: Spec) -> Self {
        Self {
            spec,
            groups: HashMap::new(),
            order: VecDeque::new(),
            next_gen: 0,
            evictions: 0,
            late: 0,
            truncated: 0,
            duplicates: 0,
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

    fn slot(&self, t: i64) -> i64 {
        t.div_euclid(self.spec.timespan.max(1))
    }

    /// Feeds a match of referenced rule `pos` (its index in `spec.rules`) with event time
    /// `ts` (already judged for clock skew) arriving at `now`. Returns the detections it
    /// completes.
    #[allow(clippy::too_many_arguments)]
    pub fn on_match(
        &mut self,
        pos: usize,
        ev: &dyn EventView,
        ts: i64,
        now: i64,
        r: EventRef,
        lim: &Limits,
    ) -> Vec<Fired> {
        let rule_ref = self.spec.rules.get(pos).cloned().unwrap_or_default();
        let field_of = |f: &String| -> String {
            self.spec
                .aliases
                .get(f)
                .and_then(|m| m.get(&rule_ref))
                .unwrap_or(f)
                .clone()
        };
        let key: Vec<String> = self
            .spec
            .group_by
            .iter()
            .map(|g| ev.get(&field_of(g)).first().unwrap_or_default().to_owned())
            .collect();
        let value = self
            .spec
            .field
            .as_ref()
            .and_then(|f| ev.get(&field_of(f)).first().map(str::to_owned));
        if self.spec.field.is_some() && value.is_none() {
            return Vec::new();
        }
        self.ensure_group(&key, lim);
        let slot = self.slot(ts);
        let monotone = self.spec.monotone();
        let Some(g) = self.groups.get_mut(&key) else {
            return Vec::new();
        };
        if ts < g.progress.saturating_sub(lim.max_lateness) || (!monotone && slot < g.closed_below)
        {
            self.late += 1;
            return Vec::new();
        }
        // Equal times are ordered by the event reference, so that the order of the items
        // never depends on the arrival order.
        let lo = g.items.partition_point(|x| x.t < ts);
        let hi = g.items.partition_point(|x| x.t <= ts);
        let at = lo + g.items[lo..hi].partition_point(|x| x.r <= r);
        if r.id.is_some() && g.items[lo..hi].iter().any(|x| x.r.id == r.id) {
            self.duplicates += 1;
            return Vec::new();
        }
        g.items.insert(
            at,
            Item {
                t: ts,
                pos,
                value,
                r,
            },
        );
        if g.items.len() > lim.max_events_per_key.max(1) {
            g.items.remove(0);
            self.truncated += 1;
        }
        g.progress = g.progress.max(ts);
        g.last_arrival = g.last_arrival.max(now);
        let group_vals: Vec<(String, String)> = self
            .spec
            .group_by
            .iter()
            .cloned()
            .zip(key.iter().cloned())
            .collect();
        let mut out = Vec::new();
        if monotone {
            fire_monotone(&self.spec, g, ts, lim, &mut out);
            let horizon = g.progress.saturating_sub(lim.max_lateness);
            let keep_from = horizon.saturating_sub(self.spec.timespan);
            let cut = g.items.partition_point(|x| x.t < keep_from);
            g.items.drain(..cut);
            let span = self.spec.timespan.max(1);
            g.fired
                .retain(|b, _| b.saturating_add(1).saturating_mul(span) > horizon);
        } else {
            let upto = g
                .progress
                .saturating_sub(lim.max_lateness)
                .div_euclid(self.spec.timespan.max(1));
            decide(&self.spec, g, upto, lim, &mut out);
        }
        for f in &mut out {
            f.group.clone_from(&group_vals);
        }
        out
    }

    fn ensure_group(&mut self, key: &[String], lim: &Limits) {
        if self.groups.contains_key(key) {
            return;
        }
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
            key.to_vec(),
            Group {
                generation: self.next_gen,
                progress: i64::MIN,
                last_arrival: i64::MIN,
                closed_below: i64::MIN,
                ..Group::default()
            },
        );
        self.order.push_back((key.to_vec(), self.next_gen));
        if self.order.len() > 2 * lim.max_group_keys.max(16) {
            let groups = &self.groups;
            self.order
                .retain(|(k, g)| groups.get(k).is_some_and(|x| x.generation == *g));
        }
    }

    /// Moves wall-clock time to `now`: decides the ended windows of groups quiet for
    /// `idle_timeout` (non-monotone conditions: `lt`, `eq`, averages, …), and forgets
    /// groups quiet for `idle_timeout + max_lateness`. Call periodically and at the end.
    pub fn advance(&mut self, now: i64, lim: &Limits) -> Vec<Fired> {
        let span = self.spec.timespan.max(1);
        let monotone = self.spec.monotone();
        let mut out = Vec::new();
        let mut dead = Vec::new();
        for (k, g) in &mut self.groups {
            let quiet = now.saturating_sub(g.last_arrival);
            if !monotone && quiet >= lim.idle_timeout {
                let by_event = g.progress.saturating_sub(lim.max_lateness).div_euclid(span);
                let mut fired = Vec::new();
                decide(
                    &self.spec,
                    g,
                    by_event.max(now.div_euclid(span)),
                    lim,
                    &mut fired,
                );
                let group: Vec<(String, String)> = self
                    .spec
                    .group_by
                    .iter()
                    .cloned()
                    .zip(k.iter().cloned())
                    .collect();
                for mut f in fired {
                    f.group.clone_from(&group);
                    out.push(f);
                }
            }
            if quiet >= lim.idle_timeout.saturating_add(lim.max_lateness)
                && (monotone || g.items.is_empty())
            {
                dead.push(k.clone());
            }
        }
        for k in dead {
            self.groups.remove(&k);
        }
        out.sort_by(|a, b| a.events.first().cmp(&b.events.first()));
        out
    }

    /// The state, for a durable snapshot.
    pub fn snapshot(&self) -> StateSnapshot {
        let mut groups: Vec<(Vec<String>, Group)> = self
            .groups
            .iter()
            .map(|(k, g)| (k.clone(), g.clone()))
            .collect();
        groups.sort_by_key(|(_, g)| g.generation);
        StateSnapshot {
            rule_id: self.spec.meta.label().to_owned(),
            fingerprint: self.spec.fingerprint(),
            groups,
        }
    }

    /// Restores a snapshot of the same definition (the caller checks the fingerprint).
    pub fn restore(&mut self, snap: &StateSnapshot, lim: &Limits) {
        self.groups.clear();
        self.order.clear();
        for (k, g) in snap
            .groups
            .iter()
            .rev()
            .take(lim.max_group_keys.max(1))
            .rev()
        {
            self.next_gen += 1;
            let mut g = g.clone();
            g.generation = self.next_gen;
            self.order.push_back((k.clone(), self.next_gen));
            self.groups.insert(k.clone(), g);
        }
    }
}

/// Monotone rules: every slot whose windows the new event at `ts` can change is checked.
/// A slot fires once when some window of `timespan` ending in it meets the condition;
/// `event_count` fires once more for each further threshold's worth of events in the slot.
fn fire_monotone(spec: &Spec, g: &mut Group, ts: i64, lim: &Limits, out: &mut Vec<Fired>) {
    let span = spec.timespan.max(1);
    let first = ts.div_euclid(span);
    let last = ts.saturating_add(span).div_euclid(span);
    for b in first..=last {
        let start = b.saturating_mul(span);
        let end = start.saturating_add(span);
        let done = g.fired.get(&b).copied().unwrap_or(0);
        let mut target = done;
        let mut first_refs = None;
        if done == 0 {
            // Windows [t_e - span, t_e] for events e in this slot that include `ts`.
            let lo = g.items.partition_point(|x| x.t < start.max(ts));
            let hi = g
                .items
                .partition_point(|x| x.t < end.min(ts.saturating_add(span).saturating_add(1)));
            for e in lo..hi {
                let te = g.items[e].t;
                let from = g.items.partition_point(|x| x.t < te.saturating_sub(span));
                let upto = g.items.partition_point(|x| x.t <= te);
                if let Some((value, refs)) = evaluate(spec, &g.items[from..upto], lim) {
                    target = 1;
                    first_refs = Some((value, refs));
                    break;
                }
            }
        }
        let lo = g.items.partition_point(|x| x.t < start);
        let hi = g.items.partition_point(|x| x.t < end);
        if let Some(thr) = spec.threshold() {
            target = target.max(u32::try_from((hi - lo) / thr).unwrap_or(u32::MAX));
        }
        for k in done + 1..=target {
            let (value, events) = if k == 1
                && let Some(f) = first_refs.take()
            {
                f
            } else {
                let thr = spec.threshold().unwrap_or(1);
                let from = lo + (k as usize - 1) * thr;
                let items = &g.items[from.min(hi)..(from + thr).min(hi)];
                (thr as f64, refs(items, lim))
            };
            out.push(Fired {
                group: Vec::new(),
                events,
                value,
                window_start: start,
                window_seq: k,
            });
        }
        if target > 0 {
            g.fired.insert(b, target);
        }
    }
}

/// Non-monotone rules: decides every slot below `upto` (the slots are tumbling windows of
/// `timespan`) and forgets its events.
fn decide(spec: &Spec, g: &mut Group, upto: i64, lim: &Limits, out: &mut Vec<Fired>) {
    let span = spec.timespan.max(1);
    let cut = g.items.partition_point(|x| x.t.div_euclid(span) < upto);
    let mut i = 0;
    while i < cut {
        let b = g.items[i].t.div_euclid(span);
        let j = i + g.items[i..cut].partition_point(|x| x.t.div_euclid(span) == b);
        if let Some((value, events)) = evaluate(spec, &g.items[i..j], lim) {
            out.push(Fired {
                group: Vec::new(),
                events,
                value,
                window_start: b.saturating_mul(span),
                window_seq: 1,
            });
        }
        i = j;
    }
    g.items.drain(..cut);
    g.closed_below = g.closed_below.max(upto);
}

fn refs(items: &[Item], lim: &Limits) -> Vec<EventRef> {
    items
        .iter()
        .take(lim.max_refs)
        .map(|x| x.r.clone())
        .collect()
}

fn evaluate(spec: &Spec, items: &[Item], lim: &Limits) -> Option<(f64, Vec<EventRef>)> {
    let nums = || -> Vec<f64> {
        items
            .iter()
            .filter_map(|x| x.value.as_deref()?.trim().parse::<f64>().ok())
            .collect()
    };
    let value = match spec.kind {
        Kind::EventCount => items.len() as f64,
        Kind::ValueCount => {
            let mut v: Vec<&str> = items.iter().filter_map(|x| x.value.as_deref()).collect();
            v.sort_unstable();
            v.dedup();
            v.len() as f64
        }
        // Negative values count as 0, so that a sum only grows (a monotone condition).
        Kind::ValueSum => nums().iter().map(|v| v.max(0.0)).sum(),
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
            for p in items.iter().map(|x| &x.pos) {
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
                return spec.cond.holds(n).then(|| (n, refs(items, lim)));
            }
            return (n >= need).then(|| (n, refs(items, lim)));
        }
        Kind::TemporalOrdered => {
            // Greedy: the earliest occurrence of each rule in order, within the window.
            let mut next = 0;
            let mut used = Vec::new();
            for (i, p) in items.iter().map(|x| &x.pos).enumerate() {
                if spec.canon.get(next).copied().unwrap_or(next) == *p {
                    used.push(i);
                    next += 1;
                    if next == spec.rules.len() {
                        let r = used
                            .iter()
                            .filter_map(|i| items.get(*i))
                            .map(|x| x.r.clone());
                        return Some((next as f64, r.take(lim.max_refs).collect()));
                    }
                }
            }
            return None;
        }
    };
    spec.cond.holds(value).then(|| (value, refs(items, lim)))
}
