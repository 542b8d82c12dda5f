//! The Lifecycle world ([`WorldKind::Lifecycle`](crate::WorldKind::Lifecycle)):
//! customers simulated differently from Classic, so that a model trained on
//! one world can be tested on the other.
//!
//! Classic gives each customer a segment and moves it by a Markov chain;
//! behaviour follows the segment. Here a customer has a latent *life* from
//! which behaviour follows, and the segment is read from that life:
//!
//! * **Arrivals.** [`ESTABLISHED_SHARE`] of the customers are there on the
//!   first day; the others sign up on a later day, a cohort a day, more at
//!   term start and early in the week, fewer in a break ([`Arrivals`]).
//! * **Onboarding.** A new customer logs in and chats on its signup day; most
//!   book a first session within two weeks, the rest never do and are gone
//!   after [`ONBOARDING_DAYS`]. A poor first session is a bad experience of
//!   its own.
//! * **Weekly habits.** A customer's sessions fall on its own fixed weekday
//!   slots (more on Monday to Thursday, few on Friday and Sunday) at its own
//!   hour, and last its usual length.
//! * **Calendar** ([`Season`]): a term-start surge (two weeks from 5 January
//!   and from 24 August), a 10-day spring break (7 to 16 March) and a winter
//!   break with far fewer sessions for everyone, a quieter summer; logins and
//!   messages dip at weekends.
//! * **Tutor match.** A customer's primary tutor has a match quality, drawn
//!   when they are matched, and familiarity grows with every session: both
//!   raise attendance and ratings (integer stars). A bad rating or a tutor
//!   who cancels may make the customer switch; a switch draws a new match and
//!   resets familiarity. Tutors differ in how often they cancel.
//! * **Churn as a hazard.** Each day an active customer may leave with a
//!   probability made of a life part (higher in the first weeks after signup)
//!   and a *grievance* part that grows with the square of the grievance (one
//!   incident is forgiven, a pile of them is not). Bad experiences (tutor
//!   cancellations, no-shows, low ratings, failed payments, negative support
//!   calls, a poor first session; see [`Experience`]) add to the grievance
//!   after a lag of 3 to 7 days; it fades with a half-life of about 10 days
//!   and each good session takes a little away, so trouble raises the risk
//!   over the following weeks, and more for customers who come rarely. The
//!   life part ends a customer at once (no prior decay); the grievance part
//!   ends some at once and makes the others fade over two to five weeks. A
//!   failed retry of a subscription charge may lapse it (involuntary churn).
//! * **Reactivation.** Some of those who left come back after two weeks or
//!   more, most often at term start, with a fresh start (tenure, grievance)
//!   and often a new tutor.
//!
//! The **segment** of a customer on a day ([`segment_of`]) is read from its
//! latent state, not from the calendar: `r` = the sessions a week it would
//! complete in an ordinary term week as it is now, `risk` = the probability
//! that it leaves within 30 days if nothing else goes wrong. Gone, never
//! starting, or `r < 0.25`: churned. Fading, `r < 1` or `risk >= 0.35`:
//! at_risk. `r >= 2` and `risk < 0.12`: thriving. Otherwise healthy. The
//! bands are §7's sessions a week; a customer on spring break keeps its
//! segment while it is quiet, as a real one would.
//!
//! The [`SegmentMix`](crate::SegmentMix) is the mix of *intents* customers
//! enter with: established customers start in a state of that segment
//! (thriving and healthy ones with a settled tutor, at-risk ones fading or
//! aggrieved, churned ones already gone, some to come back), new ones sign up
//! with that intent's rate of sessions (a `churned` intent at signup never
//! books a first session).

use pulse_schemas::{Party, Sentiment, DAY_MS};
use rand_pcg::Pcg64Mcg;

use super::{draw_tutor, index_of, tenths, Customer, Drive, Plan, Retry, World, HOUR, MINUTE};
use crate::record::{Body, EventItem, Fault, IdSpace};
use crate::rng::{
    chance, derive, log_normal, log_uniform, normal, poisson, splitmix64, uniform, unit, weighted, Stream,
};

/// Share of the customers already there on the first day; the others sign up later.
pub(crate) const ESTABLISHED_SHARE: f64 = 0.7;
/// Days a new customer has to book its first session before it counts as gone.
pub(crate) const ONBOARDING_DAYS: u32 = 14;
/// Weight of each weekday (Monday first) for a customer's session slots.
const SLOT_WEEKDAYS: [f64; 7] = [0.18, 0.18, 0.18, 0.17, 0.07, 0.14, 0.08];
/// Weight of each weekday (Monday first) for signups.
const SIGNUP_WEEKDAYS: [f64; 7] = [1.3, 1.2, 1.1, 1.0, 0.8, 0.7, 0.9];
/// Logins and messages at weekends, relative to weekdays.
const WEEKEND_ACTIVITY: f64 = 0.65;
/// Daily decay of the grievance: a half-life of about 9.5 days.
const GRIEVANCE_DECAY: f64 = 0.93;
/// Grievance taken away by a good session with the primary tutor (not
/// rated below 4 stars): engaged customers shake off trouble.
const GOOD_SESSION_RELIEF: f64 = 0.1;
/// Daily probability of leaving per unit of grievance *squared*: one
/// incident is forgiven, trouble that piles up is not.
const GRIEVANCE_HAZARD: f64 = 0.0015;
/// Daily probability of leaving for reasons of life (moved, exam passed), at any tenure.
const LIFE_HAZARD: f64 = 0.0006;
/// Extra daily probability of leaving for a customer who has just (re)started...
const EARLY_HAZARD: f64 = 0.004;
/// ... fading with this time constant, in days.
const EARLY_DAYS: f64 = 30.0;
/// The daily hazard never exceeds this.
const MAX_HAZARD: f64 = 0.25;
/// Ring of pending experiences: a lag of 3 to 7 days fits in 8 slots.
const LAG_SLOTS: usize = 8;
/// Share of grievance departures that happen at once rather than by fading.
const ABRUPT_SHARE: f64 = 0.3;
/// Daily probability that a customer who may come back does, after [`RETURN_AFTER_DAYS`].
const RETURN_PER_DAY: f64 = 0.02;
/// Days gone before a customer may come back.
const RETURN_AFTER_DAYS: i64 = 14;
/// Share of sessions with a substitute (another of the customer's tutors).
const SUBSTITUTE_SHARE: f64 = 0.07;
/// Highest probability of attending a slot in a given week.
const MAX_ATTENDANCE: f64 = 0.97;

