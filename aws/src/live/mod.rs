//! Live input: a long-running consumer of a table's DynamoDB stream, or of
//! the Kinesis data stream a table streams to (`pulse run`, `pulse capture`).
//!
//! ```text
//! shard readers ──pages──► ShardSource ──► capture file (optional)
//! (one task per shard,     │  (a pulse_runtime Source: lists shards,
//!  lineage order)          │   leases, wall clock when caught up)
//!                          ▼
//!                  Driver: decode → hydrate (optional) → Processor → Sink
//!                          │  every 10 s: sink.flush(), then
//!                          └─ acknowledge = write the checkpoint
//! ```
//!
//! The loop is pulse's one [`Driver`], as in `pulse replay` and the Lambda
//! function; this module only adds the source: `ShardSource` gives one
//! page of one shard per batch, and the driver's acknowledgement (after the
//! sink's flush) writes the checkpoint.
//!
//! * **One format.** Each record read becomes one capture line
//!   ([`record`]), the format `pulse replay` reads. The live run decodes that
//!   line with the replay's decoder and applies it with the replay's
//!   [`Processor`]; `pulse capture` just writes the lines. So a capture of a
//!   stream replays to the vectors the live run gave, by construction.
//! * **Order.** One reader per shard ([`reader`]); a shard starts only once
//!   its parents are read to their end and processed ([`lineage`]). A
//!   customer's records stay in one shard lineage (its partition key), so they
//!   are applied in stream order; shards of different lineages interleave.
//!   Timers fire on stream time, the largest `ApproximateCreationDateTime`
//!   applied ([`Clock::Stream`]); with [`Clock::Wall`], stream time also moves
//!   to the wall clock whenever every shard is caught up, so silent customers
//!   are rescored even when the table is quiet (what FEATURES.md §3 asks of a
//!   live run; a replay cannot do that, so two runs compare only under
//!   [`Clock::Stream`]).
//! * **Checkpoints** ([`checkpoint`]): per shard, the last record processed,
//!   advanced only after the sink's [`Sink::flush`] said every effect up to it
//!   is durable (end-to-end acknowledgement), together with the engine's
//!   snapshot and the sink's resume state, in one atomically replaced file.
//!   After `kill -9` at any instant a restart resumes from the last
//!   checkpoint: the engine as it was, each shard just after its position,
//!   file outputs cut back to their checkpointed length ([`pulse_runtime::files`]). Nothing
//!   is lost, nothing counted twice, and the files end up byte-identical to
//!   an uninterrupted run's. SIGTERM / ctrl-c stops reading, flushes and
//!   checkpoints.
//! * **Leases** ([`lease`], `--checkpoint-table`): shards owned through
//!   conditional writes to a DynamoDB table, so two consumers never read the
//!   same shard; positions are mirrored there. The engine state stays in each
//!   consumer's checkpoint file, so a consumer resumes a shard at its OWN
//!   checkpointed position when it has one (records another owner processed
//!   meanwhile are applied again: harmless to the engine; the sinks' writes
//!   must be idempotent, as the conditional prediction writes are). *Seam:* a
//!   consumer taking over a shard it never read resumes at the table's
//!   position, without the state of that shard's customers: run with
//!   hydration (below) so they are read from the base table first.
//! * **Hydration** (`--hydrate`, [`LiveConfig::hydrate`]): before a page is
//!   applied, the customers it names that the engine holds no state for are
//!   loaded from the event table, exactly as the Lambda function does before
//!   a batch ([`crate::hydrate`]: held events, the latest of each "ever"
//!   kind, the oldest event; what the page itself touches taken as it was
//!   before the page), several at once (`--hydrate-concurrency`). Use it when
//!   a consumer starts without the history of customers whose events it
//!   reads: a first run at `--start latest` on a table that already holds
//!   months of events, or a consumer taking over leased shards another one
//!   read. It is **off by default**: a run from TRIM_HORIZON over a stream
//!   that holds every event must equal a replay, and hydrating would load a
//!   new customer's later events from the table before their own records
//!   come (they would then be duplicates), besides the differences listed in
//!   [`crate::hydrate`]. A failed Query is retried under the one retry policy
//!   ([`crate::hydrate::HYDRATE_RETRY`]); then the run stops with
//!   the error, before applying the page, so no checkpoint moves past
//!   records whose customers were not hydrated.
//!
//! * **Start.** `--start` ([`StartPosition`]) applies to the first listing of
//!   a run without a checkpoint: at LATEST, closed shards are skipped and
//!   open ones read from now on. Shards found later (children) are always
//!   read from TRIM_HORIZON, so nothing between their creation and their
//!   discovery is missed. A resumed run reads every shard after its
//!   checkpointed position, and from TRIM_HORIZON a shard that never had a
//!   record processed: a restart loses nothing (with LATEST, that means the
//!   history of a shard that stayed empty until the restart is read then).
//!
//! Invalid records never block a shard: they become dead letters and the
//! position moves past them. Items that are not events (the pipeline's own
//! predictions, `sk = PRED#latest`) are skipped silently by the engine.

