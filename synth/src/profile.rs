//! The behaviour of each segment (the §7 table, plus what §7 leaves open) and
//! how customers move between segments.
//!
//! A customer draws its own [`Params`] from its segment's ranges when it enters
//! the segment, then drifts toward them day by day, so a change of segment
//! shows in behaviour gradually, as it would in a real marketplace.

use pulse_schemas::Segment;
use rand_pcg::Pcg64Mcg;

use super::rng::{chance, uniform};

/// The four segments, in the order of every `[_; 4]` in this module.
pub const SEGMENTS: [Segment; 4] = [Segment::Thriving, Segment::Healthy, Segment::AtRisk, Segment::Churned];

/// Position of a segment in [`SEGMENTS`].
pub fn segment_index(segment: Segment) -> usize {
    match segment {
        Segment::Thriving => 0,
        Segment::Healthy => 1,
        Segment::AtRisk => 2,
        Segment::Churned => 3,
    }
}

/// Daily probability of moving from the row's segment to the column's
/// (thriving, healthy, at_risk, churned); the rest of the row is staying put.
///
/// Over 30 days that is: thriving stays ~89%; healthy stays ~76% (a fifth of
/// the movers improve, the rest decline); at_risk stays ~58% (recovering a bit
/// more often than churning); churned stays ~89% and otherwise comes back to
/// at_risk. With no new customers, the default fleet drifts slowly toward
/// churn, as a real cohort does.
pub const DAILY_TRANSITIONS: [[f64; 4]; 4] =
    [[0.0, 0.004, 0.0, 0.0], [0.003, 0.0, 0.006, 0.0], [0.0, 0.010, 0.0, 0.008], [0.0, 0.0, 0.004, 0.0]];

/// Share of the gap between current and target behaviour closed each day.
pub(crate) const DRIFT_PER_DAY: f64 = 0.2;

/// An inclusive-exclusive range a customer's parameter is drawn from.
type Range = (f64, f64);

/// What a segment's customers do. Ranges from §7 where it gives them.
#[derive(Debug)]
pub(crate) struct Profile {
    /// Completed sessions per week (§7).
    sessions_per_week: Range,
    /// Churned only: the share of customers with no sessions at all.
    silent_share: f64,
    /// Mean rating (§7), drawn a little inside the range so that a 30-day mean lands in it.
    rating: Range,
    /// Inbound support calls per 30 days (§7).
    ib_calls_per_30d: Range,
    /// Payment success probability (§7).
    payment_success: Range,
    /// Share of sessions with the primary tutor (§7).
    tutor_consistency: Range,
    /// Logins per week besides the one before a session.
    extra_logins_per_week: Range,
    /// Message replies per week besides the tutor's follow-up after a session.
    messages_per_week: Range,
    /// Median minutes the student takes to reply.
    student_reply_median_min: Range,
    /// Probability of rating a completed session.
    rating_prob: f64,
    /// Student cancellations per week.
    student_cancels_per_week: f64,
    /// Tutor cancellations per week.
    tutor_cancels_per_week: f64,
    /// No-shows per week.
    no_shows_per_week: f64,
    /// Sentiment shares of support calls: negative, neutral, positive.
    sentiment: [f64; 3],
    /// Probability that a weekly subscription charge is attempted at all.
    weekly_charge_prob: f64,
}

/// The profile of each segment, in [`SEGMENTS`] order.
pub(crate) const PROFILES: [Profile; 4] = [
    Profile {
        sessions_per_week: (2.0, 6.0),
        silent_share: 0.0,
        rating: (4.15, 4.85),
        ib_calls_per_30d: (0.0, 0.0),
        payment_success: (0.95, 1.0),
        tutor_consistency: (0.85, 1.0),
        extra_logins_per_week: (5.0, 10.0),
        messages_per_week: (3.0, 7.0),
        student_reply_median_min: (10.0, 40.0),
        rating_prob: 0.9,
        student_cancels_per_week: 0.10,
        tutor_cancels_per_week: 0.05,
        no_shows_per_week: 0.02,
        sentiment: [0.15, 0.50, 0.35],
        weekly_charge_prob: 1.0,
    },
    Profile {
        sessions_per_week: (1.0, 3.0),
        silent_share: 0.0,
        rating: (3.9, 4.4),
        ib_calls_per_30d: (0.0, 1.0),
        payment_success: (0.85, 1.0),
        tutor_consistency: (0.65, 0.9),
        extra_logins_per_week: (3.0, 6.0),
        messages_per_week: (2.0, 4.0),
        student_reply_median_min: (30.0, 90.0),
        rating_prob: 0.8,
        student_cancels_per_week: 0.20,
        tutor_cancels_per_week: 0.08,
        no_shows_per_week: 0.05,
        sentiment: [0.25, 0.50, 0.25],
        weekly_charge_prob: 1.0,
    },
    Profile {
        sessions_per_week: (0.0, 1.0),
        silent_share: 0.0,
        rating: (3.15, 3.85),
        ib_calls_per_30d: (1.0, 2.0),
        payment_success: (0.70, 0.90),
        tutor_consistency: (0.40, 0.70),
        extra_logins_per_week: (1.0, 3.0),
        messages_per_week: (0.8, 2.0),
        student_reply_median_min: (120.0, 480.0),
        rating_prob: 0.65,
        student_cancels_per_week: 0.40,
        tutor_cancels_per_week: 0.12,
        no_shows_per_week: 0.15,
        sentiment: [0.55, 0.35, 0.10],
        weekly_charge_prob: 0.9,
    },
    Profile {
        sessions_per_week: (0.0, 0.2),
        silent_share: 0.75,
        rating: (2.2, 3.3),
        ib_calls_per_30d: (2.0, 4.0),
        payment_success: (0.50, 0.80),
        tutor_consistency: (0.20, 0.50),
        extra_logins_per_week: (0.0, 0.3),
        messages_per_week: (0.0, 0.3),
        student_reply_median_min: (600.0, 2400.0),
        rating_prob: 0.5,
        student_cancels_per_week: 0.10,
        tutor_cancels_per_week: 0.03,
        no_shows_per_week: 0.05,
        sentiment: [0.70, 0.25, 0.05],
        weekly_charge_prob: 0.6,
    },
];

