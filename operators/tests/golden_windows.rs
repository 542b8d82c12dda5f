//! Golden numbers, computed by hand, for the windows and features of §3–§4 and
//! the record rules of §2 of the contract.
//!
//! Every scenario drives the engine through [`Engine::apply`] with stream
//! records built here, and feeds the same records to the naive reference of
//! `support::reference`. Each expected number is written out with its
//! arithmetic in a comment, and is checked against BOTH implementations — so
//! the reference itself is checked against hand arithmetic, and the engine is
//! checked against the reference on all 46 features.
//!
//! Times: `T0` is a UTC midnight, `D` one day in ms.

mod support;

use pulse_operators::{Emission, Engine, EngineConfig, TimerPolicy};
use pulse_schemas::features::idx::*;
use pulse_schemas::{
    Features, Party, Sentiment, StreamChange, StreamRecord, Trigger, DAY_MS, FEATURE_COUNT, FEATURE_NAMES,
};
use support::reference::{Outcome, Reference};
use support::*;

const T0: i64 = BASE_MS;
const D: i64 = DAY_MS;
/// One millisecond as a fraction of a day.
const MS_DAYS: f64 = 1.0 / DAY_MS as f64;

/// The engine and the reference, fed the same records.
struct Harness {
    engine: Engine,
    reference: Reference,
}

impl Harness {
    fn new() -> Self {
        Harness { engine: Engine::new(EngineConfig { timers: TimerPolicy::Off }), reference: Reference::new() }
    }

    /// Applies a record to both; asserts that both emit (with `T = expected_t`)
    /// or that neither does, and that they agree on every feature.
    /// Returns the emitted features.
    #[track_caller]
    fn apply(&mut self, record: &StreamRecord<'static>, expected_t: Option<i64>) -> Option<Features> {
        let mut out: Vec<Emission> = Vec::new();
        self.engine.apply(record, &mut out);
        let reference = self.reference.apply(&record.change);
        let what = format!("{:?}", record.change);
        match (expected_t, reference) {
            (None, None) => {
                assert!(out.is_empty(), "engine emitted for {what} but nothing should be: {out:?}");
                None
            }
            (Some(t), Some(r)) => {
                assert_eq!(r.as_of, t, "reference emitted at the wrong T for {what}");
                assert_eq!(out.len(), 1, "engine should emit exactly one vector for {what}, got {out:?}");
                let e = &out[0];
                assert_eq!(e.customer_id.as_str(), r.customer_id, "customer of the emission for {what}");
                assert_eq!(e.as_of, t, "engine emitted at the wrong T for {what}");
                assert_eq!(e.trigger, Trigger::Event, "trigger for {what}");
                assert_features_close(&e.features, &r.features, &format!("engine vs reference after {what}"));
                Some(r.features)
            }
            (expected, reference) => {
                panic!("reference emission {reference:?} but the test expects one at {expected:?}, for {what}")
            }
        }
    }

    /// Features of `customer` as of `t` from both, checked equal; returns them.
    #[track_caller]
    fn at(&self, customer: &str, t: i64) -> Features {
        let r = self.reference.features_at(customer, t).expect("reference knows the customer");
        let e = self.engine.features_at(customer, t).expect("engine knows the customer");
        assert_features_close(&e, &r, &format!("engine vs reference for {customer} at T = T0 + {} ms", t - T0));
        r
    }
}

/// Asserts listed features of a vector (already checked equal between the engine and the reference).
#[track_caller]
fn expect(features: &Features, expected: &[(usize, f64)], context: &str) {
    for &(i, v) in expected {
        assert_feature(features, i, v, context);
    }
}

/// A whole expected vector from (index, value) pairs that must name every
/// feature exactly once.
#[track_caller]
fn full(pairs: &[(usize, f64)]) -> Features {
    let mut f: Features = [f64::NAN; FEATURE_COUNT];
    for &(i, v) in pairs {
        assert!(f[i].is_nan(), "{} listed twice", FEATURE_NAMES[i]);
        f[i] = v;
    }
    for (i, v) in f.iter().enumerate() {
        assert!(!v.is_nan(), "{} not listed", FEATURE_NAMES[i]);
    }
    f
}

/// Asserts a whole vector, naming the feature that differs.
#[track_caller]
fn expect_all(features: &Features, expected: &Features, context: &str) {
    assert_features_close(features, expected, context);
}

