//! The live load test's producer side: generated events into the table at a
//! target rate, each write timed for the end-to-end latency.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use aws_sdk_dynamodb::types::AttributeValue;
use serde::Serialize;
use tokio::task::JoinSet;

use super::latency::LatencyTracker;
use super::writer::{item_of_line, Item, Pacer, TableWriter, WriteStats, BATCH_ITEMS};
use crate::{generate, SynthConfig};

/// The producer's target pace of `BatchWriteItem` calls (each as full as the
/// rate allows, at most 25 items).
const WRITE_CALLS_PER_SECOND: f64 = 10.0;

/// How much to write, and how fast.
#[derive(Clone, Debug)]
pub struct WriteLoad {
    /// The synthetic marketplace; its history is written oldest first.
    pub synth: SynthConfig,
    /// Target events per second.
    pub rate: f64,
    /// Stop writing after this long...
    pub duration: Duration,
    /// ...or after this many events, whichever comes first.
    pub max_events: u64,
    /// `BatchWriteItem` calls in flight at once.
    pub concurrency: usize,
}

/// One finished batch: its cost, its events `(customer_id, ts)`, its item
/// count, and when its write completed.
type Written = (WriteStats, Vec<(String, i64)>, usize, Instant);

/// What the producer did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct WriteReport {
    /// Items written (events and the generator's other items).
    pub items_written: u64,
    /// Of which events (`entity_type = event`), the ones latency is measured for.
    pub events_written: u64,
    /// `BatchWriteItem` calls.
    pub write_calls: u64,
    /// Items sent again after the service returned them unprocessed.
    pub retried_items: u64,
    /// Seconds from the first write to the last.
    pub seconds: f64,
    /// `items_written / seconds`.
    pub items_per_second: f64,
    /// Distinct customers with an event written.
    pub customers: u64,
    #[serde(skip)]
    seen: std::collections::HashSet<String>,
}

/// Generates the marketplace, then writes its items in stream order at the
/// target rate, reporting each event's write to `tracker` and the items
/// written so far to `progress`.
pub async fn write_events(
    load: &WriteLoad,
    writer: &TableWriter,
    tracker: &Arc<LatencyTracker>,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<WriteReport> {
    let mut capture = Vec::new();
    generate(&load.synth, &mut capture, &mut |_| {}).context("cannot generate the marketplace")?;
    let mut items = Vec::new();
    for line in capture.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        if items.len() as u64 >= load.max_events {
            break;
        }
        if let Some(item) = item_of_line(line)? {
            items.push(item);
        }
    }
    drop(capture);

    let mut report = WriteReport::default();
    let mut pacer = Pacer::new(load.rate)?;
    let mut in_flight: JoinSet<Result<Written>> = JoinSet::new();
    let started = Instant::now();
    let deadline = started + load.duration;
    // About ten write calls a second, as an application writes events as
    // they happen: full 25-item batches at a low rate would arrive in bursts
    // seconds apart, and the latency measured would be the burst's queue.
    let per_call = ((load.rate / WRITE_CALLS_PER_SECOND).ceil() as usize).clamp(1, BATCH_ITEMS);
    let mut chunks = items.chunks(per_call);
    loop {
        while in_flight.len() >= load.concurrency.max(1) {
            let done = in_flight.join_next().await.context("a writer task vanished")?;
            report.absorb(done.context("a writer task panicked")??, tracker);
            progress(report.items_written);
        }
        if Instant::now() >= deadline {
            break;
        }
        let Some(chunk) = chunks.next() else { break };
        // A write due after the deadline is not waited for: at a low rate
        // that wait ran the test past --duration-s (forever at 1e-9/s).
        if !pacer.acquire_before(chunk.len() as u64, deadline.into()).await {
            break;
        }
        if Instant::now() >= deadline {
            break;
        }
        let batch: Vec<Item> = chunk.to_vec();
        let events: Vec<(String, i64)> = batch.iter().filter_map(event_key).collect();
        let writer = writer.clone();
        in_flight.spawn(async move {
            let n = batch.len();
            let stats = writer.write(batch).await?;
            Ok((stats, events, n, Instant::now()))
        });
    }
    while let Some(done) = in_flight.join_next().await {
        report.absorb(done.context("a writer task panicked")??, tracker);
        progress(report.items_written);
    }
    report.seconds = started.elapsed().as_secs_f64();
    report.items_per_second = report.items_written as f64 / report.seconds.max(1e-9);
    Ok(report)
}

impl WriteReport {
    fn absorb(&mut self, (stats, events, items, at): Written, tracker: &LatencyTracker) {
        for (customer, ts) in &events {
            tracker.written(customer, *ts, at);
            if !self.seen.contains(customer) {
                self.seen.insert(customer.clone());
            }
        }
        self.customers = self.seen.len() as u64;
        self.items_written += items as u64;
        self.events_written += events.len() as u64;
        self.write_calls += stats.calls;
        self.retried_items += stats.retried_items;
    }
}

