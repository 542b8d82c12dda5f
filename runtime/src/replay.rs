//! `pulse replay` and `pulse demo` on the [`Driver`]: a capture file or the
//! synthetic marketplace through the engine, and optionally the model, as
//! fast as the machine allows.
//!
//! ```text
//! ReplaySource (a Source)            Driver                ReplaySink (a Sink)
//! read lines ─► decode ─► channel ─► apply (Processor) ─► vectors, dead letters ─► writer thread
//! (or generate)  thread                                   └► scoring (Background) ─► reasons ─► writer thread
//!                                                            predictions, alerts,    threads
//!                                                            fleet metrics
//! ```
//!
//! The stages still run side by side, joined by bounded channels
//! (backpressure end to end; no unbounded queue): the source reads and
//! decodes on threads of its own and hands the driver decoded batches of
//! 2,048 lines ([`Body::Decoded`]); the driver applies them on the caller's
//! task; the sink writes on its own threads, and scores on its own task
//! ([`Background`]), so the engine never waits for the model or the disk.
//! Acknowledging does nothing (a replay starts over from its first line), so
//! the only barrier is the sink's close at the end, which scores what is
//! left, writes the last fleet snapshot and finishes the files. Alerts are
//! decided in one place, the scoring stage ([`ScoringStage`]); their
//! reasons, and the predictions', are worked out on two threads of their
//! own in front of the scoring files, message by message in turn, and the
//! customers' latest reasons kept on a third, in order ([`Reasoner`]: the
//! exact attribution costs about twice the inference, and there it runs
//! beside the stage instead of after it; the bytes are the same). Timers and
//! micro-batch linger run on stream time, so the output depends only on the
//! input, not on how it was cut into batches.
//!
//! With [`ReplayConfig::workers`] N > 1, N threads decode (batch `i` by
//! decoder `i mod N`, taken back in turn), N engines apply ([`Workers`]:
//! customers partitioned by a hash of their id, vectors merged back into one
//! engine's order), and N threads serialize the vectors and dead letters
//! (in turn again) for the one thread that writes them. Reading, the
//! driver's per-batch merge, writing and the scoring stage stay single:
//! the output is the same bytes for every N.

use std::collections::BTreeMap;
use std::io::{BufReader, Write};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use pulse_model::Scorer;
use pulse_operators::scoring::{Alert, FleetMetrics};
use pulse_operators::{CountersSnapshot, Engine, EngineConfig, StateSize};
use pulse_schemas::capture::{decode_line, MAX_LINE_BYTES};
use pulse_schemas::prediction::Prediction;
use pulse_schemas::record::{Invalid, InvalidReason};
use pulse_schemas::{Source, StreamRecord};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::archive::InputFormat;
use crate::background::Background;
use crate::driver::{Driver, DriverConfig};
use crate::io::{open_input_unbuffered, Output};
use crate::lines::{LineBatch, LineReader, Recycle, TooLong};
use crate::process::{write_vector_line, Processor, Produced};
use crate::scoring::{CustomerLists, LatestReasons, Reasoner, Scored, ScoringConfig, ScoringStage, ScoringStats};
use crate::sink::Sink;
use crate::source::{Batch, Body, Record, Source as RecordSource, SourceError};
use crate::workers::Workers;

/// A stage stopped because the next one is gone; that one's error is the cause.
#[derive(Debug, thiserror::Error)]
#[error("the {0} stage stopped early")]
struct StoppedEarly(&'static str);

/// Lines per batch between stages.
const BATCH_LINES: usize = 2048;
/// Batches in flight between two stages.
const CHANNEL_BATCHES: usize = 8;

/// Where records come from.
#[derive(Clone, Debug)]
pub enum Input {
    /// A capture file (JSON Lines; `.zst`/`.gz` decompressed).
    Capture(PathBuf),
    /// Lines made on the fly (the synthetic marketplace, `pulse-synth`).
    Generated(Generator),
}

/// Writes capture lines to the writer it is given, calling the counter with
/// the number of records made so far; run on a blocking thread.
pub type GenerateFn = dyn Fn(&mut dyn Write, &mut dyn FnMut(u64)) -> Result<()> + Send + Sync;

/// A source of generated capture lines and how many records it expects to
/// make (for progress only).
#[derive(Clone)]
pub struct Generator {
    /// Records expected, for a progress display.
    pub estimate: u64,
    /// The generator.
    pub run: Arc<GenerateFn>,
}

impl std::fmt::Debug for Generator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generator").field("estimate", &self.estimate).finish_non_exhaustive()
    }
}

/// What a progress count counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressUnit {
    /// Bytes of the input file read (compressed size for a compressed file).
    Bytes,
    /// Records generated.
    Records,
}

/// How far a run has got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProgressUpdate {
    /// What is counted.
    pub unit: ProgressUnit,
    /// The expected total (an estimate for generated input).
    pub total: u64,
    /// The count so far.
    pub count: u64,
    /// The last update of the run.
    pub finished: bool,
}

/// Told how far a run has got, every 200 ms and once at the end: the
/// runtime counts, the caller draws (the CLI's progress bar).
#[derive(Clone)]
pub struct ProgressObserver(pub Arc<dyn Fn(ProgressUpdate) + Send + Sync>);

impl std::fmt::Debug for ProgressObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProgressObserver")
    }
}

/// Calls the observer every `every` from a counter, until aborted.
fn spawn_ticker(
    observer: Option<ProgressObserver>,
    unit: ProgressUnit,
    total: u64,
    counter: Arc<AtomicU64>,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let Some(observer) = observer else { return };
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            (observer.0)(ProgressUpdate { unit, total, count: counter.load(Relaxed), finished: false });
        }
    })
}

/// Where results go; `None` skips a sink.
#[derive(Clone, Debug, Default)]
pub struct Outputs {
    /// Feature vectors (JSON Lines; compressed by extension).
    pub features: Option<PathBuf>,
    /// Dead letters.
    pub dead_letters: Option<PathBuf>,
    /// Predictions, every one (needs scoring).
    pub predictions: Option<PathBuf>,
    /// The latest prediction of each customer (needs scoring): one line per
    /// customer scored, in customer order, written when the run ends (until
    /// then the writer holds one prediction per customer).
    pub latest_predictions: Option<PathBuf>,
    /// Alerts (needs scoring).
    pub alerts: Option<PathBuf>,
    /// Fleet-metrics snapshots (needs scoring).
    pub metrics: Option<PathBuf>,
    /// The engines' state at the end (`pulse_operators::snapshot`'s format,
    /// one snapshot per worker, back to back), then read back to check it:
    /// both timed in [`ReplaySummary::snapshot`].
    pub snapshot: Option<PathBuf>,
    /// The flags that named `predictions` and `latest_predictions`, for the
    /// checks' messages: `pulse demo` calls them `--predictions-history`
    /// and `--predictions-out` (`None`: `pulse replay`'s names).
    pub flags: Option<(&'static str, &'static str)>,
}

