//! DynamoDB's batch calls and what they leave undone: `BatchWriteItem` (25
//! requests a call) and `BatchGetItem` (100 keys a call), several calls at
//! once. A call that fails as a whole is retried when [`classify`] says so;
//! the items or keys a call hands back unprocessed (the table's capacity,
//! DynamoDB's way of throttling part of a batch) are sent again, waiting as
//! after throttling. Both under one [`Backoff`]: when its attempts run out,
//! the error says how many items were left and why.
//!
//! Used by the due index, the stamps, the alert states of the prediction
//! table and the load test's writer: one loop, one policy.

use std::collections::HashMap;

use anyhow::{anyhow, Result};
use aws_sdk_dynamodb::types::builders::KeysAndAttributesBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, WriteRequest};
use futures_util::{stream, StreamExt, TryStreamExt};

use crate::retry::{classify, Backoff, Failure};

/// `BatchWriteItem` takes at most 25 requests.
pub const WRITE_MAX: usize = 25;
/// `BatchGetItem` takes at most 100 keys.
pub const GET_MAX: usize = 100;

/// The policy of pulse's own table items (due items, stamps): up to 8
/// attempts, the first retry within 25 ms, none later than 2 s.
pub const TABLE_RETRY: Backoff =
    Backoff { base: std::time::Duration::from_millis(25), cap: std::time::Duration::from_secs(2), max_attempts: 8 };

/// A key or an item, as the SDK takes it.
pub type Item = HashMap<String, AttributeValue>;

/// What batch calls cost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchStats {
    /// Calls made (retries included).
    pub calls: u64,
    /// Calls repeated after a retryable failure or unprocessed items.
    pub retries: u64,
    /// Items or keys handed back unprocessed and sent again.
    pub retried_items: u64,
}

impl BatchStats {
    fn add(&mut self, other: BatchStats) {
        self.calls += other.calls;
        self.retries += other.retries;
        self.retried_items += other.retried_items;
    }
}

/// Writes every request to `table`, [`WRITE_MAX`] a call, up to
/// `concurrency` calls at once. `what` names the items in errors.
pub async fn write_all(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    requests: Vec<WriteRequest>,
    policy: &Backoff,
    concurrency: usize,
    what: &str,
) -> Result<BatchStats> {
    let chunks: Vec<Vec<WriteRequest>> = requests.chunks(WRITE_MAX).map(<[WriteRequest]>::to_vec).collect();
    let parts: Vec<BatchStats> = stream::iter(chunks)
        .map(|chunk| write_chunk(client, table, chunk, policy, what))
        .buffer_unordered(concurrency.max(1))
        .try_collect()
        .await?;
    let mut total = BatchStats::default();
    parts.into_iter().for_each(|p| total.add(p));
    Ok(total)
}

/// Writes at most [`WRITE_MAX`] requests in one call, then their
/// unprocessed ones again until all are in or the attempts run out.
pub async fn write_chunk(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    mut requests: Vec<WriteRequest>,
    policy: &Backoff,
    what: &str,
) -> Result<BatchStats> {
    anyhow::ensure!(
        requests.len() <= WRITE_MAX,
        "BatchWriteItem takes at most {WRITE_MAX} items, got {}",
        requests.len()
    );
    let mut stats = BatchStats::default();
    let mut attempt = 0;
    while !requests.is_empty() {
        attempt += 1;
        stats.calls += 1;
        let sent = client.batch_write_item().request_items(table, requests.clone()).send().await;
        let failure = match sent {
            Ok(mut out) => {
                requests = out.unprocessed_items.as_mut().and_then(|u| u.remove(table)).unwrap_or_default();
                if requests.is_empty() {
                    break;
                }
                stats.retried_items += requests.len() as u64;
                Failure::Throttled(format!("{} items unprocessed", requests.len()))
            }
            Err(e) => classify(&e),
        };
        if !failure.is_retryable() || !policy.may_retry(attempt) {
            return Err(anyhow!(
                "{what}: BatchWriteItem on table {table}: {} items not written after {attempt} attempts: {}",
                requests.len(),
                failure.reason()
            ));
        }
        stats.retries += 1;
        policy.wait_after(&failure, attempt).await;
    }
    Ok(stats)
}

/// Reads the items of `keys` from `table`, [`GET_MAX`] a call, up to
/// `concurrency` calls at once; `shape` sets the rest of each call's
/// request (projection, consistent read). Keys without an item are left out.
pub async fn get_all(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    keys: Vec<Item>,
    shape: &(dyn Fn(KeysAndAttributesBuilder) -> KeysAndAttributesBuilder + Sync),
    policy: &Backoff,
    concurrency: usize,
    what: &str,
) -> Result<(Vec<Item>, BatchStats)> {
    let chunks: Vec<Vec<Item>> = keys.chunks(GET_MAX).map(<[Item]>::to_vec).collect();
    let parts: Vec<(Vec<Item>, BatchStats)> = stream::iter(chunks)
        .map(|chunk| get_chunk(client, table, chunk, shape, policy, what))
        .buffer_unordered(concurrency.max(1))
        .try_collect()
        .await?;
    let mut items = Vec::new();
    let mut total = BatchStats::default();
    for (part, stats) in parts {
        items.extend(part);
        total.add(stats);
    }
    Ok((items, total))
}

async fn get_chunk(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    keys: Vec<Item>,
    shape: &(dyn Fn(KeysAndAttributesBuilder) -> KeysAndAttributesBuilder + Sync),
    policy: &Backoff,
    what: &str,
) -> Result<(Vec<Item>, BatchStats)> {
    let mut items = Vec::new();
    let mut stats = BatchStats::default();
    let request = |keys: Vec<Item>| -> Result<KeysAndAttributes> {
        shape(KeysAndAttributes::builder().set_keys(Some(keys)))
            .build()
            .map_err(|e| anyhow!("{what}: BatchGetItem keys: {e}"))
    };
    let mut pending = request(keys)?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        stats.calls += 1;
        let answer = client.batch_get_item().request_items(table, pending.clone()).send().await;
        let failure = match answer {
            Ok(mut out) => {
                if let Some(found) = out.responses.as_mut().and_then(|r| r.remove(table)) {
                    items.extend(found);
                }
                match out.unprocessed_keys.as_mut().and_then(|u| u.remove(table)).filter(|k| !k.keys().is_empty()) {
                    None => return Ok((items, stats)),
                    Some(left) => {
                        stats.retried_items += left.keys().len() as u64;
                        pending = left;
                        Failure::Throttled(format!("{} keys unprocessed", pending.keys().len()))
                    }
                }
            }
            Err(e) => classify(&e),
        };
        if !failure.is_retryable() || !policy.may_retry(attempt) {
            return Err(anyhow!(
                "{what}: BatchGetItem on table {table}: {} keys not read after {attempt} attempts: {}",
                pending.keys().len(),
                failure.reason()
            ));
        }
        stats.retries += 1;
        policy.wait_after(&failure, attempt).await;
    }
}
