//! The compact form of a held event, and a customer's store of them.
//!
//! A held event takes 16 bytes plus a one-byte fingerprint, with no other
//! per-event structure for a customer of ordinary size:
//!
//! * [`HeldEvent`]: the 64-bit hash of its `event_id`, its time as an offset
//!   from the store's base, and a tag packing its type, its enum attribute,
//!   the customer's *local* number for its tutor (a customer deals with a
//!   handful of tutors, so 8 bits; see [`crate::tutors::TutorStats`]) and its
//!   number as a decimal code: `m / 10^k` with `m < 2^16`, `k <= 3`, which is
//!   exactly the `f64` the record carried (`60`, `4.5`, `149`, `18.3` all
//!   are). An event whose number has no such code, or whose tutor's local
//!   number does not fit, keeps both in a *spill* list instead (rare:
//!   0.1% of the synthetic marketplace's events; the property tests' random
//!   floats spill all the time).
//! * Duplicates and retractions find an event by its id: the fingerprints
//!   (the hash's top byte, one per event, contiguous) are scanned 8 at a time
//!   and the few candidates checked. A linear scan is cheaper than any hash
//!   table at a month's ~70 events and costs no memory; a store above
//!   [`INDEX_ABOVE`] events (a heavy account) also gets an id index, so its
//!   records stay O(1) too.
//! * Sessions (`session_completed`) are ordered as feature 42 orders them, by
//!   (ts, event_id); the store keeps every event in ts order and, within one
//!   ts, the sessions in id order, so "the previous session" is simply the
//!   previous session in the store. The full ids of the held sessions are
//!   kept (in store order, in one byte buffer) only to place a session among
//!   others with the very same ts.
//! * The buffers grow by an eighth (not double) and are compacted rather
//!   than grown when events leave at the front, so their slack stays near
//!   12% of the events plus a few slots; an amortized O(1) cost per event.

use std::borrow::Cow;
use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use pulse_schemas::{Event, EventKind, Party, PaymentStatus, Sentiment, DAY_MS};

use crate::exact::{code_value, decimal_code, Amount};
use crate::tutors::TutorIds;

/// The contract's 30-day horizon: the longest window, and how far back a
/// record may still add or retract.
pub(crate) const HORIZON_MS: i64 = 30 * DAY_MS;

/// Above this many held events a store keeps an id index (and drops it again
/// below a quarter of it): a fingerprint scan of thousands of events per
/// record would make a heavy account's replay quadratic.
pub(crate) const INDEX_ABOVE: usize = 512;

/// Event types, as the 3 low bits of a tag.
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

impl Kind {
    /// The largest flag value the kind uses (see [`Ev::flag`]).
    fn max_flag(self) -> u32 {
        match self {
            Kind::SessionCancelled | Kind::Payment | Kind::MessageReply => 1,
            Kind::IbCall => 2,
            _ => 0,
        }
    }

    /// Whether events of this kind carry a number.
    fn has_value(self) -> bool {
        matches!(self, Kind::SessionCompleted | Kind::SessionRated | Kind::Payment | Kind::MessageReply)
    }

    /// Whether events of this kind name a tutor: always, never, or maybe.
    fn tutor(self) -> Option<bool> {
        match self {
            Kind::Login | Kind::Payment | Kind::IbCall => Some(false),
            Kind::MessageReply => None,
            _ => Some(true),
        }
    }
}

/// The "ever" features read the latest held ts of these four things.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Ever {
    Session = 0,
    Login = 1,
    PaymentSucceeded = 2,
    IbCall = 3,
}

fn ever(kind: Kind, flag: u32) -> Option<Ever> {
    match (kind, flag) {
        (Kind::SessionCompleted, _) => Some(Ever::Session),
        (Kind::Login, _) => Some(Ever::Login),
        (Kind::Payment, 0) => Some(Ever::PaymentSucceeded),
        (Kind::IbCall, _) => Some(Ever::IbCall),
        _ => None,
    }
}

/// Bits of [`Encoded::tag`]: kind (3), flag (2), global tutor number (27).
const FLAG_SHIFT: u32 = 3;
const TUTOR_SHIFT: u32 = 5;
/// Global tutor number meaning "no tutor" (a `message_reply` without one).
pub(crate) const NO_TUTOR: u32 = (1 << 27) - 1;
/// Local tutor number meaning "no tutor".
pub(crate) const NO_LOCAL: u32 = u32::MAX;

/// The hash that stands for an `event_id`: stable across runs and machines.
pub(crate) fn id_hash(event_id: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(event_id.as_bytes())
}

/// An event as a record carries it: absolute ts, the `f64` number, the
/// tutor's global number. Two `Encoded` are equal exactly when the events
/// are (id and every contract attribute; up to a 64-bit hash collision of
/// ids within one customer's 30 days: about 1 in 10^13 for a thousand).
#[derive(Clone, Copy, PartialEq, Debug)]
pub(crate) struct Encoded {
    pub(crate) id: u64,
    pub(crate) ts: i64,
    /// `duration_min`, `rating`, `amount` or `response_minutes`; 0 otherwise.
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

    /// An event from its parts (`tutor`: global number or [`NO_TUTOR`]).
    pub(crate) fn from_parts(id: u64, ts: i64, kind: Kind, flag: u32, tutor: u32, value: f64) -> Encoded {
        Encoded { id, ts, value, tag: kind as u32 | (flag << FLAG_SHIFT) | (tutor << TUTOR_SHIFT) }
    }

