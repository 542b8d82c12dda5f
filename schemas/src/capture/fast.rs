//! The capture decoder's fast path: a hand-written reader of the common
//! shape of a capture line, which hands the contract's fields to the same
//! [`RecordParts::interpret`] as the serde reader ([`super::decode_line_serde`]).
//!
//! It is deliberately narrow. It accepts only what the serde reader accepts
//! and reads it the same, and it gives up (`None`) on everything else, the
//! line then going through the serde reader, which decides (and words the
//! dead letter's reason). Given up on:
//!
//! * any escape (`\`) or control character in any string, a string that is
//!   not UTF-8, an object nested deeper than [`MAX_DEPTH`];
//! * anything that is not JSON, or not the expected type (the record, its
//!   `dynamodb`, `userIdentity`, `Keys`, images and attribute values are
//!   objects; `eventName`, `SequenceNumber`, the identity's two fields and
//!   `S`/`N` values strings; the creation time a number), `null` where the
//!   serde reader would read it as something other than absent;
//! * a field the serde reader reads given twice, an attribute value with no
//!   or several type tags, a missing `eventName` or `dynamodb`.
//!
//! Everything it skips (unknown fields and attributes, `Keys`, other
//! attribute types) is still checked to be JSON: strictly (numbers as JSON's
//! grammar has them, literals spelled out), so a line it accepts is one the
//! serde reader accepts too. `operators/examples/fuzz_decoder.rs` and the
//! tests below check that both readers give the same result, byte for byte
//! of every reason.

use std::borrow::Cow;

use crate::attr::{static_tag, AttrRef, Image};
use crate::record::{is_ttl_identity, RecordParts};

/// Deepest nesting read here (serde_json's limit is 128).
const MAX_DEPTH: u32 = 64;

/// Reads a line (its byte order mark already stripped) into `parts` (empty
/// when called), and gives its `eventName`; or gives up (`parts` then holds
/// whatever was read before, to be dropped).
pub(crate) fn read<'a>(line: &'a [u8], parts: &mut RecordParts<'a>) -> Option<&'a str> {
    let mut c = Cursor { b: line, i: 0 };
    let event_name = c.record(parts)?;
    c.ws();
    (c.i == line.len()).then_some(event_name)
}

/// Bytes that end the plain run of a string: `"`, `\`, control characters
/// and non-ASCII bytes (checked as UTF-8 after the run).
static STOP: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = i < 0x20 || i == b'"' as usize || i == b'\\' as usize || i >= 0x80;
        i += 1;
    }
    t
};

/// Where the plain run of a string starting at `j` ends: the first
/// [`STOP`] byte at or after `j`, or `b.len()`. Eight bytes at a time (most
/// of a capture line's bytes are in strings: ids, keys, the stream's ARN);
/// byte by byte only in a line's last seven.
#[inline]
fn plain_run_end(b: &[u8], mut j: usize) -> usize {
    while let Some(chunk) = b.get(j..j + 8) {
        let stops = stop_bytes(u64::from_le_bytes(chunk.try_into().expect("8 bytes")));
        if stops != 0 {
            return j + (stops.trailing_zeros() / 8) as usize;
        }
        j += 8;
    }
    while j < b.len() && !STOP[b[j] as usize] {
        j += 1;
    }
    j
}