#[test]
fn window_boundaries_are_open_at_t_minus_n_days() {
    // T = T0 + 40D. Sessions with tutor t1, distinct durations; inserted in ts
    // order so that none is late when it arrives (the first sets C = T - 30D).
    let t = T0 + 40 * D;
    let mut h = Harness::new();
    let plan = [
        ("e", t - 30 * D, 10.0),     // exactly T-30D: out of W_30
        ("f", t - 30 * D + 1, 20.0), // in W_30
        ("c", t - 14 * D, 30.0),     // exactly T-14D: out of W_14, in W_30
        ("d", t - 14 * D + 1, 40.0), // in W_14
        ("a", t - 7 * D, 50.0),      // exactly T-7D: out of W_7, in W_14
        ("b", t - 7 * D + 1, 60.0),  // in W_7
        ("now", t, 70.0),            // T itself: in W_7
    ];
    for (id, ts, minutes) in plan {
        h.apply(&insert(ev("c", id, ts, session("t1", minutes))), Some(ts));
    }
    let f = h.at("c", t);
    expect(
        &f,
        &[
            (SESSIONS_7D, 2.0),              // b, now
            (SESSIONS_14D, 4.0),             // d, a, b, now
            (SESSIONS_30D, 6.0),             // f, c, d, a, b, now
            (SESSIONS_PER_WEEK_30D, 1.4),    // 6 * 7 / 30
            (SESSION_MINUTES_7D, 130.0),     // 60 + 70
            (SESSION_MINUTES_30D, 270.0),    // 20 + 30 + 40 + 50 + 60 + 70
            (AVG_SESSION_MINUTES_30D, 45.0), // 270 / 6
            (SESSION_VELOCITY_CHANGE, 0.0),  // 2 - |{d, a}| in (T-14D, T-7D]
            (SESSION_TREND_RATIO, 1.25),     // (2 + 1) / (1.4 + 1) = 3 / 2.4
            (DAYS_SINCE_LAST_SESSION, 0.0),  // now at T
            (ACTIVE_DAYS_14D, 3.0),          // days 26 (d), 33 (a, b), 40 (now) after T0
            (TENURE_DAYS, 30.0),             // first ts = T - 30D
            (DISTINCT_TUTORS_30D, 1.0),
            (PRIMARY_TUTOR_SHARE_30D, 1.0),
            (PRIMARY_TUTOR_SHARE_7D, 1.0),
            (TUTOR_SWITCHES_30D, 0.0),
            (DAYS_SINCE_TUTOR_SWITCH, 30.0), // no switch
        ],
        "as of T",
    );

    // One millisecond later every boundary event has just left its window.
    let f = h.at("c", t + 1);
    expect(
        &f,
        &[
            (SESSIONS_7D, 1.0),  // now (b at T-7D+1 = (T+1)-7D is out)
            (SESSIONS_14D, 3.0), // a, b, now (d is out)
            (SESSIONS_30D, 5.0), // c, d, a, b, now (f is out)
            (SESSION_MINUTES_7D, 70.0),
            (SESSION_MINUTES_30D, 250.0),       // 30 + 40 + 50 + 60 + 70
            (AVG_SESSION_MINUTES_30D, 50.0),    // 250 / 5
            (SESSION_VELOCITY_CHANGE, -1.0),    // 1 - |{a, b}| in (T+1-14D, T+1-7D]
            (SESSION_TREND_RATIO, 12.0 / 13.0), // (1 + 1) / (5*7/30 + 1) = 2 / (13/6)
            (DAYS_SINCE_LAST_SESSION, MS_DAYS), // 1 ms
            (TENURE_DAYS, 30.0 + MS_DAYS),      // 30 D + 1 ms
            (ACTIVE_DAYS_14D, 2.0),             // days 33 (a, b), 40 (now)
        ],
        "as of T + 1 ms",
    );
}

#[test]
fn velocity_and_trend_do_not_depend_on_arrival_order() {
    // T = T0 + 20D; sessions at T, T-20D, T-2D, T-10D, T-16D, T-1D, arriving
    // out of order (the first sets C = T, none is late).
    let t = T0 + 20 * D;
    let mut h = Harness::new();
    for (i, back) in [0, 20, 2, 10, 16, 1].into_iter().enumerate() {
        h.apply(&insert(ev("v", &format!("s{i}"), t - back * D, session("t1", 30.0))), Some(t));
    }
    let f = h.at("v", t);
    expect(
        &f,
        &[
            (SESSIONS_7D, 3.0),               // T, T-1D, T-2D
            (SESSIONS_14D, 4.0),              // + T-10D
            (SESSIONS_30D, 6.0),              // + T-16D, T-20D
            (SESSIONS_PER_WEEK_30D, 1.4),     // 6 * 7 / 30
            (SESSION_VELOCITY_CHANGE, 2.0),   // 3 - |{T-10D}|
            (SESSION_TREND_RATIO, 5.0 / 3.0), // (3 + 1) / (1.4 + 1) = 4 / 2.4
            (TENURE_DAYS, 20.0),              // first = T - 20D
            (ACTIVE_DAYS_14D, 4.0),           // days 20, 19, 18, 10 after T0
        ],
        "as of T",
    );
}

#[test]
fn active_days_count_utc_days_with_a_boundary_day() {
    // T = T0 + 20D + 12h, so W_14 = (T0 + 6D + 12h, T0 + 20D + 12h].
    let t = T0 + 20 * D + 12 * HOUR_MS;
    let mut h = Harness::new();
    let plan = [
        ("out", T0 + 6 * D + 12 * HOUR_MS, login()),     // exactly T-14D: out of W_14
        ("d6a", T0 + 6 * D + 12 * HOUR_MS + 1, login()), // day 6, in
        ("d6b", T0 + 7 * D - 1, payment(5.0, true)),     // last ms of day 6
        ("d7", T0 + 7 * D, ib_call(Sentiment::Neutral)), // first ms of day 7
        ("d20a", T0 + 20 * D, payment(5.0, false)),      // day 20
        ("d20b", t, ib_call(Sentiment::Positive)),       // day 20, sets C = T
    ];
    let mut c = i64::MIN;
    for (id, ts, kind) in plan {
        c = c.max(ts);
        h.apply(&insert(ev("a", id, ts, kind)), Some(c));
    }
    // As of T: days {6, 7, 20}.
    expect(&h.at("a", t), &[(ACTIVE_DAYS_14D, 3.0)], "as of T");
    // As of T0 + 21D - 1 = T + 12h - 1: W_14 = (T0 + 7D - 1, ...]: day 6 leaves, days {7, 20}.
    expect(&h.at("a", T0 + 21 * D - 1), &[(ACTIVE_DAYS_14D, 2.0)], "as of T0 + 21D - 1 ms");
    // As of T0 + 21D: W_14 = (T0 + 7D, ...]: day 7's only event is at the boundary, so {20}.
    expect(&h.at("a", T0 + 21 * D), &[(ACTIVE_DAYS_14D, 1.0)], "as of T0 + 21D");
}

