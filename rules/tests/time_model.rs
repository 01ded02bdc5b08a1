//! The correlation time model: event time per group key, lateness, future skew, idle
//! close, duplicates, and snapshot/restore. The property: for any arrival order and any
//! delay within `max_lateness`, the detections equal those of the same events in
//! timestamp order.

use logward_rules::{Detection, Document, Engine, EngineConfig, EventRef, OwnedEvent};
use proptest::prelude::*;
use serde_json::json;

const S: i64 = 1_000_000_000;
/// A multiple of 300 s, so that a 5 min slot starts here.
const T0: i64 = 1_700_000_100 * S;

const RULES: &str = r#"
title: failed login
id: failed
detection: {sel: {action: fail}, condition: sel}
---
title: success
id: ok
detection: {sel: {action: ok}, condition: sel}
---
title: brute force
id: brute
correlation: {type: event_count, rules: [failed], group-by: [host], timespan: 5m, condition: {gte: 10}}
---
title: spraying
id: spray
correlation: {type: value_count, rules: [failed], group-by: [host], timespan: 1m, condition: {field: user, gte: 3}}
---
title: fail then success
id: ordered
correlation: {type: temporal_ordered, rules: [failed, failed, ok], group-by: [host], timespan: 2m}
---
title: quiet
id: few
correlation: {type: event_count, rules: [ok], group-by: [host], timespan: 1m, condition: {lt: 2}}
"#;

fn engine(rules: &str) -> Engine {
    let docs: Vec<Document> = logward_rules::documents_from_str(rules).expect("rules parse");
    let cfg = EngineConfig {
        ignore_logsource: true,
        ..EngineConfig::default()
    };
    Engine::new(&docs, &cfg).expect("rules compile")
}

#[derive(Debug, Clone)]
struct Ev {
    id: u64,
    host: String,
    action: &'static str,
    user: u8,
    ts: i64,
    arrival: i64,
}

fn feed(e: &mut Engine, evs: &[Ev]) -> Vec<Detection> {
    let mut out = Vec::new();
    for ev in evs {
        let v = json!({"host": ev.host, "action": ev.action, "user": format!("u{}", ev.user)});
        let r = EventRef {
            index: ev.id,
            id: Some(format!("ev-{}", ev.id).into()),
        };
        out.extend(e.process_at(&OwnedEvent::from_json(&v), ev.ts, ev.arrival, &r));
    }
    out.extend(e.advance(i64::MAX));
    out
}

/// The identity of a correlation detection: rule, group, event-time slot and number.
fn ids(ds: &[Detection]) -> Vec<String> {
    let mut v: Vec<String> = ds
        .iter()
        .filter(|d| d.correlation)
        .map(|d| format!("{} {:?} {:?}", d.rule_id, d.group, d.window))
        .collect();
    v.sort();
    v
}

fn judged(ev: &Ev) -> i64 {
    if ev.ts > ev.arrival + 300 * S {
        ev.arrival
    } else {
        ev.ts
    }
}

