//! Seeded training of the multi-task network.
//!
//! Losses per head, on a batch: binary cross-entropy on logits for the three
//! probabilities; squared error for velocity (in units of 4 sessions/week);
//! absolute error for health (in units of 100 points, the metric it is
//! judged by); each weighted by
//! [`TrainConfig::loss_weights`]. AdamW, shuffled minibatches from a seeded
//! generator, early stopping on the validation loss (the best epoch's weights
//! are kept). Same data and seed, same model.

use candle_core::{Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use pulse_schemas::{Features, FEATURE_COUNT};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::artifact::{Model, ModelArtifact, ModelMeta, Normalizer, BINARY_HEADS};
use crate::linear::{LinearHead, LinearModel};
use crate::net::{Net, HEADS};
use crate::ModelError;

/// The five labels of one vector (see the repo's `docs/LABELS.md`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Targets {
    /// 0 or 1.
    pub first_session_success: f32,
    /// Sessions per week.
    pub session_velocity: f32,
    /// 0 or 1.
    pub churn_risk_14d: f32,
    /// 0 or 1.
    pub churn_risk_30d: f32,
    /// 0–100.
    pub health_score: f32,
}

impl Targets {
    /// The five labels in head order.
    pub fn as_row(&self) -> [f32; 5] {
        [self.first_session_success, self.session_velocity, self.churn_risk_14d, self.churn_risk_30d, self.health_score]
    }
}

/// Feature rows with their labels.
#[derive(Clone, Debug, Default)]
pub struct Dataset {
    /// Inputs.
    pub rows: Vec<Features>,
    /// Labels, one per row.
    pub targets: Vec<Targets>,
}

impl Dataset {
    /// Rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Adds a row.
    pub fn push(&mut self, row: Features, target: Targets) {
        self.rows.push(row);
        self.targets.push(target);
    }
}

/// Training settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Seeds initial weights and batch order.
    pub seed: u64,
    /// At most this many passes over the training rows.
    pub max_epochs: usize,
    /// Stop after this many epochs without a better validation loss.
    pub patience: usize,
    /// Rows per step.
    pub batch_size: usize,
    /// AdamW learning rate.
    pub learning_rate: f64,
    /// AdamW weight decay.
    pub weight_decay: f64,
    /// Weights of the heads' losses, in head order.
    pub loss_weights: [f32; 5],
    /// The model's name.
    pub name: String,
    /// The model's version.
    pub version: String,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            seed: 7,
            max_epochs: 40,
            patience: 5,
            batch_size: 1024,
            learning_rate: 5e-4,
            weight_decay: 1e-4,
            loss_weights: [1.0, 2.0, 2.0, 1.0, 2.0],
            name: "pulse-multitask".into(),
            version: "1".into(),
        }
    }
}

/// One epoch's losses.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct EpochReport {
    /// 1-based.
    pub epoch: usize,
    /// Mean training loss.
    pub train_loss: f64,
    /// Validation loss.
    pub valid_loss: f64,
}

/// `ln(1 + e^x)` elementwise, without overflow.
fn softplus(x: &Tensor) -> candle_core::Result<Tensor> {
    x.relu()? + ((x.abs()?.neg()?.exp()? + 1.0)?.log()?)
}

/// Mean binary cross-entropy of logits `x` against 0/1 targets `y`, stable
/// for large logits: `max(x, 0) - x·y + ln(1 + e^-|x|)`.
fn bce_logits(x: &Tensor, y: &Tensor) -> candle_core::Result<Tensor> {
    let loss = ((x.relu()? - (x * y)?)? + ((x.abs()?.neg()?.exp()? + 1.0)?.log()?))?;
    loss.mean_all()
}

fn mse(a: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    (a - b)?.sqr()?.mean_all()
}

/// The weighted multi-task loss of raw outputs against targets (both (b, 5)).
fn loss(raw: &Tensor, y: &Tensor, w: &[f32; 5]) -> candle_core::Result<Tensor> {
    let col = |t: &Tensor, i: usize| t.narrow(1, i, 1);
    let fss = bce_logits(&col(raw, 0)?, &col(y, 0)?)?;
    let velocity = mse(&(softplus(&col(raw, 1)?)? / 4.0)?, &(col(y, 1)? / 4.0)?)?;
    let churn14 = bce_logits(&col(raw, 2)?, &col(y, 2)?)?;
    let churn30 = bce_logits(&col(raw, 3)?, &col(y, 3)?)?;
    // Health is judged by its mean absolute error, so it is fitted by absolute
    // error: the median of a customer's uncertain future, not its mean.
    let health = (candle_nn::ops::sigmoid(&col(raw, 4)?)? - (col(y, 4)? / 100.0)?)?.abs()?.mean_all()?;
    let terms = [fss, velocity, churn14, churn30, health];
    let mut total = (&terms[0] * f64::from(w[0]))?;
    for (t, &wi) in terms.iter().zip(w).skip(1) {
        total = (total + (t * f64::from(wi))?)?;
    }
    Ok(total)
}

