//! `pulse loadtest`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use pulse::cost::{self, Deployment, Measured};
use pulse::progress::Progress;
use pulse_aws::output::args::OutputArgs;
use pulse_aws::output::predictions::OnWritten;
use pulse_aws::AwsArgs;
use pulse_operators::EngineConfig;
use pulse_runtime::report::thousands;
use pulse_runtime::settings::{seconds, YEAR_SECONDS};
use pulse_schemas::DAY_MS;
use pulse_synth::loadtest::latency::LatencyTracker;
use pulse_synth::loadtest::live::{run_live, LiveLoad, LiveReport, WriteLoad};
use pulse_synth::loadtest::{in_process, InProcessReport};
use pulse_synth::{Hostility, SynthConfig};

use super::replay::TimerArgs;
use super::run::LiveScoringArgs;

/// Events per customer per day of pulse's synthetic marketplace (336,740
/// records of 5,000 customers over 30 days): the cost model's rate when the
/// run does not measure one.
const DEFAULT_EVENTS_PER_CUSTOMER_DAY: f64 = 2.24;

/// Arguments of `pulse loadtest`.
#[derive(Args, Debug)]
pub(crate) struct LoadtestArgs {
    /// No AWS at all: the engine's maximum on one thread, next to the
    /// baseline of parsing the same lines into serde_json::Value; then the
    /// same lines scored on one thread as the Lambda function scores them
    /// (what a prediction costs a core, for the bill).
    #[arg(long)]
    in_process: bool,
    /// Customers in the synthetic marketplace.
    #[arg(long, default_value_t = 500)]
    customers: usize,
    /// Days of history per customer (written oldest first, ending now).
    #[arg(long, default_value_t = 30)]
    days: u32,
    /// Seed of the marketplace.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Target events written per second.
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// Stop writing after this many seconds...
    #[arg(long, default_value_t = 60.0, value_name = "SECONDS")]
    duration_s: f64,
    /// ...or after this many events, whichever comes first.
    #[arg(long, default_value_t = 1_000_000)]
    max_events: u64,
    /// The producer's BatchWriteItem calls in flight at once.
    #[arg(long, default_value_t = 4)]
    event_writes_in_flight: usize,
    /// The events table to write and read (created with its stream). Default:
    /// a new table named pulse-loadtest-<time>.
    #[arg(long, value_name = "NAME")]
    table: Option<String>,
    /// After the last write, seconds to wait for the predictions still due.
    #[arg(long, default_value_t = 30.0, value_name = "SECONDS")]
    drain_timeout_s: f64,
    /// Fire timers (off by default: the written events are history, so each
    /// customer's daily timers would all catch up at its first record).
    #[arg(long)]
    timers: bool,
    #[command(flatten)]
    timer: TimerArgs,
    #[command(flatten)]
    scoring: LiveScoringArgs,
    /// Events per customer per day of the cost model printed at the end
    /// (default: the generated marketplace's own rate).
    #[arg(long, value_name = "N")]
    cost_events_per_customer_day: Option<f64>,
    /// The cost model prices pulse scoring on a SageMaker endpoint (default:
    /// the embedded model, in the function).
    #[arg(long)]
    cost_endpoint: bool,
    /// Write the JSON summary here too.
    #[arg(long, value_name = "FILE")]
    summary_json: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    #[command(flatten)]
    aws: AwsArgs,
    #[command(flatten)]
    output: OutputArgs,
}

/// The lowest `--rate`: one event a day.
const MIN_RATE: f64 = 1.0 / 86_400.0;

