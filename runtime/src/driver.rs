//! The one loop: a [`Source`] through the engine to a [`Sink`], with
//! end-to-end acknowledgement.
//!
//! ```text
//!            ┌──────────────────────────── acknowledge(position) ◄──────────┐
//!            ▼                                                              │
//! Source::next_batch ─► decode ─► Hydrate (optional) ─► Processor ─► Sink::send_timed
//!   (records with        (capture     (may load customers     (engine,       Sink::tick(stream time)
//!    their positions)     lines)       the engine lacks)      timers)        Sink::flush ─► Ok? ──┘
//! ```
//!
//! For each batch the [`Driver`]:
//!
//! 1. **decodes** its records ([`Body::Line`] with the capture decoder,
//!    [`Body::Decoded`] as the source decoded it; an invalid record becomes
//!    a dead letter, never a failure);
//! 2. hands the valid ones to the **hydration hook** ([`Hydrate`]), which
//!    may load customers the engine holds no state for (the AWS adapters
//!    read them from the event table); if it fails, the batch is not
//!    applied and the run stops with the error;
//! 3. **applies** them in order with the [`Processor`] (timers fire on
//!    stream time, before the record that moves it);
//! 4. **sends** the vectors and dead letters to the sink with the stream
//!    time each vector was produced at ([`Sink::send_timed`]), then
//!    **ticks** it with the stream time reached ([`Sink::tick`]): time in
//!    the pipeline is stream time, so a replay is deterministic;
//! 5. remembers the batch's last position as pending;
//! 6. moves stream time to the batch's [`Batch::advance_to`], if any (a
//!    caught-up live source's wall clock, the Lambda's scheduled run): the
//!    timers due by then fire, and their vectors go to the sink as in 4.
//!
//! **The acknowledgement rule.** A position is acknowledged
//! ([`Source::acknowledge`]) only after [`Sink::flush`] (or, at the end,
//! [`Sink::close`]) returned `Ok`: then every effect of the records up to
//! it is durable. If the flush fails, nothing is acknowledged and the run
//! stops with the error; the source redelivers from its last acknowledged
//! position next time, and the engine's event-id dedupe and the sinks'
//! idempotent writes make that harmless. The acknowledgement carries what
//! is durable with it ([`Durable`]: the processor, the sink's resume state,
//! the run's counts), which a live source writes into its checkpoint. Timers
//! fired by an advance change the state without moving a position: the last
//! position is acknowledged again with the new state. When to flush is
//! [`Checkpoints`]: at the end only (a replay; the Lambda, whose run is one
//! batch), after every batch, or every interval (the live consumer).
//!
//! **Stopping.** The run ends at the end of the input, at
//! [`DriverConfig::max_records`], after [`DriverConfig::idle_exit`] without
//! records, or when the `shutdown` future completes. Each of those is a
//! clean stop: the sink is closed (its last barrier) and the last position
//! acknowledged. An error (a fatal source error, a source that keeps
//! failing, a failed hydration, sink or acknowledgement) stops the run
//! without closing the sink or acknowledging anything more.
//!
//! **Time.** Checkpoint intervals, the wait after an empty batch, retries
//! and idleness use tokio's clock, so tests drive them with a paused clock;
//! nothing in the data path reads a clock.

use std::future::Future;
use std::time::Duration;

use anyhow::{Context, Result};
use pulse_schemas::capture::decode_line;
use pulse_schemas::record::{Invalid, StreamRecord};
use pulse_schemas::{FeatureVector, Trigger};
use serde::Serialize;
use tokio::time::Instant;

use crate::process::{Processor, Produced};
use crate::retry::Backoff;
use crate::sink::Sink;
use crate::source::{Batch, Body, Durable, Progress, Source, SourceError};
use crate::workers::Workers;

