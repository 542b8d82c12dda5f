//! Point-in-time training rows from a capture: every kept vector's 46
//! features exactly as the serving engine computed them at its `as_of`, and
//! its labels from what the customer did afterwards (`docs/LABELS.md`).
//!
//! Two passes over the file, so the rows never have to be held in memory:
//!
//! 1. [`LabelBook`] reads every record and keeps, per customer, only what
//!    the labels read (32 bytes per session, rating, payment or support call: time, kind,
//!    tutor, rating), with
//!    the stream's own rules for what "happened" means: a redelivered event
//!    counts once, a correction replaces the event it corrects, a retraction
//!    removes it, a TTL expiry changes nothing, an invalid record applies
//!    nothing. A late event (dropped by the engine, §2) still happened, so it
//!    still counts for the labels of earlier vectors.
//! 2. The capture is replayed through the same decode → engine path as
//!    `pulse replay` (daily timers on), and each kept vector is labelled from
//!    the book and handed on (to a Parquet/CSV writer, or to training).
//!
//! A row is labelled only when its whole 30-day horizon lies inside the
//! capture (`as_of + 30 days <= the capture's end`) and its windows have had
//! time to fill (`as_of >= the capture's start + burn-in`); other vectors
//! are dropped, or, with [`RowPolicy::all_rows`], kept with empty labels,
//! never labelled from missing data. The capture's start and end are its
//! records' creation times (the stream's clock), or, for a capture of events
//! written long after they happened (a table loaded with its history), the
//! times of the events the engine accepts: [`LabelBook::span`].

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use pulse_model::Targets;
use pulse_operators::{Engine, EngineConfig};
use pulse_runtime::archive::InputFormat;
use pulse_runtime::io::is_stdin;
use pulse_runtime::process::{Behind, Processor, Produced};
use pulse_runtime::replay::for_each_line;
use pulse_schemas::capture::decode_line;
use pulse_schemas::record::Invalid;
use pulse_schemas::{Event, EventKind, Features, PaymentStatus, Source, StreamChange, StreamRecord, Trigger, DAY_MS};
use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

/// Label horizons.
pub const H14: i64 = 14 * DAY_MS;
/// See [`H14`].
pub const H30: i64 = 30 * DAY_MS;

/// A customer's future as the labels read it: its held events, sorted by time.
#[derive(Debug, Default, Clone)]
pub struct Future {
    /// Completed sessions: (ts, tutor hash).
    pub sessions: Vec<(i64, u32)>,
    /// Ratings: (ts, tutor hash, rating).
    pub ratings: Vec<(i64, u32, f32)>,
    /// Inbound support calls' ts.
    pub ib_calls: Vec<i64>,
    /// Payments: (ts, succeeded).
    pub payments: Vec<(i64, bool)>,
}

/// What one record did to one event, as the labels need it.
#[derive(Clone, Copy, Debug)]
struct Op {
    event: u64,
    ts: i64,
    tutor: u32,
    rating: f32,
    kind: u8,
    add: bool,
}

const OTHER: u8 = 0;
const SESSION: u8 = 1;
const RATING: u8 = 2;
const PAID: u8 = 3;
const PAYMENT_FAILED: u8 = 4;
const IB_CALL: u8 = 5;

fn tutor_hash(tutor: &str) -> u32 {
    xxh3_64(tutor.as_bytes()) as u32
}

impl Op {
    fn of(e: &Event<'_>, add: bool) -> Op {
        let (kind, tutor, rating) = match &e.kind {
            EventKind::SessionCompleted { tutor_id, .. } => (SESSION, tutor_hash(tutor_id), f32::NAN),
            EventKind::SessionRated { tutor_id, rating } => (RATING, tutor_hash(tutor_id), *rating as f32),
            EventKind::Payment { status: PaymentStatus::Succeeded, .. } => (PAID, 0, f32::NAN),
            EventKind::Payment { status: PaymentStatus::Failed, .. } => (PAYMENT_FAILED, 0, f32::NAN),
            EventKind::IbCall { .. } => (IB_CALL, 0, f32::NAN),
            _ => (OTHER, 0, f32::NAN),
        };
        Op { event: xxh3_64(e.event_id.as_bytes()), ts: e.ts.0, tutor, rating, kind, add }
    }
}

/// Pass 1: per customer, the event operations the labels need, in stream order.
#[derive(Debug, Default)]
pub struct LabelBook {
    /// Per customer: its operations, and its clock as the engine keeps it
    /// (FEATURES.md §2: the largest `ts` of its accepted events), to tell
    /// which added events the engine accepts and which it drops as late.
    ops: HashMap<String, (Option<i64>, Vec<Op>)>,
    /// Smallest and largest record creation time (ms): the stream's clock.
    created: Option<(i64, i64)>,
    /// Smallest and largest `ts` of an added event the engine accepts (not
    /// late; invalid and future ones are dead letters, never observed).
    accepted: Option<(i64, i64)>,
    /// Accepted added events per UTC day (days since the epoch): where the
    /// bulk of the events lies, for a span in event time that one stray
    /// event cannot move ([`LabelBook::span`]).
    accepted_days: BTreeMap<i64, DayEvents>,
    /// Accepted added events written within a day of happening (their
    /// record created at most [`LIVE_LAG_MS`] after their `ts`), and the others.
    live_events: u64,
    written_later: u64,
    /// Lines read.
    pub records: u64,
    /// The largest step forward of the stream's clock (the latest creation
    /// time so far) between one record and the next that carry a creation
    /// time: (from, to), ms.
    pub largest_gap: Option<(i64, i64)>,
    /// Records created well before the stream's clock when they came: the
    /// capture is out of stream order.
    pub behind: Behind,
    /// Dead letters (records the decoder refuses) by reason code.
    pub invalid: BTreeMap<&'static str, u64>,
    /// What the records were (a Kinesis archive is read as capture lines).
    pub format: InputFormat,
}

/// A step of the stream's clock longer than this is worth a warning: the
/// records after it (a gap of months between two captures put together, a
/// record dated decades ahead) move every customer's timers, and so the
/// rows and their labels, that far.
pub const GAP_WARNING_MS: i64 = 30 * DAY_MS;

/// The accepted events of one UTC day: how many, the first and the last `ts`.
#[derive(Clone, Copy, Debug)]
struct DayEvents {
    n: u64,
    first: i64,
    last: i64,
}

/// The share of accepted events, at each end, that cannot move a span in
/// event time ([`LabelBook::events_span`]): one in a thousand.
pub const SPAN_TRIM: f64 = 0.001;

/// A capture with more than this share of dead letters gets a warning
/// ([`LabelBook::invalid_warning`]).
pub const INVALID_WARNING_SHARE: f64 = 0.01;

