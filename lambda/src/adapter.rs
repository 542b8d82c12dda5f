//! The Lambda on the one [`Driver`](pulse_runtime::driver::Driver): an
//! invocation is a [`Source`] of one batch, a hydration hook that checks the
//! stamps before it reads the table, and a sink wrapper that keeps the due
//! index. The loop itself (decode, hydrate, apply, send, flush, acknowledge)
//! is the driver's, as for a replay and the live consumer.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use anyhow::{Context, Result};
use pulse_aws::due::DueIndex;
use pulse_aws::hydrate::TableHydration;
use pulse_aws::stamps::Stamps;
use pulse_operators::Engine;
use pulse_runtime::driver::Hydrate;
use pulse_runtime::process::{Processor, Produced};
use pulse_runtime::sink::Sink;
use pulse_runtime::source::{Batch, Body, Durable, Record, Source, SourceError};
use pulse_schemas::record::{Invalid, StreamRecord};

/// One record of an invocation, whichever stream delivered it.
#[derive(Debug)]
pub(crate) struct Incoming {
    /// Its sequence number in the shard, for its stamp, its source and a
    /// failure report.
    pub(crate) sequence_number: Option<String>,
    /// The record, or why it is a dead letter.
    pub(crate) decoded: Result<StreamRecord<'static>, Invalid>,
    /// The bytes of a dead letter (empty for a valid record); `None` when an
    /// invalid record could not be serialized (the batch stops there).
    pub(crate) raw: Option<Vec<u8>>,
}

/// The stamps an acknowledgement wrote ([`pulse_aws::stamps`]): what the
/// environment now holds for each customer the batch applied records to.
#[derive(Debug, Default)]
pub(crate) struct Stamped {
    /// Stamps written: the customer and the sequence number of its last
    /// record.
    pub(crate) written: Vec<(String, String)>,
    /// Customers the batch applied records to that have no stamp here now
    /// (not held after the batch, or their last record had no sequence
    /// number: their next batch reads them again).
    pub(crate) cleared: Vec<String>,
    /// How many of the items written carry a next due time.
    pub(crate) due: usize,
}

/// An invocation's batch as a [`Source`]: its records (up to the first one
/// that cannot be kept for a dead letter), once, then the end. The position
/// of a record is its index in the invocation.
///
/// Acknowledging a position is the answer: the records up to it are done,
/// and the first one after it (if any) is where `batchItemFailures` starts.
/// Before it records that, the acknowledgement writes the stamps of the
/// customers the records were applied to (when the handler has the table),
/// each with its next due time when the due index is kept: one item per
/// customer ([`pulse_aws::stamps`]). Like the rest of the due index, they
/// are an effect of the batch, durable before the answer.
#[derive(Debug)]
pub(crate) struct InvocationBatch<'a> {
    batch: Option<Vec<Record<usize>>>,
    /// Each customer the given records name, with the sequence number of its
    /// last record.
    last_applied: HashMap<String, Option<String>>,
    stamps: Option<&'a Stamps>,
    /// Whether the stamps' items carry the next due time (the due index is kept).
    with_due: bool,
    acknowledged: Option<usize>,
    stamped: Stamped,
    /// How long before the invocation its newest record was created (ms):
    /// the pipeline's `IteratorAgeMs`, as Lambda's own `IteratorAge` is the
    /// age of a batch's last record.
    behind_ms: Option<i64>,
}

impl<'a> InvocationBatch<'a> {
    /// The source of `incoming`, writing stamps to `stamps` when given, with
    /// each customer's next due time when `with_due`.
    pub(crate) fn new(incoming: Vec<Incoming>, stamps: Option<&'a Stamps>, with_due: bool) -> InvocationBatch<'a> {
        let mut records = Vec::with_capacity(incoming.len());
        let mut last_applied = HashMap::new();
        let newest = incoming
            .iter()
            .filter_map(|r| r.decoded.as_ref().ok()?.created_ms)
            .fold(None, |newest: Option<f64>, c| Some(newest.map_or(c, |n| n.max(c))));
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let behind_ms = newest.map(|created| now_ms.saturating_sub(created.floor() as i64).max(0));
        for (position, record) in incoming.into_iter().enumerate() {
            // An invalid record that cannot be kept for its dead letter stops
            // the batch there: the answer fails from it.
            let Some(raw) = record.raw else { break };
            if let Some(customer) = record.decoded.as_ref().ok().and_then(|r| r.change.customer_id()) {
                last_applied.insert(customer.to_owned(), record.sequence_number.clone());
            }
            let origin = pulse_schemas::Source { sequence_number: record.sequence_number, ..Default::default() };
            records.push(Record { origin, body: Body::Decoded { record: record.decoded, raw }, position });
        }
        let batch = (!records.is_empty()).then_some(records);
        InvocationBatch {
            batch,
            last_applied,
            stamps,
            with_due,
            acknowledged: None,
            stamped: Stamped::default(),
            behind_ms,
        }
    }

    /// The customers whose items the acknowledgement writes (none without
    /// stamps): the sink leaves their due times to it.
    pub(crate) fn customers(&self) -> HashSet<String> {
        match self.stamps {
            Some(_) => self.last_applied.keys().cloned().collect(),
            None => HashSet::new(),
        }
    }

    /// The index of the first record not acknowledged: where the answer's
    /// `batchItemFailures` starts (none when it is past the last record).
    pub(crate) fn first_unacknowledged(&self) -> usize {
        self.acknowledged.map_or(0, |last| last + 1)
    }

    /// The stamps the acknowledgement wrote.
    pub(crate) fn into_stamped(self) -> Stamped {
        self.stamped
    }
}

impl Source for InvocationBatch<'_> {
    type Position = usize;

