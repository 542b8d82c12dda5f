//! `pulse loadtest`: how fast and how cheaply pulse keeps up.
//!
//! Two modes:
//!
//! * **live** ([`live`]): synthetic customers (the generator's segments and
//!   behaviour) write events into the events table at a target rate
//!   (`BatchWriteItem`, bounded by a duration and a count) while pulse's
//!   consumer reads the table's stream, scores what changed and writes the
//!   predictions back. It reports sustained records/s, end-to-end latency
//!   from event write to prediction write (HDR histogram percentiles), model
//!   calls and rows per event, and what a five-minute full rescan would have
//!   cost for the same customers over the same time.
//! * **in-process** ([`in_process`]): no AWS at all, the engine's maximum:
//!   a synthetic capture generated into memory, then decoded and applied on
//!   one thread, next to the baseline of merely parsing each line into a
//!   `serde_json::Value`, measured in the same run; then decoded, applied
//!   and scored on one thread as the Lambda function scores (the embedded
//!   model, reasons worked out in the scoring stage), timing the scoring
//!   apart: what a prediction costs the function in CPU, for the bill.

pub mod latency;
pub mod live;
pub mod writer;

use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
#[cfg(test)]
use pulse_model::embedded;
use pulse_model::{EmbeddedModel, Scorer as _};
use pulse_operators::{Engine, EngineConfig};
use pulse_schemas::capture::decode_line;
use pulse_schemas::Source;
use serde::Serialize;

use crate::{generate, SynthConfig};
use pulse_runtime::process::{Processor, Produced};
use pulse_runtime::report::RESCAN_INTERVAL_MS;
use pulse_runtime::scoring::{Scored, ScoringConfig, ScoringStage};

/// What a full rescan every five minutes would have cost over a span.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct RescanCost {
    /// Rescans in the span (fractional: a 90 s run is 0.3 rescans).
    pub rescans: f64,
    /// Model calls: one per customer per rescan, as today's Lambda makes them.
    pub endpoint_calls: f64,
    /// Items read by the table scans: every item of the table per rescan.
    pub scan_item_reads: f64,
}

impl RescanCost {
    /// The cost over `seconds` for `customers` in a table of `items` items.
    pub fn over(seconds: f64, customers: u64, items: u64) -> RescanCost {
        let rescans = seconds * 1e3 / RESCAN_INTERVAL_MS as f64;
        RescanCost { rescans, endpoint_calls: rescans * customers as f64, scan_item_reads: rescans * items as f64 }
    }
}

/// The in-process measurement.
#[derive(Clone, Debug, Serialize)]
pub struct InProcessReport {
    /// The mode, `"in-process"`.
    pub mode: &'static str,
    /// Customers generated.
    pub customers: usize,
    /// Days simulated.
    pub days: u32,
    /// Records in the capture.
    pub records: u64,
    /// Bytes of the capture.
    pub capture_bytes: u64,
    /// Feature vectors emitted.
    pub vectors: u64,
    /// Dead letters.
    pub dead_letters: u64,
    /// Records/s of parsing each line into a `serde_json::Value` (the baseline).
    pub baseline_value_parse_records_per_s: f64,
    /// Records/s of decoding and applying each line (engine, one thread).
    pub pulse_records_per_s: f64,
    /// `pulse_records_per_s / baseline_value_parse_records_per_s`.
    pub ratio_to_baseline: f64,
    /// Engine state at the end, bytes.
    pub state_bytes: u64,
    /// Predictions made by the scoring pass (the embedded model, with
    /// reasons, the stage's default batching over stream time).
    pub predictions: u64,
    /// Model calls of the scoring pass.
    pub model_calls: u64,
    /// Records/s of decoding, applying and scoring each line on one thread
    /// (the Lambda function's work, without its AWS calls).
    pub scored_records_per_s: f64,
    /// Seconds of one core spent in the scoring stage (inference, reasons,
    /// alerts, fleet and monitor bookkeeping) per prediction.
    pub scoring_seconds_per_prediction: f64,
    /// The scoring pass's model and whether it worked out reasons.
    pub scored_by: String,
}

/// Generates `config` into memory, then times the value-parse baseline,
/// pulse's decode + apply, and pulse's decode + apply + scoring over the
/// same bytes, one after the other.
///
/// `model` and `scoring` are the scoring pass's (the embedded model with
/// [`ScoringConfig::default`], reasons on, is what the Lambda function
/// runs); the report names them.
pub fn in_process(
    config: &SynthConfig,
    engine_config: EngineConfig,
    model: EmbeddedModel,
    scoring: ScoringConfig,
) -> Result<InProcessReport> {
    let scored_by = format!(
        "{} {}, reasons {}",
        model.model_name(),
        model.model_version(),
        if scoring.reasons { "on" } else { "off" }
    );
    let mut capture = Vec::new();
    generate(config, &mut capture, &mut |_| {})?;
    let lines: Vec<&[u8]> = capture.split(|&b| b == b'\n').filter(|l| !l.is_empty()).collect();

    let started = Instant::now();
    let mut parsed = 0u64;
    for line in &lines {
        if serde_json::from_slice::<serde_json::Value>(line).is_ok() {
            parsed += 1;
        }
    }
    let baseline_s = started.elapsed().as_secs_f64();
    std::hint::black_box(parsed);

    let engine = Arc::new(Engine::new(engine_config));
    let mut processor = Processor::new(Arc::clone(&engine));
    let (mut vectors, mut dead) = (0u64, 0u64);
    let started = Instant::now();
    apply_lines(&lines, &mut processor, |produced| {
        vectors += produced.vectors.len() as u64;
        dead += produced.dead.len() as u64;
        produced.vectors.clear();
        produced.dead.clear();
        Ok(())
    })?;
    let pulse_s = started.elapsed().as_secs_f64();
    let state_bytes = engine.state_size().bytes;
    drop(processor);
    drop(engine);

    let scoring = score_lines(&lines, engine_config, model, scoring)?;

    let records = lines.len() as u64;
    let baseline = records as f64 / baseline_s.max(1e-9);
    let pulse = records as f64 / pulse_s.max(1e-9);
    Ok(InProcessReport {
        mode: "in-process",
        customers: config.customers,
        days: config.days,
        records,
        capture_bytes: capture.len() as u64,
        vectors,
        dead_letters: dead,
        baseline_value_parse_records_per_s: baseline,
        pulse_records_per_s: pulse,
        ratio_to_baseline: pulse / baseline,
        state_bytes,
        predictions: scoring.predictions,
        model_calls: scoring.model_calls,
        scored_records_per_s: records as f64 / scoring.total_s.max(1e-9),
        scoring_seconds_per_prediction: scoring.scoring_s / scoring.predictions.max(1) as f64,
        scored_by,
    })
}

