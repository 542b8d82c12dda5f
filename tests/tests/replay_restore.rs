//! Golden replay with a restore in the middle, and determinism.
//!
//! The engine has no snapshot API, so the restore is the one a consumer makes
//! after a crash without a checkpoint: it had applied lines `1..=k`, restarts
//! from the beginning of the stream and applies lines `1..=n` again (every one
//! of the first `k` records is redelivered). The contract's duplicate rule
//! (§2) makes that safe; this file proves it end to end on synthetic captures
//! with every kind of hostility:
//!
//! * for several crash points `k`, the redelivered stream leaves every
//!   customer with exactly the features of the clean stream at the end time
//!   (`Engine::features_at`, all 46, bit for bit), with and without timers;
//! * after the redelivered prefix, the vectors of lines `k+1..=n` are exactly
//!   those of the clean replay (customer, `as_of`, trigger, features), with
//!   and without timers: a restore changes nothing downstream of the crash
//!   point (the second delivery of lines `1..=k` may itself re-emit, e.g. for
//!   an event retracted and then added again; those vectors are not
//!   compared);
//! * the naive reference model fed the redelivered stream agrees;
//! * two replays of the same capture through `pulse_runtime::replay::replay` write
//!   byte-identical feature and dead-letter files, with and without timers
//!   (the pipeline runs its stages on several threads).
//!
//! Captures are small (120 customers over 30 days) to keep the test fast;
//! 60-day hostile captures over several seeds and crash points were checked
//! the same way while writing it.

mod common;

use common::support::feature_diffs;
use common::support::reference::Reference;
use common::{capture_lines, replay_capture, write_file, Driver};
use pulse_operators::TimerPolicy;
use pulse_runtime::process::write_vector_line;
use pulse_schemas::capture::decode_line;
use pulse_schemas::FeatureVector;
use pulse_synth::{generate, Hostility, SynthConfig};

fn synth(customers: usize, days: u32, seed: u64, hostility: Hostility) -> (Vec<u8>, SynthConfig) {
    let config = SynthConfig { customers, days, seed, hostility, ..SynthConfig::default() };
    let mut capture = Vec::new();
    generate(&config, &mut capture, &mut |_| {}).expect("the generator runs");
    (capture, config)
}

fn customer_ids(config: &SynthConfig) -> Vec<String> {
    (0..config.customers).map(|i| format!("stu_{i:06}")).collect()
}

/// Runs `lines` (numbered by their position in the original capture) through a
/// fresh engine and returns it with every vector.
fn run(timers: TimerPolicy, lines: &[(u64, &[u8])]) -> (Driver, Vec<FeatureVector>) {
    let mut driver = Driver::new(timers);
    let mut vectors = Vec::new();
    for &(no, line) in lines {
        vectors.extend(driver.line(no, line).vectors);
    }
    (driver, vectors)
}

fn check_restore(capture: &[u8], config: &SynthConfig, timers: TimerPolicy) {
    let lines: Vec<(u64, &[u8])> =
        capture_lines(capture).into_iter().enumerate().map(|(i, l)| (i as u64 + 1, l)).collect();
    let n = lines.len();
    let end = config.end_ms();
    let (clean, clean_vectors) = run(timers, &lines);
    let ids = customer_ids(config);

    for k in [1, n / 7, n / 3, n / 2, n - 1] {
        let redelivered: Vec<(u64, &[u8])> = lines[..k].iter().chain(&lines).copied().collect();
        let (restored, vectors) = run(timers, &redelivered);
        // The naive reference (slow: once per stream) fed the same redelivery.
        let reference = (k == n / 2).then(|| {
            let mut reference = Reference::new();
            for &(_, line) in &redelivered {
                if let Ok(record) = decode_line(line) {
                    reference.apply(&record.change);
                }
            }
            reference
        });
        for id in &ids {
            let a = clean.engine.features_at(id, end);
            let b = restored.engine.features_at(id, end);
            assert_eq!(a.is_some(), b.is_some(), "k = {k}: {id} known in one run only");
            let (Some(a), Some(b)) = (a, b) else { continue };
            let diffs = feature_diffs(&b, &a);
            assert!(diffs.is_empty(), "k = {k}, {timers:?}: {id} after the restore differs:\n{}", diffs.join("\n"));
            assert_eq!(a, b, "k = {k}: {id} must be bit for bit the same");
            if let Some(reference) = &reference {
                let r = reference.features_at(id, end).expect("the reference knows the customer");
                let diffs = feature_diffs(&b, &r);
                assert!(diffs.is_empty(), "k = {k}: {id} vs the reference:\n{}", diffs.join("\n"));
            }
            assert_eq!(clean.engine.customer_clock(id), restored.engine.customer_clock(id), "k = {k}: clock of {id}");
        }
        // Downstream of the crash point: from the first vector of a line after
        // k (timers due before line k+1 carry its number), the restored run
        // emits exactly what the clean run emits for those lines.
        let start = vectors.iter().position(|v| v.source.line.unwrap() > k as u64).unwrap_or(vectors.len());
        let after: Vec<&FeatureVector> = vectors[start..].iter().collect();
        let clean_after: Vec<&FeatureVector> =
            clean_vectors.iter().filter(|v| v.source.line.unwrap() > k as u64).collect();
        assert_eq!(after.len(), clean_after.len(), "k = {k}, {timers:?}: vectors after the crash point");
        for (a, b) in after.iter().zip(&clean_after) {
            assert_eq!(a, b, "k = {k}, {timers:?}: a vector after the crash point differs");
        }
    }
}