    pub(crate) fn kind(&self) -> Kind {
        KINDS[(self.tag & 7) as usize]
    }

    pub(crate) fn flag(&self) -> u32 {
        (self.tag >> FLAG_SHIFT) & 3
    }

    /// The tutor's global number, or [`NO_TUTOR`].
    pub(crate) fn tutor(&self) -> u32 {
        self.tag >> TUTOR_SHIFT
    }
}

/// What the aggregates read of a held event: its type, flag, the customer's
/// local number for its tutor ([`NO_LOCAL`] for none) and its number.
#[derive(Clone, Copy, PartialEq, Debug)]
pub(crate) struct Ev {
    pub(crate) kind: Kind,
    /// `cancelled_by`/`from`: 1 = tutor; `status`: 1 = failed; `sentiment`: 0 negative, 1 neutral, 2 positive.
    pub(crate) flag: u32,
    pub(crate) tutor: u32,
    /// The number, ready for the sums.
    pub(crate) amount: Amount,
}

impl Ev {
    fn new(kind: Kind, flag: u32, tutor: u32, value: f64) -> Ev {
        let amount = if kind.has_value() { Amount::of(value) } else { Amount::ZERO };
        Ev { kind, flag, tutor, amount }
    }

    pub(crate) fn value(&self) -> f64 {
        self.amount.value()
    }

    pub(crate) fn ever(&self) -> Option<Ever> {
        ever(self.kind, self.flag)
    }
}

/// Bits of [`HeldEvent::tag`]: kind (3), flag (2), spilled (1), local tutor
/// number (8), value code (18).
const SPILLED: u32 = 1 << 5;
const LOCAL_SHIFT: u32 = 6;
/// The local tutor field's "none" (and the limit: local numbers 0..=254 fit).
const LOCAL_NONE: u32 = 0xff;
const VALUE_SHIFT: u32 = 14;

/// One held event in 16 bytes: id hash, time offset, tag (see the module docs).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct HeldEvent {
    pub(crate) id: u64,
    pub(crate) ts_off: u32,
    tag: u32,
}

const _: () = assert!(std::mem::size_of::<HeldEvent>() == 16);

/// Snapshots: the id hash as 8 fixed bytes (a varint of a random 64-bit
/// value would take 9 or 10), then the offset and tag.
impl Serialize for HeldEvent {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (self.id.to_le_bytes(), self.ts_off, self.tag).serialize(s)
    }
}

impl<'de> Deserialize<'de> for HeldEvent {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (id, ts_off, tag) = <([u8; 8], u32, u32)>::deserialize(d)?;
        Ok(HeldEvent { id: u64::from_le_bytes(id), ts_off, tag })
    }
}

impl HeldEvent {
    pub(crate) fn kind(&self) -> Kind {
        KINDS[(self.tag & 7) as usize]
    }

    pub(crate) fn is_session(&self) -> bool {
        self.tag & 7 == Kind::SessionCompleted as u32
    }

    fn flag(&self) -> u32 {
        (self.tag >> FLAG_SHIFT) & 3
    }

    fn spilled(&self) -> bool {
        self.tag & SPILLED != 0
    }

    pub(crate) fn ever(&self) -> Option<Ever> {
        ever(self.kind(), self.flag())
    }

    /// The packed form of an event at `ts_off`, and its spill if its number
    /// or tutor does not fit the tag.
    fn pack(e: &NewEvent, ts_off: u32) -> (HeldEvent, Option<Spill>) {
        let head = e.kind as u32 | (e.flag << FLAG_SHIFT);
        let local = if e.tutor == NO_LOCAL { Some(LOCAL_NONE) } else { (e.tutor < LOCAL_NONE).then_some(e.tutor) };
        match (local, e.code) {
            (Some(local), Some(code)) => {
                (HeldEvent { id: e.id, ts_off, tag: head | (local << LOCAL_SHIFT) | (code << VALUE_SHIFT) }, None)
            }
            _ => (
                HeldEvent { id: e.id, ts_off, tag: head | SPILLED },
                Some(Spill { id: e.id, value: e.value, ts_off, tutor: e.tutor }),
            ),
        }
    }
}

/// The number and tutor of an event whose tag could not hold them.
#[derive(Clone, Copy, PartialEq, Debug, Serialize, Deserialize)]
pub(crate) struct Spill {
    id: u64,
    value: f64,
    ts_off: u32,
    /// Local tutor number, or [`NO_LOCAL`].
    tutor: u32,
}

impl Spill {
    fn key(&self) -> (u32, u64) {
        (self.ts_off, self.id)
    }
}

/// The spills of a store.
#[derive(Debug, Default)]
struct Spills(VecDeque<Spill>);

impl std::ops::Deref for Spills {
    type Target = VecDeque<Spill>;
    fn deref(&self) -> &VecDeque<Spill> {
        &self.0
    }
}

impl std::ops::DerefMut for Spills {
    fn deref_mut(&mut self) -> &mut VecDeque<Spill> {
        &mut self.0
    }
}

/// An event to add, with the customer's local number for its tutor.
#[derive(Clone, Copy, Debug)]
pub(crate) struct NewEvent {
    id: u64,
    ts: i64,
    kind: Kind,
    flag: u32,
    tutor: u32,
    value: f64,
    /// The number's decimal code (0 for a kind without one), if it has one.
    code: Option<u32>,
}