/// The hydration hook: called with the decoded, valid records of a batch
/// before they are applied.
///
/// An implementation loads the customers those records name that the engine
/// holds no state for (`processor.engine()`), with their timers settled up
/// to `processor.stream_time()`, so the batch continues their history
/// instead of starting it. It retries as its backend needs; an `Err` stops
/// the run before the batch is applied, so no position moves past records
/// whose customers were not loaded.
pub trait Hydrate: Send {
    /// Loads what `records` need into `processor`'s engine.
    fn hydrate(
        &mut self,
        processor: &Processor,
        records: &[&StreamRecord<'_>],
    ) -> impl Future<Output = Result<()>> + Send;

    /// Whether the hook may load customers (the default); a driver with
    /// [`Workers`] runs only without one, as its customers are in the
    /// workers' engines, not `processor`'s.
    fn loads(&self) -> bool {
        true
    }
}

/// No hydration: every customer starts from its first record (a replay, a
/// live run from the start of the stream).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoHydration;

impl Hydrate for NoHydration {
    async fn hydrate(&mut self, _: &Processor, _: &[&StreamRecord<'_>]) -> Result<()> {
        Ok(())
    }

    fn loads(&self) -> bool {
        false
    }
}

/// An optional hook: hydration configured or not.
impl<H: Hydrate> Hydrate for Option<H> {
    async fn hydrate(&mut self, processor: &Processor, records: &[&StreamRecord<'_>]) -> Result<()> {
        match self {
            Some(hook) => hook.hydrate(processor, records).await,
            None => Ok(()),
        }
    }

    fn loads(&self) -> bool {
        self.as_ref().is_some_and(Hydrate::loads)
    }
}

/// When the driver flushes its sink and acknowledges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checkpoints {
    /// Once, when the run stops cleanly (a replay: acknowledging does
    /// nothing; the Lambda: its one batch is answered once the close made it
    /// durable).
    AtEnd,
    /// After every batch (a source that answers each batch once durable).
    EveryBatch,
    /// At most this long after a batch was applied (a long-running consumer).
    Every(Duration),
}

/// Retries of a source's [`SourceError::Retryable`] errors: pulse's one
/// retry policy ([`Backoff`], full jitter); `max_attempts` reads in a row
/// may fail before the run stops.
pub const SOURCE_RETRY: Backoff =
    Backoff { base: Duration::from_millis(100), cap: Duration::from_secs(5), max_attempts: 5 };

/// How a run behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DriverConfig {
    /// When to flush and acknowledge.
    pub checkpoints: Checkpoints,
    /// Stop after this many records (counted by this driver).
    pub max_records: Option<u64>,
    /// Stop when the source has had nothing new this long.
    pub idle_exit: Option<Duration>,
    /// The wait after an empty batch before asking again.
    pub empty_wait: Duration,
    /// Retries of a failing source.
    pub retry: Backoff,
    /// Decode and apply the records (the default). `false`: records are
    /// only counted and acknowledged, for a source that keeps them itself
    /// (`pulse capture` writes them to a file); nothing reaches the engine
    /// or the sink.
    pub apply: bool,
}

impl Default for DriverConfig {
    fn default() -> Self {
        DriverConfig {
            checkpoints: Checkpoints::AtEnd,
            max_records: None,
            idle_exit: None,
            empty_wait: Duration::from_millis(100),
            retry: SOURCE_RETRY,
            apply: true,
        }
    }
}

impl DriverConfig {
    /// Checks the configuration without I/O; the error names the setting.
    pub fn validate(&self) -> Result<()> {
        self.retry.validate("the source's retries").map_err(anyhow::Error::msg)?;
        if let Checkpoints::Every(interval) = self.checkpoints {
            anyhow::ensure!(!interval.is_zero(), "the checkpoint interval must be positive");
        }
        Ok(())
    }
}

/// Why a run stopped (cleanly).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StopReason {
    /// The source said there is no more.
    EndOfInput,
    /// [`DriverConfig::max_records`] reached.
    MaxRecords,
    /// Nothing new for [`DriverConfig::idle_exit`].
    Idle,
    /// The shutdown future completed.
    Shutdown,
}

/// What a run did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct DriverSummary {
    /// Why it stopped.
    pub stopped: StopReason,
    /// Records applied or dead-lettered (blank capture lines are not
    /// records), and vectors emitted.
    #[serde(flatten)]
    pub progress: Progress,
    /// Non-empty batches applied.
    pub batches: u64,
    /// Positions acknowledged.
    pub acknowledged: u64,
    /// Stream time after the first record that carried one, and at the end.
    pub stream_span_ms: Option<(i64, i64)>,
}