pub(crate) async fn run(args: LoadtestArgs) -> Result<()> {
    anyhow::ensure!(args.customers > 0, "--customers must be at least 1");
    anyhow::ensure!(args.duration_s.is_finite() && args.duration_s > 0.0, "--duration-s must be > 0");
    anyhow::ensure!(args.rate.is_finite() && args.rate > 0.0, "--rate must be more than 0 events/s, got {}", args.rate);
    anyhow::ensure!(args.drain_timeout_s.is_finite() && args.drain_timeout_s >= 0.0, "--drain-timeout-s must be >= 0");
    // Finite but past what a clock can count (1e30 s) panicked later.
    let duration = seconds(args.duration_s, "--duration-s", YEAR_SECONDS)?;
    let drain_timeout = seconds(args.drain_timeout_s, "--drain-timeout-s", YEAR_SECONDS)?;
    anyhow::ensure!(
        args.rate >= MIN_RATE,
        "--rate {} is less than one event in {} s: the first write would come after the run",
        args.rate,
        1.0 / MIN_RATE
    );
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as i64;
    let synth = SynthConfig {
        customers: args.customers,
        days: args.days,
        seed: args.seed,
        // History ending today, so no event is "in the future" of the
        // records the table's stream stamps with the wall clock.
        start_ms: (now / DAY_MS - i64::from(args.days)) * DAY_MS,
        hostility: Hostility::none(),
        ..SynthConfig::default()
    };
    synth.validate()?;
    let engine =
        EngineConfig { timers: if args.timers { args.timer.policy()? } else { pulse_operators::TimerPolicy::Off } };
    if let Some(n) = args.cost_events_per_customer_day {
        // -1 priced 27,183 silent customers of 10,000, and NaN a NaN bill.
        anyhow::ensure!(n.is_finite() && n >= 0.0, "--cost-events-per-customer-day must be a number >= 0, got {n}");
    }
    let deployment = Deployment { pulse_uses_endpoint: args.cost_endpoint, ..Deployment::default() };
    let (json, measured, rate) = if args.in_process {
        // What the in-process pass cannot do, refused rather than ignored
        // (its bill was always the embedded model's, whatever was asked).
        anyhow::ensure!(
            args.table.is_none() && args.output.endpoint_name.is_none(),
            "--in-process calls no AWS service: --table and --endpoint-name are for the live load test (the bill \
             prices an endpoint with --cost-endpoint)"
        );
        let model = super::load_model(args.scoring.model.as_deref())?;
        let scoring = args.scoring.config(true)?;
        let report = tokio::task::spawn_blocking(move || in_process(&synth, engine, model, scoring)).await??;
        say!("{}", in_process_table(&report));
        if report.records == 0 || report.predictions == 0 {
            say!("{}", serde_json::to_string_pretty(&report)?);
            say!(
                "cost: not priced: this run measured {} records and {} predictions, and a bill needs both (more \
                 --customers or --days)",
                report.records,
                report.predictions
            );
            return write_summary(&args, &serde_json::to_string_pretty(&report)?);
        }
        if report.records < SMALL_SAMPLE {
            pulse::tell!(
                "warning: the bill below is extrapolated from {} records: its rates are a small sample's (a few \
                 thousand customers over a month measure them steadily)",
                report.records
            );
        }
        let measured = Measured {
            records_per_core_second: report.pulse_records_per_s,
            scoring_core_seconds_per_prediction: report.scoring_seconds_per_prediction,
            ..Measured::default()
        };
        let rate = report.records as f64 / (report.customers as f64 * f64::from(report.days)).max(1.0);
        (serde_json::to_string_pretty(&report)?, measured, rate)
    } else {
        let report = live(&args, synth, engine, now, (duration, drain_timeout)).await?;
        say!("{}", live_table(&report));
        if args.table.is_none() {
            // On an account each run leaves a table with its items and
            // stream; nothing said so.
            say!(
                "the load test's table {} is left in place, with its events, predictions and stream (delete it: aws \
                 dynamodb delete-table --table-name {})",
                report.table,
                report.table
            );
        }
        let (written, latency) = (report.write.events_written, &report.latency);
        if latency.pending > 0 {
            pulse::tell!(
                "warning: {} of the {written} events written were not scored by the end of the drain: the local \
                 server fell behind (a longer --drain-timeout-s, a lower --rate), or the table already held them \
                 (a --table an earlier load test filled, with the same --seed: the same event ids, so duplicates)",
                latency.pending
            );
        }
        anyhow::ensure!(
            latency.resolved > 0 || written == 0,
            "no write -> prediction latency was measured: none of the {written} events written was scored (see the warning)"
        );
        if written == 0 {
            say!("{}", serde_json::to_string_pretty(&report)?);
            say!("cost: not priced: no event was written (a higher --rate, a longer --duration-s, or --max-events above 0)");
            return write_summary(&args, &serde_json::to_string_pretty(&report)?);
        }
        let events = report.write.events_written.max(1) as f64;
        let measured = Measured {
            predictions_per_event: report.scoring.predictions_written as f64 / events,
            model_calls_per_event: report.calls_per_event,
            ..Measured::default()
        };
        (serde_json::to_string_pretty(&report)?, measured, DEFAULT_EVENTS_PER_CUSTOMER_DAY)
    };
    say!("{json}");
    let rate = args.cost_events_per_customer_day.unwrap_or(rate);
    // Which of the bill's rates this run measured, and which are the cost
    // model's defaults (docs/COST.md): the header printed them alike.
    let events_rate = if args.cost_events_per_customer_day.is_some() {
        "--cost-events-per-customer-day"
    } else if args.in_process {
        "this run's"
    } else {
        "the default"
    };
    say!(
        "{}",
        if args.in_process {
            format!(
                "the bill's rates: records/s and scoring time this run's; predictions and model calls per event the \
                 cost model's defaults (a pulse demo with daily timers, and the live worst case: docs/COST.md); events \
                 per customer per day {events_rate}"
            )
        } else {
            format!(
                "the bill's rates: predictions and model calls per event this run's; records/s and scoring time the \
                 cost model's defaults (in-process runs: docs/COST.md); events per customer per day {events_rate}"
            )
        }
    );
    say!("{}", cost::report(rate, &measured, &deployment, &cost::US_EAST_1));
    // The summary file carries the bill too, as JSON (stdout has it as the table above).
    let mut summary: serde_json::Value = serde_json::from_str(&json)?;
    if let Some(fields) = summary.as_object_mut() {
        fields.insert("bill".into(), cost::report_json(rate, &measured, &deployment, &cost::US_EAST_1));
    }
    write_summary(&args, &serde_json::to_string_pretty(&summary)?)
}

