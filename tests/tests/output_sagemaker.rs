//! The SageMaker scorer against real servers: moto's SageMaker Runtime
//! (answers configured through its admin API, in both shapes the endpoint
//! may give) and `pulse serve` reached through the SDK (the very numbers of
//! the embedded model); and the endpoint failing, then recovering, under
//! both policies: no prediction is ever made up, every customer is scored.

mod output_support;

use std::time::Duration;

use aws_sdk_sagemakerruntime::config::interceptors::BeforeTransmitInterceptorContextMut;
use aws_sdk_sagemakerruntime::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_sagemakerruntime::error::BoxError;
use output_support::*;
use pulse_aws::output::backend::ModelBackend;
use pulse_aws::output::fallback::{OnEndpointDown, WithFallback, FALLBACK_SERVED_BY};
use pulse_aws::output::predictions::PredictionWriter;
use pulse_aws::output::sagemaker::{client_config, ContentType, EndpointConfig, SageMakerScorer};
use pulse_aws::output::sink::{Destinations, ScoringSink};
use pulse_aws::retry::{Backoff, BreakerConfig};
use pulse_aws::AwsArgs;
use pulse_e2e::unique_name;
use pulse_model::{ModelId, Scorer};
use pulse_runtime::process::Produced;
use pulse_runtime::sink::Sink;
use pulse_schemas::prediction::Scores;
use pulse_schemas::{FeatureVector, Features};

/// Sends every request as one moto account, so that the results queued for
/// it (moto keeps one queue per account and region) are this test's alone.
#[derive(Debug)]
struct MotoAccount(String);

impl Intercept for MotoAccount {
    fn name(&self) -> &'static str {
        "moto-account"
    }

    fn modify_before_signing(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        context.request_mut().headers_mut().insert("x-moto-account-id", self.0.clone());
        Ok(())
    }
}

fn account() -> String {
    let name = unique_name("acct");
    format!("{:012}", xxhash_rust::xxh3::xxh3_64(name.as_bytes()) % 1_000_000_000_000)
}

fn scores(a: f64, b: f64, c: f64, d: f64, e: f64) -> Scores {
    Scores { first_session_success: a, session_velocity: b, churn_risk_14d: c, churn_risk_30d: d, health_score: e }
}

#[tokio::test]
async fn sagemaker_scorer_reads_both_answer_shapes_from_the_local_server() {
    let sdk = sdk().await;
    let account = account();
    let endpoint = unique_name("churn");
    // Two rows a request, one request at a time: 5 rows are 3 requests,
    // which take the queued answers in order.
    let config = EndpointConfig {
        max_rows_per_request: 2,
        max_in_flight: 1,
        model_version: Some("7".into()),
        ..EndpointConfig::new(&endpoint)
    };
    let client = aws_sdk_sagemakerruntime::Client::from_conf(
        client_config(&sdk, &config).interceptor(MotoAccount(account.clone())).build(),
    );
    let scorer = SageMakerScorer::new(client, config).unwrap();

    let heads = |s: &Scores, wrap: bool| {
        let v = |x: f64| if wrap { serde_json::json!([x]) } else { serde_json::json!(x) };
        serde_json::json!({
            "first_session_success": v(s.first_session_success), "session_velocity": v(s.session_velocity),
            "churn_risk_14d": v(s.churn_risk_14d), "churn_risk_30d": v(s.churn_risk_30d), "health_score": v(s.health_score)
        })
    };
    let expected = [
        scores(0.9, 2.5, 0.05, 0.1, 91.0),
        scores(0.1, 0.2, 0.95, 0.9, 12.5),
        scores(0.5, 1.0, 0.5, 0.6, 50.0),
        scores(0.25, 3.0, 0.25, 0.3, 75.0),
        scores(0.75, 0.0, 0.75, 0.8, 25.0),
    ];
    let five =
        |s: &Scores| [s.first_session_success, s.session_velocity, s.churn_risk_14d, s.churn_risk_30d, s.health_score];
    let bodies = [
        serde_json::json!({"predictions": [heads(&expected[0], false), heads(&expected[1], false)]}),
        serde_json::json!([five(&expected[2]), five(&expected[3])]),
        serde_json::json!({"predictions": [heads(&expected[4], true)]}),
    ];
    let results: Vec<_> = bodies
        .iter()
        .map(|b| {
            serde_json::json!({"Body": b.to_string(), "ContentType": "application/json", "InvokedProductionVariant": "AllTraffic"})
        })
        .collect();
    let setup = serde_json::json!({"account_id": account, "region": "us-east-1", "results": results});
    let (status, body) = moto_api("POST", "/moto-api/static/sagemaker/endpoint-results", &setup.to_string()).await;
    assert_eq!(status, 201, "{body}");

    let rows: Vec<Features> = (0..5).map(|i| vector("c", 0, i as f64 * 11.0).features).collect();
    let scored = scorer.score(&rows).await.expect("scored");
    assert_eq!(scored.scores, expected);
    assert_eq!(scored.model, ModelId::new(endpoint.as_str(), "7", format!("sagemaker:{endpoint}/AllTraffic")));
    // moto answers a body it has seen with the same result (it caches by
    // request body), so the same rows get the same scores without new results.
    let again = scorer.score(&rows).await.expect("scored again");
    assert_eq!(again, scored);
    let stats = scorer.stats();
    assert_eq!((stats.requests, stats.rows, stats.retries), (6, 10, 0));
}