/// The UTC day of a time in ms, as the data commands' summaries print it
/// ("2026-01-05"; the number itself if it is out of chrono's range).
pub fn utc_day(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or(ms.to_string(), |t| t.format("%Y-%m-%d").to_string())
}

/// An event whose record was created at most this long after its `ts` was
/// written as it happened (see [`CaptureSpan`]).
pub const LIVE_LAG_MS: i64 = DAY_MS;

/// How the capture's span, which places the burn-in, the labels' horizon
/// and the out-of-time cut, was measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum SpanClock {
    /// The stream's own clock: the first and last record's
    /// `ApproximateCreationDateTime`. Used when most events were written as
    /// they happened (a live stream): an event back-dated in its `ts` (late,
    /// replayed, or simply wrong) then cannot move the span.
    Created,
    /// Event time: the smallest and largest `ts` of the events the engine
    /// accepts (not dropped as late). Used when most events were written
    /// more than a day after they happened: a table loaded with its history
    /// streams records created within minutes, and only `ts` says when
    /// things happened.
    Events,
}

impl SpanClock {
    /// How it is named in outputs.
    pub fn describe(self) -> &'static str {
        match self {
            SpanClock::Created => "its records' creation times (the stream's clock)",
            SpanClock::Events => {
                "the times of the events the engine accepts (a capture of events written after they happened)"
            }
        }
    }
}

/// The capture's span (ms) and how it was measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CaptureSpan {
    /// The capture's start: rows begin the burn-in after it; the cut is counted from it.
    pub first: i64,
    /// The capture's end: a row's 30-day horizon must close by it.
    pub last: i64,
    /// Which clock measured them.
    pub clock: SpanClock,
}

impl LabelBook {
    /// Takes one decoded record into account (invalid records apply nothing).
    pub fn observe(&mut self, record: &StreamRecord<'_>) {
        let created = record.created_ms.map(|c| c.floor() as i64);
        if let Some(c) = created {
            self.behind.observe(c, self.created.map(|(_, clock)| clock));
            if let Some((_, clock)) = self.created.filter(|&(_, clock)| c > clock) {
                if self.largest_gap.is_none_or(|(from, to)| c - clock > to - from) {
                    self.largest_gap = Some((clock, c));
                }
            }
            self.created = Some(self.created.map_or((c, c), |(a, b)| (a.min(c), b.max(c))));
        }
        let (customer, ops): (&str, [Option<Op>; 2]) = match &record.change {
            StreamChange::Insert(e) => (&e.customer_id, [Some(Op::of(e, true)), None]),
            StreamChange::Remove(e) => (&e.customer_id, [Some(Op::of(e, false)), None]),
            StreamChange::Modify { old, new } => match record.change.customer_id() {
                Some(c) => (c, [old.as_ref().map(|e| Op::of(e, false)), new.as_ref().map(|e| Op::of(e, true))]),
                None => return,
            },
            StreamChange::TtlExpiry | StreamChange::NotAnEvent => return,
        };
        let (clock, list) = match self.ops.get_mut(customer) {
            Some(held) => held,
            None => self.ops.entry(customer.to_owned()).or_default(),
        };
        // The engine's late rule (FEATURES.md §2), with the clock as it was
        // before the record: only added events it accepts place the span in
        // event time.
        let clock_before = *clock;
        // Logins, messages, cancellations and no-shows feed no label.
        for op in ops.into_iter().flatten() {
            let late = clock_before.is_some_and(|c| op.ts <= c.saturating_sub(H30));
            if op.add && !late {
                self.accepted = Some(self.accepted.map_or((op.ts, op.ts), |(a, b)| (a.min(op.ts), b.max(op.ts))));
                let day = self.accepted_days.entry(op.ts.div_euclid(DAY_MS)).or_insert(DayEvents {
                    n: 0,
                    first: op.ts,
                    last: op.ts,
                });
                (day.n, day.first, day.last) = (day.n + 1, day.first.min(op.ts), day.last.max(op.ts));
                *clock = Some(clock.map_or(op.ts, |c| c.max(op.ts)));
                match created {
                    Some(c) if c - op.ts > LIVE_LAG_MS => self.written_later += 1,
                    _ => self.live_events += 1,
                }
            }
            if op.kind != OTHER {
                list.push(op);
            }
        }
    }

    /// What a user should know about the capture before trusting its rows:
    /// a jump of the stream's clock ([`LabelBook::gap_warning`]), records
    /// out of stream order ([`Behind`]), dead letters
    /// ([`LabelBook::invalid_warning`]).
    pub fn warnings(&self) -> Vec<String> {
        let format = (self.format != InputFormat::Capture).then(|| format!("note: read as {}", self.format.describe()));
        [format, self.gap_warning(), self.behind.warning("the capture"), self.invalid_warning(), self.span_warning()]
            .into_iter()
            .flatten()
            .collect()
    }

    /// Refuses a capture every record of which is a dead letter, saying
    /// why the commonest were refused: otherwise the data commands went on
    /// to "the capture holds no event" or "too few customers ... use a
    /// history of more customers", when the file was in another format
    /// (Kinesis payloads in milliseconds, a DynamoDB export to S3).
    pub fn check_usable(&self, data: &str) -> Result<()> {
        anyhow::ensure!(self.records > 0, "{data} holds no records (is it the file meant?)");
        let total = self.invalid_total();
        anyhow::ensure!(
            total == 0 || total < self.records,
            "{data}: every one of its {total} records is a dead letter ({}): is it a capture (one DynamoDB Streams \
             record per line, as `pulse capture` writes) or a Kinesis Data Streams for DynamoDB archive? `pulse replay {data} --features-out /dev/null \
             --dead-letter-out FILE` says why each was refused",
            self.commonest_invalid()
        );
        Ok(())
    }

    /// Dead letters in all.
    pub fn invalid_total(&self) -> u64 {
        self.invalid.values().sum()
    }

    /// A warning when more than [`INVALID_WARNING_SHARE`] of the records
    /// are dead letters, naming the commonest reasons: their events are in
    /// no row and no label, and a share that large is a capture in another
    /// format or a writer's bug, not noise.
    pub fn invalid_warning(&self) -> Option<String> {
        let total = self.invalid_total();
        if total == 0 || (total as f64) < INVALID_WARNING_SHARE * self.records as f64 {
            return None;
        }
        Some(format!(
            "warning: {total} of the capture's {} records ({:.1}%) are dead letters, in no row and no label ({}); \
             `pulse replay CAPTURE --dead-letter-out FILE` says why each was refused",
            self.records,
            100.0 * total as f64 / self.records.max(1) as f64,
            self.commonest_invalid()
        ))
    }

    /// The dead letters' commonest reasons: "future_event 14261, malformed 2".
    pub fn commonest_invalid(&self) -> String {
        let mut by_count: Vec<(&&str, &u64)> = self.invalid.iter().collect();
        by_count.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        by_count.iter().take(3).map(|(code, n)| format!("{code} {n}")).collect::<Vec<_>>().join(", ")
    }

