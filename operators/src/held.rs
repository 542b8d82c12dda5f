//! The compact form of a held event, and a customer's store of them.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

use serde::{Deserialize, Serialize};

use pulse_schemas::{Event, EventKind, Party, PaymentStatus, Sentiment, DAY_MS};

use crate::tutors::TutorIds;

/// The contract's 30-day horizon: the longest window, and how far back a
/// record may still add or retract.
pub(crate) const HORIZON_MS: i64 = 30 * DAY_MS;

/// Event types, as the 3 low bits of [`HeldEvent::tag`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub(crate) enum Kind {
    SessionCompleted = 0,
    SessionCancelled = 1,
    SessionNoShow = 2,
    SessionRated = 3,
    Login = 4,
    Payment = 5,
    IbCall = 6,
    MessageReply = 7,
}

const KINDS: [Kind; 8] = [
    Kind::SessionCompleted,
    Kind::SessionCancelled,
    Kind::SessionNoShow,
    Kind::SessionRated,
    Kind::Login,
    Kind::Payment,
    Kind::IbCall,
    Kind::MessageReply,
];

/// The "ever" features read the latest held ts of these four things.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Ever {
    Session = 0,
    Login = 1,
    PaymentSucceeded = 2,
    IbCall = 3,
}

/// Bits of [`HeldEvent::tag`]: kind (3), flag (2), tutor (27).
const FLAG_SHIFT: u32 = 3;
const TUTOR_SHIFT: u32 = 5;
/// Tutor field value meaning "no tutor" (a `message_reply` without one).
pub(crate) const NO_TUTOR: u32 = (1 << 27) - 1;

/// One held event in 24 bytes: the hash of its `event_id`, its number, its
/// time as an offset from the customer's base, and a tag packing its type,
/// its enum attribute and its interned tutor.
///
/// Every contract attribute is here, so two `HeldEvent`s are equal exactly
/// when the events are (up to a 64-bit hash collision of ids within one
/// customer's 30 days: about 1 in 10^13 for a thousand events).
#[derive(Clone, Copy, PartialEq, Debug)]
pub(crate) struct HeldEvent {
    pub(crate) id: u64,
    /// `duration_min`, `rating`, `amount` or `response_minutes`; 0 otherwise.
    pub(crate) value: f64,
    pub(crate) ts_off: u32,
    pub(crate) tag: u32,
}

const _: () = assert!(std::mem::size_of::<HeldEvent>() == 24);

/// Snapshots: the id hash as 8 fixed bytes (a varint of a random 64-bit
/// value would take 9 or 10), the value's bits, then the offset and tag.
impl Serialize for HeldEvent {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (self.id.to_le_bytes(), self.value, self.ts_off, self.tag).serialize(s)
    }
}

impl<'de> Deserialize<'de> for HeldEvent {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (id, value, ts_off, tag) = <([u8; 8], f64, u32, u32)>::deserialize(d)?;
        Ok(HeldEvent { id: u64::from_le_bytes(id), value, ts_off, tag })
    }
}

impl HeldEvent {
    pub(crate) fn kind(&self) -> Kind {
        KINDS[(self.tag & 7) as usize]
    }

    /// `cancelled_by`/`from`: 1 = tutor; `status`: 1 = failed; `sentiment`: 0 negative, 1 neutral, 2 positive.
    pub(crate) fn flag(&self) -> u32 {
        (self.tag >> FLAG_SHIFT) & 3
    }

    pub(crate) fn tutor(&self) -> u32 {
        self.tag >> TUTOR_SHIFT
    }

    pub(crate) fn ever(&self) -> Option<Ever> {
        match (self.kind(), self.flag()) {
            (Kind::SessionCompleted, _) => Some(Ever::Session),
            (Kind::Login, _) => Some(Ever::Login),
            (Kind::Payment, 0) => Some(Ever::PaymentSucceeded),
            (Kind::IbCall, _) => Some(Ever::IbCall),
            _ => None,
        }
    }
}

/// The hash that stands for an `event_id`: stable across runs and machines.
pub(crate) fn id_hash(event_id: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(event_id.as_bytes())
}

/// An event in held form, before it has a place (its ts is absolute).
#[derive(Clone, Copy, PartialEq, Debug)]
pub(crate) struct Encoded {
    pub(crate) id: u64,
    pub(crate) ts: i64,
    pub(crate) value: f64,
    pub(crate) tag: u32,
}

