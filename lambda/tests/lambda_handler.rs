//! The Lambda handler, called directly with a real AWS-shaped DynamoDB Streams
//! event (the shape of AWS's documented example, with every kind of record):
//! the same vectors as a replay of the same records, invalid records as dead
//! letters (never batch failures), predictions skipped, a warm engine across
//! invocations, a failing sink failing the batch from its first record, the
//! environment's sink flushed once per invocation and never closed, and the
//! partial batch response AWS expects.

use aws_lambda_events::event::dynamodb::Event;
use aws_lambda_events::streams::DynamoDbEventResponse;
use pulse_lambda::sink::MemorySink;
use pulse_lambda::{BatchOutcome, Handler};
use pulse_model::EmbeddedModel;
use pulse_operators::EngineConfig;
use pulse_runtime::process::Produced;
use pulse_runtime::replay::{replay, ReplayConfig};
use pulse_runtime::sink::Sink;
use pulse_schemas::{FeatureVector, Source};
use serde_json::Value;

const FIXTURE: &str = include_str!("../../schemas/tests/fixtures/lambda-dynamodb-event.json");

fn event() -> Event {
    serde_json::from_str(FIXTURE).expect("the fixture parses as a Lambda DynamoDB event")
}

/// The fixture's records in `range`, as one batch.
fn batch(range: std::ops::Range<usize>) -> Event {
    let mut event = event();
    event.records = event.records.drain(range).collect();
    event
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// Handles one batch with a fresh memory sink.
fn handle(handler: &Handler, event: &Event) -> (BatchOutcome, MemorySink) {
    let mut sink = MemorySink::default();
    let outcome = runtime().block_on(handler.handle_batch(event, &mut sink));
    (outcome, sink)
}

/// The fixture's records written as capture lines, replayed: the vectors as
/// written (JSON, without their source).
fn replayed() -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let capture = dir.path().join("capture.jsonl");
    let features = dir.path().join("features.jsonl");
    let json: serde_json::Value = serde_json::from_str(FIXTURE).unwrap();
    let lines: String = json["Records"].as_array().unwrap().iter().map(|r| format!("{r}\n")).collect();
    std::fs::write(&capture, lines).unwrap();
    let config = ReplayConfig::capture(capture, Some(features.clone()));
    let summary = runtime().block_on(replay::<EmbeddedModel>(config, None)).unwrap();
    assert_eq!(summary.invalid.get("future_event"), Some(&1));
    let text = std::fs::read_to_string(features).unwrap();
    text.lines().map(|l| without_source(serde_json::from_str(l).unwrap())).collect()
}

/// A vector as JSON without where it came from (a replay knows lines, Lambda
/// sequence numbers). Both sides are read from the text written, since
/// serde_json's default float parser may read a float back 1 ulp off.
fn without_source(mut v: Value) -> Value {
    v.as_object_mut().unwrap().remove("source").expect("a source");
    v
}

fn written(vectors: &[FeatureVector]) -> Vec<Value> {
    vectors.iter().map(|v| without_source(serde_json::from_str(&serde_json::to_string(v).unwrap()).unwrap())).collect()
}

fn sequence_number(i: usize) -> Option<String> {
    event().records[i].change.sequence_number.clone()
}

#[test]
fn vectors_equal_a_replay_of_the_same_records() {
    let (out, sink) = handle(&Handler::new(EngineConfig::default()), &event());
    let replayed = replayed();
    assert!(!replayed.is_empty());
    assert_eq!(written(&sink.vectors), replayed);
    assert_eq!(out.report.vectors, sink.vectors.len());
    assert_eq!(sink.flushes, 1, "one flush per batch, before the response");
    for v in &sink.vectors {
        assert_eq!(v.source.shard_id, None);
        assert!(v.source.sequence_number.is_some());
    }
    // The first vector is the first record's.
    assert_eq!(sink.vectors[0].source.sequence_number, sequence_number(0));
}

