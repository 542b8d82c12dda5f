//! Why a churn risk moved: the features that raised it the most, for people.
//!
//! A prediction's [`Reasons`] name the (at most three) features whose change
//! since a reference vector — the same customer's vector about 14 days
//! earlier — raised its `churn_risk_14d` the most, with the value now, the
//! value then, and the feature's share of the move in the model's margin
//! (log-odds). The attribution itself is the model's (`pulse_model::explain`);
//! this module is the contract's side: which feature, how it is written, and
//! a sentence a customer-success person can act on ("last session 19 days
//! ago (was 2 days ago)").
//!
//! # The baseline, named
//!
//! Every "(was ...)" is the reference vector's value, so whatever sentence
//! carries reasons names that reference, not another ([`Baseline`], kept
//! with the reasons and written beside them: `since`, `churn_risk_14d_then`,
//! `since_signup`). An alert's rise is measured from the previous
//! prediction and its reasons from the reference, which are different
//! vectors: "churn_risk_14d rose from 0.504 to 0.737, above 0.7" once read
//! as if its reasons explained that rise, when they cited features that had
//! not changed between those two predictions (196 of 221 such alerts in a
//! demo). So [`Reasons::sentence`] starts with its own baseline:
//!
//! - "Raised most since 2026-01-05 (risk then 0.798): ..." — the reference's
//!   UTC date and its own risk (which may be above the risk now: the reasons
//!   are what pushed the risk up, whatever pushed it down more);
//! - "Raised most since signing up: ..." — the reference is a new
//!   customer's record, no session on record and less than a week of
//!   history ([`crate::features::is_signup_record`]): the "was" side is an
//!   empty record, and the model's score of those defaults (about 0.95) is
//!   no risk the customer had, so it is not printed;
//! - "No feature raised it since ..." — worked out, and no feature raised
//!   the risk (it fell, or moved by features that lowered it);
//! - "No reasons: ..." — why none were worked out ([`Basis`]): no earlier
//!   vector of the customer, reasons off, a model that cannot be explained
//!   here, an attribution that failed.
//!
//! # How the sentences read
//!
//! Each sentence is the value now, then the value then in brackets. Its
//! rules, each one from a way the earlier sentences misled (a review of
//! 240,000 real predictions):
//!
//! - **Durations** ("days since", tenure) under 2 days are written in hours:
//!   "3 hours", "1 hour", "under an hour" (less than half an hour); from 2
//!   days on, in days. A "days since" reads as when it happened ("last
//!   session 19 days ago (was 2 days ago)", "last successful payment 3 hours
//!   ago"), never as "no session in 0 days", which read as the opposite of
//!   a customer who had one today. The capped default reads "no session on
//!   record" (for the tutor switch, capped at 30: "no tutor switch in 30
//!   days").
//! - **Waits** (the mean reply times, kept in minutes) from 2 hours on are
//!   written in hours, from 2 days on in days: "replies to the tutor in 6
//!   days on average (was 7 hours)", not "in 9327 minutes".
//! - **One** is singular, now and then: "1 session", "1 minute", "1 hour",
//!   "(was 1 minute)".
//! - **Precision**: when the two values differ but print the same ("4.8
//!   (was 4.8)", "5% (was 5%)", "44 minutes (was 44 minutes)"), both are
//!   printed with one more digit, then two, until they differ ("4.83 (was
//!   4.77)"). Counts are whole and never need it.
//! - **No data.** Where the contract's default for an empty denominator or
//!   set means "no data" (FEATURES.md §4), it is not shown as a
//!   measurement: "no sessions in 30 days (was: sessions last 44 minutes on
//!   average)", "100% of support calls negative in 30 days (was: no support
//!   calls in 30 days)". Whether a side is "no data" is decided from that
//!   side's whole vector by [`top_raising`], which has both, and kept in the
//!   reason ([`NoData`], written as `"no_data": "now" | "was" | "both"`,
//!   absent when neither). Feature by feature:
//!   - `avg_session_minutes_30d`, `primary_tutor_share_30d`: no data when
//!     `sessions_30d` = 0 ("no sessions in 30 days"). The value alone tells
//!     too (a duration is > 0; the primary tutor has a session), so older
//!     records without the field read the same.
//!   - `primary_tutor_share_7d`: no data when `sessions_7d` = 0 ("no
//!     sessions this week"); a share of 0 with sessions is a real 0%.
//!   - `tutor_switch_rate_30d`: no data when `sessions_30d` < 2 ("fewer than
//!     2 sessions in 30 days").
//!   - `session_trend_ratio`: no data when `sessions_30d` = 0 ("no sessions
//!     in 30 days"): (0 + 1) / (0 + 1) is the formula's 1, not a week at the
//!     month's pace. The ratio is smoothed (a session added to each side),
//!     and its sentence says so: "sessions this week at 2.4x the month's
//!     weekly pace (both plus one)".
//!   - `negative_call_rate_30d`: no data when `ib_calls_30d` = 0 ("no
//!     support calls in 30 days").
//!   - `cancellation_rate_30d`: no data when `sessions_30d` +
//!     `student_cancellations_30d` + `no_shows_30d` = 0 ("no sessions in 30
//!     days": no session completed, and none cancelled by the student or
//!     missed either).
//!   - `rating_trend`: no data when `avg_rating_7d` = 0, i.e. no rating in
//!     the last 7 days ("no rating this week").
//!   - `avg_rating_7d/14d/30d`, `primary_tutor_avg_rating_30d`: a mean of 0
//!     is no rating (a rating is at least 1), from the value alone ("no
//!     rating in 7 days", "no rating of the main tutor in 30 days", which is
//!     true too when there is no main tutor).
//!   - `payment_success_rate_7d/14d/30d`: a rate of 1 is either "no failed
//!     payment" or "no payment at all" in the window. It is "no payments in
//!     7 days" when the same vector's `days_since_last_payment` is at least
//!     the window (no successful payment in it, and a rate of 1 has no
//!     failed one). Otherwise a rate of exactly 1 reads "no failed payment in
//!     7 days", which is true either way (and so is the only reading an
//!     older record without the field gets). The reference vector is kept in
//!     `f32`: a payment within a fraction of a second of the window's edge
//!     may be counted on the other side of it.
//!   - `student_reply_minutes_30d`, `tutor_reply_minutes_30d`: a mean of 0
//!     is no reply, or replies all at 0 minutes (`response_minutes` may be
//!     0); the vector has no reply count to tell, so it reads "no tutor
//!     replies in 30 days, or all instant", true either way.
//!   - "days since" at its cap: "no … on record", from the value.
//!
//!   A side that is no data reads as its phrase: "(was: no sessions in 30
//!   days)"; a value now that is no data reads the phrase, and the value
//!   then as a whole sentence ("no session on record (was: last session 3
//!   days ago)"); both: "(was the same)".
//! - **Active days**: the 14-day window (T−14d, T] touches 15 calendar dates,
//!   so `active_days_14d` may be 15: "active on 15 days in the last two
//!   weeks", never "15 of the last 14 days".
//! - **Signed differences** read as words, never "-0.0" or "+7": "2 more
//!   sessions this week than the week before", "as many sessions this week
//!   as the week before" (was "7 more"); "this week's ratings 0.3 below the
//!   month's", "… level with the month's" (was "level").
//!
//! [`describe_into`] appends to a buffer the caller keeps and allocates
//! nothing of its own: the prediction writer formats every reason of every
//! prediction. The precision check formats both values into that buffer and
//! cuts them off again.

use std::fmt::Write as _;
use std::ops::BitOr;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::features::{idx, json_f64, json_str, FEATURE_COUNT, FEATURE_NAMES};

/// How many reasons a prediction carries at most.
pub const TOP_REASONS: usize = 3;

/// Which sides of a reason hold a contract default that means "no data"
/// (see the module docs): decided from the whole vectors by
/// [`top_raising`]; in a sentence, added to what the values alone tell.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct NoData(u8);

impl NoData {
    /// Both sides are measurements (or nothing is known beyond the values).
    pub const NEITHER: NoData = NoData(0);
    /// The value now is "no data".
    pub const NOW: NoData = NoData(1);
    /// The value then is "no data".
    pub const WAS: NoData = NoData(2);
    /// Both are.
    pub const BOTH: NoData = NoData(3);

    /// From the two sides.
    pub const fn new(now: bool, was: bool) -> NoData {
        NoData(now as u8 | (was as u8) << 1)
    }

    /// Whether `feature` is "no data" now and then, from the two vectors.
    pub fn of(feature: usize, now: &[f64; FEATURE_COUNT], was: &[f64; FEATURE_COUNT]) -> NoData {
        NoData::new(no_data_in(feature, now), no_data_in(feature, was))
    }

    /// What the values alone tell: a capped "days since", a mean rating,
    /// session length or reply time of 0, a primary tutor share of 0.
    pub fn of_values(feature: usize, now: f64, was: f64) -> NoData {
        NoData::new(value_is_no_data(feature, now), value_is_no_data(feature, was))
    }

    /// The value now is "no data".
    pub const fn now(self) -> bool {
        self.0 & 1 != 0
    }

    /// The value then is "no data".
    pub const fn was(self) -> bool {
        self.0 & 2 != 0
    }

    /// As written in a reason's `no_data` field; `None` when neither.
    fn wire(self) -> Option<&'static str> {
        match self.0 {
            1 => Some("now"),
            2 => Some("was"),
            3 => Some("both"),
            _ => None,
        }
    }

    /// A reason's `no_data` field read back.
    fn from_wire(s: &str) -> Option<NoData> {
        match s {
            "now" => Some(NoData::NOW),
            "was" => Some(NoData::WAS),
            "both" => Some(NoData::BOTH),
            "neither" => Some(NoData::NEITHER),
            _ => None,
        }
    }
}

