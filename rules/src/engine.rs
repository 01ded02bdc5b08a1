//! The engine: compiles rules, filters and correlations into one shared matcher and runs
//! events through it, routing by logsource and prefiltering by literals.

use std::collections::HashMap;

use serde::Serialize;
use yaml_rust2::Yaml;

use crate::correlation::{EventRef, Fired, Limits, Spec, State};
use crate::detection::{CompileCtx, DetectionBlock};
use crate::error::{ErrorKind, RuleError, invalid};
use crate::event::EventView;
use crate::logsource::{self, MappingConfig};
use crate::prefilter::Prefilter;
use crate::rule::{Document, Meta};
use crate::yaml::str_list;

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Logsource, field and placeholder mapping.
    pub mapping: MappingConfig,
    /// Run every rule on every event, whatever its logsource (`rules test --ignore-logsource`).
    pub ignore_logsource: bool,
    /// Correlation limits.
    pub limits: Limits,
    /// A rule whose logsource has no mapping is an error (`rules check --strict`);
    /// otherwise it loads inactive, with its reason in [`Engine::inactive`].
    pub strict: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            mapping: MappingConfig::defaults(),
            ignore_logsource: false,
            strict: false,
            limits: Limits::default(),
        }
    }
}

/// A detection: a rule matched one event, or a correlation's condition was met.
#[derive(Debug, Clone, Serialize)]
pub struct Detection {
    /// The rule's id (its title when it has none).
    pub rule_id: String,
    /// The rule's title.
    pub rule_title: String,
    /// The rule's level.
    pub level: Option<String>,
    /// The rule's tags.
    pub tags: Vec<String>,
    /// The correlation's group-by values (empty for single-event rules).
    pub group: Vec<(String, String)>,
    /// The events that made it: one for a rule, the contributing ones for a correlation.
    pub events: Vec<EventRef>,
    /// Whether this is a correlation detection.
    pub correlation: bool,
    /// A correlation's event-time slot (start, Unix ns) and its number in the slot: with
    /// the rule and group, the detection's identity, whatever the arrival order.
    pub window: Option<(i64, u32)>,
}

/// An event whose time is more than `max_future_skew` ahead of its arrival: it was judged
/// at its arrival time. Reported at most once per host per [`SKEW_REPORT_INTERVAL`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClockSkew {
    /// The `host` field of the event.
    pub host: String,
    /// Event time minus arrival time (ns).
    pub offset_nanos: i64,
    /// The event that showed it.
    pub event: EventRef,
    /// Skewed events of this host since its previous report (including this one).
    pub events: u64,
}

/// Clock skew is reported at most once per host in this much arrival time (10 min).
pub const SKEW_REPORT_INTERVAL: i64 = 600_000_000_000;

/// A durable, versioned snapshot of the correlation state ([`Engine::snapshot`]).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Snapshot {
    /// Format version ([`SNAPSHOT_VERSION`]).
    pub version: u32,
    /// One entry per correlation rule.
    pub correlations: Vec<crate::correlation::StateSnapshot>,
}

/// The current snapshot format.
pub const SNAPSHOT_VERSION: u32 = 1;

/// What [`Engine::restore`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RestoreReport {
    /// Correlations whose state was restored.
    pub restored: Vec<String>,
    /// (rule id, why) for state not restored: the rule changed or is gone.
    pub dropped: Vec<(String, String)>,
}

struct CompiledRule {
    meta: Meta,
    block: DetectionBlock,
    source: Option<usize>,
    filters: Vec<usize>,
    generate: bool,
    /// (correlation index, position in its rules)
    feeds: Vec<(usize, usize)>,
}

/// Counters the engine exposes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EngineStats {
    /// Events processed.
    pub events: u64,
    /// Rule evaluations (after routing and prefilter).
    pub evaluations: u64,
    /// Events judged at their arrival time because their time was more than
    /// `max_future_skew` ahead of it.
    pub future_skewed_events: u64,
    /// Per correlation rule: (id, live keys, evicted keys, late events, truncated events).
    pub correlations: Vec<CorrelationStats>,
}

/// Counters of one correlation rule.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CorrelationStats {
    /// The correlation's id or title.
    pub rule_id: String,
    /// Live group keys.
    pub keys: usize,
    /// Group keys evicted by the cap.
    pub evictions: u64,
    /// Events older than their group's newest event time minus `max_lateness`, or in a
    /// window already decided: counted here, not used.
    pub late_events: u64,
    /// Events dropped from a full group.
    pub truncated_events: u64,
    /// Events seen twice (same id and time), used once.
    pub duplicate_events: u64,
}

