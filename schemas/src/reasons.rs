//! Why a churn risk moved: the features that raised it the most, for people.
//!
//! A prediction's [`Reasons`] name the (at most three) features whose change
//! since a reference vector — the same customer's vector about 14 days
//! earlier — raised its `churn_risk_14d` the most, with the value now, the
//! value then, and the feature's share of the move in the model's margin
//! (log-odds). The attribution itself is the model's (`pulse_model::explain`);
//! this module is the contract's side: which feature, how it is written, and
//! a sentence a customer-success person can act on ("no session in 19 days
//! (was 2 days)").

use std::fmt::Write as _;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::features::{idx, json_f64, json_str, FEATURE_COUNT, FEATURE_NAMES};

/// How many reasons a prediction carries at most.
pub const TOP_REASONS: usize = 3;

/// One feature that raised the risk.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Reason {
    /// Index of the feature in contract order.
    pub feature: u8,
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
        describe(usize::from(self.feature), self.now, self.was)
    }
}

/// The reasons of one prediction: empty when none raised the risk (the
/// customer's first vector, a risk that fell, a model that cannot explain).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Reasons {
    len: u8,
    items: [Reason; TOP_REASONS],
    /// `as_of` of the reference vector ("was"); 0 when empty.
    pub since: i64,
}

impl Reasons {
    /// Reasons against the reference vector of `since`, strongest first; only
    /// the first [`TOP_REASONS`] are kept.
    pub fn new(since: i64, reasons: impl IntoIterator<Item = Reason>) -> Reasons {
        let mut out = Reasons { since, ..Reasons::default() };
        for r in reasons.into_iter().take(TOP_REASONS) {
            out.items[usize::from(out.len)] = r;
            out.len += 1;
        }
        if out.len == 0 {
            out.since = 0;
        }
        out
    }

    /// The reasons, strongest first.
    pub fn as_slice(&self) -> &[Reason] {
        &self.items[..usize::from(self.len)]
    }

    /// No reason given.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The reasons as one line: "a; b; c".
    pub fn summary(&self) -> String {
        self.as_slice().iter().map(Reason::text).collect::<Vec<_>>().join("; ")
    }
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
}

#[derive(Serialize)]
struct ReasonsWire<'a> {
    since: i64,
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
            })
            .collect();
        ReasonsWire { since: self.since, top }.serialize(s)
    }
}

impl Reasons {
    /// Appends what the [`Serialize`] impl gives through serde_json, byte
    /// for byte, without building the wire structs: each reason's sentence
    /// goes through `text`, a buffer the caller keeps between predictions.
    pub fn write_json(&self, out: &mut Vec<u8>, text: &mut String) {
        out.extend_from_slice(b"{\"since\":");
        out.extend_from_slice(itoa::Buffer::new().format(self.since).as_bytes());
        out.extend_from_slice(b",\"top\":[");
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
            describe_into(usize::from(r.feature), r.now, r.was, text);
            json_str(text, out);
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
        }
        #[derive(Deserialize)]
        struct Wire {
            since: i64,
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
            items.push(Reason { feature: feature as u8, now: r.now, was, contribution: r.contribution });
        }
        Ok(Reasons::new(wire.since, items))
    }
}

/// Picks the reasons from a full attribution: the features with the largest
/// positive contributions (ties to the lower index), at most [`TOP_REASONS`].
pub fn top_raising(
    contributions: &[f64; FEATURE_COUNT],
    now: &[f64; FEATURE_COUNT],
    was: &[f64; FEATURE_COUNT],
    since: i64,
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
        since,
        best.iter().flatten().map(|&i| Reason {
            feature: i as u8,
            now: now[i],
            was: was[i],
            contribution: contributions[i],
        }),
    )
}

/// How a feature's value reads.
#[derive(Clone, Copy)]
enum Unit {
    /// A whole number of things.
    Count,
    /// A decimal with one place.
    Decimal,
    /// Days since, with the contract's cap meaning "none on record".
    DaysSince { cap: f64 },
    /// Days.
    Days,
    /// A share, written as a percentage.
    Percent,
    /// Minutes.
    Minutes,
    /// Money.
    Dollars,
    /// A mean rating; 0 means "no rating".
    Rating,
    /// A signed difference.
    Signed,
}

