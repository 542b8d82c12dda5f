//! When silent customers are rescored.
//!
//! A customer's vector changes with no new event: events leave W_7, W_14 and
//! W_30, and the "days since" features grow. The policy: after every vector
//! of a customer (at `T`), a timer is due at `T + interval` (default one day);
//! each timer emits a vector as of its due time and schedules the next, until
//! the customer has been silent for `max_silence` (default 365 days: by then
//! every window is empty and every recency feature has reached its cap, so
//! further vectors would differ only in `tenure_days`).
//!
//! Why a day is enough: the model's targets are churn over 14 and 30 days and
//! sessions per week; a day moves each recency feature by 1 and lets at most a
//! day of events leave a window, which is the resolution the business acts on
//! (today's system rescans every five minutes, 288 times as often, and the
//! scores of a silent customer barely move between scans). A replay fires
//! timers on stream time (the records' `ApproximateCreationDateTime`), so it is
//! deterministic; live mode fires them on the wall clock.
//!
//! Cost: one vector per silent customer per day, O(log n) each in a heap,
//! and for an active customer an entry moved later in place about once a day
//! (see [`DueCell`]); no scan of all customers ever happens.

use std::cmp::{Ordering, Reverse};
use std::sync::atomic::{AtomicI64, Ordering::Relaxed};
use std::sync::Arc;

use dary_heap::{PeekMut, QuaternaryHeap};
use pulse_schemas::{CustomerId, DAY_MS};

/// How often silent customers are rescored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerPolicy {
    /// No timers (vectors only on records).
    Off,
    /// A vector every `interval_ms` after the last one, while the customer has
    /// been silent (no newer event) for at most `max_silence_ms`.
    Every {
        /// Time between a customer's vectors when it is silent.
        interval_ms: i64,
        /// Silence after which timers stop (until the next event).
        max_silence_ms: i64,
    },
}

impl Default for TimerPolicy {
    fn default() -> Self {
        TimerPolicy::Every { interval_ms: DAY_MS, max_silence_ms: 365 * DAY_MS }
    }
}

impl TimerPolicy {
    /// When the next timer of a customer is due, after a vector as of
    /// `last_as_of` with customer clock `clock`.
    pub fn next_due(&self, last_as_of: i64, clock: i64) -> Option<i64> {
        match *self {
            TimerPolicy::Off => None,
            TimerPolicy::Every { interval_ms, max_silence_ms } => {
                // A zero or negative interval would fire the same timer
                // forever: the engine treats it as 1 ms (the CLI refuses it).
                let due = last_as_of.checked_add(interval_ms.max(1))?;
                (due.saturating_sub(clock) <= max_silence_ms).then_some(due)
            }
        }
    }

    /// The timer state of a customer with clock `clock` whose timers up to
    /// `fired_through` have all fired, as an engine that ran without a break
    /// would hold it: `(last_as_of, next_due)`.
    ///
    /// After the vector at `clock`, timers fire at `clock + k·interval`, so
    /// the last one fired is the largest such time at or before
    /// `fired_through` (never past `clock + max_silence`, where they stop).
    /// Used when a customer's state is rebuilt from the event table
    /// (hydration): timers before `fired_through` were someone else's to fire.
    pub fn settled(&self, clock: i64, fired_through: i64) -> (i64, Option<i64>) {
        match *self {
            TimerPolicy::Off => (clock, None),
            TimerPolicy::Every { interval_ms, max_silence_ms } => {
                let step = interval_ms.max(1);
                let mut k = fired_through.saturating_sub(clock).max(0) / step;
                k = k.min(max_silence_ms.max(0) / step);
                let last = clock.saturating_add(k.saturating_mul(step));
                (last, self.next_due(last, clock))
            }
        }
    }
}

/// A customer's next due time (`i64::MAX` when its timers have stopped,
/// `i64::MIN` once its state was dropped: see [`crate::Engine::forget`]),
/// shared by its state and its timer entry: the state writes it under the
/// customer's lock, the queue reads it under its own.
///
/// An active customer's due time moves later with every vector, so its one
/// entry is usually early when it comes up (about once a day). The queue then
/// reads the cell and moves the entry to the real due time in place, without
/// finding the customer in the map: the map is only visited for a timer that
/// fires.
///
/// The cell also names its customer, so that a queue entry is just a time
/// and a pointer (16 bytes: a sift moves little, and four entries share a
/// cache line).
#[derive(Debug)]
pub(crate) struct DueCell {
    due: AtomicI64,
    customer: CustomerId,
}

const NOT_DUE: i64 = i64::MAX;
/// No due time is ever `i64::MIN` (it is a vector's time plus an interval).
const CANCELLED: i64 = i64::MIN;

impl DueCell {
    pub(crate) fn new(due: Option<i64>, customer: CustomerId) -> DueCell {
        DueCell { due: AtomicI64::new(due.unwrap_or(NOT_DUE)), customer }
    }