/// A rule (or correlation) that loaded but never runs, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InactiveRule {
    /// The rule's id (its title when it has none).
    pub rule_id: String,
    /// Why it is inactive, e.g. `logsource not mapped: product=windows`.
    pub reason: String,
}

/// The compiled rule set and its streaming state.
pub struct Engine {
    inactive: Vec<InactiveRule>,
    rules: Vec<CompiledRule>,
    sources: Vec<DetectionBlock>,
    filters: Vec<DetectionBlock>,
    corrs: Vec<State>,
    prefilter: Prefilter,
    limits: Limits,
    scratch: Vec<usize>,
    source_cache: Vec<u8>,
    events: u64,
    evaluations: u64,
    skewed: u64,
    skew_hosts: HashMap<String, (i64, u64)>,
    skews: Vec<ClockSkew>,
}

impl Engine {
    /// Compiles documents. Every document with a problem gives its own error; the engine is
    /// built only when there is none.
    pub fn new(docs: &[Document], cfg: &EngineConfig) -> Result<Self, Vec<RuleError>> {
        let ctx = cfg.mapping.compile_ctx();
        let mut errors = Vec::new();
        let mut inactive: Vec<InactiveRule> = Vec::new();
        let mut rules = Vec::new();
        let mut source_keys: HashMap<String, usize> = HashMap::new();
        let mut sources = Vec::new();
        for d in docs {
            let Document::Rule { meta, detection } = d else {
                continue;
            };
            let label = meta.label().to_owned();
            let block = match DetectionBlock::compile(detection, &ctx, "detection") {
                Ok(b) => b,
                Err(e) => {
                    errors.push(e.in_rule(&label));
                    continue;
                }
            };
            let source = if cfg.ignore_logsource {
                None
            } else {
                match resolve_source(&cfg.mapping, meta, &ctx, &mut source_keys, &mut sources) {
                    Ok(s) => s,
                    Err(e) if !cfg.strict && matches!(e.kind, ErrorKind::Logsource(_)) => {
                        inactive.push(InactiveRule {
                            rule_id: label,
                            reason: e.kind.to_string(),
                        });
                        continue;
                    }
                    Err(e) => {
                        errors.push(e.in_rule(&label));
                        continue;
                    }
                }
            };
            rules.push(CompiledRule {
                meta: meta.clone(),
                block,
                source,
                filters: Vec::new(),
                generate: true,
                feeds: Vec::new(),
            });
        }
        let find = |r: &str, rules: &[CompiledRule]| rules.iter().position(|x| x.meta.is_named(r));
        let mut filters = Vec::new();
        for d in docs {
            let Document::Filter { meta, filter } = d else {
                continue;
            };
            match compile_filter(filter, &ctx) {
                Ok((targets, block)) => {
                    let fi = filters.len();
                    filters.push(block);
                    for t in targets {
                        match find(&t, &rules) {
                            Some(ri) => rules[ri].filters.push(fi),
                            None if inactive.iter().any(|i| i.rule_id == t)
                                || docs.iter().any(|d| {
                                    d.meta().is_named(&t)
                                        && inactive.iter().any(|i| i.rule_id == d.meta().label())
                                }) => {}
                            None => errors.push(
                                invalid("filter.rules", format!("no loaded rule is named '{t}'"))
                                    .in_rule(meta.label()),
                            ),
                        }
                    }
                }
                Err(e) => errors.push(e.in_rule(meta.label())),
            }
        }
        let mut corrs = Vec::new();
        let mut generate_any: HashMap<usize, bool> = HashMap::new();
        for d in docs {
            let Document::Correlation { meta, correlation } = d else {
                continue;
            };
            let mut spec = match Spec::parse(meta.clone(), correlation, false) {
                Ok(s) => s,
                Err(e) => {
                    errors.push(e.in_rule(meta.label()));
                    continue;
                }
            };
            let ci = corrs.len();
            let dormant = spec.rules.iter().find(|r| {
                find(r, &rules).is_none()
                    && docs.iter().any(|d| {
                        d.meta().is_named(r)
                            && inactive.iter().any(|i| i.rule_id == d.meta().label())
                    })
            });
            if let Some(r) = dormant {
                inactive.push(InactiveRule {
                    rule_id: meta.label().to_owned(),
                    reason: format!("references inactive rule '{r}'"),
                });
                continue;
            }
            let mut ok = true;
            for (pos, r) in spec.rules.iter().enumerate() {
                match find(r, &rules) {
                    Some(ri) => {
                        // A rule listed again feeds its first position only (`Spec::canon`).
                        if let Some(&(_, first)) = rules[ri].feeds.iter().find(|f| f.0 == ci) {
                            spec.canon[pos] = first;
                            continue;
                        }
                        rules[ri].feeds.push((ci, pos));
                        let g = generate_any.entry(ri).or_insert(false);
                        *g |= spec.generate;
                    }
                    None => {
                        ok = false;
                        let msg = format!(
                            "'{r}' is not a loaded detection rule (correlations of correlations are not supported)"
                        );
                        errors.push(invalid("correlation.rules", msg).in_rule(meta.label()));
                    }
                }
            }
            if ok {
                corrs.push(State::new(spec));
            }
        }
        for (ri, g) in generate_any {
            rules[ri].generate = g;
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let reqs: Vec<_> = rules.iter().map(|r| r.block.requirement()).collect();
        let n_sources = sources.len();
        Ok(Self {
            inactive,
            prefilter: Prefilter::new(&reqs),
            rules,
            sources,
            filters,
            corrs,
            limits: cfg.limits,
            scratch: Vec::new(),
            source_cache: vec![0; n_sources],
            events: 0,
            evaluations: 0,
            skewed: 0,
            skew_hosts: HashMap::new(),
            skews: Vec::new(),
        })
    }

    /// Rules and correlations that loaded inactive, with their reasons (for the rule
    /// listing and `rules check` warnings).
    pub fn inactive(&self) -> &[InactiveRule] {
        &self.inactive
    }

    /// Number of detection rules.
    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// Runs one event (its time in Unix nanoseconds) through every rule and correlation,
    /// taking its time as its arrival time (`rules test`). See [`Engine::process_at`].
    pub fn process(&mut self, ev: &dyn EventView, ts: i64, r: &EventRef) -> Vec<Detection> {
        self.process_at(ev, ts, ts, r)
    }

    /// Runs one event with event time `ts` that arrived at `now` (both Unix ns). An event
    /// time more than `max_future_skew` ahead of `now` is judged at `now` and reported in
    /// [`Engine::take_clock_skews`].
    pub fn process_at(
        &mut self,
        ev: &dyn EventView,
        ts: i64,
        now: i64,
        r: &EventRef,
    ) -> Vec<Detection> {
        self.events += 1;
        let ts = if ts > now.saturating_add(self.limits.max_future_skew) {
            self.skewed += 1;
            self.note_skew(ev, ts, now, r);
            now
        } else {
            ts
        };
        let mut out = Vec::new();
        let mut cands = std::mem::take(&mut self.scratch);
        self.prefilter.candidates(ev, &mut cands);
        self.source_cache.iter_mut().for_each(|c| *c = 0);
        for &ri in &cands {
            let rule = &self.rules[ri];
            if let Some(s) = rule.source {
                if self.source_cache[s] == 0 {
                    self.source_cache[s] = if self.sources[s].matches(ev) { 1 } else { 2 };
                }
                if self.source_cache[s] == 2 {
                    continue;
                }
            }
            self.evaluations += 1;
            if !rule.block.matches(ev) || !rule.filters.iter().all(|f| self.filters[*f].matches(ev))
            {
                continue;
            }
            if rule.generate {
                out.push(Detection {
                    rule_id: rule.meta.label().to_owned(),
                    rule_title: rule.meta.title.clone(),
                    level: rule.meta.level.clone(),
                    tags: rule.meta.tags.clone(),
                    group: Vec::new(),
                    events: vec![r.clone()],
                    correlation: false,
                    window: None,
                });
            }
            for &(ci, pos) in &rule.feeds {
                let fired = self.corrs[ci].on_match(pos, ev, ts, now, r.clone(), &self.limits);
                out.extend(
                    fired
                        .into_iter()
                        .map(|f| corr_detection(self.corrs[ci].spec(), f)),
                );
            }
        }
        self.scratch = cands;
        out
    }

    /// Moves correlation time to `now` (Unix ns): expires windows and decides conditions
    /// that need a closed window (`lt`, `lte`, `eq`, `neq`). Call periodically and at the end.
    pub fn advance(&mut self, now: i64) -> Vec<Detection> {
        let mut out = Vec::new();
        for c in &mut self.corrs {
            let fired = c.advance(now, &self.limits);
            out.extend(fired.into_iter().map(|f| corr_detection(c.spec(), f)));
        }
        out
    }

    fn note_skew(&mut self, ev: &dyn EventView, ts: i64, now: i64, r: &EventRef) {
        let host = ev.get("host").first().unwrap_or_default().to_owned();
        if !self.skew_hosts.contains_key(&host)
            && self.skew_hosts.len() >= self.limits.max_group_keys.max(1)
        {
            self.skew_hosts.clear();
        }
        let e = self.skew_hosts.entry(host.clone()).or_insert((i64::MIN, 0));
        e.1 += 1;
        if now.saturating_sub(e.0) >= SKEW_REPORT_INTERVAL && self.skews.len() < 1_000 {
            self.skews.push(ClockSkew {
                host,
                offset_nanos: ts.saturating_sub(now),
                event: r.clone(),
                events: e.1,
            });
            *e = (now, 0);
        }
    }

    /// The clock-skew reports since the last call (at most 1,000 are held; each host is
    /// reported at most once per [`SKEW_REPORT_INTERVAL`], with the count of its skewed
    /// events in between).
    pub fn take_clock_skews(&mut self) -> Vec<ClockSkew> {
        std::mem::take(&mut self.skews)
    }

    /// The correlation state, to persist durably and restore after a restart or reload.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            version: SNAPSHOT_VERSION,
            correlations: self.corrs.iter().map(State::snapshot).collect(),
        }
    }

    /// Restores state by rule id. A rule whose definition changed (fingerprint), or that is
    /// no longer loaded, has its state dropped, with the reason in the report. A snapshot of
    /// another version restores nothing.
    pub fn restore(&mut self, snap: &Snapshot) -> RestoreReport {
        let mut rep = RestoreReport::default();
        if snap.version != SNAPSHOT_VERSION {
            rep.dropped.extend(snap.correlations.iter().map(|c| {
                let why = format!(
                    "snapshot version {} is not {SNAPSHOT_VERSION}",
                    snap.version
                );
                (c.rule_id.clone(), why)
            }));
            return rep;
        }
        for c in &snap.correlations {
            match self
                .corrs
                .iter_mut()
                .find(|s| s.spec().meta.label() == c.rule_id)
            {
                Some(s) if s.spec().fingerprint() == c.fingerprint => {
                    s.restore(c, &self.limits);
                    rep.restored.push(c.rule_id.clone());
                }
                Some(_) => rep
                    .dropped
                    .push((c.rule_id.clone(), "the correlation changed".into())),
                None => rep
                    .dropped
                    .push((c.rule_id.clone(), "the correlation is not loaded".into())),
            }
        }
        rep
    }

    /// Counters, including correlation key evictions.
    pub fn stats(&self) -> EngineStats {
        EngineStats {
            events: self.events,
            evaluations: self.evaluations,
            future_skewed_events: self.skewed,
            correlations: self
                .corrs
                .iter()
                .map(|c| CorrelationStats {
                    rule_id: c.spec().meta.label().to_owned(),
                    keys: c.keys(),
                    evictions: c.evictions,
                    late_events: c.late,
                    truncated_events: c.truncated,
                    duplicate_events: c.duplicates,
                })
                .collect(),
        }
    }
}