// The segment rule: sessions a week (§7's bands) and 30-day risk of leaving.
const THRIVING_RATE: f64 = 2.0;
const HEALTHY_RATE: f64 = 1.0;
const CHURNED_RATE: f64 = 0.25;
const THRIVING_RISK: f64 = 0.12;
const AT_RISK_RISK: f64 = 0.35;

const THRIVING: usize = 0;
const HEALTHY: usize = 1;
const AT_RISK: usize = 2;
const CHURNED: usize = 3;

/// The segment (index in [`SEGMENTS`](crate::SEGMENTS)) of a customer that has signed up and
/// not left, from the sessions a week it would complete in an ordinary week
/// (`rate`), its probability of leaving within 30 days (`risk`) and whether it
/// is fading out.
pub(crate) fn segment_of(rate: f64, risk: f64, fading: bool) -> usize {
    if rate < CHURNED_RATE {
        CHURNED
    } else if fading || rate < HEALTHY_RATE || risk >= AT_RISK_RISK {
        AT_RISK
    } else if rate >= THRIVING_RATE && risk < THRIVING_RISK {
        THRIVING
    } else {
        HEALTHY
    }
}

/// Where a day falls in a (US) school year.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Season {
    /// An ordinary term day.
    Term,
    /// The first two weeks of a term: 5 to 18 January, 24 August to 6 September.
    TermStart,
    /// Winter break (20 December to 4 January) and spring break (7 to 16 March).
    Break,
    /// 15 June to 23 August.
    Summer,
}

impl Season {
    /// The season of a day, counted in days since the Unix epoch (UTC).
    pub(crate) fn of(epoch_day: i64) -> Season {
        let (month, day) = month_day(epoch_day);
        match month * 100 + day {
            1220..=1231 | 101..=104 | 307..=316 => Season::Break,
            105..=118 | 824..=906 => Season::TermStart,
            615..=823 => Season::Summer,
            _ => Season::Term,
        }
    }

    /// Sessions, relative to an ordinary term day.
    fn sessions(self) -> f64 {
        [1.0, 1.15, 0.15, 0.6][self as usize]
    }

    /// Logins and messages, relative to an ordinary term day.
    fn activity(self) -> f64 {
        [1.0, 1.2, 0.4, 0.7][self as usize]
    }

    /// Signups, relative to an ordinary term day.
    fn signups(self) -> f64 {
        [1.0, 2.5, 0.3, 0.6][self as usize]
    }

    /// Returns of customers who left, relative to an ordinary term day.
    fn returns(self) -> f64 {
        [1.0, 3.0, 0.3, 0.5][self as usize]
    }
}

/// Month (1 to 12) and day of the month of a day since the Unix epoch
/// (proleptic Gregorian calendar).
fn month_day(epoch_day: i64) -> (u32, u32) {
    let (_, month, day) = pulse_schemas::civil_from_days(epoch_day);
    (month, day)
}

/// Weekday of a day since the Unix epoch, 0 = Monday (1970-01-01 was a Thursday).
pub(crate) fn weekday(epoch_day: i64) -> usize {
    (epoch_day + 3).rem_euclid(7) as usize
}

/// When the customers who are not there on the first day sign up.
#[derive(Debug, Default)]
pub(crate) struct Arrivals {
    /// Cumulative signup weight of days 1, 2, ... (empty for a one-day run).
    cumulative: Vec<f64>,
}

impl Arrivals {
    /// Signups over days `1..days` of a run starting at `start_ms`.
    pub(crate) fn new(start_ms: i64, days: u32) -> Arrivals {
        let first = start_ms.div_euclid(DAY_MS);
        let mut total = 0.0;
        let cumulative = (1..i64::from(days))
            .map(|day| {
                total += Season::of(first + day).signups() * SIGNUP_WEEKDAYS[weekday(first + day)];
                total
            })
            .collect();
        Arrivals { cumulative }
    }

    /// A signup day, or `None` when the run has a single day.
    fn draw(&self, rng: &mut Pcg64Mcg) -> Option<u32> {
        let total = *self.cumulative.last()?;
        let u = unit(rng) * total;
        let i = self.cumulative.partition_point(|c| *c <= u).min(self.cumulative.len() - 1);
        Some(i as u32 + 1)
    }
}

/// A bad experience and the grievance it adds (before the customer's temper).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Experience {
    /// The tutor cancelled a booked session.
    TutorCancel,
    /// A booked session where someone did not show up.
    NoShow,
    /// A session rated 1 or 2 stars.
    LowRating,
    /// A session rated 3 stars.
    MediocreRating,
    /// A charge that failed.
    FailedPayment,
    /// A support call that went badly.
    NegativeCall,
    /// A first session rated 3 stars or less.
    PoorFirstSession,
}

impl Experience {
    /// The grievance it adds.
    pub(crate) fn weight(self) -> f64 {
        match self {
            Experience::TutorCancel => 1.0,
            Experience::NoShow => 0.6,
            Experience::LowRating => 1.2,
            Experience::MediocreRating => 0.25,
            Experience::FailedPayment => 0.5,
            Experience::NegativeCall => 1.5,
            Experience::PoorFirstSession => 1.5,
        }
    }
}

/// Why a customer left: it decides whether it calls support on the way out
/// and whether it may come back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Leaving {
    /// Never booked a first session.
    NeverStarted,
    /// Left at once for reasons of life (the life part of the hazard).
    Sudden,
    /// Left at once, fed up (the grievance part).
    FedUp,
    /// Faded out.
    Faded,
    /// A subscription lapsed after failed charges.
    Lapsed,
}

impl Leaving {
    /// Probability of coming back later.
    fn returns(self) -> f64 {
        match self {
            Leaving::NeverStarted => 0.05,
            Leaving::Sudden => 0.12,
            Leaving::FedUp => 0.10,
            Leaving::Faded => 0.20,
            Leaving::Lapsed => 0.35,
        }
    }