    /// A warning when the stream's clock jumps more than [`GAP_WARNING_MS`]
    /// between two records, naming the days.
    pub fn gap_warning(&self) -> Option<String> {
        let (from, to) = self.largest_gap.filter(|(from, to)| to - from > GAP_WARNING_MS)?;
        Some(format!(
            "warning: the stream's clock jumps {:.0} days, from {} to {}: every customer's timers, rows and labels \
             follow it (is the capture two put together, or a record dated far ahead?)",
            (to - from) as f64 / DAY_MS as f64,
            utc_day(from),
            utc_day(to)
        ))
    }

    /// Reads a whole capture (pass 1). `progress` gets the file's bytes read.
    pub fn scan(path: &Path, progress: &mut dyn FnMut(u64)) -> Result<LabelBook> {
        let mut book = LabelBook::default();
        book.format = for_each_line(
            path,
            &mut |line| {
                book.records += 1;
                match line.map(decode_line) {
                    Ok(Ok(record)) => book.observe(&record),
                    Ok(Err(invalid)) | Err(invalid) => *book.invalid.entry(invalid.reason.code()).or_default() += 1,
                }
            },
            progress,
        )?;
        Ok(book)
    }

    /// The capture's span, if it holds an accepted event: on the stream's
    /// clock (record creation times) when most accepted events were written
    /// within a day of happening, else in event time (see [`SpanClock`]).
    ///
    /// Either way one record cannot move it far: a back-dated event of a
    /// live stream does not move the creation times, a late event is not
    /// accepted, and in event time the outermost events are left out
    /// ([`LabelBook::events_span`]). (Before, the span was the smallest and largest `ts` of
    /// any added event: one login of a new customer dated 200 days back, or
    /// the late events of a hostile stream, moved the burn-in and the cut by
    /// months, and rows were labelled from windows that were still empty.)
    pub fn span(&self) -> Option<CaptureSpan> {
        let (first, last) = self.accepted?;
        match self.live_stream_span() {
            Some((a, b)) => Some(CaptureSpan { first: a, last: b, clock: SpanClock::Created }),
            None => {
                let (first, last, _) = self.events_span(first, last);
                Some(CaptureSpan { first, last, clock: SpanClock::Events })
            }
        }
    }

    /// The span in event time: from the first to the last accepted event
    /// of the days left once the outermost [`SPAN_TRIM`] of the accepted
    /// events on each side are set aside (whole days: a capture without
    /// strays keeps its exact first and last `ts`). Returns how many events
    /// were set aside, too.
    ///
    /// A table loaded with its history streams every record within
    /// minutes, so only `ts` places the span; one login of a new customer
    /// dated 200 days back moved the start, the burn-in and the cut for
    /// everyone (rows labelled from windows still filling, the out-of-time
    /// evaluation skipped), and a stray event after the history's end
    /// would close labels' horizons over days with no data.
    fn events_span(&self, first: i64, last: i64) -> (i64, i64, u64) {
        let total: u64 = self.accepted_days.values().map(|d| d.n).sum();
        let trim = (total as f64 * SPAN_TRIM).floor() as u64;
        fn kept<'a>(mut days: impl Iterator<Item = (&'a i64, &'a DayEvents)>, trim: u64) -> Option<(i64, DayEvents)> {
            let mut seen = 0;
            days.find(|(_, d)| {
                seen += d.n;
                seen > trim
            })
            .map(|(day, d)| (*day, *d))
        }
        let (Some((first_day, lo)), Some((last_day, hi))) =
            (kept(self.accepted_days.iter(), trim), kept(self.accepted_days.iter().rev(), trim))
        else {
            return (first, last, 0);
        };
        let outside: u64 =
            self.accepted_days.iter().filter(|(d, _)| **d < first_day || **d > last_day).map(|(_, d)| d.n).sum();
        (lo.first, hi.last, outside)
    }

    /// A warning when the span in event time left stray events out
    /// ([`LabelBook::events_span`]).
    /// The stream's clock span, when most accepted events were written as
    /// they happened ([`SpanClock::Created`]).
    fn live_stream_span(&self) -> Option<(i64, i64)> {
        self.created.filter(|_| self.live_events >= self.written_later)
    }

    fn span_warning(&self) -> Option<String> {
        let (first, last) = self.accepted?;
        if self.live_stream_span().is_some() {
            return None;
        }
        let (lo, hi, outside) = self.events_span(first, last);
        (outside > 0).then(|| {
            format!(
                "warning: {outside} of the capture's events lie outside the days holding all but its outermost \
                 {}% (from {} to {}; events dated as early as {} and as late as {}): the span, the burn-in and the \
                 cut are placed from the bulk, and those events' customers' windows hold them as usual",
                SPAN_TRIM * 100.0,
                utc_day(lo),
                utc_day(hi),
                utc_day(first),
                utc_day(last)
            )
        })
    }

    /// Resolves each customer's operations into the events it holds in the
    /// end (duplicates once, corrections and retractions applied).
    pub fn into_futures(self) -> Futures {
        let span = self.span();
        let mut by_customer = HashMap::with_capacity(self.ops.len());
        for (customer, (_, ops)) in self.ops {
            let mut held: HashMap<u64, Op> = HashMap::with_capacity(ops.len());
            for op in ops {
                if op.add {
                    held.entry(op.event).or_insert(op);
                } else {
                    held.remove(&op.event);
                }
            }
            let mut f = Future::default();
            for op in held.into_values() {
                match op.kind {
                    SESSION => f.sessions.push((op.ts, op.tutor)),
                    RATING => f.ratings.push((op.ts, op.tutor, op.rating)),
                    PAID | PAYMENT_FAILED => f.payments.push((op.ts, op.kind == PAID)),
                    IB_CALL => f.ib_calls.push(op.ts),
                    _ => {}
                }
            }
            f.sessions.sort_unstable();
            f.ib_calls.sort_unstable();
            f.payments.sort_unstable();
            f.ratings.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.total_cmp(&b.2)));
            by_customer.insert(customer, f);
        }
        Futures { by_customer, span }
    }
}

/// Every customer's future, resolved.
#[derive(Debug, Default)]
pub struct Futures {
    by_customer: HashMap<String, Future>,
    span: Option<CaptureSpan>,
}

impl Futures {
    /// A customer's future (empty for one with no held events).
    pub fn of(&self, customer: &str) -> &Future {
        static EMPTY: Future =
            Future { sessions: Vec::new(), ratings: Vec::new(), ib_calls: Vec::new(), payments: Vec::new() };
        self.by_customer.get(customer).unwrap_or(&EMPTY)
    }

    /// Customers with any event operation.
    pub fn customers(&self) -> usize {
        self.by_customer.len()
    }

