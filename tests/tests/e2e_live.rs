//! The `pulse` binary end to end, as a user runs it, against the local AWS
//! server: a table's events in; predictions in the table, alerts on SNS,
//! metrics in CloudWatch and bad records in the dead-letter queue out; and a
//! SageMaker endpoint that is down for a while.
//!
//! * `events_in_predictions_metrics_alerts_and_dead_letters_out`: a synthetic
//!   marketplace (30% churned and 30% at risk on day one, so that alerts
//!   happen; the test fails if none do), four invalid items and one prediction
//!   item of the pipeline's own, written to a table; `pulse run --score` with
//!   the embedded model, every page scored as it comes (`--linger-s 0`), until
//!   idle. Every customer with events, and no other, ends with a `PRED#latest`
//!   item holding the embedded model's scores of its last vector (as written
//!   to `--features-out`), exactly, that vector's `as_of`, and the §6 segment
//!   of those scores. The alerts read back from a queue subscribed to the
//!   topic are the run's count: each is the model's score above 0.7 of a
//!   vector the run emitted, a rise (the previous risk at most 0.7); a
//!   customer alerts again only after a vector below the re-arm level 0.5; the
//!   stored alert state agrees, and every customer stored above 0.7 alerted and
//!   is disarmed. The fleet namespace holds the §6 metrics (and
//!   `PredictionFailures`), the health namespace its metrics, and the last
//!   data point of each fleet metric describes the stored predictions
//!   (`TotalCustomersProcessed` = the customers scored). The metrics interval
//!   is longer than the run, so these are the metrics published when the run
//!   ends. The dead-letter queue holds exactly the invalid items, each with
//!   its reason code and its original record; the pipeline's own prediction
//!   item made neither a vector nor a dead letter, and was left alone.
//! * `endpoint_down_then_back_makes_up_nothing`: the same with
//!   `--endpoint-name` and `--on-endpoint-down hold`, the SageMaker Runtime
//!   client pointed (by `AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME`) at a port where
//!   nothing listens. The run reads the stream and fails to score (its log
//!   says so), and stores no prediction; then `pulse serve` starts on that
//!   port, and the run scores every customer through it: every prediction
//!   names the endpoint and holds the embedded model's scores of the
//!   customer's last vector (`pulse serve` runs the same model), none came
//!   from a fallback, and the run counted the failed calls.
//! * `endpoint_down_with_fallback_says_so_then_uses_the_endpoint_again`: with
//!   `--on-endpoint-down fallback` (and no timers), every customer is scored
//!   while the endpoint is down, each prediction saying `embedded-fallback`
//!   and holding the embedded model's scores; once `pulse serve` is up, the
//!   new events of three customers are scored by the endpoint; SIGTERM ends
//!   the run cleanly.
//!
//! * `through_injected_faults_nothing_is_lost_fabricated_or_written_twice`:
//!   the run of the first test, scored by `pulse serve` as the endpoint, with
//!   every AWS call through a fault-injecting proxy ([`fault_proxy`]): the
//!   stream answers `ExpiredIteratorException`, `LimitExceededException` and
//!   500s; DynamoDB `ProvisionedThroughputExceededException` on the
//!   prediction writes; SNS `Throttling` and SQS 500s on the first two
//!   batches; SageMaker
//!   `ThrottlingException`, 503, `ModelNotReadyException` and an answer past
//!   the client's timeout. Every fault
//!   kind is hit, and four SageMaker failures in a row open the breaker,
//!   which closes again; the predictions are exactly those of a clean run (the
//!   model's scores of each customer's last vector), every alert counted
//!   was published once and no alert twice, the dead letters are exactly
//!   the invalid items, and the run counted its retries.
//!
//! Every AWS call of the run goes to the local server through
//! `AWS_ENDPOINT_URL` (no `--endpoint-url`: that flag would override the
//! per-service variable the endpoint tests use). Predictions are written to
//! the table whose stream the run reads, as in production: their change
//! records come back and are skipped. Each test makes its own table, topic,
//! queues and metric namespaces (the server is shared, so the default
//! `IOpsDashboard/Predictions` would mix runs).

mod common;
#[path = "common/fault_proxy.rs"]
mod fault_proxy;
#[path = "common/live.rs"]
mod live;
mod output_support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_sdk_cloudwatch::types::Metric;
use aws_sdk_dynamodb::types::AttributeValue;
use common::{parse_vectors, pulse_bin, D, H, MIN};
use fault_proxy::{Fault, FaultProxy, Rule, When};
use live::{event_image, now_ms, prediction_image, TableWriter};
use output_support::{drain_queue, embedded, metric_series, n, s};
use pulse_aws::output::alerts::AlertMessage;
use pulse_aws::output::fallback::FALLBACK_SERVED_BY;
use pulse_aws::output::metrics::HealthMetric;
use pulse_e2e::{aws_endpoint, unique_name};
use pulse_model::Scorer;
use pulse_operators::scoring::FleetMetric;
use pulse_schemas::features::is_new_customer;
use pulse_schemas::{FeatureVector, DAY_MS};
use pulse_synth::{generate, Hostility, SegmentMix, SynthConfig};
use serde_json::{json, Value};