impl NewEvent {
    pub(crate) fn new(e: &Encoded, tutor: u32) -> NewEvent {
        let kind = e.kind();
        let code = if kind.has_value() { decimal_code(e.value) } else { Some(0) };
        NewEvent { id: e.id, ts: e.ts, kind, flag: e.flag(), tutor, value: e.value, code }
    }

    /// What the aggregates read of it.
    pub(crate) fn ev(&self) -> Ev {
        let amount = match self.code {
            Some(code) => Amount::from_code(code),
            None => Amount::of(self.value),
        };
        Ev { kind: self.kind, flag: self.flag, tutor: self.tutor, amount }
    }
}

/// A removed event.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Removed {
    pub(crate) ts: i64,
    pub(crate) ev: Ev,
}

fn fingerprint(id: u64) -> u8 {
    (id >> 56) as u8
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The first position in `fps` whose fingerprint is `fp` and that `check`
/// accepts (the caller compares the full id). Eight fingerprints a step,
/// in a `u64`.
fn first_match(fps: &[u8], fp: u8, mut check: impl FnMut(usize) -> bool) -> Option<usize> {
    let pattern = ONES * u64::from(fp);
    let mut scan = |word: u64, valid: u64, at: usize| {
        let x = word ^ pattern;
        // A zero byte of `x` is a match; the classic test flags every zero
        // byte (and maybe a byte above one, which the check rejects).
        let mut hits = x.wrapping_sub(ONES) & !x & HIGHS & valid;
        while hits != 0 {
            let i = at + (hits.trailing_zeros() / 8) as usize;
            if check(i) {
                return Some(i);
            }
            hits &= hits - 1;
        }
        None
    };
    let mut chunks = fps.chunks_exact(8);
    let mut at = 0;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        if let Some(i) = scan(u64::from_le_bytes(word), u64::MAX, at) {
            return Some(i);
        }
        at += 8;
    }
    // The last few, in the low bytes; the rest is masked off.
    let rest = chunks.remainder();
    let word = rest.iter().enumerate().fold(0u64, |w, (i, &b)| w | (u64::from(b) << (8 * i)));
    scan(word, !(u64::MAX << (8 * rest.len())), at)
}

/// An open-addressing id → time offset table (linear probing, deletion by
/// backward shift, so its size depends only on what it holds and when it
/// grew: a restored table is the same size).
#[derive(Debug, Clone)]
struct IdIndex {
    ids: Vec<u64>,
    /// [`EMPTY`] for a free slot.
    offs: Vec<u32>,
    len: usize,
}

/// A free slot of [`IdIndex`] (no held offset reaches it: see [`MAX_OFFSET`]).
const EMPTY: u32 = u32::MAX;
/// The largest time offset a store holds.
const MAX_OFFSET: u32 = u32::MAX - 1;

impl IdIndex {
    fn with_slots(slots: usize) -> IdIndex {
        debug_assert!(slots.is_power_of_two());
        IdIndex { ids: vec![0; slots], offs: vec![EMPTY; slots], len: 0 }
    }

    fn slots(&self) -> usize {
        self.ids.len()
    }

    fn home(&self, id: u64) -> usize {
        id as usize & (self.slots() - 1)
    }

    fn find(&self, id: u64) -> Result<usize, usize> {
        let mask = self.slots() - 1;
        let mut i = self.home(id);
        loop {
            if self.offs[i] == EMPTY {
                return Err(i);
            }
            if self.ids[i] == id {
                return Ok(i);
            }
            i = (i + 1) & mask;
        }
    }

    fn get(&self, id: u64) -> Option<u32> {
        self.find(id).ok().map(|i| self.offs[i])
    }

    fn insert(&mut self, id: u64, off: u32) {
        if (self.len + 1) * 8 > self.slots() * 7 {
            let mut bigger = IdIndex::with_slots(self.slots() * 2);
            for (&id, &off) in self.ids.iter().zip(&self.offs).filter(|(_, &o)| o != EMPTY) {
                bigger.insert(id, off);
            }
            *self = bigger;
        }
        match self.find(id) {
            Ok(i) => self.offs[i] = off,
            Err(i) => {
                self.ids[i] = id;
                self.offs[i] = off;
                self.len += 1;
            }
        }
    }

    fn remove(&mut self, id: u64) {
        let Ok(mut hole) = self.find(id) else { return };
        let mask = self.slots() - 1;
        let mut j = hole;
        loop {
            j = (j + 1) & mask;
            if self.offs[j] == EMPTY {
                break;
            }
            // Move j into the hole unless its home lies cyclically in (hole, j].
            let home = self.home(self.ids[j]);
            let stays = if hole <= j { hole < home && home <= j } else { hole < home || home <= j };
            if !stays {
                self.ids[hole] = self.ids[j];
                self.offs[hole] = self.offs[j];
                hole = j;
            }
        }
        self.offs[hole] = EMPTY;
        self.ids[hole] = 0;
        self.len -= 1;
    }

    fn shift(&mut self, by: u32) {
        for off in self.offs.iter_mut().filter(|o| **o != EMPTY) {
            *off -= by;
        }
    }

    fn heap_bytes(&self) -> usize {
        std::mem::size_of::<IdIndex>() + self.slots() * (8 + 4)
    }
}

/// The ids of the held sessions, in store order, in one byte buffer: each is
/// its length (one byte; 255 then 4 bytes for a longer one) and its bytes.
#[derive(Debug, Default)]
struct SessionIds {
    bytes: Vec<u8>,
    /// Where the first live entry starts (the front is dropped by moving it).
    head: usize,
    count: usize,
}