pub mod api;
pub mod checkpoint;
pub mod lambda_event;
pub mod lease;
pub mod lineage;
pub mod poll;
pub mod reader;
pub mod record;
#[cfg(test)]
mod scripted;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use pulse_operators::{CountersSnapshot, Engine, EngineConfig, StateSize};
use pulse_schemas::Source;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Interval, MissedTickBehavior};

use crate::hydrate::{HydrateStats, Hydrator, TableHydration};
use api::{StartAt, StreamApi};
use checkpoint::{engine_label, Checkpoint, CheckpointFile, CheckpointHeader, LiveTotals, ShardCheckpoint, FORMAT};
use lease::{Acquired, LeaseTable};
use lineage::Lineage;
use pulse_runtime::driver::{Checkpoints, Driver, DriverConfig, StopReason as DriverStop, SOURCE_RETRY};
use pulse_runtime::files::ResumableFile;
use pulse_runtime::process::Processor;
use pulse_runtime::sink::Sink;
use pulse_runtime::source::{Batch, Body, Durable, Record, Source as RecordSource, SourceError};
use reader::{read_shard, ReaderConfig, ShardMsg};

/// Where shards with no checkpoint start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StartPosition {
    /// The oldest record retained (24 h for DynamoDB Streams).
    #[default]
    TrimHorizon,
    /// Records written from now on; closed shards are skipped.
    Latest,
}

/// What moves stream time (and so fires timers).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Clock {
    /// Only record times (`ApproximateCreationDateTime`): deterministic, as a replay.
    #[default]
    Stream,
    /// Record times, and the wall clock whenever every shard is caught up.
    Wall,
}

/// Leases in a DynamoDB table.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    /// The table (created when missing).
    pub table: String,
    /// This consumer's name in it.
    pub owner: String,
    /// How long a lease lasts without renewal (ms).
    pub lease_ms: i64,
}

/// Hydration of customers the engine holds no state for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HydrateConfig {
    /// The event table to read (the base table of the stream).
    pub table: String,
    /// Customers read at once.
    pub concurrency: usize,
}

/// How a live run behaves.
#[derive(Clone, Debug)]
pub struct LiveConfig {
    /// Where shards without a checkpoint start.
    pub start: StartPosition,
    /// The engine's configuration; `None` for a run that only captures.
    pub engine: Option<EngineConfig>,
    /// The local checkpoint file, if any (without one a restart starts over).
    pub checkpoint: Option<PathBuf>,
    /// Time between checkpoints.
    pub checkpoint_interval: Duration,
    /// Shard leases, if any.
    pub leases: Option<LeaseConfig>,
    /// Time between shard listings (new shards; a finished shard also lists at once).
    pub discover_interval: Duration,
    /// How shards are polled.
    pub reader: ReaderConfig,
    /// Stop after this many records (in all, across restarts).
    pub max_records: Option<u64>,
    /// Stop when every shard has been caught up, with no record, this long.
    pub idle_exit: Option<Duration>,
    /// What moves stream time.
    pub clock: Clock,
    /// Also write every record read here, as a capture (compressed by extension).
    pub capture: Option<PathBuf>,
    /// Load customers the engine does not hold from the event table before
    /// applying their records (off by default; see the module doc).
    pub hydrate: Option<HydrateConfig>,
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig {
            start: StartPosition::TrimHorizon,
            engine: Some(EngineConfig::default()),
            checkpoint: None,
            checkpoint_interval: Duration::from_secs(10),
            leases: None,
            discover_interval: Duration::from_secs(10),
            reader: ReaderConfig::default(),
            max_records: None,
            idle_exit: None,
            clock: Clock::Stream,
            capture: None,
            hydrate: None,
        }
    }
}

impl LiveConfig {
    /// Checks the configuration without I/O; the error names the setting.
    pub fn validate(&self) -> Result<()> {
        anyhow::ensure!(!self.checkpoint_interval.is_zero(), "the checkpoint interval must be positive");
        anyhow::ensure!(!self.discover_interval.is_zero(), "the shard discovery interval must be positive");
        anyhow::ensure!(self.reader.limit >= 1, "the GetRecords limit must be at least 1");
        anyhow::ensure!(
            self.engine.is_some() || self.capture.is_some(),
            "a live run without an engine must write a capture"
        );
        if let Some(hydrate) = &self.hydrate {
            anyhow::ensure!(self.engine.is_some(), "hydration needs an engine (it loads customers' state)");
            anyhow::ensure!(!hydrate.table.is_empty(), "the table to hydrate from must not be empty");
            anyhow::ensure!(hydrate.concurrency >= 1, "the hydration concurrency must be at least 1");
        }
        if let Some(leases) = &self.leases {
            anyhow::ensure!(self.checkpoint.is_some(), "leases (a checkpoint table) need a local checkpoint file too");
            anyhow::ensure!(!leases.owner.is_empty(), "the consumer id must not be empty");
            let interval_ms = self.checkpoint_interval.as_millis() as i64;
            anyhow::ensure!(
                leases.lease_ms >= 3 * interval_ms,
                "a lease of {} ms is too short for checkpoints every {interval_ms} ms: leases are renewed at \
                 checkpoints and must last at least three intervals",
                leases.lease_ms
            );
        }
        Ok(())
    }
}

