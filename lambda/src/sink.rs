//! Sinks the Lambda function can run with before the scoring sink is plugged
//! in: JSON lines on a writer (stdout in Lambda, so CloudWatch Logs), and an
//! in-memory sink for tests and embedding.

use std::io::Write;

use anyhow::{Context, Result};
use pulse_schemas::FeatureVector;

use pulse_runtime::process::{write_vector_line, DeadLetter, Produced};
use pulse_runtime::sink::Sink;

/// Vectors (§5's line format) and dead letters (`code`, `reason`, `source`,
/// `record`, as `pulse replay` writes them) as JSON lines on a writer: a line
/// with `features` is a vector, one with `code` a dead letter.
///
/// `send` only formats into a buffer; `flush` writes and flushes it, so a
/// batch is acknowledged only once its lines are out (for stdout in Lambda,
/// handed to the log agent).
#[derive(Debug)]
pub struct JsonLinesSink<W> {
    out: W,
    buf: Vec<u8>,
}

impl JsonLinesSink<std::io::Stdout> {
    /// Lines on stdout.
    pub fn stdout() -> Self {
        JsonLinesSink::new(std::io::stdout())
    }
}

impl<W: Write + Send> JsonLinesSink<W> {
    /// Lines on `out`.
    pub fn new(out: W) -> Self {
        JsonLinesSink { out, buf: Vec::new() }
    }

    /// The writer.
    pub fn into_inner(self) -> W {
        self.out
    }
}

impl<W: Write + Send> Sink for JsonLinesSink<W> {
    async fn send(&mut self, produced: Produced) -> Result<()> {
        for v in &produced.vectors {
            write_vector_line(v, &mut self.buf);
        }
        for d in &produced.dead {
            d.write_json_line(&mut self.buf);
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        self.out.write_all(&self.buf).context("writing vector and dead-letter lines")?;
        self.out.flush().context("flushing vector and dead-letter lines")?;
        self.buf.clear();
        Ok(())
    }
}

/// Keeps what it is sent in memory; `flush` moves it to the durable side.
#[derive(Debug, Default)]
pub struct MemorySink {
    pending: Produced,
    /// Vectors flushed so far, in order.
    pub vectors: Vec<FeatureVector>,
    /// Dead letters flushed so far, in order.
    pub dead: Vec<DeadLetter>,
    /// Calls of `flush`.
    pub flushes: usize,
    /// Customers it was told to forget ([`Sink::forget`]), in order, each
    /// with the number of vectors it had been sent before.
    pub forgotten: Vec<(String, usize)>,
    sent: usize,
}

impl MemorySink {
    /// Takes the vectors and dead letters flushed so far.
    pub fn take(&mut self) -> Produced {
        Produced { vectors: std::mem::take(&mut self.vectors), dead: std::mem::take(&mut self.dead) }
    }
}

impl Sink for MemorySink {
    async fn send(&mut self, produced: Produced) -> Result<()> {
        self.sent += produced.vectors.len();
        self.pending.vectors.extend(produced.vectors);
        self.pending.dead.extend(produced.dead);
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        self.vectors.append(&mut self.pending.vectors);
        self.dead.append(&mut self.pending.dead);
        self.flushes += 1;
        Ok(())
    }

    async fn forget(&mut self, customers: Vec<String>) -> Result<()> {
        self.forgotten.extend(customers.into_iter().map(|c| (c, self.sent)));
        Ok(())
    }
}
