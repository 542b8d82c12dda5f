//! The order of a customer's emissions (FEATURES.md §6, amended): which of
//! two predictions is the later one.
//!
//! A prediction is never replaced by one made from an *earlier emission* of
//! the customer's stream. "Earlier" is not `as_of`: a late event's vector
//! (`as_of = C`) that comes after a timer vector (`as_of = D > C`) knows
//! more (the late event) and must replace it. The [`EmissionKey`] places
//! each vector in its customer's stream:
//!
//! | vector | key |
//! |---|---|
//! | `event`, from a record | (`ApproximateCreationDateTime` of the record in ms, the record's position) |
//! | `timer`, due after the customer's last record was created | (its due time = `as_of`, no record) |
//! | `timer`, due at or before that (a catch-up timer) | (that record's creation time, its position, the due time) |
//!
//! compared in that order: time, then a timer before a record at the same
//! time (the processor fires the timers due at or before a record's creation
//! time before applying it), then the records' positions — the
//! `dynamodb.SequenceNumber` compared as a number (decimal strings of up to
//! 40 digits, or Kinesis' longer ones: by length, then digit by digit), else
//! the capture line —, then a record's own vector before the catch-up timers
//! that follow it, by due time.
//!
//! # Why these parts
//!
//! Every part is a property of the customer's records or timers, never of
//! the process that applied them. So the key is the same in a replay, in
//! `pulse run` (before and after a restart from a checkpoint) and in any
//! Lambda execution environment, warm or hydrated from the table: a retry or
//! a redelivery gets the key it had the first time, and cannot move the
//! customer back. The processor's *stream time* (the largest creation time it
//! has read) was rejected as the time of an event vector: it depends on what
//! else that process read (other shards, other invocations of a warm Lambda
//! environment; a cold one starts at its batch), so one process's inflated
//! keys would refuse another's later predictions until its stream caught up.
//!
//! A customer's records are in one shard (one partition key) in the order
//! they were written, and DynamoDB Streams numbers them in that order; their
//! creation times follow that order. So a customer's records rank in stream
//! order, and a timer ranks where the stream reaches its due time: a record
//! that comes after a fired timer (its creation time at or after the due
//! time) outranks that timer's vector, whatever its `as_of`.
//!
//! # Limits
//!
//! * **A timer fired early.** A process whose stream time ran ahead of a
//!   customer's shard (another shard's newer records) may fire the
//!   customer's timer at `D` before applying a record of that customer
//!   created before `D`. The key ranks that record before the timer, as in
//!   the stream, so its vector is refused; the customer's next vector (its
//!   next timer, at most one interval later, or record) carries its event.
//! * **Catch-up timers.** When an event's `ts` lags its record's creation
//!   by more than the timer interval (events written long after they
//!   happened, a backfill), the timers the event's vector schedules are
//!   already due: the processor fires them after the record, as of their due
//!   times, earlier than the record's creation time. They rank right after
//!   that record (and before the customer's next one), ordered by due time:
//!   the processor remembers, for such customers only, the creation time and
//!   position of their last record. A process that did not apply that record
//!   (a restart from a checkpoint taken between the record and its catch-up
//!   timers, the Lambda's scheduled rescoring) ranks them at their due times:
//!   refused, until the customer's next timer due after its last record.
//! * **Creation times out of order.** `ApproximateCreationDateTime` is
//!   approximate (whole seconds in a Lambda event); records of one customer
//!   created in the same second rank by position, which follows the stream.
//!   A later record stamped with an *earlier* time than its predecessor
//!   would rank before it.
//! * **Positions of different kinds** (a line against a sequence number)
//!   only meet at equal times and are then ordered unknown < line < sequence
//!   number: a tie-break, not stream order. A record without a creation time
//!   (never in DynamoDB Streams) is placed at its vector's `as_of`.
//!
//! A vector or prediction whose key is not known (read back from a file,
//! built by hand) is ranked by its `as_of` alone ([`EmissionKey::at`]): the
//! rule before the amendment.

use std::cmp::Ordering;

use smol_str::SmolStr;

/// Where an emission sits in its customer's stream (see the [module docs](self)).
///
/// Ordered by `time`, then `record` (none — a timer due at `time` — before
/// any record at the same time), then `timer` (a record's own vector before
/// the catch-up timers that follow it). [`EmissionKey::encode`] spells it as
/// a string whose byte order is the same order (stored with the prediction
/// item, compared by DynamoDB).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EmissionKey {
    /// Milliseconds since the epoch: the record's creation time, or the
    /// timer's due time.
    pub time: i64,
    /// The record emitted at or last before (for a catch-up timer) this
    /// emission; `None` for a timer due after the customer's last record.
    pub record: Option<Position>,
    /// The due time of a timer vector; `None` for a record's vector.
    pub timer: Option<i64>,
}