/// The loop: owns the [`Processor`] and the hydration hook; the source and
/// the sink are lent to [`Driver::run`].
#[derive(Debug)]
pub struct Driver<H = NoHydration> {
    processor: Processor,
    /// Engines side by side, when the records are applied by several
    /// ([`Driver::with_workers`]).
    workers: Option<Workers>,
    hydrate: H,
    config: DriverConfig,
    progress: Progress,
    batches: u64,
    acknowledged: u64,
    first_stream_time: Option<i64>,
}

impl Driver<NoHydration> {
    /// A driver over `processor`, without hydration; the configuration is
    /// checked here.
    pub fn new(processor: Processor, config: DriverConfig) -> Result<Driver<NoHydration>> {
        config.validate()?;
        Ok(Driver {
            processor,
            workers: None,
            hydrate: NoHydration,
            config,
            progress: Progress::default(),
            batches: 0,
            acknowledged: 0,
            first_stream_time: None,
        })
    }
}

impl<H: Hydrate> Driver<H> {
    /// The same driver with a hydration hook.
    pub fn with_hydration<H2: Hydrate>(self, hydrate: H2) -> Driver<H2> {
        let Driver { processor, workers, config, progress, batches, acknowledged, first_stream_time, .. } = self;
        Driver { processor, workers, hydrate, config, progress, batches, acknowledged, first_stream_time }
    }

    /// The same driver applying records with several engines side by side
    /// ([`Workers`]: customers partitioned by a hash of their id, vectors in
    /// the order one engine emits them). The driver's own processor then
    /// keeps only stream time and the dead letters; the customers are in
    /// the workers' engines. For a run that checkpoints no engine state: a
    /// run with workers must have [`Checkpoints::AtEnd`] and no hydration
    /// (checked when it starts).
    pub fn with_workers(self, workers: Workers) -> Driver<H> {
        Driver { workers: Some(workers), ..self }
    }

    /// The workers, when records are applied by several engines.
    pub fn workers(&self) -> Option<&Workers> {
        self.workers.as_ref()
    }

    /// The processor (its engine, stream time and dead-letter counts).
    pub fn processor(&self) -> &Processor {
        &self.processor
    }

    /// The processor, given back (a Lambda environment keeps it warm for
    /// its next invocation).
    pub fn into_processor(self) -> Processor {
        self.processor
    }

    /// The hydration hook (what it counted).
    pub fn hydration(&self) -> &H {
        &self.hydrate
    }

    /// Records applied or dead-lettered so far.
    pub fn records(&self) -> u64 {
        self.progress.records
    }

    /// What the run did so far.
    pub fn progress(&self) -> Progress {
        self.progress
    }

    fn reached_max(&self) -> bool {
        self.config.max_records.is_some_and(|max| self.progress.records >= max)
    }