/// The eight bytes of `w` (little-endian, so its first byte lowest) with
/// the top bit of each [`STOP`] byte set, by the classic "has a zero byte"
/// and "has a byte below n" tests. Bits above the lowest one set may be
/// wrong (a borrow runs on from a flagged byte into the next), but none is
/// set below it, so the lowest one marks the first stop byte exactly.
#[inline(always)]
fn stop_bytes(w: u64) -> u64 {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    let zero_in = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let quote = zero_in(w ^ (ONES * u64::from(b'"')));
    let backslash = zero_in(w ^ (ONES * u64::from(b'\\')));
    let control = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
    quote | backslash | control | (w & HIGH)
}

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    #[inline]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    /// JSON's whitespace, as serde_json skips it.
    #[inline]
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    /// After whitespace, `byte` (consumed).
    #[inline]
    fn eat(&mut self, byte: u8) -> Option<()> {
        self.ws();
        if self.peek()? == byte {
            self.i += 1;
            Some(())
        } else {
            None
        }
    }

    /// After whitespace, `byte` if it is next (consumed).
    #[inline]
    fn take(&mut self, byte: u8) -> bool {
        self.ws();
        if self.peek() == Some(byte) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    /// A string without escapes or control characters, UTF-8; the cursor
    /// on its opening quote. Always inlined: a line has ~49 strings, and as
    /// a call its entry and exit were a seventh of the fast reader's
    /// instructions (callgrind: the fast reader 163.9M -> 140.0M on 20,000
    /// lines once inlined).
    #[inline(always)]
    fn string(&mut self) -> Option<&'a str> {
        if self.peek()? != b'"' {
            return None;
        }
        let start = self.i + 1;
        let mut j = start;
        let mut ascii = true;
        loop {
            j = plain_run_end(self.b, j);
            match *self.b.get(j)? {
                b'"' => break,
                b if b >= 0x80 => {
                    ascii = false;
                    j += 1;
                }
                _ => return None,
            }
        }
        let bytes = &self.b[start..j];
        self.i = j + 1;
        if ascii {
            // SAFETY: every byte is ASCII (below 0x80), so the bytes are UTF-8.
            Some(unsafe { std::str::from_utf8_unchecked(bytes) })
        } else {
            std::str::from_utf8(bytes).ok()
        }
    }

    /// After whitespace, a string.
    #[inline]
    fn ws_string(&mut self) -> Option<&'a str> {
        self.ws();
        self.string()
    }

    /// After whitespace, `null` (consumed) if it is next.
    #[inline]
    fn null(&mut self) -> Option<bool> {
        self.ws();
        if self.peek() == Some(b'n') {
            self.literal(b"null")?;
            Some(true)
        } else {
            Some(false)
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        if self.b.get(self.i..self.i + word.len())? == word {
            self.i += word.len();
            Some(())
        } else {
            None
        }
    }

    /// A number by JSON's grammar, `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`; its text.
    fn number(&mut self) -> Option<&'a [u8]> {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek()? {
            b'0' => {
                self.i += 1;
                if self.peek().is_some_and(|b| b.is_ascii_digit()) {
                    return None;
                }
            }
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if !self.peek()?.is_ascii_digit() {
                return None;
            }
            self.digits();
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            if !self.peek()?.is_ascii_digit() {
                return None;
            }
            self.digits();
        }
        Some(&self.b[start..self.i])
    }

    #[inline]
    fn digits(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.i += 1;
        }
    }

    /// After whitespace, any JSON value, checked and left unread.
    fn skip(&mut self, depth: u32) -> Option<()> {
        self.ws();
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'{' => {
                if depth >= MAX_DEPTH {
                    return None;
                }
                self.i += 1;
                if self.take(b'}') {
                    return Some(());
                }
                loop {
                    self.ws_string()?;
                    self.eat(b':')?;
                    self.skip(depth + 1)?;
                    if !self.take(b',') {
                        return self.eat(b'}');
                    }
                }
            }
            b'[' => {
                if depth >= MAX_DEPTH {
                    return None;
                }
                self.i += 1;
                if self.take(b']') {
                    return Some(());
                }
                loop {
                    self.skip(depth + 1)?;
                    if !self.take(b',') {
                        return self.eat(b']');
                    }
                }
            }
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            _ => self.number().map(drop),
        }
    }

    /// The members of an object: `f(cursor, key)` reads each value. The
    /// cursor is on the object's `{` (after whitespace).
    #[inline]
    fn members(&mut self, mut f: impl FnMut(&mut Self, &'a str) -> Option<()>) -> Option<()> {
        self.eat(b'{')?;
        if self.take(b'}') {
            return Some(());
        }
        loop {
            let key = self.ws_string()?;
            self.eat(b':')?;
            f(self, key)?;
            if !self.take(b',') {
                return self.eat(b'}');
            }
        }
    }

    /// Marks field `bit` seen; `None` when it was already (the serde reader
    /// refuses a field given twice).
    #[inline]
    fn once(seen: &mut u32, bit: u32) -> Option<()> {
        if *seen & (1 << bit) != 0 {
            return None;
        }
        *seen |= 1 << bit;
        Some(())
    }

    /// An optional string field (`null` is absent).
    #[inline]
    fn opt_string(&mut self) -> Option<Option<&'a str>> {
        if self.null()? {
            return Some(None);
        }
        self.string().map(Some)
    }

    fn record(&mut self, parts: &mut RecordParts<'a>) -> Option<&'a str> {
        let (mut event_name, mut identity) = (None, None);
        let mut seen = 0u32;
        self.members(|c, key| match key {
            "eventName" => {
                Self::once(&mut seen, 0)?;
                event_name = c.opt_string()?;
                Some(())
            }
            "dynamodb" => {
                Self::once(&mut seen, 1)?;
                if c.null()? {
                    return None;
                }
                c.stream_record(parts)
            }
            "userIdentity" => {
                Self::once(&mut seen, 2)?;
                identity = if c.null()? { None } else { Some(c.identity()?) };
                Some(())
            }
            _ => c.skip(1),
        })?;
        // No `dynamodb` (its `once` bit, 1, never set): the serde reader words that.
        if seen & (1 << 1) == 0 {
            return None;
        }
        parts.by_ttl = identity.is_some_and(|(type_, principal)| is_ttl_identity(type_, principal));
        event_name
    }

    fn identity(&mut self) -> Option<(Option<&'a str>, Option<&'a str>)> {
        let (mut type_, mut principal) = (None, None);
        let mut seen = 0u32;
        self.members(|c, key| match key {
            "type" => {
                Self::once(&mut seen, 0)?;
                type_ = c.opt_string()?;
                Some(())
            }
            "principalId" => {
                Self::once(&mut seen, 1)?;
                principal = c.opt_string()?;
                Some(())
            }
            _ => c.skip(2),
        })?;
        Some((type_, principal))
    }

    fn stream_record(&mut self, parts: &mut RecordParts<'a>) -> Option<()> {
        let mut seen = 0u32;
        self.members(|c, key| match key {
            "ApproximateCreationDateTime" => {
                Self::once(&mut seen, 0)?;
                if !c.null()? {
                    parts.created_ms = Some(seconds(c.number()?)? * 1000.0);
                }
                Some(())
            }
            "Keys" => {
                Self::once(&mut seen, 1)?;
                if !c.null()? {
                    c.members(|c, _| c.skip(3))?;
                }
                Some(())
            }
            "NewImage" => {
                Self::once(&mut seen, 2)?;
                if !c.null()? {
                    c.image(parts.new_image.insert(Image::default()))?;
                }
                Some(())
            }
            "OldImage" => {
                Self::once(&mut seen, 3)?;
                if !c.null()? {
                    c.image(parts.old_image.insert(Image::default()))?;
                }
                Some(())
            }
            "SequenceNumber" => {
                Self::once(&mut seen, 4)?;
                parts.sequence_number = c.opt_string()?.map(Cow::Borrowed);
                Some(())
            }
            _ => c.skip(2),
        })
    }

    fn image(&mut self, image: &mut Image<'a>) -> Option<()> {
        let mut seen = 0u32;
        self.members(|c, name| {
            let Some((position, _, field)) = image.field(name) else {
                return c.skip(3);
            };
            Self::once(&mut seen, position)?;
            *field = if c.null()? { None } else { Some(c.attr()?) };
            Some(())
        })
    }

    /// One attribute value: an object of exactly one type tag.
    fn attr(&mut self) -> Option<AttrRef<'a>> {
        self.eat(b'{')?;
        let tag = self.ws_string()?;
        self.eat(b':')?;
        let value = match tag {
            "S" => AttrRef::S(Cow::Borrowed(self.ws_string()?)),
            "N" => AttrRef::N(Cow::Borrowed(self.ws_string()?)),
            other => {
                self.skip(4)?;
                AttrRef::Other(static_tag(other))
            }
        };
        self.eat(b'}')?;
        Some(value)
    }
}