impl BitOr for NoData {
    type Output = NoData;
    fn bitor(self, other: NoData) -> NoData {
        NoData(self.0 | other.0)
    }
}

/// Whether `feature`'s value in the vector `v` is the contract's "no data"
/// default, from the vector (the module docs say why each).
fn no_data_in(feature: usize, v: &[f64; FEATURE_COUNT]) -> bool {
    let x = v[feature];
    // A rate of 1 has no failed payment; with no successful one in the
    // window either, there was no payment at all.
    let no_payment_in = |days: f64| x == 1.0 && v[idx::DAYS_SINCE_LAST_PAYMENT] >= days;
    match feature {
        idx::AVG_SESSION_MINUTES_30D | idx::PRIMARY_TUTOR_SHARE_30D => v[idx::SESSIONS_30D] == 0.0,
        idx::PRIMARY_TUTOR_SHARE_7D => v[idx::SESSIONS_7D] == 0.0,
        idx::TUTOR_SWITCH_RATE_30D => v[idx::SESSIONS_30D] < 2.0,
        // (0 + 1) / (0 + 1): the formula's 1, no pace.
        idx::SESSION_TREND_RATIO => v[idx::SESSIONS_30D] == 0.0,
        idx::NEGATIVE_CALL_RATE_30D => v[idx::IB_CALLS_30D] == 0.0,
        idx::CANCELLATION_RATE_30D => {
            v[idx::SESSIONS_30D] + v[idx::STUDENT_CANCELLATIONS_30D] + v[idx::NO_SHOWS_30D] == 0.0
        }
        idx::RATING_TREND => v[idx::AVG_RATING_7D] == 0.0,
        idx::PAYMENT_SUCCESS_RATE_7D => no_payment_in(7.0),
        idx::PAYMENT_SUCCESS_RATE_14D => no_payment_in(14.0),
        idx::PAYMENT_SUCCESS_RATE_30D => no_payment_in(30.0),
        _ => value_is_no_data(feature, x),
    }
}

/// Whether a value is "no data" by itself (the module docs say which).
pub(crate) fn value_is_no_data(feature: usize, x: f64) -> bool {
    match feature {
        idx::DAYS_SINCE_LAST_SESSION
        | idx::DAYS_SINCE_LAST_LOGIN
        | idx::DAYS_SINCE_LAST_PAYMENT
        | idx::DAYS_SINCE_LAST_IB_CALL => x >= 365.0,
        idx::DAYS_SINCE_TUTOR_SWITCH => x >= 30.0,
        idx::AVG_RATING_7D
        | idx::AVG_RATING_14D
        | idx::AVG_RATING_30D
        | idx::PRIMARY_TUTOR_AVG_RATING_30D
        | idx::AVG_SESSION_MINUTES_30D
        | idx::PRIMARY_TUTOR_SHARE_30D
        | idx::STUDENT_REPLY_MINUTES_30D
        | idx::TUTOR_REPLY_MINUTES_30D => x == 0.0,
        _ => false,
    }
}

/// One feature that raised the risk.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Reason {
    /// Index of the feature in contract order.
    pub feature: u8,
    /// Which of `now` and `was` are the contract's "no data" default, as
    /// their vectors tell (see the module docs); [`NoData::NEITHER`] when
    /// unknown (a record written before it was kept): the values alone
    /// then tell what they can.
    pub no_data: NoData,
    /// Its value in the vector scored.
    pub now: f64,
    /// Its value in the reference vector, which is kept in `f32` (the
    /// precision the models compute in): written as that `f32`, read back
    /// to it.
    pub was: f64,
    /// Its share of `margin(now) - margin(reference)` of `churn_risk_14d`
    /// (log-odds; positive: raised the risk).
    pub contribution: f64,
}

impl Reason {
    /// The feature's contract name.
    pub fn name(&self) -> &'static str {
        FEATURE_NAMES[usize::from(self.feature)]
    }

    /// A sentence for people: the value now, and then in brackets.
    pub fn text(&self) -> String {
        describe(usize::from(self.feature), self.now, self.was, self.no_data)
    }
}
/// What a prediction's reasons compare with (its "was"): the customer's own
/// earlier vector, the reference.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Baseline {
    /// `as_of` of the reference vector; `None` when not known (`pulse
    /// serve`'s references come without a time).
    pub since: Option<i64>,
    /// The reference's own `churn_risk_14d`, when known: the risk the
    /// reasons' move started from.
    pub churn_risk_14d: Option<f32>,
    /// The reference vector is a new customer's "nothing on record"
    /// ([`crate::features::is_signup_record`]): the reasons compare with an
    /// empty record, and say "since signing up" rather than a date.
    pub signup: bool,
}

impl Baseline {
    /// The baseline of the reference vector `was`: whether it is a signup
    /// record is read from the vector itself. A risk that is not finite is
    /// no risk to print.
    pub fn new(was: &[f64; FEATURE_COUNT], since: Option<i64>, churn_risk_14d: Option<f32>) -> Baseline {
        Baseline {
            since,
            churn_risk_14d: churn_risk_14d.filter(|x| x.is_finite()),
            signup: crate::features::is_signup_record(was),
        }
    }
}

impl Baseline {
    /// Appends "since 2026-01-05 (risk then 0.798)" (the reference's UTC
    /// date and risk), or "since signing up (risk then 0.959)" (the risk of
    /// the customer's first prediction): what every "(was ...)" of the
    /// reasons refers to.
    pub fn write_since(&self, out: &mut String) {
        out.push_str("since ");
        match self.since {
            _ if self.signup => out.push_str("signing up"),
            Some(since) => write_utc_date(since, out),
            None => out.push_str("the reference"),
        }
        if let Some(risk) = self.churn_risk_14d.filter(|_| self.since.is_some() || self.signup) {
            // The risk the move started from, a signup's too: without it "rose
            // from 0.569 to 0.823. No feature raised it since signing up" read
            // as a contradiction (the signup record's risk was 0.972).
            // Writing into a String cannot fail.
            let _ = write!(out, " (risk then {risk:.3})");
        }
    }
}

/// Why a prediction's reasons are what they are: the alert sentence says
/// it, so an alert never ends on a bare score (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Basis {
    /// No earlier vector of the customer to compare with (its first
    /// prediction here; a customer read back without its anchors).
    #[default]
    Nothing,
    /// Left to another thread, which fills them in (a replay's reasoner):
    /// not final yet.
    Pending,
    /// Reasons are off (`--no-reasons`).
    Off,
    /// The model that made the prediction cannot be explained in this
    /// process (a remote endpoint with no local copy of it).
    Unexplainable,
    /// The attribution failed (logged where it happened).
    Failed,
    /// Attributed against the [`Baseline`]: the top holds the features that
    /// raised the risk most, none when no feature did.
    Explained,
}

/// The reasons of one prediction: the features that raised its risk most
/// since the [`Baseline`], when they were worked out ([`Basis::Explained`]),
/// and otherwise why there are none ([`Reasons::basis`]).
///
/// The baseline is kept in place rather than as an `Option<Baseline>` so
/// the whole stays 112 bytes (README's memory figures): `flags` says which
/// of `since` and `churn_risk_14d_then` are known (0 when not, so that the
/// derived equality holds) and whether the reference is a signup record.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Reasons {
    len: u8,
    basis: Basis,
    flags: u8,
    churn_risk_14d_then: f32,
    items: [Reason; TOP_REASONS],
    since: i64,
}

/// [`Reasons::flags`]: `since` is known.
const SINCE: u8 = 1;
/// [`Reasons::flags`]: `churn_risk_14d_then` is known.
const RISK_THEN: u8 = 2;
/// [`Reasons::flags`]: the reference is a signup record.
const SIGNUP: u8 = 4;

impl Reasons {
    /// Reasons worked out against `baseline`, strongest first; only the
    /// first [`TOP_REASONS`] are kept; none when no feature raised the risk.
    pub fn new(baseline: Baseline, reasons: impl IntoIterator<Item = Reason>) -> Reasons {
        let mut out = Reasons { basis: Basis::Explained, ..Reasons::default() };
        if let Some(since) = baseline.since {
            out.since = since;
            out.flags |= SINCE;
        }
        if let Some(risk) = baseline.churn_risk_14d.filter(|x| x.is_finite()) {
            out.churn_risk_14d_then = risk;
            out.flags |= RISK_THEN;
        }
        if baseline.signup {
            out.flags |= SIGNUP;
        }
        for r in reasons.into_iter().take(TOP_REASONS) {
            out.items[usize::from(out.len)] = r;
            out.len += 1;
        }
        out
    }

    /// No reasons, for `basis` (any but [`Basis::Explained`], which has a
    /// baseline: [`Reasons::new`]).
    pub fn none(basis: Basis) -> Reasons {
        debug_assert!(basis != Basis::Explained, "explained reasons have a baseline");
        Reasons { basis, ..Reasons::default() }
    }

    /// The reasons, strongest first.
    pub fn as_slice(&self) -> &[Reason] {
        &self.items[..usize::from(self.len)]
    }

    /// No reason given (none raised the risk, or none were worked out).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether they were worked out or why not.
    pub fn basis(&self) -> Basis {
        self.basis
    }

    /// Worked out against a baseline (possibly with no feature that raised
    /// the risk): what an alert writes beside its sentence.
    pub fn is_explained(&self) -> bool {
        self.basis == Basis::Explained
    }

    /// Not worked out: such reasons are not written beside an alert's
    /// sentence (which says why there are none); for `skip_serializing_if`.
    pub fn not_explained(&self) -> bool {
        !self.is_explained()
    }

    /// What they compare with, when they were worked out.
    pub fn baseline(&self) -> Option<Baseline> {
        self.is_explained().then(|| Baseline {
            since: (self.flags & SINCE != 0).then_some(self.since),
            churn_risk_14d: (self.flags & RISK_THEN != 0).then_some(self.churn_risk_14d_then),
            signup: self.flags & SIGNUP != 0,
        })
    }

