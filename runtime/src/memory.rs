//! What the scoring stage remembers of each customer: the latest prediction,
//! the past vectors its reasons compare with, and the two lists a
//! customer-success person works from (whom to save first, who has gone).
//!
//! # Reasons
//!
//! A prediction's reasons explain the move of its `churn_risk_14d` since the
//! customer's own vector about 14 days earlier: the model attributes
//! `margin(now) - margin(then)` among the features (exact Shapley values of
//! the two vectors for tree models, see `pulse_model::explain`) and the three
//! largest positive shares are kept with both values ("last session 19 days
//! ago (was 2 days ago)"). The customer's own past, not a fleet average, because the
//! question an alert raises is "what changed?", and because a feature that
//! has not moved cannot be the reason a score moved.
//!
//! "About 14 days earlier", exactly: the stage keeps the first vector scored
//! in each week (weeks start Monday 00:00 UTC) of the last four weeks with
//! one, and a prediction as of `T` compares with the latest of them at or
//! before `T - 14 days`; with none that old (a customer seen for less than
//! two weeks), with the oldest kept. For a customer watched from its first
//! event that is its signup record (no session on record, under a week of
//! history: the contract's "nothing on record" defaults), and its reasons
//! say "since signing up" rather than a date (`pulse_schemas::reasons`,
//! "The baseline, named"). Four weekly anchors, not fourteen daily
//! ones: 800 bytes a customer instead of 2,800. The reference's `as_of`
//! and risk are written with the reasons (`since`, `churn_risk_14d_then`).
//! A customer's first prediction has nothing to compare with and carries
//! no reasons (an alert on it says so).
//!
//! The lists ("whom to save first") compare with the same reference: its
//! risk and health. So the anchors' scores are kept whether or not the
//! stage gives reasons (80 bytes a customer, boxed), their vectors only
//! when it does (736 bytes more, boxed): `--no-reasons` makes scoring
//! cheaper, not the lists empty.
//!
//! # Across restarts
//!
//! A process that restarts (a Lambda environment recycled, `pulse run`
//! redeployed) would lose the anchors and the monitor's rings: reasons would
//! compare with the first vector seen after the restart, and the monitor
//! would never resolve the predictions made before it. So a live sink
//! stores them and reads them back before it scores a customer it does not
//! know: the ring and the last session with every prediction, on its item
//! ([`encode_latest`], 68 bytes, 77 with a burn-in), and the anchors on an item of their own
//! when they change ([`encode_anchors`], at most 802 bytes: once a week for
//! an active customer, so they do not double the size, and the cost, of
//! every prediction write). See `pulse_aws::output::predictions`.

use pulse_model::ModelId;
use pulse_operators::scoring::monitor::Ring;
use pulse_operators::scoring::{AlertState, FleetEntry};
use pulse_schemas::features::idx::{DAYS_SINCE_LAST_SESSION, TENURE_DAYS};
use pulse_schemas::prediction::Scores;
use pulse_schemas::{Features, Reasons, Segment, DAY_MS, FEATURE_COUNT};
use serde::Serialize;

/// Reasons compare with a vector at least this much older.
pub const REASONS_LOOKBACK_MS: i64 = 14 * DAY_MS;

/// Weekly anchors kept per customer: enough that one is always at or before
/// `T - 14 days` once the customer is two weeks old. Three are not: a week's
/// first vector can come later in its week than the current one (a Tuesday
/// two weeks ago, a Monday now), and then the one before is needed.
const ANCHORS: usize = 4;

/// The week of `t`, counted from Monday 1970-01-05 00:00 UTC.
fn week(t: i64) -> i64 {
    (t.div_euclid(DAY_MS) - 4).div_euclid(7)
}

/// A past prediction: when, and what the model said. `f32`: the precision
/// the models compute in.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Anchor {
    pub(crate) as_of: i64,
    pub(crate) churn_risk_14d: f32,
    pub(crate) health_score: f32,
}

/// The vectors of the anchors, oldest first (as [`Anchors`]' items).
type AnchorVectors = [[f32; FEATURE_COUNT]; ANCHORS];

