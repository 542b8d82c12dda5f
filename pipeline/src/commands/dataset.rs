//! `pulse dataset`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use pulse::dataset::{file_bytes, rows, utc_day, LabelBook, RowPolicy};
use pulse::dataset_file::DatasetWriter;
use pulse::learn::out_of_time_too_short;
use pulse::progress::Progress;
use pulse_runtime::replay::refuse_same_files;
use pulse_schemas::DAY_MS;

/// Which vectors become rows, and how they are split: shared by `pulse
/// dataset`, `pulse train --capture` and `pulse evaluate --capture`.
#[derive(Args, Debug, Clone)]
pub(crate) struct RowArgs {
    /// Rows start this many days after the capture's start, once the 30-day
    /// windows have filled. The capture's start and end are its first and
    /// last record's creation time (the stream's clock, which an event's
    /// back-dated ts does not move); for a capture of events mostly written
    /// more than a day after they happened (a table loaded with its
    /// history), the first and last ts of the events the engine accepts
    /// (not late).
    #[arg(long, default_value_t = RowPolicy::default().burn_in_days)]
    pub(crate) burn_in_days: i64,
    /// Keep one event-triggered vector in this many (by a hash of customer
    /// and as_of); every daily timer vector is kept.
    #[arg(long, default_value_t = RowPolicy::default().event_sample_every)]
    pub(crate) event_sample_every: u64,
    /// Seed of the customer split (70% train, 15% valid, 15% test).
    #[arg(long, default_value_t = RowPolicy::default().split_seed)]
    pub(crate) split_seed: u64,
    /// The out-of-time cut, in days after the capture's start
    /// (default: the day that gives training rows, whose labels end before
    /// it, and test rows, after it, equal spans).
    #[arg(long, value_name = "DAYS")]
    pub(crate) cut_day: Option<f64>,
}

impl RowArgs {
    /// The policy they ask for.
    pub(crate) fn policy(&self) -> Result<RowPolicy> {
        anyhow::ensure!(self.burn_in_days >= 0, "--burn-in-days must be >= 0");
        anyhow::ensure!(self.event_sample_every >= 1, "--event-sample-every must be >= 1");
        let cut_after_first = match self.cut_day {
            Some(d) => {
                anyhow::ensure!(d.is_finite() && d >= 0.0, "--cut-day must be a number of days >= 0");
                Some((d * DAY_MS as f64).round() as i64)
            }
            None => None,
        };
        Ok(RowPolicy {
            burn_in_days: self.burn_in_days,
            event_sample_every: self.event_sample_every,
            split_seed: self.split_seed,
            cut_after_first,
            all_rows: false,
        })
    }
}