/// Why a run stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StopReason {
    /// The shutdown signal (SIGTERM, ctrl-c).
    Signal,
    /// `max_records` reached.
    MaxRecords,
    /// Every shard idle for `idle_exit`.
    Idle,
    /// Every shard read to its end (closed streams).
    Exhausted,
}

/// The outcome of a live run.
#[derive(Clone, Debug, Serialize)]
pub struct LiveSummary {
    /// The stream (`dynamodb-streams:ARN` / `kinesis:ARN`).
    pub stream: String,
    /// Why it stopped.
    pub stopped: StopReason,
    /// Totals since the first run of this checkpoint.
    pub totals: LiveTotals,
    /// Records processed by this run.
    pub records_this_run: u64,
    /// Stream time at the end (ms).
    pub stream_time_ms: Option<i64>,
    /// Wall clock minus stream time at the end (ms): how long ago the last
    /// record applied was written (it grows while the stream is quiet: not
    /// how far behind the reader is, which `millis_behind_latest` says).
    pub lag_ms: Option<i64>,
    /// How far behind its stream's newest record the reader is, the largest
    /// over the shards' last pages: Kinesis's MillisBehindLatest; for
    /// DynamoDB Streams now minus the newest creation time of the last page
    /// with records (an empty page says nothing: AWS returns them mid-shard).
    pub millis_behind_latest: Option<i64>,
    /// Shards read to their end.
    pub shards_finished: usize,
    /// What the engine did (since this run restored it).
    pub engine: Option<CountersSnapshot>,
    /// The engine's state at the end.
    pub state: Option<StateSize>,
    /// Customers loaded from the event table by this run, and what it took
    /// (`None` without hydration).
    pub hydrated: Option<HydrateStats>,
    /// Checkpoints written by this run.
    pub checkpoints: u64,
    /// Wall time of this run.
    pub seconds: f64,
    /// Records of this run per second of wall time.
    pub records_per_second: f64,
}

impl LiveSummary {
    /// The summary as an aligned table.
    pub fn table(&self) -> String {
        use pulse_runtime::report::thousands;
        use std::fmt::Write as _;
        let t = &self.totals;
        let mut s = String::new();
        let mut row = |k: &str, v: String| {
            let _ = writeln!(s, "  {k:<28} {v}");
        };
        row("stream", self.stream.clone());
        row("stopped by", format!("{:?}", self.stopped).to_lowercase());
        row("records (this run / all)", format!("{} / {}", thousands(self.records_this_run), thousands(t.records)));
        row("vectors (event / timer)", format!("{} / {}", thousands(t.vectors_event), thousands(t.vectors_timer)));
        row("invalid (dead letters)", thousands(t.invalid.values().sum()));
        for (code, n) in &t.invalid {
            row(&format!("  {code}"), thousands(*n));
        }
        row("trimmed (records lost)", thousands(t.trimmed));
        row("shards lost", thousands(t.shards_lost));
        row("shards finished", thousands(self.shards_finished as u64));
        if let Some(e) = &self.engine {
            row("duplicates", thousands(e.duplicates));
            row("non-event records", thousands(e.non_events));
        }
        if let Some(state) = &self.state {
            row("customers", thousands(state.customers));
        }
        if let Some(h) = &self.hydrated {
            row("hydrated customers", thousands(h.customers));
            row("  items read (queries)", format!("{} ({})", thousands(h.items_read), thousands(h.queries)));
            row("  events loaded", thousands(h.events));
            if h.invalid_items > 0 {
                row("  invalid items skipped", thousands(h.invalid_items));
            }
        }
        if let Some(behind) = self.millis_behind_latest {
            row("behind the stream's newest record", format!("{:.1} s", behind as f64 / 1000.0));
        }
        if let Some(lag) = self.lag_ms {
            row("last record written", format!("{:.1} s before the end", lag as f64 / 1000.0));
        }
        row("checkpoints", thousands(self.checkpoints));
        row("wall time", format!("{:.2} s", self.seconds));
        row("records/s", thousands(self.records_per_second as u64));
        s
    }
}