#[tokio::test]
async fn sagemaker_scorer_through_pulse_serve_gives_the_embedded_models_numbers() {
    let (addr, stop, task) = serve(0).await;
    let sdk = AwsArgs::local(format!("http://{addr}")).load().await;
    let model = embedded();
    let rows: Vec<Features> =
        (0..2_500).map(|i| vector("c", 0, (i % 97) as f64 + (i as f64) * 1e-3).features).collect();
    let expected = model.score_now(&rows).unwrap();
    for content_type in [ContentType::Csv, ContentType::Json] {
        let endpoint = unique_name("pulse-serve");
        let config = EndpointConfig {
            content_type,
            max_rows_per_request: 700,
            max_in_flight: 3,
            ..EndpointConfig::new(&endpoint)
        };
        let scorer = SageMakerScorer::from_sdk(&sdk, config).unwrap();
        let started = std::time::Instant::now();
        let scored = scorer.score(&rows).await.expect("scored");
        let seconds = started.elapsed().as_secs_f64();
        assert_eq!(scored.scores, expected, "{content_type:?}: the same numbers as in process");
        assert_eq!(
            scored.model,
            ModelId::new(model.model_name(), model.model_version(), format!("sagemaker:{endpoint}")),
            "the answer names the model"
        );
        let stats = scorer.stats();
        assert_eq!((stats.requests, stats.rows), (4, 2_500), "{content_type:?}: 700 rows a request");
        println!(
            "{content_type:?}: 2500 rows in 4 InvokeEndpoint requests through pulse serve: {:.0} rows/s (debug build)",
            2_500.0 / seconds
        );
    }
    stop.send(()).unwrap();
    task.await.unwrap();
}

/// An endpoint whose every failure is quick: 2 attempts, a breaker that
/// opens after 2 failures and probes every 200 ms.
fn flaky_endpoint(endpoint: &str) -> EndpointConfig {
    EndpointConfig {
        max_rows_per_request: 8,
        timeout: Duration::from_secs(2),
        retry: Backoff { base: Duration::from_millis(20), cap: Duration::from_millis(50), max_attempts: 2 },
        breaker: BreakerConfig { failures: 2, cooldown: Duration::from_millis(200) },
        ..EndpointConfig::new(endpoint)
    }
}

async fn endpoint_sink(port: u16, policy: OnEndpointDown, hold: Duration) -> (ScoringSink, String, String) {
    let sdk = sdk().await;
    let table = table(&sdk).await;
    let endpoint = unique_name("down");
    let endpoint_sdk = AwsArgs::local(format!("http://127.0.0.1:{port}")).load().await;
    let scorer = SageMakerScorer::from_sdk(&endpoint_sdk, flaky_endpoint(&endpoint)).unwrap();
    let model = ModelBackend::Endpoint(WithFallback::new(scorer, embedded().served_by(FALLBACK_SERVED_BY), policy));
    let out = Destinations {
        predictions: Some(PredictionWriter::new(aws_sdk_dynamodb::Client::new(&sdk), table.as_str(), 16)),
        ..nowhere()
    };
    (ScoringSink::new(model, out, sink_config(8, hold)).unwrap(), table, endpoint)
}

/// `n` customers, one in three at risk; the features move with `as_of` (by
/// a thousandth of a day per ms) so that the change gate lets each through.
fn customers(n: usize, as_of: i64) -> Vec<FeatureVector> {
    let drift = (as_of % 1_000) as f64 * 1e-3;
    (0..n)
        .map(|i| {
            let idle = if i % 3 == 0 { 30.0 + i as f64 } else { (i % 9) as f64 };
            vector(&format!("c{i}"), as_of, idle + drift)
        })
        .collect()
}