    /// Their ids.
    pub fn customer_ids(&self) -> impl Iterator<Item = &str> {
        self.by_customer.keys().map(String::as_str)
    }

    /// The capture's span ([`LabelBook::span`]).
    pub fn span(&self) -> Option<CaptureSpan> {
        self.span
    }
}

/// The labels of a vector of a customer as of `t` (see `docs/LABELS.md`):
/// only events strictly after `t` count.
pub fn label(f: &Future, t: i64) -> Targets {
    let after = f.sessions.partition_point(|(ts, _)| *ts <= t);
    let upto = |h: i64| f.sessions[after..].partition_point(|(ts, _)| *ts <= t + h) + after;
    let (n14, n30) = (upto(H14) - after, upto(H30) - after);
    // The first session after T within 14 days, rated >= 4 by the first rating
    // of that tutor in the day after it.
    let first_success = f.sessions.get(after).filter(|(ts, _)| *ts <= t + H14).is_some_and(|(ts, tutor)| {
        f.ratings
            .iter()
            .find(|(rts, rtutor, _)| rts >= ts && *rts <= ts + DAY_MS && rtutor == tutor)
            .is_some_and(|(_, _, r)| *r >= 4.0)
    });
    Targets {
        first_session_success: f32::from(u8::from(first_success)),
        session_velocity: n14 as f32 / 2.0,
        churn_risk_14d: f32::from(u8::from(n14 == 0)),
        churn_risk_30d: f32::from(u8::from(n30 == 0)),
        health_score: health(&Next30::of(f, t, &f.sessions[after..upto(H30)])) as f32,
    }
}

/// What a customer does in (T, T + 30 days], as the health label reads it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Next30 {
    /// Completed sessions.
    pub sessions: usize,
    /// Mean rating given, if any.
    pub mean_rating: Option<f64>,
    /// Inbound support calls.
    pub ib_calls: usize,
    /// Share of payments that went through, if any was attempted.
    pub payment_success: Option<f64>,
    /// Share of the sessions taken with the customer's most frequent tutor, if any session.
    pub tutor_consistency: Option<f64>,
}

impl Next30 {
    fn of(f: &Future, t: i64, sessions: &[(i64, u32)]) -> Next30 {
        let window = |ts: i64| ts > t && ts <= t + H30;
        let ratings: Vec<f64> = f.ratings.iter().filter(|r| window(r.0)).map(|r| f64::from(r.2)).collect();
        let payments: Vec<bool> = f.payments.iter().filter(|p| window(p.0)).map(|p| p.1).collect();
        let mut tutors: Vec<u32> = sessions.iter().map(|s| s.1).collect();
        tutors.sort_unstable();
        let top = tutors.chunk_by(|a, b| a == b).map(<[u32]>::len).max();
        Next30 {
            sessions: sessions.len(),
            mean_rating: (!ratings.is_empty()).then(|| ratings.iter().sum::<f64>() / ratings.len() as f64),
            ib_calls: f.ib_calls.iter().filter(|&&ts| window(ts)).count(),
            payment_success: (!payments.is_empty())
                .then(|| payments.iter().filter(|&&ok| ok).count() as f64 / payments.len() as f64),
            tutor_consistency: top.map(|n| n as f64 / sessions.len() as f64),
        }
    }
}

/// Places `x` on the health scale by piecewise-linear interpolation through
/// `anchors` (value, health), sorted by value; beyond the ends the end
/// segments continue; the result is clamped to 0–100.
fn on_scale(x: f64, anchors: &[(f64, f64); 4]) -> f64 {
    let i = anchors.iter().skip(1).take(2).take_while(|a| x > a.0).count();
    let ((x0, y0), (x1, y1)) = (anchors[i], anchors[i + 1]);
    (y0 + (x - x0) * (y1 - y0) / (x1 - x0)).clamp(0.0, 100.0)
}

/// Health, 0–100, from the customer's next 30 days, read on the five
/// dimensions by which the marketplace defines its segments (FEATURES.md
/// §7: sessions per week, rating, support calls, payment success, tutor
/// consistency). Each dimension is placed on the §6 health scale by the
/// segment whose typical value (the middle of its §7 range) it matches:
/// churned → 20, at risk → 50, healthy → 70, thriving → 90, linear between.
/// Health is their weighted mean (sessions 0.4, each other 0.15; a dimension
/// with nothing to measure — no rating, no payment — is left out). A
/// customer with no session at all in the 30 days gets the sessions score
/// alone: a month without a session is not healthy, whatever else it holds.
pub fn health(n: &Next30) -> f64 {
    let per_week = n.sessions as f64 / (30.0 / 7.0);
    let sessions = on_scale(per_week, &[(0.1, 20.0), (0.5, 50.0), (2.0, 70.0), (4.0, 90.0)]);
    if n.sessions == 0 {
        return sessions;
    }
    let parts = [
        (0.4, Some(sessions)),
        (0.15, n.mean_rating.map(|r| on_scale(r, &[(2.75, 20.0), (3.5, 50.0), (4.15, 70.0), (4.5, 90.0)]))),
        (0.15, Some(on_scale(-(n.ib_calls as f64), &[(-3.0, 20.0), (-1.5, 50.0), (-0.5, 70.0), (0.0, 90.0)]))),
        (0.15, n.payment_success.map(|p| on_scale(p, &[(0.65, 20.0), (0.80, 50.0), (0.925, 70.0), (0.975, 90.0)]))),
        (0.15, n.tutor_consistency.map(|c| on_scale(c, &[(0.35, 20.0), (0.55, 50.0), (0.775, 70.0), (0.925, 90.0)]))),
    ];
    let (sum, weight) =
        parts.iter().filter_map(|(w, v)| v.map(|v| (w * v, *w))).fold((0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1));
    sum / weight
}

/// Which customer group a row belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Split {
    /// Fitting (70% of customers).
    Train,
    /// Early stopping and calibration (15%).
    Valid,
    /// Held out (15%).
    Test,
}

impl Split {
    /// A customer's group: a seeded hash of its id, so the split needs no
    /// list of customers and a customer is in one group in every file.
    pub fn of(customer: &str, seed: u64) -> Split {
        match xxh3_64_with_seed(customer.as_bytes(), seed) % 100 {
            0..70 => Split::Train,
            70..85 => Split::Valid,
            _ => Split::Test,
        }
    }

    /// Its name in files and reports.
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Valid => "valid",
            Split::Test => "test",
        }
    }
}

/// Where a row lies against the out-of-time cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Period {
    /// Its whole label horizon ends at or before the cut: usable for fitting.
    Before,
    /// `as_of` at or after the cut: the future the model is tested on.
    After,
    /// Its label horizon straddles the cut: in neither side of the
    /// out-of-time split (its label reads data after the cut).
    Straddles,
}

