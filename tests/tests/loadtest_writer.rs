//! The load test's producer against the local server: every generated item
//! it reports written is in the table, the rate and count bounds hold, and
//! every event written is pending in the latency tracker until predicted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pulse::aws::{setup, AwsArgs};
use pulse::loadtest::latency::LatencyTracker;
use pulse::loadtest::live::{write_events, WriteLoad};
use pulse::loadtest::writer::TableWriter;
use pulse::synth::SynthConfig;
use pulse_e2e::{aws_endpoint, unique_name};

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