/// What a test wrote and where the run sends things.
struct Marketplace {
    sdk: SdkConfig,
    table: String,
    topic_arn: String,
    alerts_queue: String,
    dead_letter_queue: String,
    fleet_namespace: String,
    health_namespace: String,
    /// Customers with events.
    customers: BTreeSet<String>,
    /// The invalid items written, with the reason code each must get.
    invalid: Vec<(&'static str, Value)>,
    /// The customer of the prediction item written as the pipeline would.
    own_prediction: String,
}

/// A synthetic marketplace of `customers` over `days` days ending at today's
/// midnight (UTC), a third of it churning and a third at risk on day one.
fn synth(customers: usize, days: u32, seed: u64) -> Vec<String> {
    let end = now_ms() / DAY_MS * DAY_MS;
    let config = SynthConfig {
        customers,
        days,
        seed,
        start_ms: end - i64::from(days) * DAY_MS,
        mix: SegmentMix::new(0.2, 0.2, 0.3, 0.3).unwrap(),
        hostility: Hostility::realistic(),
        ..SynthConfig::default()
    };
    let mut out = Vec::new();
    generate(&config, &mut out, &mut |_| {}).expect("the synthetic marketplace generates");
    String::from_utf8(out).unwrap().lines().map(str::to_owned).collect()
}

/// Makes the table, topic, queues, and writes the marketplace, four invalid
/// items (in the middle of the stream) and a prediction item of the
/// pipeline's own.
async fn marketplace(prefix: &str, customers: usize, days: u32, seed: u64) -> Marketplace {
    let sdk = live::sdk().await;
    let (table, _) = live::events_table(&sdk, prefix).await;
    let sns = aws_sdk_sns::Client::new(&sdk);
    let topic_arn = sns.create_topic().name(unique_name(prefix)).send().await.expect("CreateTopic").topic_arn.unwrap();
    let (alerts_queue, alerts_queue_arn) = output_support::queue(&sdk).await;
    sns.subscribe()
        .topic_arn(&topic_arn)
        .protocol("sqs")
        .endpoint(&alerts_queue_arn)
        .attributes("RawMessageDelivery", "true")
        .send()
        .await
        .expect("Subscribe");
    let (dead_letter_queue, _) = output_support::queue(&sdk).await;

    let lines = synth(customers, days, seed);
    let customers: BTreeSet<String> = lines
        .iter()
        .map(|l| {
            let record: Value = serde_json::from_str(l).unwrap();
            record["dynamodb"]["Keys"]["customer_id"]["S"].as_str().unwrap().to_owned()
        })
        .collect();
    let mut w = TableWriter::new(&sdk, &table);
    let (first, rest) = lines.split_at(lines.len() / 2);
    w.write_lines(first).await;
    let now = now_ms();
    let tutor = ("tutor_id", json!({"S": "tut_1"}));
    let invalid = vec![
        ("unknown_event_type", event_image("stu_bad", "bad_type", "teleport", now - D, &[])),
        (
            "out_of_range",
            event_image(
                "stu_bad",
                "bad_rating",
                "session_rated",
                now - D,
                &[tutor.clone(), ("rating", json!({"N": "9"}))],
            ),
        ),
        ("missing_attribute", event_image("stu_bad", "no_minutes", "session_completed", now - D, &[tutor])),
        ("future_event", event_image("stu_bad", "from_future", "login", now + 3 * H, &[])),
    ];
    for (_, image) in &invalid {
        w.put(image.clone()).await;
    }
    let own_prediction = "stu_own_prediction".to_owned();
    w.put(prediction_image(&own_prediction, now - MIN, 0.8)).await;
    w.write_lines(rest).await;
    Marketplace {
        sdk,
        table,
        topic_arn,
        alerts_queue,
        dead_letter_queue,
        fleet_namespace: unique_name("IOpsDashboard/Predictions-e2e"),
        health_namespace: unique_name("pulse/Pipeline-e2e"),
        customers,
        invalid,
        own_prediction,
    }
}

/// A run's files.
struct RunFiles {
    features: PathBuf,
    summary: PathBuf,
    stderr: PathBuf,
}

impl RunFiles {
    fn new(dir: &Path) -> RunFiles {
        RunFiles {
            features: dir.join("features.jsonl"),
            summary: dir.join("summary.json"),
            stderr: dir.join("stderr.log"),
        }
    }

