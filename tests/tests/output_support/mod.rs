//! What the `output_*` tests share: the local AWS configuration, feature
//! vectors the embedded model scores as calm or at risk, `pulse serve` in
//! process, moto's admin API, CloudWatch data points, and polling with a
//! deadline.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::AttributeValue;
use pulse_aws::output::metrics::{MetricsOut, MetricsPublisher};
use pulse_aws::output::sink::{Destinations, SinkConfig};
use pulse_aws::{setup, AwsArgs};
use pulse_e2e::{aws_endpoint, unique_name};
use pulse_model::EmbeddedModel;
use pulse_operators::scoring::BatchPolicy;
use pulse_runtime::scoring::ScoringConfig;
use pulse_schemas::features::idx;
use pulse_schemas::{CustomerId, FeatureVector, Source, Trigger, SCHEMA};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub async fn sdk() -> SdkConfig {
    AwsArgs::local(aws_endpoint()).load().await
}

/// A metric's data points from `from_ms` to `to_ms`, oldest first
/// (GetMetricData, the Maximum of each `period_s` period).
pub async fn metric_series(
    client: &aws_sdk_cloudwatch::Client,
    namespace: &str,
    name: &str,
    period_s: i32,
    (from_ms, to_ms): (i64, i64),
) -> Vec<(i64, f64)> {
    use aws_sdk_cloudwatch::primitives::DateTime;
    use aws_sdk_cloudwatch::types::{Metric, MetricDataQuery, MetricStat};
    let query = MetricDataQuery::builder()
        .id("m")
        .metric_stat(
            MetricStat::builder()
                .metric(Metric::builder().namespace(namespace).metric_name(name).build())
                .period(period_s)
                .stat("Maximum")
                .build(),
        )
        .build();
    let got = client
        .get_metric_data()
        .metric_data_queries(query)
        .start_time(DateTime::from_millis(from_ms))
        .end_time(DateTime::from_millis(to_ms))
        .send()
        .await
        .expect("GetMetricData");
    let mut out: Vec<(i64, f64)> = got
        .metric_data_results()
        .iter()
        .flat_map(|r| r.timestamps().iter().map(|t| t.to_millis().unwrap()).zip(r.values().iter().copied()))
        .collect();
    out.sort_by_key(|p| p.0);
    out
}

/// The values of [`metric_series`], oldest first.
pub async fn metric_values(
    client: &aws_sdk_cloudwatch::Client,
    namespace: &str,
    name: &str,
    period_s: i32,
    range_ms: (i64, i64),
) -> Vec<f64> {
    metric_series(client, namespace, name, period_s, range_ms).await.into_iter().map(|(_, v)| v).collect()
}

pub fn embedded() -> EmbeddedModel {
    EmbeddedModel::new(&pulse_model::embedded().unwrap()).unwrap()
}

/// A vector the embedded model scores calm (churn risk ~0.01) when
/// `idle_days` < 10, at risk (~0.9) from 20 idle days on. Different days
/// give different features, so the change gate lets each through.
pub fn vector(customer: &str, as_of: i64, idle_days: f64) -> FeatureVector {
    let mut r = [0.0; 46];
    r[idx::DAYS_SINCE_LAST_SESSION] = idle_days;
    r[idx::DAYS_SINCE_LAST_LOGIN] = idle_days;
    r[idx::DAYS_SINCE_LAST_PAYMENT] = idle_days;
    r[idx::TENURE_DAYS] = 200.0;
    if idle_days < 10.0 {
        for (i, x) in [(0, 3.0), (1, 6.0), (2, 12.0), (3, 3.0), (11, 8.0), (19, 5.0), (20, 20.0)] {
            r[i] = x;
        }
        for i in [idx::PAYMENT_SUCCESS_RATE_7D, idx::PAYMENT_SUCCESS_RATE_14D, idx::PAYMENT_SUCCESS_RATE_30D] {
            r[i] = 1.0;
        }
        for i in [idx::AVG_RATING_7D, idx::AVG_RATING_14D, idx::AVG_RATING_30D] {
            r[i] = 4.8;
        }
    }
    FeatureVector {
        customer_id: CustomerId::new(customer),
        as_of,
        trigger: Trigger::Event,
        source: Source::default(),
        schema: SCHEMA.into(),
        features: r,
        emission: None,
    }
}

/// Scoring settings for tests: small batches, no linger (flush releases anyway).
pub fn scoring(max_rows: usize) -> ScoringConfig {
    ScoringConfig {
        batch: BatchPolicy { max_rows, max_linger_ms: 0, max_pending: 100_000 },
        ..ScoringConfig::default()
    }
}