impl Period {
    /// The period of a row as of `as_of` against `cut`.
    pub fn of(as_of: i64, cut: i64) -> Period {
        if as_of + H30 <= cut {
            Period::Before
        } else if as_of >= cut {
            Period::After
        } else {
            Period::Straddles
        }
    }

    /// Its name in files and reports.
    pub fn name(self) -> &'static str {
        match self {
            Period::Before => "before_cut",
            Period::After => "after_cut",
            Period::Straddles => "straddles_cut",
        }
    }
}

/// Which vectors become rows.
#[derive(Clone, Debug)]
pub struct RowPolicy {
    /// Rows start this many days after the capture's start ([`LabelBook::span`]).
    pub burn_in_days: i64,
    /// Keep one event-triggered vector in this many (every timer vector is kept).
    pub event_sample_every: u64,
    /// Seeds the customer split.
    pub split_seed: u64,
    /// The out-of-time cut, in ms after the capture's start (known
    /// once the labels' pass has read it); `None`: [`default_cut`].
    pub cut_after_first: Option<i64>,
    /// Also keep vectors whose horizon is not inside the capture (labels empty).
    pub all_rows: bool,
}

impl Default for RowPolicy {
    fn default() -> Self {
        RowPolicy { burn_in_days: 21, event_sample_every: 4, split_seed: 7, cut_after_first: None, all_rows: false }
    }
}

/// The cut that gives the out-of-time training rows (horizon ending before
/// it) and test rows (`as_of` after it) equal spans of `as_of`, on a day
/// boundary: with labelled `as_of` in `[a, b]`, `cut = (a + b + 30 d) / 2`.
pub fn default_cut(first_row: i64, last_row: i64) -> i64 {
    let cut = (first_row + last_row + H30) / 2;
    cut - cut.rem_euclid(DAY_MS)
}

/// One training row.
#[derive(Clone, Debug)]
pub struct Row {
    /// The customer.
    pub customer_id: String,
    /// `T` (ms).
    pub as_of: i64,
    /// What made the vector.
    pub trigger: Trigger,
    /// The features as the engine computed them at `as_of`.
    pub features: Features,
    /// The labels; `None` when the horizon is not inside the capture.
    pub targets: Option<Targets>,
    /// The customer group.
    pub split: Split,
    /// Against the out-of-time cut.
    pub period: Period,
}

/// What pass 2 saw.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct RowStats {
    /// Lines read.
    pub records: u64,
    /// Records that are dead letters (invalid: `pulse replay
    /// --dead-letter-out` writes each with its reason), counted in `records`.
    pub dead_letters: u64,
    /// Vectors the engine emitted.
    pub vectors: u64,
    /// Rows handed on with labels.
    pub labelled: u64,
    /// Rows handed on without labels ([`RowPolicy::all_rows`]).
    pub unlabelled: u64,
    /// Vectors dropped by the event sampling.
    pub sampled_out: u64,
    /// Vectors dropped because their horizon is not inside the capture or
    /// their windows had not filled.
    pub outside_horizon: u64,
    /// Labelled rows before the out-of-time cut (horizon ended before it).
    pub before_cut: u64,
    /// Labelled rows at or after the cut.
    pub after_cut: u64,
    /// First and last labelled `as_of` allowed (ms).
    pub rows_from: i64,
    /// See `rows_from`.
    pub rows_to: i64,
    /// The out-of-time cut used (ms).
    pub cut: i64,
    /// The capture's span (ms) that placed them ([`LabelBook::span`]).
    pub first: i64,
    /// See `first`.
    pub last: i64,
    /// How the span was measured.
    pub clock: Option<SpanClock>,
}

/// Whether an event vector is among the kept ones: a hash of customer and
/// `as_of`, so the choice is the same in every run and every file.
pub fn keep_event_vector(customer: &str, as_of: i64, every: u64) -> bool {
    let key = xxh3_64(customer.as_bytes()) ^ as_of as u64;
    key.wrapping_mul(0x9E37_79B9_7F4A_7C15).is_multiple_of(every.max(1))
}

/// Pass 2: replays the capture through the engine and hands each kept,
/// labelled vector to `on_row`, in emission order. `progress` gets the
/// file's bytes read.
/// With `last`, also keeps each customer's last vector's features (any
/// vector, kept or not): what pulse would score at the capture's end.
pub fn rows(
    path: &Path,
    futures: &Futures,
    policy: &RowPolicy,
    on_row: &mut dyn FnMut(Row) -> Result<()>,
    mut last_vectors: Option<&mut HashMap<String, Features>>,
    progress: &mut dyn FnMut(u64),
) -> Result<RowStats> {
    let span = futures.span().context("the capture holds no event")?;
    let (first, last) = (span.first, span.last);
    let (rows_from, rows_to) = (first + policy.burn_in_days * DAY_MS, last - H30);
    let cut = policy.cut_after_first.map_or_else(|| default_cut(rows_from, rows_to), |d| first + d);
    // An explicit cut that leaves one side empty did nothing but skip the
    // out-of-time split: refused, saying which days work instead.
    let explicit_cut = policy.cut_after_first.is_some() && rows_to >= rows_from;
    let day = |t: i64| (t - first) as f64 / DAY_MS as f64;
    // Training rows need their 30-day horizon to end before the cut; test
    // rows start at it. Bounds shown inward, so a day shown is a day that works.
    let (after_day, before_day) = (day(rows_from + H30), day(rows_to));
    let bounds = || {
        if after_day < before_day {
            format!(
                "on this capture it must be after day {:.1} and before day {:.1}",
                (after_day * 10.0).ceil() / 10.0,
                (before_day * 10.0).floor() / 10.0
            )
        } else {
            format!(
                "this capture is too short for any: its labelled rows span {:.1} days, and an out-of-time split \
                 needs more than 30",
                day(rows_to) - day(rows_from)
            )
        }
    };
    let no_rows = |side: &str, why: String| {
        anyhow::anyhow!(
            "--cut-day {} leaves no out-of-time {side} rows{why}; {}",
            (day(cut) * 1000.0).round() / 1000.0,
            bounds()
        )
    };
    if explicit_cut && !(cut - H30 > rows_from && cut < rows_to) {
        let side = if cut - H30 > rows_from { "test" } else { "training" };
        return Err(no_rows(
            side,
            ": training rows need their 30-day horizon to end before the cut and test rows start at it".into(),
        ));
    }
    let mut stats = RowStats { rows_from, rows_to, cut, first, last, clock: Some(span.clock), ..RowStats::default() };
    let mut processor = Processor::new(Arc::new(Engine::new(EngineConfig::default())));
    let mut produced = Produced::default();
    let mut failed: Option<anyhow::Error> = None;
    let mut on_line = |line: Result<&[u8], Invalid>| {
        if failed.is_some() {
            return;
        }
        stats.records += 1;
        match line {
            Ok(line) => processor.process(decode_line(line), Source::default(), line, &mut produced),
            Err(too_long) => processor.process(Err(too_long), Source::default(), &[], &mut produced),
        }
        stats.dead_letters += produced.dead.len() as u64;
        produced.dead.clear();
        for v in produced.vectors.drain(..) {
            stats.vectors += 1;
            let customer = v.customer_id.as_str();
            if let Some(last) = last_vectors.as_deref_mut() {
                match last.get_mut(customer) {
                    Some(f) => *f = v.features,
                    None => {
                        last.insert(customer.to_owned(), v.features);
                    }
                }
            }
            if v.trigger == Trigger::Event && !keep_event_vector(customer, v.as_of, policy.event_sample_every) {
                stats.sampled_out += 1;
                continue;
            }
            let inside = v.as_of >= rows_from && v.as_of <= rows_to;
            if !(inside || policy.all_rows && v.as_of <= last) {
                stats.outside_horizon += 1;
                continue;
            }
            let targets = inside.then(|| label(futures.of(customer), v.as_of));
            if inside {
                stats.labelled += 1;
            } else {
                stats.unlabelled += 1;
            }
            let row = Row {
                customer_id: customer.to_owned(),
                as_of: v.as_of,
                trigger: v.trigger,
                features: v.features,
                targets,
                split: Split::of(customer, policy.split_seed),
                period: Period::of(v.as_of, cut),
            };
            if inside {
                match row.period {
                    Period::Before => stats.before_cut += 1,
                    Period::After => stats.after_cut += 1,
                    Period::Straddles => {}
                }
            }
            if let Err(e) = on_row(row) {
                failed = Some(e);
                return;
            }
        }
    };
    for_each_line(path, &mut on_line, progress)?;
    if let Some(e) = failed {
        return Err(e);
    }
    // Inside the bounds, a cut can still fall where no row does (rows are
    // days apart, events sampled).
    if explicit_cut && stats.labelled > 0 && (stats.before_cut == 0 || stats.after_cut == 0) {
        let side = if stats.after_cut == 0 { "test" } else { "training" };
        return Err(no_rows(side, format!(" ({} before the cut, {} after it)", stats.before_cut, stats.after_cut)));
    }
    Ok(stats)
}

