//! [`ScoringSink`]: the live [`Sink`] that scores and publishes. Vectors in;
//! predictions to DynamoDB, alerts to SNS, dead letters to SQS (and a file),
//! metrics to CloudWatch out.
//!
//! # One step
//!
//! `send` first reads back the customers it has never seen (with a
//! prediction table: both items of each, one `BatchGetItem` per 50
//! customers): their latest prediction, alert state, monitor ring and the
//! anchors their reasons compare with, so a restarted process (a recycled
//! Lambda environment) goes on where the last one stopped
//! (`pulse_runtime::memory`, "Across restarts"). Then it offers the vectors
//! to a [`ScoringStage`] (change gate, coalescing, micro-batches, requeue on
//! failure); `tick` releases what lingered long enough. For each batch the
//! model answered:
//!
//! 1. Alert state: customers this process has not seen yet, whose
//!    `churn_risk_14d` is at or above the re-arm level, get their stored
//!    `alert_armed` read back from the prediction table (one `BatchGetItem`
//!    per 100). Below the re-arm level the stored state cannot matter: the
//!    customer re-arms anyway.
//! 2. The §6 hysteresis ([`Alerts`]) decides the alerts; they are published
//!    *before* the prediction items that record them are written, so a
//!    failed publish is never hidden by a stored "already alerted" (at worst
//!    a crash between the two repeats an alert, with the same `alert_id`).
//! 3. The predictions, each with the alert state after it, are written in
//!    the background (conditional `UpdateItem`s, bounded concurrency; one
//!    step's writes after the previous step's, so a customer's predictions
//!    are written in order), with the customer's ring and, when they
//!    changed, its anchors; so are dead letters and metrics.
//!
//! # Time
//!
//! The runner's: vectors are offered at the latest `tick` time (the wall
//! clock before the first tick), which never goes back. Fleet and health
//! metrics go out at each fleet snapshot of the stage (every
//! `metrics_interval_ms`, 60 s by default), and once more when the run ends
//! ([`ScoringSink::finish`]): the last, partial period is published too, so a
//! stopped consumer's dashboard shows its final fleet, and a run shorter than
//! the interval still publishes.
//!
//! # The barrier
//!
//! `flush` scores everything waiting, whatever its linger, and waits for
//! every write. With `--on-endpoint-down hold` and the endpoint down, it
//! keeps trying (the breaker lets a probe through each cooldown) for up to
//! `hold_timeout`, then fails: the runner must not checkpoint, and the records
//! after its last checkpoint are delivered again later. No score is ever made
//! up.
//!
//! While the endpoint is down (hold), vectors wait in the stage's queue, one
//! per customer; when it is full (`max_pending`), `send` fails rather than
//! grow without bound, and the runner stops without checkpointing.
//!
//! An `Err` from any method means the sink can no longer promise delivery of
//! what it was sent (a write failed for good): the runner stops without
//! checkpointing.

use std::collections::HashSet;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use pulse_operators::scoring::{AlertPolicy, Alerts};
use pulse_schemas::features::is_new_customer;
use pulse_schemas::{CustomerId, FeatureVector, Prediction};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::alerts::{AlertMessage, AlertPublisher};
use super::backend::ModelBackend;
use super::dead_letters::{DeadLetterFile, DeadLetterQueue};
use super::metrics::{fleet_data, quality_data, HealthRecorder, HealthSnapshot, MetricsPublisher, HEAD_DIMENSION};
use super::predictions::{AnchorsRecord, PredictionRecord, PredictionWriter, StoredCustomer};
use crate::retry::Backoff;
use pulse_runtime::memory::Stored;
use pulse_runtime::process::Produced;
use pulse_runtime::scoring::{MetricsSnapshot, Scored, ScoringConfig, ScoringStage};
use pulse_runtime::sink::Sink;

