//! The command-line face of the live outputs: [`OutputArgs`], flattened into
//! `pulse run`, and [`OutputArgs::build`], which checks them without I/O and
//! makes the SDK clients.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, Result};
use aws_config::SdkConfig;
use clap::Args;
use pulse_model::EmbeddedModel;
use pulse_operators::scoring::monitor::NAMESPACE as QUALITY_NAMESPACE;
use pulse_operators::scoring::NAMESPACE;

use super::alerts::AlertPublisher;
use super::backend::ModelBackend;
use super::dead_letters::{DeadLetterFile, DeadLetterQueue};
use super::fallback::{as_fallback, OnEndpointDown, WithFallback};
use super::metrics::{MetricsOut, MetricsPublisher, HEALTH_NAMESPACE};
use super::predictions::{OnWritten, PredictionWriter};
use super::sagemaker::{ContentType, EndpointConfig, SageMakerScorer};
use super::sink::{Destinations, ScoringSink, SinkConfig};
use crate::retry::{Backoff, BreakerConfig};
use pulse_runtime::scoring::ScoringConfig;

/// Where metrics go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum MetricsTarget {
    /// `PutMetricData` (the long-running consumer).
    Cloudwatch,
    /// Embedded Metric Format lines on stdout (Lambda).
    Emf,
    /// Not published.
    Off,
}

/// The longest `--endpoint-timeout-ms` (`ENDPOINT_TIMEOUT_MS`): a Lambda
/// invocation's longest, 15 minutes (the template's bound too).
pub const MAX_ENDPOINT_TIMEOUT_MS: u64 = 900_000;
/// The most `--endpoint-attempts` (`ENDPOINT_ATTEMPTS`).
pub const MAX_ENDPOINT_ATTEMPTS: i64 = 20;
/// The most `--breaker-failures` (`BREAKER_FAILURES`).
pub const MAX_BREAKER_FAILURES: i64 = 1_000;

