//! `pulse run --source kinesis` against the local AWS server: records of
//! Kinesis Data Streams for DynamoDB (the record as JSON in the Kinesis
//! record's data, `ApproximateCreationDateTime` in milliseconds) on a
//! two-shard stream, with the duplicates and reordering Kinesis allows.
//!
//! The local server has no DynamoDB → Kinesis streaming destination, so the
//! test plays DynamoDB's part: each record of a hostile synthetic capture
//! (every §2 imperfection, invalid items included) is put on the stream in
//! that format, partitioned by customer as DynamoDB partitions by key, and
//! 5% of them are put twice in a row (Kinesis' at-least-once delivery). For
//! a few customers two of their (valid, distinct) INSERTs trade places.
//!
//! * `kinesis_records_give_the_vectors_of_a_replay`: with timers off (two
//!   shards interleave in no fixed order, and timers fire on the stream time
//!   of all shards), every customer whose records kept their order gets
//!   exactly the vectors, in the same order, that a replay of the original
//!   capture gives; a customer with swapped records ends with the same final
//!   vector. With timers on, the live run's own capture replays to exactly
//!   its vectors; `pulse capture --source kinesis` writes the same records;
//!   capture lines carry seconds, not milliseconds.

mod common;
#[path = "common/live.rs"]
mod live;

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use common::{describe, kinesis_payload, parse_vectors, replay_capture, run_pulse};
use live::*;
use pulse_aws::live::api::StreamApi;
use pulse_e2e::{aws_endpoint, unique_name};
use pulse_operators::TimerPolicy;
use pulse_schemas::{FeatureVector, Trigger, DAY_MS};
use serde_json::Value;

fn is_plain_insert(line: &str) -> Option<(String, String)> {
    let record: Value = serde_json::from_str(line).ok()?;
    let image = &record["dynamodb"]["NewImage"];
    let plain =
        record["eventName"] == "INSERT" && image.get("synth_fault").is_none() && image["entity_type"]["S"] == "event";
    if !plain {
        return None;
    }
    Some((image["customer_id"]["S"].as_str()?.to_owned(), image["event_id"]["S"].as_str()?.to_owned()))
}

/// What goes on the stream: the capture's records with some duplicated and,
/// for a few customers, two plain INSERTs swapped. Returns the lines in
/// stream order and the customers whose order changed.
fn shuffle(lines: &[String]) -> (Vec<String>, BTreeSet<String>) {
    let mut order: Vec<String> = lines.to_vec();
    let mut swapped = BTreeSet::new();
    let mut last_insert: BTreeMap<String, (usize, String)> = BTreeMap::new();
    for i in 0..order.len() {
        let Some((customer, id)) = is_plain_insert(&order[i]) else { continue };
        if swapped.len() < 8 && i % 7 == 0 && !swapped.contains(&customer) {
            if let Some((j, other_id)) = last_insert.get(&customer).cloned() {
                if other_id != id {
                    order.swap(i, j);
                    swapped.insert(customer.clone());
                    continue;
                }
            }
        }
        last_insert.insert(customer, (i, id));
    }
    let mut stream = Vec::with_capacity(order.len() * 21 / 20);
    for (i, line) in order.into_iter().enumerate() {
        let again = i % 20 == 3;
        stream.push(line.clone());
        if again {
            stream.push(line);
        }
    }
    (stream, swapped)
}

fn by_customer(vectors: Vec<FeatureVector>) -> BTreeMap<String, Vec<(i64, Vec<f64>)>> {
    let mut map: BTreeMap<String, Vec<(i64, Vec<f64>)>> = BTreeMap::new();
    for v in vectors {
        assert_eq!(v.trigger, Trigger::Event);
        map.entry(v.customer_id.to_string()).or_default().push((v.as_of, v.features.to_vec()));
    }
    map
}