/// One customer's behaviour right now.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Params {
    pub(crate) sessions_per_week: f64,
    pub(crate) rating: f64,
    pub(crate) ib_calls_per_30d: f64,
    pub(crate) payment_success: f64,
    pub(crate) tutor_consistency: f64,
    pub(crate) extra_logins_per_week: f64,
    pub(crate) messages_per_week: f64,
    pub(crate) student_reply_median_min: f64,
    pub(crate) rating_prob: f64,
    pub(crate) student_cancels_per_week: f64,
    pub(crate) tutor_cancels_per_week: f64,
    pub(crate) no_shows_per_week: f64,
    pub(crate) sentiment: [f64; 3],
    pub(crate) weekly_charge_prob: f64,
}

impl Params {
    /// A customer's own behaviour within its segment's ranges.
    pub(crate) fn draw(segment: usize, rng: &mut Pcg64Mcg) -> Params {
        let p = &PROFILES[segment];
        let mut range = |r: Range| uniform(rng, r.0, r.1);
        let sessions = range(p.sessions_per_week);
        let rating = range(p.rating);
        let ib = range(p.ib_calls_per_30d);
        let pay = range(p.payment_success);
        let consistency = range(p.tutor_consistency);
        let logins = range(p.extra_logins_per_week);
        let messages = range(p.messages_per_week);
        let reply = range(p.student_reply_median_min);
        let silent = chance(rng, p.silent_share);
        Params {
            sessions_per_week: if silent { 0.0 } else { sessions },
            rating,
            ib_calls_per_30d: ib,
            payment_success: pay,
            tutor_consistency: consistency,
            extra_logins_per_week: if silent { logins * 0.3 } else { logins },
            messages_per_week: messages,
            student_reply_median_min: reply,
            rating_prob: p.rating_prob,
            student_cancels_per_week: p.student_cancels_per_week,
            tutor_cancels_per_week: p.tutor_cancels_per_week,
            no_shows_per_week: p.no_shows_per_week,
            sentiment: p.sentiment,
            weekly_charge_prob: p.weekly_charge_prob,
        }
    }

    /// Moves every parameter the share `k` of the way toward `target`.
    pub(crate) fn drift_toward(&mut self, target: &Params, k: f64) {
        let step = |x: &mut f64, t: f64| *x += (t - *x) * k;
        step(&mut self.sessions_per_week, target.sessions_per_week);
        step(&mut self.rating, target.rating);
        step(&mut self.ib_calls_per_30d, target.ib_calls_per_30d);
        step(&mut self.payment_success, target.payment_success);
        step(&mut self.tutor_consistency, target.tutor_consistency);
        step(&mut self.extra_logins_per_week, target.extra_logins_per_week);
        step(&mut self.messages_per_week, target.messages_per_week);
        step(&mut self.student_reply_median_min, target.student_reply_median_min);
        step(&mut self.rating_prob, target.rating_prob);
        step(&mut self.student_cancels_per_week, target.student_cancels_per_week);
        step(&mut self.tutor_cancels_per_week, target.tutor_cancels_per_week);
        step(&mut self.no_shows_per_week, target.no_shows_per_week);
        for i in 0..3 {
            step(&mut self.sentiment[i], target.sentiment[i]);
        }
        step(&mut self.weekly_charge_prob, target.weekly_charge_prob);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_rows_are_probabilities() {
        for (i, row) in DAILY_TRANSITIONS.iter().enumerate() {
            assert_eq!(row[i], 0.0, "the diagonal is implied");
            let out: f64 = row.iter().sum();
            assert!((0.0..1.0).contains(&out));
        }
    }

    #[test]
    fn profiles_follow_the_spec_table() {
        // §7: sessions/week, rating, IB calls, payment success, tutor consistency.
        let spec: [[Range; 5]; 4] = [
            [(2.0, 6.0), (4.0, 5.0), (0.0, 0.0), (0.95, 1.0), (0.85, 1.0)],
            [(1.0, 3.0), (3.8, 4.5), (0.0, 1.0), (0.85, 1.0), (0.65, 0.9)],
            [(0.0, 1.0), (3.0, 4.0), (1.0, 2.0), (0.70, 0.90), (0.40, 0.70)],
            [(0.0, 0.2), (2.0, 3.5), (2.0, 4.0), (0.50, 0.80), (0.20, 0.50)],
        ];
        for (p, s) in PROFILES.iter().zip(spec) {
            let ours = [p.sessions_per_week, p.rating, p.ib_calls_per_30d, p.payment_success, p.tutor_consistency];
            for (o, s) in ours.iter().zip(s) {
                assert!(o.0 >= s.0 && o.1 <= s.1, "{o:?} not within {s:?}");
            }
        }
    }
}