/// The size of a capture file, for progress bars over [`LabelBook::scan`]
/// and [`rows`]; refused unless it is a file, because those read it twice
/// (a pipe or standard input would be empty the second time).
pub fn file_bytes(path: &Path) -> Result<u64> {
    anyhow::ensure!(
        !is_stdin(path),
        "the capture is read twice (its labels, then its rows), so it cannot be standard input: name its file"
    );
    let meta = std::fs::metadata(path).with_context(|| format!("cannot open {}", path.display()))?;
    anyhow::ensure!(
        meta.is_file(),
        "{} is not a file: the capture is read twice (its labels, then its rows), so it cannot be a directory or a pipe",
        path.display()
    );
    Ok(meta.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn future(sessions: &[i64], ratings: &[(i64, f32)]) -> Future {
        Future {
            sessions: sessions.iter().map(|&t| (t, 1)).collect(),
            ratings: ratings.iter().map(|&(t, r)| (t, 1, r)).collect(),
            ..Future::default()
        }
    }

    #[test]
    fn labels_look_only_after_as_of() {
        let t = 100 * DAY_MS;
        // A session at T itself is the past; one at T+1ms is the future.
        let f = future(&[t, t + 1, t + 20 * DAY_MS], &[(t + 1 + 3_600_000, 4.5)]);
        let y = label(&f, t);
        assert_eq!(y.churn_risk_14d, 0.0);
        assert_eq!(y.churn_risk_30d, 0.0);
        assert_eq!(y.session_velocity, 0.5);
        assert_eq!(y.first_session_success, 1.0);
        // Exactly T+14d is inside (T, T+14d].
        let y = label(&future(&[t + H14], &[]), t);
        assert_eq!((y.churn_risk_14d, y.session_velocity, y.first_session_success), (0.0, 0.5, 0.0));
        let y = label(&future(&[t + H14 + 1], &[]), t);
        assert_eq!((y.churn_risk_14d, y.churn_risk_30d), (1.0, 0.0));
        let y = label(&future(&[t - 1], &[]), t);
        assert_eq!((y.churn_risk_14d, y.churn_risk_30d), (1.0, 1.0));
    }

    #[test]
    fn a_low_rating_is_no_success() {
        let t = 0;
        let y = label(&future(&[DAY_MS], &[(DAY_MS + 60_000, 3.5)]), t);
        assert_eq!(y.first_session_success, 0.0);
    }

    #[test]
    fn health_places_each_segment_profile_in_its_band() {
        // The middle of each §7 range lands in the §6 band of its segment.
        let profile = |per_week: f64, rating: f64, ib: usize, pay: f64, consistency: f64| Next30 {
            sessions: (per_week * 30.0 / 7.0).round() as usize,
            mean_rating: Some(rating),
            ib_calls: ib,
            payment_success: Some(pay),
            tutor_consistency: Some(consistency),
        };
        let thriving = health(&profile(4.0, 4.5, 0, 0.975, 0.925));
        let healthy = health(&profile(2.0, 4.15, 0, 0.925, 0.775));
        let at_risk = health(&profile(0.5, 3.5, 1, 0.8, 0.55));
        assert!(thriving > 80.0 && (60.0..=80.0).contains(&healthy) && (40.0..60.0).contains(&at_risk));
        assert!(thriving > healthy && healthy > at_risk);
        // No session in the month: the sessions score alone, whatever else.
        let silent = Next30 { ib_calls: 0, payment_success: Some(1.0), ..Next30::default() };
        assert!(health(&silent) < 20.0);
        let best = health(&profile(90.0, 5.0, 0, 1.0, 1.0));
        assert!((98.0..=100.0).contains(&best), "{best}");
        assert_eq!(on_scale(-10.0, &[(0.1, 20.0), (0.5, 50.0), (2.0, 70.0), (4.0, 90.0)]), 0.0);
        // Missing dimensions are left out, not counted as zero.
        let unrated = Next30 { mean_rating: None, ..profile(4.0, 4.5, 0, 0.975, 0.925) };
        assert!(health(&unrated) > 80.0);
    }

    /// A hostile synthetic capture (duplicates, corrections, retractions,
    /// late and future events) in a temporary file.
    fn capture(seed: u64, customers: usize, days: u32) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("capture.jsonl");
        let config = pulse_synth::SynthConfig {
            customers,
            days,
            seed,
            hostility: pulse_synth::Hostility::hostile(),
            ..pulse_synth::SynthConfig::default()
        };
        let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        pulse_synth::generate(&config, &mut file, &mut |_| {}).unwrap();
        std::io::Write::flush(&mut file).unwrap();
        (dir, path)
    }

    fn lines(path: &Path) -> Vec<Vec<u8>> {
        std::fs::read(path).unwrap().split(|&b| b == b'\n').filter(|l| !l.is_empty()).map(<[u8]>::to_vec).collect()
    }

    fn write(path: &Path, lines: &[Vec<u8>]) {
        std::fs::write(path, lines.join(&b'\n')).unwrap();
    }

    fn all_rows(path: &Path) -> Vec<Row> {
        let futures = LabelBook::scan(path, &mut |_| {}).unwrap().into_futures();
        let policy = RowPolicy { burn_in_days: 0, event_sample_every: 1, all_rows: true, ..RowPolicy::default() };
        let mut out = Vec::new();
        rows(
            path,
            &futures,
            &policy,
            &mut |r| {
                out.push(r);
                Ok(())
            },
            None,
            &mut |_| {},
        )
        .unwrap();
        out
    }

    #[test]
    fn the_book_holds_what_the_stream_rules_say_happened() {
        let rec = |name: &str, old: Option<(&str, i64)>, new: Option<(&str, i64)>| {
            let image = |(id, ts): (&str, i64)| {
                format!(
                    r#"{{"customer_id":{{"S":"stu_1"}},"sk":{{"S":"EVT#{ts}#{id}"}},"entity_type":{{"S":"event"}},"event_id":{{"S":"{id}"}},"event_type":{{"S":"session_completed"}},"ts":{{"N":"{ts}"}},"tutor_id":{{"S":"tut_1"}},"duration_min":{{"N":"50"}}}}"#
                )
            };
            let mut d = format!(r#""ApproximateCreationDateTime":{},"Keys":{{}}"#, 1_800_000_000);
            if let Some(o) = old {
                d += &format!(r#","OldImage":{}"#, image(o));
            }
            if let Some(n) = new {
                d += &format!(r#","NewImage":{}"#, image(n));
            }
            format!(r#"{{"eventName":"{name}","dynamodb":{{{d}}}}}"#).into_bytes()
        };
        let t = 1_799_000_000_000;
        let records = [
            rec("INSERT", None, Some(("a", t))),
            rec("INSERT", None, Some(("a", t + 5))), // a redelivery keeps the first copy
            rec("INSERT", None, Some(("b", t + 10))),
            rec("MODIFY", Some(("b", t + 10)), Some(("b", t + 20))), // a correction moves it
            rec("INSERT", None, Some(("c", t + 30))),
            rec("REMOVE", Some(("c", t + 30)), None), // a retraction removes it
        ];
        let mut book = LabelBook::default();
        for r in &records {
            book.observe(&decode_line(r).unwrap());
        }
        let futures = book.into_futures();
        let sessions: Vec<i64> = futures.of("stu_1").sessions.iter().map(|s| s.0).collect();
        assert_eq!(sessions, vec![t, t + 20]);
        assert!(futures.of("stu_2").sessions.is_empty());
    }

    #[test]
    fn no_feature_reads_data_after_as_of() {
        // The rows of a capture cut short are the first rows of the whole
        // capture, feature for feature: what follows cannot reach back.
        let (dir, path) = capture(11, 40, 50);
        let all = lines(&path);
        let whole = all_rows(&path);
        for keep in [all.len() / 3, all.len() * 2 / 3] {
            let short = dir.path().join("short.jsonl");
            write(&short, &all[..keep]);
            let prefix = all_rows(&short);
            assert!(!prefix.is_empty() && prefix.len() < whole.len());
            for (a, b) in prefix.iter().zip(&whole) {
                assert_eq!((&a.customer_id, a.as_of, a.trigger), (&b.customer_id, b.as_of, b.trigger));
                assert_eq!(a.features, b.features, "{} at {}", a.customer_id, a.as_of);
            }
        }
    }

    #[test]
    fn no_label_reads_data_at_or_before_as_of() {
        // Dropping every record about events at or before T, or adding
        // events there, leaves the labels of every vector as of T or later
        // unchanged; the same done after T changes some.
        let (dir, path) = capture(12, 60, 50);
        let all = lines(&path);
        let futures = LabelBook::scan(&path, &mut |_| {}).unwrap().into_futures();
        let span = futures.span().unwrap();
        let t0 = span.first + (span.last - span.first) / 2;
        let event_ts = |line: &[u8]| -> Option<i64> {
            let r = decode_line(line).ok()?;
            match &r.change {
                StreamChange::Insert(e) | StreamChange::Remove(e) => Some(e.ts.0),
                StreamChange::Modify { old, new } => new.as_ref().or(old.as_ref()).map(|e| e.ts.0),
                _ => None,
            }
        };
        let filtered = |keep: &dyn Fn(i64) -> bool| {
            let kept: Vec<Vec<u8>> = all.iter().filter(|l| event_ts(l).is_none_or(keep)).cloned().collect();
            let p = dir.path().join("filtered.jsonl");
            write(&p, &kept);
            LabelBook::scan(&p, &mut |_| {}).unwrap().into_futures()
        };
        let customers: Vec<String> = (0..60).map(|i| format!("stu_{i:06}")).collect();
        let times: Vec<i64> = (0..20).map(|k| t0 + k * DAY_MS / 2).collect();
        let past_dropped = filtered(&|ts| ts > t0);
        let future_dropped = filtered(&|ts| ts <= t0 + 5 * DAY_MS);
        let mut changed = 0;
        for c in &customers {
            for &t in &times {
                assert_eq!(label(futures.of(c), t), label(past_dropped.of(c), t), "{c} at {t}");
                changed += usize::from(label(futures.of(c), t) != label(future_dropped.of(c), t));
            }
        }
        assert!(changed > 0, "the labels must read the future");
    }

    #[test]
    fn a_row_is_labelled_only_when_its_horizon_is_inside_the_capture() {
        let (_dir, path) = capture(13, 30, 45);
        let futures = LabelBook::scan(&path, &mut |_| {}).unwrap().into_futures();
        let span = futures.span().unwrap();
        assert_eq!(span.clock, SpanClock::Created);
        for r in all_rows(&path) {
            assert_eq!(r.targets.is_some(), r.as_of + H30 <= span.last && r.as_of >= span.first, "{r:?}");
        }
    }

    /// The labelled rows under the default policy (every event vector kept),
    /// keyed for comparison, and what pass 2 saw.
    /// A labelled row as compared: customer, as_of, trigger, the labels' bits.
    type Labelled = (String, i64, Trigger, [u32; 5]);

    fn labelled(path: &Path) -> (RowStats, Vec<Labelled>) {
        let futures = LabelBook::scan(path, &mut |_| {}).unwrap().into_futures();
        let policy = RowPolicy { event_sample_every: 1, ..RowPolicy::default() };
        let mut out = Vec::new();
        let stats = rows(
            path,
            &futures,
            &policy,
            &mut |r| {
                let t = r.targets.unwrap();
                let y =
                    [t.first_session_success, t.session_velocity, t.churn_risk_14d, t.churn_risk_30d, t.health_score];
                out.push((r.customer_id, r.as_of, r.trigger, y.map(f32::to_bits)));
                Ok(())
            },
            None,
            &mut |_| {},
        )
        .unwrap();
        (stats, out)
    }

    /// A record adding a login of `customer` at `ts`, created at `created_ms`.
    fn login(customer: &str, id: &str, ts: i64, created_ms: i64) -> Vec<u8> {
        format!(
            r#"{{"eventName":"INSERT","dynamodb":{{"ApproximateCreationDateTime":{},"Keys":{{}},"NewImage":{{"customer_id":{{"S":"{customer}"}},"sk":{{"S":"EVT#{ts}#{id}"}},"entity_type":{{"S":"event"}},"event_id":{{"S":"{id}"}},"event_type":{{"S":"login"}},"ts":{{"N":"{ts}"}}}}}}}}"#,
            created_ms / 1000
        )
        .into_bytes()
    }

    fn created_ms(line: &[u8]) -> i64 {
        decode_line(line).unwrap().created_ms.unwrap() as i64
    }

    #[test]
    fn one_back_dated_event_moves_neither_the_burn_in_nor_the_cut() {
        // A clean stream, then the same with one login of a new customer
        // dated 200 days before the capture, in the middle of the stream:
        // it used to move the span's start 200 days back (the burn-in over
        // before the capture began, the cut months earlier, thousands more rows).
        let dir = tempfile::tempdir().unwrap();
        let clean = dir.path().join("clean.jsonl");
        let config = pulse_synth::SynthConfig {
            customers: 40,
            days: 70,
            seed: 21,
            hostility: pulse_synth::Hostility::none(),
            ..pulse_synth::SynthConfig::default()
        };
        let mut file = std::io::BufWriter::new(std::fs::File::create(&clean).unwrap());
        pulse_synth::generate(&config, &mut file, &mut |_| {}).unwrap();
        std::io::Write::flush(&mut file).unwrap();
        drop(file);
        let mut all = lines(&clean);
        let middle = all.len() / 2;
        let at = created_ms(&all[middle]);
        all.insert(middle + 1, login("stu_backdated", "backdated1", config.start_ms - 200 * DAY_MS, at));
        let tampered = dir.path().join("tampered.jsonl");
        write(&tampered, &all);

        let (want_stats, want) = labelled(&clean);
        let (got_stats, got) = labelled(&tampered);
        assert!(!want.is_empty());
        assert_eq!(
            (got_stats.first, got_stats.rows_from, got_stats.rows_to, got_stats.cut),
            (want_stats.first, want_stats.rows_from, want_stats.rows_to, want_stats.cut)
        );
        assert_eq!(got_stats.clock, Some(SpanClock::Created));
        // The span starts with the stream: its first record's creation time.
        assert_eq!(want_stats.first, created_ms(&all[0]));
        // The same rows, but for the new customer's own.
        let others: Vec<_> = got.into_iter().filter(|r| r.0 != "stu_backdated").collect();
        assert_eq!(others, want);
    }

    #[test]
    fn late_events_of_a_hostile_stream_do_not_move_the_span() {
        // A hostile stream holds events added 31 to 60 days behind their
        // customer's clock (dropped by the engine as late): they used to put
        // the span's start weeks before the capture's, so rows were
        // labelled from windows not filled yet (tenure 0, no session in 30 days).
        let (dir, path) = capture(22, 60, 60);
        let all = lines(&path);
        let span = LabelBook::scan(&path, &mut |_| {}).unwrap().span().unwrap();
        assert_eq!((span.clock, span.first), (SpanClock::Created, created_ms(&all[0])));
        assert!(span.first >= pulse_synth::DEFAULT_START_MS);

        // The same stream as a table loaded at once with its history: every
        // record created after the last event. The span is then in event
        // time, of the events the engine accepts: the late ones still do not count.
        let loaded_at = created_ms(all.last().unwrap()) + 5 * DAY_MS;
        let backfill: Vec<Vec<u8>> = all
            .iter()
            .map(|l| {
                let mut v: serde_json::Value = serde_json::from_slice(l).unwrap();
                if let Some(t) = v.pointer_mut("/dynamodb/ApproximateCreationDateTime") {
                    *t = serde_json::json!(loaded_at / 1000);
                }
                serde_json::to_vec(&v).unwrap()
            })
            .collect();
        let loaded = dir.path().join("loaded.jsonl");
        write(&loaded, &backfill);
        let span = LabelBook::scan(&loaded, &mut |_| {}).unwrap().span().unwrap();
        assert_eq!(span.clock, SpanClock::Events);
        assert!(
            (pulse_synth::DEFAULT_START_MS..pulse_synth::DEFAULT_START_MS + DAY_MS).contains(&span.first),
            "{span:?}"
        );
        assert!(span.last >= pulse_synth::DEFAULT_START_MS + 59 * DAY_MS && span.last < loaded_at, "{span:?}");
    }

    #[test]
    fn parquet_and_csv_files_read_back_row_for_row() {
        use arrow_array::Array;
        use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
        let (dir, path) = capture(14, 30, 60);
        let want = all_rows(&path);
        let pq = dir.path().join("rows.parquet");
        let mut w = crate::dataset_file::DatasetWriter::create(&pq).unwrap();
        want.iter().for_each(|r| w.write(r).unwrap());
        w.finish().unwrap();
        let reader =
            ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&pq).unwrap()).unwrap().build().unwrap();
        let mut n = 0;
        for batch in reader {
            let batch = batch.unwrap();
            assert_eq!(batch.schema().fields().len(), 5 + 46 + 5);
            let f0 = batch.column(5).as_any().downcast_ref::<arrow_array::Float64Array>().unwrap();
            let churn = batch.column(5 + 46 + 2).as_any().downcast_ref::<arrow_array::Float64Array>().unwrap();
            for i in 0..batch.num_rows() {
                let r = &want[n + i];
                assert_eq!(f0.value(i), r.features[0]);
                assert_eq!(churn.is_null(i), r.targets.is_none());
            }
            n += batch.num_rows();
        }
        assert_eq!(n, want.len());
        let csv = dir.path().join("rows.csv");
        let mut w = crate::dataset_file::DatasetWriter::create(&csv).unwrap();
        want.iter().for_each(|r| w.write(r).unwrap());
        w.finish().unwrap();
        assert_eq!(std::fs::read_to_string(&csv).unwrap().lines().count(), want.len() + 1);
        assert!(crate::dataset_file::DatasetWriter::create(&dir.path().join("rows.json")).is_err());
    }
}
