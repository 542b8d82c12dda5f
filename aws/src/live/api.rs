//! The two stream APIs pulse reads, behind one small interface: list the
//! shards, get an iterator, get a page of records (as capture lines).
//!
//! Every call goes through the official SDK client, which retries throttling
//! (`LimitExceededException`, `ProvisionedThroughputExceededException`) and
//! transient failures itself (standard retry mode); what still fails comes
//! back as a [`ReadError`] whose kind tells the reader what to do.

use std::fmt;

use anyhow::{bail, Context, Result};
use aws_sdk_dynamodbstreams::config::http::HttpResponse;
use aws_sdk_dynamodbstreams::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodbstreams::types::{ShardIteratorType as StreamsIteratorType, StreamViewType};
use aws_sdk_kinesis::types::ShardIteratorType as KinesisIteratorType;

use super::lineage::{collect_pages, ShardInfo};
use super::record::{dynamodb_streams_line, kinesis_line};
use crate::retry::{classify, error_code, Failure};

/// Where a shard is read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartAt {
    /// The oldest record still retained.
    TrimHorizon,
    /// Only records written from now on.
    Latest,
    /// Just after this sequence number (a checkpoint).
    After(String),
}

/// One record as read: its position and its capture line.
#[derive(Clone, Debug)]
pub struct LiveRecord {
    /// The stream's sequence number of the record (DynamoDB Streams' or Kinesis').
    pub sequence_number: String,
    /// The record as one capture line (no newline).
    pub line: Vec<u8>,
}

/// One GetRecords answer.
#[derive(Debug)]
pub struct Page {
    /// The records, in shard order.
    pub records: Vec<LiveRecord>,
    /// The iterator for the next call; `None` once a closed shard is read to its end.
    pub next: Option<String>,
    /// Kinesis: how far behind the tip of the shard this page is.
    pub millis_behind: Option<i64>,
}

/// What a failed call means for the reader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The iterator is older than 15 minutes (or 5 for Kinesis): get a new one
    /// from the last record read.
    Expired,
    /// The position is older than the stream's retention: records are lost;
    /// continue from the oldest one left.
    Trimmed,
    /// Throttled even after the SDK's retries: wait and call again.
    Throttled,
    /// The shard (or the stream) does not exist (any more).
    NotFound,
    /// A network error, a timeout, a 5xx: wait and call again.
    Transient,
    /// Permissions, a bad argument, a disabled key: calling again will not help.
    Fatal,
}

/// What a failed stream call means for the reader: the streams' own codes
/// first (an expired iterator, trimmed data, a shard or stream gone), then
/// pulse's one classifier ([`crate::retry::classify`]) for the rest.
pub fn kind_of(code: Option<&str>, failure: &Failure) -> ErrorKind {
    match code {
        Some("ExpiredIteratorException") => ErrorKind::Expired,
        Some("TrimmedDataAccessException") => ErrorKind::Trimmed,
        Some("ResourceNotFoundException") => ErrorKind::NotFound,
        _ => match failure {
            Failure::Throttled(_) => ErrorKind::Throttled,
            Failure::Retry(_) => ErrorKind::Transient,
            Failure::Fatal(_) => ErrorKind::Fatal,
        },
    }
}

/// A failed call: its kind and what the service said.
#[derive(Debug)]
pub struct ReadError {
    /// What to do about it.
    pub kind: ErrorKind,
    /// The call and the service's message.
    pub detail: String,
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail)
    }
}

impl std::error::Error for ReadError {}

fn read_error<E>(call: &str, e: SdkError<E, HttpResponse>) -> ReadError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let failure = classify(&e);
    let kind = kind_of(error_code(&e), &failure);
    let message = match (e.code(), e.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_owned(),
        _ => format!("{:#}", anyhow::Error::new(e)),
    };
    ReadError { kind, detail: format!("{call} failed: {message}") }
}

