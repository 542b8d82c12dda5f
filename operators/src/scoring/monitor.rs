//! Live model monitoring: the realised quality of the churn heads, from the
//! customers' own streams, once each prediction's horizon has closed.
//!
//! ## What is monitored
//!
//! Each UTC midnight `T` (day `D`), the customer's prediction standing then
//! (its latest prediction, made before `T`) is the monitored one, with `T`
//! as its time. Its realised labels are those of `docs/LABELS.md`:
//! `churn_risk_14d` = 1 when the customer completes no session in
//! `(T, T + 14d]`, `churn_risk_30d` likewise over 30 days. One prediction a
//! customer-day, whatever the number of vectors: a busy customer does not
//! weigh more than a quiet one, and the monitor needs no per-prediction
//! storage.
//!
//! ## Where sessions come from
//!
//! From the vectors the scoring stage is offered (every vector, scored or
//! not): feature `days_since_last_session` of a vector as of `t` gives the
//! customer's latest session at or before `t` exactly (`t − days × DAY_MS`,
//! rounded to the millisecond). Each session yields a vector, and a silent
//! customer gets a timer vector a day, so every customer is observed at
//! least daily. A session whose event arrives after a later session of the
//! same customer is not seen (the feature names the later one); it can only
//! change a label whose window holds it and not the later one. A session
//! retracted after it was seen keeps the bits it set.
//!
//! ## Per customer: a [`Ring`] of 62 bytes
//!
//! The day the customer was last observed (`u16`, days since 1970) and one
//! `u16` for each of the last 30 midnights: the standing prediction's two
//! churn risks quantised to 120 levels (7 bits each; 127 = no prediction
//! stood then) and two bits, "a session was seen within 14 days after" and
//! "within 30 days after". A session at `s` lies in day slot
//! `(s − 1 ms) div DAY_MS`, i.e. `(D·day, (D+1)·day]`, so it sets the bits
//! of the midnights `D − 13 ..= D` and `D − 29 ..= D` exactly. When the
//! customer's clock enters day `Y`, the slots before `Y` are complete: the
//! 14-day label of midnight `Y − 14` and the 30-day label of midnight
//! `Y − 30` are known, and are counted under **close day** `Y`; the oldest
//! slot then makes room for midnight `Y`, stamped with the prediction
//! standing (given by the caller, which holds the latest prediction anyway).
//! A prediction is counted only when its horizon closes, never earlier, so
//! a label of 0 (a session came) is not counted before the 1s of its cohort.
//!
//! Rings live in chunks of 64 (no hash map of its own: the caller keeps a
//! [`MonitorIx`] beside the customer's latest prediction), so the memory per
//! customer is 62 bytes plus at most one partly used chunk.
//!
//! ## The rolling window
//!
//! Resolved predictions go into per-close-day histograms (per head, positives
//! and negatives per level). The monitor's clock is the latest day observed;
//! the window is the `window_days` complete close days before it
//! (`[clock − N, clock − 1]`): a customer observed daily resolves on its close
//! day, so a day's bucket is complete once the clock has passed it. A
//! resolution for a day already out of the kept buckets is dropped and
//! counted ([`MonitorCounters::late`]). From the summed histograms, exactly
//! for the quantised scores: realised AUC (ties count one half), Brier score
//! (each score at its level's centre: at most 1/240 from the raw score),
//! calibration in 10 bins (each exactly 12 levels), label rate and count.

use std::collections::VecDeque;

use pulse_schemas::DAY_MS;
use serde::{Deserialize, Serialize};

use super::error::PolicyError;
use super::fleet::Metric;

/// The CloudWatch namespace of the model-quality metrics.
pub const NAMESPACE: &str = "pulse/ModelQuality";

/// Score levels: a score `p` is counted at level `floor(p · 120)` (1 at 119).
pub const LEVELS: usize = 120;
/// Calibration bins (each [`LEVELS`] / 10 levels wide).
pub const CALIBRATION_BINS: usize = 10;
/// Midnights a ring holds: the longest horizon, in days.
pub const RING_DAYS: usize = 30;

const NO_PREDICTION: u16 = 127;
const LEVEL_MASK: u16 = 0x7F;
const P30_SHIFT: u16 = 7;
const SEEN14: u16 = 1 << 14;
const SEEN30: u16 = 1 << 15;
const EMPTY: u16 = NO_PREDICTION | (NO_PREDICTION << P30_SHIFT);
const CHUNK: usize = 64;
/// A customer whose clock jumps further than this starts a fresh ring.
const MAX_JUMP_DAYS: i64 = 400;

/// The level of a score in `[0, 1]` (clamped); `None` for NaN.
pub fn level(p: f64) -> Option<u16> {
    if p.is_nan() {
        return None;
    }
    Some(((p.clamp(0.0, 1.0) * LEVELS as f64) as usize).min(LEVELS - 1) as u16)
}

/// The score a level stands for: its centre.
pub fn level_value(level: u16) -> f64 {
    (f64::from(level) + 0.5) / LEVELS as f64
}

/// A monitored head.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Head {
    /// `churn_risk_14d`: no session in the 14 days after.
    #[serde(rename = "churn_risk_14d")]
    ChurnRisk14d,
    /// `churn_risk_30d`: no session in the 30 days after.
    #[serde(rename = "churn_risk_30d")]
    ChurnRisk30d,
}

impl Head {
    /// Both heads, in output order.
    pub const ALL: [Head; 2] = [Head::ChurnRisk14d, Head::ChurnRisk30d];