/// A live run, prepared: stream resolved, checkpoint loaded, leases ready.
#[derive(Debug)]
pub struct Consumer {
    config: LiveConfig,
    api: StreamApi,
    store: Option<CheckpointFile>,
    checkpoint: Option<Checkpoint>,
    leases: Option<LeaseTable>,
    hydrator: Option<Hydrator>,
}

impl Consumer {
    /// Validates `config`, loads its checkpoint (refusing one of another
    /// stream) and, with leases, makes sure their table exists. `dynamodb`
    /// is needed for leases and for hydration.
    pub async fn prepare(
        config: LiveConfig,
        api: StreamApi,
        dynamodb: Option<aws_sdk_dynamodb::Client>,
    ) -> Result<Consumer> {
        config.validate()?;
        let store = config.checkpoint.as_ref().map(CheckpointFile::new);
        let checkpoint = match &store {
            Some(store) => {
                let engine = config.engine;
                let file = store.clone();
                tokio::task::spawn_blocking(move || file.load(engine)).await.context("checkpoint loader failed")??
            }
            None => None,
        };
        if let Some(cp) = &checkpoint {
            if cp.header.stream != api.id() {
                bail!(
                    "checkpoint {} is for {}, not {}: use another checkpoint file, or delete it to start over",
                    store.as_ref().map_or(String::new(), |s| s.path().display().to_string()),
                    cp.header.stream,
                    api.id()
                );
            }
        }
        let hydrator = match &config.hydrate {
            Some(h) => {
                let client = dynamodb.clone().context("hydration needs a DynamoDB client")?;
                Some(Hydrator::new(client, &h.table, h.concurrency))
            }
            None => None,
        };
        let leases = match &config.leases {
            Some(l) => {
                let client = dynamodb.context("leases need a DynamoDB client")?;
                LeaseTable::ensure_table(&client, &l.table).await?;
                Some(LeaseTable::new(client, &l.table, api.id(), &l.owner, l.lease_ms))
            }
            None => None,
        };
        Ok(Consumer { config, api, store, checkpoint, leases, hydrator })
    }

    /// The sink's resume state from the checkpoint (hand it to the sink's constructor).
    pub fn sink_state(&self) -> Option<&serde_json::Value> {
        self.checkpoint.as_ref().and_then(|c| c.header.sink.as_ref())
    }

    /// Whether the run resumes a checkpoint.
    pub fn resumes(&self) -> bool {
        self.checkpoint.is_some()
    }

    /// Runs until `shutdown` completes, `max_records` or `idle_exit` is
    /// reached, or every shard is read to its end; then flushes, checkpoints
    /// and releases its leases.
    ///
    /// The loop is pulse's one [`Driver`]: the shards are its [`Source`]
    /// (`ShardSource`: a batch is a page of one shard; acknowledging
    /// writes the checkpoint), hydration its hook ([`TableHydration`]).
    pub async fn run<S: Sink>(self, mut sink: S, shutdown: impl Future<Output = ()>) -> Result<LiveSummary> {
        let started = Instant::now();
        let (mut source, processor, hydration) = ShardSource::new(self)?;
        let config = DriverConfig {
            checkpoints: Checkpoints::Every(source.config.checkpoint_interval),
            // The source counts records across restarts and ends at the limit.
            max_records: None,
            idle_exit: source.config.idle_exit,
            // The source waits for its shards itself.
            empty_wait: Duration::ZERO,
            retry: SOURCE_RETRY,
            apply: source.config.engine.is_some(),
        };
        let mut driver = Driver::new(processor, config)?.with_hydration(hydration);
        let shutdown = async {
            shutdown.await;
            tracing::info!("shutdown requested: flushing and checkpointing");
        };
        let ran = driver.run(&mut source, &mut sink, shutdown).await;
        source.abort_readers();
        let ran = ran?;
        let stopped = match ran.stopped {
            DriverStop::EndOfInput if source.reached_max() => StopReason::MaxRecords,
            DriverStop::EndOfInput => StopReason::Exhausted,
            DriverStop::MaxRecords => StopReason::MaxRecords,
            DriverStop::Idle => StopReason::Idle,
            DriverStop::Shutdown => StopReason::Signal,
        };
        let durable =
            Durable { processor: driver.processor(), sink_state: sink.checkpoint_state(), progress: driver.progress() };
        source.finish(&durable).await?;
        let engine = source.config.engine.is_some().then(|| driver.processor());
        let stream_time = engine.and_then(Processor::stream_time);
        let seconds = started.elapsed().as_secs_f64();
        let records_this_run = ran.progress.records;
        Ok(LiveSummary {
            stream: source.stream_id.clone(),
            stopped,
            totals: source.totals(&durable),
            records_this_run,
            stream_time_ms: stream_time,
            lag_ms: stream_time.map(|t| now_ms() - t),
            millis_behind_latest: source.millis_behind.values().copied().max(),
            shards_finished: source.acked.values().filter(|p| p.finished).count(),
            engine: engine.map(|p| p.engine().counters()),
            state: engine.map(|p| p.engine().state_size()),
            hydrated: driver.hydration().as_ref().map(|h| *h.stats()),
            checkpoints: source.checkpoints,
            seconds,
            records_per_second: records_this_run as f64 / seconds.max(1e-9),
        })
    }
}