    /// Runs until a stop condition (see the module doc); on a clean stop the
    /// sink is closed and the last position acknowledged.
    pub async fn run<S: Source, K: Sink>(
        &mut self,
        mut source: S,
        mut sink: K,
        shutdown: impl Future<Output = ()>,
    ) -> Result<DriverSummary> {
        if self.workers.is_some() {
            anyhow::ensure!(
                self.config.checkpoints == Checkpoints::AtEnd && !self.hydrate.loads(),
                "several workers need a run without hydration that checkpoints only at its end \
                 (the engine state is split across the workers)"
            );
        }
        tokio::pin!(shutdown);
        let retry = self.config.retry;
        let mut acks = Acks::default();
        let mut failures = 0u32;
        let mut last_record = Instant::now();
        let mut next_checkpoint = None;
        let stopped = loop {
            if self.reached_max() {
                break StopReason::MaxRecords;
            }
            let read = tokio::select! {
                biased;
                () = &mut shutdown => break StopReason::Shutdown,
                () = sleep_until(next_checkpoint) => {
                    next_checkpoint = None;
                    self.checkpoint(&mut source, &mut sink, &mut acks).await?;
                    continue;
                }
                read = source.next_batch() => read,
            };
            let batch = match read {
                Ok(Some(batch)) => batch,
                Ok(None) => break StopReason::EndOfInput,
                Err(SourceError::Fatal(e)) => return Err(e.context("the source failed")),
                Err(SourceError::Retryable(e)) => {
                    failures += 1;
                    if !retry.may_retry(failures) {
                        return Err(e.context(format!("the source failed {failures} times in a row")));
                    }
                    let delay = retry.delay(failures, &mut rand::rng());
                    tracing::warn!(error = %format!("{e:#}"), attempt = failures, wait_ms = delay.as_millis() as u64,
                        "reading the source failed; retrying");
                    tokio::select! {
                        biased;
                        () = &mut shutdown => break StopReason::Shutdown,
                        () = tokio::time::sleep(delay) => {}
                    }
                    continue;
                }
            };
            failures = 0;
            sink.observe_source(batch.records.len() as u64, batch.behind_ms);
            let had_records = !batch.records.is_empty();
            if had_records {
                last_record = Instant::now();
            }
            let (last, changed) = self.apply(batch, &mut sink).await?;
            acks.applied(last, changed);
            if !had_records && self.config.idle_exit.is_some_and(|idle| last_record.elapsed() >= idle) {
                break StopReason::Idle;
            }
            if acks.is_due() {
                match self.config.checkpoints {
                    Checkpoints::EveryBatch => self.checkpoint(&mut source, &mut sink, &mut acks).await?,
                    Checkpoints::Every(interval) => {
                        next_checkpoint.get_or_insert(Instant::now() + interval);
                    }
                    Checkpoints::AtEnd => {}
                }
            }
            if !had_records && !self.config.empty_wait.is_zero() {
                // A checkpoint falling due while the source is quiet is not delayed.
                tokio::select! {
                    biased;
                    () = &mut shutdown => break StopReason::Shutdown,
                    () = sleep_until(next_checkpoint) => {
                        next_checkpoint = None;
                        self.checkpoint(&mut source, &mut sink, &mut acks).await?;
                    }
                    () = tokio::time::sleep(self.config.empty_wait) => {}
                }
            }
        };
        sink.close().await.context("the sink could not close (the final barrier): nothing more is acknowledged")?;
        if let Some(position) = acks.take_due() {
            let durable = self.durable(&sink);
            source.acknowledge(&position, &durable).await.context("acknowledging the last position failed")?;
            self.acknowledged += 1;
        }
        Ok(DriverSummary {
            stopped,
            progress: self.progress,
            batches: self.batches,
            acknowledged: self.acknowledged,
            stream_span_ms: self.first_stream_time.zip(self.processor.stream_time()),
        })
    }