#[test]
fn an_invalid_record_is_a_dead_letter_not_a_batch_failure() {
    let (out, sink) = handle(&Handler::new(EngineConfig::default()), &event());
    assert!(out.response.batch_item_failures.is_empty());
    assert_eq!(out.report.failure, None);
    assert_eq!(sink.dead.len(), 1);
    let dead = &sink.dead[0];
    assert_eq!(dead.invalid.reason.code(), "future_event");
    assert_eq!(dead.source, Source { sequence_number: sequence_number(5), ..Source::default() });

    // The dead letter holds the whole record, as JSON that reads back as it.
    let mut line = Vec::new();
    dead.write_json_line(&mut line);
    let json: serde_json::Value = serde_json::from_slice(&line).unwrap();
    assert_eq!(json["code"], "future_event");
    assert!(json["reason"].as_str().unwrap().contains("after"));
    let record: aws_lambda_events::event::dynamodb::EventRecord =
        serde_json::from_value(json["record"].clone()).unwrap();
    assert_eq!(record, event().records[5]);
}

#[test]
fn a_prediction_item_is_skipped_silently() {
    // Record 4 is the pipeline's own prediction write coming back on the stream.
    let prediction = batch(4..5);
    assert!(matches!(
        prediction.records[0].change.new_image.get("entity_type"),
        Some(serde_dynamo::AttributeValue::S(s)) if s == "prediction"
    ));
    let (out, sink) = handle(&Handler::new(EngineConfig::default()), &prediction);
    assert!(out.response.batch_item_failures.is_empty());
    assert!(sink.vectors.is_empty() && sink.dead.is_empty(), "{:?} {:?}", sink.vectors, sink.dead);
}

#[test]
fn state_stays_warm_across_invocations() {
    let handler = Handler::new(EngineConfig::default());
    let (_, first) = handle(&handler, &batch(0..3));
    let (_, second) = handle(&handler, &batch(3..6));
    let both: Vec<_> = first.vectors.iter().chain(&second.vectors).cloned().collect();
    assert_eq!(written(&both), replayed());

    // A redelivered batch (e.g. after a timeout) changes nothing.
    let handler = Handler::new(EngineConfig::default());
    let (_, once) = handle(&handler, &batch(0..2));
    assert_eq!(once.vectors.len(), 2);
    let (again, sink) = handle(&handler, &batch(0..2));
    assert!(sink.vectors.is_empty(), "{:?}", sink.vectors);
    assert!(again.response.batch_item_failures.is_empty());
}

/// A sink whose flush fails while `failing` is set.
#[derive(Default)]
struct FlakySink {
    failing: bool,
    inner: MemorySink,
}

impl Sink for FlakySink {
    async fn send(&mut self, produced: Produced) -> anyhow::Result<()> {
        self.inner.send(produced).await
    }

    async fn flush(&mut self) -> anyhow::Result<()> {
        if self.failing {
            self.inner = MemorySink::default();
            anyhow::bail!("the scoring endpoint is throttling");
        }
        self.inner.flush().await
    }
}

#[test]
fn a_sink_failure_fails_the_batch_from_its_first_record_and_the_redelivery_emits_again() {
    let handler = Handler::new(EngineConfig::default());
    let rt = runtime();
    let mut sink = FlakySink { failing: true, ..FlakySink::default() };
    let failed = rt.block_on(handler.handle_batch(&event(), &mut sink));
    let ids: Vec<_> = failed.response.batch_item_failures.iter().map(|f| f.item_identifier.clone()).collect();
    assert_eq!(ids, [sequence_number(0)], "the whole batch is redelivered");
    let reason = failed.report.failure.expect("the failure is reported");
    assert!(reason.contains("throttling"), "{reason}");

    // Lambda redelivers the batch: the same vectors come out, not duplicates
    // swallowed by a warm state that had applied them.
    sink.failing = false;
    let retried = rt.block_on(handler.handle_batch(&event(), &mut sink));
    assert!(retried.response.batch_item_failures.is_empty());
    assert_eq!(written(&sink.inner.vectors), replayed());
    assert_eq!(sink.inner.dead.len(), 1);
}

