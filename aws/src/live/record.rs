//! SDK records as capture lines.
//!
//! Every record a live source reads becomes ONE line of the capture format
//! (`pulse_schemas::capture`): JSON in the shape of an element of a Lambda
//! DynamoDB event's `Records`. The live run, `pulse capture` and `pulse replay`
//! then decode the same bytes with the same decoder, so a capture replayed
//! gives the vectors the live run gave, by construction.
//!
//! * DynamoDB Streams ([`dynamodb_streams_line`]): the SDK's typed record,
//!   serialized field by field; attribute maps in key order, so the same
//!   record always gives the same bytes.
//! * Kinesis Data Streams for DynamoDB ([`kinesis_line`]): the payload is
//!   already JSON of nearly that shape, but `ApproximateCreationDateTime` is in
//!   MILLISECONDS there (MICROSECONDS when the destination was configured with
//!   that precision), where DynamoDB Streams and Lambda use seconds. It is
//!   rewritten as seconds with the fraction kept, so the future-event check and
//!   the timers see the time DynamoDB Streams would have given. A payload that
//!   is not a JSON object is passed through unchanged: the decoder makes it a
//!   dead letter with its bytes.

use std::collections::BTreeMap;

use aws_sdk_dynamodbstreams::types::{AttributeValue, Record};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::Value;

/// The capture line of a DynamoDB Streams record read from `stream_arn`
/// (which becomes the line's `eventSourceARN`, as Lambda writes it). No
/// trailing newline.
pub fn dynamodb_streams_line(record: &Record, stream_arn: &str) -> Vec<u8> {
    let line = LambdaRecord { record, stream_arn };
    // Plain maps of strings and numbers into memory: cannot fail.
    serde_json::to_vec(&line).expect("a stream record serializes")
}

struct LambdaRecord<'a> {
    record: &'a Record,
    stream_arn: &'a str,
}

impl Serialize for LambdaRecord<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.record;
        let mut m = s.serialize_map(None)?;
        if let Some(v) = r.event_id() {
            m.serialize_entry("eventID", v)?;
        }
        if let Some(v) = r.event_name() {
            m.serialize_entry("eventName", v.as_str())?;
        }
        if let Some(v) = r.event_version() {
            m.serialize_entry("eventVersion", v)?;
        }
        if let Some(v) = r.event_source() {
            m.serialize_entry("eventSource", v)?;
        }
        if let Some(v) = r.aws_region() {
            m.serialize_entry("awsRegion", v)?;
        }
        if let Some(d) = r.dynamodb() {
            m.serialize_entry("dynamodb", &StreamRecordJson(d))?;
        }
        m.serialize_entry("eventSourceARN", self.stream_arn)?;
        if let Some(u) = r.user_identity() {
            let mut identity = BTreeMap::new();
            if let Some(t) = u.r#type() {
                identity.insert("type", t);
            }
            if let Some(p) = u.principal_id() {
                identity.insert("principalId", p);
            }
            m.serialize_entry("userIdentity", &identity)?;
        }
        m.end()
    }
}

struct StreamRecordJson<'a>(&'a aws_sdk_dynamodbstreams::types::StreamRecord);

impl Serialize for StreamRecordJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let d = self.0;
        let mut m = s.serialize_map(None)?;
        if let Some(t) = d.approximate_creation_date_time() {
            // Seconds since the epoch, as DynamoDB Streams and Lambda write
            // them: an integer when whole (AWS rounds down to the second), the
            // fraction kept otherwise (local servers stamp microseconds).
            if t.subsec_nanos() == 0 {
                m.serialize_entry("ApproximateCreationDateTime", &t.secs())?;
            } else {
                m.serialize_entry("ApproximateCreationDateTime", &t.as_secs_f64())?;
            }
        }
        if let Some(keys) = d.keys() {
            m.serialize_entry("Keys", &ItemJson(keys))?;
        }
        if let Some(image) = d.new_image() {
            m.serialize_entry("NewImage", &ItemJson(image))?;
        }
        if let Some(image) = d.old_image() {
            m.serialize_entry("OldImage", &ItemJson(image))?;
        }
        if let Some(v) = d.sequence_number() {
            m.serialize_entry("SequenceNumber", v)?;
        }
        if let Some(v) = d.size_bytes() {
            m.serialize_entry("SizeBytes", &v)?;
        }
        if let Some(v) = d.stream_view_type() {
            m.serialize_entry("StreamViewType", v.as_str())?;
        }
        m.end()
    }
}

/// An item (attribute name → value), in name order.
struct ItemJson<'a>(&'a std::collections::HashMap<String, AttributeValue>);

impl Serialize for ItemJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let sorted: BTreeMap<&str, AttrJson<'_>> = self.0.iter().map(|(k, v)| (k.as_str(), AttrJson(v))).collect();
        sorted.serialize(s)
    }
}

