//! Capture files: one DynamoDB Streams record per line, in AWS's JSON shape
//! (an element of a Lambda DynamoDB event's `Records`).
//!
//! [`decode_line`] reads only the fields the contract reads, borrowing
//! strings from the line: a hand-written reader of the usual shape of a line
//! first (`fast`), which gives up on anything else; then serde's
//! ([`decode_line_serde`]), which decides every line the first one gave up
//! on and words its reason. Both hand what they read to the same rules
//! (`RecordParts::interpret`), and they agree on every line the first one
//! accepts (checked by the tests and the decoder fuzzer).

mod fast;

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{value::MapAccessDeserializer, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;

use crate::attr::Image;

/// The longest capture line decoded: 1 MiB. A DynamoDB item is at most
/// 400 KB, so a stream record with both images and its envelope stays well
/// below; a longer line is not a record (a runaway file, `/dev/zero`) and
/// becomes an `line_too_long` dead letter, read past without being held.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// The bytes of a too-long line its dead letter keeps.
pub const TOO_LONG_EXCERPT_BYTES: usize = 1024;
use crate::record::{is_ttl_identity, Invalid, InvalidReason, RecordParts, StreamRecord};

/// A `T` read from a JSON object only.
///
/// serde's derived `Deserialize` for a struct also accepts a JSON array,
/// whose elements fill the fields by position (`["INSERT", {...}]` would be
/// a record). A stream record and its parts are objects in AWS's shape, so
/// each struct here is read through this wrapper, which visits a map only;
/// an array is refused as malformed.
struct MapOnly<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for MapOnly<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = T;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map))
            }
        }
        d.deserialize_map(V(PhantomData)).map(MapOnly)
    }
}

#[derive(Deserialize)]
struct RawRecord<'a> {
    #[serde(rename = "eventName", borrow)]
    event_name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    dynamodb: Option<MapOnly<RawStreamRecord<'a>>>,
    #[serde(rename = "userIdentity", borrow, default)]
    user_identity: Option<MapOnly<RawIdentity<'a>>>,
}

#[derive(Deserialize)]
struct RawStreamRecord<'a> {
    #[serde(rename = "ApproximateCreationDateTime", default)]
    approximate_creation_date_time: Option<f64>,
    /// Not read, but an object like the images (as `aws_lambda_events`
    /// requires it); `null` is absent.
    #[serde(rename = "Keys", default)]
    _keys: Option<MapOnly<IgnoredAny>>,
    #[serde(rename = "NewImage", borrow, default)]
    new_image: Option<Image<'a>>,
    #[serde(rename = "OldImage", borrow, default)]
    old_image: Option<Image<'a>>,
    #[serde(rename = "SequenceNumber", borrow, default)]
    sequence_number: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct RawIdentity<'a> {
    #[serde(rename = "type", borrow, default)]
    type_: Option<Cow<'a, str>>,
    #[serde(rename = "principalId", borrow, default)]
    principal_id: Option<Cow<'a, str>>,
}

/// The UTF-8 byte order mark, which some editors write at the start of a file.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Decodes one capture line.
///
/// One UTF-8 byte order mark at the start of the line is skipped: an editor
/// that saves a capture file may add one, and it would make the file's first
/// record a dead letter. Anywhere else (or twice) it is malformed JSON.
///
/// `ApproximateCreationDateTime` is read as seconds since the epoch (the
/// DynamoDB Streams / Lambda shape), possibly fractional, and must be a
/// plausible time ([`crate::validate::check_creation_time`]) on every
/// record, event or not.
pub fn decode_line(line: &[u8]) -> Result<StreamRecord<'_>, Invalid> {
    let body = line.strip_prefix(BOM).unwrap_or(line);
    // Filled in place: the parts hold two images of ~450 bytes each, which
    // moving from reader to reader would copy a few times a line.
    let mut parts = RecordParts::default();
    match fast::read(body, &mut parts) {
        Some(event_name) => parts.interpret(event_name),
        None => decode_line_serde(line),
    }
}

/// A record that is not JSON, said with where in its line: serde's "at line
/// 1 column 24" read as the capture's line 1, which the dead letter's
/// `source` names already. `skipped`: bytes before what serde read (a
/// byte order mark).
fn malformed(e: &serde_json::Error, skipped: usize) -> InvalidReason {
    let text = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    match text.strip_suffix(&suffix) {
        Some(what) if e.line() == 1 => {
            InvalidReason::Malformed(format!("{what} at byte {} of the line", e.column() + skipped))
        }
        _ => InvalidReason::Malformed(text),
    }
}

/// [`decode_line`] through serde alone: the reader of every line the fast
/// one gives up on, and the reference it is checked against.
#[doc(hidden)]
pub fn decode_line_serde(line: &[u8]) -> Result<StreamRecord<'_>, Invalid> {
    let bom = if line.starts_with(BOM) { BOM.len() } else { 0 };
    let line = &line[bom..];
    // Counted in the line as it is in the capture, its mark included.
    let MapOnly(raw): MapOnly<RawRecord<'_>> = serde_json::from_slice(line).map_err(|e| malformed(&e, bom))?;
    let event_name = raw.event_name.ok_or_else(|| InvalidReason::Malformed("eventName is missing".into()))?;
    let MapOnly(stream) = raw.dynamodb.ok_or_else(|| InvalidReason::Malformed("dynamodb is missing".into()))?;
    let by_ttl = raw
        .user_identity
        .as_ref()
        .is_some_and(|MapOnly(u)| is_ttl_identity(u.type_.as_deref(), u.principal_id.as_deref()));
    let parts = RecordParts {
        created_ms: stream.approximate_creation_date_time.map(|s| s * 1000.0),
        sequence_number: stream.sequence_number,
        by_ttl,
        new_image: stream.new_image,
        old_image: stream.old_image,
    };
    parts.interpret(&event_name)
}

/// The capture line of a Kinesis Data Streams for DynamoDB payload (the
/// record's decoded `Data`): `dynamodb.ApproximateCreationDateTime` rewritten
/// from milliseconds (or microseconds, when
/// `dynamodb.ApproximateCreationDateTimePrecision` says `MICROSECOND`) to
/// seconds. Anything that is not a JSON object, or has no numeric creation
/// time, is returned as it came (the decoder judges it).
pub fn kinesis_line(payload: &[u8]) -> Vec<u8> {
    let Ok(Value::Object(mut record)) = serde_json::from_slice::<Value>(payload) else {
        return payload.to_vec();
    };
    let Some(Value::Object(dynamodb)) = record.get_mut("dynamodb") else {
        return payload.to_vec();
    };
    let per_second = match dynamodb.get("ApproximateCreationDateTimePrecision").and_then(Value::as_str) {
        Some(p) if p.eq_ignore_ascii_case("MICROSECOND") => 1e6,
        _ => 1e3,
    };
    let Some(created) = dynamodb.get("ApproximateCreationDateTime").and_then(Value::as_f64) else {
        return payload.to_vec();
    };
    // One correctly rounded division: the same f64 as parsing the exact
    // decimal text of the seconds would give.
    let Some(seconds) = serde_json::Number::from_f64(created / per_second) else {
        return payload.to_vec();
    };
    dynamodb.insert("ApproximateCreationDateTime".to_owned(), Value::Number(seconds));
    serde_json::to_vec(&record).expect("a JSON value serializes")
}