/// `ApproximateCreationDateTime` as serde_json reads a number into an `f64`:
/// a short whole number, or a short one with a fraction (`1767610805.659`,
/// as DynamoDB Streams write it), here; anything else by serde_json itself.
fn seconds(text: &[u8]) -> Option<f64> {
    /// 10^k for the k <= 15 digits a short number has after its point:
    /// each exact in an f64.
    const POW10: [f64; 16] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15];
    let (whole, fraction) = match text.iter().position(|&b| b == b'.') {
        Some(point) => (&text[..point], Some(&text[point + 1..])),
        None => (text, None),
    };
    let fraction_digits = fraction.map_or(0, <[u8]>::len);
    if !whole.is_empty() && fraction != Some(&[][..]) && whole.len() + fraction_digits <= 15 {
        // At most 15 digits: the significand is below 2^53, so exact as the
        // u64 serde_json reads and as an f64, and so is 10^k. serde_json
        // divides the one by the other once (or, with float_roundtrip,
        // rounds the exact quotient correctly, which that one IEEE division
        // also does): the same f64, bit for bit.
        let mut digits = whole.iter().chain(fraction.unwrap_or_default());
        if let Some(n) = digits.try_fold(0u64, |n, &d| d.is_ascii_digit().then(|| n * 10 + u64::from(d - b'0'))) {
            return Some(n as f64 / POW10[fraction_digits]);
        }
    }
    serde_json::from_slice::<f64>(text).ok()
}

