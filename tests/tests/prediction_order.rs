//! Issue #13, defect 10, against the local server (moto): predictions are
//! ordered by the emission's place in the customer's stream (§6 amended),
//! not by `as_of`. Real records go through the processor (a timer fires,
//! then a late event arrives), the scoring sink scores them with the embedded
//! model and writes the prediction items with their conditional `UpdateItem`.

mod common;
mod output_support;

use std::time::Duration;

use common::{insert_line, login_line, session_attrs, Driver, D, H, T0};
use output_support::*;
use pulse_aws::output::backend::ModelBackend;
use pulse_aws::output::predictions::PredictionWriter;
use pulse_aws::output::sink::{Destinations, ScoringSink};
use pulse_operators::TimerPolicy;
use pulse_runtime::process::Produced;
use pulse_runtime::sink::Sink;
use pulse_schemas::{EmissionKey, FeatureVector, Trigger};

async fn sink(sdk: &aws_config::SdkConfig, table: &str) -> ScoringSink {
    let out = Destinations {
        predictions: Some(PredictionWriter::new(aws_sdk_dynamodb::Client::new(sdk), table, 8)),
        ..nowhere()
    };
    ScoringSink::new(ModelBackend::Embedded(embedded()), out, sink_config(64, Duration::from_secs(5))).unwrap()
}

async fn step(sink: &mut ScoringSink, vectors: Vec<FeatureVector>) {
    sink.send(Produced { vectors, dead: vec![] }).await.unwrap();
    sink.flush().await.unwrap();
}

/// Customer `a` logs in at T0; a day later another customer's record moves
/// stream time past a's timer (a timer vector as of T0 + 1 day); then a's
/// session from before its login arrives (a late event: its vector is as of
/// C = T0, older than the timer's).
fn timer_then_late_event() -> (Vec<FeatureVector>, [FeatureVector; 3]) {
    let lines = [
        login_line("a", "e1", T0),
        login_line("z", "e2", T0 + D + H),
        insert_line("a", "e3", "session_completed", T0 - 2 * H, T0 + D + 2 * H, &session_attrs("tut_1", 50.0)),
    ];
    let mut driver = Driver::new(TimerPolicy::default());
    let vectors = driver.lines(lines.iter().map(|l| l.as_bytes())).vectors;
    let of_a: Vec<&FeatureVector> = vectors.iter().filter(|v| v.customer_id.as_str() == "a").collect();
    let summary: Vec<(Trigger, i64)> = of_a.iter().map(|v| (v.trigger, v.as_of)).collect();
    assert_eq!(summary, [(Trigger::Event, T0), (Trigger::Timer, T0 + D), (Trigger::Event, T0)], "the issue's case");
    let [first, timer, late] = [of_a[0].clone(), of_a[1].clone(), of_a[2].clone()];
    assert!(late.emission() > timer.emission() && timer.emission() > first.emission());
    (vectors, [first, timer, late])
}

#[tokio::test]
async fn a_late_event_after_a_timer_is_the_stored_prediction() {
    let sdk = sdk().await;
    let table = table(&sdk).await;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let (vectors, [first, timer, late]) = timer_then_late_event();
    let risk = |v: &FeatureVector| embedded().score_now(&[v.features]).unwrap()[0].churn_risk_14d;
    assert_ne!(risk(&late), risk(&timer), "the late session changes the scores");

    // One step per record, as a live consumer sends them.
    let mut live = sink(&sdk, &table).await;
    step(&mut live, vec![first.clone()]).await;
    step(&mut live, vec![timer.clone()]).await;
    step(&mut live, vec![late.clone()]).await;
    let item = prediction_item(&dynamo, &table, "a").await.expect("stored");
    assert_eq!(n(&item, "as_of"), T0 as f64, "the late event's prediction replaced the timer's");
    assert_eq!(n(&item, "churn_risk_14d"), risk(&late));
    assert_eq!(s(&item, "emission"), late.emission().encode());
    assert_eq!(live.stats().predictions_stale, 0);

    // A restarted consumer replays everything since an older checkpoint, in
    // one step, then a retry of the timer's step: nothing moves back.
    let mut restarted = sink(&sdk, &table).await;
    step(&mut restarted, vectors.clone()).await;
    step(&mut restarted, vec![timer.clone()]).await;
    step(&mut restarted, vec![first]).await;
    let again = prediction_item(&dynamo, &table, "a").await.unwrap();
    assert_eq!(again, item, "the replay wrote the same emission again, the older ones were refused");
}

