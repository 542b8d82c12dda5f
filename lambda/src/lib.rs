//! The Lambda function of the DynamoDB Streams event source mapping (or of
//! the Kinesis mapping on the stream the table feeds): one batch of records
//! in, vectors and dead letters to a [`Sink`], and a partial batch response;
//! and the scheduled run that rescores silent customers.
//!
//! The [`Handler`] is built once per execution environment and keeps its
//! [`Engine`] warm across invocations: each batch continues the customers'
//! state left by the previous one, exactly as a replay continues from one line
//! to the next. Records go through the same [`Processor`] as a replay, so the
//! same records give the same vectors; timers fire on stream time
//! (`ApproximateCreationDateTime`) before the record that moves it. Lambda
//! may run a shard's next batch in another environment: a stamp per
//! customer in the table ([`stamps`]) tells an environment when its copy of
//! a customer missed records applied elsewhere, and it reads the customer
//! again.
//!
//! # Cold starts: the table is the source of truth
//!
//! On a cold start, or for a customer this environment has not seen, the
//! customer's events are read from the event table first ([`pulse_aws::hydrate`]:
//! its held events, the latest of each "ever" kind and its oldest event),
//! merged with what the batch itself carries (every event id the batch
//! touches is taken as it was before the batch), and loaded without emitting
//! anything. Its timers count as fired up to the stream time before the batch
//! (on a cold start, just before the batch's first record): catching up on
//! rescoring a silent customer is the scheduled run's job, not a burst of
//! past-dated vectors. The module doc of [`pulse_aws::hydrate`] lists when a
//! hydrated vector can differ from an uninterrupted run's.
//!
//! # One batch
//!
//! A batch runs on the one [`Driver`] (`pulse_runtime::driver`), the loop
//! `pulse replay` runs on, through a thin adapter (`adapter.rs`): the
//! invocation's records are a source of one batch, decoded here as the
//! driver's `Body::Decoded`; the warm processor is lent to the driver and
//! given back; acknowledging the batch is the answer.
//!
//! 1. Decode every record (an invalid one is a dead letter, never a failure).
//! 2. The driver's hydration hook checks the stamps of the held customers
//!    the batch touches or whose timers would fire during it ([`stamps`]):
//!    a customer whose records were applied in another execution
//!    environment since is forgotten; then it hydrates the customers not
//!    held ([`pulse_aws::hydrate::TableHydration`]: one Query chain each,
//!    several at once).
//!    The sink is told of every customer read afresh ([`Sink::forget`]):
//!    its alert state of them is read back before their next alert.
//! 3. The driver applies the records in order.
//! 4. It sends what they produced to the sink and, when the input ends,
//!    closes it: for the Lambda a **flush** (the environment's sink serves
//!    the next invocations), then a `DUE` item is written for each customer
//!    whose timer fired without a record of it in the batch, its next due
//!    time keyed by day in the due index ([`pulse_aws::due`]). The batch is
//!    acknowledged only once its effects are durable.
//! 5. The acknowledgement writes one item per customer the batch applied
//!    records to, holding both its stamp and its next due time, then makes
//!    the answer.
//!
//! The response's `batchItemFailures` is empty unless something failed:
//!
//! * reading the stamps or a Query of the hydration failed: nothing was
//!   applied; the batch fails from its first record and is redelivered;
//! * the sink, the due index or the stamps failed: the records were applied
//!   but their effects are not known to be durable (nothing was
//!   acknowledged). The batch fails from its first record, and the warm
//!   state is **dropped** (the engine would take the redelivered records for
//!   duplicates and emit nothing): the redelivery hydrates from the table
//!   again and emits the same vectors again;
//! * an invalid record could not be re-serialized for its dead letter: the
//!   batch given to the driver ends before it, so the batch fails from that
//!   record (its predecessors were applied, sent and flushed as usual; the
//!   records after it are neither hydrated nor applied).
//!
//! A record without a `SequenceNumber` is reported with no identifier, which
//! Lambda reads as the whole batch failing. An invocation that stops midway
//! (a panic, a timeout) never gives the processor back, and the next one
//! starts from an empty state instead of a half-applied one.
//!
//! # Silent customers: the scheduled run
//!
//! Stream time only moves when records arrive, and an environment's timers
//! cover only the customers it has seen. So an EventBridge schedule (hourly)
//! invokes the same function with a scheduled event ([`Invocation`]); the
//! handler ([`Handler::rescore_due`]) Queries the due index for the customers
//! whose next timer is due by the scheduled time — only those, never a scan —,
//! hydrates them into a fresh engine with their timers settled just before
//! their recorded due time, and runs the [`Driver`] over it with a source
//! whose one batch has no records and moves stream time to the scheduled
//! time: every timer due by then fires (vectors with trigger `timer`,
//! `as_of` = each due time, as in a replay), the vectors go to the sink, and
//! at its flush each due customer's next due time is written. The warm
//! stream state is not touched.
//!
//! # Source
//!
//! Each vector and dead letter of a batch carries the record's
//! `SequenceNumber`. The shard is not in a Lambda DynamoDB event
//! (`eventSourceARN` names the stream, not the shard), so `shard_id` is
//! `None`. Vectors of a scheduled run carry no source.

