//! A naive, obviously-correct model of §2–§4 of the contract
//! (`docs/FEATURES.md`): the record rules, the windows and the 46
//! features.
//!
//! It keeps, per customer, every held event in a plain `Vec` and recomputes
//! every feature from scratch by filtering that list. It is slow on purpose:
//! there is no incremental state to get wrong, so it is the yardstick the
//! incremental engine of `pulse-operators` is measured against.
//!
//! Rules modelled (the contract's wording, with the readings the engine uses):
//!
//! * **Held.** The events a customer holds are those accepted and not since
//!   retracted. An event whose `ts <= C - 30 days` is *past the horizon*: it
//!   still counts for the "ever" features, but it can never be retracted and
//!   its `event_id` no longer makes a new add a duplicate.
//! * **Add** (INSERT, or the NewImage of a MODIFY): late if
//!   `ts <= C_before - 30 days` (dropped); else a duplicate if an in-horizon
//!   held event has the same `event_id` (ignored); else accepted:
//!   `C = max(C, ts)` and the tenure's first `ts` = the smallest accepted.
//! * **Retract** (REMOVE by a user, or the OldImage of a MODIFY): late if the
//!   OldImage's `ts <= C_before - 30 days`; else the in-horizon held event with
//!   that `event_id` goes, whatever the held copy says; a no-op if none.
//! * A MODIFY retracts first, then adds; both late checks use `C` as before
//!   the record. TTL expiries and non-event records change nothing.
//! * **Emission.** After a record, iff the multiset of held events (id, `ts`,
//!   type and every contract attribute) differs from before: one vector as of
//!   `T = C` (after the record).

use std::collections::{BTreeMap, BTreeSet};

use pulse_schemas::features::idx::*;
use pulse_schemas::{Event, EventKind, Features, Party, PaymentStatus, Sentiment, StreamChange, DAY_MS, FEATURE_COUNT};

/// The horizon: an event with `ts <= C - HORIZON_MS` is late.
pub const HORIZON_MS: i64 = 30 * DAY_MS;

/// One held event of a customer, detached from any buffer.
#[derive(Clone, Debug, PartialEq)]
pub struct HeldEvent {
    /// `event_id`.
    pub event_id: String,
    /// `ts` in milliseconds.
    pub ts: i64,
    /// The type and its contract attributes.
    pub kind: EventKind<'static>,
}

impl HeldEvent {
    /// Copies an [`Event`] (the customer is the key of the map it goes in).
    pub fn from_event(event: &Event<'_>) -> Self {
        HeldEvent { event_id: event.event_id.to_string(), ts: event.ts.millis(), kind: event.kind.clone().into_owned() }
    }

    /// A total, exact key for multiset comparison: `{:?}` of an `f64` is its
    /// shortest round-trip form, so two keys are equal iff the events are.
    fn identity(&self) -> String {
        format!("{:?}", self)
    }
}

/// What the reference knows about one customer.
#[derive(Clone, Debug)]
pub struct RefCustomer {
    /// `C`: the largest `ts` among accepted events (never lowered).
    pub clock: i64,
    /// The smallest `ts` ever accepted (retracted or not): tenure's start.
    pub first_ts: i64,
    /// Every held event, past the horizon or not, in acceptance order.
    pub held: Vec<HeldEvent>,
}

impl RefCustomer {
    /// Whether a held event is still inside the horizon of the clock `c`.
    fn in_horizon(ts: i64, c: i64) -> bool {
        ts > c - HORIZON_MS
    }

    /// The held events as a sorted multiset of exact keys.
    fn multiset(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.held.iter().map(HeldEvent::identity).collect();
        keys.sort();
        keys
    }
}

/// What the reference decided for one side of a record (for tests that want
/// to check the rule, not only the features).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// An add that was accepted.
    Added,
    /// An add whose `event_id` is held in the horizon.
    Duplicate,
    /// An add or a retraction at or past the horizon.
    Late,
    /// A retraction that removed a held event.
    Retracted,
    /// A retraction of an event that is not held (in the horizon).
    NotHeld,
}

/// One vector the reference emits for a record (trigger `event`).
#[derive(Clone, Debug, PartialEq)]
pub struct RefEmission {
    /// The customer.
    pub customer_id: String,
    /// `T` = the customer clock after the record.
    pub as_of: i64,
    /// The 46 values.
    pub features: Features,
}