/// A record's position in the stream. Ordered unknown < line < sequence
/// number (kinds only meet as a tie-break), then by value.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Position {
    /// Not known.
    Unknown,
    /// The 1-based line of a capture file.
    Line(u64),
    /// A stream sequence number.
    Sequence(SequenceNumber),
}

/// A stream sequence number: a decimal string (DynamoDB Streams: up to 40
/// digits; Kinesis: up to 129), compared as a number. Leading zeros are
/// dropped.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SequenceNumber(SmolStr);

impl SequenceNumber {
    /// The number, if `digits` is a non-empty string of ASCII digits.
    pub fn parse(digits: &str) -> Option<SequenceNumber> {
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let trimmed = digits.trim_start_matches('0');
        Some(SequenceNumber(SmolStr::new(if trimmed.is_empty() { "0" } else { trimmed })))
    }

    /// The digits, without leading zeros.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Ord for SequenceNumber {
    fn cmp(&self, other: &Self) -> Ordering {
        // No leading zeros: the longer number is the larger.
        self.0.len().cmp(&other.0.len()).then_with(|| self.0.as_bytes().cmp(other.0.as_bytes()))
    }
}

impl PartialOrd for SequenceNumber {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Position {
    /// A record's position: its sequence number when it has one made of
    /// digits, else its capture line, else unknown.
    pub fn of(sequence_number: Option<&str>, line: Option<u64>) -> Position {
        match (sequence_number.and_then(SequenceNumber::parse), line) {
            (Some(seq), _) => Position::Sequence(seq),
            (None, Some(line)) => Position::Line(line),
            (None, None) => Position::Unknown,
        }
    }
}

impl EmissionKey {
    /// The key of a timer vector due at `due_ms`, after the customer's last
    /// record.
    pub fn timer(due_ms: i64) -> EmissionKey {
        EmissionKey { time: due_ms, record: None, timer: Some(due_ms) }
    }

    /// The key of a vector emitted by a record created at `created_ms`, at
    /// `position`.
    pub fn record(created_ms: i64, position: Position) -> EmissionKey {
        EmissionKey { time: created_ms, record: Some(position), timer: None }
    }

    /// The key of a catch-up timer vector due at `due_ms`, at or before the
    /// creation time `created_ms` of the customer's last record, at
    /// `position`: right after that record's vector.
    pub fn timer_after(created_ms: i64, position: Position, due_ms: i64) -> EmissionKey {
        EmissionKey { time: created_ms, record: Some(position), timer: Some(due_ms) }
    }

    /// The key of an emission known only by its `as_of` (a vector read back
    /// from a file, a prediction built by hand): a record of unknown position
    /// at `as_of`, so such emissions rank by `as_of`, later ones winning ties.
    pub fn at(as_of: i64) -> EmissionKey {
        EmissionKey::record(as_of, Position::Unknown)
    }

    /// The key as a string whose byte order is the key's order (ASCII),
    /// three parts separated by dots, each spelled so that no spelling is a
    /// prefix of another:
    ///
    /// * the time: `p` and 19 digits (a negative time: `n` and the 19 digits
    ///   of `time + 2^63`);
    /// * the record: `0` for none, else `1` and `-` (unknown position),
    ///   `l` + 2-digit length + the line, or `s` + 3-digit length + the
    ///   sequence number;
    /// * the timer: `0` for none, else `1` and its due time spelled as the
    ///   time.
    ///
    /// ```
    /// use pulse_schemas::order::{EmissionKey, Position};
    /// let timer = EmissionKey::timer(1_700_000_000_000);
    /// assert_eq!(timer.encode(), "p0000001700000000000.0.1p0000001700000000000");
    /// let key = EmissionKey::record(1_700_000_000_000, Position::of(Some("000120"), None));
    /// assert_eq!(key.encode(), "p0000001700000000000.1s003120.0");
    /// assert!(timer.encode() < key.encode() && timer < key);
    /// ```
    pub fn encode(&self) -> String {
        use std::fmt::Write;
        let mut out = String::with_capacity(64);
        push_time(&mut out, self.time);
        out.push('.');
        match &self.record {
            None => out.push('0'),
            Some(Position::Unknown) => out.push_str("1-"),
            Some(Position::Line(line)) => {
                let digits = line.to_string();
                let _ = write!(out, "1l{:02}{digits}", digits.len());
            }
            Some(Position::Sequence(seq)) => {
                let _ = write!(out, "1s{:03}{}", seq.as_str().len(), seq.as_str());
            }
        }
        out.push('.');
        match self.timer {
            None => out.push('0'),
            Some(due) => {
                out.push('1');
                push_time(&mut out, due);
            }
        }
        out
    }

