//! Prediction items in DynamoDB (the local server): a write never moves a
//! customer back in time, the item carries what §6 and the alert state need,
//! alert states read back, and the pipeline's own writes come back on the
//! table's stream without effect.

mod output_support;

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_dynamodbstreams::types::{AttributeValue as StreamValue, ShardIteratorType};
use output_support::*;
use pulse_aws::output::predictions::{PredictionRecord, PredictionWriter, StoredAlertState};
use pulse_operators::{Engine, EngineConfig};
use pulse_runtime::process::{Processor, Produced};
use pulse_schemas::order::Position;
use pulse_schemas::prediction::Scores;
use pulse_schemas::{CustomerId, EmissionKey, Prediction, Segment, Source, SCHEMA};

fn prediction(customer: &str, as_of: i64, churn: f64) -> Prediction {
    let scores = Scores {
        first_session_success: 0.25,
        session_velocity: 1.5,
        churn_risk_14d: churn,
        churn_risk_30d: 0.5,
        health_score: 72.125,
    };
    Prediction {
        customer_id: CustomerId::new(customer),
        as_of,
        segment: Segment::of(churn, 0.5, 72.125),
        scores,
        model: "pulse-multitask".into(),
        model_version: "1".into(),
        served_by: "embedded".into(),
        features_schema: SCHEMA.into(),
        reasons: Default::default(),
        emission: None,
        new_customer: false,
        no_session: false,
        met_in_burn_in: false,
    }
}

fn record(p: Prediction, alert_armed: bool, alerted: bool) -> PredictionRecord {
    // Arriving as the hysteresis would have it: armed, and not alerted yet.
    let alert_arriving = alert_armed && !alerted && p.customer_id.as_str() == "b";
    PredictionRecord { prediction: p, alert_armed, alert_arriving, alerted, memory: None }
}

#[tokio::test]
async fn predictions_never_move_a_customer_back_in_time() {
    let sdk = sdk().await;
    let table = table(&sdk).await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let writer = PredictionWriter::new(client.clone(), table.as_str(), 4);

    writer.write(vec![record(prediction("a", 200, 0.8), false, true)]).await.unwrap();
    // A replay of an older vector, then a retry of the same one.
    writer.write(vec![record(prediction("a", 100, 0.1), true, false)]).await.unwrap();
    writer.write(vec![record(prediction("a", 200, 0.8), false, false)]).await.unwrap();
    let stats = writer.stats();
    assert_eq!((stats.written, stats.stale), (2, 1), "the older one is stale, the equal one rewritten");

    let item = prediction_item(&client, &table, "a").await.expect("stored");
    assert_eq!(n(&item, "as_of"), 200.0);
    assert_eq!(n(&item, "churn_risk_14d"), 0.8);
    assert_eq!(n(&item, "health_score"), 72.125);
    assert_eq!(n(&item, "first_session_success"), 0.25);
    assert_eq!(n(&item, "session_velocity"), 1.5);
    assert_eq!(n(&item, "churn_risk_30d"), 0.5);
    assert_eq!(s(&item, "sk"), "PRED#latest");
    assert_eq!(s(&item, "entity_type"), "prediction");
    assert_eq!(s(&item, "segment"), "churned");
    assert_eq!(s(&item, "model"), "pulse-multitask");
    assert_eq!(s(&item, "model_version"), "1");
    assert_eq!(s(&item, "served_by"), "embedded");
    assert_eq!(s(&item, "features_schema"), "features-v1");
    assert_eq!(item.get("alert_armed"), Some(&aws_sdk_dynamodb::types::AttributeValue::Bool(false)));
    // The alert of the first write survives the rewrite that raised none.
    assert_eq!(n(&item, "last_alert_as_of"), 200.0);
    assert_eq!(n(&item, "last_alert_churn_risk_14d"), 0.8);

    // Many predictions of one customer in one call, newest first: the newest stays.
    let many: Vec<_> = (0..40).rev().map(|t| record(prediction("b", 1_000 + t, 0.3), true, false)).collect();
    writer.write(many).await.unwrap();
    let item = prediction_item(&client, &table, "b").await.unwrap();
    assert_eq!(n(&item, "as_of"), 1_039.0);

    let states = writer
        .alert_states(&[CustomerId::new("a"), CustomerId::new("b"), CustomerId::new("never-scored")])
        .await
        .unwrap();
    let states: HashMap<_, _> = states.into_iter().map(|s| (s.customer_id.to_string(), s)).collect();
    assert_eq!(states.len(), 2, "no item, no state");
    let a = StoredAlertState {
        customer_id: CustomerId::new("a"),
        armed: false,
        arriving: false,
        as_of: 200,
        emission: EmissionKey::at(200),
    };
    assert_eq!(states["a"], a, "a prediction without a key is placed at its as_of");
    assert!(states["b"].armed && states["b"].arriving, "the arrival is stored and read back: {:?}", states["b"]);
}

