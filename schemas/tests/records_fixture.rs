//! Real AWS-shaped DynamoDB Streams records (a Lambda event): both decoders
//! give the same meaning, the fixture round-trips through `aws_lambda_events`,
//! and every rule of §1–§2 that a record can break is reported precisely.

use aws_lambda_events::event::dynamodb::Event as LambdaEvent;
use pulse_schemas::capture::decode_line;
use pulse_schemas::lambda::decode_record;
use pulse_schemas::record::{InvalidReason, Side, StreamChange};
use pulse_schemas::{EventKind, EventTime};

const FIXTURE: &str = include_str!("fixtures/lambda-dynamodb-event.json");

fn records_as_lines() -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(FIXTURE).unwrap();
    v["Records"].as_array().unwrap().iter().map(|r| r.to_string()).collect()
}

#[test]
fn fixture_round_trips_through_aws_lambda_events() {
    let parsed: LambdaEvent = serde_json::from_str(FIXTURE).unwrap();
    let again: LambdaEvent = serde_json::from_str(&serde_json::to_string(&parsed).unwrap()).unwrap();
    assert_eq!(parsed, again);
    assert_eq!(parsed.records.len(), 6);
}

#[test]
fn capture_and_lambda_decoders_agree_on_the_fixture() {
    let parsed: LambdaEvent = serde_json::from_str(FIXTURE).unwrap();
    let lines = records_as_lines();
    for (record, line) in parsed.records.iter().zip(&lines) {
        // Whole seconds, as DynamoDB Streams writes them: aws_lambda_events
        // 1.2 misreads fractional seconds (`.5` becomes 500 ns), so the
        // creation times are compared on whole-second fixtures only.
        let from_lambda = decode_record(record);
        let from_capture = decode_line(line.as_bytes());
        assert_eq!(from_lambda, from_capture, "record {line}");
    }
}

#[test]
fn fixture_records_mean_what_the_contract_says() {
    let lines = records_as_lines();
    let changes: Vec<_> = lines[..5].iter().map(|l| decode_line(l.as_bytes()).unwrap()).collect();
    match &changes[0].change {
        StreamChange::Insert(e) => {
            assert_eq!(e.customer_id, "stu_4821");
            assert_eq!(e.event_id, "e_0001");
            assert_eq!(e.ts, EventTime(1_767_599_990_000));
            assert_eq!(e.kind, EventKind::SessionCompleted { tutor_id: "tut_17".into(), duration_min: 55.5 });
        }
        other => panic!("expected an insert, got {other:?}"),
    }
    assert_eq!(changes[0].created_ms, Some(1_767_600_000_000.0));
    assert_eq!(changes[0].sequence_number.as_deref(), Some("4421584500000000017450439091"));
    match &changes[1].change {
        StreamChange::Modify { old: Some(old), new: Some(new) } => {
            assert!(matches!(old.kind, EventKind::SessionRated { rating, .. } if rating == 2.0));
            assert!(matches!(new.kind, EventKind::SessionRated { rating, .. } if rating == 4.5));
        }
        other => panic!("expected a correction, got {other:?}"),
    }
    assert_eq!(changes[1].created_ms, Some(1_767_600_061_000.0));
    assert!(matches!(changes[2].change, StreamChange::Remove(_)));
    assert_eq!(changes[3].change, StreamChange::TtlExpiry);
    assert_eq!(changes[4].change, StreamChange::NotAnEvent);
    // ts 1767610000000 is 9,700 s after creation: more than an hour ahead.
    let future = decode_line(lines[5].as_bytes()).unwrap_err();
    assert_eq!(future.reason, InvalidReason::FutureEvent { ts: 1_767_610_000_000, created_ms: 1_767_600_300_000.0 });
}

/// A record with one attribute of the INSERT's NewImage replaced.
fn insert_with(attr: &str, value: serde_json::Value) -> String {
    let mut v: serde_json::Value = serde_json::from_str(&records_as_lines()[0]).unwrap();
    let image = v["dynamodb"]["NewImage"].as_object_mut().unwrap();
    if value.is_null() {
        image.remove(attr);
    } else {
        image.insert(attr.to_owned(), value);
    }
    v.to_string()
}

fn reason(line: &str) -> InvalidReason {
    decode_line(line.as_bytes()).unwrap_err().reason
}