pub fn sink_config(max_rows: usize, hold_timeout: Duration) -> SinkConfig {
    SinkConfig { scoring: scoring(max_rows), hold_timeout, ..SinkConfig::default() }
}

/// Nowhere to send anything yet.
pub fn nowhere() -> Destinations {
    Destinations {
        predictions: None,
        alerts: None,
        dead_letter_queue: None,
        dead_letter_file: None,
        metrics: MetricsPublisher::new(MetricsOut::Off),
        fleet_namespace: unique_name("fleet"),
        health_namespace: unique_name("health"),
        quality_namespace: unique_name("quality"),
    }
}

/// A fresh table with the events table's key and stream (predictions are
/// written to the table whose stream pulse reads).
pub async fn table(sdk: &SdkConfig) -> String {
    let name = unique_name("predictions");
    setup::ensure_events_table(&aws_sdk_dynamodb::Client::new(sdk), &name).await.expect("table");
    name
}

pub async fn prediction_item(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    customer: &str,
) -> Option<HashMap<String, AttributeValue>> {
    client
        .get_item()
        .table_name(table)
        .key("customer_id", AttributeValue::S(customer.into()))
        .key("sk", AttributeValue::S("PRED#latest".into()))
        .consistent_read(true)
        .send()
        .await
        .expect("GetItem")
        .item
}

pub fn n(item: &HashMap<String, AttributeValue>, name: &str) -> f64 {
    match item.get(name) {
        Some(AttributeValue::N(x)) => x.parse().unwrap(),
        other => panic!("{name} is not a number: {other:?}"),
    }
}

pub fn s<'a>(item: &'a HashMap<String, AttributeValue>, name: &str) -> &'a str {
    match item.get(name) {
        Some(AttributeValue::S(x)) => x,
        other => panic!("{name} is not a string: {other:?}"),
    }
}

/// `pulse serve`'s routes with the embedded model on 127.0.0.1:`port` (0:
/// any); stops when the returned sender is dropped or sent to.
pub async fn serve(port: u16) -> (SocketAddr, tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let app = pulse_serve::router(embedded(), pulse_serve::ServeConfig::default());
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await
            .expect("serve");
    });
    (addr, stop, task)
}

/// A port nothing listens on (bound, then released).
pub async fn free_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

/// A port that stays this test's while "the endpoint is down": every
/// connection is accepted and dropped at once (a reset, as a crashed
/// server gives), so no other process on the machine can take the port and
/// answer in its place. [`DownEndpoint::release`] frees it for the test's
/// own server.
pub struct DownEndpoint {
    /// The port.
    pub port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl DownEndpoint {
    /// A port held down.
    pub async fn hold() -> DownEndpoint {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                drop(stream);
            }
        });
        DownEndpoint { port, task }
    }

    /// Stops holding the port (the listener is dropped with its task).
    pub async fn release(self) -> u16 {
        self.task.abort();
        let _ = self.task.await;
        self.port
    }
}

/// A plain HTTP/1.1 request to moto's admin API (`/moto-api/...`).
pub async fn moto_api(method: &str, path: &str, body: &str) -> (u16, String) {
    let url = aws_endpoint();
    let host = url.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = tokio::net::TcpStream::connect(host).await.expect("moto reachable");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

/// Polls `check` until it returns `Some`, for up to `within`.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(x) = check().await {
            return x;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A fresh SQS queue: (url, arn).
pub async fn queue(sdk: &SdkConfig) -> (String, String) {
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let url = sqs.create_queue().queue_name(unique_name("q")).send().await.expect("queue").queue_url.unwrap();
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("queue attributes");
    let arn = attrs.attributes().unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn].clone();
    (url, arn)
}

/// Every message in the queue now (bodies and attributes), deleting them.
/// Deliveries from SNS and sends to SQS are done when the call that made
/// them returned, so what is not here after a flush was not sent.
pub async fn drain_queue(sdk: &SdkConfig, url: &str) -> Vec<aws_sdk_sqs::types::Message> {
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let mut out = Vec::new();
    loop {
        let got = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .send()
            .await
            .expect("ReceiveMessage");
        let messages = got.messages.unwrap_or_default();
        if messages.is_empty() {
            return out;
        }
        for m in &messages {
            sqs.delete_message().queue_url(url).receipt_handle(m.receipt_handle().unwrap()).send().await.unwrap();
        }
        out.extend(messages);
    }
}