#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

mod adapter;
mod invocation;
pub mod settings;
pub mod sink;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::event::kinesis::KinesisEvent;
use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use clap::Parser;
use pulse_operators::{Engine, EngineConfig, TimerPolicy};
use pulse_schemas::capture::{decode_line, kinesis_line};
use pulse_schemas::lambda::decode_record;
use pulse_schemas::record::{Invalid, InvalidReason, StreamRecord};
use pulse_schemas::validate::FUTURE_TOLERANCE_MS;
use serde::Serialize;

pub use invocation::{Invocation, Unreadable, SCHEDULED_EVENT};
pub use pulse_aws::stamps::{self, Stamps};
pub use settings::{LambdaSettings, Switch};

use adapter::{Incoming, InvocationBatch, InvocationSink, ScheduledRun, Stamped, StampedHydration};
use pulse_aws::due::{Due, DueIndex};
use pulse_aws::hydrate::{self, HydrateRequest, HydrateStats, Hydrator, TableHydration};
use pulse_aws::output::args::OutputArgs;
use pulse_runtime::driver::{Checkpoints, Driver, DriverConfig};
use pulse_runtime::process::Processor;
use pulse_runtime::sink::Sink;

/// How the handler behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LambdaConfig {
    /// The engine's configuration (timer policy).
    pub engine: EngineConfig,
    /// Customers hydrated at once.
    pub hydrate_concurrency: usize,
    /// Hours before the scheduled time that a scheduled run still reads from
    /// the due index (a customer left in an older hour, after runs failed for
    /// longer than this, is rescored again at its next record).
    pub due_lookback_hours: i64,
}

impl Default for LambdaConfig {
    fn default() -> Self {
        LambdaConfig { engine: EngineConfig::default(), hydrate_concurrency: 16, due_lookback_hours: 7 * 24 }
    }
}

/// The function's settings, resolved from [`LambdaSettings`] (its
/// environment): what the handler and its outputs run with.
#[derive(Clone, Debug)]
pub struct LambdaEnv {
    /// `TABLE_NAME` (required): the event table, read for hydration.
    pub table: String,
    /// `DUE_INDEX` (default `due-index`; `none` turns the due index and the
    /// scheduled runs off).
    pub due_index: Option<String>,
    /// `HYDRATE_CONCURRENCY`, `DUE_LOOKBACK_HOURS`, `TIMER_INTERVAL_HOURS`.
    pub config: LambdaConfig,
    /// Scoring and its outputs, unless `SCORE=off`: `ENDPOINT_NAME` (default:
    /// the embedded model), `ON_ENDPOINT_DOWN` (`hold`, the default, or
    /// `fallback`), `PREDICTIONS_TABLE` (default `TABLE_NAME`),
    /// `ALERTS_TOPIC_ARN`, `DEAD_LETTER_QUEUE_URL`; metrics as Embedded
    /// Metric Format lines on stdout.
    pub output: Option<OutputArgs>,
    /// `LOG_VECTORS=1`: also write every vector and dead letter to stdout as
    /// JSON lines (always on when scoring is off).
    pub log_vectors: bool,
    /// `REASONS=off`: predictions and alerts without their reasons (the
    /// attribution is most of the scoring's CPU: README "Why a score moved").
    pub reasons: bool,
}

impl LambdaEnv {
    /// Reads the settings from the process environment (and the command
    /// line, where `--print-settings` and `--list-env` are).
    pub fn from_env() -> Result<LambdaEnv> {
        LambdaSettings::try_parse().map_err(anyhow::Error::from)?.resolve()
    }