/// The reasons go with the prediction they belong to: written with it,
/// removed by a newer prediction that has none.
#[tokio::test]
async fn reasons_are_written_with_their_prediction_and_removed_without() {
    let sdk = sdk().await;
    let table = table(&sdk).await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let writer = PredictionWriter::new(client.clone(), table.as_str(), 4);
    let baseline = pulse_schemas::Baseline { since: Some(50), churn_risk_14d: Some(0.5), signup: false };
    let reasons = pulse_schemas::Reasons::new(
        baseline,
        [
            pulse_schemas::Reason { feature: 9, now: 19.0, was: 2.0, contribution: 1.5, ..Default::default() },
            pulse_schemas::Reason {
                feature: pulse_schemas::features::idx::NEGATIVE_CALL_RATE_30D as u8,
                no_data: pulse_schemas::NoData::WAS,
                now: 1.0,
                was: 0.0,
                contribution: 0.25,
            },
        ],
    );
    let explained = Prediction { reasons, ..prediction("r", 100, 0.8) };
    writer.write(vec![record(explained, false, true)]).await.unwrap();
    let item = prediction_item(&client, &table, "r").await.expect("stored");
    let aws_sdk_dynamodb::types::AttributeValue::M(stored) = &item["reasons"] else { panic!("{item:?}") };
    assert_eq!(stored["since"], aws_sdk_dynamodb::types::AttributeValue::N("50".into()));
    let aws_sdk_dynamodb::types::AttributeValue::L(top) = &stored["top"] else { panic!("{stored:?}") };
    let first = top[0].as_m().unwrap();
    assert_eq!(first["feature"].as_s().unwrap(), "days_since_last_session");
    assert_eq!(first["text"].as_s().unwrap(), "last session 19 days ago (was 2 days ago)");
    assert_eq!(first["was"].as_n().unwrap(), "2");
    assert_eq!(top.len(), 2);
    // "No data" goes with the reason that has it, and only there.
    assert!(!first.contains_key("no_data"), "{first:?}");
    let second = top[1].as_m().unwrap();
    assert_eq!(second["no_data"].as_s().unwrap(), "was");
    assert_eq!(
        second["text"].as_s().unwrap(),
        "100% of support calls negative in 30 days (was: no support calls in 30 days)"
    );
    // Read back as the pipeline wrote it.
    let back: pulse_schemas::Reasons = serde_dynamo::from_attribute_value(item["reasons"].clone()).unwrap();
    assert_eq!(back, reasons);

    writer.write(vec![record(prediction("r", 200, 0.3), true, false)]).await.unwrap();
    let item = prediction_item(&client, &table, "r").await.unwrap();
    assert_eq!(n(&item, "as_of"), 200.0);
    assert!(!item.contains_key("reasons"), "a newer prediction without reasons removes the old ones");
}

/// §6 amended: the condition compares the emission key, not `as_of`.
#[tokio::test]
async fn a_late_event_after_a_timer_replaces_it_and_older_emissions_never_do() {
    let sdk = sdk().await;
    let table = table(&sdk).await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let writer = PredictionWriter::new(client.clone(), table.as_str(), 4);
    let keyed = |as_of, churn, key: EmissionKey| Prediction { emission: Some(key), ..prediction("a", as_of, churn) };
    let seq = |s: &str| Position::of(Some(s), None);
    let (c, d) = (1_000_000, 2_000_000);
    let event = keyed(c, 0.2, EmissionKey::record(c + 60_000, seq("100000000000000000001")));
    let timer = keyed(d, 0.3, EmissionKey::timer(d));
    let late = keyed(c, 0.9, EmissionKey::record(d + 3_600_000, seq("100000000000000000042")));

    writer.write(vec![record(event.clone(), true, false)]).await.unwrap();
    writer.write(vec![record(timer.clone(), true, false)]).await.unwrap();
    writer.write(vec![record(late.clone(), false, true)]).await.unwrap();
    let item = prediction_item(&client, &table, "a").await.expect("stored");
    assert_eq!((n(&item, "as_of"), n(&item, "churn_risk_14d")), (c as f64, 0.9), "the late event's values");
    assert_eq!(s(&item, "emission"), late.emission().encode());
    assert_eq!(n(&item, "last_alert_as_of"), c as f64);

    // Retries and replays of the older emissions, alone or in one call in
    // any order, then a retry of the late one (an equal key: rewritten).
    writer.write(vec![record(timer.clone(), true, false)]).await.unwrap();
    writer.write(vec![record(timer, true, false), record(event, true, false)]).await.unwrap();
    writer.write(vec![record(late, false, false)]).await.unwrap();
    assert_eq!((writer.stats().written, writer.stats().stale), (4, 3));
    let after = prediction_item(&client, &table, "a").await.unwrap();
    assert_eq!(after, item);

    // The order is the stream's even when the sequence numbers differ in length.
    let b = |key| Prediction { emission: Some(key), ..prediction("b", 5, 0.1) };
    writer.write(vec![record(b(EmissionKey::record(9, seq("99"))), true, false)]).await.unwrap();
    writer.write(vec![record(b(EmissionKey::record(9, seq("100"))), true, false)]).await.unwrap();
    writer.write(vec![record(b(EmissionKey::record(9, seq("0098"))), true, false)]).await.unwrap();
    let item = prediction_item(&client, &table, "b").await.unwrap();
    assert_eq!(s(&item, "emission"), EmissionKey::record(9, seq("100")).encode());
}