/// The first prediction of each of the last four weeks with one, oldest
/// first, and, when the stage gives reasons, its vector. The lists read the
/// scores ([`Memory::standing`]), the reasons also the vectors: a stage
/// without reasons keeps 80 bytes a customer for them, not 816.
#[derive(Clone, Debug)]
pub(crate) struct Anchors {
    len: u8,
    items: [Anchor; ANCHORS],
    vectors: Option<Box<AnchorVectors>>,
}

/// The anchor a prediction compares with ([`Anchors::reference`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Reference<'a> {
    pub(crate) anchor: Anchor,
    vector: Option<&'a [f32; FEATURE_COUNT]>,
}

impl<'a> Reference<'a> {
    /// The vector, if the anchors keep vectors.
    pub(crate) fn vector(&self) -> Option<&'a [f32; FEATURE_COUNT]> {
        self.vector
    }
}

impl Anchors {
    /// No anchors yet; `vectors`: whether to keep each anchor's vector too
    /// (for reasons).
    pub(crate) fn new(vectors: bool) -> Anchors {
        Anchors {
            len: 0,
            items: [Anchor::default(); ANCHORS],
            vectors: vectors.then(|| Box::new([[0.0; FEATURE_COUNT]; ANCHORS])),
        }
    }

    /// The same anchors without their vectors.
    pub(crate) fn without_vectors(mut self) -> Anchors {
        self.vectors = None;
        self
    }

    fn kept(&self) -> &[Anchor] {
        &self.items[..usize::from(self.len)]
    }

    /// The anchor a prediction as of `t` compares with (see the module docs).
    pub(crate) fn reference(&self, t: i64) -> Option<Reference<'_>> {
        let kept = self.kept();
        let i = kept
            .iter()
            .rposition(|a| a.as_of <= t - REASONS_LOOKBACK_MS)
            .or_else(|| kept.first().filter(|a| a.as_of < t).map(|_| 0))?;
        Some(Reference { anchor: kept[i], vector: self.vectors.as_deref().map(|v| &v[i]) })
    }

    /// Keeps the prediction if it is the first of a later week than the last kept.
    pub(crate) fn observe(&mut self, as_of: i64, features: &Features, scores: &Scores) {
        if self.kept().last().is_some_and(|a| week(a.as_of) >= week(as_of)) {
            return;
        }
        let anchor =
            Anchor { as_of, churn_risk_14d: scores.churn_risk_14d as f32, health_score: scores.health_score as f32 };
        let vector = features.map(|x| x as f32);
        self.push(anchor, vector);
    }

    fn push(&mut self, anchor: Anchor, vector: [f32; FEATURE_COUNT]) {
        let i = if usize::from(self.len) == ANCHORS {
            self.items.rotate_left(1);
            if let Some(v) = self.vectors.as_deref_mut() {
                v.rotate_left(1);
            }
            ANCHORS - 1
        } else {
            self.len += 1;
            usize::from(self.len) - 1
        };
        self.items[i] = anchor;
        if let Some(v) = self.vectors.as_deref_mut() {
            v[i] = vector;
        }
    }
}

/// The version byte of both stored formats.
const FORMAT: u8 = 1;

/// The most bytes of [`encode_latest`]: the format, the last session, the
/// ring's flag and the ring, and the burn-in's end with its flag.
pub const LATEST_BYTES: usize = 1 + 4 + 1 + Ring::BYTES + 1 + 8;

/// What the prediction item carries beside the prediction (little-endian,
/// version [`FORMAT`]): the last session (for the lists), the monitor
/// ring if the monitor runs, and the end of the stream's burn-in if it has
/// one (ms; see `ScoringConfig::burn_in_days`), so that a run restarted in
/// its burn-in keeps it (an item without it, written before pulse kept it,
/// reads as none). Written with every prediction: 68 bytes, 77 with the
/// burn-in's end.
pub(crate) fn encode_latest(memory: &Memory, ring: Option<&Ring>, burn_in_end: Option<i64>) -> Vec<u8> {
    let mut out = Vec::with_capacity(LATEST_BYTES);
    out.push(FORMAT);
    out.extend_from_slice(&memory.days_since_last_session.to_le_bytes());
    match ring {
        Some(ring) => {
            out.push(1);
            out.extend_from_slice(&ring.to_bytes());
        }
        None => out.push(0),
    }
    if let Some(end) = burn_in_end {
        out.push(1);
        out.extend_from_slice(&end.to_le_bytes());
    }
    out
}