/// A sink that ends at `close`, as a sink whose close finishes files would.
#[derive(Default)]
struct EndsOnClose {
    closed: bool,
    inner: MemorySink,
}

impl Sink for EndsOnClose {
    async fn send(&mut self, produced: Produced) -> anyhow::Result<()> {
        anyhow::ensure!(!self.closed, "sent to after close");
        self.inner.send(produced).await
    }

    async fn flush(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(!self.closed, "flushed after close");
        self.inner.flush().await
    }

    async fn close(&mut self) -> anyhow::Result<()> {
        self.flush().await?;
        self.closed = true;
        Ok(())
    }
}

#[test]
fn an_invocation_flushes_the_environments_sink_once_and_never_closes_it() {
    // The driver closes its sink when a run ends; an invocation's run is not
    // the end of the environment's sink, which serves the next invocation.
    let handler = Handler::new(EngineConfig::default());
    let rt = runtime();
    let mut sink = EndsOnClose::default();
    for range in [0..3, 3..6] {
        let outcome = rt.block_on(handler.handle_batch(&batch(range), &mut sink));
        assert!(outcome.response.batch_item_failures.is_empty(), "{:?}", outcome.report);
    }
    assert!(!sink.closed);
    assert_eq!(sink.inner.flushes, 2, "one barrier per invocation");
    assert_eq!(written(&sink.inner.vectors), replayed());
}

#[test]
fn invoke_answers_a_batch_with_its_partial_batch_response() {
    let handler = Handler::new(EngineConfig::default());
    let mut sink = MemorySink::default();
    let payload: Value = serde_json::from_str(FIXTURE).unwrap();
    let response = runtime().block_on(handler.invoke(payload, &mut sink)).unwrap();
    assert_eq!(response, serde_json::json!({"batchItemFailures": []}));
    assert_eq!(written(&sink.vectors), replayed());

    // A scheduled run needs the table, and says so.
    let scheduled = serde_json::json!({"detail-type": "Scheduled Event", "time": "2026-01-05T08:00:00Z"});
    let err = runtime().block_on(handler.invoke(scheduled, &mut sink)).unwrap_err();
    assert!(format!("{err:#}").contains("TABLE_NAME"), "{err:#}");
}

