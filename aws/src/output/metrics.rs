//! Metrics out: the §6 fleet metrics and the pipeline's health, to
//! CloudWatch by `PutMetricData` (the long-running consumer) or as Embedded
//! Metric Format log lines on stdout (the Lambda, where CloudWatch Logs turns
//! them into metrics without an API call per invocation).
//!
//! * Fleet ([`fleet_data`]), namespace `IOpsDashboard/Predictions` by
//!   default: the seven §6 metrics plus `PredictionFailures` (model calls
//!   that failed in the period: the current system's fourth alarm).
//! * Health ([`HealthSnapshot::data`]), namespace `pulse/Pipeline` by
//!   default: records/s and vectors/s in, the largest iterator age (lag)
//!   reported by the source, scoring latency and rows per model call,
//!   vectors waiting to be scored, predictions written and stale, alerts,
//!   dead letters, retries, rows scored by the fallback, errors.
//!
//! * Model quality ([`quality_data`]), namespace `pulse/ModelQuality` by
//!   default, dimension `Head` (`churn_risk_14d`, `churn_risk_30d`): the
//!   realised AUC, Brier score, calibration error, label rate, mean score and
//!   resolved predictions of the monitor's window
//!   (`pulse_operators::scoring::monitor`), once a stream day.
//!
//! The first two go out together at every fleet snapshot of the scoring
//! stage (every 60 s by default), stamped with the snapshot's time; model
//! quality with the snapshots that carry it.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use anyhow::{anyhow, Result};
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
use serde::Serialize;

use crate::retry::{classify, Backoff};
use pulse_operators::scoring::FleetMetric;
use pulse_runtime::scoring::MetricsSnapshot;

/// The default namespace of the pipeline's health metrics.
pub const HEALTH_NAMESPACE: &str = "pulse/Pipeline";

/// One metric value.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Datum {
    /// The metric's name.
    pub name: &'static str,
    /// Its value.
    pub value: f64,
    /// A CloudWatch unit: `Count`, `Count/Second`, `Milliseconds` or `None`.
    pub unit: &'static str,
}

/// The §6 fleet metrics of a snapshot, and `PredictionFailures`.
pub fn fleet_data(snapshot: &MetricsSnapshot) -> Vec<Datum> {
    let empty = snapshot.metrics.total_customers_processed == 0;
    let mut out: Vec<Datum> = snapshot
        .metrics
        .cloudwatch_metrics()
        .iter()
        // An average over no customer is no number: published as 0 by an
        // environment that holds none yet (a Lambda's fresh one, a
        // scheduled run with nobody due), it set off the low-health alarm
        // (a review, 2026-12-06), as pulse's own evaluation never does.
        .filter(|m| {
            !(empty
                && [FleetMetric::AverageHealthScore.name(), FleetMetric::AverageChurnRisk14d.name()].contains(&m.name))
        })
        .map(|m| Datum { name: m.name, value: m.value, unit: m.unit })
        .collect();
    let failures = FleetMetric::PredictionFailures;
    out.push(Datum { name: failures.name(), value: snapshot.prediction_failures as f64, unit: failures.unit() });
    out
}

/// The name of the model-quality metrics' one dimension.
pub const HEAD_DIMENSION: &str = "Head";

