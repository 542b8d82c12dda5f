//! kill -9 chaos for the Lambda function: the real `bootstrap` under a Lambda
//! Runtime API served here on 127.0.0.1, its execution environment killed
//! with SIGKILL mid-batch at random moments, and the batch delivered again
//! to a fresh environment (a cold start), as Lambda retries a batch whose
//! invocation failed.
//!
//! The marketplace is written to the table a chunk at a time, and each
//! chunk's stream records are one batch (so hydration on a cold start sees
//! the table as it was when that batch came). Timers are off (`--no-timers`):
//! the customers' last vectors are then those of a replay of the delivered
//! records, and each customer's prediction must be the embedded model's
//! scores of it, exactly: nothing lost, nothing made up, no customer moved
//! back by a retried batch.
//!
//! `PULSE_CHAOS_SEED` picks the moments (default 1), `PULSE_CHAOS_KILL_PERCENT`
//! the share of attempts killed (default 40); `scripts/chaos.sh` runs it
//! with the time as the seed.

mod common;
mod lambda_support;
#[path = "common/live.rs"]
mod live;
mod output_support;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lambda_events::event::dynamodb::EventRecord;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::routing::{get, post};
use common::{bootstrap_bin, replay_capture, write_file};
use lambda_support::trim_horizon;
use live::{sdk, synth_lines, TableWriter};
use output_support::{embedded, n};
use pulse_aws::live::lambda_event::event_record_from_sdk;
use pulse_aws::setup;
use pulse_e2e::{aws_endpoint, unique_name};
use pulse_operators::TimerPolicy;
use pulse_schemas::FeatureVector;
use serde_json::{json, Value};

/// What the Runtime API holds: invocations waiting, taken, answered.
#[derive(Default)]
struct Invocations {
    waiting: VecDeque<(String, Value)>,
    taken: HashSet<String>,
    answers: HashMap<String, Result<Value, String>>,
}

type Shared = Arc<Mutex<Invocations>>;

