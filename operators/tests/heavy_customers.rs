//! Heavy customers against the reference model: one customer with hundreds
//! to thousands of held events, so that what small customers never reach is
//! exercised: the store's id index (built above 512 held events, used,
//! dropped when a clock jump empties the store), its buffers growing and
//! being compacted, many sessions with equal ts (feature 42 orders them by
//! event_id), more tutors at once than a held event's 8-bit local number
//! covers, numbers that have no short decimal code (both kept in a spill),
//! events out of order anywhere in the 30 days, retractions, corrections and
//! redeliveries.
//!
//! Engine A must match the reference on every emission (order, `as_of`, all
//! 46 features) and on `features_at` after the stream. Engine B applies the
//! records up to a random cut and writes a snapshot; C, read from it, must
//! continue exactly as A (emissions bit for bit, `state_size`, final
//! snapshot bytes).
//!
//! `PROPTEST_CASES` (default 256) / 16 cases.

mod support;

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestCaseError};
use pulse_operators::{Emission, Engine, EngineConfig, TimerPolicy};
use pulse_schemas::{Event, EventKind, Party, Sentiment, StreamRecord, DAY_MS};
use support::reference::Reference;
use support::{
    cancelled, ev, feature_diffs, ib_call, insert, login, modify, no_show, payment, rated, remove, reply, session,
    BASE_MS,
};

const CUSTOMER: &str = "stu_heavy";
const MINUTE: u64 = 60_000;

/// One step of a heavy stream, as raw numbers interpreted against the state
/// when the record is built (so shrinking keeps every step meaningful).
#[derive(Clone, Debug)]
struct Step {
    op: u8,
    a: u64,
    b: u64,
    value: f64,
}

#[derive(Clone, Debug)]
struct Heavy {
    steps: Vec<Step>,
    /// Distinct tutors: a few, or enough for more than 255 at once.
    tutors: usize,
    /// Minutes between in-order events, at most.
    spacing: u64,
}

fn heavy() -> impl Strategy<Value = Heavy> {
    let step = (
        any::<u8>(),
        any::<u64>(),
        any::<u64>(),
        prop_oneof![3 => (1u32..6000).prop_map(|m| f64::from(m) / 10.0), 1 => 1e-3..600.0f64],
    )
        .prop_map(|(op, a, b, value)| Step { op, a, b, value });
    (proptest::collection::vec(step, 700..1400), prop_oneof![Just(3usize), Just(1000usize)], 1u64..40)
        .prop_map(|(steps, tutors, spacing)| Heavy { steps, tutors, spacing })
}

/// Builds the records of a case against the reference's state as it goes.
struct Builder {
    tutors: usize,
    spacing: u64,
    next_id: usize,
    /// Every event ever sent, latest image per id.
    seen: Vec<Event<'static>>,
}