/// The model-quality data of a snapshot, one group per head (the value of
/// the [`HEAD_DIMENSION`]); empty when the snapshot carries none.
pub fn quality_data(snapshot: &MetricsSnapshot) -> Vec<(&'static str, Vec<Datum>)> {
    let Some(q) = &snapshot.model_quality else { return Vec::new() };
    let mut groups: Vec<(&'static str, Vec<Datum>)> = Vec::new();
    for (head, m) in q.cloudwatch_metrics() {
        let datum = Datum { name: m.name, value: m.value, unit: m.unit };
        match groups.iter_mut().find(|(h, _)| *h == head.name()) {
            Some((_, data)) => data.push(datum),
            None => groups.push((head.name(), vec![datum])),
        }
    }
    groups
}

/// Counters a source feeds (records read, lag) and the sink reads when it
/// publishes. Cheap to clone and to update from any task.
#[derive(Debug, Clone, Default)]
pub struct HealthRecorder {
    inner: Arc<HealthCounters>,
}

#[derive(Debug, Default)]
struct HealthCounters {
    records: AtomicU64,
    iterator_age_ms: AtomicU64,
    errors: AtomicU64,
}

impl HealthRecorder {
    /// `n` more records read from the stream.
    pub fn records(&self, n: u64) {
        self.inner.records.fetch_add(n, Relaxed);
    }

    /// A shard's iterator age (`MillisBehindLatest`, or now − the newest
    /// record's creation time): the largest in a period is published.
    pub fn iterator_age_ms(&self, age_ms: u64) {
        self.inner.iterator_age_ms.fetch_max(age_ms, Relaxed);
    }

    /// An error the source recovered from (a throttled read, an expired iterator).
    pub fn error(&self) {
        self.inner.errors.fetch_add(1, Relaxed);
    }

    /// Takes the counts of the period: (records, largest iterator age, errors).
    pub(crate) fn take(&self) -> (u64, u64, u64) {
        (
            self.inner.records.swap(0, Relaxed),
            self.inner.iterator_age_ms.swap(0, Relaxed),
            self.inner.errors.swap(0, Relaxed),
        )
    }
}

/// The pipeline's health over one period.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct HealthSnapshot {
    /// Length of the period, ms.
    pub period_ms: i64,
    /// Records read (as reported by the source).
    pub records: u64,
    /// Vectors received.
    pub vectors: u64,
    /// The largest iterator age reported, ms.
    pub iterator_age_ms: u64,
    /// Model calls made.
    pub model_calls: u64,
    /// Rows sent to the model.
    pub model_rows: u64,
    /// Time spent in model calls, ms (wall time of the scoring steps that called the model).
    pub scoring_ms: f64,
    /// Vectors waiting to be scored at the end of the period.
    pub pending: u64,
    /// Predictions stored.
    pub predictions_written: u64,
    /// Predictions not stored because a newer one was.
    pub predictions_stale: u64,
    /// Alerts published.
    pub alerts: u64,
    /// Dead letters.
    pub dead_letters: u64,
    /// Retries of any call (endpoint, DynamoDB, SNS, SQS).
    pub retries: u64,
    /// Rows scored by the fallback model.
    pub fallback_rows: u64,
    /// Failed model calls, errors reported by the source, and invocations
    /// the Lambda failed ([`crate::output::sink::ScoringSink::count_failed_invocation`]).
    pub errors: u64,
}

impl HealthSnapshot {
    /// The CloudWatch data, one datum per [`HealthMetric`].
    pub fn data(&self) -> Vec<Datum> {
        let seconds = (self.period_ms.max(1) as f64) / 1000.0;
        let per_call = |x: f64| if self.model_calls == 0 { 0.0 } else { x / self.model_calls as f64 };
        HealthMetric::ALL
            .iter()
            .map(|&m| {
                let value = match m {
                    HealthMetric::RecordsPerSecond => self.records as f64 / seconds,
                    HealthMetric::VectorsPerSecond => self.vectors as f64 / seconds,
                    HealthMetric::IteratorAgeMs => self.iterator_age_ms as f64,
                    HealthMetric::ScoringLatencyMs => per_call(self.scoring_ms),
                    HealthMetric::RowsPerModelCall => per_call(self.model_rows as f64),
                    HealthMetric::ModelCalls => self.model_calls as f64,
                    HealthMetric::PendingVectors => self.pending as f64,
                    HealthMetric::PredictionsWritten => self.predictions_written as f64,
                    HealthMetric::StalePredictions => self.predictions_stale as f64,
                    HealthMetric::AlertsPublished => self.alerts as f64,
                    HealthMetric::DeadLetters => self.dead_letters as f64,
                    HealthMetric::Retries => self.retries as f64,
                    HealthMetric::FallbackRows => self.fallback_rows as f64,
                    HealthMetric::Errors => self.errors as f64,
                };
                Datum { name: m.name(), value, unit: m.unit() }
            })
            .collect()
    }
}

/// The names of the pipeline's health metrics in [`HEALTH_NAMESPACE`]: one
/// definition, for the code that publishes them and every reader (the
/// deployment's alarms and dashboard, the tests).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HealthMetric {
    /// Records read per second of the period.
    RecordsPerSecond,
    /// Vectors received per second of the period.
    VectorsPerSecond,
    /// The largest iterator age reported in the period.
    IteratorAgeMs,
    /// Mean wall time of a scoring step that called the model.
    ScoringLatencyMs,
    /// Mean rows per model call.
    RowsPerModelCall,
    /// Model calls made.
    ModelCalls,
    /// Vectors waiting to be scored at the end of the period.
    PendingVectors,
    /// Predictions stored.
    PredictionsWritten,
    /// Predictions not stored because a newer one was.
    StalePredictions,
    /// Alerts published.
    AlertsPublished,
    /// Dead letters.
    DeadLetters,
    /// Retries of any call.
    Retries,
    /// Rows scored by the fallback model (the endpoint was down).
    FallbackRows,
    /// Failed model calls, errors reported by the source, and invocations
    /// the Lambda failed.
    Errors,
}

