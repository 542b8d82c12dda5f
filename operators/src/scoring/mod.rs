//! The scoring side: from feature vectors to predictions, fleet metrics and alerts.
//!
//! Like the rest of this crate, everything here is pure, synchronous and
//! deterministic: time comes in as `now_ms` arguments, nothing reads a clock,
//! nothing does I/O. A thin async task in the `pulse` crate drives these
//! pieces around a model:
//!
//! 1. [`ScoreQueue`] sits between the engine and the model. It drops vectors
//!    whose features are bit-identical to what was last scored for the
//!    customer, keeps at most one waiting vector per customer (the newest),
//!    and hands out micro-batches by size or by linger time.
//! 2. The model scores a batch; the driver calls [`ScoreQueue::mark_scored`]
//!    on success or [`ScoreQueue::requeue`] on failure (a partial failure does
//!    both, each on its part). Nothing is ever dropped silently: every vector
//!    is accounted for in [`QueueStats`].
//! 3. [`Fleet`] keeps the §6 fleet metrics over the latest prediction of every
//!    customer, incrementally and exactly; [`Alarms`] turns a snapshot into
//!    the alarms of the current system.
//! 4. [`Alerts`] raises one alert when a customer's `churn_risk_14d` rises
//!    above 0.7 (its first prediction is a baseline, not a rise), and not
//!    again until it has fallen below a re-arm level.
//! 5. [`Monitor`] watches the model itself: when a prediction's 14- and
//!    30-day horizons close, it reads the realised labels from the
//!    customer's later vectors and keeps rolling realised AUC, Brier score,
//!    calibration and label rates (62 bytes per customer).
//!
//! ```
//! use pulse_operators::scoring::{Alerts, AlertPolicy, BatchPolicy, Fleet, Offer, ScoreQueue};
//! use pulse_schemas::prediction::{Prediction, Scores};
//! use pulse_schemas::{CustomerId, FeatureVector, Segment, Source, Trigger, SCHEMA};
//!
//! let policy = BatchPolicy { max_rows: 2, ..BatchPolicy::default() };
//! let mut queue = ScoreQueue::new(policy).unwrap();
//! let vector = |id: &str, as_of: i64, x: f64| FeatureVector {
//!     customer_id: CustomerId::new(id),
//!     as_of,
//!     trigger: Trigger::Event,
//!     source: Source::default(),
//!     schema: SCHEMA.into(),
//!     features: [x; 46],
//!     emission: None,
//! };
//! assert_eq!(queue.offer(vector("a", 1, 0.0), 0), Offer::Queued);
//! assert_eq!(queue.offer(vector("a", 2, 1.0), 5), Offer::Coalesced); // a's place in line, newest vector
//! assert_eq!(queue.take_ready(10), None); // one row waiting for 10 ms: linger not reached
//! assert_eq!(queue.next_deadline(), Some(250));
//! assert_eq!(queue.offer(vector("b", 3, 0.0), 20), Offer::Queued);
//! let batch = queue.take_ready(20).unwrap(); // max_rows waiting
//! assert_eq!(batch.iter().map(|v| v.as_of).collect::<Vec<_>>(), [2, 3]);
//!
//! // ... the model scores the batch ...
//! queue.mark_scored(&batch);
//! assert_eq!(queue.offer(vector("a", 4, 1.0), 30), Offer::Unchanged); // same features as scored
//!
//! let mut fleet = Fleet::default();
//! let mut alerts = Alerts::new(AlertPolicy::default()).unwrap();
//! let scores = Scores {
//!     first_session_success: 0.9,
//!     session_velocity: 0.5,
//!     churn_risk_14d: 0.8,
//!     churn_risk_30d: 0.9,
//!     health_score: 30.0,
//! };
//! let prediction = Prediction {
//!     customer_id: CustomerId::new("a"),
//!     as_of: 2,
//!     scores,
//!     segment: Segment::of(0.8, 0.9, 30.0),
//!     model: "m".into(),
//!     model_version: "1".into(),
//!     served_by: "embedded".into(),
//!     features_schema: SCHEMA.into(),
//!     reasons: Default::default(),
//!     emission: None,
//!     new_customer: false,
//!     no_session: false,
//!     met_in_burn_in: false,
//! };
//! fleet.update(&prediction);
//! assert_eq!(fleet.snapshot().high_churn_risk_count, 1);
//! let earlier = Prediction { as_of: 1, scores: Scores { churn_risk_14d: 0.3, ..scores }, ..prediction.clone() };
//! assert!(alerts.observe(&earlier).is_none()); // a customer's first prediction: its baseline
//! assert!(alerts.observe(&prediction).is_some()); // rose above 0.7
//! assert!(alerts.observe(&prediction).is_none()); // once
//! ```

pub mod alerts;
mod error;
pub mod fleet;
pub mod monitor;
pub mod queue;

pub use alerts::{Alert, AlertPolicy, AlertState, Alerts};
pub use error::PolicyError;
pub use fleet::{Alarm, Alarms, Fleet, FleetEntry, FleetMetric, FleetMetrics, Metric, Update, NAMESPACE};
pub use monitor::{
    Head, HeadQuality, ModelQuality, Monitor, MonitorConfig, MonitorIx, QualityMetric, COLD_START_BURN_IN_DAYS,
};
pub use queue::{BatchPolicy, Gate, Offer, QueueStats, ScoreQueue};
