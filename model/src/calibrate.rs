//! Calibration of the probability heads: a monotone map from a model's raw
//! probability to a calibrated one, fitted on (score, label) pairs of a
//! validation split, stored per head in `model.json` and applied by
//! [`crate::EmbeddedModel`] after the raw probability, for any model kind.
//!
//! * **Platt scaling**: `p' = sigmoid(a · logit(p) + b)`, `a ≥ 0`, fitted by
//!   Newton's method on the log loss against Platt's smoothed targets
//!   (`(N₊+1)/(N₊+2)` for positives, `1/(N₋+2)` for negatives), from the
//!   identity (`a = 1, b = 0`). `p` is clamped to `[1e-12, 1 − 1e-12]` first.
//! * **Isotonic regression**: the non-decreasing step function closest to
//!   the labels in squared error (pool-adjacent-violators over the scores
//!   sorted, equal scores pooled first), stored as points `(x, y)` with `x`
//!   strictly increasing and `y` non-decreasing: each pooled block gives its
//!   lowest and highest score, both at the block's rate. Between points the
//!   map interpolates linearly; below the first and above the last it is flat.
//!
//! Both are monotone by construction, so ranking metrics (AUC) are unchanged
//! up to ties that isotonic regression introduces within a block.

use std::collections::BTreeMap;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

use crate::artifact::{exact, BINARY_HEADS};
use crate::net::HEADS;
use crate::train::Dataset;
use crate::{EmbeddedModel, ModelArtifact, ModelError};

/// Which calibration to fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CalibrationMethod {
    /// [`Calibrator::Platt`].
    Platt,
    /// [`Calibrator::Isotonic`].
    Isotonic,
}

/// A fitted calibration map of one probability head.
#[derive(Clone, Debug, PartialEq)]
pub enum Calibrator {
    /// `p' = sigmoid(a · logit(p) + b)`.
    Platt {
        /// Slope on the logit, ≥ 0.
        a: f64,
        /// Intercept.
        b: f64,
    },
    /// Piecewise-linear through `(x[i], y[i])`, flat outside.
    Isotonic {
        /// Raw probabilities, strictly increasing.
        x: Vec<f64>,
        /// Calibrated probabilities, non-decreasing, within 0–1.
        y: Vec<f64>,
    },
}

/// Per head name: its calibrator (probability heads only).
pub type Calibration = BTreeMap<String, Calibrator>;

const EPS: f64 = 1e-12;

fn logit(p: f64) -> f64 {
    let p = p.clamp(EPS, 1.0 - EPS);
    (p / (1.0 - p)).ln()
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

impl Calibrator {
    /// Fits `method` on raw probabilities and their labels.
    pub fn fit(method: CalibrationMethod, scores: &[f64], labels: &[bool]) -> Result<Calibrator, ModelError> {
        match method {
            CalibrationMethod::Platt => fit_platt(scores, labels),
            CalibrationMethod::Isotonic => fit_isotonic(scores, labels),
        }
    }

    /// The calibrated probability of a raw one.
    pub fn apply(&self, p: f64) -> f64 {
        match self {
            Calibrator::Platt { a, b } => sigmoid(a * logit(p) + b),
            Calibrator::Isotonic { x, y } => {
                if p.is_nan() {
                    return p;
                }
                let i = x.partition_point(|&v| v <= p);
                if i == 0 {
                    return y[0];
                }
                if i == x.len() {
                    return y[x.len() - 1];
                }
                let (x0, x1, y0, y1) = (x[i - 1], x[i], y[i - 1], y[i]);
                y0 + (y1 - y0) * ((p - x0) / (x1 - x0))
            }
        }
    }

    /// The method this calibrator is.
    pub fn method(&self) -> CalibrationMethod {
        match self {
            Calibrator::Platt { .. } => CalibrationMethod::Platt,
            Calibrator::Isotonic { .. } => CalibrationMethod::Isotonic,
        }
    }

    /// Checks the parameters keep the map monotone and within 0–1.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            Calibrator::Platt { a, b } => {
                if !(a.is_finite() && b.is_finite() && *a >= 0.0) {
                    return Err("platt needs finite a ≥ 0 and finite b".into());
                }
            }
            Calibrator::Isotonic { x, y } => {
                if x.is_empty() || x.len() != y.len() {
                    return Err("isotonic needs as many x as y, at least one".into());
                }
                if x.iter().any(|v| !v.is_finite()) || x.windows(2).any(|w| w[0] >= w[1]) {
                    return Err("isotonic x must be finite and strictly increasing".into());
                }
                if y.iter().any(|v| !(0.0..=1.0).contains(v)) || y.windows(2).any(|w| w[0] > w[1]) {
                    return Err("isotonic y must be within 0–1 and non-decreasing".into());
                }
            }
        }
        Ok(())
    }
}