    /// The same reasons with a reference that looks like a signup record
    /// but may not be one: the first record seen of a customer met in a
    /// stream's burn-in, mid-life or new, no telling (`Prediction::met_in_burn_in`).
    /// Their baseline is then its date ("since 2026-01-05"), which is true
    /// either way, not "since signing up" (a review, 2026-12-05).
    pub fn signup_unknown(mut self) -> Reasons {
        self.flags &= !SIGNUP;
        self
    }

    /// `as_of` of the reference vector, when they were worked out against
    /// one whose time is known.
    pub fn since(&self) -> Option<i64> {
        self.baseline().and_then(|b| b.since)
    }

    /// The reasons as one line: "a; b; c".
    pub fn summary(&self) -> String {
        self.as_slice().iter().map(Reason::text).collect::<Vec<_>>().join("; ")
    }

    /// What an alert says after its rise (see the module docs): what
    /// raised the risk most since when ("Raised most since 2026-01-05 (risk
    /// then 0.798): a; b; c", "Raised most since signing up (risk then
    /// 0.412): a"), that the risk is down since then though some features
    /// raised it (`risk_now` below the baseline's: "Down since signing up
    /// (risk then 0.959); what raised it most: a"), that nothing did ("No
    /// feature raised it since 2026-01-05 (risk then 0.912)"), or why there
    /// are no reasons. Empty while [`Basis::Pending`].
    pub fn sentence(&self, risk_now: Option<f64>) -> String {
        let mut out = String::new();
        let Some(baseline) = self.baseline() else {
            out.push_str(match self.basis {
                Basis::Pending | Basis::Explained => "",
                Basis::Nothing => "No reasons: no earlier vector of the customer to compare with",
                Basis::Off => "No reasons: reasons are off (--no-reasons)",
                Basis::Unexplainable => "No reasons: the model that scored it cannot be explained here",
                Basis::Failed => "No reasons: their attribution failed",
            });
            return out;
        };
        // A risk lower now than at the baseline, whatever raised it, fell:
        // "Raised most since ..." read as a rise.
        let fell = matches!((risk_now, baseline.churn_risk_14d), (Some(now), Some(then)) if now < f64::from(then));
        if self.is_empty() {
            out.push_str("No feature raised it ");
            baseline.write_since(&mut out);
        } else if fell {
            out.push_str("Down ");
            baseline.write_since(&mut out);
            out.push_str("; what raised it most: ");
            out.push_str(&self.summary());
        } else {
            out.push_str("Raised most ");
            baseline.write_since(&mut out);
            out.push_str(": ");
            out.push_str(&self.summary());
        }
        out
    }
}

/// Writes the UTC calendar date of `ms` (milliseconds since the epoch) as
/// "2026-01-05" (the proleptic Gregorian calendar, from Howard Hinnant's
/// `civil_from_days`): the date a reader of an alert looks up.
pub fn write_utc_date(ms: i64, out: &mut String) {
    let (year, month, day) = crate::civil_from_days(ms.div_euclid(crate::DAY_MS));
    // Writing into a String cannot fail.
    let _ = write!(out, "{year:04}-{month:02}-{day:02}");
}

/// A value kept in `f32` (the reference vectors are) is written as the
/// `f32` it is ("123.45", not "123.44999694824219").
struct Short(f64);

impl Short {
    /// The `f32` the value is, when it is one.
    fn as_f32(&self) -> Option<f32> {
        let x = self.0 as f32;
        (f64::from(x) == self.0).then_some(x)
    }
}

impl Serialize for Short {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.as_f32() {
            Some(x) => s.serialize_f32(x),
            None => s.serialize_f64(self.0),
        }
    }
}

#[derive(Serialize)]
struct ReasonWire<'a> {
    feature: &'a str,
    now: f64,
    was: Short,
    contribution: f64,
    text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    no_data: Option<&'static str>,
}

#[derive(Serialize)]
struct ReasonsWire<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    since: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    churn_risk_14d_then: Option<f32>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    since_signup: bool,
    top: Vec<ReasonWire<'a>>,
}

impl Serialize for Reasons {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let top = self
            .as_slice()
            .iter()
            .map(|r| ReasonWire {
                feature: r.name(),
                now: r.now,
                was: Short(r.was),
                contribution: r.contribution,
                text: r.text(),
                no_data: r.no_data.wire(),
            })
            .collect();
        let baseline = self.baseline().unwrap_or_default();
        ReasonsWire {
            since: baseline.since,
            churn_risk_14d_then: baseline.churn_risk_14d,
            since_signup: baseline.signup,
            top,
        }
        .serialize(s)
    }
}

impl Reasons {
    /// Appends what the [`Serialize`] impl gives through serde_json, byte
    /// for byte, without building the wire structs: each reason's sentence
    /// goes through `text`, a buffer the caller keeps between predictions.
    pub fn write_json(&self, out: &mut Vec<u8>, text: &mut String) {
        let baseline = self.baseline().unwrap_or_default();
        out.push(b'{');
        if let Some(since) = baseline.since {
            out.extend_from_slice(b"\"since\":");
            out.extend_from_slice(itoa::Buffer::new().format(since).as_bytes());
            out.push(b',');
        }
        if let Some(risk) = baseline.churn_risk_14d {
            // Finite (see `Reasons::new`): serde_json writes an f32 so.
            out.extend_from_slice(b"\"churn_risk_14d_then\":");
            out.extend_from_slice(zmij::Buffer::new().format_finite(risk).as_bytes());
            out.push(b',');
        }
        if baseline.signup {
            out.extend_from_slice(b"\"since_signup\":true,");
        }
        out.extend_from_slice(b"\"top\":[");
        for (i, r) in self.as_slice().iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"feature\":");
            json_str(r.name(), out);
            out.extend_from_slice(b",\"now\":");
            json_f64(r.now, out);
            out.extend_from_slice(b",\"was\":");
            // As `Short` serializes it: an f32 when it is one, else an f64
            // (either `null` when not finite).
            match Short(r.was).as_f32().filter(|x| x.is_finite()) {
                Some(x) => out.extend_from_slice(zmij::Buffer::new().format_finite(x).as_bytes()),
                None => json_f64(r.was, out),
            }
            out.extend_from_slice(b",\"contribution\":");
            json_f64(r.contribution, out);
            out.extend_from_slice(b",\"text\":");
            text.clear();
            describe_into(usize::from(r.feature), r.now, r.was, r.no_data, text);
            json_str(text, out);
            if let Some(no_data) = r.no_data.wire() {
                out.extend_from_slice(b",\"no_data\":");
                json_str(no_data, out);
            }
            out.push(b'}');
        }
        out.extend_from_slice(b"]}");
    }
}

impl<'de> Deserialize<'de> for Reasons {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Reasons, D::Error> {
        // Owned strings: a reader may hand over escaped text.
        #[derive(Deserialize)]
        struct Owned {
            feature: String,
            now: f64,
            was: f64,
            contribution: f64,
            // Absent in records written before it was kept, and when neither.
            #[serde(default)]
            no_data: Option<String>,
        }
        // `since` is absent when not known (`pulse serve`); the risk then
        // and the signup flag in records written before they were kept.
        #[derive(Deserialize)]
        struct Wire {
            #[serde(default)]
            since: Option<i64>,
            #[serde(default)]
            churn_risk_14d_then: Option<f32>,
            #[serde(default)]
            since_signup: bool,
            top: Vec<Owned>,
        }
        let wire = Wire::deserialize(d)?;
        if wire.top.len() > TOP_REASONS {
            return Err(D::Error::custom(format!("at most {TOP_REASONS} reasons, got {}", wire.top.len())));
        }
        let mut items = Vec::with_capacity(wire.top.len());
        for r in wire.top {
            let feature = FEATURE_NAMES
                .iter()
                .position(|n| *n == r.feature)
                .ok_or_else(|| D::Error::custom(format!("unknown feature {:?} in reasons", r.feature)))?;
            // `was` is kept in f32 and written as the shortest f32 (see `Short`).
            let was = f64::from(r.was as f32);
            let no_data = match r.no_data.as_deref() {
                None => NoData::NEITHER,
                Some(s) => {
                    NoData::from_wire(s).ok_or_else(|| D::Error::custom(format!("unknown no_data {s:?} in reasons")))?
                }
            };
            items.push(Reason { feature: feature as u8, no_data, now: r.now, was, contribution: r.contribution });
        }
        let baseline =
            Baseline { since: wire.since, churn_risk_14d: wire.churn_risk_14d_then, signup: wire.since_signup };
        Ok(Reasons::new(baseline, items))
    }
}

/// Picks the reasons from a full attribution against `was`: the features
/// with the largest positive contributions (ties to the lower index), at
/// most [`TOP_REASONS`], each with whether its value now and then is "no
/// data" ([`NoData::of`] the two vectors). The reference's time and risk,
/// when known, go with them ([`Baseline::new`]).
pub fn top_raising(
    contributions: &[f64; FEATURE_COUNT],
    now: &[f64; FEATURE_COUNT],
    was: &[f64; FEATURE_COUNT],
    since: Option<i64>,
    churn_risk_14d_then: Option<f32>,
) -> Reasons {
    // Contributions below this are float noise of a sum of tree leaves, not a reason.
    const NOISE: f64 = 1e-9;
    let mut best: [Option<usize>; TOP_REASONS] = [None; TOP_REASONS];
    for (i, &c) in contributions.iter().enumerate() {
        if c <= NOISE {
            continue;
        }
        // Insertion into a sorted array of three: strictly greater moves up,
        // so an equal contribution keeps the lower feature index first.
        let mut slot = i;
        for b in best.iter_mut() {
            match *b {
                Some(j) if contributions[j] >= contributions[slot] => {}
                _ => {
                    let displaced = b.replace(slot);
                    match displaced {
                        Some(j) => slot = j,
                        None => break,
                    }
                }
            }
        }
    }
    Reasons::new(
        Baseline::new(was, since, churn_risk_14d_then),
        best.iter().flatten().map(|&i| Reason {
            feature: i as u8,
            no_data: NoData::of(i, now, was),
            now: now[i],
            was: was[i],
            contribution: contributions[i],
        }),
    )
}

