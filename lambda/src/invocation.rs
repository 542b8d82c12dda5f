//! What a Lambda invocation carries: a DynamoDB Streams batch from the event
//! source mapping, or the scheduled event that rescores due customers.

use anyhow::{bail, Context, Result};
use aws_lambda_events::event::dynamodb::EventRecord;
use aws_lambda_events::event::kinesis::KinesisEvent;
use serde::Deserialize;
use serde_json::Value;

/// One invocation of the function.
#[derive(Debug)]
pub enum Invocation {
    /// A batch of the DynamoDB Streams event source mapping, read record by
    /// record: one that is not a DynamoDB Streams record is kept as its JSON
    /// (it becomes a dead letter, never a failed batch).
    Batch(Vec<Result<EventRecord, Unreadable>>),
    /// A batch of a Kinesis event source mapping (Kinesis Data Streams for
    /// DynamoDB: each record's data is a change of the table, as JSON).
    KinesisBatch(KinesisEvent),
    /// A scheduled run: rescore the customers due at `now_ms`.
    Rescore {
        /// The scheduled time (ms since the epoch).
        now_ms: i64,
    },
}

/// A record of a batch that is not a DynamoDB Streams record (e.g. an image
/// that is a list, not a map): what it was and why it was refused.
#[derive(Debug, Clone, PartialEq)]
pub struct Unreadable {
    /// The record's JSON, as delivered.
    pub json: Vec<u8>,
    /// The record's `dynamodb.SequenceNumber`, when it has one.
    pub sequence_number: Option<String>,
    /// Why it could not be read.
    pub error: String,
}

impl Unreadable {
    /// Reads one record of a batch.
    pub fn read(value: &Value) -> Result<EventRecord, Unreadable> {
        EventRecord::deserialize(value).map_err(|e| Unreadable {
            json: serde_json::to_vec(value).unwrap_or_default(),
            sequence_number: value.pointer("/dynamodb/SequenceNumber").and_then(Value::as_str).map(str::to_owned),
            error: e.to_string(),
        })
    }
}

/// The `detail-type` of EventBridge's scheduled events.
pub const SCHEDULED_EVENT: &str = "Scheduled Event";

impl Invocation {
    /// Tells the two payloads apart:
    ///
    /// * an object with `Records` is a DynamoDB Streams batch, or a Kinesis
    ///   batch when its records' `eventSource` is `aws:kinesis`;
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
        if let Some(records) = fields.get("Records") {
            let kinesis = records
                .as_array()
                .and_then(|r| r.first())
                .and_then(|r| r.get("eventSource"))
                .is_some_and(|source| source == "aws:kinesis");
            if kinesis {
                let event: KinesisEvent = serde_json::from_value(payload)
                    .context("the payload has Kinesis Records but is not a Kinesis event")?;
                return Ok(Invocation::KinesisBatch(event));
            }
            let Some(records) = records.as_array() else {
                bail!("the payload's Records is not a list: not a DynamoDB Streams event")
            };
            let records = records.iter().map(Unreadable::read).collect();
            return Ok(Invocation::Batch(records));
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_streams_batch_is_a_batch() {
        let fixture = include_str!("../../schemas/tests/fixtures/lambda-dynamodb-event.json");
        match Invocation::from_payload(serde_json::from_str(fixture).unwrap()).unwrap() {
            Invocation::Batch(records) => {
                assert_eq!(records.len(), 6);
                assert!(records.iter().all(Result::is_ok));
            }
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
        // One bad record is kept as it came, with its sequence number; the
        // others are read.
        let fixture: Value =
            serde_json::from_str(include_str!("../../schemas/tests/fixtures/lambda-dynamodb-event.json")).unwrap();
        let mut records = fixture["Records"].as_array().unwrap().clone();
        records[1]["dynamodb"]["NewImage"] = json!([{"S": "stu_x"}]);
        let Invocation::Batch(read) = Invocation::from_payload(json!({ "Records": records })).unwrap() else {
            panic!("a batch")
        };
        assert!(read[0].is_ok() && read[2].is_ok());
        let bad = read[1].as_ref().unwrap_err();
        assert_eq!(bad.sequence_number.as_deref(), records[1]["dynamodb"]["SequenceNumber"].as_str());
        assert_eq!(serde_json::from_slice::<Value>(&bad.json).unwrap(), records[1]);
        assert!(Invocation::from_payload(json!([1])).is_err());
    }
}
