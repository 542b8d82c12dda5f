//! The driver against scripted sources and recording sinks, on tokio's
//! paused clock: no server, no files, every timing exact.
//!
//! The source plays a script of pages (batches, empty pages, retryable and
//! fatal errors, the end of the input) and records what it is
//! acknowledged; the sink records every call and can be told to fail its
//! flush. What is checked is the driver's contract: every record applied
//! once, in order; a position acknowledged only after a flush (or the final
//! close) returned `Ok`, and exactly up to the last record sent before it;
//! retries with backoff; checkpoints, idle exit and shutdown on the clock.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use pulse_operators::{Engine, EngineConfig};
use pulse_runtime::background::Background;
use pulse_runtime::driver::{Checkpoints, Driver, DriverConfig, Hydrate, StopReason, SOURCE_RETRY};
use pulse_runtime::process::{Processor, Produced};
use pulse_runtime::retry::Backoff;
use pulse_runtime::sink::Sink;
use pulse_runtime::source::{Batch, Body, Durable, Record, Source, SourceError};
use pulse_schemas::StreamRecord;
use tokio::time::Instant;

/// 2026-01-05T00:00:00Z.
const T0: i64 = 1_767_571_200_000;
const MIN: i64 = 60_000;

/// A `login` record of `customer` at `T0 + seq` minutes, created a minute later.
fn login(customer: &str, seq: u64) -> String {
    let ts = T0 + seq as i64 * MIN;
    let id = format!("e{seq}");
    let sk = format!("EVT#{ts:013}#{id}");
    serde_json::json!({
        "eventID": format!("{customer}-{id}"),
        "eventName": "INSERT",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {
            "ApproximateCreationDateTime": (ts + MIN) / 1000,
            "Keys": {"customer_id": {"S": customer}, "sk": {"S": sk}},
            "NewImage": {
                "customer_id": {"S": customer}, "sk": {"S": sk}, "entity_type": {"S": "event"},
                "event_id": {"S": id}, "event_type": {"S": "login"}, "ts": {"N": ts.to_string()},
            },
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
    })
    .to_string()
}

/// The stream time a record `seq` of [`login`] moves to.
fn created(seq: u64) -> i64 {
    T0 + seq as i64 * MIN + MIN
}

/// One page of the script.
enum Page {
    /// Records with these sequence numbers (one customer each, `c{seq % 3}`).
    Records(Vec<u64>),
    /// These records, each with its sequence number.
    Lines(Vec<(u64, String)>),
    /// A line that is not a record, at this sequence number.
    Garbage(u64),
    /// A blank line (no record at all), at this sequence number.
    Blank(u64),
    /// Nothing new.
    Empty,
    /// Nothing new, but stream time moves to this (a caught-up live source's wall clock).
    Advance(i64),
    /// A read that fails and is worth retrying.
    Throttled,
    /// A read that fails for good.
    Broken,
    /// The end of the input.
    End,
}

/// Plays its pages in order; once they run out, it is caught up forever.
#[derive(Default)]
struct Scripted {
    pages: VecDeque<Page>,
    /// Positions acknowledged, in order.
    acknowledged: Vec<u64>,
    /// The stream time each acknowledgement said was durable.
    durable_times: Vec<Option<i64>>,
    /// Reads made.
    reads: usize,
}

impl Scripted {
    fn new(pages: impl IntoIterator<Item = Page>) -> Scripted {
        Scripted { pages: pages.into_iter().collect(), ..Scripted::default() }
    }
}

fn record(seq: u64, line: String) -> Record<u64> {
    let origin = pulse_schemas::Source { sequence_number: Some(seq.to_string()), ..pulse_schemas::Source::default() };
    Record { origin, body: Body::Line(line.into_bytes()), position: seq }
}

impl Source for Scripted {
    type Position = u64;

    async fn next_batch(&mut self) -> Result<Option<Batch<u64>>, SourceError> {
        self.reads += 1;
        match self.pages.pop_front() {
            Some(Page::Records(seqs)) => {
                Ok(Some(Batch::of(seqs.into_iter().map(|s| record(s, login(&format!("c{}", s % 3), s))).collect())))
            }
            Some(Page::Lines(lines)) => Ok(Some(Batch::of(lines.into_iter().map(|(s, l)| record(s, l)).collect()))),
            Some(Page::Garbage(seq)) => Ok(Some(Batch::of(vec![record(seq, "{not json".to_owned())]))),
            Some(Page::Blank(seq)) => Ok(Some(Batch::of(vec![record(seq, "  \r".to_owned())]))),
            Some(Page::Empty) | None => Ok(Some(Batch::empty())),
            Some(Page::Advance(now)) => Ok(Some(Batch::advance_to(now))),
            Some(Page::Throttled) => Err(SourceError::Retryable(anyhow!("throttled"))),
            Some(Page::Broken) => Err(SourceError::Fatal(anyhow!("the stream is gone"))),
            Some(Page::End) => Ok(None),
        }
    }

    async fn acknowledge(&mut self, position: &u64, durable: &Durable<'_>) -> Result<()> {
        if let Some(last) = self.acknowledged.last() {
            assert!(position >= last, "positions are acknowledged in order");
        }
        self.acknowledged.push(*position);
        self.durable_times.push(durable.processor.stream_time());
        Ok(())
    }
}

/// Records every call; its flushes fail from the `fail_flush_from`-th on (1-based).
#[derive(Debug, Default)]
struct Recorder {
    /// Sequence numbers of the vectors sent, in order.
    sent: Vec<String>,
    /// Each vector sent: customer, `as_of`, trigger, in order.
    vectors: Vec<(String, i64, pulse_schemas::Trigger)>,
    /// How many vectors each send carried.
    sends: Vec<usize>,
    /// The stream time of each vector sent.
    times: Vec<i64>,
    dead: usize,
    ticks: Vec<i64>,
    /// When each successful flush happened, and the last sequence number sent before it.
    flushed: Vec<(Duration, Option<String>)>,
    closes: usize,
    fail_flush_from: Option<usize>,
    started: Option<Instant>,
}

impl Recorder {
    fn new() -> Recorder {
        Recorder { started: Some(Instant::now()), ..Recorder::default() }
    }

    fn failing_flush_from(n: usize) -> Recorder {
        Recorder { fail_flush_from: Some(n), ..Recorder::new() }
    }
}

impl Sink for Recorder {
    async fn send(&mut self, produced: Produced) -> Result<()> {
        let times = vec![i64::MIN; produced.vectors.len()];
        self.send_timed(produced, times).await
    }

    async fn send_timed(&mut self, produced: Produced, times: Vec<i64>) -> Result<()> {
        assert_eq!(times.len(), produced.vectors.len());
        self.sent.extend(produced.vectors.iter().filter_map(|v| v.source.sequence_number.clone()));
        self.vectors.extend(produced.vectors.iter().map(|v| (v.customer_id.to_string(), v.as_of, v.trigger)));
        self.sends.push(produced.vectors.len());
        self.times.extend(times);
        self.dead += produced.dead.len();
        Ok(())
    }

    async fn tick(&mut self, now_ms: i64) -> Result<()> {
        self.ticks.push(now_ms);
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        let n = self.flushed.len() + 1;
        if self.fail_flush_from.is_some_and(|from| n >= from) {
            bail!("the disk is full");
        }
        let at = self.started.map(|s| s.elapsed()).unwrap_or_default();
        self.flushed.push((at, self.sent.last().cloned()));
        Ok(())
    }

    async fn close(&mut self) -> Result<()> {
        self.flush().await?;
        self.closes += 1;
        Ok(())
    }
}

fn driver(config: DriverConfig) -> Driver {
    Driver::new(Processor::new(Arc::new(Engine::new(EngineConfig::default()))), config).unwrap()
}

fn seqs(range: std::ops::RangeInclusive<u64>) -> Vec<String> {
    range.map(|s| s.to_string()).collect()
}

#[tokio::test(start_paused = true)]
async fn every_record_is_applied_once_in_order_and_acknowledged_at_the_end() {
    let mut source = Scripted::new([
        Page::Records(vec![1, 2, 3]),
        Page::Empty,
        Page::Records(vec![4, 5]),
        Page::Garbage(6),
        Page::End,
    ]);
    let mut sink = Recorder::new();
    let mut driver = driver(DriverConfig::default());
    let summary = driver.run(&mut source, &mut sink, std::future::pending()).await.unwrap();

    assert_eq!(summary.stopped, StopReason::EndOfInput);
    assert_eq!(summary.progress.records, 6);
    assert_eq!(summary.batches, 3);
    assert_eq!(sink.sent, seqs(1..=5), "one vector per login, in order");
    assert_eq!(sink.dead, 1, "the line that is not a record is a dead letter, not a failure");
    assert_eq!(driver.processor().invalid_counts().values().sum::<u64>(), 1);
    assert_eq!(sink.closes, 1);
    assert_eq!(sink.flushed.len(), 1, "at the end only: the close");
    assert_eq!(source.acknowledged, vec![6], "the dead letter's position moves too");
    assert_eq!(summary.stream_span_ms, Some((created(1), created(5))));
}

#[tokio::test(start_paused = true)]
async fn a_blank_line_is_no_record_but_its_position_moves() {
    let mut source = Scripted::new([Page::Records(vec![1]), Page::Blank(2), Page::End]);
    let mut sink = Recorder::new();
    let summary = driver(DriverConfig::default()).run(&mut source, &mut sink, std::future::pending()).await.unwrap();
    assert_eq!(summary.progress.records, 1);
    assert_eq!(sink.dead, 0);
    assert_eq!(source.acknowledged, vec![2]);
}

#[tokio::test(start_paused = true)]
async fn each_vector_carries_the_stream_time_it_was_produced_at_and_ticks_follow_stream_time() {
    let mut source = Scripted::new([Page::Records(vec![1, 2, 3]), Page::Records(vec![7]), Page::End]);
    let mut sink = Recorder::new();
    driver(DriverConfig::default()).run(&mut source, &mut sink, std::future::pending()).await.unwrap();
    assert_eq!(sink.times, vec![created(1), created(2), created(3), created(7)]);
    assert_eq!(sink.ticks, vec![created(3), created(7)], "one tick per batch, at the stream time reached");
}

#[tokio::test(start_paused = true)]
async fn a_retryable_error_is_retried_with_backoff() {
    let mut source = Scripted::new([Page::Throttled, Page::Throttled, Page::Records(vec![1]), Page::End]);
    let mut sink = Recorder::new();
    let retry = Backoff { base: Duration::from_millis(100), cap: Duration::from_secs(1), max_attempts: 3 };
    let started = Instant::now();
    let mut driver = driver(DriverConfig { retry, ..DriverConfig::default() });
    let summary = driver.run(&mut source, &mut sink, std::future::pending()).await.unwrap();
    assert_eq!(summary.progress.records, 1);
    assert_eq!(source.reads, 4);
    // Full jitter: each wait is drawn from [0, 100 ms], then [0, 200 ms].
    assert!(started.elapsed() <= Duration::from_millis(100 + 200), "{:?}", started.elapsed());
    assert_eq!(source.acknowledged, vec![1]);
}

#[tokio::test(start_paused = true)]
async fn a_source_that_keeps_failing_stops_the_run_without_acknowledging() {
    let mut source = Scripted::new([Page::Records(vec![1]), Page::Throttled, Page::Throttled, Page::Throttled]);
    let mut sink = Recorder::new();
    let retry = Backoff { max_attempts: 3, ..SOURCE_RETRY };
    let err = driver(DriverConfig { retry, ..DriverConfig::default() })
        .run(&mut source, &mut sink, std::future::pending())
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("failed 3 times in a row"), "{err:#}");
    assert!(source.acknowledged.is_empty());
    assert_eq!(sink.closes, 0, "a failed run does not close its sink");
}

