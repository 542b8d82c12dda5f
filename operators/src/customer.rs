//! One customer's state: held events, window aggregates, recency, clocks.

use std::borrow::Cow;

use pulse_schemas::{Features, DAY_MS};
use serde::{Deserialize, Serialize};

use crate::held::{id_hash, Encoded, Ever, HeldEvent, Kind, Store, StoreImage, HORIZON_MS};
use crate::tutors::{Session, Sessions, SessionsImage, TutorIds};
use crate::windows::{compute, lower_bound, Aggregates, Recency, W14, W30, W7, WINDOW_DAYS};

const NONE: i64 = i64::MIN;
/// Day slots for active-day counts: the horizon spans at most 31 days.
const DAY_SLOTS: usize = 32;

fn day_of(ts: i64) -> i64 {
    ts.div_euclid(DAY_MS)
}

fn slot(day: i64) -> usize {
    day.rem_euclid(DAY_SLOTS as i64) as usize
}

/// What a retraction or an add did, for the engine's counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Effect {
    Late,
    NotHeld,
    Duplicate,
    Done,
}

/// The state of one customer.
///
/// Invariant: `store` and `sessions` hold exactly the held events with
/// ts > C - 30 days, and `aggs` is their window aggregates as of C. Events
/// that fall past the horizon leave only their ts in `frozen` (the spec's "the
/// state need keep, past that horizon, only the latest ts of each kind").
#[derive(Debug)]
pub(crate) struct CustomerState {
    /// The customer clock C: the largest ts among accepted events.
    pub(crate) clock: i64,
    first_ts: i64,
    store: Store,
    aggs: Aggregates,
    sessions: Sessions,
    day_counts: [u32; DAY_SLOTS],
    /// Latest held ts per [`Ever`] kind, past-horizon ones included.
    latest: [i64; 4],
    /// Latest ts per [`Ever`] kind among events past the horizon.
    frozen: [i64; 4],
    /// `as_of` of the customer's last vector, and its next timer.
    pub(crate) last_as_of: i64,
    pub(crate) next_due: Option<i64>,
    /// Due time of this customer's one entry in the timer heap, if any.
    pub(crate) queued: Option<i64>,
}

impl CustomerState {
    pub(crate) fn new(first_ts: i64) -> CustomerState {
        CustomerState {
            clock: first_ts,
            first_ts,
            store: Store::new(first_ts.saturating_sub(HORIZON_MS)),
            aggs: Aggregates::default(),
            sessions: Sessions::default(),
            day_counts: [0; DAY_SLOTS],
            latest: [NONE; 4],
            frozen: [NONE; 4],
            last_as_of: NONE,
            next_due: None,
            queued: None,
        }
    }

    /// Whether a record touching an event at `ts` is late (ts <= C - 30 days).
    pub(crate) fn is_late(&self, ts: i64) -> bool {
        ts <= self.clock.saturating_sub(HORIZON_MS)
    }

    /// Retracts the held event with this id (judged on the OldImage's `ts`).
    pub(crate) fn retract(&mut self, image_ts: i64, id: u64, event_id: &str) -> (Effect, Option<Encoded>) {
        if self.is_late(image_ts) {
            return (Effect::Late, None);
        }
        let Some(gone) = self.store.remove(id, self.short_bounds()) else {
            return (Effect::NotHeld, None);
        };
        let held = HeldEvent { id, value: gone.value, ts_off: 0, tag: gone.tag };
        for wi in [W7, W14, W30] {
            if gone.ts > lower_bound(self.clock, wi) {
                self.aggs.apply(wi, gone.ts, &held, false);
            }
        }
        if held.kind() == Kind::SessionCompleted {
            self.sessions.remove(gone.ts, event_id);
            let tutor = held.tutor();
            if let Some(stat) = self.aggs.tutors.0.iter_mut().find(|s| s.tutor == tutor) {
                if stat.sessions_30 > 0 && stat.latest_30 == gone.ts {
                    stat.latest_30 = self.sessions.latest_of(tutor).unwrap_or(NONE);
                }
            }
        }
        self.aggs.tutors.tidy();
        self.day_counts[slot(day_of(gone.ts))] -= 1;
        if let Some(k) = held.ever() {
            if self.latest[k as usize] == gone.ts {
                self.latest[k as usize] = self.latest_in_store(k).max(self.frozen[k as usize]);
            }
        }
        (Effect::Done, Some(gone))
    }

    /// Lower bounds of W_7 and W_14 at the clock.
    fn short_bounds(&self) -> [i64; 2] {
        [lower_bound(self.clock, W7), lower_bound(self.clock, W14)]
    }

    fn latest_in_store(&self, k: Ever) -> i64 {
        self.store.iter().rev().find(|e| e.ever() == Some(k)).map_or(NONE, |e| self.store.ts(e))
    }

