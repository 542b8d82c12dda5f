//! `pulse loadtest` against the local server: the producer's items land in
//! the table within its bounds, every event written is pending in the latency
//! tracker until predicted, and the command scores every event it writes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

mod common;

use pulse_aws::{setup, AwsArgs};
use pulse_e2e::{aws_endpoint, unique_name};
use pulse_synth::loadtest::latency::LatencyTracker;
use pulse_synth::loadtest::live::{write_events, WriteLoad};
use pulse_synth::loadtest::writer::TableWriter;
use pulse_synth::SynthConfig;

#[tokio::test]
async fn written_items_land_in_the_table_and_stop_at_the_count() {
    let config = AwsArgs::local(aws_endpoint()).load().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = unique_name("loadtest");
    setup::ensure_events_table(&client, &table).await.unwrap();

    let load = WriteLoad {
        synth: SynthConfig { customers: 20, days: 10, seed: 5, ..SynthConfig::default() },
        rate: 2_000.0,
        duration: Duration::from_secs(60),
        max_events: 130,
        concurrency: 4,
    };
    let tracker = Arc::new(LatencyTracker::new());
    let seen = AtomicU64::new(0);
    let report = write_events(&load, &TableWriter::new(client.clone(), &table), &tracker, &|n| {
        seen.fetch_max(n, Ordering::Relaxed);
    })
    .await
    .unwrap();

    assert_eq!(report.items_written, 130, "stops at --max-events: {report:?}");
    assert_eq!(seen.load(Ordering::Relaxed), 130, "progress saw every item");
    assert!(report.write_calls >= 6, "25 items per call at most: {report:?}");
    assert!(report.events_written > 0 && report.events_written <= 130);
    assert_eq!(tracker.pending(), report.events_written, "every written event awaits its prediction");

    let count =
        client.scan().table_name(&table).select(aws_sdk_dynamodb::types::Select::Count).send().await.unwrap().count();
    // Corrections overwrite the item they correct, so the table may hold
    // fewer items than were written, never more.
    assert!(count > 0 && count as u64 <= report.items_written, "{count} items for {report:?}");
}

/// `pulse loadtest` as a user runs it: every event written gets a prediction
/// (latency resolved, none pending), the predictions are in the table, and
/// the JSON summary carries the figures the README quotes.
#[test]
fn the_loadtest_command_scores_every_event_it_writes() {
    let dir = tempfile::tempdir().unwrap();
    let summary = dir.path().join("summary.json");
    let table = unique_name("loadtest-cli");
    let out = std::process::Command::new(common::pulse_bin())
        .args(["loadtest", "--quiet", "--customers", "30", "--days", "10", "--rate", "200", "--duration-s", "30"])
        .args(["--max-events", "150", "--linger-s", "0.5", "--metrics", "off", "--table", &table])
        .arg("--summary-json")
        .arg(&summary)
        .env("AWS_ENDPOINT_URL", aws_endpoint())
        .output()
        .unwrap();
    assert!(out.status.success(), "pulse loadtest failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    let events = report["write"]["events_written"].as_u64().unwrap();
    assert_eq!(report["write"]["items_written"], 150, "{report:#}");
    assert!(events > 0);
    assert_eq!(report["latency"]["resolved"].as_u64(), Some(events), "every event's prediction was stored: {report:#}");
    assert_eq!(report["latency"]["pending"], 0);
    assert!(report["latency"]["p99_ms"].as_f64().unwrap() >= report["latency"]["p50_ms"].as_f64().unwrap());
    let calls = report["scoring"]["model_calls"].as_u64().unwrap();
    assert!(calls > 0 && calls <= report["scoring"]["model_rows"].as_u64().unwrap());
    assert!(report["records_consumed"].as_u64().unwrap() >= events, "the consumer read every event back");
    assert!(report["rescan"]["endpoint_calls"].as_f64().unwrap() > 0.0);
    let customers = report["customers"].as_u64().unwrap();

    let predictions = block_on(async {
        let config = AwsArgs::local(aws_endpoint()).load().await;
        let client = aws_sdk_dynamodb::Client::new(&config);
        let mut n = 0;
        let mut start = None;
        loop {
            let page = client
                .scan()
                .table_name(&table)
                .filter_expression("sk = :p")
                .expression_attribute_values(":p", aws_sdk_dynamodb::types::AttributeValue::S("PRED#latest".into()))
                .set_exclusive_start_key(start)
                .send()
                .await
                .unwrap();
            n += page.items().len() as u64;
            start = page.last_evaluated_key().cloned();
            if start.is_none() {
                return n;
            }
        }
    });
    assert_eq!(predictions, customers, "one prediction item per customer written");
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}