#[test]
fn primary_tutor_ties_go_to_the_later_latest_session() {
    // T = T0 + 10D. Sessions (by ts): t2 T-8D, t1 T-5D, t1 T-3D, t2 T-2D, t3 T.
    // Counts t1 = 2, t2 = 2, t3 = 1; latest t1 = T-3D < t2 = T-2D, so t2 is primary.
    let t = T0 + 10 * D;
    let mut h = Harness::new();
    h.apply(&insert(ev("p", "s5", t, session("t3", 30.0))), Some(t));
    for (id, back, tutor) in [("s1", 8, "t2"), ("s2", 5, "t1"), ("s3", 3, "t1"), ("s4", 2, "t2")] {
        h.apply(&insert(ev("p", id, t - back * D, session(tutor, 30.0))), Some(t));
    }
    h.apply(&insert(ev("p", "r1", t - D, rated("t2", 4.5))), Some(t));
    h.apply(&insert(ev("p", "r2", t - 6 * D, rated("t2", 1.5))), Some(t));
    h.apply(&insert(ev("p", "r3", t - D, rated("t1", 5.0))), Some(t));
    let f = h.at("p", t);
    expect(
        &f,
        &[
            (DISTINCT_TUTORS_30D, 3.0),
            (PRIMARY_TUTOR_SHARE_30D, 0.4),      // t2: 2 / 5
            (PRIMARY_TUTOR_SHARE_7D, 0.25),      // W_7 = {t1, t1, t2, t3}: 1 / 4
            (PRIMARY_TUTOR_AVG_RATING_30D, 3.0), // t2's ratings (4.5 + 1.5) / 2
            (AVG_RATING_7D, 11.0 / 3.0),         // (4.5 + 1.5 + 5) / 3, all in W_7
            (AVG_RATING_30D, 11.0 / 3.0),
            (RATING_TREND, 0.0),
            (RATINGS_COUNT_30D, 3.0),
            (LOW_RATINGS_30D, 1.0),         // 1.5
            (TUTOR_SWITCHES_30D, 3.0),      // t2->t1 (T-5D), t1->t2 (T-2D), t2->t3 (T)
            (TUTOR_SWITCH_RATE_30D, 0.75),  // 3 / (5 - 1)
            (DAYS_SINCE_TUTOR_SWITCH, 0.0), // latest switch at T
        ],
        "as of T",
    );
}

#[test]
fn primary_tutor_full_ties_go_to_the_smaller_tutor_id_in_byte_order() {
    // T = T0 + 10D (a login). t2: T-6D, T-3D ("a"); t10: T-5D, T-3D ("b").
    // Counts 2 = 2, latest T-3D = T-3D, so the smaller id in byte order wins:
    // "t10" < "t2" (b'1' < b'2'), although 10 > 2 as numbers.
    let t = T0 + 10 * D;
    let mut h = Harness::new();
    h.apply(&insert(ev("q", "l", t, login())), Some(t));
    h.apply(&insert(ev("q", "x", t - 6 * D, session("t2", 30.0))), Some(t));
    h.apply(&insert(ev("q", "y", t - 5 * D, session("t10", 30.0))), Some(t));
    h.apply(&insert(ev("q", "b", t - 3 * D, session("t10", 30.0))), Some(t));
    h.apply(&insert(ev("q", "a", t - 3 * D, session("t2", 30.0))), Some(t));
    h.apply(&insert(ev("q", "r1", t - D, rated("t10", 2.0))), Some(t));
    h.apply(&insert(ev("q", "r2", t - D, rated("t2", 4.0))), Some(t));
    let f = h.at("q", t);
    expect(
        &f,
        &[
            (DISTINCT_TUTORS_30D, 2.0),
            (PRIMARY_TUTOR_SHARE_30D, 0.5),      // t10: 2 / 4
            (PRIMARY_TUTOR_SHARE_7D, 0.5),       // all 4 in W_7; t10 has 2
            (PRIMARY_TUTOR_AVG_RATING_30D, 2.0), // t10's only rating
            (LOW_RATINGS_30D, 1.0),              // 2.0 <= 2
            // Order (ts, event_id): t2 T-6D, t10 T-5D, t2 T-3D "a", t10 T-3D "b":
            // t2->t10, t10->t2, t2->t10.
            (TUTOR_SWITCHES_30D, 3.0),
            (TUTOR_SWITCH_RATE_30D, 1.0),   // 3 / (4 - 1)
            (DAYS_SINCE_TUTOR_SWITCH, 3.0), // latest switch at T-3D
        ],
        "as of T",
    );
}

