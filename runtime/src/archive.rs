//! Kinesis Data Streams for DynamoDB archives read as captures.
//!
//! A table that streams to Kinesis keeps its history the usual way: a
//! Firehose delivery to S3 (or a consumer's own dump), which holds each
//! record's `Data` as it was: Kinesis Data Streams for DynamoDB's JSON, one
//! record a line when the delivery adds a newline delimiter, or the records
//! back to back (`}{`) when it does not (Firehose's default). Those records
//! are nearly the capture format, but `ApproximateCreationDateTime` is in
//! milliseconds (microseconds when the destination asked for that precision),
//! where DynamoDB Streams, Lambda and captures use seconds: read as they are,
//! every record would be a dead letter ("it looks like milliseconds").
//!
//! [`sniff`] tells such an archive from a capture by its first record: a
//! top-level `recordFormat` (which only Kinesis Data Streams for DynamoDB
//! writes) and a creation time that cannot be seconds (past the latest time
//! pulse decodes, 2200-01-01, when read as seconds). A capture written by
//! `pulse capture --source kinesis` keeps `recordFormat` but its times are
//! already seconds, so it reads as a capture. [`KinesisRecords`] then cuts
//! the archive into records and rewrites each one as `pulse capture --source
//! kinesis` and the live Kinesis source do ([`kinesis_line`]), one a line, so
//! that the records decoded are the ones the live run decoded, byte for byte.
//!
//! Cutting: a record ends where its top-level JSON value closes (the braces
//! counted outside strings) or at a newline, whichever comes first; bytes
//! that are no JSON value end where an object starts. A newline always ends
//! a record, so in a newline-delimited archive a broken record (cut off, a
//! brace missing) costs that record alone, a dead letter with its bytes; the
//! price is that a pretty-printed (multi-line) archive is not read, as a
//! capture's is not. Back to back, nothing marks where a cut-off record
//! ended: it runs on into the records after it until its braces balance, and
//! they are one dead letter together. A record longer than [`MAX_LINE_BYTES`] is passed on as
//! it is, and the line reader makes it a `line_too_long` dead letter without
//! holding it. A dead letter's `line` is the record's place among the
//! archive's records (its line in a newline-delimited archive).

use std::io::{self, BufRead, Read};

use pulse_schemas::capture::{kinesis_line, MAX_LINE_BYTES};
use pulse_schemas::validate::LATEST_MS;
use serde_json::Value;

/// What an input's records are.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InputFormat {
    /// A capture: DynamoDB Streams records as Lambda sees them, times in
    /// seconds (what `pulse capture` and `pulse generate` write).
    #[default]
    Capture,
    /// Kinesis Data Streams for DynamoDB records, times in milliseconds or
    /// microseconds, one a line or back to back.
    KinesisArchive,
}

impl InputFormat {
    /// How a report names it.
    pub fn describe(self) -> &'static str {
        match self {
            InputFormat::Capture => "a capture (DynamoDB Streams records)",
            InputFormat::KinesisArchive => {
                "a Kinesis Data Streams for DynamoDB archive (its first record has recordFormat and a creation time in \
                 milliseconds): each record's time was converted to seconds, as `pulse capture --source kinesis` \
                 writes it"
            }
        }
    }
}

/// The UTF-8 byte order mark, which some editors write at a file's start.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Bytes read ahead to find the first record: enough for any record
/// (DynamoDB items are at most 400 KB, a record holds two images).
const SNIFF_BYTES: usize = MAX_LINE_BYTES;

/// Lines read ahead: a first record cut off or broken does not decide
/// alone.
const SNIFF_LINES: usize = 8;

/// Reads the start of `input` (up to [`SNIFF_LINES`] lines, or
/// [`SNIFF_BYTES`]) and says what its records are, by the first that is a
/// JSON object. The bytes read are returned, to be read again before the
/// rest.
pub fn sniff(input: &mut dyn Read) -> io::Result<(InputFormat, Vec<u8>)> {
    let mut head: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 64 << 10];
    loop {
        if head.len() >= SNIFF_BYTES || head.iter().filter(|&&b| b == b'\n').count() >= SNIFF_LINES {
            break;
        }
        let n = match input.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        head.extend_from_slice(&chunk[..n]);
    }
    Ok((format_of_first(&head), head))
}

/// The format of the first line of `head` whose first JSON value is an
/// object (a BOM skipped; the value may run on into the next record, back
/// to back); a capture when none is.
fn format_of_first(head: &[u8]) -> InputFormat {
    let body = head.strip_prefix(BOM).unwrap_or(head);
    for line in body.split(|&b| b == b'\n') {
        let Some(Ok(Value::Object(first))) = serde_json::Deserializer::from_slice(line).into_iter::<Value>().next()
        else {
            continue;
        };
        let created = first.get("dynamodb").and_then(|d| d.get("ApproximateCreationDateTime")).and_then(Value::as_f64);
        return match created {
            Some(t) if first.contains_key("recordFormat") && t > LATEST_MS as f64 / 1000.0 => {
                InputFormat::KinesisArchive
            }
            _ => InputFormat::Capture,
        };
    }
    InputFormat::Capture
}