    fn summary(&self) -> Value {
        let bytes = std::fs::read(&self.summary).unwrap_or_else(|e| panic!("no summary ({e}):\n{}", self.stderr()));
        serde_json::from_slice(&bytes).expect("the summary is JSON")
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn vectors(&self) -> Vec<FeatureVector> {
        parse_vectors(&std::fs::read(&self.features).unwrap_or_default())
    }
}

/// Starts `pulse run --score` over the marketplace's table, with every output,
/// quick polls and checkpoints, timers on stream time, and `extra` flags (it
/// runs until SIGTERM unless they say `--idle-exit-s`). All
/// AWS calls go to the local server through `AWS_ENDPOINT_URL`; `env` adds
/// variables.
fn start_run(m: &Marketplace, files: &RunFiles, extra: &[&str], env: &[(&str, String)]) -> Child {
    let mut args: Vec<String> = [
        "run",
        "--source",
        "dynamodb-streams",
        "--table",
        &m.table,
        "--clock",
        "stream",
        "--poll-min-ms",
        "20",
        "--poll-max-ms",
        "100",
        "--checkpoint-interval-ms",
        "300",
        "--score",
        // Every page of records scored as it comes, so customers are scored
        // many times over their history (alerts rise, fall and re-arm).
        "--linger-s",
        "0",
        "--get-records-limit",
        "100",
        "--predictions-table",
        &m.table,
        "--alerts-topic-arn",
        &m.topic_arn,
        "--dead-letter-queue-url",
        &m.dead_letter_queue,
        "--metrics",
        "cloudwatch",
        // Longer than the run: the metrics published are those of its end.
        "--metrics-interval-s",
        "3600",
        "--metrics-namespace",
        &m.fleet_namespace,
        "--health-namespace",
        &m.health_namespace,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for (flag, path) in [("--features-out", &files.features), ("--summary-json", &files.summary)] {
        args.push(flag.into());
        args.push(path.display().to_string());
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let mut cmd = Command::new(pulse_bin());
    cmd.args(&args)
        .env("AWS_ENDPOINT_URL", aws_endpoint())
        .env("AWS_REGION", "us-east-1")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&files.stderr).expect("the stderr file"));
    for key in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
        if std::env::var_os(key).is_none() {
            cmd.env(key, "testing");
        }
    }
    for (key, value) in env {
        cmd.env(key, value);
    }
    cmd.spawn().expect("pulse starts")
}

/// Waits for the run to exit (successfully) within `within`.
async fn wait_for_exit(child: &mut Child, files: &RunFiles, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "pulse run failed ({status}):\n{}", files.stderr());
            return;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("pulse run did not end within {within:?}:\n{}", files.stderr());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every `PRED#latest` item of the table, by customer.
async fn predictions(sdk: &SdkConfig, table: &str) -> BTreeMap<String, HashMap<String, AttributeValue>> {
    let client = aws_sdk_dynamodb::Client::new(sdk);
    let mut out = BTreeMap::new();
    let mut start: Option<HashMap<String, AttributeValue>> = None;
    loop {
        let page = client
            .scan()
            .table_name(table)
            .consistent_read(true)
            .filter_expression("sk = :sk")
            .expression_attribute_values(":sk", AttributeValue::S("PRED#latest".into()))
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .expect("Scan");
        for item in page.items.unwrap_or_default() {
            out.insert(s(&item, "customer_id").to_owned(), item);
        }
        match page.last_evaluated_key {
            Some(key) if !key.is_empty() => start = Some(key),
            _ => return out,
        }
    }
}

/// Each customer's last vector: the last emitted (what the scoring queue
/// keeps and FEATURES.md §6, amended, writes: the order of emissions in the
/// customer's stream, not `as_of`). The marketplace's history is written at
/// once, so a customer's first record fires catch-up timers up to now, and
/// its later records, whose events are older than those timers, are late
/// events after them: their vectors, with a smaller `as_of`, replace the
/// timers'. One run writes its vectors in emission order.
fn last_vectors(vectors: &[FeatureVector]) -> BTreeMap<String, FeatureVector> {
    let mut last: BTreeMap<String, FeatureVector> = BTreeMap::new();
    for v in vectors {
        last.insert(v.customer_id.to_string(), v.clone());
    }
    last
}

/// §6's segment rules, first match wins.
fn segment(churn_14d: f64, churn_30d: f64, health: f64) -> &'static str {
    if churn_14d > 0.7 || health < 40.0 {
        "churned"
    } else if churn_14d > 0.4 || churn_30d > 0.6 || health < 60.0 {
        "at_risk"
    } else if churn_14d < 0.2 && health > 80.0 {
        "thriving"
    } else {
        "healthy"
    }
}