/// Marks a length that does not fit one byte.
const LONG: u8 = 0xff;

impl SessionIds {
    /// The header length and id length of the entry at `at`.
    fn entry(&self, at: usize) -> (usize, usize) {
        match self.bytes[at] {
            LONG => {
                let mut len = [0u8; 4];
                len.copy_from_slice(&self.bytes[at + 1..at + 5]);
                (5, u32::from_le_bytes(len) as usize)
            }
            n => (1, usize::from(n)),
        }
    }

    fn offset_of(&self, k: usize) -> usize {
        let mut at = self.head;
        for _ in 0..k {
            let (h, n) = self.entry(at);
            at += h + n;
        }
        at
    }

    fn at(&self, at: usize) -> (&[u8], usize) {
        let (h, n) = self.entry(at);
        (&self.bytes[at + h..at + h + n], at + h + n)
    }

    /// The length header of an entry: its bytes and how many are used.
    fn header(id: &[u8]) -> ([u8; 5], usize) {
        match u8::try_from(id.len()) {
            Ok(n) if n != LONG => ([n, 0, 0, 0, 0], 1),
            _ => {
                let [a, b, c, d] = (id.len() as u32).to_le_bytes();
                ([LONG, a, b, c, d], 5)
            }
        }
    }

    /// Bytes an entry takes.
    fn entry_size(id: &[u8]) -> usize {
        SessionIds::header(id).1 + id.len()
    }

    fn push_entry(bytes: &mut Vec<u8>, id: &[u8]) {
        let (header, h) = SessionIds::header(id);
        bytes.extend_from_slice(&header[..h]);
        bytes.extend_from_slice(id);
    }

    /// Room for `extra` more bytes: compacts when enough has left the front,
    /// else grows by an eighth (and a little).
    fn ensure(&mut self, extra: usize) {
        if self.bytes.capacity() - self.bytes.len() >= extra {
            return;
        }
        let live = self.bytes.len() - self.head;
        let slack = live / 16 + 16;
        if self.head >= extra + slack / 2 {
            self.bytes.drain(..self.head);
        } else {
            let mut bytes = Vec::with_capacity(live + extra + slack);
            bytes.extend_from_slice(&self.bytes[self.head..]);
            self.bytes = bytes;
        }
        self.head = 0;
    }

    fn insert(&mut self, k: usize, id: &[u8]) {
        let size = SessionIds::entry_size(id);
        self.ensure(size);
        if k == self.count {
            SessionIds::push_entry(&mut self.bytes, id);
        } else {
            // Append, then rotate it into place.
            let at = self.offset_of(k);
            SessionIds::push_entry(&mut self.bytes, id);
            self.bytes[at..].rotate_right(size);
        }
        self.count += 1;
    }

    fn remove(&mut self, k: usize) {
        let at = self.offset_of(k);
        let (h, n) = self.entry(at);
        if k == 0 {
            self.head += h + n;
        } else {
            self.bytes.drain(at..at + h + n);
        }
        self.count -= 1;
        if self.count == 0 {
            self.bytes.clear();
            self.head = 0;
        }
    }

    /// Gives memory back once the spare room exceeds a quarter of the ids
    /// (and a little), as [`Store::settle`] does.
    fn settle(&mut self) {
        let live = self.bytes.len() - self.head;
        if self.bytes.capacity() > live + live / 8 + 32 {
            let mut bytes = Vec::with_capacity(if live == 0 { 0 } else { live + live / 16 + 16 });
            bytes.extend_from_slice(&self.bytes[self.head..]);
            self.bytes = bytes;
            self.head = 0;
        }
    }

    fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let mut at = self.head;
        (0..self.count).map(move |_| {
            let (id, next) = self.at(at);
            at = next;
            id
        })
    }

    fn heap_bytes(&self) -> usize {
        self.bytes.capacity()
    }
}

/// A customer's held events within the horizon, in ts order (sessions of
/// equal ts in id order), with what finds them by id.
///
/// Times are kept as `u32` offsets from `base`; [`Store::rebase`] moves the
/// base forward when the clock nears the end of the `u32` range (every ~19
/// days of customer time at most, O(n) each time: amortized O(1)).
#[derive(Debug)]
pub(crate) struct Store {
    base: i64,
    /// The events from `head` on (those before it have left).
    events: Vec<HeldEvent>,
    /// Their fingerprints, at the same positions.
    fps: Vec<u8>,
    head: usize,
    /// For W_7 and W_14: how many leading events are not in the window at
    /// the customer clock (the index of the window's first event). Kept by
    /// the owner through `lower` arguments; saves a binary search per record.
    cursors: [usize; 2],
    /// The time offset of the event at each cursor ([`EMPTY`] past the end):
    /// moving the clock reads the events only when one leaves (those 7 and
    /// 14 days back are rarely in the cache).
    at_cursor: [u32; 2],
    session_ids: SessionIds,
    /// Sorted by (ts_off, id); `None` when empty (boxed: one pointer inline
    /// for what most customers never have).
    spills: Option<Box<Spills>>,
    index: Option<Box<IdIndex>>,
}

