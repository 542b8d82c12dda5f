//! The Lambda function of the DynamoDB Streams event source mapping: one batch
//! of records in, vectors and dead letters to a [`Sink`], and a partial batch
//! response; and the scheduled run that rescores silent customers.
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
//! 1. Decode every record (an invalid one is a dead letter, never a failure).
//! 2. Check the stamps of the held customers the batch touches or whose
//!    timers would fire during it ([`stamps`]): a customer whose records were
//!    applied in another execution environment since is forgotten.
//! 3. Hydrate the customers not held (one Query chain each, several at once).
//! 4. Apply the records in order.
//! 5. Send what they produced to the sink and **flush** it: the batch is
//!    acknowledged only once its effects are durable.
//! 6. Write the next due time of every customer that got a vector to the due
//!    index ([`pulse_aws::due`]), and the stamp of every customer the batch
//!    applied records to.
//!
//! The response's `batchItemFailures` is empty unless something failed:
//!
//! * reading the stamps or a Query of the hydration failed: nothing was
//!   applied; the batch fails from its first record and is redelivered;
//! * the sink, the due index or the stamps failed: the records were applied
//!   but their effects are not known to be durable. The batch fails from its first
//!   record, and the warm state is **dropped** (the engine would take the
//!   redelivered records for duplicates and emit nothing): the redelivery
//!   hydrates from the table again and emits the same vectors again;
//! * an invalid record could not be re-serialized for its dead letter: the
//!   batch fails from that record (its predecessors were applied and are sent
//!   and flushed as usual).
//!
//! A record without a `SequenceNumber` is reported with no identifier, which
//! Lambda reads as the whole batch failing. An invocation that stops midway
//! (a panic, a timeout) leaves a mark, and the next one starts from an empty
//! state instead of a half-applied one.
//!
//! # Silent customers: the scheduled run
//!
//! Stream time only moves when records arrive, and an environment's timers
//! cover only the customers it has seen. So an EventBridge schedule (hourly)
//! invokes the same function with a scheduled event ([`Invocation`]); the
//! handler ([`Handler::rescore_due`]) Queries the due index for the customers
//! whose next timer is due by the scheduled time — only those, never a scan —,
//! hydrates them into a fresh engine with their timers settled just before
//! their recorded due time, fires every timer due by the scheduled time
//! (vectors with trigger `timer`, `as_of` = each due time, as in a replay),
//! sends them to the sink, and writes each customer's next due time. The warm
//! stream state is not touched.
//!
//! # Source
//!
//! Each vector and dead letter of a batch carries the record's
//! `SequenceNumber`. The shard is not in a Lambda DynamoDB event
//! (`eventSourceARN` names the stream, not the shard), so `shard_id` is
//! `None`. Vectors of a scheduled run carry no source.

#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

mod invocation;
pub mod settings;
pub mod sink;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

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
use pulse_schemas::Source;
use serde::Serialize;

pub use invocation::{Invocation, Unreadable, SCHEDULED_EVENT};
pub use pulse_aws::stamps::{self, Stamps};
pub use settings::{LambdaSettings, Switch};

use pulse_aws::due::{Due, DueIndex};
use pulse_aws::hydrate::{self, HydrateRequest, HydrateStats, Hydrator};
use pulse_aws::output::args::OutputArgs;
use pulse_runtime::process::{Processor, Produced};
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
                "on_endpoint_down": o.on_endpoint_down,
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
    /// Due items written.
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

/// What a scheduled run did.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RescoreReport {
    /// The scheduled time.
    pub now_ms: i64,
    /// Entries the due index listed in the hours read.
    pub listed: usize,
    /// Customers due by `now_ms`, rescored: the only ones read.
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

/// One record of a batch, whichever stream delivered it.
struct Incoming<'a> {
    /// Its sequence number in the shard, for its stamp, its source and a
    /// failure report.
    sequence_number: Option<String>,
    decoded: Result<StreamRecord<'a>, Invalid>,
    /// The bytes of a dead letter (empty for a valid record); `None` when an
    /// invalid record could not be serialized (the batch stops there).
    raw: Option<Vec<u8>>,
}

#[derive(Debug)]
struct Warm {
    processor: Processor,
    /// Set while a batch is being applied; found set, the state is suspect.
    dirty: bool,
    /// The stamp this environment wrote for each customer it holds: the
    /// sequence number of the last record it applied to it ([`stamps`]).
    applied: HashMap<String, String>,
}

