//! One alert per rise into high churn risk (§6), with hysteresis.
//!
//! Each customer is *armed* or *disarmed*. An armed customer whose
//! `churn_risk_14d` is above 0.7 raises an [`Alert`] and is disarmed; it is
//! re-armed only when its risk falls below the re-arm level (default 0.5). So
//! a risk that hovers around 0.7 (0.71, 0.69, 0.72, ...) alerts once, not on
//! every crossing.
//!
//! A customer's first prediction is a baseline, not a rise: it alerts
//! nothing, and leaves the customer armed if its risk is at or below 0.7,
//! disarmed (until it falls below the re-arm level) if it is already above.
//! So a replay or a process that meets customers mid-life, without their
//! history, does not alert on every one already at risk.
//!
//! A new customer's vector (less than a week of history, sessions or not:
//! [`pulse_schemas::features::is_new_customer`], [`Prediction::new_customer`])
//! alerts nothing and is no baseline either: the customer stays armed, and
//! its first prediction past its first week is judged as any armed
//! customer's, alerting when above 0.7 ("churn_risk_14d is 0.855, above
//! 0.7, for a new customer (its first prediction after a week of
//! history)"): a signup that booked nothing in a week, or a first week gone
//! badly. A prediction of a new customer's vector never alerts, even after
//! others that were not (a late event's vector, as of a time in the first
//! week, after a timer's past it).
//!
//! Why a week, sessions or not. A new customer's first vectors hold the
//! contract's "nothing on record" defaults (no session in 365 days...),
//! which score about 0.95 whatever the customer goes on to do: alerting on
//! them made 87% of a replay's alerts, most to customers healthy a day
//! later; taking them as the baseline left a customer who never fell below
//! the re-arm level without an alert ever (every signup that never
//! booked). The rule before this one judged a customer's first prediction
//! with a session on record, and one session is little more to judge by:
//! in `pulse demo --customers 2000 --days 40` 43 alerts fired on a
//! customer's first vector with a session, 34 of them to customers thriving
//! or healthy on the run's first and last day, and 15 of 536 customers
//! thriving throughout alerted within their first 4 days. Judged from
//! their first prediction at a week of history instead, with each
//! customer's segment on the first and last day from `pulse generate
//! --truth-out` and its capture replayed with `--score --alerts-out`:
//!
//! | capture | alerts to customers thriving/healthy on both days | customers at_risk/churned on the last day alerted |
//! |---|---|---|
//! | `--customers 2000 --days 40 --seed 7` (the demo's) | 73 → 8 (of 1,257 customers) | 426 → 410 of 634 |
//! | `--customers 400 --days 60 --seed 11` | 20 → 5 (of 246) | 89 → 86 of 125 |
//!
//! The customers at_risk/churned on the last day no longer alerted (19 of
//! 759, 2.5%; 15 of them at_risk on the first day) had alerted 0.2 to 4.4
//! days into their history, and their risk was above 0.7 only then; no
//! other customer's first alert came later.
//!
//! A new customer's vectors may all be coalesced into a later one before
//! they are scored (its signup and first session in one linger window or one
//! Lambda batch): whoever offers vectors to scoring notes the arrival
//! ([`Alerts::arrive`], [`AlertState::ARRIVING`]), so its first prediction
//! is judged all the same. The arrival is stored beside the armed flag
//! ([`Alerts::arriving`], [`Alerts::restore`]), so a customer
//! restored while still new is judged too, in whichever process.
//!
//! A restored customer ([`Alerts::restore`]) is not new: its stored flag
//! holds, and its next prediction that is not a new customer's alerts if
//! it is armed and above 0.7.
//!
//! Predictions are taken in the order of the customer's stream
//! ([`Prediction::emission`], §6; see [`pulse_schemas::order`]), not in
//! `as_of` order: one from an earlier emission than the last observed is
//! ignored (a replay or a retry cannot re-fire an alert or re-arm a
//! customer), while a late event's prediction that follows a timer's with a
//! larger `as_of` is observed; an equal key is observed (a retry of a
//! prediction that alerted finds the customer disarmed and stays quiet).
//!
//! The armed flag is meant to be stored with the customer's prediction item
//! ([`Alerts::armed`]) and loaded back after a restart ([`Alerts::restore`]),
//! so that a restart never repeats an alert.

use std::collections::HashMap;

use pulse_schemas::prediction::HIGH_CHURN_RISK;
use pulse_schemas::{Basis, CustomerId, EmissionKey, Prediction, Reasons, Segment};
use serde::Serialize;

use super::error::PolicyError;

/// When a customer may alert again.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertPolicy {
    /// A disarmed customer is re-armed when its `churn_risk_14d` falls below
    /// this; must be in (0, 0.7).
    pub rearm_below: f64,
}

impl Default for AlertPolicy {
    fn default() -> Self {
        AlertPolicy { rearm_below: 0.5 }
    }
}

