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

/// Days of history below which a customer is new ([`is_new_customer`]),
/// and below which a vector with no session on record is a signup record
/// ([`is_signup_record`]).
pub const NEW_CUSTOMER_DAYS: f64 = 7.0;

/// Whether a vector is a new customer's: less than a week since the
/// customer's first event (`tenure_days` below [`NEW_CUSTOMER_DAYS`]),
/// sessions or not. A first week is too little history to judge by: with
/// no session the vector is the contract's "nothing on record" defaults,
/// which the model scores high (about 0.95) whatever the customer goes on
/// to do; with a session or two it still scores most thriving customers
/// high (alerting on a customer's first vector with a session sent 34 of 43
/// such alerts of a demo to customers thriving or healthy on its first and
/// last day). Alerts wait for the customer's first vector past its first
/// week (`pulse_operators::scoring::alerts`, which gives the measurements).
pub fn is_new_customer(x: &Features) -> bool {
    x[idx::TENURE_DAYS] < NEW_CUSTOMER_DAYS
}

/// Whether a vector is the record of a customer who has just signed up: no
/// session on record (`days_since_last_session` at its "none" value, 365)
/// and less than a week since its first event (`tenure_days` below
/// [`NEW_CUSTOMER_DAYS`]). Reasons compared with such a vector compare with
/// an empty record, and say so ("since signing up", `pulse_schemas::reasons`).
pub fn is_signup_record(x: &Features) -> bool {
    is_new_customer(x) && has_no_session(x)
}

/// Whether a vector has no session on record (`days_since_last_session` at
/// its "none" value, 365).
pub fn has_no_session(x: &Features) -> bool {
    crate::reasons::value_is_no_data(idx::DAYS_SINCE_LAST_SESSION, x[idx::DAYS_SINCE_LAST_SESSION])
}

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

impl FeatureVector {
    /// Appends the vector as one JSON line, exactly the bytes its
    /// [`Serialize`] impl gives through `serde_json::to_writer` followed by a
    /// newline, written straight into `out`: numbers by `itoa` and `zmij`
    /// (the formatters serde_json uses), strings copied as they are unless
    /// they need escaping (then serde_json escapes them). The vector files'
    /// writer: a replay writes one of these per vector.
    pub fn write_json_line(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"customer_id\":");
        json_str(self.customer_id.as_str(), out);
        out.extend_from_slice(b",\"as_of\":");
        out.extend_from_slice(itoa::Buffer::new().format(self.as_of).as_bytes());
        out.extend_from_slice(match self.trigger {
            Trigger::Event => b",\"trigger\":\"event\",\"source\":{",
            Trigger::Timer => b",\"trigger\":\"timer\",\"source\":{",
        });
        let mut sep: &[u8] = b"";
        if let Some(line) = self.source.line {
            out.extend_from_slice(b"\"line\":");
            out.extend_from_slice(itoa::Buffer::new().format(line).as_bytes());
            sep = b",";
        }
        if let Some(shard) = &self.source.shard_id {
            out.extend_from_slice(sep);
            out.extend_from_slice(b"\"shard_id\":");
            json_str(shard, out);
            sep = b",";
        }
        if let Some(seq) = &self.source.sequence_number {
            out.extend_from_slice(sep);
            out.extend_from_slice(b"\"sequence_number\":");
            json_str(seq, out);
        }
        out.extend_from_slice(b"},\"schema\":");
        json_str(&self.schema, out);
        // The numbers go into a stack buffer first and reach `out` in one
        // copy: a line's 46 numbers are mostly one digit (63% are whole
        // numbers below 10 in a replay of the generator's capture), and 46
        // small appends to `out`, each checking its capacity and calling
        // memcpy for a byte or two, cost more than formatting them did.
        // At most 24 bytes a number (a float at most 24, an i64 20), a comma
        // each, and the brackets around them.
        let mut buf = [0u8; FEATURE_COUNT * 25 + 4];
        buf[0] = b'[';
        let mut n = 1;
        let (mut ints, mut floats) = (itoa::Buffer::new(), zmij::Buffer::new());
        for (i, &x) in self.features.iter().enumerate() {
            if i > 0 {
                buf[n] = b',';
                n += 1;
            }
            // As `Compact` decides, then as serde_json writes an i64 and an f64.
            let text = if is_compact_int(x) {
                let whole = x as i64;
                if (0..10).contains(&whole) {
                    buf[n] = b'0' + whole as u8;
                    n += 1;
                    continue;
                }
                ints.format(whole)
            } else if x.is_finite() {
                floats.format_finite(x)
            } else {
                "null"
            };
            buf[n..n + text.len()].copy_from_slice(text.as_bytes());
            n += text.len();
        }
        buf[n..n + 3].copy_from_slice(b"]}\n");
        out.extend_from_slice(b",\"features\":");
        out.extend_from_slice(&buf[..n + 3]);
    }
}