    /// The settings as JSON: what `bootstrap --print-settings` prints.
    pub fn to_json(&self) -> serde_json::Value {
        let output = self.output.as_ref().map(|o| {
            serde_json::json!({
                "endpoint_name": o.endpoint_name,
                // As the variable takes it (`hold`, `fallback`), not the
                // enum's Rust name.
                "on_endpoint_down": clap::ValueEnum::to_possible_value(&o.on_endpoint_down)
                    .map(|v| v.get_name().to_owned()),
                "hold_timeout_s": o.hold_timeout_s,
                "reasons": self.reasons,
                "endpoint_timeout_ms": o.endpoint_timeout_ms,
                "endpoint_attempts": o.endpoint_attempts,
                "breaker_failures": o.breaker_failures,
                "breaker_cooldown_s": o.breaker_cooldown_s,
                "predictions_table": o.predictions_table,
                "alerts_topic_arn": o.alerts_topic_arn,
                "dead_letter_queue_url": o.dead_letter_queue_url,
                "metrics": format!("{:?}", o.metrics).to_lowercase(),
            })
        });
        let timers = match self.config.engine.timers {
            TimerPolicy::Every { interval_ms, max_silence_ms } => {
                serde_json::json!({ "interval_ms": interval_ms, "max_silence_ms": max_silence_ms })
            }
            TimerPolicy::Off => serde_json::Value::Null,
        };
        serde_json::json!({
            "table": self.table,
            "due_index": self.due_index,
            "hydrate_concurrency": self.config.hydrate_concurrency,
            "due_lookback_hours": self.config.due_lookback_hours,
            "timers": timers,
            "score": output,
            "log_vectors": self.log_vectors,
        })
    }
}

/// The event table as the handler uses it.
#[derive(Clone, Debug)]
pub struct TableAccess {
    hydrator: Hydrator,
    due: Option<DueIndex>,
    stamps: Stamps,
}

impl TableAccess {
    /// Reads `table` for hydration and keeps the customers' stamps in it;
    /// writes and reads the due index when named.
    pub fn new(client: aws_sdk_dynamodb::Client, table: &str, due_index: Option<&str>, concurrency: usize) -> Self {
        TableAccess {
            hydrator: Hydrator::new(client.clone(), table, concurrency),
            due: due_index.map(|index| DueIndex::new(client.clone(), table, index)),
            stamps: Stamps::new(client, table),
        }
    }
}

/// What one batch did, for the logs.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct BatchReport {
    /// Records in the batch.
    pub records: usize,
    /// Vectors sent to the sink.
    pub vectors: usize,
    /// Dead letters sent to the sink.
    pub dead_letters: usize,
    /// Customers held here whose records were applied in another
    /// environment since ([`stamps`]): forgotten, and hydrated again when
    /// the batch touches them.
    pub stale: usize,
    /// Customers read from the table, and what it took.
    pub hydrated: HydrateStats,
    /// Next due times written: with the stamps of the batch's customers (one
    /// item each), and alone for those whose timers fired in the batch.
    pub due_written: usize,
    /// Stamps written (customers whose records the batch applied).
    pub stamps_written: usize,
    /// Why the batch failed, if it did.
    pub failure: Option<String>,
}

/// The response to Lambda and what the batch did.
#[derive(Debug, Default)]
pub struct BatchOutcome {
    /// The partial batch response.
    pub response: DynamoDbEventResponse,
    /// What happened.
    pub report: BatchReport,
}

impl BatchOutcome {
    /// One log line per batch: its report, at error level when it failed
    /// (the failure, in the report, said once; a second line said it again).
    fn log(&self, what: &str) {
        match &self.report.failure {
            Some(_) => tracing::error!(
                report = ?self.report,
                failed_from = ?self.response.batch_item_failures.first().map(|f| &f.item_identifier),
                "{what} failed; Lambda redelivers it from the record named"
            ),
            None => tracing::info!(report = ?self.report, "{what} handled"),
        }
    }
}

/// How many rescored customers a scheduled run's report names.
pub const LISTED_CUSTOMERS: usize = 100;

/// What a scheduled run did.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RescoreReport {
    /// The scheduled time.
    pub now_ms: i64,
    /// Entries the due index listed as due by `now_ms` (the days read, and
    /// an earlier version's hour keys; see `pulse_aws::due`).
    pub listed: usize,
    /// Customers due by `now_ms`, rescored: the only ones read.
    pub rescored: usize,
    /// The first [`LISTED_CUSTOMERS`] of them, by id: the whole list went
    /// into the answer and the log line, past CloudWatch's 256-KB log event
    /// at ~23,000 customers and Lambda's 6-MB answer at ~550,000.
    pub customers: Vec<String>,
    /// Timer vectors sent.
    pub vectors: usize,
    /// What hydrating them took.
    pub hydrated: HydrateStats,
    /// Due items written (next due times).
    pub due_written: usize,
    /// Due items deleted (timers stopped, or no events left).
    pub due_deleted: usize,
}

