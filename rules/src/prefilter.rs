//! The shared literal prefilter: one Aho-Corasick automaton per field over the literals of
//! every rule, so that only rules whose required literals occur are evaluated.

use std::collections::HashMap;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

use crate::detection::Req;
use crate::event::EventView;
use crate::pattern::lower;

struct FieldScan {
    field: String,
    ac: AhoCorasick,
    /// pattern id → rules needing it
    rules: Vec<Vec<usize>>,
}

/// Rules by required literal, per field; plus the rules that must always be evaluated.
pub struct Prefilter {
    scans: Vec<FieldScan>,
    /// Rules without a literal requirement.
    pub always: Vec<usize>,
    marks: Vec<u32>,
    round: u32,
}

impl Prefilter {
    /// Builds from each rule's requirement (`None`: always evaluate).
    pub fn new(reqs: &[Option<Req>]) -> Self {
        let mut per_field: HashMap<&str, HashMap<&str, Vec<usize>>> = HashMap::new();
        let mut always = Vec::new();
        for (i, r) in reqs.iter().enumerate() {
            match r {
                Some(r) if !r.is_empty() => {
                    for (f, lit) in r {
                        let v = per_field.entry(f).or_default().entry(lit).or_default();
                        if v.last() != Some(&i) {
                            v.push(i);
                        }
                    }
                }
                _ => always.push(i),
            }
        }
        let mut scans = Vec::new();
        let mut fields: Vec<_> = per_field.into_iter().collect();
        fields.sort_by(|a, b| a.0.cmp(b.0));
        for (field, lits) in fields {
            let mut lits: Vec<(&str, Vec<usize>)> = lits.into_iter().collect();
            lits.sort();
            let ac = AhoCorasickBuilder::new()
                .ascii_case_insensitive(true)
                .match_kind(MatchKind::Standard)
                .build(lits.iter().map(|(l, _)| *l));
            match ac {
                Ok(ac) => scans.push(FieldScan {
                    field: field.to_owned(),
                    ac,
                    rules: lits.into_iter().map(|(_, r)| r).collect(),
                }),
                Err(_) => always.extend(lits.into_iter().flat_map(|(_, r)| r)),
            }
        }
        always.sort_unstable();
        always.dedup();
        Self {
            scans,
            always,
            marks: vec![0; reqs.len()],
            round: 0,
        }
    }

    /// The candidate rules for an event, sorted, into `out`.
    pub fn candidates(&mut self, ev: &dyn EventView, out: &mut Vec<usize>) {
        out.clear();
        self.round = self.round.wrapping_add(1);
        if self.round == 0 {
            self.marks.iter_mut().for_each(|m| *m = 0);
            self.round = 1;
        }
        for s in &self.scans {
            for v in ev.get(&s.field).iter() {
                let hay = if v.is_ascii() {
                    std::borrow::Cow::Borrowed(v)
                } else {
                    lower(v)
                };
                for m in s.ac.find_overlapping_iter(hay.as_ref()) {
                    for &r in &s.rules[m.pattern().as_usize()] {
                        if self.marks[r] != self.round {
                            self.marks[r] = self.round;
                            out.push(r);
                        }
                    }
                }
            }
        }
        for &r in &self.always {
            if self.marks[r] != self.round {
                self.marks[r] = self.round;
                out.push(r);
            }
        }
        out.sort_unstable();
    }
}
