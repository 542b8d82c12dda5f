//! The live outputs of scoring: the SageMaker endpoint as a scorer, and the
//! sink that stores and publishes what it scores.
//!
//! * [`sagemaker`]: [`SageMakerScorer`](sagemaker::SageMakerScorer), InvokeEndpoint
//!   with many rows a request, both answer shapes, timeouts, retries, a
//!   circuit breaker, bounded concurrency.
//! * [`fallback`]: when the endpoint stays down, the embedded model or hold.
//! * [`backend`]: the embedded model or the endpoint, as one type.
//! * [`predictions`]: conditional prediction writes to DynamoDB with the alert state.
//! * [`alerts`]: alerts to SNS.
//! * [`dead_letters`]: dead letters to SQS and a file.
//! * [`metrics`]: fleet and health metrics to CloudWatch or as EMF lines.
//! * [`sink`]: [`ScoringSink`](sink::ScoringSink), the [`Sink`](pulse_runtime::sink::Sink) tying them together.
//! * [`args`]: [`OutputArgs`](args::OutputArgs), the flags, and `build`.
//! * [`crate::retry`], `batch`: backoff, circuit breaker, error classes, batch calls.

pub mod alerts;
pub mod args;
pub mod backend;
mod batch;
pub mod dead_letters;
pub mod fallback;
pub mod metrics;
pub mod predictions;
pub mod sagemaker;
pub mod sink;
