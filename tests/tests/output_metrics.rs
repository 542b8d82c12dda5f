//! Fleet and health metrics to CloudWatch (the local server, query
//! protocol): a snapshot every metrics interval of the sink's time and one at
//! the end of a run (`ScoringSink::finish`), the §6 names in their namespace,
//! values readable with GetMetricData.

mod output_support;

use std::time::Duration;

use output_support::*;
use pulse_aws::output::backend::ModelBackend;
use pulse_aws::output::metrics::{HealthMetric, MetricsOut, MetricsPublisher};
use pulse_aws::output::sink::{Destinations, ScoringSink};
use pulse_e2e::unique_name;
use pulse_operators::scoring::FleetMetric;
use pulse_runtime::process::Produced;
use pulse_runtime::sink::Sink;

#[tokio::test]
async fn fleet_and_health_metrics_are_put_every_interval() {
    let sdk = sdk().await;
    let cloudwatch = aws_sdk_cloudwatch::Client::new(&sdk);
    let (fleet_ns, health_ns) = (unique_name("IOpsDashboard/Predictions"), unique_name("pulse/Pipeline"));
    let quality_ns = unique_name("pulse/ModelQuality");
    let out = Destinations {
        metrics: MetricsPublisher::new(MetricsOut::CloudWatch(cloudwatch.clone())),
        fleet_namespace: fleet_ns.clone(),
        health_namespace: health_ns.clone(),
        quality_namespace: quality_ns.clone(),
        ..nowhere()
    };
    // A second of linger: the 12 vectors wait and go in one model call.
    let mut config = sink_config(64, Duration::from_secs(5));
    config.scoring.batch.max_linger_ms = 1_000;
    let mut sink = ScoringSink::new(ModelBackend::Embedded(embedded()), out, config).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let vectors: Vec<_> = (0..12).map(|i| vector(&format!("c{i}"), now, if i < 4 { 40.0 } else { 2.0 })).collect();
    sink.health().records(6_000);
    sink.health().iterator_age_ms(1_500);
    sink.send(Produced { vectors, dead: vec![] }).await.unwrap();
    sink.tick(now + 60_000).await.unwrap();
    sink.flush().await.unwrap();
    assert_eq!(sink.stats().metrics_published, 1, "one snapshot per minute of the sink's time");

    let listed = cloudwatch.list_metrics().namespace(&fleet_ns).send().await.unwrap();
    let mut names: Vec<String> = listed.metrics().iter().filter_map(|m| m.metric_name().map(str::to_owned)).collect();
    names.sort();
    let mut expected: Vec<&str> =
        FleetMetric::SECTION_6.iter().chain(&[FleetMetric::PredictionFailures]).map(|m| m.name()).collect();
    expected.sort_unstable();
    assert_eq!(names, expected);

    let range = (now - 600_000, now + 600_000);
    let value = |namespace: String, name: &'static str| {
        let cloudwatch = cloudwatch.clone();
        async move { metric_values(&cloudwatch, &namespace, name, 60, range).await }
    };
    assert_eq!(value(fleet_ns.clone(), FleetMetric::TotalCustomersProcessed.name()).await, [12.0]);
    assert_eq!(value(fleet_ns.clone(), FleetMetric::HighChurnRiskCount.name()).await, [4.0]);
    assert_eq!(
        value(health_ns.clone(), HealthMetric::RecordsPerSecond.name()).await,
        [100.0],
        "6000 records over 60 s"
    );
    assert_eq!(value(health_ns.clone(), HealthMetric::IteratorAgeMs.name()).await, [1_500.0]);
    assert_eq!(value(health_ns.clone(), HealthMetric::RowsPerModelCall.name()).await, [12.0]);
    assert_eq!(value(health_ns.clone(), HealthMetric::VectorsPerSecond.name()).await, [0.2]);
    assert_eq!(value(health_ns, HealthMetric::PredictionsWritten.name()).await, [0.0], "no table configured");

    // The model monitor starts with the customers' second vectors (a
    // prediction now stands); no horizon has closed, so only the count goes
    // out, once per head, with its dimension.
    let again: Vec<_> = (0..12).map(|i| vector(&format!("c{i}"), now, if i < 4 { 40.0 } else { 2.0 })).collect();
    sink.send(Produced { vectors: again, dead: vec![] }).await.unwrap();
    sink.tick(now + 120_000).await.unwrap();
    sink.flush().await.unwrap();
    let listed = cloudwatch.list_metrics().namespace(&quality_ns).send().await.unwrap();
    let mut heads: Vec<(String, String)> = listed
        .metrics()
        .iter()
        .map(|m| {
            let d = &m.dimensions()[0];
            (m.metric_name().unwrap().to_owned(), format!("{}={}", d.name().unwrap(), d.value().unwrap()))
        })
        .collect();
    heads.sort();
    assert_eq!(
        heads,
        [
            ("ResolvedPredictions".to_owned(), "Head=churn_risk_14d".to_owned()),
            ("ResolvedPredictions".to_owned(), "Head=churn_risk_30d".to_owned())
        ]
    );
}

