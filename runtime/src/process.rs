//! The decode → engine step shared by every source: records in, feature
//! vectors and dead letters out.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use pulse_operators::{Emission, Engine, TimerPolicy};
use pulse_schemas::order::{EmissionKey, Position};
use pulse_schemas::record::{Invalid, StreamRecord};
use pulse_schemas::{CustomerId, FeatureVector, Source, Trigger, SCHEMA};
use serde::Serialize;

/// A record that could not be applied, with why and the whole original.
#[derive(Clone, Debug, PartialEq)]
pub struct DeadLetter {
    /// Where it was.
    pub source: Source,
    /// Why it is dead.
    pub invalid: Invalid,
    /// The record exactly as read.
    pub raw: Vec<u8>,
}

#[derive(Serialize)]
struct DeadLetterJson<'a> {
    code: &'static str,
    reason: String,
    source: &'a Source,
    #[serde(skip_serializing_if = "Option::is_none")]
    record: Option<&'a serde_json::value::RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    record_text: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    record_base64: Option<String>,
}

impl DeadLetter {
    /// Appends the dead letter as one JSON line: `code`, `reason`, `source`, and
    /// the record exactly as read: `record` (the original JSON), or, when it
    /// was not JSON, `record_text` (UTF-8 text) or `record_base64` (any
    /// other bytes, standard base64), so the original bytes can always be
    /// recovered.
    pub fn write_json_line(&self, out: &mut Vec<u8>) {
        use base64::Engine as _;
        let raw = serde_json::from_slice::<&serde_json::value::RawValue>(&self.raw).ok();
        let text = if raw.is_none() { std::str::from_utf8(&self.raw).ok() } else { None };
        let json = DeadLetterJson {
            code: self.invalid.reason.code(),
            reason: self.invalid.reason.to_string(),
            source: &self.source,
            record: raw,
            record_text: text,
            record_base64: (raw.is_none() && text.is_none())
                .then(|| base64::engine::general_purpose::STANDARD.encode(&self.raw)),
        };
        // Serializing plain structs into a Vec cannot fail.
        serde_json::to_writer(&mut *out, &json).expect("dead letter serializes");
        out.push(b'\n');
    }
}

/// What one step produced.
#[derive(Clone, Debug, Default)]
pub struct Produced {
    /// Vectors, in emission order.
    pub vectors: Vec<FeatureVector>,
    /// Dead letters, in input order.
    pub dead: Vec<DeadLetter>,
}

impl Produced {
    /// Whether nothing was produced.
    pub fn is_empty(&self) -> bool {
        self.vectors.is_empty() && self.dead.is_empty()
    }
}

/// Applies records to an [`Engine`], firing timers on stream time.
///
/// Stream time is the largest `ApproximateCreationDateTime` seen; before a
/// record is applied, every timer due at or before its creation time fires.
/// So a replay of the same input always gives the same vectors in the same
/// order.
#[derive(Debug)]
pub struct Processor {
    engine: Arc<Engine>,
    stream_time: i64,
    invalid: BTreeMap<&'static str, u64>,
    emissions: Vec<Emission>,
    /// Customers whose next timer was due at or before the creation time of
    /// their last record when it was applied (catch-up timers, see
    /// `pulse_schemas::order`): that creation time and the record's
    /// position, which their timer vectors rank after. Only such customers,
    /// while they catch up.
    catching_up: HashMap<CustomerId, (i64, Position), ahash::RandomState>,
    records: u64,
    behind: Behind,
}

/// A record created more than this before the stream time already reached
/// is out of stream order (see [`Behind`]). A stream's shards interleave by
/// seconds, and a batch of writes shares its creation time to the second;
/// an hour is an export sorted by something else.
pub const BEHIND_TOLERANCE_MS: i64 = 60 * 60 * 1000;

/// Records whose `ApproximateCreationDateTime` lies more than
/// [`BEHIND_TOLERANCE_MS`] before the stream time reached when they come:
/// a capture that is not in stream order (an export sorted by customer, two
/// captures put together in the wrong order). Stream time only moves
/// forward, so the timers of the customers after the jump back have
/// already fired up to where the clock ran ahead: their timer vectors, and
/// the rows and labels made from them, are lost. Counted so that the
/// commands can say so; the records themselves are applied as always.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Behind {
    /// Records that far behind.
    pub records: u64,
    /// The farthest behind (ms).
    pub max_ms: i64,
}

