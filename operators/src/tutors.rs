//! Tutor ids and the per-customer tutor state behind features 38–46.
//!
//! Tutor ids are interned once for all customers (a global number); each
//! customer also numbers the tutors of its held events locally (0, 1, 2, ...
//! in a small table that holds their W_30/W_7 statistics), so a held event
//! names its tutor in 8 bits.

use lasso::{Key, Spur, ThreadedRodeo};
use serde::{Deserialize, Serialize};

use crate::held::NO_TUTOR;

/// Interned tutor ids, shared by all customers (tutors serve many students).
/// Hashed with aHash: the default SipHash was a tenth of a record's work.
#[derive(Debug)]
pub(crate) struct TutorIds(ThreadedRodeo<Spur, ahash::RandomState>);

impl Default for TutorIds {
    fn default() -> Self {
        TutorIds(ThreadedRodeo::with_hasher(ahash::RandomState::new()))
    }
}

impl TutorIds {
    /// The small number standing for a tutor id (27 bits, see `HeldEvent`).
    pub(crate) fn intern(&self, tutor_id: &str) -> u32 {
        let key = self.0.get_or_intern(tutor_id).into_usize();
        // 134 million distinct tutors would be needed to reach the sentinel.
        assert!(key < NO_TUTOR as usize, "more than 2^27 - 1 distinct tutor ids");
        key as u32
    }

    pub(crate) fn name(&self, tutor: u32) -> &str {
        Spur::try_from_usize(tutor as usize).map_or("", |k| self.0.resolve(&k))
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.0.len() * 48
    }

    /// Every interned id, in number order (the `i`-th has number `i`).
    pub(crate) fn names(&self) -> Result<Vec<&str>, String> {
        (0..self.0.len())
            .map(|i| {
                Spur::try_from_usize(i)
                    .and_then(|k| self.0.try_resolve(&k))
                    .ok_or_else(|| format!("tutor number {i} has no id (interned concurrently?)"))
            })
            .collect()
    }

    /// Interns `tutor_id` as the next number, as a snapshot lists them; an id
    /// listed twice (which would break the numbering) is an error.
    pub(crate) fn restore_next(&self, tutor_id: &str) -> Result<(), String> {
        let expected = self.0.len();
        if expected >= NO_TUTOR as usize {
            return Err("more than 2^27 - 1 distinct tutor ids".to_string());
        }
        match self.0.get_or_intern(tutor_id).into_usize() {
            key if key == expected => Ok(()),
            key => Err(format!("tutor id {tutor_id:?} is listed twice (numbers {key} and {expected})")),
        }
    }

    /// Whether `tutor` is an interned number or the "no tutor" value.
    pub(crate) fn knows(&self, tutor: u32) -> bool {
        tutor == NO_TUTOR || (tutor as usize) < self.0.len()
    }
}

/// One tutor of a customer's held events (a slot of [`TutorStats`]): its
/// share of the W_30 (and W_7) sessions and ratings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct TutorStat {
    /// Global tutor number; [`FREE`] for a free slot.
    pub(crate) tutor: u32,
    /// Held events naming this tutor (the slot is freed at 0).
    pub(crate) refs: u32,
    /// `session_completed` with this tutor in W_30 / W_7.
    pub(crate) sessions_30: u32,
    pub(crate) sessions_7: u32,
    /// ts of this tutor's latest session in W_30 (meaningful while `sessions_30 > 0`).
    pub(crate) latest_30: i64,
    /// `session_rated` with this tutor in W_30, and their sum in thousandths
    /// (see [`crate::exact`]).
    pub(crate) ratings_30: u32,
    pub(crate) rating_sum_30: i64,
}

/// A free slot's tutor number.
pub(crate) const FREE: u32 = u32::MAX;

/// A customer's local tutor table: slot `i` is local tutor number `i`, held
/// while some held event names the tutor. A handful, so a small vector
/// searched linearly.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct TutorStats(pub(crate) Vec<TutorStat>);