#[cfg(test)]
mod tests {
    use crate::capture::{decode_line, decode_line_serde};

    const INSERT: &str = r#"{"eventID":"68026748f78ec248d5d8551591acd389","eventName":"INSERT","eventVersion":"1.1","eventSource":"aws:dynamodb","awsRegion":"us-east-1","dynamodb":{"ApproximateCreationDateTime":1766966460,"Keys":{"customer_id":{"S":"stu_win"},"sk":{"S":"EVT#1766966400000#e_a0"}},"NewImage":{"customer_id":{"S":"stu_win"},"sk":{"S":"EVT#1766966400000#e_a0"},"entity_type":{"S":"event"},"event_id":{"S":"e_a0"},"event_type":{"S":"session_completed"},"ts":{"N":"1766966400000"},"tutor_id":{"S":"tut_1"},"duration_min":{"N":"60"},"tags":{"L":[{"S":"a"},{"N":"-1.5e3"},{"BOOL":true},{"NULL":true},{"M":{"x":{"SS":["p","q"]}}}]}},"SequenceNumber":"4421584500000000017450439001","SizeBytes":150,"StreamViewType":"NEW_AND_OLD_IMAGES"},"eventSourceARN":"arn:aws:dynamodb:us-east-1:123456789012:table/marketplace-events/stream/2026-01-05T00:00:00.000"}"#;
    const MODIFY: &str = r#" { "eventName" : "MODIFY" , "dynamodb" : { "ApproximateCreationDateTime" : 1766966460.25 , "NewImage" : { "customer_id" : { "S" : "stu_ü" } , "entity_type" : { "S" : "event" } , "event_id" : { "S" : "e_1" } , "event_type" : { "S" : "payment" } , "ts" : { "N" : "1.7669664e12" } , "amount" : { "N" : "12.50" } , "status" : { "S" : "failed" } } , "OldImage" : { "customer_id" : { "S" : "stu_ü" } , "entity_type" : { "S" : "event" } , "event_id" : { "S" : "e_1" } , "event_type" : { "S" : "ib_call" } , "ts" : { "N" : "1766966400000" } , "sentiment" : { "S" : "neutral" } , "extra" : null } } , "userIdentity" : null } "#;
    const REMOVE: &str = r#"{"eventName":"REMOVE","userIdentity":{"type":"Service","principalId":"dynamodb.amazonaws.com","other":[1,2,{"a":[]}]},"dynamodb":{"ApproximateCreationDateTime":1766966460,"Keys":null,"OldImage":{"customer_id":{"S":"stu_x"},"entity_type":{"S":"event"},"event_id":{"S":"e-2"},"event_type":{"S":"message_reply"},"ts":{"N":"1766966400000"},"from":{"S":"tutor"},"response_minutes":{"N":"0"},"tutor_id":{"S":"t"}},"SequenceNumber":null}}"#;

