//! The SageMaker endpoint as a [`Scorer`]: rows in, one InvokeEndpoint per
//! slice of rows, the five outputs back.
//!
//! # Requests
//!
//! A batch is cut into requests of at most `max_rows_per_request` rows and
//! `max_bytes_per_request` bytes of body (SageMaker refuses payloads over
//! 6 MB), sent concurrently, at most `max_in_flight` at once across every
//! batch of the process (a [`Semaphore`]). The body is
//!
//! * `text/csv` (what today's endpoint is sent): one row per line, 46 numbers,
//!   no header; or
//! * `application/json`: `{"instances": [[46 numbers], ...]}`,
//!
//! with each number written in Rust's shortest round-trip form, so the
//! endpoint reads the very `f64` pulse computed.
//!
//! # Answers
//!
//! Both shapes the endpoint may give are read ([`parse_response`]):
//! `{"predictions": [{"first_session_success": v, ...}, ...]}` (each value a
//! number or a one-element array, as TensorFlow Serving writes per-head
//! outputs; `pulse serve` answers this way) or rows of five numbers in head
//! order (`{"predictions": [[5 numbers], ...]}` or a bare `[[...], ...]`).
//! One prediction per row, every value finite and in its range, or the
//! answer is refused. A `model` / `model_version` in the answer names the
//! model; otherwise the configured name and version do.
//!
//! # Failures
//!
//! Each request has a timeout. Throttling, 5xx, `ModelNotReadyException`, a
//! `ModelError` whose container answered 5xx/429, timeouts and lost
//! connections are retried with jittered exponential backoff; the SDK's own
//! retries are off so that every attempt passes the [`CircuitBreaker`]. A
//! request still failing after its attempts makes the batch fail as
//! [`ScoreError::Retryable`]: the scoring stage requeues its rows (or
//! [`WithFallback`](super::fallback::WithFallback) scores them elsewhere).
//! Validation errors, 4xx and unreadable answers are
//! [`ScoreError::Fatal`]: retrying would not help and nothing is made up.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_sagemakerruntime::error::SdkError;
use aws_sdk_sagemakerruntime::operation::invoke_endpoint::{InvokeEndpointError, InvokeEndpointOutput};
use aws_sdk_sagemakerruntime::primitives::Blob;
use pulse_model::{ModelId, ScoreError, ScoredRows, Scorer};
use pulse_schemas::prediction::Scores;
use pulse_schemas::Features;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::retry::{classify, classify_answer, Backoff, BreakerConfig, BreakerState, CircuitBreaker, Failure};

/// SageMaker's limit on an InvokeEndpoint payload (6 MB).
pub const MAX_PAYLOAD_BYTES: usize = 6 * 1024 * 1024;

/// The body format of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
pub enum ContentType {
    /// `text/csv`: one row a line (what today's endpoint is sent).
    Csv,
    /// `application/json`: `{"instances": [[...], ...]}`.
    Json,
}

impl ContentType {
    /// The MIME type.
    pub fn mime(self) -> &'static str {
        match self {
            ContentType::Csv => "text/csv",
            ContentType::Json => "application/json",
        }
    }
}

/// How the endpoint is called.
#[derive(Clone, Debug)]
pub struct EndpointConfig {
    /// The SageMaker endpoint's name.
    pub endpoint_name: String,
    /// The body format.
    pub content_type: ContentType,
    /// Rows in one request, at most.
    pub max_rows_per_request: usize,
    /// Bytes of body in one request, at most (≤ [`MAX_PAYLOAD_BYTES`]).
    pub max_bytes_per_request: usize,
    /// Time one attempt may take.
    pub timeout: Duration,
    /// Retries of one request.
    pub retry: Backoff,
    /// When to stop calling a failing endpoint.
    pub breaker: BreakerConfig,
    /// Requests in flight at once, across all batches.
    pub max_in_flight: usize,
    /// The model's name when the answer does not say (default: the endpoint's name).
    pub model_name: Option<String>,
    /// The model's version when the answer does not say (default: `unknown`).
    pub model_version: Option<String>,
}

