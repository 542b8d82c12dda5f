//! Engine snapshots: a restored engine behaves bit for bit as the one that
//! wrote the snapshot, and bad snapshots are refused with the right error,
//! never a panic.
//!
//! The property: over the hostile random streams of `support::stream`
//! (duplicates, corrections, retractions, TTL, late and out-of-order events)
//! and a random timer policy, engine A applies all n records, firing timers on
//! stream time before each record (as a replay does); engine B applies the
//! first k (k random in 0..=n), writes a snapshot, and C, read from it, applies
//! the rest. C's emissions must be A's emissions after the cut, exactly
//! (customer, as_of, trigger, the 46 features' bits), and so must everything
//! after the stream: timers fired 400 days on, `features_at`, clocks,
//! counters, `state_size`, and A's and C's snapshots byte for byte. Writing
//! C's snapshot right after the restore gives B's bytes.
//!
//! `PROPTEST_CASES` (default 256) sets the number of cases; the long-stream
//! property runs an eighth of it.

mod support;

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestCaseError};
use pulse_operators::{
    Emission, Engine, EngineConfig, SnapshotError, TimerPolicy, SNAPSHOT_FORMAT_VERSION, SNAPSHOT_MAGIC,
};
use pulse_schemas::{Party, Sentiment, StreamRecord, FEATURE_NAMES};
use support::reference::Reference;
use support::stream::{case, long_case, Builder, Case, CUSTOMERS, D, H};
use support::{cancelled, ev, ib_call, insert, login, modify, payment, rated, remove, reply, session, BASE_MS};

/// Timers off, the default daily policy, and a short one that both fires
/// often and stops after a few silent days.
fn policy() -> impl Strategy<Value = TimerPolicy> {
    prop_oneof![
        Just(TimerPolicy::Off),
        Just(TimerPolicy::default()),
        Just(TimerPolicy::Every { interval_ms: 6 * H, max_silence_ms: 5 * D }),
    ]
}