/// The naive model of the whole engine (no timers).
#[derive(Clone, Debug, Default)]
pub struct Reference {
    customers: BTreeMap<String, RefCustomer>,
    /// Outcomes of every side applied so far, in order (for rule tests).
    pub outcomes: Vec<Outcome>,
}

impl Reference {
    /// An empty model.
    pub fn new() -> Self {
        Self::default()
    }

    /// The customer's clock `C`, if it has ever accepted an event.
    pub fn clock(&self, customer_id: &str) -> Option<i64> {
        self.customers.get(customer_id).map(|c| c.clock)
    }

    /// The customer's state, if it has ever accepted an event.
    pub fn customer(&self, customer_id: &str) -> Option<&RefCustomer> {
        self.customers.get(customer_id)
    }

    /// Every customer that has ever accepted an event.
    pub fn customer_ids(&self) -> impl Iterator<Item = &str> {
        self.customers.keys().map(String::as_str)
    }

    /// The features of a customer as of `t` (`None` if the customer is unknown
    /// or `t` is before its clock).
    pub fn features_at(&self, customer_id: &str, t: i64) -> Option<Features> {
        let c = self.customers.get(customer_id)?;
        if t < c.clock {
            return None;
        }
        Some(compute_features(&c.held, c.first_ts, t))
    }

    /// Applies one decoded change; returns the emission if the held events changed.
    pub fn apply(&mut self, change: &StreamChange<'_>) -> Option<RefEmission> {
        let (customer_id, old, new): (&str, Option<&Event<'_>>, Option<&Event<'_>>) = match change {
            StreamChange::Insert(e) => (&e.customer_id, None, Some(e)),
            StreamChange::Remove(e) => (&e.customer_id, Some(e), None),
            StreamChange::Modify { old, new } => {
                let customer = match (old, new) {
                    (_, Some(n)) => &*n.customer_id,
                    (Some(o), None) => &*o.customer_id,
                    (None, None) => return None,
                };
                (customer, old.as_ref(), new.as_ref())
            }
            StreamChange::TtlExpiry | StreamChange::NotAnEvent => return None,
        };
        let before = self.customers.get(customer_id).map(RefCustomer::multiset).unwrap_or_default();
        // C as before the record: both late checks of a MODIFY use it.
        let c_before = self.clock(customer_id);

        if let Some(old) = old {
            let outcome = self.retract(customer_id, old, c_before);
            self.outcomes.push(outcome);
        }
        if let Some(new) = new {
            let outcome = self.add(customer_id, new, c_before);
            self.outcomes.push(outcome);
        }

        let cust = self.customers.get(customer_id)?;
        if cust.multiset() == before {
            return None;
        }
        Some(RefEmission {
            customer_id: customer_id.to_string(),
            as_of: cust.clock,
            features: compute_features(&cust.held, cust.first_ts, cust.clock),
        })
    }

    fn is_late(ts: i64, c_before: Option<i64>) -> bool {
        match c_before {
            Some(c) => ts <= c - HORIZON_MS,
            None => false,
        }
    }

    fn retract(&mut self, customer_id: &str, old: &Event<'_>, c_before: Option<i64>) -> Outcome {
        if Self::is_late(old.ts.millis(), c_before) {
            return Outcome::Late;
        }
        let (Some(cust), Some(c)) = (self.customers.get_mut(customer_id), c_before) else {
            return Outcome::NotHeld;
        };
        let found = cust.held.iter().position(|h| h.event_id == *old.event_id && RefCustomer::in_horizon(h.ts, c));
        match found {
            Some(i) => {
                cust.held.remove(i);
                Outcome::Retracted
            }
            None => Outcome::NotHeld,
        }
    }

    fn add(&mut self, customer_id: &str, new: &Event<'_>, c_before: Option<i64>) -> Outcome {
        let ts = new.ts.millis();
        if Self::is_late(ts, c_before) {
            return Outcome::Late;
        }
        if let (Some(cust), Some(c)) = (self.customers.get(customer_id), c_before) {
            let duplicate = cust.held.iter().any(|h| h.event_id == *new.event_id && RefCustomer::in_horizon(h.ts, c));
            if duplicate {
                return Outcome::Duplicate;
            }
        }
        let held = HeldEvent::from_event(new);
        match self.customers.get_mut(customer_id) {
            Some(cust) => {
                cust.clock = cust.clock.max(ts);
                cust.first_ts = cust.first_ts.min(ts);
                cust.held.push(held);
            }
            None => {
                self.customers
                    .insert(customer_id.to_string(), RefCustomer { clock: ts, first_ts: ts, held: vec![held] });
            }
        }
        Outcome::Added
    }
}