impl EndpointConfig {
    /// Defaults for an endpoint.
    pub fn new(endpoint_name: impl Into<String>) -> EndpointConfig {
        EndpointConfig {
            endpoint_name: endpoint_name.into(),
            content_type: ContentType::Csv,
            max_rows_per_request: 2_000,
            max_bytes_per_request: 6_000_000,
            timeout: Duration::from_secs(10),
            retry: Backoff::default(),
            breaker: BreakerConfig::default(),
            max_in_flight: 4,
            model_name: None,
            model_version: None,
        }
    }

    /// Checks the settings without I/O; the error names the setting.
    pub fn validate(&self) -> Result<(), String> {
        if self.endpoint_name.is_empty() {
            return Err("the endpoint name is empty".into());
        }
        if self.max_rows_per_request == 0 {
            return Err("max rows per request must be at least 1".into());
        }
        if !(4096..=MAX_PAYLOAD_BYTES).contains(&self.max_bytes_per_request) {
            return Err(format!(
                "max bytes per request must be between 4096 and {MAX_PAYLOAD_BYTES} (SageMaker's limit), got {}",
                self.max_bytes_per_request
            ));
        }
        if self.timeout.is_zero() {
            return Err("the request timeout must be positive".into());
        }
        if self.max_in_flight == 0 {
            return Err("max in-flight requests must be at least 1".into());
        }
        if self.breaker.failures == 0 {
            return Err("the circuit breaker needs at least 1 failure to open".into());
        }
        self.retry.validate("endpoint retries")
    }
}

/// One request's rows and body.
#[derive(Clone, Debug, PartialEq)]
pub struct RequestBody {
    /// Index of its first row in the batch.
    pub first_row: usize,
    /// Rows it carries.
    pub rows: usize,
    /// The body.
    pub body: Vec<u8>,
}

/// Cuts rows into request bodies of at most `max_rows` rows and `max_bytes`
/// bytes. Fails (naming the row) on a value that is not finite or a single
/// row over `max_bytes`.
pub fn encode_requests(
    rows: &[Features],
    format: ContentType,
    max_rows: usize,
    max_bytes: usize,
) -> Result<Vec<RequestBody>, String> {
    let (open, close, separator): (&[u8], &[u8], u8) = match format {
        ContentType::Csv => (b"", b"", b'\n'),
        ContentType::Json => (b"{\"instances\":[", b"]}", b','),
    };
    let mut out = Vec::new();
    let mut current = RequestBody { first_row: 0, rows: 0, body: open.to_vec() };
    let mut line = Vec::with_capacity(1024);
    for (i, row) in rows.iter().enumerate() {
        line.clear();
        encode_row(row, format, &mut line).map_err(|column| {
            format!("row {} column {} ({}) is not a finite number", i + 1, column + 1, row[column])
        })?;
        let alone = open.len() + line.len() + close.len();
        if alone > max_bytes {
            return Err(format!("row {} alone takes {alone} bytes, over the {max_bytes}-byte limit", i + 1));
        }
        let added = line.len() + usize::from(current.rows > 0);
        if current.rows == max_rows || current.body.len() + added + close.len() > max_bytes {
            current.body.extend_from_slice(close);
            let next = RequestBody { first_row: i, rows: 0, body: open.to_vec() };
            out.push(std::mem::replace(&mut current, next));
        }
        if current.rows > 0 {
            current.body.push(separator);
        }
        current.body.extend_from_slice(&line);
        current.rows += 1;
    }
    if current.rows > 0 {
        current.body.extend_from_slice(close);
        out.push(current);
    }
    Ok(out)
}

/// Appends one row; `Err(column)` for a value that is not finite.
fn encode_row(row: &Features, format: ContentType, out: &mut Vec<u8>) -> Result<(), usize> {
    use std::io::Write;
    if format == ContentType::Json {
        out.push(b'[');
    }
    for (j, x) in row.iter().enumerate() {
        if !x.is_finite() {
            return Err(j);
        }
        if j > 0 {
            out.push(b',');
        }
        // `{:?}` is the shortest text that reads back as the same f64
        // (exponent form for very large and small values: valid CSV and JSON).
        write!(out, "{x:?}").map_err(|_| j)?;
    }
    if format == ContentType::Json {
        out.push(b']');
    }
    Ok(())
}

