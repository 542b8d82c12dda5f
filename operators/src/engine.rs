//! The engine: every customer's state, the record rules of §2 and timers.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use dashmap::DashMap;
use pulse_schemas::{CustomerId, Event, Features, StreamChange, StreamRecord, Trigger, FEATURE_COUNT};

use crate::customer::{CustomerImage, CustomerState, Effect};
use crate::held::{id_hash, Encoded};
use crate::snapshot::{FrameReader, FrameWriter, Meta, SnapshotError};
use crate::stats::{Counters, CountersSnapshot};
use crate::timers::{DueCell, TimerPolicy, TimerQueue};
use crate::tutors::TutorIds;

/// How the engine behaves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EngineConfig {
    /// When silent customers are rescored (default: daily, see [`TimerPolicy`]).
    pub timers: TimerPolicy,
}

/// A feature vector the engine produced.
#[derive(Clone, Debug, PartialEq)]
pub struct Emission {
    /// The customer.
    pub customer_id: CustomerId,
    /// `T` of the vector.
    pub as_of: i64,
    /// What made it.
    pub trigger: Trigger,
    /// The 46 values.
    pub features: Features,
}

/// Per-customer rolling windows over a stream of decoded records.
///
/// Customers live in a concurrent map, so records of different customers may
/// be applied from several threads; records of one customer must be applied
/// in stream order by one caller at a time (as a shard's records are).
#[derive(Debug)]
pub struct Engine {
    config: EngineConfig,
    /// Each state is boxed: the map's slots then hold 32 bytes, not the
    /// state's 500, so its spare slots (up to half of them just after it
    /// grows, and both tables while it rehashes) cost little at a million
    /// customers.
    customers: DashMap<CustomerId, Box<CustomerState>, ahash::RandomState>,
    tutors: TutorIds,
    timers: Mutex<TimerQueue>,
    /// The earliest due time in `timers` (`i64::MAX` when none), so a record
    /// that fires no timer never takes the lock.
    earliest_due: AtomicI64,
    counters: Counters,
    /// The largest [`StateSize::bytes`] seen by [`Engine::state_size`].
    peak_state_bytes: AtomicU64,
}