/// A Kinesis archive read as capture lines (see the module docs).
#[derive(Debug)]
pub struct KinesisRecords<R> {
    input: R,
    cutter: Cutter,
    eof: bool,
}

/// The records cut so far, and the state of the one being cut: apart from
/// the input, so that the input's buffer is cut where it lies.
#[derive(Debug, Default)]
struct Cutter {
    /// The record being cut.
    record: Vec<u8>,
    /// Converted lines not yet read.
    out: Vec<u8>,
    out_at: usize,
    /// Braces and brackets open in the record (outside strings).
    depth: u32,
    in_string: bool,
    escaped: bool,
    /// The record outgrew [`MAX_LINE_BYTES`]: its bytes go straight out
    /// until it ends.
    passing: bool,
    /// A record just closed: one newline after it (blanks between) is its
    /// terminator, not a blank line.
    closed: bool,
}

impl<R: BufRead> KinesisRecords<R> {
    /// Reads the archive `input`.
    pub fn new(input: R) -> KinesisRecords<R> {
        KinesisRecords { input, cutter: Cutter::default(), eof: false }
    }

    /// Cuts what the input has buffered into the cutter's `out`.
    fn fill(&mut self) -> io::Result<()> {
        let buf = match self.input.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            self.eof = true;
            if !self.cutter.record.is_empty() || self.cutter.passing {
                self.cutter.end_record();
            }
            return Ok(());
        }
        let n = buf.len();
        for &b in buf {
            self.cutter.cut(b);
        }
        self.input.consume(n);
        Ok(())
    }
}

impl Cutter {
    /// Ends the record being cut: converted, or (passed through) just its
    /// newline.
    fn end_record(&mut self) {
        if self.passing {
            self.passing = false;
        } else {
            // A byte order mark before the archive's first record (an
            // editor's) would make it unreadable JSON.
            let record = self.record.strip_prefix(BOM).unwrap_or(&self.record);
            self.out.extend_from_slice(&kinesis_line(record));
        }
        self.out.push(b'\n');
        self.record.clear();
        self.depth = 0;
        self.in_string = false;
        self.escaped = false;
    }

    fn cut(&mut self, b: u8) {
        let started = !self.record.is_empty() || self.passing;
        if !started {
            match b {
                b'\n' if self.closed => self.closed = false,
                // A blank line stays one, so that a newline-delimited
                // archive's line numbers hold.
                b'\n' => self.out.push(b'\n'),
                b' ' | b'\t' | b'\r' => {}
                _ => {
                    self.closed = false;
                    self.take(b);
                }
            }
            return;
        }
        if b == b'\n' {
            // A newline ends the record, whole or not ("\r\n" too: the
            // decoder ignores the `\r`'s whitespace).
            self.end_record();
            return;
        }
        self.take(b);
    }

    /// Adds `b` to the record, ending it when its top-level value closes.
    fn take(&mut self, b: u8) {
        if matches!(b, b'{' | b'[') && self.depth == 0 && !self.in_string && !self.record.is_empty() {
            if self.record == BOM {
                // A byte order mark before the first record: no record.
                self.record.clear();
            } else {
                // Something that is no JSON value ran into the next record
                // (back to back, no newline between): it ends where the
                // record starts.
                self.end_record();
            }
        }
        if self.passing {
            self.out.push(b);
        } else {
            self.record.push(b);
            if self.record.len() > MAX_LINE_BYTES {
                // Too long to be a record: passed on as it is, and the line
                // reader reads past it.
                self.out.append(&mut self.record);
                self.passing = true;
            }
        }
        if self.in_string {
            match (self.escaped, b) {
                (true, _) => self.escaped = false,
                (false, b'\\') => self.escaped = true,
                (false, b'"') => self.in_string = false,
                _ => {}
            }
            return;
        }
        match b {
            b'"' => self.in_string = true,
            b'{' | b'[' => self.depth += 1,
            b'}' | b']' => {
                self.depth = self.depth.saturating_sub(1);
                if self.depth == 0 {
                    self.end_record();
                    self.closed = true;
                }
            }
            _ => {}
        }
    }
}

