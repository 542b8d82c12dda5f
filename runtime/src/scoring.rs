//! The scoring stage: feature vectors in, predictions, alerts and fleet
//! metrics out.
//!
//! A thin driver around the pure operators of `pulse_operators::scoring`:
//! [`ScoreQueue`] (change gate, per-customer coalescing, micro-batches),
//! a [`Scorer`] (the embedded model; the SageMaker endpoint in live use),
//! [`Fleet`] and [`Alerts`], and the model [`Monitor`] (fed every offered
//! vector and the customer's latest prediction: the realised quality of the
//! churn heads, in the snapshots). Time is passed in by the caller: stream
//! time in a replay or the demo (so they are deterministic), the wall clock
//! live; the monitor runs on the vectors' own `as_of`, so it is on stream
//! time everywhere.
//!
//! A failed batch is never replaced by made-up scores: a retryable failure
//! puts the rows back in the queue (they are scored later, newest vector per
//! customer), a fatal one stops the stage with the error.

use anyhow::{bail, Result};
use pulse_model::{Contributions, ModelId, ScoreError, ScoredRows, Scorer};
use pulse_operators::scoring::monitor::last_session;
use pulse_operators::scoring::{
    Alarm, Alarms, Alert, AlertPolicy, AlertState, Alerts, BatchPolicy, Fleet, FleetMetrics, ModelQuality, Monitor,
    MonitorConfig, ScoreQueue,
};
use pulse_schemas::features::{has_no_session, idx::DAYS_SINCE_LAST_SESSION, is_new_customer};
use pulse_schemas::prediction::Prediction;
use pulse_schemas::reasons::top_raising;
use pulse_schemas::{Basis, CustomerId, FeatureVector, Features, Reasons, Segment, FEATURE_COUNT, SCHEMA};

use crate::memory::{self, days_since_last_session, Anchor, Anchors, Gone, Memory, Moved, Standing, Stored, ToStore};
use serde::Serialize;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// How the stage behaves.
#[derive(Clone, Debug)]
pub struct ScoringConfig {
    /// Micro-batching and coalescing.
    pub batch: BatchPolicy,
    /// Alert re-arm level.
    pub alerts: AlertPolicy,
    /// Fleet alarm thresholds.
    pub alarms: Alarms,
    /// A fleet-metrics snapshot every this many ms (of the caller's time).
    pub metrics_interval_ms: i64,
    /// Give each prediction its reasons (see [`crate::memory`]).
    pub reasons: bool,
    /// The model monitor's window; `None` runs without it.
    pub monitor: Option<MonitorConfig>,
    /// Days at the start of the stage's stream time during which customers
    /// may be met mid-life: a process that starts without its customers'
    /// history sees every one of them with a week or less of it. The alert
    /// of a customer whose first event falls in them does not call it new
    /// (it may not be: `Prediction::met_in_burn_in`), and the monitor does
    /// not judge the predictions standing at their midnights. 0 where the
    /// history is read first (the Lambda, `--hydrate`, a resumed run).
    /// The burn-in's end is stored with every prediction
    /// ([`ScoringStage::memory_to_store`]), so a run restarted inside it
    /// reads it back and keeps it (the later end wins if both have one).
    pub burn_in_days: u32,
}

/// The longest [`ScoringConfig::burn_in_days`].
pub const MAX_BURN_IN_DAYS: u32 = 60;

impl Default for ScoringConfig {
    fn default() -> Self {
        ScoringConfig {
            batch: BatchPolicy::default(),
            alerts: AlertPolicy::default(),
            alarms: Alarms::default(),
            metrics_interval_ms: 60_000,
            reasons: true,
            monitor: Some(MonitorConfig::default()),
            burn_in_days: 0,
        }
    }
}

/// Whether the history of a vector as of `as_of` starts before `new_from`
/// (ms; `None`: never): a customer first seen in the burn-in may have been
/// met mid-life, its history before the stream unseen (a review,
/// 2026-12-05: 101 of 140 "new customer" alerts of a capture cut 20 days
/// into its customers' lives went to customers with two weeks of history or
/// more). Its alert says so instead of calling it new.
fn met_in_burn_in(x: &Features, as_of: i64, new_from: Option<i64>) -> bool {
    let history_from = as_of as f64 - x[pulse_schemas::features::idx::TENURE_DAYS] * pulse_schemas::DAY_MS as f64;
    new_from.is_some_and(|from| history_from < from as f64)
}

/// A fleet-metrics snapshot, with the alarms in breach.
#[derive(Clone, Debug, Serialize)]
pub struct MetricsSnapshot {
    /// When (caller's time, ms).
    pub at: i64,
    /// The metrics.
    pub metrics: FleetMetrics,
    /// Alarms in breach.
    pub alarms: Vec<Alarm>,
    /// Model calls that failed since the previous snapshot.
    pub prediction_failures: u64,
    /// The model's realised quality: in the first snapshot of each new
    /// stream day of the monitor (its window moved) and in the last one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_quality: Option<ModelQuality>,
}

/// What a step produced.
#[derive(Debug, Default)]
pub struct Scored {
    /// New predictions.
    pub predictions: Vec<Prediction>,
    /// New alerts.
    pub alerts: Vec<Alert>,
    /// Fleet snapshots due.
    pub metrics: Vec<MetricsSnapshot>,
    /// The reasons of `predictions` (and of their `alerts`) still to be
    /// worked out, by a [`Reasoner`]: only from a stage that defers them
    /// ([`ScoringStage::defer_reasons`]); empty otherwise.
    pub pending_reasons: Vec<PendingReasons>,
}

/// A prediction's reasons, left by the stage to a [`Reasoner`]: what the
/// attribution needs, and where its result goes.
#[derive(Debug)]
pub struct PendingReasons {
    /// The prediction's index in [`Scored::predictions`].
    prediction: usize,
    /// The index in [`Scored::alerts`] of the alert it raised, if any.
    alert: Option<usize>,
    /// The model that made it.
    model: ModelId,
    /// The vector scored.
    row: Features,
    /// The customer's vector its reasons compare with (as its anchor keeps
    /// it), and the anchor: when that was, and the risk it scored then.
    was: [f32; FEATURE_COUNT],
    then: Anchor,
}

/// Predictions given reasons, and those whose attribution failed.
#[derive(Clone, Copy, Debug, Default)]
struct ReasonCounts {
    explained: u64,
    unexplained: u64,
}

impl ReasonCounts {
    /// The reasons of `customer`'s prediction by `model` for `row`, compared
    /// with its vector `was` as its anchor `then` keeps it (when, and the
    /// risk it scored); none, saying why, when the scorer cannot explain
    /// that model, or when the attribution failed: a prediction is still a
    /// prediction without its reasons (said, counted, not fatal).
    fn reasons<S: Scorer>(
        &mut self,
        scorer: &S,
        model: &ModelId,
        customer: &CustomerId,
        row: &Features,
        was: &[f32; FEATURE_COUNT],
        then: Anchor,
    ) -> Reasons {
        let was = reference(row, was);
        let mut contributions: Contributions = [0.0; FEATURE_COUNT];
        match scorer.attribute_churn_risk(model, row, &was, &mut contributions) {
            Ok(true) => {
                self.explained += 1;
                top_raising(&contributions, row, &was, Some(then.as_of), Some(then.churn_risk_14d))
            }
            Ok(false) => Reasons::none(Basis::Unexplainable),
            Err(e) => {
                self.unexplained += 1;
                tracing::warn!(error = %e, %customer, "no reasons for this prediction");
                Reasons::none(Basis::Failed)
            }
        }
    }
}

/// A prediction's reasons, their baseline dated when the customer was
/// first seen in the burn-in: its first record seen may not be its signup.
fn first_seen(reasons: Reasons, met_in_burn_in: bool) -> Reasons {
    if met_in_burn_in {
        reasons.signup_unknown()
    } else {
        reasons
    }
}

/// The reference vector an attribution compares `row` with, from the `f32`
/// copy an anchor keeps: a feature whose value now rounds to the kept one
/// counts as not having moved and is compared at its value now, so its
/// contribution is exactly 0. Widened instead, it would differ from the value
/// now by the rounding, and a split between the two (the shipped model has
/// one at 3.9000000000000004 on `avg_rating_30d`, where 3.9 as an `f32` is
/// 3.9000000953…) would credit it with a move it did not make: "rated
/// sessions 3.9 on average (was 3.9)" named as a reason.
fn reference(row: &Features, was: &[f32; FEATURE_COUNT]) -> Features {
    std::array::from_fn(|i| if row[i] as f32 == was[i] { row[i] } else { f64::from(was[i]) })
}