    /// The prediction field's name (the CloudWatch dimension `Head`).
    pub const fn name(self) -> &'static str {
        match self {
            Head::ChurnRisk14d => "churn_risk_14d",
            Head::ChurnRisk30d => "churn_risk_30d",
        }
    }

    /// The label's horizon in days.
    pub const fn horizon_days(self) -> i64 {
        match self {
            Head::ChurnRisk14d => 14,
            Head::ChurnRisk30d => 30,
        }
    }
}

/// How the monitor aggregates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MonitorConfig {
    /// Close days in the rolling window (1 to 60).
    pub window_days: u32,
}

/// The burn-in of a process that starts without its customers' history:
/// the training rows' (`pulse dataset --burn-in-days`).
pub const COLD_START_BURN_IN_DAYS: u32 = 21;

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig { window_days: 7 }
    }
}

impl MonitorConfig {
    /// Checks the window; the error names the field.
    pub fn validate(&self) -> Result<(), PolicyError> {
        if !(1..=60).contains(&self.window_days) {
            return Err(PolicyError::new("window_days", format!("must be 1 to 60, got {}", self.window_days)));
        }
        Ok(())
    }
}

/// The day slot of a session at `s`: `(s − 1 ms) div DAY_MS`, the day `D`
/// with `s` in `(D·day, (D+1)·day]`.
pub fn session_slot(s: i64) -> i64 {
    s.saturating_sub(1).div_euclid(DAY_MS)
}

/// The latest session at or before `as_of` from a vector's
/// `days_since_last_session` (capped at 365: none that recent).
pub fn last_session(as_of: i64, days_since_last_session: f64) -> Option<i64> {
    (days_since_last_session.is_finite() && (0.0..365.0).contains(&days_since_last_session))
        .then(|| as_of - (days_since_last_session * DAY_MS as f64).round() as i64)
}

/// The two churn risks of a standing prediction as a ring entry.
fn entry(standing: Option<(f64, f64)>) -> u16 {
    match standing.map(|(p14, p30)| (level(p14), level(p30))) {
        Some((Some(a), Some(b))) => a | (b << P30_SHIFT),
        _ => EMPTY,
    }
}

/// One customer's monitoring state: see the [module docs](self).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ring {
    /// The customer's observed day (days since 1970); 0 before the first.
    day: u16,
    /// Midnight `d` at `entries[d % 30]`, for `d` in `day − 29 ..= day`.
    entries: [u16; RING_DAYS],
}

impl Ring {
    /// The size of [`Ring::to_bytes`].
    pub const BYTES: usize = 2 * (1 + RING_DAYS);
}

impl Default for Ring {
    fn default() -> Self {
        Ring { day: 0, entries: [EMPTY; RING_DAYS] }
    }
}

/// A resolved monitored prediction: its head, close day, level and label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// The head.
    pub head: Head,
    /// The day its horizon closed (days since 1970).
    pub close_day: i64,
    /// The quantised score.
    pub level: u16,
    /// The realised label (true = churned: no session in the horizon).
    pub label: bool,
}

impl Ring {
    /// A ring whose customer is first seen on `day` (no midnight stamped yet).
    pub fn starting(day: i64) -> Option<Ring> {
        let day = u16::try_from(day).ok().filter(|&d| d > 0)?;
        Some(Ring { day, entries: [EMPTY; RING_DAYS] })
    }

    /// The customer's observed day.
    pub fn day(&self) -> i64 {
        i64::from(self.day)
    }

    /// The ring as [`Ring::BYTES`] bytes (little-endian `u16`s: the day,
    /// then the entries by slot), for storing it outside the process.
    pub fn to_bytes(&self) -> [u8; Ring::BYTES] {
        let mut out = [0u8; Ring::BYTES];
        for (chunk, v) in out.chunks_exact_mut(2).zip(std::iter::once(self.day).chain(self.entries)) {
            chunk.copy_from_slice(&v.to_le_bytes());
        }
        out
    }

    /// A ring from [`Ring::to_bytes`]; `None` when `bytes` is not one (its
    /// length, or an entry's level out of range).
    pub fn from_bytes(bytes: &[u8]) -> Option<Ring> {
        if bytes.len() != Ring::BYTES {
            return None;
        }
        let mut words = bytes.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]]));
        let day = words.next()?;
        let mut entries = [EMPTY; RING_DAYS];
        for (e, w) in entries.iter_mut().zip(words) {
            let valid = |level: u16| level < LEVELS as u16 || level == NO_PREDICTION;
            if !valid(w & LEVEL_MASK) || !valid((w >> P30_SHIFT) & LEVEL_MASK) {
                return None;
            }
            *e = w;
        }
        Some(Ring { day, entries })
    }

    /// Records a session in day slot `slot` on the midnights it labels.
    fn mark(&mut self, slot: i64) {
        let x = self.day();
        // Each vector names the customer's latest session again: once its
        // own midnight carries the bit, every midnight it labels does.
        if slot >= x - 29 && self.entries[slot.rem_euclid(RING_DAYS as i64) as usize] & SEEN14 != 0 {
            return;
        }
        for d in (slot - 29).max(x - 29)..=slot.min(x) {
            let e = &mut self.entries[d.rem_euclid(RING_DAYS as i64) as usize];
            if *e & LEVEL_MASK != NO_PREDICTION {
                *e |= SEEN30 | if d >= slot - 13 { SEEN14 } else { 0 };
            }
        }
    }

    /// The customer was observed at day `day` with its latest session in
    /// `session_slot` (if any), while `standing` was its latest prediction:
    /// every midnight passed is stamped with it, and every horizon closed
    /// is reported to `resolved`.
    pub fn observe(
        &mut self,
        day: i64,
        session_slot: Option<i64>,
        standing: Option<(f64, f64)>,
        mut resolved: impl FnMut(Resolved),
    ) {
        let x = self.day();
        if day - x > MAX_JUMP_DAYS {
            if let Some(fresh) = Ring::starting(day) {
                *self = fresh;
            }
            return;
        }
        if let Some(s) = session_slot.filter(|&s| s <= x) {
            self.mark(s);
        }
        let stamp = entry(standing);
        for y in x + 1..=day {
            for (head, d) in [(Head::ChurnRisk14d, y - 14), (Head::ChurnRisk30d, y - 30)] {
                let e = self.entries[d.rem_euclid(RING_DAYS as i64) as usize];
                let (level, seen) = match head {
                    Head::ChurnRisk14d => (e & LEVEL_MASK, e & SEEN14 != 0),
                    Head::ChurnRisk30d => ((e >> P30_SHIFT) & LEVEL_MASK, e & SEEN30 != 0),
                };
                if level != NO_PREDICTION {
                    resolved(Resolved { head, close_day: y, level, label: !seen });
                }
            }
            self.entries[y.rem_euclid(RING_DAYS as i64) as usize] = stamp;
            self.day = y as u16;
            if session_slot == Some(y) {
                self.mark(y);
            }
        }
    }
}

