//! Helpers of the live-input tests (`live_*.rs`): tables and streams on the
//! local AWS server, writing events the way an application would, running
//! the consumer in-process, and comparing vectors.
//!
//! Included by path (`#[path = "common/live.rs"] mod live;`) next to
//! `mod common;`.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use pulse_aws::live::api::StreamApi;
use pulse_aws::live::reader::ReaderConfig;
use pulse_aws::live::{Clock, Consumer, LiveConfig, LiveSummary};
use pulse_aws::{setup, AwsArgs};
use pulse_e2e::{aws_endpoint, unique_name};
use pulse_operators::{EngineConfig, TimerPolicy};
use pulse_runtime::files::FileSink;
use pulse_schemas::{FeatureVector, Source, DAY_MS};
use pulse_synth::{generate, Hostility, SynthConfig};
use serde_json::{json, Value};

/// The SDK configuration for the local server.
pub async fn sdk() -> SdkConfig {
    AwsArgs::local(aws_endpoint()).load().await
}

/// Wall clock, ms since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// A synthetic marketplace whose events all lie in the past: `days` days
/// ending at today's midnight (UTC). The local server stamps every stream
/// record with the wall clock, and an event more than an hour after its
/// record's creation time is invalid, so events must not be in the future.
pub fn synth_lines(customers: usize, days: u32, seed: u64, hostility: Hostility) -> Vec<String> {
    synth_lines_until(now_ms() / DAY_MS * DAY_MS, customers, days, seed, hostility)
}

/// [`synth_lines`] ending at `end_ms` (a past day boundary).
pub fn synth_lines_until(end_ms: i64, customers: usize, days: u32, seed: u64, hostility: Hostility) -> Vec<String> {
    let config = SynthConfig {
        customers,
        days,
        seed,
        start_ms: end_ms - i64::from(days) * DAY_MS,
        hostility,
        ..SynthConfig::default()
    };
    let mut out = Vec::new();
    generate(&config, &mut out, &mut |_| {}).expect("the synthetic marketplace generates");
    String::from_utf8(out).unwrap().lines().map(str::to_owned).collect()
}

/// A new events table (the contract's key and stream); its name and stream ARN.
pub async fn events_table(sdk: &SdkConfig, prefix: &str) -> (String, String) {
    let client = aws_sdk_dynamodb::Client::new(sdk);
    let table = unique_name(prefix);
    let arn = setup::ensure_events_table(&client, &table).await.expect("the events table is created");
    (table, arn)
}

/// An item from its image JSON.
pub fn item(image: &Value) -> HashMap<String, AttributeValue> {
    pulse_aws::sdk_item_from_json(image).expect("an image in DynamoDB's JSON shape")
}

fn key_of(image: &Value) -> (String, String) {
    (image["customer_id"]["S"].as_str().unwrap().to_owned(), image["sk"]["S"].as_str().unwrap().to_owned())
}

/// Writes items to a table as an application would (PutItem, BatchWriteItem,
/// DeleteItem) and keeps, for each write, the stream record DynamoDB
/// Streams makes of it (INSERT or MODIFY with the old image, REMOVE), as a
/// capture line created at the wall clock of the write: the reference the
/// live run is compared with.
pub struct TableWriter {
    client: aws_sdk_dynamodb::Client,
    /// The table.
    pub table: String,
    items: HashMap<(String, String), Value>,
    /// The stream records the writes make, as capture lines.
    pub expected: Vec<String>,
    next_seq: u64,
}

impl TableWriter {
    /// A writer of `table`.
    pub fn new(sdk: &SdkConfig, table: &str) -> TableWriter {
        TableWriter {
            client: aws_sdk_dynamodb::Client::new(sdk),
            table: table.to_owned(),
            items: HashMap::new(),
            expected: Vec::new(),
            next_seq: 1,
        }
    }

    fn record(&mut self, name: &str, keys: &(String, String), old: Option<Value>, new: Option<Value>) {
        let mut dynamodb = json!({
            "ApproximateCreationDateTime": now_ms() as f64 / 1000.0,
            "Keys": {"customer_id": {"S": keys.0}, "sk": {"S": keys.1}},
            "SequenceNumber": self.next_seq.to_string(),
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        });
        self.next_seq += 1;
        if let Some(old) = old {
            dynamodb["OldImage"] = old;
        }
        if let Some(new) = new {
            dynamodb["NewImage"] = new;
        }
        self.expected.push(json!({"eventName": name, "dynamodb": dynamodb}).to_string());
    }

    fn note_put(&mut self, image: &Value) {
        let key = key_of(image);
        let old = self.items.insert(key.clone(), image.clone());
        let name = if old.is_some() { "MODIFY" } else { "INSERT" };
        self.record(name, &key, old, Some(image.clone()));
    }