fn value(unit: Unit, x: f64, out: &mut String) {
    // Writing into a String cannot fail.
    let _ = match unit {
        Unit::Count | Unit::Days | Unit::DaysSince { .. } | Unit::Minutes => write!(out, "{}", x.round()),
        Unit::Decimal | Unit::Rating => write!(out, "{x:.1}"),
        Unit::Percent => write!(out, "{}%", (x * 100.0).round()),
        Unit::Dollars => write!(out, "${}", x.round()),
        Unit::Signed if x.round() > 0.0 => write!(out, "+{}", x.round()),
        Unit::Signed => write!(out, "{}", x.round()),
    };
}

/// How a feature reads: its unit, the sentence (`{}` is the value now), what
/// follows the value then, and the sentence when the value is the contract's
/// "none" default (a capped "days since", a mean rating of 0).
struct Template {
    unit: Unit,
    sentence: &'static str,
    was_suffix: &'static str,
    none: Option<&'static str>,
}

const fn t(unit: Unit, sentence: &'static str) -> Template {
    Template { unit, sentence, was_suffix: "", none: None }
}

const fn with_none(unit: Unit, sentence: &'static str, was_suffix: &'static str, none: &'static str) -> Template {
    Template { unit, sentence, was_suffix, none: Some(none) }
}

fn template(feature: usize) -> Template {
    use Unit::*;
    const SINCE: Unit = DaysSince { cap: 365.0 };
    match feature {
        idx::SESSIONS_7D => t(Count, "{} sessions in the last 7 days"),
        idx::SESSIONS_14D => t(Count, "{} sessions in the last 14 days"),
        idx::SESSIONS_30D => t(Count, "{} sessions in the last 30 days"),
        idx::SESSIONS_PER_WEEK_30D => t(Decimal, "{} sessions a week over 30 days"),
        idx::SESSION_MINUTES_7D => t(Minutes, "{} session minutes in 7 days"),
        idx::SESSION_MINUTES_30D => t(Minutes, "{} session minutes in 30 days"),
        idx::AVG_SESSION_MINUTES_30D => {
            Template { was_suffix: " minutes", ..t(Minutes, "sessions last {} minutes on average") }
        }
        idx::SESSION_VELOCITY_CHANGE => t(Signed, "{} sessions this week against the week before"),
        idx::SESSION_TREND_RATIO => {
            Template { was_suffix: "x", ..t(Decimal, "this week at {}x the month's pace of sessions") }
        }
        idx::DAYS_SINCE_LAST_SESSION => with_none(SINCE, "no session in {} days", " days", "no session on record"),
        idx::DAYS_SINCE_LAST_LOGIN => with_none(SINCE, "no login in {} days", " days", "no login on record"),
        idx::ACTIVE_DAYS_14D => t(Count, "active on {} of the last 14 days"),
        idx::TENURE_DAYS => t(Days, "a customer for {} days"),
        idx::AVG_RATING_7D => with_none(Rating, "rated sessions {} on average over 7 days", "", "no rating in 7 days"),
        idx::AVG_RATING_14D => {
            with_none(Rating, "rated sessions {} on average over 14 days", "", "no rating in 14 days")
        }
        idx::AVG_RATING_30D => {
            with_none(Rating, "rated sessions {} on average over 30 days", "", "no rating in 30 days")
        }
        idx::RATING_TREND => t(Decimal, "this week's ratings {} against the month's"),
        idx::RATINGS_COUNT_30D => t(Count, "{} ratings given in 30 days"),
        idx::LOW_RATINGS_30D => t(Count, "{} ratings of 2 or less in 30 days"),
        idx::LOGINS_7D => t(Count, "{} logins in 7 days"),
        idx::LOGINS_30D => t(Count, "{} logins in 30 days"),
        idx::PAYMENT_SUCCESS_RATE_7D => t(Percent, "{} of payments went through in 7 days"),
        idx::PAYMENT_SUCCESS_RATE_14D => t(Percent, "{} of payments went through in 14 days"),
        idx::PAYMENT_SUCCESS_RATE_30D => t(Percent, "{} of payments went through in 30 days"),
        idx::PAYMENT_FAILURES_30D => t(Count, "{} failed payments in 30 days"),
        idx::PAYMENT_AMOUNT_30D => t(Dollars, "{} paid in 30 days"),
        idx::DAYS_SINCE_LAST_PAYMENT => {
            with_none(SINCE, "no successful payment in {} days", " days", "no successful payment on record")
        }
        idx::IB_CALLS_7D => t(Count, "{} support calls in 7 days"),
        idx::IB_CALLS_14D => t(Count, "{} support calls in 14 days"),
        idx::IB_CALLS_30D => t(Count, "{} support calls in 30 days"),
        idx::NEGATIVE_CALL_RATE_30D => t(Percent, "{} of support calls negative in 30 days"),
        idx::DAYS_SINCE_LAST_IB_CALL => {
            with_none(SINCE, "last support call {} days ago", " days", "no support call on record")
        }
        idx::STUDENT_CANCELLATIONS_7D => t(Count, "{} sessions cancelled by the student in 7 days"),
        idx::STUDENT_CANCELLATIONS_30D => t(Count, "{} sessions cancelled by the student in 30 days"),
        idx::CANCELLATION_RATE_30D => t(Percent, "{} of sessions cancelled by the student in 30 days"),
        idx::NO_SHOWS_30D => t(Count, "{} no-shows in 30 days"),
        idx::STUDENT_REPLY_MINUTES_30D => {
            Template { was_suffix: " minutes", ..t(Minutes, "replies to the tutor in {} minutes on average") }
        }
        idx::DISTINCT_TUTORS_30D => t(Count, "{} different tutors in 30 days"),
        idx::PRIMARY_TUTOR_SHARE_30D => t(Percent, "{} of sessions with the main tutor in 30 days"),
        idx::PRIMARY_TUTOR_SHARE_7D => t(Percent, "{} of this week's sessions with the main tutor"),
        idx::PRIMARY_TUTOR_AVG_RATING_30D => {
            with_none(Rating, "main tutor rated {} on average", "", "main tutor not rated")
        }
        idx::TUTOR_SWITCHES_30D => t(Count, "{} tutor switches in 30 days"),
        idx::TUTOR_SWITCH_RATE_30D => t(Percent, "a new tutor in {} of sessions"),
        idx::TUTOR_REPLY_MINUTES_30D => {
            Template { was_suffix: " minutes", ..t(Minutes, "the tutor replies in {} minutes on average") }
        }
        idx::TUTOR_CANCELLATIONS_30D => t(Count, "{} sessions cancelled by the tutor in 30 days"),
        idx::DAYS_SINCE_TUTOR_SWITCH => {
            with_none(DaysSince { cap: 30.0 }, "last tutor switch {} days ago", " days", "no tutor switch in 30 days")
        }
        _ => t(Decimal, "{}"),
    }
}

