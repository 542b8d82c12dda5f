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

/// What the features read of W_7 and W_14: only these, so the aggregates a
/// record touches fit in fewer cache lines (a customer's state is cold when
/// its record arrives; each line is a miss).
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct ShortAgg {
    sessions: u32,
    ratings: u32,
    logins: u32,
    payments_ok: u32,
    payments_failed: u32,
    ib_calls: u32,
    student_cancels: u32,
    minutes: ExactSum,
    rating_sum: ExactSum,
}

impl ShortAgg {
    /// Adds (`add`) or removes an event.
    pub(crate) fn apply(&mut self, e: &Ev, add: bool) {
        let v = e.amount;
        match e.kind {
            Kind::SessionCompleted => bump_sum(&mut self.sessions, &mut self.minutes, v, add),
            Kind::SessionRated => bump_sum(&mut self.ratings, &mut self.rating_sum, v, add),
            Kind::Login => bump(&mut self.logins, add),
            Kind::Payment if e.flag == 0 => bump(&mut self.payments_ok, add),
            Kind::Payment => bump(&mut self.payments_failed, add),
            Kind::IbCall => bump(&mut self.ib_calls, add),
            Kind::SessionCancelled if e.flag == 0 => bump(&mut self.student_cancels, add),
            _ => {}
        }
    }

    /// These aggregates with only the exact parts of their sums.
    fn exact_part(&self) -> ShortAgg {
        ShortAgg { minutes: self.minutes.exact_part(), rating_sum: self.rating_sum.exact_part(), ..*self }
    }
}

/// Sums and counts of W_30: everything the features read.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct WindowAgg {
    sessions: u32,
    minutes: ExactSum,
    ratings: u32,
    rating_sum: ExactSum,
    low_ratings: u32,
    logins: u32,
    payments_ok: u32,
    payments_failed: u32,
    paid: ExactSum,
    ib_calls: u32,
    ib_negative: u32,
    student_cancels: u32,
    tutor_cancels: u32,
    no_shows: u32,
    student_replies: u32,
    student_reply_minutes: ExactSum,
    tutor_replies: u32,
    tutor_reply_minutes: ExactSum,
}

fn bump(count: &mut u32, add: bool) {
    if add {
        *count += 1;
    } else {
        *count -= 1;
    }
}

fn bump_sum(count: &mut u32, sum: &mut ExactSum, value: Amount, add: bool) {
    bump(count, add);
    if add {
        sum.add_amount(value);
    } else {
        sum.sub_amount(value);
        sum.settle_if_empty(*count);
    }
}

impl WindowAgg {
    /// Adds (`add`) or removes an event.
    pub(crate) fn apply(&mut self, e: &Ev, add: bool) {
        let v = e.amount;
        match e.kind {
            Kind::SessionCompleted => bump_sum(&mut self.sessions, &mut self.minutes, v, add),
            Kind::SessionRated => {
                bump_sum(&mut self.ratings, &mut self.rating_sum, v, add);
                if v.value() <= 2.0 {
                    bump(&mut self.low_ratings, add);
                }
            }
            Kind::Login => bump(&mut self.logins, add),
            Kind::Payment if e.flag == 0 => bump_sum(&mut self.payments_ok, &mut self.paid, v, add),
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
            Kind::MessageReply if e.flag == 0 => {
                bump_sum(&mut self.student_replies, &mut self.student_reply_minutes, v, add)
            }
            Kind::MessageReply => bump_sum(&mut self.tutor_replies, &mut self.tutor_reply_minutes, v, add),
        }
    }

    /// These aggregates with only the exact parts of their sums.
    fn exact_part(&self) -> WindowAgg {
        WindowAgg {
            minutes: self.minutes.exact_part(),
            rating_sum: self.rating_sum.exact_part(),
            paid: self.paid.exact_part(),
            student_reply_minutes: self.student_reply_minutes.exact_part(),
            tutor_reply_minutes: self.tutor_reply_minutes.exact_part(),
            ..*self
        }
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
}

impl Aggregates {
    /// Adds or removes an event in window `wi`, tutor stats included (the
    /// event's tutor holds a slot of the table).
    pub(crate) fn apply(&mut self, wi: usize, ts: i64, e: &Ev, add: bool) {
        match wi {
            W7 => self.w7.apply(e, add),
            W14 => self.w14.apply(e, add),
            _ => self.w30.apply(e, add),
        }
        match (wi, e.kind) {
            (W7, Kind::SessionCompleted) => bump(&mut self.tutors.stat(e.tutor).sessions_7, add),
            (W30, Kind::SessionCompleted) => {
                let stat = self.tutors.stat(e.tutor);
                bump(&mut stat.sessions_30, add);
                if add {
                    stat.latest_30 = if stat.sessions_30 == 1 { ts } else { stat.latest_30.max(ts) };
                }
            }
            (W30, Kind::SessionRated) => {
                let stat = self.tutors.stat(e.tutor);
                bump_sum(&mut stat.ratings_30, &mut stat.rating_sum_30, e.amount, add);
            }
            _ => {}
        }
    }