struct Prepared {
    x: Vec<f32>,
    y: Vec<f32>,
    n: usize,
}

fn prepare(data: &Dataset, norm: &Normalizer) -> Prepared {
    let mut x = Vec::with_capacity(data.len() * FEATURE_COUNT);
    for r in &data.rows {
        norm.push_row(r, &mut x);
    }
    let y = data.targets.iter().flat_map(Targets::as_row).collect();
    Prepared { x, y, n: data.len() }
}

impl Prepared {
    fn batch(&self, idx: &[usize], device: &Device) -> candle_core::Result<(Tensor, Tensor)> {
        let mut x = Vec::with_capacity(idx.len() * FEATURE_COUNT);
        let mut y = Vec::with_capacity(idx.len() * 5);
        for &i in idx {
            x.extend_from_slice(&self.x[i * FEATURE_COUNT..(i + 1) * FEATURE_COUNT]);
            y.extend_from_slice(&self.y[i * 5..(i + 1) * 5]);
        }
        Ok((Tensor::from_vec(x, (idx.len(), FEATURE_COUNT), device)?, Tensor::from_vec(y, (idx.len(), 5), device)?))
    }

    fn mean_loss(&self, net: &Net, w: &[f32; 5], device: &Device) -> candle_core::Result<f64> {
        let mut total = 0.0;
        let idx: Vec<usize> = (0..self.n).collect();
        for chunk in idx.chunks(8192) {
            let (x, y) = self.batch(chunk, device)?;
            total += f64::from(loss(&net.forward(&x)?, &y, w)?.to_scalar::<f32>()?) * chunk.len() as f64;
        }
        Ok(total / self.n.max(1) as f64)
    }
}

fn snapshot(vars: &[Var]) -> candle_core::Result<Vec<Tensor>> {
    vars.iter().map(|v| v.as_tensor().copy()).collect()
}

/// Trains a model on `train`, choosing the epoch by `valid`.
pub fn train(
    train: &Dataset,
    valid: &Dataset,
    cfg: &TrainConfig,
    on_epoch: &mut dyn FnMut(EpochReport),
) -> Result<ModelArtifact, ModelError> {
    if train.is_empty() || valid.is_empty() {
        return Err(ModelError::Artifact("training needs non-empty training and validation rows".into()));
    }
    let device = Device::Cpu;
    let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(cfg.seed);
    let normalizer = Normalizer::fit(&train.rows);
    let (tr, va) = (prepare(train, &normalizer), prepare(valid, &normalizer));
    let (net, vars) = Net::init(&mut rng, &device)?;
    let params = ParamsAdamW { lr: cfg.learning_rate, weight_decay: cfg.weight_decay, ..ParamsAdamW::default() };
    let mut opt = AdamW::new(vars.clone(), params)?;

    let mut order: Vec<usize> = (0..tr.n).collect();
    let mut best = (f64::INFINITY, snapshot(&vars)?, 0usize);
    let mut history = Vec::new();
    for epoch in 1..=cfg.max_epochs {
        order.shuffle(&mut rng);
        let mut sum = 0.0;
        for chunk in order.chunks(cfg.batch_size) {
            let (x, y) = tr.batch(chunk, &device)?;
            let l = loss(&net.forward(&x)?, &y, &cfg.loss_weights)?;
            opt.backward_step(&l)?;
            sum += f64::from(l.to_scalar::<f32>()?) * chunk.len() as f64;
        }
        let report = EpochReport {
            epoch,
            train_loss: sum / tr.n as f64,
            valid_loss: va.mean_loss(&net, &cfg.loss_weights, &device)?,
        };
        on_epoch(report);
        history.push(report);
        if report.valid_loss < best.0 {
            best = (report.valid_loss, snapshot(&vars)?, epoch);
        } else if epoch - best.2 >= cfg.patience {
            break;
        }
    }
    for (var, value) in vars.iter().zip(&best.1) {
        var.set(value)?;
    }
    let meta = ModelMeta::for_pulse(
        &cfg.name,
        &cfg.version,
        Some(normalizer),
        serde_json::json!({
            "trainer": "network",
            "config": cfg,
            "train_rows": train.len(),
            "valid_rows": valid.len(),
            "best_epoch": best.2,
            "best_valid_loss": best.0,
            "history": history,
        }),
    );
    Ok(ModelArtifact { meta, model: Model::Network(net) })
}