/// `days(x)` of the contract: `(T - x) / day` as a float.
pub fn days(t: i64, x: i64) -> f64 {
    (t - x) as f64 / DAY_MS as f64
}

/// Whether `ts` is in `W_n` as of `t`: `t - n*day < ts <= t`.
pub fn in_window(ts: i64, t: i64, n: i64) -> bool {
    t - n * DAY_MS < ts && ts <= t
}

/// `num / den`, or `default` when `den` is zero.
fn ratio(num: f64, den: f64, default: f64) -> f64 {
    if den == 0.0 {
        default
    } else {
        num / den
    }
}

/// Sum of the values, from `+0.0` (`Iterator::sum` of no `f64` is `-0.0`).
fn total(values: impl IntoIterator<Item = f64>) -> f64 {
    values.into_iter().fold(0.0, |acc, x| acc + x)
}

/// Mean of the values, or 0 when there are none.
fn mean(values: &[f64]) -> f64 {
    ratio(total(values.iter().copied()), values.len() as f64, 0.0)
}

/// `days(latest)` capped at `cap`, or `cap` when there is no such event.
fn days_since_capped(t: i64, latest: Option<i64>, cap: f64) -> f64 {
    match latest {
        Some(x) => days(t, x).min(cap),
        None => cap,
    }
}

