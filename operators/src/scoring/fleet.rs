//! Fleet metrics over the latest prediction of every customer (§6), and the
//! alarms on them.
//!
//! [`Fleet`] holds each customer's latest prediction (its emission key,
//! `as_of` and what it contributes) and running totals: count, high-risk count, per-segment
//! counts and the sums of `churn_risk_14d` and `health_score`. An update
//! subtracts the customer's previous contribution and adds the new one, so a
//! snapshot is O(1) and no scan ever happens.
//!
//! The sums must not drift after millions of replacements, so they are kept
//! exactly: each value is rounded once to a multiple of 2^-64 (far below an
//! `f64`'s resolution for scores) and summed as an `i128`. Adding and later
//! subtracting the same value cancels exactly, so a snapshot depends only on
//! the set of latest predictions, never on the history that led to it: it is
//! bit-identical to a fleet built from those predictions alone.
//!
//! Like the prediction write (§6), an update never replaces a prediction made
//! from a later emission of the customer's stream ([`Prediction::emission`];
//! see [`pulse_schemas::order`]): one from an earlier emission is ignored
//! ([`Update::Stale`]), even with a larger `as_of` (a late event's prediction
//! that follows a timer's replaces it); an equal key replaces (a retry or a
//! re-score).

use std::collections::HashMap;

use pulse_schemas::prediction::HIGH_CHURN_RISK;
use pulse_schemas::{CustomerId, EmissionKey, Prediction, Segment};
use serde::Serialize;

use super::error::PolicyError;

/// The CloudWatch namespace of the fleet metrics.
pub const NAMESPACE: &str = "IOpsDashboard/Predictions";

/// 2^64: the fixed-point scale of the sums.
const SCALE: f64 = 18_446_744_073_709_551_616.0;
/// 2^30: larger values are refused, so that 2^31 customers cannot overflow a sum.
const LIMIT: f64 = 1_073_741_824.0;

/// `x` in units of 2^-64, rounded; `None` when not finite or not below [`LIMIT`].
fn fixed(x: f64) -> Option<i128> {
    // Scaling by a power of two is exact; the rounded value is an integer
    // below 2^94, which converts to i128 exactly.
    (x.abs() < LIMIT).then(|| (x * SCALE).round() as i128)
}

/// A prediction's `churn_risk_14d` and `health_score` in fixed point;
/// `None` when either is not a finite number below [`LIMIT`].
fn contribution(prediction: &Prediction) -> Option<(i128, i128)> {
    Some((fixed(prediction.scores.churn_risk_14d)?, fixed(prediction.scores.health_score)?))
}

/// What [`Fleet::update`] did with a prediction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Update {
    /// A customer not seen before.
    Added,
    /// Replaced the customer's prediction (of the same or an earlier emission).
    Replaced,
    /// Ignored: the stored prediction of the customer is of a later emission.
    Stale,
    /// Ignored: `churn_risk_14d` or `health_score` is not a finite number
    /// of magnitude below 2^30.
    Invalid,
}

/// What one customer's latest prediction contributes to the totals. Kept
/// by the fleet for [`Fleet::update`] (beside the prediction's emission
/// key), or by a caller beside its own state of the customer for
/// [`Fleet::update_in`] (one map of customers, not two, and no key of its
/// own: the caller orders the predictions).
#[derive(Clone, Debug)]
pub struct FleetEntry {
    as_of: i64,
    /// The scores as predicted, 8 bytes each where their fixed-point
    /// values take 16: [`fixed`] gives the same value again on removal.
    churn: f64,
    health: f64,
    high: bool,
    segment: Segment,
}

impl FleetEntry {
    /// `as_of` of the prediction counted.
    pub fn as_of(&self) -> i64 {
        self.as_of
    }
}

/// The sums over every customer's latest prediction.
#[derive(Debug, Default)]
struct Totals {
    customers: u64,
    high: u64,
    churn_sum: i128,
    health_sum: i128,
    /// Indexed by [`segment_index`].
    segments: [u64; 4],
}