/// A stream pulse reads, with its client.
#[derive(Clone)]
pub enum StreamApi {
    /// A DynamoDB stream.
    DynamoDbStreams {
        /// The client.
        client: aws_sdk_dynamodbstreams::Client,
        /// The stream's ARN.
        stream_arn: String,
    },
    /// A Kinesis data stream fed by a table's Kinesis streaming destination.
    Kinesis {
        /// The client.
        client: aws_sdk_kinesis::Client,
        /// The stream's ARN.
        stream_arn: String,
    },
    /// An in-memory stream, for the live loop's unit tests.
    #[cfg(test)]
    #[allow(private_interfaces)]
    Scripted(std::sync::Arc<super::scripted::Script>),
}

impl fmt::Debug for StreamApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamApi").field("id", &self.id()).finish_non_exhaustive()
    }
}

/// Most records one GetRecords call may return.
pub fn max_records_per_call(api: &StreamApi) -> i32 {
    match api {
        StreamApi::DynamoDbStreams { .. } => 1000,
        StreamApi::Kinesis { .. } => 10_000,
        #[cfg(test)]
        StreamApi::Scripted(_) => 1000,
    }
}

impl StreamApi {
    /// The latest stream of `table` (found with ListStreams), refused unless
    /// it carries new and old images (corrections need both).
    pub async fn dynamodb_table(client: aws_sdk_dynamodbstreams::Client, table: &str) -> Result<StreamApi> {
        let mut newest: Option<(String, String)> = None;
        let mut start: Option<String> = None;
        loop {
            let page = client
                .list_streams()
                .table_name(table)
                .set_exclusive_start_stream_arn(start.take())
                .send()
                .await
                .map_err(|e| read_error("ListStreams", e))
                .with_context(|| format!("cannot list the streams of table {table}"))?;
            for s in page.streams() {
                if s.table_name() != Some(table) {
                    continue;
                }
                let (Some(arn), label) = (s.stream_arn(), s.stream_label().unwrap_or_default()) else { continue };
                if newest.as_ref().is_none_or(|(l, _)| label > l.as_str()) {
                    newest = Some((label.to_owned(), arn.to_owned()));
                }
            }
            match page.last_evaluated_stream_arn() {
                Some(next) => start = Some(next.to_owned()),
                None => break,
            }
        }
        let Some((_, arn)) = newest else {
            // ListStreams answers a table that does not exist as one without
            // streams; telling them apart would take DescribeTable, a
            // permission a stream reader need not have.
            let region = client.config().region().map_or("the configured region".to_owned(), |r| r.to_string());
            bail!(
                "no stream found for table {table} in {region}: check the table's name and region, and that it has a \
                 NEW_AND_OLD_IMAGES stream (or pass --stream-arn)"
            )
        };
        StreamApi::dynamodb_stream(client, arn).await
    }

    /// A DynamoDB stream by ARN, refused unless it carries new and old images.
    pub async fn dynamodb_stream(client: aws_sdk_dynamodbstreams::Client, stream_arn: String) -> Result<StreamApi> {
        let described = client
            .describe_stream()
            .stream_arn(&stream_arn)
            .limit(1)
            .send()
            .await
            .map_err(|e| read_error("DescribeStream", e))
            .with_context(|| format!("cannot describe stream {stream_arn}"))?;
        let view = described.stream_description().and_then(|d| d.stream_view_type());
        if view != Some(&StreamViewType::NewAndOldImages) {
            bail!(
                "stream {stream_arn} has view type {}: pulse needs NEW_AND_OLD_IMAGES (a correction retracts its old image)",
                view.map_or("unknown", |v| v.as_str())
            );
        }
        Ok(StreamApi::DynamoDbStreams { client, stream_arn })
    }

    /// A Kinesis data stream by name or ARN.
    pub async fn kinesis(client: aws_sdk_kinesis::Client, stream: &str) -> Result<StreamApi> {
        let request = client.describe_stream_summary();
        let request = if stream.starts_with("arn:") { request.stream_arn(stream) } else { request.stream_name(stream) };
        let described = request
            .send()
            .await
            .map_err(|e| read_error("DescribeStreamSummary", e))
            .with_context(|| format!("cannot describe Kinesis stream {stream}"))?;
        let summary = described.stream_description_summary().context("DescribeStreamSummary returned no summary")?;
        Ok(StreamApi::Kinesis { client, stream_arn: summary.stream_arn().to_owned() })
    }