/// The end state written and read back ([`Outputs::snapshot`]).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct SnapshotTiming {
    /// Bytes written.
    pub bytes: u64,
    /// Seconds to write them (synced to disk).
    pub write_seconds: f64,
    /// Seconds to read them back into engines, checked.
    pub read_seconds: f64,
}

/// What to run.
#[derive(Clone, Debug)]
pub struct ReplayConfig {
    /// The records.
    pub input: Input,
    /// The files.
    pub outputs: Outputs,
    /// The engine's configuration.
    pub engine: EngineConfig,
    /// Score with this configuration (needs a model), or not at all.
    pub scoring: Option<ScoringConfig>,
    /// Told how far the run has got, if anyone asks.
    pub progress: Option<ProgressObserver>,
    /// Decoders and engines side by side ([`Workers`]): the output is the
    /// same, byte for byte, for every number.
    pub workers: NonZeroUsize,
    /// Threads that work out the predictions' reasons beside the scoring
    /// stage ([`Reasoner`], message by message in turn); 0: the stage
    /// works them out itself. The output is the same, byte for byte, for
    /// every number.
    pub reasons_threads: usize,
}

/// [`ReplayConfig::reasons_threads`] unless told otherwise: on two cores,
/// two (the attribution costs about twice the inference; one thread of
/// its own was the long pole of the demo).
pub const DEFAULT_REASONS_THREADS: usize = 2;

impl ReplayConfig {
    /// A plain replay of a capture to a features file.
    pub fn capture(capture: PathBuf, features: Option<PathBuf>) -> ReplayConfig {
        ReplayConfig {
            input: Input::Capture(capture),
            outputs: Outputs { features, ..Outputs::default() },
            engine: EngineConfig::default(),
            scoring: None,
            progress: None,
            workers: NonZeroUsize::MIN,
            reasons_threads: DEFAULT_REASONS_THREADS,
        }
    }
}

/// The scoring part of a summary.
#[derive(Clone, Debug, Serialize)]
pub struct ScoringSummary {
    /// The stage's counts.
    pub stats: ScoringStats,
    /// The fleet at the end.
    pub fleet: FleetMetrics,
    /// The ten customers with the highest churn risk at the end.
    pub top_at_risk: Vec<Prediction>,
    /// The savable customers and those already gone, ten of each.
    pub lists: CustomerLists,
    /// The last alerts raised (oldest first), with their reasons.
    pub recent_alerts: Vec<Alert>,
    /// Predictions given reasons.
    pub explained: u64,
    /// Predictions whose attribution failed (sent without reasons, logged).
    pub unexplained: u64,
    /// The model's realised quality at the end (with the monitor on).
    pub model_quality: Option<pulse_operators::scoring::ModelQuality>,
}

/// The outcome of a run.
#[derive(Clone, Debug, Serialize)]
pub struct ReplaySummary {
    /// Lines read or generated (blank lines included).
    pub lines: u64,
    /// Records decoded and applied, or dead-lettered.
    pub records: u64,
    /// Vectors emitted on records.
    pub vectors_event: u64,
    /// Vectors emitted by timers.
    pub vectors_timer: u64,
    /// Dead letters by reason code.
    pub invalid: BTreeMap<&'static str, u64>,
    /// Records out of stream order ([`crate::process::Behind`]).
    pub behind: crate::process::Behind,
    /// What the input's records were (a Kinesis archive is read as the
    /// capture `pulse capture --source kinesis` would have written).
    pub input_format: InputFormat,
    /// What the engine did.
    pub engine: CountersSnapshot,
    /// State held at the end, and its peak.
    pub state: StateSize,
    /// First and last stream time seen (ms), if any record carried one.
    pub stream_span_ms: Option<(i64, i64)>,
    /// Scoring, when it ran.
    pub scoring: Option<ScoringSummary>,
    /// Wall time.
    pub seconds: f64,
    /// Records per second of wall time.
    pub records_per_second: f64,
    /// The end state written and read back, when asked.
    pub snapshot: Option<SnapshotTiming>,
}

impl ReplaySummary {
    /// Dead letters in all.
    pub fn invalid_total(&self) -> u64 {
        self.invalid.values().sum()
    }
}

/// A capture line as [`for_each_line`] hands it over: its bytes, or the
/// dead letter of a line too long to hold.
pub type CaptureLine<'a> = Result<&'a [u8], Invalid>;

