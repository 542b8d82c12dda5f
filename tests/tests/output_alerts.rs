//! Alerts through the whole sink against the local server: the embedded
//! model scores, the §6 hysteresis decides, SNS publishes (read back from an
//! SQS queue subscribed with raw delivery), the alert state is stored with
//! each prediction, and a restarted sink, given the same records again, does
//! not alert twice; it alerts again only after the customer re-armed.

mod output_support;

use std::time::Duration;

use output_support::*;
use pulse_aws::output::alerts::{AlertMessage, AlertPublisher};
use pulse_aws::output::backend::ModelBackend;
use pulse_aws::output::predictions::PredictionWriter;
use pulse_aws::output::sink::{Destinations, ScoringSink};
use pulse_e2e::unique_name;
use pulse_runtime::process::Produced;
use pulse_runtime::sink::Sink;
use pulse_schemas::FeatureVector;

async fn sink(sdk: &aws_config::SdkConfig, table: &str, topic: &str) -> ScoringSink {
    let out = Destinations {
        predictions: Some(PredictionWriter::new(aws_sdk_dynamodb::Client::new(sdk), table, 8)),
        alerts: Some(AlertPublisher::new(aws_sdk_sns::Client::new(sdk), topic)),
        ..nowhere()
    };
    ScoringSink::new(ModelBackend::Embedded(embedded()), out, sink_config(64, Duration::from_secs(5))).unwrap()
}

async fn alerts_received(sdk: &aws_config::SdkConfig, queue: &str) -> Vec<AlertMessage> {
    let mut got: Vec<AlertMessage> = drain_queue(sdk, queue)
        .await
        .iter()
        .map(|m| serde_json::from_str(m.body().unwrap()).expect("an alert message"))
        .collect();
    got.sort_by(|a, b| a.alert_id.cmp(&b.alert_id));
    got
}

async fn step(sink: &mut ScoringSink, vectors: Vec<FeatureVector>) {
    sink.send(Produced { vectors, dead: vec![] }).await.unwrap();
    sink.flush().await.unwrap();
}

#[tokio::test]
async fn alerts_are_published_once_and_a_restart_does_not_repeat_them() {
    let sdk = sdk().await;
    let table = table(&sdk).await;
    let sns = aws_sdk_sns::Client::new(&sdk);
    let topic = sns.create_topic().name(unique_name("alerts")).send().await.unwrap().topic_arn.unwrap();
    let (queue_url, queue_arn) = queue(&sdk).await;
    sns.subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(&queue_arn)
        .attributes("RawMessageDelivery", "true")
        .send()
        .await
        .unwrap();

    // All calm at first (a first prediction is a baseline, never an
    // alert), then a and b at risk, c still calm.
    let baseline = vec![vector("a", 500, 2.0), vector("b", 500, 2.0), vector("c", 500, 2.0)];
    let first = vec![vector("a", 1_000, 40.0), vector("b", 1_000, 50.0), vector("c", 1_000, 2.0)];
    let mut before = sink(&sdk, &table, &topic).await;
    step(&mut before, baseline).await;
    assert_eq!(alerts_received(&sdk, &queue_url).await, [], "no alert on a first prediction");
    step(&mut before, first.clone()).await;
    let got = alerts_received(&sdk, &queue_url).await;
    let ids: Vec<&str> = got.iter().map(|a| a.alert_id.as_str()).collect();
    assert_eq!(ids, ["a#1000", "b#1000"], "one alert per customer above 0.7");
    let expected = embedded().score_now(&[first[0].features]).unwrap()[0];
    let a = &got[0];
    assert_eq!((a.customer_id.as_str(), a.as_of), ("a", 1_000));
    // (read back with serde_json's default float parser, exact to the last bit or so)
    let close = |x: f64, y: f64| (x - y).abs() <= 1e-12 * y.abs().max(1.0);
    assert!(close(a.churn_risk_14d, expected.churn_risk_14d) && close(a.health_score, expected.health_score));
    assert!(close(a.first_session_success, expected.first_session_success));
    assert!(a.churn_risk_14d > 0.7);
    assert!(a.reason.contains("above 0.7"), "{}", a.reason);
    assert_eq!(a.served_by, "embedded");
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let item = prediction_item(&dynamo, &table, "a").await.unwrap();
    assert_eq!(item.get("alert_armed"), Some(&aws_sdk_dynamodb::types::AttributeValue::Bool(false)));
    assert_eq!(n(&item, "last_alert_as_of"), 1_000.0);
    drop(before);

    // A restart: the records after the last checkpoint come again, and a is
    // still at risk later. The stored state says both already alerted.
    let mut after = sink(&sdk, &table, &topic).await;
    let mut again = first.clone();
    again.push(vector("a", 2_000, 41.0));
    step(&mut after, again).await;
    assert_eq!(alerts_received(&sdk, &queue_url).await, [], "no duplicate alert after the restart");
    assert_eq!(after.stats().customers_read, 3, "every customer read back before it was scored");
    assert_eq!(after.stats().alert_states_read, 0, "their alert states came with them");

    // b recovers (re-armed), then falls again: one new alert.
    step(&mut after, vec![vector("b", 3_000, 3.0)]).await;
    step(&mut after, vec![vector("b", 4_000, 60.0)]).await;
    let got = alerts_received(&sdk, &queue_url).await;
    assert_eq!(got.iter().map(|a| a.alert_id.as_str()).collect::<Vec<_>>(), ["b#4000"]);
    assert!(got[0].previous_churn_risk_14d.is_some_and(|p| p < 0.5), "{:?}", got[0].previous_churn_risk_14d);
    assert_eq!(after.stats().alerts, 1);
}
