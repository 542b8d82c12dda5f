//! `pulse generate`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use pulse::progress::Progress;
use pulse_runtime::io::Output;
use pulse_runtime::replay::check_output_files;
use pulse_schemas::Segment;
use pulse_synth::{
    generate_with_segments, Hostility, RecordProfile, SegmentMix, Shift, SynthConfig, WorldKind, DEFAULT_START_MS,
};

/// How the synthetic customers behave (`--world`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum WorldArg {
    /// Every customer there from day one in a segment; segments change by a daily Markov chain.
    Classic,
    /// Signups over the run, onboarding, weekly slots, a school calendar, tutor match, churn by a
    /// hazard that bad experiences raise with a lag, comebacks; the segment is read from each
    /// customer's latent state.
    Lifecycle,
}

impl From<WorldArg> for WorldKind {
    fn from(world: WorldArg) -> WorldKind {
        match world {
            WorldArg::Classic => WorldKind::Classic,
            WorldArg::Lifecycle => WorldKind::Lifecycle,
        }
    }
}

/// How large the records are (`--record-profile`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum RecordProfileArg {
    /// Only the contract's attributes (about 710 to 810 bytes a record,
    /// most of it the stream record's own fields and keys).
    Compact,
    /// Event items also carry the attributes a production table adds
    /// (client, tracing ids, a map and a list): about 850 to 1,010 bytes a
    /// record. Ignored by the decoder: the same features as compact.
    Realistic,
}

impl From<RecordProfileArg> for RecordProfile {
    fn from(profile: RecordProfileArg) -> RecordProfile {
        match profile {
            RecordProfileArg::Compact => RecordProfile::Compact,
            RecordProfileArg::Realistic => RecordProfile::Realistic,
        }
    }
}

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
    /// The first day, as milliseconds since the epoch (midnight UTC). Every
    /// time in the capture must be one pulse decodes (2000-01-01 to before
    /// 2200-01-01), back-dated and future-dated events included: from
    /// 2000-05-01 (946684800000 + 121 days) to an end (start + --days) by
    /// 2199-12-28.
    #[arg(long, default_value_t = DEFAULT_START_MS)]
    start_ms: i64,
    /// How customers behave: classic (segments and a Markov chain) or lifecycle
    /// (signups, habits, calendar, tutor match, churn by hazard; see the README).
    #[arg(long, value_enum, default_value = "classic")]
    world: WorldArg,
    /// Segment shares on day one: thriving,healthy,at_risk,churned. In the
    /// lifecycle world: the shares of the intents customers enter with, on
    /// day one or at signup (a churned intent at signup never books a session).
    #[arg(long, default_value = "0.3,0.4,0.2,0.1")]
    mix: SegmentMix,
    /// Stream imperfections: none, realistic (duplicates, delays) or hostile
    /// (adds corrections, retractions, TTL, late, future, invalid and non-event records).
    #[arg(long, default_value = "realistic")]
    hostility: Hostility,
    /// Record size: compact (the contract's attributes only) or realistic
    /// (extra non-contract attributes, about 850 to 1,010 bytes a record
    /// where compact ones are about 710 to 810).
    #[arg(long, value_enum, default_value = "compact")]
    record_profile: RecordProfileArg,
    /// From this day on (0-based, at least 1: a drift needs days before
    /// it), sessions become rarer for every customer (classic world): a
    /// drift for the model monitor. Days before it are byte-identical to
    /// the capture without the option.
    #[arg(long, value_name = "DAY")]
    shift_day: Option<u32>,
    /// With --shift-day: the factor on each customer's daily chance of a session.
    #[arg(long, default_value_t = 0.25, value_name = "FACTOR", requires = "shift_day")]
    shift_sessions: f64,
    /// Where to write the capture (JSON Lines; .zst/.gz compress); `-`
    /// writes it to standard output (the summary then goes to standard error).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Also write the generator's own segment of each customer, as CSV
    /// `customer_id,segment_start,segment_end` (the first and the last day;
    /// empty for a customer not signed up yet on that day).
    #[arg(long, value_name = "FILE")]
    truth_out: Option<PathBuf>,
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
        world: args.world.into(),
        mix: args.mix,
        hostility: args.hostility,
        record_profile: args.record_profile.into(),
        shift: args.shift_day.map(|from_day| Shift { from_day, session_factor: args.shift_sessions }),
        ..SynthConfig::default()
    };
    config.validate()?;
    // As every batch command checks its outputs before the work: a
    // directory, two outputs on one file, `-` twice (the truth's CSV went
    // into the piped capture).
    let mut outputs = vec![("--out", args.out.as_path())];
    outputs.extend(args.truth_out.as_deref().map(|t| ("--truth-out", t)));
    check_output_files(&[], &outputs)?;
    let written = Arc::new(AtomicU64::new(0));
    // Roughly 2.3 records per customer-day at the default mix: a bar estimate.
    let estimate = (args.customers as u64 * u64::from(args.days) * 23) / 10;
    let progress = Progress::items(!args.quiet, "generate", estimate, written.clone());
    let ticker = progress.spawn_ticker(Duration::from_millis(200));
    let started = Instant::now();
    let out_path = args.out.clone();
    let truth_path = args.truth_out.clone();
    let summary = tokio::task::spawn_blocking(move || -> Result<_> {
        let mut out = Output::create(&out_path)?;
        let last_day = config.days - 1;
        let (mut first, mut last) = (Vec::new(), Vec::new());
        let summary = generate_with_segments(&config, &mut out, &mut |n| written.store(n, Relaxed), &mut |day, s| {
            if truth_path.is_some() && day == 0 {
                first = s.to_vec();
            }
            if truth_path.is_some() && day == last_day {
                last = s.to_vec();
            }
        })?;
        out.finish()?;
        if let Some(path) = &truth_path {
            write_truth(path, &first, &last)?;
        }
        Ok(summary)
    })
    .await
    .context("generator task failed")??;
    ticker.abort();
    progress.finish();
    let secs = started.elapsed().as_secs_f64();
    let mut text = format!(
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
    text.push_str(&format!("\nsegments on day one: {}; on the last day: {}", start.join(", "), end.join(", ")));
    if summary.arrivals > 0 {
        text.push_str(&format!("\n{} customers signed up after day one", summary.arrivals));
    }
    if let Some(path) = &args.truth_out {
        text.push_str(&format!("\nwrote each customer's segment on the first and the last day to {}", path.display()));
    }
    super::print_summary(
        &text,
        super::any_stdout([Some(args.out.as_path()), args.truth_out.as_deref()].into_iter().flatten()),
    );
    Ok(())
}

/// `customer_id,segment_start,segment_end`, one line per customer; a segment
/// is empty for a customer not signed up yet on that day.
fn write_truth(path: &Path, first: &[Option<Segment>], last: &[Option<Segment>]) -> Result<()> {
    let mut out = Output::create(path)?;
    let name = |s: Option<&Option<Segment>>| s.copied().flatten().map_or("", Segment::as_str);
    let write = |out: &mut Output| -> std::io::Result<()> {
        writeln!(out, "customer_id,segment_start,segment_end")?;
        for i in 0..first.len().max(last.len()) {
            writeln!(out, "stu_{i:06},{},{}", name(first.get(i)), name(last.get(i)))?;
        }
        Ok(())
    };
    write(&mut out).with_context(|| format!("cannot write {}", path.display()))?;
    out.finish()
}