/// Fewer records than this measure the bill's rates roughly: said.
const SMALL_SAMPLE: u64 = 10_000;

/// `--summary-json`, when given.
fn write_summary(args: &LoadtestArgs, json: &str) -> Result<()> {
    if let Some(path) = &args.summary_json {
        std::fs::write(path, json).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// The last argument: `--duration-s` and `--drain-timeout-s`, checked.
async fn live(
    args: &LoadtestArgs,
    synth: SynthConfig,
    engine: EngineConfig,
    now: i64,
    (duration, drain_timeout): (Duration, Duration),
) -> Result<LiveReport> {
    let sdk = args.aws.load().await;
    let table = args.table.clone().unwrap_or_else(|| format!("pulse-loadtest-{now}"));
    let mut output = args.output.clone();
    output.predictions_table.get_or_insert_with(|| table.clone());
    let tracker = Arc::new(LatencyTracker::new());
    let on_written: OnWritten = {
        let tracker = Arc::clone(&tracker);
        Arc::new(move |p| tracker.predicted(p.customer_id.as_str(), p.as_of, std::time::Instant::now()))
    };
    let scoring = args.scoring.config(true)?;
    let model = super::load_model(args.scoring.model.as_deref())?;
    let sink = output.build_observed(&sdk, scoring, model, Some(on_written)).await?;
    let load = LiveLoad {
        write: WriteLoad {
            synth,
            rate: args.rate,
            duration,
            max_events: args.max_events,
            concurrency: args.event_writes_in_flight,
        },
        table: table.clone(),
        drain_timeout,
        engine,
    };
    let expected = ((args.rate * args.duration_s) as u64).min(args.max_events);
    let written = Arc::new(AtomicU64::new(0));
    let progress = Progress::items(!args.quiet, "items written", expected, Arc::clone(&written));
    let ticker = progress.spawn_ticker(Duration::from_millis(200));
    say!(
        "pulse loadtest: {} customers x {} days into {table} at {} events/s for up to {} s ({} events at most)",
        args.customers,
        args.days,
        args.rate,
        args.duration_s,
        args.max_events
    );
    let result = run_live(&sdk, &load, sink, tracker, &|n| written.store(n, Relaxed)).await;
    ticker.abort();
    progress.finish();
    result
}

fn in_process_table(r: &InProcessReport) -> String {
    if r.records == 0 {
        // Rates of nothing read NaN and inf.
        return format!("in-process: 0 records ({} customers x {} days): nothing to measure", r.customers, r.days);
    }
    format!(
        "in-process: {} records ({} customers x {} days, {:.1} MB)\n  parse into serde_json::Value  {} records/s\n  pulse decode + apply          {} records/s ({:.2}x the baseline, one thread)\n  pulse decode + apply + score  {} records/s ({}, one thread: {} predictions in {} model calls, {:.1} µs of scoring each)\n  vectors {}  dead letters {}  state {:.1} MiB",
        thousands(r.records),
        r.customers,
        r.days,
        r.capture_bytes as f64 / 1e6,
        thousands(r.baseline_value_parse_records_per_s as u64),
        thousands(r.pulse_records_per_s as u64),
        r.ratio_to_baseline,
        thousands(r.scored_records_per_s as u64),
        r.scored_by,
        thousands(r.predictions),
        thousands(r.model_calls),
        r.scoring_seconds_per_prediction * 1e6,
        thousands(r.vectors),
        thousands(r.dead_letters),
        r.state_bytes as f64 / (1 << 20) as f64
    )
}

fn live_table(r: &LiveReport) -> String {
    let l = &r.latency;
    let ratio = r.rescan_calls_ratio.map_or("n/a".to_owned(), |x| format!("{x:.1}x"));
    // An empty histogram's percentiles read 0: not a latency.
    let latency = if l.resolved == 0 {
        "none measured".to_owned()
    } else {
        format!("p50 {:.0} ms  p95 {:.0} ms  p99 {:.0} ms  max {:.0} ms", l.p50_ms, l.p95_ms, l.p99_ms, l.max_ms)
    };
    format!(
        "live: {} customers, {:.1} s\n  written            {} items ({} events) in {} BatchWriteItem calls, {:.0} items/s\n  consumed           {} records, {:.0} records/s, {} vectors\n  latency write->prediction  {latency} ({} resolved, {} pending)\n  model              {} calls, {} rows: {:.3} calls and {:.3} rows per event\n  predictions        {} written, {} not (newer stored)\n  5-min rescan       {:.2} rescans over the same time: {:.0} endpoint calls, {:.0} items scanned ({ratio} pulse's calls, at this test's event rate of {:.0} events per customer per day: weeks of history written in seconds; the bill below prices --cost-events-per-customer-day, {} by default)",
        r.customers,
        r.seconds,
        thousands(r.write.items_written),
        thousands(r.write.events_written),
        thousands(r.write.write_calls),
        r.write.items_per_second,
        thousands(r.records_consumed),
        r.records_per_second,
        thousands(r.vectors),
        thousands(l.resolved),
        thousands(l.pending),
        thousands(r.scoring.model_calls),
        thousands(r.scoring.model_rows),
        r.calls_per_event,
        r.rows_per_event,
        thousands(r.scoring.predictions_written),
        thousands(r.scoring.predictions_stale),
        r.rescan.rescans,
        r.rescan.endpoint_calls,
        r.rescan.scan_item_reads,
        r.write.events_written as f64 / (r.customers.max(1) as f64) / (r.seconds.max(1e-9) / 86_400.0),
        DEFAULT_EVENTS_PER_CUSTOMER_DAY,
    )
}