    /// Probability of a support call on the way out, and its sentiment shares.
    fn call(self) -> (f64, [f64; 3]) {
        match self {
            Leaving::NeverStarted => (0.0, [0.0, 1.0, 0.0]),
            Leaving::Sudden => (0.3, [0.15, 0.6, 0.25]),
            Leaving::FedUp => (0.5, [0.7, 0.27, 0.03]),
            Leaving::Faded => (0.1, [0.4, 0.5, 0.1]),
            Leaving::Lapsed => (0.2, [0.3, 0.6, 0.1]),
        }
    }
}

/// Where a customer is in its life. Days are run days (0 = the first), negative before the run.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Phase {
    /// Not signed up yet; `first_session` as in `Onboarding`.
    Prospect { first_session: Option<u32> },
    /// Signed up, no session yet; `first_session` is the day of the first
    /// session, `None` for a customer that never books one.
    Onboarding { first_session: Option<u32> },
    /// Taking sessions.
    Active,
    /// Leaving: attendance falls linearly from `since` to zero after `length` days.
    Fading { since: i64, length: i64 },
    /// Gone since `since`; `may_return` says whether it will come back one day.
    Gone { since: i64, may_return: bool },
}

/// A weekly session slot: a weekday (0 = Monday) and a local hour.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Slot {
    weekday: usize,
    hour: f64,
}

/// One Lifecycle customer's latent state.
#[derive(Debug)]
pub(crate) struct Life {
    phase: Phase,
    /// The run day it signed up (0 for a customer there on the first day).
    signup_day: u32,
    /// The run day its tenure counts from (signup or return; negative before the run).
    since_day: i64,
    /// Slot attendance in sessions a week, with a perfect match and before the calendar.
    base_rate: f64,
    slots: [Slot; 6],
    n_slots: usize,
    /// Usual session length, minutes.
    session_minutes: i64,
    /// Match quality with the primary tutor, 0 to 1.
    match_quality: f64,
    /// Familiarity with the primary tutor, 0 to 1; grows with each session.
    familiarity: f64,
    /// The grievance now, and what arrives on the coming days (slot = day % LAG_SLOTS).
    grievance: f64,
    incoming: [f64; LAG_SLOTS],
    /// How strongly bad experiences weigh on this customer.
    temper: f64,
    /// Probability that a charge succeeds.
    card: f64,
    /// Median minutes the student takes to reply when fully engaged.
    reply_median_min: f64,
    /// A support call about a recent problem, due that day.
    call_due: Option<u32>,
    /// Switch to a new primary tutor tomorrow.
    switch_due: bool,
    /// The subscription lapses tomorrow (a retried charge failed).
    lapse_due: bool,
    /// Segment (index in [`SEGMENTS`](crate::SEGMENTS)) at the end of the last simulated day; `None` before signup.
    segment: Option<usize>,
    /// Expected sessions a week at the end of the last simulated day.
    rate: f64,
    /// Segment changes after signup.
    transitions: u32,
}

/// What a Lifecycle customer's day works on: the customer's shared parts
/// (random stream, tutors, plan) and where its events go.
struct Ctx<'a> {
    world: &'a World,
    day: u32,
    season: Season,
    weekday: usize,
    local_midnight: i64,
    rng: &'a mut Pcg64Mcg,
    events: &'a mut Vec<EventItem>,
    next_event: &'a mut u32,
    tutors: &'a mut [u32; 4],
    n_tutors: &'a mut usize,
    plan: &'a mut Plan,
    retry: &'a mut Option<Retry>,
}

impl Ctx<'_> {
    fn today(&self) -> i64 {
        i64::from(self.day)
    }

    /// The time of a local hour today (hours past 24 fall on the next day).
    fn at(&self, hour: f64) -> i64 {
        self.local_midnight + (hour.max(0.0) * HOUR as f64) as i64
    }

    /// A time today at a local hour drawn uniformly in `[lo, hi)`.
    fn at_uniform(&mut self, lo: f64, hi: f64) -> i64 {
        let hour = uniform(self.rng, lo, hi);
        self.at(hour)
    }

    fn push(&mut self, ts: i64, body: Body) {
        let id = *self.next_event;
        *self.next_event += 1;
        self.events.push(EventItem { ts, sk_ts: ts, id_space: IdSpace::Behaviour, id, body, fault: Fault::None });
    }

    /// Logins and messages today relative to an ordinary weekday.
    fn activity(&self) -> f64 {
        self.season.activity() * if self.weekday >= 5 { WEEKEND_ACTIVITY } else { 1.0 }
    }

    fn primary(&self) -> u32 {
        self.tutors[0]
    }

    /// One of the customer's other tutors.
    fn substitute(&mut self) -> u32 {
        self.tutors[1 + index_of(self.rng, *self.n_tutors - 1)]
    }

    /// A new primary tutor from the pool; the old one stays as a substitute.
    fn switch_tutor(&mut self) {
        let known = *self.n_tutors;
        let new = loop {
            let t = draw_tutor(self.rng, self.world.tutor_pool);
            if !self.tutors[..known].contains(&t) {
                break t;
            }
        };
        let n = (known + 1).min(self.tutors.len());
        self.tutors.copy_within(0..n - 1, 1);
        self.tutors[0] = new;
        *self.n_tutors = n;
    }

    /// A message reply from the tutor, with the tutor's own reply time.
    fn tutor_message(&mut self, ts: i64, tutor: u32) {
        let minutes = log_normal(self.rng, self.world.tutor_reply_median_min(tutor), 0.7).min(14_400.0);
        let tutor_id = chance(self.rng, 0.8).then_some(tutor);
        self.push(ts, Body::MessageReply { from: Party::Tutor, minutes_tenths: tenths(minutes), tutor: tutor_id });
    }

    fn call(&mut self, sentiment: &[f64; 3]) -> Sentiment {
        let sentiment = [Sentiment::Negative, Sentiment::Neutral, Sentiment::Positive][weighted(self.rng, sentiment)];
        let ts = self.at_uniform(9.0, 18.0);
        self.push(ts, Body::IbCall { sentiment });
        sentiment
    }
}

