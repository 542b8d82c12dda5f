//! `Engine::hydrate`: a customer rebuilt from its events (as a Lambda handler
//! does from the event table on a cold start) continues exactly like the
//! engine that saw the stream: the same vectors on the next record, the same
//! timers after it.

mod support;

use pulse_operators::{Emission, Engine, EngineConfig, Hydrated};
use pulse_schemas::{Event, Party, Sentiment, StreamRecord};
use support::*;

const D: i64 = pulse_schemas::DAY_MS;

/// 80 days of one customer: every kind, the "ever" kinds also long before
/// the last 30 days, a tutor switch, a failed payment.
fn history(customer: &str) -> Vec<Event<'static>> {
    let t = BASE_MS;
    let mut events = vec![
        ev(customer, "first", t, login()),
        ev(customer, "ib_old", t + 2 * D, ib_call(Sentiment::Negative)),
        ev(customer, "pay_old", t + 3 * D, payment(40.0, true)),
        ev(customer, "s_old", t + 5 * D, session("tut_a", 45.0)),
    ];
    for i in 0..12 {
        let ts = t + 50 * D + i * 2 * D + 3_600_000;
        let tutor = if i % 4 == 3 { "tut_b" } else { "tut_a" };
        events.push(ev(customer, &format!("s{i}"), ts, session(tutor, 30.0 + i as f64)));
        events.push(ev(customer, &format!("r{i}"), ts + 60_000, rated(tutor, 3.0 + (i % 3) as f64)));
    }
    events.push(ev(customer, "pay_fail", t + 70 * D, payment(25.0, false)));
    events.push(ev(customer, "cancel", t + 71 * D, cancelled("tut_a", Party::Student)));
    events.push(ev(customer, "reply", t + 72 * D, reply(Party::Tutor, 12.0, Some("tut_a"))));
    events.push(ev(customer, "login_new", t + 74 * D, login()));
    events
}

