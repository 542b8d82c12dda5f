//! `pulse replay`.

use std::num::NonZeroUsize;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use pulse::progress::Progress;
use pulse_model::EmbeddedModel;
use pulse_operators::scoring::{BatchPolicy, MonitorConfig, COLD_START_BURN_IN_DAYS};
use pulse_operators::EngineConfig;
use pulse_runtime::archive::InputFormat;
use pulse_runtime::io::Output;
use pulse_runtime::replay::{check_output_files, replay, Input, Outputs, ReplayConfig, DEFAULT_REASONS_THREADS};
use pulse_runtime::scoring::ScoringConfig;
pub(crate) use pulse_runtime::settings::TimerArgs;
use pulse_runtime::settings::{seconds, YEAR_SECONDS};

/// Arguments of `pulse replay`.
#[derive(Args, Debug)]
pub(crate) struct ReplayArgs {
    /// The capture file (JSON Lines of DynamoDB Streams records; zstd and
    /// gzip are decompressed, known by their first bytes); `-` reads standard
    /// input. A Kinesis Data Streams for DynamoDB archive (e.g. a Firehose
    /// delivery to S3: records in milliseconds, one a line or back to back)
    /// is recognised by its first record and read as its capture.
    capture: PathBuf,
    /// Write feature vectors here (JSON Lines, compressed by extension; `-`:
    /// standard output, the summary then going to standard error).
    #[arg(long, value_name = "FILE")]
    features_out: Option<PathBuf>,
    /// Write dead letters (reason + whole original record) here.
    #[arg(long, value_name = "FILE")]
    dead_letter_out: Option<PathBuf>,
    #[command(flatten)]
    timers: TimerArgs,
    /// Write the engine's state at the end here (a snapshot, as `pulse run`
    /// checkpoints it), read it back to check it, and report both times.
    #[arg(long, value_name = "FILE")]
    snapshot_out: Option<PathBuf>,
    /// Score the vectors with the model and write predictions/alerts/metrics.
    #[arg(long)]
    score: bool,
    #[command(flatten)]
    scoring: ScoringArgs,
    /// Also write the summary as JSON here.
    #[arg(long, value_name = "FILE")]
    summary_json: Option<PathBuf>,
    #[command(flatten)]
    workers: WorkersArgs,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

/// How many cores a batch command uses.
#[derive(Args, Debug)]
pub(crate) struct WorkersArgs {
    /// Decoders and engines side by side (customers partitioned by a hash
    /// of their id). The outputs are the same, byte for byte, for every
    /// number, but --snapshot-out's (one engine's state per worker). At
    /// most 64.
    #[arg(long, default_value = "1", value_name = "N", value_parser = workers)]
    pub(crate) workers: NonZeroUsize,
}

/// The most `--workers` and `--reasons-threads` take. Each worker is three
/// threads of tokio's blocking pool (512 at most: past it, stages wait for
/// threads that never come, and the run hangs); beyond a machine's cores
/// more only cost memory.
const MAX_THREADS: usize = 64;

fn threads(s: &str) -> Result<usize, String> {
    let n: usize = s.parse().map_err(|e| format!("{e}"))?;
    if n > MAX_THREADS {
        return Err(format!("at most {MAX_THREADS}, got {n}"));
    }
    Ok(n)
}

fn workers(s: &str) -> Result<NonZeroUsize, String> {
    NonZeroUsize::new(threads(s)?).ok_or_else(|| "at least 1".to_string())
}

/// `--linger-s`'s default: a minute of stream time.
const DEFAULT_LINGER_S: f64 = 60.0;
/// `--metrics-interval-s`'s default.
const DEFAULT_METRICS_INTERVAL_S: f64 = 60.0;

/// Scoring options shared by the batch commands.
#[derive(Args, Debug)]
pub(crate) struct ScoringArgs {
    /// Use the model in this directory instead of the embedded one.
    #[arg(long, value_name = "DIR")]
    pub(crate) model: Option<PathBuf>,
    /// Write predictions here: replay, every prediction (with --score); demo,
    /// the latest of each customer (default: --out-dir's predictions.jsonl).
    #[arg(long, value_name = "FILE")]
    pub(crate) predictions_out: Option<PathBuf>,
    /// Write alerts here (replay: with --score; demo: default --out-dir's
    /// alerts.jsonl).
    #[arg(long, value_name = "FILE")]
    pub(crate) alerts_out: Option<PathBuf>,
    /// Write fleet-metrics snapshots here (replay: with --score; demo:
    /// default --out-dir's fleet-metrics.jsonl).
    #[arg(long, value_name = "FILE")]
    pub(crate) metrics_out: Option<PathBuf>,
    /// Most rows per model call.
    #[arg(long, default_value_t = BatchPolicy::default().max_rows)]
    pub(crate) batch_rows: usize,
    /// Longest a vector waits for its batch, in seconds of stream time; a
    /// customer's vectors within it are coalesced into its newest.
    #[arg(long, default_value_t = DEFAULT_LINGER_S, value_name = "SECONDS")]
    pub(crate) linger_s: f64,
    /// Seconds of stream time between fleet-metrics snapshots.
    #[arg(long, default_value_t = DEFAULT_METRICS_INTERVAL_S, value_name = "SECONDS")]
    pub(crate) metrics_interval_s: f64,
    /// Predictions without their reasons (the features that raised the churn
    /// risk most since about 14 days earlier), and no anchors kept for them.
    #[arg(long)]
    pub(crate) no_reasons: bool,
    /// Threads that work out the reasons beside the scoring stage (message
    /// by message, in turn); 0: the stage works them out itself. The
    /// outputs are the same, byte for byte, for every number. At most 64.
    #[arg(long, default_value_t = DEFAULT_REASONS_THREADS, value_name = "N", value_parser = threads)]
    pub(crate) reasons_threads: usize,
    /// Close days in the model monitor's rolling window (realised AUC,
    /// Brier, calibration of the churn heads); 0 turns the monitor off.
    #[arg(long, default_value_t = MonitorConfig::default().window_days, value_name = "DAYS")]
    pub(crate) monitor_window_days: u32,
    /// Days at the start of the capture during which its customers are
    /// taken as met mid-life (the training rows' burn-in; 0 to 60): a
    /// capture starts without their history, so each looks new for a week.
    /// The model monitor does not judge the predictions standing at their
    /// midnights, and the alert of a customer whose first event falls in
    /// them does not call it new (it may have been met mid-life).
    #[arg(long = "burn-in-days", default_value_t = COLD_START_BURN_IN_DAYS, value_name = "DAYS")]
    pub(crate) burn_in_days: u32,
}

impl ScoringArgs {
    pub(crate) fn config(&self) -> Result<ScoringConfig> {
        let config = scoring_config(self.batch_rows, self.linger_s, self.metrics_interval_s, !self.no_reasons)?;
        with_monitor(config, self.monitor_window_days, self.burn_in_days)
    }

