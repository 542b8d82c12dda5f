//! The hostile random streams of the engine's property tests: a small pool
//! of customers, tutors and event ids (so duplicates, re-adds and retractions
//! of held and non-held ids all happen), all eight event types, timestamps
//! with deliberate mass on the window edges relative to the customer's clock,
//! on UTC day edges and on equal times; INSERTs, redeliveries, MODIFYs (same
//! id with changed ts/attributes, other ids, one side missing), user REMOVEs,
//! TTL expiries and non-event records.
//!
//! A [`Case`] is generated as [`Op`]s, which a [`Builder`] turns into records
//! against the reference model's current state (its clocks and held events).

use std::borrow::Cow;

use proptest::prelude::*;
use pulse_schemas::{Event, EventKind, EventTime, Party, PaymentStatus, Sentiment, StreamChange, StreamRecord, DAY_MS};

use super::reference::Reference;
use super::BASE_MS;

pub const CUSTOMERS: [&str; 4] = ["c1", "c2", "c3", "c4"];
/// Short tutor ids; "t10" sorts before "t2" in byte order.
pub const TUTORS: [&str; 4] = ["t1", "t2", "t10", "t3"];
/// Event ids whose byte order differs from any "natural" order.
pub const IDS: [&str; 8] = ["e1", "e2", "e10", "e9", "Z", "a", "x-1", "x_1"];

pub const D: i64 = DAY_MS;
pub const H: i64 = 3_600_000;
/// Offsets from the customer clock: the window edges, ±1 ms, and some spread
/// (positive ones move the clock forward).
pub const REL: [i64; 24] = [
    0,
    -1,
    1,
    -7 * D,
    -7 * D + 1,
    -7 * D - 1,
    -14 * D,
    -14 * D + 1,
    -14 * D - 1,
    -30 * D,
    -30 * D + 1,
    -30 * D - 1,
    -12 * H,
    -3 * D,
    -10 * D,
    -20 * D,
    -29 * D,
    -45 * D,
    D,
    2 * D,
    3 * D + 12 * H,
    8 * D,
    15 * D,
    31 * D,
];

/// How a timestamp is chosen when the record is built.
#[derive(Clone, Debug)]
pub enum TsSpec {
    /// `BASE + offset`, offset in [0, 70 days).
    Spread(i64),
    /// `BASE + day * D + delta`, delta in {-1, 0, 1}: on and around UTC day edges.
    DayEdge(i64, i64),
    /// Customer clock + `REL[i]` (or `BASE + 35 days` before the first event).
    Rel(usize),
    /// A ts already used by this customer (index modulo their count).
    Reuse(usize),
}

/// An event type with its attributes; tutor indices are taken modulo the
/// case's number of tutors.
#[derive(Clone, Debug)]
pub enum KindSpec {
    Session(usize, f64),
    Cancelled(usize, bool),
    NoShow(usize),
    Rated(usize, f64),
    Login,
    Payment(f64, bool),
    Call(usize),
    Reply(bool, f64, Option<usize>),
}

/// A fresh event: id from `IDS`, kind and ts.
#[derive(Clone, Debug)]
pub struct EvSpec {
    pub id: usize,
    pub kind: KindSpec,
    pub ts: TsSpec,
}

/// The OldImage of a MODIFY or REMOVE.
#[derive(Clone, Debug)]
pub enum OldSpec {
    /// The `pick`-th event the reference holds for the customer (if any), as
    /// held, or with another kind (a retraction goes whatever the OldImage says).
    Held(usize, Option<KindSpec>),
    /// The `pick`-th event ever seen for this customer in any record.
    Seen(usize),
    /// A fresh event.
    Fresh(EvSpec),
}

/// The NewImage of a MODIFY.
#[derive(Clone, Debug)]
pub enum NewSpec {
    /// The old side's id (a fresh id if there is no old side) with, optionally,
    /// another kind and/or ts (`None` keeps the old side's).
    SameId(Option<KindSpec>, Option<TsSpec>),
    /// The `pick`-th event ever seen for this customer.
    Seen(usize),
    /// A fresh event.
    Fresh(EvSpec),
}