#[test]
fn tutor_switches_at_equal_ts_follow_event_id_byte_order() {
    // T = T0 + 10D (a login). Sessions: "z" t1 at T-5D, and at S = T-2D:
    // "e10" t1, "e2" t2, "e9" t1. Byte order "e10" < "e2" < "e9", so the order is
    // t1 (z), t1 (e10), t2 (e2), t1 (e9): switches at e2 and e9 = 2.
    // (Numeric id order e2, e9, e10 would give t1, t2, t1, t1 = 2 switches too,
    // but with the latest switch the same; the next check tells them apart.)
    let t = T0 + 10 * D;
    let s = t - 2 * D;
    let mut h = Harness::new();
    h.apply(&insert(ev("w", "l", t, login())), Some(t));
    h.apply(&insert(ev("w", "e9", s, session("t1", 30.0))), Some(t));
    h.apply(&insert(ev("w", "e2", s, session("t2", 30.0))), Some(t));
    h.apply(&insert(ev("w", "e10", s, session("t1", 30.0))), Some(t));
    h.apply(&insert(ev("w", "z", t - 5 * D, session("t1", 30.0))), Some(t));
    let f = h.at("w", t);
    expect(
        &f,
        &[
            (TUTOR_SWITCHES_30D, 2.0),
            (TUTOR_SWITCH_RATE_30D, 2.0 / 3.0), // 2 / (4 - 1)
            (DAYS_SINCE_TUTOR_SWITCH, 2.0),     // latest switch at S = T-2D
            (PRIMARY_TUTOR_SHARE_30D, 0.75),    // t1: 3 / 4
            (DISTINCT_TUTORS_30D, 2.0),
        ],
        "as of T",
    );
    // Drop "z" from W_30: as of T + 25D, W_30 = (T-5D, T+25D]. Left: e10 t1, e2 t2,
    // e9 t1 (byte order): t1->t2, t2->t1 = 2 switches. Numeric order (e2, e9, e10)
    // would be t2, t1, t1 = 1 switch.
    let f = h.at("w", t + 25 * D);
    expect(
        &f,
        &[
            (TUTOR_SWITCHES_30D, 2.0),
            (TUTOR_SWITCH_RATE_30D, 1.0),         // 2 / (3 - 1)
            (DAYS_SINCE_TUTOR_SWITCH, 27.0),      // (T + 25D) - (T - 2D)
            (PRIMARY_TUTOR_SHARE_30D, 2.0 / 3.0), // t1: 2 / 3
            (PRIMARY_TUTOR_SHARE_7D, 0.0),        // no session in W_7
        ],
        "as of T + 25D",
    );
    // As of T + 28D - 1 ms the sessions at S are 30D - 1 ms old: still in W_30.
    let f = h.at("w", t + 28 * D - 1);
    expect(&f, &[(TUTOR_SWITCHES_30D, 2.0), (DAYS_SINCE_TUTOR_SWITCH, 30.0 - MS_DAYS)], "as of T + 28D - 1 ms");
    // As of T + 28D they are exactly 30D old: out; no session, no switch -> 30.
    let f = h.at("w", t + 28 * D);
    expect(
        &f,
        &[
            (SESSIONS_30D, 0.0),
            (TUTOR_SWITCHES_30D, 0.0),
            (TUTOR_SWITCH_RATE_30D, 0.0),
            (DAYS_SINCE_TUTOR_SWITCH, 30.0),
            (DISTINCT_TUTORS_30D, 0.0),
            (PRIMARY_TUTOR_SHARE_30D, 0.0),
            (DAYS_SINCE_LAST_SESSION, 30.0), // ever: latest session at S
        ],
        "as of T + 28D",
    );
}

/// The all-feature scenario of [`every_feature_by_hand`]: T = T0 + 30D.
fn every_feature_events() -> Vec<(&'static str, i64, pulse_schemas::EventKind<'static>)> {
    let t = T0 + 30 * D;
    vec![
        ("c0", t - 35 * D, ib_call(Sentiment::Negative)), // first (else late); past W_30
        ("s3", t - 20 * D, session("t1", 45.0)),
        ("l0", t, login()), // sets C = T
        ("s2", t - 10 * D, session("t2", 30.0)),
        ("s1", t - D, session("t1", 60.0)),
        ("r1", t - D, rated("t1", 5.0)),
        ("r2", t - 10 * D, rated("t2", 2.0)),
        ("r3", t - 20 * D, rated("t1", 3.5)),
        ("l1", t - 2 * D, login()),
        ("l2", t - 12 * D, login()),
        ("p1", t - 5 * D, payment(20.0, true)),
        ("p2", t - 6 * D, payment(20.0, false)),
        ("p3", t - 25 * D, payment(99.5, true)),
        ("c1", t - 3 * D, ib_call(Sentiment::Neutral)),
        ("c2", t - 15 * D, ib_call(Sentiment::Negative)),
        ("x1", t - 4 * D, cancelled("t1", Party::Student)),
        ("x2", t - 8 * D, cancelled("t2", Party::Tutor)),
        ("n1", t - 9 * D, no_show("t2")),
        ("m1", t - 2 * D, reply(Party::Student, 10.0, Some("t1"))),
        ("m2", t - 16 * D, reply(Party::Student, 20.0, None)),
        ("m3", t - 3 * D, reply(Party::Tutor, 90.0, None)),
    ]
}

