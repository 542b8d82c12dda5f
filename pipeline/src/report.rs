//! Which model earns its place: every candidate fitted on the same rows,
//! calibrated on the validation customers, judged on held-out customers
//! (in time and out of time) next to the baselines, with bootstrap
//! intervals for the differences.
//!
//! Candidates ([`Kind`]):
//! * `constant`: the training base rate of each probability head, the
//!   training median of each regression head;
//! * `recency`: one feature, `days_since_last_session`, mapped to each
//!   probability by isotonic regression on the validation rows; for the
//!   regression heads, "the same as the last 30 days" (velocity =
//!   `sessions_per_week_30d`; health = the health label's formula applied to
//!   the last 30 days' features);
//! * `logistic`, `gbt`, `network`: the model kinds pulse can serve
//!   (`model/ARTIFACT.md`), each with Platt calibration of its probability
//!   heads fitted on the validation rows.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use pulse_model::calibrate::{calibrate, CalibrationMethod, Calibrator};
use pulse_model::gbt::{train_gbt, GbtConfig};
use pulse_model::metrics::{
    auc, brier, expected_calibration_error, log_loss, mae, paired_bootstrap, reliability_curve, roc_curve,
};
use pulse_model::train::{train, train_logistic, LogisticConfig};
use pulse_model::{EmbeddedModel, ModelArtifact, TrainConfig};
use pulse_schemas::features::idx;
use pulse_schemas::Features;

use crate::dataset::{health, Next30};
use crate::learn::Frame;
use crate::plots::{unit_square, Curve};

/// The five heads, in model order.
pub const HEADS: [&str; 5] = pulse_model::net::HEADS;
/// The probability heads.
pub const BINARY: [usize; 3] = [0, 2, 3];
/// The regression heads and their metric.
pub const REGRESSION: [usize; 2] = [1, 4];

/// A candidate model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The training base rate / median.
    Constant,
    /// Days since the last completed session, calibrated.
    Recency,
    /// A logistic regression per probability head.
    Logistic,
    /// Gradient-boosted trees.
    Gbt,
    /// The multi-task network.
    Network,
}

impl Kind {
    /// Every kind, baselines first.
    pub const ALL: [Kind; 5] = [Kind::Constant, Kind::Recency, Kind::Logistic, Kind::Gbt, Kind::Network];

    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Constant => "constant",
            Kind::Recency => "recency",
            Kind::Logistic => "logistic",
            Kind::Gbt => "gbt",
            Kind::Network => "network",
        }
    }

    /// Whether pulse can serve it (it has an artifact).
    pub fn servable(self) -> bool {
        matches!(self, Kind::Logistic | Kind::Gbt | Kind::Network)
    }
}

/// Per row, the five outputs.
#[derive(Clone, Debug, Default)]
pub struct Predictions(pub [Vec<f64>; 5]);

impl Predictions {
    fn push(&mut self, v: [f64; 5]) {
        for (h, x) in v.into_iter().enumerate() {
            self.0[h].push(x);
        }
    }
}

/// A fitted candidate.
#[derive(Debug)]
pub enum Fitted {
    /// One value per head.
    Constant([f64; 5]),
    /// Isotonic maps of days since the last session, one per probability head.
    Recency(Vec<RecencyMap>),
    /// A servable model and its artifact.
    Model(Box<ModelArtifact>, Box<EmbeddedModel>),
}

/// "The same as the last 30 days": health by the label's formula on the
/// last 30 days' features.
pub fn health_of_last_30_days(x: &Features) -> f64 {
    let sessions = x[idx::SESSIONS_30D].max(0.0) as usize;
    let paid = x[idx::PAYMENT_AMOUNT_30D] > 0.0 || x[idx::PAYMENT_FAILURES_30D] > 0.0;
    health(&Next30 {
        sessions,
        mean_rating: (x[idx::RATINGS_COUNT_30D] > 0.0).then_some(x[idx::AVG_RATING_30D]),
        ib_calls: x[idx::IB_CALLS_30D].max(0.0) as usize,
        payment_success: paid.then_some(x[idx::PAYMENT_SUCCESS_RATE_30D]),
        tutor_consistency: (sessions > 0).then_some(x[idx::PRIMARY_TUTOR_SHARE_30D]),
    })
}

fn labels(frame: &Frame, head: usize) -> Vec<f64> {
    frame
        .data
        .targets
        .iter()
        .map(|t| {
            f64::from(
                [t.first_session_success, t.session_velocity, t.churn_risk_14d, t.churn_risk_30d, t.health_score][head],
            )
        })
        .collect()
}

