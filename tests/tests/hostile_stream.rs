//! A hostile synthetic marketplace (`pulse_synth`, `Hostility::hostile()`:
//! duplicates, delays, corrections, user retractions, TTL removals, late,
//! future and invalid records, non-event items) of 300 customers over 45
//! days, written to a capture file and replayed through
//! `pulse_runtime::replay::replay` with daily timers. It proves that:
//!
//! * the replay finishes (no panic, no error) and reads every line;
//! * what the engine counted is exactly what the generator says it injected:
//!   duplicates, late adds + late retractions, TTL expiries, non-event
//!   records, held events retracted (corrections + retractions) and dead
//!   letters (invalid + future), each dead letter with its code;
//! * for a sample of customers, every vector in the features file (event and
//!   timer) equals the naive reference model (`operators/tests/support`) for
//!   that customer at that `as_of`, on all 46 features, and the reference
//!   emits an event vector exactly where the file has one.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::support::feature_diffs;
use common::support::reference::Reference;
use common::{capture_lines, replay_capture, write_file};
use pulse_operators::TimerPolicy;
use pulse_schemas::capture::decode_line;
use pulse_schemas::{FeatureVector, Trigger};
use pulse_synth::{generate, Hostility, SynthConfig, SynthSummary};

const CUSTOMERS: usize = 300;
const DAYS: u32 = 45;
/// Every SAMPLE_EVERY-th customer is checked against the reference.
const SAMPLE_EVERY: usize = 10;

struct Run {
    capture: Vec<u8>,
    synth: SynthSummary,
    replayed: common::Replayed,
}

fn run() -> Run {
    let config = SynthConfig {
        customers: CUSTOMERS,
        days: DAYS,
        seed: 2024,
        hostility: Hostility::hostile(),
        ..SynthConfig::default()
    };
    let mut capture = Vec::new();
    let synth = generate(&config, &mut capture, &mut |_| {}).expect("the generator runs");
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(dir.path(), "hostile.jsonl", &capture);
    let replayed = replay_capture(&path, TimerPolicy::default());
    Run { capture, synth, replayed }
}

#[test]
fn hostile_stream_counters_match_what_was_injected_and_vectors_match_the_reference() {
    let Run { capture, synth, replayed } = run();
    let s = &replayed.summary;
    let h = synth.hostility;
    let e = &s.engine;

    assert_eq!(s.lines, synth.records, "every line read");
    assert_eq!(s.records, synth.records);
    for (name, count) in h.by_kind().into_iter().filter(|(name, _)| *name != "delayed") {
        assert!(count > 0, "the capture must contain {name}");
    }
    assert_eq!(e.duplicates, h.duplicates, "duplicates");
    assert_eq!(e.late_adds + e.late_retractions, h.late, "late records");
    assert_eq!(e.ttl_expiries, h.ttl_removes, "TTL expiries");
    assert_eq!(e.non_events, h.non_events, "non-event records");
    assert_eq!(e.events_retracted, h.corrections + h.retractions, "held events retracted");
    assert_eq!(s.invalid_total(), h.invalid + h.future, "dead letters");
    assert_eq!(s.invalid.get("future_event").copied().unwrap_or(0), h.future, "future events");
    assert_eq!(e.records + s.invalid_total(), s.records, "every record is applied or dead");

    // The dead-letters file: one line per dead record, each with its code.
    let dead = replayed.dead_letters();
    assert_eq!(dead.len() as u64, s.invalid_total());
    let mut by_code: BTreeMap<String, u64> = BTreeMap::new();
    for d in &dead {
        *by_code.entry(d["code"].as_str().unwrap().to_owned()).or_default() += 1;
        assert!(d.get("record").is_some(), "the generator writes JSON: the record is kept as JSON");
    }
    let summary_codes: BTreeMap<String, u64> = s.invalid.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    assert_eq!(by_code, summary_codes);

    // Every vector of a sample of customers against the reference.
    let vectors = replayed.vectors();
    assert_eq!(vectors.len() as u64, s.vectors_event + s.vectors_timer);
    assert!(s.vectors_timer > 0);
    let sample: BTreeSet<String> = (0..CUSTOMERS).step_by(SAMPLE_EVERY).map(|i| format!("stu_{i:06}")).collect();
    let (events, timers) = check_against_reference(&capture, &vectors, &sample);
    let sampled = vectors.iter().filter(|v| sample.contains(v.customer_id.as_str())).count();
    assert_eq!(events + timers, sampled, "every vector of the sample is checked");
    assert!(events > 1000 && timers > 300, "checked {events} event and {timers} timer vectors");
}

/// Walks the capture with the reference, for the sampled customers only:
/// timer vectors carrying line L fired before record L (the reference has not
/// seen it yet); an event vector carrying line L is the one the reference
/// emits for record L. Returns the numbers of event and timer vectors checked.
fn check_against_reference(capture: &[u8], vectors: &[FeatureVector], sample: &BTreeSet<String>) -> (usize, usize) {
    let mut by_line: BTreeMap<u64, Vec<&FeatureVector>> = BTreeMap::new();
    for v in vectors.iter().filter(|v| sample.contains(v.customer_id.as_str())) {
        by_line.entry(v.source.line.expect("capture vectors name their line")).or_default().push(v);
    }
    let mut reference = Reference::new();
    let (mut events, mut timers) = (0, 0);
    let mismatch = |v: &FeatureVector, expected: &pulse_schemas::Features, what: &str| {
        let diffs = feature_diffs(&v.features, expected);
        assert!(
            diffs.is_empty(),
            "line {:?}: {what} vector of {} at {} differs from the reference:\n{}",
            v.source.line,
            v.customer_id,
            v.as_of,
            diffs.join("\n")
        );
    };
    for (i, line) in capture_lines(capture).into_iter().enumerate() {
        let no = i as u64 + 1;
        let here = by_line.remove(&no).unwrap_or_default();
        for v in here.iter().filter(|v| v.trigger == Trigger::Timer) {
            let expected =
                reference.features_at(v.customer_id.as_str(), v.as_of).expect("a timer at or after the clock");
            mismatch(v, &expected, "timer");
            timers += 1;
        }
        let event: Vec<&&FeatureVector> = here.iter().filter(|v| v.trigger == Trigger::Event).collect();
        let Ok(record) = decode_line(line) else {
            assert!(event.is_empty(), "line {no}: a dead letter emits nothing");
            continue;
        };
        if !record.change.customer_id().is_some_and(|c| sample.contains(c)) {
            assert!(event.is_empty(), "line {no}");
            continue;
        }
        match reference.apply(&record.change) {
            Some(r) => {
                assert_eq!(event.len(), 1, "line {no}: the reference emits for {}, the replay must too", r.customer_id);
                assert_eq!(
                    (event[0].customer_id.as_str(), event[0].as_of),
                    (r.customer_id.as_str(), r.as_of),
                    "line {no}"
                );
                mismatch(event[0], &r.features, "event");
                events += 1;
            }
            None => assert!(event.is_empty(), "line {no}: the reference emits nothing, the replay emitted {event:?}"),
        }
    }
    assert!(by_line.is_empty(), "vectors on lines past the end: {by_line:?}");
    (events, timers)
}
