//! Property tests of the scoring side against naive recomputations.
//!
//! - Queue: random offers (few customers, `as_of` that may repeat or go back,
//!   features from a small pool so the change gate fires, `0.0` vs `-0.0`),
//!   clock steps, batches taken by `take_ready`/`take_all`, and several
//!   batches in flight completed in any order, each row scored or failed and
//!   requeued. Every batch has at most `max_rows` rows and one per customer,
//!   no customer is in two batches in flight, the counters always balance,
//!   and after a final drain every customer's written prediction (as the
//!   sink keeps it: the largest `as_of`, ties to the later write) carries the
//!   features of the customer's newest vector offered.
//! - Fleet: after every update, the snapshot equals a recomputation over the
//!   latest prediction per customer (counts exactly, averages to 1e-12), and
//!   at the end it is bit-identical to a fleet built from those predictions
//!   alone, in another order.
//! - Alerts: alerts fire exactly on the upward crossings allowed by the
//!   re-arm rule, and a restart with the exported flags (replaying older
//!   predictions) fires exactly the same alerts.
//!
//! 256 cases each by default; set `PROPTEST_CASES` for more.

use std::collections::{BTreeMap, HashMap, HashSet};

use proptest::prelude::*;
use pulse_operators::scoring::{AlertPolicy, Alerts, BatchPolicy, Fleet, Offer, ScoreQueue, Update};
use pulse_schemas::prediction::{Scores, HIGH_CHURN_RISK};
use pulse_schemas::{CustomerId, EmissionKey, FeatureVector, Features, Prediction, Segment, Source, Trigger, SCHEMA};

const CUSTOMERS: [&str; 5] = ["a", "b", "c", "d", "e"];

// ---------------------------------------------------------------- queue

#[derive(Clone, Debug)]
enum QueueOp {
    /// Offer a vector of customer `customer`, `as_of` moved by `step` from its last offer.
    Offer {
        customer: usize,
        step: i64,
        features: usize,
    },
    /// Move the clock.
    Advance(i64),
    TakeReady,
    TakeAll,
    /// Complete one batch in flight: rows whose bit in `fail` is set failed.
    Complete {
        which: usize,
        fail: u64,
    },
}

fn queue_op() -> impl Strategy<Value = QueueOp> {
    prop_oneof![
        6 => (0..CUSTOMERS.len(), -2i64..=3, 0..4usize)
            .prop_map(|(customer, step, features)| QueueOp::Offer { customer, step, features }),
        2 => (0i64..300).prop_map(QueueOp::Advance),
        3 => Just(QueueOp::TakeReady),
        1 => Just(QueueOp::TakeAll),
        3 => (any::<usize>(), prop_oneof![Just(0u64), Just(u64::MAX), any::<u64>()])
            .prop_map(|(which, fail)| QueueOp::Complete { which, fail }),
    ]
}

/// Four feature pools; pool 3 differs from pool 0 only in the sign of zero.
fn features(pool: usize) -> Features {
    match pool {
        0 => [0.0; 46],
        1 => [1.0; 46],
        2 => std::array::from_fn(|i| i as f64 / 7.0),
        _ => [-0.0; 46],
    }
}

