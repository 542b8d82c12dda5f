//! The 46 features of `features-v1` (§4) and the vector that carries them (§5).

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Serialize, Serializer};

use crate::event::CustomerId;
use crate::order::EmissionKey;

/// The schema name every vector, model and prediction carries.
pub const SCHEMA: &str = "features-v1";

/// How many features a vector has.
pub const FEATURE_COUNT: usize = 46;

macro_rules! features {
    ($($index:literal $konst:ident $name:literal,)*) => {
        /// The feature names, in contract order.
        pub const FEATURE_NAMES: [&str; FEATURE_COUNT] = [$($name),*];
        /// Index of each feature in [`Features`], by name.
        #[allow(missing_docs)]
        pub mod idx {
            $(pub const $konst: usize = $index;)*
        }
    };
}

features! {
    0 SESSIONS_7D "sessions_7d",
    1 SESSIONS_14D "sessions_14d",
    2 SESSIONS_30D "sessions_30d",
    3 SESSIONS_PER_WEEK_30D "sessions_per_week_30d",
    4 SESSION_MINUTES_7D "session_minutes_7d",
    5 SESSION_MINUTES_30D "session_minutes_30d",
    6 AVG_SESSION_MINUTES_30D "avg_session_minutes_30d",
    7 SESSION_VELOCITY_CHANGE "session_velocity_change",
    8 SESSION_TREND_RATIO "session_trend_ratio",
    9 DAYS_SINCE_LAST_SESSION "days_since_last_session",
    10 DAYS_SINCE_LAST_LOGIN "days_since_last_login",
    11 ACTIVE_DAYS_14D "active_days_14d",
    12 TENURE_DAYS "tenure_days",
    13 AVG_RATING_7D "avg_rating_7d",
    14 AVG_RATING_14D "avg_rating_14d",
    15 AVG_RATING_30D "avg_rating_30d",
    16 RATING_TREND "rating_trend",
    17 RATINGS_COUNT_30D "ratings_count_30d",
    18 LOW_RATINGS_30D "low_ratings_30d",
    19 LOGINS_7D "logins_7d",
    20 LOGINS_30D "logins_30d",
    21 PAYMENT_SUCCESS_RATE_7D "payment_success_rate_7d",
    22 PAYMENT_SUCCESS_RATE_14D "payment_success_rate_14d",
    23 PAYMENT_SUCCESS_RATE_30D "payment_success_rate_30d",
    24 PAYMENT_FAILURES_30D "payment_failures_30d",
    25 PAYMENT_AMOUNT_30D "payment_amount_30d",
    26 DAYS_SINCE_LAST_PAYMENT "days_since_last_payment",
    27 IB_CALLS_7D "ib_calls_7d",
    28 IB_CALLS_14D "ib_calls_14d",
    29 IB_CALLS_30D "ib_calls_30d",
    30 NEGATIVE_CALL_RATE_30D "negative_call_rate_30d",
    31 DAYS_SINCE_LAST_IB_CALL "days_since_last_ib_call",
    32 STUDENT_CANCELLATIONS_7D "student_cancellations_7d",
    33 STUDENT_CANCELLATIONS_30D "student_cancellations_30d",
    34 CANCELLATION_RATE_30D "cancellation_rate_30d",
    35 NO_SHOWS_30D "no_shows_30d",
    36 STUDENT_REPLY_MINUTES_30D "student_reply_minutes_30d",
    37 DISTINCT_TUTORS_30D "distinct_tutors_30d",
    38 PRIMARY_TUTOR_SHARE_30D "primary_tutor_share_30d",
    39 PRIMARY_TUTOR_SHARE_7D "primary_tutor_share_7d",
    40 PRIMARY_TUTOR_AVG_RATING_30D "primary_tutor_avg_rating_30d",
    41 TUTOR_SWITCHES_30D "tutor_switches_30d",
    42 TUTOR_SWITCH_RATE_30D "tutor_switch_rate_30d",
    43 TUTOR_REPLY_MINUTES_30D "tutor_reply_minutes_30d",
    44 TUTOR_CANCELLATIONS_30D "tutor_cancellations_30d",
    45 DAYS_SINCE_TUTOR_SWITCH "days_since_tutor_switch",
}