/// The live outputs of scoring.
#[derive(Args, Clone, Debug)]
pub struct OutputArgs {
    /// Score with this SageMaker endpoint. Default: the embedded model, in process.
    #[arg(long, env = "ENDPOINT_NAME", value_name = "NAME")]
    pub endpoint_name: Option<String>,
    /// The endpoint's request format: csv (what today's endpoint is sent) or json.
    #[arg(long, value_enum, default_value = "csv")]
    pub content_type: ContentType,
    /// Most rows in one InvokeEndpoint request.
    #[arg(long, default_value_t = 2_000)]
    pub max_rows_per_request: usize,
    /// Most bytes in one InvokeEndpoint body (SageMaker's limit is 6 MB).
    #[arg(long, default_value_t = 6_000_000)]
    pub max_bytes_per_request: usize,
    /// Time one InvokeEndpoint attempt may take, in ms (1 to 900,000, a
    /// Lambda invocation's longest).
    #[arg(long, env = "ENDPOINT_TIMEOUT_MS", default_value_t = 10_000, value_name = "MS",
          value_parser = clap::value_parser!(u64).range(1..=MAX_ENDPOINT_TIMEOUT_MS))]
    pub endpoint_timeout_ms: u64,
    /// Attempts per InvokeEndpoint request (throttling, 5xx, ModelNotReady,
    /// timeouts are retried; 1 to 20).
    #[arg(long, env = "ENDPOINT_ATTEMPTS", default_value_t = 4,
          value_parser = clap::value_parser!(u32).range(1..=MAX_ENDPOINT_ATTEMPTS))]
    pub endpoint_attempts: u32,
    /// Consecutive failed calls that open the circuit breaker (1 to 1,000).
    #[arg(long, env = "BREAKER_FAILURES", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..=MAX_BREAKER_FAILURES))]
    pub breaker_failures: u32,
    /// Seconds the open breaker waits before a probe call (0 to a year).
    #[arg(long, env = "BREAKER_COOLDOWN_S", default_value_t = 30.0, value_name = "SECONDS")]
    pub breaker_cooldown_s: f64,
    /// InvokeEndpoint requests in flight at once.
    #[arg(long, default_value_t = 4)]
    pub max_in_flight: usize,
    /// When the endpoint stays down: score with the embedded model (each
    /// prediction says so) or hold the customers until it is back.
    #[arg(long, env = "ON_ENDPOINT_DOWN", value_enum, ignore_case = true, default_value = "hold")]
    pub on_endpoint_down: OnEndpointDown,
    /// With `hold`, how long a checkpoint waits for a down endpoint before
    /// failing. The Lambda function also stops 5 s before its invocation's
    /// deadline, so that a batch answers its failures instead of timing out.
    #[arg(long, env = "HOLD_TIMEOUT_S", default_value_t = 300.0, value_name = "SECONDS")]
    pub hold_timeout_s: f64,
    /// The model version to record when the endpoint's answer does not name one.
    #[arg(long, value_name = "VERSION")]
    pub endpoint_model_version: Option<String>,
    /// Write predictions to this table (key customer_id + sk = PRED#latest).
    #[arg(long, env = "PREDICTIONS_TABLE", value_name = "TABLE")]
    pub predictions_table: Option<String>,
    /// Prediction writes in flight at once.
    #[arg(long, default_value_t = 16)]
    pub write_concurrency: usize,
    /// Publish alerts to this SNS topic.
    #[arg(long, env = "ALERTS_TOPIC_ARN", value_name = "ARN")]
    pub alerts_topic_arn: Option<String>,
    /// Send dead letters to this SQS queue.
    #[arg(long, env = "DEAD_LETTER_QUEUE_URL", value_name = "URL")]
    pub dead_letter_queue_url: Option<String>,
    /// Append dead letters (whole, whatever their size) to this file.
    #[arg(long, value_name = "FILE")]
    pub dead_letter_file: Option<PathBuf>,
    /// How long a failing write of a prediction, an alert or a dead letter
    /// is retried (throttling, 5xx, no answer) before the run fails, in
    /// seconds, about (the waits' mean; throttling waits longer): `pulse
    /// run` waits out an outage of its outputs (default 300, or half the
    /// lease with --checkpoint-table; reads are retried without end).
    /// Unset: 6 attempts, a few seconds (the Lambda's, within its invocation).
    #[arg(long, value_name = "SECONDS")]
    pub write_retry_s: Option<f64>,
    /// Where metrics go.
    #[arg(long, value_enum, default_value = "cloudwatch")]
    pub metrics: MetricsTarget,
    /// Namespace of the §6 fleet metrics.
    #[arg(long, default_value = NAMESPACE)]
    pub metrics_namespace: String,
    /// Namespace of the pipeline's health metrics.
    #[arg(long, default_value = HEALTH_NAMESPACE)]
    pub health_namespace: String,
    /// Namespace of the model-quality metrics (dimension `Head`).
    #[arg(long, default_value = QUALITY_NAMESPACE)]
    pub quality_namespace: String,
}

impl Default for OutputArgs {
    fn default() -> OutputArgs {
        OutputArgs {
            endpoint_name: None,
            write_retry_s: None,
            content_type: ContentType::Csv,
            max_rows_per_request: 2_000,
            max_bytes_per_request: 6_000_000,
            endpoint_timeout_ms: 10_000,
            endpoint_attempts: 4,
            breaker_failures: 5,
            breaker_cooldown_s: 30.0,
            max_in_flight: 4,
            on_endpoint_down: OnEndpointDown::Hold,
            hold_timeout_s: 300.0,
            endpoint_model_version: None,
            predictions_table: None,
            write_concurrency: 16,
            alerts_topic_arn: None,
            dead_letter_queue_url: None,
            dead_letter_file: None,
            metrics: MetricsTarget::Off,
            metrics_namespace: NAMESPACE.into(),
            health_namespace: HEALTH_NAMESPACE.into(),
            quality_namespace: QUALITY_NAMESPACE.into(),
        }
    }
}