#[test]
fn invalid_images_name_the_attribute_and_rule() {
    use serde_json::json;
    assert_eq!(
        reason(&insert_with("ts", json!({"N": "12.5"}))),
        InvalidReason::BadTimestamp { side: Side::New, value: "12.5".into() }
    );
    assert_eq!(
        reason(&insert_with("ts", json!({"S": "1767599990000"}))),
        InvalidReason::WrongType { side: Side::New, name: "ts", expected: "N", found: "S" }
    );
    assert_eq!(
        reason(&insert_with("tutor_id", serde_json::Value::Null)),
        InvalidReason::MissingAttribute { side: Side::New, name: "tutor_id" }
    );
    assert!(matches!(
        reason(&insert_with("duration_min", json!({"N": "0"}))),
        InvalidReason::OutOfRange { name: "duration_min", .. }
    ));
    assert!(matches!(
        reason(&insert_with("duration_min", json!({"N": "600.5"}))),
        InvalidReason::OutOfRange { name: "duration_min", .. }
    ));
    assert!(matches!(
        reason(&insert_with("duration_min", json!({"N": "NaN"}))),
        InvalidReason::NotANumber { name: "duration_min", .. }
    ));
    assert!(matches!(
        reason(&insert_with("duration_min", json!({"N": "inf"}))),
        InvalidReason::NotANumber { name: "duration_min", .. }
    ));
    assert!(matches!(
        reason(&insert_with("event_type", json!({"S": "session_started"}))),
        InvalidReason::UnknownEventType { .. }
    ));
    assert!(matches!(reason(&insert_with("event_id", json!({"S": "has space"}))), InvalidReason::BadEventId { .. }));
    assert!(matches!(reason(&insert_with("event_id", json!({"S": "x".repeat(65)}))), InvalidReason::BadEventId { .. }));
    assert!(decode_line(insert_with("event_id", json!({"S": "x".repeat(64)})).as_bytes()).is_ok());
    // A whole number written as a decimal is still whole.
    assert!(decode_line(insert_with("ts", json!({"N": "1767599990000.0"})).as_bytes()).is_ok());
    // Extra attributes of other types are ignored.
    assert!(decode_line(insert_with("notes", json!({"M": {"a": {"BOOL": true}}})).as_bytes()).is_ok());
}

#[test]
fn a_non_event_image_is_never_invalid() {
    use serde_json::json;
    let line = insert_with("entity_type", json!({"S": "student"}));
    let broken = {
        let mut v: serde_json::Value = serde_json::from_str(&line).unwrap();
        v["dynamodb"]["NewImage"].as_object_mut().unwrap().remove("ts");
        v.to_string()
    };
    assert_eq!(decode_line(broken.as_bytes()).unwrap().change, StreamChange::NotAnEvent);
}

#[test]
fn malformed_lines_are_reported_not_panicked() {
    for line in ["", "not json", "{}", "[1,2]", r#"{"eventName":"INSERT"}"#, r#"{"eventName":"UPSERT","dynamodb":{}}"#]
    {
        let err = decode_line(line.as_bytes()).unwrap_err();
        assert!(!err.to_string().is_empty(), "{line}");
    }
    // Where in the line, not "at line 1 column 24": the dead letter names the
    // capture's line itself.
    assert_eq!(
        reason(r#"{"eventName":"INSERT", bad"#),
        InvalidReason::Malformed("key must be a string at byte 24 of the line".into())
    );
    // A byte order mark counts: the byte is where it is in the capture.
    assert_eq!(
        reason("\u{feff}{\"eventName\":\"INSERT\", bad"),
        InvalidReason::Malformed("key must be a string at byte 27 of the line".into())
    );
    let missing = r#"{"eventName":"INSERT","dynamodb":{"ApproximateCreationDateTime":1767600000}}"#;
    assert_eq!(reason(missing), InvalidReason::MissingImage(Side::New));
}

mod prop {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// No input makes the decoder panic.
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = decode_line(&bytes);
        }

        /// Mutating a valid record's JSON never panics either.
        #[test]
        fn decode_survives_mutations(pos in 0usize..600, byte in any::<u8>()) {
            let mut line = records_as_lines()[1].clone().into_bytes();
            let at = pos % line.len();
            line[at] = byte;
            let _ = decode_line(&line);
        }
    }
}

/// A dead letter's reason stays short whatever the record holds: a value
/// is cut after 40 characters with its length said (the whole record is in
/// the dead letter), and a creation time of 1e300 s reads as 1e300, not as
/// 301 digits.
#[test]
fn reasons_show_long_values_cut_and_huge_times_in_exponent_form() {
    use serde_json::json;
    let digits = "9".repeat(5000);
    let text = reason(&insert_with("ts", json!({ "N": digits }))).to_string();
    assert_eq!(
        text,
        format!("NewImage.ts {:?}… (5000 characters) must be a whole number of milliseconds", &digits[..40])
    );
    let text = reason(&insert_with("event_type", json!({"S": "é".repeat(100)}))).to_string();
    assert!(text.contains("… (100 characters)") && text.len() < 160, "{text}");
    // Short values read as before.
    let text = reason(&insert_with("event_type", json!({"S": "teleport"}))).to_string();
    assert_eq!(text, "NewImage.event_type \"teleport\" is not an event type of the contract");
    let mut v: serde_json::Value = serde_json::from_str(&records_as_lines()[0]).unwrap();
    v["dynamodb"]["ApproximateCreationDateTime"] = json!(1e300);
    let text = reason(&v.to_string()).to_string();
    assert!(
        text.starts_with("dynamodb.ApproximateCreationDateTime 1e300 s is not a plausible creation time"),
        "{text}"
    );
}