/// A logistic regression on the same normalised features: the baseline the
/// evaluation compares the network with, and the probability heads of the
/// `logistic` model kind.
#[derive(Clone, Debug)]
pub struct Logistic {
    normalizer: Normalizer,
    head: LinearHead,
}

/// Full-batch AdamW steps of [`Logistic::fit`].
const LOGISTIC_STEPS: usize = 300;

/// Fits one logistic regression per label column on normalised inputs `x`
/// (rows, 46): `ys[k]` holds column k's 0/1 labels. The columns are fitted
/// together, as one (46, k) weight matrix under the sum of their mean
/// cross-entropies; AdamW updates each weight from its own gradient only, so
/// each column's fit is the one it would get alone.
fn fit_logistic_heads(x: &Tensor, ys: &[Vec<f32>]) -> Result<Vec<LinearHead>, ModelError> {
    let device = Device::Cpu;
    let (n, k) = (x.dims()[0], ys.len());
    let mut flat = Vec::with_capacity(n * k);
    for i in 0..n {
        flat.extend(ys.iter().map(|y| y[i]));
    }
    let y = Tensor::from_vec(flat, (n, k), &device)?;
    let w = Var::zeros((FEATURE_COUNT, k), candle_core::DType::F32, &device)?;
    let b = Var::zeros(k, candle_core::DType::F32, &device)?;
    let mut opt =
        AdamW::new(vec![w.clone(), b.clone()], ParamsAdamW { lr: 0.05, weight_decay: 0.0, ..Default::default() })?;
    for _ in 0..LOGISTIC_STEPS {
        let logits = x.matmul(w.as_tensor())?.broadcast_add(b.as_tensor())?;
        opt.backward_step(&(bce_logits(&logits, &y)? * k as f64)?)?;
    }
    let w: Vec<Vec<f32>> = w.as_tensor().to_vec2()?;
    let b: Vec<f32> = b.as_tensor().to_vec1()?;
    Ok((0..k)
        .map(|j| LinearHead { weights: w.iter().map(|row| f64::from(row[j])).collect(), bias: f64::from(b[j]) })
        .collect())
}

impl Logistic {
    /// Fits one binary target (`label` picks it from the targets) by full-batch
    /// AdamW for a fixed number of steps from zero weights (deterministic).
    pub fn fit(data: &Dataset, label: impl Fn(&Targets) -> f32) -> Result<Logistic, ModelError> {
        let normalizer = Normalizer::fit(&data.rows);
        let x = normalizer.tensor(&data.rows, &Device::Cpu)?;
        let mut heads = fit_logistic_heads(&x, &[data.targets.iter().map(label).collect()])?;
        Ok(Logistic { normalizer, head: heads.remove(0) })
    }

    /// Probabilities for rows.
    pub fn predict(&self, rows: &[Features]) -> Result<Vec<f64>, ModelError> {
        Ok(rows.iter().map(|r| 1.0 / (1.0 + (-self.head.margin(&self.normalizer.normalise(r))).exp())).collect())
    }

    /// The fitted weights (on [`Logistic::normalizer`]'s features).
    pub fn head(&self) -> &LinearHead {
        &self.head
    }

    /// The normalisation fitted on the training rows.
    pub fn normalizer(&self) -> &Normalizer {
        &self.normalizer
    }
}

/// Settings of [`train_logistic`] (as JSON: defaults for fields left out,
/// unknown ones refused).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogisticConfig {
    /// L2 penalty of the regression heads' least squares (on the weights,
    /// not the intercept), in units of the squared normalised features.
    pub ridge: f64,
    /// The model's name.
    pub name: String,
    /// The model's version.
    pub version: String,
}

impl Default for LogisticConfig {
    fn default() -> Self {
        LogisticConfig { ridge: 1.0, name: "pulse-logistic".into(), version: "1".into() }
    }
}