/// Where a [`ScoringSink`] sends things. `None` = not sent (counted only).
#[derive(Debug)]
pub struct Destinations {
    /// The prediction table.
    pub predictions: Option<PredictionWriter>,
    /// The alert topic.
    pub alerts: Option<AlertPublisher>,
    /// The dead-letter queue.
    pub dead_letter_queue: Option<DeadLetterQueue>,
    /// The dead-letter file.
    pub dead_letter_file: Option<DeadLetterFile>,
    /// Metrics.
    pub metrics: MetricsPublisher,
    /// Namespace of the fleet metrics.
    pub fleet_namespace: String,
    /// Namespace of the health metrics.
    pub health_namespace: String,
    /// Namespace of the model-quality metrics (`pulse/ModelQuality`).
    pub quality_namespace: String,
}

/// How a [`ScoringSink`] behaves.
#[derive(Debug, Clone)]
pub struct SinkConfig {
    /// The scoring stage.
    pub scoring: ScoringConfig,
    /// How long `flush` keeps trying a down endpoint before failing.
    pub hold_timeout: Duration,
    /// Background write tasks in flight before `send` waits for one.
    pub max_pending_writes: usize,
}

impl Default for SinkConfig {
    fn default() -> SinkConfig {
        SinkConfig { scoring: ScoringConfig::default(), hold_timeout: Duration::from_secs(300), max_pending_writes: 8 }
    }
}

/// Customers remembered as "nothing stored" before the set starts over.
const ASKED_MAX: usize = 100_000;

/// What the sink did since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct SinkStats {
    /// Vectors received.
    pub vectors: u64,
    /// Dead letters received.
    pub dead_letters: u64,
    /// Predictions made.
    pub predictions: u64,
    /// Alerts published (or, with no topic, raised).
    pub alerts: u64,
    /// Alert states read back from the table.
    pub alert_states_read: u64,
    /// Alert states dropped as stale ([`Sink::forget`]), to be read back.
    pub alert_states_forgotten: u64,
    /// Customers read back from the table before their first scoring here.
    pub customers_read: u64,
    /// Stored customer memories that could not be read (logged; those
    /// customers started afresh).
    pub memories_unreadable: u64,
    /// Anchors items stored.
    pub anchors_written: u64,
    /// Model calls.
    pub model_calls: u64,
    /// Rows sent to the model.
    pub model_rows: u64,
    /// Model calls that failed (rows requeued).
    pub model_failures: u64,
    /// Predictions stored.
    pub predictions_written: u64,
    /// Predictions not stored because a newer one was.
    pub predictions_stale: u64,
    /// Rows scored by the fallback model.
    pub fallback_rows: u64,
    /// Retries of any call.
    pub retries: u64,
    /// Times the endpoint's circuit breaker opened (it closes again on the
    /// first call that succeeds after its cooldown).
    pub breaker_opened: u64,
    /// Metrics snapshots published.
    pub metrics_published: u64,
    /// Metrics snapshots CloudWatch did not take after their retries:
    /// logged and dropped, not fatal (monitoring down must not stop scoring).
    pub metrics_failed: u64,
}

/// The scoring, publishing sink (see the [module docs](self)).
#[derive(Debug)]
pub struct ScoringSink {
    stage: ScoringStage<ModelBackend>,
    alerts: Alerts,
    rearm_below: f64,
    out: Destinations,
    config: SinkConfig,
    jobs: JoinSet<Result<()>>,
    /// Customers read back with nothing stored, not read again (cleared
    /// past [`ASKED_MAX`]); a customer scored is known to the stage.
    asked: HashSet<CustomerId>,
    /// Resolves when the latest step's prediction writes are done.
    prediction_writes: Option<tokio::sync::oneshot::Receiver<()>>,
    clock: i64,
    health: HealthRecorder,
    stats: SinkStats,
    scoring_ms: f64,
    period: Period,
    /// When set ([`ScoringSink::hold_until`]), `flush` stops holding there
    /// even before `hold_timeout`.
    hold_deadline: Option<Instant>,
    /// Dead letters for the queue, sent at the next `flush` once the
    /// step's other writes are done ("The barrier"), and dropped if a
    /// method fails first: the records are delivered again, and their dead
    /// letters with them (each redelivery of a failed Lambda batch sent
    /// them again: one invalid record, 11 messages after 10 retries).
    dead_for_queue: Vec<pulse_runtime::process::DeadLetter>,
    /// Snapshots whose metrics could not be put ([`SinkStats::metrics_failed`]).
    metrics_failed: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// The fleet alarms in breach at the last snapshot: a breach is logged
    /// when it starts and when it ends, not at every snapshot while it lasts.
    in_breach: Vec<&'static str>,
}

