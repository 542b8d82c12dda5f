//! `pulse run --source dynamodb-streams`, in-process, against the local AWS
//! server (moto): events written to a table with PutItem, BatchWriteItem and
//! DeleteItem come out of the live consumer as the vectors a replay gives.
//!
//! * `a_table_streamed_live_gives_the_vectors_a_replay_gives`: a hostile
//!   synthetic marketplace (duplicates, delays, corrections, retractions,
//!   late events, non-event items) plus invalid items, the pipeline's own
//!   prediction items and an application's correction and deletion, written to
//!   a table. The live run's vectors equal (1) a replay of the capture it
//!   wrote, timers included, and (2) with timers off, a replay of the stream
//!   records those writes make (the reference [`live::TableWriter`] keeps). Every
//!   invalid item is a dead letter with its reason, nothing else is; predictions
//!   make neither vectors nor dead letters; every vector names its shard and
//!   sequence number.
//! * `stopping_and_resuming_gives_the_files_of_one_uninterrupted_run`: a run
//!   stopped three times (`max_records`, mid-page) and resumed from its
//!   checkpoint, with more events written in between, ends with features,
//!   dead letters and capture byte-identical to one uninterrupted run's.
//!
//! Two runs are comparable because timers fire on stream time (the records'
//! `ApproximateCreationDateTime`, stamped by the server when the item was
//! written), never on the wall clock (`Clock::Stream`): reading the same
//! table twice gives the same times.

mod common;
#[path = "common/live.rs"]
mod live;

use common::{parse_json_lines, parse_vectors, replay_capture, D, H};
use live::*;
use pulse_operators::TimerPolicy;
use serde_json::json;

#[test]
fn a_table_streamed_live_gives_the_vectors_a_replay_gives() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let (writer, summary, summary_off) = block_on(async {
        let sdk = sdk().await;
        let (table, _) = events_table(&sdk, "live-ddb").await;
        let mut w = TableWriter::new(&sdk, &table);
        let lines = synth_lines(120, 3, 11, writable_hostility());
        let (first, rest) = lines.split_at(lines.len() / 2);
        w.write_lines(first).await;
        let now = now_ms();
        // Invalid items in the middle of the stream: they must not block it.
        let tutor = ("tutor_id", json!({"S": "tut_1"}));
        w.put(event_image("stu_bad", "bad_type", "teleport", now - D, &[])).await;
        w.put(event_image(
            "stu_bad",
            "bad_rating",
            "session_rated",
            now - D,
            &[tutor.clone(), ("rating", json!({"N": "9"}))],
        ))
        .await;
        w.put(event_image("stu_bad", "no_minutes", "session_completed", now - D, std::slice::from_ref(&tutor))).await;
        w.put(event_image("stu_bad", "from_future", "login", now + 3 * H, &[])).await;
        // The pipeline's own predictions: skipped silently, also when updated.
        w.put(prediction_image("stu_000001", now, 0.8)).await;
        w.put(prediction_image("stu_000001", now, 0.3)).await;
        w.write_lines(rest).await;
        // An application's correction (a MODIFY) and deletion (a REMOVE).
        let rated = |rating: &str| {
            event_image(
                "stu_fix",
                "r1",
                "session_rated",
                now - 2 * D,
                &[tutor.clone(), ("rating", json!({"N": rating}))],
            )
        };
        w.put(event_image("stu_fix", "l0", "login", now - 20 * D, &[])).await;
        w.put(rated("2")).await;
        w.put(rated("4")).await;
        let login = event_image("stu_fix", "l1", "login", now - D, &[]);
        w.put(login.clone()).await;
        w.delete("stu_fix", login["sk"]["S"].as_str().unwrap()).await;
        w.put(prediction_image("stu_fix", now, 0.1)).await;

        let mut config = test_config(TimerPolicy::default(), Some(path("cp")));
        config.capture = Some(path("capture.jsonl.zst"));
        let api = table_stream(&sdk, &table).await;
        let summary = consume(config, api.clone(), &path("features.jsonl"), &path("dead.jsonl")).await;
        let summary_off =
            consume(test_config(TimerPolicy::Off, None), api, &path("features-off.jsonl"), &path("dead-off.jsonl"))
                .await;
        (w, summary, summary_off)
    });
    let written = writer.expected.len() as u64;
    assert_eq!(summary.totals.records, written, "every stream record was read once");
    assert_eq!(summary_off.totals.records, written);
    // DynamoDB Streams has no MillisBehindLatest: the reader's own age of
    // its pages, here records written moments before they were read.
    let behind = summary.millis_behind_latest.expect("an age for DynamoDB Streams pages");
    assert!((0..120_000).contains(&behind), "{behind} ms behind");
    eprintln!(
        "live run: {} records in {:.2} s ({:.0} records/s), {} vectors",
        summary.records_this_run,
        summary.seconds,
        summary.records_per_second,
        summary.totals.vectors_event + summary.totals.vectors_timer
    );

    let live = parse_vectors(&std::fs::read(path("features.jsonl")).unwrap());
    assert!(summary.totals.vectors_timer > 0, "timers fired on stream time");
    for v in &live {
        assert!(
            v.source.shard_id.is_some() && v.source.sequence_number.is_some(),
            "a live vector names its shard and sequence number: {:?}",
            v.source
        );
    }

    // (1) The capture of the live run, replayed: the same vectors, timers included.
    let replayed = replay_capture(&path("capture.jsonl.zst"), TimerPolicy::default());
    assert_eq!(replayed.summary.records, written);
    assert_eq!(without_source(replayed.vectors()), without_source(live.clone()), "capture replay == live run");
    let dead = parse_json_lines(&std::fs::read(path("dead.jsonl")).unwrap());
    let strip = |d: &[serde_json::Value]| -> Vec<(String, serde_json::Value)> {
        d.iter().map(|d| (d["code"].as_str().unwrap().to_owned(), d["record"].clone())).collect()
    };
    assert_eq!(strip(&replayed.dead_letters()), strip(&dead), "the same dead letters, with the same records");

    // (2) The writes' own stream records, replayed: the same event vectors.
    let reference = replay_capture(&writer.write_expected(&path("expected.jsonl")), TimerPolicy::Off);
    let live_off = parse_vectors(&std::fs::read(path("features-off.jsonl")).unwrap());
    assert!(!live_off.is_empty());
    assert_eq!(without_source(reference.vectors()), without_source(live_off), "live run == replay of the writes");

    // Invalid items are dead letters with their reason, and nothing else is.
    let mut codes: Vec<&str> = dead.iter().map(|d| d["code"].as_str().unwrap()).collect();
    codes.sort_unstable();
    assert_eq!(codes, ["future_event", "missing_attribute", "out_of_range", "unknown_event_type"]);
    let codes_off: Vec<String> =
        reference.dead_letters().iter().map(|d| d["code"].as_str().unwrap().to_owned()).collect();
    assert_eq!(codes_off.len(), 4, "{codes_off:?}");
    assert_eq!(summary.totals.invalid.values().sum::<u64>(), 4);
    assert!(
        dead.iter().all(|d| d["record"]["dynamodb"]["Keys"]["customer_id"]["S"] == "stu_bad"),
        "no prediction item is a dead letter"
    );
    // Predictions are records that are not events: no effect, no error.
    let engine = summary.engine.expect("the engine's counters");
    assert!(engine.non_events >= 3, "{engine:?}");
    // The correction and the deletion: stu_fix ends with its login and the corrected rating.
    let fix =
        live.iter().rev().find(|v| v.customer_id.as_str() == "stu_fix" && v.trigger == pulse_schemas::Trigger::Event);
    let fix = fix.expect("stu_fix has vectors");
    let names = pulse_schemas::FEATURE_NAMES;
    let at = |name: &str| fix.features[names.iter().position(|n| *n == name).unwrap()];
    assert_eq!(at("avg_rating_7d"), 4.0, "the correction replaced the rating");
    assert_eq!(at("logins_7d"), 0.0, "the deleted login is retracted (the other is 19 days older)");
    assert_eq!(at("logins_30d"), 1.0);
}

