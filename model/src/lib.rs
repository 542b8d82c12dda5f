//! pulse's model: a multi-task network over the 46 features of
//! `features-v1`, trained on vectors made by pulse's own engine, and run in
//! process.
//!
//! * [`net`]: the network — inputs normalised, a shared 128-64-32 trunk, five
//!   16-unit heads (first-session success, session velocity, churn 14d, churn
//!   30d, health) — written on `candle`.
//! * [`artifact`]: the small file pair a trained model is (`model.json` with
//!   version, schema and normalisation; `model.safetensors` with weights), and
//!   the embedded default model compiled into pulse.
//! * [`train`]: seeded training with weighted BCE/MSE losses and early stopping.
//! * [`metrics`]: AUC, accuracy, MAE for the evaluation report.
//! * [`scorer`]: the [`Scorer`] trait every model backend implements, and
//!   [`EmbeddedModel`], the in-process one.
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

pub mod artifact;
pub mod metrics;
pub mod net;
pub mod scorer;
pub mod train;

pub use artifact::{embedded, ModelArtifact, ModelMeta};
pub use scorer::{EmbeddedModel, ModelId, ScoreError, ScoredRows, Scorer, EMBEDDED};
pub use train::{Dataset, Targets, TrainConfig};

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A tensor operation failed (shapes, missing weights).
    #[error("model computation failed: {0}")]
    Tensor(#[from] candle_core::Error),
    /// The artifact's metadata does not parse or does not fit.
    #[error("bad model artifact: {0}")]
    Artifact(String),
    /// The model was trained on other features than pulse computes.
    #[error("the model expects features schema {found:?} but pulse computes {expected:?}: retrain the model on this pulse (see README, 'Training')")]
    SchemaMismatch {
        /// What pulse computes.
        expected: String,
        /// What the model was trained on.
        found: String,
    },
    /// Reading or writing files.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}