impl Behind {
    /// Counts a record created at `created` when stream time was `now`.
    pub fn observe(&mut self, created: i64, now: Option<i64>) {
        let Some(lag) = now.map(|now| now.saturating_sub(created)) else { return };
        if lag > BEHIND_TOLERANCE_MS {
            self.records += 1;
            self.max_ms = self.max_ms.max(lag);
        }
    }

    /// A warning for a capture with such records, naming `what` (the file).
    pub fn warning(&self, what: &str) -> Option<String> {
        (self.records > 0).then(|| {
            format!(
                "warning: {what} is not in stream order: {} record{} created up to {:.1} days before records that came \
                 earlier in the file. Stream time only moves forward, so the timers of those customers had already \
                 fired to the later time: their timer vectors (and the rows and labels made from them) are missing. \
                 Sort the capture by dynamodb.ApproximateCreationDateTime (stably: records of one time keep their \
                 order) and run again",
                self.records,
                if self.records == 1 { "" } else { "s" },
                self.max_ms as f64 / 86_400_000.0
            )
        })
    }
}

/// Records between two samples of the engine's state size (for its peak).
const STATE_SAMPLE_EVERY: u64 = 1 << 18;

impl Processor {
    /// A processor over `engine`.
    pub fn new(engine: Arc<Engine>) -> Processor {
        Processor {
            engine,
            stream_time: i64::MIN,
            invalid: BTreeMap::new(),
            emissions: Vec::new(),
            catching_up: HashMap::default(),
            records: 0,
            behind: Behind::default(),
        }
    }

    /// A processor resuming a checkpoint: `engine` as restored, and the
    /// stream time it had reached (timers due before it have fired).
    pub fn resume(engine: Arc<Engine>, stream_time: Option<i64>) -> Processor {
        Processor { stream_time: stream_time.unwrap_or(i64::MIN), ..Processor::new(engine) }
    }

