//! Running aggregates of W_7, W_14 and W_30, and the 46 features computed
//! from them (§3, §4).

use pulse_schemas::features::idx;
use pulse_schemas::{Features, DAY_MS};

use crate::exact::{Amount, ExactSum};
use crate::held::{Ev, Kind};
use crate::tutors::{Switches, TutorIds, TutorStat, TutorStats};

/// The window lengths in days, indexed by [`W7`], [`W14`], [`W30`].
pub(crate) const WINDOW_DAYS: [i64; 3] = [7, 14, 30];
pub(crate) const W7: usize = 0;
pub(crate) const W14: usize = 1;
pub(crate) const W30: usize = 2;

/// Slots of [`OddSums`]: each window sum has one, each tutor slot one more.
pub(crate) const ODD_W7: usize = 0;
pub(crate) const ODD_W14: usize = 2;
pub(crate) const ODD_W30: usize = 4;
/// Within a short window's pair: minutes, then ratings.
const MINUTES: usize = 0;
const RATINGS: usize = 1;
/// Within W_30's: minutes, ratings, paid, student replies, tutor replies.
const PAID: usize = 2;
const STUDENT_REPLIES: usize = 3;
const TUTOR_REPLIES: usize = 4;
/// Local tutor `i`'s rating sum.
const ODD_TUTORS: usize = 9;

/// What the features read of W_7 and W_14: only these, so the aggregates a
/// record touches fit in fewer cache lines (a customer's state is cold when
/// its record arrives; each line is a miss). Sums are in thousandths (see
/// [`crate::exact`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct ShortAgg {
    sessions: u32,
    ratings: u32,
    logins: u32,
    payments_ok: u32,
    payments_failed: u32,
    ib_calls: u32,
    student_cancels: u32,
    minutes: i64,
    rating_sum: i64,
}

impl ShortAgg {
    /// Adds (`add`) or removes an event; `odd` is the slot of its minutes.
    fn apply(&mut self, e: &Ev, add: bool, odd: &mut Option<Box<OddSums>>, slot: usize) {
        let v = e.amount;
        match e.kind {
            Kind::SessionCompleted => bump_sum(&mut self.sessions, &mut self.minutes, v, add, odd, slot + MINUTES),
            Kind::SessionRated => bump_sum(&mut self.ratings, &mut self.rating_sum, v, add, odd, slot + RATINGS),
            Kind::Login => bump(&mut self.logins, add),
            Kind::Payment if e.flag == 0 => bump(&mut self.payments_ok, add),
            Kind::Payment => bump(&mut self.payments_failed, add),
            Kind::IbCall => bump(&mut self.ib_calls, add),
            Kind::SessionCancelled if e.flag == 0 => bump(&mut self.student_cancels, add),
            _ => {}
        }
    }
}

/// Sums (in thousandths) and counts of W_30: everything the features read.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct WindowAgg {
    sessions: u32,
    ratings: u32,
    low_ratings: u32,
    logins: u32,
    payments_ok: u32,
    payments_failed: u32,
    ib_calls: u32,
    ib_negative: u32,
    student_cancels: u32,
    tutor_cancels: u32,
    no_shows: u32,
    student_replies: u32,
    tutor_replies: u32,
    minutes: i64,
    rating_sum: i64,
    paid: i64,
    student_reply_minutes: i64,
    tutor_reply_minutes: i64,
}

fn bump(count: &mut u32, add: bool) {
    if add {
        *count += 1;
    } else {
        *count -= 1;
    }
}

/// Counts an event in or out of a sum: thousandths in `units`, another
/// number in the customer's odd sums (slot `slot`), whose rounding residue
/// is forgotten once the count is back to zero. The odd sums go once every
/// slot is empty.
fn bump_sum(count: &mut u32, units: &mut i64, value: Amount, add: bool, odd: &mut Option<Box<OddSums>>, slot: usize) {
    bump(count, add);
    let emptied = match value {
        Amount::Units(u) if add => {
            *units += u;
            false
        }
        Amount::Units(u) => {
            *units -= u;
            *count == 0 && odd.as_deref_mut().is_some_and(|sums| sums.clear(slot))
        }
        Amount::Odd(value) => {
            let sums = odd.get_or_insert_with(Default::default);
            if add {
                sums.slot(slot).add(value);
                false
            } else {
                sums.slot(slot).sub(value);
                if *count == 0 {
                    sums.clear(slot)
                } else {
                    sums.is_empty()
                }
            }
        }
    };
    if emptied {
        *odd = None;
    }
}

