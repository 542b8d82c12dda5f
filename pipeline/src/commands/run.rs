//! `pulse run` and `pulse capture`: the live consumer.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use pulse_aws::live::api::{max_records_per_call, StreamApi};
use pulse_aws::live::reader::ReaderConfig;
use pulse_aws::live::{Clock, Consumer, HydrateConfig, LeaseConfig, LiveConfig, LiveSummary, StartPosition};
use pulse_aws::output::args::OutputArgs;
use pulse_aws::output::sink::SinkStats;
use pulse_aws::AwsArgs;
use pulse_operators::scoring::{BatchPolicy, COLD_START_BURN_IN_DAYS};
use pulse_operators::EngineConfig;
use pulse_runtime::files::FileSink;
use pulse_runtime::process::Produced;
use pulse_runtime::replay::check_output_files;
use pulse_runtime::report::thousands;
use pulse_runtime::sink::{Both, Sink};

use super::replay::{scoring_config, with_monitor, TimerArgs};
use super::shutdown_signal;

/// Which stream API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum SourceKind {
    /// The table's DynamoDB stream.
    DynamodbStreams,
    /// A Kinesis data stream the table streams to (Kinesis Data Streams for DynamoDB).
    Kinesis,
}

/// Where shards with no checkpoint start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum StartArg {
    /// The oldest record retained.
    TrimHorizon,
    /// Records written from now on.
    Latest,
}

/// What moves stream time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum ClockArg {
    /// Only record times: deterministic (compare runs, replays).
    Stream,
    /// Record times, and the wall clock whenever every shard is caught up (rescoring silent customers live).
    Wall,
}

/// How long a bounded run (`--idle-exit-s`) lets a shard's reads fail
/// before it fails, at least.
const GIVE_UP_AFTER: Duration = Duration::from_secs(60);

/// The stream, positions and stopping rules shared by `run` and `capture`.
#[derive(Args, Debug)]
pub(crate) struct StreamArgs {
    /// Which stream API to read.
    #[arg(long, value_enum)]
    source: SourceKind,
    /// The table whose (latest) DynamoDB stream to read (--source dynamodb-streams).
    #[arg(long, value_name = "NAME", conflicts_with = "stream_arn")]
    table: Option<String>,
    /// The DynamoDB stream's ARN, instead of --table.
    #[arg(long, value_name = "ARN")]
    stream_arn: Option<String>,
    /// The Kinesis data stream, by name or ARN (--source kinesis).
    #[arg(long, value_name = "NAME")]
    stream: Option<String>,
    /// Where shards with no checkpoint start. Closed shards are skipped at `latest`.
    #[arg(long, value_enum, default_value = "trim-horizon")]
    start: StartArg,
    /// Keep positions (and the engine's state) in this file; a restart resumes from it.
    #[arg(long, value_name = "FILE")]
    checkpoint: Option<PathBuf>,
    /// Milliseconds between checkpoints (each flushes the outputs first).
    #[arg(long, default_value_t = 10_000, value_name = "MS")]
    checkpoint_interval_ms: u64,
    /// Also lease shards in this DynamoDB table (created when missing), so two
    /// consumers never read the same shard; needs --checkpoint.
    #[arg(long, value_name = "TABLE")]
    checkpoint_table: Option<String>,
    /// This consumer's name in the lease table. Give each consumer a stable one
    /// (its host or pod name): a restart then reclaims its own leases at once,
    /// where the default (host name and process id) waits for them to expire.
    #[arg(long, value_name = "ID")]
    consumer_id: Option<String>,
    /// Milliseconds a lease lasts without renewal (renewed at every checkpoint).
    #[arg(long, default_value_t = 60_000, value_name = "MS")]
    lease_ms: u64,
    /// Stop after this many records (counted across restarts of one checkpoint).
    #[arg(long, value_name = "N")]
    max_records: Option<u64>,
    /// Stop once every shard has been caught up, with no new record, for this many seconds.
    /// Such a bounded run also fails (exit 1) when a shard's reads keep failing (the endpoint
    /// unreachable, throttled) for 60 s or this long, whichever is longer; without it pulse
    /// retries for as long as it takes.
    #[arg(long, value_name = "SECONDS")]
    idle_exit_s: Option<f64>,
    /// Records per GetRecords call (default and most: 1000 for DynamoDB Streams, 10000 for Kinesis).
    #[arg(long, value_name = "N")]
    get_records_limit: Option<i32>,
    /// Milliseconds between polls of a caught-up shard, at first (doubling up to --poll-max-ms).
    #[arg(long, default_value_t = DEFAULT_POLL_MIN_MS, value_name = "MS")]
    poll_min_ms: u64,
    /// Longest wait, in milliseconds, between polls of a caught-up shard.
    #[arg(long, default_value_t = 2_000, value_name = "MS")]
    poll_max_ms: u64,
    /// Milliseconds between shard listings (new shards).
    #[arg(long, default_value_t = 10_000, value_name = "MS")]
    discover_interval_ms: u64,
    #[command(flatten)]
    aws: AwsArgs,
}