/// Probability that a tutor cancels a booked session, fixed per tutor: most
/// are reliable (1 to 4%), one in five is not (6 to 14%).
pub(crate) fn tutor_cancel_rate(world: &World, tutor: u32) -> f64 {
    let h = splitmix64(world.seed ^ splitmix64(u64::from(tutor) << 8 | Stream::TutorReliability as u64));
    let u = (h >> 11) as f64 / (1u64 << 53) as f64;
    if u < 0.8 {
        0.01 + 0.03 * u / 0.8
    } else {
        0.06 + 0.08 * (u - 0.8) / 0.2
    }
}

impl Customer {
    /// Lifecycle customer `index` as it is on the first day.
    pub(super) fn new_lifecycle(world: &World, index: u32) -> Customer {
        let mut rng = derive(world.seed, u64::from(index), Stream::Behaviour);
        let noise = derive(world.seed, u64::from(index), Stream::Noise);
        let intent = weighted(&mut rng, &world.mix);
        let signup_day =
            if chance(&mut rng, ESTABLISHED_SHARE) { 0 } else { world.arrivals.draw(&mut rng).unwrap_or(0) };
        // A primary tutor and up to two substitutes.
        let n_tutors = 1 + index_of(&mut rng, 3);
        let mut tutors = [0; 4];
        for i in 0..n_tutors {
            tutors[i] = loop {
                let t = draw_tutor(&mut rng, world.tutor_pool);
                if !tutors[..i].contains(&t) {
                    break t;
                }
            };
        }
        let tz_offset_ms = [5, 6, 7, 8][weighted(&mut rng, &[0.5, 0.3, 0.07, 0.13])] * HOUR;
        let weekly = !chance(&mut rng, 0.55);
        let price = if weekly {
            [4_900, 7_900, 9_900, 14_900][index_of(&mut rng, 4)]
        } else {
            (25 + index_of(&mut rng, 56) as i64) * 100
        };
        let mut life = Life::new(intent, signup_day, &mut rng);
        // A subscription is charged on the weekday it started: the first
        // session's (moved there when it happens), here the first slot's.
        let plan = if weekly {
            Plan::Weekly { amount_cents: price, weekday: life.slots[0].weekday as u32 }
        } else {
            Plan::PerSession { hourly_cents: price }
        };
        if signup_day == 0 {
            life.settle(world, 0, tutors[0]);
        }
        Customer {
            index,
            behaviour: rng,
            noise,
            drive: Drive::Lifecycle(life),
            tutors,
            n_tutors,
            tz_offset_ms,
            preferred_hour: 17.0,
            plan,
            retry: None,
            next_event: 0,
            next_extra: 0,
            next_record: 0,
            clock: i64::MIN,
            clock_history: [i64::MIN; 2],
            prediction: None,
            profile: None,
        }
    }

    /// Lives day `day` of a Lifecycle customer, appending its events to `events`.
    pub(super) fn lifecycle_day(&mut self, world: &World, day: u32, day_start: i64, events: &mut Vec<EventItem>) {
        let Customer {
            behaviour,
            drive: Drive::Lifecycle(life),
            tutors,
            n_tutors,
            tz_offset_ms,
            plan,
            retry,
            next_event,
            ..
        } = self
        else {
            return; // only ever called for a Lifecycle customer
        };
        let epoch_day = day_start.div_euclid(DAY_MS);
        let mut cx = Ctx {
            world,
            day,
            season: Season::of(epoch_day),
            weekday: weekday(epoch_day),
            local_midnight: day_start + *tz_offset_ms,
            rng: behaviour,
            events,
            next_event,
            tutors,
            n_tutors,
            plan,
            retry,
        };
        life.live(&mut cx);
    }
}

impl Life {
    /// A customer entering with `intent` (index in [`SEGMENTS`](crate::SEGMENTS)) on
    /// `signup_day` (0: already there, with some history).
    fn new(intent: usize, signup_day: u32, rng: &mut Pcg64Mcg) -> Life {
        let base_rate = match intent {
            THRIVING => uniform(rng, 3.0, 6.0),
            HEALTHY => uniform(rng, 1.6, 2.6),
            AT_RISK => uniform(rng, 0.6, 1.4),
            // Never starts (or is gone); the rate it would have if it came back.
            _ => uniform(rng, 0.6, 2.0),
        };
        // One slot more than the rate needs, so that not every slot is taken every week.
        let n_slots = ((base_rate * 1.15).ceil() as usize).clamp(1, 6);
        let mut slots = [Slot::default(); 6];
        let mut weights = SLOT_WEEKDAYS;
        for slot in slots.iter_mut().take(n_slots) {
            let weekday = weighted(rng, &weights);
            weights[weekday] = 0.0;
            let hour = if weekday >= 5 { uniform(rng, 9.5, 13.0) } else { uniform(rng, 15.5, 20.0) };
            *slot = Slot { weekday, hour: (hour * 4.0).round() / 4.0 };
        }
        let session_minutes = [30, 45, 60, 90][weighted(rng, &[0.1, 0.25, 0.5, 0.15])];
        let temper = log_normal(rng, 1.0, 0.5);
        let card = if chance(rng, 0.85) { uniform(rng, 0.97, 1.0) } else { uniform(rng, 0.75, 0.93) };
        let reply_median_min = uniform(rng, 10.0, 45.0);
        // A match is luck: most are decent, some are poor.
        let match_quality = unit(rng).powf(0.7);
        let mut life = Life {
            phase: Phase::Prospect { first_session: None },
            signup_day,
            since_day: i64::from(signup_day),
            base_rate,
            slots,
            n_slots,
            session_minutes,
            match_quality,
            familiarity: 0.0,
            grievance: 0.0,
            incoming: [0.0; LAG_SLOTS],
            temper,
            card,
            reply_median_min,
            call_due: None,
            switch_due: false,
            lapse_due: false,
            segment: None,
            rate: 0.0,
            transitions: 0,
        };
        if signup_day > 0 {
            // The first session comes one to a dozen days after signup
            // (three on average), or never.
            let starts = [0.95, 0.9, 0.7, 0.0][intent];
            let first_session = chance(rng, starts).then(|| {
                let wait = (-(1.0 - unit(rng)).ln() * 3.0) as u32;
                signup_day + 1 + wait.min(ONBOARDING_DAYS - 2)
            });
            life.phase = Phase::Prospect { first_session };
            return life;
        }
        // There on the first day, with months of history behind it.
        life.since_day = -(uniform(rng, 30.0, 700.0) as i64);
        match intent {
            THRIVING => {
                life.match_quality = uniform(rng, 0.55, 1.0);
                life.familiarity = uniform(rng, 0.6, 1.0);
                life.phase = Phase::Active;
            }
            HEALTHY => {
                life.match_quality = uniform(rng, 0.35, 0.85);
                life.familiarity = uniform(rng, 0.4, 1.0);
                life.grievance = uniform(rng, 0.0, 1.5);
                life.phase = Phase::Active;
            }
            AT_RISK => {
                life.match_quality = uniform(rng, 0.15, 0.7);
                life.familiarity = uniform(rng, 0.2, 0.9);
                life.grievance = uniform(rng, 2.0, 5.0);
                life.phase = if chance(rng, 0.5) {
                    Phase::Fading { since: -(index_of(rng, 10) as i64), length: 14 + index_of(rng, 22) as i64 }
                } else {
                    life.base_rate = uniform(rng, 0.5, 1.1);
                    Phase::Active
                };
            }
            _ => {
                life.phase = Phase::Gone { since: -(1 + index_of(rng, 60) as i64), may_return: chance(rng, 0.2) };
            }
        }
        life
    }