/// What an answer said.
#[derive(Clone, Debug, PartialEq)]
pub struct ParsedResponse {
    /// One per row, in order.
    pub scores: Vec<Scores>,
    /// The model's name, if the answer gave it.
    pub model: Option<String>,
    /// The model's version, if the answer gave it.
    pub model_version: Option<String>,
}

/// The heads in the order of an array of five.
const HEADS: [&str; 5] =
    ["first_session_success", "session_velocity", "churn_risk_14d", "churn_risk_30d", "health_score"];

/// The object form of an answer; other keys are ignored.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    predictions: Option<Vec<&'a RawValue>>,
    model: Option<Value>,
    model_version: Option<Value>,
}

/// Reads an endpoint's answer for `expected` rows (see the [module docs](self)).
///
/// Numbers are kept as their JSON text and read with Rust's exact parser, so
/// a value crosses the wire without losing its last bit.
pub fn parse_response(body: &[u8], expected: usize) -> Result<ParsedResponse, String> {
    let not_json = |e: serde_json::Error| {
        let text = String::from_utf8_lossy(&body[..body.len().min(120)]).into_owned();
        format!("the answer is not JSON ({e}): {text:?}")
    };
    let first = body.iter().find(|b| !b.is_ascii_whitespace()).copied();
    let (predictions, model, model_version) = match first {
        Some(b'[') => (serde_json::from_slice::<Vec<&RawValue>>(body).map_err(not_json)?, None, None),
        Some(b'{') => {
            let envelope: Envelope<'_> = serde_json::from_slice(body).map_err(not_json)?;
            let Some(predictions) = envelope.predictions else {
                return Err("the answer has no \"predictions\" array".into());
            };
            let text = |v: Option<Value>| v.and_then(|v| v.as_str().map(str::to_owned));
            (predictions, text(envelope.model), text(envelope.model_version))
        }
        _ => {
            serde_json::from_slice::<Value>(body).map_err(not_json)?;
            return Err("the answer is neither {\"predictions\": [...]} nor an array".into());
        }
    };
    if predictions.len() != expected {
        return Err(format!("the answer has {} predictions for {expected} rows", predictions.len()));
    }
    let scores = predictions
        .iter()
        .enumerate()
        .map(|(i, p)| prediction(p).map_err(|e| format!("prediction {}: {e}", i + 1)))
        .collect::<Result<_, _>>()?;
    Ok(ParsedResponse { scores, model, model_version })
}

fn prediction(p: &RawValue) -> Result<Scores, String> {
    let text = p.get();
    let mut v = [0.0; 5];
    if text.starts_with('[') {
        let a: Vec<&RawValue> = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if a.len() != 5 {
            return Err(format!("an array of {} values, expected 5 ({})", a.len(), HEADS.join(", ")));
        }
        for (slot, (x, head)) in v.iter_mut().zip(a.iter().zip(HEADS)) {
            *slot = number(x, head)?;
        }
    } else if text.starts_with('{') {
        let o: HashMap<String, &RawValue> = serde_json::from_str(text).map_err(|e| e.to_string())?;
        for (slot, head) in v.iter_mut().zip(HEADS) {
            let x = o.get(head).ok_or_else(|| format!("no {head:?}"))?;
            *slot = number(x, head)?;
        }
    } else {
        return Err(format!("expected an object of heads or an array of 5, got {text}"));
    }
    let [first_session_success, session_velocity, churn_risk_14d, churn_risk_30d, health_score] = v;
    for (x, head, max) in [
        (first_session_success, HEADS[0], 1.0),
        (session_velocity, HEADS[1], f64::MAX),
        (churn_risk_14d, HEADS[2], 1.0),
        (churn_risk_30d, HEADS[3], 1.0),
        (health_score, HEADS[4], 100.0),
    ] {
        if !(0.0..=max).contains(&x) {
            return Err(format!("{head} = {x} is out of its range"));
        }
    }
    Ok(Scores { first_session_success, session_velocity, churn_risk_14d, churn_risk_30d, health_score })
}

