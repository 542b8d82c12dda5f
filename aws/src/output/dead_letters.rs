//! Dead letters in production: invalid records to an SQS queue and/or a file,
//! each with its reason and the original record.
//!
//! The body is the dead letter's JSON line
//! ([`DeadLetter::write_json_line`]): `code`, `reason`, `source` and `record`
//! (the original JSON; `record_text` when it was not JSON, `record_base64` when it was not UTF-8 either). Attributes
//! `code` and `sequence_number` let a consumer route or find it.
//!
//! SQS takes at most 256 KiB a message (and a batch). A DynamoDB Streams
//! record with both images of a large item can be bigger. Such a record is
//! not cut silently: its message keeps `code`, `reason` and `source`, and
//! replaces `record` by `record_omitted` (its size, its xxh3-128 hash and
//! why) and `record_excerpt` (its first 64 KiB). The whole record is kept
//! by the file sink ([`DeadLetterFile`], JSON Lines appended, synced at every
//! checkpoint), which is why production should configure both when records
//! can be large.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use anyhow::{Context, Result};
use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};
use serde::Serialize;
use tokio::io::AsyncWriteExt;

use super::batch::{group, send_group, EntryFailure};
use crate::retry::{classify, Backoff, Failure};
use pulse_runtime::process::DeadLetter;

/// SQS's limit on one message and on one batch.
pub const SQS_MAX_BYTES: usize = 256 * 1024;
/// What an oversized record keeps of itself in its message.
const EXCERPT_BYTES: usize = 64 * 1024;

#[derive(Serialize)]
struct Oversized<'a> {
    code: &'static str,
    reason: String,
    source: &'a pulse_schemas::Source,
    record_omitted: Omitted,
    record_excerpt: &'a str,
}

#[derive(Serialize)]
struct Omitted {
    bytes: usize,
    xxh3_128: String,
    why: String,
}

/// The message body of a dead letter, at most `max_bytes` long, and whether
/// the record had to be left out of it.
pub fn message_body(dead: &DeadLetter, max_bytes: usize) -> (String, bool) {
    let mut line = Vec::with_capacity(dead.raw.len() + 256);
    dead.write_json_line(&mut line);
    line.pop(); // the newline
    if line.len() <= max_bytes {
        // JSON from serde_json is UTF-8.
        return (String::from_utf8_lossy(&line).into_owned(), false);
    }
    let text = String::from_utf8_lossy(&dead.raw);
    let mut cut = EXCERPT_BYTES.min(text.len()).min(max_bytes / 2);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let body = Oversized {
        code: dead.invalid.reason.code(),
        reason: dead.invalid.reason.to_string(),
        source: &dead.source,
        record_omitted: Omitted {
            bytes: dead.raw.len(),
            xxh3_128: format!("{:032x}", xxhash_rust::xxh3::xxh3_128(&dead.raw)),
            why: format!(
                "the dead letter takes {} bytes, over the {max_bytes}-byte message limit; the whole record is in the dead-letter file when one is configured",
                line.len()
            ),
        },
        record_excerpt: &text[..cut],
    };
    // A struct of strings and numbers always serializes.
    let json = serde_json::to_string(&body).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    (json, true)
}

/// Sends dead letters to an SQS queue.
#[derive(Debug, Clone)]
pub struct DeadLetterQueue {
    client: aws_sdk_sqs::Client,
    queue_url: Arc<str>,
    max_message_bytes: usize,
    retry: Backoff,
    counts: Arc<QueueCounts>,
}

#[derive(Debug, Default)]
struct QueueCounts {
    sent: AtomicU64,
    oversized: AtomicU64,
    retries: AtomicU64,
}

impl DeadLetterQueue {
    /// Retries a failing call as `retry` says (default [`Backoff::writes`];
    /// `pulse run` waits out an outage of `--write-retry-s` instead).
    pub fn with_retry(mut self, retry: Backoff) -> DeadLetterQueue {
        self.retry = retry;
        self
    }

