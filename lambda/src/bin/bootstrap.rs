//! The Lambda function of the DynamoDB Streams event source mapping (and of
//! the hourly schedule that rescores silent customers): `pulse_lambda`.
//!
//! Settings from the environment (`pulse_lambda::LambdaSettings`, the same
//! clap arguments as the CLI's; `bootstrap --help` lists them, `--list-env`
//! names them, `--print-settings` resolves them): `TABLE_NAME`
//! (required), `DUE_INDEX`, `HYDRATE_CONCURRENCY`, `DUE_LOOKBACK_HOURS`,
//! `TIMER_INTERVAL_HOURS`; scoring and its outputs (unless `SCORE=off`):
//! `ENDPOINT_NAME`, `ON_ENDPOINT_DOWN`, `PREDICTIONS_TABLE`,
//! `ALERTS_TOPIC_ARN`, `DEAD_LETTER_QUEUE_URL`, with metrics as Embedded
//! Metric Format lines on stdout; `LOG_VECTORS=1` also logs every vector and
//! dead letter as a JSON line on stdout. AWS clients come from the standard
//! chain (`AWS_ENDPOINT_URL` points them at a local server); logs go to
//! stderr (`RUST_LOG`, default `info`).
//!
//! The [`Handler`] (and its engine) is built once per execution environment
//! and kept warm across invocations; the sink is flushed before each
//! invocation returns.

// The scoring sink inside the runtime's service future nests deeply.
#![recursion_limit = "256"]

use clap::Parser;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use pulse_aws::AwsArgs;
use pulse_lambda::sink::JsonLinesSink;
use pulse_lambda::{Handler, LambdaSettings};
use pulse_model::EmbeddedModel;
use pulse_runtime::scoring::ScoringConfig;
use pulse_runtime::sink::Both;
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // CloudWatch Logs stores escape codes as text: plain lines keep
        // metric filters and Logs Insights queries simple.
        .with_ansi(false)
        .without_time()
        .init();
    let settings = match LambdaSettings::try_parse() {
        Ok(settings) => settings,
        // --help, --version, or a setting clap refused: clap says which.
        Err(e) => e.exit(),
    };
    if settings.list_env {
        println!("{}", LambdaSettings::env_names().join("\n"));
        return Ok(());
    }
    let print = settings.print_settings;
    let env = settings.resolve().map_err(|e| Error::from(format!("{e:#}")))?;
    if print {
        println!("{}", env.to_json());
        return Ok(());
    }
    let sdk = AwsArgs::default().load().await;
    let handler = Handler::from_env(&env, aws_sdk_dynamodb::Client::new(&sdk));
    tracing::info!(table = %env.table, due_index = ?env.due_index, config = ?env.config, "pulse Lambda function ready");
    let scoring = match &env.output {
        Some(output) => {
            let model = pulse_model::embedded()
                .and_then(|artifact| EmbeddedModel::new(&artifact))
                .map_err(|e| Error::from(format!("cannot load the embedded model: {e}")))?;
            let sink = output
                .build(&sdk, ScoringConfig::default(), model)
                .await
                .map_err(|e| Error::from(format!("cannot set up scoring: {e:#}")))?;
            Some(sink)
        }
        None => None,
    };
    let log = env.log_vectors.then(JsonLinesSink::stdout);
    let sink = tokio::sync::Mutex::new(Both(log, scoring));
    let (handler, sink) = (&handler, &sink);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let mut sink = sink.lock().await;
        let request_id = event.context.request_id;
        let answer = handler.invoke(event.payload, &mut *sink).await.map_err(|e| {
            tracing::error!(%request_id, error = format!("{e:#}"), "invocation failed");
            Error::from(format!("{e:#}"))
        })?;
        // The invocation's effects are durable (the handler flushed the
        // sink); what is left is this environment's fleet and health
        // snapshot as an EMF line. A failure here is logged, not returned:
        // failing the batch would only redeliver records already applied.
        if let Some(scoring) = sink.1.as_mut() {
            if let Err(e) = scoring.finish().await {
                tracing::error!(%request_id, error = format!("{e:#}"), "cannot publish the metrics snapshot");
            }
        }
        Ok::<_, Error>(answer)
    }))
    .await
}
