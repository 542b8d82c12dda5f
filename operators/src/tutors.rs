//! Tutor ids and the per-customer tutor state behind features 38–46.

use std::collections::VecDeque;

use lasso::{Key, Spur, ThreadedRodeo};

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
}

/// One tutor's share of a customer's W_30 (and W_7) sessions and ratings.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
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
}
