//! A DynamoDB Streams record, decoded into what it asks of the engine (§2).

use std::borrow::Cow;
use std::fmt;

use smol_str::SmolStr;

use crate::attr::Image;
use crate::event::Event;
use crate::validate::{check_creation_time, check_not_future, event_from_image};

/// Which image of a record an attribute came from.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Side {
    /// `dynamodb.NewImage`: the item after the change.
    New,
    /// `dynamodb.OldImage`: the item before the change.
    Old,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::New => "NewImage",
            Side::Old => "OldImage",
        })
    }
}

/// The hint of [`InvalidReason::ImplausibleCreationTime`]: only a value too
/// large (at or after 2200-01-01) can be one in milliseconds, and is said to
/// be when, read as milliseconds, it is plausible. A value too small (before
/// 2000, negative, zero) gets no hint: a time in milliseconds is never too
/// small. (The message used to add "a value in milliseconds is 1000 times
/// too large" to every implausible value, `0` and `-5` included.)
fn milliseconds_hint(created_ms: f64) -> &'static str {
    use crate::validate::{EARLIEST_MS, LATEST_MS};
    if created_ms.is_nan() || created_ms < LATEST_MS as f64 {
        ""
    } else if (EARLIEST_MS as f64..LATEST_MS as f64).contains(&(created_ms / 1000.0)) {
        " (it looks like milliseconds: a value in milliseconds is 1000 times too large)"
    } else {
        " (a value in milliseconds is 1000 times too large)"
    }
}

/// Why a record is a dead letter. Each variant names the field and the rule.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum InvalidReason {
    /// The line is not JSON, or not a stream record's JSON shape.
    #[error("malformed record: {0}")]
    Malformed(String),
    /// `eventName` is not INSERT, MODIFY or REMOVE.
    #[error("unknown eventName {} (expected INSERT, MODIFY or REMOVE)", Clip(.0))]
    UnknownEventName(String),
    /// The record lacks an image its `eventName` needs (the stream must be `NEW_AND_OLD_IMAGES`).
    #[error("{0} is missing (the stream must use NEW_AND_OLD_IMAGES)")]
    MissingImage(Side),
    /// A record that adds an event has no `ApproximateCreationDateTime`.
    #[error("dynamodb.ApproximateCreationDateTime is missing, so the event's future check cannot be made")]
    MissingCreationTime,
    /// `ApproximateCreationDateTime` is outside the plausible range (see
    /// [`crate::validate::check_creation_time`]), whatever the item: stream
    /// time, and with it every customer's timers, follows it.
    #[error(
        "dynamodb.ApproximateCreationDateTime {} s is not a plausible creation time: it must be seconds since the \
         epoch, from 2000-01-01 to before 2200-01-01{}",
        Seconds(created_ms / 1000.0),
        milliseconds_hint(*created_ms)
    )]
    ImplausibleCreationTime {
        /// `ApproximateCreationDateTime` in milliseconds.
        created_ms: f64,
    },
    /// A required attribute is absent.
    #[error("{side}.{name} is missing")]
    MissingAttribute {
        /// Image.
        side: Side,
        /// Attribute.
        name: &'static str,
    },
    /// An attribute has the wrong DynamoDB type.
    #[error("{side}.{name} must be of type {expected}, found {found}")]
    WrongType {
        /// Image.
        side: Side,
        /// Attribute.
        name: &'static str,
        /// Type the contract requires.
        expected: &'static str,
        /// Type found.
        found: &'static str,
    },
    /// `event_type` is not one of the eight types.
    #[error("{side}.event_type {} is not an event type of the contract", Clip(value))]
    UnknownEventType {
        /// Image.
        side: Side,
        /// Value found.
        value: String,
    },
    /// `event_id` breaks the 1 to 64 chars of `[A-Za-z0-9_-]` rule.
    #[error("{side}.event_id {} must be 1 to 64 characters of [A-Za-z0-9_-]", Clip(value))]
    BadEventId {
        /// Image.
        side: Side,
        /// Value found.
        value: String,
    },
    /// `ts` is not a whole number of milliseconds.
    #[error("{side}.ts {} must be a whole number of milliseconds", Clip(value))]
    BadTimestamp {
        /// Image.
        side: Side,
        /// Value found.
        value: String,
    },
    /// `ts` is a whole number outside the plausible range (see
    /// [`crate::validate::check_event_time`]).
    #[error(
        "{side}.ts {ts} is not a plausible event time: it must be milliseconds since the epoch, from 2000-01-01 to \
         before 2200-01-01"
    )]
    ImplausibleTimestamp {
        /// Image.
        side: Side,
        /// Value found, in milliseconds.
        ts: i64,
    },
    /// A number attribute does not parse, or is infinite or NaN.
    #[error("{side}.{name} {} is not a finite number", Clip(value))]
    NotANumber {
        /// Image.
        side: Side,
        /// Attribute.
        name: &'static str,
        /// Value found.
        value: String,
    },
    /// A number outside its range.
    #[error("{side}.{name} = {value} is out of range ({rule})")]
    OutOfRange {
        /// Image.
        side: Side,
        /// Attribute.
        name: &'static str,
        /// Value found.
        value: f64,
        /// The rule broken.
        rule: &'static str,
    },
    /// A string attribute outside its allowed values.
    #[error("{side}.{name} {} must be one of {allowed}", Clip(value))]
    NotAllowed {
        /// Image.
        side: Side,
        /// Attribute.
        name: &'static str,
        /// Value found.
        value: String,
        /// The allowed values.
        allowed: &'static str,
    },
    /// The new event is more than an hour ahead of the record's creation time.
    #[error(
        "future event: ts {ts} is more than 1 hour after the record's ApproximateCreationDateTime ({created_ms} ms)"
    )]
    FutureEvent {
        /// Event time.
        ts: i64,
        /// `ApproximateCreationDateTime` in milliseconds.
        created_ms: f64,
    },
    /// A capture line longer than [`crate::capture::MAX_LINE_BYTES`]: read
    /// past without being held whole, never decoded.
    #[error(
        "a line of {bytes} bytes is longer than the limit of {limit} (xxh3-64 {xxh3:016x}): read past, not decoded; \
         the dead letter keeps its first bytes"
    )]
    LineTooLong {
        /// The line's length, its newline left out.
        bytes: u64,
        /// The limit it broke.
        limit: u64,
        /// The xxh3-64 of the whole line, to find it in the capture.
        xxh3: u64,
    },
}

