//! Property test: the incremental engine agrees with the naive reference model
//! (`support::reference`) on every emission and on features at later times.
//!
//! Random streams over 1–4 customers and 1–4 tutors use a small pool of event
//! ids (so duplicates, re-adds, and retractions of held and non-held ids all
//! happen), all eight event types with in-range values, and timestamps spread
//! over ~70 days with deliberate mass on the window edges relative to the
//! customer's current clock (`C - 7d`, `C - 14d`, `C - 30d`, ±1 ms), on UTC day
//! edges and on equal timestamps. Records are INSERTs, redeliveries, MODIFYs
//! (same id with changed ts/attributes, other ids, one side missing), user
//! REMOVEs, TTL expiries and non-event records.
//!
//! Each record goes to both implementations; their emissions must match in
//! order, customer, `as_of`, trigger and all 46 features (1e-9 relative, 1e-9
//! absolute near zero), and so must the customer clock. After the stream,
//! `features_at(T)` must agree for `T` in {C, C+1ms, C+7d, C+7d+1ms, C+13.5d,
//! C+30d, C+400d}.
//!
//! A second property runs long streams (200–400 records, 1–2 customers) so
//! that events cross the 30-day horizon many times.
//!
//! 256 short cases and 32 long ones by default; set `PROPTEST_CASES` for more
//! (the long property runs an eighth of it).

mod support;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError};
use pulse_operators::{Emission, Engine, EngineConfig, TimerPolicy};
use pulse_schemas::{StreamChange, Trigger};
use support::reference::Reference;
use support::stream::{case, long_case, Builder, Case, CUSTOMERS, D, H};
use support::{feature_diffs, BASE_MS};

/// Times after the stream at which `features_at` is compared, relative to C.
const LATER: [i64; 9] = [0, 1, 7 * D, 7 * D + 1, 14 * D, 13 * D + 12 * H, 30 * D, 30 * D + 1, 400 * D];

fn run_case(case: &Case) -> Result<(), TestCaseError> {
    let engine = Engine::new(EngineConfig { timers: TimerPolicy::Off });
    let mut reference = Reference::new();
    let mut builder = Builder::new(case);
    let mut out: Vec<Emission> = Vec::new();

    for (n, op) in case.ops.iter().enumerate() {
        let record = builder.build(op, &reference);
        out.clear();
        engine.apply(&record, &mut out);
        let expected = reference.apply(&record.change);
        let what = format!("record #{n}: {:?}", record.change);
        match (out.as_slice(), &expected) {
            ([], None) => {}
            ([e], Some(r)) => {
                prop_assert_eq!(e.customer_id.as_str(), r.customer_id.as_str(), "customer, {}", what);
                prop_assert_eq!(e.as_of, r.as_of, "as_of, {}", what);
                prop_assert_eq!(e.trigger, Trigger::Event, "trigger, {}", what);
                let diffs = feature_diffs(&e.features, &r.features);
                prop_assert!(diffs.is_empty(), "{} (T = {}): features differ:\n{}", what, r.as_of, diffs.join("\n"));
            }
            (got, _) => {
                return Err(TestCaseError::fail(format!(
                    "{what}: engine emitted {got:?} but the reference {expected:?}"
                )));
            }
        }
        if let Some(customer) = record.change.customer_id() {
            prop_assert_eq!(engine.customer_clock(customer), reference.clock(customer), "clock, {}", what);
        }
    }

    for customer in CUSTOMERS.iter().take(case.customers) {
        match reference.clock(customer) {
            Some(c) => {
                prop_assert!(engine.features_at(customer, c - 1).is_none(), "{}: features before its clock", customer);
                for dt in LATER {
                    let t = c + dt;
                    let expected = reference.features_at(customer, t);
                    let actual = engine.features_at(customer, t);
                    match (actual, expected) {
                        (Some(a), Some(r)) => {
                            let diffs = feature_diffs(&a, &r);
                            prop_assert!(
                                diffs.is_empty(),
                                "features_at({}, C + {} ms): features differ:\n{}",
                                customer,
                                dt,
                                diffs.join("\n")
                            );
                        }
                        (a, r) => {
                            return Err(TestCaseError::fail(format!(
                                "features_at({customer}, C + {dt} ms): engine {a:?}, reference {r:?}"
                            )));
                        }
                    }
                }
            }
            None => {
                prop_assert!(engine.customer_clock(customer).is_none(), "{} should be unknown", customer);
                prop_assert!(
                    engine.features_at(customer, BASE_MS + 100 * D).is_none(),
                    "{} should be unknown",
                    customer
                );
            }
        }
    }
    Ok(())
}

/// `PROPTEST_CASES` (default 256) divided by `divisor`; no regression files
/// are written (a failure prints its minimal case).
fn config(divisor: u32) -> Config {
    let cases: u32 = std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(256);
    Config { cases: (cases / divisor).max(1), failure_persistence: None, ..Config::default() }
}

proptest! {
    #![proptest_config(config(1))]

    #[test]
    fn engine_matches_reference(case in case()) {
        run_case(&case)?;
    }
}

proptest! {
    #![proptest_config(config(8))]

    #[test]
    fn engine_matches_reference_on_long_streams(case in long_case()) {
        run_case(&case)?;
    }
}

/// The generator really produces the situations the property is about: a
/// fixed-seed sample of cases, run through the reference alone, must contain
/// each kind of outcome and window-edge timestamps.
#[test]
fn generator_covers_the_interesting_situations() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    use support::reference::Outcome;

    let mut runner = TestRunner::deterministic();
    let mut outcomes = std::collections::BTreeMap::new();
    let (mut edges, mut emissions, mut modifies, mut removes) = (0, 0, 0, 0);
    for _ in 0..64 {
        let case = match case().new_tree(&mut runner) {
            Ok(tree) => tree.current(),
            Err(e) => panic!("strategy failed: {e}"),
        };
        let mut reference = Reference::new();
        let mut builder = Builder::new(&case);
        for op in &case.ops {
            let record = builder.build(op, &reference);
            let clock = record.change.customer_id().and_then(|c| reference.clock(c));
            match &record.change {
                StreamChange::Insert(e) => {
                    if let Some(c) = clock {
                        let back = c - e.ts.millis();
                        if [7 * D, 14 * D, 30 * D].contains(&back) {
                            edges += 1;
                        }
                    }
                }
                StreamChange::Modify { .. } => modifies += 1,
                StreamChange::Remove(_) => removes += 1,
                _ => {}
            }
            if reference.apply(&record.change).is_some() {
                emissions += 1;
            }
        }
        for o in reference.outcomes {
            *outcomes.entry(format!("{o:?}")).or_insert(0usize) += 1;
        }
    }
    for o in [Outcome::Added, Outcome::Duplicate, Outcome::Late, Outcome::Retracted, Outcome::NotHeld] {
        let n = outcomes.get(&format!("{o:?}")).copied().unwrap_or(0);
        assert!(n >= 5, "only {n} {o:?} outcomes in the sample: {outcomes:?}");
    }
    assert!(edges >= 5, "only {edges} inserts exactly on a window edge");
    assert!(
        emissions >= 100 && modifies >= 20 && removes >= 20,
        "{emissions} emissions, {modifies} modifies, {removes} removes"
    );
}
