//! `pulse replay`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use pulse::replay::{replay, ReplayConfig};
use pulse_operators::{EngineConfig, TimerPolicy};
use pulse_schemas::DAY_MS;

/// Arguments of `pulse replay`.
#[derive(Args, Debug)]
pub(crate) struct ReplayArgs {
    /// The capture file (JSON Lines; .zst and .gz are decompressed).
    capture: PathBuf,
    /// Write feature vectors here (JSON Lines, compressed by extension).
    #[arg(long, value_name = "FILE")]
    features_out: Option<PathBuf>,
    /// Write dead letters (reason + whole original record) here.
    #[arg(long, value_name = "FILE")]
    dead_letter_out: Option<PathBuf>,
    /// Emit vectors only on records: no timer rescoring of silent customers.
    #[arg(long)]
    no_timers: bool,
    /// Hours between the timer vectors of a silent customer.
    #[arg(long, default_value_t = 24.0, value_name = "HOURS")]
    timer_interval_hours: f64,
    /// Also write the summary as JSON here.
    #[arg(long, value_name = "FILE")]
    summary_json: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

pub(crate) fn timer_policy(no_timers: bool, hours: f64) -> Result<TimerPolicy> {
    if no_timers {
        return Ok(TimerPolicy::Off);
    }
    anyhow::ensure!(hours.is_finite() && hours > 0.0, "--timer-interval-hours must be a positive number of hours");
    let TimerPolicy::Every { max_silence_ms, .. } = TimerPolicy::default() else {
        unreachable!("the default policy has timers")
    };
    Ok(TimerPolicy::Every { interval_ms: (hours * DAY_MS as f64 / 24.0).round() as i64, max_silence_ms })
}

pub(crate) async fn run(args: ReplayArgs) -> Result<()> {
    let config = ReplayConfig {
        capture: args.capture,
        features_out: args.features_out,
        dead_letter_out: args.dead_letter_out,
        engine: EngineConfig { timers: timer_policy(args.no_timers, args.timer_interval_hours)? },
        progress: !args.quiet,
    };
    let summary = replay(config).await?;
    println!("replay summary\n{}", pulse::summary::replay_table(&summary));
    if let Some(path) = args.summary_json {
        let json = serde_json::to_vec_pretty(&summary)?;
        std::fs::write(&path, json).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

