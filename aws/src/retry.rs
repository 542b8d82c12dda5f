//! The AWS side of pulse's one retry policy ([`pulse_runtime::retry`]):
//! [`classify`] makes a failed SDK call (any service) a [`Failure`] —
//! throttled, transient or fatal — from its HTTP status, error code or
//! transport error. Every AWS call of pulse (stream reads, hydration
//! Queries, batch reads and writes, predictions, alerts, dead letters,
//! metrics, the endpoint) waits with [`Backoff`] and, for the endpoint,
//! stops calling through a [`CircuitBreaker`]. Callers with codes of their
//! own (a stream's expired iterator or trimmed data) look at [`error_code`]
//! first and fall back to this.

use aws_sdk_sqs::config::http::HttpResponse;
use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};
pub use pulse_runtime::retry::{
    classify_answer, retryable_answer, Backoff, BreakerConfig, BreakerState, CircuitBreaker, Failure,
};

/// The service's error code of a failed call, when a service answered.
pub fn error_code<E, R>(err: &SdkError<E, R>) -> Option<&str>
where
    E: ProvideErrorMetadata,
{
    match err {
        SdkError::ServiceError(e) => e.err().code(),
        _ => None,
    }
}

/// Classifies a failed SDK call (any service: the error type is shared).
pub fn classify<E>(err: &SdkError<E, HttpResponse>) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match err {
        SdkError::ServiceError(e) => {
            let status = e.raw().status().as_u16();
            let code = e.err().code();
            let message = e.err().message().unwrap_or("no message");
            classify_answer(status, code, format!("{} (HTTP {status}): {message}", code.unwrap_or("error")))
        }
        SdkError::TimeoutError(_) => Failure::Retry("timed out".into()),
        SdkError::DispatchFailure(e) if e.is_user() => {
            Failure::Fatal(format!("request could not be sent: {}", error_chain(err)))
        }
        SdkError::DispatchFailure(_) => Failure::Retry(format!("no answer: {}", error_chain(err))),
        SdkError::ResponseError(_) => Failure::Retry(format!("unreadable answer: {}", error_chain(err))),
        SdkError::ConstructionFailure(_) => Failure::Fatal(format!("request not built: {}", error_chain(err))),
        _ => Failure::Retry(error_chain(err)),
    }
}

/// An error and its sources, `: `-separated (the SDK's top-level message
/// alone is often just "dispatch failure").
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}
