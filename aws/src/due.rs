//! The due index: which customers have a timer due, so that silent customers
//! are rescored as time passes without ever scanning the table.
//!
//! In a replay, daily timers fire as stream time passes. A Lambda function
//! only runs when records arrive, and each execution environment holds only
//! the customers it has seen, so a customer who goes silent (the one about to
//! churn) would never be rescored. Instead:
//!
//! * Every time a consumer emits vectors for a customer, it writes the
//!   customer's next timer due time to one item of the event table: key
//!   `customer_id` + `sk = "DUE"`, `entity_type = "due"` (not an event: the
//!   pipeline skips it when it comes back on the stream), `next_due` (ms) and
//!   `due_hour` (`floor(next_due / 1 h)`). The same item carries the
//!   customer's stamp ([`crate::stamps`]), so a batch writes one item per
//!   customer, not two. A customer whose timers have stopped (silent for a
//!   year) keeps the item without `due_hour` while it has a stamp, and has
//!   it deleted otherwise.
//! * A global secondary index (default name `due-index`) has `due_hour` as
//!   partition key and `customer_id` as sort key. Only `DUE` items carry
//!   `due_hour`, so the index is sparse: one entry per customer with a timer.
//! * A scheduled invocation (EventBridge, hourly) Queries the index for each
//!   hour from `now − lookback` to `now` — one key each, never a scan — and
//!   rescores only those customers (see `pulse_lambda`), then writes their
//!   next due time, which moves them out of the hours already read.
//!
//! An hour's partition holds everyone due that hour (about 1/24 of the silent
//! customers with daily timers). GSI partitions take about 1,000 writes a
//! second each; a fleet that writes more `DUE` items than that in one hour
//! key would shard `due_hour` (e.g. `<hour>#<0..n>`) and Query every shard.
//! The index is eventually consistent: a `DUE` item written a moment before
//! the scheduled run may be read at its previous hour, which at worst rescores
//! a customer once more than needed.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, PutRequest, WriteRequest};

use crate::batch::TABLE_RETRY;
use crate::item_key;

/// The sort key of a customer's due item.
pub const DUE_SK: &str = "DUE";
/// The `entity_type` of a due item (not `event`: never scored).
pub const DUE_ENTITY_TYPE: &str = "due";
/// The default name of the index on `due_hour`.
pub const DEFAULT_DUE_INDEX: &str = "due-index";
/// One hour in milliseconds: the resolution of the index.
pub const HOUR_MS: i64 = 3_600_000;
/// BatchWriteItem calls in flight at once.
const WRITE_CONCURRENCY: usize = 8;

/// The hour (since the epoch) a time falls in.
pub fn due_hour(ms: i64) -> i64 {
    ms.div_euclid(HOUR_MS)
}

/// Writes items of `table` ([`crate::batch::write_all`] under
/// [`TABLE_RETRY`]). `what` names the items in errors.
pub(crate) async fn batch_write(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    requests: Vec<WriteRequest>,
    what: &'static str,
) -> Result<()> {
    crate::batch::write_all(client, table, requests, &TABLE_RETRY, WRITE_CONCURRENCY, what).await.map(drop)
}

/// A customer whose timer is due, as the index says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Due {
    /// The customer.
    pub customer_id: String,
    /// When its next timer is due (ms).
    pub next_due: i64,
}

/// The due items of the event table and their index.
#[derive(Clone, Debug)]
pub struct DueIndex {
    client: aws_sdk_dynamodb::Client,
    table: Arc<str>,
    index: Arc<str>,
}

impl DueIndex {
    /// The due items of `table`, indexed by `index`.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>, index: impl Into<String>) -> DueIndex {
        DueIndex { client, table: Arc::from(table.into()), index: Arc::from(index.into()) }
    }

    /// The index's name.
    pub fn index(&self) -> &str {
        &self.index
    }

    /// Writes each customer's next due time (`None`: timers stopped, the item
    /// is deleted), for customers no record of the batch touched: the
    /// timers that fired in a batch, a scheduled run's. The item is
    /// replaced without a stamp, so an environment still holding such a
    /// customer reads it again from the table at its next record (it has
    /// been silent a day: environments seldom live that long). A batch's
    /// own customers get their due time with their stamp
    /// ([`crate::stamps::Stamps::write`]). One entry per customer.
    pub async fn record(&self, updates: &[(String, Option<i64>)]) -> Result<()> {
        let requests = updates.iter().map(|(c, d)| write_request(c, *d, None)).collect::<Result<Vec<_>>>()?;
        batch_write(&self.client, &self.table, requests, "due index").await
    }

    /// The customers the index lists as due in the hours from
    /// `now − lookback_hours` to `now`'s hour (the latter may hold some due
    /// later in the hour: their `next_due` says).
    pub async fn due(&self, now_ms: i64, lookback_hours: i64) -> Result<Vec<Due>> {
        let last = due_hour(now_ms);
        let mut out = Vec::new();
        for hour in last - lookback_hours.max(0)..=last {
            let mut start = None;
            loop {
                let page = self
                    .client
                    .query()
                    .table_name(&*self.table)
                    .index_name(&*self.index)
                    .key_condition_expression("due_hour = :h")
                    .expression_attribute_values(":h", AttributeValue::N(hour.to_string()))
                    .set_exclusive_start_key(start.take())
                    .send()
                    .await
                    .with_context(|| {
                        format!("due index: Query on {} of table {} for hour {hour}", self.index, self.table)
                    })?;
                for item in page.items() {
                    out.push(read_due(item)?);
                }
                match page.last_evaluated_key() {
                    Some(key) => start = Some(key.clone()),
                    None => break,
                }
            }
        }
        Ok(out)
    }
}