/// A ring's place in the [`Monitor`], kept by the caller beside the
/// customer (4 bytes, and so is an `Option` of it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MonitorIx(std::num::NonZeroU32);

/// Per-level counts of resolved predictions of one head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Histogram {
    /// Label 1 (churned) per level.
    pub positive: [u32; LEVELS],
    /// Label 0 per level.
    pub negative: [u32; LEVELS],
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram { positive: [0; LEVELS], negative: [0; LEVELS] }
    }
}

impl Histogram {
    /// Counts one prediction.
    pub fn add(&mut self, level: u16, label: bool) {
        let counts = if label { &mut self.positive } else { &mut self.negative };
        counts[usize::from(level).min(LEVELS - 1)] += 1;
    }

    fn merge(&mut self, other: &Histogram) {
        for l in 0..LEVELS {
            self.positive[l] += other.positive[l];
            self.negative[l] += other.negative[l];
        }
    }

    /// The quality figures of the counted predictions.
    pub fn quality(&self, head: Head) -> HeadQuality {
        let (mut pos, mut neg, mut predicted, mut squared) = (0u64, 0u64, 0f64, 0f64);
        let mut pairs = 0f64; // positive-negative pairs ordered right, ties one half
        for l in 0..LEVELS {
            let (p, n) = (u64::from(self.positive[l]), u64::from(self.negative[l]));
            let v = level_value(l as u16);
            pairs += p as f64 * (neg as f64 + 0.5 * n as f64);
            pos += p;
            neg += n;
            predicted += (p + n) as f64 * v;
            squared += p as f64 * (1.0 - v) * (1.0 - v) + n as f64 * v * v;
        }
        let count = pos + neg;
        let per = |x: f64| (count > 0).then(|| x / count as f64);
        let calibration: Vec<CalibrationBin> = (0..CALIBRATION_BINS)
            .map(|b| {
                let width = LEVELS / CALIBRATION_BINS;
                let (mut c, mut p, mut s) = (0u64, 0u64, 0f64);
                for l in b * width..(b + 1) * width {
                    let n = u64::from(self.positive[l]) + u64::from(self.negative[l]);
                    c += n;
                    p += u64::from(self.positive[l]);
                    s += n as f64 * level_value(l as u16);
                }
                CalibrationBin {
                    lower: b as f64 / CALIBRATION_BINS as f64,
                    upper: (b + 1) as f64 / CALIBRATION_BINS as f64,
                    count: c,
                    mean_predicted: (c > 0).then(|| s / c as f64),
                    observed_rate: (c > 0).then(|| p as f64 / c as f64),
                }
            })
            .collect();
        let calibration_error = per(calibration
            .iter()
            .filter_map(|b| Some(b.count as f64 * (b.mean_predicted? - b.observed_rate?).abs()))
            .sum());
        HeadQuality {
            head,
            count,
            days: 0,
            withheld: None,
            label_rate: per(pos as f64),
            mean_predicted: per(predicted),
            brier: per(squared),
            auc: (pos > 0 && neg > 0).then(|| pairs / (pos as f64 * neg as f64)),
            calibration_error,
            calibration,
        }
    }
}

/// One calibration bin: predictions whose score fell in `[lower, upper)`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CalibrationBin {
    /// Lower edge of the score.
    pub lower: f64,
    /// Upper edge (1 included in the last bin).
    pub upper: f64,
    /// Resolved predictions in the bin.
    pub count: u64,
    /// Their mean score (at level centres).
    pub mean_predicted: Option<f64>,
    /// Their realised rate of label 1.
    pub observed_rate: Option<f64>,
}

/// The realised quality of one head over the window; `None` where the
/// figure needs what is missing (no prediction, or only one label for AUC).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HeadQuality {
    /// The head.
    pub head: Head,
    /// Resolved predictions.
    pub count: u64,
    /// Close days of the window that resolved some: `count / days` is the
    /// customers a day (each resolves at most once a close day).
    pub days: u32,
    /// Why the figures below are not published as metrics, if they are not
    /// (all of them, or the AUC alone): [`HeadQuality::why_withheld`] of the
    /// Brier score, else of the AUC, when the window was summed.
    pub withheld: Option<String>,
    /// Share with label 1 (churned).
    pub label_rate: Option<f64>,
    /// Mean score.
    pub mean_predicted: Option<f64>,
    /// Mean squared error of the score against the label.
    pub brier: Option<f64>,
    /// Realised area under the ROC curve (ties one half).
    pub auc: Option<f64>,
    /// Expected calibration error: the bins' |mean score − observed rate|,
    /// weighted by count.
    pub calibration_error: Option<f64>,
    /// Ten bins of the score.
    pub calibration: Vec<CalibrationBin>,
}