impl Engine {
    /// An engine with no customers.
    pub fn new(config: EngineConfig) -> Engine {
        Engine {
            config,
            customers: DashMap::with_hasher(ahash::RandomState::new()),
            tutors: TutorIds::default(),
            timers: Mutex::new(TimerQueue::default()),
            earliest_due: AtomicI64::new(i64::MAX),
            counters: Counters::default(),
            peak_state_bytes: AtomicU64::new(0),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Applies one valid record (§2). Pushes one [`Trigger::Event`] vector
    /// as of the customer clock when the customer's held events changed.
    ///
    /// Valid means as `pulse_schemas`' decoders make it, and the engine
    /// relies on it: every `ts` is a plausible time
    /// (`pulse_schemas::validate::EARLIEST_MS..LATEST_MS`), so none is
    /// `i64::MIN` (the state's "no such event" marker, and the saturated
    /// `C - 30 days` of a customer without events: such an event would count
    /// as late) and window bounds never saturate; every number is within its
    /// range (`amount` and `response_minutes` at most
    /// `pulse_schemas::validate::MAX_UNBOUNDED_VALUE`), so every sum, mean
    /// and feature is finite.
    pub fn apply(&self, record: &StreamRecord<'_>, out: &mut Vec<Emission>) {
        Counters::bump(&self.counters.records);
        match &record.change {
            StreamChange::Insert(new) => self.change(None, Some(new), out),
            StreamChange::Modify { old, new } => self.change(old.as_ref(), new.as_ref(), out),
            StreamChange::Remove(old) => self.change(Some(old), None, out),
            StreamChange::TtlExpiry => Counters::bump(&self.counters.ttl_expiries),
            StreamChange::NotAnEvent => Counters::bump(&self.counters.non_events),
        }
    }

    fn change(&self, old: Option<&Event<'_>>, new: Option<&Event<'_>>, out: &mut Vec<Emission>) {
        let Some(customer) = new.or(old).map(|e| &*e.customer_id) else { return };
        let c = &self.counters;
        let mut entry = match (self.customers.get_mut(customer), new) {
            (Some(entry), _) => entry,
            (None, Some(first)) => {
                let id = CustomerId::new(customer);
                self.customers.entry(id).or_insert_with(|| Box::new(CustomerState::new(first.ts.0)))
            }
            (None, None) => {
                Counters::bump(&c.retractions_not_held);
                Counters::bump(&c.unchanged);
                return;
            }
        };
        let (key, state) = entry.pair_mut();

        let mut removed = None;
        if let Some(old) = old {
            let (effect, gone) = state.retract(old.ts.0, id_hash(&old.event_id));
            removed = gone;
            Counters::bump(match effect {
                Effect::Late => &c.late_retractions,
                Effect::NotHeld => &c.retractions_not_held,
                _ => &c.events_retracted,
            });
        }
        let mut added = None;
        if let Some(new) = new {
            let encoded = Encoded::new(new, &self.tutors);
            let effect = state.add(encoded, &new.event_id);
            if effect == Effect::Done {
                added = Some(encoded);
            }
            Counters::bump(match effect {
                Effect::Late => &c.late_adds,
                Effect::Duplicate => &c.duplicates,
                _ => &c.events_added,
            });
        }

        if removed == added {
            Counters::bump(&c.unchanged);
            return;
        }
        let as_of = state.clock;
        let schedule = self.schedule(state, as_of, key);
        // The features go straight into the output: the emission is made in
        // place (a `push` would build it on the stack and copy 368 bytes).
        out.resize_with(out.len() + 1, || Emission {
            customer_id: key.clone(),
            as_of,
            trigger: Trigger::Event,
            features: [0.0; FEATURE_COUNT],
        });
        let emission = out.last_mut().expect("just pushed");
        state.features_into(as_of, &self.tutors, &mut emission.features);
        drop(entry);
        Counters::bump(&c.vectors_event);
        if let Some((due, cell)) = schedule {
            self.push_timer(due, cell);
        }
    }

    /// Records a vector as of `as_of` and works out the next timer. Returns
    /// an entry to push when the customer has none in the queue yet.
    ///
    /// Each customer has at most one entry, at or before its next due time
    /// (due times only move later): a vector does not push a new entry, and
    /// an entry that comes up early is moved to the real due time (see
    /// [`crate::timers::DueCell`]). So the queue holds one entry per
    /// customer, not one per vector.
    fn schedule(&self, state: &mut CustomerState, as_of: i64, id: &CustomerId) -> Option<(i64, Arc<DueCell>)> {
        state.last_as_of = state.last_as_of.max(as_of);
        state.set_next_due(self.config.timers.next_due(state.last_as_of, state.clock));
        Self::entry_to_push(state, id)
    }

    /// The entry to push for a customer with a timer due and none queued.
    fn entry_to_push(state: &mut CustomerState, id: &CustomerId) -> Option<(i64, Arc<DueCell>)> {
        match (state.queued, state.next_due()) {
            (false, Some(due)) => {
                state.queued = true;
                Some((due, state.due_cell(id)))
            }
            _ => None,
        }
    }

    fn push_timer(&self, due: i64, cell: Arc<DueCell>) {
        let mut timers = self.lock_timers();
        timers.push(due, cell);
        self.earliest_due.store(timers.earliest(), Relaxed);
    }

    fn lock_timers(&self) -> std::sync::MutexGuard<'_, TimerQueue> {
        // A panic elsewhere cannot leave the queue half-updated (each call is
        // a single push or pop), so a poisoned lock is still usable.
        self.timers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Moves time to `now_ms`: every timer due at or before it fires, in
    /// (due, customer) order, each pushing a [`Trigger::Timer`] vector as of
    /// its due time. Timers fire one at a time, so that when time jumps over
    /// several intervals a customer's next timer takes its place among the
    /// others' (the order is by due time throughout, not in rounds).
    pub fn advance_to(&self, now_ms: i64, out: &mut Vec<Emission>) {
        loop {
            if self.earliest_due.load(Relaxed) > now_ms {
                return;
            }
            let next = {
                let mut timers = self.lock_timers();
                let next = timers.pop_next(now_ms);
                self.earliest_due.store(timers.earliest(), Relaxed);
                next
            };
            let Some((at, customer_id)) = next else { return };
            let Some(mut entry) = self.customers.get_mut(&customer_id) else { continue };
            let state = entry.value_mut();
            if !state.queued {
                continue;
            }
            // The entry is out of the queue: a new one is pushed below if
            // the customer still has a timer due.
            state.queued = false;
            let push = match state.next_due() {
                Some(due) if due == at => {
                    let next = self.schedule(state, at, &customer_id);
                    let features = [0.0; FEATURE_COUNT];
                    out.resize_with(out.len() + 1, || Emission {
                        customer_id: customer_id.clone(),
                        as_of: at,
                        trigger: Trigger::Timer,
                        features,
                    });
                    let emission = out.last_mut().expect("just pushed");
                    state.features_into(at, &self.tutors, &mut emission.features);
                    Counters::bump(&self.counters.vectors_timer);
                    next
                }
                // Moved later since the entry came out (a record applied by
                // another thread): wait for the real time.
                Some(_) => Self::entry_to_push(state, &customer_id),
                None => None,
            };
            if push.is_none() {
                state.drop_due_cell();
            }
            drop(entry);
            if let Some((due, cell)) = push {
                self.push_timer(due, cell);
            }
        }
    }

    /// Loads one customer's events read from elsewhere (the event table, on a
    /// cold start) without emitting anything, then settles its timers as if
    /// every timer due at or before `timers_fired_through` had already fired
    /// (see [`TimerPolicy::settled`]).
    ///
    /// `events` should be in ascending `ts` order (then none is late); each is
    /// added by the rules of §2 (a held `event_id` is a duplicate), and events
    /// of another customer are skipped. A customer already held is merged
    /// into. Records applied afterwards continue from this state exactly as
    /// they would from a state built by the stream.
    pub fn hydrate(&self, customer_id: &str, events: &[Event<'_>], timers_fired_through: i64) -> Hydrated {
        let mut counts = Hydrated {
            other_customer: events.iter().filter(|e| e.customer_id != customer_id).count() as u64,
            ..Hydrated::default()
        };
        let mut mine = events.iter().filter(|e| e.customer_id == customer_id);
        let Some(first) = mine.next() else { return counts };
        let mut entry = self
            .customers
            .entry(CustomerId::new(customer_id))
            .or_insert_with(|| Box::new(CustomerState::new(first.ts.0)));
        let state = entry.value_mut();
        for event in std::iter::once(first).chain(mine) {
            match state.add(Encoded::new(event, &self.tutors), &event.event_id) {
                Effect::Done => counts.added += 1,
                Effect::Duplicate => counts.duplicates += 1,
                Effect::Late | Effect::NotHeld => counts.late += 1,
            }
        }
        let (last, _) = self.config.timers.settled(state.clock, timers_fired_through);
        state.last_as_of = state.last_as_of.max(last);
        state.set_next_due(self.config.timers.next_due(state.last_as_of, state.clock));
        let (customer, state) = entry.pair_mut();
        let push = Self::entry_to_push(state, customer);
        drop(entry);
        if let Some((due, cell)) = push {
            self.push_timer(due, cell);
        }
        counts
    }

    /// Drops a customer's state, as if its records had never been applied
    /// (the counters keep them), and cancels its pending timer. For a caller
    /// that learns its copy of the customer is stale (records applied
    /// elsewhere since) and loads it afresh with [`Engine::hydrate`], or
    /// leaves it to whoever holds it. Returns whether it was held.
    pub fn forget(&self, customer_id: &str) -> bool {
        match self.customers.remove(customer_id) {
            Some((_, state)) => {
                state.cancel_timer();
                true
            }
            None => false,
        }
    }

    /// The customers whose timer would fire by `now_ms`, sorted: those an
    /// [`Engine::advance_to`] to `now_ms` would rescore, unless a record
    /// moves a due time first. Reads every pending entry.
    pub fn due_by(&self, now_ms: i64) -> Vec<CustomerId> {
        let mut due = self.lock_timers().due_by(now_ms);
        due.sort_unstable();
        due.dedup();
        due
    }

    /// When a customer's next timer is due (`None` for an unknown customer or
    /// one whose timers have stopped).
    pub fn next_due(&self, customer_id: &str) -> Option<i64> {
        self.customers.get(customer_id).and_then(|s| s.next_due())
    }

    /// A customer's features as of `as_of_ms`, which must be at or after its
    /// clock (`None` for an unknown customer or an earlier time).
    pub fn features_at(&self, customer_id: &str, as_of_ms: i64) -> Option<Features> {
        let state = self.customers.get(customer_id)?;
        (as_of_ms >= state.clock).then(|| state.features_at(as_of_ms, &self.tutors))
    }

    /// A customer's clock C (the largest ts among its accepted events).
    pub fn customer_clock(&self, customer_id: &str) -> Option<i64> {
        self.customers.get(customer_id).map(|s| s.clock)
    }

    /// The counters so far.
    pub fn counters(&self) -> CountersSnapshot {
        self.counters.snapshot()
    }

    /// Customers with state.
    pub fn customers(&self) -> usize {
        self.customers.len()
    }

    /// Memory held for customers now, the most seen by any call so far, and
    /// the number of held events now.
    ///
    /// Counts, per customer, its entry in the customer map (id and box
    /// inline, one control byte), the boxed state, and the id's and state's heap parts by
    /// capacity, plus the interned tutor ids and the timer queue's entries.
    /// Not counted: the map's spare slots (they depend on how its random
    /// hasher spread the customers, so a restored engine would report other
    /// figures) and the allocator's own overhead.
    ///
    /// Walks every customer (about 10 ns each), so callers sample it — the
    /// replay every 2^18 records — rather than keeping a running total on the
    /// hot path; the peak is the largest sample.
    pub fn state_size(&self) -> StateSize {
        let entry =
            (std::mem::size_of::<(CustomerId, Box<CustomerState>)>() + 1 + std::mem::size_of::<CustomerState>()) as u64;
        let (mut bytes, mut event_bytes, mut held_events) = (self.tutors.heap_bytes() as u64, 0u64, 0u64);
        for c in self.customers.iter() {
            let (customer_id, state) = c.pair();
            bytes += entry + id_heap_bytes(customer_id) as u64 + state.heap_bytes() as u64;
            event_bytes += state.event_bytes() as u64;
            held_events += state.held_len() as u64;
        }
        let (pending_timers, timer_bytes) = {
            let timers = self.lock_timers();
            (timers.len() as u64, timers.bytes() as u64)
        };
        bytes += timer_bytes;
        let peak = self.peak_state_bytes.fetch_max(bytes, Relaxed).max(bytes);
        StateSize {
            bytes,
            peak_bytes: peak,
            event_bytes,
            held_events,
            customers: self.customers.len() as u64,
            pending_timers,
        }
    }
}

/// What [`Engine::hydrate`] did with the events it was given.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Hydrated {
    /// Events added.
    pub added: u64,
    /// Events whose `event_id` was already held.
    pub duplicates: u64,
    /// Events past the 30-day horizon of the customer's clock when they came
    /// (only when `events` were not in `ts` order).
    pub late: u64,
    /// Events of another customer, skipped.
    pub other_customer: u64,
}

/// Snapshots (the format and what is in one: [`crate::snapshot`]).
impl Engine {
    /// Writes the whole state to `w` (give it a buffered writer).
    ///
    /// The caller must not apply records or advance time while this runs
    /// (call it between batches, as a checkpoint does): nothing stops a
    /// concurrent [`Engine::apply`], which would leave the snapshot a mix of
    /// before and after. The engine itself is unchanged.
    pub fn write_snapshot(&self, w: impl std::io::Write) -> Result<(), SnapshotError> {
        let mut ids: Vec<CustomerId> = self.customers.iter().map(|e| e.key().clone()).collect();
        ids.sort_unstable();
        let tutors = self.tutors.names().map_err(|e| SnapshotError::Io(std::io::Error::other(e)))?;
        let mut out = FrameWriter::new(w)?;
        out.record(&Meta {
            config: self.config.into(),
            counters: self.counters.snapshot(),
            peak_state_bytes: self.peak_state_bytes.load(Relaxed),
            tutors: tutors.len() as u64,
            customers: ids.len() as u64,
        })?;
        for name in tutors {
            out.record(name)?;
        }
        for id in &ids {
            let state = self.customers.get(id).expect("customers are never removed");
            out.record(&(id.as_str(), state.to_image()))?;
        }
        out.finish()
    }

    /// Reads a snapshot this engine wrote and checks it restores this
    /// engine exactly, one customer at a time, without a second engine in
    /// memory: the header (configuration, counters, customers) and tutor
    /// ids must equal this engine's, and each customer, rebuilt from its
    /// record as [`Engine::read_snapshot`] rebuilds it, must encode to the
    /// same bytes as this engine's state of it. Costs what a restore costs
    /// but the map inserts; the memory of one customer.
    pub fn check_snapshot(&self, r: impl std::io::Read) -> Result<(), SnapshotError> {
        let differs = |what: String| SnapshotError::Corrupt(format!("read back, {what} differs from the engine's"));
        let mut input = FrameReader::new(r)?;
        let meta: Meta = input.record("header record")?;
        if EngineConfig::from(meta.config) != self.config {
            return Err(differs("the configuration".into()));
        }
        if meta.counters != self.counters.snapshot() || meta.customers != self.customers.len() as u64 {
            return Err(differs("the header (counters or customers)".into()));
        }
        let tutors = self.tutors.names().map_err(|e| SnapshotError::Io(std::io::Error::other(e)))?;
        if meta.tutors != tutors.len() as u64 {
            return Err(differs("the number of tutor ids".into()));
        }
        for (i, name) in tutors.iter().enumerate() {
            let read: &str = input.record("tutor id")?;
            if read != *name {
                return Err(differs(format!("tutor id {i}")));
            }
        }
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for _ in 0..meta.customers {
            let (id, image): (&str, CustomerImage<'_>) = input.record("customer")?;
            let live = self.customers.get(id).ok_or_else(|| differs(format!("customer {id:?} (not held)")))?;
            let rebuilt = CustomerState::from_image(image, &self.tutors)
                .map_err(|e| SnapshotError::Corrupt(format!("customer {id}: {e}")))?;
            let encode = |state: &CustomerState, mut out: Vec<u8>| {
                out.clear();
                postcard::to_extend(&state.to_image(), out).map_err(|e| differs(format!("customer {id} ({e})")))
            };
            ours = encode(&live, std::mem::take(&mut ours))?;
            theirs = encode(&rebuilt, std::mem::take(&mut theirs))?;
            if ours != theirs {
                return Err(differs(format!("customer {id}")));
            }
        }
        input.finish()
    }

    /// An engine restored from a snapshot that [`Engine::write_snapshot`]
    /// wrote, which from then on behaves exactly as the engine that wrote it.
    ///
    /// `config` must equal the snapshot's (else
    /// [`SnapshotError::ConfigMismatch`]): the timer policy shaped every
    /// customer's pending timer, and silently taking either one would change
    /// results. Reads exactly the snapshot's bytes from `r`.
    pub fn read_snapshot(config: EngineConfig, r: impl std::io::Read) -> Result<Engine, SnapshotError> {
        let mut input = FrameReader::new(r)?;
        let meta: Meta = input.record("header record")?;
        let stored = EngineConfig::from(meta.config);
        if stored != config {
            return Err(SnapshotError::ConfigMismatch { snapshot: stored, given: config });
        }
        let corrupt = SnapshotError::Corrupt;
        let tutors = TutorIds::default();
        for _ in 0..meta.tutors {
            let name: &str = input.record("tutor id")?;
            tutors.restore_next(name).map_err(corrupt)?;
        }
        let customers = DashMap::with_hasher(ahash::RandomState::new());
        let mut timers = TimerQueue::default();
        let mut previous: Option<CustomerId> = None;
        for _ in 0..meta.customers {
            let (id, image): (&str, CustomerImage<'_>) = input.record("customer")?;
            if previous.as_ref().is_some_and(|p| p.as_str() >= id) {
                return Err(corrupt(format!("customer {id:?} out of order (after {previous:?})")));
            }
            let id = CustomerId::new(id);
            let queued = image.queued();
            let mut state =
                CustomerState::from_image(image, &tutors).map_err(|e| corrupt(format!("customer {id}: {e}")))?;
            if let Some(due) = queued {
                timers.push(due, state.due_cell(&id));
            }
            customers.insert(id.clone(), Box::new(state));
            previous = Some(id);
        }
        input.finish()?;
        let earliest = timers.earliest();
        Ok(Engine {
            config,
            customers,
            tutors,
            timers: Mutex::new(timers),
            earliest_due: AtomicI64::new(earliest),
            counters: Counters::restore(&meta.counters),
            peak_state_bytes: AtomicU64::new(meta.peak_state_bytes),
        })
    }
}

/// Heap bytes of a customer id: ids of up to 23 bytes are inline, longer
/// ones are a shared string (two counters and the bytes).
fn id_heap_bytes(id: &CustomerId) -> usize {
    match id.as_str().len() {
        n if n > 23 => 16 + n,
        _ => 0,
    }
}

/// How much state the engine holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct StateSize {
    /// Bytes now (customer map entries, their heap parts, interned tutor
    /// ids, timer entries).
    pub bytes: u64,
    /// The most bytes seen by any `state_size` call so far (a sampled peak).
    pub peak_bytes: u64,
    /// The part of `bytes` that grows with the held events: their buffers
    /// (with spare room), fingerprints, the held sessions' ids, spills and id
    /// indexes. The rest is a fixed part per customer (its state, tutor
    /// table, id, timer entry and cell) and the tutor ids.
    pub event_bytes: u64,
    /// Held events within the horizon, all customers.
    pub held_events: u64,
    /// Customers with state.
    pub customers: u64,
    /// Timer entries waiting (including superseded ones not yet popped).
    pub pending_timers: u64,
}

impl StateSize {
    /// Both engines' state added (several engines side by side, each
    /// holding some of the customers); the peak is the sum of the sampled
    /// peaks, an upper bound of the peak of the sum.
    pub fn plus(&self, other: &StateSize) -> StateSize {
        StateSize {
            bytes: self.bytes + other.bytes,
            peak_bytes: self.peak_bytes + other.peak_bytes,
            event_bytes: self.event_bytes + other.event_bytes,
            held_events: self.held_events + other.held_events,
            customers: self.customers + other.customers,
            pending_timers: self.pending_timers + other.pending_timers,
        }
    }
}