impl WindowAgg {
    /// Adds (`add`) or removes an event.
    fn apply(&mut self, e: &Ev, add: bool, odd: &mut Option<Box<OddSums>>) {
        let v = e.amount;
        let slot = ODD_W30;
        match e.kind {
            Kind::SessionCompleted => bump_sum(&mut self.sessions, &mut self.minutes, v, add, odd, slot + MINUTES),
            Kind::SessionRated => {
                bump_sum(&mut self.ratings, &mut self.rating_sum, v, add, odd, slot + RATINGS);
                if v.value() <= 2.0 {
                    bump(&mut self.low_ratings, add);
                }
            }
            Kind::Login => bump(&mut self.logins, add),
            Kind::Payment if e.flag == 0 => bump_sum(&mut self.payments_ok, &mut self.paid, v, add, odd, slot + PAID),
            Kind::Payment => bump(&mut self.payments_failed, add),
            Kind::IbCall => {
                bump(&mut self.ib_calls, add);
                if e.flag == 0 {
                    bump(&mut self.ib_negative, add);
                }
            }
            Kind::SessionCancelled if e.flag == 0 => bump(&mut self.student_cancels, add),
            Kind::SessionCancelled => bump(&mut self.tutor_cancels, add),
            Kind::SessionNoShow => bump(&mut self.no_shows, add),
            Kind::MessageReply if e.flag == 0 => bump_sum(
                &mut self.student_replies,
                &mut self.student_reply_minutes,
                v,
                add,
                odd,
                slot + STUDENT_REPLIES,
            ),
            Kind::MessageReply => {
                bump_sum(&mut self.tutor_replies, &mut self.tutor_reply_minutes, v, add, odd, slot + TUTOR_REPLIES)
            }
        }
    }
}

/// The parts of a customer's sums that are numbers without a decimal code
/// (see [`crate::exact`]), by slot; kept only while there are some.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct OddSums(Vec<ExactSum>);

impl OddSums {
    fn slot(&mut self, slot: usize) -> &mut ExactSum {
        if self.0.len() <= slot {
            self.0.resize(slot + 1, ExactSum::default());
        }
        &mut self.0[slot]
    }

    /// Empties a slot; whether every slot is then empty.
    fn clear(&mut self, slot: usize) -> bool {
        if let Some(sum) = self.0.get_mut(slot) {
            *sum = ExactSum::default();
        }
        self.is_empty()
    }

    fn value(&self, slot: usize) -> f64 {
        self.0.get(slot).map_or(0.0, ExactSum::value)
    }

    /// Whether every slot is empty (never so while kept: see [`bump_sum`]).
    pub(crate) fn is_empty(&self) -> bool {
        self.0.iter().all(|s| *s == ExactSum::default())
    }

    fn heap_bytes(&self) -> usize {
        std::mem::size_of::<OddSums>() + self.0.capacity() * std::mem::size_of::<ExactSum>()
    }

    /// The exact parts, without trailing empty slots.
    fn canonical(&self) -> Vec<ExactSum> {
        let mut parts: Vec<ExactSum> = self.0.iter().map(ExactSum::exact_part).collect();
        while parts.last().is_some_and(|s| *s == ExactSum::default()) {
            parts.pop();
        }
        parts
    }
}

/// Snapshots: the capacity too, so a restored engine reports the same size.
impl serde::Serialize for OddSums {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serde::Serialize::serialize(&(self.0.capacity() as u64, &self.0), s)
    }
}

impl<'de> serde::Deserialize<'de> for OddSums {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (capacity, sums) = <(u64, Vec<ExactSum>) as serde::Deserialize>::deserialize(d)?;
        let capacity = crate::tutors::restored_capacity(sums.len(), capacity).map_err(serde::de::Error::custom)?;
        let mut v = Vec::with_capacity(capacity);
        v.extend(sums);
        Ok(OddSums(v))
    }
}

