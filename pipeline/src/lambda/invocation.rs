//! What a Lambda invocation carries: a DynamoDB Streams batch from the event
//! source mapping, or the scheduled event that rescores due customers; and
//! the conversion of a DynamoDB Streams API record (`GetRecords`) into the
//! record shape Lambda delivers.

use anyhow::{bail, Context, Result};
use aws_lambda_events::event::dynamodb::{Event, EventRecord, StreamViewType, UserIdentity};
use serde_json::Value;

/// One invocation of the function.
#[derive(Debug)]
pub enum Invocation {
    /// A batch of the DynamoDB Streams event source mapping.
    Batch(Event),
    /// A scheduled run: rescore the customers due at `now_ms`.
    Rescore {
        /// The scheduled time (ms since the epoch).
        now_ms: i64,
    },
}

/// The `detail-type` of EventBridge's scheduled events.
pub const SCHEDULED_EVENT: &str = "Scheduled Event";

impl Invocation {
    /// Tells the two payloads apart:
    ///
    /// * an object with `Records` is a DynamoDB Streams batch;
    /// * an object with `"detail-type": "Scheduled Event"` and an RFC 3339
    ///   `time` is a scheduled run at that time: the event of an EventBridge
    ///   schedule rule as delivered, or an EventBridge Scheduler target whose
    ///   input is `{"detail-type": "Scheduled Event", "time":
    ///   "<aws.scheduler.scheduled-time>"}`.
    ///
    /// Anything else is refused with what was expected.
    pub fn from_payload(payload: Value) -> Result<Invocation> {
        let Value::Object(fields) = &payload else {
            bail!("the invocation payload is not a JSON object: expected a DynamoDB Streams event or a scheduled event")
        };
        if fields.contains_key("Records") {
            let event: Event = serde_json::from_value(payload)
                .context("the payload has Records but is not a DynamoDB Streams event")?;
            return Ok(Invocation::Batch(event));
        }
        if fields.get("detail-type").and_then(Value::as_str) == Some(SCHEDULED_EVENT) {
            let time = fields.get("time").and_then(Value::as_str).context(
                "a scheduled event needs its \"time\" (EventBridge Scheduler: put \
                 \"time\": \"<aws.scheduler.scheduled-time>\" in the target's input)",
            )?;
            let at = chrono::DateTime::parse_from_rfc3339(time)
                .with_context(|| format!("the scheduled event's time {time:?} is not an RFC 3339 time"))?;
            return Ok(Invocation::Rescore { now_ms: at.timestamp_millis() });
        }
        let keys: Vec<&str> = fields.keys().map(String::as_str).collect();
        bail!(
            "unrecognised invocation payload with keys {keys:?}: expected a DynamoDB Streams event (Records) or a \
             scheduled event (\"detail-type\": \"{SCHEDULED_EVENT}\", time)"
        )
    }
}

