//! `pulse train` and `pulse evaluate`: rows from a capture (or pulse's own
//! synthetic marketplace), every candidate model fitted on the same rows,
//! judged in time and out of time, the best servable one shipped.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use pulse::dataset::Split;
use pulse::dataset::{file_bytes, utc_day};
use pulse::learn::{from_capture, from_synth, in_time, out_of_time, out_of_time_too_short, Frames, Labelled, Need};
use pulse::progress::Progress;
use pulse::report::{
    compare, figure, one_class, positives, write_report, CompareConfig, FitConfig, Fitted, Kind, Predictions,
};
use pulse_model::TrainConfig;
use pulse_runtime::replay::refuse_same_files;
use pulse_schemas::Segment;
use pulse_synth::SynthConfig;

use super::dataset::RowArgs;
use super::generate::WorldArg;

/// Where the rows come from: a capture, or pulse's own synthetic marketplace.
#[derive(Args, Debug, Clone)]
pub(crate) struct DataArgs {
    /// Use this capture (JSON Lines of stream records, e.g. from `pulse
    /// capture`, or a Kinesis Data Streams for DynamoDB archive, e.g. a
    /// Firehose delivery; .zst/.gz decompressed) instead of a synthetic marketplace:
    /// `train` fits on its training customers, `evaluate` judges on its
    /// held-out ones.
    #[arg(long, value_name = "FILE")]
    capture: Option<PathBuf>,
    /// Without --capture: customers in the simulated marketplace.
    #[arg(long, default_value_t = 10_000)]
    customers: usize,
    /// Without --capture: days simulated (the first 21 fill the windows, the
    /// last 30 are the label horizon).
    #[arg(long, default_value_t = 90)]
    days: u32,
    /// Without --capture: seed of the marketplace.
    #[arg(long, default_value_t = 42)]
    data_seed: u64,
    /// Without --capture: how the synthetic customers behave.
    #[arg(long, value_enum, default_value = "classic")]
    world: WorldArg,
    #[command(flatten)]
    rows: RowArgs,
    /// The generator's own segment of each customer (`pulse generate
    /// --truth-out`: CSV with the header customer_id,segment_start,segment_end):
    /// the report adds the confusion matrix of pulse's final segment against
    /// its last-day segment. Read and checked before any work; refused if it
    /// names no customer of the data.
    #[arg(long, value_name = "CSV")]
    truth: Option<PathBuf>,
    /// Bootstrap resamples of customers for the intervals.
    #[arg(long, default_value_t = 200)]
    resamples: usize,
    /// Write the report (Markdown) here; its figures (SVG) go next to it.
    /// Written at the end, beside it and renamed over it: a failed run leaves
    /// an existing report as it was. Refused if it is the capture or --truth.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

impl DataArgs {
    /// Checks the files before any work: the report is no input file under
    /// another name (nor is `more`, another output), and the truth file,
    /// read here, is well formed.
    fn check_files(&self, more: &[(&str, &Path)]) -> Result<Option<Truth>> {
        // 0 resamples made every interval [NaN, NaN], printed as a result.
        anyhow::ensure!(
            self.resamples >= 1,
            "--resamples must be at least 1: each 95% interval is read from that many resamples of the held-out \
             customers (200 by default; fewer run faster, with rougher intervals)"
        );
        let mut files: Vec<(&str, &Path)> = Vec::new();
        files.extend(self.capture.as_deref().map(|c| ("the capture", c)));
        files.extend(self.truth.as_deref().map(|t| ("--truth", t)));
        files.extend(self.report.as_deref().map(|r| ("--report", r)));
        files.extend_from_slice(more);
        refuse_same_files(&files)?;
        // Found now, not after minutes of training (the model already
        // shipped, its figures' directory beside it).
        if let Some(report) = &self.report {
            anyhow::ensure!(!report.is_dir(), "--report {} is a directory: name a file", report.display());
        }
        self.truth.as_ref().map(|t| Ok((t.clone(), read_truth(t)?))).transpose()
    }