/// The labels of probability head `head`, as classes.
pub fn binary(frame: &Frame, head: usize) -> Vec<bool> {
    labels(frame, head).into_iter().map(|y| y >= 0.5).collect()
}

/// Rows of `frame` whose label of probability head `head` is 1.
pub fn positives(frame: &Frame, head: usize) -> usize {
    binary(frame, head).into_iter().filter(|&c| c).count()
}

/// The class every row of `frame` has for probability head `head`, when
/// they all have the same one (`None` when both occur, or there are no rows).
pub fn one_class(frame: &Frame, head: usize) -> Option<bool> {
    let y = binary(frame, head);
    let first = *y.first()?;
    y.iter().all(|&c| c == first).then_some(first)
}

/// A figure to four places, or `n/a` when it cannot be computed (an AUC
/// with one class among the labels is NaN): never a number that looks
/// like a result.
pub fn figure(x: f64) -> String {
    if x.is_nan() {
        "n/a".to_owned()
    } else {
        format!("{x:.4}")
    }
}

/// How hard to try.
#[derive(Clone, Debug, Default)]
pub struct FitConfig {
    /// The network's settings.
    pub network: TrainConfig,
    /// The trees' settings.
    pub gbt: GbtConfig,
    /// The logistic regression's settings.
    pub logistic: LogisticConfig,
}

impl Fitted {
    /// Fits a candidate on `train` (stopping and calibrating on `valid`).
    pub fn fit(
        kind: Kind,
        train_rows: &Frame,
        valid: &Frame,
        cfg: &FitConfig,
        log: &mut dyn FnMut(String),
    ) -> Result<Fitted> {
        let artifact = match kind {
            Kind::Constant => {
                let mut v = [0.0; 5];
                for h in BINARY {
                    let y = labels(train_rows, h);
                    v[h] = y.iter().sum::<f64>() / y.len().max(1) as f64;
                }
                for h in REGRESSION {
                    let mut y = labels(train_rows, h);
                    y.sort_by(f64::total_cmp);
                    v[h] = y.get(y.len() / 2).copied().unwrap_or(0.0);
                }
                return Ok(Fitted::Constant(v));
            }
            Kind::Recency => {
                let x: Vec<f64> = valid.data.rows.iter().map(|r| r[idx::DAYS_SINCE_LAST_SESSION]).collect();
                let maps =
                    BINARY.iter().map(|&h| RecencyMap::fit(&x, &binary(valid, h))).collect::<Result<Vec<_>>>()?;
                return Ok(Fitted::Recency(maps));
            }
            Kind::Logistic => train_logistic(&train_rows.data, &valid.data, &cfg.logistic)?,
            Kind::Gbt => {
                // Heads train on their own threads: their progress comes back
                // over a channel and is logged here.
                let (tx, rx) = std::sync::mpsc::channel::<String>();
                let mut send = |p: pulse_model::gbt::GbtProgress| {
                    if p.done {
                        // The receiver outlives training: a send cannot fail.
                        let _ = tx.send(format!(
                            "gbt {}: {} trees, train loss {:.5}, valid loss {:.5}",
                            p.head, p.best_trees, p.train_loss, p.valid_loss
                        ));
                    }
                };
                let a = train_gbt(&train_rows.data, &valid.data, &cfg.gbt, &mut send)?;
                rx.try_iter().for_each(&mut *log);
                a
            }
            Kind::Network => train(&train_rows.data, &valid.data, &cfg.network, &mut |e| {
                if e.epoch % 5 == 0 {
                    log(format!(
                        "network epoch {}: train loss {:.5}, valid loss {:.5}",
                        e.epoch, e.train_loss, e.valid_loss
                    ))
                }
            })?,
        };
        let mut artifact = artifact;
        // Platt: two parameters per head, so a validation split of a few
        // hundred customers fits it without the steps isotonic regression
        // learns from noise.
        calibrate(&mut artifact, &valid.data, CalibrationMethod::Platt)?;
        let model = EmbeddedModel::new(&artifact)?;
        Ok(Fitted::Model(Box::new(artifact), Box::new(model)))
    }

