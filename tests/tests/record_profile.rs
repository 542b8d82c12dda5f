//! The realistic record profile (`pulse generate --record-profile realistic`):
//! the same marketplace with extra, non-contract attributes in every event
//! item (a string, a map, a list). §1 says extra attributes are ignored, so
//! the replay of the realistic capture must give the very same features
//! file, the same counters and the same dead letters (reasons, lines) as the
//! compact capture of the same seed; only the bytes read differ.

mod common;

use common::{replay_capture, write_file};
use pulse_operators::TimerPolicy;
use pulse_synth::{generate, Hostility, RecordProfile, SynthConfig};
use serde_json::Value;

fn capture(profile: RecordProfile) -> Vec<u8> {
    let config = SynthConfig {
        customers: 200,
        days: 25,
        seed: 31,
        hostility: Hostility::hostile(),
        record_profile: profile,
        ..SynthConfig::default()
    };
    let mut bytes = Vec::new();
    generate(&config, &mut bytes, &mut |_| {}).expect("the generator runs");
    bytes
}

fn lines(bytes: &[u8]) -> Vec<&[u8]> {
    bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()).collect()
}

/// A dead letter without the record it carries (which has the extra attributes).
fn without_record(mut dead: Value) -> Value {
    dead.as_object_mut().expect("a dead letter is an object").remove("record");
    dead
}

#[test]
fn realistic_records_are_600_to_1000_bytes_and_replay_to_the_same_features_as_compact() {
    let compact = capture(RecordProfile::Compact);
    let realistic = capture(RecordProfile::Realistic);
    let (c_lines, r_lines) = (lines(&compact), lines(&realistic));
    assert_eq!(c_lines.len(), r_lines.len(), "the same records");

    // Sizes: single-image records of 600 to 1,000 bytes (a correction has
    // two images), SizeBytes grown with them.
    let mut sizes: Vec<usize> = r_lines.iter().map(|l| l.len()).collect();
    sizes.sort_unstable();
    let at = |q: f64| sizes[((sizes.len() - 1) as f64 * q) as usize];
    assert!((600..=1_000).contains(&at(0.05)) && (600..=1_000).contains(&at(0.95)), "p5 {} p95 {}", at(0.05), at(0.95));
    let mut extras = 0;
    for (c, r) in c_lines.iter().zip(&r_lines) {
        let (c, r): (Value, Value) = (serde_json::from_slice(c).unwrap(), serde_json::from_slice(r).unwrap());
        assert_eq!(c["dynamodb"]["SequenceNumber"], r["dynamodb"]["SequenceNumber"]);
        let images = ["NewImage", "OldImage"].map(|side| &r["dynamodb"][side]);
        let events: Vec<&Value> = images.into_iter().filter(|i| i["entity_type"]["S"] == "event").collect();
        if !events.is_empty() {
            for image in events {
                assert!(image["client"]["M"].is_object() && image["tags"]["L"].is_array(), "{image}");
                assert!(image["source"]["S"].is_string(), "{image}");
            }
            let size = |v: &Value| v["dynamodb"]["SizeBytes"].as_u64().unwrap();
            assert!(size(&r) > size(&c), "SizeBytes counts the extra attributes: {r}");
            extras += 1;
        } else {
            assert_eq!(c, r, "non-event items are unchanged");
        }
    }
    assert!(extras > 1_000, "event images carry the extras ({extras})");

    // Same replay, byte for byte, apart from the bytes read.
    let dir = tempfile::tempdir().unwrap();
    let c = replay_capture(&write_file(dir.path(), "compact.jsonl", &compact), TimerPolicy::default());
    let r = replay_capture(&write_file(dir.path(), "realistic.jsonl", &realistic), TimerPolicy::default());
    assert!(!c.features_bytes.is_empty());
    assert!(c.features_bytes == r.features_bytes, "the features file is the same byte for byte");
    assert_eq!(c.summary.engine, r.summary.engine, "engine counters");
    assert_eq!(c.summary.invalid, r.summary.invalid, "dead letters by reason");
    assert!(c.summary.invalid_total() > 0);
    assert_eq!((c.summary.lines, c.summary.records), (r.summary.lines, r.summary.records));
    let dead = |x: &common::Replayed| x.dead_letters().into_iter().map(without_record).collect::<Vec<_>>();
    assert_eq!(dead(&c), dead(&r), "dead letters, apart from the record they carry");
}
