//! Which records a customer's state has seen: a stamp per customer in the
//! event table, so that an execution environment knows when its warm copy
//! of a customer is stale.
//!
//! Lambda may run consecutive batches of one shard in different execution
//! environments (it scales them, recycles them). An environment that saw a
//! customer earlier would otherwise go on from its own copy and miss every
//! record applied elsewhere in between: wrong vectors, and timers fired from
//! the wrong state. So:
//!
//! * After a batch is flushed, every customer it applied a record to (and
//!   that the engine holds) gets `applied_seq` = the `SequenceNumber` of the
//!   customer's last record in the batch, on the customer's item of the due
//!   index (key `customer_id` + `sk = "DUE"`, [`crate::due`]), written
//!   together with its next due time: one item write per customer per
//!   batch, where a stamp of its own (`sk = "APPLIED"`, before) made two.
//!   The index projects only `next_due`, so a new stamp on an unchanged due
//!   time does not write the index. The environment remembers the same.
//! * Before a batch is applied, the environment reads (consistent
//!   `BatchGetItem`) the stamps of the customers it holds that the batch
//!   touches or whose timers would fire during it. A stamp that is not the
//!   one it remembers (or none) means another environment applied records
//!   since: the customer is forgotten ([`pulse_operators::Engine::forget`],
//!   which cancels its timer). A customer of the batch is then hydrated from
//!   the table like any other it does not hold; one that only had a timer
//!   due is left to the environment that holds it and the scheduled run.
//! * A due time written for a customer no record of the batch touched (its
//!   timer fired; the scheduled run) replaces the item without a stamp: an
//!   environment holding the customer reads it again at its next record.
//!
//! A shard's batches never run at once (`ParallelizationFactor` 1), so the
//! stamp a batch reads is the last one written. The cost: one item write per
//! customer per batch, and one read per 100 customers held (several at once).

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{bail, Result};
use aws_sdk_dynamodb::types::builders::KeysAndAttributesBuilder;
use aws_sdk_dynamodb::types::AttributeValue;

use crate::batch::TABLE_RETRY;
use crate::due::{batch_write, DUE_SK};
use crate::item_key;

/// The attribute holding the sequence number.
pub(crate) const SEQ: &str = "applied_seq";
/// BatchGetItem calls in flight at once.
const READ_CONCURRENCY: usize = 8;

/// The stamps of the event table.
#[derive(Clone, Debug)]
pub struct Stamps {
    client: aws_sdk_dynamodb::Client,
    table: Arc<str>,
}

impl Stamps {
    /// The stamps kept in `table`.
    pub fn new(client: aws_sdk_dynamodb::Client, table: &str) -> Stamps {
        Stamps { client, table: Arc::from(table) }
    }

    /// The stored stamp of each of `customers` that has one (consistent
    /// reads; 100 keys a call, several calls at once: [`crate::batch::get_all`]).
    pub async fn read(&self, customers: &[String]) -> Result<HashMap<String, String>> {
        let keys = customers.iter().map(|c| item_key(c, DUE_SK)).collect();
        let shape =
            |k: KeysAndAttributesBuilder| k.consistent_read(true).projection_expression(format!("customer_id, {SEQ}"));
        let (items, _) =
            crate::batch::get_all(&self.client, &self.table, keys, &shape, &TABLE_RETRY, READ_CONCURRENCY, "stamps")
                .await?;
        items.iter().filter_map(|item| read_stamp(item).transpose()).collect()
    }

    /// Stores the items of a batch's customers, one write each:
    /// `(customer, its stamp, its next due time)`; the due time only when
    /// the due index is kept (`None` then means its timers stopped). No
    /// stamp (its last record had no sequence number, or it is not held)
    /// leaves the item without one; neither stamp nor due time deletes it.
    pub async fn write(&self, items: &[(String, Option<String>, Option<i64>)]) -> Result<()> {
        let requests = items
            .iter()
            .map(|(c, seq, due)| crate::due::write_request(c, *due, seq.as_deref()))
            .collect::<Result<Vec<_>>>()?;
        batch_write(&self.client, &self.table, requests, "stamps").await
    }
}

/// A customer's stamp from its item; `None` when the item has none (a due
/// time written without one).
fn read_stamp(item: &HashMap<String, AttributeValue>) -> Result<Option<(String, String)>> {
    let customer = match item.get("customer_id") {
        Some(AttributeValue::S(s)) => s.clone(),
        other => bail!("stamps: an item without a string customer_id: {other:?}"),
    };
    match item.get(SEQ) {
        Some(AttributeValue::S(seq)) => Ok(Some((customer, seq.clone()))),
        None => Ok(None),
        Some(other) => bail!("stamps: the item of {customer} has no string {SEQ}: {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_round_trips_and_a_bad_one_is_refused() {
        let request = crate::due::write_request("stu_1", None, Some("000000000000000000042")).unwrap();
        let item = request.put_request().unwrap().item();
        assert_eq!(item["sk"], AttributeValue::S("DUE".into()));
        assert_eq!(item["entity_type"], AttributeValue::S("due".into()));
        assert_eq!(read_stamp(item).unwrap(), Some(("stu_1".to_string(), "000000000000000000042".to_string())));
        let mut bad = item.clone();
        bad.insert(SEQ.into(), AttributeValue::N("42".into()));
        assert!(read_stamp(&bad).unwrap_err().to_string().contains("no string applied_seq"));
        assert!(read_stamp(&HashMap::new()).is_err());
        // A due time written without a stamp: no stamp, not an error.
        let due_only = crate::due::write_request("stu_1", Some(7), None).unwrap();
        assert_eq!(read_stamp(due_only.put_request().unwrap().item()).unwrap(), None);
    }
}
