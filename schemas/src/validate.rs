//! The rules of §1: when an item with `entity_type = event` is a valid event.

use std::borrow::Cow;

use crate::attr::{AttrRef, Image};
use crate::event::{Event, EventKind, EventTime, Party, PaymentStatus, Sentiment};
use crate::record::{InvalidReason, Side};

/// An added event may be at most this far ahead of its record's creation time.
pub const FUTURE_TOLERANCE_MS: f64 = 3_600_000.0;

/// The first plausible time, in ms since the epoch: 2000-01-01T00:00:00Z.
///
/// Times are plausible in `[EARLIEST_MS, LATEST_MS)`, a range fixed in the
/// code rather than relative to the wall clock: decoding is pure, so a replay
/// of a years-old capture decodes today exactly as it did when it was live.
/// The lower bound is older than DynamoDB itself (2012) and its Streams
/// (2014), so no real capture or event table is refused; the upper bound
/// leaves 170 years of headroom. Either side of the range is then a unit or
/// sign error, never a real time: `ApproximateCreationDateTime` in
/// milliseconds read as seconds lands after the year 31,000, a `ts` in
/// seconds read as milliseconds in January 1970.
pub const EARLIEST_MS: i64 = 946_684_800_000;
/// The end of the plausible range (excluded), in ms since the epoch:
/// 2200-01-01T00:00:00Z. See [`EARLIEST_MS`].
pub const LATEST_MS: i64 = 7_258_118_400_000;

/// The largest `amount` and `response_minutes`: the contract bounds them
/// only below (`>= 0`), and these two are summed and averaged over windows.
///
/// Without a bound, two succeeded payments of `1.7e308` (each finite, so
/// valid by the letter of §1) made `payment_amount_30d` infinite, a `null`
/// in the vector, which the contract's "46 numbers" cannot hold. 1e12 is a
/// trillion dollars in one payment, or a reply two million years late: far
/// above anything real, and small enough that the engine's exact sums
/// (integers in 128 bits) hold millions of such values per window, so every
/// sum and mean is finite and exact. The other numbers are bounded by the
/// contract already (`duration_min <= 600`, `rating <= 5`).
pub const MAX_UNBOUNDED_VALUE: f64 = 1e12;