    /// PutItem of one image.
    pub async fn put(&mut self, image: Value) {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item(&image)))
            .send()
            .await
            .unwrap_or_else(|e| panic!("PutItem failed: {e:?}"));
        self.note_put(&image);
    }

    /// DeleteItem of a key (a user's deletion: a retraction).
    pub async fn delete(&mut self, customer: &str, sk: &str) {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("customer_id", AttributeValue::S(customer.into()))
            .key("sk", AttributeValue::S(sk.into()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("DeleteItem failed: {e:?}"));
        let key = (customer.to_owned(), sk.to_owned());
        if let Some(old) = self.items.remove(&key) {
            self.record("REMOVE", &key, Some(old), None);
        }
    }

    /// BatchWriteItem of up to 25 images with distinct keys.
    async fn put_batch(&mut self, images: &[Value]) {
        let requests: Vec<WriteRequest> = images
            .iter()
            .map(|i| {
                WriteRequest::builder()
                    .put_request(PutRequest::builder().set_item(Some(item(i))).build().unwrap())
                    .build()
            })
            .collect();
        let mut pending = HashMap::from([(self.table.clone(), requests)]);
        for _ in 0..100 {
            let out = self
                .client
                .batch_write_item()
                .set_request_items(Some(pending))
                .send()
                .await
                .unwrap_or_else(|e| panic!("BatchWriteItem failed: {e:?}"));
            match out.unprocessed_items() {
                Some(left) if left.values().any(|v| !v.is_empty()) => pending = left.clone(),
                _ => {
                    // A batch's stream records follow the request's order here
                    // (the local server applies it in order).
                    for image in images {
                        self.note_put(image);
                    }
                    return;
                }
            }
        }
        panic!("BatchWriteItem kept leaving items unprocessed");
    }

    /// Writes the records of synthetic capture lines as the application
    /// would have: INSERT and MODIFY as puts (batched 25 at a time while
    /// keys are distinct), REMOVE as DeleteItem.
    pub async fn write_lines(&mut self, lines: &[String]) {
        let mut batch: Vec<Value> = Vec::new();
        for line in lines {
            let record: Value = serde_json::from_str(line).unwrap();
            match record["eventName"].as_str() {
                Some("INSERT" | "MODIFY") => {
                    let image = record["dynamodb"]["NewImage"].clone();
                    let key = key_of(&image);
                    if batch.len() == 25 || batch.iter().any(|b| key_of(b) == key) {
                        self.put_batch(&std::mem::take(&mut batch)).await;
                    }
                    batch.push(image);
                }
                Some("REMOVE") => {
                    if !batch.is_empty() {
                        self.put_batch(&std::mem::take(&mut batch)).await;
                    }
                    let (c, sk) = key_of(&record["dynamodb"]["OldImage"]);
                    self.delete(&c, &sk).await;
                }
                other => panic!("unexpected eventName {other:?}"),
            }
        }
        if !batch.is_empty() {
            self.put_batch(&batch).await;
        }
    }

    /// The reference stream records, written to `path` as a capture.
    pub fn write_expected(&self, path: &Path) -> PathBuf {
        std::fs::write(path, self.expected.join("\n") + "\n").unwrap();
        path.to_owned()
    }
}

/// An event image (the contract's attributes, plus `attrs`).
pub fn event_image(customer: &str, id: &str, event_type: &str, ts: i64, attrs: &[(&str, Value)]) -> Value {
    let mut image = json!({
        "customer_id": {"S": customer},
        "sk": {"S": format!("EVT#{ts:013}#{id}")},
        "entity_type": {"S": "event"},
        "event_id": {"S": id},
        "event_type": {"S": event_type},
        "ts": {"N": ts.to_string()},
    });
    for (k, v) in attrs {
        image[*k] = v.clone();
    }
    image
}

/// The prediction item pulse itself writes back (§6): not an event.
pub fn prediction_image(customer: &str, as_of: i64, churn: f64) -> Value {
    json!({
        "customer_id": {"S": customer},
        "sk": {"S": "PRED#latest"},
        "entity_type": {"S": "prediction"},
        "churn_risk_14d": {"N": churn.to_string()},
        "health_score": {"N": "71.5"},
        "segment": {"S": "healthy"},
        "as_of": {"N": as_of.to_string()},
        "features_schema": {"S": "features-v1"},
    })
}

/// A live configuration fit for tests: quick polls, short idle exit,
/// checkpoints every 200 ms, timers on stream time.
pub fn test_config(timers: TimerPolicy, checkpoint: Option<PathBuf>) -> LiveConfig {
    LiveConfig {
        engine: Some(EngineConfig { timers }),
        checkpoint,
        checkpoint_interval: Duration::from_millis(200),
        discover_interval: Duration::from_millis(500),
        reader: ReaderConfig {
            limit: 1000,
            idle_min: Duration::from_millis(20),
            idle_max: Duration::from_millis(100),
            ..ReaderConfig::default()
        },
        idle_exit: Some(Duration::from_millis(1500)),
        clock: Clock::Stream,
        ..LiveConfig::default()
    }
}

/// The DynamoDB stream of `table`.
pub async fn table_stream(sdk: &SdkConfig, table: &str) -> StreamApi {
    StreamApi::dynamodb_table(aws_sdk_dynamodbstreams::Client::new(sdk), table).await.expect("the table's stream")
}

/// Runs the consumer in-process to its end (idle exit or max records),
/// writing vectors and dead letters to `features` / `dead`.
pub async fn consume(config: LiveConfig, api: StreamApi, features: &Path, dead: &Path) -> LiveSummary {
    let consumer = Consumer::prepare(config, api, None).await.expect("the consumer prepares");
    let sink = FileSink::open(Some(features), Some(dead), consumer.sink_state()).expect("the files open");
    consumer.run(sink, std::future::pending()).await.expect("the live run succeeds")
}

/// Vectors with their `source` cleared: live runs name shards and sequence
/// numbers, replays name lines.
pub fn without_source(vectors: Vec<FeatureVector>) -> Vec<FeatureVector> {
    vectors.into_iter().map(|v| FeatureVector { source: Source::default(), ..v }).collect()
}

/// Runs on the current thread's runtime with I/O and time.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap().block_on(f)
}

/// The hostile synthetic stream minus invalid items: every other imperfection
/// is something an application's writes can make (a TTL expiry becomes a
/// user's delete here; a late removal of an item that is not in the table
/// makes no record, in the table as in [`TableWriter::expected`]). Invalid
/// images (`NaN` numbers, which DynamoDB refuses to store) are written
/// explicitly by the tests instead.
pub fn writable_hostility() -> Hostility {
    Hostility { invalid_rate: 0.0, ..Hostility::hostile() }
}