/// One record of the stream, before it is materialized against the state.
#[derive(Clone, Debug)]
pub enum Op {
    Insert(usize, EvSpec),
    /// Redelivery (re-INSERT) of a seen event.
    Redeliver(usize, usize),
    Modify(usize, Option<OldSpec>, Option<NewSpec>),
    Remove(usize, OldSpec),
    Ttl,
    NotAnEvent,
}

/// A whole case: how many customers and tutors, and the records.
#[derive(Clone, Debug)]
pub struct Case {
    pub customers: usize,
    pub tutors: usize,
    pub ops: Vec<Op>,
}

pub fn ts_spec() -> impl Strategy<Value = TsSpec> {
    prop_oneof![
        3 => (0..70 * D).prop_map(TsSpec::Spread),
        1 => (0..70i64, -1..=1i64).prop_map(|(d, delta)| TsSpec::DayEdge(d, delta)),
        5 => (0..REL.len()).prop_map(TsSpec::Rel),
        2 => any::<usize>().prop_map(TsSpec::Reuse),
    ]
}

pub fn kind_spec() -> impl Strategy<Value = KindSpec> {
    let duration =
        prop_oneof![proptest::sample::select(vec![0.5, 1.0, 30.0, 33.3, 45.0, 60.0, 600.0]), (1e-3..=600.0f64),];
    let rating =
        prop_oneof![proptest::sample::select(vec![1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 4.75, 5.0]), (1.0..=5.0f64),];
    let amount = prop_oneof![proptest::sample::select(vec![0.0, 9.99, 25.0, 100.0, 1234.56]), (0.0..2000.0f64)];
    let minutes = prop_oneof![proptest::sample::select(vec![0.0, 0.5, 3.0, 60.0, 1440.25]), (0.0..10_000.0f64)];
    prop_oneof![
        4 => (0..4usize, duration).prop_map(|(t, m)| KindSpec::Session(t, m)),
        1 => (0..4usize, any::<bool>()).prop_map(|(t, s)| KindSpec::Cancelled(t, s)),
        1 => (0..4usize).prop_map(KindSpec::NoShow),
        2 => (0..4usize, rating).prop_map(|(t, r)| KindSpec::Rated(t, r)),
        1 => Just(KindSpec::Login),
        1 => (amount, any::<bool>()).prop_map(|(a, ok)| KindSpec::Payment(a, ok)),
        1 => (0..3usize).prop_map(KindSpec::Call),
        1 => (any::<bool>(), minutes, proptest::option::of(0..4usize))
            .prop_map(|(s, m, t)| KindSpec::Reply(s, m, t)),
    ]
}

pub fn ev_spec() -> impl Strategy<Value = EvSpec> {
    (0..IDS.len(), kind_spec(), ts_spec()).prop_map(|(id, kind, ts)| EvSpec { id, kind, ts })
}

pub fn old_spec() -> impl Strategy<Value = OldSpec> {
    prop_oneof![
        4 => (any::<usize>(), proptest::option::weighted(0.3, kind_spec())).prop_map(|(p, k)| OldSpec::Held(p, k)),
        2 => any::<usize>().prop_map(OldSpec::Seen),
        1 => ev_spec().prop_map(OldSpec::Fresh),
    ]
}

pub fn new_spec() -> impl Strategy<Value = NewSpec> {
    prop_oneof![
        4 => (proptest::option::of(kind_spec()), proptest::option::of(ts_spec()))
            .prop_map(|(k, t)| NewSpec::SameId(k, t)),
        1 => any::<usize>().prop_map(NewSpec::Seen),
        2 => ev_spec().prop_map(NewSpec::Fresh),
    ]
}

pub fn op() -> impl Strategy<Value = Op> {
    let customer = 0..CUSTOMERS.len();
    prop_oneof![
        10 => (customer.clone(), ev_spec()).prop_map(|(c, e)| Op::Insert(c, e)),
        2 => (customer.clone(), any::<usize>()).prop_map(|(c, p)| Op::Redeliver(c, p)),
        5 => (customer.clone(), proptest::option::weighted(0.9, old_spec()), proptest::option::weighted(0.9, new_spec()))
            .prop_map(|(c, o, n)| Op::Modify(c, o, n)),
        3 => (customer, old_spec()).prop_map(|(c, o)| Op::Remove(c, o)),
        1 => Just(Op::Ttl),
        1 => Just(Op::NotAnEvent),
    ]
}