/// Items written before `emission` existed are judged by `as_of` once, then
/// carry the key.
#[tokio::test]
async fn an_item_without_an_emission_key_is_judged_by_as_of_once() {
    let sdk = sdk().await;
    let table = table(&sdk).await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    use aws_sdk_dynamodb::types::AttributeValue;
    client
        .put_item()
        .table_name(&table)
        .item("customer_id", AttributeValue::S("a".into()))
        .item("sk", AttributeValue::S("PRED#latest".into()))
        .item("entity_type", AttributeValue::S("prediction".into()))
        .item("as_of", AttributeValue::N("500".into()))
        .item("churn_risk_14d", AttributeValue::N("0.5".into()))
        .send()
        .await
        .unwrap();
    let writer = PredictionWriter::new(client.clone(), table.as_str(), 1);
    let keyed = |as_of, churn, key: EmissionKey| Prediction { emission: Some(key), ..prediction("a", as_of, churn) };
    writer.write(vec![record(keyed(400, 0.1, EmissionKey::timer(10_000)), true, false)]).await.unwrap();
    assert_eq!(n(&prediction_item(&client, &table, "a").await.unwrap(), "as_of"), 500.0, "older as_of: refused");
    writer.write(vec![record(keyed(600, 0.2, EmissionKey::timer(600)), true, false)]).await.unwrap();
    let item = prediction_item(&client, &table, "a").await.unwrap();
    assert_eq!((n(&item, "as_of"), s(&item, "emission")), (600.0, EmissionKey::timer(600).encode().as_str()));
    // From now on the key rules: a larger as_of of an earlier emission is refused.
    writer
        .write(vec![record(keyed(700, 0.3, EmissionKey::record(599, Position::Line(1))), true, false)])
        .await
        .unwrap();
    assert_eq!(n(&prediction_item(&client, &table, "a").await.unwrap(), "as_of"), 600.0);
    assert_eq!((writer.stats().written, writer.stats().stale), (1, 2));
    let states = writer.alert_states(&[CustomerId::new("a")]).await.unwrap();
    assert_eq!(states[0].emission, EmissionKey::timer(600), "read back with the alert state");
}

#[tokio::test]
async fn prediction_writes_per_second_to_the_local_server() {
    let sdk = sdk().await;
    let table = table(&sdk).await;
    let writer = PredictionWriter::new(aws_sdk_dynamodb::Client::new(&sdk), table.as_str(), 16);
    let records: Vec<_> = (0..500).map(|i| record(prediction(&format!("c{i}"), 1, 0.2), true, false)).collect();
    let started = std::time::Instant::now();
    writer.write(records).await.unwrap();
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(writer.stats().written, 500);
    println!("500 conditional UpdateItems, 16 in flight: {:.0} predictions/s to moto", 500.0 / seconds);
}

/// A stream record as a capture line (AWS's JSON shape).
fn capture_line(r: &aws_sdk_dynamodbstreams::types::Record) -> String {
    fn value(v: &StreamValue) -> serde_json::Value {
        match v {
            StreamValue::S(s) => serde_json::json!({ "S": s }),
            StreamValue::N(n) => serde_json::json!({ "N": n }),
            StreamValue::Bool(b) => serde_json::json!({ "BOOL": b }),
            other => panic!("attribute type not written by pulse: {other:?}"),
        }
    }
    let image = |i: Option<&HashMap<String, StreamValue>>| {
        i.map(|i| i.iter().map(|(k, v)| (k.clone(), value(v))).collect::<serde_json::Map<_, _>>())
    };
    let d = r.dynamodb().expect("stream record");
    let mut dynamodb = serde_json::json!({
        "ApproximateCreationDateTime": d.approximate_creation_date_time().map(|t| t.secs()),
        "SequenceNumber": d.sequence_number(),
    });
    if let Some(new) = image(d.new_image()) {
        dynamodb["NewImage"] = new.into();
    }
    if let Some(old) = image(d.old_image()) {
        dynamodb["OldImage"] = old.into();
    }
    serde_json::json!({ "eventName": r.event_name().map(|e| e.as_str()), "dynamodb": dynamodb }).to_string()
}