/// Applies records as a replay does: timers up to each record's creation
/// time fire first.
fn apply_all(engine: &Engine, records: &[StreamRecord<'static>], out: &mut Vec<Emission>) {
    for r in records {
        engine.advance_to(r.created_ms.unwrap() as i64, out);
        engine.apply(r, out);
    }
}

#[test]
fn a_hydrated_customer_continues_like_the_streamed_one() {
    let events = history("stu_1");
    let records: Vec<_> = events.iter().cloned().map(insert).collect();
    let stream_time = records.last().unwrap().created_ms.unwrap() as i64 + 3 * D + 5;
    let next = insert(ev("stu_1", "late_session", BASE_MS + 79 * D, session("tut_b", 50.0)));
    let next_created = next.created_ms.unwrap() as i64;

    // The engine that saw every record, and stream time up to `stream_time`.
    let streamed = Engine::new(EngineConfig::default());
    let mut before = Vec::new();
    apply_all(&streamed, &records, &mut before);
    streamed.advance_to(stream_time, &mut before);
    let mut after_streamed = Vec::new();
    apply_all(&streamed, std::slice::from_ref(&next), &mut after_streamed);

    // The engine rebuilt from the events, timers fired through `stream_time`.
    let hydrated = Engine::new(EngineConfig::default());
    let mut sorted = events.clone();
    sorted.sort_by_key(|e| e.ts);
    let counts = hydrated.hydrate("stu_1", &sorted, stream_time);
    assert_eq!(counts, Hydrated { added: events.len() as u64, ..Hydrated::default() });
    assert_eq!(hydrated.next_due("stu_1"), streamed_next_due_before(&events, stream_time));
    let mut after_hydrated = Vec::new();
    apply_all(&hydrated, std::slice::from_ref(&next), &mut after_hydrated);

    assert!(after_streamed.len() >= 2, "timers and the event vector: {after_streamed:?}");
    assert_eq!(after_hydrated, after_streamed, "bit for bit, timers included");
    assert_eq!(hydrated.next_due("stu_1"), streamed.next_due("stu_1"));
    assert_eq!(hydrated.customer_clock("stu_1"), streamed.customer_clock("stu_1"));

    // Later timers agree too.
    let (mut a, mut b) = (Vec::new(), Vec::new());
    streamed.advance_to(next_created + 20 * D, &mut a);
    hydrated.advance_to(next_created + 20 * D, &mut b);
    assert_eq!(a.len(), 20);
    assert_eq!(a, b);
}

/// The next timer of a customer whose last event vector was at its clock
/// and whose daily timers fired through `through`.
fn streamed_next_due_before(events: &[Event<'static>], through: i64) -> Option<i64> {
    let clock = events.iter().map(|e| e.ts.millis()).max().unwrap();
    let k = (through - clock) / D;
    Some(clock + (k + 1) * D)
}

#[test]
fn hydrating_emits_nothing_and_dedupes() {
    let events = history("stu_2");
    let engine = Engine::new(EngineConfig::default());
    let mut out = Vec::new();
    // The first half streamed, then the whole history hydrated over it.
    apply_all(&engine, &events[..10].iter().cloned().map(insert).collect::<Vec<_>>(), &mut out);
    let vectors_before = engine.counters().vectors_event + engine.counters().vectors_timer;
    let mut with_stranger = events.clone();
    with_stranger.push(ev("stu_other", "x", BASE_MS, login()));
    let counts = engine.hydrate("stu_2", &with_stranger, i64::MIN);
    assert_eq!(counts.added, events.len() as u64 - 10);
    // Those held are duplicates; those past the horizon by now are late.
    assert_eq!(counts.duplicates + counts.late, 10);
    assert_eq!(counts.late, 4);
    assert_eq!(counts.other_customer, 1);
    assert_eq!(engine.customer_clock("stu_other"), None);
    assert_eq!(engine.counters().vectors_event + engine.counters().vectors_timer, vectors_before);

    // The state equals one built from all events by the stream.
    let streamed = Engine::new(EngineConfig::default());
    apply_all(&streamed, &events.iter().cloned().map(insert).collect::<Vec<_>>(), &mut Vec::new());
    let t = BASE_MS + 80 * D;
    assert_eq!(engine.features_at("stu_2", t), streamed.features_at("stu_2", t));
}

#[test]
fn hydrating_nothing_leaves_the_customer_unknown() {
    let engine = Engine::new(EngineConfig::default());
    assert_eq!(engine.hydrate("nobody", &[], 0), Hydrated::default());
    assert_eq!(engine.customers(), 0);
    assert_eq!(engine.next_due("nobody"), None);
}

/// A stale copy of a customer (records were applied elsewhere since) is
/// forgotten and loaded again: its old timer entry never fires, and from
/// then on the engine behaves as one that hydrated the customer fresh.
#[test]
fn a_forgotten_customer_is_replaced_by_its_hydrated_state() {
    let events = history("stu_3");
    let (seen_here, seen_elsewhere) = events.split_at(events.len() - 6);
    let engine = Engine::new(EngineConfig::default());
    let mut out = Vec::new();
    apply_all(&engine, &seen_here.iter().cloned().map(insert).collect::<Vec<_>>(), &mut out);
    apply_all(&engine, &[insert(ev("stu_other", "o1", BASE_MS + 76 * D, login()))], &mut out);
    let stream_time = BASE_MS + 77 * D;
    engine.advance_to(stream_time, &mut out);
    let due_stale = engine.next_due("stu_3").expect("daily timers pending");
    let due_other = engine.next_due("stu_other").unwrap();
    assert!(due_stale < due_other, "the stale customer's timer comes first");
    assert_eq!(engine.due_by(due_stale).iter().map(|c| c.as_str()).collect::<Vec<_>>(), ["stu_3"]);
    assert_eq!(engine.due_by(due_other).iter().map(|c| c.as_str()).collect::<Vec<_>>(), ["stu_3", "stu_other"]);

    assert!(engine.forget("stu_3"));
    assert!(!engine.forget("stu_3"), "forgotten once");
    assert_eq!(engine.customer_clock("stu_3"), None);
    assert_eq!(engine.due_by(due_other).iter().map(|c| c.as_str()).collect::<Vec<_>>(), ["stu_other"]);

    // Loaded again from everything (as from the event table), timers fired
    // through the stream time; and an engine that only ever hydrated it.
    let mut sorted = events.clone();
    sorted.sort_by_key(|e| e.ts);
    engine.hydrate("stu_3", &sorted, stream_time);
    let fresh = Engine::new(EngineConfig::default());
    fresh.hydrate("stu_3", &sorted, stream_time);
    assert_ne!(seen_elsewhere.len(), 0);
    assert_eq!(engine.customer_clock("stu_3"), fresh.customer_clock("stu_3"));
    assert_eq!(engine.next_due("stu_3"), fresh.next_due("stu_3"));

    // Twenty days on: the customer's timers fire once each, as in the fresh
    // engine (the cancelled entry adds none), with the same features.
    let (mut here, mut there) = (Vec::new(), Vec::new());
    engine.advance_to(stream_time + 20 * D, &mut here);
    fresh.advance_to(stream_time + 20 * D, &mut there);
    here.retain(|e| e.customer_id.as_str() == "stu_3");
    assert_eq!(here.len(), 20);
    assert_eq!(here, there);
}