impl Warm {
    fn new(config: EngineConfig) -> Warm {
        Warm { processor: Processor::new(Arc::new(Engine::new(config))), dirty: false, applied: HashMap::new() }
    }

    /// Forgets the customers held here whose stored stamp is not the one this
    /// environment wrote (records were applied elsewhere since): those the
    /// batch touches and those whose timers would fire during it. Returns
    /// how many.
    async fn forget_stale<'r>(
        &mut self,
        stamps: &Stamps,
        records: impl Iterator<Item = &'r StreamRecord<'r>> + Clone,
    ) -> Result<usize> {
        let engine = self.processor.engine().clone();
        let records = || records.clone();
        let mut held: Vec<String> = records()
            .filter_map(|r| r.change.customer_id())
            .filter(|c| engine.customer_clock(c).is_some())
            .map(str::to_owned)
            .collect();
        if let Some(until) = records().filter_map(|r| r.created_ms).map(|t| t.floor() as i64).max() {
            held.extend(engine.due_by(until).into_iter().map(|c| c.as_str().to_owned()));
        }
        held.sort_unstable();
        held.dedup();
        if held.is_empty() {
            return Ok(0);
        }
        let stored = stamps.read(&held).await?;
        let mut stale = 0;
        for customer in held {
            match (stored.get(&customer), self.applied.get(&customer)) {
                (Some(theirs), Some(ours)) if theirs == ours => {}
                _ => {
                    engine.forget(&customer);
                    self.applied.remove(&customer);
                    stale += 1;
                }
            }
        }
        Ok(stale)
    }

    /// Remembers the stamps of the customers a batch applied records to (the
    /// sequence number of each one's last record) and returns those to
    /// store. A customer not held afterwards has none; nor has one whose
    /// last record carried no sequence number (its next batch reads it
    /// again).
    fn stamps_after(&mut self, last_applied: HashMap<String, Option<String>>) -> Vec<(String, String)> {
        let engine = self.processor.engine().clone();
        let mut stamps = Vec::new();
        for (customer, seq) in last_applied {
            match seq.filter(|_| engine.customer_clock(&customer).is_some()) {
                Some(seq) => {
                    self.applied.insert(customer.clone(), seq.clone());
                    stamps.push((customer, seq));
                }
                None => {
                    self.applied.remove(&customer);
                }
            }
        }
        stamps.sort_unstable();
        stamps
    }
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
                tracing::info!(report = ?outcome.report, "Kinesis batch handled");
                Ok(serde_json::to_value(outcome.response)?)
            }
            Invocation::Batch(records) => {
                let records: Vec<Result<&EventRecord, &Unreadable>> = records.iter().map(Result::as_ref).collect();
                let outcome = self.handle_records(&records, sink).await;
                tracing::info!(report = ?outcome.report, "batch handled");
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
                    let decoded = decode_record(record);
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
        let lines: Vec<Vec<u8>> = event.records.iter().map(|r| kinesis_line(&r.kinesis.data.0)).collect();
        let incoming = event
            .records
            .iter()
            .zip(&lines)
            .map(|(record, line)| {
                let decoded = decode_line(line);
                let raw = Some(if decoded.is_ok() { Vec::new() } else { line.clone() });
                let seq = Some(record.kinesis.sequence_number.clone()).filter(|s| !s.is_empty());
                Incoming { sequence_number: seq, decoded, raw }
            })
            .collect();
        self.handle_incoming(incoming, sink).await
    }

    async fn handle_incoming<S: Sink>(&self, incoming: Vec<Incoming<'_>>, sink: &mut S) -> BatchOutcome {
        let mut outcome = BatchOutcome {
            report: BatchReport { records: incoming.len(), ..BatchReport::default() },
            ..Default::default()
        };
        let Some(first) = incoming.first().map(|i| i.sequence_number.clone()) else { return outcome };
        let mut warm = self.warm.lock().await;
        if warm.dirty {
            tracing::warn!(
                "an earlier invocation stopped before it finished: its state is dropped, customers are hydrated again"
            );
            *warm = Warm::new(self.config.engine);
        }
        let decoded: Vec<&Result<StreamRecord<'_>, Invalid>> = incoming.iter().map(|i| &i.decoded).collect();
        let valid = || decoded.iter().filter_map(|d| d.as_ref().ok());

        if let Some(table) = &self.table {
            match warm.forget_stale(&table.stamps, valid()).await {
                Ok(stale) => outcome.report.stale = stale,
                Err(e) => return fail(outcome, first, e.context("reading the stamps of the batch's customers")),
            }
            if outcome.report.stale > 0 {
                tracing::info!(
                    customers = outcome.report.stale,
                    "records were applied in another environment since: those customers are read again"
                );
            }
            let engine = warm.processor.engine().clone();
            let requests = hydrate::requests_for(valid(), &engine);
            if !requests.is_empty() {
                let histories = match table.hydrator.load_all(requests).await {
                    Ok(histories) => histories,
                    Err(e) => return fail(outcome, first, e.context("hydrating the batch's customers")),
                };
                let fired_through = hydrate::timers_fired_through(warm.processor.stream_time(), valid());
                outcome.report.hydrated = hydrate::apply_all(&engine, &histories, fired_through);
            }
        }

        warm.dirty = true;
        let mut produced = Produced::default();
        let mut stopped_at = None;
        // Each customer's last applied record, for its stamp.
        let mut last_applied: HashMap<String, Option<String>> = HashMap::new();
        for record in incoming {
            let source = Source { sequence_number: record.sequence_number.clone(), ..Source::default() };
            match (record.decoded, record.raw) {
                (Ok(decoded), _) => {
                    if let Some(customer) = decoded.change.customer_id() {
                        last_applied.insert(customer.to_owned(), record.sequence_number.clone());
                    }
                    warm.processor.process(Ok(decoded), source, &[], &mut produced)
                }
                (Err(invalid), Some(raw)) => warm.processor.process(Err(invalid), source, &raw, &mut produced),
                (Err(_), None) => {
                    stopped_at = Some(record.sequence_number);
                    break;
                }
            }
        }
        outcome.report.vectors = produced.vectors.len();
        outcome.report.dead_letters = produced.dead.len();
        let mut seen = HashSet::new();
        let customers: Vec<String> = produced
            .vectors
            .iter()
            .filter(|v| seen.insert(v.customer_id.clone()))
            .map(|v| v.customer_id.as_str().to_owned())
            .collect();

        if let Err(e) = send_and_flush(sink, produced).await {
            *warm = Warm::new(self.config.engine);
            return fail(outcome, first, e.context("sending the batch's output"));
        }
        if let Some(due) = self.table.as_ref().and_then(|t| t.due.as_ref()) {
            let engine = warm.processor.engine();
            let updates: Vec<_> = customers.into_iter().map(|c| (c.clone(), engine.next_due(&c))).collect();
            if let Err(e) = due.record(&updates).await {
                *warm = Warm::new(self.config.engine);
                return fail(outcome, first, e.context("writing the due index"));
            }
            outcome.report.due_written = updates.len();
        }
        if let Some(table) = &self.table {
            let stamps = warm.stamps_after(last_applied);
            if let Err(e) = table.stamps.write(&stamps).await {
                *warm = Warm::new(self.config.engine);
                return fail(outcome, first, e.context("writing the stamps"));
            }
            outcome.report.stamps_written = stamps.len();
        }
        warm.dirty = false;
        if let Some(sequence_number) = stopped_at {
            outcome.report.failure = Some("an invalid record could not be serialized for its dead letter".into());
            outcome.response.batch_item_failures.push(failure(sequence_number));
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
        let mut produced = Produced::default();
        Processor::new(engine.clone()).advance_to(now_ms, &Source::default(), &mut produced);
        report.vectors = produced.vectors.len();
        send_and_flush(sink, produced).await.context("sending the timer vectors")?;

        let updates: Vec<_> = ready.iter().map(|d| (d.customer_id.clone(), engine.next_due(&d.customer_id))).collect();
        index.record(&updates).await?;
        report.due_deleted = updates.iter().filter(|(_, d)| d.is_none()).count();
        report.due_written = updates.len() - report.due_deleted;
        report.customers = ready.into_iter().map(|d| d.customer_id).collect();
        Ok(report)
    }
}

async fn send_and_flush<S: Sink>(sink: &mut S, produced: Produced) -> Result<()> {
    sink.send(produced).await?;
    sink.flush().await
}

/// The batch fails from its first record: Lambda redelivers all of it.
fn fail(mut outcome: BatchOutcome, first: Option<String>, error: anyhow::Error) -> BatchOutcome {
    tracing::error!(error = format!("{error:#}"), "batch failed; it will be redelivered from its first record");
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