#[test]
fn every_feature_by_hand() {
    let t = T0 + 30 * D;
    let mut h = Harness::new();
    let mut c = i64::MIN;
    for (id, ts, kind) in every_feature_events() {
        c = c.max(ts);
        h.apply(&insert(ev("all", id, ts, kind)), Some(c));
    }
    // Day offsets after T0 of W_14's events: s1 29, r1 29, l1 28, l0 30, p1 25,
    // p2 24, c1 27, x1 26, m1 28, m3 27, s2 20, r2 20, l2 18, x2 22, n1 21.
    let at_t = full(&[
        (SESSIONS_7D, 1.0),           // s1
        (SESSIONS_14D, 2.0),          // s1, s2
        (SESSIONS_30D, 3.0),          // s1, s2, s3
        (SESSIONS_PER_WEEK_30D, 0.7), // 3 * 7 / 30
        (SESSION_MINUTES_7D, 60.0),
        (SESSION_MINUTES_30D, 135.0),     // 60 + 30 + 45
        (AVG_SESSION_MINUTES_30D, 45.0),  // 135 / 3
        (SESSION_VELOCITY_CHANGE, 0.0),   // 1 - |{s2}|
        (SESSION_TREND_RATIO, 2.0 / 1.7), // (1 + 1) / (0.7 + 1)
        (DAYS_SINCE_LAST_SESSION, 1.0),   // s1
        (DAYS_SINCE_LAST_LOGIN, 0.0),     // l0
        (ACTIVE_DAYS_14D, 11.0),          // {18, 20, 21, 22, 24, 25, 26, 27, 28, 29, 30}
        (TENURE_DAYS, 35.0),              // c0
        (AVG_RATING_7D, 5.0),             // r1
        (AVG_RATING_14D, 3.5),            // (5 + 2) / 2
        (AVG_RATING_30D, 3.5),            // (5 + 2 + 3.5) / 3
        (RATING_TREND, 1.5),              // 5 - 3.5
        (RATINGS_COUNT_30D, 3.0),
        (LOW_RATINGS_30D, 1.0),         // r2 = 2
        (LOGINS_7D, 2.0),               // l0, l1
        (LOGINS_30D, 3.0),              // + l2
        (PAYMENT_SUCCESS_RATE_7D, 0.5), // p1 ok, p2 failed
        (PAYMENT_SUCCESS_RATE_14D, 0.5),
        (PAYMENT_SUCCESS_RATE_30D, 2.0 / 3.0), // + p3 ok
        (PAYMENT_FAILURES_30D, 1.0),
        (PAYMENT_AMOUNT_30D, 119.5),    // 20 + 99.5
        (DAYS_SINCE_LAST_PAYMENT, 5.0), // p1
        (IB_CALLS_7D, 1.0),             // c1
        (IB_CALLS_14D, 1.0),
        (IB_CALLS_30D, 2.0),             // c1, c2 (c0 is out)
        (NEGATIVE_CALL_RATE_30D, 0.5),   // c2 / 2
        (DAYS_SINCE_LAST_IB_CALL, 3.0),  // c1
        (STUDENT_CANCELLATIONS_7D, 1.0), // x1
        (STUDENT_CANCELLATIONS_30D, 1.0),
        (CANCELLATION_RATE_30D, 0.2), // 1 / (3 + 1 + 1)
        (NO_SHOWS_30D, 1.0),
        (STUDENT_REPLY_MINUTES_30D, 15.0), // (10 + 20) / 2
        (DISTINCT_TUTORS_30D, 2.0),
        (PRIMARY_TUTOR_SHARE_30D, 2.0 / 3.0), // t1: s3, s1
        (PRIMARY_TUTOR_SHARE_7D, 1.0),        // s1 is t1
        (PRIMARY_TUTOR_AVG_RATING_30D, 4.25), // (5 + 3.5) / 2
        (TUTOR_SWITCHES_30D, 2.0),            // s3 t1 -> s2 t2 -> s1 t1
        (TUTOR_SWITCH_RATE_30D, 1.0),         // 2 / (3 - 1)
        (TUTOR_REPLY_MINUTES_30D, 90.0),      // m3
        (TUTOR_CANCELLATIONS_30D, 1.0),       // x2
        (DAYS_SINCE_TUTOR_SWITCH, 1.0),       // s1 at T-1D
    ]);
    expect_all(&h.at("all", t), &at_t, "every feature as of T");

    // As of T' = T + 7D: W_7 = (T, T+7D] is empty (l0 at T is on the boundary);
    // W_14 = (T-7D, T+7D] = the old W_7; W_30 = (T-23D, T+7D] loses p3 only.
    let at_t7 = full(&[
        (SESSIONS_7D, 0.0),
        (SESSIONS_14D, 1.0), // s1
        (SESSIONS_30D, 3.0),
        (SESSIONS_PER_WEEK_30D, 0.7),
        (SESSION_MINUTES_7D, 0.0),
        (SESSION_MINUTES_30D, 135.0),
        (AVG_SESSION_MINUTES_30D, 45.0),
        (SESSION_VELOCITY_CHANGE, -1.0),  // 0 - |{s1}|
        (SESSION_TREND_RATIO, 1.0 / 1.7), // (0 + 1) / (0.7 + 1)
        (DAYS_SINCE_LAST_SESSION, 8.0),
        (DAYS_SINCE_LAST_LOGIN, 7.0),
        (ACTIVE_DAYS_14D, 7.0), // {24, 25, 26, 27, 28, 29, 30}
        (TENURE_DAYS, 42.0),
        (AVG_RATING_7D, 0.0),
        (AVG_RATING_14D, 5.0), // r1
        (AVG_RATING_30D, 3.5),
        (RATING_TREND, 0.0), // no rating in W_7
        (RATINGS_COUNT_30D, 3.0),
        (LOW_RATINGS_30D, 1.0),
        (LOGINS_7D, 0.0),
        (LOGINS_30D, 3.0),              // l0, l1, l2
        (PAYMENT_SUCCESS_RATE_7D, 1.0), // no payment: default 1
        (PAYMENT_SUCCESS_RATE_14D, 0.5),
        (PAYMENT_SUCCESS_RATE_30D, 0.5), // p3 left
        (PAYMENT_FAILURES_30D, 1.0),
        (PAYMENT_AMOUNT_30D, 20.0),
        (DAYS_SINCE_LAST_PAYMENT, 12.0),
        (IB_CALLS_7D, 0.0),
        (IB_CALLS_14D, 1.0),
        (IB_CALLS_30D, 2.0),
        (NEGATIVE_CALL_RATE_30D, 0.5),
        (DAYS_SINCE_LAST_IB_CALL, 10.0),
        (STUDENT_CANCELLATIONS_7D, 0.0),
        (STUDENT_CANCELLATIONS_30D, 1.0),
        (CANCELLATION_RATE_30D, 0.2),
        (NO_SHOWS_30D, 1.0),
        (STUDENT_REPLY_MINUTES_30D, 15.0),
        (DISTINCT_TUTORS_30D, 2.0),
        (PRIMARY_TUTOR_SHARE_30D, 2.0 / 3.0),
        (PRIMARY_TUTOR_SHARE_7D, 0.0), // sessions_7d = 0
        (PRIMARY_TUTOR_AVG_RATING_30D, 4.25),
        (TUTOR_SWITCHES_30D, 2.0),
        (TUTOR_SWITCH_RATE_30D, 1.0),
        (TUTOR_REPLY_MINUTES_30D, 90.0),
        (TUTOR_CANCELLATIONS_30D, 1.0),
        (DAYS_SINCE_TUTOR_SWITCH, 8.0), // (T + 7D) - (T - 1D)
    ]);
    expect_all(&h.at("all", t + 7 * D), &at_t7, "every feature as of T + 7D");
}