impl InvalidReason {
    /// A short stable code for counters and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            InvalidReason::Malformed(_) => "malformed_record",
            InvalidReason::UnknownEventName(_) => "unknown_event_name",
            InvalidReason::MissingImage(_) => "missing_image",
            InvalidReason::MissingCreationTime => "missing_creation_time",
            InvalidReason::ImplausibleCreationTime { .. } => "implausible_creation_time",
            InvalidReason::MissingAttribute { .. } => "missing_attribute",
            InvalidReason::WrongType { .. } => "wrong_type",
            InvalidReason::UnknownEventType { .. } => "unknown_event_type",
            InvalidReason::BadEventId { .. } => "bad_event_id",
            InvalidReason::BadTimestamp { .. } => "bad_timestamp",
            InvalidReason::ImplausibleTimestamp { .. } => "implausible_timestamp",
            InvalidReason::NotANumber { .. } => "not_a_number",
            InvalidReason::OutOfRange { .. } => "out_of_range",
            InvalidReason::NotAllowed { .. } => "not_allowed",
            InvalidReason::FutureEvent { .. } => "future_event",
            InvalidReason::LineTooLong { .. } => "line_too_long",
        }
    }
}

/// A record that cannot be applied: it goes to the dead letters whole.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{reason}")]
pub struct Invalid {
    /// Why.
    pub reason: InvalidReason,
}

impl From<InvalidReason> for Invalid {
    fn from(reason: InvalidReason) -> Self {
        Invalid { reason }
    }
}

/// What a valid record asks of the engine (the table of §2).
#[derive(Clone, Debug, PartialEq)]
pub enum StreamChange<'a> {
    /// `INSERT` of an event: add it.
    Insert(Event<'a>),
    /// `MODIFY` touching at least one event image: retract `old`, then add
    /// `new`. A side is `None` when that image is not an event.
    Modify {
        /// The event to retract, judged on its own.
        old: Option<Event<'a>>,
        /// The event to add, judged on its own.
        new: Option<Event<'a>>,
    },
    /// `REMOVE` of an event by a user: retract it.
    Remove(Event<'a>),
    /// `REMOVE` by DynamoDB's TTL process: no effect.
    TtlExpiry,
    /// A record whose images are not events (predictions, students, ...): no effect.
    NotAnEvent,
}

impl StreamChange<'_> {
    /// The customer this change is about, if it is about events at all.
    pub fn customer_id(&self) -> Option<&str> {
        match self {
            StreamChange::Insert(e) | StreamChange::Remove(e) => Some(&e.customer_id),
            StreamChange::Modify { old, new } => new.as_ref().or(old.as_ref()).map(|e| &*e.customer_id),
            StreamChange::TtlExpiry | StreamChange::NotAnEvent => None,
        }
    }

    /// Detaches the change from the buffer it was decoded from.
    pub fn into_owned(self) -> StreamChange<'static> {
        match self {
            StreamChange::Insert(e) => StreamChange::Insert(e.into_owned()),
            StreamChange::Modify { old, new } => {
                StreamChange::Modify { old: old.map(Event::into_owned), new: new.map(Event::into_owned) }
            }
            StreamChange::Remove(e) => StreamChange::Remove(e.into_owned()),
            StreamChange::TtlExpiry => StreamChange::TtlExpiry,
            StreamChange::NotAnEvent => StreamChange::NotAnEvent,
        }
    }
}