impl Store {
    pub(crate) fn new(base: i64) -> Store {
        Store {
            base,
            events: Vec::new(),
            fps: Vec::new(),
            head: 0,
            cursors: [0; 2],
            at_cursor: [EMPTY; 2],
            session_ids: SessionIds::default(),
            spills: None,
            index: None,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.events.len() - self.head
    }

    fn live(&self) -> &[HeldEvent] {
        &self.events[self.head..]
    }

    pub(crate) fn get(&self, i: usize) -> &HeldEvent {
        &self.events[self.head + i]
    }

    pub(crate) fn ts(&self, e: &HeldEvent) -> i64 {
        self.base + i64::from(e.ts_off)
    }

    pub(crate) fn ts_at(&self, i: usize) -> i64 {
        self.ts(self.get(i))
    }

    pub(crate) fn iter(&self) -> std::slice::Iter<'_, HeldEvent> {
        self.live().iter()
    }

    fn spill(&self, ts_off: u32, id: u64) -> Option<&Spill> {
        let spills = self.spills.as_deref()?;
        spills.binary_search_by(|s| s.key().cmp(&(ts_off, id))).ok().map(|i| &spills[i])
    }

    /// What the aggregates read of a held event.
    pub(crate) fn view(&self, e: &HeldEvent) -> Ev {
        let kind = e.kind();
        let flag = e.flag();
        if e.spilled() {
            // Every spilled event has its spill (kept together; a snapshot is
            // checked for it).
            let s = self.spill(e.ts_off, e.id).expect("a spilled event has its spill");
            Ev::new(kind, flag, s.tutor, s.value)
        } else {
            let local = (e.tag >> LOCAL_SHIFT) & LOCAL_NONE;
            let tutor = if local == LOCAL_NONE { NO_LOCAL } else { local };
            Ev { kind, flag, tutor, amount: Amount::from_code(e.tag >> VALUE_SHIFT) }
        }
    }

    /// The local tutor number of a held event.
    pub(crate) fn tutor_of(&self, e: &HeldEvent) -> u32 {
        self.view(e).tutor
    }

    /// Position of the last session before `at`.
    pub(crate) fn session_before(&self, at: usize) -> Option<usize> {
        self.live()[..at].iter().rposition(HeldEvent::is_session)
    }

    /// Position of the first session at or after `at`.
    pub(crate) fn session_from(&self, at: usize) -> Option<usize> {
        self.live()[at.min(self.len())..].iter().position(HeldEvent::is_session).map(|i| at + i)
    }

    /// Index of the first event with ts > `t`.
    pub(crate) fn first_after(&self, t: i64) -> usize {
        let base = self.base;
        self.live().partition_point(|e| base + i64::from(e.ts_off) <= t)
    }

    fn offset(&self, ts: i64) -> u32 {
        debug_assert!(self.fits(ts));
        (ts - self.base) as u32
    }

    /// Whether `ts` can be stored without a rebase.
    pub(crate) fn fits(&self, ts: i64) -> bool {
        (0..=i128::from(MAX_OFFSET)).contains(&(i128::from(ts) - i128::from(self.base)))
    }

    /// Position of the held event with this id, if any.
    pub(crate) fn position(&self, id: u64) -> Option<usize> {
        let live = self.live();
        if let Some(index) = &self.index {
            let off = index.get(id)?;
            let lo = live.partition_point(|e| e.ts_off < off);
            return live[lo..].iter().take_while(|e| e.ts_off == off).position(|e| e.id == id).map(|i| lo + i);
        }
        first_match(&self.fps[self.head..], fingerprint(id), |i| live[i].id == id)
    }

    /// Index of the first event of W_7 (`w` = 0) or W_14 (`w` = 1) at the clock.
    pub(crate) fn cursor(&self, w: usize) -> usize {
        self.cursors[w]
    }

    /// The ts of the first event of W_7 (`w` = 0) or W_14 (`w` = 1) at the
    /// clock, if the window has one.
    pub(crate) fn cursor_ts(&self, w: usize) -> Option<i64> {
        debug_assert_eq!(self.at_cursor[w], self.live().get(self.cursors[w]).map_or(EMPTY, |e| e.ts_off));
        (self.at_cursor[w] != EMPTY).then(|| self.base + i64::from(self.at_cursor[w]))
    }

    fn reload_cursor(&mut self, w: usize) {
        self.at_cursor[w] = self.live().get(self.cursors[w]).map_or(EMPTY, |e| e.ts_off);
    }

    /// Moves a window's first-event index forward past an event that left it.
    pub(crate) fn step_cursor(&mut self, w: usize) {
        self.cursors[w] += 1;
        self.reload_cursor(w);
    }

    /// Number of sessions before position `at`.
    fn sessions_before(&self, at: usize) -> usize {
        let live = self.live();
        if at <= live.len() / 2 {
            live[..at].iter().filter(|e| e.is_session()).count()
        } else {
            self.session_ids.count - live[at..].iter().filter(|e| e.is_session()).count()
        }
    }

    /// Where an event at `off` goes: after every event of its ts, or, for a
    /// session, before the first session of its ts with a larger id. Returns
    /// the position and, for a session, its number among the sessions.
    fn place(&self, off: u32, session: bool, event_id: &str) -> (usize, usize) {
        let live = self.live();
        let lo = live.partition_point(|e| e.ts_off < off);
        let hi = lo + live[lo..].partition_point(|e| e.ts_off == off);
        if !session {
            return (hi, 0);
        }
        let mut k = self.sessions_before(lo);
        let mut at = self.session_ids.offset_of(k);
        for (i, e) in live.iter().enumerate().take(hi).skip(lo) {
            if e.is_session() {
                let (id, next) = self.session_ids.at(at);
                if id > event_id.as_bytes() {
                    return (i, k);
                }
                at = next;
                k += 1;
            }
        }
        (hi, k)
    }

