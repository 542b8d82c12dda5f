//! `pulse train`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use pulse::dataset::RowPolicy;
use pulse::learn::{evaluate, from_synth, in_time, Frames};
use pulse::progress::Progress;
use pulse_model::{train::train, EmbeddedModel, TrainConfig};
use pulse_synth::SynthConfig;

/// The simulated marketplace the data set is made from: the same for
/// `pulse train` and `pulse evaluate`, so they see the same held-out customers.
#[derive(Args, Debug, Clone, Copy)]
pub(crate) struct DataArgs {
    /// Customers in the simulated marketplace (split 70/15/15).
    #[arg(long, default_value_t = 10_000)]
    customers: usize,
    /// Days simulated: the first 21 fill the windows, the last 30 are the label horizon.
    #[arg(long, default_value_t = 90)]
    days: u32,
    /// Seed of the marketplace.
    #[arg(long, default_value_t = 42)]
    data_seed: u64,
}

/// Arguments of `pulse train`.
#[derive(Args, Debug)]
pub(crate) struct TrainArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Seed of the weights and batch order.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// At most this many epochs (early stopping picks the best).
    #[arg(long, default_value_t = 40)]
    max_epochs: usize,
    /// AdamW learning rate.
    #[arg(long, default_value_t = TrainConfig::default().learning_rate)]
    learning_rate: f64,
    /// Rows per training step.
    #[arg(long, default_value_t = TrainConfig::default().batch_size)]
    batch_size: usize,
    /// The model version written into the artifact and every prediction.
    #[arg(long, default_value = "1")]
    model_version: String,
    /// Directory to write model.json and model.safetensors to.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Write the evaluation report (Markdown) here.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

/// Arguments of `pulse evaluate`.
#[derive(Args, Debug)]
pub(crate) struct EvaluateArgs {
    /// The model to evaluate (default: the embedded one).
    #[arg(long, value_name = "DIR")]
    model: Option<PathBuf>,
    #[command(flatten)]
    data: DataArgs,
    /// Also write the report (Markdown) here.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

/// Builds the labelled splits with a progress bar.
async fn dataset(args: &DataArgs, quiet: bool) -> Result<Frames> {
    let DataArgs { customers, days, data_seed } = *args;
    anyhow::ensure!(customers >= 20, "--customers must be at least 20 to split 70/15/15");
    let synth = SynthConfig { customers, days, seed: data_seed, ..SynthConfig::default() };
    let started = Instant::now();
    let streamed = Arc::new(AtomicU64::new(0));
    let estimate = (customers as u64 * u64::from(days) * 23) / 10;
    let progress = Progress::items(!quiet, "generate", estimate, streamed.clone());
    let ticker = progress.spawn_ticker(Duration::from_millis(200));
    let labelled = tokio::task::spawn_blocking(move || {
        from_synth(&synth, &RowPolicy::default(), &mut |phase, n| {
            if phase == "generate" {
                streamed.store(n, Relaxed)
            }
        })
    })
    .await
    .context("dataset task failed")??;
    ticker.abort();
    progress.finish();
    let f = in_time(&labelled.rows);
    println!(
        "data: {} records streamed through the engine in {:.1} s; rows train {} ({} customers), valid {} ({}), test {} ({})",
        labelled.stats.records,
        started.elapsed().as_secs_f64(),
        f.train.data.len(),
        f.train.customers,
        f.valid.data.len(),
        f.valid.customers,
        f.test.data.len(),
        f.test.customers
    );
    Ok(f)
}

/// `pulse evaluate`: the held-out customers' figures for a model, without training.
pub(crate) async fn evaluate_model(args: EvaluateArgs) -> Result<()> {
    let model = super::load_model(args.model.as_deref())?;
    let splits = dataset(&args.data, args.quiet).await?;
    let report = tokio::task::spawn_blocking(move || evaluate(&model, &splits.train.data, &splits.test))
        .await
        .context("evaluation task failed")??;
    println!("\n{}", report.markdown());
    if let Some(path) = &args.report {
        let model = args.model.as_ref().map_or("the embedded model".to_owned(), |d| d.display().to_string());
        let text = format!(
            "# Model evaluation\n\nModel: {model}. Made by `pulse evaluate --customers {} --days {} --data-seed {}{}`: \
             the marketplace and customer split `pulse train` uses, scored on the held-out test customers. \
             Labels: `docs/LABELS.md`.\n\n{}",
            args.data.customers,
            args.data.days,
            args.data.data_seed,
            args.model.as_ref().map_or(String::new(), |d| format!(" --model {}", d.display())),
            report.markdown()
        );
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

pub(crate) async fn run(args: TrainArgs) -> Result<()> {
    let splits = dataset(&args.data, args.quiet).await?;
    let cfg = TrainConfig {
        seed: args.seed,
        max_epochs: args.max_epochs,
        learning_rate: args.learning_rate,
        batch_size: args.batch_size,
        version: args.model_version.clone(),
        ..TrainConfig::default()
    };
    let train_started = Instant::now();
    let (out, report_path) = (args.out.clone(), args.report.clone());
    let report = tokio::task::spawn_blocking(move || -> Result<String> {
        let artifact = train(&splits.train.data, &splits.valid.data, &cfg, &mut |e| {
            println!("epoch {:>2}: train loss {:.5}, valid loss {:.5}", e.epoch, e.train_loss, e.valid_loss);
        })?;
        artifact.save_dir(&out)?;
        let model = EmbeddedModel::new(&artifact)?;
        let evaluation = evaluate(&model, &splits.train.data, &splits.test)?;
        Ok(evaluation.markdown())
    })
    .await
    .context("training task failed")??;
    println!(
        "trained in {:.1} s; artifact in {}\n\n{report}",
        train_started.elapsed().as_secs_f64(),
        args.out.display()
    );
    if let Some(path) = report_path {
        let header = format!(
            "# Model evaluation\n\nMade by `pulse train --customers {} --days {} --data-seed {} --seed {} --out {} --report {}`.\n\n",
            args.data.customers,
            args.data.days,
            args.data.data_seed,
            args.seed,
            args.out.display(),
            path.display()
        );
        std::fs::write(&path, header + &report).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}