    /// The segment at the end of the last simulated day (`None` before signup).
    pub(crate) fn segment(&self) -> Option<usize> {
        self.segment
    }

    /// Expected sessions a week at the end of the last simulated day.
    pub(crate) fn rate(&self) -> f64 {
        self.rate
    }

    /// Segment changes since signup.
    pub(crate) fn transitions(&self) -> u32 {
        self.transitions
    }

    /// One day: signup or the latent step, then the day's events, then the segment.
    fn live(&mut self, cx: &mut Ctx<'_>) {
        match self.phase {
            Phase::Prospect { .. } if cx.day < self.signup_day => return,
            Phase::Prospect { first_session } => self.phase = Phase::Onboarding { first_session },
            _ if cx.day > self.signup_day => self.step(cx),
            _ => {}
        }
        self.behave(cx);
        self.settle(cx.world, cx.day, cx.primary());
    }

    /// The latent changes at the start of a day: experiences arrive in the
    /// grievance, tutors switch, customers leave, fade out or come back.
    fn step(&mut self, cx: &mut Ctx<'_>) {
        let slot = cx.day as usize % LAG_SLOTS;
        self.grievance = self.grievance * GRIEVANCE_DECAY + self.incoming[slot];
        self.incoming[slot] = 0.0;
        let today = cx.today();
        match self.phase {
            Phase::Prospect { .. } => {}
            Phase::Onboarding { first_session } => {
                if first_session.is_none() && cx.day >= self.signup_day + ONBOARDING_DAYS {
                    self.leave(cx, Leaving::NeverStarted);
                }
            }
            Phase::Active | Phase::Fading { .. } if self.lapse_due => self.leave(cx, Leaving::Lapsed),
            Phase::Active => {
                if self.switch_due {
                    self.switch_due = false;
                    self.switch_tutor(cx);
                }
                let (life, hazard) = self.hazard(today, self.grievance);
                let u = unit(cx.rng);
                if u < life {
                    self.leave(cx, Leaving::Sudden);
                } else if u < hazard {
                    if chance(cx.rng, ABRUPT_SHARE) {
                        self.leave(cx, Leaving::FedUp);
                    } else {
                        self.phase = Phase::Fading { since: today, length: 14 + index_of(cx.rng, 22) as i64 };
                    }
                }
            }
            Phase::Fading { since, length } => {
                if today - since >= length {
                    self.leave(cx, Leaving::Faded);
                }
            }
            Phase::Gone { since, may_return } => {
                if may_return
                    && today - since >= RETURN_AFTER_DAYS
                    && chance(cx.rng, RETURN_PER_DAY * cx.season.returns())
                {
                    self.come_back(cx);
                }
            }
        }
    }

    /// The daily hazard on day `day`: its life part, and the whole (life +
    /// grievance) for a grievance `grievance`.
    fn hazard(&self, day: i64, grievance: f64) -> (f64, f64) {
        let tenure = (day - self.since_day) as f64;
        let life = LIFE_HAZARD + EARLY_HAZARD * (-tenure / EARLY_DAYS).exp();
        (life, (life + GRIEVANCE_HAZARD * grievance * grievance).min(MAX_HAZARD))
    }

    /// Probability of leaving within the next 30 days if no new bad
    /// experience happens: the hazard projected day by day, the grievance
    /// fading and the experiences already on their way arriving.
    fn risk_30d(&self, today: i64) -> f64 {
        let mut grievance = self.grievance;
        let mut cumulative = 0.0;
        for k in 1..=30 {
            grievance *= GRIEVANCE_DECAY;
            if k < LAG_SLOTS as i64 {
                grievance += self.incoming[(today + k).rem_euclid(LAG_SLOTS as i64) as usize];
            }
            cumulative += self.hazard(today + k, grievance).1;
        }
        1.0 - (-cumulative).exp()
    }

    /// Attendance relative to a perfect match: match quality, familiarity
    /// with the tutor and, when fading, how far the customer has faded.
    fn engagement(&self, today: i64) -> f64 {
        let fade = match self.phase {
            Phase::Fading { since, length } => (1.0 - (today - since) as f64 / length as f64).clamp(0.0, 1.0),
            _ => 1.0,
        };
        (0.6 + 0.5 * self.match_quality) * (0.8 + 0.2 * self.familiarity) * fade
    }

    /// Probability of attending one slot this week (before the calendar).
    fn attendance(&self, today: i64) -> f64 {
        (self.base_rate / self.n_slots as f64 * self.engagement(today)).min(MAX_ATTENDANCE)
    }

    /// Probabilities that a booked session is cancelled by the student or missed.
    fn friction(&self, today: i64) -> (f64, f64) {
        let e = (self.engagement(today) / 1.1).min(1.0);
        (0.03 + 0.12 * (1.0 - e), 0.01 + 0.06 * (1.0 - e))
    }

