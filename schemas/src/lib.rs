//! The `features-v1` contract of pulse, as types.
//!
//! This crate is the single place where the shapes of `docs/FEATURES.md`
//! live in Rust:
//!
//! * [`event`]: the event table (§1) — [`Event`], [`EventKind`] and the newtypes
//!   [`CustomerId`], [`EventTime`].
//! * [`record`]: a decoded DynamoDB Streams record (§2) — [`StreamChange`] says what
//!   the record asks the engine to do, [`Invalid`] why a record is a dead letter.
//! * [`capture`]: the fast, borrowing decoder for capture files (one record per
//!   JSON line), and [`lambda`]: the decoder for `aws_lambda_events`' typed
//!   records. Both feed the same validation ([`validate`]), so the two can never
//!   disagree on what is valid.
//! * [`features`]: the 46 named features in contract order and the vector that
//!   carries them (§4, §5).
//! * [`prediction`]: the model's five outputs, the segment rules and the prediction
//!   item (§5, §6).
//!
//! Decoding never panics: every input either decodes or yields an [`Invalid`]
//! with a reason precise enough to fix the producer.
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

pub mod attr;
pub mod capture;
pub mod event;
pub mod features;
pub mod lambda;
pub mod order;
pub mod prediction;
pub mod reasons;
pub mod record;
pub mod validate;

pub use event::{CustomerId, Event, EventKind, EventTime, Party, PaymentStatus, Sentiment, DAY_MS};
pub use features::{FeatureVector, Features, Source, Trigger, FEATURE_COUNT, FEATURE_NAMES, SCHEMA};
pub use order::EmissionKey;
pub use prediction::{Prediction, Segment};
pub use reasons::{Baseline, Basis, NoData, Reason, Reasons};
pub use record::{Invalid, InvalidReason, Side, StreamChange, StreamRecord};

/// The proleptic Gregorian (year, month 1–12, day 1–31) of a day counted
/// from the Unix epoch (Howard Hinnant's `civil_from_days`): the dates of
/// alerts and of synthetic records, without a calendar crate.
pub fn civil_from_days(epoch_day: i64) -> (i64, u32, u32) {
    let z = epoch_day + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month as u32, day as u32)
}
