//! The fast path from a [`Pending`] record to one line of AWS's JSON.
//!
//! Lines are assembled by hand into one reused buffer: every string the
//! generator writes is ASCII without quotes or backslashes (the table name is
//! validated), so nothing needs escaping, and numbers are written from
//! fixed-point integers as plain decimals (never an exponent, never `NaN`
//! unless a [`Fault`] asks for it).

use std::io::{self, Write};

use pulse_schemas::{Party, Segment, Sentiment};

use super::config::{RecordProfile, SynthConfig};
use super::record::{Body, EventItem, Fault, IdSpace, Item, Op, Pending, PredictionItem, ProfileItem, EVENT_TYPES};
use super::rng::splitmix64;

/// Writes records as JSON Lines, numbering them (`SequenceNumber`) in the
/// order they are written.
#[derive(Debug)]
pub(crate) struct JsonWriter {
    buf: Vec<u8>,
    /// `"eventSourceARN":"..."`, precomputed.
    arn: Vec<u8>,
    seed: u64,
    /// Records written so far.
    written: u64,
    /// Whether the next attribute is the first of its object.
    first: bool,
    /// Approximate item size for `SizeBytes`: attribute names plus values.
    size: usize,
    /// Whether event items carry the extra attributes of [`RecordProfile::Realistic`].
    extras: bool,
}

impl JsonWriter {
    pub(crate) fn new(config: &SynthConfig) -> JsonWriter {
        let arn = format!(
            "\"eventSourceARN\":\"arn:aws:dynamodb:us-east-1:123456789012:table/{}/stream/{}\"",
            config.table_name,
            iso8601(config.start_ms)
        );
        JsonWriter {
            buf: Vec::with_capacity(1 << 20),
            arn: arn.into_bytes(),
            seed: config.seed,
            written: 0,
            first: true,
            size: 0,
            extras: config.record_profile == RecordProfile::Realistic,
        }
    }

    /// Bytes waiting to be flushed.
    pub(crate) fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Hands the buffered lines to `out`.
    pub(crate) fn flush_to(&mut self, out: &mut impl Write) -> io::Result<()> {
        out.write_all(&self.buf)?;
        self.buf.clear();
        Ok(())
    }

    /// Appends one record as a line.
    pub(crate) fn write(&mut self, p: &Pending) {
        self.written += 1;
        let seq = self.written;
        let b = &mut self.buf;
        b.extend_from_slice(b"{\"eventID\":\"");
        let h1 = splitmix64(self.seed ^ splitmix64(seq));
        push_hex(b, h1);
        push_hex(b, splitmix64(h1 ^ seq));
        b.extend_from_slice(b"\",\"eventName\":\"");
        b.extend_from_slice(match p.op {
            Op::Insert => b"INSERT".as_slice(),
            Op::Modify => b"MODIFY",
            Op::Remove | Op::TtlRemove => b"REMOVE",
        });
        b.extend_from_slice(
            b"\",\"eventVersion\":\"1.1\",\"eventSource\":\"aws:dynamodb\",\"awsRegion\":\"us-east-1\",\
              \"dynamodb\":{\"ApproximateCreationDateTime\":",
        );
        push_fixed(b, p.created_ms, 3);
        b.extend_from_slice(b",\"Keys\":{");
        self.size = 0;
        self.first = true;
        let key_item = p.old.as_ref().or(p.new.as_ref()).copied();
        if let Some(item) = key_item {
            self.keys(p.customer, &item);
        }
        if let Some(item) = p.new {
            self.buf.extend_from_slice(b"},\"NewImage\":{");
            self.image(p.customer, &item);
        }
        if let Some(item) = p.old {
            self.buf.extend_from_slice(b"},\"OldImage\":{");
            self.image(p.customer, &item);
        }
        let b = &mut self.buf;
        b.extend_from_slice(b"},\"SequenceNumber\":\"4");
        push_padded(b, seq, 20);
        b.extend_from_slice(b"\",\"SizeBytes\":");
        push_u64(b, self.size as u64);
        b.extend_from_slice(b",\"StreamViewType\":\"NEW_AND_OLD_IMAGES\"},");
        b.extend_from_slice(&self.arn);
        if p.op == Op::TtlRemove {
            b.extend_from_slice(b",\"userIdentity\":{\"type\":\"Service\",\"principalId\":\"dynamodb.amazonaws.com\"}");
        }
        b.extend_from_slice(b"}\n");
    }