impl AlertPolicy {
    /// Checks that the policy can work; the error names the field.
    pub fn validate(&self) -> Result<(), PolicyError> {
        let x = self.rearm_below;
        if x.is_nan() || x <= 0.0 || x >= HIGH_CHURN_RISK {
            return Err(PolicyError::new(
                "rearm_below",
                format!("must be above 0 and below the alert level {HIGH_CHURN_RISK}, got {x}"),
            ));
        }
        Ok(())
    }
}

/// A customer's churn risk rose above 0.7.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Alert {
    /// The customer.
    pub customer_id: CustomerId,
    /// `as_of` of the prediction.
    pub as_of: i64,
    /// The risk that alerted.
    pub churn_risk_14d: f64,
    /// From the same prediction.
    pub churn_risk_30d: f64,
    /// From the same prediction.
    pub health_score: f64,
    /// From the same prediction.
    pub segment: Segment,
    /// The risk of the customer's previous observed prediction, if any
    /// (unknown for a new customer or right after [`Alerts::restore`]).
    pub previous_churn_risk_14d: Option<f64>,
    /// For people: the rise (from the previous prediction), then what
    /// raised the risk most since the reasons' own baseline, or why there
    /// are no reasons ([`Reasons::sentence`]): "churn_risk_14d rose from
    /// 0.504 to 0.737, above 0.7. Raised most since 2026-01-05 (risk then
    /// 0.798): ...".
    pub reason: String,
    /// The features that raised the risk most (from the prediction), with
    /// their baseline: written when they were worked out, even if no
    /// feature raised the risk.
    #[serde(skip_serializing_if = "Reasons::not_explained")]
    pub reasons: Reasons,
}

/// One customer's alert hysteresis. Kept by [`Alerts`] for
/// [`Alerts::observe`] (beside the emission key of the prediction last
/// observed), or by a caller beside its own state of the customer for
/// [`Alerts::observe_in`] (one map of customers, not two, and no key of its
/// own: the caller orders the predictions).
#[derive(Clone, Debug)]
pub struct AlertState {
    armed: bool,
    /// Whether a prediction of the customer was observed (or its state
    /// restored): the first one is a baseline, not a rise, unless the
    /// customer was watched arriving.
    seen: bool,
    /// Whether the predictions observed so far were all of new-customer
    /// vectors ([`Prediction::new_customer`]): the next one that is not is
    /// judged, not a baseline.
    arriving: bool,
    churn_risk_14d: Option<f64>,
}

/// A customer of [`Alerts::observe`]: its state, as of the prediction of
/// this emission.
#[derive(Debug)]
struct Kept {
    emission: EmissionKey,
    state: AlertState,
    /// Forgotten ([`Alerts::forget`]): to be read back before it is used,
    /// but kept meanwhile for what storage does not hold (the previous
    /// risk, the arrival).
    stale: bool,
}

impl AlertState {
    /// Before a customer's first observation: armed, nothing seen.
    const FIRST: AlertState = AlertState { armed: true, seen: false, arriving: false, churn_risk_14d: None };

    /// Whether the customer would alert on its next rise above 0.7.
    pub fn armed(&self) -> bool {
        self.armed
    }

    /// A customer seen new ([`Prediction::new_customer`]) before any of its
    /// predictions: a new-customer vector was coalesced into a later one
    /// before scoring. Its first prediction is judged, not a baseline.
    pub const ARRIVING: AlertState = AlertState { armed: true, seen: true, arriving: true, churn_risk_14d: None };
}

/// The alert hysteresis of every customer (see the [module docs](self)).
#[derive(Debug)]
pub struct Alerts {
    policy: AlertPolicy,
    customers: HashMap<CustomerId, Kept, ahash::RandomState>,
}

impl Alerts {
    /// No customer observed yet (all armed), if the policy is valid.
    pub fn new(policy: AlertPolicy) -> Result<Alerts, PolicyError> {
        policy.validate()?;
        Ok(Alerts { policy, customers: HashMap::with_hasher(ahash::RandomState::new()) })
    }

    /// The policy.
    pub fn policy(&self) -> &AlertPolicy {
        &self.policy
    }

    /// Observes the customer's prediction; returns the alert it raises, if any.
    pub fn observe(&mut self, prediction: &Prediction) -> Option<Alert> {
        let emission = prediction.emission();
        let kept = match self.customers.get_mut(&prediction.customer_id) {
            Some(kept) if emission < kept.emission => return None,
            Some(kept) => kept,
            None => self.customers.entry(prediction.customer_id.clone()).or_insert(Kept {
                emission: emission.clone(),
                state: AlertState::FIRST,
                stale: false,
            }),
        };
        kept.emission = emission;
        observe(&self.policy, &mut kept.state, prediction)
    }