    /// A sender to `queue_url`.
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<Arc<str>>) -> DeadLetterQueue {
        DeadLetterQueue {
            client,
            queue_url: queue_url.into(),
            max_message_bytes: SQS_MAX_BYTES,
            retry: Backoff::writes(),
            counts: Arc::default(),
        }
    }

    /// Messages sent, records left out for size, retries, so far.
    pub fn stats(&self) -> (u64, u64, u64) {
        (self.counts.sent.load(Relaxed), self.counts.oversized.load(Relaxed), self.counts.retries.load(Relaxed))
    }

    /// Sends every dead letter; `Ok` once SQS accepted them all.
    pub async fn send(&self, dead: &[DeadLetter]) -> Result<()> {
        let mut entries = Vec::with_capacity(dead.len());
        for d in dead {
            // Room for the attributes within the batch limit.
            let (body, oversized) = message_body(d, self.max_message_bytes - 1024);
            if oversized {
                self.counts.oversized.fetch_add(1, Relaxed);
                tracing::warn!(
                    bytes = d.raw.len(),
                    code = d.invalid.reason.code(),
                    "dead letter too large for SQS: record left out of the message"
                );
            }
            let size = body.len() + 1024;
            let attribute = |v: &str| {
                MessageAttributeValue::builder().data_type("String").string_value(v).build().context("attribute")
            };
            let mut entry = SendMessageBatchRequestEntry::builder()
                .id("pending")
                .message_body(body)
                .message_attributes("code", attribute(d.invalid.reason.code())?);
            if let Some(seq) = d.source.sequence_number.as_deref().filter(|s| !s.is_empty()) {
                entry = entry.message_attributes("sequence_number", attribute(seq)?);
            }
            entries.push((entry.build().context("dead-letter entry")?, size));
        }
        let what = format!("sending dead letters to {}", self.queue_url);
        for batch in group(entries, 10, SQS_MAX_BYTES) {
            let n = batch.len() as u64;
            let retries = send_group(batch, &self.retry, &what, |entries| self.send_batch(entries)).await?;
            self.counts.sent.fetch_add(n, Relaxed);
            self.counts.retries.fetch_add(retries, Relaxed);
        }
        Ok(())
    }

    async fn send_batch(
        &self,
        entries: Vec<(String, SendMessageBatchRequestEntry)>,
    ) -> Result<Vec<EntryFailure>, Failure> {
        let entries = entries
            .into_iter()
            .map(|(id, mut e)| {
                e.id = id;
                e
            })
            .collect();
        let answer = self
            .client
            .send_message_batch()
            .queue_url(&*self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| classify(&e))?;
        Ok(answer
            .failed()
            .iter()
            .map(|f| EntryFailure::reported(f.id(), f.sender_fault(), f.code(), f.message()))
            .collect())
    }
}

/// Dead letters appended to a file as JSON Lines, whole (no size limit).
#[derive(Debug)]
pub struct DeadLetterFile {
    path: PathBuf,
    file: tokio::io::BufWriter<tokio::fs::File>,
    written: u64,
}

impl DeadLetterFile {
    /// Opens (creates or appends to) `path`.
    pub async fn open(path: &Path) -> Result<DeadLetterFile> {
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .await
            .with_context(|| format!("cannot open the dead-letter file {}", path.display()))?;
        Ok(DeadLetterFile { path: path.to_owned(), file: tokio::io::BufWriter::new(file), written: 0 })
    }

    /// Dead letters written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Appends (buffered).
    pub async fn write(&mut self, dead: &[DeadLetter]) -> Result<()> {
        let mut buf = Vec::new();
        for d in dead {
            d.write_json_line(&mut buf);
        }
        self.file.write_all(&buf).await.with_context(|| format!("cannot write to {}", self.path.display()))?;
        self.written += dead.len() as u64;
        Ok(())
    }

    /// Flushes and syncs to disk (the checkpoint barrier).
    pub async fn sync(&mut self) -> Result<()> {
        self.file.flush().await.with_context(|| format!("cannot write to {}", self.path.display()))?;
        self.file.get_ref().sync_data().await.with_context(|| format!("cannot sync {}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pulse_schemas::record::{Invalid, InvalidReason};
    use pulse_schemas::Source;

    fn dead(raw: Vec<u8>) -> DeadLetter {
        DeadLetter {
            source: Source { sequence_number: Some("42".into()), ..Source::default() },
            invalid: Invalid { reason: InvalidReason::MissingCreationTime },
            raw,
        }
    }

    #[test]
    fn small_records_travel_whole_with_their_reason() {
        let d = dead(br#"{"eventName":"INSERT","dynamodb":{"x":1}}"#.to_vec());
        let (body, oversized) = message_body(&d, SQS_MAX_BYTES);
        assert!(!oversized);
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["code"], "missing_creation_time");
        assert_eq!(json["record"]["dynamodb"]["x"], 1);
        assert_eq!(json["source"]["sequence_number"], "42");
        assert!(!json["reason"].as_str().unwrap().is_empty());
    }

    #[test]
    fn oversized_records_say_what_was_left_out() {
        let big = format!(r#"{{"eventName":"INSERT","pad":"{}"}}"#, "é".repeat(200_000)).into_bytes();
        let d = dead(big.clone());
        let (body, oversized) = message_body(&d, SQS_MAX_BYTES - 1024);
        assert!(oversized);
        assert!(body.len() <= SQS_MAX_BYTES - 1024, "{}", body.len());
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["code"], "missing_creation_time");
        assert_eq!(json["record_omitted"]["bytes"], big.len());
        assert_eq!(json["record_omitted"]["xxh3_128"].as_str().unwrap().len(), 32);
        let excerpt = json["record_excerpt"].as_str().unwrap();
        assert!(big.starts_with(excerpt.as_bytes()) && !excerpt.is_empty());
        assert!(json.get("record").is_none());
    }
}
