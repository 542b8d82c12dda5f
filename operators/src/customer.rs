//! One customer's state: held events, window aggregates, recency, clocks.

use std::borrow::Cow;
use std::sync::Arc;

use pulse_schemas::{CustomerId, Features, DAY_MS};
use serde::{Deserialize, Serialize};

use crate::held::{Encoded, Ever, Kind, NewEvent, Store, StoreImage, HORIZON_MS, NO_LOCAL, NO_TUTOR};
use crate::timers::DueCell;
use crate::tutors::{Switches, TutorIds, TutorStat, FREE};
use crate::windows::{compute, lower_bound, Aggregates, Parts, Recency, LATER_TUTORS, W14, W30, W7, WINDOW_DAYS};

const NONE: i64 = i64::MIN;

fn day_of(ts: i64) -> i64 {
    ts.div_euclid(DAY_MS)
}

/// The bit of a day in [`CustomerState::days`]: held events span at most 31
/// days, so `day mod 32` never mixes two of them.
fn day_bit(day: i64) -> u32 {
    1 << day.rem_euclid(32)
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
/// Invariant: `store` holds exactly the held events with ts > C - 30 days,
/// `aggs` is their window aggregates as of C (and the table of their
/// tutors), `switches`/`latest_switch` are features 42/46 of their sessions,
/// `days` marks the days they fall on. Events that fall past the horizon
/// leave only their ts in `frozen` (the spec's "the state need keep, past
/// that horizon, only the latest ts of each kind").
#[derive(Debug)]
pub(crate) struct CustomerState {
    /// The customer clock C: the largest ts among accepted events.
    pub(crate) clock: i64,
    first_ts: i64,
    /// `as_of` of the customer's last vector, and its next timer.
    pub(crate) last_as_of: i64,
    next_due: Option<i64>,
    /// Whether the customer has its one entry in the timer queue (due at or
    /// before `next_due`).
    pub(crate) queued: bool,
    /// `next_due` as the timer entry reads it: there while `queued`.
    due_cell: Option<Arc<DueCell>>,
    /// Latest held ts per [`Ever`] kind, past-horizon ones included.
    latest: [i64; 4],
    /// Latest ts per [`Ever`] kind among events past the horizon.
    frozen: [i64; 4],
    /// Bit `day mod 32` is set when a held event falls on that day.
    days: u32,
    /// Feature 42 over the held sessions, and the latest switch's ts (or NONE).
    switches: u32,
    latest_switch: i64,
    aggs: Aggregates,
    store: Store,
}

impl CustomerState {
    pub(crate) fn new(first_ts: i64) -> CustomerState {
        CustomerState {
            clock: first_ts,
            first_ts,
            last_as_of: NONE,
            next_due: None,
            queued: false,
            due_cell: None,
            latest: [NONE; 4],
            frozen: [NONE; 4],
            days: 0,
            switches: 0,
            latest_switch: NONE,
            aggs: Aggregates::default(),
            store: Store::new(first_ts.saturating_sub(HORIZON_MS)),
        }
    }

    /// When the customer's next timer is due.
    pub(crate) fn next_due(&self) -> Option<i64> {
        self.next_due
    }

    /// Sets when the next timer is due, for the timer entry too.
    pub(crate) fn set_next_due(&mut self, due: Option<i64>) {
        self.next_due = due;
        if let Some(cell) = &self.due_cell {
            cell.set(due);
        }
    }

    /// The cell a timer entry of this customer reads its due time from.
    pub(crate) fn due_cell(&mut self, customer: &CustomerId) -> Arc<DueCell> {
        let due = self.next_due;
        self.due_cell.get_or_insert_with(|| Arc::new(DueCell::new(due, customer.clone()))).clone()
    }

    /// Cancels the customer's timer entry, if it has one: the state is being
    /// dropped, and the entry must not fire for a state loaded in its place.
    pub(crate) fn cancel_timer(&self) {
        if let Some(cell) = &self.due_cell {
            cell.cancel();
        }
    }

    /// Drops the cell once the customer has no entry (its timers stopped),
    /// so that a state has one exactly while it is queued, as a restored
    /// one does.
    pub(crate) fn drop_due_cell(&mut self) {
        debug_assert!(!self.queued);
        self.due_cell = None;
    }

    /// Whether a record touching an event at `ts` is late (ts <= C - 30 days).
    pub(crate) fn is_late(&self, ts: i64) -> bool {
        ts <= self.clock.saturating_sub(HORIZON_MS)
    }

    /// Lower bounds of W_7 and W_14 at the clock.
    fn short_bounds(&self) -> [i64; 2] {
        [lower_bound(self.clock, W7), lower_bound(self.clock, W14)]
    }

    fn global_tutor(&self, local: u32) -> u32 {
        if local == NO_LOCAL {
            NO_TUTOR
        } else {
            self.aggs.tutors.global(local)
        }
    }

    /// Retracts the held event with this id (judged on the OldImage's `ts`).
    pub(crate) fn retract(&mut self, image_ts: i64, id: u64) -> (Effect, Option<Encoded>) {
        if self.is_late(image_ts) {
            return (Effect::Late, None);
        }
        let Some(at) = self.store.position(id) else {
            return (Effect::NotHeld, None);
        };
        let gone = self.store.remove_at(at, self.short_bounds());
        let (ts, ev) = (gone.ts, gone.ev);
        for wi in [W7, W14, W30] {
            if ts > lower_bound(self.clock, wi) {
                self.aggs.apply(wi, ts, &ev, false);
            }
        }
        if ev.kind == Kind::SessionCompleted {
            self.session_removed(at, ts, ev.tutor);
            let stat = &self.aggs.tutors.0[ev.tutor as usize];
            if stat.sessions_30 > 0 && stat.latest_30 == ts {
                let latest = self.latest_session_of(ev.tutor);
                self.aggs.tutors.stat(ev.tutor).latest_30 = latest;
            }
        }
        let day = day_of(ts);
        let on_day = |i: usize| day_of(self.store.ts_at(i)) == day;
        let day_kept = (at > 0 && on_day(at - 1)) || (at < self.store.len() && on_day(at));
        if !day_kept {
            self.days &= !day_bit(day);
        }
        if let Some(k) = ev.ever() {
            if self.latest[k as usize] == ts {
                self.latest[k as usize] = self.latest_in_store(k).max(self.frozen[k as usize]);
            }
        }
        let removed = Encoded::from_parts(id, ts, ev.kind, ev.flag, self.global_tutor(ev.tutor), ev.value());
        if ev.tutor != NO_LOCAL {
            self.aggs.tutors.release(ev.tutor);
        }
        self.store.settle();
        (Effect::Done, Some(removed))
    }

    fn latest_in_store(&self, k: Ever) -> i64 {
        self.store.iter().rev().find(|e| e.ever() == Some(k)).map_or(NONE, |e| self.store.ts(e))
    }

    fn latest_session_of(&self, tutor: u32) -> i64 {
        let store = &self.store;
        store.iter().rev().find(|e| e.is_session() && store.tutor_of(e) == tutor).map_or(NONE, |e| store.ts(e))
    }

    /// Adds an event (judged late and duplicate against C before the record:
    /// a retraction earlier in the same record never moves C).
    pub(crate) fn add(&mut self, e: Encoded, event_id: &str) -> Effect {
        if self.is_late(e.ts) {
            return Effect::Late;
        }
        if self.store.position(e.id).is_some() {
            return Effect::Duplicate;
        }
        if !self.store.fits(e.ts) {
            // Rare: far past the store's base. Moving the clock prunes and
            // rebases.
            self.advance_clock(e.ts);
        }
        let kind = e.kind();
        let tutor = if e.tutor() == NO_TUTOR { NO_LOCAL } else { self.aggs.tutors.acquire(e.tutor()) };
        let new = NewEvent::new(&e, tutor);
        let at = self.store.insert(&new, event_id, self.short_bounds());
        if kind == Kind::SessionCompleted {
            // Before the clock moves: the sessions that leave then are
            // counted out with this one in place.
            self.session_added(at, e.ts, tutor);
        }
        if e.ts > self.clock {
            // The new event is the newest, so no window band reaches it.
            self.advance_clock(e.ts);
        }
        self.first_ts = self.first_ts.min(e.ts);
        let ev = new.ev();
        for wi in [W7, W14, W30] {
            if e.ts > lower_bound(self.clock, wi) {
                self.aggs.apply(wi, e.ts, &ev, true);
            }
        }
        self.days |= day_bit(day_of(e.ts));
        if let Some(k) = ev.ever() {
            self.latest[k as usize] = self.latest[k as usize].max(e.ts);
        }
        Effect::Done
    }

    /// Tutor and ts of the session at `i`.
    fn session(&self, i: usize) -> (u32, i64) {
        let e = self.store.get(i);
        (self.store.tutor_of(e), self.store.ts(e))
    }

    /// Updates the switches for a session (tutor `tutor` at `ts`) now at `at`.
    fn session_added(&mut self, at: usize, ts: i64, tutor: u32) {
        let prev = self.store.session_before(at).map(|i| self.session(i));
        let next_at = self.store.session_from(at + 1);
        let next = next_at.map(|i| self.session(i));
        let x = Some((tutor, ts));
        let (a, b, c) = (differs(prev, x), differs(x, next), differs(prev, next));
        self.switches = self.switches + u32::from(a) + u32::from(b) - u32::from(c);
        match (next, next_at) {
            (Some((_, next_ts)), Some(next_at)) => {
                if !c {
                    if a {
                        self.latest_switch = self.latest_switch.max(ts);
                    }
                    if b {
                        self.latest_switch = self.latest_switch.max(next_ts);
                    }
                } else if !b && self.latest_switch == next_ts && !self.switch_within_ts(next_at) {
                    // The pair (prev, next) was the latest switch; (prev, x)
                    // replaces it, unless another pair ends at next's ts.
                    self.latest_switch = ts;
                }
            }
            _ if a => self.latest_switch = ts,
            _ => {}
        }
    }

    /// Whether two neighbouring sessions from the session at `from` on, all
    /// at its ts, have different tutors.
    fn switch_within_ts(&self, from: usize) -> bool {
        let (mut tutor, ts) = self.session(from);
        for i in from + 1..self.store.len() {
            let e = self.store.get(i);
            if self.store.ts(e) != ts {
                break;
            }
            if e.is_session() {
                let t = self.store.tutor_of(e);
                if t != tutor {
                    return true;
                }
                tutor = t;
            }
        }
        false
    }

    /// Updates the switches for a session (tutor `tutor` at `ts`) removed
    /// from `at`.
    fn session_removed(&mut self, at: usize, ts: i64, tutor: u32) {
        let prev = self.store.session_before(at).map(|i| self.session(i));
        let next = self.store.session_from(at).map(|i| self.session(i));
        let x = Some((tutor, ts));
        let (a, b, c) = (differs(prev, x), differs(x, next), differs(prev, next));
        self.switches = self.switches + u32::from(c) - u32::from(a) - u32::from(b);
        if !a && !b {
            return;
        }
        match next {
            Some((_, next_ts)) if c => self.latest_switch = self.latest_switch.max(next_ts),
            Some((_, next_ts)) if self.latest_switch > if b { next_ts } else { ts } => {}
            _ => self.latest_switch = self.rescan_latest_switch(),
        }
    }

    /// The latest switch, by a scan back from the last session.
    fn rescan_latest_switch(&self) -> i64 {
        let mut later: Option<(u32, i64)> = None;
        for e in self.store.iter().rev().filter(|e| e.is_session()) {
            let tutor = self.store.tutor_of(e);
            match later {
                Some((t, ts)) if t != tutor => return ts,
                _ => later = Some((tutor, self.store.ts(e))),
            }
        }
        NONE
    }

    /// The switches once the sessions with ts <= `t` have left W_30
    /// (without changing anything): those between two leaving sessions and
    /// between the last leaving one and the first that stays go.
    fn switches_after_leaving_through(&self, t: i64) -> Switches {
        let mut count = self.switches;
        let mut last: Option<u32> = None;
        let mut i = 0;
        while i < self.store.len() {
            let e = self.store.get(i);
            if self.store.ts(e) > t {
                break;
            }
            if e.is_session() {
                let tutor = self.store.tutor_of(e);
                count -= u32::from(last.is_some_and(|l| l != tutor));
                last = Some(tutor);
            }
            i += 1;
        }
        if let Some(l) = last {
            if let Some(j) = self.store.session_from(i) {
                count -= u32::from(self.session(j).0 != l);
            }
        }
        let latest = if count == 0 || self.latest_switch == NONE { None } else { Some(self.latest_switch) };
        Switches { count, latest }
    }

    /// Moves C forward to `to`: events leave windows, and those past the
    /// horizon leave the state.
    fn advance_clock(&mut self, to: i64) {
        for wi in [W7, W14] {
            let bound = lower_bound(to, wi);
            while let Some(ts) = self.store.cursor_ts(wi) {
                if ts > bound {
                    break;
                }
                let e = *self.store.get(self.store.cursor(wi));
                let ev = self.store.view(&e);
                self.aggs.apply(wi, ts, &ev, false);
                self.store.step_cursor(wi);
            }
        }
        let horizon = lower_bound(to, W30);
        if self.store.len() > 0 && self.store.ts_at(0) <= horizon {
            let left = self.switches_after_leaving_through(horizon);
            let lower = [lower_bound(to, W7), lower_bound(to, W14)];
            while self.store.len() > 0 && self.store.ts_at(0) <= horizon {
                let gone = self.store.remove_at(0, lower);
                let (ts, ev) = (gone.ts, gone.ev);
                self.aggs.apply(W30, ts, &ev, false);
                if self.store.len() == 0 || day_of(self.store.ts_at(0)) != day_of(ts) {
                    self.days &= !day_bit(day_of(ts));
                }
                if let Some(k) = ev.ever() {
                    self.frozen[k as usize] = self.frozen[k as usize].max(ts);
                }
                if ev.tutor != NO_LOCAL {
                    self.aggs.tutors.release(ev.tutor);
                }
            }
            self.switches = left.count;
            self.latest_switch = left.latest.unwrap_or(NONE);
            self.store.settle();
        }
        self.clock = to;
        if !self.store.fits(to) {
            self.store.rebase(horizon);
        }
    }

    /// The features as of `t` (>= C).
    pub(crate) fn features_at(&self, t: i64, ids: &TutorIds) -> Features {
        let mut f = [0.0; pulse_schemas::FEATURE_COUNT];
        self.features_into(t, ids, &mut f);
        f
    }

    /// The features as of `t` (>= C), written into `f`.
    pub(crate) fn features_into(&self, t: i64, ids: &TutorIds, f: &mut Features) {
        debug_assert!(t >= self.clock);
        let active_days_14d = self.active_days_14d(t);
        if t == self.clock {
            let latest = (self.switches > 0).then_some(self.latest_switch);
            let switches = Switches { count: self.switches, latest };
            let recency = Recency { latest: self.latest, first_ts: self.first_ts, active_days_14d, switches };
            compute(t, self.aggs.view(), &recency, ids, f);
            return;
        }
        // A copy taken to `t`: the events that leave by then are counted out.
        let a = &self.aggs;
        let (mut w7, mut w14, mut w30, mut odd) = (a.w7, a.w14, a.w30, a.odd.clone());
        let mut on_stack = [TutorStat::default(); LATER_TUTORS];
        let mut on_heap;
        let tutors: &mut [TutorStat] = match a.tutors.0.len() {
            n if n <= LATER_TUTORS => {
                on_stack[..n].copy_from_slice(&a.tutors.0);
                &mut on_stack[..n]
            }
            _ => {
                on_heap = a.tutors.0.clone();
                &mut on_heap
            }
        };
        let mut later = Parts { w7: &mut w7, w14: &mut w14, w30: &mut w30, tutors, odd: &mut odd };
        for wi in [W7, W14, W30] {
            leave_band(&self.store, &mut later, wi, t);
        }
        let switches = self.switches_after_leaving_through(lower_bound(t, W30));
        let recency = Recency { latest: self.latest, first_ts: self.first_ts, active_days_14d, switches };
        compute(t, later.view(), &recency, ids, f);
    }

    /// Distinct days with an event in W_14 at `t` (>= C).
    fn active_days_14d(&self, t: i64) -> u32 {
        let low = lower_bound(t, W14);
        let low_day = day_of(low);
        // Days after the boundary day are wholly inside (T-14d, T]; no event
        // is later than C. They are at most 14, all within the held days.
        let after = day_of(self.clock) - low_day;
        let mut n = if after > 0 {
            let first = (low_day + 1).rem_euclid(32) as u32;
            (self.days.rotate_right(first) & ((1u32 << after.min(31)) - 1)).count_ones()
        } else {
            0
        };
        // The boundary day counts if one of its events is after `low`.
        let first = if t == self.clock {
            self.store.cursor_ts(W14)
        } else {
            let i = self.store.first_after(low);
            (i < self.store.len()).then(|| self.store.ts_at(i))
        };
        if first.is_some_and(|ts| day_of(ts) == low_day) {
            n += 1;
        }
        n
    }

    /// Bytes this customer holds on the heap (its struct lives in the map).
    pub(crate) fn heap_bytes(&self) -> usize {
        // The due cell: an `Arc`'s two counters, the time and the customer id
        // (a long id's bytes are shared with the map's key).
        let cell =
            self.due_cell.as_ref().map_or(0, |_| 2 * std::mem::size_of::<usize>() + std::mem::size_of::<DueCell>());
        self.store.heap_bytes() + self.aggs.heap_bytes() + cell
    }

    /// The part of [`CustomerState::heap_bytes`] that grows with the held events.
    pub(crate) fn event_bytes(&self) -> usize {
        self.store.heap_bytes()
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
            switches: self.switches,
            latest_switch: self.latest_switch,
            latest: self.latest,
            frozen: self.frozen,
            last_as_of: self.last_as_of,
            next_due: self.next_due,
            // The entry itself may be earlier; one at the due time behaves
            // the same, and two engines in the same state write the same.
            queued: if self.queued { self.next_due } else { None },
        }
    }

    /// The state of a snapshot, after checking everything the engine relies
    /// on (what a checksum cannot catch: a snapshot written by a faulty
    /// build). Derived parts (day bits, cursors, fingerprints, the id index)
    /// are rebuilt from the held events; stored ones that follow from them
    /// (aggregate counts and exact sums, tutor references, switches, latest
    /// times) must agree with them. What depends on history alone (the side
    /// sums' rounding, `frozen`, `first_ts`, the tutor slots' order, the timer
    /// fields) is taken as stored.
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
        let aggs = image.aggs.into_owned();
        let slots = &aggs.tutors.0;
        for (i, s) in slots.iter().enumerate() {
            let free = s.tutor == FREE;
            if free && *s != (TutorStat { tutor: FREE, ..TutorStat::default() }) {
                return Err(format!("free tutor slot {i} is not empty"));
            }
            if !free && (s.tutor == NO_TUTOR || !ids.knows(s.tutor)) {
                return Err(format!("tutor slot {i} has an unknown tutor number {}", s.tutor));
            }
            if !free && slots[..i].iter().any(|o| o.tutor == s.tutor) {
                return Err(format!("tutor number {} holds two slots", s.tutor));
            }
        }
        if slots.last().is_some_and(|s| s.tutor == FREE) {
            return Err("the tutor table ends with a free slot".to_string());
        }
        // Rebuilt with the same slots: counts from the held events.
        let mut rebuilt = Aggregates::default();
        rebuilt.tutors.0 = slots.iter().map(|s| TutorStat { tutor: s.tutor, ..TutorStat::default() }).collect();
        let mut days = 0u32;
        let mut latest = image.frozen;
        for e in store.iter() {
            let ts = store.ts(e);
            let ev = store.view(e);
            if ev.tutor != NO_LOCAL {
                match rebuilt.tutors.0.get_mut(ev.tutor as usize) {
                    Some(slot) if slot.tutor != FREE => slot.refs += 1,
                    _ => return Err(format!("held event at {ts} names tutor slot {} which is not held", ev.tutor)),
                }
            }
            if ts < image.first_ts {
                return Err(format!("held event at {ts} before the first event at {}", image.first_ts));
            }
            days |= day_bit(day_of(ts));
            for wi in [W7, W14, W30] {
                if ts > lower_bound(clock, wi) {
                    rebuilt.apply(wi, ts, &ev, true);
                }
            }
            if let Some(k) = ev.ever() {
                latest[k as usize] = latest[k as usize].max(ts);
            }
        }
        if aggs.canonical() != rebuilt.canonical() || aggs.odd.as_ref().is_some_and(|o| o.is_empty()) {
            return Err("window aggregates or tutor references do not match the held events".to_string());
        }
        if latest != image.latest {
            return Err(format!("latest times {:?} do not match the held events ({latest:?})", image.latest));
        }
        let mut state = CustomerState {
            clock,
            first_ts: image.first_ts,
            last_as_of: image.last_as_of,
            next_due: image.next_due,
            queued: image.queued.is_some(),
            due_cell: None,
            latest: image.latest,
            frozen: image.frozen,
            days,
            switches: 0,
            latest_switch: NONE,
            aggs,
            store,
        };
        let mut previous = None;
        for e in state.store.iter().filter(|e| e.is_session()) {
            let tutor = state.store.tutor_of(e);
            if previous.is_some_and(|p| p != tutor) {
                state.switches += 1;
                state.latest_switch = state.store.ts(e);
            }
            previous = Some(tutor);
        }
        if (state.switches, state.latest_switch) != (image.switches, image.latest_switch) {
            return Err(format!(
                "tutor switches {} / latest {} do not match the sessions ({} / {})",
                image.switches, image.latest_switch, state.switches, state.latest_switch
            ));
        }
        Ok(state)
    }
}

/// Whether two sessions (tutor, ts) both exist and have different tutors.
fn differs(a: Option<(u32, i64)>, b: Option<(u32, i64)>) -> bool {
    matches!((a, b), (Some((x, _)), Some((y, _))) if x != y)
}

/// [`CustomerState`] in a snapshot: borrowed to write, owned when read.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct CustomerImage<'a> {
    clock: i64,
    first_ts: i64,
    #[serde(borrow)]
    store: StoreImage<'a>,
    aggs: Cow<'a, Aggregates>,
    switches: u32,
    latest_switch: i64,
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
fn leave_band(store: &Store, aggs: &mut Parts<'_>, wi: usize, to: i64) {
    let hi = lower_bound(to, wi);
    let mut i = if wi == W30 { 0 } else { store.cursor(wi) };
    while i < store.len() {
        let e = store.get(i);
        let ts = store.ts(e);
        if ts > hi {
            break;
        }
        aggs.apply(wi, ts, &store.view(e), false);
        i += 1;
    }
}

const _: () = assert!(WINDOW_DAYS[W30] * DAY_MS == HORIZON_MS);