fn check_pairs(scores: &[f64], labels: &[bool]) -> Result<(), ModelError> {
    if scores.len() != labels.len() {
        return Err(ModelError::Config(format!("{} scores but {} labels", scores.len(), labels.len())));
    }
    if scores.is_empty() {
        return Err(ModelError::Config("calibration needs at least one (score, label) pair".into()));
    }
    if scores.iter().any(|s| s.is_nan()) {
        return Err(ModelError::Config("calibration scores must not be NaN".into()));
    }
    Ok(())
}

/// Platt scaling (see the module doc).
pub fn fit_platt(scores: &[f64], labels: &[bool]) -> Result<Calibrator, ModelError> {
    check_pairs(scores, labels)?;
    let pos = labels.iter().filter(|&&l| l).count() as f64;
    let neg = labels.len() as f64 - pos;
    let (t_pos, t_neg) = ((pos + 1.0) / (pos + 2.0), 1.0 / (neg + 2.0));
    let s: Vec<f64> = scores.iter().map(|&p| logit(p)).collect();
    let t: Vec<f64> = labels.iter().map(|&l| if l { t_pos } else { t_neg }).collect();
    let loss = |a: f64, b: f64| -> f64 {
        s.iter()
            .zip(&t)
            .map(|(&s, &t)| {
                let z = a * s + b;
                // softplus(z) − t·z, the cross-entropy of sigmoid(z) against t.
                z.max(0.0) + (-z.abs()).exp().ln_1p() - t * z
            })
            .sum()
    };
    let (mut a, mut b) = (1.0, 0.0);
    let mut current = loss(a, b);
    for _ in 0..100 {
        let (mut ga, mut gb, mut haa, mut hab, mut hbb) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for (&s, &t) in s.iter().zip(&t) {
            let q = sigmoid(a * s + b);
            let (d, w) = (q - t, (q * (1.0 - q)).max(1e-12));
            ga += d * s;
            gb += d;
            haa += w * s * s;
            hab += w * s;
            hbb += w;
        }
        // Newton step on the 2×2 system, a touch of ridge for flat directions.
        let (haa, hbb) = (haa + 1e-9, hbb + 1e-9);
        let det = haa * hbb - hab * hab;
        if !(det.is_finite() && det > 0.0) {
            break;
        }
        let da = (hbb * ga - hab * gb) / det;
        let db = (haa * gb - hab * ga) / det;
        let mut step = 1.0;
        let mut improved = false;
        while step > 1e-6 {
            let (na, nb) = (a - step * da, b - step * db);
            let l = loss(na, nb);
            if l <= current {
                (a, b, current, improved) = (na, nb, l, true);
                break;
            }
            step /= 2.0;
        }
        if !improved || (step * da).abs().max((step * db).abs()) < 1e-10 {
            break;
        }
    }
    if a < 0.0 {
        // The scores rank backwards: no monotone increasing map helps; the
        // base rate is the best constant.
        let rate = (pos + 1.0) / (labels.len() as f64 + 2.0);
        return Ok(Calibrator::Platt { a: 0.0, b: logit(rate) });
    }
    Ok(Calibrator::Platt { a, b })
}

/// Isotonic regression by pool-adjacent-violators (see the module doc).
pub fn fit_isotonic(scores: &[f64], labels: &[bool]) -> Result<Calibrator, ModelError> {
    check_pairs(scores, labels)?;
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&i, &j| scores[i].total_cmp(&scores[j]));
    // A block: lowest and highest score, positives, rows.
    struct Block {
        lo: f64,
        hi: f64,
        sum: f64,
        n: f64,
    }
    // Equal scores first make one block each.
    let mut groups: Vec<Block> = Vec::new();
    for &i in &order {
        let (x, y) = (scores[i], f64::from(u8::from(labels[i])));
        match groups.last_mut() {
            Some(last) if last.hi == x => {
                last.sum += y;
                last.n += 1.0;
            }
            _ => groups.push(Block { lo: x, hi: x, sum: y, n: 1.0 }),
        }
    }
    let mut blocks: Vec<Block> = Vec::with_capacity(groups.len());
    for g in groups {
        blocks.push(g);
        // Pool while the last two violate (or tie) the order.
        while blocks.len() >= 2 {
            let (l, r) = (&blocks[blocks.len() - 2], &blocks[blocks.len() - 1]);
            if l.sum * r.n < r.sum * l.n {
                break;
            }
            let r = blocks.pop().expect("two blocks");
            let l = blocks.last_mut().expect("two blocks");
            l.hi = r.hi;
            l.sum += r.sum;
            l.n += r.n;
        }
    }
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for b in &blocks {
        let rate = b.sum / b.n;
        x.push(b.lo);
        y.push(rate);
        if b.hi > b.lo {
            x.push(b.hi);
            y.push(rate);
        }
    }
    Ok(Calibrator::Isotonic { x, y })
}

