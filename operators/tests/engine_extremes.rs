//! No emitted feature is ever non-finite, for any input the decoder accepts.
//!
//! Two succeeded payments of `1.7e308` (each a finite number) used to make
//! `payment_amount_30d` infinite, written as `null` in the vector. The
//! records here go through the capture decoder, so what is tested is the
//! pair "decoder + engine": extreme values are either refused as dead
//! letters or summed and averaged to finite features. The values sit on the
//! edges of what the contract's numbers allow: zero, subnormal, the largest
//! accepted amount and reply time and the first ones refused, durations up
//! to 600 and fractional ratings, many of them in one window, with
//! retractions and timers.

use proptest::prelude::*;
use pulse_operators::{Emission, Engine, EngineConfig};
use pulse_schemas::capture::decode_line;
use pulse_schemas::{DAY_MS, FEATURE_NAMES};
use serde_json::{json, Value};

/// 2023-11-14T00:00:00Z.
const BASE_MS: i64 = 19_675 * DAY_MS;

/// Attributes of an event with a number on the edge of its range.
#[derive(Clone, Debug)]
enum Extreme {
    Payment(f64),
    StudentReply(f64),
    TutorReply(f64),
    Session(f64),
    Rating(f64),
}

impl Extreme {
    fn attrs(&self) -> Vec<(&'static str, Value)> {
        let n = |x: f64| json!({"N": format!("{x:e}")});
        let s = |x: &str| json!({"S": x});
        match *self {
            Extreme::Payment(x) => {
                vec![("event_type", s("payment")), ("amount", n(x)), ("status", s("succeeded"))]
            }
            Extreme::StudentReply(x) => {
                vec![("event_type", s("message_reply")), ("from", s("student")), ("response_minutes", n(x))]
            }
            Extreme::TutorReply(x) => vec![
                ("event_type", s("message_reply")),
                ("from", s("tutor")),
                ("response_minutes", n(x)),
                ("tutor_id", s("t1")),
            ],
            Extreme::Session(x) => {
                vec![("event_type", s("session_completed")), ("duration_min", n(x)), ("tutor_id", s("t1"))]
            }
            Extreme::Rating(x) => vec![("event_type", s("session_rated")), ("rating", n(x)), ("tutor_id", s("t1"))],
        }
    }
}

/// A capture line that inserts (or, `remove`, retracts) the event `id` of
/// customer `c1` at `ts`.
fn line(id: usize, ts: i64, extreme: &Extreme, remove: bool) -> String {
    let mut image = json!({
        "customer_id": {"S": "c1"},
        "entity_type": {"S": "event"},
        "event_id": {"S": format!("e{id}")},
        "ts": {"N": ts.to_string()},
    });
    for (name, value) in extreme.attrs() {
        image[name] = value;
    }
    let (name, side) = if remove { ("REMOVE", "OldImage") } else { ("INSERT", "NewImage") };
    json!({
        "eventName": name,
        "dynamodb": {"ApproximateCreationDateTime": ts / 1000 + 60, side: image},
    })
    .to_string()
}

/// Decodes and applies each line as a replay does (timers on stream time
/// first); dead letters are skipped. Then fires timers for 40 days.
fn run(lines: &[String]) -> Vec<Emission> {
    let engine = Engine::new(EngineConfig::default());
    let mut out = Vec::new();
    let mut now = BASE_MS;
    for l in lines {
        let Ok(record) = decode_line(l.as_bytes()) else { continue };
        if let Some(created) = record.created_ms {
            now = now.max(created as i64);
            engine.advance_to(now, &mut out);
        }
        engine.apply(&record, &mut out);
    }
    engine.advance_to(now + 40 * DAY_MS, &mut out);
    out
}

fn non_finite(out: &[Emission]) -> Option<String> {
    out.iter().find_map(|e| {
        e.features
            .iter()
            .position(|x| !x.is_finite())
            .map(|i| format!("{} = {} as of {}", FEATURE_NAMES[i], e.features[i], e.as_of))
    })
}

#[test]
fn two_payments_of_1_7e308_do_not_overflow_the_amount() {
    let lines: Vec<String> =
        (0..2).map(|i| line(i, BASE_MS + i as i64 * 60_000, &Extreme::Payment(1.7e308), false)).collect();
    let out = run(&lines);
    assert_eq!(non_finite(&out), None);
}

#[test]
fn many_of_the_largest_accepted_values_sum_exactly() {
    // 1e12 is the largest amount and reply time accepted (see
    // pulse_schemas::validate::MAX_UNBOUNDED_VALUE).
    let lines: Vec<String> = (0..1000)
        .map(|i| line(i, BASE_MS + i as i64 * 60_000, &Extreme::Payment(1e12), false))
        .chain((1000..1100).map(|i| line(i, BASE_MS + i as i64 * 60_000, &Extreme::TutorReply(1e12), false)))
        .collect();
    let out = run(&lines);
    assert_eq!(non_finite(&out), None);
    let last_event = out.iter().rfind(|e| e.trigger == pulse_schemas::Trigger::Event).unwrap();
    let f = &last_event.features;
    assert_eq!(f[pulse_schemas::features::idx::PAYMENT_AMOUNT_30D], 1e15);
    assert_eq!(f[pulse_schemas::features::idx::TUTOR_REPLY_MINUTES_30D], 1e12);
}

fn extreme_value() -> impl Strategy<Value = f64> {
    prop_oneof![
        proptest::sample::select(vec![
            0.0,
            -0.0,
            5e-324,
            f64::MIN_POSITIVE,
            1e-300,
            0.1,
            1.0,
            5.0,
            600.0,
            599.999_999_999,
            1e12,
            1e12 - 1.0 / 8192.0,
            1e12 + 1.0 / 8192.0,
            4.0e18,
            4.7e18,
            1e19,
            1e300,
            1.7e308,
            f64::MAX,
        ]),
        0.0..1e13,
        any::<f64>().prop_filter("finite", |x| x.is_finite() && *x >= 0.0),
    ]
}

fn extreme() -> impl Strategy<Value = Extreme> {
    (0..5u8, extreme_value()).prop_map(|(k, x)| match k {
        0 => Extreme::Payment(x),
        1 => Extreme::StudentReply(x),
        2 => Extreme::TutorReply(x),
        3 => Extreme::Session(x),
        _ => Extreme::Rating(x),
    })
}

proptest! {
    /// Random events with extreme values (a few minutes to days apart, so
    /// windows fill and drain), each possibly retracted later: every vector,
    /// event or timer, holds 46 finite numbers.
    #[test]
    fn no_emitted_feature_is_non_finite(
        events in proptest::collection::vec((extreme(), 0..3 * DAY_MS, any::<bool>()), 1..60),
    ) {
        // One ordinary event first, so that there is always a customer.
        let mut lines = vec![line(1000, BASE_MS, &Extreme::Payment(49.99), false)];
        let mut ts = BASE_MS;
        for (i, (e, gap, retract)) in events.iter().enumerate() {
            ts += gap / 8;
            lines.push(line(i, ts, e, false));
            if *retract {
                lines.push(line(i, ts, e, true));
            }
        }
        let out = run(&lines);
        prop_assert!(!out.is_empty());
        prop_assert_eq!(non_finite(&out), None);
    }
}