/// `--poll-min-ms`'s default.
const DEFAULT_POLL_MIN_MS: u64 = 200;

/// Arguments of `pulse run`.
#[derive(Args, Debug)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    stream: StreamArgs,
    /// Write feature vectors here (JSON Lines, compressed by extension; resumed exactly with --checkpoint).
    #[arg(long, value_name = "FILE")]
    features_out: Option<PathBuf>,
    /// Write dead letters (reason + whole original record) here.
    #[arg(long, value_name = "FILE")]
    dead_letter_out: Option<PathBuf>,
    /// Also write every record read here, as a capture `pulse replay` reads.
    #[arg(long, value_name = "FILE")]
    capture_out: Option<PathBuf>,
    #[command(flatten)]
    timers: TimerArgs,
    /// What moves stream time (and fires timers).
    #[arg(long, value_enum, default_value = "wall")]
    clock: ClockArg,
    /// Also write the summary as JSON here.
    #[arg(long, value_name = "FILE")]
    summary_json: Option<PathBuf>,
    #[command(flatten)]
    hydrate: HydrateArgs,
    /// Score what changed and publish it: predictions (--predictions-table),
    /// alerts (--alerts-topic-arn), dead letters (--dead-letter-queue-url),
    /// fleet and health metrics (--metrics). The model is the embedded one
    /// unless --endpoint-name names a SageMaker endpoint.
    #[arg(long)]
    score: bool,
    /// Do not check at start that the predictions table, the alerts topic
    /// and the dead-letter queue exist (one DescribeTable,
    /// GetTopicAttributes and GetQueueAttributes; for a role without them).
    #[arg(long)]
    no_output_check: bool,
    #[command(flatten)]
    scoring: LiveScoringArgs,
    #[command(flatten)]
    output: OutputArgs,
}

/// Loading customers' history from the event table.
#[derive(Args, Debug)]
pub(crate) struct HydrateArgs {
    /// Before applying a page of records, load the customers it names that
    /// this consumer holds no state for from the event table (their held
    /// events, latest "ever" events and oldest event), as the Lambda function
    /// does. Use it for a first run at `--start latest` on a table that
    /// already holds history, or for consumers that take over leased shards
    /// another consumer read. Off by default: a run from trim-horizon must
    /// equal a replay, and hydrating would read a new customer's later events
    /// ahead of their records. Needs --table, or --hydrate-table.
    #[arg(long)]
    hydrate: bool,
    /// The event table to hydrate from (default: --table). Needed with
    /// --source kinesis or --stream-arn.
    #[arg(long, value_name = "NAME", requires = "hydrate")]
    hydrate_table: Option<String>,
    /// Customers read from the table at once while hydrating.
    #[arg(long, default_value_t = 16, value_name = "N", requires = "hydrate")]
    hydrate_concurrency: usize,
}