/// A head's value: a JSON number, or a one-element array holding one.
fn number(x: &RawValue, head: &str) -> Result<f64, String> {
    let mut text = x.get();
    let inner: Vec<&RawValue>;
    if text.starts_with('[') {
        inner = serde_json::from_str(text).map_err(|e| format!("{head}: {e}"))?;
        match inner.as_slice() {
            [one] => text = one.get(),
            _ => return Err(format!("{head} is an array of {} values, expected a number or [number]", inner.len())),
        }
    }
    let is_number = text.starts_with(|c: char| c == '-' || c.is_ascii_digit());
    match text.parse::<f64>() {
        Ok(x) if is_number && x.is_finite() => Ok(x),
        _ => Err(format!("{head} is not a finite number: {text}")),
    }
}

/// Counts of the endpoint's work since start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct EndpointStats {
    /// InvokeEndpoint calls answered.
    pub requests: u64,
    /// Rows in those calls.
    pub rows: u64,
    /// Attempts retried.
    pub retries: u64,
    /// Requests that failed after every attempt (or were refused).
    pub failed_requests: u64,
    /// Calls refused at once because the breaker was open.
    pub breaker_rejections: u64,
    /// Times the breaker opened.
    pub breaker_opened: u64,
    /// Sum of the answered calls' latencies, in µs.
    pub latency_us_sum: u64,
    /// The slowest answered call, in µs.
    pub latency_us_max: u64,
}

#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    rows: AtomicU64,
    retries: AtomicU64,
    failed: AtomicU64,
    rejected: AtomicU64,
    latency_sum: AtomicU64,
    latency_max: AtomicU64,
}

/// A SageMaker endpoint as a [`Scorer`] (see the [module docs](self)).
#[derive(Debug, Clone)]
pub struct SageMakerScorer {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: aws_sdk_sagemakerruntime::Client,
    config: EndpointConfig,
    served_by: Arc<str>,
    default_id: ModelId,
    breaker: Mutex<CircuitBreaker>,
    permits: Semaphore,
    counters: Counters,
}

/// The SageMaker Runtime client settings pulse uses: the SDK's retries off
/// (pulse retries itself, through its breaker) and the attempt timeout set.
/// Add interceptors or overrides on the builder before `build()`.
pub fn client_config(sdk: &SdkConfig, config: &EndpointConfig) -> aws_sdk_sagemakerruntime::config::Builder {
    aws_sdk_sagemakerruntime::config::Builder::from(sdk)
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(config.timeout.min(Duration::from_secs(3)))
                .operation_attempt_timeout(config.timeout)
                .build(),
        )
}

impl SageMakerScorer {
    /// A scorer over a client (see [`client_config`]) after checking `config`.
    pub fn new(client: aws_sdk_sagemakerruntime::Client, config: EndpointConfig) -> Result<SageMakerScorer, String> {
        config.validate()?;
        let served_by: Arc<str> = format!("sagemaker:{}", config.endpoint_name).into();
        let default_id = ModelId::new(
            config.model_name.as_deref().unwrap_or(&config.endpoint_name),
            config.model_version.as_deref().unwrap_or("unknown"),
            served_by.clone(),
        );
        Ok(SageMakerScorer {
            inner: Arc::new(Inner {
                client,
                breaker: Mutex::new(CircuitBreaker::new(config.breaker)),
                permits: Semaphore::new(config.max_in_flight),
                config,
                served_by,
                default_id,
                counters: Counters::default(),
            }),
        })
    }

    /// A scorer with the client of [`client_config`].
    pub fn from_sdk(sdk: &SdkConfig, config: EndpointConfig) -> Result<SageMakerScorer, String> {
        let client = aws_sdk_sagemakerruntime::Client::from_conf(client_config(sdk, &config).build());
        SageMakerScorer::new(client, config)
    }