    /// [`Alerts::observe`] on a state the caller keeps for the customer
    /// (`None` before its first prediction). The caller passes each
    /// customer's predictions in the order of their emissions (none of an
    /// earlier emission than one it passed before), so the state needs no
    /// emission key of its own (see [`super::Fleet::update_in`]). Alerts
    /// take their customers either way, not both.
    pub fn observe_in(&self, state: &mut Option<AlertState>, prediction: &Prediction) -> Option<Alert> {
        observe(&self.policy, state.get_or_insert(AlertState::FIRST), prediction)
    }

    /// Notes that a customer never observed offered a new-customer vector
    /// ([`AlertState::ARRIVING`]), as of `emission`, before its first
    /// prediction: that prediction may be of a later vector, the new one
    /// coalesced into it. Nothing for a known customer.
    pub fn arrive(&mut self, customer: &CustomerId, emission: EmissionKey) {
        if !self.customers.contains_key(customer.as_str()) {
            self.customers.insert(customer.clone(), Kept { emission, state: AlertState::ARRIVING, stale: false });
        }
    }

    /// Whether the customer would alert on its next rise above 0.7 (true for
    /// a customer never observed): the flag to store with its prediction.
    pub fn armed(&self, customer: &str) -> bool {
        self.customers.get(customer).is_none_or(|k| k.state.armed)
    }

    /// Whether the customer was observed or restored, and not forgotten
    /// since (a live sink loads the stored state of a customer it does not
    /// know before observing it).
    pub fn knows(&self, customer: &str) -> bool {
        self.customers.get(customer).is_some_and(|k| !k.stale)
    }

    /// Loads a stored state, the armed flag and the arrival
    /// ([`Alerts::arriving`]: a customer stored while still new is judged at
    /// its first prediction past its first week, and says so, in whichever
    /// process makes it), as of the stored prediction's place in the
    /// customer's stream ([`Prediction::emission`]). Ignored if a prediction
    /// of a later emission of the customer was already observed. The stored
    /// prediction being the one last observed here (the same emission), the
    /// previous risk and the arrival kept here hold too.
    pub fn restore(&mut self, customer: CustomerId, armed: bool, arriving: bool, emission: EmissionKey) {
        let kept = self.customers.entry(customer).or_insert_with(|| Kept {
            emission: emission.clone(),
            state: AlertState { armed, seen: true, arriving: false, churn_risk_14d: None },
            stale: false,
        });
        kept.stale = false;
        if emission >= kept.emission {
            let same = emission == kept.emission;
            let churn_risk_14d = if same { kept.state.churn_risk_14d } else { None };
            let arriving = armed && (arriving || (same && kept.state.arriving));
            *kept = Kept { emission, state: AlertState { armed, seen: true, arriving, churn_risk_14d }, stale: false };
        }
    }

    /// Whether the customer was seen new and has had no prediction past
    /// the defaults yet: stored beside the armed flag.
    pub fn arriving(&self, customer: &str) -> bool {
        self.customers.get(customer).is_some_and(|k| k.state.arriving)
    }

    /// Marks what is known of `customer` stale (another process applied its
    /// records since), so that the caller reads its stored state back
    /// ([`Alerts::restore`]) before its next prediction: [`Alerts::knows`]
    /// says no until then. Whether it was known.
    pub fn forget(&mut self, customer: &str) -> bool {
        self.customers.get_mut(customer).map(|k| k.stale = true).is_some()
    }

    /// Customers observed or restored.
    pub fn len(&self) -> usize {
        self.customers.len()
    }

    /// Whether no customer was observed or restored.
    pub fn is_empty(&self) -> bool {
        self.customers.is_empty()
    }
}