    /// Room for one more event at the back: the slots of events that left
    /// at the front are reused when there are a few, else the buffer grows
    /// by an eighth. (By a sixteenth, it was copied every few events while a
    /// customer's first month filled up; by an eighth, the held events cost
    /// 0.2 B more each.)
    fn make_room(&mut self) {
        if self.events.len() < self.events.capacity() {
            return;
        }
        let live = self.len();
        if 2 * self.head >= live / 16 + 4 {
            self.events.drain(..self.head);
            self.fps.drain(..self.head);
            self.head = 0;
        } else {
            self.relocate(live + live / 8 + 4);
        }
    }

    fn relocate(&mut self, capacity: usize) {
        let mut events = Vec::with_capacity(capacity);
        events.extend_from_slice(self.live());
        let mut fps = Vec::with_capacity(capacity);
        fps.extend_from_slice(&self.fps[self.head..]);
        self.events = events;
        self.fps = fps;
        self.head = 0;
    }

    /// Inserts an event whose id is not held; `lower` are the lower bounds of
    /// W_7 and W_14 at the clock. Returns its position.
    pub(crate) fn insert(&mut self, e: &NewEvent, event_id: &str, lower: [i64; 2]) -> usize {
        let off = self.offset(e.ts);
        let (held, spill) = HeldEvent::pack(e, off);
        let session = e.kind == Kind::SessionCompleted;
        let len = self.len();
        // Events mostly arrive in time order: append without a search.
        let appends = self.live().last().is_none_or(|last| last.ts_off < off || (last.ts_off == off && !session));
        let (at, k) = if appends { (len, self.session_ids.count) } else { self.place(off, session, event_id) };
        if session {
            self.session_ids.insert(k, event_id.as_bytes());
        }
        self.make_room();
        if at == len {
            self.events.push(held);
            self.fps.push(fingerprint(e.id));
        } else {
            self.events.insert(self.head + at, held);
            self.fps.insert(self.head + at, fingerprint(e.id));
        }
        for (w, bound) in lower.into_iter().enumerate() {
            if e.ts <= bound {
                self.cursors[w] += 1;
            } else if at == self.cursors[w] {
                // The window's new first event.
                self.at_cursor[w] = off;
            }
        }
        if let Some(spill) = spill {
            let spills = self.spills.get_or_insert_with(Default::default);
            let i = spills.partition_point(|s| s.key() < spill.key());
            spills.insert(i, spill);
        }
        if let Some(index) = &mut self.index {
            index.insert(e.id, off);
        } else if self.len() > INDEX_ABOVE {
            self.build_index(None);
        }
        at
    }

    fn build_index(&mut self, slots: Option<usize>) {
        let slots = slots.unwrap_or_else(|| (self.len() * 2).next_power_of_two());
        let mut index = IdIndex::with_slots(slots);
        for e in self.live() {
            index.insert(e.id, e.ts_off);
        }
        self.index = Some(Box::new(index));
    }

    /// Removes the event at `at`; `lower` are the lower bounds of W_7 and
    /// W_14 at the clock.
    pub(crate) fn remove_at(&mut self, at: usize, lower: [i64; 2]) -> Removed {
        let held = *self.get(at);
        let ev = self.view(&held);
        let ts = self.ts(&held);
        if held.is_session() {
            self.session_ids.remove(self.sessions_before(at));
        }
        if held.spilled() {
            self.remove_spill(held.ts_off, held.id);
        }
        if let Some(index) = &mut self.index {
            index.remove(held.id);
        }
        let i = self.head + at;
        if at == 0 {
            self.head += 1;
        } else if at < self.len() / 2 {
            // Shift the shorter side: the events before it move up one.
            self.events.copy_within(self.head..i, self.head + 1);
            self.fps.copy_within(self.head..i, self.head + 1);
            self.head += 1;
        } else {
            self.events.remove(i);
            self.fps.remove(i);
        }
        for (w, bound) in lower.into_iter().enumerate() {
            if ts <= bound {
                self.cursors[w] -= 1;
            } else if at == self.cursors[w] {
                self.reload_cursor(w);
            }
        }
        Removed { ts, ev }
    }

    fn remove_spill(&mut self, ts_off: u32, id: u64) {
        if let Some(spills) = self.spills.as_deref_mut() {
            if let Ok(i) = spills.binary_search_by(|s| s.key().cmp(&(ts_off, id))) {
                spills.remove(i);
            }
            if spills.is_empty() {
                self.spills = None;
            }
        }
    }

    /// Gives memory back once the spare room exceeds an eighth of the
    /// events (and a few slots), so a customer whose activity fell does not
    /// keep its busiest month's buffer; drops the id index of a store that
    /// became small. A shrink copies the events, and needs about a tenth of
    /// them to leave since the last: amortized O(1) per event.
    pub(crate) fn settle(&mut self) {
        let live = self.len();
        if self.events.capacity() > live + live / 8 + 8 {
            self.relocate(if live == 0 { 0 } else { live + live / 16 + 4 });
        }
        self.session_ids.settle();
        if live < INDEX_ABOVE / 4 {
            self.index = None;
        }
    }