/// How `pulse run --score` batches its model calls.
#[derive(Args, Debug)]
pub(crate) struct LiveScoringArgs {
    /// Use the model in this directory instead of the embedded one (also the
    /// fallback of an endpoint).
    #[arg(long, value_name = "DIR")]
    pub(crate) model: Option<PathBuf>,
    /// Most rows per model call.
    #[arg(long, default_value_t = BatchPolicy::default().max_rows)]
    batch_rows: usize,
    /// Longest a vector waits for its batch, in seconds; a customer's vectors
    /// within it are coalesced into its newest. Short live (latency), longer
    /// for fewer, fuller calls: 0.5 s keeps the p99 write → prediction under
    /// a second on the local server (README, "Freshness").
    #[arg(long, default_value_t = 0.5, value_name = "SECONDS")]
    linger_s: f64,
    /// Seconds between fleet-metrics publications.
    #[arg(long, default_value_t = 60.0, value_name = "SECONDS")]
    metrics_interval_s: f64,
    /// Predictions without their reasons (and no anchors kept for them).
    #[arg(long)]
    no_reasons: bool,
    /// Close days in the model monitor's rolling window (published to
    /// `pulse/ModelQuality` once a stream day); 0 turns the monitor off.
    #[arg(long, default_value_t = 7, value_name = "DAYS")]
    monitor_window_days: u32,
    /// Days at the start of the run during which its customers are taken
    /// as met mid-life (0 to 60): the model monitor does not judge the
    /// predictions standing at their midnights, and the alert of a customer
    /// whose first event falls in them does not call it new. Default: 21
    /// (the training rows' burn-in) when the run starts without its
    /// customers' history, which it meets mid-life; 0 with --hydrate or when
    /// resuming from a checkpoint (a resumed run still keeps the burn-in of
    /// the run it resumes: its end is stored with every prediction item).
    #[arg(long = "burn-in-days", value_name = "DAYS")]
    burn_in_days: Option<u32>,
}

impl LiveScoringArgs {
    /// The stage's configuration; `starts_cold`: the run starts without its
    /// customers' history (no hydration, no checkpoint to resume from).
    pub(crate) fn config(&self, starts_cold: bool) -> Result<pulse_runtime::scoring::ScoringConfig> {
        let config = scoring_config(self.batch_rows, self.linger_s, self.metrics_interval_s, !self.no_reasons)?;
        let burn_in = self.burn_in_days.unwrap_or(if starts_cold { COLD_START_BURN_IN_DAYS } else { 0 });
        with_monitor(config, self.monitor_window_days, burn_in)
    }
}

/// The shutdown signal, said the moment it arrives: the consumer sees it
/// only between steps, and a catch-up step's writes kept a SIGTERM silent
/// for 9 s (a review, 2026-12-06).
fn said_shutdown() -> impl std::future::Future<Output = ()> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!(
            "shutdown requested: the step in progress finishes, then the outputs are flushed and checkpointed"
        );
        let _ = tx.send(());
    });
    async move {
        // A dropped sender (the task ended otherwise) is a shutdown too.
        let _ = rx.await;
    }
}

/// `pulse run`'s `--write-retry-s` when none is given and no lease bounds
/// it (with `--checkpoint-table`, half the lease).
const DEFAULT_WRITE_RETRY_S: f64 = 300.0;