    /// The outputs for rows.
    pub fn predict(&self, rows: &[Features]) -> Result<Predictions> {
        let mut p = Predictions::default();
        match self {
            Fitted::Constant(v) => rows.iter().for_each(|_| p.push(*v)),
            Fitted::Recency(maps) => {
                for r in rows {
                    let d = r[idx::DAYS_SINCE_LAST_SESSION];
                    p.push([
                        maps[0].apply(d),
                        r[idx::SESSIONS_PER_WEEK_30D],
                        maps[1].apply(d),
                        maps[2].apply(d),
                        health_of_last_30_days(r),
                    ]);
                }
            }
            Fitted::Model(_, model) => {
                for chunk in rows.chunks(4096) {
                    for s in model.score_now(chunk)? {
                        p.push([
                            s.first_session_success,
                            s.session_velocity,
                            s.churn_risk_14d,
                            s.churn_risk_30d,
                            s.health_score,
                        ]);
                    }
                }
            }
        }
        Ok(p)
    }

    /// The artifact, for a servable model.
    pub fn artifact(&self) -> Option<&ModelArtifact> {
        match self {
            Fitted::Model(a, _) => Some(a),
            _ => None,
        }
    }
}

/// An isotonic map of one feature to a probability, increasing or
/// decreasing, whichever fits the validation rows better.
#[derive(Debug)]
pub struct RecencyMap {
    map: Calibrator,
    decreasing: bool,
}

impl RecencyMap {
    fn fit(x: &[f64], y: &[bool]) -> Result<RecencyMap> {
        let neg: Vec<f64> = x.iter().map(|v| -v).collect();
        let brier = |c: &Calibrator, x: &[f64]| brier(&x.iter().map(|&v| c.apply(v)).collect::<Vec<_>>(), y);
        let up = Calibrator::fit(CalibrationMethod::Isotonic, x, y)?;
        let down = Calibrator::fit(CalibrationMethod::Isotonic, &neg, y)?;
        Ok(if brier(&up, x) <= brier(&down, &neg) {
            RecencyMap { map: up, decreasing: false }
        } else {
            RecencyMap { map: down, decreasing: true }
        })
    }

    /// Kept inside [0.001, 0.999]: an isotonic step of pure 0s or 1s on the
    /// validation rows is not a certainty.
    fn apply(&self, x: f64) -> f64 {
        self.map.apply(if self.decreasing { -x } else { x }).clamp(0.001, 0.999)
    }
}

/// One probability head's figures for one model.
#[derive(Clone, Debug, serde::Serialize)]
pub struct BinaryFigures {
    /// Area under the ROC curve.
    pub auc: f64,
    /// Mean squared error of the probability.
    pub brier: f64,
    /// Expected calibration error (10 equal-width bins).
    pub ece: f64,
    /// Mean negative log-likelihood.
    pub log_loss: f64,
}

/// One model's figures on a test frame.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ModelFigures {
    /// The model.
    pub name: String,
    /// Per probability head, in [`BINARY`] order.
    pub binary: Vec<BinaryFigures>,
    /// Mean absolute error of velocity and health.
    pub mae: [f64; 2],
}

/// A difference between the chosen model and another, with its interval.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Difference {
    /// The other model.
    pub model: String,
    /// The head.
    pub head: &'static str,
    /// `AUC`, `Brier` or `MAE`.
    pub metric: &'static str,
    /// chosen − other, and the 95% interval of customer-resampled differences.
    pub interval: pulse_model::metrics::BootstrapInterval,
}

/// Every model on one test frame.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Comparison {
    /// What was tested (e.g. "in time, held-out customers").
    pub title: String,
    /// Rows tested.
    pub rows: usize,
    /// Their customers.
    pub customers: usize,
    /// Base rate of churn_risk_14d in the rows.
    pub churn_14d_rate: f64,
    /// Per model.
    pub models: Vec<ModelFigures>,
    /// The model the differences are taken against.
    pub chosen: String,
    /// Chosen − each other model.
    pub differences: Vec<Difference>,
    /// Customer resamples asked for per interval (an interval's own count
    /// leaves out those on which its metric was undefined).
    pub resamples: usize,
    /// Figures written (file names).
    pub plots: Vec<String>,
}

/// Settings of [`compare`].
#[derive(Clone, Debug)]
pub struct CompareConfig {
    /// Bootstrap resamples of customers.
    pub resamples: usize,
    /// Seeds the bootstrap.
    pub seed: u64,
    /// Where to draw the figures, and the file name prefix.
    pub plots: Option<(PathBuf, String)>,
}