/// The model-quality block of a metrics snapshot.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModelQuality {
    /// The window's end (exclusive), ms: the midnight starting the monitor's day.
    pub window_end: i64,
    /// Close days in the window.
    pub window_days: u32,
    /// Per head.
    pub heads: Vec<HeadQuality>,
    /// Customers monitored.
    pub customers: u64,
    /// Resolutions dropped because their close day had left the kept buckets.
    pub late: u64,
    /// The first midnight (ms) whose standing predictions are judged: the
    /// end of the burn-in ([`Monitor::judge_from`]); `None` without
    /// one (every prediction judged).
    pub judged_from: Option<i64>,
}

/// The metric names pulse publishes in [`NAMESPACE`], each with dimension
/// `Head`: one definition for the publisher, the deployment and the tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QualityMetric {
    /// Realised AUC.
    Auc,
    /// Brier score.
    Brier,
    /// Expected calibration error.
    CalibrationError,
    /// Share of label 1.
    LabelRate,
    /// Mean score.
    MeanPredicted,
    /// Resolved predictions in the window.
    ResolvedPredictions,
}

impl QualityMetric {
    /// Every metric, in publishing order.
    pub const ALL: [QualityMetric; 6] = [
        QualityMetric::Auc,
        QualityMetric::Brier,
        QualityMetric::CalibrationError,
        QualityMetric::LabelRate,
        QualityMetric::MeanPredicted,
        QualityMetric::ResolvedPredictions,
    ];

    /// The CloudWatch name.
    pub const fn name(self) -> &'static str {
        match self {
            QualityMetric::Auc => "RealisedAuc",
            QualityMetric::Brier => "BrierScore",
            QualityMetric::CalibrationError => "CalibrationError",
            QualityMetric::LabelRate => "LabelRate",
            QualityMetric::MeanPredicted => "MeanPredicted",
            QualityMetric::ResolvedPredictions => "ResolvedPredictions",
        }
    }

    /// The CloudWatch unit.
    pub const fn unit(self) -> &'static str {
        match self {
            QualityMetric::ResolvedPredictions => "Count",
            _ => "None",
        }
    }
}

/// Customers a day (resolved predictions per close day that resolved some)
/// a head's window needs before its AUC, Brier score, calibration error and
/// rates are published as metrics. Customers, not customer-days: a
/// customer's daily predictions within a window are nearly one event, so a
/// window of 700 resolved predictions is about 100 customers, and on a
/// sound model such windows breached the documented alarm for days on end
/// (40 and 100 customers; a review, 2026-12-05). Each Lambda execution
/// environment publishes its own window, and the alarms take the day's
/// worst across them, so a small environment's figures would set it.
pub const MIN_CUSTOMERS_TO_PUBLISH: f64 = 250.0;

/// Churned customers a day, and as many who were not, that a window needs
/// before its AUC is published: an AUC over two churned customers (a fleet
/// that hardly churns) fell under the alarm's line on a model whose Brier
/// score was 0.003.
pub const MIN_CLASS_TO_PUBLISH_AUC: f64 = 30.0;

impl HeadQuality {
    /// Resolved predictions per close day that resolved some.
    pub fn customers_per_day(&self) -> f64 {
        self.count as f64 / f64::from(self.days.max(1))
    }

    /// Why a metric of this head is not published, if it is not: every
    /// figure but the count under [`MIN_CUSTOMERS_TO_PUBLISH`], the AUC
    /// under [`MIN_CLASS_TO_PUBLISH_AUC`] of either label.
    pub fn why_withheld(&self, metric: QualityMetric) -> Option<String> {
        if metric == QualityMetric::ResolvedPredictions {
            return None;
        }
        let per_day = self.customers_per_day();
        if per_day < MIN_CUSTOMERS_TO_PUBLISH {
            return Some(format!(
                "{per_day:.0} customers a day resolved, under {MIN_CUSTOMERS_TO_PUBLISH:.0}: too few to judge"
            ));
        }
        let churned = self.label_rate.unwrap_or(0.0) * per_day;
        let fewer = churned.min(per_day - churned);
        if metric == QualityMetric::Auc && fewer < MIN_CLASS_TO_PUBLISH_AUC {
            let which = if churned <= per_day - churned { "churned" } else { "not churned" };
            return Some(format!(
                "AUC withheld: {fewer:.0} {which} customers a day, under {MIN_CLASS_TO_PUBLISH_AUC:.0}"
            ));
        }
        None
    }
}

impl ModelQuality {
    /// The CloudWatch data per head (the dimension value is the head's
    /// name); a figure that cannot be computed yet is left out, and so is
    /// one [`HeadQuality::withheld`] for too few customers.
    pub fn cloudwatch_metrics(&self) -> Vec<(Head, Metric)> {
        let mut out = Vec::new();
        for h in &self.heads {
            for m in QualityMetric::ALL {
                if h.why_withheld(m).is_some() {
                    continue;
                }
                let value = match m {
                    QualityMetric::Auc => h.auc,
                    QualityMetric::Brier => h.brier,
                    QualityMetric::CalibrationError => h.calibration_error,
                    QualityMetric::LabelRate => h.label_rate,
                    QualityMetric::MeanPredicted => h.mean_predicted,
                    QualityMetric::ResolvedPredictions => Some(h.count as f64),
                };
                if let Some(value) = value {
                    out.push((h.head, Metric { name: m.name(), value, unit: m.unit() }));
                }
            }
        }
        out
    }

    /// The figures of one head.
    pub fn head(&self, head: Head) -> Option<&HeadQuality> {
        self.heads.iter().find(|h| h.head == head)
    }
}