/// Checks that every customer with events has a prediction: the embedded
/// model's scores of its last vector, at that vector's `as_of`, with the §6
/// segment, served by `served_by(customer)`; and that no other prediction was
/// written. Returns the customers' last vectors.
fn assert_predictions(
    m: &Marketplace,
    vectors: &[FeatureVector],
    stored: &BTreeMap<String, HashMap<String, AttributeValue>>,
    served_by: impl Fn(&str) -> String,
) -> BTreeMap<String, FeatureVector> {
    let last = last_vectors(vectors);
    let with_vectors: BTreeSet<String> = last.keys().cloned().collect();
    assert_eq!(with_vectors, m.customers, "every customer with events has vectors, and only they do");
    let model = embedded();
    let rows: Vec<_> = last.values().map(|v| v.features).collect();
    let expected = model.score_now(&rows).unwrap();
    for ((customer, v), e) in last.iter().zip(&expected) {
        let item = stored.get(customer).unwrap_or_else(|| panic!("{customer} has no PRED#latest item"));
        assert_eq!(n(item, "as_of") as i64, v.as_of, "{customer}: the as_of of its last vector");
        let got = [
            n(item, "first_session_success"),
            n(item, "session_velocity"),
            n(item, "churn_risk_14d"),
            n(item, "churn_risk_30d"),
            n(item, "health_score"),
        ];
        let want = [e.first_session_success, e.session_velocity, e.churn_risk_14d, e.churn_risk_30d, e.health_score];
        assert_eq!(got, want, "{customer}: the embedded model's scores of its last vector");
        assert_eq!(s(item, "segment"), segment(got[2], got[3], got[4]), "{customer}: the §6 segment");
        assert_eq!(s(item, "served_by"), served_by(customer), "{customer}");
        assert_eq!(s(item, "model"), model.model_name());
        assert_eq!(s(item, "model_version"), model.model_version());
        assert_eq!(s(item, "entity_type"), "prediction");
        assert_eq!(s(item, "features_schema"), "features-v1");
    }
    let others: Vec<&String> = stored.keys().filter(|c| !m.customers.contains(*c) && **c != m.own_prediction).collect();
    assert!(others.is_empty(), "predictions of customers without events: {others:?}");
    last
}

/// Checks the dead-letter queue: exactly the invalid items, each with its
/// reason code and its original record; and the pipeline's own prediction
/// made no vector, no dead letter, and was not rewritten.
async fn assert_dead_letters_and_own_prediction(
    m: &Marketplace,
    vectors: &[FeatureVector],
    stored: &BTreeMap<String, HashMap<String, AttributeValue>>,
) {
    let messages = drain_queue(&m.sdk, &m.dead_letter_queue).await;
    let mut got: Vec<(String, Value)> = messages
        .iter()
        .map(|msg| {
            let body: Value = serde_json::from_str(msg.body().unwrap()).expect("a dead letter is JSON");
            let code = body["code"].as_str().expect("a reason code").to_owned();
            let attribute = msg.message_attributes().and_then(|a| a.get("code")).and_then(|a| a.string_value());
            assert_eq!(attribute, Some(code.as_str()), "the code attribute: {body}");
            assert!(body["reason"].as_str().is_some_and(|r| !r.is_empty()), "a reason for people: {body}");
            (code, body["record"]["dynamodb"]["NewImage"].clone())
        })
        .collect();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    let mut want: Vec<(String, Value)> = m.invalid.iter().map(|(c, i)| (c.to_string(), i.clone())).collect();
    want.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(got, want, "the dead-letter queue holds exactly the invalid items, with their records");

    assert!(
        vectors.iter().all(|v| v.customer_id.as_str() != m.own_prediction),
        "the pipeline's own prediction item made a vector"
    );
    let own = stored.get(&m.own_prediction).expect("the own prediction item is still there");
    assert_eq!(n(own, "churn_risk_14d"), 0.8, "the own prediction item was left alone");
    assert!(own.get("served_by").is_none(), "pulse did not rewrite it");
}