impl HealthMetric {
    /// Every health metric, in publishing order.
    pub const ALL: [HealthMetric; 14] = [
        HealthMetric::RecordsPerSecond,
        HealthMetric::VectorsPerSecond,
        HealthMetric::IteratorAgeMs,
        HealthMetric::ScoringLatencyMs,
        HealthMetric::RowsPerModelCall,
        HealthMetric::ModelCalls,
        HealthMetric::PendingVectors,
        HealthMetric::PredictionsWritten,
        HealthMetric::StalePredictions,
        HealthMetric::AlertsPublished,
        HealthMetric::DeadLetters,
        HealthMetric::Retries,
        HealthMetric::FallbackRows,
        HealthMetric::Errors,
    ];

    /// The CloudWatch name.
    pub const fn name(self) -> &'static str {
        match self {
            HealthMetric::RecordsPerSecond => "RecordsPerSecond",
            HealthMetric::VectorsPerSecond => "VectorsPerSecond",
            HealthMetric::IteratorAgeMs => "IteratorAgeMs",
            HealthMetric::ScoringLatencyMs => "ScoringLatencyMs",
            HealthMetric::RowsPerModelCall => "RowsPerModelCall",
            HealthMetric::ModelCalls => "ModelCalls",
            HealthMetric::PendingVectors => "PendingVectors",
            HealthMetric::PredictionsWritten => "PredictionsWritten",
            HealthMetric::StalePredictions => "StalePredictions",
            HealthMetric::AlertsPublished => "AlertsPublished",
            HealthMetric::DeadLetters => "DeadLetters",
            HealthMetric::Retries => "Retries",
            HealthMetric::FallbackRows => "FallbackRows",
            HealthMetric::Errors => "Errors",
        }
    }

    /// The CloudWatch unit.
    pub const fn unit(self) -> &'static str {
        match self {
            HealthMetric::RecordsPerSecond | HealthMetric::VectorsPerSecond => "Count/Second",
            HealthMetric::IteratorAgeMs | HealthMetric::ScoringLatencyMs => "Milliseconds",
            _ => "Count",
        }
    }
}

/// One Embedded Metric Format line (no dimensions): the directive under
/// `_aws` and each metric's value as a top-level member.
pub fn emf_line(namespace: &str, timestamp_ms: i64, data: &[Datum]) -> String {
    emf_line_with(namespace, timestamp_ms, None, data)
}

/// [`emf_line`] with one dimension (name, value): declared in the directive
/// and carried as a top-level member.
pub fn emf_line_with(namespace: &str, timestamp_ms: i64, dimension: Option<(&str, &str)>, data: &[Datum]) -> String {
    let mut root = serde_json::Map::new();
    let metrics: Vec<serde_json::Value> =
        data.iter().map(|d| serde_json::json!({"Name": d.name, "Unit": d.unit})).collect();
    let dimensions = match dimension {
        Some((name, _)) => serde_json::json!([[name]]),
        None => serde_json::json!([[]]),
    };
    root.insert(
        "_aws".into(),
        serde_json::json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{"Namespace": namespace, "Dimensions": dimensions, "Metrics": metrics}],
        }),
    );
    if let Some((name, value)) = dimension {
        root.insert(name.into(), value.into());
    }
    for d in data {
        // Non-finite values cannot be JSON numbers; CloudWatch refuses them too.
        let value = serde_json::Number::from_f64(d.value).map_or(serde_json::Value::Null, serde_json::Value::Number);
        root.insert(d.name.into(), value);
    }
    serde_json::Value::Object(root).to_string()
}

/// Where metrics go.
#[derive(Debug, Clone)]
pub enum MetricsOut {
    /// `PutMetricData`.
    CloudWatch(aws_sdk_cloudwatch::Client),
    /// EMF lines on stdout (Lambda).
    Emf,
    /// Nowhere.
    Off,
}

/// Publishes data to a namespace.
#[derive(Debug, Clone)]
pub struct MetricsPublisher {
    out: MetricsOut,
    retry: Backoff,
}