/// Arguments of `pulse dataset`.
#[derive(Args, Debug)]
pub(crate) struct DatasetArgs {
    /// The capture (JSON Lines of stream records, or a Kinesis Data Streams
    /// for DynamoDB archive; .zst/.gz decompressed).
    capture: PathBuf,
    /// The rows: .parquet (zstd) or .csv. Written beside it and renamed
    /// over it on success: a failed run leaves an existing file as it was.
    /// Refused if it is the capture itself.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    #[command(flatten)]
    rows: RowArgs,
    /// Also write vectors whose label horizon is not inside the capture,
    /// with empty labels (for scoring, never for training).
    #[arg(long)]
    all_rows: bool,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

pub(crate) async fn run(args: DatasetArgs) -> Result<()> {
    let started = Instant::now();
    let total = file_bytes(&args.capture)?;
    // The rows are written beside --out and renamed over it on success, so
    // a failed run leaves it as it was; but a successful one would still
    // replace the capture it read.
    refuse_same_files(&[("the capture", &args.capture), ("--out", &args.out)])?;
    let read = Arc::new(AtomicU64::new(0));
    let (capture, out, quiet) = (args.capture.clone(), args.out.clone(), args.quiet);
    let row_args = args.rows.clone();
    let all_rows = args.all_rows;
    let counter = read.clone();
    let bar = |label: &str| {
        let p = Progress::bytes(!quiet, label, total, read.clone());
        (p.spawn_ticker(Duration::from_millis(200)), p)
    };
    let (ticker, progress) = bar("labels");
    let book = {
        let (capture, counter) = (capture.clone(), counter.clone());
        tokio::task::spawn_blocking(move || LabelBook::scan(&capture, &mut |n| counter.store(n, Relaxed)))
            .await
            .context("label pass failed")??
    };
    ticker.abort();
    progress.finish();
    book.check_usable(&capture.display().to_string())?;
    for warning in book.warnings() {
        pulse::tell!("{warning}");
    }
    let (ticker, progress) = bar("features");
    let (stats, written) = tokio::task::spawn_blocking(move || -> Result<_> {
        let futures = book.into_futures();
        let mut policy = row_args.policy()?;
        policy.all_rows = all_rows;
        let mut writer = DatasetWriter::create(&out)?;
        let stats =
            rows(&capture, &futures, &policy, &mut |row| writer.write(&row), None, &mut |n| counter.store(n, Relaxed))?;
        // A file of no rows is no dataset: it does not replace --out (the
        // writer, dropped, removes its temporary file).
        let written = stats.labelled > 0 || (all_rows && stats.unlabelled > 0);
        if written {
            writer.finish()?;
        }
        Ok((stats, written))
    })
    .await
    .context("feature pass failed")??;
    ticker.abort();
    progress.finish();
    let day = utc_day;
    say!(
        "{} records, {} vectors: {} labelled rows{} {} {} in {:.1} s\n\
         capture from {} to {}, by {}\n\
         {}\n\
         dropped: {} event vectors by sampling (1 in {} kept), {} outside the labelled span",
        stats.records,
        stats.vectors,
        stats.labelled,
        if all_rows { format!(" and {} without labels", stats.unlabelled) } else { String::new() },
        if written { "written to" } else { "(nothing written to" },
        if written { args.out.display().to_string() } else { format!("{})", args.out.display()) },
        started.elapsed().as_secs_f64(),
        day(stats.first),
        day(stats.last),
        stats.clock.map_or("", |c| c.describe()),
        // A capture too short for labels ends its last labellable as_of
        // before the burn-in's end: that range, printed as it was ("from
        // 2026-01-26 to 2026-01-14"), read as a bug before the error said why.
        if stats.rows_from <= stats.rows_to {
            format!(
                "labelled as_of from {} to {} (burn-in before, 30-day horizon after); out-of-time cut {}",
                day(stats.rows_from),
                day(stats.rows_to),
                day(stats.cut)
            )
        } else {
            format!(
                "no as_of can be labelled: the burn-in ends {}, after the last as_of whose 30-day horizon closes \
                 within the capture ({})",
                day(stats.rows_from),
                day(stats.rows_to)
            )
        },
        stats.sampled_out,
        args.rows.event_sample_every,
        stats.outside_horizon,
    );
    if stats.dead_letters > 0 {
        say!(
            "dead letters (invalid records) {}: they feed no row, as they feed no vector when served \
             (`pulse replay {} --dead-letter-out FILE` lists each with its reason)",
            stats.dead_letters,
            args.capture.display()
        );
    }
    // The rule `pulse train` and `pulse evaluate` judge the split by.
    if let Some(why) = written.then(|| out_of_time_too_short(&stats)).flatten() {
        say!("no out-of-time split to judge a model on: {why}");
    }
    // A file of no rows is no dataset: say why rather than succeed.
    anyhow::ensure!(
        written,
        "no labelled rows ({} left as it was): a vector is labelled only when it is at least --burn-in-days ({}) \
         after the capture's start and its 30-day horizon closes before the capture's end, so the capture must \
         span more than {} days (a stream keeps only its last 24 hours of writes: keep its history with \
         `pulse run --capture-out`, or a Firehose delivery of the table's Kinesis stream, which pulse reads as \
         it is)",
        args.out.display(),
        args.rows.burn_in_days,
        args.rows.burn_in_days + 30
    );
    Ok(())
}
