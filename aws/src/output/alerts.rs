//! Alerts to an SNS topic: the customer, the five scores and the reason.
//!
//! Which predictions alert is decided by the §6 hysteresis
//! ([`pulse_operators::scoring::Alerts`]), whose state is stored with each
//! prediction item so that a restart does not alert twice (see
//! [`super::sink`]). This module only delivers: `PublishBatch`, 10 alerts a
//! call, failed entries retried.
//!
//! The message is JSON ([`AlertMessage`]); attributes `customer_id`,
//! `segment` and `churn_risk_14d` let subscriptions filter. `alert_id`
//! (`<customer_id>#<as_of>`) is the same for the same alert, so a subscriber
//! can drop the duplicate that a crash between publishing and storing the
//! state may cause; on a FIFO topic (`.fifo`) it is also the
//! `MessageDeduplicationId`, and the customer the `MessageGroupId`.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use anyhow::{Context, Result};
use aws_sdk_sns::types::{MessageAttributeValue, PublishBatchRequestEntry};
use pulse_operators::scoring::Alert;
use pulse_schemas::{Prediction, Reasons, Segment};
use serde::{Deserialize, Serialize};

use super::batch::{group, send_group, EntryFailure};
use crate::retry::{classify, Backoff};

/// The JSON body of an alert.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertMessage {
    /// `<customer_id>#<as_of>`: the same for the same alert.
    pub alert_id: String,
    /// The customer.
    pub customer_id: String,
    /// `as_of` of the prediction that alerted.
    pub as_of: i64,
    /// The five outputs of that prediction.
    pub first_session_success: f64,
    /// See above.
    pub session_velocity: f64,
    /// The risk that alerted (above 0.7).
    pub churn_risk_14d: f64,
    /// See above.
    pub churn_risk_30d: f64,
    /// See above.
    pub health_score: f64,
    /// The segment of the prediction.
    pub segment: Segment,
    /// The risk of the customer's previous prediction, when known.
    pub previous_churn_risk_14d: Option<f64>,
    /// Why, for people.
    pub reason: String,
    /// The features that raised the risk most: value now and about 14 days
    /// earlier, share of the move, a sentence each; with their baseline
    /// (`since`, `churn_risk_14d_then`, `since_signup`). Written when they
    /// were worked out, even if no feature raised the risk.
    #[serde(default, skip_serializing_if = "Reasons::not_explained")]
    pub reasons: Reasons,
    /// The model that made the prediction.
    pub model: String,
    /// Its version.
    pub model_version: String,
    /// Where it ran.
    pub served_by: String,
}

impl AlertMessage {
    /// The message of `alert`, raised by `prediction`.
    pub fn new(alert: &Alert, prediction: &Prediction) -> AlertMessage {
        AlertMessage {
            alert_id: format!("{}#{}", alert.customer_id, alert.as_of),
            customer_id: alert.customer_id.to_string(),
            as_of: alert.as_of,
            first_session_success: prediction.scores.first_session_success,
            session_velocity: prediction.scores.session_velocity,
            churn_risk_14d: alert.churn_risk_14d,
            churn_risk_30d: alert.churn_risk_30d,
            health_score: alert.health_score,
            segment: alert.segment,
            previous_churn_risk_14d: alert.previous_churn_risk_14d,
            reason: alert.reason.clone(),
            reasons: alert.reasons,
            model: prediction.model.to_string(),
            model_version: prediction.model_version.to_string(),
            served_by: prediction.served_by.to_string(),
        }
    }

    /// The subject line: printable ASCII, at most 100 characters (SNS's rules).
    pub fn subject(&self) -> String {
        let customer: String =
            self.customer_id.chars().map(|c| if c.is_ascii_graphic() { c } else { '?' }).take(48).collect();
        format!("pulse: customer {customer} churn risk {:.2}", self.churn_risk_14d)
    }
}

/// Publishes alerts to a topic.
#[derive(Debug, Clone)]
pub struct AlertPublisher {
    client: aws_sdk_sns::Client,
    topic_arn: Arc<str>,
    fifo: bool,
    retry: Backoff,
    published: Arc<AtomicU64>,
    retries: Arc<AtomicU64>,
}

/// SNS's limits on one `PublishBatch`.
const MAX_ENTRIES: usize = 10;
const MAX_BATCH_BYTES: usize = 256 * 1024;

impl AlertPublisher {
    /// Retries a failing call as `retry` says (default [`Backoff::writes`];
    /// `pulse run` waits out an outage of `--write-retry-s` instead).
    pub fn with_retry(mut self, retry: Backoff) -> AlertPublisher {
        self.retry = retry;
        self
    }

    /// A publisher to `topic_arn` (FIFO when it ends in `.fifo`).
    pub fn new(client: aws_sdk_sns::Client, topic_arn: impl Into<Arc<str>>) -> AlertPublisher {
        let topic_arn = topic_arn.into();
        AlertPublisher {
            fifo: topic_arn.ends_with(".fifo"),
            client,
            topic_arn,
            retry: Backoff::writes(),
            published: Arc::default(),
            retries: Arc::default(),
        }
    }

    /// Alerts published and retries made so far.
    pub fn stats(&self) -> (u64, u64) {
        (self.published.load(Relaxed), self.retries.load(Relaxed))
    }