impl Builder {
    fn kind(&self, pick: u64, value: f64) -> EventKind<'static> {
        let tutor = format!("tut_{:03}", (pick >> 8) as usize % self.tutors);
        match pick % 16 {
            0..=5 => session(&tutor, value.clamp(0.5, 600.0)),
            6 | 7 => rated(&tutor, 1.0 + (value % 4.0)),
            8 => cancelled(&tutor, if pick & 0x10000 == 0 { Party::Student } else { Party::Tutor }),
            9 => no_show(&tutor),
            10 | 11 => login(),
            12 => payment(value, pick & 0x10000 == 0),
            13 => ib_call([Sentiment::Negative, Sentiment::Neutral, Sentiment::Positive][(pick >> 16) as usize % 3]),
            _ => reply(
                if pick & 0x10000 == 0 { Party::Student } else { Party::Tutor },
                value,
                (pick & 0x20000 == 0).then_some(tutor.as_str()),
            ),
        }
    }

    fn held(reference: &Reference) -> Vec<Event<'static>> {
        let Some(c) = reference.customer(CUSTOMER) else { return Vec::new() };
        c.held
            .iter()
            .filter(|h| h.ts > c.clock - 30 * DAY_MS)
            .map(|h| ev(CUSTOMER, &h.event_id, h.ts, h.kind.clone()))
            .collect()
    }

    fn ts(&self, step: &Step, reference: &Reference) -> i64 {
        let Some(clock) = reference.clock(CUSTOMER) else { return BASE_MS };
        let held = Builder::held(reference);
        match step.b % 20 {
            // In order, sometimes at the very same ms (ties).
            0..=11 => {
                clock + ((step.b >> 8) % (self.spacing * MINUTE + 1)) as i64 * i64::from(!step.b.is_multiple_of(3))
            }
            // Anywhere in the last 30 days (and a little past: late).
            12..=15 => clock - ((step.b >> 8) % (31 * DAY_MS as u64)) as i64,
            // The ts of a held event: ties with sessions and others.
            16..=18 if !held.is_empty() => held[(step.b >> 8) as usize % held.len()].ts.0,
            // A jump past the horizon: the store empties.
            19 if step.b >> 60 == 0 => clock + 31 * DAY_MS + ((step.b >> 8) % DAY_MS as u64) as i64,
            _ => clock + 1,
        }
    }

    fn fresh(&mut self, step: &Step, reference: &Reference) -> Event<'static> {
        self.next_id += 1;
        // Ids whose byte order is not their number order.
        let id = format!("e{}_{}", self.next_id % 7, self.next_id);
        let e = ev(CUSTOMER, &id, self.ts(step, reference), self.kind(step.a, step.value));
        self.seen.push(e.clone());
        e
    }

    fn build(&mut self, step: &Step, reference: &Reference) -> StreamRecord<'static> {
        let held = Builder::held(reference);
        let pick = |v: &[Event<'static>]| v[(step.a >> 32) as usize % v.len()].clone();
        match step.op % 16 {
            0..=9 => insert(self.fresh(step, reference)),
            10 if !self.seen.is_empty() => insert(pick(&self.seen)),
            11 | 12 if !held.is_empty() => remove(pick(&held)),
            13 | 14 if !held.is_empty() => {
                let old = pick(&held);
                let mut new = old.clone();
                if step.op & 0x10 == 0 {
                    new.kind = self.kind(step.a, step.value);
                } else {
                    new.ts.0 = self.ts(step, reference);
                }
                self.seen.push(new.clone());
                modify(Some(old), Some(new))
            }
            15 if !self.seen.is_empty() => insert(pick(&self.seen)),
            _ => insert(self.fresh(step, reference)),
        }
    }
}

/// Applies `records` as a replay does (timers on stream time), sampling
/// `state_size` after each so that the peak moves the same way.
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

fn run(case: &Heavy, cut: Index) -> Result<(), TestCaseError> {
    let mut reference = Reference::new();
    let mut builder = Builder { tutors: case.tutors, spacing: case.spacing, next_id: 0, seen: Vec::new() };
    let a = Engine::new(EngineConfig { timers: TimerPolicy::Off });
    let mut records = Vec::with_capacity(case.steps.len());
    let mut out = Vec::new();
    let mut most_held = 0;
    for (n, step) in case.steps.iter().enumerate() {
        let record = builder.build(step, &reference);
        out.clear();
        a.apply(&record, &mut out);
        let expected = reference.apply(&record.change);
        match (out.as_slice(), &expected) {
            ([], None) => {}
            ([e], Some(r)) => {
                prop_assert_eq!(e.as_of, r.as_of, "record #{}", n);
                let diffs = feature_diffs(&e.features, &r.features);
                prop_assert!(
                    diffs.is_empty(),
                    "record #{} (T = {}): features differ:\n{}",
                    n,
                    r.as_of,
                    diffs.join("\n")
                );
            }
            (got, _) => {
                return Err(TestCaseError::fail(format!("record #{n}: engine emitted {got:?}, reference {expected:?}")))
            }
        }
        most_held = most_held.max(a.state_size().held_events);
        records.push(record);
    }
    let clock = reference.clock(CUSTOMER).expect("the first record adds an event");
    for dt in [0, 1, 7 * DAY_MS, 14 * DAY_MS + 1, 30 * DAY_MS, 400 * DAY_MS] {
        let (actual, expected) = (a.features_at(CUSTOMER, clock + dt), reference.features_at(CUSTOMER, clock + dt));
        let (Some(actual), Some(expected)) = (actual, expected) else {
            return Err(TestCaseError::fail(format!("features_at(C + {dt}) missing")));
        };
        let diffs = feature_diffs(&actual, &expected);
        prop_assert!(diffs.is_empty(), "features_at(C + {}): features differ:\n{}", dt, diffs.join("\n"));
    }

    // Snapshot at a random cut, with daily timers, against an engine that
    // never stopped.
    let config = EngineConfig { timers: TimerPolicy::default() };
    let k = cut.index(records.len() + 1);
    let (full, b) = (Engine::new(config), Engine::new(config));
    let mut out_full = Vec::new();
    drive(&full, &records[..k], &mut out_full);
    let before = out_full.len();
    drive(&full, &records[k..], &mut out_full);
    drive(&b, &records[..k], &mut Vec::new());
    let bytes = snapshot(&b);
    let c = Engine::read_snapshot(config, bytes.as_slice()).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert!(snapshot(&c) == bytes, "snapshot -> restore -> snapshot changed the bytes");
    prop_assert_eq!(c.state_size(), b.state_size());
    let mut out_c = Vec::new();
    drive(&c, &records[k..], &mut out_c);
    prop_assert_eq!(out_c.len(), out_full.len() - before, "emissions after the cut at {}", k);
    for (x, y) in out_c.iter().zip(&out_full[before..]) {
        prop_assert_eq!((x.as_of, x.trigger), (y.as_of, y.trigger));
        prop_assert!(x.features.iter().zip(&y.features).all(|(p, q)| p.to_bits() == q.to_bits()), "{:?} vs {:?}", x, y);
    }
    prop_assert_eq!(c.state_size(), full.state_size());
    prop_assert!(snapshot(&c) == snapshot(&full), "final snapshots differ");
    prop_assert!(most_held > 0);
    Ok(())
}