/// What the monitor did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MonitorCounters {
    /// Monitored predictions resolved (both heads).
    pub resolved: u64,
    /// Resolutions dropped: their close day had left the kept buckets.
    pub late: u64,
    /// Resolutions not judged: their prediction stood at a midnight of the
    /// burn-in ([`Monitor::judge_from`]).
    pub burn_in: u64,
}

#[derive(Clone, Debug, Default)]
struct Bucket {
    day: i64,
    heads: [Histogram; 2],
}

/// The rings of every customer and the rolling window: see the [module docs](self).
#[derive(Debug)]
pub struct Monitor {
    config: MonitorConfig,
    /// Boxed on purpose: the list of chunks doubles as it grows, the rings
    /// do not (at most one partly used chunk of slack, not a doubled buffer).
    #[allow(clippy::vec_box)]
    chunks: Vec<Box<[Ring; CHUNK]>>,
    len: usize,
    /// The latest day observed.
    clock: Option<i64>,
    /// Close days `clock − window_days ..= clock`, in order.
    buckets: VecDeque<Bucket>,
    /// The first midnight whose standing predictions are judged: the
    /// burn-in's end ([`Monitor::judge_from`]; `None`: every one is).
    judged_from: Option<i64>,
    counters: MonitorCounters,
}

impl Monitor {
    /// A monitor; the configuration is checked here.
    pub fn new(config: MonitorConfig) -> Result<Monitor, PolicyError> {
        config.validate()?;
        Ok(Monitor {
            config,
            chunks: Vec::new(),
            len: 0,
            clock: None,
            buckets: VecDeque::new(),
            judged_from: None,
            counters: MonitorCounters::default(),
        })
    }

    /// Judges only the predictions standing at midnight `day` or later (a
    /// day number; the latest of the days given wins): the end of a burn-in.
    /// A process that starts without its customers' history meets them
    /// mid-life, their windows empty, and scores them as new customers for
    /// weeks; judged, those predictions set off every alarm for two weeks
    /// on a sound model. The owner knows when its stream started, and
    /// whether an earlier run of it did (a restart reads the burn-in's end
    /// back with the rings): see `pulse_runtime::scoring::ScoringConfig::burn_in_days`.
    pub fn judge_from(&mut self, day: i64) {
        self.judged_from = Some(self.judged_from.map_or(day, |d| d.max(day)));
    }

    /// A ring for a customer whose first prediction is as of `as_of`;
    /// `None` for a time outside 1970–2149.
    pub fn start(&mut self, as_of: i64) -> Option<MonitorIx> {
        self.adopt(Ring::starting(as_of.div_euclid(DAY_MS))?)
    }

    /// Takes in a ring kept elsewhere (a customer's stored state, read back
    /// after a restart); `None` past 2^32 rings.
    pub fn adopt(&mut self, ring: Ring) -> Option<MonitorIx> {
        let ix = u32::try_from(self.len + 1).ok().and_then(std::num::NonZeroU32::new)?;
        if self.len.is_multiple_of(CHUNK) {
            self.chunks.push(Box::new([Ring::default(); CHUNK]));
        }
        self.chunks[self.len / CHUNK][self.len % CHUNK] = ring;
        self.len += 1;
        Some(MonitorIx(ix))
    }

    /// The ring at `ix`.
    pub fn ring(&self, ix: MonitorIx) -> Option<&Ring> {
        let i = ix.0.get() as usize - 1;
        self.chunks.get(i / CHUNK).map(|c| &c[i % CHUNK]).filter(|_| i < self.len)
    }

    /// A vector of the customer at `ix` as of `as_of`, with its latest
    /// session (see [`last_session`]) and the customer's latest prediction
    /// (`churn_risk_14d`, `churn_risk_30d`) standing at this moment.
    pub fn observe(&mut self, ix: MonitorIx, as_of: i64, last_session: Option<i64>, standing: Option<(f64, f64)>) {
        let day = as_of.div_euclid(DAY_MS);
        if u16::try_from(day).is_err() {
            return;
        }
        self.advance(day);
        // Without a burn-in every prediction is judged, a restarted
        // environment's rings' earlier midnights too.
        let judged_from = self.judged_from.unwrap_or(i64::MIN);
        let i = ix.0.get() as usize - 1;
        let Some(ring) = self.chunks.get_mut(i / CHUNK).map(|c| &mut c[i % CHUNK]) else { return };
        let (buckets, counters) = (&mut self.buckets, &mut self.counters);
        ring.observe(day, last_session.map(session_slot), standing, |r| {
            if r.close_day - r.head.horizon_days() < judged_from {
                counters.burn_in += 1;
                return;
            }
            let front = buckets.front().map_or(i64::MAX, |b| b.day);
            match usize::try_from(r.close_day - front).ok().and_then(|k| buckets.get_mut(k)) {
                Some(bucket) => {
                    bucket.heads[r.head as usize].add(r.level, r.label);
                    counters.resolved += 1;
                }
                None => counters.late += 1,
            }
        });
    }

    /// Moves the clock to `day` if later: buckets for the new close days,
    /// the ones out of the window dropped.
    fn advance(&mut self, day: i64) {
        if self.clock.is_some_and(|c| c >= day) {
            return;
        }
        self.clock = Some(day);
        let first = day - i64::from(self.config.window_days);
        while self.buckets.front().is_some_and(|b| b.day < first) {
            self.buckets.pop_front();
        }
        let mut next = self.buckets.back().map_or(first, |b| b.day + 1).max(first);
        while next <= day {
            self.buckets.push_back(Bucket { day: next, ..Bucket::default() });
            next += 1;
        }
    }

    /// The monitor's day (the latest observed), if any.
    pub fn day(&self) -> Option<i64> {
        self.clock
    }