#[test]
fn duplicates_late_records_retractions_and_corrections() {
    let c = "dup";
    let mut h = Harness::new();
    let e1 = ev(c, "e1", T0, session("t1", 60.0));

    // 1. First event: C = T0.
    let f = h.apply(&insert(e1.clone()), Some(T0)).expect("emits");
    expect(&f, &[(SESSIONS_7D, 1.0), (SESSION_MINUTES_7D, 60.0)], "1. first insert");
    // 2. Redelivery: duplicate, nothing changes.
    h.apply(&insert(e1.clone()), None);
    // 3. Same id, other attributes and ts: still a duplicate (the id is held).
    h.apply(&insert(ev(c, "e1", T0 + D, session("t2", 30.0))), None);
    expect(&h.at(c, T0 + D), &[(SESSIONS_7D, 1.0), (SESSION_MINUTES_7D, 60.0)], "3. duplicate ignored");

    // 4. A login 40D later: C = T0 + 40D; e1 (T0) is now past the horizon (T0 <= C - 30D).
    let t = T0 + 40 * D;
    let f = h.apply(&insert(ev(c, "l1", t, login())), Some(t)).expect("emits");
    expect(
        &f,
        &[(SESSIONS_30D, 0.0), (DAYS_SINCE_LAST_SESSION, 40.0), (LOGINS_7D, 1.0), (TENURE_DAYS, 40.0)],
        "4. e1 is out of W_30 but counts for the 'ever' recency",
    );
    // 5. Retracting e1 now is late: dropped, e1 still counts "ever".
    h.apply(&remove(e1.clone()), None);
    expect(&h.at(c, t), &[(DAYS_SINCE_LAST_SESSION, 40.0)], "5. late retraction");
    // 5b. Adding at exactly C - 30D is late; 1 ms later is accepted.
    h.apply(&insert(ev(c, "l-late", t - 30 * D, login())), None);
    let f = h.apply(&insert(ev(c, "l-edge", t - 30 * D + 1, login())), Some(t)).expect("emits");
    expect(&f, &[(LOGINS_7D, 1.0), (LOGINS_30D, 2.0)], "5b. C - 30D + 1 ms is in");

    // 6. A failed payment at T0 + 35D.
    let p_failed = ev(c, "p", T0 + 35 * D, payment(50.0, false));
    let f = h.apply(&insert(p_failed.clone()), Some(t)).expect("emits");
    expect(
        &f,
        &[
            (PAYMENT_SUCCESS_RATE_7D, 0.0), // 0 / 1
            (PAYMENT_SUCCESS_RATE_14D, 0.0),
            (PAYMENT_SUCCESS_RATE_30D, 0.0),
            (PAYMENT_FAILURES_30D, 1.0),
            (PAYMENT_AMOUNT_30D, 0.0),
            (DAYS_SINCE_LAST_PAYMENT, 365.0), // no succeeded payment
        ],
        "6. failed payment",
    );
    // 7. Correction: it succeeded, for 80.
    let p_ok = ev(c, "p", T0 + 35 * D, payment(80.0, true));
    let f = h.apply(&modify(Some(p_failed.clone()), Some(p_ok.clone())), Some(t)).expect("emits");
    expect(
        &f,
        &[
            (PAYMENT_SUCCESS_RATE_7D, 1.0),
            (PAYMENT_FAILURES_30D, 0.0),
            (PAYMENT_AMOUNT_30D, 80.0),
            (DAYS_SINCE_LAST_PAYMENT, 5.0), // (T0 + 40D) - (T0 + 35D)
        ],
        "7. corrected payment",
    );
    // 8. A MODIFY that changes no contract attribute emits nothing.
    h.apply(&modify(Some(p_ok.clone()), Some(p_ok.clone())), None);
    // 8b. A MODIFY whose OldImage is stale (says failed) but whose NewImage equals the
    // held copy: the held copy is retracted whatever it says, then re-added: no change.
    h.apply(&modify(Some(p_failed.clone()), Some(p_ok.clone())), None);

    // 9. Correction of e1 whose OldImage is late: not retracted; the NewImage (an
    // in-horizon ts) is added, as e1's id is no longer held within the horizon.
    let e1_new = ev(c, "e1", T0 + 39 * D, session("t2", 45.0));
    let f = h.apply(&modify(Some(e1.clone()), Some(e1_new.clone())), Some(t)).expect("emits");
    expect(
        &f,
        &[(SESSIONS_7D, 1.0), (SESSION_MINUTES_7D, 45.0), (DAYS_SINCE_LAST_SESSION, 1.0)],
        "9. late OldImage kept, NewImage added",
    );
    // 10. A user REMOVE of e1 whose OldImage disagrees with the held copy (a login at
    // T0 + 38D): not late, so the held in-horizon e1 goes whatever it says. The
    // past-horizon e1 (T0) still counts "ever": 40 days.
    let f = h.apply(&remove(ev(c, "e1", T0 + 38 * D, login())), Some(t)).expect("emits");
    expect(
        &f,
        &[(SESSIONS_30D, 0.0), (SESSION_MINUTES_30D, 0.0), (DAYS_SINCE_LAST_SESSION, 40.0), (LOGINS_30D, 2.0)],
        "10. retraction",
    );
    // 11. Retracting it again: not held, a no-op.
    h.apply(&remove(e1_new.clone()), None);
    // 12. Added again after its retraction: held again.
    let f = h.apply(&insert(ev(c, "e1", T0 + 39 * D, session("t1", 20.0))), Some(t)).expect("emits");
    expect(&f, &[(SESSIONS_7D, 1.0), (SESSION_MINUTES_7D, 20.0), (DAYS_SINCE_LAST_SESSION, 1.0)], "12. re-add");
    // 13. Retracting an id never held; TTL expiries and non-events: nothing.
    h.apply(&remove(ev(c, "never", T0 + 39 * D, login())), None);
    h.apply(&record(StreamChange::TtlExpiry), None);
    h.apply(&record(StreamChange::NotAnEvent), None);
    // 14. MODIFY with one side only: a retraction, then an add.
    let f = h.apply(&modify(Some(ev(c, "l-edge", t - 30 * D + 1, login())), None), Some(t)).expect("emits");
    expect(&f, &[(LOGINS_30D, 1.0)], "14. MODIFY without a NewImage event");
    let f = h.apply(&modify(None, Some(ev(c, "l2", t - D, login()))), Some(t)).expect("emits");
    expect(
        &f,
        &[(LOGINS_30D, 2.0), (LOGINS_7D, 2.0), (DAYS_SINCE_LAST_LOGIN, 0.0)],
        "14. MODIFY without an OldImage event",
    );

    // The reference's own account of the rules, side by side with the steps above.
    use Outcome::*;
    assert_eq!(
        h.reference.outcomes,
        vec![
            Added, Duplicate, Duplicate, Added, // 1-4
            Late, Late, Added, Added, // 5, 5b, 6
            Retracted, Added, Retracted, Added, Retracted, Added, // 7, 8, 8b
            Late, Added, Retracted, NotHeld, Added, NotHeld, // 9-13
            Retracted, Added, // 14
        ],
        "reference outcomes"
    );

    // 15. A retraction for a customer never seen: nothing, and still unknown.
    h.apply(&remove(ev("ghost", "g", T0, login())), None);
    assert!(h.reference.features_at("ghost", T0).is_none());
    assert!(h.engine.features_at("ghost", T0).is_none(), "engine must not know 'ghost'");
    assert_eq!(h.engine.customer_clock("ghost"), None);
    // And no features before the clock.
    assert!(h.engine.features_at(c, t - 1).is_none(), "engine: T < C has no features");
    assert_eq!(h.engine.customer_clock(c), Some(t));
}