#[tokio::test]
async fn endpoint_down_holds_customers_and_scores_every_one_after_recovery() {
    let down = DownEndpoint::hold().await;
    let (mut sink, table, endpoint) = endpoint_sink(down.port, OnEndpointDown::Hold, Duration::from_secs(2)).await;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk().await);
    let vectors = customers(20, 1_000);
    sink.send(Produced { vectors: vectors.clone(), dead: vec![] }).await.expect("send: failures are held, not errors");
    sink.tick(i64::MAX / 2).await.expect("tick");
    let err = sink.flush().await.expect_err("the barrier cannot pass while customers wait");
    assert!(
        err.to_string().contains("20 vectors are waiting") && err.to_string().contains("none were made up"),
        "{err}"
    );
    assert_eq!(sink.pending(), 20);
    assert_eq!(sink.stats().predictions, 0);
    for v in &vectors {
        assert!(
            prediction_item(&dynamo, &table, v.customer_id.as_str()).await.is_none(),
            "nothing stored, nothing made up"
        );
    }

    let (_addr, stop, task) = serve(down.release().await).await;
    sink.flush().await.expect("the endpoint is back: everything scored and stored");
    assert_eq!(sink.pending(), 0);
    let expected = embedded().score_now(&vectors.iter().map(|v| v.features).collect::<Vec<_>>()).unwrap();
    for (v, e) in vectors.iter().zip(&expected) {
        let item = prediction_item(&dynamo, &table, v.customer_id.as_str()).await.expect("scored after recovery");
        assert_eq!(n(&item, "churn_risk_14d"), e.churn_risk_14d, "{}", v.customer_id);
        assert_eq!(n(&item, "health_score"), e.health_score);
        assert_eq!(n(&item, "as_of"), 1_000.0);
        assert_eq!(s(&item, "served_by"), format!("sagemaker:{endpoint}"));
        assert_eq!(s(&item, "model_version"), embedded().model_version());
    }
    let stats = sink.stats();
    assert_eq!((stats.predictions, stats.predictions_written), (20, 20));
    assert!(stats.model_failures >= 1 && stats.fallback_rows == 0, "{stats:?}");
    stop.send(()).unwrap();
    task.await.unwrap();
}