/// The hysteresis of one customer (see the [module docs](self)).
fn observe(policy: &AlertPolicy, state: &mut AlertState, prediction: &Prediction) -> Option<Alert> {
    if prediction.new_customer {
        // No alert and no baseline (see the module docs); a customer first
        // seen this way is watched arriving.
        if !std::mem::replace(&mut state.seen, true) {
            state.arriving = true;
        }
        return None;
    }
    let risk = prediction.scores.churn_risk_14d;
    let previous = state.churn_risk_14d.replace(risk);
    let arriving = std::mem::take(&mut state.arriving);
    if !std::mem::replace(&mut state.seen, true) {
        // The baseline (see the module docs). NaN is not above 0.7.
        state.armed = risk <= HIGH_CHURN_RISK || risk.is_nan();
        return None;
    }
    if !state.armed {
        state.armed = risk < policy.rearm_below;
        return None;
    }
    if risk <= HIGH_CHURN_RISK || risk.is_nan() {
        return None;
    }
    state.armed = false;
    let now = risk_text(risk);
    // What reasons can never say (they name what changed): a customer who
    // has had no session at all. Half the alerts of a demo were new
    // customers', nearly all of them with no session, and their reasons
    // named payments (a review, 2026-12-05).
    let no_session = if prediction.no_session { "; no session on record" } else { "" };
    let reason = match previous {
        Some(p) => format!("churn_risk_14d rose from {} to {now}, above {HIGH_CHURN_RISK}{no_session}", risk_text(p)),
        None if arriving && prediction.met_in_burn_in => format!(
            "churn_risk_14d is {now}, above {HIGH_CHURN_RISK}, at its first prediction after a week of history (first \
             seen in the stream's burn-in: a new customer, or one met mid-life){no_session}"
        ),
        None if arriving && prediction.no_session => format!(
            "churn_risk_14d is {now}, above {HIGH_CHURN_RISK}, for a new customer with no session in its first week \
             (its first prediction after a week of history)"
        ),
        None if arriving => format!(
            "churn_risk_14d is {now}, above {HIGH_CHURN_RISK}, for a new customer (its first prediction after a \
             week of history)"
        ),
        None => {
            format!("churn_risk_14d is {now}, above {HIGH_CHURN_RISK} (no earlier prediction observed){no_session}")
        }
    };
    let mut alert = Alert {
        customer_id: prediction.customer_id.clone(),
        as_of: prediction.as_of,
        churn_risk_14d: risk,
        churn_risk_30d: prediction.scores.churn_risk_30d,
        health_score: prediction.scores.health_score,
        segment: prediction.segment,
        previous_churn_risk_14d: previous,
        reason,
        reasons: Reasons::none(Basis::Pending),
    };
    alert.give_reasons(prediction.reasons);
    Some(alert)
}

/// A risk in three decimals, or as many more as it takes not to read as
/// the alert level itself ("0.7004, above 0.7", not "0.700, above 0.7").
fn risk_text(x: f64) -> String {
    let text = format!("{x:.3}");
    if x == HIGH_CHURN_RISK || text != format!("{HIGH_CHURN_RISK:.3}") {
        return text;
    }
    (4..=17)
        .map(|p| (format!("{x:.p$}"), format!("{HIGH_CHURN_RISK:.p$}")))
        .find(|(a, b)| a != b)
        .map_or_else(|| format!("{x}"), |(a, _)| a)
}

impl Alert {
    /// Gives the alert its prediction's reasons, and their sentence
    /// ([`Reasons::sentence`]) to its `reason`: when the alert is made, and
    /// once more when they were [`Basis::Pending`] then (left to another
    /// thread, which fills them in).
    pub fn give_reasons(&mut self, reasons: Reasons) {
        debug_assert_eq!(self.reasons.basis(), Basis::Pending, "an alert's reasons are given once");
        let sentence = reasons.sentence(Some(self.churn_risk_14d));
        if !sentence.is_empty() {
            self.reason.push_str(". ");
            self.reason.push_str(&sentence);
        }
        self.reasons = reasons;
    }
}

#[cfg(test)]
mod tests {
    use pulse_schemas::prediction::Scores;

    use super::*;

