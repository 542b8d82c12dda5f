//! The JSON shape of a record: an image (and `Keys`, `dynamodb`,
//! `userIdentity`, the record itself) is a map. serde's derived structs also
//! accept the sequence form, which mapped `"NewImage": [{"S": "stu_x"},
//! {"S": "event"}, ...]` onto the fields by position and applied it as a
//! valid event. And a UTF-8 byte order mark, which editors add, is not
//! part of a line.

mod common;

use aws_lambda_events::event::dynamodb::EventRecord;
use common::{code, record};
use pulse_schemas::capture::decode_line;
use serde_json::json;

/// A login's attribute values in the order of the image's fields.
fn positional() -> serde_json::Value {
    json!([{"S": "stu_x"}, {"S": "event"}, {"S": "e_1"}, {"S": "login"}, {"N": "1767599990000"}])
}

#[test]
fn an_image_written_as_an_array_is_refused() {
    for (field, i) in [("NewImage", 0), ("NewImage", 1), ("OldImage", 1), ("OldImage", 2), ("Keys", 0), ("Keys", 4)] {
        let mut r = record(i);
        r["dynamodb"][field] = positional();
        let err = decode_line(r.to_string().as_bytes()).unwrap_err();
        assert_eq!(err.reason.code(), "malformed_record", "{field} of record {i}");
        let text = err.to_string();
        assert!(text.contains("array") || text.contains("sequence, expected a JSON object"), "{field}: {err}");
        // The Lambda path: aws_lambda_events reads items as maps only.
        assert!(serde_json::from_value::<EventRecord>(r).is_err(), "{field} of record {i}");
    }
    // An attribute value written as an array was already refused.
    let mut r = record(0);
    r["dynamodb"]["NewImage"]["ts"] = json!(["N", "1767599990000"]);
    assert_eq!(code(&r), "malformed_record");
}

#[test]
fn a_record_or_a_part_of_it_written_as_an_array_is_refused() {
    let r = record(0);
    let d = &r["dynamodb"];
    let dynamodb_as_array = json!({
        "eventName": "INSERT",
        "dynamodb": [d["ApproximateCreationDateTime"], d["NewImage"], null, d["SequenceNumber"]],
    });
    assert_eq!(code(&dynamodb_as_array), "malformed_record");
    let record_as_array = json!(["INSERT", d, null]);
    assert_eq!(code(&record_as_array), "malformed_record");
    let mut identity_as_array = record(3);
    identity_as_array["userIdentity"] = json!(["Service", "dynamodb.amazonaws.com"]);
    assert_eq!(code(&identity_as_array), "malformed_record");
    // `null` still means absent, as aws_lambda_events reads it.
    let mut null_keys = record(0);
    null_keys["dynamodb"]["Keys"] = json!(null);
    assert!(decode_line(null_keys.to_string().as_bytes()).is_ok());
}

/// A line that is JSON but no object says what it is and that an object
/// was expected, nothing about arrays unless it is one.
#[test]
fn a_line_that_is_no_object_says_what_it_is() {
    for (line, what) in
        [("null", "null"), ("12345", "integer `12345`"), ("\"hello\"", "string \"hello\""), ("[1]", "sequence")]
    {
        let err = decode_line(line.as_bytes()).unwrap_err().to_string();
        assert!(err.contains(&format!("invalid type: {what}, expected a JSON object")), "{line}: {err}");
        assert!(!err.contains("not an array"), "{line}: {err}");
    }
}

#[test]
fn a_leading_byte_order_mark_is_ignored_once() {
    let line = record(0).to_string();
    let plain = decode_line(line.as_bytes()).unwrap();
    let with_bom = format!("\u{feff}{line}");
    assert_eq!(decode_line(with_bom.as_bytes()).unwrap(), plain);
    // Only one, and only at the start: otherwise the decoder stays strict.
    let twice = format!("\u{feff}\u{feff}{line}");
    assert_eq!(decode_line(twice.as_bytes()).unwrap_err().reason.code(), "malformed_record");
    let inside = format!("{{\u{feff}{}", &line[1..]);
    assert_eq!(decode_line(inside.as_bytes()).unwrap_err().reason.code(), "malformed_record");
}

#[test]
fn an_image_keeps_the_rules_of_the_derive_it_replaced() {
    // An attribute given twice is malformed; `null` is absent; other
    // attributes are ignored.
    let line = record(0).to_string();
    let twice = line.replacen(r#""ts":{"N":"1767599990000"}"#, r#""ts":{"N":"1767599990000"},"ts":{"N":"1"}"#, 1);
    assert_ne!(twice, line);
    let err = decode_line(twice.as_bytes()).unwrap_err();
    assert!(err.to_string().contains("duplicate field `ts`"), "{err}");
    let mut null_ts = record(0);
    null_ts["dynamodb"]["NewImage"]["ts"] = json!(null);
    let err = decode_line(null_ts.to_string().as_bytes()).unwrap_err();
    assert_eq!(err.reason.code(), "missing_attribute");
    let mut extra = record(0);
    extra["dynamodb"]["NewImage"]["notes"] = json!([1, {"a": null}]);
    assert!(decode_line(extra.to_string().as_bytes()).is_ok());
}