/// A record read with the DynamoDB Streams API, as the event source mapping
/// would deliver it to Lambda (for tests, local tries and tools that wrap
/// stream records as Lambda events).
///
/// `ApproximateCreationDateTime` is kept to the whole second, as AWS
/// documents it ("rounded down to the closest second"; local servers may
/// return fractions).
pub fn event_record_from_sdk(record: &aws_sdk_dynamodbstreams::types::Record) -> Result<EventRecord> {
    let change = record.dynamodb().context("a stream record without its dynamodb part")?;
    let mut out = EventRecord::default();
    out.event_id = record.event_id().unwrap_or_default().to_owned();
    out.event_name = record.event_name().context("a stream record without eventName")?.as_str().to_owned();
    out.event_version = record.event_version().map(str::to_owned);
    out.event_source = record.event_source().map(str::to_owned);
    out.aws_region = record.aws_region().unwrap_or_default().to_owned();
    if let Some(identity) = record.user_identity() {
        let mut user = UserIdentity::default();
        user.type_ = identity.r#type().unwrap_or_default().to_owned();
        user.principal_id = identity.principal_id().unwrap_or_default().to_owned();
        out.user_identity = Some(user);
    }
    let created =
        change.approximate_creation_date_time().context("a stream record without ApproximateCreationDateTime")?;
    out.change.approximate_creation_date_time = chrono::DateTime::from_timestamp(created.secs(), 0)
        .with_context(|| format!("ApproximateCreationDateTime {created} is out of range"))?;
    let item = |image: Option<&std::collections::HashMap<String, aws_sdk_dynamodbstreams::types::AttributeValue>>| {
        image.cloned().map(serde_dynamo::Item::from).unwrap_or_default()
    };
    out.change.keys = item(change.keys());
    out.change.new_image = item(change.new_image());
    out.change.old_image = item(change.old_image());
    out.change.sequence_number = change.sequence_number().map(str::to_owned);
    out.change.size_bytes = change.size_bytes().unwrap_or_default();
    out.change.stream_view_type = change.stream_view_type().map(|v| match v.as_str() {
        "NEW_IMAGE" => StreamViewType::NewImage,
        "OLD_IMAGE" => StreamViewType::OldImage,
        "NEW_AND_OLD_IMAGES" => StreamViewType::NewAndOldImages,
        _ => StreamViewType::KeysOnly,
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodbstreams::types::{AttributeValue, Identity, OperationType, Record, StreamRecord};
    use serde_json::json;

    use super::*;

    #[test]
    fn a_streams_batch_is_a_batch() {
        let fixture = include_str!("../../../schemas/tests/fixtures/lambda-dynamodb-event.json");
        match Invocation::from_payload(serde_json::from_str(fixture).unwrap()).unwrap() {
            Invocation::Batch(event) => assert_eq!(event.records.len(), 6),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_eventbridge_scheduled_event_is_a_rescore_at_its_time() {
        // The shape AWS documents for a schedule rule's event.
        let payload = json!({
            "version": "0",
            "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": "123456789012",
            "time": "2026-01-05T08:00:00Z",
            "region": "us-east-1",
            "resources": ["arn:aws:events:us-east-1:123456789012:rule/pulse-rescore-due"],
            "detail": {}
        });
        match Invocation::from_payload(payload).unwrap() {
            Invocation::Rescore { now_ms } => assert_eq!(now_ms, 1_767_600_000_000),
            other => panic!("{other:?}"),
        }
        let scheduler = json!({"detail-type": "Scheduled Event", "time": "2026-01-05T08:00:00.250+00:00"});
        assert!(matches!(
            Invocation::from_payload(scheduler).unwrap(),
            Invocation::Rescore { now_ms: 1_767_600_000_250 }
        ));
    }

    #[test]
    fn other_payloads_are_refused_with_what_was_expected() {
        let err = Invocation::from_payload(json!({"hello": 1})).unwrap_err().to_string();
        assert!(err.contains("hello") && err.contains("Records"), "{err}");
        let err = Invocation::from_payload(json!({"detail-type": "Scheduled Event"})).unwrap_err().to_string();
        assert!(err.contains("time"), "{err}");
        let err = format!("{:#}", Invocation::from_payload(json!({"Records": 3})).unwrap_err());
        assert!(err.contains("not a DynamoDB Streams event"), "{err}");
        assert!(Invocation::from_payload(json!([1])).is_err());
    }

    #[test]
    fn an_sdk_record_becomes_the_lambda_record() {
        let image = std::collections::HashMap::from([
            ("customer_id".to_string(), AttributeValue::S("stu_1".into())),
            ("ts".to_string(), AttributeValue::N("1767599990000".into())),
        ]);
        let record = Record::builder()
            .event_id("e1")
            .event_name(OperationType::Remove)
            .event_version("1.1")
            .event_source("aws:dynamodb")
            .aws_region("us-east-1")
            .user_identity(Identity::builder().r#type("Service").principal_id("dynamodb.amazonaws.com").build())
            .dynamodb(
                StreamRecord::builder()
                    .approximate_creation_date_time(
                        aws_sdk_dynamodbstreams::primitives::DateTime::from_fractional_secs(1_767_600_000, 0.7),
                    )
                    .set_keys(Some(image.clone()))
                    .set_old_image(Some(image))
                    .sequence_number("42")
                    .size_bytes(99)
                    .stream_view_type(aws_sdk_dynamodbstreams::types::StreamViewType::NewAndOldImages)
                    .build(),
            )
            .build();
        let lambda = event_record_from_sdk(&record).unwrap();
        let json = serde_json::to_value(&lambda).unwrap();
        assert_eq!(json["eventName"], "REMOVE");
        assert_eq!(json["dynamodb"]["ApproximateCreationDateTime"], json!(1_767_600_000));
        assert_eq!(json["dynamodb"]["OldImage"]["ts"], json!({"N": "1767599990000"}));
        assert_eq!(json["dynamodb"]["SequenceNumber"], "42");
        assert_eq!(json["userIdentity"]["type"], "Service");
        assert!(lambda.change.new_image.is_empty());
        let decoded = pulse_schemas::lambda::decode_record(&lambda);
        assert!(decoded.is_ok(), "{decoded:?}");
    }
}