    /// What is durable once the sink's barrier returned.
    fn durable<K: Sink>(&self, sink: &K) -> Durable<'_> {
        Durable { processor: &self.processor, sink_state: sink.checkpoint_state(), progress: self.progress }
    }

    /// The barrier: flush, then acknowledge what is due.
    async fn checkpoint<S: Source, K: Sink>(
        &mut self,
        source: &mut S,
        sink: &mut K,
        acks: &mut Acks<S::Position>,
    ) -> Result<()> {
        if !acks.is_due() {
            return Ok(());
        }
        sink.flush().await.context("the sink could not flush (checkpoint barrier): nothing is acknowledged")?;
        if let Some(position) = acks.take_due() {
            let durable = self.durable(sink);
            source.acknowledge(&position, &durable).await.context("acknowledging a position failed")?;
            self.acknowledged += 1;
        }
        Ok(())
    }

    /// Steps 1–4 of the module doc for one batch (cut at `max_records`),
    /// then its [`Batch::advance_to`]; returns the position of its last
    /// record, and whether the engine's state or stream time changed.
    async fn apply<P, K: Sink>(&mut self, batch: Batch<P>, sink: &mut K) -> Result<(Option<P>, bool)> {
        let Batch { mut records, advance_to, .. } = batch;
        if let Some(max) = self.config.max_records {
            records.truncate(usize::try_from(max.saturating_sub(self.progress.records)).unwrap_or(usize::MAX));
        }
        if records.is_empty() && advance_to.is_none() {
            return Ok((None, false));
        }
        if !self.config.apply {
            self.progress.records +=
                records.iter().filter(|r| !matches!(&r.body, Body::Line(l) if is_blank(l))).count() as u64;
            let last = records.pop().map(|r| r.position);
            self.batches += u64::from(last.is_some());
            let moved = last.is_some();
            return Ok((last, moved));
        }
        let time_before = self.processor.stream_time();
        // 1. Decode the capture lines; records the source decoded are read
        //    in place (nothing is moved: a batch is thousands of records).
        let decoded_lines: Vec<Result<StreamRecord<'_>, Invalid>> = records
            .iter()
            .filter_map(|r| match &r.body {
                Body::Line(line) if !is_blank(line) => Some(decode_line(line)),
                _ => None,
            })
            .collect();
        let mut next_line = decoded_lines.iter();
        let decoded: Vec<Readied<'_>> = records
            .iter()
            .filter_map(|r| match &r.body {
                Body::Line(line) if is_blank(line) => None,
                Body::Line(line) => next_line.next().map(|d| (d.as_ref(), &r.origin, line.as_slice())),
                Body::Decoded { record, raw } => Some((record.as_ref(), &r.origin, raw.as_slice())),
            })
            .collect();
        // 2. Hydrate.
        let valid: Vec<&StreamRecord<'_>> = decoded.iter().filter_map(|(d, _, _)| d.ok()).collect();
        if !valid.is_empty() {
            self.hydrate
                .hydrate(&self.processor, &valid)
                .await
                .context("hydration failed: the batch was not applied")?;
        }
        // 3. Apply; each vector's time is the stream time once its record was applied.
        let n = decoded.len();
        let mut out = Produced { vectors: Vec::with_capacity(n + n / 4), dead: Vec::new() };
        let mut times = Vec::with_capacity(out.vectors.capacity());
        // Whether vectors were sent on before the end of the batch.
        let mut sent = false;
        if self.workers.is_none() {
            for &(decoded, origin, raw) in &decoded {
                self.progress.records += 1;
                // Checked here: the step loop's future is not built for
                // the records that do not jump (nearly all).
                if let Some(created) = decoded.ok().and_then(|r| r.created_ms).map(|c| c.floor() as i64) {
                    if self.is_jump(created) {
                        sent |= self.advance_in_steps(created, origin, &mut out, &mut times, sink).await?;
                    }
                }
                self.processor.process_ref(decoded, origin, raw, &mut out);
                let now = self.processor.stream_time().unwrap_or(i64::MIN);
                times.resize(out.vectors.len(), now);
                if self.first_stream_time.is_none() {
                    self.first_stream_time = self.processor.stream_time();
                }
            }
        } else {
            // The driver's processor keeps stream time and the dead
            // letters (in input order); its engine holds no customer, so
            // its advances fire nothing. The workers apply the records,
            // those before a jump of stream time first.
            let mut times_after = Vec::with_capacity(n);
            let mut from = 0;
            for (i, &(one, origin, raw)) in decoded.iter().enumerate() {
                self.progress.records += 1;
                match one {
                    Err(_) => self.processor.process_ref(one, origin, raw, &mut out),
                    Ok(record) => {
                        if let Some(created) = record.created_ms {
                            let created = created.floor() as i64;
                            self.processor.observe_created(created);
                            if self.is_jump(created) {
                                let workers = self.workers.as_mut().expect("workers");
                                workers.apply(&decoded[from..i], &times_after[from..], &mut out.vectors, &mut times);
                                from = i;
                                sent |= self.advance_in_steps(created, origin, &mut out, &mut times, sink).await?;
                            }
                            self.processor.advance_to(created, origin, &mut out);
                        }
                    }
                }
                times_after.push(self.processor.stream_time().unwrap_or(i64::MIN));
                if self.first_stream_time.is_none() {
                    self.first_stream_time = self.processor.stream_time();
                }
            }
            let workers = self.workers.as_mut().expect("workers");
            workers.apply(&decoded[from..], &times_after[from..], &mut out.vectors, &mut times);
        }
        drop(valid);
        if let Some(now) = advance_to {
            let origin = pulse_schemas::Source::default();
            sent |= self.advance_in_steps(now, &origin, &mut out, &mut times, sink).await?;
            self.processor.advance_to(now, &origin, &mut out);
            if let Some(workers) = self.workers.as_mut() {
                workers.advance_to(now, &origin, &mut out.vectors);
            }
            times.resize(out.vectors.len(), now);
        }
        self.count_vectors(&out.vectors);
        let last = records.pop().map(|r| r.position);
        self.batches += u64::from(last.is_some());
        // A batch of records changes the state; a bare advance only if it
        // fired timers (an idle consumer does not rewrite its checkpoint).
        let changed = last.is_some() || sent || !out.is_empty();
        // 4. Send and tick.
        if !out.is_empty() {
            sink.send_timed(out, times).await.context("the sink failed")?;
        }
        if let Some(now) = self.processor.stream_time().filter(|now| time_before != Some(*now) || last.is_some()) {
            sink.tick(now).await.context("the sink failed")?;
        }
        Ok((last, changed))
    }
}