fn number(v: &Value, what: &str) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("{what} is not a count: {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_in_predictions_metrics_alerts_and_dead_letters_out() {
    let started = Instant::now();
    let m = marketplace("e2e-out", 24, 21, 13).await;
    let written_in = started.elapsed();
    let dir = tempfile::tempdir().unwrap();
    let files = RunFiles::new(dir.path());
    let metrics_from = now_ms() - 10 * MIN;
    let mut child = start_run(&m, &files, &["--idle-exit-s", "2"], &[]);
    wait_for_exit(&mut child, &files, Duration::from_secs(90)).await;
    let ran_in = started.elapsed() - written_in;
    let summary = files.summary();
    let scoring = &summary["scoring"];
    let vectors = files.vectors();

    // Predictions: every customer, its last vector, the embedded model's scores.
    let stored = predictions(&m.sdk, &m.table).await;
    let last = assert_predictions(&m, &vectors, &stored, |_| "embedded".to_owned());
    assert_eq!(number(&scoring["model_failures"], "model failures"), 0);
    assert_eq!(number(&scoring["fallback_rows"], "fallback rows"), 0);

    // Alerts: what the run counted, each a rise above 0.7 of one of its
    // vectors, once per rise (§6 hysteresis), and the stored alert state.
    let model = embedded();
    let risk_of = |v: &FeatureVector| model.score_now(&[v.features]).unwrap()[0].churn_risk_14d;
    let alerts: Vec<AlertMessage> = drain_queue(&m.sdk, &m.alerts_queue)
        .await
        .iter()
        .map(|msg| serde_json::from_str(msg.body().unwrap()).expect("an alert message"))
        .collect();
    assert_eq!(alerts.len() as u64, number(&scoring["alerts"], "alerts"), "every alert counted was published once");
    assert!(
        !alerts.is_empty(),
        "the marketplace raised no alert: the test data must make some customer's churn_risk_14d rise above 0.7"
    );
    let mut by_customer: BTreeMap<&str, Vec<&AlertMessage>> = BTreeMap::new();
    for a in &alerts {
        assert!(a.churn_risk_14d > 0.7, "{a:?}");
        match a.previous_churn_risk_14d {
            Some(p) => assert!(p <= 0.7, "a rise from an earlier prediction, not a stay above 0.7: {a:?}"),
            // A new customer's first prediction past its defaults: its
            // first vectors were a new customer's (a later one may have
            // been coalesced into this prediction).
            None => {
                assert!(
                    a.reason.contains("its first prediction after a week of history"),
                    "a first prediction is a baseline: {a:?}"
                );
                let of = |v: &&FeatureVector| v.customer_id.as_str() == a.customer_id;
                assert!(
                    vectors.iter().filter(of).any(|v| v.as_of < a.as_of && is_new_customer(&v.features)),
                    "{a:?}: it was a new customer before"
                );
                assert!(
                    vectors.iter().filter(of).any(|v| v.as_of == a.as_of && !is_new_customer(&v.features)),
                    "{a:?}: the vector that alerted is past the new customer's defaults"
                );
            }
        }
        assert_eq!(a.alert_id, format!("{}#{}", a.customer_id, a.as_of));
        assert_eq!(a.served_by, "embedded");
        // (read back with serde_json's default float parser: exact to the last bit or so)
        let of_vector = vectors.iter().any(|v| {
            v.customer_id.as_str() == a.customer_id
                && v.as_of == a.as_of
                && (risk_of(v) - a.churn_risk_14d).abs() <= 1e-12
        });
        assert!(
            of_vector,
            "the alert of {} at {} is not the model's score of a vector the run emitted",
            a.customer_id, a.as_of
        );
        by_customer.entry(a.customer_id.as_str()).or_default().push(a);
    }
    for (customer, list) in &mut by_customer {
        list.sort_by_key(|a| a.as_of);
        assert!(
            list[1..].iter().all(|a| a.previous_churn_risk_14d.is_some()),
            "{customer}: only a first alert can be a new customer's: {list:?}"
        );
        for pair in list.windows(2) {
            let rearmed = vectors.iter().any(|v| {
                v.customer_id.as_str() == *customer
                    && (pair[0].as_of..=pair[1].as_of).contains(&v.as_of)
                    && risk_of(v) < 0.5
            });
            assert!(
                rearmed,
                "{customer} alerted twice ({} and {}) without falling below 0.5 in between",
                pair[0].as_of, pair[1].as_of
            );
        }
    }
    for customer in &m.customers {
        let item = &stored[customer];
        let armed = matches!(item.get("alert_armed"), Some(AttributeValue::Bool(true)));
        let risk = n(item, "churn_risk_14d");
        match by_customer.get(customer.as_str()) {
            Some(list) => {
                let latest = list.last().unwrap().as_of;
                assert_eq!(n(item, "last_alert_as_of") as i64, latest, "{customer}: the stored alert state");
            }
            None => assert!(item.get("last_alert_as_of").is_none(), "{customer} never alerted"),
        }
        // An armed customer above 0.7 would have alerted: the one above is
        // disarmed (it alerted, or it was above 0.7 from its first
        // prediction on, which is a baseline, and has not re-armed since).
        if risk > 0.7 {
            assert!(!armed, "{customer} at {risk} is not armed");
        }
    }

    // Metrics: the §6 set in the namespace; every customer scored is counted.
    let cloudwatch = aws_sdk_cloudwatch::Client::new(&m.sdk);
    let listed = cloudwatch.list_metrics().namespace(&m.fleet_namespace).send().await.expect("ListMetrics");
    let names: BTreeSet<&str> = listed.metrics().iter().filter_map(Metric::metric_name).collect();
    for name in FleetMetric::SECTION_6.iter().chain(&[FleetMetric::PredictionFailures]).map(|m| m.name()) {
        assert!(names.contains(name), "{name} is not in {}: {names:?}", m.fleet_namespace);
    }
    let listed = cloudwatch.list_metrics().namespace(&m.health_namespace).send().await.expect("ListMetrics");
    let health: BTreeSet<&str> = listed.metrics().iter().filter_map(Metric::metric_name).collect();
    for name in [
        HealthMetric::RecordsPerSecond,
        HealthMetric::PredictionsWritten,
        HealthMetric::AlertsPublished,
        HealthMetric::DeadLetters,
    ]
    .map(HealthMetric::name)
    {
        assert!(health.contains(name), "{name} is not in {}: {health:?}", m.health_namespace);
    }
    // The last data point of each is the final fleet: the stored predictions.
    let ours: Vec<&HashMap<String, AttributeValue>> =
        stored.iter().filter(|(c, _)| m.customers.contains(*c)).map(|(_, i)| i).collect();
    let count = |f: &dyn Fn(&HashMap<String, AttributeValue>) -> bool| ours.iter().filter(|i| f(i)).count() as f64;
    let mean = |name: &str| ours.iter().map(|i| n(i, name)).sum::<f64>() / ours.len() as f64;
    let fleet = [
        (FleetMetric::TotalCustomersProcessed, ours.len() as f64),
        (FleetMetric::HighChurnRiskCount, count(&|i| n(i, "churn_risk_14d") > 0.7)),
        (FleetMetric::AverageChurnRisk14d, mean("churn_risk_14d")),
        (FleetMetric::AverageHealthScore, mean("health_score")),
        (FleetMetric::ThrivingCustomers, count(&|i| s(i, "segment") == "thriving")),
        (FleetMetric::AtRiskCustomers, count(&|i| s(i, "segment") == "at_risk")),
        (FleetMetric::ChurnedCustomers, count(&|i| s(i, "segment") == "churned")),
    ];
    for (metric, want) in fleet {
        let name = metric.name();
        let range = (metrics_from, now_ms() + 10 * MIN);
        let series = metric_series(&cloudwatch, &m.fleet_namespace, name, 1, range).await;
        let (_, got) = *series.last().unwrap_or_else(|| panic!("no data for {name}"));
        assert!(
            (got - want).abs() <= 1e-9 * want.abs().max(1.0),
            "{name}: {got} published, {want} stored ({series:?})"
        );
    }
    assert_eq!(fleet[0].1, last.len() as f64, "every customer scored is counted once");

    // Bad records: the dead-letter queue; the pipeline's own item: nothing.
    assert_dead_letters_and_own_prediction(&m, &vectors, &stored).await;
    let totals = &summary["totals"];
    let invalid: u64 = totals["invalid"].as_object().unwrap().values().map(|v| number(v, "invalid")).sum();
    assert_eq!(invalid, 4);
    assert_eq!(number(&scoring["dead_letters"], "dead letters"), 4);
    assert!(number(&summary["engine"]["non_events"], "non-events") >= 1, "{summary}");

    eprintln!(
        "{} customers, {} records, {} vectors, {} predictions, {} alerts ({} customers alerted again after re-arming); \
         written in {:.1} s, run in {:.1} s",
        last.len(),
        number(&totals["records"], "records"),
        vectors.len(),
        number(&scoring["predictions"], "predictions"),
        alerts.len(),
        by_customer.values().filter(|l| l.len() > 1).count(),
        written_in.as_secs_f64(),
        ran_in.as_secs_f64()
    );
}