    fn keys(&mut self, customer: u32, item: &Item) {
        self.customer_id(customer);
        match item {
            Item::Event(e) => self.event_sk(customer, e),
            Item::Prediction(_) => self.s("sk", "PRED#latest"),
            Item::Profile(_) => self.s("sk", "PROFILE"),
        }
    }

    fn image(&mut self, customer: u32, item: &Item) {
        self.first = true;
        match item {
            Item::Event(e) => self.event_image(customer, e),
            Item::Prediction(p) => self.prediction_image(customer, p),
            Item::Profile(p) => self.profile_image(customer, p),
        }
    }

    fn event_image(&mut self, customer: u32, e: &EventItem) {
        let fault = e.fault;
        self.customer_id(customer);
        self.event_sk(customer, e);
        self.s("entity_type", "event");
        self.attr_s("event_id", |b| push_event_id(b, customer, e));
        if fault == Fault::UnknownEventType {
            self.s("event_type", ["session_started", "page_view", "Login", "refund_issued"][e.id as usize % 4]);
        } else {
            self.s("event_type", EVENT_TYPES[e.body.type_index()]);
        }
        let has_number = matches!(
            e.body,
            Body::SessionCompleted { .. }
                | Body::SessionRated { .. }
                | Body::Payment { .. }
                | Body::MessageReply { .. }
        );
        match fault {
            Fault::MissingAttribute if e.body == Body::Login => {}
            Fault::WrongType if !has_number => self.attr_s("ts", |b| push_i64(b, e.ts)),
            Fault::BadTimestamp => self.attr_n("ts", |b| {
                push_i64(b, e.ts);
                b.extend_from_slice(b".5");
            }),
            _ => self.attr_n("ts", |b| push_i64(b, e.ts)),
        }
        self.body(&e.body, fault);
        if let Some(code) = fault.code() {
            self.s("synth_fault", code);
        }
        if self.extras {
            self.extra_attributes(customer, e);
        }
    }

    /// What a production table's event item carries besides the contract
    /// ([`RecordProfile::Realistic`]): a string, a map and a list, ignored
    /// by the decoder (§1). Drawn from `(seed, customer, event id)` alone, so
    /// every image of one item (its duplicates, a correction's old side)
    /// carries the same values.
    fn extra_attributes(&mut self, customer: u32, e: &EventItem) {
        const SOURCES: [&str; 4] = ["ios", "android", "web", "backend"];
        const DEVICES: [(&str, &str); 4] = [
            ("iPhone15,3", "iOS 17.4.1"),
            ("Pixel 8", "Android 14"),
            ("MacBookPro18,1", "macOS 14.3"),
            ("Windows Desktop", "Windows 11"),
        ];
        const TAGS: [&str; 8] =
            ["trial", "promo_spring", "referral", "b2b", "high_school", "sat_prep", "ap_calculus", "gift_card"];
        let space = if e.id_space == IdSpace::Extra { 1 << 63 } else { 0 };
        let h = splitmix64(self.seed ^ splitmix64(((u64::from(customer) << 32) | u64::from(e.id)) ^ space));
        let pick = |shift: u32, n: usize| ((h >> shift) as usize) % n;
        let source = pick(0, SOURCES.len());
        self.s("source", SOURCES[source]);
        // `client`: a map of three strings.
        let (device, os) = DEVICES[source];
        self.nested("client", b"\":{\"M\":{", |w| {
            w.s("device", device);
            w.s("os", os);
            w.attr_s("app_version", |b| {
                b.extend_from_slice(b"4.");
                push_u64(b, (h >> 8) % 30);
                b.push(b'.');
                push_u64(b, (h >> 16) % 10);
            });
        });
        // `tags`: a list of none to three strings.
        let tags = pick(24, 4);
        self.nested("tags", b"\":{\"L\":[", |w| {
            for i in 0..tags {
                let tag = TAGS[(pick(32, TAGS.len()) + 3 * i) % TAGS.len()];
                if i > 0 {
                    w.buf.push(b',');
                }
                w.buf.extend_from_slice(b"{\"S\":\"");
                w.buf.extend_from_slice(tag.as_bytes());
                w.buf.extend_from_slice(b"\"}");
                w.size += tag.len() + 1;
            }
        });
    }

