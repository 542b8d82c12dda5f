//! Event times: a value no real producer writes is a dead letter, not an
//! event from 1970 or the year 292 million.

mod common;

use common::{code, insert_with, record};
use pulse_schemas::capture::decode_line;
use pulse_schemas::record::{InvalidReason, Side};
use pulse_schemas::validate::{EARLIEST_MS, LATEST_MS};
use serde_json::json;

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