#[test]
fn the_response_round_trips_with_the_field_names_aws_expects() {
    let (out, _) = handle(&Handler::new(EngineConfig::default()), &event());
    let json = serde_json::to_string(&out.response).unwrap();
    assert_eq!(json, r#"{"batchItemFailures":[]}"#);
    let parsed: DynamoDbEventResponse = serde_json::from_str(&json).unwrap();
    assert_eq!(parsed, out.response);

    // A failure as Lambda reads it: the sequence number as the item identifier.
    let failed: DynamoDbEventResponse =
        serde_json::from_str(r#"{"batchItemFailures":[{"itemIdentifier":"4421584500000000017450439093"}]}"#).unwrap();
    let again: DynamoDbEventResponse = serde_json::from_str(&serde_json::to_string(&failed).unwrap()).unwrap();
    assert_eq!(again, failed);
    assert_eq!(failed.batch_item_failures[0].item_identifier.as_deref(), Some("4421584500000000017450439093"));
}

#[test]
fn an_empty_batch_is_handled() {
    let (out, sink) = handle(&Handler::new(EngineConfig::default()), &batch(0..0));
    assert!(sink.vectors.is_empty() && sink.dead.is_empty());
    assert!(out.response.batch_item_failures.is_empty());
}

/// The fixture's records as a Kinesis event source mapping delivers them for
/// Kinesis Data Streams for DynamoDB: each record's change as JSON in the
/// data (base64 on the wire), its creation time in milliseconds, Kinesis
/// sequence numbers.
fn kinesis_event() -> Value {
    let json: Value = serde_json::from_str(FIXTURE).unwrap();
    let records: Vec<Value> = json["Records"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut change = r.clone();
            let seconds = change["dynamodb"]["ApproximateCreationDateTime"].as_f64().unwrap();
            change["dynamodb"]["ApproximateCreationDateTime"] = serde_json::json!((seconds * 1000.0) as i64);
            change["recordFormat"] = "application/json".into();
            change["tableName"] = "marketplace-events".into();
            let data = aws_smithy_types::base64::encode(serde_json::to_vec(&change).unwrap());
            serde_json::json!({
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": format!("pk-{i}"),
                    "sequenceNumber": format!("4959{i:040}"),
                    "data": data,
                    "approximateArrivalTimestamp": 1_767_600_000.5
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": format!("shardId-000000000000:4959{i:040}"),
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": "arn:aws:iam::123456789012:role/pulse",
                "awsRegion": "us-east-1",
                "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/pulse-events"
            })
        })
        .collect();
    serde_json::json!({ "Records": records })
}

#[test]
fn a_kinesis_batch_gives_the_vectors_and_dead_letters_of_the_same_changes() {
    let handler = Handler::new(EngineConfig::default());
    let mut sink = MemorySink::default();
    let answer = runtime().block_on(handler.invoke(kinesis_event(), &mut sink)).unwrap();
    assert_eq!(answer, serde_json::json!({ "batchItemFailures": [] }));
    assert_eq!(written(&sink.vectors), replayed(), "the same vectors as the DynamoDB Streams records");
    assert_eq!(sink.dead.len(), 1);
    assert_eq!(sink.dead[0].invalid.reason.code(), "future_event");
    // Sources and failures speak Kinesis sequence numbers.
    assert_eq!(sink.dead[0].source.sequence_number.as_deref(), Some(format!("4959{:040}", 5).as_str()));
    assert_eq!(sink.vectors[0].source.sequence_number.as_deref(), Some(format!("4959{:040}", 0).as_str()));
}

#[test]
fn a_failed_kinesis_batch_names_its_first_kinesis_sequence_number() {
    struct Failing;
    impl Sink for Failing {
        async fn send(&mut self, _: Produced) -> anyhow::Result<()> {
            Ok(())
        }
        async fn flush(&mut self) -> anyhow::Result<()> {
            anyhow::bail!("the table is down")
        }
    }
    let handler = Handler::new(EngineConfig::default());
    let answer = runtime().block_on(handler.invoke(kinesis_event(), &mut Failing)).unwrap();
    let first = format!("4959{:040}", 0);
    assert_eq!(answer, serde_json::json!({ "batchItemFailures": [{ "itemIdentifier": first }] }));
}

#[test]
fn a_record_that_is_not_a_streams_record_is_a_dead_letter_not_a_failed_batch() {
    // An image written as a list: the event's other records still apply.
    let mut payload: Value = serde_json::from_str(FIXTURE).unwrap();
    payload["Records"][0]["dynamodb"]["NewImage"] = serde_json::json!([{"S": "stu_x"}, {"S": "event"}]);
    let handler = Handler::new(EngineConfig::default());
    let mut sink = MemorySink::default();
    let answer = runtime().block_on(handler.invoke(payload.clone(), &mut sink)).unwrap();
    assert_eq!(answer, serde_json::json!({ "batchItemFailures": [] }));
    let codes: Vec<&str> = sink.dead.iter().map(|d| d.invalid.reason.code()).collect();
    assert_eq!(codes, ["malformed_record", "future_event"]);
    assert_eq!(sink.dead[0].source.sequence_number, sequence_number(0));
    let mut line = Vec::new();
    sink.dead[0].write_json_line(&mut line);
    let dead: Value = serde_json::from_slice(&line).unwrap();
    assert_eq!(dead["record"], payload["Records"][0], "the record kept as it came");
    assert!(!sink.vectors.is_empty(), "the other records were applied");
}
