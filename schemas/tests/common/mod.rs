//! Helpers shared by the decoder tests: the fixture's records as JSON values,
//! edited copies of them, and the reason code of a dead letter.
#![allow(dead_code)]

use aws_lambda_events::event::dynamodb::EventRecord;
use pulse_schemas::capture::decode_line;
use serde_json::Value;

/// A real AWS-shaped Lambda DynamoDB event.
pub const FIXTURE: &str = include_str!("../fixtures/lambda-dynamodb-event.json");

/// The fixture's record `i`: 0 inserts an event, 1 corrects one, 2 removes
/// one (by a user), 3 is a TTL removal, 4 inserts a prediction (not an
/// event), 5 inserts a future event.
pub fn record(i: usize) -> Value {
    let v: Value = serde_json::from_str(FIXTURE).unwrap();
    v["Records"][i].clone()
}

/// `record` with its `ApproximateCreationDateTime` replaced.
pub fn with_creation_time(mut record: Value, seconds: Value) -> Value {
    record["dynamodb"]["ApproximateCreationDateTime"] = seconds;
    record
}

/// Record 0 (an INSERT of a completed session) with attributes of its
/// NewImage added or replaced.
pub fn insert_with(attrs: &[(&str, Value)]) -> Value {
    let mut r = record(0);
    let image = r["dynamodb"]["NewImage"].as_object_mut().unwrap();
    for (name, value) in attrs {
        image.insert((*name).to_owned(), value.clone());
    }
    r
}

/// The reason code of a line that must be a dead letter.
pub fn code(line: &Value) -> &'static str {
    match decode_line(line.to_string().as_bytes()) {
        Ok(r) => panic!("expected a dead letter, decoded {r:?} from {line}"),
        Err(e) => e.reason.code(),
    }
}

/// The record as `aws_lambda_events` reads it.
pub fn lambda(record: &Value) -> EventRecord {
    serde_json::from_value(record.clone()).expect("aws_lambda_events reads the record")
}
