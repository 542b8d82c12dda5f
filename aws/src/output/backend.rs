//! The model a live sink scores with: the embedded model, or the SageMaker
//! endpoint with its policy for when it is down. One type, so the sink and
//! `pulse run` take either without generics.

use pulse_model::{Contributions, EmbeddedModel, ModelError, ModelId, ScoreError, ScoredRows, Scorer};
use pulse_schemas::Features;

use super::fallback::WithFallback;
use super::sagemaker::SageMakerScorer;

/// The model behind a [`ScoringSink`](super::sink::ScoringSink).
#[derive(Debug, Clone)]
pub enum ModelBackend {
    /// The model compiled into pulse (or loaded from a directory), in process.
    Embedded(EmbeddedModel),
    /// A SageMaker endpoint, falling back to the embedded model or holding
    /// the customers when it is down.
    Endpoint(WithFallback<SageMakerScorer, EmbeddedModel>),
}

/// The backend's own counts, cumulative.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct BackendCounts {
    /// Endpoint attempts retried.
    pub retries: u64,
    /// Rows scored by the fallback model.
    pub fallback_rows: u64,
    /// Batches held because the endpoint was down.
    pub held_batches: u64,
    /// InvokeEndpoint calls answered.
    pub requests: u64,
    /// Times the endpoint's circuit breaker opened.
    pub breaker_opened: u64,
    /// Calls refused at once while it was open.
    pub breaker_rejections: u64,
}

impl ModelBackend {
    /// The backend's counts so far.
    pub fn counts(&self) -> BackendCounts {
        match self {
            ModelBackend::Embedded(_) => BackendCounts::default(),
            ModelBackend::Endpoint(e) => {
                let stats = e.primary().stats();
                let (_, fallback_rows, held_batches) = e.counts();
                BackendCounts {
                    retries: stats.retries,
                    fallback_rows,
                    held_batches,
                    requests: stats.requests,
                    breaker_opened: stats.breaker_opened,
                    breaker_rejections: stats.breaker_rejections,
                }
            }
        }
    }

    async fn score_rows(&self, rows: &[Features]) -> Result<ScoredRows, ScoreError> {
        match self {
            ModelBackend::Embedded(m) => m.score(rows).await,
            ModelBackend::Endpoint(e) => e.score(rows).await,
        }
    }
}

impl Scorer for ModelBackend {
    fn model_name(&self) -> &str {
        match self {
            ModelBackend::Embedded(m) => m.model_name(),
            ModelBackend::Endpoint(e) => e.model_name(),
        }
    }

    fn model_version(&self) -> &str {
        match self {
            ModelBackend::Embedded(m) => m.model_version(),
            ModelBackend::Endpoint(e) => e.model_version(),
        }
    }

    fn score(&self, rows: &[Features]) -> impl std::future::Future<Output = Result<ScoredRows, ScoreError>> + Send {
        self.score_rows(rows)
    }

    fn attribute_churn_risk(
        &self,
        model: &ModelId,
        row: &Features,
        reference: &Features,
        out: &mut Contributions,
    ) -> Result<bool, ModelError> {
        match self {
            ModelBackend::Embedded(m) => m.attribute_churn_risk(model, row, reference, out),
            ModelBackend::Endpoint(e) => e.attribute_churn_risk(model, row, reference, out),
        }
    }
}