    /// Reads back [`EmissionKey::encode`]'s string; `None` if it is not one.
    pub fn decode(s: &str) -> Option<EmissionKey> {
        let mut parts = s.split('.');
        let (time, record, timer) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let record = match record {
            "0" => None,
            "1-" => Some(Position::Unknown),
            record => {
                let (kind, rest) = record.strip_prefix('1')?.split_at_checked(1)?;
                let width = match kind {
                    "l" => 2,
                    "s" => 3,
                    _ => return None,
                };
                let (len, value) = rest.split_at_checked(width)?;
                if len.parse::<usize>().ok()? != value.len() {
                    return None;
                }
                Some(match kind {
                    "l" if value.bytes().all(|b| b.is_ascii_digit()) => Position::Line(value.parse().ok()?),
                    _ => Position::Sequence(SequenceNumber::parse(value)?),
                })
            }
        };
        let timer = match timer {
            "0" => None,
            due => Some(read_time(due.strip_prefix('1')?)?),
        };
        let key = EmissionKey { time: read_time(time)?, record, timer };
        // Only the canonical spelling (no leading zeros in positions).
        (key.encode() == s).then_some(key)
    }
}

/// A time as `p` + 19 digits, or `n` + the 19 digits of `time + 2^63`.
fn push_time(out: &mut String, time: i64) {
    use std::fmt::Write;
    let _ = match time {
        t if t >= 0 => write!(out, "p{t:019}"),
        t => write!(out, "n{:019}", (i128::from(t) - i128::from(i64::MIN)) as u64),
    };
}

fn read_time(s: &str) -> Option<i64> {
    let (sign, digits) = s.split_at_checked(1)?;
    if digits.len() != 19 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    match sign {
        "p" => i64::try_from(n).ok(),
        "n" => i64::try_from(i128::from(n) + i128::from(i64::MIN)).ok().filter(|t| *t < 0),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn seq(s: &str) -> Position {
        Position::of(Some(s), None)
    }

    #[test]
    fn a_late_record_after_a_timer_outranks_it_whatever_its_as_of() {
        let timer = EmissionKey::timer(1_000);
        assert!(EmissionKey::record(1_000, seq("5")) > timer, "a timer fires before a record at the same time");
        assert!(EmissionKey::record(1_500, seq("5")) > timer);
        assert!(EmissionKey::record(999, seq("5")) < timer, "a record created before the due time precedes it");
        // Catch-up timers, due before their record's creation: after it, before the next one.
        let record = EmissionKey::record(5_000, seq("5"));
        let (first, second) =
            (EmissionKey::timer_after(5_000, seq("5"), 1_000), EmissionKey::timer_after(5_000, seq("5"), 2_000));
        assert!(record < first && first < second && second < EmissionKey::record(5_000, seq("6")));
        assert!(second < EmissionKey::timer(5_001));
    }

    #[test]
    fn sequence_numbers_compare_as_numbers() {
        assert!(seq("100000000000000000000") > seq("99999999999999999999"), "by length first");
        assert!(seq("0042") == seq("42"), "leading zeros do not count");
        assert!(seq("43") > seq("42"));
        assert_eq!(seq("4x2"), Position::Unknown, "not a number: unknown");
        assert_eq!(Position::of(Some("x"), Some(7)), Position::Line(7));
        assert!(Position::Unknown < Position::Line(1) && Position::Line(u64::MAX) < seq("1"));
    }

    #[test]
    fn decode_refuses_what_encode_never_writes() {
        for bad in [
            "",
            "p1.0.0",
            "x0000000000000000001.0.0",
            "p0000000000000000001.2.0",
            "p0000000000000000001.1s00342.0",
            "p0000000000000000001.0",
            "p0000000000000000001.0.0.0",
            "p0000000000000000001.0.1p1",
        ] {
            assert_eq!(EmissionKey::decode(bad), None, "{bad:?}");
        }
        assert_eq!(EmissionKey::decode("p0000000000000000001.1l0205.0"), None, "a leading zero");
    }

    fn key() -> impl Strategy<Value = EmissionKey> {
        let position = prop_oneof![
            Just(Position::Unknown),
            any::<u64>().prop_map(Position::Line),
            "[0-9]{1,60}".prop_map(|s| seq(&s)),
        ];
        let time = || prop_oneof![any::<i64>(), -5i64..5, 1_600_000_000_000i64..1_600_000_000_010];
        (time(), proptest::option::of(position), proptest::option::of(time()))
            .prop_map(|(time, record, timer)| EmissionKey { time, record, timer })
    }

    proptest! {
        #[test]
        fn the_encoding_sorts_as_the_keys_and_reads_back(a in key(), b in key()) {
            let (ea, eb) = (a.encode(), b.encode());
            prop_assert_eq!(ea.as_bytes().cmp(eb.as_bytes()), a.cmp(&b), "{} vs {}", ea, eb);
            prop_assert_eq!(EmissionKey::decode(&ea), Some(a));
        }
    }
}