/// Arguments of `pulse capture`.
#[derive(Args, Debug)]
pub(crate) struct CaptureArgs {
    #[command(flatten)]
    stream: StreamArgs,
    /// The capture file (JSON Lines; .zst and .gz are compressed).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

impl StreamArgs {
    fn config(&self) -> Result<LiveConfig> {
        let leases = self.checkpoint_table.as_ref().map(|table| LeaseConfig {
            table: table.clone(),
            owner: self.consumer_id.clone().unwrap_or_else(default_consumer_id),
            lease_ms: self.lease_ms as i64,
        });
        let idle_exit = match self.idle_exit_s {
            Some(s) => {
                Some(pulse_runtime::settings::seconds(s, "--idle-exit-s", pulse_runtime::settings::YEAR_SECONDS)?)
            }
            None => None,
        };
        // A lower --poll-max-ms alone lowers the first wait with it; a first
        // wait asked for above the longest is a contradiction.
        anyhow::ensure!(
            self.poll_min_ms <= self.poll_max_ms || self.poll_min_ms == DEFAULT_POLL_MIN_MS,
            "--poll-min-ms ({}) is more than --poll-max-ms ({}): the wait starts at the first and doubles up to the second",
            self.poll_min_ms,
            self.poll_max_ms
        );
        let poll_min_ms = self.poll_min_ms.min(self.poll_max_ms);
        Ok(LiveConfig {
            start: match self.start {
                StartArg::TrimHorizon => StartPosition::TrimHorizon,
                StartArg::Latest => StartPosition::Latest,
            },
            checkpoint: self.checkpoint.clone(),
            checkpoint_interval: Duration::from_millis(self.checkpoint_interval_ms),
            leases,
            discover_interval: Duration::from_millis(self.discover_interval_ms),
            reader: ReaderConfig {
                limit: 0, // set once the stream is known
                idle_min: Duration::from_millis(poll_min_ms),
                idle_max: Duration::from_millis(self.poll_max_ms),
                // A bounded run ends when the stream cannot be read any
                // more; a consumer without --idle-exit-s retries on.
                give_up_after: idle_exit.map(|idle| idle.max(GIVE_UP_AFTER)),
                ..ReaderConfig::default()
            },
            max_records: self.max_records,
            idle_exit,
            ..LiveConfig::default()
        })
    }

    async fn consumer(&self, mut config: LiveConfig) -> Result<Consumer> {
        let sdk = self.aws.load().await;
        let api = match self.source {
            SourceKind::DynamodbStreams => {
                let client = aws_sdk_dynamodbstreams::Client::new(&sdk);
                anyhow::ensure!(
                    self.stream.is_none(),
                    "--stream names a Kinesis data stream (--source kinesis); a table's DynamoDB stream is --table NAME or --stream-arn ARN"
                );
                match (&self.table, &self.stream_arn) {
                    (Some(table), None) => StreamApi::dynamodb_table(client, table).await?,
                    (None, Some(arn)) => StreamApi::dynamodb_stream(client, arn.clone()).await?,
                    _ => anyhow::bail!("--source dynamodb-streams needs --table NAME or --stream-arn ARN"),
                }
            }
            SourceKind::Kinesis => {
                let stream = self.stream.as_deref().context("--source kinesis needs --stream NAME")?;
                anyhow::ensure!(
                    self.table.is_none() && self.stream_arn.is_none(),
                    "--table and --stream-arn are for --source dynamodb-streams"
                );
                StreamApi::kinesis(aws_sdk_kinesis::Client::new(&sdk), stream).await?
            }
        };
        let most = max_records_per_call(&api);
        config.reader.limit = match self.get_records_limit {
            Some(n) => {
                anyhow::ensure!((1..=most).contains(&n), "--get-records-limit must be between 1 and {most}");
                n
            }
            None => most,
        };
        let dynamodb =
            (config.leases.is_some() || config.hydrate.is_some()).then(|| aws_sdk_dynamodb::Client::new(&sdk));
        Consumer::prepare(config, api, dynamodb).await
    }
}

fn default_consumer_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok().map(|h| h.trim().to_owned()))
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "pulse".to_owned());
    format!("{host}-{}", std::process::id())
}