/// How a feature's value reads.
#[derive(Clone, Copy, PartialEq)]
enum Unit {
    /// A whole number of things.
    Count,
    /// A decimal with one place.
    Decimal,
    /// Days, written in hours under 2 days ("3 hours", "under an hour").
    Duration,
    /// A share, written as a percentage.
    Percent,
    /// Minutes.
    Minutes,
    /// A wait in minutes, written in hours from 2 hours and in days from 2
    /// days ("replies to the tutor in 6 days on average", not "in 9327
    /// minutes").
    Wait,
    /// Money.
    Dollars,
    /// A mean rating.
    Rating,
    /// `session_velocity_change`: "2 more sessions this week than the week before".
    Velocity,
    /// `rating_trend`: "this week's ratings 0.3 below the month's".
    Trend,
}

/// How a feature reads: its unit, the sentence (`{}` is the value now), what
/// follows the value then, the phrase for "no data" (module docs), and the
/// phrase for a value of exactly 1 where a number would claim more than the
/// vector knows (a payment success rate).
struct Template {
    unit: Unit,
    sentence: &'static str,
    was_suffix: &'static str,
    none: Option<&'static str>,
    one: Option<&'static str>,
}

const fn t(unit: Unit, sentence: &'static str) -> Template {
    Template { unit, sentence, was_suffix: "", none: None, one: None }
}

const fn with_none(unit: Unit, sentence: &'static str, was_suffix: &'static str, none: &'static str) -> Template {
    Template { unit, sentence, was_suffix, none: Some(none), one: None }
}

const fn success_rate(sentence: &'static str, none: &'static str, one: &'static str) -> Template {
    Template { unit: Unit::Percent, sentence, was_suffix: "", none: Some(none), one: Some(one) }
}

fn template(feature: usize) -> Template {
    use Unit::*;
    match feature {
        idx::SESSIONS_7D => t(Count, "{} sessions in the last 7 days"),
        idx::SESSIONS_14D => t(Count, "{} sessions in the last 14 days"),
        idx::SESSIONS_30D => t(Count, "{} sessions in the last 30 days"),
        idx::SESSIONS_PER_WEEK_30D => t(Decimal, "{} sessions a week over 30 days"),
        idx::SESSION_MINUTES_7D => t(Minutes, "{} session minutes in 7 days"),
        idx::SESSION_MINUTES_30D => t(Minutes, "{} session minutes in 30 days"),
        idx::AVG_SESSION_MINUTES_30D => {
            with_none(Minutes, "sessions last {} minutes on average", " minutes", "no sessions in 30 days")
        }
        idx::SESSION_VELOCITY_CHANGE => t(Velocity, ""),
        // (sessions_7d + 1) / (sessions_30d * 7 / 30 + 1) (FEATURES.md 9): the
        // ones keep a quiet month from dividing by zero, and pull the ratio
        // towards 1 (3 sessions this week, 3 in the month: 2.4, where the
        // unsmoothed pace is 4.3x), so the sentence says they are there.
        idx::SESSION_TREND_RATIO => with_none(
            Decimal,
            "sessions this week at {}x the month's weekly pace (both plus one)",
            "x",
            "no sessions in 30 days",
        ),
        idx::DAYS_SINCE_LAST_SESSION => with_none(Duration, "last session {} ago", " ago", "no session on record"),
        idx::DAYS_SINCE_LAST_LOGIN => with_none(Duration, "last login {} ago", " ago", "no login on record"),
        idx::ACTIVE_DAYS_14D => t(Count, "active on {} days in the last two weeks"),
        idx::TENURE_DAYS => t(Duration, "a customer for {}"),
        idx::AVG_RATING_7D => with_none(Rating, "rated sessions {} on average over 7 days", "", "no rating in 7 days"),
        idx::AVG_RATING_14D => {
            with_none(Rating, "rated sessions {} on average over 14 days", "", "no rating in 14 days")
        }
        idx::AVG_RATING_30D => {
            with_none(Rating, "rated sessions {} on average over 30 days", "", "no rating in 30 days")
        }
        idx::RATING_TREND => with_none(Trend, "", "", "no rating this week"),
        idx::RATINGS_COUNT_30D => t(Count, "{} ratings given in 30 days"),
        idx::LOW_RATINGS_30D => t(Count, "{} ratings of 2 or less in 30 days"),
        idx::LOGINS_7D => t(Count, "{} logins in 7 days"),
        idx::LOGINS_30D => t(Count, "{} logins in 30 days"),
        idx::PAYMENT_SUCCESS_RATE_7D => success_rate(
            "{} of payments went through in 7 days",
            "no payments in 7 days",
            "no failed payment in 7 days",
        ),
        idx::PAYMENT_SUCCESS_RATE_14D => success_rate(
            "{} of payments went through in 14 days",
            "no payments in 14 days",
            "no failed payment in 14 days",
        ),
        idx::PAYMENT_SUCCESS_RATE_30D => success_rate(
            "{} of payments went through in 30 days",
            "no payments in 30 days",
            "no failed payment in 30 days",
        ),
        idx::PAYMENT_FAILURES_30D => t(Count, "{} failed payments in 30 days"),
        idx::PAYMENT_AMOUNT_30D => t(Dollars, "{} paid in 30 days"),
        idx::DAYS_SINCE_LAST_PAYMENT => {
            with_none(Duration, "last successful payment {} ago", " ago", "no successful payment on record")
        }
        idx::IB_CALLS_7D => t(Count, "{} support calls in 7 days"),
        idx::IB_CALLS_14D => t(Count, "{} support calls in 14 days"),
        idx::IB_CALLS_30D => t(Count, "{} support calls in 30 days"),
        idx::NEGATIVE_CALL_RATE_30D => {
            with_none(Percent, "{} of support calls negative in 30 days", "", "no support calls in 30 days")
        }
        idx::DAYS_SINCE_LAST_IB_CALL => {
            with_none(Duration, "last support call {} ago", " ago", "no support call on record")
        }
        idx::STUDENT_CANCELLATIONS_7D => t(Count, "{} sessions cancelled by the student in 7 days"),
        idx::STUDENT_CANCELLATIONS_30D => t(Count, "{} sessions cancelled by the student in 30 days"),
        idx::CANCELLATION_RATE_30D => {
            with_none(Percent, "{} of sessions cancelled by the student in 30 days", "", "no sessions in 30 days")
        }
        idx::NO_SHOWS_30D => t(Count, "{} no-shows in 30 days"),
        idx::STUDENT_REPLY_MINUTES_30D => with_none(
            Wait,
            "replies to the tutor in {} on average",
            "",
            "no replies to the tutor in 30 days, or all instant",
        ),
        idx::DISTINCT_TUTORS_30D => t(Count, "{} different tutors in 30 days"),
        idx::PRIMARY_TUTOR_SHARE_30D => {
            with_none(Percent, "{} of sessions with the main tutor in 30 days", "", "no sessions in 30 days")
        }
        idx::PRIMARY_TUTOR_SHARE_7D => {
            with_none(Percent, "{} of this week's sessions with the main tutor", "", "no sessions this week")
        }
        idx::PRIMARY_TUTOR_AVG_RATING_30D => {
            with_none(Rating, "main tutor rated {} on average", "", "no rating of the main tutor in 30 days")
        }
        idx::TUTOR_SWITCHES_30D => t(Count, "{} tutor switches in 30 days"),
        // The rate is switches / (sessions - 1) (FEATURES.md 43): the first
        // session cannot be a switch, so "of sessions" would overstate it
        // ("100% of sessions" for 2 sessions and 1 switch).
        idx::TUTOR_SWITCH_RATE_30D => with_none(
            Percent,
            "a tutor switch at {} of sessions after the first in 30 days",
            "",
            "fewer than 2 sessions in 30 days",
        ),
        idx::TUTOR_REPLY_MINUTES_30D => {
            with_none(Wait, "the tutor replies in {} on average", "", "no tutor replies in 30 days, or all instant")
        }
        idx::TUTOR_CANCELLATIONS_30D => t(Count, "{} sessions cancelled by the tutor in 30 days"),
        idx::DAYS_SINCE_TUTOR_SWITCH => {
            with_none(Duration, "last tutor switch {} ago", " ago", "no tutor switch in 30 days")
        }
        _ => t(Decimal, "{}"),
    }
}

/// `x` rounded to `decimals` places, as [`num`] prints it.
fn rounded(x: f64, decimals: usize) -> f64 {
    let scale = 10f64.powi(decimals as i32);
    (x * scale).round() / scale
}

/// Writes `x` with `decimals` places (none: rounded, as "3"), never as
/// "-0" or "-0.0": what prints as zero is zero.
fn num(x: f64, decimals: usize, out: &mut String) {
    let start = out.len();
    // Writing into a String cannot fail.
    let _ = if decimals == 0 { write!(out, "{}", x.round()) } else { write!(out, "{x:.decimals$}") };
    if out[start..].starts_with('-') && out[start + 1..].bytes().all(|b| b == b'0' || b == b'.') {
        out.remove(start);
    }
}