    fn prediction(id: &str, as_of: i64, churn: f64) -> Prediction {
        Prediction {
            customer_id: CustomerId::new(id),
            as_of,
            scores: Scores {
                first_session_success: 0.5,
                session_velocity: 1.0,
                churn_risk_14d: churn,
                churn_risk_30d: 0.9,
                health_score: 35.0,
            },
            segment: Segment::of(churn, 0.9, 35.0),
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
    fn states_kept_by_the_caller_alert_as_the_alerts_own() {
        let mut keyed = Alerts::new(AlertPolicy::default()).unwrap();
        let kept = Alerts::new(AlertPolicy::default()).unwrap();
        // The caller's own state of each customer: the emission key of the
        // latest prediction it observed, and the alert state.
        let mut states: HashMap<String, (Option<EmissionKey>, Option<AlertState>)> = HashMap::new();
        let (mut raised, mut stale) = (0, 0);
        for i in 0..3_000i64 {
            // Rises, falls below the re-arm level, stale predictions.
            let churn = ((i * 7919) % 1000) as f64 / 999.0;
            let p = prediction(&format!("c{}", i % 23), (i * 13) % 400, churn);
            let (key, state) = states.entry(p.customer_id.to_string()).or_default();
            let a = keyed.observe(&p);
            // The caller orders the predictions: an older one is not passed.
            if key.as_ref().is_some_and(|k| p.emission() < *k) {
                assert!(a.is_none(), "prediction {i}: an older prediction never alerts");
                stale += 1;
                continue;
            }
            *key = Some(p.emission());
            let b = kept.observe_in(state, &p);
            assert_eq!(
                a.as_ref().map(|a| (a.as_of, a.reason.clone())),
                b.as_ref().map(|b| (b.as_of, b.reason.clone()))
            );
            raised += usize::from(a.is_some());
            assert_eq!(keyed.armed(p.customer_id.as_str()), state.as_ref().is_none_or(AlertState::armed));
        }
        assert!(raised >= 5 && stale > 100, "{raised} alerts, {stale} stale: the case must exercise both");
    }

    /// The rise, before the reasons' sentence.
    fn head(alert: &Alert) -> &str {
        alert.reason.split_once(". ").map_or(alert.reason.as_str(), |(head, _)| head)
    }

    /// Defect: "churn_risk_14d rose from 0.504 to 0.737, above 0.7: last
    /// login 5 hours ago (was under an hour ago); ..." read as if the
    /// reasons explained the rise from 0.504, when they compare with the
    /// customer's vector of about two weeks earlier (risk 0.798 then). Each
    /// claim names its own baseline, and an alert never ends on a bare
    /// score.
    #[test]
    fn an_alert_names_the_baseline_of_its_reasons() {
        use pulse_schemas::{Baseline, Reason};
        // 2026-01-05, late in the day (UTC).
        let since = 1_767_571_200_000 + 20 * 3_600_000;
        let baseline = Baseline { since: Some(since), churn_risk_14d: Some(0.798), signup: false };
        let login = Reason { feature: 10, now: 5.0 / 24.0, was: 0.01, contribution: 0.4, ..Reason::default() };
        let with = |reasons: Reasons, id: &str| {
            let mut alerts = Alerts::new(AlertPolicy::default()).unwrap();
            alerts.observe(&prediction(id, 1, 0.504));
            alerts.observe(&Prediction { reasons, ..prediction(id, 2, 0.737) }).unwrap()
        };
        // The risk now (0.737) is below the baseline's (0.798): down since.
        let alert = with(Reasons::new(baseline, [login]), "a");
        assert_eq!(
            alert.reason,
            "churn_risk_14d rose from 0.504 to 0.737, above 0.7. Down since 2026-01-05 (risk then 0.798); what \
             raised it most: last login 5 hours ago (was under an hour ago)"
        );
        let lower = Baseline { churn_risk_14d: Some(0.302), ..baseline };
        assert_eq!(
            with(Reasons::new(lower, [login]), "a2").reason,
            "churn_risk_14d rose from 0.504 to 0.737, above 0.7. Raised most since 2026-01-05 (risk then 0.302): \
             last login 5 hours ago (was under an hour ago)"
        );
        assert_eq!(
            with(Reasons::new(baseline, []), "b").reason,
            "churn_risk_14d rose from 0.504 to 0.737, above 0.7. No feature raised it since 2026-01-05 (risk then \
             0.798)"
        );
        assert_eq!(
            with(Reasons::default(), "c").reason,
            "churn_risk_14d rose from 0.504 to 0.737, above 0.7. No reasons: no earlier vector of the customer to \
             compare with"
        );
        let signup = Reasons::new(Baseline { signup: true, ..lower }, [login]);
        assert!(with(signup, "d").reason.ends_with(
            ". Raised most since signing up (risk then 0.302): last login 5 hours ago (was under an hour ago)"
        ));
        // Written with the alert when worked out, even with none raising it.
        let json = serde_json::to_value(with(Reasons::new(baseline, []), "e")).unwrap();
        assert_eq!(json["reasons"]["since"], since);
        assert!(serde_json::to_value(with(Reasons::default(), "f")).unwrap().get("reasons").is_none());

        // Left to another thread: the sentence comes when they do.
        let mut alerts = Alerts::new(AlertPolicy::default()).unwrap();
        alerts.observe(&prediction("g", 1, 0.504));
        let mut alert = alerts
            .observe(&Prediction { reasons: Reasons::none(Basis::Pending), ..prediction("g", 2, 0.737) })
            .unwrap();
        assert_eq!(alert.reason, "churn_risk_14d rose from 0.504 to 0.737, above 0.7");
        alert.give_reasons(Reasons::new(baseline, [login]));
        assert_eq!(alert.reason, with(Reasons::new(baseline, [login]), "a").reason);
    }

    fn fired(alerts: &mut Alerts, id: &str, risks: &[(i64, f64)]) -> Vec<i64> {
        risks.iter().filter_map(|&(t, r)| alerts.observe(&prediction(id, t, r))).map(|a| a.as_of).collect()
    }

    #[test]
    fn policy_must_rearm_below_the_alert_level() {
        for bad in [0.7, 0.8, 0.0, -0.1, f64::NAN] {
            let err = Alerts::new(AlertPolicy { rearm_below: bad }).unwrap_err();
            assert_eq!(err.field, "rearm_below", "{bad}");
        }
        assert!(Alerts::new(AlertPolicy { rearm_below: 0.69 }).is_ok());
    }

    #[test]
    fn alerts_once_per_rise_with_rearm() {
        let mut alerts = Alerts::new(AlertPolicy::default()).unwrap();
        let risks = [(1, 0.3), (2, 0.71), (3, 0.69), (4, 0.75), (5, 0.5), (6, 0.8), (7, 0.49), (8, 0.7), (9, 0.700001)];
        // 0.5 is not below 0.5, so 6 stays quiet; 0.7 is not above 0.7.
        assert_eq!(fired(&mut alerts, "a", &risks), [2, 9]);
        assert!(!alerts.armed("a"));
        assert!(alerts.armed("never-seen"));
    }

    #[test]
    fn a_first_prediction_is_a_baseline_not_a_rise() {
        let mut alerts = Alerts::new(AlertPolicy::default()).unwrap();
        // Above 0.7 from the start: no alert, and none while it stays above
        // or hovers between the re-arm level and 0.7.
        assert_eq!(fired(&mut alerts, "high", &[(1, 0.95), (2, 0.9), (3, 0.6), (4, 0.8)]), Vec::<i64>::new());
        assert!(!alerts.armed("high"));
        // Once below the re-arm level, its next rise alerts.
        assert_eq!(fired(&mut alerts, "high", &[(5, 0.4), (6, 0.75)]), [6]);
        // At or below 0.7 from the start: armed, and its first rise alerts.
        assert_eq!(fired(&mut alerts, "mid", &[(1, 0.6), (2, 0.7), (3, 0.71)]), [3]);
        assert!(alerts.observe(&prediction("nan", 1, f64::NAN)).is_none());
        assert!(alerts.armed("nan"), "NaN is not above 0.7");
    }

    fn new_customer(id: &str, as_of: i64, churn: f64) -> Prediction {
        Prediction { new_customer: true, ..prediction(id, as_of, churn) }
    }

    #[test]
    fn a_new_customer_is_judged_at_its_first_prediction_past_the_defaults() {
        let mut alerts = Alerts::new(AlertPolicy::default()).unwrap();
        // A first week scores high (the defaults, a session or two): no
        // alert, no baseline, still armed.
        for t in 1..4 {
            assert!(alerts.observe(&new_customer("signup", t, 0.95)).is_none(), "prediction {t}");
        }
        assert!(alerts.armed("signup"));
        // Past its first week (with no session, or sessions gone badly):
        // judged as any armed customer's, so above 0.7 it alerts, and says why.
        let alert = alerts.observe(&prediction("signup", 5, 0.9)).expect("the first real score is high");
        assert_eq!(alert.previous_churn_risk_14d, None, "the first week's scores are no earlier risk");
        assert_eq!(
            head(&alert),
            "churn_risk_14d is 0.900, above 0.7, for a new customer (its first prediction after a week of history)"
        );
        assert!(!alerts.armed("signup"));
        assert_eq!(fired(&mut alerts, "signup", &[(6, 0.95), (7, 0.4), (8, 0.8)]), [8], "then hysteresis as usual");

        // What reasons can never say: no session at all. And a customer
        // first seen in a cold process's burn-in is not called new.
        let quiet = |id: &str, t: i64, met_in_burn_in: bool| Prediction {
            no_session: true,
            met_in_burn_in,
            ..prediction(id, t, 0.9)
        };
        alerts.observe(&new_customer("idle", 1, 0.95));
        assert_eq!(
            head(&alerts.observe(&quiet("idle", 5, false)).unwrap()),
            "churn_risk_14d is 0.900, above 0.7, for a new customer with no session in its first week (its first \
             prediction after a week of history)"
        );
        alerts.observe(&new_customer("early", 1, 0.95));
        assert_eq!(
            head(&alerts.observe(&quiet("early", 5, true)).unwrap()),
            "churn_risk_14d is 0.900, above 0.7, at its first prediction after a week of history (first seen in the \
             stream's burn-in: a new customer, or one met mid-life); no session on record"
        );
        alerts.observe(&prediction("risen", 1, 0.3));
        assert_eq!(
            head(&alerts.observe(&quiet("risen", 2, false)).unwrap()),
            "churn_risk_14d rose from 0.300 to 0.900, above 0.7; no session on record"
        );

        // A new customer whose first real score is calm is armed, and its
        // later rise alerts from that score.
        assert!(alerts.observe(&new_customer("calm", 1, 0.95)).is_none());
        assert_eq!(fired(&mut alerts, "calm", &[(2, 0.2), (3, 0.3), (4, 0.75)]), [4]);
        let mut again = Alerts::new(AlertPolicy::default()).unwrap();
        again.observe(&new_customer("calm", 1, 0.95));
        again.observe(&prediction("calm", 2, 0.2));
        assert_eq!(again.observe(&prediction("calm", 3, 0.75)).unwrap().previous_churn_risk_14d, Some(0.2));

        // A new customer's vector never alerts, even after later ones (a late
        // event's, as of the first week), and leaves the state as it was.
        assert!(alerts.observe(&new_customer("calm", 5, 0.99)).is_none());
        assert!(!alerts.armed("calm"));
        let mut armed = Alerts::new(AlertPolicy::default()).unwrap();
        assert!(armed.observe(&prediction("x", 1, 0.2)).is_none(), "the baseline");
        assert!(armed.observe(&new_customer("x", 2, 0.99)).is_none());
        assert!(armed.armed("x"));

        // Met mid-life (its first prediction not a new customer's): the
        // baseline rule holds.
        assert_eq!(fired(&mut alerts, "met", &[(1, 0.9), (2, 0.95)]), Vec::<i64>::new());
    }

    #[test]
    fn a_risk_just_above_the_level_does_not_read_as_the_level() {
        let mut alerts = Alerts::new(AlertPolicy::default()).unwrap();
        alerts.observe(&prediction("a", 1, 0.6996));
        let alert = alerts.observe(&prediction("a", 2, 0.7004)).unwrap();
        assert_eq!(head(&alert), "churn_risk_14d rose from 0.6996 to 0.7004, above 0.7");
        alerts.observe(&prediction("a", 3, 0.1));
        let alert = alerts.observe(&prediction("a", 4, 0.71)).unwrap();
        assert_eq!(head(&alert), "churn_risk_14d rose from 0.100 to 0.710, above 0.7");
        // A model's risk is no short literal: the digits it takes, no more.
        let risk = 1.0 / (1.0 + (-0.8475f64).exp());
        assert!(risk > 0.7 && format!("{risk:.3}") == "0.700" && format!("{risk}").len() > 12, "{risk}");
        alerts.observe(&prediction("a", 5, 0.1));
        let alert = alerts.observe(&prediction("a", 6, risk)).unwrap();
        assert_eq!(head(&alert), "churn_risk_14d rose from 0.100 to 0.70004, above 0.7");
    }

    #[test]
    fn an_arrival_noted_before_any_prediction_makes_the_first_one_judged() {
        let mut alerts = Alerts::new(AlertPolicy::default()).unwrap();
        alerts.arrive(&CustomerId::new("n"), EmissionKey::at(1));
        let alert = alerts.observe(&prediction("n", 2, 0.9)).expect("judged, not a baseline");
        assert!(alert.reason.contains("for a new customer"), "{}", alert.reason);
        // A known customer's state is left alone.
        assert!(alerts.observe(&prediction("m", 1, 0.9)).is_none(), "the baseline");
        alerts.arrive(&CustomerId::new("m"), EmissionKey::at(2));
        assert!(alerts.observe(&prediction("m", 3, 0.95)).is_none(), "still disarmed");
        let mut kept = None;
        let state = kept.insert(AlertState::ARRIVING);
        assert!(state.armed());
        assert!(alerts.observe_in(&mut kept, &prediction("k", 1, 0.8)).is_some());
    }

    #[test]
    fn a_forgotten_customer_is_read_back_and_keeps_what_storage_does_not_hold() {
        let mut alerts = Alerts::new(AlertPolicy::default()).unwrap();
        assert!(alerts.observe(&new_customer("n", 1, 0.95)).is_none());
        assert!(alerts.forget("n") && !alerts.knows("n"), "to be read back");
        // Stored as written here (the same emission, armed): still arriving.
        alerts.restore(CustomerId::new("n"), true, false, EmissionKey::at(1));
        assert!(alerts.knows("n"));
        let alert = alerts.observe(&prediction("n", 2, 0.9)).expect("judged");
        assert!(alert.reason.contains("for a new customer"), "{}", alert.reason);

        // Another process went on (a later emission, disarmed): its state wins.
        let mut here = Alerts::new(AlertPolicy::default()).unwrap();
        here.observe(&new_customer("n", 1, 0.95));
        here.forget("n");
        here.restore(CustomerId::new("n"), false, false, EmissionKey::at(2));
        assert!(here.observe(&prediction("n", 3, 0.9)).is_none(), "alerted elsewhere");

        // A forgotten customer keeps its previous risk when the stored
        // prediction is the one it observed.
        let mut kept = Alerts::new(AlertPolicy::default()).unwrap();
        kept.observe(&prediction("k", 1, 0.2));
        kept.forget("k");
        kept.restore(CustomerId::new("k"), true, false, EmissionKey::at(1));
        assert_eq!(kept.observe(&prediction("k", 2, 0.8)).unwrap().previous_churn_risk_14d, Some(0.2));
        assert!(!kept.forget("never-seen"));

        // Stored while new, restored in another process: still judged, and
        // says so.
        let mut before = Alerts::new(AlertPolicy::default()).unwrap();
        before.observe(&new_customer("s", 1, 0.95));
        assert!(before.arriving("s") && before.armed("s"));
        let mut after = Alerts::new(AlertPolicy::default()).unwrap();
        after.restore(CustomerId::new("s"), before.armed("s"), before.arriving("s"), EmissionKey::at(1));
        let alert = after.observe(&prediction("s", 2, 0.9)).expect("judged");
        assert!(alert.reason.contains("for a new customer"), "{}", alert.reason);
        assert!(!after.arriving("s"), "past its first week");
    }

    #[test]
    fn the_caller_kept_state_treats_new_customers_alike() {
        let mut keyed = Alerts::new(AlertPolicy::default()).unwrap();
        let kept = Alerts::new(AlertPolicy::default()).unwrap();
        let mut state = None;
        let seq =
            [new_customer("n", 1, 0.95), new_customer("n", 2, 0.9), prediction("n", 3, 0.8), prediction("n", 4, 0.3)];
        for p in &seq {
            let (a, b) = (keyed.observe(p), kept.observe_in(&mut state, p));
            assert_eq!(a.map(|a| a.reason), b.map(|b| b.reason));
        }
        assert_eq!(keyed.armed("n"), state.as_ref().is_none_or(AlertState::armed));
    }

    #[test]
    fn a_rise_says_from_what() {
        let mut alerts = Alerts::new(AlertPolicy::default()).unwrap();
        assert!(alerts.observe(&prediction("a", 1, 0.9)).is_none());
        alerts.observe(&prediction("a", 2, 0.1));
        let alert = alerts.observe(&prediction("a", 3, 0.8)).unwrap();
        assert_eq!(alert.segment, Segment::Churned);
        assert_eq!(alert.previous_churn_risk_14d, Some(0.1));
        assert_eq!(head(&alert), "churn_risk_14d rose from 0.100 to 0.800, above 0.7");
        let json = serde_json::to_value(&alert).unwrap();
        assert_eq!(json["customer_id"], "a");
        assert_eq!(json["segment"], "churned");
    }

    #[test]
    fn older_predictions_are_ignored_and_retries_stay_quiet() {
        let mut alerts = Alerts::new(AlertPolicy::default()).unwrap();
        assert!(alerts.observe(&prediction("a", 9, 0.3)).is_none(), "the baseline");
        assert!(alerts.observe(&prediction("a", 10, 0.9)).is_some());
        assert!(alerts.observe(&prediction("a", 10, 0.9)).is_none(), "retry");
        assert!(alerts.observe(&prediction("a", 5, 0.1)).is_none());
        assert!(!alerts.armed("a"), "an older low risk does not re-arm");
        assert!(alerts.observe(&prediction("a", 11, 0.9)).is_none());
    }

    #[test]
    fn restore_carries_the_flag_across_a_restart() {
        let mut before = Alerts::new(AlertPolicy::default()).unwrap();
        assert!(before.observe(&prediction("a", 9, 0.3)).is_none(), "the baseline");
        assert!(before.observe(&prediction("a", 10, 0.9)).is_some());
        let stored = before.armed("a");

        // A restored customer is not new: armed and above 0.7, it alerts,
        // and says it has no earlier prediction to compare with.
        let mut restored = Alerts::new(AlertPolicy::default()).unwrap();
        restored.restore(CustomerId::new("b"), true, false, EmissionKey::at(5));
        let alert = restored.observe(&prediction("b", 6, 0.9)).expect("armed and above");
        assert_eq!(alert.previous_churn_risk_14d, None);
        assert_eq!(head(&alert), "churn_risk_14d is 0.900, above 0.7 (no earlier prediction observed)");

        let mut after = Alerts::new(AlertPolicy::default()).unwrap();
        after.restore(CustomerId::new("a"), stored, false, EmissionKey::at(10));
        assert!(after.observe(&prediction("a", 10, 0.9)).is_none(), "replayed prediction");
        assert!(after.observe(&prediction("a", 12, 0.95)).is_none(), "still above: no new rise");
        after.restore(CustomerId::new("a"), true, false, EmissionKey::at(11));
        assert!(!after.armed("a"), "a restore older than what was observed is ignored");
        assert!(after.observe(&prediction("a", 13, 0.2)).is_none());
        assert!(after.observe(&prediction("a", 14, 0.9)).is_some());
    }

    #[test]
    fn a_late_event_after_a_timer_is_observed_and_a_replayed_timer_is_not() {
        use pulse_schemas::order::Position;
        let at = |p: Prediction, key: EmissionKey| Prediction { emission: Some(key), ..p };
        let timer = at(prediction("a", 2_000, 0.3), EmissionKey::timer(2_000));
        // A late event (as_of 1_000 < 2_000) in a record created after the timer.
        let late = at(prediction("a", 1_000, 0.9), EmissionKey::record(2_500, Position::Line(7)));
        let mut alerts = Alerts::new(AlertPolicy::default()).unwrap();
        assert!(alerts.observe(&at(prediction("a", 500, 0.2), EmissionKey::timer(500))).is_none(), "the baseline");
        assert!(alerts.observe(&timer).is_none());
        let alert = alerts.observe(&late).expect("the late event's rise alerts");
        assert_eq!((alert.as_of, alert.previous_churn_risk_14d), (1_000, Some(0.3)));
        assert!(alerts.observe(&timer).is_none(), "a replayed timer prediction is older");
        assert!(!alerts.armed("a"), "and does not re-arm");
    }
}
