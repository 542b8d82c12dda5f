//! Shared helpers of the operators' integration tests: the naive reference
//! model of the contract ([`reference`]), its hostile random streams
//! ([`stream`]), builders of events and stream records, and a feature
//! comparison that names the feature that differs.
//!
//! Each test file that needs them says `mod support;`; not every file uses
//! every helper.
#![allow(dead_code)]

pub mod reference;
pub mod stream;

use std::borrow::Cow;

use pulse_schemas::{
    Event, EventKind, EventTime, Features, Party, PaymentStatus, Sentiment, StreamChange, StreamRecord, DAY_MS,
    FEATURE_COUNT, FEATURE_NAMES,
};

/// A base time on a UTC day boundary (2023-11-14T00:00:00Z), so day arithmetic
/// in the golden tests is easy to follow.
pub const BASE_MS: i64 = 19_675 * DAY_MS;

/// One hour in milliseconds.
pub const HOUR_MS: i64 = 3_600_000;

/// An event of `customer` with id `id` at `ts` (ms).
pub fn ev(customer: &str, id: &str, ts: i64, kind: EventKind<'static>) -> Event<'static> {
    Event {
        customer_id: Cow::Owned(customer.to_string()),
        event_id: Cow::Owned(id.to_string()),
        ts: EventTime(ts),
        kind,
    }
}

/// `session_completed` with `tutor_id` and `duration_min`.
pub fn session(tutor: &str, minutes: f64) -> EventKind<'static> {
    EventKind::SessionCompleted { tutor_id: Cow::Owned(tutor.to_string()), duration_min: minutes }
}

/// `session_cancelled` by `by`.
pub fn cancelled(tutor: &str, by: Party) -> EventKind<'static> {
    EventKind::SessionCancelled { tutor_id: Cow::Owned(tutor.to_string()), cancelled_by: by }
}

/// `session_no_show`.
pub fn no_show(tutor: &str) -> EventKind<'static> {
    EventKind::SessionNoShow { tutor_id: Cow::Owned(tutor.to_string()) }
}

/// `session_rated` with `rating`.
pub fn rated(tutor: &str, rating: f64) -> EventKind<'static> {
    EventKind::SessionRated { tutor_id: Cow::Owned(tutor.to_string()), rating }
}

/// `login`.
pub fn login() -> EventKind<'static> {
    EventKind::Login
}

/// `payment` of `amount`, succeeded or not.
pub fn payment(amount: f64, succeeded: bool) -> EventKind<'static> {
    let status = if succeeded { PaymentStatus::Succeeded } else { PaymentStatus::Failed };
    EventKind::Payment { amount, status }
}

/// `ib_call` with `sentiment`.
pub fn ib_call(sentiment: Sentiment) -> EventKind<'static> {
    EventKind::IbCall { sentiment }
}

/// `message_reply` from `from`, with an optional `tutor_id`.
pub fn reply(from: Party, minutes: f64, tutor: Option<&str>) -> EventKind<'static> {
    EventKind::MessageReply { from, response_minutes: minutes, tutor_id: tutor.map(|t| Cow::Owned(t.to_string())) }
}

/// A record around a change. Its creation time is a minute after the latest
/// `ts` it carries (a realistic, never-future value; the engine does not judge it).
pub fn record(change: StreamChange<'static>) -> StreamRecord<'static> {
    let latest = match &change {
        StreamChange::Insert(e) | StreamChange::Remove(e) => Some(e.ts.millis()),
        StreamChange::Modify { old, new } => old.iter().chain(new.iter()).map(|e| e.ts.millis()).max(),
        StreamChange::TtlExpiry | StreamChange::NotAnEvent => None,
    };
    StreamRecord { created_ms: latest.map(|ts| (ts + 60_000) as f64), sequence_number: None, change }
}

/// An `INSERT` record.
pub fn insert(e: Event<'static>) -> StreamRecord<'static> {
    record(StreamChange::Insert(e))
}

/// A `MODIFY` record (a correction).
pub fn modify(old: Option<Event<'static>>, new: Option<Event<'static>>) -> StreamRecord<'static> {
    record(StreamChange::Modify { old, new })
}

/// A `REMOVE` record by a user (a retraction).
pub fn remove(e: Event<'static>) -> StreamRecord<'static> {
    record(StreamChange::Remove(e))
}

/// Whether two feature values agree: 1e-9 relative, with an absolute slack of
/// 1e-9 near zero.
pub fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// Every feature that differs, as `name: actual vs expected` lines (empty if all agree).
pub fn feature_diffs(actual: &Features, expected: &Features) -> Vec<String> {
    (0..FEATURE_COUNT)
        .filter(|&i| !close(actual[i], expected[i]))
        .map(|i| format!("  [{i}] {}: actual {} vs expected {}", FEATURE_NAMES[i], actual[i], expected[i]))
        .collect()
}

/// Panics, naming every feature that differs, unless the vectors agree.
#[track_caller]
pub fn assert_features_close(actual: &Features, expected: &Features, context: &str) {
    let diffs = feature_diffs(actual, expected);
    assert!(diffs.is_empty(), "{context}: features differ:\n{}", diffs.join("\n"));
}

/// Panics unless the named feature has the expected value.
#[track_caller]
pub fn assert_feature(features: &Features, index: usize, expected: f64, context: &str) {
    assert!(
        close(features[index], expected),
        "{context}: {} = {} but expected {}",
        FEATURE_NAMES[index],
        features[index],
        expected
    );
}
