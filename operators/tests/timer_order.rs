//! Timers against a model of the policy alone: over the hostile random
//! streams of `support::stream`, with stream time moving by each record's
//! creation time and, at random points, by jumps of up to ten days (so that
//! many timers, early entries and stopped timers come up at once), the engine
//! fires exactly the timers the model does, in the model's order, and each
//! timer vector has the reference's features at its due time.
//!
//! The model keeps, per customer, the `as_of` of its last vector and its
//! clock; a customer's next timer is `TimerPolicy::next_due(last, clock)`.
//! Moving time to `now` fires, one at a time, the earliest due timer at or
//! before `now` (ties by customer id), which becomes the customer's last
//! vector. Event vectors come from the engine (when a record emits one is the
//! engine's property tests' business); the model only follows their `as_of`.

mod support;

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError};
use pulse_operators::{Emission, Engine, EngineConfig, TimerPolicy};
use pulse_schemas::Trigger;
use support::reference::Reference;
use support::stream::{case, Builder, Case, D, H};
use support::{close, BASE_MS};

fn policy() -> impl Strategy<Value = TimerPolicy> {
    prop_oneof![
        Just(TimerPolicy::default()),
        Just(TimerPolicy::Every { interval_ms: 6 * H, max_silence_ms: 5 * D }),
        Just(TimerPolicy::Every { interval_ms: 1, max_silence_ms: 3 }),
    ]
}

/// The timers the policy alone implies.
struct Model {
    policy: TimerPolicy,
    /// Customer → (`as_of` of its last vector, its clock).
    customers: BTreeMap<String, (i64, i64)>,
}

impl Model {
    /// The timers due at or before `now`, fired in order: (customer, due).
    fn advance_to(&mut self, now: i64) -> Vec<(String, i64)> {
        let mut fired = Vec::new();
        loop {
            let next = self
                .customers
                .iter()
                .filter_map(|(id, &(last, clock))| self.policy.next_due(last, clock).map(|due| (due, id.clone())))
                .filter(|(due, _)| *due <= now)
                .min();
            let Some((due, id)) = next else { return fired };
            self.customers.get_mut(&id).expect("known").0 = due;
            fired.push((id, due));
        }
    }
}

fn run(case: &Case, policy: TimerPolicy, jumps: &[Option<u16>]) -> Result<(), TestCaseError> {
    let mut reference = Reference::new();
    let records = Builder::records(case, &mut reference);
    // The reference is left with the whole stream's state; the timer
    // features are checked against a second one that follows the records.
    let mut following = Reference::new();
    let engine = Engine::new(EngineConfig { timers: policy });
    let mut model = Model { policy, customers: BTreeMap::new() };
    let mut now = BASE_MS;
    let mut out: Vec<Emission> = Vec::new();
    let mut check_timers = |engine: &Engine, model: &mut Model, following: &Reference, to: i64| {
        out.clear();
        engine.advance_to(to, &mut out);
        let expected = model.advance_to(to);
        let got: Vec<(String, i64)> = out
            .iter()
            .map(|e| {
                assert_eq!(e.trigger, Trigger::Timer, "advance_to emits only timer vectors");
                (e.customer_id.to_string(), e.as_of)
            })
            .collect();
        prop_assert_eq!(&got, &expected, "timers fired moving time to {}", to);
        for e in &out {
            let want =
                following.features_at(e.customer_id.as_str(), e.as_of).expect("a customer with a timer is known");
            for (i, (a, w)) in e.features.iter().zip(want.iter()).enumerate() {
                prop_assert!(
                    close(*a, *w),
                    "timer vector of {} at {}: feature {} is {} vs {}",
                    e.customer_id,
                    e.as_of,
                    i,
                    a,
                    w
                );
            }
        }
        Ok(())
    };
    for (i, record) in records.iter().enumerate() {
        if let Some(hours) = jumps.get(i).copied().flatten() {
            now += i64::from(hours) * H / 4;
            check_timers(&engine, &mut model, &following, now)?;
        }
        if let Some(created) = record.created_ms {
            now = now.max(created.floor() as i64);
            check_timers(&engine, &mut model, &following, now)?;
        }
        let mut emitted = Vec::new();
        engine.apply(record, &mut emitted);
        following.apply(&record.change);
        for e in &emitted {
            prop_assert_eq!(e.trigger, Trigger::Event);
            let clock = engine.customer_clock(e.customer_id.as_str()).expect("emitted for a known customer");
            let entry = model.customers.entry(e.customer_id.to_string()).or_insert((e.as_of, clock));
            *entry = (entry.0.max(e.as_of), clock);
        }
    }
    // Long after the stream: every timer left, until they stop.
    check_timers(&engine, &mut model, &following, now + 400 * D)?;
    Ok(())
}

fn config() -> Config {
    let cases: u32 = std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(256);
    Config { cases, failure_persistence: None, ..Config::default() }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn timers_fire_as_the_policy_says_in_order(
        case in case(),
        policy in policy(),
        jumps in proptest::collection::vec(proptest::option::weighted(0.2, 0u16..960), 80),
    ) {
        run(&case, policy, &jumps)?;
    }
}