/// Fits `method` for each probability head on `data` scored by `artifact`
/// without calibration, and stores the calibrators in the artifact
/// (replacing any). `data` should be rows the model was not fitted on — the
/// validation split, or better a split of its own, since the validation
/// split also chose the model's stopping point.
pub fn calibrate(artifact: &mut ModelArtifact, data: &Dataset, method: CalibrationMethod) -> Result<(), ModelError> {
    if data.is_empty() {
        return Err(ModelError::Config("calibration needs rows".into()));
    }
    artifact.meta.calibration.clear();
    let model = EmbeddedModel::new(artifact)?;
    let mut scores = Vec::with_capacity(data.len());
    for chunk in data.rows.chunks(4096) {
        scores.extend(model.score_now(chunk)?);
    }
    for h in BINARY_HEADS {
        let raw: Vec<f64> = scores.iter().map(|s| crate::artifact::head_value(s, h)).collect();
        let labels: Vec<bool> = data.targets.iter().map(|t| t.as_row()[h] >= 0.5).collect();
        artifact.meta.calibration.insert(HEADS[h].to_string(), Calibrator::fit(method, &raw, &labels)?);
    }
    Ok(())
}

/// `{"method": ..., "params": {...}}` as written.
#[derive(Serialize)]
struct Tagged<'a, P: Serialize> {
    method: CalibrationMethod,
    params: &'a P,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlattParams {
    #[serde(deserialize_with = "exact::f64")]
    a: f64,
    #[serde(deserialize_with = "exact::f64")]
    b: f64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct IsotonicParams {
    #[serde(deserialize_with = "exact::vec")]
    x: Vec<f64>,
    #[serde(deserialize_with = "exact::vec")]
    y: Vec<f64>,
}

impl Serialize for Calibrator {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Calibrator::Platt { a, b } => {
                Tagged { method: CalibrationMethod::Platt, params: &PlattParams { a: *a, b: *b } }.serialize(s)
            }
            Calibrator::Isotonic { x, y } => {
                Tagged { method: CalibrationMethod::Isotonic, params: &IsotonicParams { x: x.clone(), y: y.clone() } }
                    .serialize(s)
            }
        }
    }
}