    /// Completed sessions a week in an ordinary term week, as things are now.
    fn expected_rate(&self, world: &World, today: i64, primary: u32) -> f64 {
        match self.phase {
            Phase::Active | Phase::Fading { .. } | Phase::Onboarding { first_session: Some(_) } => {
                let (student_cancel, no_show) = self.friction(today);
                let tutor_cancel = tutor_cancel_rate(world, primary);
                let held = 1.0 - student_cancel - no_show - 1.3 * tutor_cancel;
                self.n_slots as f64 * self.attendance(today) * held
            }
            Phase::Prospect { .. } | Phase::Onboarding { first_session: None } | Phase::Gone { .. } => 0.0,
        }
    }

    /// Reads the segment at the end of day `day` and counts a change.
    fn settle(&mut self, world: &World, day: u32, primary: u32) {
        let today = i64::from(day);
        self.rate = self.expected_rate(world, today, primary);
        let segment = match self.phase {
            Phase::Prospect { .. } => None,
            Phase::Gone { .. } | Phase::Onboarding { first_session: None } => Some(CHURNED),
            Phase::Fading { .. } => Some(segment_of(self.rate, 1.0, true)),
            Phase::Active | Phase::Onboarding { .. } => Some(segment_of(self.rate, self.risk_30d(today), false)),
        };
        if let (Some(before), Some(now)) = (self.segment, segment) {
            self.transitions += u32::from(before != now);
        }
        self.segment = segment;
    }

    /// A bad experience today: its grievance arrives 3 to 7 days later.
    fn suffer(&mut self, cx: &mut Ctx<'_>, experience: Experience) {
        let lag = 3 + index_of(cx.rng, 5);
        self.incoming[(cx.day as usize + lag) % LAG_SLOTS] += experience.weight() * self.temper;
    }

    /// A support call about a recent problem, one or two days later (with probability `p`).
    fn maybe_call(&mut self, cx: &mut Ctx<'_>, p: f64) {
        if self.call_due.is_none() && chance(cx.rng, p) {
            self.call_due = Some(cx.day + 1 + index_of(cx.rng, 2) as u32);
        }
    }

    fn switch_tutor(&mut self, cx: &mut Ctx<'_>) {
        cx.switch_tutor();
        self.match_quality = unit(cx.rng).powf(0.7);
        self.familiarity = 0.0;
        // Being heard helps a little.
        self.grievance *= 0.6;
    }

    fn leave(&mut self, cx: &mut Ctx<'_>, why: Leaving) {
        self.phase = Phase::Gone { since: cx.today(), may_return: chance(cx.rng, why.returns()) };
        self.call_due = None;
        self.switch_due = false;
        self.lapse_due = false;
        *cx.retry = None;
        let (p, sentiment) = why.call();
        if chance(cx.rng, p) {
            cx.call(&sentiment);
        }
    }

    /// Back after weeks away: a fresh start, often with a new tutor, and a
    /// little less keen than before.
    fn come_back(&mut self, cx: &mut Ctx<'_>) {
        self.phase = Phase::Active;
        self.since_day = cx.today();
        self.grievance = 0.0;
        self.incoming = [0.0; LAG_SLOTS];
        if chance(cx.rng, 0.5) {
            self.switch_tutor(cx);
        } else {
            self.familiarity *= 0.5;
        }
        self.base_rate = (self.base_rate * uniform(cx.rng, 0.7, 1.0)).max(0.5);
        if let Plan::Weekly { weekday, .. } = cx.plan {
            *weekday = cx.weekday as u32;
        }
        let ts = cx.at_uniform(8.0, 21.0);
        cx.push(ts, Body::Login);
    }

    /// The day's events.
    fn behave(&mut self, cx: &mut Ctx<'_>) {
        match self.phase {
            Phase::Prospect { .. } => {}
            Phase::Onboarding { first_session } => self.onboarding_day(cx, first_session),
            Phase::Active | Phase::Fading { .. } => self.active_day(cx),
            Phase::Gone { since, .. } => {
                // A look back now and then in the first weeks.
                if cx.today() - since < 21 && chance(cx.rng, 0.04 * cx.season.activity()) {
                    let ts = cx.at_uniform(7.0, 23.0);
                    cx.push(ts, Body::Login);
                }
            }
        }
    }

    fn onboarding_day(&mut self, cx: &mut Ctx<'_>, first_session: Option<u32>) {
        if cx.day == self.signup_day {
            // Signup: a few logins while exploring, often a welcome message from the tutor.
            for _ in 0..1 + poisson(cx.rng, 0.8) {
                let ts = cx.at_uniform(7.0, 23.0);
                cx.push(ts, Body::Login);
            }
            if chance(cx.rng, 0.5) {
                let ts = cx.at_uniform(9.0, 23.0);
                let tutor = cx.primary();
                cx.tutor_message(ts, tutor);
            }
        } else if first_session == Some(cx.day) {
            self.first_session(cx);
        } else {
            let keen =
                if first_session.is_some() { 0.45 } else { 0.35 * 0.85f64.powi((cx.day - self.signup_day) as i32) };
            if chance(cx.rng, keen * cx.activity()) {
                let ts = cx.at_uniform(7.0, 23.0);
                cx.push(ts, Body::Login);
            }
            if first_session.is_some() && chance(cx.rng, 0.25) {
                self.message(cx, 1.0);
            }
        }
    }

    /// The first session: it decides the customer's first impression.
    fn first_session(&mut self, cx: &mut Ctx<'_>) {
        self.phase = Phase::Active;
        if let Plan::Weekly { weekday, .. } = cx.plan {
            *weekday = cx.weekday as u32;
        }
        let hour = if cx.weekday >= 5 { uniform(cx.rng, 9.5, 13.0) } else { uniform(cx.rng, 15.5, 20.0) };
        let tutor = cx.primary();
        let stars = self.held_session(cx, hour, tutor, 0.85);
        if stars.is_some_and(|s| s <= 3) {
            self.suffer(cx, Experience::PoorFirstSession);
            self.switch_due |= chance(cx.rng, 0.5);
        }
        self.charge_if_due(cx);
    }

