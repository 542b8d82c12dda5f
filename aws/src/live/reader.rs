//! One task per shard that reads it in order and hands pages to the consumer.
//!
//! pulse runs ONE reader per shard (DynamoDB Streams allows two before it
//! throttles; Kinesis shares 5 calls a second per shard among all its
//! consumers), so another application can read the same stream alongside.
//!
//! The reader owns its iterator and nothing else: the consumer decides what
//! is processed and checkpointed. It recovers on its own from what the stream
//! APIs throw at a long-running reader:
//!
//! * an expired iterator: a new one just after the last record it read (or
//!   at its start position when it has read none);
//! * records trimmed by retention (`TrimmedDataAccessException`): reported
//!   to the consumer (an error in the log and a counter: those records are
//!   lost), then reading continues at TRIM_HORIZON;
//! * throttling and transient failures (after the SDK's own retries): a
//!   jittered, growing wait under pulse's one retry policy (longer after
//!   throttling), then the same call again;
//! * an empty page: the shard is caught up; polls slow down (0.2 s → 2 s).
//!
//! A shard that no longer exists ends like a finished one, reported as lost;
//! an error that retrying cannot fix (permissions) stops the whole consumer.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::api::{ErrorKind, LiveRecord, ReadError, StartAt, StreamApi};
use super::poll::PollInterval;
use crate::retry::{Backoff, Failure};

/// How a reader polls.
#[derive(Clone, Debug)]
pub struct ReaderConfig {
    /// Records per GetRecords call (at most 1000 for DynamoDB Streams, 10,000 for Kinesis).
    pub limit: i32,
    /// The first wait after an empty page.
    pub idle_min: Duration,
    /// The longest wait between polls of a caught-up shard.
    pub idle_max: Duration,
    /// The first wait after a failed call.
    pub error_min: Duration,
    /// The longest wait after failed calls.
    pub error_max: Duration,
    /// When set, a shard whose calls have kept failing (throttled, or the
    /// endpoint unreachable) for this long fails the run instead of being
    /// retried on: a bounded run (`--idle-exit-s`) ends, with an error,
    /// where it used to wait forever. `None`: a long-running consumer
    /// retries for as long as it takes.
    pub give_up_after: Option<Duration>,
}

impl Default for ReaderConfig {
    fn default() -> Self {
        ReaderConfig {
            limit: 1000,
            idle_min: Duration::from_millis(200),
            idle_max: Duration::from_secs(2),
            error_min: Duration::from_millis(100),
            error_max: Duration::from_secs(10),
            give_up_after: None,
        }
    }
}

/// What a reader tells the consumer.
#[derive(Debug)]
pub enum ShardMsg {
    /// A page (possibly empty: then the shard is caught up).
    Page {
        /// The shard.
        shard: Arc<str>,
        /// Its records, in order.
        records: Vec<LiveRecord>,
        /// Kinesis' MillisBehindLatest.
        millis_behind: Option<i64>,
    },
    /// The shard is closed and read to its end (or no longer exists: `lost`).
    Ended {
        /// The shard.
        shard: Arc<str>,
        /// It vanished before it was read to its end.
        lost: bool,
    },
    /// Records between the last one read and the oldest retained are gone.
    Trimmed {
        /// The shard.
        shard: Arc<str>,
        /// What the service said.
        detail: String,
    },
    /// A failure retrying cannot fix.
    Failed {
        /// The shard.
        shard: Arc<str>,
        /// What failed.
        error: ReadError,
    },
}

/// Reads `shard` from `start` until it ends, failing for good, or the
/// consumer goes away (the channel closes, or the task is aborted).
pub async fn read_shard(
    api: StreamApi,
    shard: Arc<str>,
    start: StartAt,
    config: ReaderConfig,
    tx: mpsc::Sender<ShardMsg>,
) {
    let mut reader = Reader { api, shard, config, tx };
    // A closed channel means the consumer is gone: nothing left to do.
    let _ = reader.run(start).await;
}

struct Reader {
    api: StreamApi,
    shard: Arc<str>,
    config: ReaderConfig,
    tx: mpsc::Sender<ShardMsg>,
}

/// The consumer is gone.
struct Closed;

/// Failed calls in a row, and how long to wait after each.
struct Retries {
    policy: Backoff,
    failed: u32,
    /// When the current run of failures began.
    since: Option<tokio::time::Instant>,
}

impl Reader {
    async fn send(&self, msg: ShardMsg) -> Result<(), Closed> {
        self.tx.send(msg).await.map_err(|_| Closed)
    }