/// A move of stream time longer than this is made in steps of it
/// ([`Driver::advance_in_steps`]).
const TIME_STEP_MS: i64 = 3_600_000;

/// Vectors a batch holds before those fired by a jump of stream time are
/// sent on, not gathered further.
const SEND_AT_VECTORS: usize = 1 << 16;

impl<H: Hydrate> Driver<H> {
    /// Counts vectors about to be sent, by trigger.
    fn count_vectors(&mut self, vectors: &[FeatureVector]) {
        for v in vectors {
            match v.trigger {
                Trigger::Event => self.progress.vectors_event += 1,
                Trigger::Timer => self.progress.vectors_timer += 1,
            }
        }
    }

    /// Whether moving stream time to `to` is a jump: longer than
    /// [`TIME_STEP_MS`] from where it is.
    fn is_jump(&self, to: i64) -> bool {
        self.processor.stream_time().is_some_and(|now| to.saturating_sub(now) > TIME_STEP_MS)
    }

    /// Moves stream time towards `to` in steps of [`TIME_STEP_MS`], up to
    /// the last step before it (the caller's advance makes the rest),
    /// sending the vectors gathered so far on to `sink` whenever they
    /// reach [`SEND_AT_VECTORS`]. Without it a jump of stream time (a
    /// capture with a gap of months, a record dated years ahead) fired
    /// every silent customer's timers for the whole gap into one batch's
    /// memory: a 30 MB capture with a gap of three years took 1 GB. The
    /// vectors and their order are what one advance makes (timers fire in
    /// due order either way), and each gets the stream time it would have
    /// had, `to`; only their sends are split. Returns whether it sent any.
    async fn advance_in_steps<K: Sink>(
        &mut self,
        to: i64,
        origin: &pulse_schemas::Source,
        out: &mut Produced,
        times: &mut Vec<i64>,
        sink: &mut K,
    ) -> Result<bool> {
        let mut sent = false;
        while self.is_jump(to) {
            let step = self.processor.stream_time().map_or(to, |now| now + TIME_STEP_MS);
            self.processor.advance_to(step, origin, out);
            if let Some(workers) = self.workers.as_mut() {
                workers.advance_to(step, origin, &mut out.vectors);
            }
            if out.vectors.len() >= SEND_AT_VECTORS {
                times.resize(out.vectors.len(), to);
                self.count_vectors(&out.vectors);
                sink.send_timed(std::mem::take(out), std::mem::take(times)).await.context("the sink failed")?;
                sent = true;
            }
        }
        times.resize(out.vectors.len(), to);
        Ok(sent)
    }
}

/// What the driver owes the source: the last position given, and whether
/// effects since the last acknowledgement are waiting for one.
#[derive(Debug)]
struct Acks<P> {
    last: Option<P>,
    due: bool,
}

impl<P> Default for Acks<P> {
    fn default() -> Self {
        Acks { last: None, due: false }
    }
}

impl<P: Clone> Acks<P> {
    /// A batch was applied: `last` is its last record's position (none for a
    /// bare advance); `changed` whether it changed anything to make durable.
    fn applied(&mut self, last: Option<P>, changed: bool) {
        if let Some(last) = last {
            self.last = Some(last);
        }
        self.due |= changed;
    }

    fn is_due(&self) -> bool {
        self.due
    }

    /// The position to acknowledge now, if anything is due: the last one
    /// given (again, when only timers fired since). Nothing when no position
    /// was ever given: there is none to attach the state to.
    fn take_due(&mut self) -> Option<P> {
        std::mem::take(&mut self.due).then(|| self.last.clone()).flatten()
    }
}

/// A record of a batch ready to apply, read in place: decoded (or why it is
/// dead), its provenance, and its original bytes for a dead letter.
pub(crate) type Readied<'a> = (Result<&'a StreamRecord<'a>, &'a Invalid>, &'a pulse_schemas::Source, &'a [u8]);

/// A line of only whitespace is no record.
fn is_blank(line: &[u8]) -> bool {
    line.iter().all(u8::is_ascii_whitespace)
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