/// Builds the event an image describes, or says which rule it breaks.
///
/// The caller has already checked `entity_type = event`.
pub fn event_from_image(image: Image<'_>, side: Side) -> Result<Event<'_>, InvalidReason> {
    let customer_id = string(image.customer_id, side, "customer_id")?;
    if customer_id.is_empty() {
        return Err(InvalidReason::NotAllowed {
            side,
            name: "customer_id",
            value: String::new(),
            allowed: "a non-empty string",
        });
    }
    let event_id = string(image.event_id, side, "event_id")?;
    if !valid_event_id(&event_id) {
        return Err(InvalidReason::BadEventId { side, value: event_id.into_owned() });
    }
    let event_type = string(image.event_type, side, "event_type")?;
    let ts = check_event_time(timestamp(image.ts, side)?, side)?;
    let kind = match &*event_type {
        "session_completed" => EventKind::SessionCompleted {
            tutor_id: string(image.tutor_id, side, "tutor_id")?,
            duration_min: ranged(image.duration_min, side, "duration_min", |x| x > 0.0 && x <= 600.0, "0 < x <= 600")?,
        },
        "session_cancelled" => EventKind::SessionCancelled {
            tutor_id: string(image.tutor_id, side, "tutor_id")?,
            cancelled_by: party(image.cancelled_by, side, "cancelled_by")?,
        },
        "session_no_show" => EventKind::SessionNoShow { tutor_id: string(image.tutor_id, side, "tutor_id")? },
        "session_rated" => EventKind::SessionRated {
            tutor_id: string(image.tutor_id, side, "tutor_id")?,
            rating: ranged(image.rating, side, "rating", |x| (1.0..=5.0).contains(&x), "1 <= x <= 5")?,
        },
        "login" => EventKind::Login,
        "payment" => EventKind::Payment {
            amount: unbounded_above(image.amount, side, "amount")?,
            status: match &*string(image.status, side, "status")? {
                "succeeded" => PaymentStatus::Succeeded,
                "failed" => PaymentStatus::Failed,
                other => return Err(not_allowed(side, "status", other, "succeeded, failed")),
            },
        },
        "ib_call" => EventKind::IbCall {
            sentiment: match &*string(image.sentiment, side, "sentiment")? {
                "negative" => Sentiment::Negative,
                "neutral" => Sentiment::Neutral,
                "positive" => Sentiment::Positive,
                other => return Err(not_allowed(side, "sentiment", other, "negative, neutral, positive")),
            },
        },
        "message_reply" => EventKind::MessageReply {
            from: party(image.from, side, "from")?,
            response_minutes: unbounded_above(image.response_minutes, side, "response_minutes")?,
            tutor_id: match image.tutor_id {
                None => None,
                some => Some(string(some, side, "tutor_id")?),
            },
        },
        other => return Err(InvalidReason::UnknownEventType { side, value: other.to_owned() }),
    };
    Ok(Event { customer_id, event_id, ts, kind })
}

/// §2 "Future events": an added event more than an hour after its record's
/// `ApproximateCreationDateTime` is invalid.
pub fn check_not_future(event: &Event<'_>, created_ms: Option<f64>) -> Result<(), InvalidReason> {
    let created_ms = created_ms.ok_or(InvalidReason::MissingCreationTime)?;
    if event.ts.0 as f64 > created_ms + FUTURE_TOLERANCE_MS {
        return Err(InvalidReason::FutureEvent { ts: event.ts.0, created_ms });
    }
    Ok(())
}

/// Any record's `ApproximateCreationDateTime` (in ms, as the decoders
/// convert it; absent is `None`) must be plausible: a finite time in
/// `[EARLIEST_MS, LATEST_MS)`.
///
/// Checked on every record, whatever its images hold, before anything reads
/// the time: the pipeline advances stream time, and so fires every
/// customer's timers, to the latest creation time it has seen. One value in
/// milliseconds instead of DynamoDB Streams' seconds (on a prediction item,
/// say, which is otherwise skipped) moved stream time to the year ~58,000: every
/// timer fired at once and none could fire again. The range is absolute (see
/// [`EARLIEST_MS`]) and its two sides are each an error of unit or sign:
/// since 2000, a time in milliseconds read as seconds is after the year
/// 31,000, far past [`LATEST_MS`].
pub fn check_creation_time(created_ms: Option<f64>) -> Result<(), InvalidReason> {
    match created_ms {
        Some(ms) if !(EARLIEST_MS as f64..LATEST_MS as f64).contains(&ms) => {
            Err(InvalidReason::ImplausibleCreationTime { created_ms: ms })
        }
        _ => Ok(()),
    }
}

/// An event's `ts` must be plausible: in `[EARLIEST_MS, LATEST_MS)`, on
/// either side of a record.
///
/// The contract asks only for a whole number of milliseconds since the
/// epoch, but no event of this marketplace happened before 2000 or after
/// 2200, and one that says so is a producer's error that would otherwise
/// cost dearly and silently:
///
/// * `ts = i64::MIN` for a new customer was counted as late (`C - 30 days`
///   saturates to `i64::MIN`): neither a vector nor a dead letter, and
///   `i64::MIN` is also the engine's "no event" marker of the recency
///   features;
/// * `ts = 0` (or a time in seconds, which lands in January 1970) made a new
///   customer whose daily timers, driven by a 2025 stream, all fell due at
///   once: one record, 1 + 365 vectors of a customer 55 years silent;
/// * `ts` near `i64::MAX` put the customer clock where no window arithmetic
///   is meaningful.
///
/// An added event is also bounded by the future rule (`ts <= created + 1 h`,
/// the creation time being plausible too); this bound also covers
/// retractions, so a record with an implausible OldImage is a dead letter
/// whole, like any invalid image. Events older than a customer's clock are
/// still judged by the late rule only: backfills and replays of old captures
/// are legitimate.
pub fn check_event_time(ts: EventTime, side: Side) -> Result<EventTime, InvalidReason> {
    if (EARLIEST_MS..LATEST_MS).contains(&ts.0) {
        Ok(ts)
    } else {
        Err(InvalidReason::ImplausibleTimestamp { side, ts: ts.0 })
    }
}

/// `event_id`: 1 to 64 characters of `[A-Za-z0-9_-]`.
pub fn valid_event_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn not_allowed(side: Side, name: &'static str, value: &str, allowed: &'static str) -> InvalidReason {
    InvalidReason::NotAllowed { side, name, value: value.to_owned(), allowed }
}

fn string<'a>(attr: Option<AttrRef<'a>>, side: Side, name: &'static str) -> Result<Cow<'a, str>, InvalidReason> {
    match attr {
        Some(AttrRef::S(s)) => Ok(s),
        Some(other) => Err(InvalidReason::WrongType { side, name, expected: "S", found: other.type_tag() }),
        None => Err(InvalidReason::MissingAttribute { side, name }),
    }
}

fn number(attr: Option<AttrRef<'_>>, side: Side, name: &'static str) -> Result<f64, InvalidReason> {
    match attr {
        Some(AttrRef::N(text)) => match text.parse::<f64>() {
            Ok(x) if x.is_finite() => Ok(x),
            _ => Err(InvalidReason::NotANumber { side, name, value: text.into_owned() }),
        },
        Some(other) => Err(InvalidReason::WrongType { side, name, expected: "N", found: other.type_tag() }),
        None => Err(InvalidReason::MissingAttribute { side, name }),
    }
}

fn ranged(
    attr: Option<AttrRef<'_>>,
    side: Side,
    name: &'static str,
    ok: impl Fn(f64) -> bool,
    rule: &'static str,
) -> Result<f64, InvalidReason> {
    let x = number(attr, side, name)?;
    if ok(x) {
        Ok(x)
    } else {
        Err(InvalidReason::OutOfRange { side, name, value: x, rule })
    }
}

/// A number the contract requires to be `>= 0`, within
/// [`MAX_UNBOUNDED_VALUE`].
fn unbounded_above(attr: Option<AttrRef<'_>>, side: Side, name: &'static str) -> Result<f64, InvalidReason> {
    ranged(attr, side, name, |x| (0.0..=MAX_UNBOUNDED_VALUE).contains(&x), "0 <= x <= 1e12")
}

fn party(attr: Option<AttrRef<'_>>, side: Side, name: &'static str) -> Result<Party, InvalidReason> {
    match &*string(attr, side, name)? {
        "student" => Ok(Party::Student),
        "tutor" => Ok(Party::Tutor),
        other => Err(not_allowed(side, name, other, "student, tutor")),
    }
}

/// `ts`: a whole number of milliseconds. `1700000000000` and `1.7e12` are whole;
/// `12.5` is not. Decimal forms are accepted only while `f64` holds them exactly.
fn timestamp(attr: Option<AttrRef<'_>>, side: Side) -> Result<EventTime, InvalidReason> {
    let text = match attr {
        Some(AttrRef::N(text)) => text,
        Some(other) => {
            return Err(InvalidReason::WrongType { side, name: "ts", expected: "N", found: other.type_tag() })
        }
        None => return Err(InvalidReason::MissingAttribute { side, name: "ts" }),
    };
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(EventTime(ms));
    }
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    match text.parse::<f64>() {
        Ok(x) if x.is_finite() && x.fract() == 0.0 && x.abs() <= EXACT => Ok(EventTime(x as i64)),
        _ => Err(InvalidReason::BadTimestamp { side, value: text.into_owned() }),
    }
}