    /// Publishes every message; `Ok` once SNS accepted them all.
    pub async fn publish(&self, messages: &[AlertMessage]) -> Result<()> {
        let mut entries = Vec::with_capacity(messages.len());
        for m in messages {
            let body = serde_json::to_string(m).context("alert message")?;
            let size = body.len() + 200;
            entries.push((self.entry(m, body)?, size));
        }
        let what = format!("publishing alerts to {}", self.topic_arn);
        for batch in group(entries, MAX_ENTRIES, MAX_BATCH_BYTES) {
            let n = batch.len() as u64;
            let retries = send_group(batch, &self.retry, &what, |entries| self.send(entries)).await?;
            self.published.fetch_add(n, Relaxed);
            self.retries.fetch_add(retries, Relaxed);
        }
        Ok(())
    }

    fn entry(&self, m: &AlertMessage, body: String) -> Result<PublishBatchRequestEntry> {
        let attribute = |data_type: &str, value: String| {
            MessageAttributeValue::builder().data_type(data_type).string_value(value).build().context("attribute")
        };
        let mut entry = PublishBatchRequestEntry::builder()
            .id("pending")
            .message(body)
            .subject(m.subject())
            .message_attributes("customer_id", attribute("String", m.customer_id.clone())?)
            .message_attributes("segment", attribute("String", m.segment.as_str().to_owned())?)
            .message_attributes("churn_risk_14d", attribute("Number", format!("{}", m.churn_risk_14d))?);
        if self.fifo {
            entry = entry.message_group_id(&m.customer_id).message_deduplication_id(dedup_id(&m.alert_id));
        }
        entry.build().context("alert entry")
    }

    async fn send(
        &self,
        entries: Vec<(String, PublishBatchRequestEntry)>,
    ) -> Result<Vec<EntryFailure>, crate::retry::Failure> {
        let entries = entries
            .into_iter()
            .map(|(id, mut e)| {
                e.id = id;
                e
            })
            .collect();
        let answer = self
            .client
            .publish_batch()
            .topic_arn(&*self.topic_arn)
            .set_publish_batch_request_entries(Some(entries))
            .send()
            .await
            .map_err(|e| classify(&e))?;
        Ok(answer
            .failed()
            .iter()
            .map(|f| EntryFailure::reported(f.id(), f.sender_fault(), f.code(), f.message()))
            .collect())
    }
}

/// A FIFO deduplication id: at most 128 characters of `[A-Za-z0-9_-#...]`;
/// a longer or unusual id is replaced by its hash.
fn dedup_id(alert_id: &str) -> String {
    let plain = alert_id.len() <= 128 && alert_id.bytes().all(|b| b.is_ascii_graphic());
    if plain {
        alert_id.to_owned()
    } else {
        format!("{:032x}", xxhash_rust::xxh3::xxh3_128(alert_id.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pulse_schemas::prediction::Scores;
    use pulse_schemas::{Baseline, CustomerId, Reason};

    #[test]
    fn the_message_carries_customer_scores_and_reason() {
        let prediction = Prediction {
            customer_id: CustomerId::new("c-7"),
            as_of: 1_700_000_000_000,
            scores: Scores {
                first_session_success: 0.4,
                session_velocity: 0.5,
                churn_risk_14d: 0.83,
                churn_risk_30d: 0.9,
                health_score: 31.0,
            },
            segment: Segment::Churned,
            model: "pulse-multitask".into(),
            model_version: "1".into(),
            served_by: "sagemaker:churn".into(),
            features_schema: "features-v1".into(),
            reasons: Default::default(),
            emission: None,
            new_customer: false,
            no_session: false,
            met_in_burn_in: false,
        };
        let alert = Alert {
            customer_id: prediction.customer_id.clone(),
            as_of: prediction.as_of,
            churn_risk_14d: 0.83,
            churn_risk_30d: 0.9,
            health_score: 31.0,
            segment: Segment::Churned,
            previous_churn_risk_14d: Some(0.5),
            reason: "churn_risk_14d rose from 0.500 to 0.830, above 0.7. Raised most since 2023-11-03 (risk then \
                     0.250): last session 19 days ago (was 2 days ago)"
                .into(),
            reasons: Reasons::new(
                Baseline { since: Some(1_699_000_000_000), churn_risk_14d: Some(0.25), signup: false },
                [Reason { feature: 9, now: 19.0, was: 2.0, contribution: 1.25, ..Reason::default() }],
            ),
        };
        let m = AlertMessage::new(&alert, &prediction);
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(json["alert_id"], "c-7#1700000000000");
        assert_eq!(json["customer_id"], "c-7");
        assert_eq!(json["first_session_success"], 0.4);
        assert_eq!(json["health_score"], 31.0);
        assert_eq!(json["segment"], "churned");
        assert_eq!(json["reason"], alert.reason);
        let top = &json["reasons"]["top"][0];
        assert_eq!(top["feature"], "days_since_last_session");
        assert_eq!((top["now"].as_f64(), top["was"].as_f64()), (Some(19.0), Some(2.0)));
        assert_eq!(top["text"], "last session 19 days ago (was 2 days ago)");
        assert_eq!(json["reasons"]["since"], 1_699_000_000_000i64);
        assert_eq!(json["reasons"]["churn_risk_14d_then"], 0.25);
        assert_eq!(json["served_by"], "sagemaker:churn");
        assert_eq!(m.subject(), "pulse: customer c-7 churn risk 0.83");

        let long = AlertMessage { customer_id: "é".repeat(200), ..m };
        let subject = long.subject();
        assert!(subject.len() <= 100 && subject.is_ascii(), "{subject}");
        assert_eq!(dedup_id("c-7#1"), "c-7#1");
        assert_eq!(dedup_id(&"x".repeat(200)).len(), 32);
    }
}