fn same_bits(a: &Features, b: &Features) -> bool {
    a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

/// What the prediction table keeps per customer: the largest `as_of`, ties to the later write.
#[derive(Default)]
struct Sink(HashMap<CustomerId, (i64, Features)>);

impl Sink {
    fn write(&mut self, v: &FeatureVector) {
        let entry = self.0.entry(v.customer_id.clone()).or_insert((v.as_of, v.features));
        if v.as_of >= entry.0 {
            *entry = (v.as_of, v.features);
        }
    }
}

struct Driver {
    queue: ScoreQueue,
    in_flight: Vec<Vec<FeatureVector>>,
    sink: Sink,
}

impl Driver {
    /// Checks a batch taken and puts it in flight.
    fn took(&mut self, batch: Vec<FeatureVector>, max_rows: usize) -> Result<(), TestCaseError> {
        prop_assert!(batch.len() <= max_rows, "batch of {} rows", batch.len());
        let mut seen = HashSet::new();
        for v in &batch {
            prop_assert!(seen.insert(v.customer_id.clone()), "two vectors of {} in a batch", v.customer_id);
            for other in &self.in_flight {
                prop_assert!(
                    other.iter().all(|o| o.customer_id != v.customer_id),
                    "{} in two batches in flight",
                    v.customer_id
                );
            }
        }
        if !batch.is_empty() {
            self.in_flight.push(batch);
        }
        Ok(())
    }

    fn complete(&mut self, which: usize, fail: u64, now: i64) {
        if self.in_flight.is_empty() {
            return;
        }
        let batch = self.in_flight.remove(which % self.in_flight.len());
        let (failed, scored): (Vec<_>, Vec<_>) =
            batch.into_iter().enumerate().partition(|(i, _)| (fail >> (i % 64)) & 1 == 1);
        let scored: Vec<_> = scored.into_iter().map(|(_, v)| v).collect();
        for v in &scored {
            self.sink.write(v);
        }
        self.queue.mark_scored(&scored);
        self.queue.requeue(failed.into_iter().map(|(_, v)| v).collect(), now);
    }
}

proptest! {
    #[test]
    fn queue_scores_every_customers_newest_vector(
        max_rows in 1usize..5,
        max_linger_ms in 0i64..200,
        ops in prop::collection::vec(queue_op(), 0..200),
    ) {
        let policy = BatchPolicy { max_rows, max_linger_ms, max_pending: 64 };
        let mut d = Driver { queue: ScoreQueue::new(policy).unwrap(), in_flight: Vec::new(), sink: Sink::default() };
        let mut now = 0i64;
        let mut last_as_of = [100i64; CUSTOMERS.len()];
        // The newest vector offered per customer: largest as_of, ties to the later offer.
        let mut truth: BTreeMap<usize, (i64, Features)> = BTreeMap::new();

        for op in ops {
            match op {
                QueueOp::Offer { customer, step, features: pool } => {
                    last_as_of[customer] += step;
                    let as_of = last_as_of[customer];
                    let v = FeatureVector {
                        customer_id: CustomerId::new(CUSTOMERS[customer]),
                        as_of,
                        trigger: Trigger::Event,
                        source: Source::default(),
                        schema: SCHEMA.into(),
                        features: features(pool),
                        emission: None,
                    };
                    let t = truth.entry(customer).or_insert((as_of, v.features));
                    if as_of >= t.0 {
                        *t = (as_of, v.features);
                    }
                    let outcome = d.queue.offer(v, now);
                    if outcome == Offer::Unchanged {
                        let written = &d.sink.0[CUSTOMERS[customer]];
                        prop_assert!(same_bits(&written.1, &features(pool)), "gated a change");
                    }
                }
                QueueOp::Advance(ms) => now += ms,
                QueueOp::TakeReady => match d.queue.take_ready(now) {
                    Some(batch) => {
                        prop_assert!(!batch.is_empty());
                        d.took(batch, max_rows)?;
                    }
                    None => prop_assert!(d.queue.next_deadline().is_none_or(|t| t > now), "due but not taken"),
                },
                QueueOp::TakeAll => {
                    let batch = d.queue.take_all();
                    d.took(batch, usize::MAX)?;
                }
                QueueOp::Complete { which, fail } => d.complete(which, fail, now),
            }
            let stats = d.queue.stats();
            prop_assert!(stats.balanced(d.queue.pending()), "{stats:?} with {} pending", d.queue.pending());
            prop_assert_eq!(d.queue.in_flight(), d.in_flight.iter().map(|b| b.len() as u64).sum::<u64>());
        }

        // Drain: report everything in flight as scored, take what is due, repeat.
        loop {
            while !d.in_flight.is_empty() {
                d.complete(0, 0, now);
            }
            match d.queue.next_deadline() {
                Some(deadline) => {
                    now = now.max(deadline);
                    let batch = d.queue.take_ready(now);
                    prop_assert!(batch.is_some(), "nothing taken at the deadline");
                    d.took(batch.unwrap_or_default(), max_rows)?;
                }
                None => break,
            }
        }
        prop_assert_eq!(d.queue.pending(), 0);
        prop_assert_eq!(d.queue.in_flight(), 0);
        prop_assert!(d.queue.stats().balanced(0));
        for (customer, (as_of, newest)) in truth {
            let written = d.sink.0.get(CUSTOMERS[customer]);
            prop_assert!(written.is_some(), "{} never scored", CUSTOMERS[customer]);
            let (written_as_of, written) = written.unwrap();
            prop_assert!(*written_as_of <= as_of);
            prop_assert!(same_bits(written, &newest), "{}: newest vector not scored", CUSTOMERS[customer]);
        }
    }
}

// ---------------------------------------------------------------- fleet

fn churn() -> impl Strategy<Value = f64> {
    prop_oneof![
        prop::sample::select(vec![0.0, 0.1, 0.2, 0.4, 0.400_000_01, 0.6, 0.7, 0.700_000_01, 0.9, 1.0]),
        0.0..=1.0f64,
    ]
}

fn health() -> impl Strategy<Value = f64> {
    prop_oneof![prop::sample::select(vec![0.0, 39.9, 40.0, 59.99, 60.0, 80.0, 80.01, 100.0]), 0.0..=100.0f64]
}

fn prediction(customer: &str, as_of: i64, churn_14d: f64, churn_30d: f64, health: f64) -> Prediction {
    Prediction {
        customer_id: CustomerId::new(customer),
        as_of,
        scores: Scores {
            first_session_success: 0.5,
            session_velocity: 1.0,
            churn_risk_14d: churn_14d,
            churn_risk_30d: churn_30d,
            health_score: health,
        },
        segment: Segment::of(churn_14d, churn_30d, health),
        model: "m".into(),
        model_version: "1".into(),
        served_by: "embedded".into(),
        features_schema: SCHEMA.into(),
        reasons: Default::default(),
        emission: None,
        new_customer: false,
        no_session: false,
        met_in_burn_in: false,
    }
}

fn fleet_update() -> impl Strategy<Value = Prediction> {
    (0..CUSTOMERS.len(), 0i64..6, churn(), churn(), health(), 0..40u8).prop_map(|(c, as_of, c14, c30, h, bad)| {
        let c14 = if bad == 0 { f64::NAN } else { c14 };
        prediction(CUSTOMERS[c], as_of, c14, c30, h)
    })
}

proptest! {
    #[test]
    fn fleet_equals_a_recomputation_over_the_latest_predictions(
        updates in prop::collection::vec(fleet_update(), 0..120),
    ) {
        let mut fleet = Fleet::default();
        let mut latest: BTreeMap<CustomerId, Prediction> = BTreeMap::new();
        for p in &updates {
            let expected = if !p.scores.churn_risk_14d.is_finite() {
                Update::Invalid
            } else {
                match latest.get(&p.customer_id) {
                    None => Update::Added,
                    Some(old) if old.as_of > p.as_of => Update::Stale,
                    Some(_) => Update::Replaced,
                }
            };
            prop_assert_eq!(fleet.update(p), expected);
            if matches!(expected, Update::Added | Update::Replaced) {
                latest.insert(p.customer_id.clone(), p.clone());
            }

            let m = fleet.snapshot();
            let n = latest.len();
            let count = |f: &dyn Fn(&Prediction) -> bool| latest.values().filter(|p| f(p)).count() as u64;
            prop_assert_eq!(m.total_customers_processed, n as u64);
            prop_assert_eq!(m.high_churn_risk_count, count(&|p| p.scores.churn_risk_14d > HIGH_CHURN_RISK));
            prop_assert_eq!(m.thriving_customers, count(&|p| p.segment == Segment::Thriving));
            prop_assert_eq!(m.healthy_customers, count(&|p| p.segment == Segment::Healthy));
            prop_assert_eq!(m.at_risk_customers, count(&|p| p.segment == Segment::AtRisk));
            prop_assert_eq!(m.churned_customers, count(&|p| p.segment == Segment::Churned));
            let mean = |f: fn(&Prediction) -> f64| {
                if n == 0 { 0.0 } else { latest.values().map(f).sum::<f64>() / n as f64 }
            };
            let churn_mean = mean(|p| p.scores.churn_risk_14d);
            let health_mean = mean(|p| p.scores.health_score);
            prop_assert!((m.average_churn_risk_14d - churn_mean).abs() <= 1e-12, "{} vs {churn_mean}", m.average_churn_risk_14d);
            prop_assert!((m.average_health_score - health_mean).abs() <= 1e-10, "{} vs {health_mean}", m.average_health_score);
        }

        let mut fresh = Fleet::default();
        for p in latest.values().rev() {
            fresh.update(p);
        }
        prop_assert_eq!(fresh.snapshot(), fleet.snapshot(), "history-dependent sums");
    }
}

// ---------------------------------------------------------------- alerts

fn alert_op() -> impl Strategy<Value = (usize, i64, f64)> {
    (0..3usize, -1i64..=2, prop::sample::select(vec![0.1, 0.3, 0.49, 0.5, 0.51, 0.59, 0.69, 0.7, 0.71, 0.9]))
}

proptest! {
    #[test]
    fn alerts_fire_exactly_on_rises_and_survive_a_restart(
        rearm in prop::sample::select(vec![0.3, 0.5, 0.6]),
        ops in prop::collection::vec(alert_op(), 0..80),
        split in any::<prop::sample::Index>(),
    ) {
        let mut last = [0i64; 3];
        let predictions: Vec<Prediction> = ops
            .iter()
            .map(|&(c, step, risk)| {
                last[c] += step;
                prediction(CUSTOMERS[c], last[c], risk, 0.5, 50.0)
            })
            .collect();

        // Reference: per customer, the predictions taken (as_of never decreasing);
        // the first is a baseline that never alerts (and counts as an alert
        // when above 0.7: the customer starts disarmed); after it, an alert
        // at a taken prediction above 0.7 when there was no alert before, or
        // a risk below the re-arm level since the last alert.
        let mut expected = Vec::new();
        let mut expected_previous = Vec::new();
        let mut taken: HashMap<&str, Vec<(i64, f64)>> = HashMap::new();
        let mut last_alert: HashMap<&str, usize> = HashMap::new();
        for (i, p) in predictions.iter().enumerate() {
            let seen = taken.entry(p.customer_id.as_str()).or_default();
            if seen.last().is_some_and(|&(t, _)| p.as_of < t) {
                continue;
            }
            let risk = p.scores.churn_risk_14d;
            seen.push((p.as_of, risk));
            let k = seen.len() - 1;
            if k == 0 {
                if risk > HIGH_CHURN_RISK {
                    last_alert.insert(p.customer_id.as_str(), 0);
                }
                continue;
            }
            let rearmed = match last_alert.get(p.customer_id.as_str()) {
                None => true,
                Some(&a) => seen[a + 1..k].iter().any(|&(_, r)| r < rearm),
            };
            if risk > HIGH_CHURN_RISK && rearmed {
                expected.push(i);
                expected_previous.push(k.checked_sub(1).map(|j| seen[j].1));
                last_alert.insert(p.customer_id.as_str(), k);
            }
        }

        let policy = AlertPolicy { rearm_below: rearm };
        let mut alerts = Alerts::new(policy).unwrap();
        let mut fired = Vec::new();
        let mut previous = Vec::new();
        for (i, p) in predictions.iter().enumerate() {
            if let Some(alert) = alerts.observe(p) {
                prop_assert_eq!(alert.as_of, p.as_of);
                fired.push(i);
                previous.push(alert.previous_churn_risk_14d);
            }
        }
        prop_assert_eq!(&fired, &expected);
        prop_assert_eq!(previous, expected_previous);

        // Restart after `k` predictions, with the flags stored per customer.
        let k = split.index(predictions.len() + 1);
        let mut before = Alerts::new(policy).unwrap();
        let mut stored: BTreeMap<CustomerId, i64> = BTreeMap::new();
        let mut refired: Vec<usize> = Vec::new();
        for (i, p) in predictions[..k].iter().enumerate() {
            if before.observe(p).is_some() {
                refired.push(i);
            }
            let t = stored.entry(p.customer_id.clone()).or_insert(p.as_of);
            *t = (*t).max(p.as_of);
        }
        let mut after = Alerts::new(policy).unwrap();
        for (customer, &as_of) in &stored {
            after.restore(customer.clone(), before.armed(customer.as_str()), false, EmissionKey::at(as_of));
        }
        for p in &predictions[..k] {
            if p.as_of < stored[&p.customer_id] {
                prop_assert!(after.observe(p).is_none(), "a replayed older prediction alerted");
            }
        }
        for customer in stored.keys() {
            prop_assert_eq!(after.armed(customer.as_str()), before.armed(customer.as_str()));
        }
        for (i, p) in predictions.iter().enumerate().skip(k) {
            if after.observe(p).is_some() {
                refired.push(i);
            }
        }
        prop_assert_eq!(refired, fired);
    }
}
