//! The model's outputs, the segment rules and the fleet thresholds (§5, §6).

use serde::{Deserialize, Serialize};

use crate::event::CustomerId;
use crate::order::EmissionKey;
use crate::reasons::Reasons;

/// A customer's segment (§6), derived from a prediction.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Segment {
    /// Doing great.
    Thriving,
    /// Fine.
    Healthy,
    /// Needs attention.
    AtRisk,
    /// Likely gone.
    Churned,
}

impl Segment {
    /// The rules the current system uses, first match wins.
    pub fn of(churn_risk_14d: f64, churn_risk_30d: f64, health_score: f64) -> Segment {
        if churn_risk_14d > 0.7 || health_score < 40.0 {
            Segment::Churned
        } else if churn_risk_14d > 0.4 || churn_risk_30d > 0.6 || health_score < 60.0 {
            Segment::AtRisk
        } else if churn_risk_14d < 0.2 && health_score > 80.0 {
            Segment::Thriving
        } else {
            Segment::Healthy
        }
    }

    /// The name used in files and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Segment::Thriving => "thriving",
            Segment::Healthy => "healthy",
            Segment::AtRisk => "at_risk",
            Segment::Churned => "churned",
        }
    }
}

/// The five outputs of the model for one vector.
#[derive(Clone, Copy, PartialEq, Debug, Serialize, Deserialize)]
pub struct Scores {
    /// Probability (0–1).
    pub first_session_success: f64,
    /// Sessions per week (>= 0).
    pub session_velocity: f64,
    /// Probability (0–1).
    pub churn_risk_14d: f64,
    /// Probability (0–1).
    pub churn_risk_30d: f64,
    /// 0–100.
    pub health_score: f64,
}

/// A churn risk above this is "high" (alerts, `HighChurnRiskCount`).
pub const HIGH_CHURN_RISK: f64 = 0.7;

/// A scored customer.
///
/// Two predictions are equal when what is written of them is (`emission`,
/// not written, is left out).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Prediction {
    /// The customer.
    pub customer_id: CustomerId,
    /// `T` of the vector scored.
    pub as_of: i64,
    /// The outputs.
    #[serde(flatten)]
    pub scores: Scores,
    /// Segment of the outputs.
    pub segment: Segment,
    /// The model's name (shared, not copied, between predictions).
    pub model: std::sync::Arc<str>,
    /// The model's version.
    pub model_version: std::sync::Arc<str>,
    /// Where the model ran: `embedded` (in the pipeline's process),
    /// `sagemaker:<endpoint>`, or `embedded-fallback` (in process because the
    /// endpoint was down). Empty when unknown (files written before it existed).
    #[serde(default)]
    pub served_by: std::sync::Arc<str>,
    /// The features' schema.
    pub features_schema: std::borrow::Cow<'static, str>,
    /// The features that raised `churn_risk_14d` the most since the
    /// customer's vector about 14 days earlier (see [`crate::reasons`]);
    /// not written when empty.
    #[serde(default, skip_serializing_if = "Reasons::is_empty")]
    pub reasons: Reasons,
    /// The place in the customer's stream of the vector scored (§6: a
    /// prediction never replaces one of a later emission; see
    /// [`crate::order`]). Not written to prediction files: `None` for one
    /// read back (then [`Prediction::emission`] ranks it by `as_of`).
    #[serde(skip)]
    pub emission: Option<EmissionKey>,
}

impl PartialEq for Prediction {
    fn eq(&self, other: &Self) -> bool {
        let Prediction {
            customer_id,
            as_of,
            scores,
            segment,
            model,
            model_version,
            served_by,
            features_schema,
            reasons,
            emission: _,
        } = self;
        *customer_id == other.customer_id
            && *as_of == other.as_of
            && *scores == other.scores
            && *segment == other.segment
            && *model == other.model
            && *model_version == other.model_version
            && *served_by == other.served_by
            && *features_schema == other.features_schema
            && *reasons == other.reasons
    }
}

impl Prediction {
    /// The place of the vector scored in the customer's stream: the key it
    /// carries, else [`EmissionKey::at`] its `as_of`.
    pub fn emission(&self) -> EmissionKey {
        self.emission.clone().unwrap_or_else(|| EmissionKey::at(self.as_of))
    }
}