    async fn run(&mut self, mut start: StartAt) -> Result<(), Closed> {
        let mut idle = PollInterval::new(self.config.idle_min, self.config.idle_max);
        // A reader never gives up on a shard over throttling or a transient
        // failure: it waits, longer each time up to the cap, and tries again.
        let policy = Backoff { base: self.config.error_min, cap: self.config.error_max, max_attempts: u32::MAX };
        let mut errors = Retries { policy, failed: 0, since: None };
        let mut iterator: Option<String> = None;
        loop {
            let current = match iterator.take() {
                Some(it) => it,
                None => match self.api.iterator(&self.shard, &start).await {
                    Ok(it) => it,
                    Err(e) => {
                        if self.on_error(e, &mut start, &mut errors).await? {
                            return Ok(());
                        }
                        continue;
                    }
                },
            };
            match self.api.records(&current, self.config.limit).await {
                Ok(page) => {
                    errors.failed = 0;
                    errors.since = None;
                    if let Some(last) = page.records.last() {
                        start = StartAt::After(last.sequence_number.clone());
                    }
                    let empty = page.records.is_empty();
                    let next = page.next;
                    self.send(ShardMsg::Page {
                        shard: self.shard.clone(),
                        records: page.records,
                        millis_behind: page.millis_behind,
                    })
                    .await?;
                    let Some(next) = next else {
                        self.send(ShardMsg::Ended { shard: self.shard.clone(), lost: false }).await?;
                        return Ok(());
                    };
                    iterator = Some(next);
                    if empty {
                        tokio::time::sleep(idle.next_delay()).await;
                    } else {
                        idle.reset();
                    }
                }
                Err(e) => {
                    if self.on_error(e, &mut start, &mut errors).await? {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Handles a failed call; `Ok(true)` when the reader is done.
    async fn on_error(&self, e: ReadError, start: &mut StartAt, errors: &mut Retries) -> Result<bool, Closed> {
        let shard = &*self.shard;
        match recovery(e.kind) {
            Recovery::NewIterator => {
                tracing::info!(shard, "shard iterator expired; getting a new one after the last record read");
            }
            Recovery::FromTrimHorizon => {
                tracing::error!(shard, error = %e, "records were trimmed by retention before pulse read them; continuing at TRIM_HORIZON");
                *start = StartAt::TrimHorizon;
                self.send(ShardMsg::Trimmed { shard: self.shard.clone(), detail: e.detail }).await?;
            }
            Recovery::Wait => {
                let since = *errors.since.get_or_insert_with(tokio::time::Instant::now);
                if self.config.give_up_after.is_some_and(|limit| since.elapsed() >= limit) {
                    tracing::error!(shard, error = %e, failing_s = since.elapsed().as_secs(), "reads keep failing; giving up");
                    let error = ReadError {
                        detail: format!("reads kept failing for {} s: {}", since.elapsed().as_secs(), e.detail),
                        ..e
                    };
                    self.send(ShardMsg::Failed { shard: self.shard.clone(), error }).await?;
                    return Ok(true);
                }
                errors.failed = errors.failed.saturating_add(1);
                let failure = match e.kind {
                    ErrorKind::Throttled => Failure::Throttled(e.detail.clone()),
                    _ => Failure::Retry(e.detail.clone()),
                };
                let wait = errors.policy.delay_after(&failure, errors.failed, &mut rand::rng());
                tracing::warn!(shard, error = %e, wait_ms = wait.as_millis() as u64, "read failed; retrying");
                tokio::time::sleep(wait).await;
            }
            Recovery::EndLost => {
                tracing::error!(shard, error = %e, "the shard no longer exists; its unread records are lost");
                self.send(ShardMsg::Ended { shard: self.shard.clone(), lost: true }).await?;
                return Ok(true);
            }
            Recovery::Fail => {
                self.send(ShardMsg::Failed { shard: self.shard.clone(), error: e }).await?;
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// What a reader does after a failed call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recovery {
    /// Get a new iterator just after the last record read (or at the start
    /// position when none was read), and go on.
    NewIterator,
    /// Report the loss, then read on from the oldest record retained.
    FromTrimHorizon,
    /// Wait (jittered, growing up to a cap) and make the same call again.
    Wait,
    /// The shard is gone: end it as lost, so its children can start.
    EndLost,
    /// Stop the consumer with the error.
    Fail,
}

/// The recovery for each kind of failure.
pub fn recovery(kind: ErrorKind) -> Recovery {
    match kind {
        ErrorKind::Expired => Recovery::NewIterator,
        ErrorKind::Trimmed => Recovery::FromTrimHorizon,
        ErrorKind::Throttled | ErrorKind::Transient => Recovery::Wait,
        ErrorKind::NotFound => Recovery::EndLost,
        ErrorKind::Fatal => Recovery::Fail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::api::kind_of;
    use crate::retry::classify_answer;

    #[test]
    fn each_failure_has_its_recovery() {
        // As a service would answer (HTTP 400 with the code), classified by
        // the one classifier, then by the streams' own codes.
        let by_code = |code| recovery(kind_of(Some(code), &classify_answer(400, Some(code), code.into())));
        assert_eq!(by_code("ExpiredIteratorException"), Recovery::NewIterator);
        assert_eq!(by_code("TrimmedDataAccessException"), Recovery::FromTrimHorizon);
        assert_eq!(by_code("LimitExceededException"), Recovery::Wait);
        assert_eq!(by_code("ProvisionedThroughputExceededException"), Recovery::Wait);
        let timeout = Failure::Retry("timed out".into());
        assert_eq!(recovery(kind_of(None, &timeout)), Recovery::Wait, "timeouts and connection errors");
        assert_eq!(by_code("ResourceNotFoundException"), Recovery::EndLost);
        assert_eq!(by_code("AccessDeniedException"), Recovery::Fail);
        assert_eq!(recovery(kind_of(None, &classify_answer(500, None, "5xx".into()))), Recovery::Wait);
    }
}