/// Works out the reasons a stage left to it ([`ScoringStage::defer_reasons`]),
/// on threads other than the stage's: a replay's attribution costs about
/// twice its inference, and there it runs beside the stage instead of after
/// it. [`Reasoner::explain`] takes `&self`: several threads may share one,
/// each explaining the [`Scored`] it is given; a [`LatestReasons`] then
/// follows every `Scored` in the stage's order, for the stage to take back
/// with the counts ([`ScoringStage::adopt_reasons`]).
#[derive(Debug)]
pub struct Reasoner<S> {
    scorer: Arc<S>,
    explained: AtomicU64,
    unexplained: AtomicU64,
}

impl<S: Scorer> Reasoner<S> {
    /// Gives `scored`'s predictions and alerts their reasons.
    pub fn explain(&self, scored: &mut Scored) {
        let mut counts = ReasonCounts::default();
        for job in scored.pending_reasons.drain(..) {
            let prediction = &mut scored.predictions[job.prediction];
            let reasons =
                counts.reasons(&*self.scorer, &job.model, &prediction.customer_id, &job.row, &job.was, job.then);
            let reasons = first_seen(reasons, prediction.met_in_burn_in);
            prediction.reasons = reasons;
            if let Some(alert) = job.alert {
                scored.alerts[alert].give_reasons(reasons);
            }
        }
        self.explained.fetch_add(counts.explained, Relaxed);
        self.unexplained.fetch_add(counts.unexplained, Relaxed);
    }
}

/// Each customer's latest reasons, when its latest prediction had some, and
/// the latest alerts with theirs ([`ScoringStage::recent_alerts`]), as the
/// stage keeps them when it does not defer them: fed every [`Scored`] a
/// [`Reasoner`] explained, in the stage's order.
#[derive(Debug, Default)]
pub struct LatestReasons {
    latest: HashMap<CustomerId, Reasons, ahash::RandomState>,
    alerts: RecentAlerts,
}

/// The last [`RECENT_ALERTS`] alerts, oldest first.
#[derive(Clone, Debug, Default)]
struct RecentAlerts(VecDeque<Alert>);

/// Alerts a stage keeps for its report ([`ScoringStage::recent_alerts`]).
pub const RECENT_ALERTS: usize = 5;

impl RecentAlerts {
    fn push(&mut self, alert: Alert) {
        if self.0.len() == RECENT_ALERTS {
            self.0.pop_front();
        }
        self.0.push_back(alert);
    }
}

impl LatestReasons {
    /// Takes in the predictions and alerts of `scored`, in order.
    pub fn observe(&mut self, scored: &Scored) {
        // Only the last few are kept: the earlier ones would be dropped.
        let skip = scored.alerts.len().saturating_sub(RECENT_ALERTS);
        for a in &scored.alerts[skip..] {
            self.alerts.push(a.clone());
        }
        for p in &scored.predictions {
            if p.reasons.is_empty() {
                self.latest.remove(&p.customer_id);
            } else if let Some(kept) = self.latest.get_mut(&p.customer_id) {
                *kept = p.reasons;
            } else {
                self.latest.insert(p.customer_id.clone(), p.reasons);
            }
        }
    }
}

/// Fatal model failures in a row after which the failing rows are given up
/// on ([`ScoringStats::abandoned`]): a refused endpoint (a typo in its name)
/// fails every call, and the rows wait for it to be fixed; rows the model
/// fails on whatever the endpoint (an answer it cannot give for them) would
/// otherwise block every later call.
pub const FATAL_RETRIES: u32 = 3;

/// Counts of the stage's work.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct ScoringStats {
    /// Vectors offered.
    pub vectors_offered: u64,
    /// Offered vectors that were bit-identical to the customer's last scored one.
    pub unchanged: u64,
    /// Offered vectors replaced by a newer one of the same customer before scoring.
    pub coalesced: u64,
    /// Model calls made.
    pub model_calls: u64,
    /// Rows sent to the model.
    pub model_rows: u64,
    /// Model calls that failed (their rows were requeued).
    pub model_failures: u64,
    /// Vectors given up on after [`FATAL_RETRIES`] fatal failures in a row
    /// (their customers are scored at their next vector).
    pub abandoned: u64,
    /// Predictions produced.
    pub predictions: u64,
    /// Alerts raised.
    pub alerts: u64,
}

/// Shows the monitor a vector, with the customer's latest prediction (the
/// one standing at any midnight the vector passes).
fn monitor_vector(monitor: &mut Monitor, memory: &Memory, v: &FeatureVector) {
    let (Some(ring), scores) = (memory.monitor, memory.scores) else { return };
    let session = last_session(v.as_of, v.features[DAYS_SINCE_LAST_SESSION]);
    monitor.observe(ring, v.as_of, session, Some((scores.churn_risk_14d, scores.churn_risk_30d)));
}

/// Attempts at a failing model before [`ScoringStage::flush`] gives up.
const FLUSH_ATTEMPTS: u32 = 3;

/// The stage's state.
#[derive(Debug)]
pub struct ScoringStage<S: Scorer> {
    /// Shared with the [`Reasoner`] when the stage defers reasons.
    scorer: Arc<S>,
    queue: ScoreQueue,
    fleet: Fleet,
    /// `None` when the caller observes alerts itself ([`ScoringStage::alerts_by_caller`]).
    alerts: Option<Alerts>,
    /// Customers not scored yet that offered a new customer's vector: their
    /// alert state starts [`AlertState::ARRIVING`].
    arrived: HashSet<CustomerId>,
    /// [`ScoringConfig::burn_in_days`], ms, and whether a vector came yet:
    /// the first one's `as_of` plus the burn-in is where it ends.
    burn_in_ms: i64,
    started: bool,
    /// The end of the stream's burn-in (ms; `None`: none): customers whose
    /// history starts before it may have been met mid-life, and the
    /// monitor does not judge the midnights before it. This run's own, or
    /// an earlier run's read back ([`ScoringStage::restore`]), the later.
    burn_in_end: Option<i64>,
    alarms: Alarms,
    /// The models that answered so far (a handful: the endpoint, its fallback).
    models: Vec<ModelId>,
    /// Each customer's latest prediction, the past vectors its reasons
    /// compare with, its ring in the monitor, its fleet entry, its alert
    /// state and its change gate in the queue. Boxed: the map's slots hold
    /// 32 bytes, not the entry's 280, so its spare slots (up to half just
    /// after it grows) cost little.
    latest: HashMap<CustomerId, Box<Memory>, ahash::RandomState>,
    reasons: bool,
    /// Whether a [`Reasoner`] works the reasons out ([`ScoringStage::defer_reasons`]).
    deferred: bool,
    counts: ReasonCounts,
    /// The latest alerts, with their reasons: here when the stage works
    /// them out, from the [`LatestReasons`] when it defers them.
    recent_alerts: RecentAlerts,
    monitor: Option<Monitor>,
    /// The monitor's day in the last snapshot that carried the model quality.
    quality_day: Option<i64>,
    stats: ScoringStats,
    failures_since_snapshot: u64,
    /// Fatal model failures in a row (reset by a call that succeeds).
    fatal_streak: u32,
    metrics_interval_ms: i64,
    next_metrics_at: Option<i64>,
}

impl<S: Scorer> ScoringStage<S> {
    /// Moves the burn-in's end to `end` (ms) if that is later: the one
    /// place it is set, for the alerts and the monitor alike.
    fn burn_in_until(&mut self, end: i64) {
        if self.burn_in_end.is_some_and(|e| e >= end) {
            return;
        }
        self.burn_in_end = Some(end);
        if let Some(monitor) = self.monitor.as_mut() {
            monitor.judge_from(end.div_euclid(pulse_schemas::DAY_MS));
        }
    }