/// Cumulative counts at the start of the metrics period.
#[derive(Debug, Default, Clone, Copy)]
struct Period {
    at: Option<i64>,
    totals: SinkStats,
    scoring_ms: f64,
}

impl ScoringSink {
    /// A sink scoring with `model` and sending to `out`.
    pub fn new(model: ModelBackend, out: Destinations, config: SinkConfig) -> Result<ScoringSink> {
        anyhow::ensure!(config.max_pending_writes > 0, "max pending writes must be at least 1");
        let policy: AlertPolicy = config.scoring.alerts;
        Ok(ScoringSink {
            stage: ScoringStage::new(model, config.scoring.clone())?.alerts_by_caller(),
            alerts: Alerts::new(policy)?,
            rearm_below: policy.rearm_below,
            out,
            config,
            jobs: JoinSet::new(),
            asked: HashSet::new(),
            prediction_writes: None,
            clock: wall_clock_ms(),
            health: HealthRecorder::default(),
            stats: SinkStats::default(),
            scoring_ms: 0.0,
            period: Period::default(),
            hold_deadline: None,
            dead_for_queue: Vec::new(),
            metrics_failed: Default::default(),
            in_breach: Vec::new(),
        })
    }

    /// Bounds how long the next `flush`es hold for a failing model: until
    /// `deadline` or `hold_timeout`, whichever comes first (`None`: the
    /// timeout alone). The Lambda function sets it before each invocation
    /// to a little before the invocation's own deadline, so that a function
    /// timeout set below `HOLD_TIMEOUT_S` still ends in an answer that names
    /// the failed records, not in the timeout's kill.
    pub fn hold_until(&mut self, deadline: Option<Instant>) {
        self.hold_deadline = deadline;
    }

    /// The counters a source feeds (records, iterator age), published with
    /// the health metrics.
    pub fn health(&self) -> HealthRecorder {
        self.health.clone()
    }

    /// The model backend.
    pub fn model(&self) -> &ModelBackend {
        self.stage.scorer()
    }

    /// The end of a run, after its last [`Sink::flush`]: scores anything
    /// still waiting (as `flush` does), then publishes a last fleet and
    /// health snapshot at the sink's clock, covering the period since the
    /// previous snapshot, and waits for every write. Without it the
    /// predictions made since the last periodic snapshot would never reach
    /// the metrics.
    pub async fn finish(&mut self) -> Result<()> {
        self.flush().await?;
        self.publish_snapshot().await
    }

    /// [`ScoringSink::finish`] without scoring what is still waiting: the
    /// fleet, health and model-quality snapshot as things stand, and every
    /// write waited for. For a caller that has flushed already and must
    /// publish even when that flush failed: the Lambda function after each
    /// invocation, whose failed model calls are counted in this snapshot
    /// (`PredictionFailures`), where `finish` would call the failing model
    /// again and publish nothing.
    pub async fn publish_snapshot(&mut self) -> Result<()> {
        let mut scored = Scored::default();
        self.stage.snapshot_now(self.clock, &mut scored);
        self.handle(scored).await?;
        while !self.jobs.is_empty() {
            self.join_one().await?;
        }
        Ok(())
    }

    /// [`ScoringSink::publish_snapshot`] stamped with the wall clock if it
    /// is later than the sink's: the Lambda's, after each invocation. Its
    /// clock follows the records' creation times, and while they lag (a
    /// backlog caught up, a stream read again from its start) every
    /// snapshot of a warm environment was stamped with its cold start's
    /// minute, out of the alarms' 5-minute periods (a review, 2026-12-06).
    pub async fn publish_snapshot_now(&mut self) -> Result<()> {
        self.clock = self.clock.max(wall_clock_ms());
        self.publish_snapshot().await
    }

    /// Counts an invocation the caller failed (a Lambda batch answered
    /// with failed records, or failed as a whole) in the `Errors` health
    /// metric: such an answer is no Lambda error, and a stack whose every
    /// batch failed on a table it cannot write published `Errors` 0.
    pub fn count_failed_invocation(&self) {
        self.health.error();
    }

