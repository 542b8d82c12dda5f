//! `pulse generate`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use pulse::progress::Progress;
use pulse_runtime::io::Output;
use pulse_synth::{generate, Hostility, SegmentMix, SynthConfig, DEFAULT_START_MS};

/// Arguments of `pulse generate`.
#[derive(Args, Debug)]
pub(crate) struct GenerateArgs {
    /// Customers to simulate.
    #[arg(long, default_value_t = 10_000)]
    customers: usize,
    /// Days of activity.
    #[arg(long, default_value_t = 60)]
    days: u32,
    /// Seed: the same seed gives byte-identical output.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// The first day, as milliseconds since the epoch (midnight UTC).
    #[arg(long, default_value_t = DEFAULT_START_MS)]
    start_ms: i64,
    /// Segment shares on day one: thriving,healthy,at_risk,churned.
    #[arg(long, default_value = "0.3,0.4,0.2,0.1")]
    mix: SegmentMix,
    /// Stream imperfections: none, realistic (duplicates, delays) or hostile
    /// (adds corrections, retractions, TTL, late, future, invalid and non-event records).
    #[arg(long, default_value = "realistic")]
    hostility: Hostility,
    /// Where to write the capture (JSON Lines; .zst/.gz compress).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

pub(crate) async fn run(args: GenerateArgs) -> Result<()> {
    let config = SynthConfig {
        customers: args.customers,
        days: args.days,
        seed: args.seed,
        start_ms: args.start_ms,
        mix: args.mix,
        hostility: args.hostility,
        ..SynthConfig::default()
    };
    config.validate()?;
    let written = Arc::new(AtomicU64::new(0));
    // Roughly 2.3 records per customer-day at the default mix: a bar estimate.
    let estimate = (args.customers as u64 * u64::from(args.days) * 23) / 10;
    let progress = Progress::items(!args.quiet, "generate", estimate, written.clone());
    let ticker = progress.spawn_ticker(Duration::from_millis(200));
    let started = Instant::now();
    let out_path = args.out.clone();
    let summary = tokio::task::spawn_blocking(move || -> Result<_> {
        let mut out = Output::create(&out_path)?;
        let summary = generate(&config, &mut out, &mut |n| written.store(n, Relaxed))?;
        out.finish()?;
        Ok(summary)
    })
    .await
    .context("generator task failed")??;
    ticker.abort();
    progress.finish();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "wrote {} records ({} events) for {} customers over {} days to {} in {:.2} s ({:.0} records/s)",
        summary.records,
        summary.events,
        summary.customers,
        summary.days,
        args.out.display(),
        secs,
        summary.records as f64 / secs.max(1e-9)
    );
    let names = ["thriving", "healthy", "at_risk", "churned"];
    let start: Vec<String> = names.iter().zip(summary.by_segment_at_start).map(|(n, c)| format!("{n} {c}")).collect();
    let end: Vec<String> = names.iter().zip(summary.by_segment_at_end).map(|(n, c)| format!("{n} {c}")).collect();
    println!("segments on day one: {}; on the last day: {}", start.join(", "), end.join(", "));
    Ok(())
}