    /// A stage around a model; the configuration is checked here.
    pub fn new(scorer: S, config: ScoringConfig) -> Result<ScoringStage<S>> {
        config.alarms.validate()?;
        anyhow::ensure!(config.metrics_interval_ms > 0, "the fleet metrics interval must be positive");
        anyhow::ensure!(
            config.burn_in_days <= MAX_BURN_IN_DAYS,
            "the burn-in must be 0 to {MAX_BURN_IN_DAYS} days, got {}",
            config.burn_in_days
        );
        let monitor = config.monitor.map(Monitor::new).transpose()?;
        Ok(ScoringStage {
            scorer: Arc::new(scorer),
            queue: ScoreQueue::new(config.batch)?,
            fleet: Fleet::default(),
            alerts: Some(Alerts::new(config.alerts)?),
            arrived: HashSet::new(),
            burn_in_ms: i64::from(config.burn_in_days) * pulse_schemas::DAY_MS,
            started: false,
            burn_in_end: None,
            alarms: config.alarms,
            models: Vec::new(),
            latest: HashMap::default(),
            reasons: config.reasons,
            deferred: false,
            counts: ReasonCounts::default(),
            recent_alerts: RecentAlerts::default(),
            monitor,
            quality_day: None,
            stats: ScoringStats::default(),
            failures_since_snapshot: 0,
            fatal_streak: 0,
            metrics_interval_ms: config.metrics_interval_ms,
            next_metrics_at: None,
        })
    }

    /// Leaves alerts to the caller: [`Scored::alerts`] stays empty. For a
    /// caller that must load each customer's stored alert state before
    /// deciding (a live sink after a restart), with its own [`Alerts`].
    pub fn alerts_by_caller(mut self) -> ScoringStage<S> {
        self.alerts = None;
        self
    }

    /// The scorer.
    pub fn scorer(&self) -> &S {
        &self.scorer
    }

    /// Leaves the reasons of the predictions from now on to the returned
    /// [`Reasoner`] (`None` when the stage gives no reasons): each
    /// [`Scored`] comes out with its predictions' and alerts' reasons empty
    /// and [`Scored::pending_reasons`] saying what to work out, and the
    /// caller passes every `Scored` through [`Reasoner::explain`] before
    /// using it, and then, in order, through a [`LatestReasons`]. Until the
    /// caller hands them back ([`ScoringStage::adopt_reasons`]) the stage's
    /// memory of each customer's latest reasons, and its counts, lag. For a
    /// replay, whose attribution then runs beside the stage: the outputs are
    /// the same, byte for byte.
    pub fn defer_reasons(&mut self) -> Option<Reasoner<S>> {
        if !self.reasons {
            return None;
        }
        self.deferred = true;
        Some(Reasoner {
            scorer: Arc::clone(&self.scorer),
            explained: AtomicU64::new(0),
            unexplained: AtomicU64::new(0),
        })
    }

    /// Takes back what the [`Reasoner`] counted and the [`LatestReasons`]
    /// kept since they were last adopted, once every [`Scored`] the stage
    /// produced went through both: each customer's latest reasons, and the
    /// counts ([`ScoringStage::explained`]).
    pub fn adopt_reasons(&mut self, reasoner: &Reasoner<S>, latest: &mut LatestReasons) {
        // Taken, not drained: the map's table is freed as the reasons move
        // into the customers' memory.
        for (customer, reasons) in std::mem::take(&mut latest.latest) {
            // A customer's memory is never dropped, so it is there; the
            // reasons are the latest prediction's: a later one without
            // reasons took the customer out of the map.
            if let Some(memory) = self.latest.get_mut(&customer) {
                memory.set_reasons(reasons);
            }
        }
        for alert in std::mem::take(&mut latest.alerts).0 {
            self.recent_alerts.push(alert);
        }
        self.counts.explained += reasoner.explained.swap(0, Relaxed);
        self.counts.unexplained += reasoner.unexplained.swap(0, Relaxed);
    }

    /// The last [`RECENT_ALERTS`] alerts the stage raised, oldest first,
    /// with their reasons (for a stage that defers them, those taken back
    /// by [`ScoringStage::adopt_reasons`]): what a report shows of them.
    pub fn recent_alerts(&self) -> Vec<Alert> {
        self.recent_alerts.0.iter().cloned().collect()
    }

    /// Vectors waiting to be scored (including those requeued after a failure).
    pub fn pending(&self) -> usize {
        self.queue.pending()
    }

    /// Offers vectors, all at time `now`, and scores every batch that is ready.
    pub async fn offer(&mut self, vectors: Vec<FeatureVector>, now: i64, out: &mut Scored) -> Result<()> {
        self.offer_timed(vectors.into_iter().map(|v| (v, now)), out).await?;
        self.release(now, out).await
    }

    /// Offers vectors each at its own time (non-decreasing): batches whose
    /// linger ends before a vector's time are scored before it is offered, so
    /// coalescing spans the linger and no more, however the input is batched.
    pub async fn offer_timed(
        &mut self,
        vectors: impl IntoIterator<Item = (FeatureVector, i64)>,
        out: &mut Scored,
    ) -> Result<()> {
        for (v, now) in vectors {
            self.release(now, out).await?;
            // Backpressure: a full queue is drained (oldest first, whatever
            // their linger) before it takes more, so memory stays bounded.
            while self.queue.is_full() {
                let Some(batch) = self.queue.take_ready(i64::MAX) else { break };
                if !self.score(batch, now, out).await? {
                    bail!("the model keeps failing and {} vectors are waiting", self.queue.pending());
                }
            }
            self.stats.vectors_offered += 1;
            if !std::mem::replace(&mut self.started, true) && self.burn_in_ms > 0 {
                self.burn_in_until(v.as_of.saturating_add(self.burn_in_ms));
            }
            let memory = self.latest.get_mut(&v.customer_id);
            if memory.is_none() && self.alerts.is_some() && is_new_customer(&v.features) {
                // Its first prediction may be of a later vector this one is
                // coalesced into: judged, not a baseline (see `Alerts`).
                self.arrived.insert(v.customer_id.clone());
            }
            if let (Some(monitor), Some(m)) = (self.monitor.as_mut(), memory.as_deref()) {
                monitor_vector(monitor, m, &v);
            }
            self.queue.offer_in(v, now, memory.and_then(|m| m.gate.as_mut()));
        }
        Ok(())
    }

    /// Scores every batch ready at `now`, and snapshots the fleet if due.
    pub async fn release(&mut self, now: i64, out: &mut Scored) -> Result<()> {
        while let Some(batch) = self.queue.take_ready(now) {
            if !self.score(batch, now, out).await? {
                break; // failed: the rows wait for the next step
            }
        }
        self.snapshot_if_due(now, out);
        Ok(())
    }

    /// Scores everything still waiting (end of input, shutdown), trying a
    /// failing model up to `FLUSH_ATTEMPTS` times before giving up with an
    /// error that says how many vectors were left unscored.
    pub async fn flush(&mut self, now: i64, out: &mut Scored) -> Result<()> {
        self.drain_all(now, out).await?;
        out.metrics.push(self.snapshot(now, true));
        Ok(())
    }

    /// The fleet snapshot of [`ScoringStage::flush`] alone, at `now`,
    /// whatever is still waiting: for a caller that has already flushed and
    /// must publish its metrics even when that failed (the Lambda function
    /// after a batch whose model call failed: scoring again would call the
    /// failing model a second time, and the failure would go uncounted).
    pub fn snapshot_now(&mut self, now: i64, out: &mut Scored) {
        out.metrics.push(self.snapshot(now, true));
        // The next periodic one a whole interval on, at a boundary: one due
        // earlier (a Lambda's snapshot is stamped with the wall clock, its
        // periodic ones with the stream's time) came stamped before this
        // one, over a 1-ms period, its rates ×1000 (a review, 2026-12-06).
        let interval = self.metrics_interval_ms;
        self.next_metrics_at = Some((now.saturating_add(2 * interval - 1)).div_euclid(interval) * interval);
    }

    /// Scores everything waiting, trying a failing model up to
    /// `FLUSH_ATTEMPTS` times, without the fleet snapshot of
    /// [`ScoringStage::flush`]: a checkpoint barrier in the middle of a run.
    pub async fn drain_all(&mut self, now: i64, out: &mut Scored) -> Result<()> {
        let mut failures = 0;
        while !self.drain(now, out).await? {
            failures += 1;
            if failures >= FLUSH_ATTEMPTS {
                bail!("the model failed {failures} times; {} vectors were left unscored", self.queue.pending());
            }
        }
        Ok(())
    }