impl<R: BufRead> Read for KinesisRecords<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.cutter.out_at == self.cutter.out.len() {
            self.cutter.out.clear();
            self.cutter.out_at = 0;
            if self.eof {
                return Ok(0);
            }
            self.fill()?;
        }
        let c = &mut self.cutter;
        let n = buf.len().min(c.out.len() - c.out_at);
        buf[..n].copy_from_slice(&c.out[c.out_at..c.out_at + n]);
        c.out_at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECORD: &str = r#"{"awsRegion":"us-east-1","eventID":"9f1c","eventName":"INSERT","userIdentity":null,"recordFormat":"application/json","tableName":"t","dynamodb":{"ApproximateCreationDateTime":1767571260123,"Keys":{"customer_id":{"S":"stu_1"},"sk":{"S":"EVT#1767571200000#e1"}},"NewImage":{"customer_id":{"S":"stu_1"},"sk":{"S":"EVT#1767571200000#e1"},"entity_type":{"S":"event"},"event_id":{"S":"e1"},"event_type":{"S":"login"},"ts":{"N":"1767571200000"},"note":{"S":"a } and a \" in a string {"}},"SizeBytes":120},"eventSource":"aws:dynamodb"}"#;

    fn lines_of(archive: &[u8]) -> Vec<String> {
        let mut text = String::new();
        KinesisRecords::new(archive).read_to_string(&mut text).unwrap();
        text.split_terminator('\n').map(str::to_owned).collect()
    }

    #[test]
    fn back_to_back_and_newline_delimited_records_give_the_same_lines() {
        let one = String::from_utf8(kinesis_line(RECORD.as_bytes())).unwrap();
        let concatenated = format!("{RECORD}{RECORD}{RECORD}");
        let delimited = format!("{RECORD}\n{RECORD}\r\n{RECORD}\n");
        assert_eq!(lines_of(concatenated.as_bytes()), vec![one.clone(); 3]);
        assert_eq!(lines_of(delimited.as_bytes()), vec![one.clone(); 3]);
        assert!(one.contains("\"ApproximateCreationDateTime\":1767571260.123"), "{one}");
    }

    #[test]
    fn a_broken_record_costs_itself_alone_and_blank_lines_keep_their_place() {
        let cut_off = &RECORD[..RECORD.len() / 2];
        let archive = format!("{RECORD}\n\n{cut_off}\n{RECORD}\nnot json\n");
        let lines = lines_of(archive.as_bytes());
        let one = String::from_utf8(kinesis_line(RECORD.as_bytes())).unwrap();
        assert_eq!(lines, vec![one.clone(), String::new(), cut_off.to_owned(), one.clone(), "not json".to_owned()]);
        // Back to back, what is no JSON value ends where a record starts.
        let lines = lines_of(format!("{RECORD}not json{RECORD}").as_bytes());
        assert_eq!(lines, vec![one.clone(), "not json".to_owned(), one.clone()]);
        // A byte order mark is no record, and a line of it alone stays a line.
        assert_eq!(lines_of(format!("\u{feff}{RECORD}{RECORD}").as_bytes()), vec![one.clone(), one.clone()]);
        assert_eq!(lines_of(format!("\u{feff}\n{RECORD}").as_bytes()), vec![String::new(), one]);
    }

    #[test]
    fn a_record_past_the_line_limit_is_passed_on_whole() {
        let long = format!("{{\"x\":\"{}\"}}", "a".repeat(MAX_LINE_BYTES + 10));
        let archive = format!("{long}{RECORD}");
        let lines = lines_of(archive.as_bytes());
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0], long);
        assert_eq!(lines[1], String::from_utf8(kinesis_line(RECORD.as_bytes())).unwrap());
    }

    #[test]
    fn only_a_kinesis_record_in_milliseconds_makes_an_archive() {
        let sniffed = |input: &str| sniff(&mut input.as_bytes()).unwrap();
        // A mark and a newline before the first record, read a few bytes at
        // a time (a pipe): the newline does not end the look ahead.
        struct Trickle<'a>(&'a [u8]);
        impl Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = buf.len().min(self.0.len()).min(5);
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let archive = format!("\u{feff}\n{RECORD}\n{RECORD}");
        assert_eq!(sniff(&mut Trickle(archive.as_bytes())).unwrap().0, InputFormat::KinesisArchive);
        // A first record cut off does not decide alone.
        let cut = format!("{}\n{RECORD}\n", &RECORD[..40]);
        assert_eq!(sniff(&mut Trickle(cut.as_bytes())).unwrap().0, InputFormat::KinesisArchive);
        let mut input = archive.as_bytes();
        let (format, head) = sniff(&mut input).unwrap();
        assert_eq!(format, InputFormat::KinesisArchive);
        assert_eq!([head.as_slice(), input].concat(), archive.as_bytes(), "what was read is handed back");
        assert_eq!(sniffed(&format!("{RECORD}{RECORD}")).0, InputFormat::KinesisArchive, "back to back");
        // What `pulse capture --source kinesis` wrote: seconds already.
        let converted = String::from_utf8(kinesis_line(RECORD.as_bytes())).unwrap();
        assert_eq!(sniffed(&converted).0, InputFormat::Capture);
        let streams = RECORD.replace("\"recordFormat\":\"application/json\",", "");
        assert_eq!(sniffed(&streams).0, InputFormat::Capture);
        for other in ["", "not json", "[1]", "{\"recordFormat\":1}"] {
            assert_eq!(sniffed(other).0, InputFormat::Capture, "{other}");
        }
    }
}