    /// What these aggregates say independently of the order events came and
    /// went: counts, the exact parts of sums, each tutor slot's stats
    /// (`latest_30` only where it is meaningful). Two states that hold the
    /// same events in the same windows, with the same tutor slots, agree on
    /// it; a snapshot's aggregates are checked against ones rebuilt from its
    /// held events this way.
    pub(crate) fn canonical(&self) -> Aggregates {
        let tutors: Vec<TutorStat> = self
            .tutors
            .0
            .iter()
            .map(|s| TutorStat {
                latest_30: if s.sessions_30 > 0 { s.latest_30 } else { 0 },
                rating_sum_30: s.rating_sum_30.exact_part(),
                ..*s
            })
            .collect();
        Aggregates {
            w7: self.w7.exact_part(),
            w14: self.w14.exact_part(),
            w30: self.w30.exact_part(),
            tutors: TutorStats(tutors),
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
pub(crate) fn compute(t: i64, a: &Aggregates, r: &Recency, ids: &TutorIds, f: &mut Features) {
    let (w7, w14, w30) = (&a.w7, &a.w14, &a.w30);
    let capped = |latest: i64, cap: f64| if latest == i64::MIN { cap } else { days(t, latest).min(cap) };
    let (s7, s14, s30) = (f64::from(w7.sessions), f64::from(w14.sessions), f64::from(w30.sessions));

    f[idx::SESSIONS_7D] = s7;
    f[idx::SESSIONS_14D] = s14;
    f[idx::SESSIONS_30D] = s30;
    f[idx::SESSIONS_PER_WEEK_30D] = s30 * 7.0 / 30.0;
    f[idx::SESSION_MINUTES_7D] = w7.minutes.value();
    f[idx::SESSION_MINUTES_30D] = w30.minutes.value();
    f[idx::AVG_SESSION_MINUTES_30D] = ratio(|| w30.minutes.value(), w30.sessions, 0.0);
    // Sessions in (T-14d, T-7d] = sessions_14d - sessions_7d.
    f[idx::SESSION_VELOCITY_CHANGE] = s7 - (s14 - s7);
    f[idx::SESSION_TREND_RATIO] = (s7 + 1.0) / (s30 * 7.0 / 30.0 + 1.0);
    f[idx::DAYS_SINCE_LAST_SESSION] = capped(r.latest[0], 365.0);
    f[idx::DAYS_SINCE_LAST_LOGIN] = capped(r.latest[1], 365.0);
    f[idx::ACTIVE_DAYS_14D] = f64::from(r.active_days_14d);
    f[idx::TENURE_DAYS] = days(t, r.first_ts).min(3650.0);

    let avg7 = ratio(|| w7.rating_sum.value(), w7.ratings, 0.0);
    let avg30 = ratio(|| w30.rating_sum.value(), w30.ratings, 0.0);
    f[idx::AVG_RATING_7D] = avg7;
    f[idx::AVG_RATING_14D] = ratio(|| w14.rating_sum.value(), w14.ratings, 0.0);
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
    f[idx::PAYMENT_AMOUNT_30D] = w30.paid.value();
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
    f[idx::STUDENT_REPLY_MINUTES_30D] = ratio(|| w30.student_reply_minutes.value(), w30.student_replies, 0.0);

    let primary = a.tutors.primary(ids);
    f[idx::DISTINCT_TUTORS_30D] = a.tutors.distinct() as f64;
    let (share_30, share_7, rating) = match primary {
        Some(p) => (
            ratio(|| f64::from(p.sessions_30), w30.sessions, 0.0),
            ratio(|| f64::from(p.sessions_7), w7.sessions, 0.0),
            ratio(|| p.rating_sum_30.value(), p.ratings_30, 0.0),
        ),
        None => (0.0, 0.0, 0.0),
    };
    f[idx::PRIMARY_TUTOR_SHARE_30D] = share_30;
    f[idx::PRIMARY_TUTOR_SHARE_7D] = share_7;
    f[idx::PRIMARY_TUTOR_AVG_RATING_30D] = rating;
    let switches = f64::from(r.switches.count);
    f[idx::TUTOR_SWITCHES_30D] = switches;
    f[idx::TUTOR_SWITCH_RATE_30D] = if w30.sessions >= 2 { switches / (s30 - 1.0) } else { 0.0 };
    f[idx::TUTOR_REPLY_MINUTES_30D] = ratio(|| w30.tutor_reply_minutes.value(), w30.tutor_replies, 0.0);
    f[idx::TUTOR_CANCELLATIONS_30D] = f64::from(w30.tutor_cancels);
    f[idx::DAYS_SINCE_TUTOR_SWITCH] = capped(r.switches.latest.unwrap_or(i64::MIN), 30.0);
}

/// The window `W_N` at `t` is `(t - N days, t]`: its lower bound.
pub(crate) fn lower_bound(t: i64, wi: usize) -> i64 {
    t.saturating_sub(WINDOW_DAYS[wi] * DAY_MS)
}
