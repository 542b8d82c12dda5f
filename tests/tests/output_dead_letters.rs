//! Dead letters in production, against the local server: invalid records
//! reach an SQS queue with their reason and the original record, and a file
//! whole; a record too large for an SQS message says what was left out.

mod output_support;

use std::sync::Arc;
use std::time::Duration;

use output_support::*;
use pulse_aws::output::backend::ModelBackend;
use pulse_aws::output::dead_letters::{DeadLetterFile, DeadLetterQueue};
use pulse_aws::output::sink::{Destinations, ScoringSink};
use pulse_operators::{Engine, EngineConfig};
use pulse_runtime::process::{Processor, Produced};
use pulse_runtime::sink::Sink;
use pulse_schemas::Source;

#[tokio::test]
async fn dead_letters_reach_the_queue_and_the_file_with_reason_and_record() {
    let sdk = sdk().await;
    let (queue_url, _) = queue(&sdk).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dead-letters.jsonl");
    let out = Destinations {
        dead_letter_queue: Some(DeadLetterQueue::new(aws_sdk_sqs::Client::new(&sdk), queue_url.as_str())),
        dead_letter_file: Some(DeadLetterFile::open(&file).await.unwrap()),
        ..nowhere()
    };
    let mut sink =
        ScoringSink::new(ModelBackend::Embedded(embedded()), out, sink_config(64, Duration::from_secs(5))).unwrap();

    // Records as read from a stream: not JSON, an event without a creation
    // time, and one far over SQS's 256 KiB.
    let small_event = r#"{"eventName":"INSERT","dynamodb":{"NewImage":{"customer_id":{"S":"a"},"sk":{"S":"EVT#1#e1"},"entity_type":{"S":"event"},"event_id":{"S":"e1"},"event_type":{"S":"login"},"ts":{"N":"1766966400000"}},"SequenceNumber":"7"}}"#;
    let huge = format!(
        r#"{{"eventName":"INSERT","dynamodb":{{"ApproximateCreationDateTime":1766966460,"NewImage":{{"customer_id":{{"S":"b"}},"sk":{{"S":"EVT#2#e2"}},"entity_type":{{"S":"event"}},"event_id":{{"S":"e2"}},"event_type":{{"S":"nope"}},"pad":{{"S":"{}"}},"ts":{{"N":"1766966400000"}}}},"SequenceNumber":"8"}}}}"#,
        "x".repeat(300_000)
    );
    let lines = ["not json at all".to_owned(), small_event.to_owned(), huge.clone()];
    let mut processor = Processor::new(Arc::new(Engine::new(EngineConfig::default())));
    let mut produced = Produced::default();
    for (i, line) in lines.iter().enumerate() {
        let source = Source { line: Some(i as u64 + 1), ..Source::default() };
        processor.process(pulse_schemas::capture::decode_line(line.as_bytes()), source, line.as_bytes(), &mut produced);
    }
    assert_eq!(produced.dead.len(), 3, "all three are invalid");
    let codes: Vec<&str> = produced.dead.iter().map(|d| d.invalid.reason.code()).collect();
    sink.send(produced).await.unwrap();
    sink.flush().await.unwrap();

    let mut messages = drain_queue(&sdk, &queue_url).await;
    messages.sort_by_key(|m| {
        let body: serde_json::Value = serde_json::from_str(m.body().unwrap()).unwrap();
        body["source"]["line"].as_u64().unwrap()
    });
    assert_eq!(messages.len(), 3);
    let bodies: Vec<serde_json::Value> =
        messages.iter().map(|m| serde_json::from_str(m.body().unwrap()).unwrap()).collect();
    for (body, code) in bodies.iter().zip(&codes) {
        assert_eq!(body["code"], *code);
        assert!(!body["reason"].as_str().unwrap().is_empty());
    }
    let code_attribute = messages[1].message_attributes().unwrap()["code"].string_value().unwrap();
    assert_eq!(code_attribute, codes[1]);
    assert_eq!(bodies[0]["record_text"], "not json at all");
    assert_eq!(
        bodies[1]["record"],
        serde_json::from_str::<serde_json::Value>(small_event).unwrap(),
        "the original record"
    );
    assert_eq!(bodies[2]["record_omitted"]["bytes"], huge.len(), "what was left out, and why");
    assert!(messages[2].body().unwrap().len() <= 256 * 1024);
    assert!(huge.starts_with(bodies[2]["record_excerpt"].as_str().unwrap()));

    // The file has all three, whole.
    let text = std::fs::read_to_string(&file).unwrap();
    let in_file: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(in_file.len(), 3);
    assert_eq!(in_file[2]["record"]["dynamodb"]["NewImage"]["pad"]["S"].as_str().unwrap().len(), 300_000);
    assert_eq!(sink.stats().dead_letters, 3);
}

/// A step whose predictions are not stored is delivered again (a Lambda
/// batch redelivered, `pulse run` restarted from its checkpoint), its dead
/// letters made again with it: they reach the queue once, from the
/// delivery whose writes were stored, not once per delivery (a review,
/// 2026-12-06: one invalid record, 2 messages after one retry).
#[tokio::test]
async fn a_step_delivered_again_sends_its_dead_letters_once() {
    let sdk = sdk().await;
    let (queue_url, _) = queue(&sdk).await;
    // A predictions table that does not exist yet: the first delivery's writes fail.
    let table = format!("later-{}", std::process::id());
    let out = Destinations {
        predictions: Some(pulse_aws::output::predictions::PredictionWriter::new(
            aws_sdk_dynamodb::Client::new(&sdk),
            table.as_str(),
            4,
        )),
        dead_letter_queue: Some(DeadLetterQueue::new(aws_sdk_sqs::Client::new(&sdk), queue_url.as_str())),
        ..nowhere()
    };
    let mut sink =
        ScoringSink::new(ModelBackend::Embedded(embedded()), out, sink_config(64, Duration::from_secs(5))).unwrap();
    let delivery = || {
        let mut processor = Processor::new(Arc::new(Engine::new(EngineConfig::default())));
        let mut produced = Produced::default();
        let source = Source { line: Some(1), ..Source::default() };
        processor.process(pulse_schemas::capture::decode_line(b"not a record"), source, b"not a record", &mut produced);
        produced.vectors.push(vector("a", 1_766_966_400_000, 3.0));
        produced
    };
    let first = async {
        sink.send(delivery()).await?;
        sink.flush().await
    };
    assert!(first.await.is_err(), "no table: the step's writes fail");
    assert!(drain_queue(&sdk, &queue_url).await.is_empty(), "nothing sent for a step not stored");

    pulse_aws::setup::ensure_events_table(&aws_sdk_dynamodb::Client::new(&sdk), &table).await.unwrap();
    sink.send(delivery()).await.unwrap();
    sink.flush().await.unwrap();
    let messages = drain_queue(&sdk, &queue_url).await;
    assert_eq!(messages.len(), 1, "once: {messages:?}");
    assert_eq!(sink.stats().dead_letters, 1, "counted once");
}
