//! The scoring interface and the in-process model.

use std::future::Future;
use std::sync::Arc;

use candle_core::Device;
use pulse_schemas::prediction::Scores;
use pulse_schemas::{Features, FEATURE_COUNT};

use crate::artifact::{
    head_value, scores_from_margins, set_head_value, Model, ModelArtifact, Normalizer, BINARY_HEADS,
};
use crate::calibrate::Calibrator;
use crate::explain::{Attribution, Method, TreeExplainer};
use crate::gbt::GbtModel;
use crate::linear::LinearModel;
use crate::net::{activate, FusedNet, HEADS};
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

/// Which model answered a batch, and through what: every prediction carries
/// it, so a prediction made by a fallback model says so.
///
/// The strings are shared (`Arc`), not copied, between the predictions of a
/// batch.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ModelId {
    /// The model's name (`pulse-multitask`).
    pub name: Arc<str>,
    /// The model's version.
    pub version: Arc<str>,
    /// Where it ran: `embedded` (the model built into pulse, in this
    /// process), `in-process` (a model loaded with `--model DIR`, in this
    /// process), `sagemaker:<endpoint>`, `embedded-fallback` or
    /// `in-process-fallback` (in this process because the endpoint was down).
    pub served_by: Arc<str>,
}

impl ModelId {
    /// An identity from its three parts.
    pub fn new(name: impl Into<Arc<str>>, version: impl Into<Arc<str>>, served_by: impl Into<Arc<str>>) -> ModelId {
        ModelId { name: name.into(), version: version.into(), served_by: served_by.into() }
    }
}

/// What a scorer returns for a batch: one [`Scores`] per row in order, and the
/// model that made them.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredRows {
    /// One per row, in the order of the rows.
    pub scores: Vec<Scores>,
    /// The model that answered.
    pub model: ModelId,
}

/// A model backend: rows of features in, the five outputs out, one per row in
/// order. Implementations: [`EmbeddedModel`] here; the SageMaker endpoint
/// (with its fallback) in the pipeline.
pub trait Scorer: Send + Sync + 'static {
    /// The name of the model this scorer normally answers with (reports, logs).
    fn model_name(&self) -> &str;
    /// The version of the model this scorer normally answers with.
    fn model_version(&self) -> &str;
    /// Scores a batch. The answer names the model that made it, which may
    /// differ from batch to batch (a fallback, an endpoint updated in place).
    fn score(&self, rows: &[Features]) -> impl Future<Output = Result<ScoredRows, ScoreError>> + Send;

    /// Attributes the move of `churn_risk_14d`'s margin from `reference` to
    /// `row` among the features, into `out` (they sum to the margin's change;
    /// see `pulse_model::explain`), for a prediction `model` made. `false` when
    /// this scorer cannot explain that model (a remote endpoint with no local
    /// copy of it): the prediction then carries no reasons.
    fn attribute_churn_risk(
        &self,
        model: &ModelId,
        row: &Features,
        reference: &Features,
        out: &mut Contributions,
    ) -> Result<bool, ModelError> {
        let _ = (model, row, reference, out);
        Ok(false)
    }
}

/// One contribution per feature, in contract order.
pub type Contributions = [f64; pulse_schemas::FEATURE_COUNT];

/// `served_by` of the model built into pulse ([`crate::embedded`]), running
/// in this process: what [`EmbeddedModel::new`] reports.
pub const EMBEDDED: &str = "embedded";

/// `served_by` of a model loaded from a directory (`--model DIR`), running
/// in this process: not `embedded`, which would claim it is the built-in
/// model (the prediction's `model` and `model_version` say which it is).
pub const IN_PROCESS: &str = "in-process";

/// The model running in this process, of any kind.
#[derive(Debug, Clone)]
pub struct EmbeddedModel {
    id: ModelId,
    body: Body,
    /// Per head in [`HEADS`] order (probability heads only).
    calibration: [Option<Calibrator>; 5],
}

#[derive(Debug, Clone)]
enum Body {
    Network { normalizer: Normalizer, net: FusedNet },
    Gbt { model: GbtModel, explain: Vec<TreeExplainer> },
    Logistic { normalizer: Normalizer, model: LinearModel },
}

impl EmbeddedModel {
    /// Prepares an artifact for inference.
    pub fn new(artifact: &ModelArtifact) -> Result<EmbeddedModel, ModelError> {
        let meta = &artifact.meta;
        let normalizer = || {
            meta.normalizer
                .clone()
                .ok_or_else(|| ModelError::Artifact(format!("a {} model needs a normalizer", artifact.kind().as_str())))
        };
        let body = match &artifact.model {
            Model::Network(net) => Body::Network { normalizer: normalizer()?, net: net.fused()? },
            Model::Gbt(model) => Body::Gbt {
                model: model.clone(),
                explain: model
                    .heads()
                    .iter()
                    .map(TreeExplainer::new)
                    .collect::<Result<_, _>>()
                    .map_err(ModelError::Artifact)?,
            },
            Model::Logistic(model) => Body::Logistic { normalizer: normalizer()?, model: model.clone() },
        };
        let calibration = std::array::from_fn(|h| meta.calibration.get(HEADS[h]).cloned());
        Ok(EmbeddedModel { id: ModelId::new(meta.name.as_str(), meta.version.as_str(), EMBEDDED), body, calibration })
    }