#[test]
fn kinesis_records_give_the_vectors_of_a_replay() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    // Ending yesterday, so that a day of wall-clock time lies after the stream.
    let yesterday = now_ms() / DAY_MS * DAY_MS - DAY_MS;
    let lines = synth_lines_until(yesterday, 150, 3, 31, pulse_synth::Hostility::hostile());
    std::fs::write(path("original.jsonl"), lines.join("\n") + "\n").unwrap();
    let (stream_lines, swapped) = shuffle(&lines);
    assert!(swapped.len() >= 3, "some customers have swapped records: {swapped:?}");

    let stream_name = unique_name("live-kinesis");
    let (on, off, wall) = block_on(async {
        let sdk = sdk().await;
        let kinesis = aws_sdk_kinesis::Client::new(&sdk);
        kinesis.create_stream().stream_name(&stream_name).shard_count(2).send().await.expect("stream created");
        put_lines(&kinesis, &stream_name, &stream_lines).await;
        let api = StreamApi::kinesis(kinesis, &stream_name).await.expect("the stream");
        let mut config = test_config(TimerPolicy::default(), Some(path("on.ckpt")));
        config.capture = Some(path("live-capture.jsonl"));
        config.reader.limit = 10_000;
        let on = consume(config, api.clone(), &path("on.jsonl"), &path("on-dead.jsonl")).await;
        let mut config = test_config(TimerPolicy::Off, None);
        config.reader.limit = 10_000;
        let off = consume(config, api.clone(), &path("off.jsonl"), &path("off-dead.jsonl")).await;
        let mut config = test_config(TimerPolicy::default(), None);
        config.clock = pulse_aws::live::Clock::Wall;
        let wall = consume(config, api, &path("wall.jsonl"), &path("wall-dead.jsonl")).await;
        (on, off, wall)
    });
    assert_eq!(on.totals.records as usize, stream_lines.len(), "every Kinesis record read once");
    assert_eq!(off.totals.records as usize, stream_lines.len());
    eprintln!("kinesis: {} records in {:.2} s ({:.0}/s)", on.records_this_run, on.seconds, on.records_per_second);

    // Capture lines carry seconds, as DynamoDB Streams does.
    let capture = std::fs::read_to_string(path("live-capture.jsonl")).unwrap();
    let first: Value = serde_json::from_str(capture.lines().next().unwrap()).unwrap();
    let created = first["dynamodb"]["ApproximateCreationDateTime"].as_f64().unwrap();
    assert!((1.0e9..1.0e10).contains(&created), "seconds, not milliseconds: {created}");

    // With timers off: per customer, the vectors of a replay of the original capture.
    let reference = by_customer(replay_capture(&path("original.jsonl"), TimerPolicy::Off).vectors());
    let live = by_customer(parse_vectors(&std::fs::read(path("off.jsonl")).unwrap()));
    assert_eq!(live.keys().collect::<Vec<_>>(), reference.keys().collect::<Vec<_>>());
    for (customer, expected) in &reference {
        let got = &live[customer];
        if swapped.contains(customer) {
            assert_eq!(got.last(), expected.last(), "{customer}: the same final vector after reordering");
        } else {
            assert_eq!(got, expected, "{customer}: the same vectors in the same order");
        }
    }
    // Duplicated invalid records are dead letters each time; no valid one is.
    let dead_ids = |name: &str| -> BTreeSet<String> {
        common::parse_json_lines(&std::fs::read(path(name)).unwrap())
            .iter()
            .map(|d| d["record"]["eventID"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let replayed_dead = replay_capture(&path("original.jsonl"), TimerPolicy::Off).dead_letters();
    let expected_dead: BTreeSet<String> =
        replayed_dead.iter().map(|d| d["record"]["eventID"].as_str().unwrap_or_default().to_owned()).collect();
    assert!(!expected_dead.is_empty(), "the hostile capture has invalid records");
    assert_eq!(dead_ids("off-dead.jsonl"), expected_dead);

    // With timers on: the live run's capture replays to exactly its vectors.
    let replayed = replay_capture(&path("live-capture.jsonl"), TimerPolicy::default());
    let live_on = parse_vectors(&std::fs::read(path("on.jsonl")).unwrap());
    assert!(live_on.iter().any(|v| v.trigger == Trigger::Timer));
    assert!(without_source(replayed.vectors()) == without_source(live_on), "capture replay == live run");

    // With the wall clock, silent customers are rescored up to now once the
    // stream is caught up, past the last record's time.
    let last_created_ms = (lines
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["dynamodb"]["ApproximateCreationDateTime"].as_f64().unwrap())
        .fold(f64::MIN, f64::max)
        * 1000.0) as i64;
    let wall_vectors = parse_vectors(&std::fs::read(path("wall.jsonl")).unwrap());
    let latest_timer = wall_vectors.iter().filter(|v| v.trigger == Trigger::Timer).map(|v| v.as_of).max().unwrap();
    assert!(
        wall.totals.vectors_timer > on.totals.vectors_timer,
        "{} vs {}",
        wall.totals.vectors_timer,
        on.totals.vectors_timer
    );
    assert!(latest_timer > last_created_ms && latest_timer <= now_ms(), "timers ran to the wall clock: {latest_timer}");
    assert!(wall_vectors.iter().filter(|v| v.as_of > last_created_ms).all(|v| v.trigger == Trigger::Timer));

    // `pulse capture` writes the records it reads (the same lines, shard by shard).
    let out = run_pulse([
        "capture",
        "--source",
        "kinesis",
        "--stream",
        &stream_name,
        "--endpoint-url",
        &aws_endpoint(),
        "--out",
        &path("cli-capture.jsonl.zst").display().to_string(),
        "--idle-exit-s",
        "1",
    ]);
    assert!(out.status.success(), "{}", describe(&out));
    let mut cli = String::new();
    std::io::Read::read_to_string(
        &mut pulse_runtime::io::open_input(&path("cli-capture.jsonl.zst")).unwrap().reader,
        &mut cli,
    )
    .unwrap();
    let sorted = |s: &str| {
        let mut v: Vec<String> = s.lines().map(str::to_owned).collect();
        v.sort();
        v
    };
    assert_eq!(sorted(&cli), sorted(&capture));
}

/// Puts `lines` on `stream` as DynamoDB writes them (partitioned by customer).
async fn put_lines(kinesis: &aws_sdk_kinesis::Client, stream: &str, lines: &[String]) {
    for chunk in lines.chunks(500) {
        let entries = chunk
            .iter()
            .map(|l| {
                let (key, data) = kinesis_payload(l);
                PutRecordsRequestEntry::builder().partition_key(key).data(Blob::new(data)).build().unwrap()
            })
            .collect();
        let out = kinesis.put_records().stream_name(stream).set_records(Some(entries)).send().await;
        assert_eq!(out.expect("records put").failed_record_count(), Some(0));
    }
}

/// The ids of the stream's open shards, in hash-key order.
async fn open_shards(kinesis: &aws_sdk_kinesis::Client, stream: &str) -> Vec<String> {
    let listed = kinesis.list_shards().stream_name(stream).send().await.expect("ListShards");
    let mut open: Vec<(u128, String)> = listed
        .shards()
        .iter()
        .filter(|s| s.sequence_number_range().is_some_and(|r| r.ending_sequence_number().is_none()))
        .map(|s| (s.hash_key_range().unwrap().starting_hash_key().parse().unwrap(), s.shard_id().to_owned()))
        .collect();
    open.sort();
    open.into_iter().map(|(_, id)| id).collect()
}

/// A third of a marketplace's records on one shard, the shard split in two,
/// a third more, the two merged back into one, the last third: every
/// customer's records cross a split and a merge. `pulse run` reads parents
/// before their children, so each customer gets exactly the vectors of a
/// replay of the original capture, in order.
#[test]
fn a_split_and_a_merge_keep_each_customers_records_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let lines = synth_lines(60, 6, 41, pulse_synth::Hostility::none());
    std::fs::write(path("original.jsonl"), lines.join("\n") + "\n").unwrap();
    let stream_name = unique_name("live-kinesis-split");
    let (summary, shards) = block_on(async {
        let sdk = sdk().await;
        let kinesis = aws_sdk_kinesis::Client::new(&sdk);
        kinesis.create_stream().stream_name(&stream_name).shard_count(1).send().await.expect("stream created");
        let third = lines.len() / 3;
        put_lines(&kinesis, &stream_name, &lines[..third]).await;
        let parent = open_shards(&kinesis, &stream_name).await.remove(0);
        kinesis
            .split_shard()
            .stream_name(&stream_name)
            .shard_to_split(&parent)
            .new_starting_hash_key((1u128 << 127).to_string())
            .send()
            .await
            .expect("SplitShard");
        put_lines(&kinesis, &stream_name, &lines[third..2 * third]).await;
        let children = open_shards(&kinesis, &stream_name).await;
        assert_eq!(children.len(), 2, "the split made two shards: {children:?}");
        kinesis
            .merge_shards()
            .stream_name(&stream_name)
            .shard_to_merge(&children[0])
            .adjacent_shard_to_merge(&children[1])
            .send()
            .await
            .expect("MergeShards");
        put_lines(&kinesis, &stream_name, &lines[2 * third..]).await;
        let shards = kinesis.list_shards().stream_name(&stream_name).send().await.expect("ListShards").shards().len();
        let api = StreamApi::kinesis(kinesis, &stream_name).await.expect("the stream");
        let config = test_config(TimerPolicy::Off, None);
        (consume(config, api, &path("live.jsonl"), &path("dead.jsonl")).await, shards)
    });
    assert_eq!(shards, 4, "a parent, two children of the split, the child of the merge");
    assert_eq!(summary.totals.records as usize, lines.len(), "every record read once");
    let reference = by_customer(replay_capture(&path("original.jsonl"), TimerPolicy::Off).vectors());
    let live = by_customer(parse_vectors(&std::fs::read(path("live.jsonl")).unwrap()));
    assert_eq!(live.len(), reference.len());
    for (customer, expected) in &reference {
        assert_eq!(
            &live[customer], expected,
            "{customer}: the same vectors in the same order across the split and merge"
        );
    }
}
