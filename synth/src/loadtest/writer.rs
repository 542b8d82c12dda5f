//! Writing generated events into the events table at a target rate.
//!
//! The generator speaks capture lines (DynamoDB Streams records); the table
//! wants items. [`item_of_line`] takes the record's `NewImage` (what the
//! table held after the change) and [`TableWriter`] sends items with
//! `BatchWriteItem`, 25 at a time (the API's limit), retrying the
//! `UnprocessedItems` the service hands back (throttling) under pulse's one
//! retry policy ([`pulse_aws::batch`]) until every item is in or the attempts
//! run out: a load
//! test that silently dropped writes would report a latency for events that
//! never existed.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
use serde::Deserialize;
use tokio::time::Instant;

/// `BatchWriteItem` takes at most this many items per call.
pub const BATCH_ITEMS: usize = 25;

/// A table item, as the SDK takes it.
pub type Item = pulse_aws::SdkItem;

#[derive(Deserialize)]
struct Line {
    #[serde(rename = "eventName")]
    event_name: String,
    dynamodb: Change,
}

#[derive(Deserialize)]
struct Change {
    #[serde(rename = "NewImage", default)]
    new_image: Option<serde_dynamo::Item>,
}

/// The item a capture line's record left in the table: the `NewImage` of an
/// `INSERT` or `MODIFY`. `REMOVE`s (and records without a new image) give
/// `None`: a load test writes the table forward and never deletes.
pub fn item_of_line(line: &[u8]) -> Result<Option<Item>> {
    let line: Line = serde_json::from_slice(line).context("a generated record is not a stream record")?;
    if line.event_name == "REMOVE" {
        return Ok(None);
    }
    Ok(line.dynamodb.new_image.map(pulse_aws::sdk_item))
}

/// What writing cost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteStats {
    /// `BatchWriteItem` calls made.
    pub calls: u64,
    /// Items the service returned unprocessed and that were sent again.
    pub retried_items: u64,
}

/// Sends items to one table with `BatchWriteItem`.
#[derive(Clone, Debug)]
pub struct TableWriter {
    client: aws_sdk_dynamodb::Client,
    table: String,
    retry: pulse_aws::retry::Backoff,
}

impl TableWriter {
    /// A writer to `table`, trying each batch up to 8 times (pulse's
    /// policy for table items, [`pulse_aws::batch::TABLE_RETRY`]).
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> TableWriter {
        TableWriter { client, table: table.into(), retry: pulse_aws::batch::TABLE_RETRY }
    }

    /// Writes up to [`BATCH_ITEMS`] items; returns once all are in.
    pub async fn write(&self, items: Vec<Item>) -> Result<WriteStats> {
        if items.len() > BATCH_ITEMS {
            bail!("BatchWriteItem takes at most {BATCH_ITEMS} items, got {}", items.len());
        }
        let requests = items
            .into_iter()
            .map(|item| {
                let put = PutRequest::builder().set_item(Some(item)).build().context("put request")?;
                Ok(WriteRequest::builder().put_request(put).build())
            })
            .collect::<Result<Vec<_>>>()?;
        let stats = pulse_aws::batch::write_chunk(&self.client, &self.table, requests, &self.retry, "load test")
            .await
            .with_context(|| format!("BatchWriteItem to {} failed", self.table))?;
        let stats = WriteStats { calls: stats.calls, retried_items: stats.retried_items };
        Ok(stats)
    }
}

/// Paces work to a target rate: the `n`-th unit may start at `start + n / rate`.
///
/// A late sender is not made to wait (so a slow call is caught up by the
/// next ones) and the schedule never runs ahead of the rate.
#[derive(Debug)]
pub struct Pacer {
    start: Instant,
    per_unit: Duration,
    sent: u64,
}

impl Pacer {
    /// A pacer at `rate` units per second.
    pub fn new(rate: f64) -> Result<Pacer> {
        if !(rate.is_finite() && rate > 0.0) {
            bail!("the rate must be a positive number of events per second, got {rate}");
        }
        let per_unit = Duration::try_from_secs_f64(1.0 / rate)
            .map_err(|_| anyhow::anyhow!("the rate {rate} events per second is too low to pace"))?;
        Ok(Pacer { start: Instant::now(), per_unit, sent: 0 })
    }

    /// As [`Pacer::acquire`], unless the units would be due at or after
    /// `deadline`: then it returns `false` at once, counting nothing.
    pub async fn acquire_before(&mut self, units: u64, deadline: Instant) -> bool {
        let due = self.start + self.per_unit.mul_f64(self.sent as f64);
        if due >= deadline {
            return false;
        }
        self.acquire(units).await;
        true
    }

    /// Waits until `units` more may start, and counts them.
    pub async fn acquire(&mut self, units: u64) {
        let due = self.start + self.per_unit.mul_f64(self.sent as f64);
        self.sent += units;
        tokio::time::sleep_until(due).await;
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::types::AttributeValue;

    use super::*;

    #[test]
    fn inserts_and_corrections_give_their_new_image_removes_nothing() {
        let insert = br#"{"eventName":"INSERT","dynamodb":{"NewImage":{"customer_id":{"S":"c1"},"ts":{"N":"5"}}}}"#;
        let item = item_of_line(insert).unwrap().expect("an item");
        assert_eq!(item["customer_id"], AttributeValue::S("c1".into()));
        assert_eq!(item["ts"], AttributeValue::N("5".into()));
        let modify = br#"{"eventName":"MODIFY","dynamodb":{"OldImage":{"a":{"S":"x"}},"NewImage":{"a":{"S":"y"}}}}"#;
        assert_eq!(item_of_line(modify).unwrap().unwrap()["a"], AttributeValue::S("y".into()));
        let remove = br#"{"eventName":"REMOVE","dynamodb":{"OldImage":{"a":{"S":"x"}}}}"#;
        assert_eq!(item_of_line(remove).unwrap(), None);
        assert!(item_of_line(b"not json").is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn the_pacer_holds_the_rate_and_catches_up_after_a_stall() {
        let mut pacer = Pacer::new(100.0).unwrap();
        let start = Instant::now();
        pacer.acquire(50).await; // the first units go at once
        assert_eq!(start.elapsed(), Duration::ZERO);
        pacer.acquire(50).await; // 50 units at 100/s: half a second later
        assert_eq!(start.elapsed(), Duration::from_millis(500));
        tokio::time::sleep(Duration::from_secs(5)).await; // a stall...
        let before = Instant::now();
        pacer.acquire(100).await; // ...is not paid for again
        assert_eq!(before.elapsed(), Duration::ZERO);
        assert!(Pacer::new(0.0).is_err());
        assert!(Pacer::new(f64::NAN).is_err());
        assert!(Pacer::new(1e-20).is_err(), "too low to pace: an error, not a panic");
    }

    /// At a low rate the next write may be due after the run's end: it is
    /// not waited for (a 2-s test at 0.1 events/s took 10 s).
    #[tokio::test(start_paused = true)]
    async fn the_pacer_does_not_wait_past_a_deadline() {
        let mut pacer = Pacer::new(0.1).unwrap();
        let start = Instant::now();
        let deadline = start + Duration::from_secs(2);
        assert!(pacer.acquire_before(1, deadline).await, "the first write goes at once");
        assert!(!pacer.acquire_before(1, deadline).await, "the second is due at 10 s");
        assert_eq!(start.elapsed(), Duration::ZERO);
        assert!(pacer.acquire_before(1, start + Duration::from_secs(11)).await);
        assert_eq!(start.elapsed(), Duration::from_secs(10));
    }
}