    /// Moves the base to `new_base` (<= every held ts).
    pub(crate) fn rebase(&mut self, new_base: i64) {
        let shift = new_base - self.base;
        debug_assert!(shift >= 0 && self.live().iter().all(|e| i64::from(e.ts_off) >= shift));
        let shift = shift.min(i64::from(u32::MAX)) as u32;
        let head = self.head;
        for e in self.events[head..].iter_mut() {
            e.ts_off -= shift;
        }
        if let Some(spills) = self.spills.as_deref_mut() {
            for s in spills.iter_mut() {
                s.ts_off -= shift;
            }
        }
        if let Some(index) = self.index.as_deref_mut() {
            index.shift(shift);
        }
        for off in self.at_cursor.iter_mut().filter(|o| **o != EMPTY) {
            *off -= shift;
        }
        self.base = new_base;
    }

    /// Bytes on the heap, by capacity.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.events.capacity() * std::mem::size_of::<HeldEvent>()
            + self.fps.capacity()
            + self.session_ids.heap_bytes()
            + self
                .spills
                .as_ref()
                .map_or(0, |s| std::mem::size_of::<VecDeque<Spill>>() + s.capacity() * std::mem::size_of::<Spill>())
            + self.index.as_ref().map_or(0, |i| i.heap_bytes())
    }

    /// The store as a snapshot keeps it.
    pub(crate) fn to_image(&self) -> StoreImage<'_> {
        StoreImage {
            base: self.base,
            events: Cow::Borrowed(self.live()),
            capacity: self.events.capacity() as u64,
            head: self.head as u64,
            session_ids: self.session_ids.iter().map(Cow::Borrowed).collect(),
            session_ids_capacity: self.session_ids.bytes.capacity() as u64,
            session_ids_head: self.session_ids.head as u64,
            spills: self.spills.as_deref().map(|s| s.iter().copied().collect()).unwrap_or_default(),
            spills_capacity: self.spills.as_ref().map_or(0, |s| s.capacity() as u64),
            index_slots: self.index.as_ref().map_or(0, |i| i.slots() as u64),
        }
    }

    /// The store of a snapshot, checked: every event well formed and in
    /// `(horizon, clock]`, in ts order with equal-ts sessions in id order,
    /// distinct ids, the spills exactly those of the spilled events, the
    /// session ids exactly those of the sessions (each hashes to its event's
    /// id). The cursors are set from `lower`, the bounds of W_7 and W_14 at
    /// the clock, and the id index rebuilt. Local tutor numbers are checked by
    /// the owner, which knows the tutors.
    pub(crate) fn from_image(
        image: StoreImage<'_>,
        horizon: i64,
        clock: i64,
        lower: [i64; 2],
    ) -> Result<Store, String> {
        use crate::tutors::restored_capacity;
        let items = image.events.into_owned();
        let head = usize::try_from(image.head).unwrap_or(usize::MAX);
        let capacity = restored_capacity(items.len().saturating_add(head), image.capacity)?;
        let mut store = Store::new(image.base);
        store.events = Vec::with_capacity(capacity);
        store.fps = Vec::with_capacity(capacity);
        // The free room at the front, as it was (its contents are never read).
        store.events.resize(head, HeldEvent { id: 0, ts_off: 0, tag: 0 });
        store.fps.resize(head, 0);
        store.head = head;
        if !store.fits(clock) {
            return Err(format!("clock {clock} is not within 2^32 ms after the store's base {}", store.base));
        }
        let spills: VecDeque<Spill> = image.spills.into();
        if spills.iter().zip(spills.iter().skip(1)).any(|(a, b)| a.key() >= b.key()) {
            return Err("spills out of order".to_string());
        }
        let sessions = items.iter().filter(|e| e.is_session()).count();
        if image.session_ids.len() != sessions {
            return Err(format!("{} session ids for {sessions} sessions", image.session_ids.len()));
        }
        let mut ids = image.session_ids.iter();
        let mut previous_session: Option<(u32, &[u8])> = None;
        let mut seen = std::collections::HashSet::with_capacity(items.len());
        let mut spilled = 0;
        for e in &items {
            let ts = match store.base.checked_add(i64::from(e.ts_off)) {
                Some(ts) if ts > horizon && ts <= clock && e.ts_off <= MAX_OFFSET => ts,
                _ => return Err(format!("held event at offset {} outside the horizon ({horizon}, {clock}]", e.ts_off)),
            };
            if store.live().last().is_some_and(|p| p.ts_off > e.ts_off) {
                return Err(format!("held events out of order at {ts}"));
            }
            if !seen.insert(e.id) {
                return Err(format!("held event id hash {:#x} appears twice", e.id));
            }
            let kind = e.kind();
            if e.flag() > kind.max_flag() {
                return Err(format!("held event at {ts}: flag {} for {kind:?}", e.flag()));
            }
            let (tutor, value) = if e.spilled() {
                let s = spills
                    .binary_search_by(|s| s.key().cmp(&(e.ts_off, e.id)))
                    .map(|i| spills[i])
                    .map_err(|_| format!("spilled event at {ts} has no spill"))?;
                if e.tag >> LOCAL_SHIFT != 0 {
                    return Err(format!("spilled event at {ts} has tutor or value bits"));
                }
                spilled += 1;
                (s.tutor, s.value)
            } else {
                let local = (e.tag >> LOCAL_SHIFT) & LOCAL_NONE;
                (if local == LOCAL_NONE { NO_LOCAL } else { local }, code_value(e.tag >> VALUE_SHIFT))
            };
            match kind.tutor() {
                Some(true) if tutor == NO_LOCAL => return Err(format!("{kind:?} at {ts} without a tutor")),
                Some(false) if tutor != NO_LOCAL => return Err(format!("{kind:?} at {ts} with a tutor")),
                _ => {}
            }
            if !kind.has_value() && value.to_bits() != 0 {
                return Err(format!("{kind:?} at {ts} with a number"));
            }
            if e.is_session() {
                let Some(id) = ids.next() else { return Err("fewer session ids than sessions".to_string()) };
                if id_hash_bytes(id) != e.id {
                    return Err(format!("session id {:?} is not the session at {ts}", String::from_utf8_lossy(id)));
                }
                if previous_session.is_some_and(|(off, p)| off == e.ts_off && p >= id.as_ref()) {
                    return Err(format!("sessions at {ts} out of id order"));
                }
                previous_session = Some((e.ts_off, id.as_ref()));
            }
            store.events.push(*e);
            store.fps.push(fingerprint(e.id));
        }
        if spilled != spills.len() {
            return Err(format!("{} spills for {spilled} spilled events", spills.len()));
        }
        let ids_head = usize::try_from(image.session_ids_head).unwrap_or(usize::MAX);
        let ids_bytes: usize = image.session_ids.iter().map(|id| SessionIds::entry_size(id)).sum();
        let ids_capacity = restored_capacity(ids_bytes.saturating_add(ids_head), image.session_ids_capacity)?;
        store.session_ids.bytes = Vec::with_capacity(ids_capacity);
        store.session_ids.bytes.resize(ids_head, 0);
        store.session_ids.head = ids_head;
        for id in &image.session_ids {
            SessionIds::push_entry(&mut store.session_ids.bytes, id);
            store.session_ids.count += 1;
        }
        if !spills.is_empty() {
            let mut list = VecDeque::with_capacity(restored_capacity(spills.len(), image.spills_capacity)?);
            list.extend(spills);
            store.spills = Some(Box::new(Spills(list)));
        } else if image.spills_capacity != 0 {
            return Err("spill capacity without spills".to_string());
        }
        if image.index_slots != 0 {
            let slots = restored_capacity(store.len(), image.index_slots)?;
            if !slots.is_power_of_two() || store.len() * 8 > slots * 7 {
                return Err(format!("id index of {slots} slots for {} events", store.len()));
            }
            store.build_index(Some(slots));
        }
        store.cursors = lower.map(|bound| store.first_after(bound));
        store.reload_cursor(0);
        store.reload_cursor(1);
        Ok(store)
    }
}