/// What [`decode_latest`] reads.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Latest {
    pub(crate) days_since_last_session: f32,
    pub(crate) ring: Option<Ring>,
    pub(crate) burn_in_end: Option<i64>,
}

/// Bytes of [`encode_latest`] back.
pub(crate) fn decode_latest(bytes: &[u8]) -> Result<Latest, String> {
    let mut r = Reader::new(bytes, "a stored monitor ring")?;
    let days_since_last_session = r.f32().ok_or_else(|| r.bad("no last session"))?;
    let ring = match r.u8() {
        Some(0) => None,
        Some(1) => Some(r.take(Ring::BYTES).and_then(Ring::from_bytes).ok_or_else(|| r.bad("a ring that is none"))?),
        _ => return Err(r.bad("no ring flag")),
    };
    let burn_in_end = match r.u8() {
        None => None,
        Some(1) => Some(r.i64().ok_or_else(|| r.bad("a burn-in flag but no end"))?),
        Some(flag) => return Err(r.bad(&format!("burn-in flag {flag}"))),
    };
    r.end()?;
    Ok(Latest { days_since_last_session, ring, burn_in_end })
}

/// The most bytes of [`encode_anchors`].
pub const MAX_ANCHOR_BYTES: usize = 2 + ANCHORS * (16 + 4 * FEATURE_COUNT);

/// The anchors as bytes (little-endian, version [`FORMAT`]), at most
/// [`MAX_ANCHOR_BYTES`]: stored on an item of their own when they change
/// (once a week per active customer), not with every prediction. `None`
/// for anchors without vectors (a stage without reasons does not store
/// them: after a restart its lists compare with what it has seen since).
pub(crate) fn encode_anchors(anchors: &Anchors) -> Option<Vec<u8>> {
    let vectors = anchors.vectors.as_deref()?;
    let mut out = Vec::with_capacity(MAX_ANCHOR_BYTES);
    out.push(FORMAT);
    out.push(anchors.len);
    for (a, vector) in anchors.kept().iter().zip(vectors) {
        out.extend_from_slice(&a.as_of.to_le_bytes());
        out.extend_from_slice(&a.churn_risk_14d.to_le_bytes());
        out.extend_from_slice(&a.health_score.to_le_bytes());
        for x in vector {
            out.extend_from_slice(&x.to_le_bytes());
        }
    }
    Some(out)
}

/// Bytes of [`encode_anchors`] back.
pub(crate) fn decode_anchors(bytes: &[u8]) -> Result<Anchors, String> {
    let mut r = Reader::new(bytes, "stored anchors")?;
    let len = r.u8().filter(|&n| usize::from(n) <= ANCHORS).ok_or_else(|| r.bad("no count, or too many"))?;
    let mut anchors = Anchors::new(true);
    for _ in 0..len {
        let mut next = || -> Option<(Anchor, [f32; FEATURE_COUNT])> {
            let (as_of, churn_risk_14d, health_score) = (r.i64()?, r.f32()?, r.f32()?);
            let mut vector = [0f32; FEATURE_COUNT];
            for x in &mut vector {
                *x = r.f32()?;
            }
            Some((Anchor { as_of, churn_risk_14d, health_score }, vector))
        };
        let (anchor, vector) = next().ok_or_else(|| format!("stored anchors cut short ({} bytes)", bytes.len()))?;
        anchors.push(anchor, vector);
    }
    r.end()?;
    Ok(anchors)
}

/// A customer as stored outside the process, to take back in
/// ([`crate::scoring::ScoringStage::restore`]).
#[derive(Clone, Debug)]
pub struct Stored<'a> {
    /// The latest prediction's `as_of`.
    pub as_of: i64,
    /// Its scores.
    pub scores: Scores,
    /// The model that made it.
    pub model: ModelId,
    /// [`encode_latest`]'s bytes stored with it, if any.
    pub latest: Option<&'a [u8]>,
    /// [`encode_anchors`]'s bytes, if any.
    pub anchors: Option<&'a [u8]>,
}