impl Encoded {
    pub(crate) fn new(event: &Event<'_>, tutors: &TutorIds) -> Encoded {
        let party = |p: Party| u32::from(p == Party::Tutor);
        let (kind, flag, tutor, value) = match &event.kind {
            EventKind::SessionCompleted { tutor_id, duration_min } => {
                (Kind::SessionCompleted, 0, tutors.intern(tutor_id), *duration_min)
            }
            EventKind::SessionCancelled { tutor_id, cancelled_by } => {
                (Kind::SessionCancelled, party(*cancelled_by), tutors.intern(tutor_id), 0.0)
            }
            EventKind::SessionNoShow { tutor_id } => (Kind::SessionNoShow, 0, tutors.intern(tutor_id), 0.0),
            EventKind::SessionRated { tutor_id, rating } => (Kind::SessionRated, 0, tutors.intern(tutor_id), *rating),
            EventKind::Login => (Kind::Login, 0, NO_TUTOR, 0.0),
            EventKind::Payment { amount, status } => {
                (Kind::Payment, u32::from(*status == PaymentStatus::Failed), NO_TUTOR, *amount)
            }
            EventKind::IbCall { sentiment } => {
                let flag = match sentiment {
                    Sentiment::Negative => 0,
                    Sentiment::Neutral => 1,
                    Sentiment::Positive => 2,
                };
                (Kind::IbCall, flag, NO_TUTOR, 0.0)
            }
            EventKind::MessageReply { from, response_minutes, tutor_id } => {
                let tutor = tutor_id.as_deref().map_or(NO_TUTOR, |t| tutors.intern(t));
                (Kind::MessageReply, party(*from), tutor, *response_minutes)
            }
        };
        Encoded {
            id: id_hash(&event.event_id),
            ts: event.ts.0,
            value,
            tag: kind as u32 | (flag << FLAG_SHIFT) | (tutor << TUTOR_SHIFT),
        }
    }
}

/// Hashes a `u64` that is already a good hash by using it as is.
#[derive(Default)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type IdMap = HashMap<u64, u32, BuildHasherDefault<IdHasher>>;

/// A customer's held events within the horizon, ordered by (ts, id hash),
/// with an index from id to time for duplicates and retractions.
///
/// Times are kept as `u32` offsets from `base`; [`Store::rebase`] moves the
/// base forward when the clock nears the end of the `u32` range (every ~19
/// days of customer time at most, O(n) each time: amortized O(1)).
#[derive(Debug, Default)]
pub(crate) struct Store {
    base: i64,
    events: VecDeque<HeldEvent>,
    by_id: IdMap,
    /// For W_7 and W_14: how many leading events are not in the window at
    /// the customer clock (the index of the window's first event). Kept by
    /// the owner through `bounds` arguments; saves a binary search per record.
    cursors: [usize; 2],
}

impl Store {
    pub(crate) fn new(base: i64) -> Store {
        // Room for a typical month (~70 events) in the index from the start:
        // growing a hash table rehashes it, each doubling on the hot path.
        Store { base, by_id: IdMap::with_capacity_and_hasher(64, Default::default()), ..Store::default() }
    }

    pub(crate) fn len(&self) -> usize {
        self.events.len()
    }

    pub(crate) fn ts(&self, e: &HeldEvent) -> i64 {
        self.base + i64::from(e.ts_off)
    }

    pub(crate) fn get(&self, i: usize) -> &HeldEvent {
        &self.events[i]
    }