/// The 46 feature values in contract order.
pub type Features = [f64; FEATURE_COUNT];

/// What made a vector.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// A record changed the customer's held events; `as_of` is the customer clock.
    Event,
    /// Time passed; `as_of` is the timer's time.
    Timer,
}

/// Where in the input a vector came from.
#[derive(Clone, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct Source {
    /// 1-based line of a capture file (for a timer: the line whose time fired it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    /// Stream shard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard_id: Option<String>,
    /// `dynamodb.SequenceNumber` of the record (for a timer: of the record whose time fired it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence_number: Option<String>,
}

/// One feature vector of one customer as of a time (§5).
///
/// Two vectors are equal when what is written of them is (`emission`, not
/// written, is left out).
#[derive(Clone, Debug, Deserialize)]
pub struct FeatureVector {
    /// The customer.
    pub customer_id: CustomerId,
    /// `T`, in milliseconds since the epoch.
    pub as_of: i64,
    /// What made it.
    pub trigger: Trigger,
    /// Where in the input.
    pub source: Source,
    /// Always [`SCHEMA`].
    pub schema: std::borrow::Cow<'static, str>,
    /// The values, in contract order.
    #[serde(with = "features_array")]
    pub features: Features,
    /// Its place in the customer's stream, which orders its prediction
    /// against the customer's others (§6; see [`crate::order`]). Set by the
    /// processor; not written to vector files, so `None` for a vector read
    /// back from one (then [`FeatureVector::emission`] ranks it by `as_of`).
    #[serde(skip)]
    pub emission: Option<EmissionKey>,
}

impl PartialEq for FeatureVector {
    fn eq(&self, other: &Self) -> bool {
        let FeatureVector { customer_id, as_of, trigger, source, schema, features, emission: _ } = self;
        *customer_id == other.customer_id
            && *as_of == other.as_of
            && *trigger == other.trigger
            && *source == other.source
            && *schema == other.schema
            && *features == other.features
    }
}

impl FeatureVector {
    /// Its place in the customer's stream: the key the processor set, else
    /// one from `as_of` ([`EmissionKey::at`], or [`EmissionKey::timer`] for a
    /// timer vector).
    pub fn emission(&self) -> EmissionKey {
        match (&self.emission, self.trigger) {
            (Some(key), _) => key.clone(),
            (None, Trigger::Timer) => EmissionKey::timer(self.as_of),
            (None, Trigger::Event) => EmissionKey::at(self.as_of),
        }
    }
}

impl Serialize for FeatureVector {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(6))?;
        m.serialize_entry("customer_id", &self.customer_id)?;
        m.serialize_entry("as_of", &self.as_of)?;
        m.serialize_entry("trigger", &self.trigger)?;
        m.serialize_entry("source", &self.source)?;
        m.serialize_entry("schema", &self.schema)?;
        m.serialize_entry("features", &Compact(&self.features))?;
        m.end()
    }
}

/// Writes whole numbers (every count) as JSON integers, the rest as shortest
/// round-trip floats: smaller files, and faster to write.
struct Compact<'a>(&'a Features);

impl Serialize for Compact<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(FEATURE_COUNT))?;
        for &x in self.0 {
            if x.fract() == 0.0 && x.abs() < 9.0e15 {
                seq.serialize_element(&(x as i64))?;
            } else {
                seq.serialize_element(&x)?;
            }
        }
        seq.end()
    }
}

mod features_array {
    use super::{Features, FEATURE_COUNT};
    use serde::{de::Error, Deserialize, Deserializer};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Features, D::Error> {
        let v = Vec::<f64>::deserialize(d)?;
        let n = v.len();
        v.try_into().map_err(|_| D::Error::custom(format!("expected {FEATURE_COUNT} features, found {n}")))
    }
}
