//! Where a live run's results go, and the barrier its checkpoints rest on.
//!
//! A live consumer (`pulse run`, the Lambda handler) hands each step's
//! [`Produced`] to a [`Sink`]. Sinks may buffer (files, coalesced scoring,
//! batched writes), so a checkpoint never trusts `send` alone: before a
//! consumer records a stream position as done it calls [`Sink::flush`], and
//! only once that returns `Ok` are the effects of every record before that
//! position durable (the end-to-end acknowledgement pattern). After a crash,
//! the records after the last checkpoint are delivered again; the engine's
//! event-id dedupe and the conditional prediction writes make that harmless.

use std::future::Future;

use anyhow::Result;

use crate::process::Produced;

/// A destination for vectors and dead letters.
pub trait Sink: Send {
    /// Takes what one step produced. May buffer; must not lose it.
    fn send(&mut self, produced: Produced) -> impl Future<Output = Result<()>> + Send;

    /// Stream time has reached `now_ms` (milliseconds since the epoch): time
    /// to release what lingered long enough, publish periodic metrics, ...
    fn tick(&mut self, now_ms: i64) -> impl Future<Output = Result<()>> + Send {
        let _ = now_ms;
        async { Ok(()) }
    }

    /// The checkpoint barrier: returns `Ok` once everything sent before is
    /// durable (written and flushed, scored and stored, acknowledged).
    fn flush(&mut self) -> impl Future<Output = Result<()>> + Send;

    /// What the sink needs, besides the stream positions, to resume exactly
    /// where the last successful [`Sink::flush`] left it (e.g. the lengths of
    /// the files it appends to); called right after that flush and stored in
    /// the same checkpoint, handed back to the sink's constructor on restart.
    /// `None` (the default) for sinks whose writes are idempotent anyway.
    fn checkpoint_state(&self) -> Option<serde_json::Value> {
        None
    }
}