    /// The model's realised quality so far (see
    /// [`ScoringStage::model_quality`]).
    pub fn model_quality(&self) -> Option<pulse_operators::scoring::ModelQuality> {
        self.stage.model_quality()
    }

    /// Vectors waiting to be scored.
    pub fn pending(&self) -> usize {
        self.stage.pending()
    }

    /// What the sink did so far.
    pub fn stats(&self) -> SinkStats {
        let stage = self.stage.stats();
        let backend = self.stage.scorer().counts();
        let writes = self.out.predictions.as_ref().map(PredictionWriter::stats).unwrap_or_default();
        let alert_retries = self.out.alerts.as_ref().map_or(0, |a| a.stats().1);
        let dlq_retries = self.out.dead_letter_queue.as_ref().map_or(0, |q| q.stats().2);
        SinkStats {
            model_calls: stage.model_calls,
            model_rows: stage.model_rows,
            model_failures: stage.model_failures,
            predictions: stage.predictions,
            predictions_written: writes.written,
            predictions_stale: writes.stale,
            alert_states_read: writes.states_read,
            customers_read: writes.customers_read,
            anchors_written: writes.anchors_written,
            memories_unreadable: self.stats.memories_unreadable + writes.unreadable,
            fallback_rows: backend.fallback_rows,
            retries: backend.retries + writes.retries + alert_retries + dlq_retries,
            breaker_opened: backend.breaker_opened,
            metrics_failed: self.metrics_failed.load(std::sync::atomic::Ordering::Relaxed),
            ..self.stats
        }
    }

    /// Adds the time since `started` to the scoring time when the step
    /// called the model (`calls` = model calls before it).
    fn account(&mut self, calls: u64, started: Instant) {
        if self.stage.stats().model_calls > calls {
            self.scoring_ms += started.elapsed().as_secs_f64() * 1000.0;
        }
    }

    /// Alerts, prediction writes and metrics of a step.
    async fn handle(&mut self, scored: Scored) -> Result<()> {
        let Scored { predictions, metrics, .. } = scored;
        if !predictions.is_empty() {
            self.restore_alert_states(&predictions).await?;
            let mut records = Vec::with_capacity(predictions.len());
            let mut messages = Vec::new();
            let mut anchors = Vec::new();
            for prediction in predictions {
                let alert = self.alerts.observe(&prediction);
                if let Some(alert) = &alert {
                    messages.push(AlertMessage::new(alert, &prediction));
                }
                // The memory after the step (a later prediction of the
                // customer in the step carries the same bytes); the anchors
                // come only when they changed since last returned, so once.
                let memory = self.stage.memory_to_store(&prediction.customer_id).map(|m| {
                    if let Some(bytes) = m.anchors {
                        let (customer_id, as_of) = (prediction.customer_id.clone(), prediction.as_of);
                        anchors.push(AnchorsRecord { customer_id, as_of, anchors: bytes });
                    }
                    m.latest
                });
                records.push(PredictionRecord {
                    alert_armed: self.alerts.armed(prediction.customer_id.as_str()),
                    alert_arriving: self.alerts.arriving(prediction.customer_id.as_str()),
                    alerted: alert.is_some(),
                    prediction,
                    memory,
                });
            }
            if !messages.is_empty() {
                match &self.out.alerts {
                    Some(publisher) => publisher.publish(&messages).await?,
                    None => {
                        for m in &messages {
                            tracing::info!(customer = %m.customer_id, risk = m.churn_risk_14d, reason = %m.reason, "alert (no topic configured)");
                        }
                    }
                }
                self.stats.alerts += messages.len() as u64;
            }
            if let Some(writer) = &self.out.predictions {
                // Each step's writes start when the previous step's are done,
                // so one customer's predictions are written in order.
                let writer = writer.clone();
                let (done, done_rx) = tokio::sync::oneshot::channel::<()>();
                let previous = self.prediction_writes.replace(done_rx);
                self.spawn(async move {
                    if let Some(previous) = previous {
                        // An error of the previous step reaches the sink through its own task.
                        let _ = previous.await;
                    }
                    let mut written = writer.write(records).await;
                    if written.is_ok() && !anchors.is_empty() {
                        written = writer.write_anchors(anchors).await;
                    }
                    let _ = done.send(());
                    written
                })
                .await?;
            }
        }
        for snapshot in metrics {
            self.publish_metrics(snapshot).await?;
        }
        Ok(())
    }