/// Judges every model's predictions on `test`; differences against `chosen`.
pub fn compare(
    title: &str,
    test: &Frame,
    preds: &[(String, Predictions)],
    chosen: usize,
    cfg: &CompareConfig,
) -> Result<Comparison> {
    anyhow::ensure!(!test.data.is_empty(), "{title}: no rows to test on");
    let auc_or_nan = |s: &[f64], l: &[bool]| auc(s, l).unwrap_or(f64::NAN);
    let mut models = Vec::new();
    for (name, p) in preds {
        let binary = BINARY
            .iter()
            .map(|&h| {
                let y = binary(test, h);
                BinaryFigures {
                    auc: auc_or_nan(&p.0[h], &y),
                    brier: brier(&p.0[h], &y),
                    ece: expected_calibration_error(&p.0[h], &y),
                    log_loss: log_loss(&p.0[h], &y),
                }
            })
            .collect();
        let mae = REGRESSION.map(|h| mae(&p.0[h], &labels(test, h)));
        models.push(ModelFigures { name: name.clone(), binary, mae });
    }
    let mut differences = Vec::new();
    let (best_name, best) = &preds[chosen];
    for (i, (name, p)) in preds.iter().enumerate() {
        if i == chosen {
            continue;
        }
        for h in [2, 3] {
            let y = binary(test, h);
            for (metric, f) in [("AUC", &auc_or_nan as &(dyn Fn(&[f64], &[bool]) -> f64 + Sync)), ("Brier", &brier)] {
                let interval = paired_bootstrap(&best.0[h], &p.0[h], &y, &test.groups, cfg.resamples, cfg.seed, f);
                differences.push(Difference { model: name.clone(), head: HEADS[h], metric, interval });
            }
        }
        let y = labels(test, 4);
        let interval = paired_bootstrap(&best.0[4], &p.0[4], &y, &test.groups, cfg.resamples, cfg.seed, mae);
        differences.push(Difference { model: name.clone(), head: HEADS[4], metric: "MAE", interval });
    }
    let mut plots = Vec::new();
    if let Some((dir, prefix)) = &cfg.plots {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        type Points = fn(&[f64], &[bool]) -> Vec<(f64, f64)>;
        let figures: [(&str, &str, &str, &str, Points); 2] = [
            ("roc", "ROC", "false positive rate", "true positive rate", |p, y| {
                roc_curve(p, y).iter().map(|r| (r.false_positive_rate, r.true_positive_rate)).collect()
            }),
            ("calibration", "Calibration", "mean predicted", "observed rate", |p, y| {
                reliability_curve(p, y).iter().map(|b| (b.mean_predicted, b.observed_rate)).collect()
            }),
        ];
        for h in [2, 3] {
            let y = binary(test, h);
            for (tag, what, x_desc, y_desc, points) in figures {
                let curves: Vec<Curve> =
                    preds.iter().map(|(name, p)| Curve { name: name.clone(), points: points(&p.0[h], &y) }).collect();
                let file = format!("{prefix}-{tag}-{}.svg", HEADS[h]);
                unit_square(&dir.join(&file), &format!("{what}, {}: {title}", HEADS[h]), x_desc, y_desc, &curves)?;
                plots.push(file);
            }
        }
    }
    let y14 = binary(test, 2);
    Ok(Comparison {
        title: title.to_owned(),
        rows: test.data.len(),
        customers: test.customers,
        churn_14d_rate: y14.iter().filter(|&&y| y).count() as f64 / y14.len() as f64,
        models,
        chosen: best_name.clone(),
        differences,
        resamples: cfg.resamples,
        plots,
    })
}

impl Comparison {
    /// Whether a figure or difference could not be computed (shown `n/a`).
    fn has_undefined(&self) -> bool {
        self.models.iter().flat_map(|m| &m.binary).any(|f| f.auc.is_nan())
            || self.differences.iter().any(|d| d.interval.difference.is_nan() || d.interval.resamples == 0)
    }