/// The write of a customer's item (`sk = "DUE"`): its next due time (with
/// `due_hour`, which puts it in the index) and its stamp, whichever it has;
/// a delete when it has neither.
pub(crate) fn write_request(customer: &str, next_due: Option<i64>, applied_seq: Option<&str>) -> Result<WriteRequest> {
    if next_due.is_none() && applied_seq.is_none() {
        let key = item_key(customer, DUE_SK);
        return Ok(WriteRequest::builder()
            .delete_request(DeleteRequest::builder().set_key(Some(key)).build()?)
            .build());
    }
    let mut item = item_key(customer, DUE_SK);
    item.insert("entity_type".into(), AttributeValue::S(DUE_ENTITY_TYPE.into()));
    if let Some(due) = next_due {
        item.insert("due_hour".into(), AttributeValue::N(due_hour(due).to_string()));
        item.insert("next_due".into(), AttributeValue::N(due.to_string()));
    }
    if let Some(seq) = applied_seq {
        item.insert(crate::stamps::SEQ.into(), AttributeValue::S(seq.to_owned()));
    }
    Ok(WriteRequest::builder().put_request(PutRequest::builder().set_item(Some(item)).build()?).build())
}

fn read_due(item: &HashMap<String, AttributeValue>) -> Result<Due> {
    let customer_id = match item.get("customer_id") {
        Some(AttributeValue::S(s)) => s.clone(),
        other => bail!("due index: an item without a string customer_id: {other:?}"),
    };
    let next_due = match item.get("next_due") {
        Some(AttributeValue::N(n)) => {
            n.parse().with_context(|| format!("due index: next_due {n:?} of {customer_id}"))?
        }
        other => bail!("due index: the item of {customer_id} has no numeric next_due: {other:?}"),
    };
    Ok(Due { customer_id, next_due })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_floor_toward_the_past() {
        assert_eq!(due_hour(0), 0);
        assert_eq!(due_hour(HOUR_MS - 1), 0);
        assert_eq!(due_hour(HOUR_MS), 1);
        assert_eq!(due_hour(-1), -1);
    }

    #[test]
    fn a_due_item_round_trips() {
        let request = write_request("stu_1", Some(5 * HOUR_MS + 7), None).unwrap();
        let item = request.put_request().unwrap().item();
        assert_eq!(item["sk"], AttributeValue::S("DUE".into()));
        assert_eq!(item["entity_type"], AttributeValue::S("due".into()));
        assert_eq!(item["due_hour"], AttributeValue::N("5".into()));
        assert!(!item.contains_key("applied_seq"));
        assert_eq!(read_due(item).unwrap(), Due { customer_id: "stu_1".into(), next_due: 5 * HOUR_MS + 7 });
        let delete = write_request("stu_1", None, None).unwrap();
        assert_eq!(delete.delete_request().unwrap().key()["sk"], AttributeValue::S("DUE".into()));
        assert!(read_due(&HashMap::new()).is_err());
        // A stamp without a timer: an item outside the index (no due_hour).
        let stamp = write_request("stu_1", None, Some("42")).unwrap();
        let item = stamp.put_request().unwrap().item();
        assert_eq!(item["applied_seq"], AttributeValue::S("42".into()));
        assert!(!item.contains_key("due_hour") && !item.contains_key("next_due"));
        // Both: one item, one write.
        let both = write_request("stu_1", Some(HOUR_MS), Some("42")).unwrap();
        let item = both.put_request().unwrap().item();
        assert_eq!(
            (&item["due_hour"], &item["applied_seq"]),
            (&AttributeValue::N("1".into()), &AttributeValue::S("42".into()))
        );
    }
}