    /// The stream's identity, kept in checkpoints: `dynamodb-streams:ARN` or `kinesis:ARN`.
    pub fn id(&self) -> String {
        match self {
            StreamApi::DynamoDbStreams { stream_arn, .. } => format!("dynamodb-streams:{stream_arn}"),
            StreamApi::Kinesis { stream_arn, .. } => format!("kinesis:{stream_arn}"),
            #[cfg(test)]
            StreamApi::Scripted(_) => "scripted:stream".to_owned(),
        }
    }

    /// Every shard the stream lists now (all pages).
    pub async fn list_shards(&self) -> Result<Vec<ShardInfo>> {
        match self {
            StreamApi::DynamoDbStreams { client, stream_arn } => {
                collect_pages(|start| async move {
                    let out = client
                        .describe_stream()
                        .stream_arn(stream_arn)
                        .set_exclusive_start_shard_id(start)
                        .send()
                        .await
                        .map_err(|e| read_error("DescribeStream", e))?;
                    let d = out.stream_description().context("DescribeStream returned no description")?;
                    let shards = d.shards().iter().filter_map(streams_shard_info).collect();
                    Ok((shards, d.last_evaluated_shard_id().map(str::to_owned)))
                })
                .await
            }
            StreamApi::Kinesis { client, stream_arn } => {
                collect_pages(|token| async move {
                    // With a NextToken, ListShards refuses the stream's name.
                    let request = match token {
                        Some(t) => client.list_shards().next_token(t),
                        None => client.list_shards().stream_arn(stream_arn),
                    };
                    let out = request.send().await.map_err(|e| read_error("ListShards", e))?;
                    let shards = out
                        .shards()
                        .iter()
                        .map(|s| ShardInfo {
                            id: s.shard_id().to_owned(),
                            parent: s.parent_shard_id().map(str::to_owned),
                            adjacent_parent: s.adjacent_parent_shard_id().map(str::to_owned),
                            closed: s.sequence_number_range().and_then(|r| r.ending_sequence_number()).is_some(),
                        })
                        .collect();
                    Ok((shards, out.next_token().map(str::to_owned)))
                })
                .await
            }
            #[cfg(test)]
            StreamApi::Scripted(script) => Ok(script.list_shards()),
        }
    }

    /// An iterator for `shard` at `at`.
    pub async fn iterator(&self, shard: &str, at: &StartAt) -> Result<String, ReadError> {
        let missing =
            || ReadError { kind: ErrorKind::Transient, detail: "GetShardIterator returned no iterator".into() };
        match self {
            StreamApi::DynamoDbStreams { client, stream_arn } => {
                let (kind, sequence) = match at {
                    StartAt::TrimHorizon => (StreamsIteratorType::TrimHorizon, None),
                    StartAt::Latest => (StreamsIteratorType::Latest, None),
                    StartAt::After(s) => (StreamsIteratorType::AfterSequenceNumber, Some(s.clone())),
                };
                let out = client
                    .get_shard_iterator()
                    .stream_arn(stream_arn)
                    .shard_id(shard)
                    .shard_iterator_type(kind)
                    .set_sequence_number(sequence)
                    .send()
                    .await
                    .map_err(|e| read_error("GetShardIterator", e))?;
                out.shard_iterator().map(str::to_owned).ok_or_else(missing)
            }
            StreamApi::Kinesis { client, stream_arn } => {
                let (kind, sequence) = match at {
                    StartAt::TrimHorizon => (KinesisIteratorType::TrimHorizon, None),
                    StartAt::Latest => (KinesisIteratorType::Latest, None),
                    StartAt::After(s) => (KinesisIteratorType::AfterSequenceNumber, Some(s.clone())),
                };
                let out = client
                    .get_shard_iterator()
                    .stream_arn(stream_arn)
                    .shard_id(shard)
                    .shard_iterator_type(kind)
                    .set_starting_sequence_number(sequence)
                    .send()
                    .await
                    .map_err(|e| read_error("GetShardIterator", e))?;
                out.shard_iterator().map(str::to_owned).ok_or_else(missing)
            }
            #[cfg(test)]
            StreamApi::Scripted(script) => script.iterator(shard, at),
        }
    }

