//! The batch pipeline behind `pulse replay` and `pulse demo`: a capture file
//! or the synthetic marketplace through the engine, and optionally the model,
//! as fast as the machine allows.
//!
//! Stages on their own tasks, joined by bounded channels (backpressure end to
//! end; no unbounded queue): read lines in batches (or generate them) →
//! decode → apply → score (optional) → write vectors, dead letters,
//! predictions, alerts and fleet metrics. Batching keeps channel costs per
//! record negligible. Timers and micro-batch linger run on stream time, so the
//! output depends only on the input.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use pulse_model::Scorer;
use pulse_operators::scoring::FleetMetrics;
use pulse_operators::{CountersSnapshot, Engine, EngineConfig, StateSize};
use pulse_schemas::capture::decode_line;
use pulse_schemas::prediction::Prediction;
use pulse_schemas::record::Invalid;
use pulse_schemas::{Source, StreamRecord};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::io::{open_input, Output};
use crate::process::{write_vector_line, Processor, Produced};
use crate::scoring::{Scored, ScoringConfig, ScoringStage, ScoringStats};

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
    /// Predictions (needs scoring).
    pub predictions: Option<PathBuf>,
    /// Alerts (needs scoring).
    pub alerts: Option<PathBuf>,
    /// Fleet-metrics snapshots (needs scoring).
    pub metrics: Option<PathBuf>,
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
}

impl ReplayConfig {
    /// A plain replay of a capture to a features file.
    pub fn capture(capture: PathBuf, features: Option<PathBuf>) -> ReplayConfig {
        ReplayConfig {
            input: Input::Capture(capture),
            outputs: Outputs { features, ..Outputs::default() },
            engine: EngineConfig::default(),
            scoring: None,
            progress: None,
        }
    }
}

/// A consecutive run of lines.
#[derive(Debug, Default)]
struct LineBatch {
    bytes: Vec<u8>,
    /// End offset of each line in `bytes` (line terminators stripped).
    ends: Vec<usize>,
    /// 1-based number of the first line.
    first_line: u64,
}

/// What the apply stage passes on.
#[derive(Debug, Default)]
struct Applied {
    produced: Produced,
    /// Stream time when each vector was produced (parallel to `produced.vectors`).
    times: Vec<i64>,
    stream_time: Option<i64>,
}

/// What the writer receives.
#[derive(Debug, Default)]
struct Finished {
    produced: Produced,
    scored: Scored,
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
}