    fn active_day(&mut self, cx: &mut Ctx<'_>) {
        let today = cx.today();
        let attendance = self.attendance(today) * cx.season.sessions();
        for i in 0..self.n_slots {
            let slot = self.slots[i];
            if slot.weekday == cx.weekday && chance(cx.rng, attendance.min(MAX_ATTENDANCE)) {
                self.booked(cx, slot.hour);
            }
        }
        let e = (self.engagement(today) / 1.1).min(1.0);
        let activity = cx.activity();
        for _ in 0..poisson(cx.rng, (0.3 + 0.35 * self.base_rate * e) * activity) {
            let ts = cx.at_uniform(7.0, 23.5);
            cx.push(ts, Body::Login);
        }
        for _ in 0..poisson(cx.rng, (0.15 + 0.2 * self.base_rate * e) * activity) {
            self.message(cx, e);
        }
        if self.call_due == Some(cx.day) {
            self.call_due = None;
            if cx.call(&[0.6, 0.32, 0.08]) == Sentiment::Negative {
                self.suffer(cx, Experience::NegativeCall);
            }
        } else if chance(cx.rng, 0.3 / 30.0) && cx.call(&[0.15, 0.55, 0.3]) == Sentiment::Negative {
            self.suffer(cx, Experience::NegativeCall);
        }
        self.charge_if_due(cx);
    }

    /// A booked slot: held, or cancelled by either side, or missed.
    fn booked(&mut self, cx: &mut Ctx<'_>, hour: f64) {
        let tutor = if *cx.n_tutors > 1 && chance(cx.rng, SUBSTITUTE_SHARE) { cx.substitute() } else { cx.primary() };
        let is_primary = tutor == cx.primary();
        let start = (hour + 0.2 * normal(cx.rng)).clamp(7.0, 21.5);
        let tutor_cancel = tutor_cancel_rate(cx.world, tutor);
        let (student_cancel, no_show) = self.friction(cx.today());
        let no_show = no_show + 0.3 * tutor_cancel;
        let u = unit(cx.rng);
        if u < tutor_cancel {
            let ahead = uniform(cx.rng, 0.5, 8.0);
            let ts = cx.at((start - ahead).max(6.0));
            cx.push(ts, Body::SessionCancelled { tutor, by: Party::Tutor });
            self.suffer(cx, Experience::TutorCancel);
            self.maybe_call(cx, 0.15);
            self.switch_due |= is_primary && chance(cx.rng, 0.12);
        } else if u < tutor_cancel + student_cancel {
            let ahead = uniform(cx.rng, 0.5, 8.0);
            let ts = cx.at((start - ahead).max(6.0));
            cx.push(ts, Body::SessionCancelled { tutor, by: Party::Student });
        } else if u < tutor_cancel + student_cancel + no_show {
            let ts = cx.at(start + 0.25);
            cx.push(ts, Body::SessionNoShow { tutor });
            self.suffer(cx, Experience::NoShow);
            self.maybe_call(cx, 0.1);
        } else {
            let e = (self.engagement(cx.today()) / 1.1).min(1.0);
            self.held_session(cx, start, tutor, e);
        }
    }

    /// A completed session starting at local `hour`: a login before, the
    /// completion, maybe a rating (integer stars) and a tutor's follow-up,
    /// the payment of a per-session plan. Returns the stars, if rated.
    fn held_session(&mut self, cx: &mut Ctx<'_>, hour: f64, tutor: u32, engagement: f64) -> Option<i32> {
        let is_primary = tutor == cx.primary();
        let mut minutes = (self.session_minutes as f64 + 2.0 * normal(cx.rng)).round();
        if chance(cx.rng, 0.04) {
            minutes = (minutes / 2.0).round();
        }
        let minutes = minutes.clamp(5.0, 600.0) as i64;
        let start = cx.at(hour);
        let end = start + minutes * MINUTE;
        if chance(cx.rng, 0.9) {
            let ts = start - (uniform(cx.rng, 2.0, 20.0) * MINUTE as f64) as i64;
            cx.push(ts, Body::Login);
        }
        cx.push(end, Body::SessionCompleted { tutor, duration_tenths: (minutes * 10) as i32 });
        let mut stars = None;
        if chance(cx.rng, 0.45 + 0.45 * engagement) {
            let mean = if is_primary { 2.6 + 2.1 * self.match_quality + 0.3 * self.familiarity } else { 3.7 };
            let s = (mean + 0.6 * normal(cx.rng)).round().clamp(1.0, 5.0) as i32;
            let ts = end + log_uniform(cx.rng, MINUTE as f64, 12.0 * HOUR as f64) as i64;
            cx.push(ts, Body::SessionRated { tutor, rating_tenths: s * 10 });
            if s <= 2 {
                self.suffer(cx, Experience::LowRating);
                self.switch_due |= is_primary && chance(cx.rng, 0.4);
            } else if s == 3 {
                self.suffer(cx, Experience::MediocreRating);
                self.switch_due |= is_primary && self.match_quality < 0.4 && chance(cx.rng, 0.15);
            }
            stars = Some(s);
        }
        if is_primary {
            self.familiarity += (1.0 - self.familiarity) * 0.1;
            if stars.is_none_or(|s| s >= 4) {
                self.grievance = (self.grievance - GOOD_SESSION_RELIEF).max(0.0);
            }
        }
        if chance(cx.rng, 0.5) {
            let ts = end + (uniform(cx.rng, 5.0, 240.0) * MINUTE as f64) as i64;
            cx.tutor_message(ts, tutor);
        }
        if let Plan::PerSession { hourly_cents } = *cx.plan {
            let ts = end + (uniform(cx.rng, 1.0, 15.0) * MINUTE as f64) as i64;
            self.pay(cx, ts, hourly_cents * minutes / 60, false);
        }
        stars
    }

