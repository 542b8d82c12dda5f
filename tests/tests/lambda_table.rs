//! The Lambda handler against the local DynamoDB (moto), through the real SDK:
//!
//! * events written to a table come out of the handler, read from the
//!   table's stream and wrapped as Lambda delivers them, as the same vectors a
//!   replay of the same records gives; the invalid one is a dead letter, never
//!   a batch failure; every customer with a vector gets a due item;
//! * a cold handler that receives only a customer's newest event hydrates the
//!   rest from the table and emits the vector a replay of all its events
//!   emits, bit for bit, except `tenure_days` after the customer's oldest
//!   event was retracted (the documented exception, asserted exactly);
//! * the scheduled run reads only the customers the due index lists as due,
//!   and emits for a silent customer the timer vectors an engine that saw all
//!   its events gives (`Engine::features_at`); an active customer is not read;
//! * when a shard's batches run in two execution environments, A then B then
//!   A again, A finds by the customer's stamp that its copy is stale, reads
//!   the customer again and emits what a replay of every record emits; the
//!   stamps of hundreds of customers are written and read back whole (in
//!   several calls each way);
//! * the due index lists the customers due by the scheduled time from the
//!   partitions of their due days, however short the lookback, and still
//!   those an earlier version keyed by the hour.

mod common;
mod lambda_support;

use std::collections::HashMap;

use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_sdk_dynamodb::types::AttributeValue as Av;
use common::{replay_capture, write_file, D, H, MIN};
use lambda_support::{event_item, event_of, get, lambda_record, put, trim_horizon};
use pulse_aws::due::{due_key, Due, DueIndex, DEFAULT_DUE_INDEX};
use pulse_aws::live::lambda_event::event_record_from_sdk;
use pulse_aws::{setup, AwsArgs};
use pulse_e2e::{aws_endpoint, unique_name};
use pulse_lambda::sink::MemorySink;
use pulse_lambda::{Handler, LambdaConfig, Stamps, TableAccess};
use pulse_operators::{Engine, EngineConfig, TimerPolicy};
use pulse_schemas::features::idx::TENURE_DAYS;
use pulse_schemas::{FeatureVector, Trigger};
use serde_json::{json, Value};