/// Applies `records` as a replay does: stream time (the record's creation
/// time) fires due timers first. Samples `state_size` after each record so
/// the peak moves too.
fn drive(engine: &Engine, records: &[StreamRecord<'static>], out: &mut Vec<Emission>) {
    for r in records {
        if let Some(created) = r.created_ms {
            engine.advance_to(created.floor() as i64, out);
        }
        engine.apply(r, out);
        engine.state_size();
    }
}

fn snapshot(engine: &Engine) -> Vec<u8> {
    let mut bytes = Vec::new();
    engine.write_snapshot(&mut bytes).expect("writing to memory cannot fail");
    bytes
}

/// Equal emissions, the features compared by their bits.
fn same_emissions(actual: &[Emission], expected: &[Emission], what: &str) -> Result<(), TestCaseError> {
    prop_assert_eq!(actual.len(), expected.len(), "{}: number of emissions", what);
    for (n, (a, e)) in actual.iter().zip(expected).enumerate() {
        prop_assert_eq!(&a.customer_id, &e.customer_id, "{} #{}: customer", what, n);
        prop_assert_eq!(a.as_of, e.as_of, "{} #{}: as_of", what, n);
        prop_assert_eq!(a.trigger, e.trigger, "{} #{}: trigger", what, n);
        same_features(&a.features, &e.features, &format!("{what} #{n}"))?;
    }
    Ok(())
}

fn same_features(a: &[f64], e: &[f64], what: &str) -> Result<(), TestCaseError> {
    for (i, name) in FEATURE_NAMES.iter().enumerate() {
        prop_assert_eq!(a[i].to_bits(), e[i].to_bits(), "{}: {} is {} vs {}", what, name, a[i], e[i]);
    }
    Ok(())
}

fn run_case(case: &Case, timers: TimerPolicy, cut: Index) -> Result<(), TestCaseError> {
    let config = EngineConfig { timers };
    let records = Builder::records(case, &mut Reference::new());
    let k = cut.index(records.len() + 1);

    let a = Engine::new(config);
    let mut out_a = Vec::new();
    drive(&a, &records[..k], &mut out_a);
    let before_cut = out_a.len();
    drive(&a, &records[k..], &mut out_a);

    let b = Engine::new(config);
    drive(&b, &records[..k], &mut Vec::new());
    let bytes = snapshot(&b);
    let c = Engine::read_snapshot(config, bytes.as_slice()).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert!(snapshot(&c) == bytes, "snapshot -> restore -> snapshot changed the bytes");
    prop_assert_eq!(c.counters(), b.counters());
    prop_assert_eq!(c.state_size(), b.state_size());

    let mut out_c = Vec::new();
    drive(&c, &records[k..], &mut out_c);
    same_emissions(&out_c, &out_a[before_cut..], &format!("after the cut at {k} of {}", records.len()))?;

    // Whatever the timers still hold fires the same way.
    let end = records.iter().filter_map(|r| r.created_ms).fold(BASE_MS, |t, c| t.max(c as i64));
    let (mut late_a, mut late_c) = (Vec::new(), Vec::new());
    a.advance_to(end + 400 * D, &mut late_a);
    c.advance_to(end + 400 * D, &mut late_c);
    same_emissions(&late_c, &late_a, "timers after the stream")?;

    for customer in CUSTOMERS.iter().take(case.customers) {
        prop_assert_eq!(c.customer_clock(customer), a.customer_clock(customer), "{} clock", customer);
        if let Some(clock) = a.customer_clock(customer) {
            for dt in [0, 1, 7 * D, 14 * D + 1, 30 * D, 400 * D] {
                match (c.features_at(customer, clock + dt), a.features_at(customer, clock + dt)) {
                    (Some(fc), Some(fa)) => same_features(&fc, &fa, &format!("features_at({customer}, C + {dt})"))?,
                    (fc, fa) => prop_assert!(false, "features_at({}, C + {}): {:?} vs {:?}", customer, dt, fc, fa),
                }
            }
        }
    }
    prop_assert_eq!(c.counters(), a.counters());
    prop_assert_eq!(c.customers(), a.customers());
    prop_assert_eq!(c.state_size(), a.state_size());
    prop_assert!(snapshot(&c) == snapshot(&a), "final snapshots differ");
    Ok(())
}

fn config(divisor: u32) -> Config {
    let cases: u32 = std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(256);
    Config { cases: (cases / divisor).max(1), failure_persistence: None, ..Config::default() }
}

proptest! {
    #![proptest_config(config(1))]

    #[test]
    fn restored_engine_continues_bit_for_bit(case in case(), timers in policy(), cut in any::<Index>()) {
        run_case(&case, timers, cut)?;
    }
}

proptest! {
    #![proptest_config(config(8))]

    #[test]
    fn restored_engine_continues_bit_for_bit_on_long_streams(
        case in long_case(),
        timers in policy(),
        cut in any::<Index>(),
    ) {
        run_case(&case, timers, cut)?;
    }
}

/// A small engine with every kind of state: several customers, tutors (one
/// id longer than 23 bytes), sessions with switches, a retraction, a
/// correction, an event past the horizon, timers pending.
fn small_engine() -> (Engine, Vec<StreamRecord<'static>>) {
    let t = BASE_MS;
    let long_id = "evt-with-an-id-longer-than-23-bytes";
    let records = vec![
        insert(ev("stu_1", "e1", t, session("tut_a", 45.0))),
        insert(ev("stu_1", "e2", t + D, session("tut_b", 30.5))),
        insert(ev("stu_1", long_id, t + 2 * D, session("tut_a", 60.0))),
        insert(ev("stu_1", "e4", t + 2 * D + H, rated("tut_a", 4.5))),
        insert(ev("stu_1", "e5", t + 3 * D, payment(120.25, true))),
        insert(ev("stu_1", "e6", t + 3 * D, payment(120.25, false))),
        remove(ev("stu_1", "e2", t + D, session("tut_b", 30.5))),
        insert(ev("stu_2", "x1", t - 40 * D, login())),
        insert(ev("stu_2", "x2", t + 5 * D, ib_call(Sentiment::Negative))),
        modify(
            Some(ev("stu_2", "x2", t + 5 * D, ib_call(Sentiment::Negative))),
            Some(ev("stu_2", "x2", t + 5 * D, ib_call(Sentiment::Positive))),
        ),
        insert(ev("stu_3", "m1", t + 6 * D, reply(Party::Tutor, 12.5, Some("tut_the_third_with_a_long_name")))),
        insert(ev("stu_3", "m2", t + 6 * D + 1, cancelled("tut_c", Party::Student))),
    ];
    let engine = Engine::new(EngineConfig::default());
    drive(&engine, &records, &mut Vec::new());
    (engine, records)
}

/// More records for the customers of [`small_engine`], to use a restored one.
fn follow_up() -> Vec<StreamRecord<'static>> {
    let t = BASE_MS + 8 * D;
    vec![
        insert(ev("stu_1", "f1", t, session("tut_b", 20.0))),
        remove(ev("stu_1", "e1", BASE_MS, session("tut_a", 45.0))),
        insert(ev("stu_2", "f2", t + 31 * D, login())),
        insert(ev("stu_3", "f3", t + 2 * D, rated("tut_c", 1.0))),
        insert(ev("stu_4", "f4", t + 3 * D, session("tut_new", 50.0))),
    ]
}

