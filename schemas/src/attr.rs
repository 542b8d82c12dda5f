//! A read-only view of the DynamoDB attribute values pulse reads.
//!
//! The capture decoder borrows these straight from the JSON line; the Lambda
//! decoder points them at `serde_dynamo`'s [`AttributeValue`]s. Either way
//! [`crate::validate`] sees the same [`Image`], so both paths judge a record
//! the same.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use serde_dynamo::AttributeValue;

/// One attribute value: its DynamoDB type and, for the two types the contract
/// uses (`S` and `N`), its text.
#[derive(Clone, Debug, PartialEq)]
pub enum AttrRef<'a> {
    /// A string (`{"S": "..."}`).
    S(Cow<'a, str>),
    /// A number, as DynamoDB sends it: decimal text (`{"N": "12.5"}`).
    N(Cow<'a, str>),
    /// Any other type; the name is its DynamoDB type tag (`BOOL`, `M`, ...).
    Other(&'static str),
}

impl AttrRef<'_> {
    /// The DynamoDB type tag (`S`, `N`, `BOOL`, ...).
    pub fn type_tag(&self) -> &'static str {
        match self {
            AttrRef::S(_) => "S",
            AttrRef::N(_) => "N",
            AttrRef::Other(t) => t,
        }
    }
}

impl<'a> From<&'a AttributeValue> for AttrRef<'a> {
    fn from(v: &'a AttributeValue) -> Self {
        match v {
            AttributeValue::S(s) => AttrRef::S(Cow::Borrowed(s)),
            AttributeValue::N(n) => AttrRef::N(Cow::Borrowed(n)),
            AttributeValue::Bool(_) => AttrRef::Other("BOOL"),
            AttributeValue::Null(_) => AttrRef::Other("NULL"),
            AttributeValue::B(_) => AttrRef::Other("B"),
            AttributeValue::Ss(_) => AttrRef::Other("SS"),
            AttributeValue::Ns(_) => AttrRef::Other("NS"),
            AttributeValue::Bs(_) => AttrRef::Other("BS"),
            AttributeValue::M(_) => AttrRef::Other("M"),
            AttributeValue::L(_) => AttrRef::Other("L"),
        }
    }
}

pub(crate) fn static_tag(tag: &str) -> &'static str {
    match tag {
        "BOOL" => "BOOL",
        "NULL" => "NULL",
        "B" => "B",
        "SS" => "SS",
        "NS" => "NS",
        "BS" => "BS",
        "M" => "M",
        "L" => "L",
        _ => "unknown",
    }
}

