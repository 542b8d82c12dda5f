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
use crate::synth::{generate, SynthConfig};

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

/// One finished batch: its cost, its events `(customer_id, ts)`, its item count.
type Written = (WriteStats, Vec<(String, i64)>, usize);

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
        if let Some(item) = item_of_line(line)? {
            items.push(item);
            if items.len() as u64 >= load.max_events {
                break;
            }
        }
    }
    drop(capture);

    let mut report = WriteReport::default();
    let mut pacer = Pacer::new(load.rate)?;
    let mut in_flight: JoinSet<Result<Written>> = JoinSet::new();
    let started = Instant::now();
    let deadline = started + load.duration;
    let mut chunks = items.chunks(BATCH_ITEMS);
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
        pacer.acquire(chunk.len() as u64).await;
        if Instant::now() >= deadline {
            break;
        }
        let batch: Vec<Item> = chunk.to_vec();
        let events: Vec<(String, i64)> = batch.iter().filter_map(event_key).collect();
        let writer = writer.clone();
        in_flight.spawn(async move {
            let n = batch.len();
            let stats = writer.write(batch).await?;
            Ok((stats, events, n))
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
    fn absorb(&mut self, (stats, events, items): Written, tracker: &LatencyTracker) {
        let at = Instant::now();
        for (customer, ts) in &events {
            tracker.written(customer, *ts, at);
        }
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