impl TutorStats {
    /// The local number of a global tutor number, taking a reference (a new
    /// slot, or a freed one, for a tutor not yet in the table).
    pub(crate) fn acquire(&mut self, tutor: u32) -> u32 {
        let at = match self.0.iter().position(|s| s.tutor == tutor) {
            Some(i) => i,
            None => match self.0.iter().position(|s| s.tutor == FREE) {
                Some(i) => {
                    self.0[i].tutor = tutor;
                    i
                }
                None => {
                    // A handful per customer: no room to spare.
                    self.0.reserve_exact(1);
                    self.0.push(TutorStat { tutor, ..TutorStat::default() });
                    self.0.len() - 1
                }
            },
        };
        self.0[at].refs += 1;
        at as u32
    }

    /// Drops a reference to local tutor `local`; the slot is freed at none
    /// (its statistics are all zero by then: they count held events).
    pub(crate) fn release(&mut self, local: u32) {
        let slot = &mut self.0[local as usize];
        slot.refs -= 1;
        if slot.refs == 0 {
            *slot = TutorStat { tutor: FREE, ..TutorStat::default() };
            while self.0.last().is_some_and(|s| s.tutor == FREE) {
                self.0.pop();
            }
        }
    }

    pub(crate) fn stat(&mut self, local: u32) -> &mut TutorStat {
        &mut self.0[local as usize]
    }

    /// The global number of local tutor `local`.
    pub(crate) fn global(&self, local: u32) -> u32 {
        self.0[local as usize].tutor
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.0.capacity() * std::mem::size_of::<TutorStat>()
    }
}

/// The primary tutor's slot and stats: most sessions in W_30; ties to the
/// later latest session, then to the smaller tutor id (byte order).
pub(crate) fn primary<'a>(tutors: &'a [TutorStat], ids: &TutorIds) -> Option<(usize, &'a TutorStat)> {
    let mut best: Option<(usize, &TutorStat)> = None;
    for (i, s) in tutors.iter().enumerate().filter(|(_, s)| s.sessions_30 > 0) {
        best = Some(match best {
            None => (i, s),
            Some((j, b)) => {
                let by_count = (s.sessions_30, s.latest_30).cmp(&(b.sessions_30, b.latest_30));
                match by_count {
                    std::cmp::Ordering::Greater => (i, s),
                    std::cmp::Ordering::Less => (j, b),
                    std::cmp::Ordering::Equal if ids.name(s.tutor).as_bytes() < ids.name(b.tutor).as_bytes() => (i, s),
                    std::cmp::Ordering::Equal => (j, b),
                }
            }
        });
    }
    best
}

/// Snapshots: the capacity too, so a restored engine reports the same
/// [`crate::StateSize`] and grows the vector at the same moments.
impl Serialize for TutorStats {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (self.0.capacity() as u64, &self.0).serialize(s)
    }
}

impl<'de> Deserialize<'de> for TutorStats {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (capacity, stats) = <(u64, Vec<TutorStat>)>::deserialize(d)?;
        let mut v = Vec::with_capacity(restored_capacity(stats.len(), capacity).map_err(serde::de::Error::custom)?);
        v.extend(stats);
        Ok(TutorStats(v))
    }
}

/// The switch count of feature 42 and the latest switch's time (feature 46).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Switches {
    pub(crate) count: u32,
    pub(crate) latest: Option<i64>,
}

/// The largest container capacity a snapshot may ask for: far above any real
/// one (16 million events of one customer within 30 days), low enough that a
/// nonsensical value cannot abort the process on allocation.
const MAX_RESTORED_CAPACITY: u64 = 1 << 24;

/// A container capacity read from a snapshot, checked to hold `len` items.
pub(crate) fn restored_capacity(len: usize, capacity: u64) -> Result<usize, String> {
    if capacity < len as u64 || capacity > MAX_RESTORED_CAPACITY {
        return Err(format!("capacity {capacity} for {len} items"));
    }
    Ok(capacity as usize)
}