    /// Scores everything waiting, whatever its linger, once: `Ok(true)` when
    /// nothing is left, `Ok(false)` when a retryable failure stopped it (the
    /// failed rows are back in the queue), `Err` on a fatal failure. For a
    /// caller with its own policy of waiting between attempts.
    pub async fn drain(&mut self, now: i64, out: &mut Scored) -> Result<bool> {
        while let Some(batch) = self.queue.take_ready(i64::MAX) {
            if !self.score(batch, now, out).await? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Scores a batch: `Ok(true)` scored, `Ok(false)` a retryable failure
    /// (rows requeued), `Err` a fatal one.
    async fn score(&mut self, batch: Vec<FeatureVector>, now: i64, out: &mut Scored) -> Result<bool> {
        let rows: Vec<_> = batch.iter().map(|v| v.features).collect();
        self.stats.model_calls += 1;
        self.stats.model_rows += rows.len() as u64;
        let new_from = self.burn_in_end;
        match self.scorer.score(&rows).await {
            Ok(ScoredRows { scores, model }) if scores.len() == batch.len() => {
                self.fatal_streak = 0;
                let model_ix = self.model_index(&model);
                for (v, s) in batch.iter().zip(scores) {
                    let memory = match self.latest.get_mut(&v.customer_id) {
                        Some(m) => m,
                        None => self.latest.entry(v.customer_id.clone()).or_insert_with(|| {
                            Box::new(Memory {
                                as_of: v.as_of,
                                scores: s,
                                segment: Segment::Healthy,
                                model_ix,
                                reasons: None,
                                days_since_last_session: 0.0,
                                anchors: Anchors::new(self.reasons),
                                monitor: self.monitor.as_mut().and_then(|m| m.start(v.as_of)),
                                stored: 0,
                                fleet: None,
                                alert: self.arrived.remove(&v.customer_id).then_some(AlertState::ARRIVING),
                                gate: None,
                            })
                        }),
                    };
                    // In batch order, as the queue asks: a parked vector of
                    // the customer joins the line.
                    self.queue.mark_scored_in(v, &mut memory.gate);
                    // Off, or nothing to compare with, unless worked out below
                    // (the alert sentence says which).
                    let mut reasons = Reasons::none(if self.reasons { Basis::Nothing } else { Basis::Off });
                    let met_in_burn_in = met_in_burn_in(&v.features, v.as_of, new_from);
                    // This prediction's place in `out.pending_reasons`, if deferred.
                    let mut pending = None;
                    let anchors = &mut memory.anchors;
                    if let Some((then, was)) = anchors.reference(v.as_of).and_then(|r| Some((r.anchor, r.vector()?))) {
                        if self.deferred {
                            pending = Some(out.pending_reasons.len());
                            out.pending_reasons.push(PendingReasons {
                                prediction: out.predictions.len(),
                                alert: None,
                                model: model.clone(),
                                row: v.features,
                                was: *was,
                                then,
                            });
                            reasons = Reasons::none(Basis::Pending);
                        } else {
                            let reasons_now =
                                self.counts.reasons(&*self.scorer, &model, &v.customer_id, &v.features, was, then);
                            reasons = first_seen(reasons_now, met_in_burn_in);
                        }
                    }
                    anchors.observe(v.as_of, &v.features, &s);
                    let prediction = Prediction {
                        customer_id: v.customer_id.clone(),
                        as_of: v.as_of,
                        segment: Segment::of(s.churn_risk_14d, s.churn_risk_30d, s.health_score),
                        scores: s,
                        model: model.name.clone(),
                        model_version: model.version.clone(),
                        served_by: model.served_by.clone(),
                        features_schema: SCHEMA.into(),
                        reasons,
                        emission: Some(v.emission()),
                        new_customer: is_new_customer(&v.features),
                        met_in_burn_in,
                        no_session: has_no_session(&v.features),
                    };
                    memory.as_of = prediction.as_of;
                    memory.scores = prediction.scores;
                    memory.segment = prediction.segment;
                    memory.model_ix = model_ix;
                    memory.set_reasons(reasons);
                    memory.days_since_last_session = days_since_last_session(&v.features);
                    // In emission order, as `update_in` and `observe_in`
                    // ask: the queue hands out a customer's vectors one
                    // after the other, in order, and drops older ones.
                    self.fleet.update_in(&mut memory.fleet, &prediction);
                    if let Some(alert) = self.alerts.as_ref().and_then(|a| a.observe_in(&mut memory.alert, &prediction))
                    {
                        self.stats.alerts += 1;
                        if let Some(i) = pending {
                            out.pending_reasons[i].alert = Some(out.alerts.len());
                        }
                        if !self.deferred {
                            // A deferring stage's come back with their reasons.
                            self.recent_alerts.push(alert.clone());
                        }
                        out.alerts.push(alert);
                    }
                    self.stats.predictions += 1;
                    out.predictions.push(prediction);
                }
                Ok(true)
            }
            Ok(ScoredRows { scores, .. }) => {
                let rows = batch.len();
                let error = anyhow::anyhow!("the model returned {} predictions for {rows} rows", scores.len());
                Err(self.failed_fatally(batch, now, error))
            }
            Err(ScoreError::Retryable(reason)) => {
                self.stats.model_failures += 1;
                self.failures_since_snapshot += 1;
                tracing::warn!(%reason, rows = batch.len(), "scoring failed; rows requeued");
                self.requeue(batch, now);
                Ok(false)
            }
            Err(fatal) => Err(self.failed_fatally(batch, now, anyhow::Error::new(fatal))),
        }
    }

    /// A batch whose model call failed for good (a request refused, an
    /// answer that cannot be read): counted, and its rows handed back as a
    /// retryable failure's are; the error is returned for the caller, which
    /// stops (`pulse run`), or fails its batch and is invoked again (the
    /// Lambda function, whose stage lives on). Dropped instead, the batch
    /// left each of its customers "in flight" for good: every later vector
    /// of theirs parked behind it, unscored, while the function answered
    /// success with no failure counted. But a failure these rows cause (an
    /// answer the model cannot give for them) would then fail every later
    /// call first: after [`FATAL_RETRIES`] in a row they are given up on,
    /// said and counted, and the others go on.
    fn failed_fatally(&mut self, batch: Vec<FeatureVector>, now: i64, error: anyhow::Error) -> anyhow::Error {
        self.stats.model_failures += 1;
        self.failures_since_snapshot += 1;
        self.fatal_streak += 1;
        if self.fatal_streak <= FATAL_RETRIES {
            self.requeue(batch, now);
        } else {
            for v in &batch {
                self.queue.abandon(v);
            }
            self.stats.abandoned += batch.len() as u64;
            tracing::error!(
                rows = batch.len(),
                failures = self.fatal_streak,
                error = format!("{error:#}"),
                "the model failed on these rows every time: given up on (each customer is scored at its next vector)"
            );
        }
        error
    }

    /// Hands a batch that was not scored back to the queue, with each
    /// customer's gate.
    fn requeue(&mut self, batch: Vec<FeatureVector>, now: i64) {
        let latest = &self.latest;
        let gated = batch.into_iter().map(|v| {
            let gate = latest.get(&v.customer_id).and_then(|m| m.gate.as_ref());
            (v, gate)
        });
        self.queue.requeue_in(gated.collect(), now);
    }

    /// Whether the stage remembers the customer (scored it, or read its
    /// stored memory back).
    pub fn knows(&self, customer: &CustomerId) -> bool {
        self.latest.contains_key(customer)
    }

    /// What to store of the customer's memory outside the process (see
    /// [`crate::memory`], "Across restarts"): the prediction item's extra
    /// bytes, and the anchors if they changed since last stored or read
    /// back (they count as stored once returned: the caller stores them or
    /// fails). `None` when the stage does not know the customer.
    pub fn memory_to_store(&mut self, customer: &CustomerId) -> Option<ToStore> {
        let m = self.latest.get_mut(customer)?;
        let ring = m.monitor.and_then(|ix| self.monitor.as_ref()?.ring(ix));
        let latest = memory::encode_latest(m, ring, self.burn_in_end);
        let anchors = memory::encode_anchors(&m.anchors).filter(|bytes| {
            // 0 means "never stored".
            let hash = xxhash_rust::xxh3::xxh3_64(bytes).max(1);
            std::mem::replace(&mut m.stored, hash) != hash
        });
        Some(ToStore { latest, anchors })
    }

    /// Takes in a customer as stored (its latest prediction, and the bytes
    /// of [`ScoringStage::memory_to_store`] stored with it), unless the
    /// stage knows the customer already; the error says what is wrong with
    /// the bytes, and nothing is taken in then.
    pub fn restore(&mut self, customer: CustomerId, stored: Stored<'_>) -> Result<()> {
        if self.latest.contains_key(&customer) {
            return Ok(());
        }
        let fail = |e: String| anyhow::anyhow!("customer {customer}: {e}");
        let latest = stored.latest.map(memory::decode_latest).transpose().map_err(fail)?;
        let (days_since_last_session, ring) = latest.as_ref().map(|l| (l.days_since_last_session, l.ring)).unzip();
        let anchors = stored.anchors.map(memory::decode_anchors).transpose().map_err(fail)?;
        let stored_hash = stored.anchors.map_or(0, |b| xxhash_rust::xxh3::xxh3_64(b).max(1));
        // Before the ring is adopted: its midnights in the burn-in are not judged.
        if let Some(end) = latest.as_ref().and_then(|l| l.burn_in_end) {
            self.burn_in_until(end);
        }
        let scores = stored.scores;
        let memory = Memory {
            as_of: stored.as_of,
            scores,
            segment: Segment::of(scores.churn_risk_14d, scores.churn_risk_30d, scores.health_score),
            model_ix: self.model_index(&stored.model),
            reasons: None,
            // Unknown (stored before pulse kept it): not active, so in no list until the next prediction.
            days_since_last_session: days_since_last_session.unwrap_or(f32::INFINITY),
            anchors: match anchors {
                Some(a) if self.reasons => a,
                Some(a) => a.without_vectors(),
                None => Anchors::new(self.reasons),
            },
            monitor: self.monitor.as_mut().and_then(|m| match ring.flatten() {
                Some(ring) => m.adopt(ring),
                None => m.start(stored.as_of),
            }),
            stored: stored_hash,
            fleet: None,
            alert: None,
            gate: None,
        };
        self.latest.insert(customer, Box::new(memory));
        Ok(())
    }

    /// The model's realised quality now (`None` without a monitor or before
    /// its first observation).
    pub fn model_quality(&self) -> Option<ModelQuality> {
        self.monitor.as_ref().and_then(Monitor::quality)
    }

    /// The index of `model` in `models`, added if new (a handful at most:
    /// past `u16::MAX` distinct identities the last index is reused).
    fn model_index(&mut self, model: &ModelId) -> u16 {
        if let Some(i) = self.models.iter().position(|m| m == model) {
            return i as u16;
        }
        if self.models.len() <= usize::from(u16::MAX) {
            self.models.push(model.clone());
        }
        (self.models.len() - 1) as u16
    }

    fn snapshot(&mut self, at: i64, last: bool) -> MetricsSnapshot {
        let metrics = self.fleet.snapshot();
        let failures = std::mem::take(&mut self.failures_since_snapshot);
        let day = self.monitor.as_ref().and_then(Monitor::day);
        let model_quality = if day.is_some() && (last || day != self.quality_day) {
            self.quality_day = day;
            self.model_quality()
        } else {
            None
        };
        MetricsSnapshot {
            at,
            metrics,
            alarms: self.alarms.evaluate(&metrics, failures),
            prediction_failures: failures,
            model_quality,
        }
    }

    fn snapshot_if_due(&mut self, now: i64, out: &mut Scored) {
        let interval = self.metrics_interval_ms;
        let due = *self.next_metrics_at.get_or_insert_with(|| now.div_euclid(interval) * interval + interval);
        if now >= due {
            // One snapshot at the latest boundary passed (not one per boundary).
            let at = now.div_euclid(interval) * interval;
            out.metrics.push(self.snapshot(at, false));
            self.next_metrics_at = Some(at + interval);
        }
    }

    /// The work so far.
    pub fn stats(&self) -> ScoringStats {
        let q = self.queue.stats();
        ScoringStats { unchanged: q.unchanged, coalesced: q.coalesced, ..self.stats }
    }

    /// The fleet metrics now.
    pub fn fleet(&self) -> FleetMetrics {
        self.fleet.snapshot()
    }

    /// The `n` customers with the highest `churn_risk_14d` in their latest prediction.
    pub fn top_at_risk(&self, n: usize) -> Vec<Prediction> {
        let mut all: Vec<_> = self.latest.iter().collect();
        all.sort_by(|(ca, a), (cb, b)| {
            b.scores.churn_risk_14d.total_cmp(&a.scores.churn_risk_14d).then_with(|| ca.cmp(cb))
        });
        all.into_iter().take(n).map(|(c, m)| self.prediction_of(c, m)).collect()
    }

    /// The two lists a customer-success person works from, `n` each (see
    /// [`Standing`] for how a customer gets in either): the savable, most
    /// moved first; the gone, highest risk first. Ties by customer id.
    pub fn lists(&self, n: usize) -> CustomerLists {
        let mut savable = Vec::new();
        let mut gone = Vec::new();
        for (c, m) in &self.latest {
            let m: &Memory = m;
            match m.standing() {
                Some(Standing::Savable(moved)) => savable.push((moved.rank(), moved, c, m)),
                Some(Standing::Gone(state)) => gone.push((m.scores.churn_risk_14d, state, c, m)),
                None => {}
            }
        }
        let total = (savable.len(), gone.len());
        CustomerLists {
            savable: self.ranked(savable, n),
            gone: self.ranked(gone, n),
            savable_total: total.0,
            gone_total: total.1,
        }
    }

    /// The first `n` of `rows` (rank, what the list shows, customer) by
    /// rank, highest first, ties by customer id, as predictions.
    fn ranked<T>(&self, mut rows: Vec<(f64, T, &CustomerId, &Memory)>, n: usize) -> Vec<(Prediction, T)> {
        rows.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.2.cmp(b.2)));
        rows.into_iter().take(n).map(|(_, x, c, m)| (self.prediction_of(c, m), x)).collect()
    }