    /// A map (`tag` ends in `{`) or list (`[`) attribute whose content
    /// `fill` writes, counting its own share of `SizeBytes` from zero;
    /// DynamoDB adds 3 bytes for the container itself.
    fn nested(&mut self, name: &'static str, tag: &[u8], fill: impl FnOnce(&mut JsonWriter)) {
        if !self.first {
            self.buf.push(b',');
        }
        self.buf.push(b'"');
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.extend_from_slice(tag);
        let close: &[u8] = if tag.ends_with(b"[") { b"]}" } else { b"}}" };
        let size = std::mem::take(&mut self.size);
        self.first = true;
        fill(self);
        self.size = size + name.len() + self.size + 3;
        self.first = false;
        self.buf.extend_from_slice(close);
    }

    /// The type's own attributes; `fault` says which one to leave out or spoil.
    fn body(&mut self, body: &Body, fault: Fault) {
        let skip_first = fault == Fault::MissingAttribute;
        let disallowed = fault == Fault::NotAllowed;
        match *body {
            Body::SessionCompleted { tutor, duration_tenths } => {
                self.tutor_unless(skip_first, tutor);
                self.number("duration_min", duration_tenths.into(), 1, fault);
            }
            Body::SessionCancelled { tutor, by } => {
                self.tutor_unless(skip_first, tutor);
                self.s("cancelled_by", if disallowed { "admin" } else { party(by) });
            }
            Body::SessionNoShow { tutor } => self.tutor_unless(skip_first, tutor),
            Body::SessionRated { tutor, rating_tenths } => {
                self.tutor_unless(skip_first, tutor);
                self.number("rating", rating_tenths.into(), 1, fault);
            }
            Body::Login => {}
            Body::Payment { amount_cents, succeeded } => {
                if !skip_first {
                    self.number("amount", amount_cents, 2, fault);
                }
                let status = match (disallowed, succeeded) {
                    (true, _) => "pending",
                    (false, true) => "succeeded",
                    (false, false) => "failed",
                };
                self.s("status", status);
            }
            Body::IbCall { sentiment } => {
                if !skip_first {
                    let value = match sentiment {
                        _ if disallowed => "angry",
                        Sentiment::Negative => "negative",
                        Sentiment::Neutral => "neutral",
                        Sentiment::Positive => "positive",
                    };
                    self.s("sentiment", value);
                }
            }
            Body::MessageReply { from, minutes_tenths, tutor } => {
                if !skip_first {
                    self.s("from", if disallowed { "system" } else { party(from) });
                }
                self.number("response_minutes", minutes_tenths.into(), 1, fault);
                if let Some(tutor) = tutor {
                    self.tutor(tutor);
                }
            }
        }
    }

    /// A number attribute, spoiled as `fault` asks.
    fn number(&mut self, name: &'static str, value: i64, decimals: u32, fault: Fault) {
        match fault {
            Fault::WrongType => self.attr_s(name, |b| push_fixed(b, value, decimals)),
            Fault::NotANumber => self.attr_n(name, |b| b.extend_from_slice(b"NaN")),
            _ => self.attr_n(name, |b| push_fixed(b, value, decimals)),
        }
    }

    fn prediction_image(&mut self, customer: u32, p: &PredictionItem) {
        let milli = |x: i32| f64::from(x) / 1000.0;
        let segment = Segment::of(
            milli(p.churn_risk_14d_milli),
            milli(p.churn_risk_30d_milli),
            f64::from(p.health_score_tenths) / 10.0,
        );
        self.customer_id(customer);
        self.s("sk", "PRED#latest");
        self.s("entity_type", "prediction");
        self.attr_n("first_session_success", |b| push_fixed(b, p.first_session_success_milli.into(), 3));
        self.attr_n("session_velocity", |b| push_fixed(b, p.session_velocity_tenths.into(), 1));
        self.attr_n("churn_risk_14d", |b| push_fixed(b, p.churn_risk_14d_milli.into(), 3));
        self.attr_n("churn_risk_30d", |b| push_fixed(b, p.churn_risk_30d_milli.into(), 3));
        self.attr_n("health_score", |b| push_fixed(b, p.health_score_tenths.into(), 1));
        self.s("segment", segment.as_str());
        self.s("model_version", "synth-1");
        self.attr_n("as_of", |b| push_i64(b, p.as_of));
        self.s("features_schema", pulse_schemas::SCHEMA);
    }