/// The 46 features of §4, recomputed from scratch as of `t` from the held
/// events (`first_ts` = the smallest `ts` ever accepted, for tenure).
pub fn compute_features(held: &[HeldEvent], first_ts: i64, t: i64) -> Features {
    // Events of window N, in a fixed order (ts, event_id) so sums are deterministic.
    let mut sorted: Vec<&HeldEvent> = held.iter().collect();
    sorted.sort_by(|a, b| (a.ts, a.event_id.as_bytes()).cmp(&(b.ts, b.event_id.as_bytes())));
    let window = |n: i64| -> Vec<&HeldEvent> { sorted.iter().copied().filter(|e| in_window(e.ts, t, n)).collect() };
    let (w7, w14, w30) = (window(7), window(14), window(30));
    // `T-14d < ts <= T-7d`: in W_14 but not in W_7.
    let prior_week: Vec<&HeldEvent> = w14.iter().copied().filter(|e| !in_window(e.ts, t, 7)).collect();

    // --- per-kind selectors ---
    let sessions = |w: &[&HeldEvent]| -> Vec<(i64, String, String, f64)> {
        w.iter()
            .filter_map(|e| match &e.kind {
                EventKind::SessionCompleted { tutor_id, duration_min } => {
                    Some((e.ts, e.event_id.clone(), tutor_id.to_string(), *duration_min))
                }
                _ => None,
            })
            .collect()
    };
    let ratings = |w: &[&HeldEvent]| -> Vec<(String, f64)> {
        w.iter()
            .filter_map(|e| match &e.kind {
                EventKind::SessionRated { tutor_id, rating } => Some((tutor_id.to_string(), *rating)),
                _ => None,
            })
            .collect()
    };
    let count = |w: &[&HeldEvent], pred: &dyn Fn(&EventKind<'static>) -> bool| -> f64 {
        w.iter().filter(|e| pred(&e.kind)).count() as f64
    };
    let is_login = |k: &EventKind<'static>| matches!(k, EventKind::Login);
    let is_call = |k: &EventKind<'static>| matches!(k, EventKind::IbCall { .. });
    let is_negative_call = |k: &EventKind<'static>| matches!(k, EventKind::IbCall { sentiment: Sentiment::Negative });
    let is_student_cancel =
        |k: &EventKind<'static>| matches!(k, EventKind::SessionCancelled { cancelled_by: Party::Student, .. });
    let is_tutor_cancel =
        |k: &EventKind<'static>| matches!(k, EventKind::SessionCancelled { cancelled_by: Party::Tutor, .. });
    let is_no_show = |k: &EventKind<'static>| matches!(k, EventKind::SessionNoShow { .. });
    let is_paid = |k: &EventKind<'static>| matches!(k, EventKind::Payment { status: PaymentStatus::Succeeded, .. });
    let is_failed = |k: &EventKind<'static>| matches!(k, EventKind::Payment { status: PaymentStatus::Failed, .. });
    let success_rate = |w: &[&HeldEvent]| {
        let ok = count(w, &is_paid);
        ratio(ok, ok + count(w, &is_failed), 1.0)
    };
    let reply_minutes = |w: &[&HeldEvent], party: Party| -> Vec<f64> {
        w.iter()
            .filter_map(|e| match &e.kind {
                EventKind::MessageReply { from, response_minutes, .. } if *from == party => Some(*response_minutes),
                _ => None,
            })
            .collect()
    };
    // Latest ts, over every held event ("ever"), of the events a predicate picks.
    let latest_ever = |pred: &dyn Fn(&EventKind<'static>) -> bool| -> Option<i64> {
        held.iter().filter(|e| pred(&e.kind)).map(|e| e.ts).max()
    };

    let mut f = [0.0; FEATURE_COUNT];

    // --- Session (13) ---
    let s7 = sessions(&w7);
    let s14 = sessions(&w14);
    let s30 = sessions(&w30);
    let (n7, n14, n30) = (s7.len() as f64, s14.len() as f64, s30.len() as f64);
    let minutes7 = total(s7.iter().map(|s| s.3));
    let minutes30 = total(s30.iter().map(|s| s.3));
    f[SESSIONS_7D] = n7;
    f[SESSIONS_14D] = n14;
    f[SESSIONS_30D] = n30;
    f[SESSIONS_PER_WEEK_30D] = n30 * 7.0 / 30.0;
    f[SESSION_MINUTES_7D] = minutes7;
    f[SESSION_MINUTES_30D] = minutes30;
    f[AVG_SESSION_MINUTES_30D] = ratio(minutes30, n30, 0.0);
    f[SESSION_VELOCITY_CHANGE] = n7 - sessions(&prior_week).len() as f64;
    f[SESSION_TREND_RATIO] = (n7 + 1.0) / (n30 * 7.0 / 30.0 + 1.0);
    f[DAYS_SINCE_LAST_SESSION] =
        days_since_capped(t, latest_ever(&|k| matches!(k, EventKind::SessionCompleted { .. })), 365.0);
    f[DAYS_SINCE_LAST_LOGIN] = days_since_capped(t, latest_ever(&is_login), 365.0);
    let active_days: BTreeSet<i64> = w14.iter().map(|e| e.ts.div_euclid(DAY_MS)).collect();
    f[ACTIVE_DAYS_14D] = active_days.len() as f64;
    f[TENURE_DAYS] = days(t, first_ts).min(3650.0);

    // --- Engagement (8) ---
    let r7: Vec<f64> = ratings(&w7).into_iter().map(|r| r.1).collect();
    let r14: Vec<f64> = ratings(&w14).into_iter().map(|r| r.1).collect();
    let r30_full = ratings(&w30);
    let r30: Vec<f64> = r30_full.iter().map(|r| r.1).collect();
    f[AVG_RATING_7D] = mean(&r7);
    f[AVG_RATING_14D] = mean(&r14);
    f[AVG_RATING_30D] = mean(&r30);
    f[RATING_TREND] = if r7.is_empty() { 0.0 } else { mean(&r7) - mean(&r30) };
    f[RATINGS_COUNT_30D] = r30.len() as f64;
    f[LOW_RATINGS_30D] = r30.iter().filter(|&&r| r <= 2.0).count() as f64;
    f[LOGINS_7D] = count(&w7, &is_login);
    f[LOGINS_30D] = count(&w30, &is_login);

    // --- Financial (6) ---
    f[PAYMENT_SUCCESS_RATE_7D] = success_rate(&w7);
    f[PAYMENT_SUCCESS_RATE_14D] = success_rate(&w14);
    f[PAYMENT_SUCCESS_RATE_30D] = success_rate(&w30);
    f[PAYMENT_FAILURES_30D] = count(&w30, &is_failed);
    f[PAYMENT_AMOUNT_30D] = total(w30.iter().filter_map(|e| match &e.kind {
        EventKind::Payment { amount, status: PaymentStatus::Succeeded } => Some(*amount),
        _ => None,
    }));
    f[DAYS_SINCE_LAST_PAYMENT] = days_since_capped(t, latest_ever(&is_paid), 365.0);

    // --- Behavioral (10) ---
    let calls30 = count(&w30, &is_call);
    f[IB_CALLS_7D] = count(&w7, &is_call);
    f[IB_CALLS_14D] = count(&w14, &is_call);
    f[IB_CALLS_30D] = calls30;
    f[NEGATIVE_CALL_RATE_30D] = ratio(count(&w30, &is_negative_call), calls30, 0.0);
    f[DAYS_SINCE_LAST_IB_CALL] = days_since_capped(t, latest_ever(&is_call), 365.0);
    let student_cancels30 = count(&w30, &is_student_cancel);
    let no_shows30 = count(&w30, &is_no_show);
    f[STUDENT_CANCELLATIONS_7D] = count(&w7, &is_student_cancel);
    f[STUDENT_CANCELLATIONS_30D] = student_cancels30;
    f[CANCELLATION_RATE_30D] = ratio(student_cancels30, n30 + student_cancels30 + no_shows30, 0.0);
    f[NO_SHOWS_30D] = no_shows30;
    f[STUDENT_REPLY_MINUTES_30D] = mean(&reply_minutes(&w30, Party::Student));

    // --- Tutor (9): session_completed in W_30 ordered by (ts, event_id) ---
    // `s30` is already in (ts, event_id bytes) order (it comes from `sorted`).
    let mut per_tutor: BTreeMap<&str, (usize, i64)> = BTreeMap::new();
    for (ts, _, tutor, _) in &s30 {
        let entry = per_tutor.entry(tutor.as_str()).or_insert((0, i64::MIN));
        entry.0 += 1;
        entry.1 = entry.1.max(*ts);
    }
    // Most sessions; then the later latest session; then the smaller tutor_id.
    // `BTreeMap` iterates tutor ids in byte order, so keeping the first of equals
    // (strictly-greater replaces) gives the smallest id among full ties.
    let mut primary: Option<(&str, usize, i64)> = None;
    for (&tutor, &(n, latest)) in &per_tutor {
        let better = match primary {
            None => true,
            Some((_, pn, pl)) => n > pn || (n == pn && latest > pl),
        };
        if better {
            primary = Some((tutor, n, latest));
        }
    }
    f[DISTINCT_TUTORS_30D] = per_tutor.len() as f64;
    match primary {
        Some((tutor, n, _)) => {
            f[PRIMARY_TUTOR_SHARE_30D] = ratio(n as f64, n30, 0.0);
            let with_primary7 = s7.iter().filter(|s| s.2 == tutor).count() as f64;
            f[PRIMARY_TUTOR_SHARE_7D] = ratio(with_primary7, n7, 0.0);
            let primary_ratings: Vec<f64> = r30_full.iter().filter(|r| r.0 == tutor).map(|r| r.1).collect();
            f[PRIMARY_TUTOR_AVG_RATING_30D] = mean(&primary_ratings);
        }
        None => {
            f[PRIMARY_TUTOR_SHARE_30D] = 0.0;
            f[PRIMARY_TUTOR_SHARE_7D] = 0.0;
            f[PRIMARY_TUTOR_AVG_RATING_30D] = 0.0;
        }
    }
    let mut switches = 0usize;
    let mut last_switch: Option<i64> = None;
    for pair in s30.windows(2) {
        if pair[1].2 != pair[0].2 {
            switches += 1;
            last_switch = Some(pair[1].0);
        }
    }
    f[TUTOR_SWITCHES_30D] = switches as f64;
    f[TUTOR_SWITCH_RATE_30D] = if s30.len() >= 2 { switches as f64 / (n30 - 1.0) } else { 0.0 };
    f[TUTOR_REPLY_MINUTES_30D] = mean(&reply_minutes(&w30, Party::Tutor));
    f[TUTOR_CANCELLATIONS_30D] = count(&w30, &is_tutor_cancel);
    f[DAYS_SINCE_TUTOR_SWITCH] = days_since_capped(t, last_switch, 30.0);

    f
}