/// The §6 fleet metrics, kept incrementally over the latest prediction of
/// every customer (see the [module docs](self)).
#[derive(Debug, Default)]
pub struct Fleet {
    /// The entries of [`Fleet::update`]'s customers (`None`: seen, but no
    /// valid prediction yet).
    latest: HashMap<CustomerId, Kept, ahash::RandomState>,
    totals: Totals,
}

/// A customer of [`Fleet::update`]: its entry, and the emission key of the
/// prediction counted (both `None`: seen, but no valid prediction yet).
#[derive(Debug, Default)]
struct Kept {
    emission: Option<EmissionKey>,
    entry: Option<FleetEntry>,
}

fn segment_index(segment: Segment) -> usize {
    match segment {
        Segment::Thriving => 0,
        Segment::Healthy => 1,
        Segment::AtRisk => 2,
        Segment::Churned => 3,
    }
}

impl Totals {
    /// Counts `prediction` instead of the entry in `slot` (whatever its
    /// emission: the caller orders them).
    fn apply(&mut self, slot: &mut Option<FleetEntry>, prediction: &Prediction) -> Update {
        let scores = &prediction.scores;
        let Some((churn, health)) = contribution(prediction) else {
            return Update::Invalid;
        };
        let new = FleetEntry {
            as_of: prediction.as_of,
            churn: scores.churn_risk_14d,
            health: scores.health_score,
            high: scores.churn_risk_14d > HIGH_CHURN_RISK,
            segment: prediction.segment,
        };
        let (high, segment) = (new.high, new.segment);
        let outcome = match slot {
            Some(old) => {
                let old = std::mem::replace(old, new);
                self.high -= u64::from(old.high);
                let valid = "an entry is stored only when both scores convert";
                self.churn_sum -= fixed(old.churn).expect(valid);
                self.health_sum -= fixed(old.health).expect(valid);
                self.segments[segment_index(old.segment)] -= 1;
                Update::Replaced
            }
            None => {
                *slot = Some(new);
                self.customers += 1;
                Update::Added
            }
        };
        self.high += u64::from(high);
        self.churn_sum += churn;
        self.health_sum += health;
        self.segments[segment_index(segment)] += 1;
        outcome
    }
}

impl Fleet {
    /// Applies a customer's prediction, unless it is of an earlier emission
    /// than the stored one.
    ///
    /// The segment counted is the prediction's `segment` field, the one
    /// written with the prediction item.
    pub fn update(&mut self, prediction: &Prediction) -> Update {
        let kept = match self.latest.get_mut(&prediction.customer_id) {
            Some(kept) => kept,
            None => self.latest.entry(prediction.customer_id.clone()).or_default(),
        };
        let emission = prediction.emission();
        if contribution(prediction).is_some() && kept.emission.as_ref().is_some_and(|k| emission < *k) {
            return Update::Stale;
        }
        let outcome = self.totals.apply(&mut kept.entry, prediction);
        if outcome != Update::Invalid {
            kept.emission = Some(emission);
        }
        outcome
    }

    /// [`Fleet::update`] on an entry the caller keeps for the customer
    /// (`None` before its first valid prediction). The caller passes each
    /// customer's predictions in the order of their emissions (none of an
    /// earlier emission than one it passed before; the scoring stage's
    /// queue scores a customer's vectors one after the other, in that
    /// order), so the entry needs no emission key of its own: a customer's
    /// state keeps one, or none, for its fleet entry, alert state and
    /// queue slot together. A fleet takes its customers either way, not both.
    pub fn update_in(&mut self, slot: &mut Option<FleetEntry>, prediction: &Prediction) -> Update {
        self.totals.apply(slot, prediction)
    }

    /// `as_of` of the customer's stored prediction ([`Fleet::update`]'s customers).
    pub fn as_of(&self, customer: &str) -> Option<i64> {
        self.latest.get(customer)?.entry.as_ref().map(FleetEntry::as_of)
    }

    /// Customers with a prediction.
    pub fn len(&self) -> usize {
        self.totals.customers as usize
    }

    /// Whether no customer has a prediction.
    pub fn is_empty(&self) -> bool {
        self.totals.customers == 0
    }