#[test]
fn stopping_and_resuming_gives_the_files_of_one_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let files = |run: &str| {
        (
            path(&format!("{run}-features.jsonl")),
            path(&format!("{run}-dead.jsonl")),
            path(&format!("{run}-capture.jsonl")),
        )
    };
    let config = |run: &str, max: Option<u64>| {
        let mut c = test_config(TimerPolicy::default(), Some(path(&format!("{run}.ckpt"))));
        c.capture = Some(files(run).2);
        c.max_records = max;
        c
    };
    let (total, resumed_runs) = block_on(async {
        let sdk = sdk().await;
        let (table, _) = events_table(&sdk, "live-resume").await;
        let mut w = TableWriter::new(&sdk, &table);
        let lines = synth_lines(150, 3, 5, writable_hostility());
        let (first, rest) = lines.split_at(lines.len() * 2 / 3);
        w.write_lines(first).await;
        w.put(event_image("stu_bad", "bad_type", "teleport", now_ms() - D, &[])).await;
        let api = table_stream(&sdk, &table).await;
        let (f, d, _) = files("stop");
        let mut runs = Vec::new();
        // 137 and 611: in the middle of GetRecords pages.
        for max in [Some(137), Some(611), None] {
            runs.push(consume(config("stop", max), api.clone(), &f, &d).await);
        }
        w.write_lines(rest).await;
        runs.push(consume(config("stop", None), api.clone(), &f, &d).await);
        let (f, d, _) = files("once");
        let once = consume(config("once", None), api, &f, &d).await;
        assert_eq!(once.totals.records as usize, w.expected.len());
        (w.expected.len() as u64, runs)
    });
    let stopped: Vec<_> = resumed_runs.iter().map(|s| (s.stopped, s.totals.records)).collect();
    use pulse_aws::live::StopReason::{Idle, MaxRecords};
    let first_part = resumed_runs[2].totals.records;
    assert_eq!(stopped, [(MaxRecords, 137), (MaxRecords, 611), (Idle, first_part), (Idle, total)]);
    assert_eq!(resumed_runs[1].records_this_run, 611 - 137, "a resumed run reads only what follows its checkpoint");
    let (stop, once) = (files("stop"), files("once"));
    for (a, b) in [(&stop.0, &once.0), (&stop.1, &once.1), (&stop.2, &once.2)] {
        let (a_bytes, b_bytes) = (std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
        assert!(!b_bytes.is_empty(), "{} is empty", b.display());
        assert!(a_bytes == b_bytes, "{} differs from {}", a.display(), b.display());
    }
}