#[test]
fn restore_by_redelivery_hostile_without_timers() {
    let (capture, config) = synth(120, 30, 11, Hostility::hostile());
    check_restore(&capture, &config, TimerPolicy::Off);
}

#[test]
fn restore_by_redelivery_hostile_with_timers() {
    let (capture, config) = synth(120, 30, 12, Hostility::hostile());
    check_restore(&capture, &config, TimerPolicy::default());
}

#[test]
fn restore_by_redelivery_of_the_golden_fixture() {
    let bytes = std::fs::read(common::fixture("golden.jsonl")).unwrap();
    let lines: Vec<(u64, &[u8])> =
        capture_lines(&bytes).into_iter().enumerate().map(|(i, l)| (i as u64 + 1, l)).collect();
    let (clean, clean_vectors) = run(TimerPolicy::Off, &lines);
    let end = common::T0 + 60 * common::D;
    for k in 1..lines.len() {
        let redelivered: Vec<(u64, &[u8])> = lines[..k].iter().chain(&lines).copied().collect();
        let (restored, vectors) = run(TimerPolicy::Off, &redelivered);
        for id in ["stu_win", "stu_dup", "stu_tie", "stu_tutor", "stu_late", "stu_future"] {
            assert_eq!(clean.engine.features_at(id, end), restored.engine.features_at(id, end), "k = {k}: {id}");
        }
        let start = vectors.iter().position(|v| v.source.line.unwrap() > k as u64).unwrap_or(vectors.len());
        let clean_tail: Vec<&FeatureVector> =
            clean_vectors.iter().filter(|v| v.source.line.unwrap() > k as u64).collect();
        assert_eq!(vectors[start..].iter().collect::<Vec<_>>(), clean_tail, "k = {k}");
    }
}

#[test]
fn replays_are_byte_identical_with_and_without_timers() {
    let (capture, _) = synth(150, 20, 5, Hostility::hostile());
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(dir.path(), "capture.jsonl", &capture);
    for timers in [TimerPolicy::Off, TimerPolicy::default()] {
        let a = replay_capture(&path, timers);
        let b = replay_capture(&path, timers);
        assert!(!a.features_bytes.is_empty() && !a.dead_bytes.is_empty());
        assert!(a.features_bytes == b.features_bytes, "{timers:?}: two replays wrote different vectors");
        assert!(a.dead_bytes == b.dead_bytes, "{timers:?}: two replays wrote different dead letters");
        assert_eq!(a.summary.engine, b.summary.engine);
        assert_eq!(a.summary.invalid, b.summary.invalid);
        // And the pipeline writes exactly what the decode → engine step gives,
        // driven line by line on one thread.
        let mut driver = Driver::new(timers);
        let produced = driver.lines(capture_lines(&capture));
        let mut expected = Vec::new();
        produced.vectors.iter().for_each(|v| write_vector_line(v, &mut expected));
        assert!(a.features_bytes == expected, "{timers:?}: the replay wrote other vectors than the step gives");
        if timers == TimerPolicy::default() {
            assert!(a.summary.vectors_timer > 0, "20 days fire timers");
        }
    }
}