    /// Reads back the customers of `vectors` the stage does not know (see
    /// the [module docs](self)), before they are scored.
    async fn restore_customers(&mut self, vectors: &[FeatureVector]) -> Result<()> {
        let Some(writer) = &self.out.predictions else { return Ok(()) };
        let mut seen = HashSet::new();
        let unknown: Vec<CustomerId> = vectors
            .iter()
            .map(|v| &v.customer_id)
            .filter(|c| !self.stage.knows(c) && !self.asked.contains(*c) && seen.insert(*c))
            .cloned()
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        let stored = writer.customers(&unknown).await?;
        // Those without a stored prediction are asked once, until scored.
        if self.asked.len() > ASKED_MAX {
            self.asked.clear();
        }
        self.asked.extend(unknown);
        for StoredCustomer { state, scores, model, memory, anchors } in stored {
            let customer = state.customer_id.clone();
            let stored =
                Stored { as_of: state.as_of, scores, model, latest: memory.as_deref(), anchors: anchors.as_deref() };
            if let Err(e) = self.stage.restore(customer.clone(), stored) {
                self.stats.memories_unreadable += 1;
                tracing::warn!(error = %e, "a stored customer memory cannot be read: the customer starts afresh");
            }
            if !self.alerts.knows(customer.as_str()) {
                self.alerts.restore(customer, state.armed, state.arriving, state.emission);
            }
        }
        Ok(())
    }

    /// Loads the stored alert state of unknown customers at elevated risk.
    async fn restore_alert_states(&mut self, predictions: &[Prediction]) -> Result<()> {
        let Some(writer) = &self.out.predictions else { return Ok(()) };
        let mut seen = HashSet::new();
        let unknown: Vec<CustomerId> = predictions
            .iter()
            .filter(|p| p.scores.churn_risk_14d >= self.rearm_below && !self.alerts.knows(p.customer_id.as_str()))
            .filter(|p| seen.insert(p.customer_id.clone()))
            .map(|p| p.customer_id.clone())
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        for state in writer.alert_states(&unknown).await? {
            self.alerts.restore(state.customer_id, state.armed, state.arriving, state.emission);
        }
        Ok(())
    }

    async fn publish_metrics(&mut self, snapshot: MetricsSnapshot) -> Result<()> {
        let totals = self.stats();
        let (records, iterator_age_ms, source_errors) = self.health.take();
        let before = self.period.totals;
        let health = HealthSnapshot {
            period_ms: self.period.at.map_or(self.config.scoring.metrics_interval_ms, |at| (snapshot.at - at).max(1)),
            records,
            vectors: totals.vectors - before.vectors,
            iterator_age_ms,
            model_calls: totals.model_calls - before.model_calls,
            model_rows: totals.model_rows - before.model_rows,
            scoring_ms: self.scoring_ms - self.period.scoring_ms,
            pending: self.stage.pending() as u64,
            predictions_written: totals.predictions_written - before.predictions_written,
            predictions_stale: totals.predictions_stale - before.predictions_stale,
            alerts: totals.alerts - before.alerts,
            dead_letters: totals.dead_letters - before.dead_letters,
            retries: totals.retries - before.retries,
            fallback_rows: totals.fallback_rows - before.fallback_rows,
            errors: totals.model_failures - before.model_failures + source_errors,
        };
        self.period = Period { at: Some(snapshot.at), totals, scoring_ms: self.scoring_ms };
        for alarm in snapshot.alarms.iter().filter(|a| !self.in_breach.contains(&a.name)) {
            tracing::warn!(alarm = alarm.name, message = %alarm.message, "fleet alarm in breach");
        }
        for name in self.in_breach.iter().filter(|n| !snapshot.alarms.iter().any(|a| a.name == **n)) {
            tracing::info!(alarm = name, "fleet alarm no longer in breach");
        }
        self.in_breach = snapshot.alarms.iter().map(|a| a.name).collect();
        let publisher = self.out.metrics.clone();
        let (fleet_ns, health_ns) = (self.out.fleet_namespace.clone(), self.out.health_namespace.clone());
        let quality_ns = self.out.quality_namespace.clone();
        let failed = std::sync::Arc::clone(&self.metrics_failed);
        self.stats.metrics_published += 1;
        self.spawn(async move {
            let put = async {
                publisher.publish(&fleet_ns, snapshot.at, &fleet_data(&snapshot)).await?;
                publisher.publish(&health_ns, snapshot.at, &health.data()).await?;
                for (head, data) in quality_data(&snapshot) {
                    publisher.publish_with(&quality_ns, snapshot.at, Some((HEAD_DIMENSION, head)), &data).await?;
                }
                anyhow::Ok(())
            };
            // Metrics are how pulse is watched, not what it delivers: a
            // CloudWatch outage ended a consumer within seconds (a review,
            // 2026-12-06). Said and counted; the snapshot is dropped.
            if let Err(e) = put.await {
                failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::warn!(error = format!("{e:#}"), at = snapshot.at, "a metrics snapshot was dropped");
            }
            Ok(())
        })
        .await
    }