    /// One page of records from `iterator`, each turned into its capture line.
    pub async fn records(&self, iterator: &str, limit: i32) -> Result<Page, ReadError> {
        match self {
            StreamApi::DynamoDbStreams { client, stream_arn } => {
                let out = client
                    .get_records()
                    .shard_iterator(iterator)
                    .limit(limit)
                    .send()
                    .await
                    .map_err(|e| read_error("GetRecords", e))?;
                let mut records = Vec::with_capacity(out.records().len());
                // DynamoDB Streams gives no MillisBehindLatest: a page's age
                // is now minus its newest record's creation time (a second's
                // resolution). An empty page says nothing (AWS returns them
                // mid-shard too), so the last page's age stands. IteratorAgeMs
                // read 0 for a consumer minutes behind (a review, 2026-12-06).
                let millis_behind = out
                    .records()
                    .iter()
                    .filter_map(|r| r.dynamodb()?.approximate_creation_date_time())
                    .map(|t| t.secs().saturating_mul(1000))
                    .max()
                    .map(|created| (crate::live::now_ms() - created).max(0));
                for r in out.records() {
                    let Some(sequence_number) = r.dynamodb().and_then(|d| d.sequence_number()) else {
                        return Err(ReadError {
                            kind: ErrorKind::Fatal,
                            detail: "GetRecords returned a record without a SequenceNumber".into(),
                        });
                    };
                    records.push(LiveRecord {
                        sequence_number: sequence_number.to_owned(),
                        line: dynamodb_streams_line(r, stream_arn),
                    });
                }
                Ok(Page { records, next: out.next_shard_iterator().map(str::to_owned), millis_behind })
            }
            StreamApi::Kinesis { client, stream_arn } => {
                let out = client
                    .get_records()
                    .stream_arn(stream_arn)
                    .shard_iterator(iterator)
                    .limit(limit)
                    .send()
                    .await
                    .map_err(|e| read_error("GetRecords", e))?;
                let records = out
                    .records()
                    .iter()
                    .map(|r| LiveRecord {
                        sequence_number: r.sequence_number().to_owned(),
                        line: kinesis_line(r.data().as_ref()),
                    })
                    .collect();
                Ok(Page {
                    records,
                    next: out.next_shard_iterator().map(str::to_owned),
                    millis_behind: out.millis_behind_latest(),
                })
            }
            #[cfg(test)]
            StreamApi::Scripted(script) => script.records(iterator, limit),
        }
    }
}

/// A DynamoDB Streams shard as lineage sees it (`None` without an id).
pub(crate) fn streams_shard_info(s: &aws_sdk_dynamodbstreams::types::Shard) -> Option<ShardInfo> {
    Some(ShardInfo {
        id: s.shard_id()?.to_owned(),
        parent: s.parent_shard_id().map(str::to_owned),
        adjacent_parent: None,
        closed: s.sequence_number_range().and_then(|r| r.ending_sequence_number()).is_some(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_map_to_what_the_reader_does() {
        // A service's answer with this code, through the one classifier first.
        let kind = |code: &str| kind_of(Some(code), &crate::retry::classify_answer(400, Some(code), code.into()));
        assert_eq!(kind("ExpiredIteratorException"), ErrorKind::Expired);
        assert_eq!(kind("TrimmedDataAccessException"), ErrorKind::Trimmed);
        assert_eq!(kind("LimitExceededException"), ErrorKind::Throttled);
        assert_eq!(kind("ProvisionedThroughputExceededException"), ErrorKind::Throttled);
        assert_eq!(kind("ResourceNotFoundException"), ErrorKind::NotFound);
        assert_eq!(kind("InternalServerError"), ErrorKind::Transient);
        assert_eq!(kind_of(None, &Failure::Retry("timed out".into())), ErrorKind::Transient);
        assert_eq!(kind("AccessDeniedException"), ErrorKind::Fatal);
        assert_eq!(kind("ValidationException"), ErrorKind::Fatal);
    }
}