/// Everything the features read that depends on which events are in which
/// window, kept at the customer clock C, and the customer's tutor table.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Aggregates {
    pub(crate) w7: ShortAgg,
    pub(crate) w14: ShortAgg,
    pub(crate) w30: WindowAgg,
    pub(crate) tutors: TutorStats,
    /// Numbers without a decimal code, if any are in a window.
    pub(crate) odd: Option<Box<OddSums>>,
}

impl Aggregates {
    /// Adds or removes an event in window `wi`, tutor stats included (the
    /// event's tutor holds a slot of the table).
    pub(crate) fn apply(&mut self, wi: usize, ts: i64, e: &Ev, add: bool) {
        self.parts().apply(wi, ts, e, add);
    }

    pub(crate) fn parts(&mut self) -> Parts<'_> {
        Parts {
            w7: &mut self.w7,
            w14: &mut self.w14,
            w30: &mut self.w30,
            tutors: &mut self.tutors.0,
            odd: &mut self.odd,
        }
    }

    pub(crate) fn view(&self) -> AggView<'_> {
        AggView { w7: &self.w7, w14: &self.w14, w30: &self.w30, tutors: &self.tutors.0, odd: self.odd.as_deref() }
    }

    /// The heap bytes of the tutor table and odd sums.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.tutors.heap_bytes() + self.odd.as_ref().map_or(0, |o| o.heap_bytes())
    }

    /// What these aggregates say independently of the order events came and
    /// went: counts, sums (the exact parts of odd ones), each tutor slot's
    /// stats (`latest_30` only where it is meaningful). Two states that hold
    /// the same events in the same windows, with the same tutor slots, agree
    /// on it; a snapshot's aggregates are checked against ones rebuilt from
    /// its held events this way.
    pub(crate) fn canonical(&self) -> (Aggregates, Vec<ExactSum>) {
        let tutors: Vec<TutorStat> = self
            .tutors
            .0
            .iter()
            .map(|s| TutorStat { latest_30: if s.sessions_30 > 0 { s.latest_30 } else { 0 }, ..*s })
            .collect();
        let odd = self.odd.as_ref().map(|o| o.canonical()).unwrap_or_default();
        (Aggregates { w7: self.w7, w14: self.w14, w30: self.w30, tutors: TutorStats(tutors), odd: None }, odd)
    }
}

/// The parts of [`Aggregates`] an event changes, borrowed: a customer's own,
/// or a copy taken to a later time (a timer's vector), which needs no
/// allocation for up to [`LATER_TUTORS`] tutors.
#[derive(Debug)]
pub(crate) struct Parts<'a> {
    pub(crate) w7: &'a mut ShortAgg,
    pub(crate) w14: &'a mut ShortAgg,
    pub(crate) w30: &'a mut WindowAgg,
    pub(crate) tutors: &'a mut [TutorStat],
    pub(crate) odd: &'a mut Option<Box<OddSums>>,
}

/// Tutor slots a copy for a later time keeps on the stack.
pub(crate) const LATER_TUTORS: usize = 8;

impl Parts<'_> {
    /// Adds or removes an event in window `wi`, tutor stats included (the
    /// event's tutor holds a slot of the table).
    #[inline]
    pub(crate) fn apply(&mut self, wi: usize, ts: i64, e: &Ev, add: bool) {
        let odd = &mut *self.odd;
        match wi {
            W7 => self.w7.apply(e, add, odd, ODD_W7),
            W14 => self.w14.apply(e, add, odd, ODD_W14),
            _ => self.w30.apply(e, add, odd),
        }
        match (wi, e.kind) {
            (W7, Kind::SessionCompleted) => bump(&mut self.tutors[e.tutor as usize].sessions_7, add),
            (W30, Kind::SessionCompleted) => {
                let stat = &mut self.tutors[e.tutor as usize];
                bump(&mut stat.sessions_30, add);
                if add {
                    stat.latest_30 = if stat.sessions_30 == 1 { ts } else { stat.latest_30.max(ts) };
                }
            }
            (W30, Kind::SessionRated) => {
                let stat = &mut self.tutors[e.tutor as usize];
                let slot = ODD_TUTORS + e.tutor as usize;
                bump_sum(&mut stat.ratings_30, &mut stat.rating_sum_30, e.amount, add, odd, slot);
            }
            _ => {}
        }
    }

    pub(crate) fn view(&self) -> AggView<'_> {
        AggView { w7: self.w7, w14: self.w14, w30: self.w30, tutors: self.tutors, odd: self.odd.as_deref() }
    }
}