/// One attribute value in DynamoDB's JSON (`{"S": "..."}`, `{"N": "1"}`, ...).
struct AttrJson<'a>(&'a AttributeValue);

impl Serialize for AttrJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(1))?;
        match self.0 {
            AttributeValue::S(v) => m.serialize_entry("S", v)?,
            AttributeValue::N(v) => m.serialize_entry("N", v)?,
            AttributeValue::B(v) => m.serialize_entry("B", &aws_smithy_types::base64::encode(v.as_ref()))?,
            AttributeValue::Bool(v) => m.serialize_entry("BOOL", v)?,
            AttributeValue::Null(v) => m.serialize_entry("NULL", v)?,
            AttributeValue::Ss(v) => m.serialize_entry("SS", v)?,
            AttributeValue::Ns(v) => m.serialize_entry("NS", v)?,
            AttributeValue::Bs(v) => m.serialize_entry("BS", &Blobs(v))?,
            AttributeValue::L(v) => m.serialize_entry("L", &List(v))?,
            AttributeValue::M(v) => m.serialize_entry("M", &ItemJson(v))?,
            // A type newer than this SDK: its tag is unknown, so is its value.
            // The decoder reads any other tag as a non-contract type.
            _ => m.serialize_entry("UNKNOWN", &Value::Null)?,
        }
        m.end()
    }
}

struct Blobs<'a>(&'a [aws_smithy_types::Blob]);

impl Serialize for Blobs<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for b in self.0 {
            seq.serialize_element(&aws_smithy_types::base64::encode(b.as_ref()))?;
        }
        seq.end()
    }
}

struct List<'a>(&'a [AttributeValue]);

impl Serialize for List<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for v in self.0 {
            seq.serialize_element(&AttrJson(v))?;
        }
        seq.end()
    }
}