/// What a customer's memory has that its store does not: the prediction
/// item's extra bytes, always, and the anchors when they changed since they
/// were last stored or read back.
#[derive(Clone, Debug, PartialEq)]
pub struct ToStore {
    /// For the prediction item ([`encode_latest`]).
    pub latest: Vec<u8>,
    /// For the anchors' item ([`encode_anchors`]), when they changed.
    pub anchors: Option<Vec<u8>>,
}

/// Little-endian fields off the front of a byte slice, after the format
/// byte; its errors name what was read.
struct Reader<'a>(&'a [u8], &'static str);

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8], what: &'static str) -> Result<Reader<'a>, String> {
        let mut r = Reader(bytes, what);
        match r.u8() {
            Some(FORMAT) => Ok(r),
            Some(v) => Err(r.bad(&format!("format {v}, not {FORMAT}"))),
            None => Err(r.bad("no bytes")),
        }
    }
    fn bad(&self, what: &str) -> String {
        format!("{} with {what}", self.1)
    }
    fn end(&self) -> Result<(), String> {
        match self.0.len() {
            0 => Ok(()),
            n => Err(self.bad(&format!("{n} bytes too many"))),
        }
    }
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }
    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N).map(|b| b.try_into().expect("N bytes"))
    }
    fn u8(&mut self) -> Option<u8> {
        self.array::<1>().map(|[b]| b)
    }
    fn i64(&mut self) -> Option<i64> {
        self.array().map(i64::from_le_bytes)
    }
    fn f32(&mut self) -> Option<f32> {
        self.array().map(f32::from_le_bytes)
    }
}

/// A customer's latest prediction, compactly (the model as an index into the
/// stage's list of models), and its anchors when reasons are on.
#[derive(Clone, Debug)]
pub(crate) struct Memory {
    pub(crate) as_of: i64,
    pub(crate) scores: Scores,
    pub(crate) segment: Segment,
    pub(crate) model_ix: u16,
    /// The latest prediction's reasons; boxed, and only when there are
    /// some, so a stage without reasons keeps 8 bytes for them, not 112.
    pub(crate) reasons: Option<Box<Reasons>>,
    /// Feature 10 of the latest vector scored: how recently the customer was active.
    pub(crate) days_since_last_session: f32,
    /// The weekly anchors: their scores for the lists, their vectors for
    /// the reasons (kept only when the stage gives reasons). In place, not
    /// boxed: every customer has them.
    pub(crate) anchors: Anchors,
    /// The customer's ring in the model monitor, if it runs.
    pub(crate) monitor: Option<pulse_operators::scoring::MonitorIx>,
    /// A hash of the anchors' bytes last stored or read back (0: none), so
    /// unchanged anchors are not written again.
    pub(crate) stored: u64,
    /// The customer's part of the fleet metrics (`None` before its first
    /// valid prediction) and its alert hysteresis (`None` before its first
    /// prediction, or when the caller observes alerts itself): kept here
    /// rather than in two maps of their own, so a customer costs one map
    /// entry (a million customers: ~330 MB less).
    pub(crate) fleet: Option<FleetEntry>,
    pub(crate) alert: Option<AlertState>,
    /// The queue's change gate for the customer (`None` before its first
    /// prediction): here rather than in a map of the queue's own (a
    /// million customers peaked 118 MB lower for it; docs/MEASUREMENTS.md, goal 5).
    pub(crate) gate: Option<pulse_operators::scoring::Gate>,
}

/// How a customer ranks in the customer lists ([`crate::scoring::CustomerLists`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Standing {
    /// Still active, and either its churn risk is high and rising or its
    /// health just fell from a healthy level: by how much, in whichever
    /// moved more.
    Savable(Moved),
    /// No session in [`GONE_AFTER_DAYS`] days or more and a high churn risk:
    /// the model is sure, and it is probably too late.
    Gone(Gone),
}

/// What the list of customers already gone shows of each beside its
/// prediction: how long since its last session. Their risk is near its
/// ceiling and moved little since the reference (0.976 then, 0.976 now), so
/// the reasons of that move say less than the customer's state does.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Gone {
    /// Feature 10 of the latest vector (365: no session on record).
    pub days_since_last_session: f32,
}