#[tokio::test]
async fn finish_publishes_the_last_partial_period() {
    let sdk = sdk().await;
    let cloudwatch = aws_sdk_cloudwatch::Client::new(&sdk);
    let (fleet_ns, health_ns) = (unique_name("IOpsDashboard/Predictions"), unique_name("pulse/Pipeline"));
    let out = Destinations {
        metrics: MetricsPublisher::new(MetricsOut::CloudWatch(cloudwatch.clone())),
        fleet_namespace: fleet_ns.clone(),
        health_namespace: health_ns.clone(),
        ..nowhere()
    };
    let mut sink =
        ScoringSink::new(ModelBackend::Embedded(embedded()), out, sink_config(64, Duration::from_secs(5))).unwrap();
    // The sink's time: a minute boundary ahead of the wall clock (which the
    // sink starts from), the run ending 10 s into that minute: no periodic
    // snapshot is due.
    let wall = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let start = wall / 60_000 * 60_000 + 120_000;
    sink.tick(start).await.unwrap();
    let vectors: Vec<_> = (0..5).map(|i| vector(&format!("c{i}"), start, if i < 2 { 40.0 } else { 2.0 })).collect();
    sink.send(Produced { vectors, dead: vec![] }).await.unwrap();
    sink.tick(start + 10_000).await.unwrap();
    sink.flush().await.unwrap();
    assert_eq!(sink.stats().metrics_published, 0, "no interval has passed");
    assert!(cloudwatch.list_metrics().namespace(&fleet_ns).send().await.unwrap().metrics().is_empty());

    sink.finish().await.unwrap();
    assert_eq!(sink.stats().metrics_published, 1, "the end of the run publishes its last period");
    let range = (start - 600_000, start + 600_000);
    let got = metric_values(&cloudwatch, &fleet_ns, FleetMetric::TotalCustomersProcessed.name(), 60, range).await;
    assert_eq!(got, [5.0]);
    let health = cloudwatch.list_metrics().namespace(&health_ns).send().await.unwrap();
    assert!(
        health.metrics().iter().any(|m| m.metric_name() == Some(HealthMetric::PredictionsWritten.name())),
        "{health:?}"
    );
}

/// CloudWatch out of reach: the snapshot is dropped, said and counted, and
/// the sink goes on (a CloudWatch outage ended `pulse run` within seconds,
/// a review, 2026-12-06: monitoring down must not stop scoring).
#[tokio::test]
async fn metrics_that_cannot_be_put_are_dropped_not_fatal() {
    let sdk = sdk().await;
    let unreachable = aws_sdk_cloudwatch::config::Builder::from(&sdk)
        .endpoint_url("http://127.0.0.1:9")
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .build();
    let out = Destinations {
        metrics: MetricsPublisher::new(MetricsOut::CloudWatch(aws_sdk_cloudwatch::Client::from_conf(unreachable))),
        ..nowhere()
    };
    let mut sink =
        ScoringSink::new(ModelBackend::Embedded(embedded()), out, sink_config(64, Duration::from_secs(5))).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    sink.send(Produced { vectors: vec![vector("c", now, 3.0)], dead: vec![] }).await.unwrap();
    sink.tick(now + 60_000).await.expect("a metrics failure is not the sink's");
    sink.finish().await.expect("nor at the end");
    let stats = sink.stats();
    assert_eq!((stats.metrics_published, stats.metrics_failed), (2, 2), "{stats:?}");
    assert_eq!(stats.predictions, 1, "scoring went on");
}
