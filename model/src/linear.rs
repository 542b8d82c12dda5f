//! The `logistic` model kind: one linear function of the normalised features
//! per head (`margin = bias + Σ weights[i] · z[i]`, `z` from the artifact's
//! [`crate::artifact::Normalizer`]). The three probability heads are logistic
//! regressions; the two regression heads a ridge least-squares line or the
//! training median (all weights 0), whichever has the lower validation MAE
//! (see [`crate::train::train_logistic`]).

use pulse_schemas::{Features, FEATURE_COUNT};

use crate::artifact::Normalizer;
use crate::net::HEADS;

/// One head's weights.
#[derive(Clone, Debug, PartialEq)]
pub struct LinearHead {
    /// One per feature, on the normalised features.
    pub weights: Vec<f64>,
    /// The intercept.
    pub bias: f64,
}

impl LinearHead {
    /// The margin of normalised inputs.
    #[inline]
    pub fn margin(&self, z: &[f32; FEATURE_COUNT]) -> f64 {
        let mut m = self.bias;
        for (w, &x) in self.weights.iter().zip(z) {
            m += w * f64::from(x);
        }
        m
    }

    /// A head that always answers `value`.
    pub fn constant(value: f64) -> LinearHead {
        LinearHead { weights: vec![0.0; FEATURE_COUNT], bias: value }
    }
}

/// The five heads, in [`HEADS`] order.
#[derive(Clone, Debug, PartialEq)]
pub struct LinearModel {
    heads: Vec<LinearHead>,
}

impl LinearModel {
    /// A model from five heads of 46 finite weights each.
    pub fn new(heads: Vec<LinearHead>) -> Result<LinearModel, String> {
        if heads.len() != HEADS.len() {
            return Err(format!("a logistic model has {} heads ({HEADS:?}), not {}", HEADS.len(), heads.len()));
        }
        for (head, name) in heads.iter().zip(HEADS) {
            if head.weights.len() != FEATURE_COUNT {
                return Err(format!(
                    "head {name} has {} weights, expected {FEATURE_COUNT} (one per feature)",
                    head.weights.len()
                ));
            }
            if !head.bias.is_finite() || head.weights.iter().any(|w| !w.is_finite()) {
                return Err(format!("head {name}: weights and bias must be finite"));
            }
        }
        Ok(LinearModel { heads })
    }

    /// The heads, in [`HEADS`] order.
    pub fn heads(&self) -> &[LinearHead] {
        &self.heads
    }

    /// The five margins of one row.
    pub fn margins(&self, normalizer: &Normalizer, x: &Features) -> [f64; 5] {
        let z = normalizer.normalise(x);
        std::array::from_fn(|h| self.heads[h].margin(&z))
    }
}