/// `(customer_id, ts)` of an event item; `None` for other items.
fn event_key(item: &Item) -> Option<(String, i64)> {
    let is_event = matches!(item.get("entity_type"), Some(AttributeValue::S(t)) if t == "event");
    match (is_event, item.get("customer_id"), item.get("ts")) {
        (true, Some(AttributeValue::S(c)), Some(AttributeValue::N(ts))) => Some((c.clone(), ts.parse().ok()?)),
        _ => None,
    }
}

/// The whole live load test: the table, the consumer, the producer.
#[derive(Clone, Debug)]
pub struct LiveLoad {
    /// What to write.
    pub write: WriteLoad,
    /// The events table (created with its stream when missing). Use a new
    /// one: the consumer reads its stream from the oldest record.
    pub table: String,
    /// After the last write, how long to wait for the predictions still due.
    pub drain_timeout: Duration,
    /// The engine's timers (the load test's events are history, so daily
    /// timers would fire their catch-up vectors all at once: off by default).
    pub engine: pulse_operators::EngineConfig,
}

/// What the live load test measured.
#[derive(Clone, Debug, Serialize)]
pub struct LiveReport {
    /// The mode, `"live"`.
    pub mode: &'static str,
    /// The table written and read.
    pub table: String,
    /// Distinct customers written.
    pub customers: u64,
    /// The producer.
    pub write: WriteReport,
    /// The consumer: records read from the stream.
    pub records_consumed: u64,
    /// Feature vectors emitted.
    pub vectors: u64,
    /// Records consumed per second, from the first write to the end of the run.
    pub records_per_second: f64,
    /// Event write → prediction write.
    pub latency: super::latency::LatencySummary,
    /// Scoring and publishing.
    pub scoring: pulse_aws::output::sink::SinkStats,
    /// Model calls per event written.
    pub calls_per_event: f64,
    /// Model rows per event written.
    pub rows_per_event: f64,
    /// Seconds from the first write to the end of the run.
    pub seconds: f64,
    /// What a five-minute full rescan would have cost over the same seconds.
    pub rescan: super::RescanCost,
    /// `rescan.endpoint_calls / scoring.model_calls`.
    pub rescan_calls_ratio: Option<f64>,
}

/// Runs the consumer (reading `load.table`'s stream into `sink`, which must
/// report stored predictions to `tracker`) while the producer writes, then
/// waits for the last predictions and stops the consumer.
pub async fn run_live(
    sdk: &aws_config::SdkConfig,
    load: &LiveLoad,
    sink: pulse_aws::output::sink::ScoringSink,
    tracker: Arc<LatencyTracker>,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<LiveReport> {
    use pulse_aws::live::api::{max_records_per_call, StreamApi};
    use pulse_aws::live::{Clock, Consumer, LiveConfig, StartPosition};

    let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
    pulse_aws::setup::ensure_events_table(&dynamodb, &load.table).await?;
    let api = StreamApi::dynamodb_table(aws_sdk_dynamodbstreams::Client::new(sdk), &load.table).await?;
    let mut config = LiveConfig {
        start: StartPosition::TrimHorizon,
        engine: Some(load.engine),
        clock: Clock::Stream,
        ..LiveConfig::default()
    };
    config.reader.limit = max_records_per_call(&api);
    config.reader.idle_min = Duration::from_millis(50);
    config.reader.idle_max = Duration::from_millis(250);
    let consumer = Consumer::prepare(config, api, None).await?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let started = Instant::now();
    let consuming = tokio::spawn(async move {
        let mut sink = sink;
        let summary = consumer
            .run(&mut sink, async {
                let _ = stop_rx.await;
            })
            .await?;
        Ok::<_, anyhow::Error>((summary, sink.stats()))
    });

    let writer = TableWriter::new(dynamodb, &load.table);
    let written = write_events(&load.write, &writer, &tracker, progress).await;
    if written.is_ok() {
        let deadline = Instant::now() + load.drain_timeout;
        while tracker.pending() > 0 && Instant::now() < deadline && !consuming.is_finished() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let _ = stop_tx.send(());
    let (summary, scoring) = consuming.await.context("the consumer panicked")??;
    let write = written?;
    let seconds = started.elapsed().as_secs_f64();

    let customers = write.customers;
    let events = write.events_written.max(1) as f64;
    let rescan = super::RescanCost::over(seconds, customers, write.items_written + customers);
    Ok(LiveReport {
        mode: "live",
        table: load.table.clone(),
        customers,
        records_consumed: summary.records_this_run,
        vectors: summary.totals.vectors_event + summary.totals.vectors_timer,
        records_per_second: summary.records_this_run as f64 / seconds.max(1e-9),
        latency: tracker.summary(),
        calls_per_event: scoring.model_calls as f64 / events,
        rows_per_event: scoring.model_rows as f64 / events,
        rescan_calls_ratio: (scoring.model_calls > 0).then(|| rescan.endpoint_calls / scoring.model_calls as f64),
        scoring,
        seconds,
        rescan,
        write,
    })
}