async fn next(State(api): State<Shared>) -> (HeaderMap, String) {
    loop {
        let taken = {
            let mut api = api.lock().unwrap();
            let next = api.waiting.pop_front();
            if let Some((id, _)) = &next {
                api.taken.insert(id.clone());
            }
            next
        };
        if let Some((id, payload)) = taken {
            let deadline = live::now_ms() + 60_000;
            let mut headers = HeaderMap::new();
            headers.insert("lambda-runtime-aws-request-id", HeaderValue::from_str(&id).unwrap());
            headers.insert("lambda-runtime-deadline-ms", HeaderValue::from_str(&deadline.to_string()).unwrap());
            headers.insert(
                "lambda-runtime-invoked-function-arn",
                HeaderValue::from_static("arn:aws:lambda:us-east-1:123456789012:function:pulse"),
            );
            headers.insert("content-type", HeaderValue::from_static("application/json"));
            return (headers, payload.to_string());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn response(State(api): State<Shared>, Path(id): Path<String>, body: String) -> StatusCode {
    let answer = serde_json::from_str(&body).map_err(|e| format!("not JSON ({e}): {body}"));
    api.lock().unwrap().answers.insert(id, answer);
    StatusCode::ACCEPTED
}

async fn error(State(api): State<Shared>, Path(id): Path<String>, body: String) -> StatusCode {
    api.lock().unwrap().answers.insert(id, Err(body));
    StatusCode::ACCEPTED
}

async fn runtime_api() -> (String, Shared) {
    let api: Shared = Arc::default();
    let app = axum::Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route("/2018-06-01/runtime/invocation/{id}/response", post(response))
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .with_state(api.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, api)
}

/// A fresh execution environment: `bootstrap` on the Runtime API at `api`.
fn environment(api: &str, table: &str) -> Child {
    let mut cmd = Command::new(bootstrap_bin());
    cmd.arg("--no-timers")
        .env("AWS_LAMBDA_RUNTIME_API", api)
        .env("AWS_LAMBDA_FUNCTION_NAME", "pulse")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/pulse")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "chaos")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL", aws_endpoint())
        .env("TABLE_NAME", table)
        .env("DUE_INDEX", "none")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        // A killed environment's last words are noise; a failing one's are kept by its answer.
        .stderr(if std::env::var_os("PULSE_CHAOS_VERBOSE").is_some() { Stdio::inherit() } else { Stdio::null() });
    for key in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
        cmd.env(key, std::env::var(key).unwrap_or_else(|_| "testing".into()));
    }
    cmd.spawn().expect("bootstrap starts")
}

/// The stream read from where the last call stopped.
struct StreamTail {
    client: aws_sdk_dynamodbstreams::Client,
    iterator: Option<String>,
}

impl StreamTail {
    async fn new(client: aws_sdk_dynamodbstreams::Client, arn: &str) -> StreamTail {
        let described = client.describe_stream().stream_arn(arn).send().await.expect("DescribeStream");
        let shards = described.stream_description().unwrap().shards();
        assert_eq!(shards.len(), 1, "the local server gives a table one shard");
        let iterator = trim_horizon(&client, arn, shards[0].shard_id().unwrap()).await;
        StreamTail { client, iterator }
    }

    /// The next `count` records, as Lambda delivers them.
    async fn next(&mut self, count: usize) -> Vec<EventRecord> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut records = Vec::new();
        while records.len() < count {
            assert!(Instant::now() < deadline, "{} of {count} records came", records.len());
            let it = self.iterator.clone().expect("an open shard");
            let page = self.client.get_records().shard_iterator(it).send().await.expect("GetRecords");
            records.extend(page.records().iter().map(|r| event_record_from_sdk(r).expect("a convertible record")));
            self.iterator = page.next_shard_iterator().map(str::to_owned);
            if page.records().is_empty() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        records
    }
}

/// A seeded generator for the moments (splitmix64).
struct Chaos(u64);

impl Chaos {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environments_killed_mid_batch_and_retried_lose_nothing_and_make_up_nothing() {
    let seed = env_u64("PULSE_CHAOS_SEED", 1);
    let kill_percent = env_u64("PULSE_CHAOS_KILL_PERCENT", 40);
    let mut chaos = Chaos(seed);
    let sdk = sdk().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let table = unique_name("lambda-chaos");
    let arn = setup::ensure_events_table(&dynamodb, &table).await.expect("events table");
    let mut tail = StreamTail::new(aws_sdk_dynamodbstreams::Client::new(&sdk), &arn).await;
    let (api, invocations) = runtime_api().await;
    let _ = bootstrap_bin(); // built before any timing starts

    let lines = synth_lines(40, 6, 19, pulse_synth::Hostility::none());
    let mut writer = TableWriter::new(&sdk, &table);
    let mut delivered: Vec<EventRecord> = Vec::new();
    let (mut attempts, mut kills, mut failed_answers) = (0u32, 0u32, 0u32);
    let mut child: Option<Child> = None;
    let started = Instant::now();
    for (b, chunk) in lines.chunks(40).enumerate() {
        writer.write_lines(chunk).await;
        let records = tail.next(chunk.len()).await;
        let payload = json!({ "Records": records });
        delivered.extend(records);
        for attempt in 0.. {
            assert!(attempt < 20, "batch {b} never succeeded");
            attempts += 1;
            let id = format!("batch-{b}-attempt-{attempt}");
            invocations.lock().unwrap().waiting.push_back((id.clone(), payload.clone()));
            let running = child.get_or_insert_with(|| environment(&api, &table));
            let kill = chaos.next() % 100 < kill_percent;
            let deadline = Instant::now() + Duration::from_secs(60);
            if kill {
                while !invocations.lock().unwrap().taken.contains(&id) {
                    assert!(Instant::now() < deadline, "batch {b} was never taken");
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                tokio::time::sleep(Duration::from_micros(chaos.next() % 60_000)).await;
                running.kill().expect("SIGKILL");
                running.wait().unwrap();
                child = None;
            } else {
                while !invocations.lock().unwrap().answers.contains_key(&id) {
                    assert!(Instant::now() < deadline, "batch {b} got no answer");
                    assert!(running.try_wait().unwrap().is_none(), "the environment died by itself at batch {b}");
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
            let answer = invocations.lock().unwrap().answers.remove(&id);
            match answer {
                // The environment answered before it was killed: Lambda has the answer.
                Some(Ok(answer)) if answer["batchItemFailures"].as_array().is_some_and(Vec::is_empty) => break,
                Some(other) => {
                    failed_answers += 1;
                    eprintln!("batch {b}: answered {other:?}; delivered again");
                }
                None => kills += 1,
            }
        }
    }
    if let Some(mut c) = child {
        c.kill().ok();
        c.wait().ok();
    }
    assert!(kill_percent == 0 || kills > 0, "no kill landed mid-batch");

    // The oracle: a replay of the delivered records, the model's scores of each customer's last vector.
    let dir = tempfile::tempdir().unwrap();
    let capture: String = delivered.iter().map(|r| format!("{}\n", serde_json::to_string(r).unwrap())).collect();
    let path = write_file(dir.path(), "capture.jsonl", capture.as_bytes());
    let replayed = tokio::task::spawn_blocking(move || replay_capture(&path, TimerPolicy::Off)).await.unwrap();
    let mut last: BTreeMap<String, FeatureVector> = BTreeMap::new();
    for v in replayed.vectors() {
        last.insert(v.customer_id.to_string(), v);
    }
    assert!(last.len() >= 30, "{} customers", last.len());
    let model = embedded();
    for (customer, vector) in &last {
        let item = dynamodb
            .get_item()
            .table_name(&table)
            .key("customer_id", aws_sdk_dynamodb::types::AttributeValue::S(customer.clone()))
            .key("sk", aws_sdk_dynamodb::types::AttributeValue::S("PRED#latest".into()))
            .send()
            .await
            .expect("GetItem")
            .item
            .unwrap_or_else(|| panic!("{customer}: no prediction (lost)"));
        assert_eq!(n(&item, "as_of") as i64, vector.as_of, "{customer}: the prediction of its last vector");
        let scores = model.score_now(&[vector.features]).unwrap()[0];
        for (name, want) in [
            ("first_session_success", scores.first_session_success),
            ("session_velocity", scores.session_velocity),
            ("churn_risk_14d", scores.churn_risk_14d),
            ("churn_risk_30d", scores.churn_risk_30d),
            ("health_score", scores.health_score),
        ] {
            let got = n(&item, name);
            assert!((got - want).abs() <= 1e-9 * want.abs().max(1.0), "{customer} {name}: stored {got}, model {want}");
        }
    }
    eprintln!(
        "lambda chaos (seed {seed}): {} batches, {} records, {attempts} attempts, {kills} environments killed mid-batch, \
         {failed_answers} failed answers; {} customers' predictions exact; {:.1} s",
        lines.chunks(40).len(),
        delivered.len(),
        last.len(),
        started.elapsed().as_secs_f64()
    );
}
