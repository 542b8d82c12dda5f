//! One customer's life, a day at a time: what it does ([`Customer::simulate_day`]
//! draws events from the customer's behaviour stream) and how the stream
//! delivers it (delays, duplicates and hostility, from a separate noise stream).
//!
//! What drives the behaviour depends on the world ([`WorldKind`]): a Classic
//! customer's segment and parameters (here), a Lifecycle customer's latent
//! life ([`lifecycle`]). Delivery is the same code for both.

mod lifecycle;

use pulse_schemas::{Party, Sentiment, DAY_MS};
use rand_pcg::Pcg64Mcg;

use super::config::{Hostility, Shift, SynthConfig, WorldKind};
use super::profile::{Params, DAILY_TRANSITIONS, DRIFT_PER_DAY};
use super::record::{Body, Class, EventItem, Fault, IdSpace, Item, Op, Pending, PredictionItem, ProfileItem};
use super::rng::{
    chance, derive, index, log_normal, log_uniform, normal, poisson, splitmix64, uniform, unit, weighted, Stream,
};

const SECOND: i64 = 1_000;
const MINUTE: i64 = 60_000;
const HOUR: i64 = 3_600_000;

/// Maximum delay of a delayed event; late records are placed so that every
/// event two days older has arrived before them (see [`Customer::emit`]).
const MAX_DELAY_MS: i64 = 6 * HOUR;

/// What every customer shares: the configuration, pre-digested.
#[derive(Debug)]
pub(crate) struct World {
    pub(crate) seed: u64,
    pub(crate) start_ms: i64,
    /// Segment shares on the first day.
    pub(crate) mix: [f64; 4],
    pub(crate) hostility: Hostility,
    /// Number of tutors (`tut_0000` ...); each serves many customers.
    pub(crate) tutor_pool: u32,
    /// How customers behave.
    pub(crate) kind: WorldKind,
    /// Lifecycle: when the customers not there on the first day sign up.
    arrivals: lifecycle::Arrivals,
    /// A change of behaviour from a day on.
    pub(crate) shift: Option<Shift>,
}

impl World {
    pub(crate) fn new(config: &SynthConfig) -> World {
        World {
            seed: config.seed,
            start_ms: config.start_ms,
            mix: config.mix.shares(),
            hostility: config.hostility,
            tutor_pool: (config.customers / 8).clamp(20, u32::MAX as usize) as u32,
            kind: config.world,
            arrivals: match config.world {
                WorldKind::Classic => lifecycle::Arrivals::default(),
                WorldKind::Lifecycle => lifecycle::Arrivals::new(config.start_ms, config.days),
            },
            shift: config.shift,
        }
    }

    /// A tutor's median reply time in minutes (10 to 120), fixed per tutor.
    fn tutor_reply_median_min(&self, tutor: u32) -> f64 {
        let h = splitmix64(self.seed ^ splitmix64(u64::from(tutor) << 8 | Stream::Tutors as u64));
        10.0 + (h % 1100) as f64 / 10.0
    }
}

/// How the customer pays.
#[derive(Clone, Copy, Debug)]
enum Plan {
    /// A payment after each completed session, at an hourly rate.
    PerSession { hourly_cents: i64 },
    /// A weekly subscription charged on a fixed weekday (0 = Monday).
    Weekly { amount_cents: i64, weekday: u32 },
}

/// A failed payment to be tried again.
#[derive(Clone, Copy, Debug)]
struct Retry {
    day: u32,
    amount_cents: i64,
}

/// A Classic customer's segment and behaviour.
#[derive(Debug)]
struct Segmented {
    segment: usize,
    params: Params,
    target: Params,
    transitions: u32,
}

/// What drives a customer's behaviour, by world.
#[derive(Debug)]
enum Drive {
    Classic(Segmented),
    Lifecycle(lifecycle::Life),
}