    /// The quality over the window: the complete close days before the
    /// monitor's day. `None` before any observation.
    pub fn quality(&self) -> Option<ModelQuality> {
        let clock = self.clock?;
        let mut sums = [Histogram::default(), Histogram::default()];
        let mut days = [0u32; 2];
        for b in self.buckets.iter().filter(|b| b.day < clock) {
            for ((sum, h), d) in sums.iter_mut().zip(&b.heads).zip(&mut days) {
                sum.merge(h);
                *d += u32::from(h.positive.iter().chain(&h.negative).any(|&n| n > 0));
            }
        }
        let heads = Head::ALL
            .iter()
            .map(|&h| {
                let mut q = sums[h as usize].quality(h);
                q.days = days[h as usize];
                q.withheld = q.why_withheld(QualityMetric::Brier).or_else(|| q.why_withheld(QualityMetric::Auc));
                q
            })
            .collect();
        Some(ModelQuality {
            window_end: clock * DAY_MS,
            window_days: self.config.window_days,
            heads,
            customers: self.len as u64,
            late: self.counters.late,
            judged_from: self.judged_from.map(|d| d * DAY_MS),
        })
    }

    /// The counts so far.
    pub fn counters(&self) -> MonitorCounters {
        self.counters
    }

    /// Rings held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no ring is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes held for the rings (chunks by capacity, and the chunk list).
    pub fn ring_bytes(&self) -> usize {
        self.chunks.len() * std::mem::size_of::<[Ring; CHUNK]>()
            + self.chunks.capacity() * std::mem::size_of::<Box<[Ring; CHUNK]>>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const D0: i64 = 20_000; // a day in 2024

    fn ms(day: i64, hour: i64) -> i64 {
        day * DAY_MS + hour * 3_600_000
    }

    #[test]
    fn a_ring_is_62_bytes() {
        assert_eq!(std::mem::size_of::<Ring>(), 62);
    }

    /// A ring stored and read back is the same ring, and goes on as the
    /// original would; bytes that are no ring are refused.
    #[test]
    fn a_ring_survives_its_bytes() {
        let mut ring = Ring::starting(D0).unwrap();
        for day in D0 + 1..D0 + 20 {
            ring.observe(day, Some(session_slot(ms(day - 1, 9))), Some((0.31, 0.62)), |_| {});
        }
        let bytes = ring.to_bytes();
        let mut back = Ring::from_bytes(&bytes).expect("a ring");
        assert_eq!(back, ring);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        ring.observe(D0 + 45, None, Some((0.9, 0.95)), |r| a.push(r));
        back.observe(D0 + 45, None, Some((0.9, 0.95)), |r| b.push(r));
        assert!(!a.is_empty());
        assert_eq!(a, b, "the same labels resolve");
        assert_eq!(Ring::from_bytes(&bytes[..61]), None, "short");
        let mut bad = bytes;
        bad[2] = 121; // a 14-day level past 119 that is not "no prediction"
        assert_eq!(Ring::from_bytes(&bad), None);
    }

    #[test]
    fn levels_and_slots() {
        assert_eq!((level(0.0), level(1.0), level(0.5), level(f64::NAN)), (Some(0), Some(119), Some(60), None));
        assert_eq!(level(-3.0), Some(0));
        assert_eq!(session_slot(D0 * DAY_MS), D0 - 1, "midnight ends the day before");
        assert_eq!(session_slot(D0 * DAY_MS + 1), D0);
        assert_eq!(last_session(ms(D0, 12), 0.5), Some(ms(D0, 0)));
        assert_eq!(last_session(ms(D0, 12), 365.0), None);
    }

    /// A customer with one prediction, observed daily at noon, with a
    /// session on day D0+5 at 10:00: the 14-day labels of midnights
    /// D0−8 ..= D0+5 are 0, the others 1.
    #[test]
    fn labels_follow_the_sessions_and_close_on_time() {
        let mut ring = Ring::starting(D0 - 20).unwrap();
        let mut got = Vec::new();
        let session = ms(D0 + 5, 10);
        for day in D0 - 19..=D0 + 40 {
            let s = (day >= D0 + 5).then_some(session);
            ring.observe(day, s.map(session_slot), Some((0.3, 0.6)), |r| got.push(r));
        }
        let h14: Vec<_> = got.iter().filter(|r| r.head == Head::ChurnRisk14d).collect();
        // Midnights D0−19 ..= D0+26 close 14 days later, inside the run.
        assert_eq!(h14.first().unwrap().close_day, D0 - 5);
        for r in &h14 {
            let midnight = r.close_day - 14;
            assert_eq!(r.label, !(D0 - 8..=D0 + 5).contains(&midnight), "midnight {midnight}");
            assert_eq!(r.level, level(0.3).unwrap());
        }
        let h30: Vec<_> = got.iter().filter(|r| r.head == Head::ChurnRisk30d).collect();
        for r in &h30 {
            let midnight = r.close_day - 30;
            assert_eq!(r.label, !(D0 - 24..=D0 + 5).contains(&midnight), "midnight {midnight}");
        }
        assert_eq!(h30.len(), (D0 + 40 - 30 - (D0 - 19) + 1) as usize);
    }

    /// The naive recomputation: every (midnight, standing prediction,
    /// label) from the full list of observations, by scanning.
    /// An observation: day, a session then (if any), the standing prediction.
    type Observation = (i64, Option<i64>, Option<(f64, f64)>);

    fn brute(days: &[Observation], start: i64, head: Head, end_day: i64) -> Vec<(i64, u16, bool)> {
        let sessions: Vec<i64> = days.iter().filter_map(|d| d.1).collect();
        let mut out = Vec::new();
        // The standing prediction at midnight m: the one given with the first
        // observation on or after m (the caller's latest at that moment).
        for m in start + 1..=end_day - head.horizon_days() {
            let Some(obs) = days.iter().find(|d| d.0 >= m) else { continue };
            let Some((p14, p30)) = obs.2 else { continue };
            let p = if head == Head::ChurnRisk14d { p14 } else { p30 };
            let (lo, hi) = (m * DAY_MS, (m + head.horizon_days()) * DAY_MS);
            let label = !sessions.iter().any(|&s| s > lo && s <= hi);
            out.push((m + head.horizon_days(), level(p).unwrap(), label));
        }
        out
    }

    proptest! {
        /// Against the brute force: a customer observed on random days
        /// (gaps up to 3 days), sessions at random times of some of them,
        /// predictions changing at random.
        #[test]
        fn ring_matches_a_scan(steps in proptest::collection::vec((1i64..=3, any::<bool>(), 0i64..24, 0.0f64..1.0, any::<bool>()), 1..120)) {
            let start = D0;
            let mut ring = Ring::starting(start).unwrap();
            let mut day = start;
            let mut obs = Vec::new();
            let mut standing = Some((0.5, 0.5));
            let mut latest_session = None;
            let mut got = Vec::new();
            for (gap, session, hour, p, change) in steps {
                day += gap;
                // A session at `hour` of the day; the vector is as of later that day.
                if session {
                    latest_session = Some(ms(day, hour) + 1);
                }
                obs.push((day, if session { latest_session } else { None }, standing));
                ring.observe(day, latest_session.map(session_slot), standing, |r| got.push(r));
                if change {
                    standing = Some((p, 1.0 - p));
                }
            }
            for head in Head::ALL {
                let want = brute(&obs, start, head, day);
                let mine: Vec<_> = got.iter().filter(|r| r.head == head).map(|r| (r.close_day, r.level, r.label)).collect();
                prop_assert_eq!(mine, want);
            }
        }

        /// AUC, Brier and calibration from the histogram equal the pairwise
        /// and per-prediction definitions on the quantised scores.
        #[test]
        fn histogram_figures_match_brute_force(cases in proptest::collection::vec((0u16..120, any::<bool>()), 0..300)) {
            let mut h = Histogram::default();
            for &(l, y) in &cases {
                h.add(l, y);
            }
            let q = h.quality(Head::ChurnRisk14d);
            let n = cases.len() as f64;
            prop_assert_eq!(q.count, cases.len() as u64);
            let pos: Vec<u16> = cases.iter().filter(|c| c.1).map(|c| c.0).collect();
            let neg: Vec<u16> = cases.iter().filter(|c| !c.1).map(|c| c.0).collect();
            if pos.is_empty() || neg.is_empty() {
                prop_assert!(q.auc.is_none());
            } else {
                let mut s = 0.0;
                for &a in &pos {
                    for &b in &neg {
                        s += if a > b { 1.0 } else if a == b { 0.5 } else { 0.0 };
                    }
                }
                let auc = s / (pos.len() * neg.len()) as f64;
                prop_assert!((q.auc.unwrap() - auc).abs() < 1e-12);
            }
            if cases.is_empty() {
                prop_assert!(q.brier.is_none() && q.label_rate.is_none());
            } else {
                let brier: f64 = cases.iter().map(|&(l, y)| (level_value(l) - f64::from(u8::from(y))).powi(2)).sum::<f64>() / n;
                prop_assert!((q.brier.unwrap() - brier).abs() < 1e-12);
                prop_assert!((q.label_rate.unwrap() - pos.len() as f64 / n).abs() < 1e-12);
                let mut ece = 0.0;
                for (b, bin) in q.calibration.iter().enumerate() {
                    let inside: Vec<_> = cases.iter().filter(|c| {
                        let v = level_value(c.0);
                        v >= b as f64 / 10.0 && v < (b + 1) as f64 / 10.0
                    }).collect();
                    prop_assert_eq!(bin.count, inside.len() as u64);
                    if !inside.is_empty() {
                        let mean = inside.iter().map(|c| level_value(c.0)).sum::<f64>() / inside.len() as f64;
                        let rate = inside.iter().filter(|c| c.1).count() as f64 / inside.len() as f64;
                        prop_assert!((bin.mean_predicted.unwrap() - mean).abs() < 1e-12);
                        prop_assert!((bin.observed_rate.unwrap() - rate).abs() < 1e-12);
                        ece += inside.len() as f64 * (mean - rate).abs();
                    }
                }
                prop_assert!((q.calibration_error.unwrap() - ece / n).abs() < 1e-12);
            }
        }
    }

    /// The window holds the complete close days before the monitor's day,
    /// and a prediction is counted on its close day, not before.
    #[test]
    fn the_window_counts_closed_horizons_only() {
        let mut m = Monitor::new(MonitorConfig { window_days: 3 }).unwrap();
        let a = m.start(ms(D0, 1)).unwrap();
        let b = m.start(ms(D0, 1)).unwrap();
        // a: a session every day; b: none. Both predicted 0.2 / 0.9.
        for day in D0 + 1..=D0 + 16 {
            m.observe(a, ms(day, 12), Some(ms(day, 11)), Some((0.2, 0.2)));
            m.observe(b, ms(day, 12), None, Some((0.9, 0.9)));
        }
        // Midnights D0+1 ..: the first 14-day horizon closes on D0+15, whose
        // bucket is complete once the clock is on D0+16.
        let q = m.quality().unwrap();
        let h = q.head(Head::ChurnRisk14d).unwrap();
        assert_eq!((h.count, h.label_rate), (2, Some(0.5)));
        assert_eq!(h.auc, Some(1.0));
        assert_eq!(q.head(Head::ChurnRisk30d).unwrap().count, 0);
        for day in D0 + 17..=D0 + 25 {
            m.observe(a, ms(day, 12), Some(ms(day, 11)), Some((0.2, 0.2)));
            m.observe(b, ms(day, 12), None, Some((0.9, 0.9)));
        }
        // Window: close days D0+22 ..= D0+24, one prediction each a day.
        let h = m.quality().unwrap().heads[0].clone();
        assert_eq!(h.count, 6);
        let (va, vb) = (level_value(level(0.2).unwrap()), level_value(level(0.9).unwrap()));
        assert!((h.brier.unwrap() - (va * va + (1.0 - vb) * (1.0 - vb)) / 2.0).abs() < 1e-12);
        assert_eq!(m.counters().late, 0);
        assert_eq!(m.len(), 2);
        for head in Head::ALL {
            assert_eq!(serde_json::to_value(head).unwrap(), head.name());
        }
    }

    #[test]
    fn quality_becomes_cloudwatch_data_per_head() {
        // `churned` and `stayed` customers a day over 7 close days; the
        // churned ones scored lower (an AUC of 0).
        let quality = |churned: u64, stayed: u64| {
            let mut h = Histogram::default();
            for _ in 0..7 * churned {
                h.add(10, true);
            }
            for _ in 0..7 * stayed {
                h.add(100, false);
            }
            let mut q = h.quality(Head::ChurnRisk14d);
            q.days = 7;
            ModelQuality {
                window_end: 0,
                window_days: 7,
                heads: vec![q],
                customers: churned + stayed,
                late: 0,
                judged_from: None,
            }
        };
        let names = |q: &ModelQuality| q.cloudwatch_metrics().iter().map(|(_, m)| m.name).collect::<Vec<_>>();
        let half = (MIN_CUSTOMERS_TO_PUBLISH / 2.0) as u64;
        let q = quality(half, half);
        assert_eq!(
            names(&q),
            ["RealisedAuc", "BrierScore", "CalibrationError", "LabelRate", "MeanPredicted", "ResolvedPredictions"]
        );
        assert_eq!(q.cloudwatch_metrics()[0].1.value, 0.0, "the churned ones were scored lower");
        assert_eq!(q.heads[0].customers_per_day(), 2.0 * half as f64);
        // Too few customers a day for a figure worth an alarm, however many
        // customer-days: only the count.
        let few = quality(half, half - 1);
        assert_eq!(few.heads[0].count, 7 * (2 * half - 1));
        assert_eq!(names(&few), ["ResolvedPredictions"]);
        assert!(few.heads[0].why_withheld(QualityMetric::Brier).unwrap().contains("customers a day"));
        // Enough customers, too few of them churned for an AUC.
        let rare = MIN_CLASS_TO_PUBLISH_AUC as u64 - 1;
        let q = quality(rare, 2 * half);
        assert_eq!(names(&q), ["BrierScore", "CalibrationError", "LabelRate", "MeanPredicted", "ResolvedPredictions"]);
        assert!(
            q.heads[0].why_withheld(QualityMetric::Auc).unwrap().contains("churned customers a day"),
            "{:?}",
            q.heads[0].why_withheld(QualityMetric::Auc)
        );
        // And too few who stayed.
        let q = quality(2 * half, rare);
        assert!(q.heads[0].why_withheld(QualityMetric::Auc).unwrap().contains("not churned"));
        assert!(Monitor::new(MonitorConfig { window_days: 0 }).is_err());
    }

    /// Midnights of the burn-in are stamped (their sessions still mark the
    /// ring) but their predictions are not judged; the first midnight after
    /// it is, on the day its horizon closes.
    #[test]
    fn the_burn_in_midnights_are_not_judged() {
        let burn_in = 5;
        let mut m = Monitor::new(MonitorConfig { window_days: 60 }).unwrap();
        // A later call cannot move the end back (a restart that reads an
        // earlier run's end and starts a burn-in of its own keeps the later).
        m.judge_from(D0 + burn_in);
        m.judge_from(D0 + 2);
        let ix = m.start(ms(D0, 1)).unwrap();
        for day in D0..D0 + 40 {
            m.observe(ix, ms(day, 12), None, Some((0.5, 0.5)));
        }
        // Midnights D0+1 ..= D0+39 stood a prediction; the 14-day horizons
        // of D0+1 ..= D0+25 closed by D0+39, those of D0+1 ..= D0+4 in the
        // burn-in (it ends at midnight D0+5), and the 30-day ones of
        // D0+1 ..= D0+9, four of them in it.
        let c = m.counters();
        assert_eq!(c.burn_in, 4 + 4);
        assert_eq!(c.resolved, (25 - 4) + (9 - 4));
        let q = m.quality().unwrap();
        assert_eq!(q.judged_from, Some((D0 + burn_in) * DAY_MS));
        let h14 = q.head(Head::ChurnRisk14d).unwrap();
        assert_eq!(h14.label_rate, Some(1.0), "no session: every judged one churned");
        assert_eq!(h14.days, (25 - 4 - 1) as u32, "the close days of the window before the monitor's day");
    }

    #[test]
    fn memory_per_customer_at_10k() {
        let mut m = Monitor::new(MonitorConfig::default()).unwrap();
        for _ in 0..10_000 {
            m.start(ms(D0, 0)).unwrap();
        }
        // 157 chunks of 64 rings (3,968 B each) and a list of 256 pointers.
        assert_eq!(m.ring_bytes(), 157 * 3_968 + 256 * 8);
        let per = m.ring_bytes() as f64 / 10_000.0;
        assert!(per <= 64.0, "{per} bytes per customer");
        assert_eq!(per, 62.5024);
    }
}
