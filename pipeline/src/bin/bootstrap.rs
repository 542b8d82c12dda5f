//! The Lambda function of the DynamoDB Streams event source mapping.
//!
//! The [`Handler`] (and its engine) is built once per execution environment and
//! kept warm across invocations; each invocation returns the partial batch
//! response. No AWS service calls yet: see `pulse::lambda`.

use aws_lambda_events::event::dynamodb::Event;
use aws_lambda_events::streams::DynamoDbEventResponse;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use pulse::lambda::Handler;
use pulse_operators::EngineConfig;

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .without_time()
        .init();
    let handler = Handler::new(EngineConfig::default());
    let handler = &handler;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<Event>| async move { Ok::<_, Error>(invoke(handler, event)) },
    ))
    .await
}

fn invoke(handler: &Handler, event: LambdaEvent<Event>) -> DynamoDbEventResponse {
    let records = event.payload.records.len();
    let out = handler.handle(event.payload);
    tracing::info!(
        request_id = %event.context.request_id,
        records,
        vectors = out.produced.vectors.len(),
        dead_letters = out.produced.dead.len(),
        batch_item_failures = out.response.batch_item_failures.len(),
        "batch handled"
    );
    out.response
}