/// The engine this environment keeps warm across invocations.
#[derive(Debug)]
struct Warm {
    /// The processor, taken out while an invocation runs the driver over it
    /// and given back when it ends; found missing, an earlier invocation
    /// stopped midway (a panic, a timeout) and the state is suspect.
    processor: Option<Processor>,
    /// The stamp this environment wrote for each customer it holds: the
    /// sequence number of the last record it applied to it ([`stamps`]).
    applied: HashMap<String, String>,
}

impl Warm {
    fn new(config: EngineConfig) -> Warm {
        Warm { processor: Some(Processor::new(Arc::new(Engine::new(config)))), applied: HashMap::new() }
    }

    /// The processor for an invocation: the warm one, or an empty one when
    /// an earlier invocation did not give it back.
    fn take(&mut self, config: EngineConfig) -> Processor {
        if self.processor.is_none() {
            tracing::warn!(
                "an earlier invocation stopped before it finished: its state is dropped, customers are hydrated again"
            );
            *self = Warm::new(config);
        }
        self.processor.take().expect("a processor")
    }

    /// Remembers the stamps a batch's acknowledgement wrote.
    fn stamped(&mut self, stamped: &Stamped) {
        for customer in &stamped.cleared {
            self.applied.remove(customer);
        }
        for (customer, seq) in &stamped.written {
            self.applied.insert(customer.clone(), seq.clone());
        }
    }
}

/// How the driver runs an invocation: one barrier (the sink's close, a
/// flush) after the batch, then the acknowledgement, then the answer; no
/// wait for more input.
fn one_batch() -> DriverConfig {
    DriverConfig { checkpoints: Checkpoints::AtEnd, empty_wait: Duration::ZERO, ..DriverConfig::default() }
}

/// The function: a warm engine across invocations, the table behind it.
#[derive(Debug)]
pub struct Handler {
    config: LambdaConfig,
    table: Option<TableAccess>,
    warm: tokio::sync::Mutex<Warm>,
}

impl Handler {
    /// A handler without the table: a cold start begins empty, nothing is
    /// hydrated and no due index is kept (tests; the engine alone).
    pub fn new(engine: EngineConfig) -> Handler {
        Handler::with_config(LambdaConfig { engine, ..LambdaConfig::default() }, None)
    }

    /// A handler with `config`, reading `table` when given.
    pub fn with_config(config: LambdaConfig, table: Option<TableAccess>) -> Handler {
        Handler { config, table, warm: tokio::sync::Mutex::new(Warm::new(config.engine)) }
    }

    /// The handler the bootstrap runs, from the environment's settings.
    pub fn from_env(env: &LambdaEnv, client: aws_sdk_dynamodb::Client) -> Handler {
        let table = TableAccess::new(client, &env.table, env.due_index.as_deref(), env.config.hydrate_concurrency);
        Handler::with_config(env.config, Some(table))
    }

    /// Handles one invocation's payload ([`Invocation::from_payload`]): a
    /// batch answers with its partial batch response, a scheduled run with
    /// its report (or an error, so that EventBridge retries it).
    pub async fn invoke<S: Sink>(&self, payload: serde_json::Value, sink: &mut S) -> Result<serde_json::Value> {
        match Invocation::from_payload(payload)? {
            Invocation::KinesisBatch(event) => {
                let outcome = self.handle_kinesis_batch(&event, sink).await;
                outcome.log("Kinesis batch");
                Ok(serde_json::to_value(outcome.response)?)
            }
            Invocation::Batch(records) => {
                let records: Vec<Result<&EventRecord, &Unreadable>> = records.iter().map(Result::as_ref).collect();
                let outcome = self.handle_records(&records, sink).await;
                outcome.log("batch");
                Ok(serde_json::to_value(outcome.response)?)
            }
            Invocation::Rescore { now_ms } => {
                let report = self.rescore_due(now_ms, sink).await?;
                tracing::info!(?report, "due customers rescored");
                Ok(serde_json::to_value(report)?)
            }
        }
    }

