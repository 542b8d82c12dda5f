//! `pulse replay`: a capture file through the engine, as fast as the machine
//! allows.
//!
//! Three stages on blocking tasks joined by bounded channels (backpressure
//! end to end; no unbounded queue): read lines in batches → decode and apply
//! → write vectors and dead letters. Batching keeps channel costs per record
//! negligible.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use pulse_operators::{CountersSnapshot, Engine, EngineConfig, StateSize};
use pulse_schemas::capture::decode_line;
use pulse_schemas::Source;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::io::{open_input, Output};
use crate::process::{write_vector_line, Processor, Produced};
use crate::progress::Progress;

/// Lines per batch between stages.
const BATCH_LINES: usize = 2048;
/// Batches in flight between two stages.
const CHANNEL_BATCHES: usize = 8;

/// What to replay and where to write.
#[derive(Clone, Debug)]
pub struct ReplayConfig {
    /// The capture (JSON Lines; `.zst`/`.gz` decompressed).
    pub capture: PathBuf,
    /// Where vectors go (JSON Lines; compressed by extension).
    pub features_out: Option<PathBuf>,
    /// Where dead letters go.
    pub dead_letter_out: Option<PathBuf>,
    /// The engine's configuration.
    pub engine: EngineConfig,
    /// Show a progress bar (only drawn on a terminal).
    pub progress: bool,
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

/// The outcome of a replay.
#[derive(Clone, Debug, Serialize)]
pub struct ReplaySummary {
    /// Lines read (blank lines included).
    pub lines: u64,
    /// Records decoded and applied, or dead-lettered.
    pub records: u64,
    /// Vectors emitted on records.
    pub vectors_event: u64,
    /// Vectors emitted by timers.
    pub vectors_timer: u64,
    /// Dead letters by reason code.
    pub invalid: std::collections::BTreeMap<&'static str, u64>,
    /// What the engine did.
    pub engine: CountersSnapshot,
    /// State held at the end, and its peak.
    pub state: StateSize,
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

/// Runs a replay to the end.
pub async fn replay(config: ReplayConfig) -> Result<ReplaySummary> {
    let started = Instant::now();
    let input = open_input(&config.capture)?;
    let progress = Progress::bytes(config.progress, "replay", input.file_bytes, input.consumed.clone());
    let engine = Arc::new(Engine::new(config.engine));

    let (line_tx, line_rx) = mpsc::channel::<LineBatch>(CHANNEL_BATCHES);
    let (out_tx, out_rx) = mpsc::channel::<Produced>(CHANNEL_BATCHES);

    let capture = config.capture.clone();
    let reader = tokio::task::spawn_blocking(move || read_lines(input.reader, &capture, line_tx));
    let processor = Processor::new(engine.clone());
    let apply = tokio::task::spawn_blocking(move || apply_batches(processor, line_rx, out_tx));
    let (features_out, dead_out) = (config.features_out.clone(), config.dead_letter_out.clone());
    let writer = tokio::task::spawn_blocking(move || write_outputs(out_rx, features_out.as_deref(), dead_out.as_deref()));

    let ticker = progress.spawn_ticker(Duration::from_millis(200));
    let read = reader.await.context("reader task failed")?;
    let applied = apply.await.context("engine task failed")?;
    let written = writer.await.context("writer task failed")?;
    ticker.abort();
    progress.finish();
    // Report the first failure in pipeline order: a read error explains the rest.
    let lines = read?;
    let (records, invalid) = applied?;
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

type Applied = (u64, std::collections::BTreeMap<&'static str, u64>);

fn apply_batches(mut processor: Processor, mut rx: mpsc::Receiver<LineBatch>, tx: mpsc::Sender<Produced>) -> Result<Applied> {
    let mut records = 0u64;
    while let Some(batch) = rx.blocking_recv() {
        let mut out = Produced::default();
        let mut start = 0;
        for (i, &end) in batch.ends.iter().enumerate() {
            let line = &batch.bytes[start..end];
            start = end;
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            records += 1;
            let source = Source { line: Some(batch.first_line + i as u64), ..Source::default() };
            processor.process(decode_line(line), source, line, &mut out);
        }
        if tx.blocking_send(out).is_err() {
            return Err(anyhow!("the writer stopped early"));
        }
    }
    Ok((records, processor.invalid_counts().clone()))
}

fn write_outputs(mut rx: mpsc::Receiver<Produced>, features: Option<&Path>, dead: Option<&Path>) -> Result<()> {
    let mut features = features.map(Output::create).transpose()?;
    let mut dead = dead.map(Output::create).transpose()?;
    let mut buf = Vec::with_capacity(1 << 20);
    while let Some(produced) = rx.blocking_recv() {
        if let Some(out) = features.as_mut() {
            buf.clear();
            for v in &produced.vectors {
                write_vector_line(v, &mut buf);
            }
            std::io::Write::write_all(out, &buf).context("cannot write feature vectors")?;
        }
        if let Some(out) = dead.as_mut() {
            buf.clear();
            for d in &produced.dead {
                d.write_json_line(&mut buf);
            }
            std::io::Write::write_all(out, &buf).context("cannot write dead letters")?;
        }
    }
    features.map(Output::finish).transpose()?;
    dead.map(Output::finish).transpose()?;
    Ok(())
}

