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

use std::time::{Duration, SystemTime};

use clap::Parser;
use lambda_runtime::{service_fn, Diagnostic, Error, LambdaEvent};
use pulse_aws::AwsArgs;
use pulse_lambda::sink::JsonLinesSink;
use pulse_lambda::{Handler, LambdaSettings};
use pulse_model::EmbeddedModel;
use pulse_runtime::scoring::ScoringConfig;
use pulse_runtime::sink::Both;
use serde_json::Value;

#[tokio::main]
async fn main() {
    // Said plainly ("error: TABLE_NAME is not set ..."), not as the Debug
    // form `main` returning an error prints (`Error: "TABLE_NAME ..."`):
    // this is the line a cold start that cannot start leaves in the log.
    if let Err(e) = run().await {
        use std::io::Write as _;
        let _unreadable = writeln!(std::io::stderr(), "error: {e}");
        std::process::exit(1);
    }
}

/// What an invocation that failed as a whole reports to the Runtime API:
/// a named error type, where the default was the Rust type of a boxed
/// error (`&alloc::boxed::Box<dyn core::error::Error + ...>`).
fn invocation_failed(message: String) -> Diagnostic {
    Diagnostic { error_type: "pulse.InvocationFailed".into(), error_message: message }
}

async fn run() -> Result<(), Error> {
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
        // --help, --version, or a setting clap refused: clap says which
        // flag; the function's settings are variables, so its name is added.
        Err(e) => match LambdaSettings::variable_of(&e) {
            Some(variable) => {
                use std::io::Write as _;
                let said = e.to_string().replacen("error: ", &format!("error: {variable}: "), 1);
                let _unreadable = write!(std::io::stderr(), "{said}");
                std::process::exit(2);
            }
            None => e.exit(),
        },
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
                .build(&sdk, ScoringConfig { reasons: env.reasons, ..ScoringConfig::default() }, model)
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
        if let Some(scoring) = sink.1.as_mut() {
            scoring.hold_until(hold_deadline(event.context.deadline));
        }
        let request_id = event.context.request_id;
        let answer = handler.invoke(event.payload, &mut *sink).await;
        let failed = match &answer {
            Ok(value) => value["batchItemFailures"].as_array().is_some_and(|f| !f.is_empty()),
            Err(_) => true,
        };
        // The handler flushed the sink (its effects are durable, or the
        // batch's failed records are named in the answer); what is left is
        // this environment's fleet and health snapshot as an EMF line,
        // published whatever the outcome: a failed model call is counted
        // there (PredictionFailures, its alarm). Not `finish`, which would
        // call a failing model again. A failure here is logged, not
        // returned: failing the batch would only redeliver records already
        // applied.
        if let Some(scoring) = sink.1.as_mut() {
            if failed {
                scoring.count_failed_invocation();
            }
            if let Err(e) = scoring.publish_snapshot_now().await {
                tracing::error!(%request_id, error = format!("{e:#}"), "cannot publish the metrics snapshot");
            }
        }
        // Not logged here: the runtime logs the error it is handed, in the
        // invocation's span (its requestId), and a second line said it twice.
        answer.map_err(|e| invocation_failed(format!("{e:#}")))
    }))
    .await
}

/// How long before the invocation's deadline a hold for a failing endpoint
/// gives up: time left to answer with the failed records (and publish the
/// metrics snapshot) instead of being killed by the function's timeout.
const ANSWER_MARGIN: Duration = Duration::from_secs(5);

/// The hold's deadline for an invocation due to end at `deadline_ms`
/// (milliseconds since the epoch, as the Runtime API gives it; 0: none).
fn hold_deadline(deadline_ms: u64) -> Option<tokio::time::Instant> {
    if deadline_ms == 0 {
        return None;
    }
    let end = SystemTime::UNIX_EPOCH + Duration::from_millis(deadline_ms);
    let left = end.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO);
    Some(tokio::time::Instant::now() + left.saturating_sub(ANSWER_MARGIN))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epoch_ms(t: SystemTime) -> u64 {
        t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_millis() as u64
    }

    #[test]
    fn the_hold_ends_a_margin_before_the_invocations_deadline() {
        assert_eq!(hold_deadline(0), None, "no deadline given");
        let now = tokio::time::Instant::now();
        let a_minute = hold_deadline(epoch_ms(SystemTime::now() + Duration::from_secs(60))).unwrap();
        let left = a_minute.duration_since(now);
        assert!(left > Duration::from_secs(50) && left <= Duration::from_secs(55), "{left:?}");
        // Less than the margin left, or already past: no hold at all.
        for past in [SystemTime::now() + Duration::from_secs(2), SystemTime::now() - Duration::from_secs(2)] {
            let at = hold_deadline(epoch_ms(past)).unwrap();
            assert!(at.duration_since(now) < Duration::from_secs(1));
        }
    }
}