    /// The engine.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Dead letters so far, by reason code.
    pub fn invalid_counts(&self) -> &BTreeMap<&'static str, u64> {
        &self.invalid
    }

    /// Stream time so far (ms), if any record carried one.
    pub fn stream_time(&self) -> Option<i64> {
        (self.stream_time != i64::MIN).then_some(self.stream_time)
    }

    /// Records that came out of stream order so far ([`Behind`]).
    pub fn behind(&self) -> Behind {
        self.behind
    }

    /// Counts a record created at `created` if it is out of stream order
    /// ([`Behind`]); call it before the record moves stream time.
    pub fn observe_created(&mut self, created: i64) {
        self.behind.observe(created, self.stream_time());
    }

    /// Handles one decoded (or failed) record; `raw` gives the original bytes
    /// for a dead letter.
    pub fn process(
        &mut self,
        decoded: Result<StreamRecord<'_>, Invalid>,
        source: Source,
        raw: &[u8],
        out: &mut Produced,
    ) {
        match decoded {
            Ok(record) => self.process_ref(Ok(&record), &source, raw, out),
            Err(invalid) => {
                self.count(&invalid);
                out.dead.push(DeadLetter { source, invalid, raw: raw.to_vec() });
            }
        }
    }

    /// [`Processor::process`] on a record the caller keeps (the driver's
    /// batches are read in place: no record is moved to be applied); only a
    /// dead letter copies what it needs.
    pub fn process_ref(
        &mut self,
        decoded: Result<&StreamRecord<'_>, &Invalid>,
        source: &Source,
        raw: &[u8],
        out: &mut Produced,
    ) {
        match decoded {
            Ok(record) => {
                self.count_record();
                if let Some(created) = record.created_ms {
                    self.observe_created(created.floor() as i64);
                    self.advance_to(created.floor() as i64, source, out);
                }
                self.engine.apply(record, &mut self.emissions);
                if !self.emissions.is_empty() {
                    // The record's place in the stream (§6, `pulse_schemas::order`):
                    // its own sequence number (the same in a capture of it),
                    // else the source's, else the capture line.
                    let seq = record.sequence_number.as_deref().or(source.sequence_number.as_deref());
                    let created = record.created_ms.map(|c| c.floor() as i64);
                    let position = Position::of(seq, source.line);
                    if let Some(created) = created {
                        self.note_catch_up(created, &position);
                    }
                    self.flush(source, Some((created, position)), out);
                }
            }
            Err(invalid) => {
                self.count(invalid);
                out.dead.push(DeadLetter { source: source.clone(), invalid: invalid.clone(), raw: raw.to_vec() });
            }
        }
    }

    /// One more record; samples the state size now and then (for its peak).
    fn count_record(&mut self) {
        self.records += 1;
        if self.records.is_multiple_of(STATE_SAMPLE_EVERY) {
            self.engine.state_size();
        }
    }

    /// One more record, a dead letter.
    fn count(&mut self, invalid: &Invalid) {
        self.count_record();
        *self.invalid.entry(invalid.reason.code()).or_default() += 1;
    }

    /// Moves stream time forward to `now` (never back), firing due timers.
    pub fn advance_to(&mut self, now: i64, source: &Source, out: &mut Produced) {
        if now > self.stream_time {
            self.stream_time = now;
            self.engine.advance_to(now, &mut self.emissions);
            self.flush(source, None, out);
        }
    }

    /// Remembers the customers of the record's event vectors (created at
    /// `created`, at `position`) whose next timer is already due by then;
    /// forgets those whose is not.
    fn note_catch_up(&mut self, created: i64, position: &Position) {
        let interval = match self.engine.config().timers {
            TimerPolicy::Every { interval_ms, .. } => interval_ms.max(1),
            TimerPolicy::Off => return,
        };
        for e in &self.emissions {
            // The next timer is due at least an interval after `as_of` (C):
            // only a record created that long after C can have one due.
            let due_by_then = e.as_of.saturating_add(interval) <= created
                && self.engine.next_due(e.customer_id.as_str()).is_some_and(|due| due <= created);
            if due_by_then {
                self.catching_up.insert(e.customer_id.clone(), (created, position.clone()));
            } else if !self.catching_up.is_empty() {
                self.catching_up.remove(&e.customer_id);
            }
        }
    }

    /// Moves the engine's emissions to `out`, each with its place in the
    /// customer's stream: a timer vector at its due time, or right after the
    /// customer's last record when it is a catch-up timer; an event vector
    /// at its `record`'s creation time (its `as_of` when the record has
    /// none) and position.
    fn flush(&mut self, source: &Source, record: Option<(Option<i64>, Position)>, out: &mut Produced) {
        out.vectors.extend(self.emissions.drain(..).map(|e| {
            let emission = match (e.trigger, &record) {
                (Trigger::Event, Some((created, position))) => {
                    EmissionKey::record(created.unwrap_or(e.as_of), position.clone())
                }
                (Trigger::Event, None) => EmissionKey::at(e.as_of),
                (Trigger::Timer, _) => match self.catching_up.get(&e.customer_id) {
                    Some((created, position)) if e.as_of <= *created => {
                        EmissionKey::timer_after(*created, position.clone(), e.as_of)
                    }
                    Some(_) => {
                        self.catching_up.remove(&e.customer_id);
                        EmissionKey::timer(e.as_of)
                    }
                    None => EmissionKey::timer(e.as_of),
                },
            };
            FeatureVector {
                customer_id: e.customer_id,
                as_of: e.as_of,
                trigger: e.trigger,
                source: source.clone(),
                schema: std::borrow::Cow::Borrowed(SCHEMA),
                features: e.features,
                emission: Some(emission),
            }
        }));
    }
}

/// Appends a vector as one JSON line.
///
/// The bytes of `serde_json::to_writer` and a newline, written directly
/// ([`FeatureVector::write_json_line`]).
pub fn write_vector_line(v: &FeatureVector, out: &mut Vec<u8>) {
    v.write_json_line(out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use pulse_schemas::record::InvalidReason;

    fn dead(raw: &[u8]) -> serde_json::Value {
        let letter = DeadLetter {
            source: Source::default(),
            invalid: Invalid::from(InvalidReason::Malformed("test".into())),
            raw: raw.to_vec(),
        };
        let mut line = Vec::new();
        letter.write_json_line(&mut line);
        serde_json::from_slice(&line).unwrap()
    }

    #[test]
    fn a_dead_letter_keeps_the_original_bytes() {
        use base64::Engine as _;
        assert_eq!(dead(br#"{"a":1}"#)["record"], serde_json::json!({"a": 1}));
        assert_eq!(dead(b"not json").get("record_text").and_then(|t| t.as_str()), Some("not json"));
        let bytes = b"\xff\xfe{\"eventName\":\"INSERT\"}";
        let got = dead(bytes);
        assert!(got.get("record_text").is_none() && got.get("record").is_none(), "{got}");
        let back = base64::engine::general_purpose::STANDARD.decode(got["record_base64"].as_str().unwrap()).unwrap();
        assert_eq!(back, bytes, "the bytes come back whole");
    }
}