async fn dynamodb() -> (aws_sdk_dynamodb::Client, aws_sdk_dynamodbstreams::Client) {
    let config = AwsArgs::local(aws_endpoint()).load().await;
    (aws_sdk_dynamodb::Client::new(&config), aws_sdk_dynamodbstreams::Client::new(&config))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// JSON lines of records, written as a capture for a replay.
fn capture(dir: &std::path::Path, records: &[Value]) -> std::path::PathBuf {
    let lines: String = records.iter().map(|r| format!("{r}\n")).collect();
    write_file(dir, "capture.jsonl", lines.as_bytes())
}

/// `common::replay_capture` (which runs its own runtime) off this one.
async fn replayed(capture: std::path::PathBuf) -> common::Replayed {
    tokio::task::spawn_blocking(move || replay_capture(&capture, TimerPolicy::default())).await.expect("the replay")
}

/// A vector as written (JSON), without its source.
fn written(v: &FeatureVector) -> Value {
    let mut json: Value = serde_json::from_str(&serde_json::to_string(v).unwrap()).unwrap();
    json.as_object_mut().unwrap().remove("source");
    json
}

fn handler(client: &aws_sdk_dynamodb::Client, table: &str, due_index: Option<&str>) -> Handler {
    Handler::with_config(LambdaConfig::default(), Some(TableAccess::new(client.clone(), table, due_index, 4)))
}

/// Every record of a table's stream so far, as Lambda would deliver them.
async fn stream_records(streams: &aws_sdk_dynamodbstreams::Client, arn: &str, expected: usize) -> Vec<EventRecord> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let described = streams.describe_stream().stream_arn(arn).send().await.expect("DescribeStream");
        let mut records = Vec::new();
        for shard in described.stream_description().unwrap().shards() {
            let mut iterator = trim_horizon(streams, arn, shard.shard_id().unwrap()).await;
            while let Some(it) = iterator {
                let page = streams.get_records().shard_iterator(it).send().await.expect("GetRecords");
                if page.records().is_empty() {
                    break;
                }
                records.extend(page.records().iter().map(|r| event_record_from_sdk(r).expect("a convertible record")));
                iterator = page.next_shard_iterator().map(str::to_owned);
            }
        }
        if records.len() >= expected {
            return records;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the stream holds {} records, {expected} expected",
            records.len()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn events_written_to_a_table_come_out_of_the_handler_as_a_replay_gives_them() {
    let (client, streams) = dynamodb().await;
    let table = unique_name("lambda-stream");
    let arn = setup::ensure_events_table(&client, &table).await.expect("events table");
    setup::ensure_due_index(&client, &table, DEFAULT_DUE_INDEX).await.expect("due index");

    let t = now_ms() - 3 * D;
    let session = |c: &str, id: &str, ts: i64, tutor: &str| {
        event_item(c, id, ts, "session_completed", &[("tutor_id", "S", tutor), ("duration_min", "N", "50")])
    };
    let rated = |c: &str, id: &str, ts: i64, rating: &str| {
        event_item(c, id, ts, "session_rated", &[("tutor_id", "S", "tut_1"), ("rating", "N", rating)])
    };
    let mut writes = 0;
    for (i, c) in ["stu_a", "stu_b"].iter().enumerate() {
        let base = t + i as i64 * H;
        put(&client, &table, &session(c, "s1", base, "tut_1")).await;
        put(&client, &table, &rated(c, "r1", base + MIN, "2")).await;
        put(&client, &table, &event_item(c, "l1", base + D, "login", &[])).await;
        put(
            &client,
            &table,
            &event_item(c, "p1", base + D + H, "payment", &[("amount", "N", "30"), ("status", "S", "succeeded")]),
        )
        .await;
        put(&client, &table, &session(c, "s2", base + 2 * D, "tut_2")).await;
        writes += 5;
    }
    // A correction (MODIFY), a retraction (REMOVE), an invalid event, a prediction.
    put(&client, &table, &rated("stu_a", "r1", t + MIN, "4.5")).await;
    client
        .delete_item()
        .table_name(&table)
        .key("customer_id", Av::S("stu_b".into()))
        .key("sk", Av::S(format!("EVT#{:013}#l1", t + H + D)))
        .send()
        .await
        .expect("DeleteItem");
    put(&client, &table, &event_item("stu_a", "bad", t + 2 * D + H, "ib_call", &[("sentiment", "S", "furious")])).await;
    let mut prediction = HashMap::from([
        ("customer_id".to_string(), Av::S("stu_a".into())),
        ("sk".to_string(), Av::S("PRED#latest".into())),
        ("entity_type".to_string(), Av::S("prediction".into())),
    ]);
    prediction.insert("health_score".into(), Av::N("71.5".into()));
    put(&client, &table, &prediction).await;
    writes += 4;

    let records = stream_records(&streams, &arn, writes).await;
    assert_eq!(records.len(), writes);
    let names: Vec<_> = records.iter().map(|r| r.event_name.as_str()).collect();
    assert_eq!(names.iter().filter(|n| **n == "MODIFY").count(), 1, "{names:?}");
    assert_eq!(names.iter().filter(|n| **n == "REMOVE").count(), 1, "{names:?}");
    let mut event = Event::default();
    event.records = records.clone();

    let handler = handler(&client, &table, Some(DEFAULT_DUE_INDEX));
    let mut sink = MemorySink::default();
    let outcome = handler.handle_batch(&event, &mut sink).await;
    assert!(outcome.response.batch_item_failures.is_empty(), "{:?}", outcome.report);
    assert_eq!(outcome.report.hydrated.customers, 2, "a cold start reads both customers");
    assert_eq!(outcome.report.hydrated.events, 0, "every event in the table is in the batch");
    assert_eq!(sink.dead.len(), 1);
    assert_eq!(sink.dead[0].invalid.reason.code(), "not_allowed");

    // The same records, replayed from a capture of their JSON.
    let dir = tempfile::tempdir().unwrap();
    let lines: Vec<Value> = records.iter().map(|r| serde_json::to_value(r).unwrap()).collect();
    let replayed = replayed(capture(dir.path(), &lines)).await;
    let from_replay: Vec<Value> = common::parse_json_lines(&replayed.features_bytes)
        .into_iter()
        .map(|mut v| {
            v.as_object_mut().unwrap().remove("source");
            v
        })
        .collect();
    assert!(from_replay.len() >= 10, "{} vectors", from_replay.len());
    assert_eq!(sink.vectors.iter().map(written).collect::<Vec<_>>(), from_replay);
    assert_eq!(replayed.dead_letters().len(), 1);

    // Each customer's next timer is in the due index.
    for c in ["stu_a", "stu_b"] {
        let due = get(&client, &table, c, "DUE").await.unwrap_or_else(|| panic!("no due item for {c}"));
        let next: i64 = due["next_due"].as_n().unwrap().parse().unwrap();
        assert!(next > now_ms() - 60_000 && next <= now_ms() + D, "{c}: next due {next}");
        assert_eq!(due["due_hour"].as_n().unwrap(), &due_key(next).to_string(), "the due day's first hour");
    }
    assert_eq!(outcome.report.due_written, 2);
}

#[tokio::test]
async fn a_cold_handler_hydrates_a_customer_and_emits_the_vector_of_a_replay_of_all_its_events() {
    let (client, _) = dynamodb().await;
    let table = unique_name("lambda-hydrate");
    setup::ensure_events_table(&client, &table).await.expect("events table");

    let c = "stu_h";
    let newest = 1_767_600_000_000;
    let session = |id: &str, ts: i64, tutor: &str, minutes: &str| {
        event_item(c, id, ts, "session_completed", &[("tutor_id", "S", tutor), ("duration_min", "N", minutes)])
    };
    let pay = |id: &str, ts: i64, status: &str| {
        event_item(c, id, ts, "payment", &[("amount", "N", "42.5"), ("status", "S", status)])
    };
    let call = |id: &str, ts: i64, sentiment: &str| event_item(c, id, ts, "ib_call", &[("sentiment", "S", sentiment)]);
    // Oldest first: a retracted first event, the "ever" kinds long ago, then a
    // month of activity; the newest event comes in the batch.
    let retracted_first = event_item(c, "first", newest - 400 * D, "login", &[]);
    let mut history = vec![
        retracted_first.clone(),
        event_item(c, "second", newest - 380 * D, "login", &[]),
        call("call_old", newest - 250 * D, "positive"),
    ];
    // A long quiet past that the walk never needs to read.
    for i in 0..30 {
        history.push(event_item(c, &format!("old_login{i}"), newest - 370 * D + i * 4 * D, "login", &[]));
    }
    history.sort_by_key(|item| item["ts"].as_n().unwrap().parse::<i64>().unwrap());
    history.extend([
        call("call", newest - 200 * D, "negative"),
        pay("pay_old", newest - 120 * D, "succeeded"),
        pay("pay", newest - 100 * D, "succeeded"),
        pay("pay_failed", newest - 90 * D, "failed"),
        event_item(c, "login_old", newest - 45 * D, "login", &[]),
        event_item(c, "login", newest - 40 * D, "login", &[]),
        session("s_old", newest - 36 * D, "tut_9", "60"),
        session("s_edge", newest - 35 * D, "tut_9", "30"),
    ]);
    for i in 0..20 {
        let ts = newest - 29 * D + i * 36 * H;
        let tutor = if i % 5 == 4 { "tut_2" } else { "tut_1" };
        history.push(session(&format!("s{i}"), ts, tutor, &format!("{}", 30 + i)));
        history.push(event_item(
            c,
            &format!("r{i}"),
            ts + 10 * MIN,
            "session_rated",
            &[("tutor_id", "S", tutor), ("rating", "N", if i % 3 == 0 { "2" } else { "4.5" })],
        ));
        if i % 4 == 0 {
            history.push(event_item(
                c,
                &format!("m{i}"),
                ts + H,
                "message_reply",
                &[("from", "S", "tutor"), ("response_minutes", "N", "17")],
            ));
        }
    }
    history.push(event_item(
        c,
        "cancel",
        newest - 3 * D,
        "session_cancelled",
        &[("tutor_id", "S", "tut_1"), ("cancelled_by", "S", "student")],
    ));
    let newest_event = session("newest", newest, "tut_2", "45");
    // An invalid item in the table (its record went to the dead letters).
    let invalid = session("invalid", newest - 10 * D, "tut_1", "0");

    for item in history.iter().chain([&newest_event, &invalid]) {
        put(&client, &table, item).await;
    }
    client
        .delete_item()
        .table_name(&table)
        .key("customer_id", Av::S(c.into()))
        .key("sk", retracted_first["sk"].clone())
        .send()
        .await
        .expect("DeleteItem");
    // Items under other keys of the partition are not events and not read.
    put(
        &client,
        &table,
        &HashMap::from([
            ("customer_id".to_string(), Av::S(c.into())),
            ("sk".to_string(), Av::S("PRED#latest".into())),
            ("entity_type".to_string(), Av::S("prediction".into())),
        ]),
    )
    .await;

    // The stream as it was: every event inserted, the first one retracted,
    // the invalid one, then the newest.
    let mut seq = 0;
    let mut lines = Vec::new();
    for item in history.iter().chain([&invalid]) {
        seq += 1;
        let ts: i64 = item["ts"].as_n().unwrap().parse().unwrap();
        lines.push(lambda_record("INSERT", ts + MIN, seq, Some(item), None));
    }
    lines.push(lambda_record("REMOVE", newest - 2 * D, seq + 1, None, Some(&retracted_first)));
    let last = lambda_record("INSERT", newest + MIN, seq + 2, Some(&newest_event), None);
    lines.push(last.clone());

    let dir = tempfile::tempdir().unwrap();
    let replayed = replayed(capture(dir.path(), &lines)).await;
    let replay_last: Value = {
        let vectors = common::parse_json_lines(&replayed.features_bytes);
        let mut v = vectors.into_iter().rev().find(|v| v["trigger"] == "event").unwrap();
        v.as_object_mut().unwrap().remove("source");
        v
    };

    let handler = handler(&client, &table, None);
    let mut sink = MemorySink::default();
    let outcome = handler.handle_batch(&event_of(&[last]), &mut sink).await;
    assert!(outcome.response.batch_item_failures.is_empty(), "{:?}", outcome.report);
    assert_eq!(outcome.report.hydrated.customers, 1);
    assert_eq!(outcome.report.hydrated.invalid_items, 1, "the invalid item is counted, not fatal");
    assert_eq!(sink.vectors.len(), 1, "the event's vector only, no catch-up timers: {:?}", sink.vectors);
    assert_eq!(sink.vectors[0].trigger, Trigger::Event);
    let ours = written(&sink.vectors[0]);

    // Every feature bit for bit, except tenure_days: the retracted first
    // event is gone from the table, so tenure counts from the second.
    let (a, b) = (ours["features"].as_array().unwrap(), replay_last["features"].as_array().unwrap());
    for i in 0..a.len() {
        if i != TENURE_DAYS {
            assert_eq!(a[i], b[i], "feature {} ({})", i, pulse_schemas::FEATURE_NAMES[i]);
        }
    }
    assert_eq!(b[TENURE_DAYS].as_f64(), Some(400.0));
    assert_eq!(a[TENURE_DAYS].as_f64(), Some(380.0));
    let (mut a_rest, mut b_rest) = (ours.clone(), replay_last.clone());
    a_rest.as_object_mut().unwrap().remove("features");
    b_rest.as_object_mut().unwrap().remove("features");
    assert_eq!(a_rest, b_rest);

    // The reads were bounded: newest first down to the latest support call
    // (the last "ever" kind found, 200 days back), then the oldest event.
    let ts_of = |item: &HashMap<String, Av>| item["ts"].as_n().unwrap().parse::<i64>().unwrap();
    let in_table: Vec<_> = history.iter().skip(1).chain([&newest_event, &invalid]).collect();
    let walked = in_table.iter().filter(|item| ts_of(item) >= newest - 200 * D).count() as u64;
    assert_eq!(outcome.report.hydrated.items_read, walked + 1, "of {} items", in_table.len());
    assert_eq!(outcome.report.hydrated.queries, 2);
}

#[tokio::test]
async fn the_scheduled_run_rescores_only_the_customers_that_are_due() {
    let (client, _) = dynamodb().await;
    let table = unique_name("lambda-due");
    setup::ensure_events_table(&client, &table).await.expect("events table");
    setup::ensure_due_index(&client, &table, DEFAULT_DUE_INDEX).await.expect("due index");
    setup::ensure_due_index(&client, &table, DEFAULT_DUE_INDEX).await.expect("a second call is a no-op");

    let now = now_ms();
    let silent_last = now - 3 * D - 5 * H;
    let silent = [
        event_item(
            "stu_silent",
            "s1",
            silent_last - 9 * D,
            "session_completed",
            &[("tutor_id", "S", "tut_1"), ("duration_min", "N", "40")],
        ),
        event_item("stu_silent", "l1", silent_last - 2 * D, "login", &[]),
        event_item("stu_silent", "c1", silent_last, "ib_call", &[("sentiment", "S", "negative")]),
    ];
    let active = [event_item("stu_active", "l1", now - H, "login", &[])];

    // The stream path: the customers' records (written to the table first,
    // as DynamoDB does) in two environments' batches; each records the next
    // due times of its customers.
    let mut records = Vec::new();
    for (i, item) in silent.iter().chain(&active).enumerate() {
        put(&client, &table, item).await;
        let ts: i64 = item["ts"].as_n().unwrap().parse().unwrap();
        records.push(lambda_record("INSERT", ts + MIN, i as u64 + 1, Some(item), None));
    }
    for batch in [&records[..3], &records[3..]] {
        let mut sink = MemorySink::default();
        let outcome = handler(&client, &table, Some(DEFAULT_DUE_INDEX)).handle_batch(&event_of(batch), &mut sink).await;
        assert!(outcome.response.batch_item_failures.is_empty(), "{:?}", outcome.report);
        assert_eq!(outcome.report.due_written, 1);
    }

    // An engine that saw all the silent customer's events.
    let all = Engine::new(EngineConfig::default());
    for r in &event_of(&records[..3]).records {
        all.apply(&pulse_schemas::lambda::decode_record(r).unwrap(), &mut Vec::new());
    }

    // The scheduled run (an EventBridge schedule's event), in another, cold,
    // environment.
    let scheduled = handler(&client, &table, Some(DEFAULT_DUE_INDEX));
    let mut sink = MemorySink::default();
    let payload = json!({
        "version": "0", "id": "1", "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "123456789012", "region": "us-east-1", "resources": [], "detail": {},
        "time": chrono::DateTime::from_timestamp_millis(now).unwrap().to_rfc3339(),
    });
    let answer = scheduled.invoke(payload, &mut sink).await.expect("the scheduled run");
    assert_eq!(answer["now_ms"], json!(now));
    assert_eq!(answer["customers"], json!(["stu_silent"]), "only the due customer is read: {answer}");
    assert_eq!(answer["rescored"], json!(1), "{answer}");
    assert_eq!(sink.forgotten, [("stu_silent".to_owned(), 0)], "the sink reads the due customer's alert state back");
    assert_eq!(answer["listed"], json!(1), "the active customer is not due yet: {answer}");
    assert_eq!(answer["hydrated"]["customers"], json!(1));

    // Its daily timers since its last vector, each as of its due time, with
    // the features of an engine that saw all its events.
    let as_of: Vec<i64> = sink.vectors.iter().map(|v| v.as_of).collect();
    assert_eq!(as_of, [silent_last + D, silent_last + 2 * D, silent_last + 3 * D]);
    for v in &sink.vectors {
        assert_eq!(v.customer_id.as_str(), "stu_silent");
        assert_eq!(v.trigger, Trigger::Timer);
        assert_eq!(Some(v.features), all.features_at("stu_silent", v.as_of), "as of {}", v.as_of);
    }
    assert_eq!(answer["vectors"], json!(3));
    assert_eq!(answer["due_written"], json!(1));

    // Its next due time moved on: the next run finds nobody due.
    let mut sink = MemorySink::default();
    let report = scheduled.rescore_due(now, &mut sink).await.unwrap();
    assert!(report.customers.is_empty(), "{report:?}");
    assert!(sink.vectors.is_empty());
}

#[tokio::test]
async fn an_environment_whose_copy_is_stale_reads_the_customer_again() {
    let (client, _) = dynamodb().await;
    let table = unique_name("lambda-envs");
    setup::ensure_events_table(&client, &table).await.expect("events table");
    setup::ensure_due_index(&client, &table, DEFAULT_DUE_INDEX).await.expect("due index");

    // Six events of one customer, six hours apart (no timer falls between
    // them), each in the table before its record, as DynamoDB does it; and
    // a bystander whose daily timer comes due during the last batch.
    let c = "stu_e";
    let t = now_ms() - 2 * D;
    let mut records = Vec::new();
    for i in 0..6i64 {
        let ts = t + i * 6 * H;
        let item = if i % 2 == 0 {
            event_item(
                c,
                &format!("s{i}"),
                ts,
                "session_completed",
                &[("tutor_id", "S", "tut_1"), ("duration_min", "N", "45")],
            )
        } else {
            event_item(c, &format!("l{i}"), ts, "login", &[])
        };
        put(&client, &table, &item).await;
        records.push(lambda_record("INSERT", ts + MIN, 10 + i as u64, Some(&item), None));
    }
    let bystander = event_item("stu_by", "b1", t - D + 7 * H, "login", &[]);
    put(&client, &table, &bystander).await;
    let by_record = lambda_record("INSERT", t - D + 7 * H + MIN, 1, Some(&bystander), None);

    let a = handler(&client, &table, Some(DEFAULT_DUE_INDEX));
    let b = handler(&client, &table, Some(DEFAULT_DUE_INDEX));
    let batches: [(&Handler, Vec<Value>); 3] = [
        (&a, vec![by_record.clone(), records[0].clone(), records[1].clone()]),
        (&b, records[2..4].to_vec()),
        (&a, records[4..].to_vec()),
    ];
    let mut outcomes = Vec::new();
    let mut last_sink = MemorySink::default();
    for (env, batch) in batches {
        let mut sink = MemorySink::default();
        let outcome = env.handle_batch(&event_of(&batch), &mut sink).await;
        assert!(outcome.response.batch_item_failures.is_empty(), "{:?}", outcome.report);
        outcomes.push(outcome.report);
        last_sink = sink;
    }
    assert_eq!((outcomes[0].stale, outcomes[0].hydrated.customers, outcomes[0].stamps_written), (0, 2, 2));
    assert_eq!((outcomes[1].stale, outcomes[1].hydrated.customers, outcomes[1].stamps_written), (0, 1, 1));
    // A held the customer from the first batch; B has applied records since.
    // The bystander, due during the batch, is still A's own: its stamp is
    // the one A wrote, and its timer fires.
    assert_eq!(outcomes[2].stale, 1, "{:?}", outcomes[2]);
    assert_eq!(outcomes[2].hydrated.customers, 1);
    // The sink is told too, before the customer's vectors: its alert state
    // of the customer is as stale as the engine's copy.
    assert_eq!(last_sink.forgotten, [(c.to_owned(), 0)]);
    let timers: Vec<&str> =
        last_sink.vectors.iter().filter(|v| v.trigger == Trigger::Timer).map(|v| v.customer_id.as_str()).collect();
    assert_eq!(timers, ["stu_by"]);

    // The customer's vectors from A's last batch are those a replay of every
    // record gives for its last two.
    let dir = tempfile::tempdir().unwrap();
    let mut all = vec![by_record];
    all.extend(records.iter().cloned());
    let replayed = replayed(capture(dir.path(), &all)).await;
    let from_replay: Vec<Value> = common::parse_json_lines(&replayed.features_bytes)
        .into_iter()
        .filter(|v| v["customer_id"] == c)
        .map(|mut v| {
            v.as_object_mut().unwrap().remove("source");
            v
        })
        .collect();
    assert_eq!(from_replay.len(), 6, "one vector per event");
    let ours: Vec<Value> = last_sink.vectors.iter().filter(|v| v.customer_id.as_str() == c).map(written).collect();
    assert_eq!(ours, from_replay[4..]);

    // The customer's stamp is the sequence number of its last record, on
    // the one item that also holds its next due time (one write a batch).
    let stamp = get(&client, &table, c, "DUE").await.expect("a stamp");
    assert_eq!(stamp["applied_seq"], Av::S(format!("{:028}", 15)));
    assert_eq!(stamp["entity_type"], Av::S("due".into()));
    let next_due = engine_next_due(&last_sink, c);
    assert_eq!(stamp["next_due"], Av::N(next_due.to_string()));
    assert_eq!(stamp["due_hour"], Av::N(due_key(next_due).to_string()));
    assert!(get(&client, &table, c, "APPLIED").await.is_none(), "no stamp item of its own");
    // The bystander's timer fired in A's last batch, no record of it: its
    // due time is written alone, and its stamp with it is gone (A reads it
    // again at its next record).
    let by = get(&client, &table, "stu_by", "DUE").await.expect("the bystander's item");
    assert!(by.contains_key("next_due") && !by.contains_key("applied_seq"), "{by:?}");
}

/// A customer's next due time after its last vector in `sink`: a day after it.
fn engine_next_due(sink: &MemorySink, customer: &str) -> i64 {
    let last = sink.vectors.iter().filter(|v| v.customer_id.as_str() == customer).map(|v| v.as_of).max();
    last.expect("a vector of the customer") + D
}

#[tokio::test]
async fn the_stamps_of_hundreds_of_customers_are_written_and_read_back() {
    let (client, _) = dynamodb().await;
    let table = unique_name("lambda-stamps");
    setup::ensure_events_table(&client, &table).await.expect("events table");
    let stamps = Stamps::new(client.clone(), &table);

    // 230 customers: ten BatchWriteItem calls, three BatchGetItem calls.
    let written: Vec<(String, String)> =
        (0..230).map(|i| (format!("stu_{i:04}"), format!("{:028}", 1000 + i))).collect();
    let items: Vec<_> = written.iter().map(|(c, seq)| (c.clone(), Some(seq.clone()), None)).collect();
    stamps.write(&items).await.expect("writing the stamps");
    let mut asked: Vec<String> = written.iter().map(|(c, _)| c.clone()).collect();
    asked.extend(["stu_never_1".to_string(), "stu_never_2".to_string()]);
    let read = stamps.read(&asked).await.expect("reading the stamps");
    assert_eq!(read, written.iter().cloned().collect::<HashMap<_, _>>(), "every stamp, none for the others");

    // A later batch's stamp replaces the earlier one; a due time written
    // alone (a timer fired, no record) leaves no stamp; neither deletes.
    let later =
        [("stu_0007".to_string(), Some("later".to_string()), Some(5 * H)), ("stu_0009".to_string(), None, None)];
    stamps.write(&later).await.expect("writing a stamp");
    DueIndex::new(client.clone(), &table, DEFAULT_DUE_INDEX)
        .record(&[("stu_0010".to_string(), Some(6 * H))])
        .await
        .expect("a due time alone");
    let asked: Vec<String> = (7..=10).map(|i| format!("stu_{i:04}")).collect();
    let again = stamps.read(&asked).await.expect("reading");
    assert_eq!(again.len(), 2, "{again:?}");
    assert_eq!(again["stu_0007"], "later");
    assert_eq!(again["stu_0008"], format!("{:028}", 1008));
    assert_eq!(get(&client, &table, "stu_0007", "DUE").await.unwrap()["next_due"], Av::N((5 * H).to_string()));
    assert!(get(&client, &table, "stu_0009", "DUE").await.is_none(), "neither stamp nor due time: deleted");
}

#[tokio::test]
async fn the_due_index_lists_who_is_due_from_day_partitions_and_an_earlier_versions_hours() {
    let (client, _) = dynamodb().await;
    let table = unique_name("lambda-due-days");
    setup::ensure_events_table(&client, &table).await.expect("events table");
    setup::ensure_due_index(&client, &table, DEFAULT_DUE_INDEX).await.expect("due index");
    let index = DueIndex::new(client.clone(), &table, DEFAULT_DUE_INDEX);

    // 12:30 on a day; the run looks one hour back.
    let day = now_ms().div_euclid(D) * D - 3 * D;
    let now = day + 12 * H + 30 * MIN;
    index
        .record(&[
            ("stu_early".to_string(), Some(day + 2 * H)),     // due this morning
            ("stu_now".to_string(), Some(now)),               // due this very moment
            ("stu_later".to_string(), Some(day + 20 * H)),    // due tonight: not yet
            ("stu_tomorrow".to_string(), Some(day + D + H)),  // tomorrow's partition
            ("stu_yesterday".to_string(), Some(day - 2 * H)), // outside the lookback's days
        ])
        .await
        .expect("due times");
    // Two items as an earlier version wrote them: keyed by the exact hour.
    for (c, due) in [("stu_old_hour", day + 11 * H + 10 * MIN), ("stu_old_gone", day + 9 * H)] {
        let mut item = HashMap::from([
            ("customer_id".to_string(), Av::S(c.into())),
            ("sk".to_string(), Av::S("DUE".into())),
            ("entity_type".to_string(), Av::S("due".into())),
            ("next_due".to_string(), Av::N(due.to_string())),
        ]);
        item.insert("due_hour".into(), Av::N(due.div_euclid(H).to_string()));
        put(&client, &table, &item).await;
    }
    // Every new item sits in its day's partition.
    for (c, key) in [("stu_early", day / H), ("stu_tomorrow", day / H + 24), ("stu_yesterday", day / H - 24)] {
        let item = get(&client, &table, c, "DUE").await.expect("a due item");
        assert_eq!(item["due_hour"], Av::N(key.to_string()), "{c}");
    }

    let mut listed = index.due(now, 1).await.expect("the Query");
    listed.sort_by(|a, b| a.customer_id.cmp(&b.customer_id));
    let expected = [("stu_early", day + 2 * H), ("stu_now", now), ("stu_old_hour", day + 11 * H + 10 * MIN)];
    let expected: Vec<Due> = expected.iter().map(|(c, d)| Due { customer_id: c.to_string(), next_due: *d }).collect();
    assert_eq!(listed, expected);
    // A lookback into yesterday reads yesterday's day too.
    let wider = index.due(now, 13).await.expect("the Query");
    assert!(wider.iter().any(|d| d.customer_id == "stu_yesterday"), "{wider:?}");
    assert!(wider.iter().any(|d| d.customer_id == "stu_old_gone"), "{wider:?}");
    assert!(!wider.iter().any(|d| d.customer_id == "stu_later" || d.customer_id == "stu_tomorrow"), "{wider:?}");
}