    /// The metrics now (O(1)).
    pub fn snapshot(&self) -> FleetMetrics {
        let t = &self.totals;
        let n = t.customers;
        let average = |sum: i128| if n == 0 { 0.0 } else { sum as f64 / SCALE / n as f64 };
        FleetMetrics {
            total_customers_processed: n,
            high_churn_risk_count: t.high,
            average_churn_risk_14d: average(t.churn_sum),
            average_health_score: average(t.health_sum),
            thriving_customers: t.segments[segment_index(Segment::Thriving)],
            healthy_customers: t.segments[segment_index(Segment::Healthy)],
            at_risk_customers: t.segments[segment_index(Segment::AtRisk)],
            churned_customers: t.segments[segment_index(Segment::Churned)],
        }
    }
}

/// The fleet metrics at one moment. Averages are 0 for an empty fleet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct FleetMetrics {
    /// Customers with a prediction.
    pub total_customers_processed: u64,
    /// Customers with `churn_risk_14d` > 0.7.
    pub high_churn_risk_count: u64,
    /// Mean `churn_risk_14d`.
    pub average_churn_risk_14d: f64,
    /// Mean `health_score`.
    pub average_health_score: f64,
    /// Customers in segment `thriving`.
    pub thriving_customers: u64,
    /// Customers in segment `healthy` (not a CloudWatch metric of §6).
    pub healthy_customers: u64,
    /// Customers in segment `at_risk`.
    pub at_risk_customers: u64,
    /// Customers in segment `churned`.
    pub churned_customers: u64,
}

/// One CloudWatch datum of the fleet metrics.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Metric {
    /// The metric name in [`NAMESPACE`].
    pub name: &'static str,
    /// Its value.
    pub value: f64,
    /// The CloudWatch unit: `"Count"` or `"None"`.
    pub unit: &'static str,
}

/// The names of the metrics pulse publishes in [`NAMESPACE`]: one
/// definition, for the code that publishes them and every reader (the
/// deployment's alarms and dashboard, the tests).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FleetMetric {
    /// Customers with a prediction (§6).
    TotalCustomersProcessed,
    /// Customers whose `churn_risk_14d` > 0.7 (§6).
    HighChurnRiskCount,
    /// The mean `churn_risk_14d` (§6).
    AverageChurnRisk14d,
    /// The mean `health_score` (§6).
    AverageHealthScore,
    /// Customers in the `thriving` segment (§6).
    ThrivingCustomers,
    /// Customers in the `at_risk` segment (§6).
    AtRiskCustomers,
    /// Customers in the `churned` segment (§6).
    ChurnedCustomers,
    /// Failed model calls since the previous snapshot (not a §6 metric; its
    /// alarm is §6's).
    PredictionFailures,
}

impl FleetMetric {
    /// The seven metrics of §6, in the order of
    /// [`FleetMetrics::cloudwatch_metrics`].
    pub const SECTION_6: [FleetMetric; 7] = [
        FleetMetric::TotalCustomersProcessed,
        FleetMetric::HighChurnRiskCount,
        FleetMetric::AverageChurnRisk14d,
        FleetMetric::AverageHealthScore,
        FleetMetric::ThrivingCustomers,
        FleetMetric::AtRiskCustomers,
        FleetMetric::ChurnedCustomers,
    ];

    /// The CloudWatch name.
    pub const fn name(self) -> &'static str {
        match self {
            FleetMetric::TotalCustomersProcessed => "TotalCustomersProcessed",
            FleetMetric::HighChurnRiskCount => "HighChurnRiskCount",
            FleetMetric::AverageChurnRisk14d => "AverageChurnRisk14d",
            FleetMetric::AverageHealthScore => "AverageHealthScore",
            FleetMetric::ThrivingCustomers => "ThrivingCustomers",
            FleetMetric::AtRiskCustomers => "AtRiskCustomers",
            FleetMetric::ChurnedCustomers => "ChurnedCustomers",
            FleetMetric::PredictionFailures => "PredictionFailures",
        }
    }

    /// The CloudWatch unit: `Count` for counts, `None` for means.
    pub const fn unit(self) -> &'static str {
        match self {
            FleetMetric::AverageChurnRisk14d | FleetMetric::AverageHealthScore => "None",
            _ => "Count",
        }
    }
}