pub use pulse_schemas::capture::kinesis_line;

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodbstreams::primitives::{Blob, DateTime};
    use aws_sdk_dynamodbstreams::types::{Identity, OperationType, StreamRecord, StreamViewType};
    use pulse_schemas::capture::decode_line;
    use pulse_schemas::StreamChange;

    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.to_owned())
    }

    fn n(v: &str) -> AttributeValue {
        AttributeValue::N(v.to_owned())
    }

    fn login_image(id: &str) -> std::collections::HashMap<String, AttributeValue> {
        [
            ("customer_id", s("stu_1")),
            ("sk", s(&format!("EVT#1767571200000#{id}"))),
            ("entity_type", s("event")),
            ("event_id", s(id)),
            ("event_type", s("login")),
            ("ts", n("1767571200000")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    fn record(created: DateTime) -> Record {
        let image = login_image("e1");
        let keys = [("customer_id", s("stu_1")), ("sk", s("EVT#1767571200000#e1"))]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        Record::builder()
            .event_id("abc")
            .event_name(OperationType::Insert)
            .event_version("1.1")
            .event_source("aws:dynamodb")
            .aws_region("us-east-1")
            .dynamodb(
                StreamRecord::builder()
                    .approximate_creation_date_time(created)
                    .set_keys(Some(keys))
                    .set_new_image(Some(image))
                    .sequence_number("4421584500000000017450439091")
                    .size_bytes(120)
                    .stream_view_type(StreamViewType::NewAndOldImages)
                    .build(),
            )
            .build()
    }

    #[test]
    fn a_streams_record_becomes_the_lambda_shape_the_capture_decoder_reads() {
        let line = dynamodb_streams_line(&record(DateTime::from_secs(1_767_571_260)), "arn:stream");
        let json: Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(json["eventName"], "INSERT");
        assert_eq!(json["eventSourceARN"], "arn:stream");
        assert_eq!(json["dynamodb"]["ApproximateCreationDateTime"], 1_767_571_260);
        assert_eq!(json["dynamodb"]["NewImage"]["ts"], serde_json::json!({"N": "1767571200000"}));
        assert_eq!(json["dynamodb"]["SequenceNumber"], "4421584500000000017450439091");
        let decoded = decode_line(&line).expect("valid");
        assert_eq!(decoded.created_ms, Some(1_767_571_260_000.0));
        assert_eq!(decoded.sequence_number.as_deref(), Some("4421584500000000017450439091"));
        assert!(matches!(decoded.change, StreamChange::Insert(_)));
    }

    #[test]
    fn the_same_record_always_gives_the_same_bytes() {
        let a = dynamodb_streams_line(&record(DateTime::from_secs(1)), "arn");
        for _ in 0..20 {
            assert_eq!(dynamodb_streams_line(&record(DateTime::from_secs(1)), "arn"), a);
        }
    }

    #[test]
    fn fractional_creation_times_keep_their_fraction() {
        let line = dynamodb_streams_line(&record(DateTime::from_fractional_secs(1_767_571_260, 0.25)), "arn");
        let decoded = decode_line(&line).expect("valid");
        assert_eq!(decoded.created_ms, Some(1_767_571_260_250.0));
    }

    #[test]
    fn every_attribute_type_is_written_in_dynamodb_json() {
        let mut image = login_image("e2");
        image.insert("b".into(), AttributeValue::B(Blob::new(b"hi".to_vec())));
        image.insert("bs".into(), AttributeValue::Bs(vec![Blob::new(b"a".to_vec())]));
        image.insert("t".into(), AttributeValue::Bool(true));
        image.insert("z".into(), AttributeValue::Null(true));
        image.insert("ss".into(), AttributeValue::Ss(vec!["x".into()]));
        image.insert("ns".into(), AttributeValue::Ns(vec!["1".into()]));
        image.insert("l".into(), AttributeValue::L(vec![n("2"), s("y")]));
        image.insert("m".into(), AttributeValue::M([("k".to_owned(), s("v"))].into_iter().collect()));
        let json = serde_json::to_value(ItemJson(&image)).unwrap();
        assert_eq!(json["b"], serde_json::json!({"B": "aGk="}));
        assert_eq!(json["bs"], serde_json::json!({"BS": ["YQ=="]}));
        assert_eq!(json["t"], serde_json::json!({"BOOL": true}));
        assert_eq!(json["z"], serde_json::json!({"NULL": true}));
        assert_eq!(json["ss"], serde_json::json!({"SS": ["x"]}));
        assert_eq!(json["ns"], serde_json::json!({"NS": ["1"]}));
        assert_eq!(json["l"], serde_json::json!({"L": [{"N": "2"}, {"S": "y"}]}));
        assert_eq!(json["m"], serde_json::json!({"M": {"k": {"S": "v"}}}));
    }

    #[test]
    fn ttl_identity_survives_the_conversion() {
        let mut r = record(DateTime::from_secs(1_767_571_260));
        r.event_name = Some(OperationType::Remove);
        if let Some(d) = r.dynamodb.as_mut() {
            d.old_image = d.new_image.take();
        }
        r.user_identity = Some(Identity::builder().r#type("Service").principal_id("dynamodb.amazonaws.com").build());
        let line = dynamodb_streams_line(&r, "arn");
        let decoded = decode_line(&line).expect("valid");
        assert!(matches!(decoded.change, StreamChange::TtlExpiry), "{:?}", decoded.change);
    }

    const KINESIS_PAYLOAD: &str = r#"{"awsRegion":"us-east-1","eventID":"9f1c","eventName":"INSERT","userIdentity":null,"recordFormat":"application/json","tableName":"marketplace-events","dynamodb":{"ApproximateCreationDateTime":1767571260123,"Keys":{"customer_id":{"S":"stu_1"},"sk":{"S":"EVT#1767571200000#e1"}},"NewImage":{"customer_id":{"S":"stu_1"},"sk":{"S":"EVT#1767571200000#e1"},"entity_type":{"S":"event"},"event_id":{"S":"e1"},"event_type":{"S":"login"},"ts":{"N":"1767571200000"}},"SizeBytes":120},"eventSource":"aws:dynamodb"}"#;

    #[test]
    fn kinesis_milliseconds_become_seconds_with_the_fraction() {
        let line = kinesis_line(KINESIS_PAYLOAD.as_bytes());
        let json: Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(json["dynamodb"]["ApproximateCreationDateTime"], serde_json::json!(1_767_571_260.123));
        assert_eq!(json["tableName"], "marketplace-events", "other fields are kept");
        let decoded = decode_line(&line).expect("valid");
        let ms = decoded.created_ms.unwrap();
        assert!((ms - 1_767_571_260_123.0).abs() < 1e-3, "{ms}");
        assert!(matches!(decoded.change, StreamChange::Insert(_)));
    }

    #[test]
    fn kinesis_microsecond_precision_is_honoured() {
        let payload = KINESIS_PAYLOAD.replace(
            "\"ApproximateCreationDateTime\":1767571260123,",
            "\"ApproximateCreationDateTime\":1767571260123456,\"ApproximateCreationDateTimePrecision\":\"MICROSECOND\",",
        );
        let decoded_line = kinesis_line(payload.as_bytes());
        let ms = decode_line(&decoded_line).unwrap().created_ms.unwrap();
        assert!((ms - 1_767_571_260_123.456).abs() < 1e-3, "{ms}");
    }

    #[test]
    fn kinesis_payloads_that_are_not_records_pass_through() {
        for payload in [&b"not json"[..], b"[1,2]", b"{\"eventName\":\"INSERT\"}", b"\xff\xfe"] {
            assert_eq!(kinesis_line(payload), payload);
            assert!(decode_line(payload).is_err());
        }
    }
}
