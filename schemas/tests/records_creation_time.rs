//! `ApproximateCreationDateTime` is checked on every record, event or not:
//! the pipeline advances stream time (and so every timer) to it, and one
//! value in milliseconds instead of seconds used to move stream time to the
//! year ~57,000, firing every customer's timers at once and freezing them.

mod common;

use aws_lambda_events::event::dynamodb::Event as LambdaEvent;
use common::{code, lambda, record, with_creation_time, FIXTURE};
use pulse_schemas::capture::decode_line;
use pulse_schemas::lambda::decode_record;
use pulse_schemas::record::InvalidReason;
use pulse_schemas::validate::{EARLIEST_MS, LATEST_MS};
use serde_json::json;

#[test]
fn an_implausible_creation_time_is_a_dead_letter_whatever_the_item() {
    // Milliseconds instead of seconds, 2^64, negative, zero, absurd, and
    // the first second outside the range on either side.
    let bad = [
        json!(1_767_600_000_000_u64),
        json!(18_446_744_073_709_551_616.0),
        json!(-1),
        json!(0),
        json!(1e300),
        json!(LATEST_MS / 1000),
        json!(EARLIEST_MS / 1000 - 1),
    ];
    // An event insert, a user removal, a TTL removal, a prediction insert.
    for i in [0, 2, 3, 4] {
        for seconds in &bad {
            let line = with_creation_time(record(i), seconds.clone());
            assert_eq!(code(&line), "implausible_creation_time", "record {i}, ACDT {seconds}");
        }
        // Inside the range (the last second before 2200 included).
        for seconds in [json!(EARLIEST_MS / 1000), json!(LATEST_MS / 1000 - 1)] {
            let line = with_creation_time(record(i), seconds.clone());
            if i == 0 && seconds == json!(EARLIEST_MS / 1000) {
                // The event itself is from 2026: now a future event.
                assert_eq!(code(&line), "future_event");
            } else {
                assert!(decode_line(line.to_string().as_bytes()).is_ok(), "record {i}, ACDT {seconds}");
            }
        }
    }
    let line = with_creation_time(record(4), json!(1_767_600_000_000_u64)).to_string();
    let err = decode_line(line.as_bytes()).unwrap_err();
    assert_eq!(err.reason, InvalidReason::ImplausibleCreationTime { created_ms: 1_767_600_000_000_000.0 });
    assert!(err.to_string().contains("ApproximateCreationDateTime 1767600000000 s"), "{err}");
}

#[test]
fn the_lambda_decoder_refuses_an_implausible_creation_time_too() {
    for i in [0, 3, 4] {
        // chrono holds ±262,000 years, so milliseconds read as seconds parse.
        for seconds in [json!(1_767_600_000_000_u64), json!(-86_400), json!(LATEST_MS / 1000)] {
            let r = lambda(&with_creation_time(record(i), seconds.clone()));
            let err = decode_record(&r).unwrap_err();
            assert_eq!(err.reason.code(), "implausible_creation_time", "record {i}, ACDT {seconds}");
        }
    }
}

#[test]
fn a_missing_creation_time_means_the_same_to_both_decoders() {
    // aws_lambda_events reads a missing ApproximateCreationDateTime as the
    // epoch; the Lambda decoder reads the epoch as missing, as the capture
    // decoder does: a non-event record is fine, an added event cannot be
    // judged.
    for i in [0, 3, 4] {
        let mut r = record(i);
        r["dynamodb"].as_object_mut().unwrap().remove("ApproximateCreationDateTime");
        let (line, typed) = (r.to_string(), lambda(&r));
        let from_capture = decode_line(line.as_bytes());
        let from_lambda = decode_record(&typed);
        assert_eq!(from_capture, from_lambda, "record {i}");
        if i == 0 {
            assert_eq!(from_lambda.unwrap_err().reason, InvalidReason::MissingCreationTime);
        } else {
            assert_eq!(from_lambda.unwrap().created_ms, None);
        }
    }
}

#[test]
fn the_reason_has_a_code_and_a_message_in_seconds() {
    let r = InvalidReason::ImplausibleCreationTime { created_ms: -1000.0 };
    assert_eq!(r.code(), "implausible_creation_time");
    assert!(r.to_string().starts_with("dynamodb.ApproximateCreationDateTime -1 s is not"), "{r}");
}

/// The fixture's records (all with plausible times) decode as before.
#[test]
fn the_fixture_still_decodes() {
    let parsed: LambdaEvent = serde_json::from_str(FIXTURE).unwrap();
    for (i, r) in parsed.records.iter().enumerate() {
        let line = record(i).to_string();
        assert_eq!(decode_record(r), decode_line(line.as_bytes()), "record {i}");
        assert!(i == 5 || decode_record(r).is_ok(), "record {i}");
    }
}

/// "A value in milliseconds is 1000 times too large" is said only of a value
/// too large, and "it looks like milliseconds" only of one that, read as
/// milliseconds, is plausible: it used to be said of every implausible
/// value, 0 and -1 s included.
#[test]
fn the_milliseconds_hint_is_given_only_for_a_value_too_large() {
    let message = |created_ms: f64| InvalidReason::ImplausibleCreationTime { created_ms }.to_string();
    for too_small in [-1000.0, 0.0, 946_684_799_000.0] {
        let m = message(too_small);
        assert!(!m.contains("milliseconds is") && !m.contains("looks like"), "{m}");
        assert!(m.ends_with("from 2000-01-01 to before 2200-01-01"), "{m}");
    }
    // 2026-01-05 in milliseconds, read as seconds.
    let m = message(1_767_571_200_000.0 * 1000.0);
    assert!(m.contains("it looks like milliseconds: a value in milliseconds is 1000 times too large"), "{m}");
    // At the end of the range, and far past it: too large, but no time in milliseconds either.
    for too_large in [7_258_118_400_000.0, 1e30] {
        let m = message(too_large);
        assert!(m.ends_with("(a value in milliseconds is 1000 times too large)") && !m.contains("looks like"), "{m}");
    }
}