#[test]
fn a_small_engine_round_trips() {
    let (engine, _) = small_engine();
    let bytes = snapshot(&engine);
    assert_eq!(&bytes[..8], b"PULSESNP");
    assert_eq!(&bytes[8..12], &SNAPSHOT_FORMAT_VERSION.to_le_bytes());
    let restored = Engine::read_snapshot(EngineConfig::default(), bytes.as_slice()).expect("restores");
    assert_eq!(snapshot(&restored), bytes);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    drive(&engine, &follow_up(), &mut a);
    drive(&restored, &follow_up(), &mut b);
    engine.advance_to(BASE_MS + 500 * D, &mut a);
    restored.advance_to(BASE_MS + 500 * D, &mut b);
    assert!(a.len() > 100, "timers fired: {}", a.len());
    assert!(a.iter().zip(&b).all(|(x, y)| x.customer_id == y.customer_id
        && x.as_of == y.as_of
        && x.trigger == y.trigger
        && x.features.iter().zip(&y.features).all(|(p, q)| p.to_bits() == q.to_bits())));
    assert_eq!(a.len(), b.len());
    assert_eq!(snapshot(&engine), snapshot(&restored));
}

#[test]
fn an_engine_checks_its_own_snapshot_and_refuses_another() {
    let (engine, _) = small_engine();
    let bytes = snapshot(&engine);
    engine.check_snapshot(bytes.as_slice()).expect("its own snapshot checks");
    Engine::new(EngineConfig::default())
        .check_snapshot(snapshot(&Engine::new(EngineConfig::default())).as_slice())
        .unwrap();

    // One record more (a customer's state moved): the header's counters differ.
    let (later, _) = small_engine();
    drive(&later, &follow_up()[..1], &mut Vec::new());
    let err = later.check_snapshot(bytes.as_slice()).unwrap_err().to_string();
    assert!(err.contains("differs"), "{err}");

    // Any byte flipped (past the magic and version): refused, by the frames'
    // checks or the comparison; and the later engine's snapshot too.
    let other = snapshot(&later);
    let (restored, _) = small_engine();
    for (i, _) in bytes.iter().enumerate().skip(12) {
        let mut bad = bytes.clone();
        bad[i] ^= 0x01;
        assert!(restored.check_snapshot(bad.as_slice()).is_err(), "byte {i} flipped passed the check");
    }
    assert!(restored.check_snapshot(other.as_slice()).is_err());
    // Truncated anywhere: refused.
    for len in (0..bytes.len()).step_by(7) {
        assert!(engine.check_snapshot(&bytes[..len]).is_err(), "cut at {len}");
    }
}

#[test]
fn an_empty_engine_round_trips() {
    let engine = Engine::new(EngineConfig { timers: TimerPolicy::Off });
    let bytes = snapshot(&engine);
    let restored = Engine::read_snapshot(EngineConfig { timers: TimerPolicy::Off }, bytes.as_slice()).unwrap();
    assert_eq!(restored.customers(), 0);
    assert_eq!(snapshot(&restored), bytes);
}

#[test]
fn every_truncation_is_refused_as_truncated() {
    let bytes = snapshot(&small_engine().0);
    for len in 0..bytes.len() {
        match Engine::read_snapshot(EngineConfig::default(), &bytes[..len]) {
            Err(SnapshotError::Truncated(_)) => {}
            Err(e) => panic!("prefix of {len} of {} bytes: {e} (expected truncation)", bytes.len()),
            Ok(_) => panic!("prefix of {len} of {} bytes restored an engine", bytes.len()),
        }
    }
}