/// Capacity of the channel from the readers, in pages.
const CHANNEL_PAGES: usize = 16;
/// How often idleness (and the wall clock) is looked at.
const IDLE_CHECK: Duration = Duration::from_millis(100);

/// The shards of a stream as the driver's [`Source`].
///
/// A batch is one page of one shard; a record's position is how many
/// records this run gave up to it. A page's last position (and a shard's
/// end) is logged, so an acknowledgement up to a position knows, per shard,
/// the last record whose effects are durable: that is what the checkpoint
/// file and the lease table record. Between pages, [`Source::next_batch`]
/// lists shards, starts the readers of shards that may start, renews leases
/// and, when every shard is caught up, gives an empty batch (the driver's
/// idleness), which with [`Clock::Wall`] moves stream time to the wall clock.
///
/// `next_batch` is cancel-safe for records: a page taken from the channel
/// is returned before anything else is awaited. The driver cancels it when
/// a checkpoint falls due; a shard listing or lease renewal cut short that
/// way is done again at its next tick (acquiring a lease this consumer
/// already holds succeeds).
struct ShardSource {
    config: LiveConfig,
    api: StreamApi,
    stream_id: String,
    capture: Option<ResumableFile>,
    store: Option<CheckpointFile>,
    leases: Option<LeaseTable>,
    /// Shards whose lease this consumer holds.
    owned: BTreeSet<String>,
    lineage: Lineage,
    /// Per shard, the last record given to the driver (and whether it ended).
    given: BTreeMap<String, ShardCheckpoint>,
    /// Per shard, the last record whose effects are durable: the checkpoint.
    acked: BTreeMap<String, ShardCheckpoint>,
    /// Page ends and shard ends given but not yet acknowledged.
    log: VecDeque<Given>,
    readers: HashMap<Arc<str>, Reading>,
    tx: mpsc::Sender<ShardMsg>,
    rx: mpsc::Receiver<ShardMsg>,
    /// The checkpoint's totals when this run started, with this run's
    /// trimmed pages and lost shards (the driver counts records and vectors).
    totals: LiveTotals,
    /// Records given by this run.
    records_given: u64,
    /// No checkpoint: the first listing's open shards start at `config.start`.
    fresh: bool,
    /// Shards that start at LATEST (open at the first listing of a fresh run).
    start_latest: BTreeSet<String>,
    listed: bool,
    exhausted: bool,
    ticks: Ticks,
    started: Instant,
    checkpoints: u64,
    millis_behind: HashMap<Arc<str>, i64>,
}

/// What the source gave, in order, for acknowledgements to settle.
#[derive(Debug)]
enum Given {
    /// A page of `shard` ended at position `at` with record `sequence_number`.
    Page { at: u64, shard: Arc<str>, sequence_number: String },
    /// `shard` was read to its end after position `at`.
    Ended { at: u64, shard: Arc<str> },
}

impl Given {
    fn at(&self) -> u64 {
        match self {
            Given::Page { at, .. } | Given::Ended { at, .. } => *at,
        }
    }
}

#[derive(Debug)]
struct Reading {
    task: JoinHandle<()>,
    caught_up: bool,
}

/// The source's own clocks (tokio's, so paused-clock tests drive them).
#[derive(Debug)]
struct Ticks {
    discover: Interval,
    leases: Interval,
    idle: Interval,
}