    fn profile_image(&mut self, customer: u32, p: &ProfileItem) {
        self.customer_id(customer);
        self.s("sk", "PROFILE");
        self.s("entity_type", "student");
        self.s("plan", if p.weekly_plan { "weekly" } else { "per_session" });
        self.attr_s("primary_tutor_id", |b| push_tutor(b, p.primary_tutor));
        self.attr_n("updated_at", |b| push_i64(b, p.updated_ms));
    }

    fn customer_id(&mut self, customer: u32) {
        self.attr_s("customer_id", |b| push_customer(b, customer));
    }

    fn event_sk(&mut self, customer: u32, e: &EventItem) {
        self.attr_s("sk", |b| {
            b.extend_from_slice(b"EVT#");
            push_padded(b, e.sk_ts.max(0) as u64, 13);
            b.push(b'#');
            push_event_id(b, customer, e);
        });
    }

    fn tutor(&mut self, tutor: u32) {
        self.attr_s("tutor_id", |b| push_tutor(b, tutor));
    }

    fn tutor_unless(&mut self, skip: bool, tutor: u32) {
        if !skip {
            self.tutor(tutor);
        }
    }

    fn s(&mut self, name: &'static str, value: &str) {
        self.attr_s(name, |b| b.extend_from_slice(value.as_bytes()));
    }

    fn attr_s(&mut self, name: &'static str, value: impl FnOnce(&mut Vec<u8>)) {
        self.attr(name, b"\":{\"S\":\"", value);
    }

    fn attr_n(&mut self, name: &'static str, value: impl FnOnce(&mut Vec<u8>)) {
        self.attr(name, b"\":{\"N\":\"", value);
    }

    fn attr(&mut self, name: &'static str, tag: &[u8], value: impl FnOnce(&mut Vec<u8>)) {
        let b = &mut self.buf;
        if !self.first {
            b.push(b',');
        }
        self.first = false;
        b.push(b'"');
        b.extend_from_slice(name.as_bytes());
        b.extend_from_slice(tag);
        let start = b.len();
        value(b);
        self.size += name.len() + (b.len() - start);
        b.extend_from_slice(b"\"}");
    }
}

fn party(p: Party) -> &'static str {
    match p {
        Party::Student => "student",
        Party::Tutor => "tutor",
    }
}

/// `stu_000042`.
fn push_customer(b: &mut Vec<u8>, customer: u32) {
    b.extend_from_slice(b"stu_");
    push_padded(b, customer.into(), 6);
}

/// `tut_0123`.
fn push_tutor(b: &mut Vec<u8>, tutor: u32) {
    b.extend_from_slice(b"tut_");
    push_padded(b, tutor.into(), 4);
}

/// `evt_000042_000123` (behaviour) or `evt_000042_x000007` (made up for
/// hostility); three broken shapes for [`Fault::BadEventId`].
fn push_event_id(b: &mut Vec<u8>, customer: u32, e: &EventItem) {
    let x = if e.id_space == IdSpace::Extra { "x" } else { "" };
    if e.fault == Fault::BadEventId {
        match e.id % 3 {
            0 => b.extend_from_slice(b"evt#"),
            1 => b.extend_from_slice(b"evt "),
            _ => b.extend_from_slice(b"evt_with_a_very_long_name_that_breaks_the_sixty_four_limit_"),
        }
    } else {
        b.extend_from_slice(b"evt_");
    }
    push_padded(b, customer.into(), 6);
    b.push(b'_');
    b.extend_from_slice(x.as_bytes());
    push_padded(b, e.id.into(), 6);
}

/// Decimal digits of `v`.
pub(crate) fn push_u64(b: &mut Vec<u8>, v: u64) {
    push_padded(b, v, 1);
}