impl Gone {
    /// "last session 28 days ago", "no session on record".
    pub fn text(self) -> String {
        pulse_schemas::reasons::describe_value(DAYS_SINCE_LAST_SESSION, f64::from(self.days_since_last_session))
    }
}

/// What put a savable customer on the list, since its reference: its churn
/// risk up or its health down (the larger, the health's fall in points /
/// 100 against the risk's rise, when both did). The list says which:
/// "risk +0.57" and "health -15" are different news, and a health's fall
/// printed as "+0.15" read as a risk's rise.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Moved {
    /// `churn_risk_14d` rose by this much.
    Risk(f64),
    /// `health_score` fell by this many points.
    Health(f64),
}

impl Moved {
    /// Where it ranks (most first): the risk's rise, or the health's fall / 100.
    pub fn rank(self) -> f64 {
        match self {
            Moved::Risk(rise) => rise,
            Moved::Health(fall) => fall / 100.0,
        }
    }

    /// For the list's "moved" column: "risk +0.57", "health -15".
    pub fn text(self) -> String {
        match self {
            Moved::Risk(rise) => format!("risk {rise:+.2}"),
            Moved::Health(fall) => format!("health {:+.0}", -fall),
        }
    }
}

/// Still active: a session within this many days.
pub const ACTIVE_WITHIN_DAYS: f64 = 14.0;
/// Gone: no session for this many days (a week past the 14-day horizon).
pub const GONE_AFTER_DAYS: f64 = 21.0;
/// "High" churn risk for the savable list (the §6 at-risk level).
pub const SAVABLE_RISK: f64 = 0.4;
/// Smallest rise of churn risk since the reference that counts as rising.
pub const SAVABLE_RISE: f64 = 0.15;
/// A "healthy baseline": health at the reference at least this.
pub const HEALTHY_BASELINE: f64 = 70.0;
/// A "fresh drop": health fell at least this much since the reference.
pub const HEALTH_DROP: f64 = 15.0;

impl Memory {
    /// Keeps `reasons` as the latest, reusing the box when there is one.
    pub(crate) fn set_reasons(&mut self, reasons: Reasons) {
        match (&mut self.reasons, reasons.is_empty()) {
            (_, true) => self.reasons = None,
            (Some(kept), false) => **kept = reasons,
            (None, false) => self.reasons = Some(Box::new(reasons)),
        }
    }

    /// The latest prediction's reasons (empty when it had none).
    pub(crate) fn reasons(&self) -> Reasons {
        self.reasons.as_deref().copied().unwrap_or_default()
    }

    /// Where the customer stands, if in either list.
    pub(crate) fn standing(&self) -> Option<Standing> {
        let (days, had_session) = without_session(self.days_since_last_session);
        let risk = self.scores.churn_risk_14d;
        if days >= GONE_AFTER_DAYS && risk > pulse_schemas::prediction::HIGH_CHURN_RISK {
            let shown = if had_session { self.days_since_last_session } else { NO_SESSION_DAYS as f32 };
            return Some(Standing::Gone(Gone { days_since_last_session: shown }));
        }
        if !had_session || days >= ACTIVE_WITHIN_DAYS {
            return None;
        }
        let then = self.anchors.reference(self.as_of)?.anchor;
        let rise = risk - f64::from(then.churn_risk_14d);
        let fall = f64::from(then.health_score) - self.scores.health_score;
        let rising = risk >= SAVABLE_RISK && rise >= SAVABLE_RISE;
        let dropped = f64::from(then.health_score) >= HEALTHY_BASELINE && fall >= HEALTH_DROP;
        // What put it on the list, the larger on the list's one scale
        // (fall / 100) if both did: a risk that rose 0.3 to 0.38 (below the
        // 0.4 that counts) beside a health that fell 20 points from 80 is on
        // the list for its health, and says so.
        let moved = match (rising, dropped) {
            (true, true) if rise >= fall / 100.0 => Moved::Risk(rise),
            (true, false) => Moved::Risk(rise),
            (_, true) => Moved::Health(fall),
            (false, false) => return None,
        };
        Some(Standing::Savable(moved))
    }
}