impl ShardSource {
    /// The source, the processor (the checkpoint's engine, or a new one) and
    /// the hydration hook of `consumer`.
    fn new(consumer: Consumer) -> Result<(ShardSource, Processor, Option<TableHydration>)> {
        let Consumer { config, api, store, checkpoint, leases, hydrator } = consumer;
        let (header, engine) = match checkpoint {
            Some(Checkpoint { header, engine }) => (Some(header), engine),
            None => (None, None),
        };
        let engine_config = config.engine.unwrap_or_default();
        let engine = engine.unwrap_or_else(|| Engine::new(engine_config));
        let processor = Processor::resume(Arc::new(engine), header.as_ref().and_then(|h| h.stream_time_ms));
        let capture = match &config.capture {
            Some(path) => {
                let at = pulse_runtime::files::resume_at(
                    path,
                    header.as_ref().and_then(|h| h.capture.as_ref()),
                    "the capture",
                );
                Some(ResumableFile::open(path, at)?)
            }
            None => None,
        };
        let positions = header.as_ref().map(|h| h.shards.clone()).unwrap_or_default();
        let finished = positions.iter().filter(|(_, p)| p.finished).map(|(id, _)| id.clone());
        let lineage = Lineage::new(finished);
        let (tx, rx) = mpsc::channel(CHANNEL_PAGES);
        let every = |d: Duration| {
            let mut i = tokio::time::interval_at(tokio::time::Instant::now() + d, d);
            i.set_missed_tick_behavior(MissedTickBehavior::Delay);
            i
        };
        let ticks = Ticks {
            discover: every(config.discover_interval),
            leases: every(config.checkpoint_interval),
            idle: every(IDLE_CHECK),
        };
        let source = ShardSource {
            stream_id: api.id(),
            capture,
            store,
            leases,
            owned: BTreeSet::new(),
            lineage,
            given: positions.clone(),
            acked: positions,
            log: VecDeque::new(),
            readers: HashMap::new(),
            tx,
            rx,
            totals: header.as_ref().map(|h| h.totals.clone()).unwrap_or_default(),
            records_given: 0,
            fresh: header.is_none(),
            start_latest: BTreeSet::new(),
            listed: false,
            exhausted: false,
            ticks,
            started: Instant::now(),
            checkpoints: 0,
            millis_behind: HashMap::new(),
            config,
            api,
        };
        Ok((source, processor, hydrator.map(TableHydration::new)))
    }

    /// `max_records` reached (counted across restarts).
    fn reached_max(&self) -> bool {
        self.config.max_records.is_some_and(|max| self.totals.records + self.records_given >= max)
    }

    /// The totals so far: the checkpoint's, and this run's `durable` counts.
    fn totals(&self, durable: &Durable<'_>) -> LiveTotals {
        let mut totals = self.totals.clone();
        totals.records += durable.progress.records;
        totals.vectors_event += durable.progress.vectors_event;
        totals.vectors_timer += durable.progress.vectors_timer;
        for (code, n) in durable.processor.invalid_counts() {
            *totals.invalid.entry((*code).to_owned()).or_default() += n;
        }
        totals
    }

    /// Lists the shards and starts every one that may start.
    async fn discover(&mut self) -> Result<()> {
        let listing = self.api.list_shards().await?;
        self.lineage.update(listing);
        if let Some(leases) = &self.leases {
            // Shards another consumer read to their end free their children here too.
            for (id, item) in leases.all().await? {
                if item.finished && !self.lineage.is_finished(&id) && self.lineage.get(&id).is_some() {
                    self.lineage.finish(&id);
                }
            }
        }
        if !self.listed {
            self.listed = true;
            if self.fresh && self.config.start == StartPosition::Latest {
                for id in self.lineage.skip_closed() {
                    self.given.entry(id.clone()).or_default().finished = true;
                    self.acked.entry(id).or_default().finished = true;
                }
                self.start_latest = self.lineage.ready().iter().map(|s| s.id.clone()).collect();
            }
        }
        self.start_ready().await
    }

    async fn start_ready(&mut self) -> Result<()> {
        let ready: Vec<String> = self.lineage.ready().iter().map(|s| s.id.clone()).collect();
        for id in ready {
            let mut start = match self.given.get(&id).and_then(|p| p.sequence_number.clone()) {
                Some(seq) => StartAt::After(seq),
                None if self.start_latest.contains(&id) => StartAt::Latest,
                None => StartAt::TrimHorizon,
            };
            if let Some(leases) = &self.leases {
                match leases.acquire(&id, now_ms()).await? {
                    Acquired::Refused { owner, expires_ms } => {
                        tracing::debug!(shard = %id, owner, expires_ms, "shard leased by another consumer");
                        continue;
                    }
                    Acquired::Owned(item) => {
                        if item.finished {
                            self.lineage.finish(&id);
                            self.given.entry(id.clone()).or_default().finished = true;
                            self.acked.entry(id.clone()).or_default().finished = true;
                            continue;
                        }
                        self.owned.insert(id.clone());
                        if let (None, Some(theirs)) =
                            (self.given.get(&id).and_then(|p| p.sequence_number.as_ref()), item.sequence_number)
                        {
                            // Another consumer read this shard up to `theirs`.
                            if self.config.hydrate.is_some() {
                                tracing::info!(
                                    shard = %id, after = %theirs,
                                    "shard last read by another consumer: resuming after its position; its customers \
                                     are hydrated from the table"
                                );
                            } else {
                                tracing::warn!(
                                    shard = %id, after = %theirs,
                                    "shard last read by another consumer: resuming after its position; this consumer \
                                     has no engine state for the records before it (run with --hydrate)"
                                );
                            }
                            start = StartAt::After(theirs);
                        }
                    }
                }
            }
            tracing::info!(shard = %id, start = ?start, "reading shard");
            self.lineage.start(&id);
            let shard: Arc<str> = Arc::from(id.as_str());
            let task = tokio::spawn(read_shard(
                self.api.clone(),
                shard.clone(),
                start,
                self.config.reader.clone(),
                self.tx.clone(),
            ));
            self.readers.insert(shard, Reading { task, caught_up: false });
        }
        Ok(())
    }

