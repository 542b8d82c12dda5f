//! The `pulse` command line.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod commands;

/// pulse keeps a live health score for every customer of a tutoring
/// marketplace: DynamoDB Streams records in, per-customer rolling 7/14/30-day
/// windows, 46-feature vectors (features-v1) out.
#[derive(Parser, Debug)]
#[command(name = "pulse", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Give freed memory back to the system every this many milliseconds
    /// (glibc's malloc_trim; 0: never). A long run holding many customers
    /// frees short-lived buffers among its long-lived state; trimming keeps
    /// their pages from counting in its resident size (a million customers
    /// scored: docs/MEASUREMENTS.md, goal 5).
    #[arg(long, global = true, env = "PULSE_TRIM_MS", default_value_t = 1000, value_name = "MS")]
    trim_ms: u64,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The main job, end to end with no AWS account: a synthetic marketplace
    /// streamed through the engine and the embedded model.
    ///
    /// Generates customers (default 10,000 over 60 days), applies every record,
    /// scores only what changed (change gate, per-customer coalescing,
    /// micro-batches), keeps fleet metrics and alerts, and prints throughput,
    /// model calls against a five-minute full rescan, segments, whom to save
    /// first and who is already gone (with the reasons of each score), the
    /// alert count and the last five alerts with their reasons, and the
    /// model's realised quality. Writes the latest prediction
    /// of each customer, alerts and fleet metrics as JSON Lines under
    /// --out-dir (every prediction only with --predictions-history).
    ///
    /// Example: pulse demo --customers 2000 --days 30
    Demo(commands::demo::DemoArgs),
    /// Replay a captured stream through the engine, as fast as the machine allows.
    ///
    /// The capture is JSON Lines, one DynamoDB Streams record per line in AWS's
    /// shape (an element of a Lambda DynamoDB event's "Records"), plain or
    /// compressed (.zst, .gz). Timers run on stream time, so a replay is
    /// deterministic. Invalid records go to the dead letters and the replay
    /// carries on; the exit code is non-zero only when the input is unreadable.
    ///
    /// Example: pulse replay capture.jsonl.zst --features-out vectors.jsonl --dead-letter-out dead.jsonl
    Replay(commands::replay::ReplayArgs),
    /// Consume a table's DynamoDB stream (or the Kinesis stream it feeds) as a
    /// long-running job: vectors and dead letters out, checkpoints as it goes.
    ///
    /// Shards are read in lineage order (a parent before its children), one
    /// reader per shard. Every record is decoded and applied exactly as
    /// `pulse replay` would (--capture-out writes them as a capture). With
    /// --checkpoint, positions, the engine's state and the output files'
    /// lengths are saved every --checkpoint-interval-ms after the outputs are
    /// flushed; a restart (even after kill -9) resumes there and the outputs
    /// end up as an uninterrupted run's. SIGTERM / ctrl-c: stop reading, flush,
    /// checkpoint, exit 0. --clock stream fires timers on record times only
    /// (deterministic); the default, wall, also advances time while caught up.
    ///
    /// With --score, what changed is scored (the embedded model, or a
    /// SageMaker endpoint with --endpoint-name) and published: predictions to
    /// DynamoDB (--predictions-table), alerts to SNS (--alerts-topic-arn),
    /// dead letters to SQS (--dead-letter-queue-url), fleet and health
    /// metrics to CloudWatch (--metrics).
    ///
    /// Example: pulse run --source dynamodb-streams --table marketplace-events --checkpoint pulse.ckpt --features-out vectors.jsonl --dead-letter-out dead.jsonl
    /// Example: pulse run --source dynamodb-streams --table marketplace-events --checkpoint pulse.ckpt --score --predictions-table marketplace-events --alerts-topic-arn arn:aws:sns:us-east-1:123456789012:pulse-alerts
    Run(Box<commands::run::RunArgs>),
    /// Write what a DynamoDB stream (or Kinesis stream) holds as a capture file
    /// (the replay format), resumable with --checkpoint.
    ///
    /// Example: pulse capture --source dynamodb-streams --table marketplace-events --out capture.jsonl.zst --idle-exit-s 5
    Capture(commands::run::CaptureArgs),
    /// Create the events table with its NEW_AND_OLD_IMAGES stream (when
    /// missing), and optionally write a capture's records into it, as an
    /// application would, to try `pulse run` against a local server.
    ///
    /// Example: pulse setup --table marketplace-events --load capture.jsonl.zst
    Setup(commands::setup::SetupArgs),
    /// Load test: synthetic customers write events into a table at a target
    /// rate while pulse consumes its stream, scores and writes predictions back.
    ///
    /// Reports sustained records/s, end-to-end latency from event write to
    /// prediction write (p50/p95/p99), model calls and rows per event, and what
    /// a five-minute full rescan would have cost over the same time; a JSON
    /// summary at the end. --in-process needs no AWS: the engine's maximum on
    /// one thread against the baseline of parsing the same lines.
    ///
    /// Example: eval "$(scripts/local-aws.sh start)"; pulse loadtest --customers 500 --rate 100 --duration-s 60
    /// Example: pulse loadtest --in-process --customers 5000 --days 30
    Loadtest(Box<commands::loadtest::LoadtestArgs>),
    /// Write a synthetic marketplace as a capture (the replay format).
    ///
    /// Two worlds (--world). classic: customers are drawn from the segments
    /// thriving 30%, healthy 40%, at-risk 20%, churned 10% (see --mix), behave
    /// within their segment's ranges and move between segments over time.
    /// lifecycle: customers sign up over the run, keep weekly habits shaped by
    /// a school calendar and their tutor match, and leave by a hazard raised by
    /// bad experiences; a different world to test whether a model generalises.
    /// Deterministic per seed. --truth-out writes each customer's segment on
    /// the first and the last day, to compare with pulse's predictions.
    ///
    /// Example: pulse generate --customers 10000 --days 60 --seed 7 --out capture.jsonl.zst
    ///
    /// Example: pulse generate --world lifecycle --days 90 --out life.jsonl.zst --truth-out life_truth.csv
    Generate(commands::generate::GenerateArgs),
    /// Train the model on vectors from pulse's own engine, evaluate it on
    /// held-out customers, and write the artifact and the report.
    ///
    /// Generates a marketplace (default 10,000 customers over 90 days), streams
    /// it through the engine, labels each sampled vector with what the customer
    /// did afterwards, splits customers 70/15/15, trains (seeded) and evaluates.
    ///
    /// Example: pulse train --capture history.jsonl.zst --out my-model --report my-model.md
    Train(commands::train::TrainArgs),
    /// Point-in-time training rows from a capture: every kept vector's 46
    /// features exactly as the serving engine computed them at its as_of,
    /// its five labels from what the customer did afterwards
    /// (docs/LABELS.md), customer, as_of, trigger, customer split and
    /// out-of-time period. Parquet or CSV by extension, streamed: the rows
    /// are never all in memory. Rows whose 30-day label horizon runs past
    /// the capture's end are left out (or, with --all-rows, written with
    /// empty labels).
    ///
    /// Example: pulse dataset capture.jsonl.zst --out rows.parquet
    Dataset(commands::dataset::DatasetArgs),
    /// Evaluate a model on the held-out customers of the training data (same
    /// marketplace or capture and split as `pulse train`), in time and out of
    /// time, next to baselines fitted on that data's training customers
    /// (--baselines: constant, recency, logistic regression and gbt by
    /// default).
    ///
    /// Example: pulse evaluate --model model/artifact
    Evaluate(commands::train::EvaluateArgs),
    /// Turn models trained elsewhere into a pulse model directory: one
    /// XGBoost booster per head, saved as JSON (`booster.save_model("m.json")`),
    /// trained on `pulse dataset` rows with the 46 feature columns in order.
    ///
    /// Probability heads need objective binary:logistic; session_velocity
    /// and health_score reg:squarederror, reg:absoluteerror or
    /// reg:pseudohubererror. Writes a `gbt` artifact that `--model DIR`
    /// serves with XGBoost's predictions (see model/ARTIFACT.md, "Bring an
    /// XGBoost model").
    ///
    /// Example: pulse import-model --xgboost first_session_success=fss.json --xgboost session_velocity=velocity.json --xgboost churn_risk_14d=churn14.json --xgboost churn_risk_30d=churn30.json --xgboost health_score=health.json --out models/xgb --version 2026-12-03
    ImportModel(commands::import_model::ImportModelArgs),
    /// Serve the model over HTTP behind SageMaker's inference-container contract.
    ///
    /// GET /ping answers 200 once the model is loaded. POST /invocations takes
    /// rows of the 46 features-v1 values, as text/csv (one row per line, no
    /// header) or application/json ({"instances": [[46 numbers], ...]}), and
    /// answers JSON: {"predictions": [{"first_session_success": p,
    /// "session_velocity": v, "churn_risk_14d": p, "churn_risk_30d": p,
    /// "health_score": h}, ...], "model", "model_version", "features_schema"},
    /// one prediction per row in order. Bad rows get a 4xx with
    /// {"error": "..."} naming the row and column; bodies over 6 MB get 413.
    ///
    /// POST /invocations?explain=true explains why each row's churn_risk_14d
    /// differs from a reference's: JSON only, with "references" beside
    /// "instances" (one row per instance, or one for all: the same
    /// customer's vector about 14 days earlier). The answer adds
    /// "explanations", one per row: "contributions" (46 shares, in contract
    /// order, that sum to "margin" - "reference_margin", the head's log-odds
    /// before calibration, not to the change of the calibrated risk),
    /// "margin", "reference_margin" and "reasons" (the three largest positive
    /// shares with their sentences, the reference's own risk as
    /// "churn_risk_14d_then"; no "since": the server is not told when the
    /// reference was).
    /// Listens on 127.0.0.1 unless told otherwise: a container sets
    /// --bind 0.0.0.0 (or PULSE_SERVE_BIND=0.0.0.0, since SageMaker runs
    /// `<image> serve`). Stops gracefully on ctrl-c or SIGTERM.
    ///
    /// Example: pulse serve --model /opt/ml/model --bind 0.0.0.0 --port 8080
    Serve(commands::serve::ServeArgs),
}