fn id_hash_bytes(id: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(id)
}

/// [`Store`] in a snapshot (borrowed to write, owned when read), with the
/// capacities and free room at the front so that a restored engine reports
/// the same [`crate::StateSize`] and grows at the same moments. The fingerprints,
/// the id index's contents and the window cursors are not stored: they
/// follow from the events and the clock.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct StoreImage<'a> {
    base: i64,
    events: Cow<'a, [HeldEvent]>,
    capacity: u64,
    /// Room before the first event (left by events that left at the front):
    /// restored as it was, so the buffer fills up at the same moment.
    head: u64,
    session_ids: Vec<Cow<'a, [u8]>>,
    session_ids_capacity: u64,
    session_ids_head: u64,
    spills: Vec<Spill>,
    spills_capacity: u64,
    /// 0 when the store has no id index.
    index_slots: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_scan_finds_every_position() {
        let fps: Vec<u8> = (0..37u8).map(|i| i.wrapping_mul(7) % 5).collect();
        for target in 0..5u8 {
            let expected: Vec<usize> = (0..fps.len()).filter(|&i| fps[i] == target).collect();
            for &want in &expected {
                assert_eq!(first_match(&fps, target, |i| i == want), Some(want));
            }
            assert_eq!(first_match(&fps, target, |_| false), None);
            let mut seen = Vec::new();
            first_match(&fps, target, |i| {
                seen.push(i);
                false
            });
            assert!(expected.iter().all(|i| seen.contains(i)), "{target}: {seen:?} misses some of {expected:?}");
            assert!(seen.iter().all(|&i| i < fps.len()));
        }
    }

    #[test]
    fn id_index_keeps_every_entry_through_removals() {
        let mut index = IdIndex::with_slots(8);
        let mut model = std::collections::HashMap::new();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for step in 0..5_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Few distinct homes, so probe runs are long and wrap around.
            let id = (x % 64) << 3 | (x >> 60);
            if x.is_multiple_of(3) {
                index.remove(id);
                model.remove(&id);
            } else {
                index.insert(id, (step % 1000) as u32);
                model.insert(id, (step % 1000) as u32);
            }
            assert_eq!(index.len, model.len());
        }
        for (&id, &off) in &model {
            assert_eq!(index.get(id), Some(off));
        }
        assert_eq!(index.ids.iter().zip(&index.offs).filter(|(_, &o)| o != EMPTY).count(), model.len());
    }

    #[test]
    fn session_ids_insert_remove_and_long_ids() {
        let mut ids = SessionIds::default();
        let long = vec![b'x'; 300];
        ids.insert(0, b"b");
        ids.insert(0, b"a");
        ids.insert(2, &long);
        ids.insert(2, b"c");
        assert_eq!(ids.iter().collect::<Vec<_>>(), vec![&b"a"[..], b"b", b"c", &long]);
        ids.remove(0);
        ids.remove(1);
        assert_eq!(ids.iter().collect::<Vec<_>>(), vec![&b"b"[..], &long]);
        ids.remove(1);
        ids.remove(0);
        assert_eq!(ids.count, 0);
        assert_eq!(ids.iter().count(), 0);
    }
}
