//! Tutor ids and the per-customer tutor state behind features 38–46.

use std::borrow::Cow;
use std::collections::VecDeque;

use lasso::{Key, Spur, ThreadedRodeo};
use serde::{Deserialize, Serialize};

use crate::exact::ExactSum;
use crate::held::NO_TUTOR;

/// Interned tutor ids, shared by all customers (tutors serve many students).
#[derive(Debug, Default)]
pub(crate) struct TutorIds(ThreadedRodeo);

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

/// One tutor's share of a customer's W_30 (and W_7) sessions and ratings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct TutorStat {
    pub(crate) tutor: u32,
    /// `session_completed` with this tutor in W_30 / W_7.
    pub(crate) sessions_30: u32,
    pub(crate) sessions_7: u32,
    /// ts of this tutor's latest session in W_30 (meaningful while `sessions_30 > 0`).
    pub(crate) latest_30: i64,
    /// `session_rated` with this tutor in W_30.
    pub(crate) ratings_30: u32,
    pub(crate) rating_sum_30: ExactSum,
}

/// The tutors of one customer's W_30: a handful, so a small vector.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct TutorStats(pub(crate) Vec<TutorStat>);

impl TutorStats {
    pub(crate) fn entry(&mut self, tutor: u32) -> &mut TutorStat {
        match self.0.iter().position(|s| s.tutor == tutor) {
            Some(i) => &mut self.0[i],
            None => {
                self.0.push(TutorStat { tutor, ..TutorStat::default() });
                self.0.last_mut().expect("just pushed")
            }
        }
    }

    /// Drops tutors with nothing left in W_30.
    pub(crate) fn tidy(&mut self) {
        self.0.retain(|s| s.sessions_30 > 0 || s.ratings_30 > 0);
    }

    /// The primary tutor: most sessions in W_30; ties to the later latest
    /// session, then to the smaller tutor id (byte order).
    pub(crate) fn primary(&self, ids: &TutorIds) -> Option<&TutorStat> {
        let mut best: Option<&TutorStat> = None;
        for s in self.0.iter().filter(|s| s.sessions_30 > 0) {
            best = Some(match best {
                None => s,
                Some(b) => {
                    let by_count = (s.sessions_30, s.latest_30).cmp(&(b.sessions_30, b.latest_30));
                    match by_count {
                        std::cmp::Ordering::Greater => s,
                        std::cmp::Ordering::Less => b,
                        std::cmp::Ordering::Equal if ids.name(s.tutor).as_bytes() < ids.name(b.tutor).as_bytes() => s,
                        std::cmp::Ordering::Equal => b,
                    }
                }
            });
        }
        best
    }

    pub(crate) fn distinct(&self) -> usize {
        self.0.iter().filter(|s| s.sessions_30 > 0).count()
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.0.capacity() * std::mem::size_of::<TutorStat>()
    }
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

/// Heap bytes of an id (0 when it is stored inline).
fn heap_len(id: &smol_str::SmolStr) -> usize {
    if id.is_heap_allocated() {
        id.len()
    } else {
        0
    }
}

/// A completed session in W_30, in the (ts, event_id) order of feature 42.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Session {
    pub(crate) ts: i64,
    /// Inline up to 23 bytes (typical ids): no allocation per session.
    pub(crate) event_id: smol_str::SmolStr,
    pub(crate) tutor: u32,
}

impl Session {
    fn key(&self) -> (i64, &[u8]) {
        (self.ts, self.event_id.as_bytes())
    }
}

impl Serialize for Session {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (self.ts, self.event_id.as_str(), self.tutor).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Session {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (ts, event_id, tutor) = <(i64, Cow<'de, str>, u32)>::deserialize(d)?;
        Ok(Session { ts, event_id: smol_str::SmolStr::new(event_id), tutor })
    }
}

/// The sessions of W_30 at the customer clock, ordered, with the number of
/// tutor switches between neighbours and the time of the latest switch.
///
/// Appending in order (the usual case) is O(1); an out-of-order insert or a
/// retraction is O(n) in the customer's 30-day sessions (a shift and at most
/// one backward scan), never in its whole history.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    list: VecDeque<Session>,
    id_bytes: usize,
    switches: u32,
    latest_switch: Option<i64>,
}

/// The switch count and latest switch of a window, for [`crate::windows`].
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Switches {
    pub(crate) count: u32,
    pub(crate) latest: Option<i64>,
}

impl Sessions {
    pub(crate) fn switches(&self) -> Switches {
        Switches { count: self.switches, latest: self.latest_switch }
    }

    fn differs(&self, a: usize, b: usize) -> u32 {
        u32::from(self.list[a].tutor != self.list[b].tutor)
    }