/// Appends `text`, with its first plural noun singular when the number just
/// written (from `number` on in `out`) is exactly "1": "1 session", "1
/// minute". Pieces of `text`, no new string.
fn after_number(text: &str, number: usize, out: &mut String) {
    const PLURALS: [(&str, &str); 12] = [
        ("sessions", "session"),
        ("logins", "login"),
        ("ratings", "rating"),
        ("calls", "call"),
        ("payments", "payment"),
        ("no-shows", "no-show"),
        ("tutors", "tutor"),
        ("switches", "switch"),
        ("minutes", "minute"),
        ("hours", "hour"),
        ("days", "day"),
        ("replies", "reply"),
    ];
    if &out[number..] != "1" {
        out.push_str(text);
        return;
    }
    let first = PLURALS.iter().filter_map(|(p, s)| text.find(p).map(|at| (at, *p, *s))).min();
    match first {
        Some((at, plural, one)) => {
            out.push_str(&text[..at]);
            out.push_str(one);
            out.push_str(&text[at + plural.len()..]);
        }
        None => out.push_str(text),
    }
}

/// Writes `x`, `prec` digits more precise than usual, as it stands after
/// "(was ": the unit's words included where the number needs them
/// ("3 hours", "under an hour", "7 more", "0.3 below").
fn token(unit: Unit, x: f64, prec: usize, out: &mut String) {
    match unit {
        Unit::Count => num(x, 0, out),
        Unit::Decimal | Unit::Rating => num(x, 1 + prec, out),
        Unit::Minutes => num(x, prec, out),
        Unit::Wait => {
            let start = out.len();
            // The unit by the value as printed: 119.85 minutes is "2 hours",
            // not "120 minutes", which read as no change beside "2 hours".
            if rounded(x, prec) < 120.0 || x.is_nan() {
                num(x, prec, out);
                after_number(" minutes", start, out);
            } else if rounded(x / 60.0, prec) < 48.0 {
                num(x / 60.0, prec, out);
                after_number(" hours", start, out);
            } else {
                num(x / 1440.0, prec, out);
                after_number(" days", start, out);
            }
        }
        Unit::Percent => {
            num(x * 100.0, prec, out);
            out.push('%');
        }
        Unit::Dollars => {
            out.push('$');
            num(x, if prec == 0 { 0 } else { 2 }, out);
        }
        Unit::Duration => {
            let start = out.len();
            let hours = x * 24.0;
            if rounded(hours, prec) >= 48.0 || x.is_nan() {
                num(x, prec, out);
                after_number(" days", start, out);
            } else if hours.round() != 0.0 {
                num(hours, prec, out);
                after_number(" hours", start, out);
            } else if prec == 0 {
                out.push_str("under an hour");
            } else {
                // Both under half an hour and still alike: minutes.
                let minutes = x * 1440.0;
                if prec == 1 && minutes.round() == 0.0 {
                    out.push_str("under a minute");
                } else {
                    num(minutes, prec - 1, out);
                    after_number(" minutes", start, out);
                }
            }
        }
        Unit::Velocity => {
            let d = x.round();
            if d > 0.0 {
                num(d, 0, out);
                out.push_str(" more");
            } else if d < 0.0 {
                num(-d, 0, out);
                out.push_str(" fewer");
            } else {
                out.push_str("as many");
            }
        }
        Unit::Trend => {
            let start = out.len();
            num(x.abs(), 1 + prec, out);
            if out[start..].bytes().all(|b| b == b'0' || b == b'.') {
                out.truncate(start);
                out.push_str("level");
            } else {
                out.push_str(if x > 0.0 { " above" } else { " below" });
            }
        }
    }
}

impl Template {
    /// The sentence for a value that is a measurement.
    fn sentence(&self, x: f64, prec: usize, out: &mut String) {
        match self.unit {
            Unit::Velocity => {
                let d = x.round();
                let number = out.len();
                if d > 0.0 {
                    num(d, 0, out);
                    after_number(" more sessions this week than the week before", number, out);
                } else if d < 0.0 {
                    num(-d, 0, out);
                    after_number(" fewer sessions this week than the week before", number, out);
                } else {
                    out.push_str("as many sessions this week as the week before");
                }
            }
            Unit::Trend => {
                out.push_str("this week's ratings ");
                token(Unit::Trend, x, prec, out);
                if out.ends_with("level") {
                    out.push_str(" with");
                }
                out.push_str(" the month's");
            }
            _ => match self.sentence.split_once("{}") {
                Some((before, after)) => {
                    out.push_str(before);
                    let number = out.len();
                    token(self.unit, x, prec, out);
                    after_number(after, number, out);
                }
                None => out.push_str(self.sentence),
            },
        }
    }

    /// The value then, after "(was ".
    fn was(&self, x: f64, prec: usize, out: &mut String) {
        let number = out.len();
        token(self.unit, x, prec, out);
        after_number(self.was_suffix, number, out);
    }

    /// The phrase a value reads as instead of a number: "no data" (from the
    /// flag or the value), or a success rate of exactly 1.
    fn phrase(&self, x: f64, no_data: bool) -> Option<&'static str> {
        match (self.none, self.one) {
            (Some(none), _) if no_data => Some(none),
            (_, Some(one)) if x == 1.0 => Some(one),
            _ => None,
        }
    }

    /// The fewest extra digits (0 to 2) at which `now` and `was`, which
    /// differ, print differently; formatted into `out` and cut off again.
    fn precision(&self, now: f64, was: f64, out: &mut String) -> usize {
        // Equal as the models see them (in f32, as the reference is kept):
        // the same, and printed so.
        if now as f32 == was as f32 {
            return 0;
        }
        let start = out.len();
        for prec in 0..2 {
            self.was(now, prec, out);
            let mid = out.len();
            self.was(was, prec, out);
            let same = out[start..mid] == out[mid..];
            out.truncate(start);
            if !same {
                return prec;
            }
        }
        2
    }
}

/// A feature's value now and then, in a sentence: "last session 19 days ago
/// (was 2 days ago)". `no_data` says which sides are the contract's "no
/// data" default where only the whole vector can tell (see the module docs;
/// [`NoData::NEITHER`] when unknown): added to what the values tell.
pub fn describe(feature: usize, now: f64, was: f64, no_data: NoData) -> String {
    let mut out = String::new();
    describe_into(feature, now, was, no_data, &mut out);
    out
}

/// [`describe`], appended to `out`: the prediction writer's way, which
/// formats every reason of every prediction and so keeps one buffer.
pub fn describe_into(feature: usize, now: f64, was: f64, no_data: NoData, out: &mut String) {
    let t = template(feature);
    let no_data = no_data | NoData::of_values(feature, now, was);
    match (t.phrase(now, no_data.now()), t.phrase(was, no_data.was())) {
        (None, None) => {
            let prec = t.precision(now, was, out).max(edge(feature, t.unit, now)).max(edge(feature, t.unit, was));
            t.sentence(now, prec, out);
            out.push_str(" (was ");
            t.was(was, prec, out);
        }
        (None, Some(then)) => {
            t.sentence(now, edge(feature, t.unit, now), out);
            out.push_str(" (was: ");
            out.push_str(then);
        }
        (Some(phrase), None) => {
            out.push_str(phrase);
            out.push_str(" (was: ");
            t.sentence(was, edge(feature, t.unit, was), out);
        }
        (Some(phrase), Some(then)) => {
            out.push_str(phrase);
            if phrase == then {
                out.push_str(" (was the same");
            } else {
                out.push_str(" (was: ");
                out.push_str(then);
            }
        }
    }
    out.push(')');
}

/// A feature's value alone, as a reason's sentence says it without its
/// "(was ...)": "last session 28 days ago", "no session on record". Where
/// a customer's state says more than what moved (the list of customers
/// already gone, whose risk moved little because it was already high).
pub fn describe_value(feature: usize, x: f64) -> String {
    let t = template(feature);
    let mut out = String::new();
    match t.phrase(x, value_is_no_data(feature, x)) {
        Some(phrase) => out.push_str(phrase),
        None => t.sentence(x, edge(feature, t.unit, x), &mut out),
    }
    out
}