/// One customer and everything it remembers between days.
#[derive(Debug)]
pub(crate) struct Customer {
    index: u32,
    behaviour: Pcg64Mcg,
    noise: Pcg64Mcg,
    drive: Drive,
    /// Up to four tutors; the first is the primary one.
    tutors: [u32; 4],
    n_tutors: usize,
    /// The customer's local midnight, as an offset from UTC midnight.
    tz_offset_ms: i64,
    /// Preferred local hour to start a session.
    preferred_hour: f64,
    plan: Plan,
    retry: Option<Retry>,
    next_event: u32,
    next_extra: u32,
    next_record: u32,
    /// Largest `ts` of the behaviour events so far (`i64::MIN` if none).
    clock: i64,
    /// `clock` after the previous day and the one before it.
    clock_history: [i64; 2],
    prediction: Option<PredictionItem>,
    profile: Option<ProfileItem>,
}

impl Customer {
    /// Customer `index` as it is on the first day.
    pub(crate) fn new(world: &World, index: u32) -> Customer {
        match world.kind {
            WorldKind::Classic => Customer::new_classic(world, index),
            WorldKind::Lifecycle => Customer::new_lifecycle(world, index),
        }
    }

    /// Classic customer `index` as it is on the first day.
    fn new_classic(world: &World, index: u32) -> Customer {
        let mut rng = derive(world.seed, u64::from(index), Stream::Behaviour);
        let noise = derive(world.seed, u64::from(index), Stream::Noise);
        let segment = weighted(&mut rng, &world.mix);
        let target = Params::draw(segment, &mut rng);
        let n_tutors = 2 + index_of(&mut rng, 3);
        let mut tutors = [0; 4];
        for i in 0..n_tutors {
            tutors[i] = loop {
                let t = draw_tutor(&mut rng, world.tutor_pool);
                if !tutors[..i].contains(&t) {
                    break t;
                }
            };
        }
        // US time zones: local midnight is 05:00 to 08:00 UTC.
        let tz_offset_ms = [5, 6, 7, 8][weighted(&mut rng, &[0.5, 0.3, 0.07, 0.13])] * HOUR;
        let preferred_hour = uniform(&mut rng, 15.0, 20.5);
        let plan = if chance(&mut rng, 0.55) {
            Plan::PerSession { hourly_cents: (25 + index_of(&mut rng, 56) as i64) * 100 }
        } else {
            Plan::Weekly {
                amount_cents: [4_900, 7_900, 9_900, 14_900][index_of(&mut rng, 4)],
                weekday: index_of(&mut rng, 7) as u32,
            }
        };
        Customer {
            index,
            behaviour: rng,
            noise,
            drive: Drive::Classic(Segmented { segment, params: target.clone(), target, transitions: 0 }),
            tutors,
            n_tutors,
            tz_offset_ms,
            preferred_hour,
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

    /// The customer's segment today (index in [`super::profile::SEGMENTS`]);
    /// `None` for a Lifecycle customer that has not signed up yet.
    pub(crate) fn segment(&self) -> Option<usize> {
        match &self.drive {
            Drive::Classic(s) => Some(s.segment),
            Drive::Lifecycle(life) => life.segment(),
        }
    }

    /// How many times the customer changed segment so far.
    pub(crate) fn transitions(&self) -> u32 {
        match &self.drive {
            Drive::Classic(s) => s.transitions,
            Drive::Lifecycle(life) => life.transitions(),
        }
    }

    /// What the pipeline's predictions written back for this customer are
    /// based on: its segment and sessions a week (`None` before signup).
    fn prediction_basis(&self) -> Option<(usize, f64)> {
        match &self.drive {
            Drive::Classic(s) => Some((s.segment, s.params.sessions_per_week)),
            Drive::Lifecycle(life) => life.segment().map(|segment| (segment, life.rate())),
        }
    }

    /// Lives day `day`: moves segment (Classic, from the second day on) or
    /// steps its latent life (Lifecycle), acts, and appends the records this
    /// causes to `out`. `scratch` is reused between
    /// calls to avoid allocating.
    pub(crate) fn simulate_day(
        &mut self,
        world: &World,
        day: u32,
        scratch: &mut Vec<EventItem>,
        out: &mut Vec<Pending>,
    ) {
        let day_start = world.start_ms + i64::from(day) * DAY_MS;
        scratch.clear();
        match &mut self.drive {
            Drive::Classic(s) => {
                if day > 0 {
                    s.step(&mut self.behaviour, &mut self.tutors, self.n_tutors);
                }
                s.params.drift_toward(&s.target, DRIFT_PER_DAY);
                self.behave(world, day, day_start, scratch);
            }
            Drive::Lifecycle(_) => self.lifecycle_day(world, day, day_start, scratch),
        }
        let settled_clock = self.clock_history[1];
        for event in scratch.iter() {
            self.clock = self.clock.max(event.ts);
            self.emit(world, day_start, settled_clock, *event, out);
        }
        self.non_event_writes(world, day_start, out);
        self.clock_history = [self.clock, self.clock_history[0]];
    }

    /// Draws the day's events from a Classic customer's behaviour.
    fn behave(&mut self, world: &World, day: u32, day_start: i64, events: &mut Vec<EventItem>) {
        let Customer {
            behaviour: rng,
            drive: Drive::Classic(Segmented { params: p, .. }),
            tutors,
            n_tutors,
            next_event,
            ..
        } = self
        else {
            return; // only ever called for a Classic customer
        };
        let local_midnight = day_start + self.tz_offset_ms;
        let at = |hour: f64| local_midnight + (hour * HOUR as f64) as i64;
        let tutors = &tutors[..*n_tutors];
        let mut push = |ts: i64, body: Body| {
            events.push(EventItem {
                ts,
                sk_ts: ts,
                id_space: IdSpace::Behaviour,
                id: *next_event,
                body,
                fault: Fault::None,
            });
            *next_event += 1;
        };
        let mut payments: Vec<(i64, i64, bool)> = Vec::new();

        // A session: login before, completion, maybe a rating, a tutor's
        // follow-up message and a payment after.
        if chance(rng, p.sessions_per_week / 7.0 * Shift::session_factor_on(world.shift, day)) {
            let start = at((self.preferred_hour + 1.2 * normal(rng)).clamp(7.0, 22.5));
            let planned = [30.0, 45.0, 60.0, 90.0, 120.0][weighted(rng, &[0.15, 0.2, 0.45, 0.12, 0.08])];
            let minutes = (planned + 2.0 * normal(rng)).round().clamp(5.0, 600.0) as i64;
            let end = start + minutes * MINUTE;
            let tutor = pick_tutor(rng, p.tutor_consistency, tutors);
            if chance(rng, 0.85) {
                push(start - (uniform(rng, 2.0, 20.0) * MINUTE as f64) as i64, Body::Login);
            }
            push(end, Body::SessionCompleted { tutor, duration_tenths: (minutes * 10) as i32 });
            if chance(rng, p.rating_prob) {
                let bias = if tutor == tutors[0] { 0.1 } else { -0.2 };
                let rating = (p.rating + bias + 0.35 * normal(rng)).clamp(1.0, 5.0);
                let ts = end + log_uniform(rng, MINUTE as f64, 12.0 * HOUR as f64) as i64;
                push(ts, Body::SessionRated { tutor, rating_tenths: (rating * 10.0).round() as i32 });
            }
            if chance(rng, 0.4) {
                let ts = end + (uniform(rng, 5.0, 240.0) * MINUTE as f64) as i64;
                let minutes = log_normal(rng, world.tutor_reply_median_min(tutor), 0.7).min(14_400.0);
                let tutor_id = chance(rng, 0.8).then_some(tutor);
                push(ts, Body::MessageReply { from: Party::Tutor, minutes_tenths: tenths(minutes), tutor: tutor_id });
            }
            if let Plan::PerSession { hourly_cents } = self.plan {
                let ts = end + (uniform(rng, 1.0, 15.0) * MINUTE as f64) as i64;
                payments.push((ts, hourly_cents * minutes / 60, true));
            }
        }

        // Sessions that did not happen.
        if chance(rng, p.student_cancels_per_week / 7.0) {
            let tutor = pick_tutor(rng, p.tutor_consistency, tutors);
            push(at(uniform(rng, 8.0, 22.0)), Body::SessionCancelled { tutor, by: Party::Student });
        }
        if chance(rng, p.tutor_cancels_per_week / 7.0) {
            let tutor = pick_tutor(rng, p.tutor_consistency, tutors);
            push(at(uniform(rng, 8.0, 22.0)), Body::SessionCancelled { tutor, by: Party::Tutor });
        }
        if chance(rng, p.no_shows_per_week / 7.0) {
            let tutor = pick_tutor(rng, p.tutor_consistency, tutors);
            let hour = (self.preferred_hour + normal(rng)).clamp(7.0, 22.5);
            push(at(hour), Body::SessionNoShow { tutor });
        }

        for _ in 0..poisson(rng, p.extra_logins_per_week / 7.0) {
            push(at(uniform(rng, 7.0, 23.5)), Body::Login);
        }

        for _ in 0..poisson(rng, p.messages_per_week / 7.0) {
            let tutor = pick_tutor(rng, p.tutor_consistency, tutors);
            let ts = at(uniform(rng, 7.0, 23.5));
            let body = if chance(rng, 0.55) {
                let minutes = log_normal(rng, p.student_reply_median_min, 0.9).min(14_400.0);
                let tutor = chance(rng, 0.5).then_some(tutor);
                Body::MessageReply { from: Party::Student, minutes_tenths: tenths(minutes), tutor }
            } else {
                let minutes = log_normal(rng, world.tutor_reply_median_min(tutor), 0.7).min(14_400.0);
                let tutor = chance(rng, 0.8).then_some(tutor);
                Body::MessageReply { from: Party::Tutor, minutes_tenths: tenths(minutes), tutor }
            };
            push(ts, body);
        }

        if chance(rng, p.ib_calls_per_30d / 30.0) {
            let sentiment = [Sentiment::Negative, Sentiment::Neutral, Sentiment::Positive][weighted(rng, &p.sentiment)];
            push(at(uniform(rng, 9.0, 18.0)), Body::IbCall { sentiment });
        }

        // Subscription charges and retries of failed payments.
        let weekday = ((world.start_ms.div_euclid(DAY_MS) + i64::from(day) + 3) % 7) as u32;
        if let Plan::Weekly { amount_cents, weekday: charge_day } = self.plan {
            if weekday == charge_day && chance(rng, p.weekly_charge_prob) {
                payments.push((at(uniform(rng, 6.0, 9.0)), amount_cents, true));
            }
        }
        if let Some(retry) = self.retry.filter(|r| r.day == day) {
            self.retry = None;
            payments.push((at(uniform(rng, 6.0, 9.0)), retry.amount_cents, false));
        }
        for (ts, amount_cents, may_retry) in payments {
            let succeeded = chance(rng, p.payment_success);
            if !succeeded && may_retry && chance(rng, 0.6) {
                self.retry = Some(Retry { day: day + 1 + index_of(rng, 3) as u32, amount_cents });
            }
            push(ts, Body::Payment { amount_cents, succeeded });
        }
    }

    /// Sends one behaviour event into the stream, with whatever the
    /// configured [`Hostility`] adds around it.
    fn emit(&mut self, world: &World, day_start: i64, settled_clock: i64, event: EventItem, out: &mut Vec<Pending>) {
        let h = &world.hostility;
        let delayed = chance(&mut self.noise, h.delayed_rate);
        let created = event.ts + if delayed { self.long_delay() } else { self.ingest_delay() };
        let class = if delayed { Class::DelayedEvent } else { Class::Event };
        self.push(out, created, Op::Insert, class, Some(Item::Event(event)), None);

        if chance(&mut self.noise, h.duplicate_rate) {
            let again = created + uniform(&mut self.noise, SECOND as f64, 10.0 * MINUTE as f64) as i64;
            self.push(out, again, Op::Insert, Class::Duplicate, Some(Item::Event(event)), None);
        }
        if h.correction_rate + h.retraction_rate > 0.0 {
            let u = unit(&mut self.noise);
            if u < h.correction_rate {
                let when = created + log_uniform(&mut self.noise, 15.0 * MINUTE as f64, 3.0 * DAY_MS as f64) as i64;
                let fixed = self.corrected(event);
                self.push(out, when, Op::Modify, Class::Correction, Some(Item::Event(fixed)), Some(Item::Event(event)));
            } else if u < h.correction_rate + h.retraction_rate {
                let when = created + log_uniform(&mut self.noise, 15.0 * MINUTE as f64, 7.0 * DAY_MS as f64) as i64;
                self.push(out, when, Op::Remove, Class::Retraction, None, Some(Item::Event(event)));
            }
        }
        if chance(&mut self.noise, h.ttl_remove_rate) {
            let when = day_start + uniform(&mut self.noise, 0.0, DAY_MS as f64) as i64;
            let ts = when - (uniform(&mut self.noise, 90.0, 120.0) * DAY_MS as f64) as i64;
            let old = self.extra_event(ts, Fault::None);
            self.push(out, when, Op::TtlRemove, Class::TtlRemove, None, Some(Item::Event(old)));
        }
        // A late record must be late against the clock the pipeline holds when
        // it arrives. Events of two days back (ts < day_start - 4h) have all
        // arrived by day_start + 2h, so placing the record after day_start + 6h
        // and 31+ days before their clock makes it late for certain.
        if settled_clock > i64::MIN && chance(&mut self.noise, h.late_rate) {
            let when = day_start + 6 * HOUR + uniform(&mut self.noise, 0.0, 18.0 * HOUR as f64) as i64;
            let ts = settled_clock - (uniform(&mut self.noise, 31.0, 60.0) * DAY_MS as f64) as i64;
            let old = self.extra_event(ts, Fault::Late);
            if chance(&mut self.noise, 0.7) {
                self.push(out, when, Op::Insert, Class::Late, Some(Item::Event(old)), None);
            } else {
                self.push(out, when, Op::Remove, Class::Late, None, Some(Item::Event(old)));
            }
        }
        if chance(&mut self.noise, h.future_rate) {
            let when = day_start + uniform(&mut self.noise, 0.0, DAY_MS as f64) as i64;
            let ahead = HOUR + log_uniform(&mut self.noise, 5.0 * MINUTE as f64, 3.0 * DAY_MS as f64) as i64;
            let new = self.extra_event(when + ahead, Fault::Future);
            self.push(out, when, Op::Insert, Class::Future, Some(Item::Event(new)), None);
        }
        if chance(&mut self.noise, h.invalid_rate) {
            let fault = Fault::BREAKING[index_of(&mut self.noise, Fault::BREAKING.len())];
            let ts = day_start + self.tz_offset_ms + (uniform(&mut self.noise, 7.0, 23.5) * HOUR as f64) as i64;
            let when = ts + self.ingest_delay();
            let valid = self.extra_event(ts, Fault::None);
            let broken = EventItem { body: self.body_breaking(fault, valid.body), fault, ..valid };
            if chance(&mut self.noise, 0.8) {
                self.push(out, when, Op::Insert, Class::Invalid, Some(Item::Event(broken)), None);
            } else {
                self.push(out, when, Op::Modify, Class::Invalid, Some(Item::Event(broken)), Some(Item::Event(valid)));
            }
        }
    }

    /// The pipeline's own writes and profile updates landing in the table.
    fn non_event_writes(&mut self, world: &World, day_start: i64, out: &mut Vec<Pending>) {
        let Some((s, velocity)) = self.prediction_basis() else {
            return;
        };
        if !chance(&mut self.noise, world.hostility.non_event_rate) {
            return;
        }
        let rng = &mut self.noise;
        let when = day_start + uniform(rng, 0.0, DAY_MS as f64) as i64;
        if chance(rng, 0.15) {
            let new = ProfileItem {
                updated_ms: when,
                weekly_plan: matches!(self.plan, Plan::Weekly { .. }),
                primary_tutor: self.tutors[0],
            };
            let old = self.profile.replace(new);
            let op = if old.is_some() { Op::Modify } else { Op::Insert };
            self.push(out, when, op, Class::NonEvent, Some(Item::Profile(new)), old.map(Item::Profile));
        } else {
            let churn14 = ([0.05, 0.2, 0.5, 0.85][s] + 0.08 * normal(rng)).clamp(0.0, 1.0);
            let churn30 = (churn14 + uniform(rng, 0.0, 0.12)).clamp(0.0, 1.0);
            let health = ([88.0, 70.0, 50.0, 25.0][s] + 6.0 * normal(rng)).clamp(0.0, 100.0);
            let fss = ([0.9, 0.8, 0.6, 0.3][s] + 0.05 * normal(rng)).clamp(0.0, 1.0);
            let new = PredictionItem {
                as_of: when - (uniform(rng, 1.0, 600.0) * SECOND as f64) as i64,
                first_session_success_milli: (fss * 1000.0).round() as i32,
                session_velocity_tenths: tenths(velocity),
                churn_risk_14d_milli: (churn14 * 1000.0).round() as i32,
                churn_risk_30d_milli: (churn30 * 1000.0).round() as i32,
                health_score_tenths: tenths(health),
            };
            let old = self.prediction.replace(new);
            let op = if old.is_some() { Op::Modify } else { Op::Insert };
            self.push(out, when, op, Class::NonEvent, Some(Item::Prediction(new)), old.map(Item::Prediction));
        }
    }

    fn push(
        &mut self,
        out: &mut Vec<Pending>,
        created_ms: i64,
        op: Op,
        class: Class,
        new: Option<Item>,
        old: Option<Item>,
    ) {
        out.push(Pending { created_ms, customer: self.index, rec_seq: self.next_record, op, class, new, old });
        self.next_record += 1;
    }

    /// Usual time from the event to the stream: milliseconds to seconds.
    fn ingest_delay(&mut self) -> i64 {
        log_normal(&mut self.noise, 300.0, 1.0).clamp(5.0, 10_000.0) as i64
    }

    /// Delay of a delayed event: minutes to hours.
    fn long_delay(&mut self) -> i64 {
        log_uniform(&mut self.noise, 2.0 * MINUTE as f64, MAX_DELAY_MS as f64) as i64
    }

    /// A made-up event of this customer (for TTL, late, future and invalid
    /// records), numbered apart from behaviour events.
    fn extra_event(&mut self, ts: i64, fault: Fault) -> EventItem {
        let body = self.random_body();
        let id = self.next_extra;
        self.next_extra += 1;
        EventItem { ts, sk_ts: ts, id_space: IdSpace::Extra, id, body, fault }
    }

    fn random_body(&mut self) -> Body {
        let rng = &mut self.noise;
        let tutor = self.tutors[index_of(rng, self.n_tutors)];
        match weighted(rng, &[0.2, 0.05, 0.03, 0.15, 0.3, 0.12, 0.05, 0.1]) {
            0 => Body::SessionCompleted { tutor, duration_tenths: 600 },
            1 => Body::SessionCancelled { tutor, by: if chance(rng, 0.7) { Party::Student } else { Party::Tutor } },
            2 => Body::SessionNoShow { tutor },
            3 => Body::SessionRated { tutor, rating_tenths: 30 + index_of(rng, 21) as i32 },
            4 => Body::Login,
            5 => Body::Payment { amount_cents: 4_900, succeeded: chance(rng, 0.8) },
            6 => Body::IbCall { sentiment: Sentiment::Neutral },
            _ => Body::MessageReply { from: Party::Student, minutes_tenths: 300, tutor: Some(tutor) },
        }
    }

    /// A body the fault applies to: numbers where the fault is about a
    /// number, values out of range for [`Fault::OutOfRange`], and so on.
    fn body_breaking(&mut self, fault: Fault, body: Body) -> Body {
        let rng = &mut self.noise;
        let tutor = self.tutors[0];
        let pick = index_of(rng, 4);
        match fault {
            Fault::OutOfRange => match pick {
                0 => Body::SessionCompleted {
                    tutor,
                    duration_tenths: if chance(rng, 0.5) { 0 } else { 6_005 + index_of(rng, 3_000) as i32 },
                },
                1 => Body::SessionRated {
                    tutor,
                    rating_tenths: if chance(rng, 0.5) {
                        index_of(rng, 10) as i32
                    } else {
                        51 + index_of(rng, 50) as i32
                    },
                },
                2 => Body::Payment { amount_cents: -(1 + index_of(rng, 10_000) as i64), succeeded: true },
                _ => Body::MessageReply {
                    from: Party::Tutor,
                    minutes_tenths: -(1 + index_of(rng, 600) as i32),
                    tutor: None,
                },
            },
            Fault::NotANumber => match pick {
                0 => Body::SessionCompleted { tutor, duration_tenths: 600 },
                1 => Body::SessionRated { tutor, rating_tenths: 40 },
                2 => Body::Payment { amount_cents: 4_900, succeeded: true },
                _ => Body::MessageReply { from: Party::Student, minutes_tenths: 300, tutor: None },
            },
            Fault::NotAllowed => match pick {
                0 => Body::SessionCancelled { tutor, by: Party::Student },
                1 => Body::Payment { amount_cents: 4_900, succeeded: false },
                2 => Body::IbCall { sentiment: Sentiment::Negative },
                _ => Body::MessageReply { from: Party::Student, minutes_tenths: 300, tutor: None },
            },
            _ => body,
        }
    }

    /// The event as a correction rewrites it: another rating, duration,
    /// amount, status, sentiment or reply time, or (for types with nothing to
    /// correct, and sometimes for all) a `ts` moved while the key stays.
    fn corrected(&mut self, event: EventItem) -> EventItem {
        let rng = &mut self.noise;
        let body = match event.body {
            _ if chance(rng, 0.2) => None,
            Body::SessionCompleted { tutor, duration_tenths } => {
                let change = (50 + index_of(rng, 250)) as i32 * if chance(rng, 0.5) { 1 } else { -1 };
                Some(Body::SessionCompleted { tutor, duration_tenths: (duration_tenths + change).clamp(10, 6_000) })
            }
            Body::SessionRated { tutor, rating_tenths } => {
                let rating_tenths = if rating_tenths >= 30 { rating_tenths - 10 } else { rating_tenths + 10 };
                Some(Body::SessionRated { tutor, rating_tenths })
            }
            Body::Payment { amount_cents, succeeded: false } => Some(Body::Payment { amount_cents, succeeded: true }),
            Body::Payment { amount_cents, succeeded: true } => {
                let refunded = (amount_cents as f64 * uniform(rng, 0.5, 0.95)).round() as i64;
                Some(Body::Payment { amount_cents: refunded, succeeded: true })
            }
            Body::IbCall { sentiment } => Some(Body::IbCall {
                sentiment: match sentiment {
                    Sentiment::Negative => Sentiment::Neutral,
                    Sentiment::Neutral => Sentiment::Negative,
                    Sentiment::Positive => Sentiment::Neutral,
                },
            }),
            Body::MessageReply { from, minutes_tenths, tutor } => Some(Body::MessageReply {
                from,
                minutes_tenths: (f64::from(minutes_tenths) * uniform(rng, 0.5, 1.5)).round() as i32 + 1,
                tutor,
            }),
            Body::SessionCancelled { .. } | Body::SessionNoShow { .. } | Body::Login => None,
        };
        match body {
            Some(body) => EventItem { body, ..event },
            None => {
                // Earlier by up to two hours or later by up to 30 minutes: never
                // more than an hour after the correction's own creation time.
                let shift = if chance(rng, 0.7) {
                    -(uniform(rng, 1.0, 120.0) * MINUTE as f64) as i64
                } else {
                    (uniform(rng, 1.0, 30.0) * MINUTE as f64) as i64
                };
                EventItem { ts: event.ts + shift, ..event }
            }
        }
    }
}

impl Segmented {
    /// The daily Markov step of [`DAILY_TRANSITIONS`]. A customer entering a
    /// segment draws new target behaviour and sometimes a new primary tutor.
    fn step(&mut self, rng: &mut Pcg64Mcg, tutors: &mut [u32; 4], n_tutors: usize) {
        let row = DAILY_TRANSITIONS[self.segment];
        let mut u = unit(rng);
        let Some(next) = (0..4).find(|&j| {
            u -= row[j];
            u < 0.0
        }) else {
            return;
        };
        let declining = next > self.segment;
        self.segment = next;
        self.transitions += 1;
        self.target = Params::draw(next, rng);
        if chance(rng, if declining { 0.3 } else { 0.15 }) {
            let other = 1 + index_of(rng, n_tutors - 1);
            tutors.swap(0, other);
        }
    }
}

/// The primary tutor with probability `consistency`, else another of the customer's.
fn pick_tutor(rng: &mut Pcg64Mcg, consistency: f64, tutors: &[u32]) -> u32 {
    if tutors.len() == 1 || chance(rng, consistency) {
        tutors[0]
    } else {
        tutors[1 + index_of(rng, tutors.len() - 1)]
    }
}

/// A tutor from the shared pool; low ids are more popular.
fn draw_tutor(rng: &mut Pcg64Mcg, pool: u32) -> u32 {
    ((f64::from(pool) * unit(rng).powf(1.6)) as u32).min(pool - 1)
}

fn index_of(rng: &mut Pcg64Mcg, n: usize) -> usize {
    index(rng, n)
}

/// A non-negative quantity in tenths, rounded.
fn tenths(x: f64) -> i32 {
    (x.max(0.0) * 10.0).round() as i32
}
