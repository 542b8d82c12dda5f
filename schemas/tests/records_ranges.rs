//! Numbers the contract leaves unbounded above (`amount`,
//! `response_minutes`) and event times: a value no real producer writes is a
//! dead letter, not a number that overflows a window's sum to infinity (a
//! `null` in the vector) or an event from 1970 or the year 292 million.

mod common;

use common::{code, insert_with, record};
use pulse_schemas::capture::decode_line;
use pulse_schemas::record::{InvalidReason, Side};
use pulse_schemas::validate::{EARLIEST_MS, LATEST_MS, MAX_UNBOUNDED_VALUE};
use serde_json::{json, Value};

fn payment(amount: &str) -> Value {
    insert_with(&[
        ("event_type", json!({"S": "payment"})),
        ("amount", json!({"N": amount})),
        ("status", json!({"S": "succeeded"})),
    ])
}

fn reply(minutes: &str) -> Value {
    insert_with(&[
        ("event_type", json!({"S": "message_reply"})),
        ("from", json!({"S": "student"})),
        ("response_minutes", json!({"N": minutes})),
    ])
}

#[test]
fn absurd_amounts_and_reply_minutes_are_out_of_range() {
    for absurd in ["1.7e308", "1e13", "1000000000000.001"] {
        for (line, name) in [(payment(absurd), "amount"), (reply(absurd), "response_minutes")] {
            match decode_line(line.to_string().as_bytes()).unwrap_err().reason {
                InvalidReason::OutOfRange { side: Side::New, name: n, rule, .. } => {
                    assert_eq!(n, name, "{absurd}");
                    assert_eq!(rule, "0 <= x <= 1e12");
                }
                other => panic!("{name} = {absurd}: expected out of range, got {other:?}"),
            }
        }
    }
    assert_eq!(MAX_UNBOUNDED_VALUE, 1e12);
    for ok in ["1e12", "1000000000000", "0", "49.99"] {
        for line in [payment(ok), reply(ok)] {
            assert!(decode_line(line.to_string().as_bytes()).is_ok(), "{line}");
        }
    }
}

#[test]
fn implausible_event_times_are_dead_letters_on_either_side() {
    let ts = |ms: i64| json!({"N": ms.to_string()});
    // i64::MIN, before the epoch, the epoch, seconds instead of
    // milliseconds, just outside the range, the largest i64.
    for bad in [i64::MIN, -1, 0, 1_767_599_990, EARLIEST_MS - 1, LATEST_MS, i64::MAX] {
        let added = insert_with(&[("ts", ts(bad))]);
        match decode_line(added.to_string().as_bytes()).unwrap_err().reason {
            InvalidReason::ImplausibleTimestamp { side: Side::New, ts: t } => assert_eq!(t, bad),
            other => panic!("ts {bad}: {other:?}"),
        }
        let mut removed = record(2);
        removed["dynamodb"]["OldImage"]["ts"] = ts(bad);
        match decode_line(removed.to_string().as_bytes()).unwrap_err().reason {
            InvalidReason::ImplausibleTimestamp { side: Side::Old, ts: t } => assert_eq!(t, bad),
            other => panic!("ts {bad}: {other:?}"),
        }
    }
    // The first millisecond of 2000 is plausible; a whole number in decimal
    // or exponent form is judged by its value.
    assert!(decode_line(insert_with(&[("ts", ts(EARLIEST_MS))]).to_string().as_bytes()).is_ok());
    assert_eq!(code(&insert_with(&[("ts", json!({"N": "0.0e3"}))])), "implausible_timestamp");
    // A correction whose OldImage is implausible applies nothing at all.
    let mut correction = record(1);
    correction["dynamodb"]["OldImage"]["ts"] = ts(0);
    assert_eq!(code(&correction), "implausible_timestamp");
}

#[test]
fn the_reason_has_a_code_and_a_message() {
    let r = InvalidReason::ImplausibleTimestamp { side: Side::New, ts: 0 };
    assert_eq!(r.code(), "implausible_timestamp");
    assert!(r.to_string().starts_with("NewImage.ts 0 is not"), "{r}");
}