    /// The comparison as Markdown (figures linked relative to the report).
    pub fn markdown(&self, plot_prefix: &str) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{} rows of {} held-out customers; churn_risk_14d base rate {:.3}. \
             Differences are {} − model, with 95% intervals from {} customer resamples.{}\n",
            self.rows,
            self.customers,
            self.churn_14d_rate,
            self.chosen,
            self.resamples,
            if self.has_undefined() {
                " n/a: not computable on these rows (an AUC needs both classes among the labels)."
            } else {
                ""
            }
        );
        s += "| head | model | AUC | Brier | ECE | log loss |\n|---|---|---|---|---|---|\n";
        for (k, &h) in BINARY.iter().enumerate() {
            for m in &self.models {
                let f = &m.binary[k];
                let name = if m.name == self.chosen { format!("**{}**", m.name) } else { m.name.clone() };
                let _ = writeln!(
                    s,
                    "| {} | {name} | {} | {:.4} | {:.4} | {:.4} |",
                    HEADS[h],
                    figure(f.auc),
                    f.brier,
                    f.ece,
                    f.log_loss
                );
            }
        }
        s += "\n| model | session_velocity MAE | health_score MAE |\n|---|---|---|\n";
        for m in &self.models {
            let _ = writeln!(s, "| {} | {:.4} | {:.3} |", m.name, m.mae[0], m.mae[1]);
        }
        s += &format!(
            "\n| {} − model | head | metric | difference | 95% interval |\n|---|---|---|---|---|\n",
            self.chosen
        );
        for d in &self.differences {
            let i = &d.interval;
            let (difference, interval) = if i.difference.is_nan() {
                ("n/a".to_owned(), "n/a".to_owned())
            } else if i.resamples == 0 {
                (format!("{:+.4}", i.difference), "n/a (not computable on any resample)".to_owned())
            } else {
                let sure = if i.low > 0.0 || i.high < 0.0 { "" } else { " (not significant)" };
                (format!("{:+.4}", i.difference), format!("[{:+.4}, {:+.4}]{sure}", i.low, i.high))
            };
            let _ = writeln!(s, "| {} | {} | {} | {difference} | {interval} |", d.model, d.head, d.metric);
        }
        if !self.plots.is_empty() {
            s += "\n";
            for p in &self.plots {
                let _ = write!(s, "![{p}]({plot_prefix}{p}) ");
            }
            s += "\n";
        }
        s
    }
}

/// Writes a report file, creating its directory.
pub fn write_report(path: &Path, text: &str) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    // Beside it, then renamed over it: a failed write leaves the old report.
    let (mut file, temp) = crate::dataset_file::create_beside(path)?;
    std::io::Write::write_all(&mut file, text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    crate::dataset_file::commit(temp)
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pulse_model::Targets;

    /// Rows of 6 customers (two each), churn_risk_14d 1 for the first
    /// `churned` customers, churn_risk_30d always 0 (one class).
    fn frame(churned: usize) -> Frame {
        let mut f = Frame::default();
        for c in 0..6u32 {
            for _ in 0..2 {
                let y = Targets { churn_risk_14d: f32::from(u8::from((c as usize) < churned)), ..Targets::default() };
                f.data.push([f64::from(c); pulse_schemas::FEATURE_COUNT], y);
                f.groups.push(c);
                f.as_of.push(0);
            }
        }
        f.customers = 6;
        f
    }

    fn scores(f: &Frame, slope: f64) -> Predictions {
        let mut p = Predictions::default();
        for r in &f.data.rows {
            p.push([0.5, 1.0, 0.9 - slope * r[0], 0.2, 50.0]);
        }
        p
    }

    /// An AUC that cannot be computed (one class among the labels) is
    /// shown as n/a, with its differences and intervals: it was printed
    /// "NaN" and "[NaN, NaN] (not significant)", and beside them an AUC of
    /// the same undefined kind read 0.0000 elsewhere.
    #[test]
    fn an_auc_of_one_class_is_shown_as_n_a() {
        let test = frame(2);
        let preds = vec![("a".to_owned(), scores(&test, 0.1)), ("b".to_owned(), scores(&test, 0.05))];
        let cfg = CompareConfig { resamples: 20, seed: 1, plots: None };
        let md = compare("t", &test, &preds, 0, &cfg).unwrap().markdown("");
        assert!(!md.contains("NaN"), "{md}");
        assert!(md.contains("| churn_risk_30d | **a** | n/a |"), "{md}");
        assert!(md.contains("| b | churn_risk_30d | AUC | n/a | n/a |"), "{md}");
        assert!(md.contains("with 95% intervals from 20 customer resamples. n/a: not computable"), "{md}");
        // churn_risk_14d has both classes: a number.
        assert!(md.contains("| churn_risk_14d | **a** | 1.0000 |"), "{md}");
        assert_eq!(one_class(&test, 3), Some(false));
        assert_eq!(one_class(&test, 2), None);
        assert_eq!(one_class(&Frame::default(), 2), None);
    }
}