/// Feature 10 of a vector as kept in [`Memory`] (and stored with the
/// prediction): the days since the last session, or, with no session on
/// record (the feature at its 365-day default), −1 − the days the customer
/// has been known (feature 13): a customer that signed up this week has not
/// gone 21 days without a session, and was listed "gone" on the default.
pub(crate) fn days_since_last_session(features: &Features) -> f32 {
    let days = features[DAYS_SINCE_LAST_SESSION];
    if days >= NO_SESSION_DAYS {
        -1.0 - features[TENURE_DAYS].min(NO_SESSION_DAYS) as f32
    } else {
        days as f32
    }
}

/// Feature 10's value for "no session on record".
const NO_SESSION_DAYS: f64 = 365.0;

/// A kept [`days_since_last_session`] read back: the days the customer has
/// gone without a session (since the last one, or since it was first seen),
/// and whether it had one. A value stored before pulse kept the days known
/// (365 for none) reads as no session for 365 days, as it did.
fn without_session(kept: f32) -> (f64, bool) {
    match kept {
        k if k < 0.0 => (f64::from(-1.0 - k), false),
        k => (f64::from(k), f64::from(k) < NO_SESSION_DAYS),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MONDAY: i64 = 4 * DAY_MS; // 1970-01-05

    fn scores(churn: f64, health: f64) -> Scores {
        Scores {
            first_session_success: 0.5,
            session_velocity: 1.0,
            churn_risk_14d: churn,
            churn_risk_30d: churn,
            health_score: health,
        }
    }

    #[test]
    fn the_reference_is_the_latest_weekly_anchor_two_weeks_back() {
        let mut a = Anchors::new(true);
        let mut scores_only = Anchors::new(false);
        let f = |x: f64| [x; FEATURE_COUNT];
        assert!(a.reference(MONDAY).is_none(), "nothing to compare with");
        // Daily vectors for five weeks, from a Wednesday.
        let start = MONDAY + 2 * DAY_MS + 3_600_000;
        for day in 0..35 {
            let t = start + day * DAY_MS;
            // Before observing: the reference is strictly earlier.
            if let Some(r) = a.reference(t) {
                let as_of = r.anchor.as_of;
                assert!(as_of < t);
                if t - start >= 19 * DAY_MS {
                    assert!(t - as_of >= REASONS_LOOKBACK_MS, "day {day}: {}", (t - as_of) / DAY_MS);
                    assert!(t - as_of < REASONS_LOOKBACK_MS + 7 * DAY_MS, "day {day}");
                }
                // The vector is the one observed then (day d carries d everywhere).
                let day_then = ((as_of - start) / DAY_MS) as f64;
                assert_eq!(r.vector().map(|v| v.map(f64::from)), Some(f(day_then)), "day {day}");
            }
            // Without vectors: the same anchors, the same scores.
            let (with, without) = (a.reference(t), scores_only.reference(t));
            assert_eq!(with.map(|r| r.anchor), without.map(|r| r.anchor), "day {day}");
            assert!(without.is_none_or(|r| r.vector().is_none()));
            let s = scores(0.01 * day as f64, 80.0 - day as f64);
            a.observe(t, &f(day as f64), &s);
            scores_only.observe(t, &f(day as f64), &s);
        }
        // Anchors: the first vector of each week (Wed, then Mondays).
        let kept: Vec<_> = a.kept().iter().map(|x| (x.as_of - start) / DAY_MS).collect();
        assert_eq!(kept, [12, 19, 26, 33]);
        assert_eq!(a.kept(), scores_only.kept());
        assert_eq!(a.kept()[0].health_score, 68.0);
        let young = {
            let mut y = Anchors::new(true);
            y.observe(start, &f(1.0), &scores(0.1, 80.0));
            y
        };
        let as_of = |r: Option<Reference<'_>>| r.map(|r| r.anchor.as_of);
        assert_eq!(as_of(young.reference(start + DAY_MS)), Some(start), "the oldest for a new customer");
        assert_eq!(as_of(young.reference(start)), None, "never the vector itself");
    }

    /// Anchors and rings stored and read back are the same, whatever they
    /// hold; bytes cut short, extended or of another format are refused.
    #[test]
    fn a_memory_survives_its_bytes() {
        let mut anchors = Anchors::new(true);
        for week in 0..6 {
            let t = MONDAY + week * 7 * DAY_MS + 5;
            anchors.observe(
                t,
                &std::array::from_fn(|i| i as f64 * 0.5 + week as f64),
                &scores(0.1 * week as f64, 80.0),
            );
        }
        let bytes = encode_anchors(&anchors).unwrap();
        assert_eq!(bytes.len(), MAX_ANCHOR_BYTES);
        let back = decode_anchors(&bytes).unwrap();
        assert_eq!(encode_anchors(&back).unwrap(), bytes, "the same bytes again");
        let t = MONDAY + 40 * DAY_MS;
        let refs = |a: &Anchors| a.reference(t).map(|r| (r.anchor, r.vector().map(|v| v.map(f64::from))));
        assert!(refs(&anchors).is_some_and(|(_, f)| f.is_some()));
        assert_eq!(refs(&back), refs(&anchors));
        assert_eq!(decode_anchors(&encode_anchors(&Anchors::new(true)).unwrap()).unwrap().len, 0);
        // Anchors without vectors are not stored.
        assert_eq!(encode_anchors(&anchors.clone().without_vectors()), None);

        let mut ring = Ring::starting(MONDAY / DAY_MS + 3).unwrap();
        ring.observe(MONDAY / DAY_MS + 9, None, Some((0.4, 0.5)), |_| {});
        let memory = Memory {
            as_of: t,
            scores: scores(0.73, 41.5),
            segment: Segment::of(0.73, 0.73, 41.5),
            model_ix: 3,
            reasons: None,
            days_since_last_session: 6.5,
            anchors: Anchors::new(false),
            monitor: None,
            stored: 0,
            fleet: None,
            alert: None,
            gate: None,
        };
        let end = MONDAY + 21 * DAY_MS;
        let latest = encode_latest(&memory, Some(&ring), Some(end));
        assert_eq!(latest.len(), LATEST_BYTES);
        let back = |ring, burn_in_end| Latest { days_since_last_session: 6.5, ring, burn_in_end };
        assert_eq!(decode_latest(&latest).unwrap(), back(Some(ring), Some(end)));
        // An item written before the burn-in's end was kept reads as none.
        let old = encode_latest(&memory, Some(&ring), None);
        assert_eq!(old.len(), LATEST_BYTES - 9);
        assert_eq!(decode_latest(&old).unwrap(), back(Some(ring), None));
        assert_eq!(decode_latest(&encode_latest(&memory, None, None)).unwrap(), back(None, None));
        assert!(decode_latest(&[old.as_slice(), &[1, 0, 0]].concat()).unwrap_err().contains("no end"));

        for bytes in [bytes, latest, old] {
            let decode = |b: &[u8]| {
                if b.len() > LATEST_BYTES {
                    decode_anchors(b).map(drop)
                } else {
                    decode_latest(b).map(drop)
                }
            };
            assert!(decode(&bytes[..bytes.len() - 1]).is_err(), "cut short");
            assert!(decode(&[bytes.as_slice(), &[0]].concat()).is_err(), "a byte too many");
            let mut other = bytes.clone();
            other[0] = 2;
            assert!(decode(&other).unwrap_err().contains("format 2"));
            assert!(decode(&[]).is_err());
        }
    }

    #[test]
    fn standing_separates_the_savable_from_the_gone() {
        // The lists read the anchors' scores: the same with vectors or without.
        let mut anchors = Anchors::new(false);
        anchors.observe(MONDAY, &[0.0; FEATURE_COUNT], &scores(0.1, 85.0));
        let memory = |churn: f64, health: f64, days: f32| Memory {
            as_of: MONDAY + 15 * DAY_MS,
            scores: scores(churn, health),
            segment: Segment::of(churn, churn, health),
            model_ix: 0,
            reasons: None,
            days_since_last_session: days,
            anchors: anchors.clone(),
            monitor: None,
            stored: 0,
            fleet: None,
            alert: None,
            gate: None,
        };
        let gone = Gone { days_since_last_session: 40.0 };
        assert_eq!(memory(0.95, 10.0, 40.0).standing(), Some(Standing::Gone(gone)));
        assert_eq!(gone.text(), "last session 40 days ago");
        assert_eq!(Gone { days_since_last_session: 365.0 }.text(), "no session on record");
        let savable = |m: Memory, expected: Moved, text: &str| {
            let Some(Standing::Savable(moved)) = m.standing() else { panic!("{:?}", m.standing()) };
            assert!((moved.rank() - expected.rank()).abs() < 1e-6 && moved.text() == text, "{moved:?}");
            assert_eq!(std::mem::discriminant(&moved), std::mem::discriminant(&expected));
        };
        // A rising risk (0.1 -> 0.6; health 85 -> 50 is 0.35 on its scale).
        savable(memory(0.6, 50.0, 3.0), Moved::Risk(0.5), "risk +0.50");
        // A fresh drop from a healthy 85 (the risk rose 0.05): health, said
        // so, not "+0.25" that reads as a risk's rise.
        savable(memory(0.15, 60.0, 1.0), Moved::Health(25.0), "health -25");
        // On the list for its health (the risk's rise, larger, is to a risk
        // below 0.4): said so, and ranked so.
        savable(memory(0.38, 65.0, 1.0), Moved::Health(20.0), "health -20");
        assert_eq!(memory(0.2, 82.0, 1.0).standing(), None, "steady");
        assert_eq!(memory(0.6, 50.0, 16.0).standing(), None, "not active, not yet gone");

        // No session on record: gone only once known for 21 days (it was
        // listed on the feature's 365-day default, however new), and never
        // savable.
        let mut x = [0.0; FEATURE_COUNT];
        x[DAYS_SINCE_LAST_SESSION] = 365.0;
        for (tenure, gone) in [(0.0, false), (5.0, false), (20.9, false), (21.0, true), (400.0, true)] {
            x[TENURE_DAYS] = tenure;
            let standing = memory(0.95, 10.0, days_since_last_session(&x)).standing();
            let expected = gone.then_some(Standing::Gone(Gone { days_since_last_session: 365.0 }));
            assert_eq!(standing, expected, "known for {tenure} days");
            assert_eq!(
                memory(0.6, 50.0, days_since_last_session(&x)).standing(),
                None,
                "{tenure}: no session, not active"
            );
        }
        // With a session on record the feature is kept as it is.
        x[DAYS_SINCE_LAST_SESSION] = 30.0;
        assert_eq!(days_since_last_session(&x), 30.0);
        // A value stored before (365 for none) reads as it did.
        assert_eq!(memory(0.95, 10.0, 365.0).standing(), Some(Standing::Gone(Gone { days_since_last_session: 365.0 })));
    }
}

#[cfg(test)]
mod size {
    /// What the anchors and reasons cost per customer, as README.md states it.
    #[test]
    fn reasons_memory_per_customer() {
        let anchors = std::mem::size_of::<super::Anchors>();
        let vectors = std::mem::size_of::<super::AnchorVectors>();
        let memory = std::mem::size_of::<super::Memory>();
        eprintln!("memory entry {memory} B, anchors ({anchors} B) in it (+ {vectors} B boxed with reasons)");
        assert_eq!(anchors, 4 * std::mem::size_of::<super::Anchor>() + 16);
        assert_eq!((anchors, vectors), (80, 736));
        // The latest reasons, boxed, only while the latest prediction has
        // some (128 bytes with the allocation's own 16).
        assert_eq!(std::mem::size_of::<pulse_schemas::Reasons>(), 112);
        // The fleet entry and alert state keep no emission key of their own
        // (48 bytes each): the stage orders a customer's predictions.
        assert_eq!(std::mem::size_of::<Option<pulse_operators::scoring::FleetEntry>>(), 32);
        assert_eq!(std::mem::size_of::<Option<pulse_operators::scoring::AlertState>>(), 24);
        // The queue's change gate lives here too (its emission key and a
        // 128-bit fingerprint), not in a map of the queue's own.
        assert_eq!(std::mem::size_of::<Option<pulse_operators::scoring::Gate>>(), 64);
        assert!(memory <= 280, "{memory}");
    }
}