    /// Handles one message of the readers; a page with records becomes a batch.
    async fn on_message(&mut self, msg: ShardMsg) -> Result<Option<Batch<u64>>, SourceError> {
        match msg {
            ShardMsg::Page { shard, records, millis_behind } => {
                if let Some(r) = self.readers.get_mut(&shard) {
                    if records.is_empty() && !r.caught_up {
                        tracing::debug!(shard = %shard, "shard caught up");
                    }
                    r.caught_up = records.is_empty();
                }
                if let Some(ms) = millis_behind {
                    self.millis_behind.insert(shard.clone(), ms);
                }
                if records.is_empty() {
                    return Ok(None);
                }
                let batch = self.give(&shard, records, millis_behind).map_err(SourceError::Fatal)?;
                Ok(Some(batch))
            }
            ShardMsg::Ended { shard, lost } => {
                if lost {
                    self.totals.shards_lost += 1;
                }
                tracing::info!(shard = %shard, lost, "shard finished");
                self.readers.remove(&shard);
                self.millis_behind.remove(&shard);
                self.lineage.finish(&shard);
                self.given.entry(shard.to_string()).or_default().finished = true;
                self.log.push_back(Given::Ended { at: self.records_given, shard: shard.clone() });
                // Its children are usually listed already: start them now.
                if let Err(e) = self.discover().await {
                    tracing::warn!(error = %format!("{e:#}"), "shard listing failed; trying again later");
                }
                self.exhausted = self.readers.is_empty() && self.lineage.all_finished();
                Ok(None)
            }
            ShardMsg::Trimmed { shard, detail } => {
                self.totals.trimmed += 1;
                tracing::error!(shard = %shard, detail, trimmed = self.totals.trimmed, "records lost to retention");
                Ok(None)
            }
            ShardMsg::Failed { shard, error } => {
                Err(SourceError::Fatal(anyhow!(error).context(format!("cannot read shard {shard}"))))
            }
        }
    }

    /// A page of `shard` (up to `max_records`) as a batch; captured first.
    fn give(&mut self, shard: &Arc<str>, records: Vec<api::LiveRecord>, behind: Option<i64>) -> Result<Batch<u64>> {
        let room = match self.config.max_records {
            Some(max) => max.saturating_sub(self.totals.records + self.records_given) as usize,
            None => usize::MAX,
        };
        let records: Vec<api::LiveRecord> = records.into_iter().take(room).collect();
        if let Some(capture) = self.capture.as_mut() {
            let mut captured = Vec::with_capacity(records.iter().map(|r| r.line.len() + 1).sum());
            for record in &records {
                captured.extend_from_slice(&record.line);
                captured.push(b'\n');
            }
            capture.write_all(&captured)?;
        }
        let mut batch = Vec::with_capacity(records.len());
        for record in records {
            self.records_given += 1;
            let origin = Source {
                line: None,
                shard_id: Some(shard.to_string()),
                sequence_number: Some(record.sequence_number.clone()),
            };
            batch.push(Record { origin, body: Body::Line(record.line), position: self.records_given });
        }
        if let Some(last) = batch.last() {
            let sequence_number = last.origin.sequence_number.clone().unwrap_or_default();
            self.given.entry(shard.to_string()).or_default().sequence_number = Some(sequence_number.clone());
            self.log.push_back(Given::Page { at: self.records_given, shard: shard.clone(), sequence_number });
        }
        Ok(Batch { records: batch, behind_ms: behind, advance_to: None })
    }

    fn all_caught_up(&self) -> bool {
        self.readers.values().all(|r| r.caught_up)
    }

    /// Everything given up to position `at` is durable.
    fn settle(&mut self, at: u64) {
        while self.log.front().is_some_and(|g| g.at() <= at) {
            match self.log.pop_front() {
                Some(Given::Page { shard, sequence_number, .. }) => {
                    self.acked.entry(shard.to_string()).or_default().sequence_number = Some(sequence_number);
                }
                Some(Given::Ended { shard, .. }) => self.acked.entry(shard.to_string()).or_default().finished = true,
                None => {}
            }
        }
    }

