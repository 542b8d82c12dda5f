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
//!   `due_hour`: the first hour (since the epoch) of `next_due`'s UTC *day*
//!   ([`due_key`]; always a multiple of 24). The same item carries the
//!   customer's stamp ([`crate::stamps`]), so a batch writes one item per
//!   customer, not two. A customer whose timers have stopped (silent for a
//!   year) keeps the item without `due_hour` while it has a stamp, and has
//!   it deleted otherwise.
//! * A global secondary index (default name `due-index`) has `due_hour` as
//!   partition key and `customer_id` as sort key, projecting `next_due`. Only
//!   `DUE` items carry `due_hour`, so the index is sparse: one entry per
//!   customer with a timer.
//! * A scheduled invocation (EventBridge, hourly) Queries the index for each
//!   day from `now − lookback` to `now` — one key each, never a scan, with a
//!   filter `next_due <= now` so that only the customers already due come
//!   back — and rescores only those (see `pulse_lambda`), then writes their
//!   next due time, which moves them to a later day.
//!
//! Why a day and not the hour. A customer's next due time is a day after
//! its latest vector, so it moves with every event. The index pays for a
//! move of its key with two writes (the old entry's delete and the new
//! one's put), for a change of the projected `next_due` alone with one. An
//! hour key moved at nearly every event: 3 write units per event with the
//! item's own. A day key moves at a customer's first event of a day only
//! (about `(1 − e^−N) / N` of the events of a customer with N a day: 40% at
//! N = 2.25), so about 2.4. The price: the hourly run reads the whole of
//! today's partition (everyone due today, the ones not due yet included,
//! dropped by the filter after they are read): at a million customers some
//! 4,000 read units an hour, cents a day (see `docs/COST.md`).
//!
//! The attribute keeps its name and its unit (hours), so a table and index
//! made by an earlier version of pulse, which keyed the exact hour, need no
//! migration: [`DueIndex::due`] also reads the hour keys of the lookback, so
//! the items written before the upgrade are found until they are rewritten.
//!
//! A day's partition holds everyone due that day. GSI partitions take about
//! 1,000 writes a second each; a fleet that writes more `DUE` items than that
//! into one day's key would shard `due_hour` (e.g. `<day>#<0..n>`) and Query
//! every shard. The index is eventually consistent: a `DUE` item written a
//! moment before the scheduled run may be read with its previous due time,
//! which at worst rescores a customer once more than needed.

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
/// One hour in milliseconds: the unit of the index's key.
pub const HOUR_MS: i64 = 3_600_000;
/// Hours in a day: the index's keys are multiples of it.
const DAY_HOURS: i64 = 24;
/// BatchWriteItem calls in flight at once.
const WRITE_CONCURRENCY: usize = 8;

/// The hour (since the epoch) a time falls in.
pub fn due_hour(ms: i64) -> i64 {
    ms.div_euclid(HOUR_MS)
}

/// The index key of a due time: the first hour of its UTC day (see the
/// module docs for why a day).
pub fn due_key(ms: i64) -> i64 {
    day_key(due_hour(ms))
}

/// The first hour of the day that hour `hour` falls in.
fn day_key(hour: i64) -> i64 {
    hour.div_euclid(DAY_HOURS) * DAY_HOURS
}

/// The keys [`DueIndex::due`] reads at `now_ms`: the day keys from the day
/// of `now − lookback` to today's, and the hour keys of an earlier version's
/// items over the lookback; ascending, each once.
fn keys_to_read(now_ms: i64, lookback_hours: i64) -> Vec<i64> {
    let last = due_hour(now_ms);
    let first = last - lookback_hours.max(0);
    let mut keys: Vec<i64> = (first..=last).collect();
    keys.insert(0, day_key(first));
    keys.dedup();
    keys
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

    /// The customers the index lists as due at `now_ms` (`next_due <= now`)
    /// in the days from that of `now − lookback_hours` to today (and, for
    /// items an earlier version wrote, in the hours of the lookback).
    pub async fn due(&self, now_ms: i64, lookback_hours: i64) -> Result<Vec<Due>> {
        let mut out = Vec::new();
        for key in keys_to_read(now_ms, lookback_hours) {
            let mut start = None;
            loop {
                let page = self
                    .client
                    .query()
                    .table_name(&*self.table)
                    .index_name(&*self.index)
                    .key_condition_expression("due_hour = :k")
                    .filter_expression("next_due <= :now")
                    .expression_attribute_values(":k", AttributeValue::N(key.to_string()))
                    .expression_attribute_values(":now", AttributeValue::N(now_ms.to_string()))
                    .set_exclusive_start_key(start.take())
                    .send()
                    .await
                    .with_context(|| {
                        format!("due index: Query on {} of table {} for key {key}", self.index, self.table)
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
/// `due_hour` = [`due_key`], which puts it in the index) and its stamp, whichever it has;
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
        item.insert("due_hour".into(), AttributeValue::N(due_key(due).to_string()));
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
    fn keys_are_the_first_hours_of_days() {
        const DAY: i64 = 24 * HOUR_MS;
        assert_eq!(due_key(0), 0);
        assert_eq!(due_key(DAY - 1), 0);
        assert_eq!(due_key(DAY), 24);
        assert_eq!(due_key(3 * DAY + 5 * HOUR_MS + 7), 72);
        assert_eq!(due_key(-1), -24);
    }

    #[test]
    fn the_keys_read_cover_the_lookback_days_and_the_old_hours() {
        const DAY: i64 = 24 * HOUR_MS;
        // 12:30 on day 3, an hour back: today's key and the two hours.
        assert_eq!(keys_to_read(3 * DAY + 12 * HOUR_MS + 1_800_000, 1), [72, 83, 84]);
        // 01:00 on day 3, two hours back: yesterday's key, then 23:00..01:00
        // (today's key among those hours, once).
        assert_eq!(keys_to_read(3 * DAY + HOUR_MS, 2), [48, 71, 72, 73]);
        // No lookback: today's key and the current hour.
        assert_eq!(keys_to_read(3 * DAY, 0), [72]);
        assert_eq!(keys_to_read(3 * DAY, -5), [72]);
        // A week back reads eight day keys among its 169 hours.
        let week = keys_to_read(10 * DAY + 6 * HOUR_MS, 7 * 24);
        assert_eq!(week.len(), 7 * 24 + 1 + 1);
        assert_eq!(week.iter().filter(|k| *k % 24 == 0).count(), 8);
        assert!(week.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn a_due_item_round_trips() {
        let request = write_request("stu_1", Some(29 * HOUR_MS + 7), None).unwrap();
        let item = request.put_request().unwrap().item();
        assert_eq!(item["sk"], AttributeValue::S("DUE".into()));
        assert_eq!(item["entity_type"], AttributeValue::S("due".into()));
        assert_eq!(item["due_hour"], AttributeValue::N("24".into()), "the due day's first hour");
        assert!(!item.contains_key("applied_seq"));
        assert_eq!(read_due(item).unwrap(), Due { customer_id: "stu_1".into(), next_due: 29 * HOUR_MS + 7 });
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
            (&AttributeValue::N("0".into()), &AttributeValue::S("42".into()))
        );
    }
}