/// Decodes and applies `lines` in turn on this thread, handing what each
/// produced to `then`, which empties it.
fn apply_lines(
    lines: &[&[u8]],
    processor: &mut Processor,
    mut then: impl FnMut(&mut Produced) -> Result<()>,
) -> Result<()> {
    let mut produced = Produced::default();
    for (i, line) in lines.iter().enumerate() {
        let source = Source { line: Some(i as u64 + 1), ..Source::default() };
        processor.process(decode_line(line), source, line, &mut produced);
        then(&mut produced)?;
    }
    Ok(())
}

/// What the scoring pass of [`in_process`] measured.
struct ScoringPass {
    predictions: u64,
    model_calls: u64,
    /// Decode, apply and score, all of it.
    total_s: f64,
    /// In the scoring stage alone.
    scoring_s: f64,
}

/// Decodes, applies and scores `lines` on this thread with a fresh engine
/// and the embedded model, each record's vectors offered at the stream time
/// reached (as a replay offers them), the stage's outputs dropped as they
/// come (the function sends them on; their AWS calls are priced apart).
fn score_lines(
    lines: &[&[u8]],
    engine_config: EngineConfig,
    model: EmbeddedModel,
    config: ScoringConfig,
) -> Result<ScoringPass> {
    let mut stage = ScoringStage::new(model, config)?;
    // The stage's model calls are async; the embedded model's never wait.
    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    let mut processor = Processor::new(Arc::new(Engine::new(engine_config)));
    let mut scored = Scored::default();
    let mut now = i64::MIN;
    let mut scoring = std::time::Duration::ZERO;
    let started = Instant::now();
    apply_lines(lines, &mut processor, |produced| {
        produced.dead.clear();
        if produced.vectors.is_empty() {
            return Ok(());
        }
        let at = Instant::now();
        let timed = produced.vectors.drain(..).map(|v| {
            now = now.max(v.as_of);
            (v, now)
        });
        runtime.block_on(stage.offer_timed(timed, &mut scored))?;
        scored.predictions.clear();
        scored.alerts.clear();
        scored.metrics.clear();
        scoring += at.elapsed();
        Ok(())
    })?;
    let at = Instant::now();
    runtime.block_on(stage.flush(now, &mut scored))?;
    drop(scored);
    scoring += at.elapsed();
    let stats = stage.stats();
    Ok(ScoringPass {
        predictions: stats.predictions,
        model_calls: stats.model_calls,
        total_s: started.elapsed().as_secs_f64(),
        scoring_s: scoring.as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rescan_every_five_minutes_reads_every_item_and_scores_every_customer() {
        let cost = RescanCost::over(600.0, 1_000, 50_000);
        assert_eq!(cost.rescans, 2.0);
        assert_eq!(cost.endpoint_calls, 2_000.0);
        assert_eq!(cost.scan_item_reads, 100_000.0);
        assert_eq!(RescanCost::over(90.0, 10, 10).rescans, 0.3);
    }

    #[test]
    fn in_process_applies_every_generated_record() {
        let config = SynthConfig { customers: 50, days: 10, seed: 3, ..SynthConfig::default() };
        let model = EmbeddedModel::new(&embedded().unwrap()).unwrap();
        let report = in_process(&config, EngineConfig::default(), model, ScoringConfig::default()).unwrap();
        let mut capture = Vec::new();
        let generated = generate(&config, &mut capture, &mut |_| {}).unwrap();
        assert_eq!(report.records, generated.records);
        assert_eq!(report.dead_letters, 0, "the realistic stream is valid");
        assert!(report.vectors >= generated.events, "every event emits a vector: {report:?}");
        assert!(report.pulse_records_per_s > 0.0 && report.baseline_value_parse_records_per_s > 0.0);
        // The scoring pass scores what changed: every vector at most once
        // (coalescing and the change gate may merge some), in batches.
        assert!(report.predictions > 0 && report.predictions <= report.vectors, "{report:?}");
        assert!(report.model_calls > 0 && report.model_calls <= report.predictions, "{report:?}");
        assert!(report.scoring_seconds_per_prediction > 0.0 && report.scored_records_per_s > 0.0);
    }
}