/// Text that borrows from the input when it holds no escapes.
struct BorrowedText<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for BorrowedText<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = BorrowedText<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(BorrowedText(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(BorrowedText(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(BorrowedText(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V(std::marker::PhantomData))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for AttrRef<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = AttrRef<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a DynamoDB attribute value such as {\"S\": \"text\"}")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let Some(tag) = map.next_key::<BorrowedText<'a>>()? else {
                    return Err(de::Error::custom("empty attribute value"));
                };
                let value = match &*tag.0 {
                    "S" => AttrRef::S(map.next_value::<BorrowedText<'a>>()?.0),
                    "N" => AttrRef::N(map.next_value::<BorrowedText<'a>>()?.0),
                    other => {
                        map.next_value::<IgnoredAny>()?;
                        AttrRef::Other(static_tag(other))
                    }
                };
                if map.next_key::<IgnoredAny>()?.is_some() {
                    return Err(de::Error::custom("an attribute value has exactly one type tag"));
                }
                Ok(value)
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

/// The attributes of an item that the contract reads; all others are ignored.
///
/// It deserializes from a map of attribute names to attribute values only
/// (see the `Deserialize` impl below).
#[derive(Clone, Debug, Default, PartialEq)]
#[allow(missing_docs)]
pub struct Image<'a> {
    pub customer_id: Option<AttrRef<'a>>,
    pub entity_type: Option<AttrRef<'a>>,
    pub event_id: Option<AttrRef<'a>>,
    pub event_type: Option<AttrRef<'a>>,
    pub ts: Option<AttrRef<'a>>,
    pub tutor_id: Option<AttrRef<'a>>,
    pub duration_min: Option<AttrRef<'a>>,
    pub cancelled_by: Option<AttrRef<'a>>,
    pub rating: Option<AttrRef<'a>>,
    pub amount: Option<AttrRef<'a>>,
    pub status: Option<AttrRef<'a>>,
    pub sentiment: Option<AttrRef<'a>>,
    pub from: Option<AttrRef<'a>>,
    pub response_minutes: Option<AttrRef<'a>>,
}

impl<'a> Image<'a> {
    /// The field of an attribute the contract reads, with its position and
    /// its name as a `&'static str` (for error messages); `None` for any
    /// other attribute.
    pub(crate) fn field(&mut self, name: &str) -> Option<(u32, &'static str, &mut Option<AttrRef<'a>>)> {
        Some(match name {
            "customer_id" => (0, "customer_id", &mut self.customer_id),
            "entity_type" => (1, "entity_type", &mut self.entity_type),
            "event_id" => (2, "event_id", &mut self.event_id),
            "event_type" => (3, "event_type", &mut self.event_type),
            "ts" => (4, "ts", &mut self.ts),
            "tutor_id" => (5, "tutor_id", &mut self.tutor_id),
            "duration_min" => (6, "duration_min", &mut self.duration_min),
            "cancelled_by" => (7, "cancelled_by", &mut self.cancelled_by),
            "rating" => (8, "rating", &mut self.rating),
            "amount" => (9, "amount", &mut self.amount),
            "status" => (10, "status", &mut self.status),
            "sentiment" => (11, "sentiment", &mut self.sentiment),
            "from" => (12, "from", &mut self.from),
            "response_minutes" => (13, "response_minutes", &mut self.response_minutes),
            _ => return None,
        })
    }
}

/// An image is a map (a JSON object) and nothing else.
///
/// serde's derived `Deserialize` for a struct also accepts the sequence form
/// (a JSON array), mapping its elements onto the fields by position: so
/// `"NewImage": [{"S": "stu_x"}, {"S": "event"}, ...]` was read as a valid
/// event. This impl only visits a map, so an array is refused ("invalid
/// type: sequence"), and the record is a dead letter as malformed. As with
/// the derive it replaces: other attributes are ignored, an attribute given
/// twice is an error, `null` counts as absent.
impl<'de: 'a, 'a> Deserialize<'de> for Image<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Image<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a DynamoDB item: a JSON object of attribute names to attribute values, not an array")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut image = Image::default();
                // Attributes seen, a bit each by position (a `null` one is
                // absent but seen).
                let mut seen = 0u32;
                while let Some(name) = map.next_key::<BorrowedText<'a>>()? {
                    let Some((position, name, field)) = image.field(&name.0) else {
                        map.next_value::<IgnoredAny>()?;
                        continue;
                    };
                    if seen & (1 << position) != 0 {
                        return Err(de::Error::duplicate_field(name));
                    }
                    seen |= 1 << position;
                    *field = map.next_value::<Option<AttrRef<'a>>>()?;
                }
                Ok(image)
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

impl<'a> Image<'a> {
    /// Reads the contract's attributes out of a `serde_dynamo` item.
    pub fn from_item(item: &'a serde_dynamo::Item) -> Self {
        let get = |name: &str| item.get(name).map(AttrRef::from);
        Image {
            customer_id: get("customer_id"),
            entity_type: get("entity_type"),
            event_id: get("event_id"),
            event_type: get("event_type"),
            ts: get("ts"),
            tutor_id: get("tutor_id"),
            duration_min: get("duration_min"),
            cancelled_by: get("cancelled_by"),
            rating: get("rating"),
            amount: get("amount"),
            status: get("status"),
            sentiment: get("sentiment"),
            from: get("from"),
            response_minutes: get("response_minutes"),
        }
    }

    /// Whether the item is an event (`entity_type = event`); anything else is
    /// skipped silently, never a dead letter.
    pub fn is_event(&self) -> bool {
        matches!(&self.entity_type, Some(AttrRef::S(s)) if s == "event")
    }
}
