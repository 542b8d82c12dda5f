//! The Lambda function of the DynamoDB Streams event source mapping (and of
//! the hourly schedule that rescores silent customers): `pulse::lambda`.
//!
//! Settings from the environment (`pulse::lambda::LambdaEnv`): `TABLE_NAME`
//! (required), `DUE_INDEX`, `HYDRATE_CONCURRENCY`, `DUE_LOOKBACK_HOURS`,
//! `TIMER_INTERVAL_HOURS`; AWS clients from the standard chain
//! (`AWS_ENDPOINT_URL` points them at a local server). Vectors and dead
//! letters go out as JSON lines on stdout (the function's log), logs on
//! stderr (`RUST_LOG`, default `info`).
//!
//! The [`Handler`] (and its engine) is built once per execution environment
//! and kept warm across invocations; the sink is flushed before each
//! invocation returns.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use pulse::aws::AwsArgs;
use pulse::lambda::sink::JsonLinesSink;
use pulse::lambda::{Handler, LambdaEnv};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .without_time()
        .init();
    let env = LambdaEnv::from_env().map_err(|e| Error::from(format!("{e:#}")))?;
    let sdk = AwsArgs::default().load().await;
    let handler = Handler::from_env(&env, aws_sdk_dynamodb::Client::new(&sdk));
    tracing::info!(table = %env.table, due_index = ?env.due_index, config = ?env.config, "pulse Lambda function ready");
    let sink = tokio::sync::Mutex::new(JsonLinesSink::stdout());
    let (handler, sink) = (&handler, &sink);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let mut sink = sink.lock().await;
        let request_id = event.context.request_id;
        handler.invoke(event.payload, &mut *sink).await.map_err(|e| {
            tracing::error!(%request_id, error = format!("{e:#}"), "invocation failed");
            Error::from(format!("{e:#}"))
        })
    }))
    .await
}