    /// Adds an event (judged late and duplicate against C before the record:
    /// a retraction earlier in the same record never moves C).
    pub(crate) fn add(&mut self, e: Encoded, event_id: &str) -> Effect {
        if self.is_late(e.ts) {
            return Effect::Late;
        }
        if !self.store.fits(e.ts) {
            // Rare: far past the store's base. A duplicate must not move the
            // clock, so check before moving it (which prunes and rebases).
            if self.store.holds(e.id) {
                return Effect::Duplicate;
            }
            self.advance_clock(e.ts);
        }
        // One probe of the id index both rejects a duplicate and places the
        // event; the clock moves after (the new event is the newest, so no
        // window band reaches it).
        if !self.store.try_insert(e, self.short_bounds()) {
            return Effect::Duplicate;
        }
        if e.ts > self.clock {
            self.advance_clock(e.ts);
        }
        self.first_ts = self.first_ts.min(e.ts);
        let held = HeldEvent { id: e.id, value: e.value, ts_off: 0, tag: e.tag };
        for wi in [W7, W14, W30] {
            if e.ts > lower_bound(self.clock, wi) {
                self.aggs.apply(wi, e.ts, &held, true);
            }
        }
        if held.kind() == Kind::SessionCompleted {
            self.sessions.insert(Session { ts: e.ts, event_id: smol_str::SmolStr::new(event_id), tutor: held.tutor() });
        }
        self.day_counts[slot(day_of(e.ts))] += 1;
        if let Some(k) = held.ever() {
            self.latest[k as usize] = self.latest[k as usize].max(e.ts);
        }
        Effect::Done
    }

    /// Moves C forward to `to`: events leave windows, and those past the
    /// horizon leave the state.
    fn advance_clock(&mut self, to: i64) {
        for wi in [W7, W14] {
            let bound = lower_bound(to, wi);
            while self.store.cursor(wi) < self.store.len() {
                let e = *self.store.get(self.store.cursor(wi));
                let ts = self.store.ts(&e);
                if ts > bound {
                    break;
                }
                self.aggs.apply(wi, ts, &e, false);
                self.store.step_cursor(wi);
            }
        }
        let horizon = lower_bound(to, W30);
        let (aggs, day_counts, frozen) = (&mut self.aggs, &mut self.day_counts, &mut self.frozen);
        self.store.prune_through(horizon, |ts, e| {
            aggs.apply(W30, ts, e, false);
            day_counts[slot(day_of(ts))] -= 1;
            if let Some(k) = e.ever() {
                frozen[k as usize] = frozen[k as usize].max(ts);
            }
        });
        self.sessions.prune_through(horizon);
        self.aggs.tutors.tidy();
        self.clock = to;
        if !self.store.fits(to) {
            self.store.rebase(horizon);
        }
    }

    /// The features as of `t` (>= C).
    pub(crate) fn features_at(&self, t: i64, ids: &TutorIds) -> Features {
        debug_assert!(t >= self.clock);
        let (aggs, switches) = if t == self.clock {
            (Cow::Borrowed(&self.aggs), self.sessions.switches())
        } else {
            let mut later = self.aggs.clone();
            for wi in [W7, W14, W30] {
                leave_band(&self.store, &mut later, wi, t);
            }
            later.tutors.tidy();
            (Cow::Owned(later), self.sessions.switches_after_leaving_through(lower_bound(t, W30)))
        };
        let latest = self.latest.map(|x| (x != NONE).then_some(x));
        let recency = Recency { latest, first_ts: self.first_ts, active_days_14d: self.active_days_14d(t), switches };
        compute(t, &aggs, &recency, ids)
    }

    /// Distinct days with an event in W_14 at `t` (>= C).
    fn active_days_14d(&self, t: i64) -> u32 {
        let low = lower_bound(t, W14);
        let low_day = day_of(low);
        // Days after the boundary day are wholly inside (T-14d, T]; no event
        // is later than C. The day slots are valid for the horizon's days.
        let last_day = day_of(self.clock);
        let mut n = ((low_day + 1)..=last_day).filter(|&d| self.day_counts[slot(d)] > 0).count() as u32;
        // The boundary day counts if one of its events is after `low`.
        let first = if t == self.clock { self.store.cursor(W14) } else { self.store.first_after(low) };
        if first < self.store.len() && day_of(self.store.ts(self.store.get(first))) == low_day {
            n += 1;
        }
        n
    }

    /// Bytes this customer holds: the struct and its heap parts.
    pub(crate) fn bytes(&self) -> usize {
        std::mem::size_of::<CustomerState>()
            + self.store.heap_bytes()
            + self.sessions.heap_bytes()
            + self.aggs.tutors.heap_bytes()
    }

    pub(crate) fn held_len(&self) -> usize {
        self.store.len()
    }

