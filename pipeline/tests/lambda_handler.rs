//! The Lambda handler, called directly with a real AWS-shaped DynamoDB Streams
//! event: the same vectors as a replay of the same records, invalid records as
//! dead letters (never batch failures), a warm engine across invocations and
//! the partial batch response AWS expects.

use aws_lambda_events::event::dynamodb::Event;
use aws_lambda_events::streams::DynamoDbEventResponse;
use pulse::lambda::Handler;
use pulse::replay::{replay, ReplayConfig};
use pulse_model::EmbeddedModel;
use pulse_operators::EngineConfig;
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
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let summary = runtime.block_on(replay::<EmbeddedModel>(config, None)).unwrap();
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
    let out = Handler::new(EngineConfig::default()).handle(event());
    let replayed = replayed();
    assert!(!replayed.is_empty());
    assert_eq!(written(&out.produced.vectors), replayed);
    for v in &out.produced.vectors {
        assert_eq!(v.source.shard_id, None);
        assert!(v.source.sequence_number.is_some());
    }
    // The first vector is the first record's.
    assert_eq!(out.produced.vectors[0].source.sequence_number, sequence_number(0));
}

#[test]
fn an_invalid_record_is_a_dead_letter_not_a_batch_failure() {
    let out = Handler::new(EngineConfig::default()).handle(event());
    assert!(out.response.batch_item_failures.is_empty());
    assert_eq!(out.produced.dead.len(), 1);
    let dead = &out.produced.dead[0];
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
fn state_stays_warm_across_invocations() {
    let handler = Handler::new(EngineConfig::default());
    let first = handler.handle(batch(0..3));
    let second = handler.handle(batch(3..6));
    let both: Vec<_> = first.produced.vectors.iter().chain(&second.produced.vectors).cloned().collect();
    assert_eq!(written(&both), replayed());

    // A redelivered batch (e.g. after a timeout) changes nothing.
    let handler = Handler::new(EngineConfig::default());
    let once = handler.handle(batch(0..2));
    assert_eq!(once.produced.vectors.len(), 2);
    let again = handler.handle(batch(0..2));
    assert!(again.produced.vectors.is_empty(), "{:?}", again.produced.vectors);
    assert!(again.response.batch_item_failures.is_empty());
}

#[test]
fn the_response_round_trips_with_the_field_names_aws_expects() {
    let out = Handler::new(EngineConfig::default()).handle(event());
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
    let out = Handler::new(EngineConfig::default()).handle(batch(0..0));
    assert!(out.produced.is_empty());
    assert!(out.response.batch_item_failures.is_empty());
}