/// What [`compute`] reads of the aggregates.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AggView<'a> {
    w7: &'a ShortAgg,
    w14: &'a ShortAgg,
    w30: &'a WindowAgg,
    tutors: &'a [TutorStat],
    odd: Option<&'a OddSums>,
}

impl AggView<'_> {
    /// A sum's value: its thousandths plus its odd slot.
    fn total(&self, units: i64, slot: usize) -> f64 {
        let value = crate::exact::units_value(units);
        match self.odd {
            None => value,
            Some(odd) => value + odd.value(slot),
        }
    }
}

/// The inputs of [`compute`] beyond the window aggregates.
#[derive(Debug)]
pub(crate) struct Recency {
    /// Latest held ts of a completed session, login, succeeded payment,
    /// ib_call (`i64::MIN` for none).
    pub(crate) latest: [i64; 4],
    /// Smallest ts ever accepted.
    pub(crate) first_ts: i64,
    pub(crate) active_days_14d: u32,
    pub(crate) switches: Switches,
}

/// The contract's `days(x)`: `(T - x) / day` as a float. In 64 bits unless
/// the difference overflows them (a 128-bit conversion is a library call).
fn days(t: i64, x: i64) -> f64 {
    let ms = match t.checked_sub(x) {
        Some(d) => d as f64,
        None => (i128::from(t) - i128::from(x)) as f64,
    };
    ms / DAY_MS as f64
}

/// `num / den`, or `default` for an empty denominator. The numerator is a
/// closure so an empty window skips converting its exact sum.
fn ratio(num: impl FnOnce() -> f64, den: u32, default: f64) -> f64 {
    if den == 0 {
        default
    } else {
        num() / f64::from(den)
    }
}