    /// The configuration.
    pub fn config(&self) -> &EndpointConfig {
        &self.inner.config
    }

    /// The work so far.
    pub fn stats(&self) -> EndpointStats {
        let c = &self.inner.counters;
        EndpointStats {
            requests: c.requests.load(Relaxed),
            rows: c.rows.load(Relaxed),
            retries: c.retries.load(Relaxed),
            failed_requests: c.failed.load(Relaxed),
            breaker_rejections: c.rejected.load(Relaxed),
            breaker_opened: self.breaker().times_opened(),
            latency_us_sum: c.latency_sum.load(Relaxed),
            latency_us_max: c.latency_max.load(Relaxed),
        }
    }

    /// The breaker's state now.
    pub fn breaker_state(&self) -> BreakerState {
        self.breaker().state()
    }

    fn breaker(&self) -> std::sync::MutexGuard<'_, CircuitBreaker> {
        // The breaker's methods cannot panic, so a poisoned lock still holds
        // a consistent state.
        self.inner.breaker.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn score_rows(&self, rows: &[Features]) -> Result<ScoredRows, ScoreError> {
        if rows.is_empty() {
            return Ok(ScoredRows { scores: Vec::new(), model: self.inner.default_id.clone() });
        }
        let config = &self.inner.config;
        let requests =
            encode_requests(rows, config.content_type, config.max_rows_per_request, config.max_bytes_per_request)
                .map_err(ScoreError::Fatal)?;
        let answers = futures_util::future::join_all(requests.iter().map(|r| self.request(r))).await;
        let mut scores = Vec::with_capacity(rows.len());
        let mut model: Option<ModelId> = None;
        let mut retryable = None;
        for answer in answers {
            match answer {
                Ok((part, id)) => {
                    if model.as_ref().is_some_and(|m| *m != id) {
                        retryable = Some(ScoreError::Retryable(format!(
                            "the endpoint answered one batch with two models ({} and {}): a deployment in progress?",
                            describe(model.as_ref().unwrap_or(&id)),
                            describe(&id)
                        )));
                    }
                    model.get_or_insert(id);
                    scores.extend(part);
                }
                Err(fatal @ ScoreError::Fatal(_)) => return Err(fatal),
                Err(e) => retryable = retryable.or(Some(e)),
            }
        }
        if let Some(e) = retryable {
            return Err(e);
        }
        Ok(ScoredRows { scores, model: model.unwrap_or_else(|| self.inner.default_id.clone()) })
    }

    /// One request with its retries.
    async fn request(&self, request: &RequestBody) -> Result<(Vec<Scores>, ModelId), ScoreError> {
        let inner = &*self.inner;
        let config = &inner.config;
        let mut attempt = 0;
        loop {
            attempt += 1;
            if let Err(wait) = self.breaker().try_call(Instant::now()) {
                inner.counters.rejected.fetch_add(1, Relaxed);
                return Err(ScoreError::Retryable(format!(
                    "endpoint {} is failing (circuit open): next try in {:.1} s",
                    config.endpoint_name,
                    wait.as_secs_f64()
                )));
            }
            let failure = {
                let _permit = inner.permits.acquire().await.map_err(|e| ScoreError::Fatal(e.to_string()))?;
                let started = Instant::now();
                let call = inner
                    .client
                    .invoke_endpoint()
                    .endpoint_name(&config.endpoint_name)
                    .content_type(config.content_type.mime())
                    .accept("application/json")
                    .body(Blob::new(request.body.clone()))
                    .send();
                match tokio::time::timeout(config.timeout, call).await {
                    Ok(Ok(output)) => {
                        self.breaker().on_success();
                        let micros = started.elapsed().as_micros() as u64;
                        inner.counters.requests.fetch_add(1, Relaxed);
                        inner.counters.rows.fetch_add(request.rows as u64, Relaxed);
                        inner.counters.latency_sum.fetch_add(micros, Relaxed);
                        inner.counters.latency_max.fetch_max(micros, Relaxed);
                        return self.read_answer(&output, request);
                    }
                    Ok(Err(e)) => classify_invoke(&e),
                    Err(_) => Failure::Retry(format!("no answer within {:?}", config.timeout)),
                }
            };
            match failure {
                Failure::Throttled(ref reason) | Failure::Retry(ref reason) => {
                    self.breaker().on_failure(Instant::now());
                    if !config.retry.may_retry(attempt) {
                        inner.counters.failed.fetch_add(1, Relaxed);
                        return Err(ScoreError::Retryable(format!(
                            "endpoint {}: {reason} (after {attempt} attempts)",
                            config.endpoint_name
                        )));
                    }
                    tracing::debug!(endpoint = %config.endpoint_name, attempt, %reason, "retrying InvokeEndpoint");
                    inner.counters.retries.fetch_add(1, Relaxed);
                    config.retry.wait_after(&failure, attempt).await;
                }
                Failure::Fatal(reason) => {
                    // The endpoint answered: it is up, the request is wrong.
                    self.breaker().on_success();
                    inner.counters.failed.fetch_add(1, Relaxed);
                    return Err(ScoreError::Fatal(format!("endpoint {}: {reason}", config.endpoint_name)));
                }
            }
        }
    }