impl FleetMetrics {
    /// The §6 metrics under their CloudWatch names, in [`NAMESPACE`].
    pub fn cloudwatch_metrics(&self) -> [Metric; 7] {
        FleetMetric::SECTION_6.map(|m| {
            let value = match m {
                FleetMetric::TotalCustomersProcessed => self.total_customers_processed as f64,
                FleetMetric::HighChurnRiskCount => self.high_churn_risk_count as f64,
                FleetMetric::AverageChurnRisk14d => self.average_churn_risk_14d,
                FleetMetric::AverageHealthScore => self.average_health_score,
                FleetMetric::ThrivingCustomers => self.thriving_customers as f64,
                FleetMetric::AtRiskCustomers => self.at_risk_customers as f64,
                FleetMetric::ChurnedCustomers => self.churned_customers as f64,
                FleetMetric::PredictionFailures => unreachable!("not a §6 metric"),
            };
            Metric { name: m.name(), value, unit: m.unit() }
        })
    }
}

/// The current system's alarm thresholds (§6); the defaults are its values.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Alarms {
    /// Alarm when at least this many customers have `churn_risk_14d` > 0.7.
    pub high_churn_risk_count_at_least: u64,
    /// Alarm when the average health score is below this (never for an empty fleet).
    pub average_health_below: f64,
    /// Alarm when more than this many customers are at risk.
    pub at_risk_more_than: u64,
    /// Alarm when more than this many predictions failed in the period.
    pub prediction_failures_more_than: u64,
}

impl Default for Alarms {
    fn default() -> Self {
        Alarms {
            high_churn_risk_count_at_least: 10,
            average_health_below: 60.0,
            at_risk_more_than: 50,
            prediction_failures_more_than: 0,
        }
    }
}

/// An alarm in breach.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Alarm {
    /// The alarm.
    pub name: &'static str,
    /// The metric it watches.
    pub metric: &'static str,
    /// The metric's value.
    pub value: f64,
    /// The threshold it crossed.
    pub threshold: f64,
    /// For people.
    pub message: String,
}

impl Alarms {
    /// Checks that the thresholds can work; the error names the field.
    pub fn validate(&self) -> Result<(), PolicyError> {
        if !self.average_health_below.is_finite() {
            return Err(PolicyError::new("average_health_below", "must be a finite number"));
        }
        Ok(())
    }

    /// The alarms in breach for a snapshot and the number of failed
    /// predictions in the period, in a fixed order.
    pub fn evaluate(&self, metrics: &FleetMetrics, prediction_failures: u64) -> Vec<Alarm> {
        let mut alarms = Vec::new();
        let high = metrics.high_churn_risk_count;
        if high >= self.high_churn_risk_count_at_least {
            alarms.push(Alarm {
                name: "HighChurnRiskCustomers",
                metric: "HighChurnRiskCount",
                value: high as f64,
                threshold: self.high_churn_risk_count_at_least as f64,
                message: format!(
                    "{high} customers have churn_risk_14d > {HIGH_CHURN_RISK} (alarm at {} or more)",
                    self.high_churn_risk_count_at_least
                ),
            });
        }
        let health = metrics.average_health_score;
        if metrics.total_customers_processed > 0 && health < self.average_health_below {
            alarms.push(Alarm {
                name: "LowAverageHealthScore",
                metric: "AverageHealthScore",
                value: health,
                threshold: self.average_health_below,
                message: format!("average health score {health:.2} is below {}", self.average_health_below),
            });
        }
        let at_risk = metrics.at_risk_customers;
        if at_risk > self.at_risk_more_than {
            alarms.push(Alarm {
                name: "ManyAtRiskCustomers",
                metric: "AtRiskCustomers",
                value: at_risk as f64,
                threshold: self.at_risk_more_than as f64,
                message: format!("{at_risk} customers are at risk (alarm above {})", self.at_risk_more_than),
            });
        }
        if prediction_failures > self.prediction_failures_more_than {
            alarms.push(Alarm {
                name: "PredictionFailures",
                metric: "PredictionFailures",
                value: prediction_failures as f64,
                threshold: self.prediction_failures_more_than as f64,
                message: format!(
                    "{prediction_failures} predictions failed in the period (alarm above {})",
                    self.prediction_failures_more_than
                ),
            });
        }
        alarms
    }
}

