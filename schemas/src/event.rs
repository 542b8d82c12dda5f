//! The event table (§1 of the contract): one event of a customer.

use smol_str::SmolStr;
use std::borrow::Cow;
use std::fmt;

/// One day in milliseconds: the unit of every window.
pub const DAY_MS: i64 = 86_400_000;

/// A customer's id (the table's partition key), cheap to clone.
///
/// Ids of up to 23 bytes (`stu_4821`) are stored inline, so comparing and
/// hashing one in the customer map touches no other memory; longer ones are
/// shared behind a reference count.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CustomerId(SmolStr);

impl CustomerId {
    /// Wraps an id.
    pub fn new(id: &str) -> Self {
        CustomerId(SmolStr::new(id))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for CustomerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for CustomerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::borrow::Borrow<str> for CustomerId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl serde::Serialize for CustomerId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for CustomerId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Cow::<'de, str>::deserialize(d)?;
        Ok(CustomerId::new(&s))
    }
}

/// An event time: whole milliseconds since the Unix epoch, UTC.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct EventTime(pub i64);

impl EventTime {
    /// Milliseconds since the epoch.
    pub fn millis(self) -> i64 {
        self.0
    }

    /// `(self - earlier)` in days, as a float (the contract's `days(x)`).
    pub fn days_since(self, earlier: EventTime) -> f64 {
        (self.0 as f64 - earlier.0 as f64) / DAY_MS as f64
    }
}

/// Who did it: the student (customer) or the tutor.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Party {
    /// The customer.
    Student,
    /// The tutor.
    Tutor,
}

/// Outcome of a payment.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum PaymentStatus {
    /// The charge went through.
    Succeeded,
    /// The charge failed.
    Failed,
}

/// Sentiment of an inbound support call.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Sentiment {
    /// An unhappy call.
    Negative,
    /// Neither.
    Neutral,
    /// A happy call.
    Positive,
}

/// An event type with its own contract attributes (§1).
///
/// Numbers are kept as the `f64` they parse to; the ranges of the contract are
/// checked by [`crate::validate`] before an `EventKind` exists.
#[derive(Clone, PartialEq, Debug)]
pub enum EventKind<'a> {
    /// `session_completed`: `tutor_id`, `duration_min` in (0, 600].
    SessionCompleted {
        /// The tutor.
        tutor_id: Cow<'a, str>,
        /// Length of the session in minutes.
        duration_min: f64,
    },
    /// `session_cancelled`: `tutor_id`, `cancelled_by`.
    SessionCancelled {
        /// The tutor.
        tutor_id: Cow<'a, str>,
        /// Who cancelled.
        cancelled_by: Party,
    },
    /// `session_no_show`: `tutor_id`.
    SessionNoShow {
        /// The tutor.
        tutor_id: Cow<'a, str>,
    },
    /// `session_rated`: `tutor_id`, `rating` in [1, 5].
    SessionRated {
        /// The tutor rated.
        tutor_id: Cow<'a, str>,
        /// The rating, possibly fractional.
        rating: f64,
    },
    /// `login`.
    Login,
    /// `payment`: `amount` >= 0 USD, `status`.
    Payment {
        /// Amount in USD.
        amount: f64,
        /// Whether it went through.
        status: PaymentStatus,
    },
    /// `ib_call`: an inbound support call with its `sentiment`.
    IbCall {
        /// How the call went.
        sentiment: Sentiment,
    },
    /// `message_reply`: `from`, `response_minutes` >= 0, optional `tutor_id`.
    MessageReply {
        /// Who replied.
        from: Party,
        /// How long the reply took, in minutes.
        response_minutes: f64,
        /// The tutor of the conversation, when given.
        tutor_id: Option<Cow<'a, str>>,
    },
}

impl EventKind<'_> {
    /// The `event_type` attribute value of this kind.
    pub fn type_name(&self) -> &'static str {
        match self {
            EventKind::SessionCompleted { .. } => "session_completed",
            EventKind::SessionCancelled { .. } => "session_cancelled",
            EventKind::SessionNoShow { .. } => "session_no_show",
            EventKind::SessionRated { .. } => "session_rated",
            EventKind::Login => "login",
            EventKind::Payment { .. } => "payment",
            EventKind::IbCall { .. } => "ib_call",
            EventKind::MessageReply { .. } => "message_reply",
        }
    }

    /// Detaches the kind from the buffer it was decoded from.
    pub fn into_owned(self) -> EventKind<'static> {
        let own = |c: Cow<'_, str>| Cow::Owned(c.into_owned());
        match self {
            EventKind::SessionCompleted { tutor_id, duration_min } => {
                EventKind::SessionCompleted { tutor_id: own(tutor_id), duration_min }
            }
            EventKind::SessionCancelled { tutor_id, cancelled_by } => {
                EventKind::SessionCancelled { tutor_id: own(tutor_id), cancelled_by }
            }
            EventKind::SessionNoShow { tutor_id } => EventKind::SessionNoShow { tutor_id: own(tutor_id) },
            EventKind::SessionRated { tutor_id, rating } => EventKind::SessionRated { tutor_id: own(tutor_id), rating },
            EventKind::Login => EventKind::Login,
            EventKind::Payment { amount, status } => EventKind::Payment { amount, status },
            EventKind::IbCall { sentiment } => EventKind::IbCall { sentiment },
            EventKind::MessageReply { from, response_minutes, tutor_id } => {
                EventKind::MessageReply { from, response_minutes, tutor_id: tutor_id.map(own) }
            }
        }
    }
}

/// A valid event of the table: an item with `entity_type = event` that keeps
/// every rule of §1.
#[derive(Clone, PartialEq, Debug)]
pub struct Event<'a> {
    /// The customer (partition key).
    pub customer_id: Cow<'a, str>,
    /// Unique per event: 1 to 64 chars of `[A-Za-z0-9_-]`.
    pub event_id: Cow<'a, str>,
    /// Event time.
    pub ts: EventTime,
    /// The type and its attributes.
    pub kind: EventKind<'a>,
}

impl Event<'_> {
    /// Detaches the event from the buffer it was decoded from.
    pub fn into_owned(self) -> Event<'static> {
        Event {
            customer_id: Cow::Owned(self.customer_id.into_owned()),
            event_id: Cow::Owned(self.event_id.into_owned()),
            ts: self.ts,
            kind: self.kind.into_owned(),
        }
    }
}
