//! What to do when the endpoint stays down: score with the embedded model, or
//! hold the customers until it is back. Never a made-up score.
//!
//! [`WithFallback`] wraps a primary scorer (the endpoint). When the primary
//! fails with a retryable error (its own retries used up, or its circuit
//! breaker open):
//!
//! * [`OnEndpointDown::Fallback`]: the batch is scored by the fallback (the
//!   embedded model, or the one `--model DIR` loaded); its predictions name
//!   that model and `served_by = embedded-fallback` (`in-process-fallback`
//!   for a `--model DIR` one), so every prediction says which model made it.
//! * [`OnEndpointDown::Hold`]: the error goes back to the scoring stage,
//!   which requeues the rows; they are scored by the endpoint when it
//!   answers again (the breaker lets a probe through every cooldown).
//!
//! A fatal error of the primary (a request the endpoint refuses, an answer
//! that cannot be read) is never hidden by the fallback: it stops the stage.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use pulse_model::{Contributions, EmbeddedModel, ModelError, ModelId, ScoreError, ScoredRows, Scorer};
use pulse_schemas::Features;

/// `served_by` of predictions made by the fallback model, the built-in one.
pub const FALLBACK_SERVED_BY: &str = "embedded-fallback";

/// `served_by` of predictions made by the fallback model when it is one
/// loaded with `--model DIR` (not the built-in one).
pub const IN_PROCESS_FALLBACK_SERVED_BY: &str = "in-process-fallback";

/// The in-process model as the fallback of an endpoint: its predictions say
/// `embedded-fallback` when it is the built-in model, `in-process-fallback`
/// when it was loaded with `--model DIR` (which must not claim to be the
/// built-in one).
pub fn as_fallback(model: EmbeddedModel) -> EmbeddedModel {
    let served_by = if model.id().served_by.as_ref() == pulse_model::EMBEDDED {
        FALLBACK_SERVED_BY
    } else {
        IN_PROCESS_FALLBACK_SERVED_BY
    };
    model.served_by(served_by)
}

/// The policy when the endpoint stays down.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
pub enum OnEndpointDown {
    /// Score with the embedded model meanwhile (predictions say so).
    Fallback,
    /// Keep the customers waiting until the endpoint answers.
    #[default]
    Hold,
}

/// A primary scorer with a policy for when it is down (see the [module docs](self)).
#[derive(Debug, Clone)]
pub struct WithFallback<P, F> {
    primary: P,
    fallback: F,
    policy: OnEndpointDown,
    counts: Arc<FallbackCounts>,
}

#[derive(Debug, Default)]
struct FallbackCounts {
    batches: AtomicU64,
    rows: AtomicU64,
    held_batches: AtomicU64,
}

impl<P: Scorer, F: Scorer> WithFallback<P, F> {
    /// `primary` first; `fallback` when it is down and the policy says so.
    pub fn new(primary: P, fallback: F, policy: OnEndpointDown) -> WithFallback<P, F> {
        WithFallback { primary, fallback, policy, counts: Arc::default() }
    }

    /// The primary scorer.
    pub fn primary(&self) -> &P {
        &self.primary
    }

    /// The policy.
    pub fn policy(&self) -> OnEndpointDown {
        self.policy
    }

    /// Batches and rows scored by the fallback, and batches held, so far.
    pub fn counts(&self) -> (u64, u64, u64) {
        (self.counts.batches.load(Relaxed), self.counts.rows.load(Relaxed), self.counts.held_batches.load(Relaxed))
    }

    async fn score_rows(&self, rows: &[Features]) -> Result<ScoredRows, ScoreError> {
        match self.primary.score(rows).await {
            Err(ScoreError::Retryable(reason)) => match self.policy {
                OnEndpointDown::Fallback => {
                    tracing::warn!(%reason, rows = rows.len(), "endpoint down: scoring with the fallback model");
                    let scored = self.fallback.score(rows).await?;
                    self.counts.batches.fetch_add(1, Relaxed);
                    self.counts.rows.fetch_add(rows.len() as u64, Relaxed);
                    Ok(scored)
                }
                OnEndpointDown::Hold => {
                    self.counts.held_batches.fetch_add(1, Relaxed);
                    Err(ScoreError::Retryable(reason))
                }
            },
            other => other,
        }
    }
}