    /// A message reply: the student (slower the less engaged) or a tutor.
    fn message(&mut self, cx: &mut Ctx<'_>, engagement: f64) {
        let ts = cx.at_uniform(7.0, 23.5);
        let tutor = cx.primary();
        if chance(cx.rng, 0.55) {
            let median = self.reply_median_min / engagement.max(0.1);
            let minutes = log_normal(cx.rng, median, 0.9).min(14_400.0);
            let tutor = chance(cx.rng, 0.5).then_some(tutor);
            cx.push(ts, Body::MessageReply { from: Party::Student, minutes_tenths: tenths(minutes), tutor });
        } else {
            cx.tutor_message(ts, tutor);
        }
    }

    /// The weekly subscription charge on its weekday, and the retry of a failed payment.
    fn charge_if_due(&mut self, cx: &mut Ctx<'_>) {
        if let Plan::Weekly { amount_cents, weekday } = *cx.plan {
            if weekday as usize == cx.weekday {
                let ts = cx.at_uniform(6.0, 9.0);
                self.pay(cx, ts, amount_cents, false);
            }
        }
        if let Some(retry) = cx.retry.filter(|r| r.day == cx.day) {
            *cx.retry = None;
            let ts = cx.at_uniform(6.0, 9.0);
            self.pay(cx, ts, retry.amount_cents, true);
        }
    }

    /// A charge. A failure hurts; a first failure is usually retried a few
    /// days later, and a failed retry may lapse the subscription.
    fn pay(&mut self, cx: &mut Ctx<'_>, ts: i64, amount_cents: i64, is_retry: bool) {
        let succeeded = chance(cx.rng, self.card);
        cx.push(ts, Body::Payment { amount_cents, succeeded });
        if succeeded {
            return;
        }
        self.suffer(cx, Experience::FailedPayment);
        self.maybe_call(cx, 0.2);
        if !is_retry {
            if cx.retry.is_none() && chance(cx.rng, 0.8) {
                *cx.retry = Some(Retry { day: cx.day + 1 + index_of(cx.rng, 3) as u32, amount_cents });
            }
        } else if matches!(cx.plan, Plan::Weekly { .. }) && chance(cx.rng, 0.35) {
            self.lapse_due = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_dates_and_weekdays() {
        // 2026-01-05 (the default start) is a Monday at the start of a term.
        let jan5 = crate::DEFAULT_START_MS / DAY_MS;
        assert_eq!(month_day(jan5), (1, 5));
        assert_eq!(weekday(jan5), 0);
        assert_eq!(month_day(0), (1, 1));
        assert_eq!(month_day(59), (3, 1)); // 1970 is not a leap year
        assert_eq!(month_day(jan5 + 55), (3, 1)); // nor 2026
        assert_eq!(Season::of(jan5), Season::TermStart);
        assert_eq!(Season::of(jan5 + 14), Season::Term);
        let spring: Vec<i64> = (0..120).filter(|d| Season::of(jan5 + d) == Season::Break).collect();
        assert_eq!(spring.len(), 10, "spring break is 10 days");
        assert_eq!(month_day(jan5 + spring[0]), (3, 7));
        assert_eq!(spring.windows(2).filter(|w| w[1] != w[0] + 1).count(), 0, "in one piece");
        // Across a year: every season, the breaks 26 days in all.
        let year: Vec<Season> = (0..365).map(|d| Season::of(jan5 + d)).collect();
        assert_eq!(year.iter().filter(|s| **s == Season::Break).count(), 26);
        assert_eq!(year.iter().filter(|s| **s == Season::TermStart).count(), 28);
    }

    #[test]
    fn segment_rule_follows_the_bands() {
        assert_eq!(segment_of(3.0, 0.05, false), THRIVING);
        assert_eq!(segment_of(3.0, 0.2, false), HEALTHY, "too risky to be thriving");
        assert_eq!(segment_of(1.5, 0.05, false), HEALTHY);
        assert_eq!(segment_of(0.8, 0.05, false), AT_RISK);
        assert_eq!(segment_of(3.0, 0.4, false), AT_RISK);
        assert_eq!(segment_of(3.0, 0.05, true), AT_RISK, "fading");
        assert_eq!(segment_of(0.1, 0.05, false), CHURNED);
        assert_eq!(segment_of(0.1, 0.05, true), CHURNED);
    }

    #[test]
    fn arrivals_follow_the_calendar() {
        let arrivals = Arrivals::new(crate::DEFAULT_START_MS, 90);
        let mut rng = derive(1, 0, Stream::Behaviour);
        let mut per_day = [0u32; 90];
        for _ in 0..20_000 {
            per_day[arrivals.draw(&mut rng).unwrap() as usize] += 1;
        }
        assert_eq!(per_day[0], 0, "nobody signs up on the first day: they are already there");
        let mean =
            |days: std::ops::Range<usize>| f64::from(per_day[days.clone()].iter().sum::<u32>()) / days.len() as f64;
        // Term start (days 1-13) more than an ordinary term week, spring break (days 61-70) least.
        assert!(mean(1..14) > 2.0 * mean(21..56), "{} vs {}", mean(1..14), mean(21..56));
        assert!(mean(61..71) < 0.5 * mean(21..56), "{} vs {}", mean(61..71), mean(21..56));
        assert!(Arrivals::new(crate::DEFAULT_START_MS, 1).draw(&mut rng).is_none());
    }

    #[test]
    fn risk_grows_with_grievance_and_falls_with_tenure() {
        let mut rng = derive(3, 0, Stream::Behaviour);
        let mut life = Life::new(THRIVING, 0, &mut rng);
        life.phase = Phase::Active;
        life.grievance = 0.0;
        life.since_day = -400;
        let settled = life.risk_30d(0);
        assert!((0.01..0.05).contains(&settled), "{settled}");
        life.since_day = 0;
        let new = life.risk_30d(0);
        assert!(new > 3.0 * settled, "new {new} settled {settled}");
        life.since_day = -400;
        let mut last = settled;
        for g in 1..8 {
            life.grievance = f64::from(g);
            let r = life.risk_30d(0);
            assert!(r > last && r < 1.0);
            last = r;
        }
        // An experience on its way counts, the less the later it arrives.
        life.grievance = 0.0;
        life.incoming[3] = 2.0;
        let soon = life.risk_30d(0);
        life.incoming[3] = 0.0;
        life.incoming[7] = 2.0;
        let later = life.risk_30d(0);
        assert!(soon > later && later > settled, "{soon} {later} {settled}");
    }
}
