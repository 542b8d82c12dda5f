//! `pulse demo`: the whole pipeline on a synthetic marketplace.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use pulse::progress::Progress;
use pulse::summary::{demo_report, RESCAN_INTERVAL_MS};
use pulse_model::EmbeddedModel;
use pulse_operators::EngineConfig;
use pulse_runtime::replay::{replay, Outputs, ReplayConfig};
use pulse_synth::{Hostility, SynthConfig};

use super::replay::{ScoringArgs, TimerArgs, WorkersArgs};

/// Arguments of `pulse demo`.
#[derive(Args, Debug)]
pub(crate) struct DemoArgs {
    /// Customers in the simulated marketplace.
    #[arg(long, default_value_t = 10_000)]
    customers: usize,
    /// Days simulated.
    #[arg(long, default_value_t = 60)]
    days: u32,
    /// Seed of the marketplace.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Stream imperfections: none, realistic or hostile.
    #[arg(long, default_value = "realistic")]
    hostility: Hostility,
    /// Directory for predictions.jsonl (the latest prediction of each
    /// customer, one line each, written at the end), alerts.jsonl,
    /// fleet-metrics.jsonl and dead-letters.jsonl.
    #[arg(long, default_value = "out/demo", value_name = "DIR")]
    out_dir: PathBuf,
    /// Also write every prediction, in the order made (the full history:
    /// about one per vector scored; compressed by extension, .zst or .gz).
    #[arg(long, value_name = "FILE")]
    predictions_history: Option<PathBuf>,
    /// Also write every feature vector here.
    #[arg(long, value_name = "FILE")]
    features_out: Option<PathBuf>,
    /// Write the engine's state at the end here (a snapshot, as `pulse run`
    /// checkpoints it), read it back to check it, and report both times.
    #[arg(long, value_name = "FILE")]
    snapshot_out: Option<PathBuf>,
    #[command(flatten)]
    timers: TimerArgs,
    #[command(flatten)]
    scoring: ScoringArgs,
    #[command(flatten)]
    workers: WorkersArgs,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

pub(crate) async fn run(args: DemoArgs) -> Result<()> {
    let synth = SynthConfig {
        customers: args.customers,
        days: args.days,
        seed: args.seed,
        hostility: args.hostility,
        ..SynthConfig::default()
    };
    synth.validate()?;
    let model = super::load_model(args.scoring.model.as_deref())?;
    let dir = &args.out_dir;
    let outputs = Outputs {
        features: args.features_out.clone(),
        dead_letters: Some(dir.join("dead-letters.jsonl")),
        predictions: args.predictions_history.clone(),
        // `--predictions-out` names the latest-per-customer file here.
        latest_predictions: Some(args.scoring.predictions_out.clone().unwrap_or_else(|| dir.join("predictions.jsonl"))),
        alerts: Some(args.scoring.alerts_out.clone().unwrap_or_else(|| dir.join("alerts.jsonl"))),
        metrics: Some(args.scoring.metrics_out.clone().unwrap_or_else(|| dir.join("fleet-metrics.jsonl"))),
        snapshot: args.snapshot_out.clone(),
        flags: Some(("--predictions-history", "--predictions-out")),
    };
    // Checked before the banner: an error is not preceded by a line that
    // reads as the run starting ("timers every NaN h").
    if dir.exists() && !dir.is_dir() {
        anyhow::bail!("--out-dir {} is not a directory", dir.display());
    }
    pulse_runtime::replay::check_output_files(&[], &outputs.named())?;
    let (scoring, timers) = (args.scoring.config()?, args.timers.policy()?);
    // With an output on standard output (`-`), the report goes to standard
    // error: a pipe gets only the data.
    let named = [
        &outputs.features,
        &outputs.predictions,
        &outputs.latest_predictions,
        &outputs.alerts,
        &outputs.metrics,
        &outputs.dead_letters,
    ];
    let data_on_stdout = super::any_stdout(named.iter().filter_map(|p| p.as_deref()));
    super::print_summary(
        &format!(
            "pulse demo: {} customers over {} days (seed {}), {}, timers every {} h, batches of up to {} rows",
            args.customers,
            args.days,
            args.seed,
            super::model_line(&model, args.scoring.model.as_deref()),
            args.timers.timer_interval_hours,
            scoring.batch.max_rows
        ),
        data_on_stdout,
    );
    let config = ReplayConfig {
        input: pulse_synth::replay_input(synth)?,
        outputs: outputs.clone(),
        engine: EngineConfig { timers },
        scoring: Some(scoring),
        progress: Progress::observer(!args.quiet, "records"),
        workers: args.workers.workers,
        reasons_threads: args.scoring.reasons_threads,
    };
    let summary = replay::<EmbeddedModel>(config, Some(model)).await?;
    super::print_summary(&demo_report(&summary, args.customers as u64, RESCAN_INTERVAL_MS), data_on_stdout);
    let files: Vec<String> = [
        &outputs.latest_predictions,
        &outputs.predictions,
        &outputs.alerts,
        &outputs.metrics,
        &outputs.dead_letters,
        &outputs.features,
        &outputs.snapshot,
    ]
    .into_iter()
    .flatten()
    .map(|p| p.display().to_string())
    .collect();
    super::print_summary(&format!("wrote {}", files.join(", ")), data_on_stdout);
    Ok(())
}