    /// Predictions given reasons so far, and those whose attribution failed
    /// (they went out without reasons; each failure is logged).
    pub fn explained(&self) -> (u64, u64) {
        (self.counts.explained, self.counts.unexplained)
    }

    /// Every customer the stage remembers, in id order.
    pub fn customers_sorted(&self) -> Vec<CustomerId> {
        let mut ids: Vec<CustomerId> = self.latest.keys().cloned().collect();
        ids.sort_unstable();
        ids
    }

    /// The customer's latest prediction, as it was written (its emission
    /// aside, which prediction files do not carry).
    pub fn latest_prediction(&self, customer: &CustomerId) -> Option<Prediction> {
        self.latest.get(customer).map(|m| self.prediction_of(customer, m))
    }

    fn prediction_of(&self, customer_id: &CustomerId, m: &Memory) -> Prediction {
        let model = &self.models[usize::from(m.model_ix)];
        Prediction {
            customer_id: customer_id.clone(),
            as_of: m.as_of,
            scores: m.scores,
            segment: m.segment,
            model: model.name.clone(),
            model_version: model.version.clone(),
            served_by: model.served_by.clone(),
            features_schema: SCHEMA.into(),
            reasons: m.reasons(),
            emission: None,
            new_customer: false,
            no_session: false,
            met_in_burn_in: false,
        }
    }
}

/// The savable customers and those already gone ([`ScoringStage::lists`]).
#[derive(Clone, Debug, Default, Serialize)]
pub struct CustomerLists {
    /// Still active, risk high and rising or health freshly down: each with
    /// what moved and by how much, most first.
    pub savable: Vec<(Prediction, Moved)>,
    /// No session in three weeks and a high risk, highest first, each with
    /// how long since its last session.
    pub gone: Vec<(Prediction, Gone)>,
    /// How many customers are savable in all.
    pub savable_total: usize,
    /// How many are gone in all.
    pub gone_total: usize,
}