/// The log filter without `RUST_LOG`: pulse's own warnings (retries, a
/// fallback model, a run without a checkpoint, alert state that will not
/// survive a restart) and every crate's errors. The libraries' warnings stay
/// hidden: the AWS SDK's are about its own internals.
const DEFAULT_LOG: &str =
    "error,pulse=warn,pulse_aws=warn,pulse_runtime=warn,pulse_operators=warn,pulse_model=warn,pulse_serve=warn";

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG)),
        )
        .with_writer(std::io::stderr)
        // Colours for a terminal, plain text for a file or a log collector.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    // Held to the end of main: dropping it stops the thread.
    let _trimmer = pulse_runtime::trim::Trimmer::start(std::time::Duration::from_millis(cli.trim_ms));
    if !matches!(cli.command, Command::Train(_) | Command::Evaluate(_))
        && std::env::var_os("RAYON_NUM_THREADS").is_none()
    {
        // The pipeline's stages already keep every core busy; candle's
        // matrix products then run on the calling (scoring) thread instead of
        // a pool that competes with them (measured: replay --score 165k → 211k
        // records/s on 2 cores). Set before any thread starts; training keeps
        // the pool. An explicit RAYON_NUM_THREADS wins.
        std::env::set_var("RAYON_NUM_THREADS", "1");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            pulse::tell!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let batch = matches!(
        cli.command,
        Command::Replay(_)
            | Command::Generate(_)
            | Command::Demo(_)
            | Command::Dataset(_)
            | Command::Train(_)
            | Command::Evaluate(_)
            | Command::ImportModel(_)
    );
    if batch {
        // Their outputs appear together when the command succeeds, or not
        // at all (`pulse_runtime::io::defer_commits`).
        pulse_runtime::io::defer_commits();
        // The batch commands write their files beside their paths and
        // rename them at the end; stopped by ctrl-c or SIGTERM, they remove
        // what they had written, so every path holds what it held before.
        // (`run`, `capture`, `loadtest` and `serve` stop gracefully instead.)
        runtime.spawn(async {
            commands::shutdown_signal().await;
            let removed = pulse_runtime::io::remove_partials();
            if pulse_runtime::io::committed() {
                pulse::tell!("interrupted after the run had finished: its outputs are in place");
            } else {
                pulse::tell!(
                    "interrupted: {removed} unfinished output{} removed; the output paths hold what they held before",
                    if removed == 1 { "" } else { "s" }
                );
            }
            std::process::exit(130);
        });
    }
    let result = runtime.block_on(async {
        match cli.command {
            Command::Replay(args) => commands::replay::run(args).await,
            Command::Run(args) => commands::run::run(*args).await,
            Command::Capture(args) => commands::run::capture(args).await,
            Command::Setup(args) => commands::setup::run(args).await,
            Command::Loadtest(args) => commands::loadtest::run(*args).await,
            Command::Generate(args) => commands::generate::run(args).await,
            Command::Train(args) => commands::train::run(args).await,
            Command::Dataset(args) => commands::dataset::run(args).await,
            Command::Evaluate(args) => commands::train::evaluate_model(args).await,
            Command::ImportModel(args) => commands::import_model::run(args).await,
            Command::Demo(args) => commands::demo::run(args).await,
            Command::Serve(args) => commands::serve::run(args).await,
        }
    });
    let result = match result {
        Ok(()) if batch => pulse_runtime::io::commit_deferred().map(drop),
        other => other,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // A failed run's outputs, finished or not, are not put in place.
            pulse_runtime::io::remove_partials();
            pulse::tell!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
