//! pulse's models over the 46 features of `features-v1` (five heads each:
//! first-session success, session velocity, churn 14d, churn 30d, health),
//! trained on vectors made by pulse's own engine and run in process. The
//! embedded default is the `gbt` kind (`pulse-gbt`), chosen by `pulse train`
//! over the logistic regression and the network.
//!
//! * [`net`]: the multi-task network — inputs normalised, a shared 128-64-32 trunk, five
//!   16-unit heads (first-session success, session velocity, churn 14d, churn
//!   30d, health) — written on `candle`.
//! * [`gbt`]: gradient-boosted trees in pure Rust (histograms of binned
//!   features, one ensemble per head, early stopping), the `gbt` kind.
//! * [`linear`]: one linear function per head, the `logistic` kind.
//! * [`artifact`]: a trained model on disk (`model.json` with kind, version,
//!   schema, calibration, and the trees or weights of `gbt` and `logistic`;
//!   `model.safetensors` with a network's weights; see `model/ARTIFACT.md`),
//!   and the embedded default model compiled into pulse.
//! * [`train`]: seeded training of the network with weighted BCE/MSE losses
//!   and early stopping; [`train_logistic`] for the `logistic` kind.
//! * [`explain`]: why a head's score moved between a reference vector (the
//!   customer's own, ~14 days earlier) and now: each feature's share of the
//!   margin's change, exact for `gbt` (interventional Shapley values) and
//!   `logistic`, integrated gradients for the network.
//! * [`calibrate`]: Platt scaling and isotonic regression of the probability
//!   heads, stored in the artifact and applied for every kind.
//! * [`metrics`]: AUC, accuracy, MAE, Brier, log loss, calibration error and
//!   reliability, ROC points, and a paired bootstrap over customers.
//! * [`scorer`]: the [`Scorer`] trait every model backend implements, and
//!   [`EmbeddedModel`], the in-process one, for every kind.
//! * [`xgboost`]: [`import_xgboost`] reads five XGBoost JSON models (one per
//!   head) into a `gbt` artifact, reproducing XGBoost's split rule exactly.
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

pub mod artifact;
pub mod calibrate;
pub mod explain;
pub mod gbt;
pub mod linear;
pub mod metrics;
pub mod net;
pub mod scorer;
pub mod train;
pub mod xgboost;

pub use artifact::{embedded, Model, ModelArtifact, ModelKind, ModelMeta};
pub use calibrate::{calibrate, CalibrationMethod, Calibrator};
pub use explain::{top_raising, Attribution, Method};
pub use gbt::{train_gbt, GbtConfig, GbtProgress};
pub use scorer::{
    Contributions, EmbeddedModel, ModelId, ScoreError, ScoredRows, Scorer, CHURN_RISK_14D, EMBEDDED, IN_PROCESS,
};
pub use train::{train_logistic, Dataset, LogisticConfig, Targets, TrainConfig};
pub use xgboost::import_xgboost;

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A tensor operation failed (shapes, missing weights).
    ///
    /// Not a `source` as well: the message already holds the tensor error's,
    /// and a chain printed it twice ("…: invalid header length: invalid header length").
    #[error("model computation failed: {0}")]
    Tensor(candle_core::Error),
    /// The artifact's metadata does not parse or does not fit.
    #[error("bad model artifact: {0}")]
    Artifact(String),
    /// The model was trained on other features than pulse computes.
    #[error("the model expects features schema {found:?} but pulse computes {expected:?}: retrain the model on this pulse (see README, 'The model')")]
    SchemaMismatch {
        /// What pulse computes.
        expected: String,
        /// What the model was trained on.
        found: String,
    },
    /// Training or calibration settings, or their data, are unusable.
    #[error("bad training settings: {0}")]
    Config(String),
    /// A model trained elsewhere cannot be imported (its format, objective,
    /// features or heads).
    #[error("cannot import the model: {0}")]
    Import(String),
    /// Reading or writing files. Transparent: with the error as its
    /// message and as its source, a chain printed "File exists (os error
    /// 17): File exists (os error 17)".
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl From<candle_core::Error> for ModelError {
    fn from(e: candle_core::Error) -> Self {
        ModelError::Tensor(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every message of an error's chain, joined as `anyhow`'s `{:#}` joins them.
    fn chain(e: &dyn std::error::Error) -> String {
        let mut parts = vec![e.to_string()];
        let mut next = e.source();
        while let Some(s) = next {
            parts.push(s.to_string());
            next = s.source();
        }
        parts.join(": ")
    }

    #[test]
    fn a_chain_says_the_underlying_error_once() {
        let io = ModelError::from(std::io::Error::from_raw_os_error(17));
        let text = chain(&io);
        assert_eq!(text.matches("os error 17").count(), 1, "{text}");
        let tensor = ModelError::from(candle_core::Error::Msg("invalid header length".into()));
        let text = chain(&tensor);
        assert_eq!(text, "model computation failed: invalid header length");
    }
}