    /// This state as a snapshot stores it.
    pub(crate) fn to_image(&self) -> CustomerImage<'_> {
        CustomerImage {
            clock: self.clock,
            first_ts: self.first_ts,
            store: self.store.to_image(),
            aggs: Cow::Borrowed(&self.aggs),
            sessions: self.sessions.to_image(),
            latest: self.latest,
            frozen: self.frozen,
            last_as_of: self.last_as_of,
            next_due: self.next_due,
            queued: self.queued,
        }
    }

    /// The state of a snapshot, after checking everything the engine relies
    /// on (what a checksum cannot catch: a snapshot written by a faulty
    /// build). Derived parts (day counts, cursors, the id index) are rebuilt
    /// from the held events; stored ones that follow from them (aggregate
    /// counts and exact sums, sessions, latest times) must agree with them.
    /// What depends on history alone (the side sums' rounding, `frozen`,
    /// `first_ts`, the timer fields) is taken as stored.
    pub(crate) fn from_image(image: CustomerImage<'_>, ids: &TutorIds) -> Result<CustomerState, String> {
        let clock = image.clock;
        let horizon = lower_bound(clock, W30);
        let short = [lower_bound(clock, W7), lower_bound(clock, W14)];
        let store = Store::from_image(image.store, horizon, clock, short)?;
        if image.first_ts > clock {
            return Err(format!("first event at {} after the clock {clock}", image.first_ts));
        }
        // A timer computes features as of its due time, which must not be
        // before the clock (every vector moves `last_as_of` to >= C).
        if image.next_due.is_some_and(|due| due <= clock) {
            return Err(format!("next timer at {:?} not after the clock {clock}", image.next_due));
        }
        let mut day_counts = [0u32; DAY_SLOTS];
        let mut rebuilt = Aggregates::default();
        let mut latest = image.frozen;
        let mut session_events = 0usize;
        for e in store.iter() {
            let ts = store.ts(e);
            if !ids.knows(e.tutor()) {
                return Err(format!("held event at {ts} has an unknown tutor number {}", e.tutor()));
            }
            if ts < image.first_ts {
                return Err(format!("held event at {ts} before the first event at {}", image.first_ts));
            }
            // The store spans at most 30 days: no two of its days share a slot.
            day_counts[slot(day_of(ts))] += 1;
            for wi in [W7, W14, W30] {
                if ts > lower_bound(clock, wi) {
                    rebuilt.apply(wi, ts, e, true);
                }
            }
            if let Some(k) = e.ever() {
                latest[k as usize] = latest[k as usize].max(ts);
            }
            session_events += usize::from(e.kind() == Kind::SessionCompleted);
        }
        let aggs = image.aggs.into_owned();
        if aggs.canonical() != rebuilt.canonical() {
            return Err("window aggregates do not match the held events".to_string());
        }
        if latest != image.latest {
            return Err(format!("latest times {:?} do not match the held events ({latest:?})", image.latest));
        }
        let sessions = Sessions::from_image(image.sessions, ids)?;
        if sessions.iter().count() != session_events {
            return Err("the sessions are not the held completed sessions".to_string());
        }
        for s in sessions.iter() {
            let held = store.find(id_hash(&s.event_id));
            if held.is_none_or(|e| e.kind() != Kind::SessionCompleted || store.ts(&e) != s.ts || e.tutor() != s.tutor) {
                return Err(format!("session {:?} is not a held completed session", s.event_id));
            }
        }
        Ok(CustomerState {
            clock,
            first_ts: image.first_ts,
            store,
            aggs,
            sessions,
            day_counts,
            latest: image.latest,
            frozen: image.frozen,
            last_as_of: image.last_as_of,
            next_due: image.next_due,
            queued: image.queued,
        })
    }
}

/// [`CustomerState`] in a snapshot: borrowed to write, owned when read.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct CustomerImage<'a> {
    clock: i64,
    first_ts: i64,
    store: StoreImage<'a>,
    aggs: Cow<'a, Aggregates>,
    sessions: SessionsImage<'a>,
    latest: [i64; 4],
    frozen: [i64; 4],
    last_as_of: i64,
    next_due: Option<i64>,
    queued: Option<i64>,
}

impl CustomerImage<'_> {
    /// Due time of the customer's timer entry, if it has one.
    pub(crate) fn queued(&self) -> Option<i64> {
        self.queued
    }
}

/// Removes from window `wi` the events that leave it as its end moves from
/// the clock to `to`: those from its first event with ts <= `to - N days`.
fn leave_band(store: &Store, aggs: &mut Aggregates, wi: usize, to: i64) {
    let hi = lower_bound(to, wi);
    let mut i = if wi == W30 { 0 } else { store.cursor(wi) };
    while i < store.len() {
        let e = store.get(i);
        let ts = store.ts(e);
        if ts > hi {
            break;
        }
        aggs.apply(wi, ts, e, false);
        i += 1;
    }
}

const _: () = assert!(WINDOW_DAYS[W30] * DAY_MS == HORIZON_MS);