impl CustomerLists {
    /// How each list is built, for reports.
    pub const HOW: &'static str = "savable: a session in the last 14 days, and churn_risk_14d at least 0.4 and up 0.15 or more since about 14 days earlier, or health down 15 points or more from 70 or above; ranked by how much it moved (the risk's rise, or the health's fall / 100: whichever put it on the list, the larger if both did; the column moved says which, as risk +0.57 or health -15). gone: no session in 21 days or more and churn_risk_14d above 0.7; ranked by risk. pred. sessions/w is the model's forecast of sessions a week (session_velocity), not a count.";
}

#[cfg(test)]
mod tests {
    use super::*;
    use pulse_schemas::prediction::Scores;
    use pulse_schemas::{Features, Source, Trigger};
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

    /// A model that fails its first `fail_first` calls (retryable), then
    /// scores churn risk 14d = the first feature.
    struct Flaky {
        fail_first: u64,
        calls: AtomicU64,
    }

    /// A model that fails fatally on the calls `fails` picks (by the rows
    /// and the call's number), with `error`, and scores the others as
    /// [`Flaky`].
    struct Fatal {
        scorer: Flaky,
        fails: fn(&[Features], u64) -> bool,
        error: &'static str,
    }

    impl Scorer for Fatal {
        fn model_name(&self) -> &str {
            "fatal"
        }
        fn model_version(&self) -> &str {
            "0"
        }
        fn score(&self, rows: &[Features]) -> impl std::future::Future<Output = Result<ScoredRows, ScoreError>> + Send {
            let fails = (self.fails)(rows, self.scorer.calls.load(Relaxed));
            let scored = self.scorer.score(rows);
            let error = self.error;
            async move {
                match fails {
                    true => Err(ScoreError::Fatal(error.into())),
                    false => scored.await,
                }
            }
        }
    }

    impl Scorer for Flaky {
        fn model_name(&self) -> &str {
            "flaky"
        }
        fn model_version(&self) -> &str {
            "0"
        }
        fn score(&self, rows: &[Features]) -> impl std::future::Future<Output = Result<ScoredRows, ScoreError>> + Send {
            let n = self.calls.fetch_add(1, Relaxed);
            let out = if n < self.fail_first {
                Err(ScoreError::Retryable("endpoint throttled".into()))
            } else {
                let scores = rows
                    .iter()
                    .map(|r| Scores {
                        first_session_success: 0.5,
                        session_velocity: 1.0,
                        churn_risk_14d: r[0],
                        churn_risk_30d: r[0],
                        health_score: 100.0 * (1.0 - r[0]),
                    })
                    .collect();
                Ok(ScoredRows { scores, model: ModelId::new("flaky", "0", "test") })
            };
            std::future::ready(out)
        }
    }

    /// A vector of a customer with a month of history (no new customer's:
    /// judged by alerts), scored `risk` by [`Flaky`].
    fn vector(customer: &str, as_of: i64, risk: f64) -> FeatureVector {
        let mut features = [0.0; 46];
        features[0] = risk;
        features[pulse_schemas::features::idx::TENURE_DAYS] = 30.0;
        FeatureVector {
            customer_id: CustomerId::new(customer),
            as_of,
            trigger: Trigger::Event,
            source: Source::default(),
            schema: SCHEMA.into(),
            features,
            emission: None,
        }
    }

    fn config(max_rows: usize, linger_ms: i64, max_pending: usize) -> ScoringConfig {
        ScoringConfig {
            batch: BatchPolicy { max_rows, max_linger_ms: linger_ms, max_pending },
            ..ScoringConfig::default()
        }
    }

    #[tokio::test]
    async fn failures_requeue_and_nothing_is_made_up() {
        // Linger 10 ms: a batch is ready 10 ms after its oldest row waits
        // (a requeued row waits again from its requeue).
        let mut stage =
            ScoringStage::new(Flaky { fail_first: 2, calls: AtomicU64::new(0) }, config(10, 10, 100)).unwrap();
        let mut out = Scored::default();
        stage.offer(vec![vector("a", 1, 0.9), vector("b", 1, 0.1)], 0, &mut out).await.unwrap();
        stage.offer(vec![], 20, &mut out).await.unwrap(); // call 1 fails
        stage.offer(vec![], 25, &mut out).await.unwrap(); // still lingering after the requeue
        assert!(out.predictions.is_empty(), "no prediction while the model fails");
        // Call 2 fails on a@1 and b; then a@2 replaces the waiting a@1.
        stage.offer(vec![vector("a", 2, 0.95)], 35, &mut out).await.unwrap();
        assert!(out.predictions.is_empty());
        stage.offer(vec![], 50, &mut out).await.unwrap();
        // Third call succeeds: a's newest vector and b, each once.
        let got: Vec<(&str, i64)> = out.predictions.iter().map(|p| (p.customer_id.as_str(), p.as_of)).collect();
        assert_eq!(got.len(), 2);
        assert!(got.contains(&("a", 2)) && got.contains(&("b", 1)));
        let stats = stage.stats();
        assert_eq!((stats.model_failures, stats.model_calls, stats.predictions), (2, 3, 2));
        assert!(out.alerts.is_empty(), "a's first prediction is its baseline, above 0.7 or not");
    }

    /// A fatal failure stops the caller, but the stage stays whole: the
    /// batch's customers are not left "in flight" (their later vectors
    /// parked behind a batch nobody reports), the failure is counted, and
    /// once the model answers the customer is scored again. (The Lambda function keeps its stage across invocations: it
    /// answered every later batch of such a customer with success, no
    /// prediction and no failure counted.)
    #[tokio::test]
    async fn a_fatal_failure_leaves_nobody_in_flight() {
        let flaky = Flaky { fail_first: 0, calls: AtomicU64::new(0) };
        // Its first call fails as a misconfigured endpoint does (a 4xx).
        let model = Fatal {
            scorer: flaky,
            fails: |_, call| call == 0,
            error: "ValidationError (HTTP 400): endpoint not found",
        };
        let mut stage = ScoringStage::new(model, config(10, 0, 100)).unwrap();
        let mut out = Scored::default();
        let err = stage.offer(vec![vector("a", 1, 0.9)], 0, &mut out).await.unwrap_err();
        assert!(format!("{err:#}").contains("ValidationError"), "{err:#}");
        assert_eq!(stage.stats().model_failures, 1, "counted");
        assert_eq!(stage.pending(), 1, "handed back, not dropped");
        stage.offer(vec![vector("a", 2, 0.8)], 10, &mut out).await.unwrap();
        stage.flush(10, &mut out).await.unwrap();
        let got: Vec<(&str, i64)> = out.predictions.iter().map(|p| (p.customer_id.as_str(), p.as_of)).collect();
        // The handed-back vector is ready at once (no linger), before the new one.
        assert_eq!(got, [("a", 1), ("a", 2)], "scored once the model answers");
        assert_eq!(stage.pending(), 0);
    }

    /// Rows the model fails on every time are given up on after
    /// FATAL_RETRIES fatal failures in a row, so the environment scores the
    /// others again (they were retried first at every later call, failing
    /// each, until the environment was recycled); a failure that lifts
    /// before then loses nothing.
    #[tokio::test]
    async fn rows_the_model_always_refuses_are_given_up_on_and_the_others_go_on() {
        let flaky = Flaky { fail_first: 0, calls: AtomicU64::new(0) };
        // Every call holding the poison row fails (an answer the model
        // cannot give for it).
        let model = Fatal {
            scorer: flaky,
            fails: |rows, _| rows.iter().any(|r| r[1] == 666.0),
            error: "the endpoint answered NaN for a row",
        };
        let mut stage = ScoringStage::new(model, config(10, 0, 100)).unwrap();
        let mut out = Scored::default();
        let mut poison = vector("poison", 1, 0.5);
        poison.features[1] = 666.0;
        assert!(stage.offer(vec![poison], 0, &mut out).await.is_err());
        for t in 1..=FATAL_RETRIES as i64 {
            // Each later step tries the waiting poison first, and fails.
            assert!(stage.offer(vec![vector(&format!("c{t}"), t, 0.5)], t, &mut out).await.is_err(), "step {t}");
        }
        let stats = stage.stats();
        assert_eq!(stats.model_failures, u64::from(FATAL_RETRIES) + 1);
        assert!(stats.abandoned >= 1, "{stats:?}");
        // The poison is gone: the next step's customers are scored (those of
        // the failed steps come again, as a Lambda batch is redelivered).
        stage.offer(vec![vector("c9", 9, 0.5)], 9, &mut out).await.expect("the others go on");
        stage.flush(100, &mut out).await.unwrap();
        let scored: Vec<&str> = out.predictions.iter().map(|p| p.customer_id.as_str()).collect();
        assert_eq!(scored, ["c9"]);
        assert_eq!(stage.pending(), 0);
    }