impl ReplaySummary {
    /// Dead letters in all.
    pub fn invalid_total(&self) -> u64 {
        self.invalid.values().sum()
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
    let needs_scoring = [&config.outputs.predictions, &config.outputs.alerts, &config.outputs.metrics];
    if stage.is_none() && needs_scoring.iter().any(|o| o.is_some()) {
        return Err(anyhow!("predictions, alerts and fleet metrics need scoring"));
    }

    let (line_tx, line_rx) = mpsc::channel::<LineBatch>(CHANNEL_BATCHES);
    let (decoded_tx, decoded_rx) = mpsc::channel::<Vec<Decoded>>(CHANNEL_BATCHES);
    let (applied_tx, mut applied_rx) = mpsc::channel::<Applied>(CHANNEL_BATCHES);
    let (out_tx, out_rx) = mpsc::channel::<Finished>(CHANNEL_BATCHES);

    let (unit, total, counter, reader) = match config.input.clone() {
        Input::Capture(path) => {
            let input = open_input(&path)?;
            let (total, counter) = (input.file_bytes, input.consumed.clone());
            let reader = tokio::task::spawn_blocking(move || read_lines(input.reader, &path, line_tx));
            (ProgressUnit::Bytes, total, counter, reader)
        }
        Input::Generated(generator) => {
            let (estimate, made) = (generator.estimate, Arc::new(AtomicU64::new(0)));
            let counter = made.clone();
            let reader = tokio::task::spawn_blocking(move || generate_lines(&generator, line_tx, made));
            (ProgressUnit::Records, estimate, counter, reader)
        }
    };
    let decode = tokio::task::spawn_blocking(move || decode_batches(line_rx, decoded_tx));
    let processor = Processor::new(engine.clone());
    let apply = tokio::task::spawn_blocking(move || apply_batches(processor, decoded_rx, applied_tx));
    let keep_vectors = config.outputs.features.is_some();
    let scoring = tokio::spawn(async move {
        let mut stage = stage;
        let mut now = i64::MIN;
        while let Some(mut applied) = applied_rx.recv().await {
            let mut scored = Scored::default();
            if let Some(stage) = stage.as_mut() {
                // The writer needs the vectors only for a features file.
                let vectors = if keep_vectors {
                    applied.produced.vectors.clone()
                } else {
                    std::mem::take(&mut applied.produced.vectors)
                };
                let timed = vectors.into_iter().zip(std::mem::take(&mut applied.times)).map(|(v, t)| {
                    now = now.max(t);
                    (v, now)
                });
                stage.offer_timed(timed, &mut scored).await?;
                now = applied.stream_time.unwrap_or(now).max(now);
                stage.release(now, &mut scored).await?;
            }
            if out_tx.send(Finished { produced: std::mem::take(&mut applied.produced), scored }).await.is_err() {
                return Err(StoppedEarly("writer").into());
            }
        }
        if let Some(stage) = stage.as_mut() {
            let mut scored = Scored::default();
            stage.flush(now, &mut scored).await?;
            if out_tx.send(Finished { produced: Produced::default(), scored }).await.is_err() {
                return Err(StoppedEarly("writer").into());
            }
        }
        Ok::<_, anyhow::Error>(stage.map(|s| ScoringSummary {
            stats: s.stats(),
            fleet: s.fleet(),
            top_at_risk: s.top_at_risk(10),
        }))
    });
    let outputs = config.outputs.clone();
    let writer = tokio::task::spawn_blocking(move || write_outputs(out_rx, &outputs));

    let ticker = spawn_ticker(config.progress.clone(), unit, total, counter.clone(), Duration::from_millis(200));
    let read = reader.await.context("reader task failed")?;
    let decoded = decode.await.context("decoder task failed")?;
    let applied = apply.await.context("engine task failed")?;
    let scored = scoring.await.context("scoring task failed")?;
    let written = writer.await.context("writer task failed")?;
    ticker.abort();
    if let Some(observer) = &config.progress {
        (observer.0)(ProgressUpdate { unit, total, count: counter.load(Relaxed), finished: true });
    }
    // Report the failure that explains the others: a stage that stopped
    // because the next one went away only says so, so a real error anywhere
    // (a read error, a model failure, a file that cannot be created) wins.
    let first_real = [read.as_ref().err(), applied.as_ref().err(), scored.as_ref().err(), written.as_ref().err()]
        .into_iter()
        .flatten()
        .find(|e| e.downcast_ref::<StoppedEarly>().is_none());
    if let Some(e) = first_real {
        return Err(anyhow!("{e:#}"));
    }
    let lines = read?;
    decoded?;
    let (records, invalid, span) = applied?;
    let scoring = scored?;
    written?;

    let counters = engine.counters();
    let seconds = started.elapsed().as_secs_f64();
    Ok(ReplaySummary {
        lines,
        records,
        vectors_event: counters.vectors_event,
        vectors_timer: counters.vectors_timer,
        invalid,
        engine: counters,
        state: engine.state_size(),
        stream_span_ms: span,
        scoring,
        seconds,
        records_per_second: records as f64 / seconds.max(1e-9),
    })
}

fn read_lines(reader: Box<dyn std::io::Read + Send>, path: &Path, tx: mpsc::Sender<LineBatch>) -> Result<u64> {
    let mut reader = BufReader::with_capacity(1 << 20, reader);
    let mut line_no = 0u64;
    loop {
        let mut batch = LineBatch { first_line: line_no + 1, ..LineBatch::default() };
        while batch.ends.len() < BATCH_LINES {
            let n = reader
                .read_until(b'\n', &mut batch.bytes)
                .with_context(|| format!("cannot read {} after line {line_no}", path.display()))?;
            if n == 0 {
                break;
            }
            line_no += 1;
            while matches!(batch.bytes.last(), Some(b'\n' | b'\r')) {
                batch.bytes.pop();
            }
            batch.ends.push(batch.bytes.len());
        }
        let done = batch.ends.len() < BATCH_LINES;
        if !batch.ends.is_empty() && tx.blocking_send(batch).is_err() {
            // The engine stage stopped; its error is the one to report.
            return Ok(line_no);
        }
        if done {
            return Ok(line_no);
        }
    }
}

/// Cuts what the generator writes into line batches.
struct BatchWriter {
    tx: mpsc::Sender<LineBatch>,
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
                self.batch.bytes.extend_from_slice(line);
                self.batch.ends.push(self.batch.bytes.len());
                self.lines += 1;
                if self.batch.ends.len() == BATCH_LINES {
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

fn generate_lines(generator: &Generator, tx: mpsc::Sender<LineBatch>, made: Arc<AtomicU64>) -> Result<u64> {
    let mut writer =
        BatchWriter { tx, batch: LineBatch { first_line: 1, ..LineBatch::default() }, lines: 0, stopped: false };
    if let Err(e) = (generator.run)(&mut writer, &mut |n| made.store(n, Relaxed)) {
        return Err(if writer.stopped { StoppedEarly("engine").into() } else { e });
    }
    if !writer.batch.ends.is_empty() {
        writer.send()?;
    }
    Ok(writer.lines)
}

type AppliedTotals = (u64, BTreeMap<&'static str, u64>, Option<(i64, i64)>);

/// One decoded line: the record, or why it is dead (with its bytes).
#[derive(Debug)]
struct Decoded {
    line: u64,
    record: Result<StreamRecord<'static>, Invalid>,
    /// The original bytes, kept only for a dead letter.
    raw: Vec<u8>,
}

/// Decoding is the costliest step per record (JSON), and independent of
/// every other record: it runs on its own thread, ahead of the engine,
/// so on two cores the engine and the writer share the other.
fn decode_batches(mut rx: mpsc::Receiver<LineBatch>, tx: mpsc::Sender<Vec<Decoded>>) -> Result<()> {
    while let Some(batch) = rx.blocking_recv() {
        let mut out = Vec::with_capacity(batch.ends.len());
        let mut start = 0;
        for (i, &end) in batch.ends.iter().enumerate() {
            let line = &batch.bytes[start..end];
            start = end;
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let record = decode_line(line).map(StreamRecord::into_owned);
            let raw = if record.is_err() { line.to_vec() } else { Vec::new() };
            out.push(Decoded { line: batch.first_line + i as u64, record, raw });
        }
        if tx.blocking_send(out).is_err() {
            return Err(StoppedEarly("engine").into());
        }
    }
    Ok(())
}

fn apply_batches(
    mut processor: Processor,
    mut rx: mpsc::Receiver<Vec<Decoded>>,
    tx: mpsc::Sender<Applied>,
) -> Result<AppliedTotals> {
    let mut records = 0u64;
    let mut first_time = None;
    while let Some(batch) = rx.blocking_recv() {
        // Room for a vector per record and some timers: no regrowth copies.
        let mut out = Produced { vectors: Vec::with_capacity(batch.len() + batch.len() / 4), dead: Vec::new() };
        let mut times = Vec::with_capacity(out.vectors.capacity());
        for d in batch {
            records += 1;
            let source = Source { line: Some(d.line), ..Source::default() };
            processor.process(d.record, source, &d.raw, &mut out);
            let now = processor.stream_time().unwrap_or(i64::MIN);
            times.resize(out.vectors.len(), now);
            if first_time.is_none() {
                first_time = processor.stream_time();
            }
        }
        let applied = Applied { produced: out, times, stream_time: processor.stream_time() };
        if tx.blocking_send(applied).is_err() {
            return Err(StoppedEarly("scoring").into());
        }
    }
    let span = first_time.zip(processor.stream_time());
    Ok((records, processor.invalid_counts().clone(), span))
}

fn write_outputs(mut rx: mpsc::Receiver<Finished>, outputs: &Outputs) -> Result<()> {
    let open = |p: &Option<PathBuf>| p.as_deref().map(Output::create).transpose();
    let mut features = open(&outputs.features)?;
    let mut dead = open(&outputs.dead_letters)?;
    let mut predictions = open(&outputs.predictions)?;
    let mut alerts = open(&outputs.alerts)?;
    let mut metrics = open(&outputs.metrics)?;
    let mut buf = Vec::with_capacity(1 << 20);
    let mut put = |out: &mut Option<Output>, what: &str, fill: &dyn Fn(&mut Vec<u8>)| -> Result<()> {
        if let Some(out) = out.as_mut() {
            buf.clear();
            fill(&mut buf);
            out.write_all(&buf).with_context(|| format!("cannot write {what}"))?;
        }
        Ok(())
    };
    fn lines<T: Serialize>(items: &[T], buf: &mut Vec<u8>) {
        for item in items {
            // Plain data structures: serializing into memory cannot fail.
            serde_json::to_writer(&mut *buf, item).expect("serializes");
            buf.push(b'\n');
        }
    }
    while let Some(f) = rx.blocking_recv() {
        put(&mut features, "feature vectors", &|b| f.produced.vectors.iter().for_each(|v| write_vector_line(v, b)))?;
        put(&mut dead, "dead letters", &|b| f.produced.dead.iter().for_each(|d| d.write_json_line(b)))?;
        put(&mut predictions, "predictions", &|b| lines(&f.scored.predictions, b))?;
        put(&mut alerts, "alerts", &|b| lines(&f.scored.alerts, b))?;
        put(&mut metrics, "fleet metrics", &|b| lines(&f.scored.metrics, b))?;
    }
    for out in [features, dead, predictions, alerts, metrics].into_iter().flatten() {
        out.finish()?;
    }
    Ok(())
}