impl<P: Scorer, F: Scorer> Scorer for WithFallback<P, F> {
    fn model_name(&self) -> &str {
        self.primary.model_name()
    }

    fn model_version(&self) -> &str {
        self.primary.model_version()
    }

    fn score(&self, rows: &[Features]) -> impl std::future::Future<Output = Result<ScoredRows, ScoreError>> + Send {
        self.score_rows(rows)
    }

    /// The endpoint cannot explain; the fallback's local copy can, when it is
    /// the model that answered (same name and version).
    fn attribute_churn_risk(
        &self,
        model: &ModelId,
        row: &Features,
        reference: &Features,
        out: &mut Contributions,
    ) -> Result<bool, ModelError> {
        Ok(self.primary.attribute_churn_risk(model, row, reference, out)?
            || self.fallback.attribute_churn_risk(model, row, reference, out)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pulse_model::ModelId;

    /// A primary that always fails the same way.
    struct Down(ScoreError);

    impl Scorer for Down {
        fn model_name(&self) -> &str {
            "endpoint-model"
        }
        fn model_version(&self) -> &str {
            "9"
        }
        fn score(&self, _: &[Features]) -> impl std::future::Future<Output = Result<ScoredRows, ScoreError>> + Send {
            std::future::ready(Err(self.0.clone()))
        }
    }

    fn embedded() -> EmbeddedModel {
        EmbeddedModel::new(&pulse_model::embedded().unwrap()).unwrap().served_by(FALLBACK_SERVED_BY)
    }

    #[test]
    fn the_fallback_says_whether_it_is_the_built_in_model() {
        let built_in = EmbeddedModel::new(&pulse_model::embedded().unwrap()).unwrap();
        assert_eq!(&*as_fallback(built_in.clone()).id().served_by, FALLBACK_SERVED_BY);
        let from_dir = built_in.served_by(pulse_model::IN_PROCESS);
        assert_eq!(&*as_fallback(from_dir).id().served_by, IN_PROCESS_FALLBACK_SERVED_BY);
    }

    #[tokio::test]
    async fn fallback_scores_with_the_embedded_model_and_says_so() {
        let fallback = embedded();
        let rows = [[0.5; 46], [2.0; 46]];
        let expected = fallback.score_now(&rows).unwrap();
        let scorer = WithFallback::new(
            Down(ScoreError::Retryable("throttled".into())),
            fallback.clone(),
            OnEndpointDown::Fallback,
        );
        let scored = scorer.score(&rows).await.unwrap();
        assert_eq!(scored.scores, expected);
        assert_eq!(scored.model, ModelId::new(fallback.model_name(), fallback.model_version(), "embedded-fallback"));
        assert_eq!(scorer.counts(), (1, 2, 0));
        assert_eq!(scorer.model_name(), "endpoint-model", "reports name the primary");
    }

    #[tokio::test]
    async fn hold_returns_the_failure_for_the_stage_to_requeue() {
        let scorer =
            WithFallback::new(Down(ScoreError::Retryable("circuit open".into())), embedded(), OnEndpointDown::Hold);
        let err = scorer.score(&[[0.0; 46]]).await.unwrap_err();
        assert_eq!(err, ScoreError::Retryable("circuit open".into()));
        assert_eq!(scorer.counts(), (0, 0, 1));
    }

    #[tokio::test]
    async fn fatal_errors_are_never_hidden_by_the_fallback() {
        let scorer = WithFallback::new(
            Down(ScoreError::Fatal("HTTP 400: bad rows".into())),
            embedded(),
            OnEndpointDown::Fallback,
        );
        assert_eq!(scorer.score(&[[0.0; 46]]).await.unwrap_err(), ScoreError::Fatal("HTTP 400: bad rows".into()));
        assert_eq!(scorer.counts(), (0, 0, 0));
    }
}