    fn source(&self) -> String {
        match &self.capture {
            Some(c) => format!("capture {}", c.display()),
            None => format!(
                "pulse's synthetic marketplace ({:?} world, {} customers, {} days, seed {})",
                self.world, self.customers, self.days, self.data_seed
            ),
        }
    }
}

/// Arguments of `pulse train`.
#[derive(Args, Debug)]
pub(crate) struct TrainArgs {
    #[command(flatten)]
    data: DataArgs,
    /// The candidates to fit and compare, separated by commas (`--kinds
    /// logistic,gbt`).
    #[arg(long, value_delimiter = ',', value_name = "KIND,...", default_values_t = Kind::ALL)]
    kinds: Vec<Kind>,
    /// The kind to ship in --out; `auto` ships the servable kind with the
    /// best churn AUC on the validation customers among those whose churn
    /// ECE there is under 0.03 (else the best AUC). The candidates are
    /// calibrated on those rows, so that ECE is a check that calibration
    /// took, not a held-out figure; a lead within noise is warned of.
    #[arg(long, default_value = "auto")]
    ship: String,
    /// Seed of the network's weights and batch order and of the trees' row samples.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Network: at most this many epochs (early stopping picks the best).
    #[arg(long, default_value_t = 40)]
    max_epochs: usize,
    /// Trees: at most this many per head (early stopping picks the best).
    #[arg(long, default_value_t = 300)]
    max_trees: usize,
    /// The model version written into the artifact and every prediction.
    #[arg(long, default_value = "1")]
    model_version: String,
    /// Directory to write the shipped model to.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

/// Arguments of `pulse evaluate`.
#[derive(Args, Debug)]
pub(crate) struct EvaluateArgs {
    /// The model to evaluate (default: the embedded one).
    #[arg(long, value_name = "DIR")]
    model: Option<PathBuf>,
    #[command(flatten)]
    data: DataArgs,
    /// Baselines beside the model, fitted on this data's training customers
    /// (`recency`: days since the last session, mapped to a probability by
    /// an isotonic fit on the validation customers), separated by commas
    /// (`--baselines recency,gbt`).
    #[arg(long, value_delimiter = ',', value_name = "KIND,...", default_values_t = [Kind::Constant, Kind::Recency, Kind::Logistic, Kind::Gbt])]
    baselines: Vec<Kind>,
}

/// The truth file's path and each customer's last-day segment in it.
type Truth = (PathBuf, HashMap<String, Segment>);

/// The files checked first ([`DataArgs::check_files`], `more` other
/// outputs), then the rows (refused early when the customer split leaves a
/// group of `needs` empty), then the truth file against them.
async fn labelled_with_truth(
    args: &DataArgs,
    more: &[(&str, &Path)],
    needs: &'static [Need],
) -> Result<(Labelled, Option<Truth>)> {
    let truth = args.check_files(more)?;
    let labelled = labelled(args, needs).await?;
    if let Some((path, want)) = &truth {
        check_truth_matches(path, want, &labelled)?;
    }
    Ok((labelled, truth))
}

/// Reads the rows, with a progress bar per pass.
async fn labelled(args: &DataArgs, needs: &'static [Need]) -> Result<Labelled> {
    let started = Instant::now();
    let counter = Arc::new(AtomicU64::new(0));
    let (total, label) = match &args.capture {
        Some(c) => (file_bytes(c)?, "rows"),
        None => ((args.customers as u64 * u64::from(args.days) * 23) / 10, "generate"),
    };
    let progress = match &args.capture {
        Some(_) => Progress::bytes(!args.quiet, label, total * 2, counter.clone()),
        None => Progress::items(!args.quiet, label, total, counter.clone()),
    };
    let ticker = progress.spawn_ticker(Duration::from_millis(200));
    let policy_args = args.rows.clone();
    let (capture, customers, days, seed) = (args.capture.clone(), args.customers, args.days, args.data_seed);
    let world = args.world.into();
    let labelled = tokio::task::spawn_blocking(move || -> Result<Labelled> {
        match capture {
            Some(path) => {
                let policy = policy_args.policy()?;
                let mut done = 0;
                from_capture(&path, &policy, needs, &mut |phase, n| {
                    if phase == "features" {
                        done = total;
                    }
                    counter.store(done + n, Relaxed)
                })
            }
            None => {
                anyhow::ensure!(customers >= 20, "--customers must be at least 20 to split 70/15/15");
                let synth = SynthConfig { customers, days, seed, world, ..SynthConfig::default() };
                let policy = policy_args.policy()?;
                from_synth(&synth, &policy, needs, &mut |phase, n| {
                    if phase == "generate" {
                        counter.store(n, Relaxed)
                    }
                })
            }
        }
    })
    .await
    .context("the rows task failed")??;
    ticker.abort();
    progress.finish();
    let s = &labelled.stats;
    say!(
        "data: {} records of {} customers through the engine in {:.1} s: {} labelled rows, as_of {} to {}, out-of-time cut {}",
        s.records,
        labelled.customers,
        started.elapsed().as_secs_f64(),
        s.labelled,
        utc_day(s.rows_from),
        utc_day(s.rows_to),
        utc_day(s.cut)
    );
    Ok(labelled)
}

fn describe(name: &str, f: &Frames) -> String {
    format!(
        "{name}: train {} rows ({} customers), valid {} ({}), test {} ({})",
        f.train.data.len(),
        f.train.customers,
        f.valid.data.len(),
        f.valid.customers,
        f.test.data.len(),
        f.test.customers
    )
}

/// What a model was trained on, recorded in its `model.json`
/// (`training.data`) so that `pulse evaluate` can tell when its held-out
/// customers, or its period after the cut, are not held out from that
/// model ([`provenance_warnings`]).
fn provenance(args: &DataArgs, labelled: &Labelled) -> serde_json::Value {
    let s = &labelled.stats;
    serde_json::json!({
        "source": args.source(),
        "split_seed": args.rows.split_seed,
        "records": s.records,
        "dead_letters": s.dead_letters,
        "customers": labelled.customers,
        "span_ms": [s.first, s.last],
        "rows_as_of_ms": [s.rows_from, s.rows_to],
        "cut_ms": s.cut,
        "fitted_on": "the training customers' rows at every labelled as_of (the in-time split)",
    })
}

/// The report's data section: what the figures were measured on.
fn data_section(args: &DataArgs, labelled: &Labelled) -> String {
    let s = &labelled.stats;
    let clock = s.clock.map_or(String::new(), |c| format!(", by {}", c.describe()));
    format!(
        "## Data

{}: {} records ({} dead letters), {} customers; capture from {} to {}{clock}; labelled as_of \
         {} to {}; out-of-time cut {}; customers split 70/15/15 by `--split-seed {}`.\n\n",
        args.source(),
        s.records,
        s.dead_letters,
        labelled.customers,
        utc_day(s.first),
        utc_day(s.last),
        utc_day(s.rows_from),
        utc_day(s.rows_to),
        utc_day(s.cut),
        args.rows.split_seed
    )
}

/// What `pulse evaluate` must say about the model under test given what
/// it records of its training ([`provenance`]): `(general, out_of_time)`.
/// A model trained with another `--split-seed` has its training customers
/// among this split's held-out ones; a model trained on rows past the cut
/// has seen the period after it (from its training customers), so its
/// out-of-time figures are not out of time (the baselines beside it are
/// refitted before the cut).
fn provenance_warnings(
    model: &pulse_model::ModelArtifact,
    given: bool,
    data: &DataArgs,
    labelled: &Labelled,
) -> (Vec<String>, Option<String>) {
    let Some(trained) = model.meta.training.get("data") else {
        let general = given.then(|| {
            "the model does not record what it was trained on (trained before pulse recorded it, or imported): if \
             on this data, its figures here are in-sample, not held out"
                .to_owned()
        });
        return (general.into_iter().collect(), None);
    };
    let mut general = Vec::new();
    // Only on the data it was trained on (the same capture file, or the
    // same synthetic marketplace): dates alone say nothing (a model of one
    // synthetic world judged on the other was warned of).
    if trained.get("source").and_then(serde_json::Value::as_str) != Some(data.source().as_str()) {
        return (general, None);
    }
    let on = "on this data";
    let seed = trained.get("split_seed").and_then(serde_json::Value::as_u64);
    if let Some(seed) = seed.filter(|&s| s != data.rows.split_seed) {
        general.push(format!(
            "the model was trained with --split-seed {seed} and is judged with --split-seed {}: {on}, the \
             held-out customers here include customers it was trained on, and its figures are optimistic \
             (evaluate with --split-seed {seed})",
            data.rows.split_seed
        ));
    }
    let rows_to = trained.get("rows_as_of_ms").and_then(|r| r.get(1)).and_then(serde_json::Value::as_i64);
    let cut = labelled.stats.cut;
    let out_of_time = rows_to.filter(|&to| to >= cut).map(|to| {
        format!(
            "the model was trained on rows up to {}, past this cut ({}): {on}, it has seen the period after the \
             cut from its training customers, so its row here is not out of time (the baselines are refitted \
             before the cut)",
            utc_day(to),
            utc_day(cut)
        )
    });
    (general, out_of_time)
}

/// What `pulse train` needs of the customer split: every group.
const TRAIN_NEEDS: &[Need] = &[
    (Split::Train, "fitting"),
    (Split::Valid, "early stopping, calibration and choosing the model to ship"),
    (Split::Test, "judging the models"),
];

/// What `pulse evaluate` needs: the held-out customers it judges on, and the
/// groups its baselines are fitted on (the constant only reads training
/// labels; the others also stop, map or calibrate on the validation ones).
fn evaluate_needs(baselines: &[Kind]) -> &'static [Need] {
    const JUDGE: Need = (Split::Test, "judging the model");
    const FIT: Need = (Split::Train, "fitting the baselines");
    const CALIBRATE: Need = (Split::Valid, "calibrating the baselines");
    if baselines.iter().any(|&k| k != Kind::Constant) {
        &[FIT, CALIBRATE, JUDGE]
    } else {
        &[FIT, JUDGE]
    }
}

/// The in-time split must hold rows in every group the command needs: a
/// group whose customers all have events but no labelled row (they all
/// joined too late, say) is refused here, as an empty group is before the
/// rows are made (`learn::check_customer_split`).
fn check_in_time(f: &Frames, needs: &[Need]) -> Result<()> {
    match f.empty_groups(needs) {
        Some(empty) => anyhow::bail!(
            "no labelled rows in {empty}: the customers there have events, but no vector labelled between the \
             burn-in and 30 days before the capture's end; use a history of more customers, or another --split-seed"
        ),
        None => Ok(()),
    }
}

/// An evaluation: its title, tag, frames and why it is skipped, if it is.
type Scheme = (&'static str, &'static str, Frames, Option<String>);

/// The two evaluations, in time and out of time: the in-time split
/// described and checked ([`check_in_time`]), the out-of-time one with its
/// reason to skip, if any.
fn schemes(labelled: &Labelled, needs: &[Need]) -> Result<[Scheme; 2]> {
    let in_frames = in_time(&labelled.rows);
    say!("{}", describe("in-time", &in_frames));
    check_in_time(&in_frames, needs)?;
    let oot = out_of_time(&labelled.rows);
    let oot_skip = out_of_time_skip(&oot, labelled, needs);
    Ok([(IN_TIME, "in-time", in_frames, None), (OUT_OF_TIME, "out-of-time", oot, oot_skip)])
}

/// Why the out-of-time split cannot be judged, if it cannot: a side too
/// short ([`out_of_time_too_short`]), or a group with no rows on its side.
fn out_of_time_skip(f: &Frames, labelled: &Labelled, needs: &[Need]) -> Option<String> {
    out_of_time_too_short(&labelled.stats).or_else(|| {
        f.empty_groups(needs).map(|empty| {
            format!("no rows in {empty} on its side of the cut (training and validation before it, test after it)")
        })
    })
}

/// The churn heads, in [`pulse::report::HEADS`] order, with their horizon in days.
const CHURN_HEADS: [(usize, u32); 2] = [(2, 14), (3, 30)];

/// Refuses to train a churn head on labels of one class, and warns of a
/// first_session_success head that has one.
///
/// One class among the **training** labels leaves nothing to learn: every
/// kind fits a constant, shipped as if it were a model (a history of only
/// active customers gave "churn AUC 0.0000" for every candidate and a
/// model predicting the same churn risk for everyone).
///
/// One class among the **validation** labels (the training ones having
/// both) is refused too, not only warned of: the shipped probabilities are
/// Platt-calibrated on the validation labels, and a fit on one class maps
/// every score to that class's smoothed rate, so the head would again ship
/// as a constant; and the AUC the shipped kind is chosen by is undefined.
/// More customers (15% of them are the validation group) or another
/// --split-seed fixes it.
///
/// first_session_success is only warned of: it is no input of the alerts
/// or of the choice of the model, and refusing it would refuse a usable
/// churn model.
fn check_classes(f: &Frames) -> Result<Vec<String>> {
    for (part, frame) in [("training", &f.train), ("validation", &f.valid)] {
        for (h, days) in CHURN_HEADS {
            let Some(class) = one_class(frame, h) else { continue };
            let why = match (part, class) {
                ("training", false) => format!(
                    "the history has no churned customer to learn from (every training customer completes a \
                     session within {days} days of every as_of), so every model of it would predict one churn \
                     risk for everyone; train on a history that holds customers who stopped"
                ),
                ("training", true) => format!(
                    "no training customer completes a session within {days} days of any as_of: does the capture \
                     hold the history's session_completed events? Every model of it would predict one churn risk \
                     for everyone"
                ),
                _ => format!(
                    "the training labels have both classes ({} of {} rows are 1), but the probabilities are \
                     calibrated on the validation customers, and a calibration on one class makes the head predict \
                     one churn risk for everyone; use a history of more customers, or another --split-seed",
                    positives(&f.train, h),
                    f.train.data.len()
                ),
            };
            anyhow::bail!(
                "{}: every {part} label is {} ({} rows of {} customers): {why}",
                pulse::report::HEADS[h],
                u8::from(class),
                frame.data.len(),
                frame.customers
            );
        }
    }
    let mut warnings = Vec::new();
    // Both classes, but the minority held by a handful of customers: the
    // choice, the calibration or the judgement then rests on them (a
    // review's run chose the shipped kind on one validation customer's
    // three positive rows, and judged it on none).
    for (part, frame) in [("validation", &f.valid), ("test", &f.test)] {
        for (h, _) in CHURN_HEADS {
            let y = pulse::report::binary(frame, h);
            let mut with = [std::collections::HashSet::new(), std::collections::HashSet::new()];
            for (&label, &customer) in y.iter().zip(&frame.groups) {
                with[usize::from(label)].insert(customer);
            }
            let fewest = with[0].len().min(with[1].len());
            if fewest < FEW_CUSTOMERS && !frame.data.is_empty() {
                let class = u8::from(with[1].len() < with[0].len());
                warnings.push(format!(
                    "{}: only {fewest} {part} customer{} {} a label of {class}: its figures there rest on {}; a \
                     history of more customers (or another --split-seed) gives a steadier choice and judgement",
                    pulse::report::HEADS[h],
                    if fewest == 1 { "" } else { "s" },
                    if fewest == 1 { "has" } else { "have" },
                    if fewest == 1 { "it" } else { "them" }
                ));
            }
        }
    }
    if let Some(class) = one_class(&f.train, 0) {
        warnings.push(format!(
            "first_session_success: every training label is {}: its head predicts one probability for everyone",
            u8::from(class)
        ));
    }
    Ok(warnings)
}

/// Fewer customers than this holding a churn head's minority class, among
/// the validation or test customers, is warned of ([`check_classes`]).
const FEW_CUSTOMERS: usize = 10;

/// Fits every kind on a split, printing progress.
/// While a candidate fits (a logistic regression takes about a minute), a
/// spinner with the time so far says the run is alive: on a terminal, and
/// not with --quiet.
fn fit_all(kinds: &[Kind], frames: &Frames, cfg: &FitConfig, quiet: bool) -> Result<Vec<(Kind, Fitted)>> {
    let mut out = Vec::new();
    for &kind in kinds {
        let started = Instant::now();
        let spinner = if quiet { indicatif::ProgressBar::hidden() } else { indicatif::ProgressBar::new_spinner() };
        spinner.set_style(
            indicatif::ProgressStyle::with_template("  {spinner} fitting {msg} ({elapsed})")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        spinner.set_message(kind.name());
        spinner.enable_steady_tick(Duration::from_millis(200));
        let fitted =
            Fitted::fit(kind, &frames.train, &frames.valid, cfg, &mut |line| spinner.suspend(|| say!("  {line}")))
                .with_context(|| format!("fitting {}", kind.name()));
        spinner.finish_and_clear();
        let fitted = fitted?;
        say!("  {} fitted in {:.1} s", kind.name(), started.elapsed().as_secs_f64());
        out.push((kind, fitted));
    }
    Ok(out)
}

fn predictions(fitted: &[(String, &Fitted)], frame: &pulse::learn::Frame) -> Result<Vec<(String, Predictions)>> {
    fitted.iter().map(|(name, f)| Ok((name.clone(), f.predict(&frame.data.rows)?))).collect()
}

/// Where the report's figures go, and how the report links them.
fn plot_place(report: Option<&Path>, scheme: &str) -> Option<(PathBuf, String)> {
    let report = report?;
    let dir = report.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let stem = report.file_stem()?.to_string_lossy().into_owned();
    Some((dir.join(format!("{stem}-figures")), scheme.to_owned()))
}

fn figures_link(report: Option<&Path>) -> String {
    report.and_then(|r| r.file_stem()).map_or(String::new(), |s| format!("{}-figures/", s.to_string_lossy()))
}

/// The header a truth file (`pulse generate --truth-out`) starts with.
const TRUTH_HEADER: &str = "customer_id,segment_start,segment_end";

/// The generator's segment of each customer on the last day, from a truth
/// file (`pulse generate --truth-out`; .zst/.gz decompressed), read and
/// checked before any row is made: a bad file fails at once, not after the
/// evaluation. A customer whose last-day segment is empty (not signed up
/// yet) has none.
fn read_truth(path: &Path) -> Result<HashMap<String, Segment>> {
    let mut text = String::new();
    std::io::Read::read_to_string(&mut pulse_runtime::io::open_input(path)?.reader, &mut text)
        .with_context(|| format!("cannot read the truth file {} as UTF-8 text", path.display()))?;
    let mut lines = text.lines();
    let header = lines.next().map(|h| h.trim_start_matches('\u{feff}').trim_end());
    anyhow::ensure!(
        header == Some(TRUTH_HEADER),
        "{}: a truth file starts with the header line {TRUTH_HEADER:?} (as `pulse generate --truth-out` writes \
         it), found {}",
        path.display(),
        header.map_or("an empty file".to_owned(), |h| format!("{h:?}"))
    );
    let mut want = HashMap::new();
    for (n, line) in lines.enumerate() {
        let line = line.trim_end();
        if line.is_empty() {
            continue;
        }
        let at = || format!("{}:{}", path.display(), n + 2);
        let cols: Vec<&str> = line.split(',').collect();
        anyhow::ensure!(cols.len() == 3 && !cols[0].is_empty(), "{}: expected {TRUTH_HEADER}, found {line:?}", at());
        let seg = match cols[2] {
            "" => continue,
            "thriving" => Segment::Thriving,
            "healthy" => Segment::Healthy,
            "at_risk" => Segment::AtRisk,
            "churned" => Segment::Churned,
            other => {
                anyhow::bail!("{}: unknown segment {other:?} (thriving, healthy, at_risk, churned or empty)", at())
            }
        };
        anyhow::ensure!(want.insert(cols[0].to_owned(), seg).is_none(), "{}: {} is listed twice", at(), cols[0]);
    }
    Ok(want)
}

/// Refuses a truth file that names no customer of the data: its confusion
/// matrix would be empty and its Macro-F1 a meaningless 0.
fn check_truth_matches(path: &Path, want: &HashMap<String, Segment>, labelled: &Labelled) -> Result<()> {
    let matched = labelled.last.keys().filter(|c| want.contains_key(c.as_str())).count();
    anyhow::ensure!(
        matched > 0,
        "the truth file {} gives a last-day segment for {} customers, none of them among the {} customers of \
         the data: is it the truth file of this capture (`pulse generate --truth-out`)?",
        path.display(),
        want.len(),
        labelled.last.len()
    );
    Ok(())
}

/// The confusion matrix of pulse's final segment (the §6 rules on the
/// prediction of each customer's last vector) against the generator's own
/// segment at the end, and the macro-F1.
/// The confusion matrix of pulse's final segment against the generator's,
/// over the held-out (test) customers of the split by `seed`: counted over
/// every customer, 70% of them were the model's training customers, and
/// read as held-out quality.
fn segments_section(want: &HashMap<String, Segment>, labelled: &Labelled, model: &Fitted, seed: u64) -> Result<String> {
    let mut customers: Vec<(&String, &pulse_schemas::Features)> =
        labelled.last.iter().filter(|(c, _)| Split::of(c, seed) == Split::Test).collect();
    customers.sort_by(|a, b| a.0.cmp(b.0));
    let rows: Vec<pulse_schemas::Features> = customers.iter().map(|c| *c.1).collect();
    let p = model.predict(&rows)?;
    let order = [Segment::Thriving, Segment::Healthy, Segment::AtRisk, Segment::Churned];
    let pos = |s: Segment| order.iter().position(|&o| o == s).unwrap_or(0);
    let mut m = [[0usize; 4]; 4];
    let mut missing = 0;
    for (i, (c, _)) in customers.iter().enumerate() {
        match want.get(c.as_str()) {
            Some(&t) => m[pos(t)][pos(Segment::of(p.0[2][i], p.0[3][i], p.0[4][i]))] += 1,
            None => missing += 1,
        }
    }
    let mut s = String::from(
        "| generator ↓ / pulse → | thriving | healthy | at_risk | churned | recall |\n|---|---|---|---|---|---|\n",
    );
    let mut f1 = Vec::new();
    for (k, seg) in order.iter().enumerate() {
        let row: usize = m[k].iter().sum();
        let col: usize = (0..4).map(|r| m[r][k]).sum();
        let (recall, precision) = (m[k][k] as f64 / row.max(1) as f64, m[k][k] as f64 / col.max(1) as f64);
        f1.push(if recall + precision > 0.0 { 2.0 * recall * precision / (recall + precision) } else { 0.0 });
        let _ =
            writeln!(s, "| {} | {} | {} | {} | {} | {:.3} |", seg.as_str(), m[k][0], m[k][1], m[k][2], m[k][3], recall);
    }
    let macro_f1 = f1.iter().sum::<f64>() / 4.0;
    let _ = writeln!(
        s,
        "\nMacro-F1 {macro_f1:.3} (per segment: {}){}.",
        order.iter().zip(&f1).map(|(o, f)| format!("{} {f:.3}", o.as_str())).collect::<Vec<_>>().join(", "),
        if missing > 0 { format!("; {missing} customers not in the truth file") } else { String::new() }
    );
    Ok(s)
}

pub(crate) async fn run(args: TrainArgs) -> Result<()> {
    let ship = match args.ship.as_str() {
        "auto" => None,
        k => Some(
            <Kind as clap::ValueEnum>::from_str(k, true)
                .ok()
                .filter(|k| k.servable())
                .with_context(|| format!("--ship {k}: expected auto, logistic, gbt or network"))?,
        ),
    };
    anyhow::ensure!(
        args.kinds.iter().any(|k| k.servable()),
        "--kinds must include at least one servable kind (logistic, gbt, network)"
    );
    if let Some(k) = ship {
        anyhow::ensure!(args.kinds.contains(&k), "--ship {}: add it to --kinds", k.name());
    }
    // 0 trained nothing and shipped a model of no trees or untrained weights.
    anyhow::ensure!(args.max_epochs >= 1, "--max-epochs must be at least 1");
    anyhow::ensure!(args.max_trees >= 1, "--max-trees must be at least 1");
    check_out(&args.out, args.data.capture.as_deref())?;
    let model_files =
        [args.out.join(pulse_model::artifact::META_FILE), args.out.join(pulse_model::artifact::WEIGHTS_FILE)];
    let (labelled, truth) = labelled_with_truth(
        &args.data,
        &[("--out", &args.out), ("--out's model", &model_files[0]), ("--out's weights", &model_files[1])],
        TRAIN_NEEDS,
    )
    .await?;
    let started = Instant::now();
    let cfg = FitConfig {
        network: TrainConfig {
            seed: args.seed,
            max_epochs: args.max_epochs,
            version: args.model_version.clone(),
            ..TrainConfig::default()
        },
        gbt: pulse_model::gbt::GbtConfig {
            seed: args.seed,
            max_trees: args.max_trees,
            version: args.model_version.clone(),
            ..Default::default()
        },
        logistic: pulse_model::train::LogisticConfig { version: args.model_version.clone(), ..Default::default() },
    };
    let (kinds, report_path, split_seed) = (args.kinds.clone(), args.data.report.clone(), args.data.rows.split_seed);
    let quiet = args.data.quiet;
    let (resamples, seed) = (args.data.resamples, args.seed);
    let header = format!(
        "# Model evaluation\n\nMade by `pulse train {}`. Data: {}. Labels: `docs/LABELS.md`.\n\n{}",
        std::env::args().skip(2).collect::<Vec<_>>().join(" "),
        args.data.source(),
        data_section(&args.data, &labelled)
    );
    let trained_on = provenance(&args.data, &labelled);
    let (text, kind, mut artifact) = tokio::task::spawn_blocking(move || -> Result<(String, Kind, pulse_model::ModelArtifact)> {
        let mut text = header;
        // Refused, not skipped: without the in-time split there is no model
        // to ship, and the run used to succeed having written none.
        let schemes = schemes(&labelled, TRAIN_NEEDS)?;
        for warning in check_classes(&schemes[0].2)? {
            say!("warning: {warning}");
            text += &format!("Warning: {warning}.\n\n");
        }
        let mut shipped: Option<(usize, pulse_model::ModelArtifact)> = None;
        for (title, tag, frames, skip) in &schemes {
            if *tag != "in-time" {
                say!("{}", describe(tag, frames));
            }
            if let Some(why) = skip {
                say!("{title}: skipped: {why}");
                text += &format!("## {title}\n\nSkipped: {why}\n\n");
                continue;
            }
            let fitted = fit_all(&kinds, frames, &cfg, quiet)?;
            let named: Vec<(String, &Fitted)> = fitted.iter().map(|(k, f)| (k.name().to_owned(), f)).collect();
            let chosen = match &shipped {
                Some((chosen, _)) => *chosen,
                None => {
                    // Choose on the validation customers, never on the test ones.
                    let valid = predictions(&named, &frames.valid)?;
                    let chosen = choose(&kinds, &valid, &frames.valid, ship);
                    let _ = writeln!(
                        text,
                        "## The shipped model: {}\n\n{}\n",
                        kinds[chosen].name(),
                        selection_table(&kinds, &valid, &frames.valid, chosen)
                    );
                    chosen
                }
            };
            let preds = predictions(&named, &frames.test)?;
            let cmp = compare(title, &frames.test, &preds, chosen, &CompareConfig {
                resamples,
                seed,
                plots: plot_place(report_path.as_deref(), tag),
            })?;
            let md = cmp.markdown(&figures_link(report_path.as_deref()));
            say!("\n{md}");
            text += &format!("## {}\n\n{}\n\n{md}\n", title, describe(tag, frames));
            if *tag == "in-time" {
                let model = &fitted[chosen].1;
                let artifact = model.artifact().context("the shipped kind has no artifact")?;
                shipped = Some((chosen, artifact.clone()));
                if let Some((truth, want)) = &truth {
                    let seg = segments_section(want, &labelled, model, split_seed)?;
                    say!("\n{seg}");
                    text += &format!("## Segments at the end of the capture\n\npulse's segment (§6 rules on the shipped model's prediction for each held-out (test) customer's last vector) against the generator's own segment on the last day (`{}`).\n\n{seg}\n", truth.display());
                }
            }
        }
        // The in-time split is never skipped (checked above), so a model was
        // fitted; said here so that no path reaches the end without one.
        let (chosen, artifact) = shipped.context("no model was fitted: the in-time split was not evaluated")?;
        Ok((text, kinds[chosen], artifact))
    })
    .await
    .context("the training task failed")??;
    say!("trained and evaluated in {:.1} s", started.elapsed().as_secs_f64());
    if let Some(training) = artifact.meta.training.as_object_mut() {
        training.insert("data".into(), trained_on);
    }
    let saved =
        write_model(&artifact, &args.out).with_context(|| format!("cannot write the model to {}", args.out.display()));
    if saved.is_err() {
        // A file of it may be finished and waiting: not put in place
        // beside the old other one.
        pulse_runtime::io::discard_deferred(&[&model_files[0], &model_files[1]]);
    }
    if saved.is_ok() {
        say!("shipped {} to {}", kind.name(), args.out.display());
    }
    // The report is written even when the model could not be: it is the
    // run's work, and says what would have shipped.
    if let Some(path) = &args.data.report {
        write_report(path, &text)?;
        if saved.is_err() {
            // Put in place now: the command fails, and a failed command's
            // outputs are otherwise thrown away at its end.
            pulse_runtime::io::commit_deferred()?;
            say!("the report is written to {}", path.display());
        }
    }
    saved
}

/// Writes the model's files into `dir` as the command's other outputs are
/// written: staged beside their paths and put in place with the report when
/// the command succeeds, or removed if it is stopped (ctrl-c while the model
/// was saved left a `.model.json.<pid>.tmp` in the directory, or the new
/// model beside the old report while saying the paths held what they held).
/// The weights (a network's) go in place before `model.json`.
fn write_model(artifact: &pulse_model::ModelArtifact, dir: &Path) -> Result<()> {
    use std::io::Write as _;
    let files = [
        (pulse_model::artifact::WEIGHTS_FILE, artifact.weights_bytes()?),
        (pulse_model::artifact::META_FILE, Some(artifact.meta_json()?)),
    ];
    let weights = dir.join(pulse_model::artifact::WEIGHTS_FILE);
    let stale = files[0].1.is_none() && weights.is_file();
    for (name, bytes) in files {
        if let Some(bytes) = bytes {
            // A model.json behind a link (`cur/model.json -> ../v3/...`)
            // is replaced, as `save_dir` does, not written through.
            let mut out = pulse_runtime::io::Output::create_replacing(&dir.join(name))?;
            out.write_all(&bytes)?;
            // On disk, not only renamed, as `ModelArtifact::save_dir` does:
            // a server loads the directory at its next start.
            out.finish_durable()?;
        }
    }
    if stale {
        // Left, not removed: the command's outputs are put in place at its
        // end, and a removal now would leave the old model.json without its
        // weights if the run then failed.
        say!(
            "warning: {} holds a network's weights from an earlier model; the new {} model does not use them \
             (remove the file before shipping the directory)",
            weights.display(),
            artifact.kind().as_str()
        );
    }
    Ok(())
}

/// The report's titles of the two evaluations.
const IN_TIME: &str = "in time, held-out customers";
/// See [`IN_TIME`].
const OUT_OF_TIME: &str = "out of time, held-out customers after the cut";

/// Refuses an --out that cannot take the model, before any data is read
/// (found when the model was written, after all the training, it lost the
/// run's work and its report): the capture itself, or a path that is, or
/// lies under, something other than a directory.
fn check_out(out: &Path, capture: Option<&Path>) -> Result<()> {
    if let Some(capture) = capture {
        refuse_same_files(&[("the capture", capture), ("--out", out)])?;
    }
    // The nearest part of the path that exists must be a directory: the
    // model is written as one (model.json, and model.safetensors for a
    // network), created with its parents.
    let existing =
        out.ancestors().filter(|p| !p.as_os_str().is_empty()).find_map(|p| Some((p, std::fs::metadata(p).ok()?)));
    if let Some((path, meta)) = existing {
        anyhow::ensure!(
            meta.is_dir(),
            "--out {}: {} exists and is not a directory; the model is written as a directory (model.json, and \
             model.safetensors for a network): name a new directory or an existing one",
            out.display(),
            if path == out { "it".to_owned() } else { path.display().to_string() }
        );
    }
    Ok(())
}

/// One kind's churn figures on the validation rows: the mean over the two
/// churn heads of AUC (`None` when a head's validation labels have one
/// class, so its AUC cannot be computed), ECE and Brier score.
#[derive(Clone, Copy, Debug, PartialEq)]
struct ChurnScores {
    auc: Option<f64>,
    ece: f64,
    brier: f64,
}

/// The churn heads' mean AUC, ECE and Brier score of each kind on the validation rows.
fn churn_scores(valid_preds: &[(String, Predictions)], valid: &pulse::learn::Frame) -> Vec<ChurnScores> {
    use pulse_model::metrics::{auc, brier, expected_calibration_error};
    // The labels once, not per candidate.
    let labels = CHURN_HEADS.map(|(h, _)| (h, pulse::report::binary(valid, h)));
    valid_preds
        .iter()
        .map(|(_, p)| {
            let mut s = ChurnScores { auc: Some(0.0), ece: 0.0, brier: 0.0 };
            for (h, y) in &labels {
                let (h, y) = (*h, y.as_slice());
                // An AUC that cannot be computed is not 0: it makes the mean
                // undefined too (it used to count as 0.0, printed as a result).
                s.auc = s.auc.zip(auc(&p.0[h], y)).map(|(sum, a)| sum + a / 2.0);
                s.ece += expected_calibration_error(&p.0[h], y) / 2.0;
                s.brier += brier(&p.0[h], y) / 2.0;
            }
            s
        })
        .collect()
}

/// The kind to ship: `ship` if given, else the servable kind with the best
/// mean churn AUC among those with a mean churn ECE under 0.03 (else among
/// all servable ones). An AUC that cannot be computed ranks below any
/// number, and equal AUCs (or none) go to the lower Brier score.
fn choose(
    kinds: &[Kind],
    valid_preds: &[(String, Predictions)],
    valid: &pulse::learn::Frame,
    ship: Option<Kind>,
) -> usize {
    if let Some(k) = ship {
        return kinds.iter().position(|&x| x == k).unwrap_or(0);
    }
    choose_by(kinds, &churn_scores(valid_preds, valid))
}

fn choose_by(kinds: &[Kind], scores: &[ChurnScores]) -> usize {
    let rank = |i: usize| scores[i].auc.unwrap_or(f64::NEG_INFINITY);
    let best = |calibrated: bool| {
        (0..kinds.len())
            .filter(|&i| kinds[i].servable() && (!calibrated || scores[i].ece < 0.03))
            .max_by(|&a, &b| rank(a).total_cmp(&rank(b)).then(scores[b].brier.total_cmp(&scores[a].brier)))
    };
    best(true).or_else(|| best(false)).unwrap_or(0)
}

fn selection_table(
    kinds: &[Kind],
    valid_preds: &[(String, Predictions)],
    valid: &pulse::learn::Frame,
    chosen: usize,
) -> String {
    let scores = churn_scores(valid_preds, valid);
    let mut s = format!(
        "Chosen on the validation customers ({} rows): the servable kind with the best mean churn AUC (14d, 30d) among those with mean churn ECE under 0.03. The candidates are calibrated on these same rows, so the ECE here is in-sample: a check that the calibration took, not a held-out estimate (the held-out ECE is in the tables below).\n\n| model | mean churn AUC | mean churn Brier | mean churn ECE |\n|---|---|---|---|\n",
        valid.data.len()
    );
    for (i, k) in kinds.iter().enumerate() {
        let name = if i == chosen { format!("**{}**", k.name()) } else { k.name().to_owned() };
        let auc = scores[i].auc.map_or("n/a".to_owned(), figure);
        let _ = writeln!(s, "| {name} | {auc} | {:.4} | {:.4} |", scores[i].brier, scores[i].ece);
    }
    if let Some(warning) = narrow_choice(kinds, &scores, chosen) {
        say!("warning: {warning}");
        let _ = writeln!(s, "\nWarning: {warning}.");
    }
    s
}

/// A lead in mean churn AUC smaller than this, on the validation
/// customers, is within the noise of a few hundred customers.
const NARROW_AUC_LEAD: f64 = 0.002;

/// A warning when the shipped kind leads another servable one by less than
/// [`NARROW_AUC_LEAD`] of mean churn AUC: the choice is then a coin toss
/// on churn, and the other heads (health_score, which sets three of the
/// four segments) may tell them apart.
fn narrow_choice(kinds: &[Kind], scores: &[ChurnScores], chosen: usize) -> Option<String> {
    let lead = scores[chosen].auc?;
    let (runner_up, auc) = (0..kinds.len())
        .filter(|&i| i != chosen && kinds[i].servable())
        .filter_map(|i| scores[i].auc.map(|a| (i, a)))
        .max_by(|a, b| a.1.total_cmp(&b.1))?;
    // Behind is no lead (a kind shipped by --ship may be).
    (lead >= auc && lead - auc < NARROW_AUC_LEAD).then(|| {
        format!(
            "{} ships on a mean churn AUC {:.4} above {}'s on the validation customers, within noise: compare \
             their held-out tables (health_score MAE, the segments) and choose with --ship if they differ",
            kinds[chosen].name(),
            lead - auc,
            kinds[runner_up].name()
        )
    })
}

/// `pulse evaluate`: a model on this data's held-out customers, in time and
/// out of time, beside baselines fitted on this data's training customers.
pub(crate) async fn evaluate_model(args: EvaluateArgs) -> Result<()> {
    let model = match &args.model {
        Some(dir) => pulse_model::ModelArtifact::load_dir(dir)
            .with_context(|| format!("cannot load the model in {}", dir.display()))?,
        None => pulse_model::embedded().context("cannot load the embedded model")?,
    };
    let model_name = args.model.as_ref().map_or("embedded".to_owned(), |d| format!("model ({})", d.display()));
    let needs = evaluate_needs(&args.baselines);
    let (labelled, truth) = labelled_with_truth(&args.data, &[], needs).await?;
    let started = Instant::now();
    let (baselines, report_path, resamples) = (args.baselines.clone(), args.data.report.clone(), args.data.resamples);
    let (split_seed, quiet) = (args.data.rows.split_seed, args.data.quiet);
    let (general, oot_warning) = provenance_warnings(&model, args.model.is_some(), &args.data, &labelled);
    let mut header = format!(
        "# Model evaluation\n\nMade by `pulse evaluate {}`. Model: {model_name}. Data: {}. Baselines are fitted on this data's training customers (`recency`'s isotonic map on its validation customers). Labels: `docs/LABELS.md`.\n\n{}",
        std::env::args().skip(2).collect::<Vec<_>>().join(" "),
        args.data.source(),
        data_section(&args.data, &labelled)
    );
    for warning in &general {
        say!("warning: {warning}");
        let _ = writeln!(header, "Warning: {warning}.\n");
    }
    let text = tokio::task::spawn_blocking(move || -> Result<String> {
        let under_test = Fitted::Model(Box::new(model.clone()), Box::new(pulse_model::EmbeddedModel::new(&model)?));
        let mut text = header;
        // Refused, not skipped: the run used to succeed having judged nothing.
        for (title, tag, frames, skip) in schemes(&labelled, needs)? {
            if tag != "in-time" {
                say!("{}", describe(tag, &frames));
            }
            if let Some(why) = skip {
                say!("{title}: skipped: {why}");
                text += &format!("## {title}\n\nSkipped: {why}\n\n");
                continue;
            }
            let fitted = fit_all(&baselines, &frames, &FitConfig::default(), quiet)?;
            let mut named: Vec<(String, &Fitted)> = vec![(model_name.clone(), &under_test)];
            named.extend(fitted.iter().map(|(k, f)| (k.name().to_owned(), f)));
            let preds = predictions(&named, &frames.test)?;
            let cmp = compare(title, &frames.test, &preds, 0, &CompareConfig {
                resamples,
                seed: 7,
                plots: plot_place(report_path.as_deref(), tag),
            })?;
            let md = cmp.markdown(&figures_link(report_path.as_deref()));
            say!("\n{md}");
            text += &format!("## {title}\n\n{}\n\n", describe(tag, &frames));
            if let Some(warning) = oot_warning.as_ref().filter(|_| tag == "out-of-time") {
                say!("warning: {warning}");
                text += &format!("Warning: {warning}.\n\n");
            }
            text += &format!("{md}\n");
        }
        if let Some((truth, want)) = &truth {
            let seg = segments_section(want, &labelled, &under_test, split_seed)?;
            say!("\n{seg}");
            text += &format!("## Segments at the end of the capture\n\npulse's segment (§6 rules on the model's prediction for each held-out (test) customer's last vector) against the generator's own segment on the last day (`{}`).\n\n{seg}\n", truth.display());
        }
        Ok(text)
    })
    .await
    .context("the evaluation task failed")??;
    say!("evaluated in {:.1} s", started.elapsed().as_secs_f64());
    if let Some(path) = &args.data.report {
        write_report(path, &text)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pulse::learn::Frame;
    use pulse_model::Targets;

    /// One row per label pair (churn_risk_14d, churn_risk_30d), one customer each.
    fn frame(labels: &[(u8, u8)]) -> Frame {
        let mut f = Frame::default();
        for (i, &(y14, y30)) in labels.iter().enumerate() {
            let y = Targets { churn_risk_14d: f32::from(y14), churn_risk_30d: f32::from(y30), ..Targets::default() };
            f.data.push([0.0; pulse_schemas::FEATURE_COUNT], y);
            f.groups.push(i as u32);
            f.as_of.push(0);
        }
        f.customers = labels.len();
        f
    }

    fn frames(train: &[(u8, u8)], valid: &[(u8, u8)]) -> Frames {
        Frames { train: frame(train), valid: frame(valid), test: frame(&[(0, 0), (1, 1)]) }
    }

    /// A churn head with one class among the training or validation labels
    /// is refused, naming the head, the class and the cause: it used to
    /// ship a model predicting one churn risk for everyone.
    #[test]
    fn churn_labels_of_one_class_are_refused_naming_the_head_and_class() {
        let both = [(0, 0), (1, 1), (0, 1)];
        let cases: [(Frames, &[&str]); 4] = [
            (
                frames(&[(0, 1), (0, 1)], &both),
                &["churn_risk_14d: every training label is 0 (2 rows of 2 customers)", "no churned customer"],
            ),
            // No session at all (session_completed records missing): every label is 1.
            (frames(&[(1, 1), (1, 1)], &both), &["churn_risk_14d: every training label is 1", "session_completed"]),
            (frames(&both, &[(0, 0), (0, 1)]), &["churn_risk_14d: every validation label is 0", "(1 of 3 rows are 1)"]),
            (frames(&both, &[(0, 1), (1, 1)]), &["churn_risk_30d: every validation label is 1", "--split-seed"]),
        ];
        for (f, words) in cases {
            let err = check_classes(&f).unwrap_err().to_string();
            for w in words {
                assert!(err.contains(w), "{w:?} not in: {err}");
            }
        }
        // first_session_success of one class (0 in every row here) is a
        // warning, not a refusal; so is a churn class held by fewer than
        // ten validation or test customers (each frame here has one or two).
        let warnings = check_classes(&frames(&both, &both)).unwrap();
        assert_eq!(warnings.len(), 5, "{warnings:?}");
        assert!(warnings[0].starts_with("churn_risk_14d: only 1 validation customer has a label of 1"), "{warnings:?}");
        assert!(warnings[4].starts_with("first_session_success: every training label is 0"), "{warnings:?}");
        // Ten customers of each class: no warning about them.
        let many: Vec<(u8, u8)> = (0..20).map(|i| ((i % 2) as u8, (i % 2) as u8)).collect();
        let f = Frames { train: frame(&both), valid: frame(&many), test: frame(&many) };
        assert_eq!(check_classes(&f).unwrap().len(), 1);
    }

    /// An AUC that cannot be computed ranks below any number and is printed
    /// n/a: it counted as 0.0000, and on a tie of such zeros the last kind
    /// (network) was "chosen".
    #[test]
    fn an_undefined_auc_ranks_last_and_ties_go_to_the_lower_brier() {
        let kinds = [Kind::Constant, Kind::Logistic, Kind::Gbt, Kind::Network];
        let s = |auc: Option<f64>, brier: f64| ChurnScores { auc, ece: 0.01, brier };
        let scores = [s(Some(0.6), 0.2), s(Some(0.1), 0.2), s(None, 0.1), s(None, 0.1)];
        assert_eq!(choose_by(&kinds, &scores), 1, "a number beats n/a, however low");
        let scores = [s(None, 0.0), s(None, 0.3), s(None, 0.1), s(None, 0.2)];
        assert_eq!(choose_by(&kinds, &scores), 2, "none computable: the lowest Brier among the servable");
        let valid = frame(&[(0, 0), (0, 0)]);
        let preds = vec![(
            "logistic".to_owned(),
            Predictions([vec![0.5; 2], vec![1.0; 2], vec![0.1; 2], vec![0.2; 2], vec![50.0; 2]]),
        )];
        assert_eq!(churn_scores(&preds, &valid)[0].auc, None);
        let table = selection_table(&[Kind::Logistic], &preds, &valid, 0);
        assert!(table.contains("| **logistic** | n/a |"), "{table}");
    }

    /// A review's run shipped logistic over gbt on a 0.0004 lead in churn
    /// AUC, with gbt's health_score and segments clearly better: such a
    /// lead is said; a clear one, or a lead over a baseline that cannot
    /// ship, is not.
    #[test]
    fn a_lead_within_noise_is_warned_of() {
        let kinds = [Kind::Recency, Kind::Logistic, Kind::Gbt];
        let s = |auc: f64| ChurnScores { auc: Some(auc), ece: 0.01, brier: 0.1 };
        let warning = narrow_choice(&kinds, &[s(0.99), s(0.9630), s(0.9626)], 1).expect("a warning");
        assert!(warning.starts_with("logistic ships on a mean churn AUC 0.0004 above gbt's"), "{warning}");
        assert_eq!(narrow_choice(&kinds, &[s(0.9629), s(0.9630), s(0.95)], 1), None);
        // Shipped by --ship while behind: no "lead" to warn of.
        assert_eq!(narrow_choice(&kinds, &[s(0.99), s(0.9585), s(0.9630)], 1), None);
    }
}