#[cfg(test)]
mod tests {
    use pulse_schemas::prediction::Scores;

    use super::*;

    fn prediction(id: &str, as_of: i64, churn: f64, health: f64) -> Prediction {
        Prediction {
            customer_id: CustomerId::new(id),
            as_of,
            scores: Scores {
                first_session_success: 0.5,
                session_velocity: 1.0,
                churn_risk_14d: churn,
                churn_risk_30d: churn,
                health_score: health,
            },
            segment: Segment::of(churn, churn, health),
            model: "m".into(),
            model_version: "1".into(),
            served_by: "embedded".into(),
            features_schema: "features-v1".into(),
            reasons: Default::default(),
            emission: None,
            new_customer: false,
            no_session: false,
            met_in_burn_in: false,
        }
    }

    #[test]
    fn empty_fleet_has_zero_averages_and_no_health_alarm() {
        let fleet = Fleet::default();
        assert_eq!(fleet.snapshot(), FleetMetrics::default());
        assert_eq!(Alarms::default().evaluate(&fleet.snapshot(), 0), []);
    }

    #[test]
    fn replaces_by_as_of_and_adjusts_every_total() {
        let mut fleet = Fleet::default();
        assert_eq!(fleet.update(&prediction("a", 10, 0.8, 30.0)), Update::Added);
        assert_eq!(fleet.update(&prediction("b", 10, 0.1, 90.0)), Update::Added);
        let m = fleet.snapshot();
        assert_eq!((m.total_customers_processed, m.high_churn_risk_count), (2, 1));
        assert_eq!((m.churned_customers, m.thriving_customers), (1, 1));
        assert_eq!(m.average_churn_risk_14d, (0.8 + 0.1) / 2.0);
        assert_eq!(m.average_health_score, 60.0);

        assert_eq!(fleet.update(&prediction("a", 9, 0.0, 100.0)), Update::Stale);
        assert_eq!(fleet.update(&prediction("a", 10, 0.5, 70.0)), Update::Replaced);
        assert_eq!(fleet.as_of("a"), Some(10));
        let m = fleet.snapshot();
        assert_eq!((m.total_customers_processed, m.high_churn_risk_count), (2, 0));
        assert_eq!((m.churned_customers, m.at_risk_customers, m.thriving_customers), (0, 1, 1));
        assert_eq!(m.average_health_score, 80.0);
    }

    #[test]
    fn a_late_event_after_a_timer_replaces_it_and_a_replayed_timer_does_not() {
        use pulse_schemas::order::Position;
        let at = |p: Prediction, key: EmissionKey| Prediction { emission: Some(key), ..p };
        let timer = at(prediction("a", 2_000, 0.3, 70.0), EmissionKey::timer(2_000));
        let late = at(prediction("a", 1_000, 0.9, 20.0), EmissionKey::record(2_500, Position::Line(7)));
        let mut fleet = Fleet::default();
        assert_eq!(fleet.update(&timer), Update::Added);
        assert_eq!(fleet.update(&late), Update::Replaced, "a later emission, whatever its as_of");
        assert_eq!(fleet.update(&timer), Update::Stale, "a replayed timer prediction");
        assert_eq!(fleet.as_of("a"), Some(1_000));
        assert_eq!(fleet.snapshot().high_churn_risk_count, 1);
    }

    #[test]
    fn invalid_scores_are_refused() {
        let mut fleet = Fleet::default();
        assert_eq!(fleet.update(&prediction("a", 1, f64::NAN, 50.0)), Update::Invalid);
        assert_eq!(fleet.update(&prediction("a", 1, 0.5, f64::INFINITY)), Update::Invalid);
        assert_eq!(fleet.update(&prediction("a", 1, 0.5, 1e12)), Update::Invalid);
        assert!(fleet.is_empty());
    }