    /// Starts a background write, first waiting for one if too many are out.
    async fn spawn(&mut self, job: impl std::future::Future<Output = Result<()>> + Send + 'static) -> Result<()> {
        while self.jobs.len() >= self.config.max_pending_writes {
            self.join_one().await?;
        }
        self.jobs.spawn(job);
        Ok(())
    }

    async fn join_one(&mut self) -> Result<()> {
        match self.jobs.join_next().await {
            Some(Ok(result)) => result,
            Some(Err(e)) => Err(anyhow!("a write task stopped: {e}")),
            None => Ok(()),
        }
    }

    /// Surfaces the errors of writes that already finished.
    fn reap(&mut self) -> Result<()> {
        while let Some(done) = self.jobs.try_join_next() {
            done.map_err(|e| anyhow!("a write task stopped: {e}"))??;
        }
        Ok(())
    }

    /// Dead letters to the file now, to the queue at the next `flush`
    /// (counted then: the `DeadLetters` metric counts each once).
    async fn send_dead_letters(&mut self, dead: Vec<pulse_runtime::process::DeadLetter>) -> Result<()> {
        if dead.is_empty() {
            return Ok(());
        }
        if let Some(file) = self.out.dead_letter_file.as_mut() {
            file.write(&dead).await?;
        }
        match self.out.dead_letter_queue {
            Some(_) => self.dead_for_queue.extend(dead),
            None => {
                self.stats.dead_letters += dead.len() as u64;
                if self.out.dead_letter_file.is_none() {
                    for d in &dead {
                        tracing::warn!(code = d.invalid.reason.code(), reason = %d.invalid.reason, "dead letter (no queue or file configured)");
                    }
                }
            }
        }
        Ok(())
    }

    /// The dead letters waiting for the queue, once every other write of
    /// the steps before is done: a step whose predictions were not stored
    /// is delivered again, and its dead letters are made again then.
    async fn send_dead_letters_to_queue(&mut self) -> Result<()> {
        let Some(queue) = self.out.dead_letter_queue.clone() else { return Ok(()) };
        if self.dead_for_queue.is_empty() {
            return Ok(());
        }
        let dead = std::mem::take(&mut self.dead_for_queue);
        queue.send(&dead).await?;
        self.stats.dead_letters += dead.len() as u64;
        Ok(())
    }

    /// `result`, the dead letters waiting for the queue dropped if it is an
    /// error: the caller will not acknowledge their records, which are
    /// delivered again (see [`ScoringSink::dead_for_queue`]).
    fn or_drop_dead_letters<T>(&mut self, result: Result<T>) -> Result<T> {
        if result.is_err() {
            self.dead_for_queue.clear();
        }
        result
    }
}