#[test]
fn wrong_magic_and_version_are_named() {
    let bytes = snapshot(&small_engine().0);
    let mut other = bytes.clone();
    other[..8].copy_from_slice(b"PK\x03\x04zip!");
    match Engine::read_snapshot(EngineConfig::default(), other.as_slice()) {
        Err(e @ SnapshotError::NotASnapshot { .. }) => assert!(e.to_string().contains("not an engine snapshot")),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        Engine::read_snapshot(EngineConfig::default(), &b"{\"json\": 1}"[..]),
        Err(SnapshotError::NotASnapshot { .. })
    ));
    let mut newer = bytes.clone();
    newer[8..12].copy_from_slice(&(SNAPSHOT_FORMAT_VERSION + 1).to_le_bytes());
    match Engine::read_snapshot(EngineConfig::default(), newer.as_slice()) {
        Err(e @ SnapshotError::UnsupportedVersion { found, supported }) => {
            assert_eq!((found, supported), (SNAPSHOT_FORMAT_VERSION + 1, SNAPSHOT_FORMAT_VERSION));
            let expected = format!("version {} is not supported", SNAPSHOT_FORMAT_VERSION + 1);
            assert!(e.to_string().contains(&expected), "{e}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(SNAPSHOT_MAGIC, *b"PULSESNP");
}

#[test]
fn another_timer_policy_is_refused() {
    let bytes = snapshot(&small_engine().0);
    let off = EngineConfig { timers: TimerPolicy::Off };
    match Engine::read_snapshot(off, bytes.as_slice()) {
        Err(SnapshotError::ConfigMismatch { snapshot, given }) => {
            assert_eq!(snapshot, EngineConfig::default());
            assert_eq!(given, off);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn every_flipped_byte_is_refused() {
    let bytes = snapshot(&small_engine().0);
    for at in 0..bytes.len() {
        let mut bad = bytes.clone();
        bad[at] ^= 0x10;
        match Engine::read_snapshot(EngineConfig::default(), bad.as_slice()) {
            Ok(_) => panic!("a flip at byte {at} restored an engine"),
            Err(SnapshotError::NotASnapshot { .. }) => assert!(at < 8),
            Err(SnapshotError::UnsupportedVersion { .. }) => assert!((8..12).contains(&at)),
            Err(_) => assert!(at >= 12),
        }
    }
}

/// The snapshot's frames: (offset of the length, payload).
fn frames(bytes: &[u8]) -> Vec<(usize, Vec<u8>)> {
    let mut at = 12;
    let mut out = Vec::new();
    while at < bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        out.push((at, bytes[at + 4..at + 4 + len].to_vec()));
        at += 4 + len + 8;
    }
    out
}

/// A snapshot from a faulty writer: frames with valid checksums around bytes
/// that were changed. Each change is either refused as corrupt or gives an
/// engine that works (the changed byte was one the engine takes as stored,
/// like a counter); never a panic, now or when the engine is used.
#[test]
fn changed_bytes_behind_valid_checksums_never_panic() {
    let bytes = snapshot(&small_engine().0);
    let frames = frames(&bytes);
    assert_eq!(frames.len(), 1, "a small snapshot is one frame");
    let (at, payload) = &frames[0];
    let (mut refused, mut restored) = (0, 0);
    for i in 0..payload.len() {
        for mask in [0x01u8, 0x80, 0xff] {
            let mut p = payload.clone();
            p[i] ^= mask;
            let mut bad = bytes[..*at].to_vec();
            bad.extend_from_slice(&(p.len() as u32).to_le_bytes());
            bad.extend_from_slice(&p);
            bad.extend_from_slice(&xxhash_rust::xxh3::xxh3_64(&p).to_le_bytes());
            match Engine::read_snapshot(EngineConfig::default(), bad.as_slice()) {
                Err(SnapshotError::Corrupt(_) | SnapshotError::Truncated(_) | SnapshotError::ConfigMismatch { .. }) => {
                    refused += 1
                }
                Err(e) => panic!("byte {i} ^ {mask:#x}: unexpected {e}"),
                Ok(engine) => {
                    restored += 1;
                    let mut out = Vec::new();
                    drive(&engine, &follow_up(), &mut out);
                    engine.advance_to(BASE_MS + 800 * D, &mut out);
                    for c in ["stu_1", "stu_2", "stu_3", "stu_4"] {
                        if let Some(clock) = engine.customer_clock(c) {
                            engine.features_at(c, clock + 3 * D);
                        }
                    }
                    snapshot(&engine);
                }
            }
        }
    }
    assert!(refused > restored, "{refused} refused, {restored} restored");
}

#[test]
fn the_reader_takes_exactly_the_snapshot() {
    let bytes = snapshot(&small_engine().0);
    let mut file = bytes.clone();
    file.extend_from_slice(b"positions follow");
    let mut input = file.as_slice();
    Engine::read_snapshot(EngineConfig::default(), &mut input).expect("restores");
    assert_eq!(input, b"positions follow");
}

#[test]
fn restore_keeps_state_size_counters_and_pending_timers() {
    let (engine, _) = small_engine();
    let restored = Engine::read_snapshot(EngineConfig::default(), snapshot(&engine).as_slice()).unwrap();
    let size = engine.state_size();
    assert!(size.pending_timers == 3 && size.customers == 3 && size.held_events > 0, "{size:?}");
    assert_eq!(restored.state_size(), size);
    assert_eq!(restored.counters(), engine.counters());
}