    fn read_answer(
        &self,
        output: &InvokeEndpointOutput,
        request: &RequestBody,
    ) -> Result<(Vec<Scores>, ModelId), ScoreError> {
        let inner = &*self.inner;
        let body = output.body().map(|b| b.as_ref()).unwrap_or_default();
        let parsed = parse_response(body, request.rows).map_err(|e| {
            inner.counters.failed.fetch_add(1, Relaxed);
            ScoreError::Fatal(format!(
                "endpoint {} answered rows {}..{} unreadably: {e}",
                inner.config.endpoint_name,
                request.first_row + 1,
                request.first_row + request.rows
            ))
        })?;
        let served_by = match output.invoked_production_variant() {
            Some(variant) if !variant.is_empty() => format!("{}/{variant}", inner.served_by).into(),
            _ => inner.served_by.clone(),
        };
        let id = ModelId {
            name: parsed.model.map_or_else(|| inner.default_id.name.clone(), Into::into),
            version: parsed.model_version.map_or_else(|| inner.default_id.version.clone(), Into::into),
            served_by,
        };
        Ok((parsed.scores, id))
    }
}

fn describe(id: &ModelId) -> String {
    format!("{} v{}", id.name, id.version)
}

/// InvokeEndpoint's own errors, then the generic classification: a
/// `ModelError` is the container's answer relayed (HTTP 424), retryable when
/// the container said 5xx or 429.
fn classify_invoke(e: &SdkError<InvokeEndpointError, aws_sdk_sagemakerruntime::config::http::HttpResponse>) -> Failure {
    if let SdkError::ServiceError(service) = e {
        match service.err() {
            InvokeEndpointError::ModelError(m) => {
                let status = m.original_status_code().unwrap_or(0);
                let reason = format!(
                    "the model answered HTTP {status}: {}",
                    m.original_message().or(m.message()).unwrap_or("no message")
                );
                return classify_answer(u16::try_from(status).unwrap_or(0), None, reason);
            }
            InvokeEndpointError::ModelNotReadyException(_) => {
                return Failure::Retry(crate::retry::error_chain(e));
            }
            InvokeEndpointError::ServiceUnavailable(_)
            | InvokeEndpointError::InternalFailure(_)
            | InvokeEndpointError::InternalDependencyException(_) => {
                return Failure::Retry(crate::retry::error_chain(e));
            }
            _ => {}
        }
    }
    classify(e)
}

impl Scorer for SageMakerScorer {
    fn model_name(&self) -> &str {
        &self.inner.default_id.name
    }

    fn model_version(&self) -> &str {
        &self.inner.default_id.version
    }