fn timeline() -> impl Strategy<Value = Vec<Ev>> {
    // (host 0..4, offset s, action, user, delay s, duplicated?, duplicate's delay s)
    let one = (
        0u8..4,
        0i64..900,
        prop::bool::weighted(0.8),
        0u8..4,
        0i64..3_600,
        prop::bool::weighted(0.1),
        0i64..3_600,
    );
    prop::collection::vec(one, 1..80).prop_map(|raw| {
        let mut out = Vec::new();
        for (i, (h, off, fail, user, delay, dup, dup_delay)) in raw.into_iter().enumerate() {
            let t = T0 + off * S;
            // Host 3's clock is 2 h ahead: its events are judged at their arrival.
            let ts = if h == 3 { t + 7_200 * S } else { t };
            let ev = Ev {
                id: i as u64,
                host: format!("h{h}"),
                action: if fail { "fail" } else { "ok" },
                user,
                ts,
                arrival: t + delay * S,
            };
            if dup {
                out.push(Ev {
                    arrival: t + dup_delay * S,
                    ..ev.clone()
                });
            }
            out.push(ev);
        }
        out
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn any_arrival_order_within_lateness_gives_the_detections_of_timestamp_order(
        evs in timeline()
    ) {
        let mut by_arrival = evs.clone();
        by_arrival.sort_by_key(|e| (e.arrival, e.id));
        let mut by_time = evs;
        by_time.sort_by_key(|e| (judged(e), e.id));
        let got = ids(&feed(&mut engine(RULES), &by_arrival));
        let want = ids(&feed(&mut engine(RULES), &by_time));
        prop_assert_eq!(got, want);
    }
}

fn failures(host: &str, n: usize, start: i64, first_id: u64) -> Vec<Ev> {
    (0..n)
        .map(|i| Ev {
            id: first_id + i as u64,
            host: host.into(),
            action: "fail",
            user: 0,
            ts: start + i as i64 * S,
            arrival: start + i as i64 * S,
        })
        .collect()
}

fn brute(ds: &[Detection]) -> Vec<Vec<u64>> {
    ds.iter()
        .filter(|d| d.rule_id == "brute")
        .map(|d| d.events.iter().map(|e| e.index).collect())
        .collect()
}

#[test]
fn twenty_failures_give_two_detections_even_after_a_host_two_hours_ahead() {
    let victim = failures("victim", 20, T0, 1);
    let got = brute(&feed(&mut engine(RULES), &victim));
    assert_eq!(
        got,
        [(1..=10).collect::<Vec<u64>>(), (11..=20).collect()],
        "alone"
    );
    // rules test: no arrival time, the skewed host only moves its own group.
    let mut skewed = failures("ahead", 1, T0 + 7_200 * S, 0);
    skewed.extend(victim.clone());
    assert_eq!(
        brute(&feed(&mut engine(RULES), &skewed)).len(),
        2,
        "rules test"
    );
    // server: the skewed event arrives at T0, is judged at T0 and reported.
    skewed[0].arrival = T0;
    let mut e = engine(RULES);
    assert_eq!(brute(&feed(&mut e, &skewed)).len(), 2, "server");
    let skews = e.take_clock_skews();
    assert_eq!(skews.len(), 1, "{skews:?}");
    assert_eq!(skews[0].host, "ahead");
    assert_eq!(skews[0].offset_nanos, 7_200 * S);
    assert_eq!(e.stats().future_skewed_events, 1);
}

#[test]
fn a_backlog_ten_minutes_old_still_correlates_and_too_late_events_are_counted() {
    let mut backlog = failures("web", 20, T0, 0);
    for ev in &mut backlog {
        ev.arrival += 600 * S;
    }
    let mut e = engine(RULES);
    assert_eq!(brute(&feed(&mut e, &backlog)).len(), 2);
    // After the group reached T0 + 2 h, an event from T0 is beyond max_lateness (1 h).
    let mut e = engine(RULES);
    let mut evs = failures("web", 1, T0 + 7_200 * S, 0);
    evs.extend(failures("web", 10, T0, 1));
    assert!(brute(&feed(&mut e, &evs)).is_empty());
    let brute_stats = e
        .stats()
        .correlations
        .into_iter()
        .find(|c| c.rule_id == "brute");
    assert_eq!(brute_stats.map(|c| c.late_events), Some(10));
}

#[test]
fn a_non_monotone_condition_waits_for_its_window_or_the_idle_timeout() {
    let mut e = engine(RULES);
    let ok = OwnedEvent::from_json(&json!({"host": "h", "action": "ok"}));
    let r = EventRef { index: 0, id: None };
    assert!(e.process_at(&ok, T0, T0, &r).is_empty());
    // Four minutes later the host is still within the idle timeout (5 min).
    assert!(e.advance(T0 + 240 * S).iter().all(|d| d.rule_id != "few"));
    let fired = e.advance(T0 + 301 * S);
    assert_eq!(
        fired.iter().filter(|d| d.rule_id == "few").count(),
        1,
        "{fired:?}"
    );
    // The window is decided: an event in it now is counted as late, not fired again.
    assert!(e.process_at(&ok, T0 + S, T0 + 400 * S, &r).is_empty());
    assert!(e.advance(i64::MAX).iter().all(|d| d.rule_id != "few"));
}

#[test]
fn a_correlation_completing_across_snapshot_and_restore_fires_once() {
    let evs = failures("web", 10, T0, 0);
    let mut before = engine(RULES);
    assert!(brute(&feed_no_advance(&mut before, &evs[..6])).is_empty());
    let text = serde_json::to_string(&before.snapshot()).expect("serialize");
    let snap: logward_rules::Snapshot = serde_json::from_str(&text).expect("deserialize");
    let mut after = engine(RULES);
    let rep = after.restore(&snap);
    assert!(rep.restored.contains(&"brute".to_owned()), "{rep:?}");
    assert!(rep.dropped.is_empty(), "{rep:?}");
    // The server may replay events it is not sure were evaluated: they are duplicates.
    let got = brute(&feed_no_advance(&mut after, &evs));
    assert_eq!(got, [(0..10).collect::<Vec<u64>>()]);
    // A snapshot taken after it fired never fires it again.
    let snap = after.snapshot();
    let mut again = engine(RULES);
    again.restore(&snap);
    assert!(brute(&feed(&mut again, &evs)).is_empty());
    // A changed correlation drops its state, with a note.
    let mut changed = engine(&RULES.replace("gte: 10", "gte: 11"));
    let rep = changed.restore(&snap);
    assert!(
        rep.dropped
            .iter()
            .any(|(id, why)| id == "brute" && why.contains("changed")),
        "{rep:?}"
    );
}

fn feed_no_advance(e: &mut Engine, evs: &[Ev]) -> Vec<Detection> {
    let mut out = Vec::new();
    for ev in evs {
        let v = json!({"host": ev.host, "action": ev.action, "user": "u"});
        let r = EventRef {
            index: ev.id,
            id: Some(format!("ev-{}", ev.id).into()),
        };
        out.extend(e.process_at(&OwnedEvent::from_json(&v), ev.ts, ev.arrival, &r));
    }
    out
}