#[test]
fn payment_success_rates_default_to_one() {
    let t = T0 + 30 * D;
    let mut h = Harness::new();
    // A customer with no payment at all.
    let f = h.apply(&insert(ev("np", "l", t, login())), Some(t)).expect("emits");
    expect(
        &f,
        &[
            (PAYMENT_SUCCESS_RATE_7D, 1.0),
            (PAYMENT_SUCCESS_RATE_14D, 1.0),
            (PAYMENT_SUCCESS_RATE_30D, 1.0),
            (PAYMENT_FAILURES_30D, 0.0),
            (PAYMENT_AMOUNT_30D, 0.0),
            (DAYS_SINCE_LAST_PAYMENT, 365.0),
            // and the other defaults of an empty customer
            (AVG_SESSION_MINUTES_30D, 0.0),
            (SESSION_TREND_RATIO, 1.0), // (0 + 1) / (0 + 1)
            (DAYS_SINCE_LAST_SESSION, 365.0),
            (DAYS_SINCE_LAST_IB_CALL, 365.0),
            (NEGATIVE_CALL_RATE_30D, 0.0),
            (CANCELLATION_RATE_30D, 0.0),
            (DAYS_SINCE_TUTOR_SWITCH, 30.0),
            (TENURE_DAYS, 0.0),
            (ACTIVE_DAYS_14D, 1.0),
        ],
        "no payment",
    );
    // Payments: ok 100 at T-10D, failed 40 at T-20D, failed 15 at T-3D.
    h.apply(&insert(ev("pay", "l", t, login())), Some(t));
    h.apply(&insert(ev("pay", "a", t - 10 * D, payment(100.0, true))), Some(t));
    h.apply(&insert(ev("pay", "b", t - 20 * D, payment(40.0, false))), Some(t));
    let f = h.at("pay", t);
    expect(
        &f,
        &[
            (PAYMENT_SUCCESS_RATE_7D, 1.0),  // none in W_7: default
            (PAYMENT_SUCCESS_RATE_14D, 1.0), // 1 / 1
            (PAYMENT_SUCCESS_RATE_30D, 0.5), // 1 / 2
        ],
        "before the W_7 failure",
    );
    h.apply(&insert(ev("pay", "c", t - 3 * D, payment(15.0, false))), Some(t));
    let f = h.at("pay", t);
    expect(
        &f,
        &[
            (PAYMENT_SUCCESS_RATE_7D, 0.0),  // 0 / 1
            (PAYMENT_SUCCESS_RATE_14D, 0.5), // 1 / 2
            (PAYMENT_SUCCESS_RATE_30D, 1.0 / 3.0),
            (PAYMENT_FAILURES_30D, 2.0),
            (PAYMENT_AMOUNT_30D, 100.0), // failed amounts do not count
            (DAYS_SINCE_LAST_PAYMENT, 10.0),
        ],
        "with the W_7 failure",
    );
}