    /// Writes the checkpoint: the acknowledged positions, with the state
    /// `durable` says they left (engine, stream time, sink, counts) and the
    /// capture's committed length, in one atomically replaced file.
    async fn write_checkpoint(&mut self, durable: &Durable<'_>) -> Result<()> {
        let capture = match self.capture.as_mut() {
            Some(c) => Some((c.path().to_owned(), c.commit()?)),
            None => None,
        };
        let with_engine = self.config.engine.is_some();
        let header = CheckpointHeader {
            format: FORMAT,
            stream: self.stream_id.clone(),
            written_at_ms: now_ms(),
            shards: self.acked.clone(),
            stream_time_ms: durable.processor.stream_time().filter(|_| with_engine),
            engine: self.config.engine.as_ref().map(engine_label),
            totals: self.totals(durable),
            sink: durable.sink_state.clone(),
            capture,
        };
        if let Some(store) = self.store.clone() {
            let engine = with_engine.then(|| durable.processor.engine().clone());
            tokio::task::spawn_blocking(move || store.save(&header, engine.as_deref()))
                .await
                .context("checkpoint writer failed")??;
            // Only what reached a file counts: without --checkpoint the
            // barrier still runs (outputs flushed) but nothing is kept.
            self.checkpoints += 1;
        }
        let seconds = self.started.elapsed().as_secs_f64();
        let totals = self.totals(durable);
        tracing::info!(
            records = totals.records,
            records_per_s = (durable.progress.records as f64 / seconds.max(1e-9)) as u64,
            vectors = totals.vectors_event + totals.vectors_timer,
            dead_letters = totals.invalid.values().sum::<u64>(),
            trimmed = totals.trimmed,
            behind_ms = self.millis_behind.values().copied().max(),
            last_record_age_ms = durable.processor.stream_time().map(|t| now_ms() - t),
            shards_reading = self.readers.len(),
            "checkpoint"
        );
        Ok(())
    }

    /// Mirrors the acknowledged positions to the lease table, which renews
    /// the leases (and tells of those lost to another consumer).
    async fn commit_leases(&mut self) -> Result<()> {
        let Some(leases) = self.leases.clone() else { return Ok(()) };
        let now = now_ms();
        for id in self.owned.clone() {
            let position = self.acked.get(&id).cloned().unwrap_or_default();
            let still = leases.commit(&id, position.sequence_number.as_deref(), position.finished, now).await?;
            if position.finished || !still {
                self.owned.remove(&id);
            }
            if !still {
                tracing::warn!(shard = %id, "lease lost to another consumer: no longer reading this shard");
                if let Some(r) = self.readers.remove(id.as_str()) {
                    r.task.abort();
                }
                self.lineage.stop(&id);
            }
        }
        Ok(())
    }

    fn abort_readers(&mut self) {
        for (_, r) in self.readers.drain() {
            r.task.abort();
        }
    }

    /// After a clean stop (the sink closed: everything given is durable):
    /// the last checkpoint, then the leases mirrored and released.
    async fn finish(&mut self, durable: &Durable<'_>) -> Result<()> {
        self.settle(u64::MAX);
        self.write_checkpoint(durable).await?;
        self.commit_leases().await?;
        if let Some(leases) = &self.leases {
            for id in &self.owned {
                leases.release(id).await?;
            }
        }
        Ok(())
    }
}

impl RecordSource for ShardSource {
    type Position = u64;

    async fn next_batch(&mut self) -> Result<Option<Batch<u64>>, SourceError> {
        if !self.listed {
            self.discover().await.context("cannot list the stream's shards").map_err(SourceError::Fatal)?;
        }
        loop {
            if self.reached_max() || self.exhausted {
                return Ok(None);
            }
            // Ticks first: a backlog of pages must not starve lease renewals.
            tokio::select! {
                biased;
                _ = self.ticks.leases.tick() => self.commit_leases().await.map_err(SourceError::Fatal)?,
                _ = self.ticks.idle.tick() => {
                    if self.all_caught_up() {
                        let behind = self.millis_behind.values().copied().max();
                        let mut batch = match self.config.clock {
                            Clock::Wall => Batch::advance_to(now_ms()),
                            Clock::Stream => Batch::empty(),
                        };
                        batch.behind_ms = behind;
                        return Ok(Some(batch));
                    }
                }
                _ = self.ticks.discover.tick() => {
                    if let Err(e) = self.discover().await {
                        tracing::warn!(error = %format!("{e:#}"), "shard listing failed; trying again later");
                    }
                }
                msg = self.rx.recv() => {
                    let msg = msg.ok_or_else(|| SourceError::Fatal(anyhow!("the shard readers' channel closed")))?;
                    if let Some(batch) = self.on_message(msg).await? {
                        return Ok(Some(batch));
                    }
                }
            }
        }
    }

    async fn acknowledge(&mut self, position: &u64, durable: &Durable<'_>) -> Result<()> {
        self.settle(*position);
        self.write_checkpoint(durable).await
    }
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}