/// The 46 features as of `t`, in contract order (§4), written into `f`
/// (every element).
pub(crate) fn compute(t: i64, a: AggView<'_>, r: &Recency, ids: &TutorIds, f: &mut Features) {
    let (w7, w14, w30) = (a.w7, a.w14, a.w30);
    let capped = |latest: i64, cap: f64| if latest == i64::MIN { cap } else { days(t, latest).min(cap) };
    let (s7, s14, s30) = (f64::from(w7.sessions), f64::from(w14.sessions), f64::from(w30.sessions));

    f[idx::SESSIONS_7D] = s7;
    f[idx::SESSIONS_14D] = s14;
    f[idx::SESSIONS_30D] = s30;
    f[idx::SESSIONS_PER_WEEK_30D] = s30 * 7.0 / 30.0;
    f[idx::SESSION_MINUTES_7D] = a.total(w7.minutes, ODD_W7 + MINUTES);
    f[idx::SESSION_MINUTES_30D] = a.total(w30.minutes, ODD_W30 + MINUTES);
    f[idx::AVG_SESSION_MINUTES_30D] = ratio(|| a.total(w30.minutes, ODD_W30 + MINUTES), w30.sessions, 0.0);
    // Sessions in (T-14d, T-7d] = sessions_14d - sessions_7d.
    f[idx::SESSION_VELOCITY_CHANGE] = s7 - (s14 - s7);
    f[idx::SESSION_TREND_RATIO] = (s7 + 1.0) / (s30 * 7.0 / 30.0 + 1.0);
    f[idx::DAYS_SINCE_LAST_SESSION] = capped(r.latest[0], 365.0);
    f[idx::DAYS_SINCE_LAST_LOGIN] = capped(r.latest[1], 365.0);
    f[idx::ACTIVE_DAYS_14D] = f64::from(r.active_days_14d);
    f[idx::TENURE_DAYS] = days(t, r.first_ts).min(3650.0);

    let avg7 = ratio(|| a.total(w7.rating_sum, ODD_W7 + RATINGS), w7.ratings, 0.0);
    let avg30 = ratio(|| a.total(w30.rating_sum, ODD_W30 + RATINGS), w30.ratings, 0.0);
    f[idx::AVG_RATING_7D] = avg7;
    f[idx::AVG_RATING_14D] = ratio(|| a.total(w14.rating_sum, ODD_W14 + RATINGS), w14.ratings, 0.0);
    f[idx::AVG_RATING_30D] = avg30;
    f[idx::RATING_TREND] = if w7.ratings > 0 { avg7 - avg30 } else { 0.0 };
    f[idx::RATINGS_COUNT_30D] = f64::from(w30.ratings);
    f[idx::LOW_RATINGS_30D] = f64::from(w30.low_ratings);
    f[idx::LOGINS_7D] = f64::from(w7.logins);
    f[idx::LOGINS_30D] = f64::from(w30.logins);

    let success = |ok: u32, failed: u32| ratio(|| f64::from(ok), ok + failed, 1.0);
    f[idx::PAYMENT_SUCCESS_RATE_7D] = success(w7.payments_ok, w7.payments_failed);
    f[idx::PAYMENT_SUCCESS_RATE_14D] = success(w14.payments_ok, w14.payments_failed);
    f[idx::PAYMENT_SUCCESS_RATE_30D] = success(w30.payments_ok, w30.payments_failed);
    f[idx::PAYMENT_FAILURES_30D] = f64::from(w30.payments_failed);
    f[idx::PAYMENT_AMOUNT_30D] = a.total(w30.paid, ODD_W30 + PAID);
    f[idx::DAYS_SINCE_LAST_PAYMENT] = capped(r.latest[2], 365.0);

    f[idx::IB_CALLS_7D] = f64::from(w7.ib_calls);
    f[idx::IB_CALLS_14D] = f64::from(w14.ib_calls);
    f[idx::IB_CALLS_30D] = f64::from(w30.ib_calls);
    f[idx::NEGATIVE_CALL_RATE_30D] = ratio(|| f64::from(w30.ib_negative), w30.ib_calls, 0.0);
    f[idx::DAYS_SINCE_LAST_IB_CALL] = capped(r.latest[3], 365.0);
    f[idx::STUDENT_CANCELLATIONS_7D] = f64::from(w7.student_cancels);
    f[idx::STUDENT_CANCELLATIONS_30D] = f64::from(w30.student_cancels);
    f[idx::CANCELLATION_RATE_30D] =
        ratio(|| f64::from(w30.student_cancels), w30.sessions + w30.student_cancels + w30.no_shows, 0.0);
    f[idx::NO_SHOWS_30D] = f64::from(w30.no_shows);
    f[idx::STUDENT_REPLY_MINUTES_30D] =
        ratio(|| a.total(w30.student_reply_minutes, ODD_W30 + STUDENT_REPLIES), w30.student_replies, 0.0);

    let primary = crate::tutors::primary(a.tutors, ids);
    f[idx::DISTINCT_TUTORS_30D] = a.tutors.iter().filter(|s| s.sessions_30 > 0).count() as f64;
    let (share_30, share_7, rating) = match primary {
        Some((local, p)) => (
            ratio(|| f64::from(p.sessions_30), w30.sessions, 0.0),
            ratio(|| f64::from(p.sessions_7), w7.sessions, 0.0),
            ratio(|| a.total(p.rating_sum_30, ODD_TUTORS + local), p.ratings_30, 0.0),
        ),
        None => (0.0, 0.0, 0.0),
    };
    f[idx::PRIMARY_TUTOR_SHARE_30D] = share_30;
    f[idx::PRIMARY_TUTOR_SHARE_7D] = share_7;
    f[idx::PRIMARY_TUTOR_AVG_RATING_30D] = rating;
    let switches = f64::from(r.switches.count);
    f[idx::TUTOR_SWITCHES_30D] = switches;
    f[idx::TUTOR_SWITCH_RATE_30D] = if w30.sessions >= 2 { switches / (s30 - 1.0) } else { 0.0 };
    f[idx::TUTOR_REPLY_MINUTES_30D] =
        ratio(|| a.total(w30.tutor_reply_minutes, ODD_W30 + TUTOR_REPLIES), w30.tutor_replies, 0.0);
    f[idx::TUTOR_CANCELLATIONS_30D] = f64::from(w30.tutor_cancels);
    f[idx::DAYS_SINCE_TUTOR_SWITCH] = capped(r.switches.latest.unwrap_or(i64::MIN), 30.0);
}

/// The window `W_N` at `t` is `(t - N days, t]`: its lower bound.
pub(crate) fn lower_bound(t: i64, wi: usize) -> i64 {
    t.saturating_sub(WINDOW_DAYS[wi] * DAY_MS)
}