fn corr_detection(spec: &Spec, f: Fired) -> Detection {
    Detection {
        rule_id: spec.meta.label().to_owned(),
        rule_title: spec.meta.title.clone(),
        level: spec.meta.level.clone(),
        tags: spec.meta.tags.clone(),
        group: f.group,
        events: f.events,
        correlation: true,
        window: Some((f.window_start, f.window_seq)),
    }
}

fn resolve_source(
    mapping: &MappingConfig,
    meta: &Meta,
    ctx: &CompileCtx,
    keys: &mut HashMap<String, usize>,
    sources: &mut Vec<DetectionBlock>,
) -> Result<Option<usize>, RuleError> {
    let hits = mapping.resolve(&meta.logsource)?;
    if hits.is_empty() {
        return Ok(None);
    }
    let key = meta.logsource.to_string();
    if let Some(i) = keys.get(&key) {
        return Ok(Some(*i));
    }
    let Some(block) = logsource::predicate(&hits, ctx)? else {
        return Ok(None);
    };
    sources.push(block);
    keys.insert(key, sources.len() - 1);
    Ok(Some(sources.len() - 1))
}

fn compile_filter(f: &Yaml, ctx: &CompileCtx) -> Result<(Vec<String>, DetectionBlock), RuleError> {
    let targets = str_list(f, "rules", "filter.rules")?;
    if targets.is_empty() {
        return Err(RuleError::new("filter.rules", ErrorKind::Missing("rules")));
    }
    let Yaml::Hash(h) = f else {
        return Err(invalid("filter", "must be a mapping"));
    };
    let rest: yaml_rust2::yaml::Hash = h
        .iter()
        .filter(|(k, _)| k.as_str() != Some("rules"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Ok((
        targets,
        DetectionBlock::compile(&Yaml::Hash(rest), ctx, "filter")?,
    ))
}