/// `PutMetricData` takes up to 1,000 data a call; pulse sends far fewer.
const MAX_DATA_PER_CALL: usize = 1000;

impl MetricsPublisher {
    /// A publisher to `out`.
    pub fn new(out: MetricsOut) -> MetricsPublisher {
        MetricsPublisher { out, retry: Backoff::default() }
    }

    /// Publishes `data` at `timestamp_ms` in `namespace`; non-finite values are left out.
    pub async fn publish(&self, namespace: &str, timestamp_ms: i64, data: &[Datum]) -> Result<()> {
        self.publish_with(namespace, timestamp_ms, None, data).await
    }

    /// [`MetricsPublisher::publish`] with one dimension (name, value) on every datum.
    pub async fn publish_with(
        &self,
        namespace: &str,
        timestamp_ms: i64,
        dimension: Option<(&str, &str)>,
        data: &[Datum],
    ) -> Result<()> {
        let data: Vec<&Datum> = data.iter().filter(|d| d.value.is_finite()).collect();
        match &self.out {
            MetricsOut::Off => Ok(()),
            MetricsOut::Emf => {
                let owned: Vec<Datum> = data.into_iter().cloned().collect();
                println!("{}", emf_line_with(namespace, timestamp_ms, dimension, &owned));
                Ok(())
            }
            MetricsOut::CloudWatch(client) => {
                for chunk in data.chunks(MAX_DATA_PER_CALL) {
                    let datums =
                        chunk
                            .iter()
                            .map(|d| {
                                MetricDatum::builder()
                                    .metric_name(d.name)
                                    .value(d.value)
                                    .unit(StandardUnit::from(d.unit))
                                    .timestamp(DateTime::from_millis(timestamp_ms))
                                    .set_dimensions(dimension.map(|(name, value)| {
                                        vec![Dimension::builder().name(name).value(value).build()]
                                    }))
                                    .build()
                            })
                            .collect::<Vec<_>>();
                    let mut attempt = 0;
                    loop {
                        attempt += 1;
                        let sent = client
                            .put_metric_data()
                            .namespace(namespace)
                            .set_metric_data(Some(datums.clone()))
                            .send()
                            .await;
                        match sent.map_err(|e| classify(&e)) {
                            Ok(_) => break,
                            Err(failure) if failure.is_retryable() && self.retry.may_retry(attempt) => {
                                self.retry.wait_after(&failure, attempt).await
                            }
                            Err(failure) => {
                                return Err(anyhow!(
                                    "cannot put metrics in namespace {namespace}: {} (attempt {attempt})",
                                    failure.reason()
                                ))
                            }
                        }
                    }
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pulse_operators::scoring::monitor::NAMESPACE as NAMESPACE_QUALITY;
    use pulse_operators::scoring::FleetMetrics;

    #[test]
    fn emf_lines_declare_every_metric_and_carry_its_value() {
        let snapshot = MetricsSnapshot {
            at: 1_700_000_000_000,
            metrics: FleetMetrics {
                total_customers_processed: 10,
                high_churn_risk_count: 2,
                average_churn_risk_14d: 0.25,
                average_health_score: 71.5,
                thriving_customers: 3,
                healthy_customers: 4,
                at_risk_customers: 1,
                churned_customers: 2,
            },
            alarms: vec![],
            prediction_failures: 1,
            model_quality: None,
        };
        assert!(quality_data(&snapshot).is_empty(), "no model quality in this snapshot");
        let data = fleet_data(&snapshot);
        let line = emf_line("IOpsDashboard/Predictions", snapshot.at, &data);
        assert!(!line.contains('\n'), "one line");
        let json: serde_json::Value = serde_json::from_str(&line).unwrap();
        let aws = &json["_aws"];
        assert_eq!(aws["Timestamp"], 1_700_000_000_000i64);
        let directive = &aws["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "IOpsDashboard/Predictions");
        assert_eq!(directive["Dimensions"], serde_json::json!([[]]));
        let names: Vec<&str> =
            directive["Metrics"].as_array().unwrap().iter().map(|m| m["Name"].as_str().unwrap()).collect();
        assert_eq!(
            names,
            [
                "TotalCustomersProcessed",
                "HighChurnRiskCount",
                "AverageChurnRisk14d",
                "AverageHealthScore",
                "ThrivingCustomers",
                "AtRiskCustomers",
                "ChurnedCustomers",
                "PredictionFailures"
            ]
        );
        // Every declared metric is a top-level number.
        for name in names {
            assert!(json[name].is_number(), "{name}");
        }
        assert_eq!(json["AverageHealthScore"], 71.5);
        assert_eq!(json["PredictionFailures"], 1.0);
        assert_eq!(directive["Metrics"][0]["Unit"], "Count");

        // No customer: no averages (0 set off the low-health alarm), the counts still.
        let empty = MetricsSnapshot { metrics: FleetMetrics::default(), ..snapshot };
        let names: Vec<&str> = fleet_data(&empty).iter().map(|d| d.name).collect();
        assert!(!names.contains(&"AverageHealthScore") && !names.contains(&"AverageChurnRisk14d"), "{names:?}");
        assert!(names.contains(&"TotalCustomersProcessed") && names.contains(&"PredictionFailures"), "{names:?}");
    }

    #[test]
    fn model_quality_goes_out_per_head_with_its_dimension() {
        use pulse_operators::scoring::{Monitor, MonitorConfig};
        const DAY: i64 = pulse_schemas::DAY_MS;
        let mut monitor = Monitor::new(MonitorConfig::default()).unwrap();
        // Enough customers a day for the window to publish its figures.
        let customers = pulse_operators::scoring::monitor::MIN_CUSTOMERS_TO_PUBLISH as usize;
        let started: Vec<_> = (0..customers).map(|_| monitor.start(20_000 * DAY).unwrap()).collect();
        for day in 20_001..20_020 {
            for (i, &c) in started.iter().enumerate() {
                if i % 2 == 0 {
                    monitor.observe(c, day * DAY + 1, Some(day * DAY + 1), Some((0.2, 0.3)));
                } else {
                    monitor.observe(c, day * DAY + 1, None, Some((0.7, 0.8)));
                }
            }
        }
        let snapshot = MetricsSnapshot {
            at: 20_020 * DAY,
            metrics: FleetMetrics::default(),
            alarms: vec![],
            prediction_failures: 0,
            model_quality: monitor.quality(),
        };
        let groups = quality_data(&snapshot);
        assert_eq!(groups.iter().map(|g| g.0).collect::<Vec<_>>(), ["churn_risk_14d", "churn_risk_30d"]);
        let auc = groups[0].1.iter().find(|d| d.name == "RealisedAuc").unwrap();
        assert_eq!(auc.value, 1.0);
        // No 30-day horizon has closed: only the count goes out.
        assert_eq!(groups[1].1.iter().map(|d| d.name).collect::<Vec<_>>(), ["ResolvedPredictions"]);
        let line = emf_line_with(NAMESPACE_QUALITY, snapshot.at, Some((HEAD_DIMENSION, groups[0].0)), &groups[0].1);
        let json: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(json["_aws"]["CloudWatchMetrics"][0]["Dimensions"], serde_json::json!([["Head"]]));
        assert_eq!(json["_aws"]["CloudWatchMetrics"][0]["Namespace"], "pulse/ModelQuality");
        assert_eq!(json["Head"], "churn_risk_14d");
        assert_eq!(json["RealisedAuc"], 1.0);
    }

    #[test]
    fn health_rates_are_per_second_and_latency_per_call() {
        let h = HealthSnapshot {
            period_ms: 60_000,
            records: 120_000,
            vectors: 60_000,
            model_calls: 10,
            model_rows: 5_000,
            scoring_ms: 250.0,
            ..HealthSnapshot::default()
        };
        let data = h.data();
        let get = |n: &str| data.iter().find(|d| d.name == n).unwrap().value;
        assert_eq!(get("RecordsPerSecond"), 2_000.0);
        assert_eq!(get("VectorsPerSecond"), 1_000.0);
        assert_eq!(get("ScoringLatencyMs"), 25.0);
        assert_eq!(get("RowsPerModelCall"), 500.0);
        let idle = HealthSnapshot::default().data();
        assert!(idle.iter().all(|d| d.value == 0.0), "no division by zero");
    }

    #[test]
    fn the_recorder_keeps_the_largest_age_and_resets_each_period() {
        let r = HealthRecorder::default();
        r.records(5);
        r.records(7);
        r.iterator_age_ms(300);
        r.iterator_age_ms(100);
        r.error();
        assert_eq!(r.take(), (12, 300, 1));
        assert_eq!(r.take(), (0, 0, 0));
    }
}