#[tokio::test]
async fn an_older_emission_is_refused_whatever_its_as_of() {
    let sdk = sdk().await;
    let table = table(&sdk).await;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let (_, [_, timer, late]) = timer_then_late_event();
    // The late event's prediction is stored first (e.g. by another
    // environment); the timer's comes after it, with a larger as_of.
    let mut sink = sink(&sdk, &table).await;
    step(&mut sink, vec![late.clone()]).await;
    let writer = PredictionWriter::new(dynamo.clone(), table.as_str(), 1);
    let timer_prediction = pulse_schemas::Prediction {
        customer_id: timer.customer_id.clone(),
        as_of: timer.as_of,
        scores: embedded().score_now(&[timer.features]).unwrap()[0],
        segment: pulse_schemas::Segment::Healthy,
        model: "m".into(),
        model_version: "1".into(),
        served_by: "embedded".into(),
        features_schema: pulse_schemas::SCHEMA.into(),
        reasons: Default::default(),
        emission: Some(timer.emission()),
        new_customer: false,
        no_session: false,
        met_in_burn_in: false,
    };
    let record = pulse_aws::output::predictions::PredictionRecord {
        prediction: timer_prediction,
        alert_armed: true,
        alert_arriving: false,
        alerted: false,
        memory: None,
    };
    writer.write(vec![record]).await.unwrap();
    assert_eq!((writer.stats().written, writer.stats().stale), (0, 1));
    let item = prediction_item(&dynamo, &table, "a").await.unwrap();
    assert_eq!(n(&item, "as_of"), T0 as f64);
    assert_eq!(s(&item, "emission"), late.emission().encode());
    assert!(EmissionKey::decode(s(&item, "emission")).is_some());
}

/// Catch-up timers: events written days after they happened (a backfill)
/// schedule timers that are already due; the processor fires them after the
/// record, as of their due times. They rank after that record, in due order,
/// and before the customer's next record, so the newest of them is the
/// customer's prediction.
#[test]
fn catch_up_timers_rank_after_the_record_that_scheduled_them() {
    let lines = [
        insert_line("a", "e1", "login", T0, T0 + 3 * D + H, &[]),
        login_line("z", "e2", T0 + 3 * D + 2 * H),
        insert_line("a", "e3", "login", T0 + 3 * D + 2 * H, T0 + 3 * D + 3 * H, &[]),
    ];
    let mut driver = Driver::new(TimerPolicy::default());
    let vectors = driver.lines(lines.iter().map(|l| l.as_bytes())).vectors;
    let of_a: Vec<&FeatureVector> = vectors.iter().filter(|v| v.customer_id.as_str() == "a").collect();
    let summary: Vec<(Trigger, i64)> = of_a.iter().map(|v| (v.trigger, v.as_of)).collect();
    assert_eq!(
        summary,
        [
            (Trigger::Event, T0),
            (Trigger::Timer, T0 + D),
            (Trigger::Timer, T0 + 2 * D),
            (Trigger::Timer, T0 + 3 * D),
            (Trigger::Event, T0 + 3 * D + 2 * H)
        ]
    );
    let keys: Vec<EmissionKey> = of_a.iter().map(|v| v.emission()).collect();
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "in emission order: {keys:?}");
}