fn config() -> Config {
    let cases: u32 = std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(256);
    Config { cases: (cases / 16).max(1), failure_persistence: None, ..Config::default() }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn heavy_customer_matches_reference_and_restores(case in heavy(), cut in any::<Index>()) {
        run(&case, cut)?;
    }
}

/// The generator reaches what the property is about: a store above the
/// index threshold, hundreds of tutors at once, equal-ts sessions.
#[test]
fn heavy_streams_reach_the_index_and_many_tutors() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    let mut runner = TestRunner::deterministic();
    let (mut most_held, mut most_tutors, mut tied_sessions) = (0u64, 0usize, 0usize);
    for _ in 0..6 {
        let case = heavy().new_tree(&mut runner).map_err(|e| e.to_string()).expect("a case").current();
        let mut reference = Reference::new();
        let mut builder = Builder { tutors: case.tutors, spacing: case.spacing, next_id: 0, seen: Vec::new() };
        let engine = Engine::new(EngineConfig { timers: TimerPolicy::Off });
        for step in &case.steps {
            let record = builder.build(step, &reference);
            engine.apply(&record, &mut Vec::new());
            reference.apply(&record.change);
            most_held = most_held.max(engine.state_size().held_events);
            let held = Builder::held(&reference);
            let mut tutors: Vec<&str> = held
                .iter()
                .filter_map(|e| match &e.kind {
                    EventKind::SessionCompleted { tutor_id, .. }
                    | EventKind::SessionRated { tutor_id, .. }
                    | EventKind::SessionCancelled { tutor_id, .. }
                    | EventKind::SessionNoShow { tutor_id } => Some(&**tutor_id),
                    EventKind::MessageReply { tutor_id, .. } => tutor_id.as_deref(),
                    _ => None,
                })
                .collect();
            tutors.sort_unstable();
            tutors.dedup();
            most_tutors = most_tutors.max(tutors.len());
            let mut session_ts: Vec<i64> =
                held.iter().filter(|e| matches!(e.kind, EventKind::SessionCompleted { .. })).map(|e| e.ts.0).collect();
            let n = session_ts.len();
            session_ts.sort_unstable();
            session_ts.dedup();
            tied_sessions = tied_sessions.max(n - session_ts.len());
        }
    }
    assert!(most_held > 600, "at most {most_held} held events");
    assert!(most_tutors > 255, "at most {most_tutors} tutors at once");
    assert!(tied_sessions >= 5, "at most {tied_sessions} sessions sharing a ts with another");
}