    /// The model's identity (served by `embedded` unless set by [`EmbeddedModel::served_by`]).
    pub fn id(&self) -> &ModelId {
        &self.id
    }

    /// The same model, reporting another `served_by` (e.g. `embedded-fallback`).
    pub fn served_by(mut self, served_by: &str) -> EmbeddedModel {
        self.id.served_by = served_by.into();
        self
    }

    /// Scores rows on the calling thread: the kind's raw outputs, then each
    /// calibrated head's calibration.
    pub fn score_now(&self, rows: &[Features]) -> Result<Vec<Scores>, ModelError> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let mut scores: Vec<Scores> = match &self.body {
            Body::Network { normalizer, net } => {
                let x = normalizer.tensor(rows, &Device::Cpu)?;
                let raw = net.forward(&x)?.flatten_all()?.to_vec1::<f32>()?;
                raw.chunks_exact(5).map(|r| activate([r[0], r[1], r[2], r[3], r[4]])).collect()
            }
            Body::Gbt { model, .. } => {
                let mut margins = Vec::with_capacity(rows.len());
                model.margins_into(rows, &mut margins);
                margins.into_iter().map(scores_from_margins).collect()
            }
            Body::Logistic { normalizer, model } => {
                rows.iter().map(|r| scores_from_margins(model.margins(normalizer, r))).collect()
            }
        };
        for h in BINARY_HEADS {
            if let Some(c) = &self.calibration[h] {
                for s in &mut scores {
                    set_head_value(s, h, c.apply(head_value(s, h)));
                }
            }
        }
        Ok(scores)
    }

    /// Overwrites `phi` with each feature's contribution to the change of
    /// head `head`'s margin (index in [`HEADS`]; churn_risk_14d is 2) from
    /// `reference` to `x`, so that `Σ phi = margin_x − margin_ref` (see
    /// [`crate::explain`] for the attribution of each kind). The margin is
    /// the head's raw score before its link and calibration.
    pub fn attribute(
        &self,
        head: usize,
        x: &Features,
        reference: &Features,
        phi: &mut [f64; FEATURE_COUNT],
    ) -> Result<Attribution, ModelError> {
        if head >= HEADS.len() {
            return Err(ModelError::Config(format!("head {head} does not exist: the heads are 0–4, {HEADS:?}")));
        }
        let (margin_x, margin_ref, method) = match &self.body {
            Body::Gbt { explain, .. } => {
                let (mx, mr) = explain[head].attribute(x, reference, phi);
                (mx, mr, Method::Interventional)
            }
            Body::Logistic { normalizer, model } => {
                let (zx, zr) = (normalizer.normalise(x), normalizer.normalise(reference));
                let h = &model.heads()[head];
                for (((p, w), zx), zr) in phi.iter_mut().zip(&h.weights).zip(zx).zip(zr) {
                    *p = w * (f64::from(zx) - f64::from(zr));
                }
                (h.margin(&zx), h.margin(&zr), Method::Linear)
            }
            Body::Network { normalizer, net } => {
                let (mx, mr) =
                    net.integrated_gradients(head, &normalizer.normalise(x), &normalizer.normalise(reference), phi)?;
                (mx, mr, Method::IntegratedGradients { steps: crate::explain::IG_STEPS })
            }
        };
        let residual = (margin_x - margin_ref) - phi.iter().sum::<f64>();
        Ok(Attribution { margin_x, margin_ref, residual, method })
    }
}

impl Scorer for EmbeddedModel {
    fn model_name(&self) -> &str {
        &self.id.name
    }

    fn model_version(&self) -> &str {
        &self.id.version
    }

    fn score(&self, rows: &[Features]) -> impl Future<Output = Result<ScoredRows, ScoreError>> + Send {
        let result = self
            .score_now(rows)
            .map(|scores| ScoredRows { scores, model: self.id.clone() })
            .map_err(|e| ScoreError::Fatal(e.to_string()));
        std::future::ready(result)
    }

    /// This model's own predictions only (same name and version, whoever
    /// served them).
    fn attribute_churn_risk(
        &self,
        model: &ModelId,
        row: &Features,
        reference: &Features,
        out: &mut Contributions,
    ) -> Result<bool, ModelError> {
        if model.name != self.id.name || model.version != self.id.version {
            return Ok(false);
        }
        self.attribute(CHURN_RISK_14D, row, reference, out)?;
        Ok(true)
    }
}

/// `churn_risk_14d` in [`HEADS`]: the head reasons explain.
pub const CHURN_RISK_14D: usize = 2;

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
        let mut meta: serde_json::Value =
            serde_json::from_slice(include_bytes!("../tests/fixtures/network/model.json")).unwrap();
        meta["features_schema"] = "features-v2".into();
        let err = ModelArtifact::from_bytes(
            meta.to_string().as_bytes(),
            include_bytes!("../tests/fixtures/network/model.safetensors"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("features-v2"), "{err}");
    }
}
