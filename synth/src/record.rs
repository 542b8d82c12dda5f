//! Compact, allocation-free descriptions of the records waiting to be written.
//!
//! The simulation produces [`Pending`] records; [`super::json`] turns them into
//! AWS's JSON shape only when their turn in the stream comes. Numbers with a
//! fraction are kept as fixed-point integers (tenths, cents) so the written
//! text is exact and never needs an exponent.

use pulse_schemas::{Party, Sentiment};

/// The eight event types, in the contract's order (§1), which is also the
/// order of [`super::SynthSummary::by_type`].
pub const EVENT_TYPES: [&str; 8] = [
    "session_completed",
    "session_cancelled",
    "session_no_show",
    "session_rated",
    "login",
    "payment",
    "ib_call",
    "message_reply",
];

/// The type of an event with its own attributes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Body {
    SessionCompleted { tutor: u32, duration_tenths: i32 },
    SessionCancelled { tutor: u32, by: Party },
    SessionNoShow { tutor: u32 },
    SessionRated { tutor: u32, rating_tenths: i32 },
    Login,
    Payment { amount_cents: i64, succeeded: bool },
    IbCall { sentiment: Sentiment },
    MessageReply { from: Party, minutes_tenths: i32, tutor: Option<u32> },
}

impl Body {
    /// Position of the type in [`EVENT_TYPES`].
    pub(crate) fn type_index(&self) -> usize {
        match self {
            Body::SessionCompleted { .. } => 0,
            Body::SessionCancelled { .. } => 1,
            Body::SessionNoShow { .. } => 2,
            Body::SessionRated { .. } => 3,
            Body::Login => 4,
            Body::Payment { .. } => 5,
            Body::IbCall { .. } => 6,
            Body::MessageReply { .. } => 7,
        }
    }
}

/// How an event image is deliberately broken (or marked), and the
/// `synth_fault` attribute that says so in the image.
///
/// Each breaking variant is named after the [`pulse_schemas::InvalidReason`]
/// code the decoder must report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    /// A valid event.
    None,
    /// Valid, but more than 30 days behind the customer's clock.
    Late,
    /// Valid image, but `ts` more than an hour after the record's creation.
    Future,
    /// The type's first attribute (or `ts` for `login`) is left out.
    MissingAttribute,
    /// A number written as `S` (`ts` for types without numbers).
    WrongType,
    /// A number outside its range (set in the [`Body`] itself).
    OutOfRange,
    /// A number attribute written as `NaN`.
    NotANumber,
    /// A string attribute outside its allowed values.
    NotAllowed,
    /// An `event_id` breaking `[A-Za-z0-9_-]{1,64}`.
    BadEventId,
    /// A `ts` with a fraction of a millisecond.
    BadTimestamp,
    /// An `event_type` that is not one of the eight.
    UnknownEventType,
}

impl Fault {
    /// The value of the image's `synth_fault` attribute, if any.
    pub(crate) fn code(self) -> Option<&'static str> {
        Some(match self {
            Fault::None => return None,
            Fault::Late => "late",
            Fault::Future => "future_event",
            Fault::MissingAttribute => "missing_attribute",
            Fault::WrongType => "wrong_type",
            Fault::OutOfRange => "out_of_range",
            Fault::NotANumber => "not_a_number",
            Fault::NotAllowed => "not_allowed",
            Fault::BadEventId => "bad_event_id",
            Fault::BadTimestamp => "bad_timestamp",
            Fault::UnknownEventType => "unknown_event_type",
        })
    }

    /// The faults that make an image invalid.
    pub(crate) const BREAKING: [Fault; 8] = [
        Fault::MissingAttribute,
        Fault::WrongType,
        Fault::OutOfRange,
        Fault::NotANumber,
        Fault::NotAllowed,
        Fault::BadEventId,
        Fault::BadTimestamp,
        Fault::UnknownEventType,
    ];
}

/// Where an event's id comes from: behaviour events and events made up for
/// hostility use separate counters, so hostility never renumbers behaviour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IdSpace {
    /// `evt_<customer>_<n>`.
    Behaviour,
    /// `evt_<customer>_x<n>`.
    Extra,
}

/// An item with `entity_type = event`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct EventItem {
    /// `ts` attribute.
    pub(crate) ts: i64,
    /// The `ts` inside the sort key (a correction may move `ts`, not the key).
    pub(crate) sk_ts: i64,
    pub(crate) id_space: IdSpace,
    pub(crate) id: u32,
    pub(crate) body: Body,
    pub(crate) fault: Fault,
}

/// The pipeline's own prediction item (`sk = PRED#latest`): not an event.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct PredictionItem {
    pub(crate) as_of: i64,
    pub(crate) first_session_success_milli: i32,
    pub(crate) session_velocity_tenths: i32,
    pub(crate) churn_risk_14d_milli: i32,
    pub(crate) churn_risk_30d_milli: i32,
    pub(crate) health_score_tenths: i32,
}

/// A customer profile item (`sk = PROFILE`, `entity_type = student`): not an event.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct ProfileItem {
    pub(crate) updated_ms: i64,
    pub(crate) weekly_plan: bool,
    pub(crate) primary_tutor: u32,
}

/// One image of a record.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Item {
    Event(EventItem),
    Prediction(PredictionItem),
    Profile(ProfileItem),
}

/// The record's `eventName` and, for removals, who removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    Insert,
    Modify,
    Remove,
    /// A `REMOVE` by DynamoDB's TTL process (`userIdentity` = the service).
    TtlRemove,
}

/// Why the record exists, for the summary's counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Class {
    /// A behaviour event, arriving within seconds.
    Event,
    /// A behaviour event, arriving minutes to hours after its `ts`.
    DelayedEvent,
    Duplicate,
    Correction,
    Retraction,
    TtlRemove,
    Late,
    Future,
    Invalid,
    NonEvent,
}

/// A record waiting for its turn in the stream.
///
/// Stream order is `(created_ms, customer, rec_seq)`: unique, so sorting is
/// deterministic whatever the algorithm.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Pending {
    /// `ApproximateCreationDateTime` in milliseconds.
    pub(crate) created_ms: i64,
    pub(crate) customer: u32,
    /// The customer's record counter.
    pub(crate) rec_seq: u32,
    pub(crate) op: Op,
    pub(crate) class: Class,
    pub(crate) new: Option<Item>,
    pub(crate) old: Option<Item>,
}

impl Pending {
    /// The stream-order sort key.
    pub(crate) fn key(&self) -> (i64, u32, u32) {
        (self.created_ms, self.customer, self.rec_seq)
    }
}
