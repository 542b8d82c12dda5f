//! Where results go, and the barrier checkpoints rest on.
//!
//! The [`Driver`](crate::driver::Driver) hands each batch's [`Produced`]
//! to a [`Sink`]. Sinks may buffer (files, coalesced scoring,
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
///
/// One required pair (`send`, `flush`) and default hooks, in the shape of
/// Arroyo's operators: [`Sink::send_timed`] (when within a batch each vector
/// came), [`Sink::tick`] (stream time moved), [`Sink::checkpoint_state`],
/// [`Sink::observe_source`], [`Sink::forget`] (the engine dropped a stale
/// customer) and [`Sink::close`] (the last barrier).
pub trait Sink: Send {
    /// Takes what one step produced. May buffer; must not lose it.
    fn send(&mut self, produced: Produced) -> impl Future<Output = Result<()>> + Send;

    /// Takes one batch's output with, for each vector, the stream time (ms)
    /// reached when it was produced (`times` is parallel to
    /// `produced.vectors` and non-decreasing). The driver calls this instead
    /// of [`Sink::send`]: a sink whose behaviour depends on when each vector
    /// came within a batch (the scoring stage's micro-batch linger on stream
    /// time, so a replay's predictions do not depend on how its input was cut
    /// into batches) overrides it; the default drops the times and sends.
    fn send_timed(&mut self, produced: Produced, times: Vec<i64>) -> impl Future<Output = Result<()>> + Send {
        let _ = times;
        self.send(produced)
    }

    /// Stream time has reached `now_ms` (milliseconds since the epoch): time
    /// to release what lingered long enough, publish periodic metrics, ...
    fn tick(&mut self, now_ms: i64) -> impl Future<Output = Result<()>> + Send {
        let _ = now_ms;
        async { Ok(()) }
    }

    /// The checkpoint barrier: returns `Ok` once everything sent before is
    /// durable (written and flushed, scored and stored, acknowledged).
    fn flush(&mut self) -> impl Future<Output = Result<()>> + Send;

    /// The last barrier, at the end of a run that stopped cleanly: everything
    /// sent is made durable as by [`Sink::flush`], then the sink ends what it
    /// holds (finishes compressed files, joins its writers, emits a last
    /// metrics snapshot). A position may be acknowledged once `close`
    /// returned `Ok`, as after a flush. Nothing is sent after it. The default
    /// is a flush.
    fn close(&mut self) -> impl Future<Output = Result<()>> + Send {
        self.flush()
    }

    /// What the sink needs, besides the stream positions, to resume exactly
    /// where the last successful [`Sink::flush`] left it (e.g. the lengths of
    /// the files it appends to); called right after that flush and stored in
    /// the same checkpoint, handed back to the sink's constructor on restart.
    /// `None` (the default) for sinks whose writes are idempotent anyway.
    fn checkpoint_state(&self) -> Option<serde_json::Value> {
        None
    }

    /// The source read `records` more records; `iterator_age_ms` is how far
    /// behind the stream's newest record the reader is, when known. For the
    /// pipeline's health metrics; the default ignores it.
    fn observe_source(&mut self, records: u64, iterator_age_ms: Option<i64>) {
        let _ = (records, iterator_age_ms);
    }

    /// The engine forgot `customers` (another process applied their records
    /// since: a Lambda environment's stale copy): what the sink keeps of
    /// them is stale too, and is to be read back from storage before their
    /// next output. Comes before any output of theirs that follows. The
    /// default keeps nothing per customer; a wrapper passes it on.
    fn forget(&mut self, customers: Vec<String>) -> impl Future<Output = Result<()>> + Send {
        let _ = customers;
        async { Ok(()) }
    }
}

impl<S: Sink> Sink for &mut S {
    fn send(&mut self, produced: Produced) -> impl Future<Output = Result<()>> + Send {
        (**self).send(produced)
    }

    fn send_timed(&mut self, produced: Produced, times: Vec<i64>) -> impl Future<Output = Result<()>> + Send {
        (**self).send_timed(produced, times)
    }