    /// Applies one batch of the DynamoDB Streams event source mapping, in
    /// order (see the module doc for the steps and the failures).
    pub async fn handle_batch<S: Sink>(&self, event: &Event, sink: &mut S) -> BatchOutcome {
        let records: Vec<Result<&EventRecord, &Unreadable>> = event.records.iter().map(Ok).collect();
        self.handle_records(&records, sink).await
    }

    /// [`Handler::handle_batch`] on records read one by one: a record that
    /// is not a DynamoDB Streams record becomes a dead letter
    /// (`malformed_record`, its JSON kept) like any invalid record.
    async fn handle_records<S: Sink>(
        &self,
        records: &[Result<&EventRecord, &Unreadable>],
        sink: &mut S,
    ) -> BatchOutcome {
        let incoming = records
            .iter()
            .map(|record| match record {
                Ok(record) => {
                    let decoded = decode_record(record).map(StreamRecord::into_owned);
                    // The dead letter keeps the record as Lambda delivered it.
                    let raw = match &decoded {
                        Ok(_) => Some(Vec::new()),
                        Err(_) => serde_json::to_vec(record)
                            .map_err(|e| tracing::error!(error = %e, "an invalid record cannot be serialized"))
                            .ok(),
                    };
                    Incoming { sequence_number: record.change.sequence_number.clone(), decoded, raw }
                }
                Err(unreadable) => Incoming {
                    sequence_number: unreadable.sequence_number.clone(),
                    decoded: Err(Invalid::from(InvalidReason::Malformed(format!(
                        "not a DynamoDB Streams record: {}",
                        unreadable.error
                    )))),
                    raw: Some(unreadable.json.clone()),
                },
            })
            .collect();
        self.handle_incoming(incoming, sink).await
    }

    /// Applies one batch of a Kinesis event source mapping (Kinesis Data
    /// Streams for DynamoDB): each record's data is the table's change as
    /// JSON, made a capture line ([`kinesis_line`]: its creation time in
    /// seconds, as DynamoDB Streams gives it) and decoded as `pulse replay`
    /// decodes it. Failures name Kinesis sequence numbers.
    pub async fn handle_kinesis_batch<S: Sink>(&self, event: &KinesisEvent, sink: &mut S) -> BatchOutcome {
        let incoming = event
            .records
            .iter()
            .map(|record| {
                let line = kinesis_line(&record.kinesis.data.0);
                let decoded = decode_line(&line).map(StreamRecord::into_owned);
                let raw = Some(if decoded.is_ok() { Vec::new() } else { line });
                let seq = Some(record.kinesis.sequence_number.clone()).filter(|s| !s.is_empty());
                Incoming { sequence_number: seq, decoded, raw }
            })
            .collect();
        self.handle_incoming(incoming, sink).await
    }

    /// One batch on the [`Driver`]: the steps and failures of the module doc.
    async fn handle_incoming<S: Sink>(&self, incoming: Vec<Incoming>, sink: &mut S) -> BatchOutcome {
        let mut outcome = BatchOutcome {
            report: BatchReport { records: incoming.len(), ..BatchReport::default() },
            ..Default::default()
        };
        if incoming.is_empty() {
            return outcome;
        }
        let sequence_numbers: Vec<Option<String>> = incoming.iter().map(|i| i.sequence_number.clone()).collect();
        let mut warm = self.warm.lock().await;
        let processor = warm.take(self.config.engine);
        let engine = processor.engine().clone();
        let table = self.table.as_ref();
        let with_due = table.is_some_and(|t| t.due.is_some());
        let mut source = InvocationBatch::new(incoming, table.map(|t| &t.stamps), with_due);
        let hydration = StampedHydration::new(
            table.map(|t| (&t.stamps, TableHydration::new(t.hydrator.clone()))),
            &mut warm.applied,
        );
        let mut out = InvocationSink::new(sink, table.and_then(|t| t.due.as_ref()).map(|due| (due, engine)))
            .leaving(source.customers())
            .forgetting(hydration.forgotten());
        let mut driver =
            Driver::new(processor, one_batch()).expect("a valid driver configuration").with_hydration(hydration);
        let run = driver.run(&mut source, &mut out, std::future::pending()).await;
        let hydration = driver.hydration();
        (outcome.report.stale, outcome.report.hydrated) = (hydration.stale, hydration.stats());
        let hydration_failed = hydration.failed;
        let processor = driver.into_processor();
        outcome.report.vectors = out.vectors;
        outcome.report.dead_letters = out.dead_letters;
        outcome.report.due_written = out.due_written.len();
        let first_unacknowledged = source.first_unacknowledged();
        let stamped = source.into_stamped();
        if let Err(e) = run {
            if hydration_failed {
                // Nothing of the batch was applied: the warm state stands.
                warm.processor = Some(processor);
            } else {
                // Applied, but the effects are not known to be durable: the
                // redelivery must emit them again, from the table.
                *warm = Warm::new(self.config.engine);
            }
            return fail(outcome, sequence_numbers[0].clone(), e);
        }
        warm.processor = Some(processor);
        warm.stamped(&stamped);
        outcome.report.stamps_written = stamped.written.len();
        outcome.report.due_written += stamped.due;
        // The answer: the records after the acknowledged one are redelivered
        // (those from an invalid record that could not be kept, if any).
        if let Some(sequence_number) = sequence_numbers.get(first_unacknowledged) {
            outcome.report.failure = Some("an invalid record could not be serialized for its dead letter".into());
            outcome.response.batch_item_failures.push(failure(sequence_number.clone()));
        }
        outcome
    }