/// The Lambda function bounds the hold by its invocation's deadline: with a
/// deadline before `hold_timeout`, the barrier gives up there (and says
/// why), so the invocation can still answer with its failed records.
#[tokio::test]
async fn a_hold_ends_at_the_invocations_deadline_before_its_timeout() {
    let down = DownEndpoint::hold().await;
    let (mut sink, _table, _endpoint) = endpoint_sink(down.port, OnEndpointDown::Hold, Duration::from_secs(600)).await;
    sink.send(Produced { vectors: customers(5, 1_000), dead: vec![] }).await.unwrap();
    let started = tokio::time::Instant::now();
    sink.hold_until(Some(started + Duration::from_secs(1)));
    let err = sink.flush().await.expect_err("the endpoint is down");
    assert!(err.to_string().contains("(the invocation's deadline)"), "{err}");
    assert!(err.to_string().contains("5 vectors are waiting"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(30), "held {:?}, long past the 1-s deadline", started.elapsed());
    assert_eq!((sink.pending(), sink.stats().predictions), (5, 0));

    // A deadline after the timeout: the timeout bounds it, and the message says so.
    let mut timed = endpoint_sink(down.port, OnEndpointDown::Hold, Duration::from_millis(500)).await.0;
    timed.send(Produced { vectors: customers(2, 1_000), dead: vec![] }).await.unwrap();
    timed.hold_until(Some(tokio::time::Instant::now() + Duration::from_secs(600)));
    let err = timed.flush().await.expect_err("the endpoint is down");
    assert!(err.to_string().contains("(the hold timeout)"), "{err}");
}

#[tokio::test]
async fn endpoint_down_falls_back_to_the_embedded_model_and_says_so() {
    let down = DownEndpoint::hold().await;
    let (mut sink, table, endpoint) = endpoint_sink(down.port, OnEndpointDown::Fallback, Duration::from_secs(2)).await;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk().await);
    let vectors = customers(10, 1_000);
    sink.send(Produced { vectors: vectors.clone(), dead: vec![] }).await.unwrap();
    sink.flush().await.expect("the fallback scores everything");
    let expected = embedded().score_now(&vectors.iter().map(|v| v.features).collect::<Vec<_>>()).unwrap();
    for (v, e) in vectors.iter().zip(&expected) {
        let item = prediction_item(&dynamo, &table, v.customer_id.as_str()).await.expect("stored");
        assert_eq!(s(&item, "served_by"), FALLBACK_SERVED_BY, "the prediction says which model made it");
        assert_eq!(s(&item, "model"), embedded().model_name());
        assert_eq!(n(&item, "churn_risk_14d"), e.churn_risk_14d);
    }
    assert_eq!(sink.stats().fallback_rows, 10);

    // The endpoint comes back: once the breaker lets a probe through, newer
    // predictions are the endpoint's again.
    let (_addr, stop, task) = serve(down.release().await).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    for as_of in 1_001.. {
        sink.send(Produced { vectors: customers(10, as_of), dead: vec![] }).await.unwrap();
        sink.flush().await.unwrap();
        let item = prediction_item(&dynamo, &table, "c0").await.unwrap();
        if s(&item, "served_by") == format!("sagemaker:{endpoint}") {
            assert_eq!(n(&item, "as_of"), as_of as f64);
            break;
        }
        assert_eq!(s(&item, "served_by"), FALLBACK_SERVED_BY);
        assert!(tokio::time::Instant::now() < deadline, "the endpoint never answered again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.send(()).unwrap();
    task.await.unwrap();
}

/// An endpoint that answers every request as SageMaker answers a call to an
/// endpoint that does not exist (HTTP 400 `ValidationError`: a typo in
/// `ExistingEndpointName`), until the task is stopped.
async fn refusing_endpoint() -> (u16, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 8192];
                // Headers, then the body its Content-Length gives.
                while let Ok(n) = stream.read(&mut buf).await {
                    if n == 0 {
                        return;
                    }
                    request.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&request).to_ascii_lowercase();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length: usize = text
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        if request.len() >= end + 4 + length {
                            break;
                        }
                    }
                }
                let body = r#"{"message":"Endpoint typo-endpoint of account 123456789012 not found."}"#;
                let answer = format!(
                    "HTTP/1.1 400 Bad Request\r\nContent-Type: application/x-amz-json-1.1\r\n\
                     x-amzn-ErrorType: ValidationError\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
            });
        }
    });
    (port, task)
}

/// A request the endpoint refuses (a 4xx: fatal, never hidden by a
/// fallback) fails the barrier and is counted, and the customers it held
/// are scored once the endpoint answers: the Lambda function keeps its sink
/// across invocations, and the refused batch had left its customers "in
/// flight" for good (every later batch answered success with no prediction
/// and no failure counted).
#[tokio::test]
async fn a_refused_request_fails_the_barrier_and_its_customers_are_scored_once_the_endpoint_answers() {
    let (port, refusing) = refusing_endpoint().await;
    let (mut sink, table, endpoint) = endpoint_sink(port, OnEndpointDown::Hold, Duration::from_secs(2)).await;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk().await);
    let first = customers(3, 1_000);
    let sent = sink.send(Produced { vectors: first.clone(), dead: vec![] }).await;
    let flushed = match sent {
        Ok(()) => sink.flush().await,
        Err(e) => Err(e),
    };
    let err = flushed.expect_err("the endpoint refuses the request");
    assert!(format!("{err:#}").contains("ValidationError"), "{err:#}");
    assert!(sink.stats().model_failures >= 1, "counted: {:?}", sink.stats());
    // The refused batch waits (the vectors of the step after it were not
    // taken: the caller fails the step, and a Lambda batch is redelivered).
    assert!(sink.pending() >= 1, "the refused customers wait, not dropped");

    // The endpoint is fixed (the same port now answers).
    refusing.abort();
    let _ = refusing.await;
    let (_addr, stop, task) = serve(port).await;
    let later = customers(3, 1_001);
    sink.send(Produced { vectors: later.clone(), dead: vec![] }).await.expect("send");
    sink.flush().await.expect("the endpoint answers: everything scored");
    assert_eq!(sink.pending(), 0);
    for v in &later {
        let item = prediction_item(&dynamo, &table, v.customer_id.as_str()).await.expect("scored again");
        assert_eq!(n(&item, "as_of"), 1_001.0, "{}", v.customer_id);
        assert_eq!(s(&item, "served_by"), format!("sagemaker:{endpoint}"));
    }
    stop.send(()).unwrap();
    task.await.unwrap();
}