    #[test]
    fn entries_kept_by_the_caller_count_as_the_fleets_own() {
        let (mut keyed, mut kept) = (Fleet::default(), Fleet::default());
        // The caller's own state of each customer: the emission key of the
        // latest prediction it counted, and the fleet entry.
        let mut entries: HashMap<String, (Option<EmissionKey>, Option<FleetEntry>)> = HashMap::new();
        let (mut stale, mut invalid) = (0, 0);
        for i in 0..2_000i64 {
            // Out of order, invalid scores, replacements: every outcome.
            let as_of = (i * 7) % 50;
            let x = if i % 97 == 0 { f64::NAN } else { ((i * 7919) % 1000) as f64 / 997.0 };
            let p = prediction(&format!("c{}", i % 37), as_of, x, x * 100.0);
            let (key, slot) = entries.entry(p.customer_id.to_string()).or_default();
            let outcome = keyed.update(&p);
            // The caller orders the predictions: an older one is not passed.
            if key.as_ref().is_some_and(|k| p.emission() < *k) && !x.is_nan() {
                assert_eq!(outcome, Update::Stale, "prediction {i}");
                stale += 1;
                continue;
            }
            assert_eq!(outcome, kept.update_in(slot, &p), "prediction {i}");
            if outcome == Update::Invalid {
                invalid += 1;
            } else {
                *key = Some(p.emission());
            }
        }
        assert!(stale > 100 && invalid > 10, "{stale} stale, {invalid} invalid: every outcome exercised");
        assert_eq!(keyed.snapshot(), kept.snapshot());
        assert_eq!(keyed.len(), kept.len());
        assert_eq!(keyed.as_of("c3"), entries["c3"].1.as_ref().map(FleetEntry::as_of));
    }

    #[test]
    fn sums_do_not_drift_over_many_replacements() {
        let mut fleet = Fleet::default();
        let mut fresh = Fleet::default();
        for i in 0..200_000i64 {
            let x = ((i * 7919) % 1000) as f64 / 997.0;
            fleet.update(&prediction(&format!("c{}", i % 100), i, x, x * 100.0));
        }
        for i in 199_900..200_000i64 {
            let x = ((i * 7919) % 1000) as f64 / 997.0;
            fresh.update(&prediction(&format!("c{}", i % 100), i, x, x * 100.0));
        }
        assert_eq!(fleet.snapshot(), fresh.snapshot());
    }

    #[test]
    fn cloudwatch_metrics_carry_the_section_6_names() {
        let mut fleet = Fleet::default();
        fleet.update(&prediction("a", 1, 0.8, 30.0));
        let metrics = fleet.snapshot().cloudwatch_metrics();
        let names: Vec<_> = metrics.iter().map(|m| m.name).collect();
        assert_eq!(
            names,
            [
                "TotalCustomersProcessed",
                "HighChurnRiskCount",
                "AverageChurnRisk14d",
                "AverageHealthScore",
                "ThrivingCustomers",
                "AtRiskCustomers",
                "ChurnedCustomers"
            ]
        );
        assert_eq!(metrics[3], Metric { name: "AverageHealthScore", value: 30.0, unit: "None" });
        assert_eq!(metrics[6].value, 1.0);
        assert_eq!(NAMESPACE, "IOpsDashboard/Predictions");
    }

    #[test]
    fn alarms_fire_at_the_current_thresholds() {
        let alarms = Alarms::default();
        let names =
            |m: &FleetMetrics, failures| alarms.evaluate(m, failures).iter().map(|a| a.name).collect::<Vec<_>>();
        let calm = FleetMetrics {
            total_customers_processed: 100,
            high_churn_risk_count: 9,
            average_health_score: 60.0,
            at_risk_customers: 50,
            ..FleetMetrics::default()
        };
        assert_eq!(names(&calm, 0), Vec::<&str>::new());
        let stormy =
            FleetMetrics { high_churn_risk_count: 10, average_health_score: 59.9, at_risk_customers: 51, ..calm };
        assert_eq!(
            names(&stormy, 1),
            ["HighChurnRiskCustomers", "LowAverageHealthScore", "ManyAtRiskCustomers", "PredictionFailures"]
        );
        let alarm = &alarms.evaluate(&stormy, 0)[0];
        assert_eq!((alarm.value, alarm.threshold), (10.0, 10.0));
        assert_eq!(alarm.message, "10 customers have churn_risk_14d > 0.7 (alarm at 10 or more)");
        assert_eq!(
            Alarms { average_health_below: f64::NAN, ..alarms }.validate().unwrap_err().field,
            "average_health_below"
        );
    }
}