impl OutputArgs {
    /// The endpoint's configuration, if one is named; checked without I/O.
    pub fn endpoint_config(&self) -> Result<Option<EndpointConfig>> {
        let seconds =
            |s: f64, flag: &str| pulse_runtime::settings::seconds(s, flag, pulse_runtime::settings::YEAR_SECONDS);
        // Checked with no endpoint named too: a function's settings are
        // checked where they are printed (`bootstrap --print-settings`).
        let cooldown = seconds(self.breaker_cooldown_s, "--breaker-cooldown-s (BREAKER_COOLDOWN_S)")?;
        let Some(name) = &self.endpoint_name else { return Ok(None) };
        let config = EndpointConfig {
            endpoint_name: name.clone(),
            content_type: self.content_type,
            max_rows_per_request: self.max_rows_per_request,
            max_bytes_per_request: self.max_bytes_per_request,
            timeout: Duration::from_millis(self.endpoint_timeout_ms),
            retry: Backoff { max_attempts: self.endpoint_attempts, ..Backoff::default() },
            breaker: BreakerConfig { failures: self.breaker_failures, cooldown },
            max_in_flight: self.max_in_flight,
            model_name: None,
            model_version: self.endpoint_model_version.clone(),
        };
        config.validate().map_err(|e| anyhow!("endpoint {name}: {e}"))?;
        Ok(Some(config))
    }

    /// The sink: checks every setting, then makes the clients. `embedded`
    /// scores when no endpoint is named, and is the fallback of one.
    pub async fn build(&self, sdk: &SdkConfig, scoring: ScoringConfig, embedded: EmbeddedModel) -> Result<ScoringSink> {
        self.build_observed(sdk, scoring, embedded, None).await
    }

    /// Checks the topic's ARN and the queue's URL by their form, without
    /// I/O: a value that cannot name one (`not-an-arn`, a queue's ARN for
    /// the topic) was taken and failed at the first alert or dead letter.
    pub fn check_destinations(&self) -> Result<()> {
        if let Some(arn) = self.alerts_topic_arn.as_deref() {
            let parts: Vec<&str> = arn.split(':').collect();
            anyhow::ensure!(
                parts.len() == 6 && parts[0] == "arn" && parts[2] == "sns" && !parts[5].is_empty(),
                "--alerts-topic-arn (ALERTS_TOPIC_ARN) {arn:?} is not an SNS topic's ARN \
                 (arn:aws:sns:REGION:ACCOUNT:NAME)"
            );
        }
        if let Some(url) = self.dead_letter_queue_url.as_deref() {
            anyhow::ensure!(
                (url.starts_with("https://") || url.starts_with("http://"))
                    && url.trim_end_matches('/').matches('/').count() >= 4,
                "--dead-letter-queue-url (DEAD_LETTER_QUEUE_URL) {url:?} is not an SQS queue's URL \
                 (https://sqs.REGION.amazonaws.com/ACCOUNT/NAME)"
            );
        }
        Ok(())
    }

    /// `--hold-timeout-s` (`HOLD_TIMEOUT_S`) as a duration, checked: from
    /// 0 to a day (`1e30` passed the old check and panicked when the
    /// function started).
    pub fn hold_timeout(&self) -> Result<Duration> {
        pulse_runtime::settings::seconds(self.hold_timeout_s, "--hold-timeout-s (HOLD_TIMEOUT_S)", 86_400.0)
    }