    fn score(&self, rows: &[Features]) -> impl std::future::Future<Output = Result<ScoredRows, ScoreError>> + Send {
        self.score_rows(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pulse_schemas::FEATURE_COUNT;

    fn row(seed: f64) -> Features {
        let mut r = [0.0; FEATURE_COUNT];
        for (i, x) in r.iter_mut().enumerate() {
            *x = seed + i as f64 / 7.0;
        }
        r
    }

    fn parse_csv(body: &[u8]) -> Vec<Features> {
        std::str::from_utf8(body)
            .unwrap()
            .lines()
            .map(|l| {
                let v: Vec<f64> = l.split(',').map(|x| x.parse().unwrap()).collect();
                v.try_into().unwrap()
            })
            .collect()
    }

    #[test]
    fn rows_are_cut_by_count_and_every_value_reads_back_exactly() {
        let rows: Vec<Features> = (0..10).map(|i| row(i as f64 * 1e-9 + 1e300 * (i % 2) as f64)).collect();
        let requests = encode_requests(&rows, ContentType::Csv, 4, MAX_PAYLOAD_BYTES).unwrap();
        assert_eq!(requests.iter().map(|r| (r.first_row, r.rows)).collect::<Vec<_>>(), [(0, 4), (4, 4), (8, 2)]);
        let back: Vec<Features> = requests.iter().flat_map(|r| parse_csv(&r.body)).collect();
        assert_eq!(back, rows, "shortest round-trip text, no header, no trailing newline");

        let requests = encode_requests(&rows, ContentType::Json, 3, MAX_PAYLOAD_BYTES).unwrap();
        assert_eq!(requests.len(), 4);
        let mut back = Vec::new();
        for r in &requests {
            // Valid JSON; numbers read with Rust's exact parser, as `pulse serve` does.
            serde_json::from_slice::<serde_json::Value>(&r.body).unwrap();
            let text = std::str::from_utf8(&r.body).unwrap();
            let inner = text.strip_prefix("{\"instances\":[[").unwrap().strip_suffix("]]}").unwrap();
            for instance in inner.split("],[") {
                let values: Vec<f64> = instance.split(',').map(|x| x.parse().unwrap()).collect();
                back.push(<Features>::try_from(values).unwrap());
            }
        }
        assert_eq!(back, rows);
    }

    #[test]
    fn rows_are_cut_by_bytes_and_never_pass_the_limit() {
        let rows: Vec<Features> = (0..1000).map(|i| row(i as f64 * 0.001)).collect();
        for format in [ContentType::Csv, ContentType::Json] {
            let one = encode_requests(&rows[..1], format, 10_000, MAX_PAYLOAD_BYTES).unwrap()[0].body.len();
            let limit = one * 10 + 5;
            let requests = encode_requests(&rows, format, 10_000, limit).unwrap();
            assert!(requests.iter().all(|r| r.body.len() <= limit), "{format:?}");
            // Filled: the next row would not have fit.
            for pair in requests.windows(2) {
                let next = &rows[pair[1].first_row..=pair[1].first_row];
                let next_len = encode_requests(next, format, 1, MAX_PAYLOAD_BYTES).unwrap()[0].body.len();
                let overhead = if format == ContentType::Json { 16 } else { 0 };
                assert!(pair[0].body.len() + 1 + next_len - overhead > limit, "{format:?}: requests are filled");
            }
            assert_eq!(requests.iter().map(|r| r.rows).sum::<usize>(), 1000);
            // Consecutive, in order.
            let mut next = 0;
            for r in &requests {
                assert_eq!(r.first_row, next);
                next += r.rows;
            }
        }
        // Real rows at SageMaker's limit: a request stays under 6 MB.
        let many: Vec<Features> = (0..20_000).map(|i| row(i as f64 * 1.234_567_891e-3)).collect();
        let requests = encode_requests(&many, ContentType::Csv, 20_000, 6_000_000).unwrap();
        assert!(requests.len() >= 2 && requests.iter().all(|r| r.body.len() <= 6_000_000));
    }

    #[test]
    fn bad_rows_are_refused_with_their_place() {
        let mut rows = vec![row(1.0), row(2.0)];
        rows[1][3] = f64::NAN;
        let err = encode_requests(&rows, ContentType::Csv, 10, MAX_PAYLOAD_BYTES).unwrap_err();
        assert_eq!(err, "row 2 column 4 (NaN) is not a finite number");
        let err = encode_requests(&[row(1.0)], ContentType::Json, 10, 100).unwrap_err();
        assert!(err.starts_with("row 1 alone takes"), "{err}");
        assert_eq!(encode_requests(&[], ContentType::Csv, 10, 100).unwrap(), []);
    }

    #[test]
    fn answers_with_per_head_objects_are_read() {
        let body = br#"{"predictions": [
            {"first_session_success": 0.81, "session_velocity": 2.4, "churn_risk_14d": 0.07, "churn_risk_30d": 0.12, "health_score": 88.1},
            {"first_session_success": [0.5], "session_velocity": [0.0], "churn_risk_14d": [0.9], "churn_risk_30d": [1.0], "health_score": [12]}
        ], "model": "pulse-multitask", "model_version": "3", "features_schema": "features-v1"}"#;
        let parsed = parse_response(body, 2).unwrap();
        assert_eq!(parsed.model.as_deref(), Some("pulse-multitask"));
        assert_eq!(parsed.model_version.as_deref(), Some("3"));
        assert_eq!(
            parsed.scores[0],
            Scores {
                first_session_success: 0.81,
                session_velocity: 2.4,
                churn_risk_14d: 0.07,
                churn_risk_30d: 0.12,
                health_score: 88.1
            }
        );
        assert_eq!(parsed.scores[1].churn_risk_14d, 0.9);
        assert_eq!(parsed.scores[1].health_score, 12.0);
    }