    async fn next_batch(&mut self) -> Result<Option<Batch<usize>>, SourceError> {
        Ok(self.batch.take().map(|records| Batch { behind_ms: self.behind_ms, ..Batch::of(records) }))
    }

    async fn acknowledge(&mut self, position: &usize, durable: &Durable<'_>) -> Result<()> {
        if let Some(stamps) = self.stamps {
            let engine = durable.processor.engine();
            let mut stamped = Stamped::default();
            let mut items = Vec::with_capacity(self.last_applied.len());
            for (customer, seq) in self.last_applied.drain() {
                let seq = seq.filter(|_| engine.customer_clock(&customer).is_some());
                let due = if self.with_due { engine.next_due(&customer) } else { None };
                match &seq {
                    Some(seq) => stamped.written.push((customer.clone(), seq.clone())),
                    None => stamped.cleared.push(customer.clone()),
                }
                stamped.due += usize::from(due.is_some());
                items.push((customer, seq, due));
            }
            items.sort_unstable();
            stamped.written.sort_unstable();
            stamps.write(&items).await.context("writing the stamps and due times")?;
            self.stamped = stamped;
        }
        self.acknowledged = Some(*position);
        Ok(())
    }
}

/// The scheduled run as a [`Source`]: one batch without records that moves
/// stream time to the scheduled time, then the end.
#[derive(Debug)]
pub(crate) struct ScheduledRun(pub(crate) Option<i64>);

impl Source for ScheduledRun {
    type Position = ();

    async fn next_batch(&mut self) -> Result<Option<Batch<()>>, SourceError> {
        Ok(self.0.take().map(Batch::advance_to))
    }
}

