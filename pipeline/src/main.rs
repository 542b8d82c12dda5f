//! The `pulse` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use pulse::replay::{replay, ReplayConfig};
use pulse_operators::{EngineConfig, TimerPolicy};
use pulse_schemas::DAY_MS;

/// pulse keeps a live health score for every customer of a tutoring
/// marketplace: DynamoDB Streams records in, per-customer rolling 7/14/30-day
/// windows, 46-feature vectors (features-v1) out.
#[derive(Parser, Debug)]
#[command(name = "pulse", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Replay a captured stream through the engine, as fast as the machine allows.
    ///
    /// The capture is JSON Lines, one DynamoDB Streams record per line in AWS's
    /// shape (an element of a Lambda DynamoDB event's "Records"), plain or
    /// compressed (.zst, .gz). Timers run on stream time, so a replay is
    /// deterministic. Invalid records go to the dead letters and the replay
    /// carries on; the exit code is non-zero only when the input is unreadable.
    ///
    /// Example: pulse replay capture.jsonl.zst --features-out vectors.jsonl --dead-letter-out dead.jsonl
    Replay(ReplayArgs),
}

#[derive(Args, Debug)]
struct ReplayArgs {
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

fn timer_policy(no_timers: bool, hours: f64) -> Result<TimerPolicy> {
    if no_timers {
        return Ok(TimerPolicy::Off);
    }
    anyhow::ensure!(hours.is_finite() && hours > 0.0, "--timer-interval-hours must be a positive number of hours");
    let TimerPolicy::Every { max_silence_ms, .. } = TimerPolicy::default() else {
        unreachable!("the default policy has timers")
    };
    Ok(TimerPolicy::Every { interval_ms: (hours * DAY_MS as f64 / 24.0).round() as i64, max_silence_ms })
}

async fn run_replay(args: ReplayArgs) -> Result<()> {
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

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Replay(args) => run_replay(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