/// A decoded stream record.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamRecord<'a> {
    /// `dynamodb.ApproximateCreationDateTime` in milliseconds, when present;
    /// always a plausible time (see [`crate::validate::check_creation_time`]),
    /// so it is safe to advance stream time to it.
    pub created_ms: Option<f64>,
    /// `dynamodb.SequenceNumber`, when present. DynamoDB's have up to 40
    /// digits; one of up to 23 is held inline, so making the record owned
    /// for the engine's thread does not allocate for it.
    pub sequence_number: Option<SmolStr>,
    /// What the record does.
    pub change: StreamChange<'a>,
}

impl StreamRecord<'_> {
    /// Detaches the record from the buffer it was decoded from.
    pub fn into_owned(self) -> StreamRecord<'static> {
        StreamRecord {
            created_ms: self.created_ms,
            sequence_number: self.sequence_number,
            change: self.change.into_owned(),
        }
    }
}

/// The parts of a record that decide its meaning, whichever decoder read them.
#[derive(Debug, Default)]
pub(crate) struct RecordParts<'a> {
    pub(crate) created_ms: Option<f64>,
    pub(crate) sequence_number: Option<Cow<'a, str>>,
    pub(crate) by_ttl: bool,
    pub(crate) new_image: Option<Image<'a>>,
    pub(crate) old_image: Option<Image<'a>>,
}

/// Whether a `userIdentity` is DynamoDB's TTL process.
pub(crate) fn is_ttl_identity(type_: Option<&str>, principal_id: Option<&str>) -> bool {
    type_ == Some("Service") && principal_id == Some("dynamodb.amazonaws.com")
}

impl<'a> RecordParts<'a> {
    /// Applies the table of §2 and the rules of §1 to the parts.
    ///
    /// The creation time is checked first, whatever the images: a record
    /// that is otherwise skipped still moves stream time.
    pub(crate) fn interpret(self, event_name: &str) -> Result<StreamRecord<'a>, Invalid> {
        let created_ms = self.created_ms;
        check_creation_time(created_ms)?;
        let added = |image: Image<'a>| -> Result<Event<'a>, InvalidReason> {
            let event = event_from_image(image, Side::New)?;
            check_not_future(&event, created_ms)?;
            Ok(event)
        };
        let change = match event_name {
            "INSERT" => {
                let new = self.new_image.ok_or(InvalidReason::MissingImage(Side::New))?;
                if new.is_event() {
                    StreamChange::Insert(added(new)?)
                } else {
                    StreamChange::NotAnEvent
                }
            }
            "MODIFY" => {
                let new = self.new_image.ok_or(InvalidReason::MissingImage(Side::New))?;
                let old = self.old_image.ok_or(InvalidReason::MissingImage(Side::Old))?;
                let old = if old.is_event() { Some(event_from_image(old, Side::Old)?) } else { None };
                let new = if new.is_event() { Some(added(new)?) } else { None };
                match (old, new) {
                    (None, None) => StreamChange::NotAnEvent,
                    (old, new) => StreamChange::Modify { old, new },
                }
            }
            "REMOVE" => {
                let old = self.old_image.ok_or(InvalidReason::MissingImage(Side::Old))?;
                if !old.is_event() {
                    StreamChange::NotAnEvent
                } else if self.by_ttl {
                    StreamChange::TtlExpiry
                } else {
                    StreamChange::Remove(event_from_image(old, Side::Old)?)
                }
            }
            other => return Err(InvalidReason::UnknownEventName(other.to_owned()).into()),
        };
        let sequence_number = self.sequence_number.as_deref().map(SmolStr::new);
        Ok(StreamRecord { created_ms, sequence_number, change })
    }
}

/// A value from a record, quoted, as a message shows it: cut after 40
/// characters with its length said, so a 5,000-digit number or a megabyte
/// of text does not make a dead letter's reason that long (the whole record
/// is in the dead letter).
struct Clip<'a>(&'a str);

impl std::fmt::Display for Clip<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const SHOWN: usize = 40;
        match self.0.char_indices().nth(SHOWN) {
            None => write!(f, "{:?}", self.0),
            Some((cut, _)) => write!(f, "{:?}… ({} characters)", &self.0[..cut], self.0.chars().count()),
        }
    }
}

/// Seconds as a message shows them: plainly, or in exponent form when the
/// plain form would run to dozens of digits (1e300, not 1 and 300 zeros;
/// 1e-300, not 300 zeros and a 1).
struct Seconds(f64);

impl std::fmt::Display for Seconds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let x = self.0.abs();
        if x == 0.0 || (1e-3..1e16).contains(&x) || !x.is_finite() {
            write!(f, "{}", self.0)
        } else {
            write!(f, "{:e}", self.0)
        }
    }
}