    pub(crate) fn set(&self, due: Option<i64>) {
        self.due.store(due.unwrap_or(NOT_DUE), Relaxed);
    }

    /// Marks the entry dead: its customer's state is gone.
    pub(crate) fn cancel(&self) {
        self.due.store(CANCELLED, Relaxed);
    }

    fn get(&self) -> Option<i64> {
        Some(self.due.load(Relaxed)).filter(|&due| due != NOT_DUE)
    }

    fn cancelled(&self) -> bool {
        self.due.load(Relaxed) == CANCELLED
    }
}

/// One timer entry, ordered by (due, customer).
#[derive(Debug)]
struct Entry {
    due: i64,
    cell: Arc<DueCell>,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Entry) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Entry {}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Entry) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Entry {
    fn cmp(&self, other: &Entry) -> Ordering {
        // The customer is read only on a tie.
        (self.due, &self.cell.customer).cmp(&(other.due, &other.cell.customer))
    }
}

/// Due timers, earliest first; ties in customer id order so a replay is
/// deterministic. One entry per customer at most, at or before its due time.
///
/// A four-ary heap (`dary_heap`): half the levels of a binary heap, and a
/// node's four 16-byte children fill one 64-byte line (when aligned), so
/// taking the first entry out touches about half the lines (+3–4% with
/// daily timers; eight children were slower).
#[derive(Debug, Default)]
pub(crate) struct TimerQueue {
    heap: QuaternaryHeap<Reverse<Entry>>,
}

impl TimerQueue {
    pub(crate) fn push(&mut self, due: i64, cell: Arc<DueCell>) {
        self.heap.push(Reverse(Entry { due, cell }));
    }

    /// Removes and returns the first entry due at or before `now` whose
    /// customer's due time (its [`DueCell`]) is the entry's, or has stopped.
    /// An entry that came up early moves to its customer's due time on the
    /// way (and comes out if that is still the first at or before `now`); a
    /// cancelled one is dropped.
    pub(crate) fn pop_next(&mut self, now: i64) -> Option<(i64, CustomerId)> {
        while let Some(mut top) = self.heap.peek_mut() {
            if top.0.due > now {
                return None;
            }
            if top.0.cell.cancelled() {
                PeekMut::pop(top);
                continue;
            }
            match top.0.cell.get() {
                Some(due) if due != top.0.due => top.0.due = due,
                _ => {
                    let Reverse(entry) = PeekMut::pop(top);
                    return Some((entry.due, entry.cell.customer.clone()));
                }
            }
        }
        None
    }

    /// The customers whose timer is due at or before `now`, in no
    /// particular order. Reads every entry: O(entries).
    pub(crate) fn due_by(&self, now: i64) -> Vec<CustomerId> {
        self.heap
            .iter()
            .filter(|Reverse(e)| !e.cell.cancelled() && e.cell.get().is_some_and(|due| due <= now))
            .map(|Reverse(e)| e.cell.customer.clone())
            .collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }

    /// Bytes of the entries (not the spare room: a restored queue grew
    /// differently).
    pub(crate) fn bytes(&self) -> usize {
        self.heap.len() * std::mem::size_of::<Entry>()
    }

    /// The earliest due time, or `i64::MAX` when empty.
    pub(crate) fn earliest(&self) -> i64 {
        self.heap.peek().map_or(i64::MAX, |Reverse(e)| e.due)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAILY: TimerPolicy = TimerPolicy::Every { interval_ms: DAY_MS, max_silence_ms: 365 * DAY_MS };

    /// The settled state is what firing every timer one by one leaves.
    fn fired_one_by_one(policy: TimerPolicy, clock: i64, through: i64) -> (i64, Option<i64>) {
        let (mut last, mut next) = (clock, policy.next_due(clock, clock));
        while let Some(due) = next.filter(|&d| d <= through) {
            last = due;
            next = policy.next_due(due, clock);
        }
        (last, next)
    }

    #[test]
    fn settled_equals_firing_each_timer() {
        let clock = 1_767_600_000_000;
        for through in [
            i64::MIN,
            clock - 1,
            clock,
            clock + DAY_MS - 1,
            clock + DAY_MS,
            clock + 3 * DAY_MS + 5,
            clock + 365 * DAY_MS,
            clock + 400 * DAY_MS,
            i64::MAX,
        ] {
            assert_eq!(DAILY.settled(clock, through), fired_one_by_one(DAILY, clock, through), "through {through}");
        }
        let hourly = TimerPolicy::Every { interval_ms: 3_600_000, max_silence_ms: 2 * DAY_MS };
        for h in 0..60 {
            let through = clock + h * 3_600_000 + 17;
            assert_eq!(hourly.settled(clock, through), fired_one_by_one(hourly, clock, through));
        }
    }

    #[test]
    fn settled_without_timers_has_none_due() {
        assert_eq!(TimerPolicy::Off.settled(5, 1_000), (5, None));
    }
}