/// Customers the hydration hook forgot in this invocation, for the sink:
/// the hook runs inside the driver, the sink beside it, so they share the
/// list (taken by the sink before its next output).
#[derive(Clone, Debug, Default)]
pub(crate) struct Forgotten(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl Forgotten {
    fn push(&self, customer: String) {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(customer);
    }

    fn take(&self) -> Vec<String> {
        let mut customers = std::mem::take(&mut *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        customers.sort_unstable();
        customers.dedup();
        customers
    }
}

/// The Lambda's hydration hook: first the stamps ([`pulse_aws::stamps`]):
/// customers held here whose records were applied in another environment
/// since are forgotten; then [`TableHydration`] reads the customers not held.
/// Without the table, nothing is read (every customer starts from its first
/// record).
#[derive(Debug)]
pub(crate) struct StampedHydration<'a> {
    table: Option<(&'a Stamps, TableHydration)>,
    /// The stamp this environment wrote for each customer it holds.
    applied: &'a mut HashMap<String, String>,
    /// Customers forgotten as stale.
    pub(crate) stale: usize,
    /// Their ids, for the sink to forget too ([`InvocationSink::forgetting`]).
    forgotten: Forgotten,
    /// Whether the hook failed (nothing of the batch was applied; the warm
    /// state is intact).
    pub(crate) failed: bool,
}

impl<'a> StampedHydration<'a> {
    /// The hook over `table` (none: no hydration), with the stamps this
    /// environment wrote.
    pub(crate) fn new(
        table: Option<(&'a Stamps, TableHydration)>,
        applied: &'a mut HashMap<String, String>,
    ) -> StampedHydration<'a> {
        StampedHydration { table, applied, stale: 0, forgotten: Forgotten::default(), failed: false }
    }

    /// The customers it forgets, shared with the sink that must forget
    /// them too.
    pub(crate) fn forgotten(&self) -> Forgotten {
        self.forgotten.clone()
    }

    /// What reading the table took.
    pub(crate) fn stats(&self) -> pulse_aws::hydrate::HydrateStats {
        self.table.as_ref().map(|(_, t)| *t.stats()).unwrap_or_default()
    }
}

impl Hydrate for StampedHydration<'_> {
    async fn hydrate(&mut self, processor: &Processor, records: &[&StreamRecord<'_>]) -> Result<()> {
        let Some((stamps, table)) = &mut self.table else { return Ok(()) };
        let stale = forget_stale(processor.engine(), self.applied, stamps, records, &self.forgotten)
            .await
            .context("reading the stamps of the batch's customers");
        let result = match stale {
            Ok(stale) => {
                self.stale += stale;
                if stale > 0 {
                    tracing::info!(
                        customers = stale,
                        "these customers' stamps changed since this environment applied their records (another \
                         environment applied some, or this one's timer rewrote their due item without a stamp): \
                         they are read again"
                    );
                }
                // Every customer read afresh from the table (the stale ones
                // and those this environment did not hold: new to it, or
                // dropped with a reset warm state or a failed batch): what
                // the sink keeps of it may be as old as what the engine had.
                for customer in records.iter().filter_map(|r| r.change.customer_id()) {
                    if processor.engine().customer_clock(customer).is_none() {
                        self.forgotten.push(customer.to_owned());
                    }
                }
                table.hydrate(processor, records).await.context("hydrating the batch's customers")
            }
            Err(e) => Err(e),
        };
        self.failed = result.is_err();
        result
    }
}

/// Forgets the customers held here whose stored stamp is not the one this
/// environment wrote (records were applied elsewhere since): those the
/// records touch and those whose timers would fire during them. Returns how
/// many.
async fn forget_stale(
    engine: &Engine,
    applied: &mut HashMap<String, String>,
    stamps: &Stamps,
    records: &[&StreamRecord<'_>],
    forgotten: &Forgotten,
) -> Result<usize> {
    let mut held: Vec<String> = records
        .iter()
        .filter_map(|r| r.change.customer_id())
        .filter(|c| engine.customer_clock(c).is_some())
        .map(str::to_owned)
        .collect();
    if let Some(until) = records.iter().filter_map(|r| r.created_ms).map(|t| t.floor() as i64).max() {
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
        match (stored.get(&customer), applied.get(&customer)) {
            (Some(theirs), Some(ours)) if theirs == ours => {}
            _ => {
                engine.forget(&customer);
                applied.remove(&customer);
                forgotten.push(customer);
                stale += 1;
            }
        }
    }
    Ok(stale)
}

/// The Lambda's sink around the environment's own: counts what a run sent,
/// and at the barrier, after the inner sink's flush, writes the next due
/// time of every customer that got a vector (and of those it was told about:
/// a scheduled run's due customers) to the due index.
#[derive(Debug)]
pub(crate) struct InvocationSink<'a, S> {
    inner: &'a mut S,
    due: Option<(&'a DueIndex, Arc<Engine>)>,
    /// Customers whose due item is to be written at the next barrier, in
    /// order of first appearance.
    pending: Vec<String>,
    seen: HashSet<String>,
    /// The batch's own customers: the acknowledgement writes their due
    /// times with their stamps, one item each.
    left: HashSet<String>,
    /// Vectors sent.
    pub(crate) vectors: usize,
    /// Dead letters sent.
    pub(crate) dead_letters: usize,
    /// Due items written (`None`: deleted, no timer left).
    pub(crate) due_written: Vec<(String, Option<i64>)>,
    /// Customers the hydration hook forgot, passed to `inner` before its
    /// next output.
    forgotten: Forgotten,
}

impl<'a, S: Sink> InvocationSink<'a, S> {
    /// `inner`, with the due index over `engine` when given.
    pub(crate) fn new(inner: &'a mut S, due: Option<(&'a DueIndex, Arc<Engine>)>) -> InvocationSink<'a, S> {
        InvocationSink {
            inner,
            due,
            pending: Vec::new(),
            seen: HashSet::new(),
            left: HashSet::new(),
            vectors: 0,
            dead_letters: 0,
            due_written: Vec::new(),
            forgotten: Forgotten::default(),
        }
    }

    /// Passes the customers `hook` forgets on to `inner`
    /// ([`Sink::forget`]) before its next output: its alert state of them
    /// is as stale as the engine's copy.
    pub(crate) fn forgetting(mut self, forgotten: Forgotten) -> Self {
        self.forgotten = forgotten;
        self
    }

    async fn pass_forgotten(&mut self) -> Result<()> {
        let customers = self.forgotten.take();
        if customers.is_empty() {
            return Ok(());
        }
        self.inner.forget(customers).await.context("forgetting stale customers")
    }

    /// Also writes the due items of `customers` at the barrier.
    pub(crate) fn with_due(mut self, customers: impl IntoIterator<Item = String>) -> Self {
        for customer in customers {
            self.note(customer);
        }
        self
    }

    /// Leaves the due items of `customers` to the batch's acknowledgement
    /// ([`InvocationBatch::customers`]).
    pub(crate) fn leaving(mut self, customers: HashSet<String>) -> Self {
        self.left = customers;
        self
    }

    fn note(&mut self, customer: String) {
        if self.due.is_some() && !self.left.contains(&customer) && self.seen.insert(customer.clone()) {
            self.pending.push(customer);
        }
    }

    fn observe(&mut self, produced: &Produced) {
        self.vectors += produced.vectors.len();
        self.dead_letters += produced.dead.len();
        for v in &produced.vectors {
            self.note(v.customer_id.as_str().to_owned());
        }
    }
}

impl<S: Sink> Sink for InvocationSink<'_, S> {
    async fn send(&mut self, produced: Produced) -> Result<()> {
        self.pass_forgotten().await?;
        self.observe(&produced);
        self.inner.send(produced).await.context("sending the output")
    }

    async fn send_timed(&mut self, produced: Produced, times: Vec<i64>) -> Result<()> {
        self.pass_forgotten().await?;
        self.observe(&produced);
        self.inner.send_timed(produced, times).await.context("sending the output")
    }

    async fn tick(&mut self, now_ms: i64) -> Result<()> {
        self.pass_forgotten().await?;
        self.inner.tick(now_ms).await
    }

    async fn flush(&mut self) -> Result<()> {
        self.pass_forgotten().await?;
        self.inner.flush().await.context("flushing the output")?;
        if let Some((index, engine)) = &self.due {
            let updates: Vec<_> = self.pending.iter().map(|c| (c.clone(), engine.next_due(c))).collect();
            index.record(&updates).await.context("writing the due index")?;
            self.pending.clear();
            self.seen.clear();
            self.due_written.extend(updates);
        }
        Ok(())
    }

    /// A flush, not the end of the inner sink: the environment's sink lives
    /// across invocations (the bootstrap keeps it for the environment's
    /// life, and publishes the scoring sink's metrics snapshot itself after
    /// each one), while the driver's run, which closes its sink when it
    /// stops, is one invocation. So the invocation's last barrier flushes
    /// what it sent and leaves the sink open for the next one.
    async fn close(&mut self) -> Result<()> {
        self.flush().await
    }

    fn checkpoint_state(&self) -> Option<serde_json::Value> {
        self.inner.checkpoint_state()
    }

    fn observe_source(&mut self, records: u64, iterator_age_ms: Option<i64>) {
        self.inner.observe_source(records, iterator_age_ms);
    }

    async fn forget(&mut self, customers: Vec<String>) -> Result<()> {
        self.inner.forget(customers).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incoming(created_s: f64) -> Incoming {
        let line = format!(
            r#"{{"eventID":"1","eventName":"INSERT","dynamodb":{{"ApproximateCreationDateTime":{created_s},"Keys":{{"customer_id":{{"S":"c1"}},"sk":{{"S":"EVT#1"}}}},"NewImage":{{"customer_id":{{"S":"c1"}},"sk":{{"S":"EVT#1"}},"event_id":{{"S":"e1"}},"event_type":{{"S":"login"}},"ts":{{"N":"{created_s}"}}}},"SequenceNumber":"100"}}}}"#
        );
        let decoded = pulse_schemas::capture::decode_line(line.as_bytes()).map(|r| r.into_owned());
        assert!(decoded.is_ok(), "{decoded:?}");
        Incoming { sequence_number: Some("100".into()), decoded, raw: Some(Vec::new()) }
    }

    /// The pipeline's `IteratorAgeMs` for the function: how old the batch's
    /// newest record is when the invocation starts (it was always 0, the
    /// dashboard's lag line flat whatever the real lag).
    #[tokio::test]
    async fn a_batch_says_how_old_its_newest_record_is() {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
        let mut batch = InvocationBatch::new(vec![incoming(now - 3_600.0), incoming(now - 60.0)], None, false);
        let behind = batch.next_batch().await.unwrap().unwrap().behind_ms.expect("an age");
        assert!((60_000..120_000).contains(&behind), "{behind} ms");
    }
}