    /// Both readers give the same result, and the same reason text.
    fn same(line: &[u8]) {
        let (fast, serde) = (decode_line(line), decode_line_serde(line));
        assert_eq!(fast, serde, "{}", String::from_utf8_lossy(line));
        assert_eq!(format!("{fast:?}"), format!("{serde:?}"), "{}", String::from_utf8_lossy(line));
    }

    /// The eight-at-a-time test says "a stop byte is here" exactly when
    /// the byte-by-byte table does, for every byte value at every place,
    /// beside plain bytes or beside other stop bytes (where borrows between
    /// bytes could mislead it).
    #[test]
    fn the_word_test_finds_every_stop_byte_and_nothing_else() {
        for fill in [b'a', b'"', 0x1f, 0x20, 0x7f, 0x80, 0xff, 0x00] {
            for at in 0..8 {
                for v in 0..=255u8 {
                    let mut w = [fill; 8];
                    w[at] = v;
                    let expected = w.iter().any(|&b| super::STOP[b as usize]);
                    assert_eq!(super::stop_bytes(u64::from_le_bytes(w)) != 0, expected, "{w:?}");
                    let run = super::plain_run_end(&w, 0);
                    assert_eq!(run, w.iter().position(|&b| super::STOP[b as usize]).unwrap_or(8), "{w:?}");
                }
            }
        }
    }

    proptest::proptest! {
        /// Any bytes, from any start: where the plain run ends is the first
        /// stop byte, as the byte-by-byte table finds it.
        #[test]
        fn a_plain_run_ends_at_the_first_stop_byte(
            bytes in proptest::collection::vec(
                proptest::prop_oneof![b'a'..=b'z', proptest::prelude::any::<u8>(), proptest::strategy::Just(b'"')],
                0..40,
            ),
            start in 0usize..40,
        ) {
            let start = start.min(bytes.len());
            let expected = bytes[start..].iter().position(|&b| super::STOP[b as usize]).map_or(bytes.len(), |k| start + k);
            proptest::prop_assert_eq!(super::plain_run_end(&bytes, start), expected);
        }

        /// A creation time read here is the f64 serde_json reads, bit for
        /// bit: whole or with a fraction, short or long (the numbers JSON's
        /// grammar allows, which is all the reader passes on).
        #[test]
        fn creation_times_read_as_serde_json_reads_them(
            whole in "0|[1-9][0-9]{0,17}",
            fraction in proptest::option::of("[0-9]{0,18}"),
        ) {
            let text = match &fraction {
                Some(f) => format!("{whole}.{f}"),
                None => whole.clone(),
            };
            let serde = serde_json::from_slice::<f64>(text.as_bytes()).ok();
            proptest::prop_assert_eq!(super::seconds(text.as_bytes()).map(f64::to_bits), serde.map(f64::to_bits), "{}", text);
        }
    }

    #[test]
    fn the_fast_reader_reads_the_usual_lines() {
        for line in [INSERT, MODIFY, REMOVE] {
            assert!(super::read(line.as_bytes(), &mut Default::default()).is_some(), "{line}");
            assert!(decode_line(line.as_bytes()).is_ok(), "{line}");
            same(line.as_bytes());
        }
    }

