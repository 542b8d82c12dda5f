//! The model's outputs, the segment rules and the fleet thresholds (§5, §6).

use serde::{Deserialize, Serialize};

use crate::event::CustomerId;
use crate::features::{json_f64, json_str};
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
    /// Where the model ran: `embedded` (the model built into pulse, in the
    /// pipeline's process), `in-process` (a model loaded with `--model DIR`,
    /// in the pipeline's process), `sagemaker:<endpoint>`, or
    /// `embedded-fallback` / `in-process-fallback` (in process because the
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
    /// Whether the vector scored was a new customer's
    /// ([`crate::features::is_new_customer`]): alerts wait for the first
    /// prediction past it. Not written: false for one read back.
    #[serde(skip)]
    pub new_customer: bool,
    /// Whether the vector scored had no session on record
    /// (`days_since_last_session` at its "none" value): an alert says so,
    /// since reasons (what changed) can never name it. Not written: false
    /// for one read back.
    #[serde(skip)]
    pub no_session: bool,
    /// Whether the customer's history starts in the burn-in of a process
    /// that started without its customers' history
    /// (`ScoringConfig::burn_in_days`): new, or met mid-life, no telling;
    /// its alert does not call it new. Not written: false for one read back.
    #[serde(skip)]
    pub met_in_burn_in: bool,
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
            new_customer: _,
            no_session: _,
            met_in_burn_in: _,
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
    /// Appends the bytes of `serde_json::to_writer(self)` and a newline,
    /// written directly (numbers by `itoa` and `zmij`, as serde_json writes
    /// them): a replay writes one line per prediction, and the derived
    /// impl's flattened map and reasons' wire structs cost more than the
    /// scoring itself. `text` is a buffer for the reasons' sentences, kept
    /// by the caller between predictions.
    pub fn write_json_line(&self, out: &mut Vec<u8>, text: &mut String) {
        let Scores { first_session_success, session_velocity, churn_risk_14d, churn_risk_30d, health_score } =
            self.scores;
        out.extend_from_slice(b"{\"customer_id\":");
        json_str(self.customer_id.as_str(), out);
        out.extend_from_slice(b",\"as_of\":");
        out.extend_from_slice(itoa::Buffer::new().format(self.as_of).as_bytes());
        for (key, x) in [
            (&b",\"first_session_success\":"[..], first_session_success),
            (b",\"session_velocity\":", session_velocity),
            (b",\"churn_risk_14d\":", churn_risk_14d),
            (b",\"churn_risk_30d\":", churn_risk_30d),
            (b",\"health_score\":", health_score),
        ] {
            out.extend_from_slice(key);
            json_f64(x, out);
        }
        out.extend_from_slice(b",\"segment\":\"");
        out.extend_from_slice(self.segment.as_str().as_bytes());
        out.extend_from_slice(b"\",\"model\":");
        json_str(&self.model, out);
        out.extend_from_slice(b",\"model_version\":");
        json_str(&self.model_version, out);
        out.extend_from_slice(b",\"served_by\":");
        json_str(&self.served_by, out);
        out.extend_from_slice(b",\"features_schema\":");
        json_str(&self.features_schema, out);
        if !self.reasons.is_empty() {
            out.extend_from_slice(b",\"reasons\":");
            self.reasons.write_json(out, text);
        }
        out.extend_from_slice(b"}\n");
    }

    /// The place of the vector scored in the customer's stream: the key it
    /// carries, else [`EmissionKey::at`] its `as_of`.
    pub fn emission(&self) -> EmissionKey {
        self.emission.clone().unwrap_or_else(|| EmissionKey::at(self.as_of))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::features::FEATURE_COUNT;
    use crate::reasons::{Baseline, NoData, Reason, TOP_REASONS};

    fn serde_line(p: &Prediction) -> String {
        let mut line = serde_json::to_string(p).unwrap();
        line.push('\n');
        line
    }

    fn direct_line(p: &Prediction) -> String {
        // A non-empty start checks that the writer appends; a stale sentence
        // in the text buffer checks that it is cleared.
        let (mut out, mut text) = (b"kept".to_vec(), "stale".to_string());
        p.write_json_line(&mut out, &mut text);
        assert_eq!(&out[..4], b"kept");
        String::from_utf8(out[4..].to_vec()).unwrap()
    }

    fn prediction(id: &str, as_of: i64, xs: [f64; 5], reasons: Reasons, served_by: &str) -> Prediction {
        let [first_session_success, session_velocity, churn_risk_14d, churn_risk_30d, health_score] = xs;
        Prediction {
            customer_id: CustomerId::new(id),
            as_of,
            scores: Scores { first_session_success, session_velocity, churn_risk_14d, churn_risk_30d, health_score },
            segment: Segment::of(churn_risk_14d, churn_risk_30d, health_score),
            model: "pulse-gbt".into(),
            model_version: "1.2\"3".into(),
            served_by: served_by.into(),
            features_schema: "features-v1".into(),
            reasons,
            emission: None,
            new_customer: false,
            no_session: false,
            met_in_burn_in: false,
        }
    }

    #[test]
    fn edge_values_are_written_as_serde_json_writes_them() {
        let edges =
            [0.0, -0.0, 1.0, 0.1, -2.5, 1e21, 1e-7, 5e-324, f64::MAX, f64::NAN, f64::INFINITY, f64::NEG_INFINITY];
        let was = [2.0, f64::from(123.45f32), 0.1, f64::NAN, f64::INFINITY, -0.0, 365.0, 1e300];
        // Every segment, and the edge value in the scores that pick it.
        let segments = |x: f64| [(0.1, 0.1, 90.0), (0.3, 0.3, 70.0), (0.5, 0.5, 50.0), (0.9, 0.9, 20.0), (x, x, x)];
        let mut seen = std::collections::BTreeSet::new();
        for (k, &x) in edges.iter().enumerate() {
            // Every feature first among one to three reasons, so every
            // sentence template, with values that read as "none", as one
            // (singular) and as fractions. (The sentences are the same code
            // on both sides; `reasons`'s tests pin their wording.)
            let reasons: Vec<Reasons> = (0..FEATURE_COUNT)
                .map(|f| {
                    let r = |i: usize| Reason {
                        feature: ((f + i * 17) % FEATURE_COUNT) as u8,
                        no_data: [NoData::NEITHER, NoData::NOW, NoData::WAS, NoData::BOTH][(f + k) % 4],
                        now: [x, 1.0, 365.0, 0.0, 19.4][(f + i) % 5],
                        was: was[(f + i + k) % was.len()],
                        contribution: edges[(f + i) % edges.len()],
                    };
                    // Every shape of baseline: known or not, a signup record or not.
                    let baseline = Baseline {
                        since: (f % 3 != 0).then_some(x as i64),
                        churn_risk_14d: (f % 2 == 0).then_some(x as f32).filter(|r| r.is_finite()),
                        signup: f % 5 == 0,
                    };
                    Reasons::new(baseline, (0..1 + f % TOP_REASONS).map(r))
                })
                .collect();
            for (i, reasons) in reasons.into_iter().enumerate() {
                let id = ["stu_1", "", "q\"b\\s", "ctl\u{1}\n", "ünï😀"][i % 5];
                let (c14, c30, health) = segments(x)[(i + k) % 5];
                let p = prediction(id, [0, -1, i64::MAX, i64::MIN][i % 4], [x, 0.5, c14, c30, health], reasons, "");
                seen.insert(p.segment);
                assert_eq!(direct_line(&p), serde_line(&p));
            }
        }
        assert_eq!(seen.len(), 4, "every segment written: {seen:?}");
    }

    proptest! {
        #[test]
        fn the_line_is_serde_jsons_byte_for_byte(
            bits in proptest::collection::vec(any::<u64>(), 5),
            plain in proptest::collection::vec(0.0f64..100.0, 5),
            pick in proptest::collection::vec(any::<bool>(), 5),
            reasons in proptest::collection::vec(
                (0..FEATURE_COUNT as u8, -1000.0f64..1000.0, any::<f32>(), any::<u64>(), -5.0f64..5.0),
                0..=TOP_REASONS,
            ),
            since in proptest::option::of(any::<i64>()),
            risk_then in proptest::option::of(any::<f32>()),
            signup in any::<bool>(),
            id in "\\PC{0,12}",
            served_by in "(embedded|sagemaker:[a-z\"]{0,8}|)",
            as_of in any::<i64>(),
        ) {
            let xs: [f64; 5] = std::array::from_fn(|i| if pick[i] { f64::from_bits(bits[i]) } else { plain[i] });
            let reasons = Reasons::new(
                Baseline { since, churn_risk_14d: risk_then, signup },
                reasons.iter().map(|&(feature, now, was32, was_bits, contribution)| Reason {
                    feature,
                    no_data: NoData::new(was_bits % 5 == 0, was_bits % 7 == 0),
                    // Whole numbers (counts) and fractions both.
                    now: if was_bits % 2 == 0 { now.round() } else { now },
                    was: if was_bits % 3 == 0 { f64::from_bits(was_bits) } else { f64::from(was32) },
                    contribution,
                }),
            );
            let p = prediction(&id, as_of, xs, reasons, &served_by);
            prop_assert_eq!(direct_line(&p), serde_line(&p));
        }
    }
}