impl Template {
    /// The contract's "none" default: a capped "days since", a mean rating of 0.
    fn is_none(&self, x: f64) -> bool {
        match self.unit {
            Unit::DaysSince { cap } => x >= cap,
            Unit::Rating => x == 0.0,
            _ => false,
        }
    }
}

/// "1 sessions cancelled" → "1 session cancelled": the first plural noun of
/// a count's sentence.
fn singular(sentence: &str) -> String {
    const PLURALS: [(&str, &str); 8] = [
        ("sessions", "session"),
        ("logins", "login"),
        ("ratings", "rating"),
        ("calls", "call"),
        ("payments", "payment"),
        ("no-shows", "no-show"),
        ("tutors", "tutor"),
        ("switches", "switch"),
    ];
    let first = PLURALS.iter().filter_map(|(p, s)| sentence.find(p).map(|at| (at, *p, *s))).min();
    match first {
        Some((at, plural, one)) => format!("{}{one}{}", &sentence[..at], &sentence[at + plural.len()..]),
        None => sentence.to_owned(),
    }
}

/// A feature's value now and then, in a sentence: "no session in 19 days
/// (was 2 days)". The contract's defaults read as what they mean: a capped
/// "days since" is "none on record", a mean rating of 0 is "no rating".
pub fn describe(feature: usize, now: f64, was: f64) -> String {
    let mut out = String::new();
    describe_into(feature, now, was, &mut out);
    out
}