/// Ridge least squares of `y` on `z` (rows of 46 normalised features) with an
/// unpenalised intercept, by the normal equations and a Cholesky solve.
fn ridge(z: &[[f32; FEATURE_COUNT]], y: &[f64], lambda: f64) -> Option<LinearHead> {
    const D: usize = FEATURE_COUNT + 1;
    let mut a = vec![[0f64; D]; D];
    let mut rhs = [0f64; D];
    let mut v = [0f64; D];
    for (row, &t) in z.iter().zip(y) {
        v[0] = 1.0;
        for (dst, &x) in v[1..].iter_mut().zip(row) {
            *dst = f64::from(x);
        }
        for i in 0..D {
            rhs[i] += v[i] * t;
            for j in 0..=i {
                a[i][j] += v[i] * v[j];
            }
        }
    }
    for (i, row) in a.iter_mut().enumerate().skip(1) {
        row[i] += lambda;
    }
    // Cholesky: a = L·Lᵀ, in place in the lower triangle.
    let dot = |x: &[f64], y: &[f64]| x.iter().zip(y).map(|(a, b)| a * b).sum::<f64>();
    for j in 0..D {
        let d = a[j][j] - dot(&a[j][..j], &a[j][..j]);
        if d.is_nan() || d <= 1e-12 {
            return None;
        }
        let d = d.sqrt();
        a[j][j] = d;
        for i in j + 1..D {
            a[i][j] = (a[i][j] - dot(&a[i][..j], &a[j][..j])) / d;
        }
    }
    // L·u = rhs, then Lᵀ·w = u.
    let mut w = rhs;
    for i in 0..D {
        w[i] = (w[i] - dot(&a[i][..i], &w[..i])) / a[i][i];
    }
    for i in (0..D).rev() {
        w[i] = (w[i] - (i + 1..D).map(|k| a[k][i] * w[k]).sum::<f64>()) / a[i][i];
    }
    w.iter().all(|x| x.is_finite()).then(|| LinearHead { weights: w[1..].to_vec(), bias: w[0] })
}

/// Trains the `logistic` model kind: a shared [`Normalizer`] fitted on
/// `train`; per probability head a [`Logistic`] regression; per regression
/// head a ridge least-squares line or the training median (all weights 0),
/// whichever has the lower MAE on `valid` (outputs clamped as served:
/// velocity ≥ 0, health 0–100).
pub fn train_logistic(train: &Dataset, valid: &Dataset, cfg: &LogisticConfig) -> Result<ModelArtifact, ModelError> {
    if train.is_empty() || valid.is_empty() {
        return Err(ModelError::Config("training needs non-empty training and validation rows".into()));
    }
    if !(cfg.ridge >= 0.0 && cfg.ridge.is_finite()) {
        return Err(ModelError::Config("LogisticConfig.ridge must be finite and not negative".into()));
    }
    let normalizer = Normalizer::fit(&train.rows);
    let x = normalizer.tensor(&train.rows, &Device::Cpu)?;
    let z: Vec<[f32; FEATURE_COUNT]> = train.rows.iter().map(|r| normalizer.normalise(r)).collect();
    let vz: Vec<[f32; FEATURE_COUNT]> = valid.rows.iter().map(|r| normalizer.normalise(r)).collect();
    let binary: Vec<Vec<f32>> =
        BINARY_HEADS.iter().map(|&h| train.targets.iter().map(|t| t.as_row()[h]).collect()).collect();
    let mut logistic = fit_logistic_heads(&x, &binary)?.into_iter();
    let mut heads = Vec::with_capacity(HEADS.len());
    let mut record = Vec::new();
    for (h, name) in HEADS.iter().enumerate() {
        if BINARY_HEADS.contains(&h) {
            heads.push(logistic.next().ok_or_else(|| ModelError::Config("a logistic head is missing".into()))?);
            record.push(serde_json::json!({"head": name, "fit": "logistic regression"}));
            continue;
        }
        let y: Vec<f64> = train.targets.iter().map(|t| f64::from(t.as_row()[h])).collect();
        let serve = |m: f64| if h == 1 { m.max(0.0) } else { m.clamp(0.0, 100.0) };
        let vy: Vec<f64> = valid.targets.iter().map(|t| f64::from(t.as_row()[h])).collect();
        let mae = |head: &LinearHead| {
            vz.iter().zip(&vy).map(|(z, t)| (serve(head.margin(z)) - t).abs()).sum::<f64>() / vy.len() as f64
        };
        let mut sorted = y.clone();
        sorted.sort_by(f64::total_cmp);
        let median = LinearHead::constant(sorted[sorted.len() / 2]);
        let median_mae = mae(&median);
        let line = ridge(&z, &y, cfg.ridge);
        let line_mae = line.as_ref().map(&mae);
        let (head, fit) = match (line, line_mae) {
            (Some(line), Some(m)) if m < median_mae => (line, "ridge least squares"),
            _ => (median, "training median"),
        };
        record.push(serde_json::json!({
            "head": name, "fit": fit, "valid_mae_line": line_mae, "valid_mae_median": median_mae,
        }));
        heads.push(head);
    }
    let model = LinearModel::new(heads).map_err(ModelError::Artifact)?;
    let meta = ModelMeta::for_pulse(
        &cfg.name,
        &cfg.version,
        Some(normalizer),
        serde_json::json!({
            "trainer": "logistic",
            "config": cfg,
            "logistic_steps": LOGISTIC_STEPS,
            "train_rows": train.len(),
            "valid_rows": valid.len(),
            "heads": record,
        }),
    );
    Ok(ModelArtifact { meta, model: Model::Logistic(model) })
}