pub fn case() -> impl Strategy<Value = Case> {
    (1..=4usize, 1..=4usize, proptest::collection::vec(op(), 1..80)).prop_map(|(customers, tutors, ops)| Case {
        customers,
        tutors,
        ops,
    })
}

/// Long streams for one or two customers: the clock runs for months, so events
/// cross the horizon again and again (whatever the engine prunes is exercised).
pub fn long_case() -> impl Strategy<Value = Case> {
    (1..=2usize, 1..=4usize, proptest::collection::vec(op(), 200..400)).prop_map(|(customers, tutors, ops)| Case {
        customers,
        tutors,
        ops,
    })
}

/// Turns [`Op`]s into stream records, using the reference's current state
/// (clock, held events) and every event seen so far.
pub struct Builder {
    customers: usize,
    tutors: usize,
    /// Per customer index: every event that appeared in a record.
    seen: Vec<Vec<Event<'static>>>,
}

impl Builder {
    /// A builder for `case`'s customers and tutors, nothing seen yet.
    pub fn new(case: &Case) -> Builder {
        Builder { customers: case.customers, tutors: case.tutors, seen: vec![Vec::new(); case.customers] }
    }

    /// Every record of `case`, in order, built against `reference`, which
    /// applies each (and is left with the state after the whole stream).
    pub fn records(case: &Case, reference: &mut Reference) -> Vec<StreamRecord<'static>> {
        let mut builder = Builder::new(case);
        case.ops
            .iter()
            .map(|op| {
                let record = builder.build(op, reference);
                reference.apply(&record.change);
                record
            })
            .collect()
    }
}

