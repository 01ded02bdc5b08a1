//! Flood control, silences and routing through the real alerter with a recording channel
//! and an injected clock.

mod common;

use common::*;
use logward_alert::duration::HumanDuration;
use logward_alert::notification::Kind;
use logward_alert::silence::{MatchOp, Matcher, NewSilence};
use logward_alert::{Alerter, Level};
use time::Duration;

#[tokio::test]
async fn ten_thousand_detections_give_at_most_the_capped_notifications_with_exact_counts() {
    let dir = tempfile::tempdir().unwrap();
    let mut ch = channel("ops");
    ch.flood.group_wait = HumanDuration::secs(30);
    ch.flood.group_interval = HumanDuration::mins(1);
    ch.flood.realert = HumanDuration::mins(5);
    ch.flood.repeat_interval = HumanDuration::default();
    ch.flood.max_per_hour = 5;
    let (notifiers, recs) = recorders(&["ops"]);
    let alerter = Alerter::with_notifiers(config(vec![ch]), dir.path(), notifiers).unwrap();

    // 10,000 detections, one every 360 ms for an hour, then two quiet hours.
    let mut next = 0usize;
    for sec in 0..(3 * 3600) {
        let now = t0() + Duration::seconds(sec);
        let mut batch = Vec::new();
        while next < 10_000 && t0() + Duration::milliseconds(next as i64 * 360) <= now {
            batch.push(detection(
                "r1",
                "web1",
                t0() + Duration::milliseconds(next as i64 * 360),
                next,
            ));
            next += 1;
        }
        alerter.ingest(&batch, now).unwrap();
        alerter.tick(now).unwrap();
        alerter.deliver_due(now).await;
    }

    let sent = recs[0].sent.lock().unwrap().clone();
    let times: Vec<_> = sent.iter().map(|n| n.created_at).collect();
    for (i, t) in times.iter().enumerate() {
        let in_hour = times[i..]
            .iter()
            .filter(|u| **u < *t + Duration::HOUR)
            .count();
        assert!(
            in_hour <= 5,
            "more than 5 notifications in the hour from {t}: {times:?}"
        );
    }
    assert!(times.iter().filter(|t| **t < t0() + Duration::HOUR).count() <= 5);
    assert!(
        times[0] >= t0() + Duration::seconds(30),
        "group_wait not honoured"
    );
    for w in times.windows(2) {
        assert!(
            w[1] - w[0] >= Duration::minutes(5),
            "realert not honoured: {times:?}"
        );
    }
    let total: u64 = sent
        .iter()
        .flat_map(|n| &n.alerts)
        .map(|a| a.new_since_last)
        .sum();
    assert_eq!(
        total, 10_000,
        "every detection is counted in exactly one notification"
    );
    let last = sent.last().unwrap();
    assert_eq!(last.alerts[0].count, 10_000);
    assert!(
        sent.iter()
            .all(|n| n.kind == Kind::Firing && n.alerts.len() == 1)
    );

    let h = alerter.health();
    assert_eq!(
        (
            h.detections_total,
            h.alerts_opened_total,
            h.deduplicated_total
        ),
        (10_000, 1, 9_999)
    );
    let c = &h.channels[0];
    assert_eq!(c.flood.routed, 10_000);
    assert_eq!(c.flood.notifications, sent.len() as u64);
    assert_eq!(c.flood.folded, 10_000 - sent.len() as u64);
    assert!(c.flood.deferred_cap >= 1, "{:?}", c.flood);
    assert_eq!(c.delivered_total, sent.len() as u64);
    assert_eq!(alerter.alerts(&Default::default()).len(), 1);
}

#[tokio::test]
async fn grouping_routing_and_reminders() {
    let dir = tempfile::tempdir().unwrap();
    let mut all = channel("all");
    all.flood.group_by = vec![];
    all.flood.realert = HumanDuration::default();
    all.flood.repeat_interval = HumanDuration::hours(1);
    let mut crit = channel("crit");
    crit.min_level = Level::Critical;
    let mut no_web = channel("noweb");
    no_web.exclude_tags = vec!["attack.t1059".to_owned()];
    let (notifiers, recs) = recorders(&["all", "crit", "noweb"]);
    let alerter =
        Alerter::with_notifiers(config(vec![all, crit, no_web]), dir.path(), notifiers).unwrap();

    let ds: Vec<_> = (0..3)
        .map(|i| detection("r1", &format!("web{i}"), t0(), i))
        .collect();
    alerter.ingest(&ds, t0()).unwrap();
    for s in [10, 29, 30, 31] {
        alerter.tick(t0() + Duration::seconds(s)).unwrap();
    }
    alerter.deliver_due(t0() + Duration::seconds(31)).await;
    let sent = recs[0].sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 1, "one grouped notification after group_wait");
    assert_eq!(sent[0].alerts.len(), 3);
    assert!(recs[1].sent.lock().unwrap().is_empty(), "below min_level");
    assert!(recs[2].sent.lock().unwrap().is_empty(), "excluded tag");
    assert_eq!(alerter.health().channels[1].flood.routed, 0);

    // No news for an hour: a reminder of the open alerts; acknowledged ones are left out.
    let id = sent[0].alerts[0].id.clone();
    alerter
        .acknowledge(&id, t0() + Duration::minutes(10))
        .unwrap();
    alerter.tick(t0() + Duration::minutes(61)).unwrap();
    alerter.deliver_due(t0() + Duration::minutes(61)).await;
    let sent = recs[0].sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[1].kind, Kind::Reminder);
    assert_eq!(sent[1].alerts.len(), 2);
    assert!(
        sent[1]
            .alerts
            .iter()
            .all(|a| a.id != id && a.new_since_last == 0)
    );
}