    pub(crate) fn outputs(&self) -> Outputs {
        Outputs {
            predictions: self.predictions_out.clone(),
            alerts: self.alerts_out.clone(),
            metrics: self.metrics_out.clone(),
            ..Outputs::default()
        }
    }
}

/// `config` with the monitor of `--monitor-window-days` (0: none) and the
/// burn-in of `--burn-in-days`, checked. The burn-in is the stage's: it
/// gives it to the monitor too.
pub(crate) fn with_monitor(config: ScoringConfig, window_days: u32, burn_in_days: u32) -> Result<ScoringConfig> {
    use pulse_runtime::scoring::MAX_BURN_IN_DAYS;
    anyhow::ensure!(
        burn_in_days <= MAX_BURN_IN_DAYS,
        "--burn-in-days: must be 0 to {MAX_BURN_IN_DAYS}, got {burn_in_days}"
    );
    let monitor = (window_days > 0).then_some(MonitorConfig { window_days });
    if let Some(m) = &monitor {
        m.validate().map_err(|e| anyhow::anyhow!("--monitor-window-days: {e}"))?;
    }
    Ok(ScoringConfig { monitor, burn_in_days, ..config })
}

/// The scoring stage's configuration from its flags, checked.
pub(crate) fn scoring_config(
    batch_rows: usize,
    linger_s: f64,
    metrics_interval_s: f64,
    reasons: bool,
) -> Result<ScoringConfig> {
    anyhow::ensure!(batch_rows >= 1, "--batch-rows must be at least 1");
    // Bounded above: past ~1e16 s the milliseconds saturated and the end of
    // the input flushed nothing (every vector dropped, exit 0).
    seconds(linger_s, "--linger-s", YEAR_SECONDS)?;
    seconds(metrics_interval_s, "--metrics-interval-s", YEAR_SECONDS)?;
    anyhow::ensure!(
        metrics_interval_s >= 0.001,
        "--metrics-interval-s {metrics_interval_s}: give at least 0.001 seconds"
    );
    // Milliseconds rounded, as before the checks were shared.
    let batch = BatchPolicy {
        max_rows: batch_rows,
        max_linger_ms: (linger_s * 1000.0).round() as i64,
        max_pending: BatchPolicy::default().max_pending.max(batch_rows),
    };
    batch.validate()?;
    Ok(ScoringConfig {
        batch,
        metrics_interval_ms: (metrics_interval_s * 1000.0).round() as i64,
        reasons,
        ..ScoringConfig::default()
    })
}

pub(crate) async fn run(args: ReplayArgs) -> Result<()> {
    let wants_scores = args.scoring.predictions_out.is_some()
        || args.scoring.alerts_out.is_some()
        || args.scoring.metrics_out.is_some();
    anyhow::ensure!(args.score || !wants_scores, "--predictions-out, --alerts-out and --metrics-out need --score");
    anyhow::ensure!(args.score || args.scoring.model.is_none(), "--model needs --score (without it nothing is scored)");
    if !args.score {
        // Flags that only shape scoring, given without it: refused rather than
        // ignored (a value equal to the default cannot be told from none).
        let scoring = &args.scoring;
        let given = [
            ("--batch-rows", scoring.batch_rows != BatchPolicy::default().max_rows),
            ("--linger-s", scoring.linger_s != DEFAULT_LINGER_S),
            ("--metrics-interval-s", scoring.metrics_interval_s != DEFAULT_METRICS_INTERVAL_S),
            ("--no-reasons", scoring.no_reasons),
            ("--reasons-threads", scoring.reasons_threads != DEFAULT_REASONS_THREADS),
            ("--monitor-window-days", scoring.monitor_window_days != MonitorConfig::default().window_days),
            ("--burn-in-days", scoring.burn_in_days != COLD_START_BURN_IN_DAYS),
        ];
        if let Some((flag, _)) = given.iter().find(|(_, given)| *given) {
            anyhow::bail!("{flag} needs --score (without it nothing is scored)");
        }
    }
    let model = if args.score { Some(super::load_model(args.scoring.model.as_deref())?) } else { None };
    // Which model scored, as `pulse demo` says it: a summary of predictions
    // did not say whose they were.
    let scored_by = model.as_ref().map(|m| super::model_line(m, args.scoring.model.as_deref()));
    let config = ReplayConfig {
        input: Input::Capture(args.capture.clone()),
        outputs: Outputs {
            features: args.features_out,
            dead_letters: args.dead_letter_out,
            snapshot: args.snapshot_out,
            ..args.scoring.outputs()
        },
        engine: EngineConfig { timers: args.timers.policy()? },
        scoring: if args.score { Some(args.scoring.config()?) } else { None },
        progress: Progress::observer(!args.quiet, "replay"),
        workers: args.workers.workers,
        reasons_threads: args.scoring.reasons_threads,
    };
    // The replay checks its own outputs; the summary is this command's.
    let mut outputs = config.outputs.named();
    outputs.extend(args.summary_json.as_deref().map(|p| ("--summary-json", p)));
    check_output_files(&[("the capture", &args.capture)], &outputs)?;
    let data_on_stdout = super::any_stdout(outputs.iter().map(|(_, p)| *p));
    let summary = replay::<EmbeddedModel>(config, model).await?;
    let text = if summary.scoring.is_some() {
        let customers = summary.state.customers;
        format!(
            "replay scored by {}\n{}",
            scored_by.unwrap_or_default(),
            pulse::summary::demo_report(&summary, customers, pulse::summary::RESCAN_INTERVAL_MS)
        )
    } else {
        format!("replay summary\n{}", pulse::summary::replay_table(&summary))
    };
    super::print_summary(&text, data_on_stdout);
    // Not errors (a replay of nothing is nothing), but rarely what was meant.
    if summary.records == 0 {
        pulse::tell!("warning: {} holds no records", args.capture.display());
    } else if summary.invalid_total() == summary.records {
        pulse::tell!(
            "warning: every record of {} is a dead letter: is it a capture (one DynamoDB Streams record per \
             line, as `pulse capture` writes) or a Kinesis Data Streams for DynamoDB archive? --dead-letter-out \
             FILE says why each was refused",
            args.capture.display()
        );
    }
    if summary.input_format != InputFormat::Capture {
        pulse::tell!("note: {} was read as {}", args.capture.display(), summary.input_format.describe());
    }
    if let Some(warning) = summary.behind.warning(&args.capture.display().to_string()) {
        pulse::tell!("{warning}");
    }
    if let Some(path) = args.summary_json {
        // Staged and renamed, as every output.
        let mut out = Output::create(&path)?;
        serde_json::to_writer_pretty(&mut out, &summary)?;
        out.finish()?;
    }
    Ok(())
}
