//! Where records come from: the [`Source`] trait the [`Driver`](crate::driver::Driver) reads.
//!
//! A source hands out batches of [`Record`]s, each with its provenance (the
//! capture line, or the shard and sequence number, that vectors and dead
//! letters carry) and its [`Source::Position`], and later hears
//! [`Source::acknowledge`] up to a position once every effect of the records
//! up to it is durable in the sinks (end-to-end acknowledgement).
//!
//! What the three ways of running pulse give:
//!
//! | source | body of a record | position | acknowledge |
//! |---|---|---|---|
//! | replay (capture file, generator) | decoded ahead, on a thread of its own | `()` | nothing to do |
//! | live consumer (shards) | the capture line it made of the record | shard and sequence number | checkpoint, lease renewal |
//! | Lambda (one batch) | decoded from `aws_lambda_events` | its index in the batch | the answer (`batchItemFailures`) |
//!
//! A record's body is either a capture line ([`Body::Line`], decoded by the
//! driver with the replay's decoder, so a live run decodes exactly what a
//! replay of its capture would) or already decoded ([`Body::Decoded`]: by a
//! source that decodes on a thread of its own to keep the engine busy, or
//! that receives another shape, as the Lambda's event records).

use std::fmt::Debug;
use std::future::Future;

use anyhow::Result;
use pulse_schemas::record::{Invalid, StreamRecord};
use serde::Serialize;

use crate::process::Processor;

/// One record as the source read it.
#[derive(Debug)]
pub struct Record<P> {
    /// Where it was: carried by its vectors and dead letters.
    pub origin: pulse_schemas::Source,
    /// The record.
    pub body: Body,
    /// Acknowledging this position acknowledges this record and every one
    /// the source gave before it.
    pub position: P,
}

/// A record's content.
// A source's records are all of one kind, in a `Vec`, so the size of the
// small variant does not matter; boxing the large one would cost an
// allocation per record on the replay's hot path.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Body {
    /// A capture line (one DynamoDB Streams record as JSON), decoded by the
    /// driver. A line of only whitespace is no record and is skipped.
    Line(Vec<u8>),
    /// Decoded by the source: the record, or why it is invalid, and the
    /// original bytes for its dead letter (empty when it is valid).
    Decoded {
        /// The record or why it is dead.
        record: Result<StreamRecord<'static>, Invalid>,
        /// The original bytes, kept for a dead letter.
        raw: Vec<u8>,
    },
}

/// What one read of a source gave.
#[derive(Debug)]
pub struct Batch<P> {
    /// The records, in stream order. Empty: nothing new for now (the source
    /// is caught up); the driver waits a little and asks again.
    pub records: Vec<Record<P>>,
    /// How far behind the stream's newest record this read was (ms), when
    /// the source knows; passed to [`crate::sink::Sink::observe_source`].
    pub behind_ms: Option<i64>,
    /// Stream time moves to at least this (ms) once the batch's records are
    /// applied, firing the timers due by then: the wall clock of a live
    /// source that is caught up (so silent customers are rescored while the
    /// table is quiet), the scheduled time of the Lambda's rescoring run.
    /// `None` for a source whose time is only its records' (a replay).
    pub advance_to: Option<i64>,
}

impl<P> Batch<P> {
    /// A batch of `records`.
    pub fn of(records: Vec<Record<P>>) -> Batch<P> {
        Batch { records, behind_ms: None, advance_to: None }
    }

    /// Nothing new for now.
    pub fn empty() -> Batch<P> {
        Batch::of(Vec::new())
    }

    /// No records, but stream time moves to `now_ms`.
    pub fn advance_to(now_ms: i64) -> Batch<P> {
        Batch { advance_to: Some(now_ms), ..Batch::empty() }
    }
}

/// What is durable when a position is acknowledged: what a checkpoint
/// stores beside the position, so a restart resumes exactly there.
#[derive(Debug)]
pub struct Durable<'a> {
    /// The processor: its engine (to snapshot) and the stream time reached.
    pub processor: &'a Processor,
    /// The sink's resume state ([`crate::sink::Sink::checkpoint_state`]),
    /// taken right after the barrier.
    pub sink_state: Option<serde_json::Value>,
    /// What the driver did so far in this run.
    pub progress: Progress,
}

/// Counts of a run so far (this driver's, not a resumed checkpoint's).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Progress {
    /// Records applied or dead-lettered (blank capture lines are not records).
    pub records: u64,
    /// Vectors an event emitted.
    pub vectors_event: u64,
    /// Vectors a timer emitted.
    pub vectors_timer: u64,
}

/// Why a read failed, and whether to try again.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Worth another attempt (throttling, a timeout, an expired iterator
    /// the source could not renew itself): the driver waits with backoff
    /// and asks again, up to its attempts.
    #[error("{0:#}")]
    Retryable(anyhow::Error),
    /// The run cannot go on (a file that cannot be read, a lost stream).
    #[error("{0:#}")]
    Fatal(anyhow::Error),
}

/// Records in, acknowledgements back.
///
/// `next_batch` must be cancel-safe: the driver stops waiting on it when a
/// checkpoint falls due or the run is told to stop, and asks again later (a
/// read from a channel, as `tokio::sync::mpsc::Receiver::recv`, is).
pub trait Source: Send {
    /// A point in the stream: opaque to the driver, which only hands it back.
    type Position: Clone + Debug + Send + Sync + 'static;

    /// The next batch; `Ok(None)` at the end of the input.
    fn next_batch(&mut self) -> impl Future<Output = Result<Option<Batch<Self::Position>>, SourceError>> + Send;

    /// Every effect of the records up to `position` (included) is durable,
    /// and `durable` is the state they left: the source may forget them
    /// (checkpoint, renew its leases, answer its caller). Called only after
    /// the sinks' flush (or close) returned `Ok`, with positions in the
    /// order the source gave them; the same position may come again when
    /// only the state moved since (timers fired by
    /// [`Batch::advance_to`]). The default does nothing (a replay reads its
    /// file again from the start).
    fn acknowledge(
        &mut self,
        position: &Self::Position,
        durable: &Durable<'_>,
    ) -> impl Future<Output = Result<()>> + Send {
        let _ = (position, durable);
        async { Ok(()) }
    }
}

impl<S: Source> Source for &mut S {
    type Position = S::Position;

    fn next_batch(&mut self) -> impl Future<Output = Result<Option<Batch<Self::Position>>, SourceError>> + Send {
        (**self).next_batch()
    }

    fn acknowledge(
        &mut self,
        position: &Self::Position,
        durable: &Durable<'_>,
    ) -> impl Future<Output = Result<()>> + Send {
        (**self).acknowledge(position, durable)
    }
}