/// [`describe`], appended to `out`: the prediction writer's way, which
/// formats every reason of every prediction and so keeps one buffer.
pub fn describe_into(feature: usize, now: f64, was: f64, out: &mut String) {
    let t = template(feature);
    match t.none {
        Some(none) if t.is_none(now) => out.push_str(none),
        _ if matches!(t.unit, Unit::Count) && now.round() == 1.0 => {
            out.push_str(&singular(&t.sentence.replacen("{}", "1", 1)));
        }
        _ => match t.sentence.split_once("{}") {
            Some((before, after)) => {
                out.push_str(before);
                value(t.unit, now, out);
                out.push_str(after);
            }
            None => out.push_str(t.sentence),
        },
    }
    out.push_str(" (was ");
    match t.none {
        Some(_) if t.is_none(was) => out.push_str("none"),
        _ => {
            value(t.unit, was, out);
            out.push_str(t.was_suffix);
        }
    }
    out.push(')');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_read_as_people_write() {
        // The writer's way: appended to what the buffer holds.
        let mut text = "kept: ".to_string();
        describe_into(idx::SESSIONS_7D, 1.0, 4.0, &mut text);
        assert_eq!(text, "kept: 1 session in the last 7 days (was 4)");
        describe_into(idx::SESSION_TREND_RATIO, 0.5, 1.5, &mut text);
        assert_eq!(
            text,
            "kept: 1 session in the last 7 days (was 4)this week at 0.5x the month's pace of sessions (was 1.5x)"
        );
        assert_eq!(describe(idx::DAYS_SINCE_LAST_SESSION, 19.2, 2.4), "no session in 19 days (was 2 days)");
        assert_eq!(describe(idx::DAYS_SINCE_LAST_SESSION, 365.0, 3.0), "no session on record (was 3 days)");
        assert_eq!(describe(idx::SESSIONS_7D, 0.0, 4.0), "0 sessions in the last 7 days (was 4)");
        assert_eq!(describe(idx::SESSIONS_7D, 1.0, 4.0), "1 session in the last 7 days (was 4)");
        assert_eq!(
            describe(idx::TUTOR_CANCELLATIONS_30D, 1.0, 0.0),
            "1 session cancelled by the tutor in 30 days (was 0)"
        );
        assert_eq!(describe(idx::IB_CALLS_7D, 1.0, 0.0), "1 support call in 7 days (was 0)");
        assert_eq!(
            describe(idx::PAYMENT_SUCCESS_RATE_30D, 0.5, 1.0),
            "50% of payments went through in 30 days (was 100%)"
        );
        assert_eq!(describe(idx::PAYMENT_AMOUNT_30D, 120.4, 300.0), "$120 paid in 30 days (was $300)");
        assert_eq!(describe(idx::AVG_RATING_7D, 2.5, 0.0), "rated sessions 2.5 on average over 7 days (was none)");
        assert_eq!(
            describe(idx::SESSION_VELOCITY_CHANGE, -3.0, 1.0),
            "-3 sessions this week against the week before (was +1)"
        );
        assert_eq!(describe(idx::DAYS_SINCE_LAST_IB_CALL, 365.0, 365.0), "no support call on record (was none)");
        for f in 0..FEATURE_COUNT {
            let text = describe(f, 1.0, 2.0);
            assert!(!text.contains("{}") && text.ends_with(')'), "{f}: {text}");
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
        let r = top_raising(&c, &now, &was, 7);
        let picked: Vec<_> = r.as_slice().iter().map(|r| r.feature).collect();
        assert_eq!(picked, [9, 4, 10], "largest first, ties to the lower index");
        assert_eq!(r.since, 7);
        let none = top_raising(&[-1.0; FEATURE_COUNT], &now, &was, 7);
        assert!(none.is_empty() && none.since == 0);
    }

    #[test]
    fn reasons_round_trip_through_json_with_text() {
        let r = Reasons::new(5, [Reason { feature: 9, now: 19.0, was: 2.0, contribution: 0.8 }]);
        assert_eq!(serde_json::to_string(&Short(0.1)).unwrap(), "0.1", "an f64 that is no f32 stays f64");
        let json = serde_json::to_string(&r).unwrap();
        let kept = Reasons::new(5, [Reason { feature: 25, now: 1.0, was: f64::from(123.45f32), contribution: 0.1 }]);
        let kept_json = serde_json::to_string(&kept).unwrap();
        assert!(kept_json.contains(r#""was":123.45,"#), "{kept_json}");
        assert_eq!(serde_json::from_str::<Reasons>(&kept_json).unwrap(), kept);
        assert!(json.contains(r#""text":"no session in 19 days (was 2 days)""#), "{json}");
        assert_eq!(serde_json::from_str::<Reasons>(&json).unwrap(), r);
        let bad = json.replace("days_since_last_session", "nope");
        assert!(serde_json::from_str::<Reasons>(&bad).unwrap_err().to_string().contains("unknown feature"));
    }
}