/// Calls `f` with every record line of a capture (plain or compressed), in
/// order, as a replay reads them: blank lines left out, `\r\n` ends too, and
/// a line longer than [`MAX_LINE_BYTES`] read past without being held and
/// handed over as its `line_too_long` dead letter. A command that replays a
/// capture its own way (`pulse dataset`, `pulse train`) reads it with this,
/// so that its vectors are the replay's. `progress` gets the file's bytes
/// read now and then, and at the end. Returns what the records were (a
/// Kinesis archive's are handed over as capture lines, as a replay reads
/// them).
pub fn for_each_line(
    path: &Path,
    f: &mut dyn FnMut(CaptureLine<'_>),
    progress: &mut dyn FnMut(u64),
) -> Result<InputFormat> {
    let input = open_input_unbuffered(path)?;
    let format = input.format;
    let consumed = input.consumed.clone();
    let mut lines = LineReader::new(input.reader, BATCH_LINES, MAX_LINE_BYTES);
    while let Some(mut batch) = lines.next_batch().with_context(|| format!("cannot read {}", path.display()))? {
        progress(consumed.load(Relaxed));
        let mut too_long = std::mem::take(&mut batch.too_long).into_iter().peekable();
        for (i, line) in batch.lines().enumerate() {
            if let Some((_, long)) = too_long.next_if(|(at, _)| *at == i) {
                f(Err(line_too_long(&long)));
            } else if !line.iter().all(u8::is_ascii_whitespace) {
                f(Ok(line));
            }
        }
    }
    progress(consumed.load(Relaxed));
    Ok(format)
}

/// The dead letter of a line read past for its length.
fn line_too_long(long: &TooLong) -> Invalid {
    Invalid::from(InvalidReason::LineTooLong { bytes: long.bytes, limit: MAX_LINE_BYTES as u64, xxh3: long.xxh3 })
}

impl Outputs {
    /// Each file asked for, named by its flag, for the checks of
    /// [`check_output_files`] (a command adds the files it writes itself).
    pub fn named(&self) -> Vec<(&'static str, &Path)> {
        let (every, latest) = self.flags.unwrap_or(("--predictions-out", "the latest predictions"));
        let outputs = [
            ("--features-out", &self.features),
            ("--dead-letter-out", &self.dead_letters),
            (every, &self.predictions),
            (latest, &self.latest_predictions),
            ("--alerts-out", &self.alerts),
            ("--metrics-out", &self.metrics),
            ("--snapshot-out", &self.snapshot),
        ];
        outputs.into_iter().filter_map(|(flag, p)| p.as_deref().map(|p| (flag, p))).collect()
    }
}

/// Refuses outputs that would overwrite the input or each other: the same
/// path, or another name of the same file (a symbolic or hard link), found
/// before any file is created or truncated. `pulse replay X --features-out X`
/// used to truncate the capture it was reading.
fn check_distinct_files(config: &ReplayConfig) -> Result<()> {
    if let Some(snapshot) = &config.outputs.snapshot {
        // Its format is `pulse run`'s checkpoint, read back as written: an
        // extension promising compression was ignored.
        anyhow::ensure!(
            crate::io::Compression::of(snapshot) == crate::io::Compression::None,
            "--snapshot-out {}: snapshots are written uncompressed; name it without .zst or .gz",
            snapshot.display()
        );
    }
    let mut files: Vec<(&str, &Path)> = Vec::new();
    if let Input::Capture(path) = &config.input {
        files.push(("the capture", path));
    }
    check_output_files(&files, &config.outputs.named())
}

/// Refuses, before any file is created or truncated, an output that is a
/// directory and any two files (inputs and outputs) that are one and the
/// same ([`refuse_same_files`]). A command that writes anything calls it
/// with every path it was given, whatever writes it: `pulse capture --out X
/// --checkpoint X` used to leave a checkpoint where the capture was, and
/// `pulse replay --summary-json` could overwrite the capture.
pub fn check_output_files(inputs: &[(&str, &Path)], outputs: &[(&str, &Path)]) -> Result<()> {
    // Found now, not when the writer first opens it at the end of the run.
    for (flag, path) in outputs {
        if path.is_dir() {
            return Err(anyhow!("{flag} {} is a directory: name a file", path.display()));
        }
        // The nearest existing folder on its path must be a folder: a file
        // there (`--out-dir` naming a file, `--snapshot-out file/s.bin`) was
        // found only when that output was created, after the run.
        let mut at = path.parent();
        while let Some(dir) = at.filter(|d| !d.as_os_str().is_empty()) {
            match std::fs::metadata(dir) {
                Ok(m) if !m.is_dir() => {
                    return Err(anyhow!("{flag} {}: {} is not a directory", path.display(), dir.display()));
                }
                Ok(_) => break,
                Err(_) => at = dir.parent(),
            }
        }
    }
    // An output's `-` is standard output (an input's is standard input).
    let to_stdout: Vec<&str> = outputs.iter().filter(|(_, p)| crate::io::is_stdin(p)).map(|(f, _)| *f).collect();
    if to_stdout.len() > 1 {
        return Err(anyhow!("{} name standard output (-): only one output can go there", to_stdout.join(", ")));
    }
    let outputs = outputs.iter().map(|&(f, p)| (f, if crate::io::is_stdin(p) { Path::new("/dev/stdout") } else { p }));
    let all: Vec<(&str, &Path)> = inputs.iter().copied().chain(outputs).collect();
    refuse_same_files(&all)
}

/// Refuses files that are one and the same (the same path, or another name
/// of the same file through a symbolic or hard link), each named by what it
/// is (`("the capture", path)`, `("--out", path)`): the error says which
/// later one is the same file as which earlier one. Call it before any file
/// is created or truncated: `pulse replay X --features-out X` and `pulse
/// dataset X --out X` used to truncate the capture they were reading.
pub fn refuse_same_files(files: &[(&str, &Path)]) -> Result<()> {
    let ids: Vec<FileId> = files.iter().map(|(_, p)| FileId::of(p)).collect();
    for (i, a) in ids.iter().enumerate() {
        for (j, b) in ids.iter().enumerate().skip(i + 1) {
            if a == b && *a != FileId::Device {
                let ((what_a, path_a), (what_b, path_b)) = (files[i], files[j]);
                return Err(anyhow!(
                    "{what_b} {} is the same file as {what_a} {}: refusing to overwrite it; choose another path",
                    path_b.display(),
                    path_a.display()
                ));
            }
        }
    }
    Ok(())
}

/// A file's identity: its device and inode when it exists (every name of
/// it, through links, has the same), else its path with the parent
/// directory resolved. A device or pipe (`/dev/null`, `/dev/stdout`, a
/// FIFO) is not a file a run could destroy: several outputs may name it.
#[derive(Debug, PartialEq, Eq)]
enum FileId {
    Inode(u64, u64),
    Path(PathBuf),
    Device,
}

impl FileId {
    fn of(path: &Path) -> FileId {
        // `-` is standard input: the file it was redirected from, if any.
        let path = crate::io::stdin_alias(path);
        #[cfg(unix)]
        if let Ok(meta) = std::fs::metadata(path) {
            use std::os::unix::fs::MetadataExt as _;
            if !meta.is_file() && !meta.is_dir() {
                return FileId::Device;
            }
            return FileId::Inode(meta.dev(), meta.ino());
        }
        let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let parent = std::fs::canonicalize(parent).unwrap_or_else(|_| parent.to_path_buf());
        FileId::Path(parent.join(path.file_name().unwrap_or_default()))
    }
}

/// Runs to the end of the input. `scorer` is needed when `config.scoring` is set.
pub async fn replay<S: Scorer>(config: ReplayConfig, scorer: Option<S>) -> Result<ReplaySummary> {
    let started = Instant::now();
    let engine = Arc::new(Engine::new(config.engine));
    let stage = match (&config.scoring, scorer) {
        (Some(sc), Some(s)) => Some(ScoringStage::new(s, sc.clone())?),
        (Some(_), None) => return Err(anyhow!("scoring needs a model")),
        (None, _) => None,
    };
    let o = &config.outputs;
    let needs_scoring = [&o.predictions, &o.latest_predictions, &o.alerts, &o.metrics];
    if stage.is_none() && needs_scoring.iter().any(|o| o.is_some()) {
        return Err(anyhow!("predictions, alerts and fleet metrics need scoring"));
    }
    check_distinct_files(&config)?;

    let (mut source, unit, total, counter) = ReplaySource::start(config.input.clone(), config.workers)?;
    let mut sink = ReplaySink::open(&config.outputs, stage, config.workers, config.reasons_threads);
    let mut driver = Driver::new(Processor::new(engine.clone()), DriverConfig::default())?;
    if config.workers.get() > 1 {
        // The driver's engine then holds no customer: the workers' do.
        driver = driver.with_workers(Workers::new(config.workers, config.engine));
    }

    let ticker = spawn_ticker(config.progress.clone(), unit, total, counter.clone(), Duration::from_millis(200));
    // The driver applies on a thread of its own, as the engine stage always
    // did: the caller's task may be a runtime worker, which must not be
    // held by seconds of engine work, and a dedicated thread keeps the
    // stages side by side on two cores.
    let handle = tokio::runtime::Handle::current();
    let (driver, source, sink, ran) = tokio::task::spawn_blocking(move || {
        let ran = handle.block_on(driver.run(&mut source, &mut sink, std::future::pending()));
        (driver, source, sink, ran)
    })
    .await
    .context("the driver's thread failed")?;
    ticker.abort();
    if let Some(observer) = &config.progress {
        (observer.0)(ProgressUpdate { unit, total, count: counter.load(Relaxed), finished: true });
    }
    let ran = ran.map_err(|e| anyhow!("{e:#}"))?;
    let scoring = sink.scoring.and_then(Background::into_inner).map(|s| ScoringSummary {
        stats: s.stage.stats(),
        fleet: s.stage.fleet(),
        top_at_risk: s.stage.top_at_risk(10),
        lists: s.stage.lists(10),
        recent_alerts: s.stage.recent_alerts(),
        explained: s.stage.explained().0,
        unexplained: s.stage.explained().1,
        model_quality: s.stage.model_quality(),
    });

    let (counters, state) = match driver.workers() {
        Some(workers) => (workers.counters(), workers.state_size()),
        None => (engine.counters(), engine.state_size()),
    };
    let seconds = started.elapsed().as_secs_f64();
    let snapshot = match &config.outputs.snapshot {
        Some(path) => {
            let engines: Vec<&Engine> = match driver.workers() {
                Some(workers) => workers.engines().map(|e| &**e).collect(),
                None => vec![&*engine],
            };
            Some(write_and_check_snapshot(path, &engines)?)
        }
        None => None,
    };
    Ok(ReplaySummary {
        lines: source.lines,
        records: ran.progress.records,
        vectors_event: counters.vectors_event,
        vectors_timer: counters.vectors_timer,
        invalid: driver.processor().invalid_counts().clone(),
        behind: driver.processor().behind(),
        input_format: source.format,
        engine: counters,
        state,
        stream_span_ms: ran.stream_span_ms,
        scoring,
        seconds,
        records_per_second: ran.progress.records as f64 / seconds.max(1e-9),
        snapshot,
    })
}

/// Writes the engines' snapshots to `path` (synced), reads them back and
/// checks each restores its engine exactly ([`Engine::check_snapshot`]:
/// every customer rebuilt as a restore rebuilds it and compared, one at a
/// time, so the check never holds a second copy of the state: at a million
/// customers that copy was 1.5 GB of peak memory); times both.
fn write_and_check_snapshot(path: &Path, engines: &[&Engine]) -> Result<SnapshotTiming> {
    let what = || format!("the snapshot {}", path.display());
    let started = Instant::now();
    // Beside the path, then renamed over it, as every output (`Staged`).
    let (file, staged) = crate::io::Staged::create(path)?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    for engine in engines {
        engine.write_snapshot(&mut w).with_context(what)?;
    }
    let file = w.into_inner().map_err(|e| e.into_error()).with_context(what)?;
    file.sync_all().with_context(what)?;
    let write_seconds = started.elapsed().as_secs_f64();
    let bytes = file.metadata().with_context(what)?.len();
    drop(file);
    // Read back from where it was written: put in place only once checked
    // (and, in a command, with its other outputs at the end).
    let started = Instant::now();
    let mut r = BufReader::with_capacity(1 << 20, std::fs::File::open(staged.temp_path()).with_context(what)?);
    for (i, engine) in engines.iter().enumerate() {
        engine.check_snapshot(&mut r).with_context(|| format!("reading back {} (engine {i})", what()))?;
    }
    let read_seconds = started.elapsed().as_secs_f64();
    staged.commit()?;
    Ok(SnapshotTiming { bytes, write_seconds, read_seconds })
}

/// The replay's [`RecordSource`]: lines read (and decompressed) or generated
/// on one thread, decoded on others (batch `i` by decoder `i mod n`), handed
/// to the driver in decoded batches, in input order (taken from the
/// decoders in turn). Its position is `()`: a replay has nothing to
/// acknowledge.
#[derive(Debug)]
struct ReplaySource {
    /// Each decoder's output, taken in turn from `next`.
    rxs: Vec<mpsc::Receiver<Vec<Record<()>>>>,
    next: usize,
    reader: Option<JoinHandle<Result<u64>>>,
    decoders: Vec<JoinHandle<Result<()>>>,
    /// Lines read or generated (blank ones included), known at the end.
    lines: u64,
    /// What the input's records are.
    format: InputFormat,
}

impl ReplaySource {
    /// Starts the reader (or generator) and decoder threads; returns the
    /// source and what its progress counts.
    fn start(input: Input, decoders: NonZeroUsize) -> Result<(ReplaySource, ProgressUnit, u64, Arc<AtomicU64>)> {
        let (mut line_txs, mut line_rxs, mut decoded_txs, mut decoded_rxs) = (vec![], vec![], vec![], vec![]);
        for _ in 0..decoders.get() {
            let (line_tx, line_rx) = mpsc::channel::<LineBatch>(CHANNEL_BATCHES);
            let (decoded_tx, decoded_rx) = mpsc::channel::<Vec<Record<()>>>(CHANNEL_BATCHES);
            line_txs.push(line_tx);
            line_rxs.push(line_rx);
            decoded_txs.push(decoded_tx);
            decoded_rxs.push(decoded_rx);
        }
        let line_tx = InTurn { txs: line_txs, next: 0 };
        let mut format = InputFormat::Capture;
        let (unit, total, counter, reader, recycle) = match input {
            Input::Capture(path) => {
                // Unbuffered: the line reader reads straight into its batches.
                let input = open_input_unbuffered(&path)?;
                let (total, counter) = (input.file_bytes, input.consumed.clone());
                format = input.format;
                let mut lines = LineReader::new(input.reader, BATCH_LINES, MAX_LINE_BYTES);
                let recycle = lines.recycle();
                // Read before any output is created: an input that cannot
                // be read (a directory, a corrupt .zst) fails the run with
                // the files it would have written untouched.
                let first = lines.next_batch().with_context(|| format!("cannot read {}", path.display()))?;
                let reader = tokio::task::spawn_blocking(move || read_lines(first, lines, &path, line_tx));
                (ProgressUnit::Bytes, total, counter, reader, Some(recycle))
            }
            Input::Generated(generator) => {
                let (estimate, made) = (generator.estimate, Arc::new(AtomicU64::new(0)));
                let counter = made.clone();
                let reader = tokio::task::spawn_blocking(move || generate_lines(&generator, line_tx, made));
                (ProgressUnit::Records, estimate, counter, reader, None)
            }
        };
        let decoders = line_rxs
            .into_iter()
            .zip(decoded_txs)
            .map(|(line_rx, decoded_tx)| {
                let recycle = recycle.clone();
                tokio::task::spawn_blocking(move || decode_batches(line_rx, decoded_tx, recycle))
            })
            .collect();
        let source = ReplaySource { rxs: decoded_rxs, next: 0, reader: Some(reader), decoders, lines: 0, format };
        Ok((source, unit, total, counter))
    }
}

impl RecordSource for ReplaySource {
    type Position = ();

    async fn next_batch(&mut self) -> Result<Option<Batch<()>>, SourceError> {
        if let Some(records) = self.rxs[self.next].recv().await {
            self.next = (self.next + 1) % self.rxs.len();
            return Ok(Some(Batch::of(records)));
        }
        // The decoder whose turn it is is done, so the reader is (it ended
        // or failed: its result says which) and every batch before this
        // turn was taken. (Polled through `as_mut`, so a cancelled call
        // leaves the handle for the next one.)
        if let Some(reader) = self.reader.as_mut() {
            let read = reader.await;
            self.reader = None;
            self.lines = read.context("reader task failed").and_then(|r| r).map_err(SourceError::Fatal)?;
        }
        while let Some(decoder) = self.decoders.first_mut() {
            let decoded = decoder.await;
            self.decoders.remove(0);
            decoded.context("decoder task failed").and_then(|r| r).map_err(SourceError::Fatal)?;
        }
        Ok(None)
    }
}

/// The reader's side of the decoders' channels: batch `i` goes to decoder
/// `i mod n`, so taking their outputs in the same turn keeps input order.
#[derive(Debug)]
struct InTurn {
    txs: Vec<mpsc::Sender<LineBatch>>,
    next: usize,
}

impl InTurn {
    /// Sends to the decoder whose turn it is; an error when it is gone.
    fn blocking_send(&mut self, batch: LineBatch) -> Result<(), ()> {
        let sent = self.txs[self.next].blocking_send(batch).map_err(drop);
        self.next = (self.next + 1) % self.txs.len();
        sent
    }
}

/// Sends `first` (read already), then the rest of the input's batches.
fn read_lines(
    first: Option<LineBatch>,
    mut reader: LineReader<Box<dyn std::io::Read + Send>>,
    path: &Path,
    mut tx: InTurn,
) -> Result<u64> {
    let mut next = first;
    loop {
        let Some(batch) = next.take() else { return Ok(reader.lines()) };
        if tx.blocking_send(batch).is_err() {
            // The driver stopped; its error is the one to report.
            return Ok(reader.lines());
        }
        next = reader
            .next_batch()
            .with_context(|| format!("cannot read {} after line {}", path.display(), reader.lines()))?;
    }
}

/// Cuts what the generator writes into line batches.
struct BatchWriter {
    tx: InTurn,
    batch: LineBatch,
    lines: u64,
    stopped: bool,
}

impl BatchWriter {
    fn send(&mut self) -> std::io::Result<()> {
        let next = LineBatch { first_line: self.lines + 1, ..LineBatch::default() };
        let full = std::mem::replace(&mut self.batch, next);
        self.tx.blocking_send(full).map_err(|_| {
            self.stopped = true;
            std::io::Error::other(StoppedEarly("engine"))
        })
    }
}

impl Write for BatchWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        for chunk in buf.split_inclusive(|&b| b == b'\n') {
            if let Some(line) = chunk.strip_suffix(b"\n") {
                let start = self.batch.spans.last().map_or(0, |&(_, end)| end);
                self.batch.bytes.extend_from_slice(line);
                self.batch.spans.push((start, self.batch.bytes.len()));
                self.lines += 1;
                if self.batch.spans.len() == BATCH_LINES {
                    self.send()?;
                }
            } else {
                self.batch.bytes.extend_from_slice(chunk);
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn generate_lines(generator: &Generator, tx: InTurn, made: Arc<AtomicU64>) -> Result<u64> {
    let mut writer =
        BatchWriter { tx, batch: LineBatch { first_line: 1, ..LineBatch::default() }, lines: 0, stopped: false };
    if let Err(e) = (generator.run)(&mut writer, &mut |n| made.store(n, Relaxed)) {
        return Err(if writer.stopped { StoppedEarly("engine").into() } else { e });
    }
    if !writer.batch.spans.is_empty() {
        writer.send()?;
    }
    Ok(writer.lines)
}

/// Decoding is the costliest step per record (JSON), and independent of
/// every other record: it runs on its own thread, ahead of the driver, so
/// on two cores the engine and the writer share the other. Blank lines are
/// no records and are left out here, their numbers kept by the others.
fn decode_batches(
    mut rx: mpsc::Receiver<LineBatch>,
    tx: mpsc::Sender<Vec<Record<()>>>,
    recycle: Option<Recycle>,
) -> Result<()> {
    while let Some(mut batch) = rx.blocking_recv() {
        let mut out = Vec::with_capacity(batch.spans.len());
        let mut too_long = std::mem::take(&mut batch.too_long).into_iter().peekable();
        for (i, line) in batch.lines().enumerate() {
            if let Some((_, long)) = too_long.next_if(|(at, _)| *at == i) {
                let record = Err(line_too_long(&long));
                let origin = Source { line: Some(batch.first_line + i as u64), ..Source::default() };
                out.push(Record { origin, body: Body::Decoded { record, raw: long.excerpt }, position: () });
                continue;
            }
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let record = decode_line(line).map(StreamRecord::into_owned);
            let raw = if record.is_err() { line.to_vec() } else { Vec::new() };
            let origin = Source { line: Some(batch.first_line + i as u64), ..Source::default() };
            out.push(Record { origin, body: Body::Decoded { record, raw }, position: () });
        }
        if let Some(recycle) = &recycle {
            // The reader is done once it no longer takes buffers back: this
            // one is then simply freed.
            let _ = recycle.send(batch.bytes);
        }
        if tx.blocking_send(out).is_err() {
            return Err(StoppedEarly("engine").into());
        }
    }
    Ok(())
}

/// What goes to a writer thread.
enum Lines {
    /// Vectors and dead letters.
    Produced(Produced),
    /// Predictions, alerts, fleet snapshots.
    Scored(Scored),
    /// Customers' latest predictions, at the end, in customer order.
    Latest(Vec<Prediction>),
    /// Write out what is buffered, then answer.
    Flush(oneshot::Sender<()>),
    /// Answer once every message before this one went through the threads
    /// in front of the files ([`FileWriter::put_in_front`]), if any;
    /// nothing is written.
    Settled(oneshot::Sender<()>),
}

/// The files one writer thread owns; `None` skips one.
#[derive(Debug, Default)]
struct Files {
    features: Option<PathBuf>,
    dead_letters: Option<PathBuf>,
    predictions: Option<PathBuf>,
    alerts: Option<PathBuf>,
    metrics: Option<PathBuf>,
    /// Each customer's last prediction, written at the end.
    latest_predictions: Option<PathBuf>,
}

/// The files of [`Files`], in this order, by what they hold.
const FILE_NAMES: [&str; 6] =
    ["feature vectors", "dead letters", "predictions", "alerts", "fleet metrics", "latest predictions"];

impl Files {
    fn paths(self) -> [Option<PathBuf>; 6] {
        [self.features, self.dead_letters, self.predictions, self.alerts, self.metrics, self.latest_predictions]
    }
}

/// A message serialized: each file's bytes (in [`FILE_NAMES`] order), or
/// the barrier.
enum Serialized {
    Bytes([Vec<u8>; 6]),
    Flush(oneshot::Sender<()>),
}

/// Which files a writer writes, in [`FILE_NAMES`] order.
type Wanted = [bool; 6];

/// Serializes a message into the bytes of the files that are `wanted`.
fn serialize(message: Lines, wanted: &Wanted) -> Serialized {
    fn lines<T: Serialize>(items: &[T], buf: &mut Vec<u8>) {
        for item in items {
            // Plain data structures: serializing into memory cannot fail.
            serde_json::to_writer(&mut *buf, item).expect("serializes");
            buf.push(b'\n');
        }
    }
    // Predictions by their own writer (the same bytes, a fraction of the
    // cost), one buffer for the reasons' sentences.
    fn prediction_lines(items: &[Prediction], buf: &mut Vec<u8>) {
        let mut text = String::new();
        items.iter().for_each(|p| p.write_json_line(buf, &mut text));
    }
    let mut out: [Vec<u8>; 6] = Default::default();
    match message {
        Lines::Flush(reply) => return Serialized::Flush(reply),
        Lines::Settled(reply) => {
            // No thread in front: everything before it went through (none).
            let _ = reply.send(());
        }
        Lines::Produced(p) => {
            if wanted[0] {
                p.vectors.iter().for_each(|v| write_vector_line(v, &mut out[0]));
            }
            if wanted[1] {
                p.dead.iter().for_each(|d| d.write_json_line(&mut out[1]));
            }
        }
        Lines::Scored(s) => {
            let [.., predictions, alerts, metrics, _] = &mut out;
            if wanted[2] {
                prediction_lines(&s.predictions, predictions);
            }
            if wanted[3] {
                lines(&s.alerts, alerts);
            }
            if wanted[4] {
                lines(&s.metrics, metrics);
            }
        }
        Lines::Latest(latest) => {
            if wanted[5] {
                prediction_lines(&latest, &mut out[5]);
            }
        }
    }
    Serialized::Bytes(out)
}

/// Where the writer thread takes its messages from: straight from the sink
/// (it serializes them itself), or serialized by a pool, taken from the
/// serializers in turn (message `i` went to serializer `i mod n`), so the
/// files get them in the order sent.
enum Incoming {
    Lines(mpsc::Receiver<Lines>, Wanted),
    InTurn(Vec<mpsc::Receiver<Serialized>>, usize),
}

impl Incoming {
    fn next(&mut self) -> Option<Serialized> {
        match self {
            Incoming::Lines(rx, wanted) => rx.blocking_recv().map(|m| serialize(m, wanted)),
            Incoming::InTurn(rxs, next) => {
                let message = rxs[*next].blocking_recv();
                *next = (*next + 1) % rxs.len();
                message
            }
        }
    }
}

/// JSON Lines files written on a thread of their own (serializing and
/// compressing cost as much as applying), behind bounded channels; with
/// several serializers, serialized by a pool first (in turn, order kept),
/// and only written by the writer thread.
#[derive(Debug)]
struct FileWriter {
    /// To the writer thread itself, or to each serializer.
    txs: Vec<mpsc::Sender<Lines>>,
    /// The serializer whose turn it is.
    next: usize,
    /// The threads in front of the files, if some were put there.
    front: Vec<JoinHandle<()>>,
    serializers: Vec<JoinHandle<()>>,
    thread: Option<JoinHandle<Result<()>>>,
    /// Told by [`FileWriter::close`] whether everything before the files
    /// went well: only then does the writer put its files in place. A run
    /// that fails midway (a capture cut off after some batches) drops the
    /// writer instead, and its files go with their temporary names.
    keep: Option<oneshot::Sender<bool>>,
}

impl FileWriter {
    /// Starts the writer thread, and `serializers` threads that serialize
    /// for it when more than one.
    fn start(files: Files, serializers: NonZeroUsize) -> FileWriter {
        let paths = files.paths();
        let wanted = paths.each_ref().map(Option::is_some);
        let (txs, serializers, incoming) = if serializers.get() == 1 {
            let (tx, rx) = mpsc::channel(CHANNEL_BATCHES);
            (vec![tx], Vec::new(), Incoming::Lines(rx, wanted))
        } else {
            let (mut txs, mut threads, mut rxs) = (Vec::new(), Vec::new(), Vec::new());
            for _ in 0..serializers.get() {
                let (tx, mut rx) = mpsc::channel::<Lines>(CHANNEL_BATCHES);
                let (serialized_tx, serialized_rx) = mpsc::channel(CHANNEL_BATCHES);
                threads.push(tokio::task::spawn_blocking(move || {
                    while let Some(message) = rx.blocking_recv() {
                        if serialized_tx.blocking_send(serialize(message, &wanted)).is_err() {
                            // The writer stopped: its error is the one to report.
                            return;
                        }
                    }
                }));
                txs.push(tx);
                rxs.push(serialized_rx);
            }
            (txs, threads, Incoming::InTurn(rxs, 0))
        };
        let (keep, kept) = oneshot::channel();
        let thread = tokio::task::spawn_blocking(move || write_files(incoming, paths, kept));
        FileWriter { txs, next: 0, front: Vec::new(), serializers, thread: Some(thread), keep: Some(keep) }
    }

    /// Puts threads in front of the files: every message goes through
    /// `prepare` on one of `threads` threads (message `i` on thread
    /// `i mod threads`), then, taken back from them in turn, through `then`
    /// on one more, in order, before it is serialized. A replay's reasons
    /// are worked out there, beside the scoring stage.
    fn put_in_front(
        &mut self,
        threads: NonZeroUsize,
        prepare: impl Fn(&mut Lines) + Send + Sync + 'static,
        mut then: impl FnMut(&Lines) + Send + 'static,
    ) {
        debug_assert!(self.front.is_empty(), "one set of threads in front of the files");
        let prepare = Arc::new(prepare);
        let (mut txs, mut prepared, mut handles) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..threads.get() {
            // Two in flight each (not CHANNEL_BATCHES): these threads are
            // the slower side, so their channels stay full, and with
            // reasons each message holds its predictions' vectors.
            let (tx, mut rx) = mpsc::channel::<Lines>(2);
            let (done_tx, done_rx) = mpsc::channel::<Lines>(2);
            let prepare = Arc::clone(&prepare);
            handles.push(tokio::task::spawn_blocking(move || {
                while let Some(mut lines) = rx.blocking_recv() {
                    prepare(&mut lines);
                    if done_tx.blocking_send(lines).is_err() {
                        return; // the writer stopped: its error is the one to report
                    }
                }
            }));
            txs.push(tx);
            prepared.push(done_rx);
        }
        let behind = std::mem::replace(&mut self.txs, txs);
        let mut next = std::mem::take(&mut self.next);
        handles.push(tokio::task::spawn_blocking(move || {
            for turn in (0..prepared.len()).cycle() {
                let Some(lines) = prepared[turn].blocking_recv() else { return };
                if let Lines::Settled(reply) = lines {
                    // The caller waits on this; if it is gone, no one is left to tell.
                    let _ = reply.send(());
                    continue;
                }
                then(&lines);
                let to = &behind[next];
                next = (next + 1) % behind.len();
                if to.blocking_send(lines).is_err() {
                    return; // the writer stopped: its error is the one to report
                }
            }
        }));
        self.front = handles;
    }

    async fn write(&mut self, lines: Lines) -> Result<()> {
        let Some(tx) = self.txs.get(self.next) else { return Err(anyhow!("the files were closed")) };
        self.next = (self.next + 1) % self.txs.len();
        if tx.send(lines).await.is_err() {
            return Err(self.failure().await);
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        self.barrier(Lines::Flush).await
    }

    /// Waits until every message written so far went through the threads
    /// in front of the files.
    async fn settle(&mut self) -> Result<()> {
        self.barrier(Lines::Settled).await
    }

    async fn barrier(&mut self, message: fn(oneshot::Sender<()>) -> Lines) -> Result<()> {
        let (reply, done) = oneshot::channel();
        self.write(message(reply)).await?;
        match done.await {
            Ok(()) => Ok(()),
            Err(_) => Err(self.failure().await),
        }
    }

    /// Ends the files (compressed ones need their end written).
    async fn close(&mut self) -> Result<()> {
        self.txs.clear();
        // Every thread is awaited, whichever failed: returning at the first
        // failure would leave the writer's handle behind, and a second
        // close would then report success for files cut short.
        let mut failed = None;
        for front in self.front.drain(..) {
            let joined = front.await.context("a thread in front of the files failed");
            failed = failed.or(joined.err());
        }
        for serializer in self.serializers.drain(..) {
            let joined = serializer.await.context("serializer task failed");
            failed = failed.or(joined.err());
        }
        if let Some(keep) = self.keep.take() {
            // Gone only if the writer already stopped on an error of its own.
            let _ = keep.send(failed.is_none());
        }
        let written = match self.thread.take() {
            Some(thread) => thread.await.context("writer task failed").and_then(|written| written),
            None => Err(anyhow!("the files failed earlier")),
        };
        match failed {
            Some(e) => Err(e),
            None => written,
        }
    }

    /// The error that stopped the writer thread.
    async fn failure(&mut self) -> anyhow::Error {
        match self.close().await {
            Err(e) => e,
            Ok(()) => anyhow!("the writer stopped early"),
        }
    }
}

/// Creates (or truncates) the files, then writes what it receives until
/// every sender is gone. Creating them here, not before the run, keeps it
/// off the critical path: truncating a large file left by an earlier run
/// takes a while, and reading and decoding go on meanwhile. A file that
/// cannot be created fails the sink's next call. The files are put in
/// place only if the run's close says to `keep` them; a run dropped without
/// closing (it failed) or closing on a failure removes them.
fn write_files(mut incoming: Incoming, paths: [Option<PathBuf>; 6], keep: oneshot::Receiver<bool>) -> Result<()> {
    let mut outputs: Vec<Option<Output>> =
        paths.iter().map(|p| p.as_deref().map(Output::create).transpose()).collect::<Result<_>>()?;
    while let Some(message) = incoming.next() {
        match message {
            Serialized::Bytes(bytes) => {
                for ((out, bytes), what) in outputs.iter_mut().zip(bytes).zip(FILE_NAMES) {
                    if let Some(out) = out.as_mut().filter(|_| !bytes.is_empty()) {
                        out.write_all(&bytes).with_context(|| format!("cannot write {what}"))?;
                    }
                }
            }
            Serialized::Flush(reply) => {
                for out in outputs.iter_mut().flatten() {
                    out.flush().context("cannot write the replay's files")?;
                }
                // The barrier's caller waits on this; if it is gone, no one is left to tell.
                let _ = reply.send(());
            }
        }
    }
    if keep.blocking_recv() != Ok(true) {
        // Dropped unfinished: each output's temporary file is removed.
        drop(outputs);
        return Err(anyhow!("the run stopped before its end: its files were not kept"));
    }
    for out in outputs.into_iter().flatten() {
        out.finish()?;
    }
    Ok(())
}

fn is_empty(scored: &Scored) -> bool {
    scored.predictions.is_empty() && scored.alerts.is_empty() && scored.metrics.is_empty()
}

/// Predictions at which a batch's scored so far go to the files before
/// its tick.
const SCORED_PER_MESSAGE: usize = 512;

/// The scoring stage as a sink: vectors in at their stream time,
/// predictions, alerts (decided here, by the stage, and nowhere else in a
/// replay) and fleet snapshots out to their files. Linger and snapshots run
/// on stream time: `now` is the latest time seen.
#[derive(Debug)]
struct ScoringFiles<S: Scorer> {
    stage: ScoringStage<S>,
    now: i64,
    /// What the current batch scored so far: written at its tick, or
    /// before when it holds [`SCORED_PER_MESSAGE`] predictions.
    scored: Scored,
    files: FileWriter,
    /// Whether the latest prediction of each customer is written at the
    /// end (from the stage's memory of it: no second copy is kept).
    latest: bool,
    /// Work the predictions' reasons out on the threads in front of the
    /// files, when the stage gives reasons; handed back to the stage at the
    /// end.
    reasons: Option<Deferred<S>>,
}

/// The reasons a replay's scoring stage left to the threads in front of
/// its files: the [`Reasoner`] they share, and the latest reasons the
/// last of them keeps.
#[derive(Debug)]
struct Deferred<S> {
    reasoner: Arc<Reasoner<S>>,
    latest: Arc<Mutex<LatestReasons>>,
}

impl<S: Scorer> ScoringFiles<S> {
    async fn write_scored(&mut self) -> Result<()> {
        if is_empty(&self.scored) {
            return Ok(());
        }
        self.files.write(Lines::Scored(std::mem::take(&mut self.scored))).await
    }
}

impl<S: Scorer> Sink for ScoringFiles<S> {
    async fn send(&mut self, produced: Produced) -> Result<()> {
        let times = vec![self.now; produced.vectors.len()];
        self.send_timed(produced, times).await
    }

    async fn send_timed(&mut self, produced: Produced, times: Vec<i64>) -> Result<()> {
        // In chunks, the scored so far written when they are many: the
        // messages to the files stay small (with reasons deferred, each
        // prediction travels with its two vectors, ~1 KB).
        let mut timed = produced.vectors.into_iter().zip(times).peekable();
        while timed.peek().is_some() {
            let now = &mut self.now;
            let chunk = timed.by_ref().take(SCORED_PER_MESSAGE).map(|(v, t)| {
                *now = (*now).max(t);
                (v, *now)
            });
            self.stage.offer_timed(chunk, &mut self.scored).await?;
            if self.scored.predictions.len() >= SCORED_PER_MESSAGE {
                self.write_scored().await?;
            }
        }
        Ok(())
    }

    async fn tick(&mut self, now_ms: i64) -> Result<()> {
        self.now = self.now.max(now_ms);
        self.stage.release(self.now, &mut self.scored).await?;
        self.write_scored().await
    }

    async fn flush(&mut self) -> Result<()> {
        self.stage.drain_all(self.now, &mut self.scored).await?;
        self.write_scored().await?;
        self.files.flush().await
    }

    async fn close(&mut self) -> Result<()> {
        // A run that never had a stream time (no record, no timer) has
        // nothing to score and no time to date a fleet snapshot at (it was
        // written "at" i64::MIN).
        if self.now != i64::MIN || self.stage.pending() > 0 {
            self.stage.flush(self.now, &mut self.scored).await?;
        }
        self.write_scored().await?;
        if let Some(Deferred { reasoner, latest }) = &self.reasons {
            // Every prediction explained: the latest reasons go back to the
            // stage's memory (for the latest predictions and the lists).
            self.files.settle().await?;
            let mut latest = latest.lock().map_err(|_| anyhow!("the reasons' thread panicked"))?;
            self.stage.adopt_reasons(reasoner, &mut latest);
        }
        if self.latest {
            let customers = self.stage.customers_sorted();
            for chunk in customers.chunks(4096) {
                let latest = chunk.iter().filter_map(|c| self.stage.latest_prediction(c)).collect();
                self.files.write(Lines::Latest(latest)).await?;
            }
        }
        self.files.close().await
    }
}

/// Where a replay's results go: vectors and dead letters to their files,
/// and, when scoring, the vectors also to the scoring stage on its own task.
#[derive(Debug)]
struct ReplaySink<S: Scorer> {
    files: FileWriter,
    scoring: Option<Background<ScoringFiles<S>>>,
    keep_vectors: KeepVectors,
}

/// Whether the vectors are written to a file: if not, the scoring stage
/// takes them without a copy.
#[derive(Clone, Copy, Debug)]
struct KeepVectors(bool);

impl KeepVectors {
    /// The scoring stage's part of `produced`: its vectors.
    fn for_scoring(self, produced: &mut Produced) -> Produced {
        let vectors = if self.0 { produced.vectors.clone() } else { std::mem::take(&mut produced.vectors) };
        Produced { vectors, dead: Vec::new() }
    }
}

impl<S: Scorer> ReplaySink<S> {
    /// Starts the writers (each creates its files; the vectors serialized
    /// by `serializers` threads) and, with a stage, the scoring task.
    fn open(
        outputs: &Outputs,
        stage: Option<ScoringStage<S>>,
        serializers: NonZeroUsize,
        reasons_threads: usize,
    ) -> ReplaySink<S> {
        let files = FileWriter::start(
            Files {
                features: outputs.features.clone(),
                dead_letters: outputs.dead_letters.clone(),
                ..Files::default()
            },
            serializers,
        );
        let scoring = stage.map(|mut stage| {
            let mut files = FileWriter::start(
                Files {
                    predictions: outputs.predictions.clone(),
                    latest_predictions: outputs.latest_predictions.clone(),
                    alerts: outputs.alerts.clone(),
                    metrics: outputs.metrics.clone(),
                    ..Files::default()
                },
                NonZeroUsize::MIN,
            );
            let latest = outputs.latest_predictions.is_some();
            let reasons = NonZeroUsize::new(reasons_threads).and_then(|threads| {
                let deferred = Deferred {
                    reasoner: Arc::new(stage.defer_reasons()?),
                    latest: Arc::new(Mutex::new(LatestReasons::default())),
                };
                let (reasoner, latest) = (Arc::clone(&deferred.reasoner), Arc::clone(&deferred.latest));
                let explain = move |lines: &mut Lines| {
                    if let Lines::Scored(scored) = lines {
                        reasoner.explain(scored);
                    }
                };
                let observe = move |lines: &Lines| {
                    if let Lines::Scored(scored) = lines {
                        // Poisoned only by a panic while it was held: on this
                        // thread (gone then) or at the end (nothing comes after).
                        latest.lock().unwrap_or_else(PoisonError::into_inner).observe(scored);
                    }
                };
                files.put_in_front(threads, explain, observe);
                Some(deferred)
            });
            Background::spawn(ScoringFiles { stage, now: i64::MIN, scored: Scored::default(), files, latest, reasons })
        });
        ReplaySink { files, scoring, keep_vectors: KeepVectors(outputs.features.is_some()) }
    }
}

impl<S: Scorer> Sink for ReplaySink<S> {
    async fn send(&mut self, mut produced: Produced) -> Result<()> {
        if let Some(scoring) = self.scoring.as_mut() {
            scoring.send(self.keep_vectors.for_scoring(&mut produced)).await?;
        }
        self.files.write(Lines::Produced(produced)).await
    }

    async fn send_timed(&mut self, mut produced: Produced, times: Vec<i64>) -> Result<()> {
        if let Some(scoring) = self.scoring.as_mut() {
            scoring.send_timed(self.keep_vectors.for_scoring(&mut produced), times).await?;
        }
        self.files.write(Lines::Produced(produced)).await
    }

    async fn tick(&mut self, now_ms: i64) -> Result<()> {
        match self.scoring.as_mut() {
            Some(scoring) => scoring.tick(now_ms).await,
            None => Ok(()),
        }
    }

    async fn flush(&mut self) -> Result<()> {
        if let Some(scoring) = self.scoring.as_mut() {
            scoring.flush().await?;
        }
        self.files.flush().await
    }

    async fn close(&mut self) -> Result<()> {
        if let Some(scoring) = self.scoring.as_mut() {
            scoring.close().await?;
        }
        self.files.close().await
    }
}