    /// [`OutputArgs::build`], calling `on_written` with each prediction stored
    /// (`pulse loadtest` times event write → prediction write with it).
    pub async fn build_observed(
        &self,
        sdk: &SdkConfig,
        scoring: ScoringConfig,
        embedded: EmbeddedModel,
        on_written: Option<OnWritten>,
    ) -> Result<ScoringSink> {
        anyhow::ensure!(self.write_concurrency > 0, "--write-concurrency must be at least 1");
        self.check_destinations()?;
        let hold_timeout = self.hold_timeout()?;
        let model = match self.endpoint_config()? {
            None => ModelBackend::Embedded(embedded),
            Some(config) => {
                let endpoint = SageMakerScorer::from_sdk(sdk, config).map_err(|e| anyhow!(e))?;
                ModelBackend::Endpoint(WithFallback::new(endpoint, as_fallback(embedded), self.on_endpoint_down))
            }
        };
        if self.alerts_topic_arn.is_some() && self.predictions_table.is_none() {
            // The alert state lives on the prediction items: without them a
            // restarted process meets every customer anew, and a customer's
            // first prediction is a baseline, not an alert.
            tracing::warn!(
                "--alerts-topic-arn without --predictions-table: the alert state is not kept across restarts; \
                 after one, a customer already above 0.7 alerts only after falling below 0.5 and rising again"
            );
        }
        let dead_letter_file = match &self.dead_letter_file {
            Some(path) => Some(DeadLetterFile::open(path).await?),
            None => None,
        };
        let retry = match self.write_retry_s {
            Some(s) => Backoff::lasting(pulse_runtime::settings::seconds(s, "--write-retry-s", 86_400.0)?),
            None => Backoff::writes(),
        };
        let out = Destinations {
            predictions: self
                .predictions_table
                .as_ref()
                .map(|t| PredictionWriter::new(aws_sdk_dynamodb::Client::new(sdk), t.as_str(), self.write_concurrency))
                .map(|w| match &on_written {
                    Some(f) => w.on_written(f.clone()),
                    None => w,
                })
                .map(|w| w.with_retry(retry)),
            alerts: self
                .alerts_topic_arn
                .as_ref()
                .map(|a| AlertPublisher::new(aws_sdk_sns::Client::new(sdk), a.as_str()))
                .map(|p| p.with_retry(retry)),
            dead_letter_queue: self
                .dead_letter_queue_url
                .as_ref()
                .map(|u| DeadLetterQueue::new(aws_sdk_sqs::Client::new(sdk), u.as_str()))
                .map(|q| q.with_retry(retry)),
            dead_letter_file,
            metrics: MetricsPublisher::new(match self.metrics {
                MetricsTarget::Cloudwatch => MetricsOut::CloudWatch(aws_sdk_cloudwatch::Client::new(sdk)),
                MetricsTarget::Emf => MetricsOut::Emf,
                MetricsTarget::Off => MetricsOut::Off,
            }),
            fleet_namespace: self.metrics_namespace.clone(),
            health_namespace: self.health_namespace.clone(),
            quality_namespace: self.quality_namespace.clone(),
        };
        let config = SinkConfig { scoring, hold_timeout, ..SinkConfig::default() };
        ScoringSink::new(model, out, config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        out: OutputArgs,
    }

    #[test]
    fn flags_parse_and_are_checked_before_any_call() {
        let cli = Cli::parse_from([
            "pulse",
            "--endpoint-name",
            "churn",
            "--content-type",
            "json",
            "--on-endpoint-down",
            "fallback",
        ]);
        let config = cli.out.endpoint_config().unwrap().unwrap();
        assert_eq!(config.content_type, ContentType::Json);
        assert_eq!(cli.out.on_endpoint_down, OnEndpointDown::Fallback);
        assert_eq!(cli.out.metrics_namespace, "IOpsDashboard/Predictions");
        assert!(Cli::parse_from(["pulse"]).out.endpoint_config().unwrap().is_none());

        let cli = Cli::parse_from(["pulse", "--endpoint-name", "churn", "--max-bytes-per-request", "7000000"]);
        let err = cli.out.endpoint_config().unwrap_err().to_string();
        assert!(err.contains("6291456"), "{err}");
        let cli = Cli::parse_from(["pulse", "--endpoint-name", "churn", "--breaker-cooldown-s=-1"]);
        assert!(cli.out.endpoint_config().unwrap_err().to_string().contains("--breaker-cooldown-s"));
    }
}