/// The two-digit decimal strings `00` to `99`, back to back.
const DIGIT_PAIRS: [u8; 200] = {
    let mut t = [0u8; 200];
    let mut i = 0;
    while i < 100 {
        t[2 * i] = b'0' + (i / 10) as u8;
        t[2 * i + 1] = b'0' + (i % 10) as u8;
        i += 1;
    }
    t
};

/// Decimal digits of `v`, left-padded with zeros to `width` (at most 20).
pub(crate) fn push_padded(b: &mut Vec<u8>, mut v: u64, width: usize) {
    let mut tmp = [b'0'; 20];
    let mut i = tmp.len();
    while v >= 100 {
        let pair = (v % 100) as usize * 2;
        v /= 100;
        i -= 2;
        tmp[i..i + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    }
    if v >= 10 {
        let pair = v as usize * 2;
        i -= 2;
        tmp[i..i + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    } else {
        i -= 1;
        tmp[i] = b'0' + v as u8;
    }
    // `tmp` is pre-filled with zeros: padding is widening the slice.
    let start = i.min(tmp.len().saturating_sub(width));
    b.extend_from_slice(&tmp[start..]);
}

/// Decimal digits of `v`, with a sign when negative.
pub(crate) fn push_i64(b: &mut Vec<u8>, v: i64) {
    if v < 0 {
        b.push(b'-');
    }
    push_u64(b, v.unsigned_abs());
}

/// The fixed-point number `v / 10^decimals` as a plain decimal, without
/// trailing zeros (`12.5`, `4`, `-0.05`), the way DynamoDB normalises numbers.
pub(crate) fn push_fixed(b: &mut Vec<u8>, v: i64, decimals: u32) {
    let scale = 10u64.pow(decimals);
    if v < 0 {
        b.push(b'-');
    }
    let a = v.unsigned_abs();
    push_u64(b, a / scale);
    let mut frac = a % scale;
    if frac == 0 {
        return;
    }
    let mut width = decimals as usize;
    while frac.is_multiple_of(10) {
        frac /= 10;
        width -= 1;
    }
    b.push(b'.');
    push_padded(b, frac, width);
}

fn push_hex(b: &mut Vec<u8>, v: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 16];
    for (i, byte) in v.to_be_bytes().iter().enumerate() {
        out[2 * i] = HEX[usize::from(byte >> 4)];
        out[2 * i + 1] = HEX[usize::from(byte & 0xf)];
    }
    b.extend_from_slice(&out);
}

/// `YYYY-MM-DDTHH:MM:SS.mmm` of a time in milliseconds (UTC).
pub(crate) fn iso8601(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    let (year, month, day) = pulse_schemas::civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}",
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1_000 % 60,
        in_day % 1_000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut b = Vec::new();
        f(&mut b);
        String::from_utf8(b).unwrap()
    }

    #[test]
    fn numbers_are_plain_decimals() {
        assert_eq!(text(|b| push_fixed(b, 1_767_571_200_123, 3)), "1767571200.123");
        assert_eq!(text(|b| push_fixed(b, 1_767_571_200_000, 3)), "1767571200");
        assert_eq!(text(|b| push_fixed(b, 1_767_571_200_100, 3)), "1767571200.1");
        assert_eq!(text(|b| push_fixed(b, 45, 1)), "4.5");
        assert_eq!(text(|b| push_fixed(b, 40, 1)), "4");
        assert_eq!(text(|b| push_fixed(b, 5, 2)), "0.05");
        assert_eq!(text(|b| push_fixed(b, -5, 2)), "-0.05");
        assert_eq!(text(|b| push_fixed(b, 0, 2)), "0");
        assert_eq!(text(|b| push_padded(b, 42, 6)), "000042");
        assert_eq!(text(|b| push_padded(b, 1_234_567, 6)), "1234567");
        assert_eq!(text(|b| push_i64(b, -12)), "-12");
        assert_eq!(text(|b| push_u64(b, u64::MAX)), u64::MAX.to_string());
    }

    #[test]
    fn iso8601_formats_utc() {
        assert_eq!(iso8601(1_767_571_200_000), "2026-01-05T00:00:00.000");
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000");
        assert_eq!(iso8601(951_782_400_000 + 3_723_004), "2000-02-29T01:02:03.004");
    }
}