/// One more digit for a measurement that, rounded, would print as a value
/// it is not and that reads otherwise: a "days since" of 364.6 as "365
/// days" (the cap, "none on record"), a rate of 99.6% as "100%" (beside "no
/// failed payment"), 0.3% as "0%".
fn edge(feature: usize, unit: Unit, x: f64) -> usize {
    let at_edge = match unit {
        Unit::Duration => x >= 2.0 && !value_is_no_data(feature, x) && value_is_no_data(feature, x.round()),
        Unit::Percent => (x < 1.0 && (x * 100.0).round() >= 100.0) || (x > 0.0 && (x * 100.0).round() == 0.0),
        _ => false,
    };
    usize::from(at_edge)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rounding never prints a measurement as the value that means
    /// something else (a review found "last session 365 days ago (was: no
    /// session on record)").
    #[test]
    fn values_near_an_edge_keep_a_digit() {
        assert_eq!(
            d(idx::DAYS_SINCE_LAST_SESSION, 364.6, 365.0),
            "last session 364.6 days ago (was: no session on record)"
        );
        assert_eq!(
            d(idx::DAYS_SINCE_TUTOR_SWITCH, 29.6, 30.0),
            "last tutor switch 29.6 days ago (was: no tutor switch in 30 days)"
        );
        assert_eq!(
            d(idx::PAYMENT_SUCCESS_RATE_30D, 0.996, 1.0),
            "99.6% of payments went through in 30 days (was: no failed payment in 30 days)"
        );
        assert_eq!(d(idx::NEGATIVE_CALL_RATE_30D, 0.003, 0.5), "0.3% of support calls negative in 30 days (was 50.0%)");
        // Away from an edge, as before.
        assert_eq!(
            d(idx::DAYS_SINCE_LAST_SESSION, 300.4, 365.0),
            "last session 300 days ago (was: no session on record)"
        );
    }

    /// A sentence from the values alone.
    fn d(feature: usize, now: f64, was: f64) -> String {
        describe(feature, now, was, NoData::NEITHER)
    }

    #[test]
    fn sentences_read_as_people_write() {
        // The writer's way: appended to what the buffer holds.
        let mut text = "kept: ".to_string();
        describe_into(idx::SESSIONS_7D, 1.0, 4.0, NoData::NEITHER, &mut text);
        assert_eq!(text, "kept: 1 session in the last 7 days (was 4)");
        describe_into(idx::SESSION_TREND_RATIO, 0.5, 1.5, NoData::NEITHER, &mut text);
        assert_eq!(
            text,
            "kept: 1 session in the last 7 days (was 4)sessions this week at 0.5x the month's weekly pace (both plus \
             one) (was 1.5x)"
        );
        assert_eq!(d(idx::DAYS_SINCE_LAST_SESSION, 19.2, 2.4), "last session 19 days ago (was 2 days ago)");
        assert_eq!(d(idx::DAYS_SINCE_LAST_SESSION, 365.0, 3.0), "no session on record (was: last session 3 days ago)");
        assert_eq!(d(idx::SESSIONS_7D, 0.0, 4.0), "0 sessions in the last 7 days (was 4)");
        assert_eq!(d(idx::SESSIONS_7D, 1.0, 4.0), "1 session in the last 7 days (was 4)");
        assert_eq!(d(idx::TUTOR_CANCELLATIONS_30D, 1.0, 0.0), "1 session cancelled by the tutor in 30 days (was 0)");
        assert_eq!(d(idx::IB_CALLS_7D, 1.0, 0.0), "1 support call in 7 days (was 0)");
        assert_eq!(d(idx::PAYMENT_SUCCESS_RATE_30D, 0.5, 0.75), "50% of payments went through in 30 days (was 75%)");
        assert_eq!(d(idx::PAYMENT_AMOUNT_30D, 120.4, 300.0), "$120 paid in 30 days (was $300)");
        assert_eq!(
            d(idx::AVG_RATING_7D, 2.5, 0.0),
            "rated sessions 2.5 on average over 7 days (was: no rating in 7 days)"
        );
        assert_eq!(d(idx::DAYS_SINCE_LAST_IB_CALL, 365.0, 365.0), "no support call on record (was the same)");
        for f in 0..FEATURE_COUNT {
            for (now, was) in [(1.0, 2.0), (0.0, 1.0), (365.0, 0.5), (-0.0, f64::NAN), (f64::INFINITY, 1e300)] {
                for no_data in [NoData::NEITHER, NoData::NOW, NoData::WAS, NoData::BOTH] {
                    let text = describe(f, now, was, no_data);
                    assert!(!text.contains("{}") && text.ends_with(')'), "{f}: {text}");
                    assert!(!text.contains("-0 ") && !text.contains("-0.0 "), "{f}: {text}");
                    assert!(!text.contains("  ") && !text.contains(" )"), "{f}: {text}");
                }
            }
        }
    }

    /// Defect 1: a small "days since" read as the opposite ("no successful
    /// payment in 0 days" for a payment today): when it happened, in hours
    /// under 2 days.
    #[test]
    fn recent_days_since_read_as_when_in_hours() {
        assert_eq!(
            d(idx::DAYS_SINCE_LAST_PAYMENT, 0.125, 365.0),
            "last successful payment 3 hours ago (was: no successful payment on record)"
        );
        assert_eq!(d(idx::DAYS_SINCE_LAST_LOGIN, 0.07, 0.40), "last login 2 hours ago (was 10 hours ago)");
        assert_eq!(d(idx::DAYS_SINCE_LAST_SESSION, 0.01, 3.0), "last session under an hour ago (was 3 days ago)");
        assert_eq!(d(idx::DAYS_SINCE_LAST_IB_CALL, 1.0 / 24.0, 5.0), "last support call 1 hour ago (was 5 days ago)");
        // 47.76 hours print as 48: in days, as printed.
        assert_eq!(d(idx::DAYS_SINCE_LAST_SESSION, 12.0, 1.99), "last session 12 days ago (was 2 days ago)");
        assert_eq!(d(idx::DAYS_SINCE_LAST_SESSION, 12.0, 0.0), "last session 12 days ago (was under an hour ago)");
        assert_eq!(d(idx::TENURE_DAYS, 0.5, 0.2), "a customer for 12 hours (was 5 hours)");
        assert_eq!(
            d(idx::DAYS_SINCE_TUTOR_SWITCH, 30.0, 4.0),
            "no tutor switch in 30 days (was: last tutor switch 4 days ago)"
        );
        // Both under half an hour and different: minutes.
        assert_eq!(d(idx::DAYS_SINCE_LAST_LOGIN, 0.02, 0.005), "last login 29 minutes ago (was 7 minutes ago)");
        for x in [0.0, 0.01, 0.07, 0.4, 1.0, 1.99, 2.0] {
            let text = d(idx::DAYS_SINCE_LAST_PAYMENT, x, 365.0);
            assert!(!text.contains("0 days") && !text.contains(" in ") && text.starts_with("last "), "{x}: {text}");
        }
    }

    /// A long wait reads in hours or days: "in 9327 minutes" was in the
    /// demo's list of customers already gone.
    #[test]
    fn a_long_wait_reads_in_hours_or_days() {
        let cases = [
            (idx::STUDENT_REPLY_MINUTES_30D, 9327.0, 428.0, "replies to the tutor in 6 days on average (was 7 hours)"),
            (idx::TUTOR_REPLY_MINUTES_30D, 97.0, 52.0, "the tutor replies in 97 minutes on average (was 52 minutes)"),
            (idx::TUTOR_REPLY_MINUTES_30D, 150.0, 119.0, "the tutor replies in 3 hours on average (was 119 minutes)"),
            // Across a unit's edge: the unit by the value as printed, so
            // "2 days (was 48 hours)", which read as no change, takes a digit.
            (
                idx::TUTOR_REPLY_MINUTES_30D,
                2900.0,
                2879.0,
                "the tutor replies in 2.01 days on average (was 47.98 hours)",
            ),
            // Alike at whole hours: a digit more, in each side's unit.
            (idx::TUTOR_REPLY_MINUTES_30D, 130.0, 125.0, "the tutor replies in 2.2 hours on average (was 2.1 hours)"),
        ];
        for (feature, now, was, want) in cases {
            assert_eq!(d(feature, now, was), want);
        }
    }

    /// Defect 2: "1 days", "1 minutes", "(was 1 days)".
    #[test]
    fn one_is_singular_now_and_then() {
        assert_eq!(d(idx::AVG_SESSION_MINUTES_30D, 1.0, 30.0), "sessions last 1 minute on average (was 30 minutes)");
        assert_eq!(d(idx::AVG_SESSION_MINUTES_30D, 45.0, 1.0), "sessions last 45 minutes on average (was 1 minute)");
        assert_eq!(d(idx::SESSION_MINUTES_7D, 1.0, 90.0), "1 session minute in 7 days (was 90)");
        assert_eq!(
            d(idx::TUTOR_REPLY_MINUTES_30D, 1.0, 20.0),
            "the tutor replies in 1 minute on average (was 20 minutes)"
        );
        assert_eq!(d(idx::DAYS_SINCE_LAST_SESSION, 19.0, 1.0), "last session 19 days ago (was 24 hours ago)");
        assert_eq!(d(idx::ACTIVE_DAYS_14D, 1.0, 9.0), "active on 1 day in the last two weeks (was 9)");
        assert_eq!(d(idx::DISTINCT_TUTORS_30D, 1.0, 3.0), "1 different tutor in 30 days (was 3)");
        assert_eq!(d(idx::TUTOR_SWITCHES_30D, 1.0, 0.0), "1 tutor switch in 30 days (was 0)");
        for f in 0..FEATURE_COUNT {
            for (now, was) in [(1.0, 2.0), (2.0, 1.0), (1.0 / 24.0, 3.0)] {
                let text = d(f, now, was);
                for plural in ["1 days", "1 minutes", "1 hours", "1 sessions", "1 calls", "1 ratings"] {
                    assert!(!text.contains(plural), "{f}: {text}");
                }
            }
        }
    }

    /// Defect 3: two values that differ print differently.
    #[test]
    fn different_values_print_differently() {
        assert_eq!(d(idx::PRIMARY_TUTOR_AVG_RATING_30D, 4.8, 4.84), "main tutor rated 4.80 on average (was 4.84)");
        assert_eq!(d(idx::AVG_RATING_30D, 3.93, 3.87), "rated sessions 3.93 on average over 30 days (was 3.87)");
        assert_eq!(
            d(idx::AVG_SESSION_MINUTES_30D, 44.2, 43.9),
            "sessions last 44.2 minutes on average (was 43.9 minutes)"
        );
        assert_eq!(
            d(idx::CANCELLATION_RATE_30D, 0.05, 0.052),
            "5.0% of sessions cancelled by the student in 30 days (was 5.2%)"
        );
        assert_eq!(
            d(idx::CANCELLATION_RATE_30D, 0.0501, 0.0504),
            "5.01% of sessions cancelled by the student in 30 days (was 5.04%)"
        );
        assert_eq!(d(idx::DAYS_SINCE_LAST_SESSION, 19.2, 18.9), "last session 19.2 days ago (was 18.9 days ago)");
        assert_eq!(d(idx::PAYMENT_AMOUNT_30D, 120.4, 119.8), "$120.40 paid in 30 days (was $119.80)");
        // The same value (as the models see it, in f32) is printed plainly.
        assert_eq!(
            d(idx::AVG_RATING_30D, 4.8, f64::from(4.8f32)),
            "rated sessions 4.8 on average over 30 days (was 4.8)"
        );
        let mut n = 0;
        for f in 0..FEATURE_COUNT {
            for i in 0..200 {
                let now = 0.37 + f64::from(i) * 0.013;
                let was = now * 1.05;
                let text = d(f, now, was);
                if let Some((a, b)) = text.split_once(" (was ") {
                    // The number in the sentence and in the brackets differ.
                    let num = |s: &str| {
                        s.split(|c: char| !(c.is_ascii_digit() || c == '.'))
                            .filter(|w| !w.is_empty() && *w != ".")
                            .map(str::to_owned)
                            .collect::<Vec<_>>()
                    };
                    let (a, b) = (num(a), num(b));
                    if !matches!(template(f).unit, Unit::Count | Unit::Velocity) {
                        assert_ne!(a.last(), b.first(), "{f}: {text}");
                        n += 1;
                    }
                }
            }
        }
        assert!(n > 1000, "{n}");
    }

    /// Defect 4: a default that means "no data" is no measurement.
    #[test]
    fn no_data_reads_as_no_data() {
        assert_eq!(
            d(idx::AVG_SESSION_MINUTES_30D, 120.0, 0.0),
            "sessions last 120 minutes on average (was: no sessions in 30 days)"
        );
        assert_eq!(
            describe(idx::NEGATIVE_CALL_RATE_30D, 1.0, 0.0, NoData::WAS),
            "100% of support calls negative in 30 days (was: no support calls in 30 days)"
        );
        assert_eq!(d(idx::NEGATIVE_CALL_RATE_30D, 1.0, 0.0), "100% of support calls negative in 30 days (was 0%)");
        assert_eq!(
            describe(idx::PAYMENT_SUCCESS_RATE_30D, 0.0, 1.0, NoData::WAS),
            "0% of payments went through in 30 days (was: no payments in 30 days)"
        );
        // Where the vector cannot tell, true either way.
        assert_eq!(
            d(idx::PAYMENT_SUCCESS_RATE_7D, 0.0, 1.0),
            "0% of payments went through in 7 days (was: no failed payment in 7 days)"
        );
        assert_eq!(
            describe(idx::TUTOR_SWITCH_RATE_30D, 1.0, 0.0, NoData::WAS),
            "a tutor switch at 100% of sessions after the first in 30 days (was: fewer than 2 sessions in 30 days)"
        );
        // 2 sessions, 1 switch: the second session is the only one that
        // could be a switch.
        assert_eq!(
            d(idx::TUTOR_SWITCH_RATE_30D, 1.0, 0.5),
            "a tutor switch at 100% of sessions after the first in 30 days (was 50%)"
        );
        assert_eq!(
            describe(idx::PRIMARY_TUTOR_SHARE_7D, 0.0, 1.0, NoData::NOW),
            "no sessions this week (was: 100% of this week's sessions with the main tutor)"
        );
        assert_eq!(
            describe(idx::RATING_TREND, 0.2, 0.0, NoData::WAS),
            "this week's ratings 0.2 above the month's (was: no rating this week)"
        );
        assert_eq!(
            d(idx::TUTOR_REPLY_MINUTES_30D, 59.0, 0.0),
            "the tutor replies in 59 minutes on average (was: no tutor replies in 30 days, or all instant)"
        );
        assert_eq!(
            describe(idx::CANCELLATION_RATE_30D, 0.5, 0.0, NoData::WAS),
            "50% of sessions cancelled by the student in 30 days (was: no sessions in 30 days)"
        );
        assert_eq!(
            d(idx::PRIMARY_TUTOR_AVG_RATING_30D, 0.0, 4.5),
            "no rating of the main tutor in 30 days (was: main tutor rated 4.5 on average)"
        );
        // The trend ratio of no session at all is the formula's 1, no pace.
        assert_eq!(
            describe(idx::SESSION_TREND_RATIO, 1.0, 2.35, NoData::NOW),
            "no sessions in 30 days (was: sessions this week at 2.4x the month's weekly pace (both plus one))"
        );
    }

    /// Defect 4, where the flags come from: the counts of the same vector.
    #[test]
    fn top_raising_tells_no_data_from_the_vectors() {
        let mut now = [0.0; FEATURE_COUNT];
        let mut was = [0.0; FEATURE_COUNT];
        // Now: 4 sessions (3 this week), 2 support calls, a payment 2 days ago.
        now[idx::SESSIONS_7D] = 3.0;
        now[idx::SESSIONS_30D] = 4.0;
        now[idx::IB_CALLS_30D] = 2.0;
        now[idx::NEGATIVE_CALL_RATE_30D] = 1.0;
        now[idx::AVG_SESSION_MINUTES_30D] = 120.0;
        now[idx::TUTOR_SWITCH_RATE_30D] = 1.0;
        now[idx::DAYS_SINCE_LAST_PAYMENT] = 2.0;
        now[idx::PAYMENT_SUCCESS_RATE_7D] = 1.0;
        now[idx::PAYMENT_SUCCESS_RATE_30D] = 0.5;
        // Then: one session, last month, no call, no payment for 40 days.
        was[idx::SESSIONS_30D] = 1.0;
        was[idx::AVG_SESSION_MINUTES_30D] = 50.0;
        was[idx::DAYS_SINCE_LAST_PAYMENT] = 40.0;
        was[idx::PAYMENT_SUCCESS_RATE_7D] = 1.0;
        was[idx::PAYMENT_SUCCESS_RATE_30D] = 1.0;
        let flags = |f: usize| NoData::of(f, &now, &was);
        assert_eq!(flags(idx::NEGATIVE_CALL_RATE_30D), NoData::WAS);
        assert_eq!(flags(idx::TUTOR_SWITCH_RATE_30D), NoData::WAS);
        assert_eq!(flags(idx::PRIMARY_TUTOR_SHARE_7D), NoData::WAS);
        assert_eq!(flags(idx::AVG_SESSION_MINUTES_30D), NoData::NEITHER);
        assert_eq!(flags(idx::PAYMENT_SUCCESS_RATE_7D), NoData::WAS, "paid 2 days ago: a real 100%");
        assert_eq!(flags(idx::PAYMENT_SUCCESS_RATE_30D), NoData::WAS);
        assert_eq!(flags(idx::CANCELLATION_RATE_30D), NoData::NEITHER);
        assert_eq!(flags(idx::RATING_TREND), NoData::BOTH);
        assert_eq!(flags(idx::SESSION_TREND_RATIO), NoData::NEITHER, "sessions in the month, then and now");
        let mut quiet = was;
        quiet[idx::SESSIONS_30D] = 0.0;
        assert_eq!(NoData::of(idx::SESSION_TREND_RATIO, &now, &quiet), NoData::WAS, "(0 + 1) / (0 + 1): no pace");
        assert_eq!(flags(idx::DAYS_SINCE_LAST_IB_CALL), NoData::NEITHER, "0 days: a call just now, in both");
        let mut c = [0.0; FEATURE_COUNT];
        c[idx::NEGATIVE_CALL_RATE_30D] = 0.9;
        c[idx::PAYMENT_SUCCESS_RATE_30D] = 0.5;
        c[idx::TUTOR_SWITCH_RATE_30D] = 0.1;
        let r = top_raising(&c, &now, &was, Some(7), None);
        let texts: Vec<String> = r.as_slice().iter().map(Reason::text).collect();
        assert_eq!(
            texts,
            [
                "100% of support calls negative in 30 days (was: no support calls in 30 days)",
                "50% of payments went through in 30 days (was: no payments in 30 days)",
                "a tutor switch at 100% of sessions after the first in 30 days (was: fewer than 2 sessions in 30 \
                 days)",
            ]
        );
    }

    #[test]
    fn a_value_alone_reads_as_its_sentence() {
        assert_eq!(describe_value(idx::DAYS_SINCE_LAST_SESSION, 28.3), "last session 28 days ago");
        assert_eq!(describe_value(idx::DAYS_SINCE_LAST_SESSION, 365.0), "no session on record");
        assert_eq!(describe_value(idx::DAYS_SINCE_LAST_SESSION, 1.0), "last session 24 hours ago");
        assert_eq!(describe_value(idx::DAYS_SINCE_LAST_SESSION, 364.6), "last session 364.6 days ago");
    }

    /// Defect 5: 15 calendar dates in a 14-day window.
    #[test]
    fn active_days_never_exceed_what_they_are_counted_of() {
        assert_eq!(d(idx::ACTIVE_DAYS_14D, 15.0, 9.0), "active on 15 days in the last two weeks (was 9)");
        assert_eq!(d(idx::ACTIVE_DAYS_14D, 9.0, 15.0), "active on 9 days in the last two weeks (was 15)");
    }

    /// Defect 6: signed differences in words, never "-0.0" or "+7".
    #[test]
    fn signed_differences_read_as_words() {
        assert_eq!(
            d(idx::SESSION_VELOCITY_CHANGE, 0.0, 7.0),
            "as many sessions this week as the week before (was 7 more)"
        );
        assert_eq!(
            d(idx::SESSION_VELOCITY_CHANGE, -3.0, 1.0),
            "3 fewer sessions this week than the week before (was 1 more)"
        );
        assert_eq!(
            d(idx::SESSION_VELOCITY_CHANGE, 2.0, -1.0),
            "2 more sessions this week than the week before (was 1 fewer)"
        );
        assert_eq!(
            d(idx::SESSION_VELOCITY_CHANGE, 1.0, 0.0),
            "1 more session this week than the week before (was as many)"
        );
        assert_eq!(d(idx::RATING_TREND, -0.3, 0.1), "this week's ratings 0.3 below the month's (was 0.1 above)");
        assert_eq!(d(idx::RATING_TREND, -0.01, 0.3), "this week's ratings level with the month's (was 0.3 above)");
        // Both level at one place but different: two places.
        assert_eq!(d(idx::RATING_TREND, -0.04, 0.02), "this week's ratings 0.04 below the month's (was 0.02 above)");
        for x in [-0.04, -0.0, -1e-9, -0.049] {
            let text = d(idx::RATING_TREND, x, 1.0);
            assert!(!text.contains('-'), "{text}");
        }
    }

    #[test]
    fn the_top_three_are_the_largest_positive_contributions() {
        let mut c = [0.0; FEATURE_COUNT];
        c[4] = 0.5;
        c[9] = 2.0;
        c[10] = 0.5;
        c[20] = -5.0;
        c[30] = 0.1;
        let now = [1.0; FEATURE_COUNT];
        let was = [2.0; FEATURE_COUNT];
        let r = top_raising(&c, &now, &was, Some(7), Some(0.25));
        let picked: Vec<_> = r.as_slice().iter().map(|r| r.feature).collect();
        assert_eq!(picked, [9, 4, 10], "largest first, ties to the lower index");
        assert_eq!(r.baseline(), Some(Baseline { since: Some(7), churn_risk_14d: Some(0.25), signup: false }));
        // None raised it: still worked out against the baseline, which an
        // alert names ("no feature raised it since ...").
        let none = top_raising(&[-1.0; FEATURE_COUNT], &now, &was, Some(7), Some(0.25));
        assert!(none.is_empty() && none.is_explained() && none.since() == Some(7));
    }

    /// Defect: "replies to the tutor in 2 hours on average (was 120
    /// minutes)" for 134.72 against 119.85: the unit was chosen before
    /// rounding, so the two read alike; and "48 hours" beside "2 days".
    #[test]
    fn the_unit_is_chosen_by_the_value_as_printed() {
        let text = describe(idx::STUDENT_REPLY_MINUTES_30D, 134.72, 119.85, NoData::NEITHER);
        assert!(!text.contains("120 minutes"), "{text}");
        assert!(text.contains("2.2 hours"), "{text}");
        let text = describe(idx::DAYS_SINCE_LAST_LOGIN, 1.999, 2.6, NoData::NEITHER);
        assert!(!text.contains("48 hours"), "{text}");
    }

    /// Defect: an alert's reasons named a baseline ("rose from 0.504") they
    /// were not measured against, and a new customer's reasons read as if
    /// compared with a real earlier record. Each sentence names its own.
    #[test]
    fn the_sentence_names_the_baseline_the_reasons_compare_with() {
        // 2026-01-05 00:00 UTC, and a time late that day.
        let monday = 1_767_571_200_000;
        let late = monday + crate::DAY_MS - 1;
        let reason = Reason { feature: 10, now: 5.0 / 24.0, was: 0.01, contribution: 0.4, ..Reason::default() };
        let dated = Baseline { since: Some(late), churn_risk_14d: Some(0.798), signup: false };
        assert_eq!(
            Reasons::new(dated, [reason]).sentence(Some(0.9)),
            "Raised most since 2026-01-05 (risk then 0.798): last login 5 hours ago (was under an hour ago)"
        );
        assert_eq!(
            Reasons::new(dated, []).sentence(Some(0.9)),
            "No feature raised it since 2026-01-05 (risk then 0.798)"
        );
        // A risk lower now than then fell, whatever raised it: "Raised most"
        // read as a rise (a review, 2026-12-05: "risk then 0.903", now 0.746).
        assert_eq!(
            Reasons::new(dated, [reason]).sentence(Some(0.746)),
            "Down since 2026-01-05 (risk then 0.798); what raised it most: last login 5 hours ago (was under an hour ago)"
        );
        // A signup record: no date to look up, but its risk, which the
        // customer's first prediction had: without it "rose from 0.569 to
        // 0.823. No feature raised it since signing up" read as a
        // contradiction.
        let signup = Baseline { signup: true, ..dated };
        // A customer met in a burn-in: the same reasons, dated.
        assert_eq!(
            Reasons::new(signup, [reason]).signup_unknown().sentence(None),
            Reasons::new(dated, [reason]).sentence(None)
        );
        assert_eq!(
            Reasons::new(signup, [reason]).sentence(None),
            "Raised most since signing up (risk then 0.798): last login 5 hours ago (was under an hour ago)"
        );
        assert_eq!(
            Reasons::new(signup, []).sentence(Some(0.823)),
            "No feature raised it since signing up (risk then 0.798)"
        );
        // Whether the reference is a signup record is read from its vector.
        let mut was = [0.0; FEATURE_COUNT];
        was[idx::DAYS_SINCE_LAST_SESSION] = 365.0;
        was[idx::TENURE_DAYS] = 0.5;
        assert!(Baseline::new(&was, Some(late), Some(0.95)).signup);
        was[idx::DAYS_SINCE_LAST_SESSION] = 0.2;
        assert!(!Baseline::new(&was, Some(late), Some(0.95)).signup, "a session on record: a real record");
        // No reasons: why, never a bare score.
        assert_eq!(Reasons::default().sentence(None), "No reasons: no earlier vector of the customer to compare with");
        assert_eq!(Reasons::none(Basis::Off).sentence(None), "No reasons: reasons are off (--no-reasons)");
        assert!(Reasons::none(Basis::Unexplainable).sentence(None).contains("cannot be explained"));
        assert!(Reasons::none(Basis::Failed).sentence(None).contains("failed"));
        assert_eq!(Reasons::none(Basis::Pending).sentence(None), "", "filled in later");
        for basis in [Basis::Nothing, Basis::Pending, Basis::Off, Basis::Unexplainable, Basis::Failed] {
            assert_eq!(Reasons::none(basis).baseline(), None);
        }
    }

    #[test]
    fn utc_dates_are_calendar_dates() {
        let date = |ms: i64| {
            let mut out = String::new();
            write_utc_date(ms, &mut out);
            out
        };
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(-1), "1969-12-31");
        assert_eq!(date(1_767_571_200_000), "2026-01-05");
        assert_eq!(date(951_782_400_000), "2000-02-29");
        assert_eq!(date(4_107_456_000_000), "2100-02-28");
        assert_eq!(date(4_107_542_400_000), "2100-03-01");
    }

    #[test]
    fn reasons_round_trip_through_json_with_text() {
        let at = |since: i64| Baseline { since: Some(since), churn_risk_14d: Some(0.625), signup: false };
        let r =
            Reasons::new(at(5), [Reason { feature: 9, now: 19.0, was: 2.0, contribution: 0.8, ..Reason::default() }]);
        assert_eq!(serde_json::to_string(&Short(0.1)).unwrap(), "0.1", "an f64 that is no f32 stays f64");
        let json = serde_json::to_string(&r).unwrap();
        let kept = Reasons::new(
            at(5),
            [Reason { feature: 25, now: 1.0, was: f64::from(123.45f32), contribution: 0.1, ..Reason::default() }],
        );
        let kept_json = serde_json::to_string(&kept).unwrap();
        assert!(kept_json.contains(r#""was":123.45,"#), "{kept_json}");
        assert_eq!(serde_json::from_str::<Reasons>(&kept_json).unwrap(), kept);
        assert!(json.contains(r#""text":"last session 19 days ago (was 2 days ago)"}"#), "{json}");
        assert_eq!(serde_json::from_str::<Reasons>(&json).unwrap(), r);
        let bad = json.replace("days_since_last_session", "nope");
        assert!(serde_json::from_str::<Reasons>(&bad).unwrap_err().to_string().contains("unknown feature"));
        // The baseline on the wire: the risk then, the signup flag when set,
        // no `since` when it is not known; none raised it: an empty top.
        assert!(json.starts_with(r#"{"since":5,"churn_risk_14d_then":0.625,"top":["#), "{json}");
        let signup = Reasons::new(Baseline { since: None, churn_risk_14d: None, signup: true }, []);
        let signup_json = serde_json::to_string(&signup).unwrap();
        assert_eq!(signup_json, r#"{"since_signup":true,"top":[]}"#);
        assert_eq!(serde_json::from_str::<Reasons>(&signup_json).unwrap(), signup);
        for reasons in [r, kept, signup] {
            let mut direct = Vec::new();
            reasons.write_json(&mut direct, &mut String::new());
            assert_eq!(String::from_utf8(direct).unwrap(), serde_json::to_string(&reasons).unwrap());
        }
    }

    /// The "no data" flags are written when set, read back, and optional on
    /// read: a record written before them reads as "neither".
    #[test]
    fn no_data_goes_on_the_wire_and_is_optional_on_read() {
        let r = Reasons::new(
            Baseline { since: Some(5), ..Baseline::default() },
            [
                Reason { feature: 30, no_data: NoData::WAS, now: 1.0, was: 0.0, contribution: 0.8 },
                Reason { feature: 9, no_data: NoData::BOTH, now: 365.0, was: 365.0, contribution: 0.1 },
                Reason { feature: 0, no_data: NoData::NOW, now: 0.0, was: 3.0, contribution: 0.05 },
            ],
        );
        let json = serde_json::to_string(&r).unwrap();
        assert!(
            json.contains(r#""text":"100% of support calls negative in 30 days (was: no support calls in 30 days)","no_data":"was"}"#),
            "{json}"
        );
        assert!(json.contains(r#""no_data":"both"}"#) && json.contains(r#""no_data":"now"}"#), "{json}");
        assert_eq!(serde_json::from_str::<Reasons>(&json).unwrap(), r);
        let mut direct = Vec::new();
        r.write_json(&mut direct, &mut String::new());
        assert_eq!(String::from_utf8(direct).unwrap(), json, "the writer's way, byte for byte");
        // As written before the field existed.
        let old = r#"{"since":5,"top":[{"feature":"negative_call_rate_30d","now":1.0,"was":0.0,"contribution":0.8,"text":"100% of support calls negative in 30 days (was 0%)"}]}"#;
        let read = serde_json::from_str::<Reasons>(old).unwrap();
        assert_eq!(read.as_slice()[0].no_data, NoData::NEITHER);
        assert_eq!(read.as_slice()[0].text(), "100% of support calls negative in 30 days (was 0%)");
        assert_eq!(read.baseline(), Some(Baseline { since: Some(5), churn_risk_14d: None, signup: false }));
        let bad = json.replace(r#""no_data":"was""#, r#""no_data":"then""#);
        assert!(serde_json::from_str::<Reasons>(&bad).unwrap_err().to_string().contains("unknown no_data"));
    }
}