impl Builder {
    pub fn customer(&self, c: usize) -> &'static str {
        CUSTOMERS[c % self.customers]
    }

    pub fn tutor(&self, t: usize) -> Cow<'static, str> {
        Cow::Borrowed(TUTORS[t % self.tutors])
    }

    pub fn ts(&self, c: usize, spec: &TsSpec, reference: &Reference) -> i64 {
        let clock = reference.clock(self.customer(c));
        match *spec {
            TsSpec::Spread(x) => BASE_MS + x,
            TsSpec::DayEdge(d, delta) => BASE_MS + d * D + delta,
            TsSpec::Rel(i) => clock.unwrap_or(BASE_MS + 35 * D) + REL[i % REL.len()],
            TsSpec::Reuse(i) => {
                let used = &self.seen[c % self.customers];
                match used.get(i % used.len().max(1)) {
                    Some(e) => e.ts.millis(),
                    None => clock.unwrap_or(BASE_MS + 35 * D),
                }
            }
        }
    }

    pub fn kind(&self, spec: &KindSpec) -> EventKind<'static> {
        let party = |student: bool| if student { Party::Student } else { Party::Tutor };
        match *spec {
            KindSpec::Session(t, m) => EventKind::SessionCompleted { tutor_id: self.tutor(t), duration_min: m },
            KindSpec::Cancelled(t, s) => {
                EventKind::SessionCancelled { tutor_id: self.tutor(t), cancelled_by: party(s) }
            }
            KindSpec::NoShow(t) => EventKind::SessionNoShow { tutor_id: self.tutor(t) },
            KindSpec::Rated(t, r) => EventKind::SessionRated { tutor_id: self.tutor(t), rating: r },
            KindSpec::Login => EventKind::Login,
            KindSpec::Payment(a, ok) => EventKind::Payment {
                amount: a,
                status: if ok { PaymentStatus::Succeeded } else { PaymentStatus::Failed },
            },
            KindSpec::Call(s) => {
                EventKind::IbCall { sentiment: [Sentiment::Negative, Sentiment::Neutral, Sentiment::Positive][s % 3] }
            }
            KindSpec::Reply(s, m, t) => {
                EventKind::MessageReply { from: party(s), response_minutes: m, tutor_id: t.map(|t| self.tutor(t)) }
            }
        }
    }

    pub fn event(&self, c: usize, id: &str, ts: i64, kind: EventKind<'static>) -> Event<'static> {
        Event {
            customer_id: Cow::Borrowed(self.customer(c)),
            event_id: Cow::Owned(id.to_string()),
            ts: EventTime(ts),
            kind,
        }
    }

    pub fn fresh(&self, c: usize, spec: &EvSpec, reference: &Reference) -> Event<'static> {
        self.event(c, IDS[spec.id % IDS.len()], self.ts(c, &spec.ts, reference), self.kind(&spec.kind))
    }

    pub fn seen(&self, c: usize, pick: usize) -> Option<Event<'static>> {
        let seen = &self.seen[c % self.customers];
        seen.get(pick % seen.len().max(1)).cloned()
    }

    pub fn old_side(&self, c: usize, spec: &OldSpec, reference: &Reference) -> Option<Event<'static>> {
        match spec {
            OldSpec::Held(pick, other_kind) => {
                let held = &reference.customer(self.customer(c))?.held;
                let h = held.get(pick % held.len().max(1))?;
                let kind = match other_kind {
                    Some(k) => self.kind(k),
                    None => h.kind.clone(),
                };
                Some(self.event(c, &h.event_id, h.ts, kind))
            }
            OldSpec::Seen(pick) => self.seen(c, *pick),
            OldSpec::Fresh(e) => Some(self.fresh(c, e, reference)),
        }
    }

    pub fn new_side(
        &self,
        c: usize,
        spec: &NewSpec,
        old: Option<&Event<'static>>,
        reference: &Reference,
    ) -> Option<Event<'static>> {
        match spec {
            NewSpec::SameId(kind, ts) => {
                let id = old.map(|o| o.event_id.to_string()).unwrap_or_else(|| IDS[0].to_string());
                let ts = match (ts, old) {
                    (Some(spec), _) => self.ts(c, spec, reference),
                    (None, Some(o)) => o.ts.millis(),
                    (None, None) => self.ts(c, &TsSpec::Rel(0), reference),
                };
                let kind = match (kind, old) {
                    (Some(k), _) => self.kind(k),
                    (None, Some(o)) => o.kind.clone(),
                    (None, None) => EventKind::Login,
                };
                Some(self.event(c, &id, ts, kind))
            }
            NewSpec::Seen(pick) => self.seen(c, *pick),
            NewSpec::Fresh(e) => Some(self.fresh(c, e, reference)),
        }
    }

    /// The record for an op (and remembers its events as seen).
    pub fn build(&mut self, op: &Op, reference: &Reference) -> StreamRecord<'static> {
        let (c, change) = match op {
            Op::Insert(c, e) => (*c, StreamChange::Insert(self.fresh(*c, e, reference))),
            Op::Redeliver(c, pick) => match self.seen(*c, *pick) {
                Some(e) => (*c, StreamChange::Insert(e)),
                None => (*c, StreamChange::NotAnEvent),
            },
            Op::Modify(c, old, new) => {
                let old = old.as_ref().and_then(|o| self.old_side(*c, o, reference));
                let new = new.as_ref().and_then(|n| self.new_side(*c, n, old.as_ref(), reference));
                match (old, new) {
                    // A MODIFY touching no event image decodes as a non-event.
                    (None, None) => (*c, StreamChange::NotAnEvent),
                    (old, new) => (*c, StreamChange::Modify { old, new }),
                }
            }
            Op::Remove(c, old) => match self.old_side(*c, old, reference) {
                Some(e) => (*c, StreamChange::Remove(e)),
                None => (*c, StreamChange::NotAnEvent),
            },
            Op::Ttl => (0, StreamChange::TtlExpiry),
            Op::NotAnEvent => (0, StreamChange::NotAnEvent),
        };
        let seen = &mut self.seen[c % self.customers];
        match &change {
            StreamChange::Insert(e) | StreamChange::Remove(e) => seen.push(e.clone()),
            StreamChange::Modify { old, new } => seen.extend(old.iter().chain(new.iter()).cloned()),
            StreamChange::TtlExpiry | StreamChange::NotAnEvent => {}
        }
        super::record(change)
    }
}