/// The checks of `run`'s and `capture`'s files before any AWS call: no two
/// are one file, none is `-` (they are resumed from the checkpoint, cut back
/// to its length, which standard output cannot be), and the checkpoint's
/// directory takes a file (found at the first checkpoint otherwise, after
/// the outputs had records no checkpoint covers).
fn check_live_files(outputs: &[(&str, &Path)], checkpoint: Option<&Path>) -> Result<()> {
    if let Some((flag, _)) = outputs.iter().find(|(_, p)| pulse_runtime::io::is_stdin(p)) {
        anyhow::bail!(
            "{flag} -: `pulse run` and `pulse capture` resume their files from the checkpoint, which standard output \
             cannot be; name a file (a capture can then be replayed with `pulse replay FILE`)"
        );
    }
    check_output_files(&[], outputs)?;
    if let Some(path) = checkpoint {
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)
            .and_then(|()| tempfile::Builder::new().prefix(".pulse-checkpoint-check").tempfile_in(dir).map(drop))
            .with_context(|| format!("--checkpoint {}: cannot write a file in {}", path.display(), dir.display()))?;
    }
    Ok(())
}

fn print(summary: &LiveSummary, title: &str) {
    say!("{title}\n{}", summary.table());
}

pub(crate) async fn run(args: RunArgs) -> Result<()> {
    let outputs = [
        ("--checkpoint", &args.stream.checkpoint),
        ("--features-out", &args.features_out),
        ("--dead-letter-out", &args.dead_letter_out),
        ("--capture-out", &args.capture_out),
        ("--summary-json", &args.summary_json),
    ];
    let outputs: Vec<(&str, &Path)> = outputs.iter().filter_map(|(flag, p)| p.as_deref().map(|p| (*flag, p))).collect();
    check_live_files(&outputs, args.stream.checkpoint.as_deref())?;
    let mut config = args.stream.config()?;
    config.engine = Some(EngineConfig { timers: args.timers.policy()? });
    config.clock = match args.clock {
        ClockArg::Stream => Clock::Stream,
        ClockArg::Wall => Clock::Wall,
    };
    config.capture = args.capture_out.clone();
    if args.hydrate.hydrate {
        let table = args
            .hydrate
            .hydrate_table
            .clone()
            .or_else(|| args.stream.table.clone())
            .context("--hydrate needs the event table: --table NAME (DynamoDB Streams), or --hydrate-table NAME")?;
        anyhow::ensure!(args.hydrate.hydrate_concurrency >= 1, "--hydrate-concurrency must be at least 1");
        config.hydrate = Some(HydrateConfig { table, concurrency: args.hydrate.hydrate_concurrency });
    }
    if config.checkpoint.is_none() {
        tracing::warn!("no --checkpoint: a restart starts over from --start");
    }
    let scoring = if args.score {
        let resumes = config.checkpoint.as_deref().is_some_and(Path::exists);
        let config = args.scoring.config(config.hydrate.is_none() && !resumes)?;
        // Found before any AWS call, as the other flags are.
        args.output.hold_timeout()?;
        let model = super::load_model(args.scoring.model.as_deref())?;
        Some((config, model))
    } else {
        anyhow::ensure!(
            args.output.predictions_table.is_none()
                && args.output.alerts_topic_arn.is_none()
                && args.output.endpoint_name.is_none(),
            "--predictions-table, --alerts-topic-arn and --endpoint-name need --score"
        );
        None
    };
    let consumer = args.stream.consumer(config).await?;
    let files = FileSink::open(args.features_out.as_deref(), args.dead_letter_out.as_deref(), consumer.sink_state())?;
    let summary = match scoring {
        Some((config, model)) => {
            let sdk = args.stream.aws.load().await;
            // A long-running consumer waits out an outage of its outputs, as
            // it does one of its reads (a review, 2026-12-06: a 30-s outage
            // of DynamoDB ended it 3.5 s in).
            let mut output = args.output.clone();
            // With leases, within half of one: leases are renewed between
            // steps, and a step that retried its writes past the lease
            // would find its shards taken by another consumer, which
            // would score and alert the same records again.
            let lease_s = args.stream.checkpoint_table.as_ref().map(|_| args.stream.lease_ms as f64 / 1000.0);
            let retry_s = *output.write_retry_s.get_or_insert(lease_s.map_or(DEFAULT_WRITE_RETRY_S, |l| l / 2.0));
            if let Some(lease_s) = lease_s.filter(|&l| retry_s >= l) {
                tracing::warn!(
                    "--write-retry-s {retry_s} is not under the lease ({lease_s} s): a step retrying that long \
                     loses its shards to another consumer, which scores and alerts its records again"
                );
            }
            if !args.no_output_check {
                pulse_aws::setup::check_outputs(
                    &sdk,
                    output.predictions_table.as_deref(),
                    output.alerts_topic_arn.as_deref(),
                    output.dead_letter_queue_url.as_deref(),
                )
                .await?;
            }
            let scoring = output.build(&sdk, config, model).await?;
            let mut sink = Both(files, scoring);
            let summary = consumer.run(&mut sink, said_shutdown()).await?;
            // The last, partial metrics period (the consumer has checkpointed).
            sink.1.finish().await.context("cannot publish the final metrics")?;
            print(&summary, "run summary");
            let stats = sink.1.stats();
            say!("{}", scoring_table(&stats));
            // From when it judges (a burn-in read back after a restart
            // included), and what it found: as the replay report says it.
            let quality = sink.1.model_quality();
            if let Some(q) = &quality {
                say!("{}", pulse::summary::model_quality_report(q));
            }
            let mut json = serde_json::to_value(&summary)?;
            json["scoring"] = serde_json::to_value(stats)?;
            if let Some(q) = quality {
                json["model_quality"] = serde_json::to_value(q)?;
            }
            json
        }
        None => {
            let summary = consumer.run(files, said_shutdown()).await?;
            print(&summary, "run summary");
            serde_json::to_value(&summary)?
        }
    };
    if let Some(path) = args.summary_json {
        let json = serde_json::to_vec_pretty(&summary)?;
        std::fs::write(&path, json).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

fn scoring_table(s: &SinkStats) -> String {
    let rows = [
        ("vectors scored or gated", s.vectors),
        ("model calls", s.model_calls),
        ("model rows", s.model_rows),
        ("model calls failed", s.model_failures),
        ("rows by the fallback model", s.fallback_rows),
        ("predictions", s.predictions),
        ("predictions written", s.predictions_written),
        ("  not written (newer stored)", s.predictions_stale),
        ("alerts", s.alerts),
        ("dead letters sent", s.dead_letters),
        ("metrics snapshots published", s.metrics_published),
        ("metrics snapshots dropped (CloudWatch refused them)", s.metrics_failed),
        ("retries", s.retries),
        ("circuit breaker opened", s.breaker_opened),
    ];
    let mut t = String::from("scoring");
    for (k, v) in rows {
        t.push_str(&format!("\n  {k:<30} {}", thousands(v)));
    }
    t
}

/// `pulse capture` has no outputs besides the capture file.
#[derive(Debug)]
struct NoSink;

impl Sink for NoSink {
    async fn send(&mut self, _produced: Produced) -> Result<()> {
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        Ok(())
    }
}

pub(crate) async fn capture(args: CaptureArgs) -> Result<()> {
    let mut outputs = vec![("--out", args.out.as_path())];
    outputs.extend(args.stream.checkpoint.as_deref().map(|p| ("--checkpoint", p)));
    check_live_files(&outputs, args.stream.checkpoint.as_deref())?;
    let mut config = args.stream.config()?;
    config.engine = None;
    config.capture = Some(args.out);
    let consumer = args.stream.consumer(config).await?;
    let summary = consumer.run(NoSink, said_shutdown()).await?;
    print(&summary, "capture summary");
    Ok(())
}
