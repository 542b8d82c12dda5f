//! The scoring interface and the in-process model.

use std::future::Future;

use candle_core::Device;
use pulse_schemas::prediction::Scores;
use pulse_schemas::Features;

use crate::artifact::{ModelArtifact, Normalizer};
use crate::net::{activate, FusedNet};
use crate::ModelError;

/// Why a batch could not be scored, and whether trying again may help.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScoreError {
    /// Throttling, timeouts, a model not ready, a 5xx: worth retrying later.
    #[error("scoring failed, retryable: {0}")]
    Retryable(String),
    /// The request itself is wrong (bad rows, a model that cannot load): retrying won't help.
    #[error("scoring failed: {0}")]
    Fatal(String),
}

impl ScoreError {
    /// Whether trying again may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, ScoreError::Retryable(_))
    }
}

/// A model backend: rows of features in, the five outputs out, one per row in
/// order. Implementations: [`EmbeddedModel`] here; the SageMaker endpoint in
/// the pipeline.
pub trait Scorer: Send + Sync + 'static {
    /// The model's name, as predictions report it.
    fn model_name(&self) -> &str;
    /// The model's version, as predictions report it.
    fn model_version(&self) -> &str;
    /// Scores a batch.
    fn score(&self, rows: &[Features]) -> impl Future<Output = Result<Vec<Scores>, ScoreError>> + Send;
}

/// The model running in this process.
#[derive(Debug, Clone)]
pub struct EmbeddedModel {
    name: String,
    version: String,
    normalizer: Normalizer,
    net: FusedNet,
}

impl EmbeddedModel {
    /// Prepares an artifact for inference.
    pub fn new(artifact: &ModelArtifact) -> Result<EmbeddedModel, ModelError> {
        Ok(EmbeddedModel {
            name: artifact.meta.name.clone(),
            version: artifact.meta.version.clone(),
            normalizer: artifact.meta.normalizer.clone(),
            net: artifact.net.fused()?,
        })
    }

    /// Scores rows on the calling thread.
    pub fn score_now(&self, rows: &[Features]) -> Result<Vec<Scores>, ModelError> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let x = self.normalizer.tensor(rows, &Device::Cpu)?;
        let raw = self.net.forward(&x)?.flatten_all()?.to_vec1::<f32>()?;
        Ok(raw.chunks_exact(5).map(|r| activate([r[0], r[1], r[2], r[3], r[4]])).collect())
    }
}

impl Scorer for EmbeddedModel {
    fn model_name(&self) -> &str {
        &self.name
    }

    fn model_version(&self) -> &str {
        &self.version
    }

    fn score(&self, rows: &[Features]) -> impl Future<Output = Result<Vec<Scores>, ScoreError>> + Send {
        let result = self.score_now(rows).map_err(|e| ScoreError::Fatal(e.to_string()));
        std::future::ready(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_model_loads_and_scores_within_ranges() {
        let model = EmbeddedModel::new(&crate::embedded().unwrap()).unwrap();
        let idle = [0.0; pulse_schemas::FEATURE_COUNT];
        let mut busy = [0.0; pulse_schemas::FEATURE_COUNT];
        busy[0] = 4.0; // sessions_7d
        busy[1] = 8.0;
        busy[2] = 16.0;
        let scores = model.score_now(&[idle, busy]).unwrap();
        assert_eq!(scores.len(), 2);
        for s in &scores {
            assert!((0.0..=1.0).contains(&s.churn_risk_14d) && (0.0..=100.0).contains(&s.health_score));
        }
        assert_eq!(model.score_now(&[]).unwrap(), vec![]);
    }

    #[test]
    fn a_model_for_other_features_is_refused() {
        let mut meta: serde_json::Value = serde_json::from_slice(include_bytes!("../artifact/model.json")).unwrap();
        meta["features_schema"] = "features-v2".into();
        let err =
            ModelArtifact::from_bytes(meta.to_string().as_bytes(), include_bytes!("../artifact/model.safetensors"))
                .unwrap_err();
        assert!(err.to_string().contains("features-v2"), "{err}");
    }
}