#[test]
fn tenure_keeps_the_first_accepted_ts_after_retraction() {
    let mut h = Harness::new();
    let first = ev("ten", "e1", T0, login());
    h.apply(&insert(first.clone()), Some(T0));
    h.apply(&insert(ev("ten", "e2", T0 + 5 * D, session("t1", 30.0))), Some(T0 + 5 * D));
    let f = h.apply(&remove(first), Some(T0 + 5 * D)).expect("emits");
    expect(
        &f,
        &[
            (TENURE_DAYS, 5.0),             // from T0, although e1 is gone
            (DAYS_SINCE_LAST_LOGIN, 365.0), // no login held
            (LOGINS_30D, 0.0),
            (ACTIVE_DAYS_14D, 1.0), // only e2's day
        ],
        "after retracting the first event",
    );
    expect(&h.at("ten", T0 + 5 * D + 12 * HOUR_MS), &[(TENURE_DAYS, 5.5)], "12h later");

    // A correction that moves the first event later does not move tenure either.
    let mut h = Harness::new();
    let x = ev("mv", "x", T0, login());
    h.apply(&insert(x.clone()), Some(T0));
    let f = h.apply(&modify(Some(x), Some(ev("mv", "x", T0 + 2 * D, login()))), Some(T0 + 2 * D)).expect("emits");
    expect(&f, &[(TENURE_DAYS, 2.0), (LOGINS_7D, 1.0), (DAYS_SINCE_LAST_LOGIN, 0.0)], "moved first event");
    // And the clock is not lowered by retracting the latest event.
    let f = h.apply(&remove(ev("mv", "x", T0 + 2 * D, login())), Some(T0 + 2 * D)).expect("emits");
    expect(&f, &[(TENURE_DAYS, 2.0), (LOGINS_7D, 0.0)], "clock kept after retraction");
    assert_eq!(h.engine.customer_clock("mv"), Some(T0 + 2 * D));
}

#[test]
fn customers_are_independent_even_with_equal_event_ids() {
    let t = T0 + 3 * D;
    let mut h = Harness::new();
    h.apply(&insert(ev("c1", "same", t, session("t1", 30.0))), Some(t));
    // Same event_id for another customer: not a duplicate.
    let f = h.apply(&insert(ev("c2", "same", t - D, session("t2", 50.0))), Some(t - D)).expect("emits");
    expect(&f, &[(SESSIONS_7D, 1.0), (SESSION_MINUTES_7D, 50.0)], "c2");
    // Retracting c2's event leaves c1's.
    h.apply(&remove(ev("c2", "same", t - D, session("t2", 50.0))), Some(t - D));
    expect(&h.at("c1", t), &[(SESSIONS_7D, 1.0), (SESSION_MINUTES_7D, 30.0)], "c1 untouched");
    expect(&h.at("c2", t), &[(SESSIONS_7D, 0.0), (TENURE_DAYS, 1.0)], "c2 emptied");
}