#[tokio::test]
async fn silences_suppress_then_expire() {
    let dir = tempfile::tempdir().unwrap();
    let mut ch = channel("ops");
    ch.flood.group_wait = HumanDuration::default();
    ch.flood.group_by = vec!["rule".into(), "host".into()];
    let (notifiers, recs) = recorders(&["ops"]);
    let alerter = Alerter::with_notifiers(config(vec![ch]), dir.path(), notifiers).unwrap();
    let silence = alerter
        .create_silence(
            NewSilence {
                matchers: vec![
                    Matcher::new("host", MatchOp::Eq, "web1").unwrap(),
                    Matcher::new("container", MatchOp::Regex, "ngi.*").unwrap(),
                ],
                starts_at: None,
                ends_at: None,
                duration: Some(HumanDuration::mins(10)),
                comment: "maintenance".into(),
                created_by: Some("ops".into()),
            },
            t0(),
        )
        .unwrap();

    let now = t0() + Duration::minutes(1);
    alerter
        .ingest(
            &[
                detection("r1", "web1", now, 1),
                detection("r1", "web2", now, 2),
            ],
            now,
        )
        .unwrap();
    alerter.tick(now).unwrap();
    alerter.deliver_due(now).await;
    let hosts: Vec<String> = recs[0]
        .sent
        .lock()
        .unwrap()
        .iter()
        .map(|n| n.alerts[0].host.clone())
        .collect();
    assert_eq!(hosts, ["web2"]);
    assert_eq!(alerter.health().silenced_total, 1);
    assert_eq!(
        alerter.alerts(&Default::default()).len(),
        2,
        "silenced detections still make alerts"
    );

    // After expiry the same host notifies again.
    let later = t0() + Duration::minutes(11);
    alerter
        .ingest(&[detection("r2", "web1", later, 3)], later)
        .unwrap();
    alerter.tick(later).unwrap();
    alerter.deliver_due(later).await;
    assert_eq!(recs[0].sent.lock().unwrap().len(), 2);

    // Expiring early via the API path works too, and survives a restart.
    let s2 = alerter
        .create_silence(
            NewSilence {
                matchers: vec![Matcher::new("rule", MatchOp::Eq, "r3").unwrap()],
                starts_at: None,
                ends_at: Some(later + Duration::hours(1)),
                duration: None,
                comment: "noisy".into(),
                created_by: None,
            },
            later,
        )
        .unwrap();
    alerter
        .expire_silence(&s2.id, later + Duration::minutes(1))
        .unwrap();
    drop(alerter);
    let (notifiers, _) = recorders(&["ops"]);
    let mut ch = channel("ops");
    ch.flood.group_wait = HumanDuration::default();
    let again = Alerter::with_notifiers(config(vec![ch]), dir.path(), notifiers).unwrap();
    let list = again.silences();
    assert_eq!(list.len(), 2);
    assert!(list.iter().any(|s| s.id == silence.id));
    assert!(
        list.iter()
            .all(|s| s.ends_at <= later + Duration::minutes(1))
    );
}

#[tokio::test]
async fn a_failing_channel_is_down_in_health_and_metrics_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let mut ch = channel("ops");
    ch.flood.group_wait = HumanDuration::default();
    ch.retry.max_attempts = 2;
    let (notifiers, recs) = recorders(&["ops"]);
    let alerter = Alerter::with_notifiers(config(vec![ch]), dir.path(), notifiers).unwrap();
    *recs[0].fail.lock().unwrap() = true;
    alerter
        .ingest(&[detection("r1", "web1", t0(), 1)], t0())
        .unwrap();
    alerter.tick(t0()).unwrap();
    let r = alerter.deliver_due(t0()).await;
    assert_eq!((r.delivered, r.failed, r.dead), (0, 1, 0));
    let h = alerter.health();
    assert!(!h.all_up());
    assert_eq!(h.down(), ["ops"]);
    assert_eq!(h.channels[0].pending, 1);
    assert!(
        h.prometheus()
            .contains("logward_alert_channel_up{channel=\"ops\"} 0")
    );
    // The second failure is the last attempt: a dead letter.
    let r = alerter.deliver_due(t0() + Duration::hours(1)).await;
    assert_eq!(r.dead, 1);
    assert_eq!(alerter.dead_letters().len(), 1);
    assert!(
        alerter
            .health()
            .prometheus()
            .contains("logward_alert_channel_dead_letters_total{channel=\"ops\"} 1")
    );
    // Up again with the next success.
    *recs[0].fail.lock().unwrap() = false;
    alerter
        .ingest(
            &[detection("r2", "web1", t0(), 2)],
            t0() + Duration::hours(2),
        )
        .unwrap();
    alerter.tick(t0() + Duration::hours(2)).unwrap();
    alerter.deliver_due(t0() + Duration::hours(2)).await;
    assert!(alerter.health().all_up());
}