#[tokio::test(start_paused = true)]
async fn a_fatal_error_stops_at_once() {
    let mut source = Scripted::new([Page::Broken, Page::Records(vec![1])]);
    let mut sink = Recorder::new();
    let err = driver(DriverConfig::default()).run(&mut source, &mut sink, std::future::pending()).await.unwrap_err();
    assert!(format!("{err:#}").contains("the stream is gone"), "{err:#}");
    assert_eq!(source.reads, 1, "no retry");
    assert!(sink.sent.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_failed_flush_acknowledges_nothing() {
    let mut source = Scripted::new([Page::Records(vec![1, 2]), Page::Records(vec![3]), Page::End]);
    let mut sink = Recorder::failing_flush_from(1);
    let config = DriverConfig { checkpoints: Checkpoints::EveryBatch, ..DriverConfig::default() };
    let err = driver(config).run(&mut source, &mut sink, std::future::pending()).await.unwrap_err();
    assert!(format!("{err:#}").contains("checkpoint barrier"), "{err:#}");
    assert!(source.acknowledged.is_empty(), "the flush failed: position 2 is not acknowledged");
    assert_eq!(sink.sent, seqs(1..=2), "the run stopped at the failed barrier");
}

#[tokio::test(start_paused = true)]
async fn a_flush_acknowledges_exactly_up_to_the_last_position_sent_before_it() {
    let mut source = Scripted::new([Page::Records(vec![1, 2, 3]), Page::Records(vec![4, 5]), Page::End]);
    // The first flush succeeds, the second fails.
    let mut sink = Recorder::failing_flush_from(2);
    let config = DriverConfig { checkpoints: Checkpoints::EveryBatch, ..DriverConfig::default() };
    assert!(driver(config).run(&mut source, &mut sink, std::future::pending()).await.is_err());
    assert_eq!(sink.flushed.len(), 1);
    assert_eq!(sink.flushed[0].1.as_deref(), Some("3"));
    assert_eq!(source.acknowledged, vec![3], "up to the first batch, not beyond");
}

#[tokio::test(start_paused = true)]
async fn every_batch_is_flushed_then_acknowledged() {
    let mut source = Scripted::new([Page::Records(vec![1, 2]), Page::Empty, Page::Records(vec![3]), Page::End]);
    let mut sink = Recorder::new();
    let config = DriverConfig { checkpoints: Checkpoints::EveryBatch, ..DriverConfig::default() };
    let summary = driver(config).run(&mut source, &mut sink, std::future::pending()).await.unwrap();
    assert_eq!(source.acknowledged, vec![2, 3]);
    assert_eq!(summary.acknowledged, 2, "nothing is left pending for the close");
    let flushed: Vec<_> = sink.flushed.iter().map(|(_, last)| last.as_deref()).collect();
    assert_eq!(flushed, vec![Some("2"), Some("3"), Some("3")], "after each batch, then the close");
}

#[tokio::test(start_paused = true)]
async fn checkpoints_come_every_interval_on_the_clock_and_an_idle_source_stops_the_run() {
    // A batch, 15 s of empty pages (1 s apart), another batch, then nothing.
    let mut pages = vec![Page::Records(vec![1, 2])];
    pages.extend((0..15).map(|_| Page::Empty));
    pages.push(Page::Records(vec![3]));
    let mut source = Scripted::new(pages);
    let mut sink = Recorder::new();
    let config = DriverConfig {
        checkpoints: Checkpoints::Every(Duration::from_secs(10)),
        idle_exit: Some(Duration::from_secs(30)),
        empty_wait: Duration::from_secs(1),
        ..DriverConfig::default()
    };
    let summary = driver(config).run(&mut source, &mut sink, std::future::pending()).await.unwrap();
    assert_eq!(summary.stopped, StopReason::Idle);
    let flushed: Vec<_> = sink.flushed.iter().map(|(at, last)| (at.as_secs(), last.as_deref())).collect();
    // 10 s after the first batch; 10 s after the second (at 15 s); the close
    // once 30 s passed without a record since 15 s.
    assert_eq!(flushed, vec![(10, Some("2")), (25, Some("3")), (45, Some("3"))]);
    assert_eq!(source.acknowledged, vec![2, 3], "nothing new to acknowledge at the close");
}

#[tokio::test(start_paused = true)]
async fn an_idle_source_stops_the_run_after_idle_exit() {
    let mut source = Scripted::new([Page::Records(vec![1])]);
    let mut sink = Recorder::new();
    let config = DriverConfig {
        idle_exit: Some(Duration::from_secs(5)),
        empty_wait: Duration::from_millis(500),
        ..DriverConfig::default()
    };
    let started = Instant::now();
    let summary = driver(config).run(&mut source, &mut sink, std::future::pending()).await.unwrap();
    assert_eq!(summary.stopped, StopReason::Idle);
    assert_eq!(started.elapsed(), Duration::from_secs(5));
    assert_eq!(source.acknowledged, vec![1]);
    assert_eq!(sink.closes, 1);
}

#[tokio::test(start_paused = true)]
async fn max_records_cuts_a_batch_and_acknowledges_its_last_applied_record() {
    let mut source = Scripted::new([Page::Records(vec![1, 2, 3]), Page::Records(vec![4, 5, 6]), Page::End]);
    let mut sink = Recorder::new();
    let config = DriverConfig { max_records: Some(4), ..DriverConfig::default() };
    let summary = driver(config).run(&mut source, &mut sink, std::future::pending()).await.unwrap();
    assert_eq!(summary.stopped, StopReason::MaxRecords);
    assert_eq!(summary.progress.records, 4);
    assert_eq!(sink.sent, seqs(1..=4));
    assert_eq!(source.acknowledged, vec![4]);
}

#[tokio::test(start_paused = true)]
async fn shutdown_stops_cleanly_closing_and_acknowledging() {
    let mut source = Scripted::new([Page::Records(vec![1, 2])]);
    let mut sink = Recorder::new();
    let shutdown = tokio::time::sleep(Duration::from_secs(3));
    let started = Instant::now();
    let summary = driver(DriverConfig::default()).run(&mut source, &mut sink, shutdown).await.unwrap();
    assert_eq!(summary.stopped, StopReason::Shutdown);
    assert_eq!(started.elapsed(), Duration::from_secs(3));
    assert_eq!(sink.closes, 1);
    assert_eq!(source.acknowledged, vec![2]);
}

/// Records, for each batch, the customers it names and whether the engine
/// already held them; fails when told to.
#[derive(Default)]
struct Recording {
    seen: Vec<Vec<(String, bool)>>,
    fail: bool,
}

impl Hydrate for &mut Recording {
    async fn hydrate(&mut self, processor: &Processor, records: &[&StreamRecord<'_>]) -> Result<()> {
        if self.fail {
            bail!("the table is unreachable");
        }
        let engine = processor.engine();
        self.seen.push(
            records
                .iter()
                .filter_map(|r| r.change.customer_id())
                .map(|c| (c.to_owned(), engine.customer_clock(c).is_some()))
                .collect(),
        );
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn hydration_sees_each_batch_before_it_is_applied() {
    let mut source = Scripted::new([Page::Records(vec![1, 2]), Page::Garbage(3), Page::Records(vec![4]), Page::End]);
    let mut sink = Recorder::new();
    let mut hook = Recording::default();
    let mut driver = driver(DriverConfig::default()).with_hydration(&mut hook);
    driver.run(&mut source, &mut sink, std::future::pending()).await.unwrap();
    drop(driver);
    let expected = vec![
        vec![("c1".to_owned(), false), ("c2".to_owned(), false)],
        // The garbage batch has no valid record: no call. c1 is held by now.
        vec![("c1".to_owned(), true)],
    ];
    assert_eq!(hook.seen, expected);
}

#[tokio::test(start_paused = true)]
async fn a_failed_hydration_applies_nothing_of_its_batch() {
    let mut source = Scripted::new([Page::Records(vec![1, 2]), Page::End]);
    let mut sink = Recorder::new();
    let mut hook = Recording { fail: true, ..Recording::default() };
    let mut driver = driver(DriverConfig::default()).with_hydration(&mut hook);
    let err = driver.run(&mut source, &mut sink, std::future::pending()).await.unwrap_err();
    assert!(format!("{err:#}").contains("the batch was not applied"), "{err:#}");
    assert_eq!(driver.processor().engine().customer_clock("c1"), None);
    assert!(sink.sent.is_empty());
    assert!(source.acknowledged.is_empty());
}

#[tokio::test]
async fn a_background_sink_keeps_the_barriers_and_reports_its_errors() {
    let mut source = Scripted::new([Page::Records(vec![1, 2]), Page::Records(vec![3]), Page::End]);
    let mut sink = Background::spawn(Recorder::new());
    let config = DriverConfig { checkpoints: Checkpoints::EveryBatch, ..DriverConfig::default() };
    driver(config).run(&mut source, &mut sink, std::future::pending()).await.unwrap();
    let inner = sink.into_inner().expect("closed");
    assert_eq!(inner.sent, seqs(1..=3));
    assert_eq!(inner.closes, 1);
    assert_eq!(source.acknowledged, vec![2, 3]);

    let mut source = Scripted::new([Page::Records(vec![1, 2]), Page::End]);
    let mut sink = Background::spawn(Recorder::failing_flush_from(1));
    let err = driver(config).run(&mut source, &mut sink, std::future::pending()).await.unwrap_err();
    assert!(format!("{err:#}").contains("the disk is full"), "{err:#}");
    assert!(source.acknowledged.is_empty());
}

#[tokio::test(start_paused = true)]
async fn an_advance_fires_timers_and_acknowledges_the_last_position_again_with_the_new_state() {
    const DAY: i64 = 24 * 60 * MIN;
    let later = created(2) + 3 * DAY;
    let mut source = Scripted::new([
        Page::Records(vec![1, 2]),
        Page::Advance(created(2)),
        Page::Advance(later),
        Page::Advance(later),
        Page::End,
    ]);
    let mut sink = Recorder::new();
    let mut driver = driver(DriverConfig { checkpoints: Checkpoints::EveryBatch, ..DriverConfig::default() });
    let summary = driver.run(&mut source, &mut sink, std::future::pending()).await.unwrap();

    assert_eq!(summary.progress.records, 2);
    assert_eq!(summary.progress.vectors_event, 2);
    assert!(summary.progress.vectors_timer >= 2, "both silent customers are rescored: {summary:?}");
    assert_eq!(driver.processor().stream_time(), Some(later));
    assert!(
        sink.times[2..].iter().all(|t| *t <= later && *t > created(2)),
        "timer vectors carry their due times: {:?}",
        sink.times
    );
    assert_eq!(sink.ticks.last(), Some(&later));
    // An advance that fires nothing changes nothing durable: no second
    // acknowledgement at `created(2)`, none for the repeated `later`.
    assert_eq!(source.acknowledged, vec![2, 2]);
    assert_eq!(source.durable_times, vec![Some(created(2)), Some(later)]);
}

#[tokio::test(start_paused = true)]
async fn without_apply_records_are_counted_and_acknowledged_but_reach_neither_engine_nor_sink() {
    let mut source = Scripted::new([Page::Records(vec![1, 2]), Page::Garbage(3), Page::Blank(4), Page::End]);
    let mut sink = Recorder::new();
    let mut driver = driver(DriverConfig { apply: false, ..DriverConfig::default() });
    let summary = driver.run(&mut source, &mut sink, std::future::pending()).await.unwrap();
    assert_eq!(summary.progress.records, 3);
    assert!(sink.sent.is_empty() && sink.dead == 0 && sink.ticks.is_empty());
    assert_eq!(driver.processor().engine().state_size().customers, 0);
    assert_eq!(source.acknowledged, vec![4]);
}

/// A jump of stream time (a record 200 days after the others) fires every
/// silent customer's daily timers for the whole gap: the driver sends them
/// on in pieces, with one engine or two, where it used to gather them all
/// in one batch's memory (a capture with a gap of three years took 1 GB).
/// The vectors, their order and their stream times are those of one
/// advance by a bare processor.
#[tokio::test(start_paused = true)]
async fn a_jump_of_stream_time_sends_its_timers_on_in_pieces_unchanged() {
    let customers = 800u64;
    let jump = 200 * 24 * 60;
    let mut lines: Vec<(u64, String)> = (0..customers).map(|i| (i, login(&format!("k{i}"), i))).collect();
    lines.push((jump, login("k0", jump)));
    // The reference: one processor, each record's advance in one go.
    let mut processor = Processor::new(Arc::new(Engine::new(EngineConfig::default())));
    let mut want = Produced::default();
    for (seq, line) in &lines {
        let source = pulse_schemas::Source { sequence_number: Some(seq.to_string()), ..Default::default() };
        processor.process(pulse_schemas::capture::decode_line(line.as_bytes()), source, line.as_bytes(), &mut want);
    }
    let want: Vec<_> = want.vectors.iter().map(|v| (v.customer_id.to_string(), v.as_of, v.trigger)).collect();
    assert!(want.len() > 2 * 65_536, "enough timers for several sends: {}", want.len());
    for workers in [1, 2] {
        let mut source = Scripted::new([Page::Lines(lines.clone()), Page::End]);
        let mut sink = Recorder::new();
        let mut driver = driver(DriverConfig::default());
        if workers > 1 {
            let n = std::num::NonZeroUsize::new(workers).unwrap();
            driver = driver.with_workers(pulse_runtime::workers::Workers::new(n, EngineConfig::default()));
        }
        driver.run(&mut source, &mut sink, std::future::pending()).await.unwrap();
        assert!(sink.vectors == want, "workers {workers}: other vectors, or another order");
        assert!(sink.sends.len() >= 3, "workers {workers}: sends {:?}", sink.sends);
        assert!(sink.sends.iter().all(|&n| n <= 65_536 + customers as usize), "workers {workers}: {:?}", sink.sends);
        let timers_at_jump = sink.times.iter().filter(|&&t| t == created(jump)).count();
        assert_eq!(
            timers_at_jump,
            want.len() - customers as usize,
            "workers {workers}: every gap vector at the jump's time"
        );
    }
}