    fn tick(&mut self, now_ms: i64) -> impl Future<Output = Result<()>> + Send {
        (**self).tick(now_ms)
    }

    fn flush(&mut self) -> impl Future<Output = Result<()>> + Send {
        (**self).flush()
    }

    fn close(&mut self) -> impl Future<Output = Result<()>> + Send {
        (**self).close()
    }

    fn checkpoint_state(&self) -> Option<serde_json::Value> {
        (**self).checkpoint_state()
    }

    fn observe_source(&mut self, records: u64, iterator_age_ms: Option<i64>) {
        (**self).observe_source(records, iterator_age_ms);
    }

    fn forget(&mut self, customers: Vec<String>) -> impl Future<Output = Result<()>> + Send {
        (**self).forget(customers)
    }
}

/// An optional sink: `None` takes everything and does nothing (e.g. the
/// Lambda function's vector log when it is turned off).
impl<S: Sink> Sink for Option<S> {
    async fn send(&mut self, produced: Produced) -> Result<()> {
        match self {
            Some(sink) => sink.send(produced).await,
            None => Ok(()),
        }
    }

    async fn send_timed(&mut self, produced: Produced, times: Vec<i64>) -> Result<()> {
        match self {
            Some(sink) => sink.send_timed(produced, times).await,
            None => Ok(()),
        }
    }

    async fn tick(&mut self, now_ms: i64) -> Result<()> {
        match self {
            Some(sink) => sink.tick(now_ms).await,
            None => Ok(()),
        }
    }

    async fn flush(&mut self) -> Result<()> {
        match self {
            Some(sink) => sink.flush().await,
            None => Ok(()),
        }
    }

    async fn close(&mut self) -> Result<()> {
        match self {
            Some(sink) => sink.close().await,
            None => Ok(()),
        }
    }

    fn checkpoint_state(&self) -> Option<serde_json::Value> {
        self.as_ref().and_then(Sink::checkpoint_state)
    }

    fn observe_source(&mut self, records: u64, iterator_age_ms: Option<i64>) {
        if let Some(sink) = self {
            sink.observe_source(records, iterator_age_ms);
        }
    }

    async fn forget(&mut self, customers: Vec<String>) -> Result<()> {
        match self {
            Some(sink) => sink.forget(customers).await,
            None => Ok(()),
        }
    }
}

/// Two sinks fed the same results: e.g. the vector files and the scoring
/// outputs of `pulse run --score`.
///
/// Each step goes to `.0` first, then to `.1`; `flush` is a barrier for
/// both; the checkpoint state is `.0`'s (the files' lengths; scoring's writes
/// are conditional on the emission's place in the customer's stream, which a
/// replay after a restart gives again, so replaying them is harmless).
#[derive(Debug)]
pub struct Both<A, B>(pub A, pub B);

impl<A: Sink, B: Sink> Sink for Both<A, B> {
    async fn send(&mut self, produced: Produced) -> Result<()> {
        self.0.send(produced.clone()).await?;
        self.1.send(produced).await
    }

    async fn send_timed(&mut self, produced: Produced, times: Vec<i64>) -> Result<()> {
        self.0.send_timed(produced.clone(), times.clone()).await?;
        self.1.send_timed(produced, times).await
    }

    async fn tick(&mut self, now_ms: i64) -> Result<()> {
        self.0.tick(now_ms).await?;
        self.1.tick(now_ms).await
    }

    async fn flush(&mut self) -> Result<()> {
        self.0.flush().await?;
        self.1.flush().await
    }

    async fn close(&mut self) -> Result<()> {
        self.0.close().await?;
        self.1.close().await
    }

    fn checkpoint_state(&self) -> Option<serde_json::Value> {
        self.0.checkpoint_state()
    }

    fn observe_source(&mut self, records: u64, iterator_age_ms: Option<i64>) {
        self.0.observe_source(records, iterator_age_ms);
        self.1.observe_source(records, iterator_age_ms);
    }

    async fn forget(&mut self, customers: Vec<String>) -> Result<()> {
        self.0.forget(customers.clone()).await?;
        self.1.forget(customers).await
    }
}