    /// A new customer's vector coalesced into its first one past its first
    /// week before scoring: that prediction is judged (alerts above 0.7), as
    /// it would be scored apart; a customer whose first vector is past its
    /// first week is met mid-life (a baseline).
    #[tokio::test]
    async fn a_new_customer_coalesced_into_its_first_real_vector_is_judged() {
        use pulse_schemas::features::idx;
        let new = |customer: &str, as_of: i64| {
            let mut v = vector(customer, as_of, 0.95);
            v.features[idx::DAYS_SINCE_LAST_SESSION] = 365.0;
            v.features[idx::TENURE_DAYS] = 0.0;
            assert!(is_new_customer(&v.features));
            v
        };
        let scored = Flaky { fail_first: 0, calls: AtomicU64::new(0) };
        let mut stage = ScoringStage::new(scored, config(10, 10, 100)).unwrap();
        let mut out = Scored::default();
        // "n": signup and a bad first session within the linger; "m": met
        // with the same risk, no signup seen.
        stage.offer(vec![new("n", 1)], 0, &mut out).await.unwrap();
        stage.offer(vec![vector("n", 2, 0.9), vector("m", 2, 0.9)], 1, &mut out).await.unwrap();
        stage.offer(vec![], 20, &mut out).await.unwrap();
        let got: Vec<(&str, i64)> = out.predictions.iter().map(|p| (p.customer_id.as_str(), p.as_of)).collect();
        assert_eq!(got, [("n", 2), ("m", 2)], "n's new vector was coalesced away");
        let alerted: Vec<&str> = out.alerts.iter().map(|a| a.customer_id.as_str()).collect();
        assert_eq!(alerted, ["n"]);
        assert!(out.alerts[0].reason.contains("for a new customer"), "{}", out.alerts[0].reason);
    }

    /// Issue #13, defect 10 (§6 amended): a timer vector as of D is scored,
    /// then a late event's vector (as_of C < D, from a record created after
    /// the timer fired) comes. Its prediction is the customer's latest (the
    /// fleet and the alert state follow it); a replayed timer vector changes
    /// nothing.
    #[tokio::test]
    async fn a_late_event_after_a_timer_is_the_latest_prediction() {
        use pulse_schemas::order::{EmissionKey, Position};
        let (c, d) = (1_000_000, 2_000_000);
        let timer =
            || FeatureVector { trigger: Trigger::Timer, emission: Some(EmissionKey::timer(d)), ..vector("a", d, 0.3) };
        let late = FeatureVector {
            emission: Some(EmissionKey::record(d + 500, Position::of(Some("4200"), None))),
            ..vector("a", c, 0.9)
        };
        let mut stage =
            ScoringStage::new(Flaky { fail_first: 0, calls: AtomicU64::new(0) }, config(10, 0, 100)).unwrap();
        let mut out = Scored::default();
        stage.offer(vec![timer()], 0, &mut out).await.unwrap();
        stage.offer(vec![late], 1, &mut out).await.unwrap();
        stage.offer(vec![timer()], 2, &mut out).await.unwrap(); // a replay of the timer's record
        stage.flush(3, &mut out).await.unwrap();
        let got: Vec<(i64, f64)> = out.predictions.iter().map(|p| (p.as_of, p.scores.churn_risk_14d)).collect();
        assert_eq!(got, [(d, 0.3), (c, 0.9)], "the late event is scored, the replayed timer is not");
        assert_eq!(out.alerts.iter().map(|a| a.as_of).collect::<Vec<_>>(), [c], "its rise alerts");
        let fleet = stage.fleet();
        assert_eq!((fleet.total_customers_processed, fleet.high_churn_risk_count), (1, 1));
        assert_eq!(stage.top_at_risk(1)[0].as_of, c);
        assert_eq!(stage.stats().predictions, 2);
    }

    /// A customer predicted 0.9 that keeps coming (a session a day) and one
    /// predicted 0.1 that never comes back: after 16 days of daily vectors the
    /// first 14-day horizons have closed, both wrongly, and the snapshot of
    /// the new day carries the model quality.
    #[tokio::test]
    async fn snapshots_carry_the_realised_quality_once_horizons_close() {
        const DAY: i64 = pulse_schemas::DAY_MS;
        let d0 = 20_000 * DAY;
        let mut stage =
            ScoringStage::new(Flaky { fail_first: 0, calls: AtomicU64::new(0) }, config(10, 0, 100)).unwrap();
        let mut out = Scored::default();
        for day in 0..=16 {
            let t = d0 + day * DAY + 12 * 3_600_000;
            let mut busy = vector("busy", t, 0.9);
            busy.features[DAYS_SINCE_LAST_SESSION] = 0.0;
            let mut gone = vector("gone", t, 0.1);
            gone.features[1] = day as f64; // a change, so it is scored
            gone.features[DAYS_SINCE_LAST_SESSION] = 365.0;
            stage.offer(vec![busy, gone], t, &mut out).await.unwrap();
        }
        stage.flush(d0 + 17 * DAY, &mut out).await.unwrap();
        let with: Vec<_> = out.metrics.iter().filter_map(|m| m.model_quality.as_ref()).collect();
        assert!(with.len() >= 16, "one a new day, and the last");
        let q = with.last().unwrap().head(pulse_operators::scoring::Head::ChurnRisk14d).unwrap();
        // Midnights d0+1 and d0+2 have closed (on days 15 and 16); the window
        // holds complete close days only (16 is the monitor's day): day 15's,
        // one prediction per customer.
        assert_eq!((q.count, q.label_rate, q.auc), (2, Some(0.5), Some(0.0)));
        assert!(out.metrics.iter().any(|m| m.model_quality.is_none()), "not in every snapshot");
    }

    /// A snapshot taken out of turn (the Lambda's, after each invocation)
    /// puts the next periodic one a whole interval after it: never stamped
    /// before it, never over a period of a few ms.
    #[tokio::test]
    async fn a_snapshot_out_of_turn_moves_the_next_one_a_whole_interval_on() {
        let mut stage =
            ScoringStage::new(Flaky { fail_first: 0, calls: AtomicU64::new(0) }, config(10, 0, 100)).unwrap();
        let mut out = Scored::default();
        let t0 = 1_700_000_000_000 - 1_700_000_000_000 % 60_000;
        stage.offer(vec![vector("a", t0 + 1_000, 0.2)], t0 + 1_000, &mut out).await.unwrap();
        stage.snapshot_now(t0 + 59_999, &mut out);
        stage.offer(vec![vector("a", t0 + 60_500, 0.3)], t0 + 60_500, &mut out).await.unwrap();
        stage.offer(vec![vector("a", t0 + 121_000, 0.4)], t0 + 121_000, &mut out).await.unwrap();
        let at: Vec<i64> = out.metrics.iter().map(|m| m.at - t0).collect();
        assert_eq!(at, [59_999, 120_000], "nothing at 60,000, 1 ms after the snapshot out of turn");
    }

    #[tokio::test]
    async fn a_model_that_never_recovers_fails_the_flush_loudly() {
        let mut stage =
            ScoringStage::new(Flaky { fail_first: u64::MAX, calls: AtomicU64::new(0) }, config(10, 0, 100)).unwrap();
        let mut out = Scored::default();
        stage.offer(vec![vector("a", 1, 0.9)], 0, &mut out).await.unwrap();
        let err = stage.flush(1, &mut out).await.unwrap_err();
        assert!(err.to_string().contains("1 vectors were left unscored"), "{err}");
        assert!(out.predictions.is_empty());
    }

    /// A model whose churn risk is linear in the features, and whose
    /// attribution is exact: each feature's weight times its move. It
    /// fails to attribute a row whose last feature is negative.
    struct Linear;

    const WEIGHTS: [f64; 4] = [0.08, -0.05, 0.06, 0.03];