    pub(crate) fn insert(&mut self, session: Session) {
        let at = if self.list.back().is_none_or(|s| s.key() < session.key()) {
            self.list.len()
        } else {
            self.list.partition_point(|s| s.key() < session.key())
        };
        let appended = at == self.list.len();
        let (ts, tutor) = (session.ts, session.tutor);
        self.id_bytes += heap_len(&session.event_id);
        self.list.insert(at, session);
        let n = self.list.len();
        if at > 0 && at + 1 < n {
            self.switches -= self.differs(at - 1, at + 1);
        }
        if at > 0 {
            self.switches += self.differs(at - 1, at);
        }
        if at + 1 < n {
            self.switches += self.differs(at, at + 1);
        }
        if appended {
            if at > 0 && self.list[at - 1].tutor != tutor {
                self.latest_switch = Some(ts);
            }
        } else {
            self.rescan_latest_switch();
        }
    }

    /// Removes the session with this id and ts; returns its tutor.
    pub(crate) fn remove(&mut self, ts: i64, event_id: &str) -> Option<u32> {
        let key = (ts, event_id.as_bytes());
        let at = self.list.partition_point(|s| s.key() < key);
        if self.list.get(at).is_none_or(|s| s.key() != key) {
            return None;
        }
        let n = self.list.len();
        if at > 0 {
            self.switches -= self.differs(at - 1, at);
        }
        if at + 1 < n {
            self.switches -= self.differs(at, at + 1);
        }
        if at > 0 && at + 1 < n {
            self.switches += self.differs(at - 1, at + 1);
        }
        let removed = self.list.remove(at).map(|s| {
            self.id_bytes -= heap_len(&s.event_id);
            s.tutor
        });
        self.rescan_latest_switch();
        removed
    }

    fn rescan_latest_switch(&mut self) {
        self.latest_switch = (1..self.list.len()).rev().find(|&i| self.differs(i - 1, i) == 1).map(|i| self.list[i].ts);
    }

    /// Switches left in W_30 once the sessions with ts <= `t` have left it
    /// (without changing anything).
    pub(crate) fn switches_after_leaving_through(&self, t: i64) -> Switches {
        let mut count = self.switches;
        for i in 0..self.list.len() {
            if self.list[i].ts > t {
                break;
            }
            if i + 1 < self.list.len() {
                count -= self.differs(i, i + 1);
            }
        }
        Switches { count, latest: if count == 0 { None } else { self.latest_switch } }
    }

    /// Drops the sessions with ts <= `t`.
    pub(crate) fn prune_through(&mut self, t: i64) {
        let left = self.switches_after_leaving_through(t);
        while let Some(s) = self.list.pop_front() {
            if s.ts > t {
                self.list.push_front(s);
                break;
            }
            self.id_bytes -= heap_len(&s.event_id);
        }
        self.switches = left.count;
        self.latest_switch = left.latest;
    }

    /// The latest session of `tutor` in the list.
    pub(crate) fn latest_of(&self, tutor: u32) -> Option<i64> {
        self.list.iter().rev().find(|s| s.tutor == tutor).map(|s| s.ts)
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.list.capacity() * std::mem::size_of::<Session>() + self.id_bytes
    }

    /// The sessions in order, for checking a snapshot against its store.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Session> + '_ {
        self.list.iter()
    }

    pub(crate) fn to_image(&self) -> SessionsImage<'_> {
        SessionsImage {
            list: Cow::Borrowed(&self.list),
            capacity: self.list.capacity() as u64,
            switches: self.switches,
            latest_switch: self.latest_switch,
        }
    }

    /// The sessions of a snapshot, checked: strictly ordered, tutors known,
    /// and the switch count and latest switch those of the list.
    pub(crate) fn from_image(image: SessionsImage<'_>, ids: &TutorIds) -> Result<Sessions, String> {
        let items = image.list.into_owned();
        let mut list = VecDeque::with_capacity(restored_capacity(items.len(), image.capacity)?);
        let mut id_bytes = 0;
        for s in items {
            if list.back().is_some_and(|p: &Session| p.key() >= s.key()) {
                return Err(format!("sessions out of order at ({}, {:?})", s.ts, s.event_id));
            }
            if !ids.knows(s.tutor) || s.tutor == NO_TUTOR {
                return Err(format!("session {:?} has an unknown tutor number {}", s.event_id, s.tutor));
            }
            id_bytes += heap_len(&s.event_id);
            list.push_back(s);
        }
        let mut sessions = Sessions { list, id_bytes, switches: 0, latest_switch: None };
        sessions.switches = (1..sessions.list.len()).map(|i| sessions.differs(i - 1, i)).sum();
        sessions.rescan_latest_switch();
        if (sessions.switches, sessions.latest_switch) != (image.switches, image.latest_switch) {
            return Err(format!(
                "tutor switches {:?} / latest {:?} do not match the sessions ({} / {:?})",
                image.switches, image.latest_switch, sessions.switches, sessions.latest_switch
            ));
        }
        Ok(sessions)
    }
}

/// [`Sessions`] in a snapshot (borrowed to write, owned when read). The
/// per-id byte count is not stored: it follows from the ids.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct SessionsImage<'a> {
    list: Cow<'a, VecDeque<Session>>,
    capacity: u64,
    switches: u32,
    latest_switch: Option<i64>,
}
