//! The one error of the scoring side: a setting out of range.

use std::fmt;

/// A policy or threshold that cannot work, found before anything runs.
///
/// Not retryable: the configuration has to change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyError {
    /// The field, as spelled in the configuration.
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

impl PolicyError {
    pub(super) fn new(field: &'static str, reason: impl Into<String>) -> PolicyError {
        PolicyError { field, reason: reason.into() }
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid `{}`: {}", self.field, self.reason)
    }
}

impl std::error::Error for PolicyError {}