    impl Scorer for Linear {
        fn model_name(&self) -> &str {
            "linear"
        }
        fn model_version(&self) -> &str {
            "0"
        }
        fn score(&self, rows: &[Features]) -> impl std::future::Future<Output = Result<ScoredRows, ScoreError>> + Send {
            let scores = rows
                .iter()
                .map(|r| {
                    let risk = WEIGHTS.iter().zip(r).map(|(w, x)| w * x).sum::<f64>().clamp(0.0, 1.0);
                    Scores {
                        first_session_success: 0.5,
                        session_velocity: r[1],
                        churn_risk_14d: risk,
                        churn_risk_30d: risk,
                        health_score: 100.0 * (1.0 - risk),
                    }
                })
                .collect();
            std::future::ready(Ok(ScoredRows { scores, model: ModelId::new("linear", "0", "test") }))
        }
        fn attribute_churn_risk(
            &self,
            _model: &ModelId,
            row: &Features,
            reference: &Features,
            out: &mut Contributions,
        ) -> Result<bool, pulse_model::ModelError> {
            if row[FEATURE_COUNT - 1] < 0.0 {
                return Err(pulse_model::ModelError::Artifact("cannot attribute this row".into()));
            }
            out.fill(0.0);
            for (i, w) in WEIGHTS.iter().enumerate() {
                out[i] = w * (row[i] - reference[i]);
            }
            Ok(true)
        }
    }

    /// A feature kept in the anchor's `f32` at the value it still has is no
    /// reason, though its `f64` value now and the widened `f32` differ (3.3
    /// as an `f32` is 3.2999999523…, so the linear model would credit it
    /// with +0.08 × 4.8e-8); a feature that moved still is.
    #[test]
    fn a_feature_the_anchor_kept_at_its_value_now_did_not_move() {
        let mut row = [0.0; FEATURE_COUNT];
        (row[0], row[2], row[FEATURE_COUNT - 1]) = (3.3, 5.0, 1.0);
        let mut was = row.map(|x| x as f32);
        was[2] = 2.0;
        assert!(f64::from(was[0]) < row[0], "the rounding this is about");
        let model = ModelId::new("linear", "0", "test");
        let then = Anchor { as_of: 7, churn_risk_14d: 0.25, health_score: 80.0 };
        let reasons = ReasonCounts::default().reasons(&Linear, &model, &CustomerId::new("a"), &row, &was, then);
        let named: Vec<(u8, f64, f64)> = reasons.as_slice().iter().map(|r| (r.feature, r.now, r.was)).collect();
        assert_eq!(named, [(2, 5.0, 2.0)]);
        assert_eq!(reasons.baseline().map(|b| (b.since, b.churn_risk_14d)), Some((Some(7), Some(0.25))));
    }

    /// Reasons left to a [`Reasoner`] (as a replay leaves them to a thread
    /// in front of its files) come out as the stage gives them itself:
    /// the same predictions and alerts, reasons and alert texts included,
    /// and, once the reasoner is adopted, the same latest predictions,
    /// lists and counts. Customers' vectors every 6 to 30 hours over 60
    /// days, features drawn at random, so risks cross 0.7 both ways.
    #[tokio::test]
    async fn deferred_reasons_are_the_reasons_the_stage_gives() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_pcg::Pcg64::seed_from_u64(7);
        let hour = 3_600_000;
        let mut vectors = Vec::new();
        for c in 0..30 {
            let mut t = rng.random_range(0..24 * hour);
            while t < 60 * 24 * hour {
                let mut v = vector(&format!("c{c:02}"), t, 0.0);
                for x in &mut v.features[..WEIGHTS.len()] {
                    *x = rng.random_range(0.0..10.0);
                }
                v.features[FEATURE_COUNT - 1] = if rng.random_bool(0.05) { -1.0 } else { 1.0 };
                vectors.push(v);
                t += rng.random_range(6 * hour..30 * hour);
            }
        }
        vectors.sort_by_key(|v| v.as_of);
        let scoring = ScoringConfig {
            batch: BatchPolicy { max_rows: 16, max_linger_ms: hour, max_pending: 64 },
            ..ScoringConfig::default()
        };

        let mut inline = ScoringStage::new(Linear, scoring.clone()).unwrap();
        let mut given = Scored::default();
        let mut deferring = ScoringStage::new(Linear, scoring).unwrap();
        let reasoner = deferring.defer_reasons().expect("the stage gives reasons");
        let mut latest_reasons = LatestReasons::default();
        let mut deferred = Scored::default();
        // What the deferring stage made since the last hand-over: explained,
        // observed and moved to `deferred`. It gathers three offers' worth
        // (several model calls) first, as a replay's does between writes.
        let mut step = Scored::default();
        let mut hand_over = |step: &mut Scored, deferred: &mut Scored| {
            assert!(step.predictions.iter().all(|p| p.reasons.is_empty()), "left to the reasoner");
            reasoner.explain(step);
            assert!(step.pending_reasons.is_empty());
            latest_reasons.observe(step);
            deferred.predictions.append(&mut step.predictions);
            deferred.alerts.append(&mut step.alerts);
            deferred.metrics.append(&mut step.metrics);
        };
        for (k, chunk) in vectors.chunks(7).enumerate() {
            let now = chunk.last().unwrap().as_of;
            inline.offer(chunk.to_vec(), now, &mut given).await.unwrap();
            deferring.offer(chunk.to_vec(), now, &mut step).await.unwrap();
            if k % 3 == 2 {
                hand_over(&mut step, &mut deferred);
            }
        }
        let end = vectors.last().unwrap().as_of + 1;
        inline.flush(end, &mut given).await.unwrap();
        deferring.flush(end, &mut step).await.unwrap();
        hand_over(&mut step, &mut deferred);

        fn json<T: Serialize>(x: &T) -> String {
            serde_json::to_string(x).unwrap()
        }
        assert_eq!(json(&deferred.predictions), json(&given.predictions));
        assert_eq!(deferred.alerts, given.alerts);
        assert_eq!(json(&deferred.metrics), json(&given.metrics));
        assert_eq!(json(&deferring.stats()), json(&inline.stats()));
        let explained = given.predictions.iter().filter(|p| !p.reasons.is_empty()).count();
        assert!(explained > given.predictions.len() / 2, "{explained} of {}", given.predictions.len());
        assert!(given.alerts.iter().filter(|a| !a.reasons.is_empty()).count() > 5, "{:?}", given.alerts.len());
        let (_, failed) = inline.explained();
        assert!(failed > 0, "some attributions failed");

        assert_eq!(deferring.explained(), (0, 0), "the counts wait for the reasoner");
        deferring.adopt_reasons(&reasoner, &mut latest_reasons);
        assert_eq!(deferring.explained(), inline.explained());
        let latest = |stage: &ScoringStage<Linear>| {
            stage.customers_sorted().iter().map(|c| stage.latest_prediction(c).unwrap()).collect::<Vec<_>>()
        };
        let (given_latest, deferred_latest) = (latest(&inline), latest(&deferring));
        assert!(
            given_latest.iter().any(|p| !p.reasons.is_empty()) && given_latest.iter().any(|p| p.reasons.is_empty())
        );
        assert_eq!(json(&deferred_latest), json(&given_latest));
        assert_eq!(json(&deferring.lists(10)), json(&inline.lists(10)));
        let recent = inline.recent_alerts();
        assert_eq!(recent.len(), RECENT_ALERTS);
        assert_eq!(recent, given.alerts[given.alerts.len() - RECENT_ALERTS..], "the last, with their reasons");
        assert_eq!(deferring.recent_alerts(), recent);
    }

    #[tokio::test]
    async fn a_full_queue_is_drained_before_taking_more() {
        let mut stage =
            ScoringStage::new(Flaky { fail_first: 0, calls: AtomicU64::new(0) }, config(4, 1_000_000, 4)).unwrap();
        let mut out = Scored::default();
        let many: Vec<_> = (0..10).map(|i| vector(&format!("c{i}"), 1, 0.2)).collect();
        stage.offer(many, 0, &mut out).await.unwrap();
        // Linger is huge, yet the queue never held more than 4: 8 were scored.
        assert_eq!(out.predictions.len(), 8);
        stage.flush(0, &mut out).await.unwrap();
        assert_eq!(out.predictions.len(), 10);
        assert_eq!(out.metrics.last().unwrap().metrics.total_customers_processed, 10);
    }
}