#[tokio::test]
async fn own_prediction_writes_come_back_on_the_stream_and_change_nothing() {
    let sdk = sdk().await;
    let table = table(&sdk).await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let writer = PredictionWriter::new(client.clone(), table.as_str(), 4);
    writer.write(vec![record(prediction("a", 100, 0.8), false, true)]).await.unwrap();
    writer.write(vec![record(prediction("a", 200, 0.2), true, false)]).await.unwrap();

    let streams = aws_sdk_dynamodbstreams::Client::new(&sdk);
    let arn =
        client.describe_table().table_name(&table).send().await.unwrap().table.unwrap().latest_stream_arn.unwrap();
    let described = streams.describe_stream().stream_arn(&arn).send().await.unwrap();
    let shard = described.stream_description().unwrap().shards()[0].shard_id().unwrap().to_owned();
    let iterator = streams
        .get_shard_iterator()
        .stream_arn(&arn)
        .shard_id(shard)
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await
        .unwrap()
        .shard_iterator
        .unwrap();
    let records = streams.get_records().shard_iterator(iterator).send().await.unwrap().records.unwrap_or_default();
    // An INSERT and a MODIFY at least.
    assert!(records.len() >= 2, "{records:?}");

    let engine = Arc::new(Engine::new(EngineConfig::default()));
    let mut processor = Processor::new(engine.clone());
    let mut out = Produced::default();
    for r in &records {
        let line = capture_line(r);
        // moto also records the key-only item an UpdateItem starts from.
        let key_only = !line.contains("entity_type");
        assert!(key_only || line.contains("\"entity_type\":{\"S\":\"prediction\"}"), "{line}");
        processor.process(
            pulse_schemas::capture::decode_line(line.as_bytes()),
            Source::default(),
            line.as_bytes(),
            &mut out,
        );
    }
    assert!(out.vectors.is_empty(), "no vector from a prediction item");
    assert!(out.dead.is_empty(), "and no dead letter: {:?}", out.dead);
    let counters = engine.counters();
    assert_eq!(
        (counters.non_events, counters.events_added),
        (records.len() as u64, 0),
        "counted as records that are not events"
    );
}

/// A prediction item as FEATURES.md §6 shapes it (what the system pulse
/// replaces writes into the events table: no `model`, no `served_by`) is
/// read back as the customer's latest prediction, not refused: refusing it
/// failed every `pulse run --score --predictions-table` on such a table.
#[tokio::test]
async fn a_contract_shaped_item_is_read_back_and_replaced() {
    use aws_sdk_dynamodb::types::AttributeValue;
    use pulse_aws::output::predictions::NOT_RECORDED;
    let sdk = sdk().await;
    let table = table(&sdk).await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let (n_, s_) = (|v: &str| AttributeValue::N(v.into()), |v: &str| AttributeValue::S(v.into()));
    client
        .put_item()
        .table_name(&table)
        .item("customer_id", s_("a"))
        .item("sk", s_("PRED#latest"))
        .item("first_session_success", n_("0.9"))
        .item("session_velocity", n_("2.5"))
        .item("churn_risk_14d", n_("0.125"))
        .item("churn_risk_30d", n_("0.25"))
        .item("health_score", n_("81"))
        .item("segment", s_("healthy"))
        .item("model_version", s_("rescan-7"))
        .item("as_of", n_("500"))
        .item("features_schema", s_("features-v1"))
        .send()
        .await
        .unwrap();
    let writer = PredictionWriter::new(client.clone(), table.as_str(), 1);
    let stored = writer.customers(&[CustomerId::new("a")]).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!((stored[0].scores.churn_risk_14d, stored[0].state.as_of), (0.125, 500));
    assert_eq!((&*stored[0].model.name, &*stored[0].model.version), (NOT_RECORDED, "rescan-7"));
    assert!(stored[0].state.armed, "never alerted through pulse: armed");
    // pulse's own next prediction replaces it, with every attribute.
    writer.write(vec![record(prediction("a", 600, 0.5), true, false)]).await.unwrap();
    let item = prediction_item(&client, &table, "a").await.unwrap();
    assert_eq!((n(&item, "as_of"), s(&item, "model"), s(&item, "served_by")), (600.0, "pulse-multitask", "embedded"));
}