    #[test]
    fn both_readers_agree_on_every_edit_of_a_line() {
        // Every byte of each line deleted, or replaced by (or preceded by)
        // each of the bytes that change JSON's meaning.
        let bytes: &[u8] = b"\"\\{}[],:0-.eE+nt \x01\x80\xff1a";
        for line in [INSERT, MODIFY, REMOVE] {
            let line = line.as_bytes();
            for i in 0..=line.len() {
                if i < line.len() {
                    let mut cut = line.to_vec();
                    cut.remove(i);
                    same(&cut);
                }
                for &b in bytes {
                    let mut put = line.to_vec();
                    put.insert(i, b);
                    same(&put);
                    if i < line.len() {
                        put.remove(i + 1);
                        same(&put);
                    }
                }
                same(&line[..i]);
            }
        }
    }

    #[test]
    fn both_readers_agree_on_the_odd_cases() {
        let cases: &[&str] = &[
            "",
            "   ",
            "null",
            "[]",
            r#"["INSERT",{}]"#,
            r#"{"eventName":"INSERT"}"#,
            r#"{"eventName":"INSERT","dynamodb":null}"#,
            r#"{"eventName":null,"dynamodb":{}}"#,
            r#"{"eventName":"INSERT","eventName":"INSERT","dynamodb":{}}"#,
            r#"{"eventName":"INSERT","dynamodb":{"ApproximateCreationDateTime":1766966460}}"#,
            r#"{"eventName":"BOGUS","dynamodb":{"ApproximateCreationDateTime":1766966460}}"#,
            r#"{"eventName":"INSERT","dynamodb":{"ApproximateCreationDateTime":1766966460000}}"#,
            r#"{"eventName":"INSERT","dynamodb":{"ApproximateCreationDateTime":"1766966460"}}"#,
            r#"{"eventName":"INSERT","dynamodb":{"ApproximateCreationDateTime":1e400}}"#,
            r#"{"eventName":"INSERT","dynamodb":{"ApproximateCreationDateTime":-0}}"#,
            r#"{"eventName":"INSERT","dynamodb":{"ApproximateCreationDateTime":01}}"#,
            r#"{"eventName":"INSERT","dynamodb":{"ApproximateCreationDateTime":1766966460.123456789012345678}}"#,
            r#"{"eventName":"INSERT","dynamodb":{"ApproximateCreationDateTime":17669664601234567890123}}"#,
            r#"{"eventName":"INSERT","dynamodb":{"ApproximateCreationDateTime":1766966460,"NewImage":[]}}"#,
            r#"{"eventName":"INSERT","dynamodb":{"ApproximateCreationDateTime":1766966460,"NewImage":{}}}"#,
            r#"{"eventName":"INSERT","dynamodb":{"ApproximateCreationDateTime":1766966460,"NewImage":{"entity_type":{"S":"event"}}}}"#,
            r#"{"eventName":"INSERT","dynamodb":{"ApproximateCreationDateTime":1766966460,"NewImage":{"entity_type":{}}}}"#,
            r#"{"eventName":"INSERT","dynamodb":{"ApproximateCreationDateTime":1766966460,"NewImage":{"entity_type":{"S":"event","N":"1"}}}}"#,
            r#"{"eventName":"INSERT","dynamodb":{"ApproximateCreationDateTime":1766966460,"NewImage":{"entity_type":{"S":"event"},"ts":{"BOOL":true},"customer_id":{"S":"c"},"event_id":{"S":"e"},"event_type":{"S":"login"}}}}"#,
            r#"{"eventName":"INSERT","dynamodb":{"ApproximateCreationDateTime":1766966460,"NewImage":{"entity_type":{"S":"event"},"ts":{"N":"1766966400000"},"customer_id":{"S":"c"},"event_id":{"S":"e"},"event_type":{"S":"login"},"ts":null}}}"#,
            r#"{"eventName":"INSERT","dynamodb":{"ApproximateCreationDateTime":1766966460,"NewImage":{"entity_type":{"S":"event"},"ts":{"N":"1766966400000"},"customer_id":{"S":"c\u00e9"},"event_id":{"S":"e"},"event_type":{"S":"login"}}}}"#,
            r#"{"eventName":"INSERT","dynamodb":{"ApproximateCreationDateTime":1766966460,"NewImage":{"entity_type":{"S":"event"},"ts":{"N":"1766966400000"},"customer_id":{"S":"c"},"event_id":{"S":"e"},"event_type":{"S":"login"},"deep":{"L":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}}}}"#,
            r#"{"eventName":"INSERT","dynamodb":{"ApproximateCreationDateTime":1766966460,"NewImage":{"entity_type":{"S":"event"},"ts":{"N":"1766966400000"},"customer_id":{"S":"c"},"event_id":{"S":"e"},"event_type":{"S":"login"}}}} x"#,
            r#"{"eventName":"INSERT","dynamodb":{"ApproximateCreationDateTime":1766966460,"Keys":[],"NewImage":{"entity_type":{"S":"event"},"ts":{"N":"1766966400000"},"customer_id":{"S":"c"},"event_id":{"S":"e"},"event_type":{"S":"login"}}}}"#,
            r#"{"eventName":"REMOVE","userIdentity":"x","dynamodb":{"ApproximateCreationDateTime":1766966460}}"#,
            r#"{"eventName":"REMOVE","userIdentity":{"type":1},"dynamodb":{"ApproximateCreationDateTime":1766966460}}"#,
            r#"{"eventName":"REMOVE","userIdentity":{"type":"Service","type":"Service"},"dynamodb":{"ApproximateCreationDateTime":1766966460}}"#,
            r#"{"eventName":"INSERT","dynamodb":{"SequenceNumber":1,"ApproximateCreationDateTime":1766966460}}"#,
            r#"{"eventName":"INSERT","dynamodb":{"ApproximateCreationDateTime":1766966460},"x":tru}"#,
            r#"{"eventName":"INSERT","dynamodb":{"ApproximateCreationDateTime":1766966460},"x":-}"#,
            r#"{"eventName":"INSERT","dynamodb":{"ApproximateCreationDateTime":1766966460},"x":1.}"#,
            r#"{"eventName":"INSERT","dynamodb":{"ApproximateCreationDateTime":1766966460},"x":1e}"#,
            r#"{"eventName":"INSERT","dynamodb":{"ApproximateCreationDateTime":1766966460},"x":[1,]}"#,
            r#"{"eventName":"INSERT","dynamodb":{"ApproximateCreationDateTime":1766966460},"x":{"a":1,}}"#,
            r#"{"eventName":"INSERT","dynamodb":{"ApproximateCreationDateTime":1766966460},}"#,
            "\u{feff}{\"eventName\":\"INSERT\",\"dynamodb\":{\"ApproximateCreationDateTime\":1766966460}}",
            "\u{feff}\u{feff}{\"eventName\":\"INSERT\",\"dynamodb\":{\"ApproximateCreationDateTime\":1766966460}}",
        ];
        for case in cases {
            same(case.as_bytes());
        }
        let mut bad_utf8 = INSERT.as_bytes().to_vec();
        let at = INSERT.find("stu_win").unwrap();
        bad_utf8[at] = 0xff;
        same(&bad_utf8);
        let at = INSERT.find("us-east-1").unwrap();
        bad_utf8[at] = 0xc3;
        same(&bad_utf8);
    }

    #[test]
    fn both_readers_agree_on_the_corpus() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
        for file in
            ["scripts/fuzz/corpus/golden.jsonl", "scripts/fuzz/corpus/hostile.jsonl", "tests/fixtures/golden.jsonl"]
        {
            let text = std::fs::read(format!("{root}/{file}")).unwrap();
            for line in text.split(|&b| b == b'\n') {
                same(line);
            }
        }
    }
}