    #[test]
    fn answers_with_arrays_of_five_are_read_in_head_order() {
        for body in [&br#"{"predictions": [[0.1, 2.0, 0.3, 0.4, 55.5]]}"#[..], br#"[[0.1, 2.0, 0.3, 0.4, 55.5]]"#] {
            let parsed = parse_response(body, 1).unwrap();
            assert_eq!(
                parsed.scores,
                [Scores {
                    first_session_success: 0.1,
                    session_velocity: 2.0,
                    churn_risk_14d: 0.3,
                    churn_risk_30d: 0.4,
                    health_score: 55.5
                }]
            );
            assert_eq!(parsed.model, None);
        }
    }

    #[test]
    fn wrong_answers_are_refused_not_patched() {
        let cases: [(&[u8], usize, &str); 8] = [
            (b"body", 1, "not JSON"),
            (br#"{"scores": []}"#, 0, "no \"predictions\""),
            (br#"{"predictions": [[0.1, 2.0, 0.3, 0.4, 55.5]]}"#, 2, "1 predictions for 2 rows"),
            (br#"[[0.1, 2.0, 0.3, 0.4]]"#, 1, "an array of 4 values"),
            (br#"[{"first_session_success": 0.1}]"#, 1, "no \"session_velocity\""),
            (br#"[[0.1, 2.0, 1.3, 0.4, 55.5]]"#, 1, "churn_risk_14d = 1.3 is out of its range"),
            (br#"[[0.1, 2.0, 0.3, 0.4, "55"]]"#, 1, "health_score is not a finite number"),
            (br#"[[0.1, -2.0, 0.3, 0.4, 5]]"#, 1, "session_velocity = -2 is out of its range"),
        ];
        for (body, rows, expected) in cases {
            let err = parse_response(body, rows).unwrap_err();
            assert!(err.contains(expected), "{}: {err}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn settings_are_checked_before_any_call() {
        let ok = EndpointConfig::new("churn");
        assert!(ok.validate().is_ok());
        let bad = [
            EndpointConfig { endpoint_name: String::new(), ..ok.clone() },
            EndpointConfig { max_rows_per_request: 0, ..ok.clone() },
            EndpointConfig { max_bytes_per_request: MAX_PAYLOAD_BYTES + 1, ..ok.clone() },
            EndpointConfig { max_in_flight: 0, ..ok.clone() },
            EndpointConfig { timeout: Duration::ZERO, ..ok.clone() },
        ];
        for config in bad {
            assert!(config.validate().is_err(), "{config:?}");
        }
    }
}