    pub(crate) fn iter(&self) -> impl DoubleEndedIterator<Item = &HeldEvent> + '_ {
        self.events.iter()
    }

    /// Index of the first event with ts > `t`.
    pub(crate) fn first_after(&self, t: i64) -> usize {
        let base = self.base;
        self.events.partition_point(|e| base + i64::from(e.ts_off) <= t)
    }

    fn offset(&self, ts: i64) -> u32 {
        debug_assert!(self.fits(ts));
        (ts - self.base) as u32
    }

    /// Whether `ts` can be stored without a rebase.
    pub(crate) fn fits(&self, ts: i64) -> bool {
        (0..=i128::from(u32::MAX)).contains(&(i128::from(ts) - i128::from(self.base)))
    }

    /// Whether an event with this id is held.
    pub(crate) fn holds(&self, id: u64) -> bool {
        self.by_id.contains_key(&id)
    }

    /// The held event with this id, if any.
    pub(crate) fn find(&self, id: u64) -> Option<HeldEvent> {
        let ts_off = *self.by_id.get(&id)?;
        let at = self.events.partition_point(|x| (x.ts_off, x.id) < (ts_off, id));
        self.events.get(at).filter(|e| e.id == id).copied()
    }

    /// Index of the first event of W_7 (`w` = 0) or W_14 (`w` = 1) at the clock.
    pub(crate) fn cursor(&self, w: usize) -> usize {
        self.cursors[w]
    }

    /// Moves a window's first-event index forward past an event that left it.
    pub(crate) fn step_cursor(&mut self, w: usize) {
        self.cursors[w] += 1;
    }

    /// Inserts an event unless its id is held (then returns false); `lower`
    /// are the lower bounds of W_7 and W_14 at the clock.
    pub(crate) fn try_insert(&mut self, e: Encoded, lower: [i64; 2]) -> bool {
        let ts_off = self.offset(e.ts);
        match self.by_id.entry(e.id) {
            std::collections::hash_map::Entry::Occupied(_) => return false,
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(ts_off);
            }
        }
        let held = HeldEvent { id: e.id, value: e.value, ts_off, tag: e.tag };
        let key = (held.ts_off, held.id);
        // Events mostly arrive in time order: append without a search.
        if self.events.back().is_none_or(|x| (x.ts_off, x.id) < key) {
            self.events.push_back(held);
        } else {
            let at = self.events.partition_point(|x| (x.ts_off, x.id) < key);
            self.events.insert(at, held);
        }
        for (cursor, bound) in self.cursors.iter_mut().zip(lower) {
            if e.ts <= bound {
                *cursor += 1;
            }
        }
        true
    }

    /// Removes the event with this id, returning it in absolute form.
    pub(crate) fn remove(&mut self, id: u64, lower: [i64; 2]) -> Option<Encoded> {
        let ts_off = self.by_id.remove(&id)?;
        let at = self.events.partition_point(|x| (x.ts_off, x.id) < (ts_off, id));
        let held = self.events.remove(at)?;
        debug_assert_eq!(held.id, id);
        let ts = self.ts(&held);
        for (cursor, bound) in self.cursors.iter_mut().zip(lower) {
            if ts <= bound {
                *cursor -= 1;
            }
        }
        Some(Encoded { id, ts, value: held.value, tag: held.tag })
    }

    /// Drops every event with ts <= `t` (past the horizon, so before both
    /// cursors), oldest first.
    pub(crate) fn prune_through(&mut self, t: i64, mut on_drop: impl FnMut(i64, &HeldEvent)) {
        while let Some(front) = self.events.front() {
            let ts = self.ts(front);
            if ts > t {
                break;
            }
            on_drop(ts, front);
            self.by_id.remove(&front.id);
            self.events.pop_front();
            self.cursors[0] -= 1;
            self.cursors[1] -= 1;
        }
    }

    /// Moves the base to `new_base` (<= every held ts).
    pub(crate) fn rebase(&mut self, new_base: i64) {
        let shift = new_base - self.base;
        debug_assert!(shift >= 0);
        for e in self.events.iter_mut() {
            e.ts_off = (i64::from(e.ts_off) - shift) as u32;
        }
        for off in self.by_id.values_mut() {
            *off = (i64::from(*off) - shift) as u32;
        }
        self.base = new_base;
    }

    /// Bytes on the heap, by capacity.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.events.capacity() * std::mem::size_of::<HeldEvent>()
            + self.by_id.capacity() * (std::mem::size_of::<(u64, u32)>() + 1)
    }

    /// The store as a snapshot keeps it. The index's capacity is what
    /// `HashMap::capacity` reports: after removals that left tombstones it is
    /// below what a fresh table of the same size reports, so a table restored
    /// with it may report a few slots more (see [`crate::snapshot`]).
    pub(crate) fn to_image(&self) -> StoreImage<'_> {
        StoreImage {
            base: self.base,
            events: Cow::Borrowed(&self.events),
            capacity: self.events.capacity() as u64,
            index_capacity: self.by_id.capacity() as u64,
        }
    }

    /// The store of a snapshot, checked: events strictly in (ts, id) order
    /// (so ids are distinct within a time) with distinct ids, each in
    /// `(horizon, clock]`. The id index is rebuilt, and the cursors are set
    /// from `lower`, the bounds of W_7 and W_14 at the clock.
    pub(crate) fn from_image(
        image: StoreImage<'_>,
        horizon: i64,
        clock: i64,
        lower: [i64; 2],
    ) -> Result<Store, String> {
        let items = image.events.into_owned();
        let capacity = crate::tutors::restored_capacity(items.len(), image.capacity)?;
        let index_capacity = crate::tutors::restored_capacity(items.len(), image.index_capacity)?;
        let mut store = Store {
            base: image.base,
            events: VecDeque::with_capacity(capacity),
            by_id: IdMap::with_capacity_and_hasher(index_capacity, Default::default()),
            cursors: [0; 2],
        };
        if !store.fits(clock) {
            return Err(format!("clock {clock} is not within 2^32 ms after the store's base {}", store.base));
        }
        for e in items {
            let ts = match store.base.checked_add(i64::from(e.ts_off)) {
                Some(ts) if ts > horizon && ts <= clock => ts,
                _ => return Err(format!("held event at offset {} outside the horizon ({horizon}, {clock}]", e.ts_off)),
            };
            if store.events.back().is_some_and(|p| (p.ts_off, p.id) >= (e.ts_off, e.id)) {
                return Err(format!("held events out of order at {ts}"));
            }
            if store.by_id.insert(e.id, e.ts_off).is_some() {
                return Err(format!("held event id hash {:#x} appears twice", e.id));
            }
            store.events.push_back(e);
        }
        store.cursors = lower.map(|bound| store.first_after(bound));
        Ok(store)
    }
}

/// [`Store`] in a snapshot (borrowed to write, owned when read), with the
/// capacities so that a restored engine reports the same
/// [`crate::StateSize`]. The id index and the window cursors are not stored:
/// they follow from the events and the clock.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct StoreImage<'a> {
    base: i64,
    events: Cow<'a, VecDeque<HeldEvent>>,
    capacity: u64,
    index_capacity: u64,
}