    /// The scheduled run at `now_ms`: rescores the customers whose next timer
    /// is due by then, and only those (see the module doc).
    pub async fn rescore_due<S: Sink>(&self, now_ms: i64, sink: &mut S) -> Result<RescoreReport> {
        let table = self.table.as_ref().context("rescoring due customers needs the event table (TABLE_NAME)")?;
        let index = table.due.as_ref().context("rescoring due customers needs the due index (DUE_INDEX is none)")?;
        let listed = index.due(now_ms, self.config.due_lookback_hours).await?;
        let mut report = RescoreReport { now_ms, listed: listed.len(), ..RescoreReport::default() };
        let mut ready: Vec<Due> = listed.into_iter().filter(|d| d.next_due <= now_ms).collect();
        ready.sort_by(|a, b| (&a.customer_id, a.next_due).cmp(&(&b.customer_id, b.next_due)));
        ready.dedup_by(|later, earlier| later.customer_id == earlier.customer_id);

        let requests = ready
            .iter()
            .map(|d| HydrateRequest {
                customer_id: d.customer_id.clone(),
                upper_ts: now_ms.saturating_add(FUTURE_TOLERANCE_MS as i64),
                ..HydrateRequest::default()
            })
            .collect();
        let histories = table.hydrator.load_all(requests).await.context("hydrating the due customers")?;
        let engine = Arc::new(Engine::new(self.config.engine));
        for (history, due) in histories.iter().zip(&ready) {
            hydrate::apply(&engine, history, due.next_due - 1);
            report.hydrated.add(&history.stats);
        }
        // The customers were read afresh from the table: what the
        // environment's sink keeps of them may be stale (another environment
        // scored them since), so their alert state is read back too.
        sink.forget(ready.iter().map(|d| d.customer_id.clone()).collect())
            .await
            .context("forgetting the due customers' alert state")?;
        // Every due customer's item is rewritten, with a vector or not.
        let mut out = InvocationSink::new(sink, Some((index, engine.clone())))
            .with_due(ready.iter().map(|d| d.customer_id.clone()));
        let mut driver = Driver::new(Processor::new(engine), one_batch())?;
        driver
            .run(ScheduledRun(Some(now_ms)), &mut out, std::future::pending())
            .await
            .context("sending the timer vectors and writing the due index")?;
        report.vectors = out.vectors;
        report.due_deleted = out.due_written.iter().filter(|(_, d)| d.is_none()).count();
        report.due_written = out.due_written.len() - report.due_deleted;
        report.rescored = ready.len();
        report.customers = ready.into_iter().take(LISTED_CUSTOMERS).map(|d| d.customer_id).collect();
        Ok(report)
    }
}

/// The batch fails from its first record: Lambda redelivers all of it.
fn fail(mut outcome: BatchOutcome, first: Option<String>, error: anyhow::Error) -> BatchOutcome {
    outcome.report.failure = Some(format!("{error:#}"));
    outcome.response.batch_item_failures = vec![failure(first)];
    outcome
}

/// A failed record, by its sequence number (DynamoDB Streams' or Kinesis':
/// both mappings read the same `{"batchItemFailures": [{"itemIdentifier"}]}`);
/// none means the whole batch.
fn failure(sequence_number: Option<String>) -> DynamoDbBatchItemFailure {
    let mut failure = DynamoDbBatchItemFailure::default();
    failure.item_identifier = sequence_number;
    failure
}