impl Sink for ScoringSink {
    async fn send(&mut self, produced: Produced) -> Result<()> {
        let sent = self.send_produced(produced).await;
        self.or_drop_dead_letters(sent)
    }

    async fn tick(&mut self, now_ms: i64) -> Result<()> {
        let ticked = self.tick_at(now_ms).await;
        self.or_drop_dead_letters(ticked)
    }

    /// Forgets the customers' alert state, so that their next predictions
    /// read the stored one back (another environment may have alerted or
    /// re-armed them since). The stage's memory of them (latest prediction,
    /// anchors, ring) is kept: it feeds reasons and metrics, not alerts.
    async fn forget(&mut self, customers: Vec<String>) -> Result<()> {
        for customer in customers {
            if self.alerts.forget(&customer) {
                self.stats.alert_states_forgotten += 1;
            }
            self.asked.remove(customer.as_str());
        }
        Ok(())
    }

    fn observe_source(&mut self, records: u64, iterator_age_ms: Option<i64>) {
        self.health.records(records);
        if let Some(age) = iterator_age_ms {
            self.health.iterator_age_ms(age.max(0) as u64);
        }
    }

    async fn flush(&mut self) -> Result<()> {
        let flushed = self.flush_all().await;
        self.or_drop_dead_letters(flushed)
    }
}

impl ScoringSink {
    async fn send_produced(&mut self, produced: Produced) -> Result<()> {
        self.reap()?;
        let Produced { vectors, dead } = produced;
        self.send_dead_letters(dead).await?;
        if !vectors.is_empty() {
            self.restore_customers(&vectors).await?;
            // Only for a customer the stage has not scored: one it knows but
            // whose alert state was forgotten reads the stored state back.
            for v in vectors.iter().filter(|v| is_new_customer(&v.features) && !self.stage.knows(&v.customer_id)) {
                // Its first prediction may be of a later vector this one is
                // coalesced into: judged, not a baseline (see `Alerts`).
                self.alerts.arrive(&v.customer_id, v.emission());
            }
            self.stats.vectors += vectors.len() as u64;
            let (calls, started, mut scored) = (self.stage.stats().model_calls, Instant::now(), Scored::default());
            self.stage.offer(vectors, self.clock, &mut scored).await?;
            self.account(calls, started);
            self.handle(scored).await?;
        }
        Ok(())
    }

    async fn tick_at(&mut self, now_ms: i64) -> Result<()> {
        self.reap()?;
        self.clock = self.clock.max(now_ms);
        let (calls, started, mut scored) = (self.stage.stats().model_calls, Instant::now(), Scored::default());
        self.stage.release(self.clock, &mut scored).await?;
        self.account(calls, started);
        self.handle(scored).await
    }

    async fn flush_all(&mut self) -> Result<()> {
        let started = Instant::now();
        let wait = Backoff { base: Duration::from_millis(200), cap: Duration::from_secs(5), max_attempts: u32::MAX };
        let mut retry = 0;
        loop {
            let (calls, started_step, mut scored) = (self.stage.stats().model_calls, Instant::now(), Scored::default());
            let done = self.stage.drain(self.clock, &mut scored).await?;
            self.account(calls, started_step);
            self.handle(scored).await?;
            if done {
                break;
            }
            let waited = started.elapsed();
            let (limit, bound) = match self.hold_deadline.map(|d| d.saturating_duration_since(started)) {
                Some(until) if until < self.config.hold_timeout => (until, "the invocation's deadline"),
                _ => (self.config.hold_timeout, "the hold timeout"),
            };
            if waited >= limit {
                bail!(
                    "the model is still failing after {:.0} s ({bound}); {} vectors are waiting to be scored (none were made up): do not checkpoint",
                    waited.as_secs_f64(),
                    self.stage.pending()
                );
            }
            retry += 1;
            let delay = wait.delay(retry, &mut rand::rng()).max(Duration::from_millis(50));
            tokio::time::sleep(delay.min(limit - waited)).await;
        }
        while !self.jobs.is_empty() {
            self.join_one().await?;
        }
        self.send_dead_letters_to_queue().await?;
        if let Some(file) = self.out.dead_letter_file.as_mut() {
            file.sync().await?;
        }
        Ok(())
    }
}

fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}