fn rule(operation: &'static str, when: When, status: u16, code: &'static str) -> Rule {
    Rule { operation, when, fault: Fault::Error { status, code } }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_injected_faults_nothing_is_lost_fabricated_or_written_twice() {
    let started = Instant::now();
    // Longer than the first test's marketplace: the breaker holds pages
    // (scored together when it closes), and a customer alerts only if its
    // first prediction is calm and a later one above 0.7. Replayed page by
    // page, 5 of these 24 customers alert with 700 records a page, 3 with
    // 1,000, where the first test's marketplace has none at 700.
    let m = marketplace("e2e-faults", 24, 45, 11).await;
    let dir = tempfile::tempdir().unwrap();
    let files = RunFiles::new(dir.path());
    let port = output_support::free_port().await;
    let (_addr, stop, serving) = output_support::serve(port).await;
    const GET_RECORDS: &str = "DynamoDBStreams_20120810.GetRecords";
    const ITERATOR: &str = "DynamoDBStreams_20120810.GetShardIterator";
    const UPDATE: &str = "DynamoDB_20120810.UpdateItem";
    const INVOKE: &str = "sagemaker.InvokeEndpoint";
    const PUBLISH: &str = "sns.PublishBatch";
    const SEND: &str = "AmazonSQS.SendMessageBatch";
    let rules = vec![
        rule(GET_RECORDS, When::Every(4), 400, "ExpiredIteratorException"),
        rule(GET_RECORDS, When::Every(7), 400, "LimitExceededException"),
        rule(ITERATOR, When::Every(5), 500, "InternalServerError"),
        rule(UPDATE, When::Every(3), 400, "ProvisionedThroughputExceededException"),
        // The first call answered past the client's 2-s timeout.
        Rule { operation: INVOKE, when: When::First(1), fault: Fault::Slow(Duration::from_millis(2500)) },
        // Four in a row: both attempts of two calls fail, the breaker opens;
        // after its cooldown a call succeeds and closes it.
        rule(INVOKE, When::Calls(2, 5), 503, "ServiceUnavailable"),
        rule(INVOKE, When::Every(3), 400, "ThrottlingException"),
        rule(INVOKE, When::Every(5), 503, "ServiceUnavailable"),
        rule(INVOKE, When::Every(7), 429, "ModelNotReadyException"),
        rule(PUBLISH, When::First(2), 400, "Throttling"),
        rule(SEND, When::First(2), 500, "InternalError"),
    ];
    let proxy = FaultProxy::start(&aws_endpoint(), Some(&format!("http://127.0.0.1:{port}")), rules).await;
    let endpoint = unique_name("churn");
    let mut flags = endpoint_flags(&endpoint, "hold");
    flags.extend(["--hold-timeout-s", "60", "--idle-exit-s", "3"]);
    let mut child = start_run(&m, &files, &flags, &[("AWS_ENDPOINT_URL", proxy.url())]);
    wait_for_exit(&mut child, &files, Duration::from_secs(150)).await;
    stop.send(()).unwrap();
    serving.await.unwrap();

    for op in [GET_RECORDS, ITERATOR, UPDATE, INVOKE, PUBLISH, SEND] {
        assert!(proxy.faults(op) > 0, "no fault injected into {op}; calls: {:?}", proxy.seen());
    }
    let summary = files.summary();
    let scoring = &summary["scoring"];
    let vectors = files.vectors();
    let stored = predictions(&m.sdk, &m.table).await;
    let served_by = format!("sagemaker:{endpoint}");
    let last = assert_predictions(&m, &vectors, &stored, |_| served_by.clone());
    assert_eq!(number(&scoring["fallback_rows"], "fallback rows"), 0, "nothing scored by a fallback");
    let alerts: Vec<AlertMessage> = drain_queue(&m.sdk, &m.alerts_queue)
        .await
        .iter()
        .map(|msg| serde_json::from_str(msg.body().unwrap()).expect("an alert message"))
        .collect();
    assert!(!alerts.is_empty(), "the marketplace raised no alert");
    assert_eq!(alerts.len() as u64, number(&scoring["alerts"], "alerts"), "every alert counted was published once");
    let ids: BTreeSet<&str> = alerts.iter().map(|a| a.alert_id.as_str()).collect();
    assert_eq!(ids.len(), alerts.len(), "no alert published twice");
    assert_dead_letters_and_own_prediction(&m, &vectors, &stored).await;
    let retries = number(&scoring["retries"], "retries");
    assert!(retries > 0, "the run counted its retries: {scoring}");
    let opened = number(&scoring["breaker_opened"], "breaker opened");
    assert!(opened >= 1, "the endpoint's breaker opened: {scoring}");
    // It closed again: every customer was scored by the endpoint (above).
    eprintln!(
        "{} customers, {} vectors, {} alerts through faults: GetRecords {}/{}, GetShardIterator {}/{}, UpdateItem {}/{}, \
         InvokeEndpoint {}/{}, Publish {}/{}, SendMessage {}/{} (faults/calls); {retries} retries counted, the breaker opened {opened} times; {:.1} s",
        last.len(),
        vectors.len(),
        alerts.len(),
        proxy.faults(GET_RECORDS),
        proxy.calls(GET_RECORDS),
        proxy.faults(ITERATOR),
        proxy.calls(ITERATOR),
        proxy.faults(UPDATE),
        proxy.calls(UPDATE),
        proxy.faults(INVOKE),
        proxy.calls(INVOKE),
        proxy.faults(PUBLISH),
        proxy.calls(PUBLISH),
        proxy.faults(SEND),
        proxy.calls(SEND),
        started.elapsed().as_secs_f64()
    );
}

/// Polls `check` every 50 ms until it returns `Some`, for up to `within`,
/// while the run is alive (its stderr in the failure message).
async fn while_running<T, F, Fut>(child: &mut Child, files: &RunFiles, within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(x) = check().await {
            return x;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("pulse run ended ({status}) before {what}:\n{}", files.stderr());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("timed out after {within:?} waiting for {what}:\n{}", files.stderr());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The flags of an endpoint whose failures are quick: two attempts, a
/// breaker that opens after two failed calls and lets a probe through every
/// 300 ms.
fn endpoint_flags<'a>(endpoint: &'a str, on_down: &'a str) -> Vec<&'a str> {
    vec![
        "--endpoint-name",
        endpoint,
        "--on-endpoint-down",
        on_down,
        "--endpoint-attempts",
        "2",
        "--endpoint-timeout-ms",
        "2000",
        "--breaker-failures",
        "2",
        "--breaker-cooldown-s",
        "0.3",
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_down_then_back_makes_up_nothing() {
    let started = Instant::now();
    let m = marketplace("e2e-down", 16, 14, 5).await;
    let dir = tempfile::tempdir().unwrap();
    let files = RunFiles::new(dir.path());
    let port = output_support::free_port().await;
    let endpoint = unique_name("churn");
    let mut flags = endpoint_flags(&endpoint, "hold");
    flags.extend(["--hold-timeout-s", "45", "--idle-exit-s", "2"]);
    let sagemaker = [("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", format!("http://127.0.0.1:{port}"))];
    let mut child = start_run(&m, &files, &flags, &sagemaker);

    // The run reads the stream and tries to score; nothing listens on the port.
    while_running(&mut child, &files, Duration::from_secs(30), "vectors and a failed model call", || async {
        let failed = files.stderr().contains("scoring failed");
        (failed && !files.vectors().is_empty()).then_some(())
    })
    .await;
    let stored = predictions(&m.sdk, &m.table).await;
    let made: Vec<&String> = stored.keys().filter(|c| **c != m.own_prediction).collect();
    assert!(made.is_empty(), "predictions stored while the endpoint is down: {made:?}");
    let down_for = started.elapsed();

    // The endpoint comes up on that port: `pulse serve`, the embedded model.
    let (_addr, stop, serving) = output_support::serve(port).await;
    wait_for_exit(&mut child, &files, Duration::from_secs(60)).await;
    stop.send(()).unwrap();
    serving.await.unwrap();

    let summary = files.summary();
    let scoring = &summary["scoring"];
    let vectors = files.vectors();
    let stored = predictions(&m.sdk, &m.table).await;
    let served_by = format!("sagemaker:{endpoint}");
    let last = assert_predictions(&m, &vectors, &stored, |_| served_by.clone());
    let failures = number(&scoring["model_failures"], "model failures");
    assert!(failures > 0, "the calls while the endpoint was down failed and were counted: {scoring}");
    assert_eq!(number(&scoring["fallback_rows"], "fallback rows"), 0, "nothing scored by a fallback");
    assert_eq!(number(&scoring["predictions_written"], "predictions written"), number(&scoring["predictions"], "p"));
    assert_dead_letters_and_own_prediction(&m, &vectors, &stored).await;
    eprintln!(
        "{} customers scored through the endpoint after {} failed calls; down for {:.1} s, whole test {:.1} s",
        last.len(),
        failures,
        down_for.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_down_with_fallback_says_so_then_uses_the_endpoint_again() {
    let started = Instant::now();
    let m = marketplace("e2e-fallback", 12, 14, 9).await;
    let dir = tempfile::tempdir().unwrap();
    let files = RunFiles::new(dir.path());
    let port = output_support::free_port().await;
    let endpoint = unique_name("churn");
    // No timers: only the events written after recovery make new vectors.
    let mut flags = endpoint_flags(&endpoint, "fallback");
    flags.push("--no-timers");
    let sagemaker = [("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", format!("http://127.0.0.1:{port}"))];
    let mut child = start_run(&m, &files, &flags, &sagemaker);

    // While the endpoint is down, every customer is scored by the fallback,
    // up to its last vector, and the stream is drained: no new vector for
    // two seconds (a customer with a prediction may still have records in
    // flight, which the endpoint would score once it is back).
    let quiet = std::cell::Cell::new((0, Instant::now()));
    while_running(&mut child, &files, Duration::from_secs(45), "every customer scored by the fallback", || async {
        let stored = predictions(&m.sdk, &m.table).await;
        let vectors = files.vectors();
        let (count, since) = quiet.get();
        if vectors.len() != count {
            quiet.set((vectors.len(), Instant::now()));
            return None;
        }
        let last = last_vectors(&vectors);
        let scored_to_last = m.customers.iter().all(|c| {
            let (Some(item), Some(v)) = (stored.get(c), last.get(c)) else { return false };
            s(item, "served_by") == FALLBACK_SERVED_BY && n(item, "as_of") as i64 == v.as_of
        });
        (scored_to_last && since.elapsed() >= Duration::from_secs(2)).then_some(())
    })
    .await;

    // A record still in flight when the fallback had scored everyone (seen
    // on a loaded machine: two quiet seconds are not a drained stream) makes
    // a vector after this count; its customer may be scored by either.
    let drained_at = quiet.get().0;

    // The endpoint is back; three customers have new events.
    let (_addr, stop, serving) = output_support::serve(port).await;
    let recovered: BTreeSet<String> = m.customers.iter().take(3).cloned().collect();
    let mut w = TableWriter::new(&m.sdk, &m.table);
    for c in &recovered {
        w.put(event_image(c, "after_recovery", "login", now_ms() - MIN, &[])).await;
    }
    let served_by = format!("sagemaker:{endpoint}");
    while_running(&mut child, &files, Duration::from_secs(30), "the new events scored by the endpoint", || async {
        let stored = predictions(&m.sdk, &m.table).await;
        recovered.iter().all(|c| stored.get(c).is_some_and(|i| s(i, "served_by") == served_by)).then_some(())
    })
    .await;
    let stop_signal = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill runs");
    assert!(stop_signal.success());
    wait_for_exit(&mut child, &files, Duration::from_secs(30)).await;
    stop.send(()).unwrap();
    serving.await.unwrap();

    let summary = files.summary();
    let scoring = &summary["scoring"];
    let vectors = files.vectors();
    let stored = predictions(&m.sdk, &m.table).await;
    let in_flight: BTreeSet<String> = vectors[drained_at..].iter().map(|v| v.customer_id.to_string()).collect();
    assert_predictions(&m, &vectors, &stored, |c| {
        let by_endpoint = stored.get(c).is_some_and(|i| s(i, "served_by") == served_by);
        if recovered.contains(c) || (in_flight.contains(c) && by_endpoint) {
            served_by.clone()
        } else {
            FALLBACK_SERVED_BY.to_owned()
        }
    });
    let fallback_rows = number(&scoring["fallback_rows"], "fallback rows");
    assert!(fallback_rows >= (m.customers.len() - recovered.len()) as u64, "{scoring}");
    assert_dead_letters_and_own_prediction(&m, &vectors, &stored).await;
    eprintln!(
        "{} customers: {} rows by the fallback, {} rescored by the endpoint after recovery; whole test {:.1} s",
        m.customers.len(),
        fallback_rows,
        recovered.len(),
        started.elapsed().as_secs_f64()
    );
}
