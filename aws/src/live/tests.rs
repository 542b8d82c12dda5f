//! The live loop without a server: readers, lineage, [`super::ShardSource`]
//! and the driver over a [`Script`] on tokio's paused clock.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use pulse_runtime::process::Produced;
use pulse_runtime::sink::Sink;
use pulse_schemas::Trigger;

use super::api::{ErrorKind, StreamApi};
use super::reader::ReaderConfig;
use super::scripted::{Fault, Script};
use super::{Clock, Consumer, LiveConfig, LiveSummary, StopReason};

/// 2026-01-05T00:00:00Z.
const T0: i64 = 1_767_571_200_000;
const MIN: i64 = 60_000;

/// A `login` of `customer` at `T0 + seq` minutes, created a minute later.
fn login(customer: &str, seq: u64) -> (u64, String) {
    let ts = T0 + seq as i64 * MIN;
    let id = format!("e{seq}");
    let sk = format!("EVT#{ts:013}#{id}");
    let line = serde_json::json!({
        "eventID": format!("{customer}-{id}"),
        "eventName": "INSERT",
        "eventSource": "aws:dynamodb",
        "dynamodb": {
            "ApproximateCreationDateTime": (ts + MIN) / 1000,
            "Keys": {"customer_id": {"S": customer}, "sk": {"S": sk}},
            "NewImage": {
                "customer_id": {"S": customer}, "sk": {"S": sk}, "entity_type": {"S": "event"},
                "event_id": {"S": id}, "event_type": {"S": "login"}, "ts": {"N": ts.to_string()},
            },
            "SequenceNumber": format!("{seq:021}"),
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
    });
    (seq, line.to_string())
}

/// Logins `seqs`, customer `c{seq % 3}`.
fn logins(seqs: std::ops::RangeInclusive<u64>) -> Vec<(u64, String)> {
    seqs.map(|s| login(&format!("c{}", s % 3), s)).collect()
}

/// Keeps what it was sent.
#[derive(Debug, Default)]
struct Recorder {
    /// Sequence numbers of the event vectors, in order.
    events: Vec<u64>,
    timers: usize,
    flushes: usize,
}

impl Sink for Recorder {
    async fn send(&mut self, produced: Produced) -> Result<()> {
        for v in produced.vectors {
            match v.trigger {
                Trigger::Event => self.events.push(v.source.sequence_number.unwrap().parse().unwrap()),
                Trigger::Timer => self.timers += 1,
            }
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        self.flushes += 1;
        Ok(())
    }
}

fn config() -> LiveConfig {
    LiveConfig {
        idle_exit: Some(Duration::from_secs(5)),
        checkpoint_interval: Duration::from_secs(1),
        reader: ReaderConfig { limit: 2, ..ReaderConfig::default() },
        ..LiveConfig::default()
    }
}

async fn run(script: Script, config: LiveConfig) -> (Result<LiveSummary>, Recorder) {
    let api = StreamApi::Scripted(Arc::new(script));
    let consumer = Consumer::prepare(config, api, None).await.unwrap();
    let mut sink = Recorder::default();
    let summary = consumer.run(&mut sink, std::future::pending()).await;
    (summary, sink)
}

#[tokio::test(start_paused = true)]
async fn a_shard_that_ends_hands_over_to_its_children_and_each_record_is_applied_once_in_order() {
    let script = Script::default()
        .shard("parent", None, true, logins(1..=5))
        .shard("left", Some("parent"), false, logins(10..=12))
        .shard("right", Some("parent"), false, logins(20..=21));
    let (summary, sink) = run(script, config()).await;
    let summary = summary.unwrap();

    assert_eq!(summary.stopped, StopReason::Idle);
    assert_eq!(&sink.events[..5], &[1, 2, 3, 4, 5], "the parent first, in order");
    let mut children = sink.events[5..].to_vec();
    let left: Vec<u64> = children.iter().copied().filter(|s| *s < 20).collect();
    assert_eq!(left, vec![10, 11, 12], "each shard in order");
    children.sort_unstable();
    assert_eq!(children, vec![10, 11, 12, 20, 21]);
    assert_eq!(summary.totals.records, 10);
    assert_eq!(summary.totals.vectors_event, 10);
    assert_eq!(summary.shards_finished, 1, "the parent; its children stay open");
}

#[tokio::test(start_paused = true)]
async fn an_expired_iterator_is_renewed_after_the_last_record_read_nothing_lost_nothing_repeated() {
    let script = Script::default()
        .shard("s", None, true, logins(1..=6))
        .faults("s", [None, Some(Fault::Error(ErrorKind::Expired))]);
    let (summary, sink) = run(script, config()).await;
    let summary = summary.unwrap();
    assert_eq!(sink.events, vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(summary.totals.records, 6);
    assert_eq!(summary.engine.unwrap().duplicates, 0, "nothing read twice");
    assert_eq!(summary.stopped, StopReason::Exhausted, "a closed stream read to its end");
}

#[tokio::test(start_paused = true)]
async fn trimmed_records_are_counted_and_reading_goes_on_at_the_oldest_retained() {
    // The first page (1, 2) is read; then retention drops the first four
    // records, so 3 and 4 are lost.
    let script = Script::default().shard("s", None, true, logins(1..=8)).faults("s", [None, Some(Fault::TrimTo(4))]);
    let (summary, sink) = run(script, config()).await;
    let summary = summary.unwrap();
    assert_eq!(sink.events, vec![1, 2, 5, 6, 7, 8]);
    assert_eq!(summary.totals.trimmed, 1);
    assert_eq!(summary.totals.records, 6);
}

#[tokio::test(start_paused = true)]
async fn throttling_is_waited_out_with_backoff() {
    let throttled = Some(Fault::Error(ErrorKind::Throttled));
    let script =
        Script::default().shard("s", None, true, logins(1..=4)).faults("s", [None, throttled.clone(), throttled]);
    let started = tokio::time::Instant::now();
    let (summary, sink) = run(script, config()).await;
    summary.unwrap();
    assert_eq!(sink.events, vec![1, 2, 3, 4]);
    assert!(started.elapsed() >= Duration::from_millis(100), "throttled reads wait: {:?}", started.elapsed());
}

/// An endpoint gone for good (every read a network error): a bounded run
/// (`give_up_after`, set by `--idle-exit-s`) fails with the shard and the
/// cause named once the reads have failed that long; it used to retry
/// forever, silently.
#[tokio::test(start_paused = true)]
async fn a_bounded_run_gives_up_on_a_shard_whose_reads_keep_failing() {
    let down = std::iter::repeat_n(Some(Fault::Error(ErrorKind::Transient)), 10_000);
    let script =
        Script::default().shard("s", None, false, logins(1..=4)).faults("s", std::iter::once(None).chain(down));
    let mut bounded = config();
    bounded.reader.give_up_after = Some(Duration::from_secs(60));
    let started = tokio::time::Instant::now();
    let (summary, sink) = run(script, bounded).await;
    let error = format!("{:#}", summary.unwrap_err());
    assert!(error.contains("cannot read shard s") && error.contains("reads kept failing for 6"), "{error}");
    assert_eq!(sink.events, vec![1, 2], "what was read before is applied");
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(60) && took < Duration::from_secs(80), "{took:?}");
}

#[tokio::test(start_paused = true)]
async fn a_vanished_shard_is_counted_lost_and_its_children_still_start() {
    let script = Script::default()
        .shard("parent", None, true, logins(1..=4))
        .shard("child", Some("parent"), true, logins(10..=11))
        .faults("parent", [None, Some(Fault::Error(ErrorKind::NotFound))]);
    let (summary, sink) = run(script, config()).await;
    let summary = summary.unwrap();
    assert_eq!(sink.events, vec![1, 2, 10, 11]);
    assert_eq!(summary.totals.shards_lost, 1);
    assert_eq!(summary.stopped, StopReason::Exhausted);
}

#[tokio::test(start_paused = true)]
async fn a_fatal_read_stops_the_run_with_the_shard_named() {
    let script =
        Script::default().shard("s", None, false, logins(1..=4)).faults("s", [Some(Fault::Error(ErrorKind::Fatal))]);
    let (summary, sink) = run(script, config()).await;
    let error = format!("{:#}", summary.unwrap_err());
    assert!(error.contains("cannot read shard s"), "{error}");
    assert!(sink.events.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_restart_resumes_after_the_last_checkpointed_record() {
    let dir = tempfile::tempdir().unwrap();
    let checkpointed = LiveConfig { checkpoint: Some(dir.path().join("cp")), ..config() };
    let script = || Script::default().shard("s", None, true, logins(1..=7));

    let (first, sink) = run(script(), LiveConfig { max_records: Some(3), ..checkpointed.clone() }).await;
    assert_eq!(first.unwrap().stopped, StopReason::MaxRecords);
    assert_eq!(sink.events, vec![1, 2, 3]);

    let (second, sink) = run(script(), checkpointed).await;
    let second = second.unwrap();
    assert_eq!(sink.events, vec![4, 5, 6, 7], "after the checkpoint, nothing again");
    assert_eq!(second.records_this_run, 4);
    assert_eq!(second.totals.records, 7, "totals span the restart");
    assert_eq!(second.totals.vectors_event, 7);
}

#[tokio::test(start_paused = true)]
async fn with_the_wall_clock_a_caught_up_consumer_rescores_silent_customers() {
    let script = || Script::default().shard("s", None, false, logins(1..=3));
    let (stream, sink_stream) = run(script(), config()).await;
    assert_eq!(stream.unwrap().totals.vectors_timer, 0, "stream time stays at the last record");
    assert_eq!(sink_stream.timers, 0);

    let (wall, sink_wall) = run(script(), LiveConfig { clock: Clock::Wall, ..config() }).await;
    let wall = wall.unwrap();
    // The records are months old: every customer's timers fire up to now.
    assert!(wall.totals.vectors_timer >= 3, "{:?}", wall.totals);
    assert_eq!(sink_wall.timers as u64, wall.totals.vectors_timer);
    assert!(sink_wall.flushes >= 1);
}