/// Appends `s` as a JSON string: as it is between quotes when nothing in it
/// needs an escape (the usual id), else as serde_json writes it.
pub(crate) fn json_str(s: &str, out: &mut Vec<u8>) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        serde_json::to_writer(&mut *out, s).expect("a string serializes");
    }
}

/// An `f64` as serde_json writes one: shortest round trip by `zmij`, `null`
/// when not finite.
pub(crate) fn json_f64(x: f64, out: &mut Vec<u8>) {
    if x.is_finite() {
        out.extend_from_slice(zmij::Buffer::new().format_finite(x).as_bytes());
    } else {
        out.extend_from_slice(b"null");
    }
}

/// Whether [`Compact`] writes `x` as an integer: a whole number below
/// 9e15 in magnitude (`x.fract() == 0.0 && x.abs() < 9.0e15`, without the
/// call to `trunc` that `fract` costs on baseline x86-64: below 9e15 < 2^53,
/// `x as i64` is exact exactly when `x` is whole; NaN fails the first test).
#[inline]
fn is_compact_int(x: f64) -> bool {
    x.abs() < 9.0e15 && (x as i64) as f64 == x
}

/// Writes whole numbers (every count) as JSON integers, the rest as shortest
/// round-trip floats: smaller files, and faster to write.
struct Compact<'a>(&'a Features);

