//! A sink on a task of its own: [`Background`].
//!
//! The [`Driver`](crate::driver::Driver) calls its sink in line, between two
//! batches. A sink that does heavy work of its own (the scoring stage runs
//! the model) would then make the engine wait for it; wrapped in
//! [`Background`], it runs on its own tokio task behind a bounded channel,
//! so applying the next batch overlaps with scoring the previous one, and a
//! slow sink still slows the driver down (backpressure, nothing unbounded).
//!
//! The barriers keep their meaning across the channel: [`Sink::flush`] and
//! [`Sink::close`] return only once the inner sink's own `flush` / `close`
//! did, with its result. The first error of the inner sink ends its task;
//! the next call on the handle returns that error.

use anyhow::{anyhow, Result};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::process::Produced;
use crate::sink::Sink;

/// Calls waiting between the handle and the task. Each carries a whole
/// batch, so a few are enough to keep both sides busy.
const QUEUE: usize = 8;

enum Command {
    Send(Produced, Vec<i64>),
    Tick(i64),
    Observe(u64, Option<i64>),
    Forget(Vec<String>),
    Flush(oneshot::Sender<Option<serde_json::Value>>),
    Close(oneshot::Sender<Option<serde_json::Value>>),
}

/// A [`Sink`] moved to its own task; this handle is the sink the caller
/// uses. After [`Sink::close`], [`Background::into_inner`] gives the inner
/// sink back (for its counts and summaries).
#[derive(Debug)]
pub struct Background<S> {
    tx: Option<mpsc::Sender<Command>>,
    task: Option<JoinHandle<Result<S>>>,
    /// The inner sink's checkpoint state after its last flush or close
    /// (`checkpoint_state` is synchronous, the inner sink is on its task).
    state: Option<serde_json::Value>,
    closed: Option<S>,
}

impl<S: Sink + 'static> Background<S> {
    /// Moves `sink` to a new task of the current tokio runtime.
    pub fn spawn(sink: S) -> Background<S> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let task = tokio::spawn(serve(sink, rx));
        Background { tx: Some(tx), task: Some(task), state: None, closed: None }
    }

    /// The inner sink, once [`Sink::close`] returned `Ok`.
    pub fn into_inner(self) -> Option<S> {
        self.closed
    }

    async fn command(&mut self, command: Command) -> Result<()> {
        let Some(tx) = self.tx.as_ref() else { return Err(anyhow!("the sink was closed")) };
        if tx.send(command).await.is_err() {
            return Err(self.failure().await);
        }
        Ok(())
    }

    /// Waits for a barrier's answer; none means the task ended on an error.
    async fn barrier(&mut self, make: fn(oneshot::Sender<Option<serde_json::Value>>) -> Command) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        self.command(make(reply)).await?;
        match answer.await {
            Ok(state) => {
                self.state = state;
                Ok(())
            }
            Err(_) => Err(self.failure().await),
        }
    }

    /// The error that ended the task.
    async fn failure(&mut self) -> anyhow::Error {
        self.tx = None;
        match self.task.take() {
            Some(task) => match task.await {
                Ok(Err(e)) => e,
                Ok(Ok(_)) => anyhow!("the sink's task ended before it was closed"),
                Err(e) => anyhow!("the sink's task panicked or was cancelled: {e}"),
            },
            None => anyhow!("the sink failed earlier"),
        }
    }
}

/// The task: the inner sink's calls in the order they were made.
async fn serve<S: Sink>(mut sink: S, mut rx: mpsc::Receiver<Command>) -> Result<S> {
    while let Some(command) = rx.recv().await {
        match command {
            Command::Send(produced, times) => sink.send_timed(produced, times).await?,
            Command::Tick(now_ms) => sink.tick(now_ms).await?,
            Command::Observe(records, age) => sink.observe_source(records, age),
            Command::Forget(customers) => sink.forget(customers).await?,
            Command::Flush(reply) => {
                sink.flush().await?;
                // The caller waits on the answer; if it went away (its run
                // was cancelled), there is no one left to tell.
                let _ = reply.send(sink.checkpoint_state());
            }
            Command::Close(reply) => {
                sink.close().await?;
                let _ = reply.send(sink.checkpoint_state());
                return Ok(sink);
            }
        }
    }
    // The handle was dropped without a close (a run that failed elsewhere):
    // nothing is flushed, as for any sink dropped without its barrier.
    Ok(sink)
}

impl<S: Sink + 'static> Sink for Background<S> {
    async fn send(&mut self, produced: Produced) -> Result<()> {
        self.command(Command::Send(produced, Vec::new())).await
    }

    async fn send_timed(&mut self, produced: Produced, times: Vec<i64>) -> Result<()> {
        self.command(Command::Send(produced, times)).await
    }

    async fn tick(&mut self, now_ms: i64) -> Result<()> {
        self.command(Command::Tick(now_ms)).await
    }

    async fn flush(&mut self) -> Result<()> {
        self.barrier(Command::Flush).await
    }

    async fn close(&mut self) -> Result<()> {
        self.barrier(Command::Close).await?;
        self.tx = None;
        match self.task.take() {
            Some(task) => {
                self.closed = Some(task.await.map_err(|e| anyhow!("the sink's task panicked: {e}"))??);
                Ok(())
            }
            None => Err(anyhow!("the sink failed earlier")),
        }
    }

    fn checkpoint_state(&self) -> Option<serde_json::Value> {
        self.state.clone()
    }

    async fn forget(&mut self, customers: Vec<String>) -> Result<()> {
        self.command(Command::Forget(customers)).await
    }

    fn observe_source(&mut self, records: u64, iterator_age_ms: Option<i64>) {
        // Synchronous by contract: a full queue drops the observation (it
        // feeds health metrics only) rather than block the driver.
        if let Some(tx) = self.tx.as_ref() {
            if tx.try_send(Command::Observe(records, iterator_age_ms)).is_err() {
                tracing::debug!(records, "a source observation was dropped: the sink's queue is full");
            }
        }
    }
}