/// Read as written, floats parsed exactly (see [`crate::artifact`]).
impl<'de> Deserialize<'de> for Calibrator {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            method: String,
            params: Box<RawValue>,
        }
        let raw = Raw::deserialize(d)?;
        let params = raw.params.get();
        let calibrator = match raw.method.as_str() {
            "platt" => {
                let p: PlattParams = serde_json::from_str(params).map_err(D::Error::custom)?;
                Calibrator::Platt { a: p.a, b: p.b }
            }
            "isotonic" => {
                let p: IsotonicParams = serde_json::from_str(params).map_err(D::Error::custom)?;
                Calibrator::Isotonic { x: p.x, y: p.y }
            }
            other => {
                return Err(D::Error::custom(format!(
                    "unknown calibration method `{other}`, expected `platt` or `isotonic`"
                )))
            }
        };
        calibrator.validate().map_err(D::Error::custom)?;
        Ok(calibrator)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iso(scores: &[f64], labels: &[u8]) -> (Vec<f64>, Vec<f64>) {
        let labels: Vec<bool> = labels.iter().map(|&l| l == 1).collect();
        match fit_isotonic(scores, &labels).unwrap() {
            Calibrator::Isotonic { x, y } => (x, y),
            _ => unreachable!(),
        }
    }

    #[test]
    fn pav_keeps_an_ordered_sequence() {
        let (x, y) = iso(&[0.1, 0.2, 0.3], &[0, 0, 1]);
        // The two zeros tie: one block from 0.1 to 0.2.
        assert_eq!(x, vec![0.1, 0.2, 0.3]);
        assert_eq!(y, vec![0.0, 0.0, 1.0]);
        let (x, y) = iso(&[0.1, 0.2, 0.3, 0.4], &[0, 1, 0, 1]);
        // 1, 0 at 0.2 and 0.3 violate: pooled to 0.5.
        assert_eq!(x, vec![0.1, 0.2, 0.3, 0.4]);
        assert_eq!(y, vec![0.0, 0.5, 0.5, 1.0]);
    }

    #[test]
    fn pav_pools_a_cascade_of_violators() {
        // 1 0 0 0: each new 0 violates the pooled block before it.
        let (x, y) = iso(&[0.1, 0.2, 0.3, 0.4], &[1, 0, 0, 0]);
        assert_eq!(x, vec![0.1, 0.4]);
        assert_eq!(y, vec![0.25, 0.25]);
        // 0 1 1 0 0 1: the 1 1 0 0 pool to 0.5 between a 0 and a 1.
        let (x, y) = iso(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[0, 1, 1, 0, 0, 1]);
        assert_eq!(x, vec![1.0, 2.0, 5.0, 6.0]);
        assert_eq!(y, vec![0.0, 0.5, 0.5, 1.0]);
    }

    #[test]
    fn pav_pools_equal_scores_first_and_ignores_input_order() {
        // Two rows at 0.5 (one positive), given out of order.
        let (x, y) = iso(&[0.9, 0.5, 0.1, 0.5], &[1, 0, 0, 1]);
        assert_eq!(x, vec![0.1, 0.5, 0.9]);
        assert_eq!(y, vec![0.0, 0.5, 1.0]);
        // All labels equal: one block.
        let (x, y) = iso(&[0.3, 0.1, 0.2], &[1, 1, 1]);
        assert_eq!((x, y), (vec![0.1, 0.3], vec![1.0, 1.0]));
    }

    #[test]
    fn isotonic_interpolates_and_is_flat_outside() {
        let c = Calibrator::Isotonic { x: vec![0.2, 0.4, 0.8], y: vec![0.1, 0.3, 0.9] };
        assert_eq!(c.apply(0.0), 0.1);
        assert_eq!(c.apply(1.0), 0.9);
        assert_eq!(c.apply(0.4), 0.3);
        assert!((c.apply(0.3) - 0.2).abs() < 1e-12);
        assert!((c.apply(0.6) - 0.6).abs() < 1e-12);
        let mut last = 0.0;
        for i in 0..=100 {
            let v = c.apply(f64::from(i) / 100.0);
            assert!(v >= last);
            last = v;
        }
    }

    #[test]
    fn platt_recovers_a_known_map_and_stays_increasing() {
        // Labels drawn from sigmoid(2·logit(p) − 1) on a grid: the fit lands near (2, −1).
        let mut scores = Vec::new();
        let mut labels = Vec::new();
        for i in 1..200 {
            let p = f64::from(i) / 200.0;
            let truth = sigmoid(2.0 * logit(p) - 1.0);
            for k in 0..100 {
                scores.push(p);
                labels.push(f64::from(k) + 0.5 < truth * 100.0);
            }
        }
        let Calibrator::Platt { a, b } = fit_platt(&scores, &labels).unwrap() else { unreachable!() };
        assert!((a - 2.0).abs() < 0.05 && (b + 1.0).abs() < 0.05, "a {a} b {b}");
        // Backwards scores: a constant, never a decreasing map.
        let reversed: Vec<f64> = scores.iter().map(|p| 1.0 - p).collect();
        let Calibrator::Platt { a, .. } = fit_platt(&reversed, &labels).unwrap() else { unreachable!() };
        assert_eq!(a, 0.0);
    }

    #[test]
    fn calibrators_round_trip_and_refuse_bad_params() {
        for c in [
            Calibrator::Platt { a: 1.25, b: -0.1 },
            Calibrator::Isotonic { x: vec![0.1, 0.30000000000000004], y: vec![0.0, 0.7] },
        ] {
            let json = serde_json::to_string(&c).unwrap();
            assert_eq!(serde_json::from_str::<Calibrator>(&json).unwrap(), c, "{json}");
        }
        let bad = [
            (r#"{"method":"beta","params":{}}"#, "unknown calibration method `beta`"),
            (r#"{"method":"platt","params":{"a":-1,"b":0}}"#, "a ≥ 0"),
            (r#"{"method":"isotonic","params":{"x":[0.2,0.1],"y":[0,1]}}"#, "strictly increasing"),
            (r#"{"method":"isotonic","params":{"x":[0.1,0.2],"y":[0.5,0.4]}}"#, "non-decreasing"),
        ];
        for (json, want) in bad {
            let err = serde_json::from_str::<Calibrator>(json).unwrap_err().to_string();
            assert!(err.contains(want), "{json}: {err}");
        }
    }
}