impl Serialize for Compact<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(FEATURE_COUNT))?;
        for &x in self.0 {
            if is_compact_int(x) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_new_customer_has_under_a_week_sessions_or_not() {
        // A first vector: nothing on record.
        let mut x = [0.0; FEATURE_COUNT];
        x[idx::DAYS_SINCE_LAST_SESSION] = 365.0;
        x[idx::DAYS_SINCE_LAST_LOGIN] = 0.0;
        x[idx::TENURE_DAYS] = 0.0;
        assert!(is_new_customer(&x) && is_signup_record(&x));
        x[idx::TENURE_DAYS] = 6.99;
        assert!(is_new_customer(&x) && is_signup_record(&x));
        x[idx::TENURE_DAYS] = 7.0;
        assert!(!is_new_customer(&x) && !is_signup_record(&x), "a week without a session");
        // A first session leaves the signup record, not the first week:
        // one session is too little to judge by.
        x[idx::TENURE_DAYS] = 1.0;
        x[idx::DAYS_SINCE_LAST_SESSION] = 0.5;
        assert!(is_new_customer(&x), "a first session, a day in");
        assert!(!is_signup_record(&x), "a session on record");
        x[idx::TENURE_DAYS] = 7.5;
        assert!(!is_new_customer(&x), "past its first week");
    }

    fn serde_line(v: &FeatureVector) -> Vec<u8> {
        let mut line = serde_json::to_vec(v).unwrap();
        line.push(b'\n');
        line
    }

    fn vector(customer_id: &str, source: Source, features: Features, trigger: Trigger) -> FeatureVector {
        FeatureVector {
            customer_id: CustomerId::new(customer_id),
            as_of: -1_700_000_000_123,
            trigger,
            source,
            schema: std::borrow::Cow::Borrowed(SCHEMA),
            features,
            emission: None,
        }
    }

    #[test]
    fn the_line_is_serde_jsons_byte_for_byte_on_the_edges() {
        let mut features = [0.0; FEATURE_COUNT];
        let edges = [
            -0.0,
            // The one-digit fast path's ends.
            9.0,
            10.0,
            -1.0,
            9.5,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            9.0e15,
            -9.0e15,
            8.999_999_999_999_999e15,
            1e16,
            1e300,
            5e-324,
            f64::MIN_POSITIVE,
            f64::MAX,
            f64::MIN,
            0.1,
            1.0 / 3.0,
            -2.5,
            123_456_789.0,
            i64::MAX as f64,
            0.000_001,
            1e21,
            1e-7,
        ];
        features[..edges.len()].copy_from_slice(&edges);
        let sources = [
            Source::default(),
            Source { line: Some(7), ..Source::default() },
            Source { line: None, shard_id: Some("shardId-0001".into()), sequence_number: Some("12345".into()) },
            Source { line: Some(u64::MAX), shard_id: None, sequence_number: Some("9".into()) },
            Source { line: Some(1), shard_id: Some("s\"h\\a\u{1}rd\n".into()), sequence_number: None },
        ];
        for source in sources {
            for id in ["stu_00001", "", "quote\"back\\slash", "ctl\u{0}\u{1f}\t", "ünï\u{7f}😀"] {
                for trigger in [Trigger::Event, Trigger::Timer] {
                    let v = vector(id, source.clone(), features, trigger);
                    let mut line = Vec::new();
                    v.write_json_line(&mut line);
                    assert_eq!(String::from_utf8_lossy(&line), String::from_utf8_lossy(&serde_line(&v)));
                }
            }
        }
    }

    #[test]
    fn the_integer_test_is_fracts() {
        let mut xs =
            vec![0.0, -0.0, 0.5, -0.5, 1.0, -1.0, 9.0e15, -9.0e15, 8_999_999_999_999_999.0, 4503599627370495.5];
        xs.extend([
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MIN_POSITIVE,
            5e-324,
            1e300,
            2.0f64.powi(52) + 0.5,
        ]);
        xs.extend((0..10_000).map(|i| f64::from_bits(0x9E37_79B9_7F4A_7C15u64.wrapping_mul(i + 1))));
        xs.extend((0..10_000).map(|i| (i as f64 - 5000.0) / 8.0));
        for x in xs {
            assert_eq!(is_compact_int(x), x.fract() == 0.0 && x.abs() < 9.0e15, "{x:e}");
        }
    }

    proptest! {
        #[test]
        fn the_line_is_serde_jsons_byte_for_byte(
            bits in proptest::collection::vec(any::<u64>(), FEATURE_COUNT),
            small in proptest::collection::vec(-1_000_000i64..1_000_000, FEATURE_COUNT),
            scale in proptest::collection::vec(prop_oneof![Just(1.0), Just(0.5), Just(0.001), Just(7.0)], FEATURE_COUNT),
            pick in proptest::collection::vec(any::<bool>(), FEATURE_COUNT),
            id in "\\PC{0,12}",
            line in proptest::option::of(any::<u64>()),
            as_of in any::<i64>(),
        ) {
            let mut features = [0.0; FEATURE_COUNT];
            for i in 0..FEATURE_COUNT {
                features[i] = if pick[i] { f64::from_bits(bits[i]) } else { small[i] as f64 * scale[i] };
            }
            let mut v = vector(&id, Source { line, ..Source::default() }, features, Trigger::Event);
            v.as_of = as_of;
            let mut out = b"kept".to_vec();
            v.write_json_line(&mut out);
            prop_assert_eq!(&out[..4], b"kept");
            let expected = serde_line(&v);
            prop_assert_eq!(String::from_utf8_lossy(&out[4..]), String::from_utf8_lossy(&expected));
        }
    }
}
