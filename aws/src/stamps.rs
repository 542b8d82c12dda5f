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
//!   that the engine holds) gets one item: key `customer_id` +
//!   `sk = "APPLIED"`, `entity_type = "applied"` (not an event: skipped when
//!   it comes back on the stream), `applied_seq` = the `SequenceNumber` of the
//!   customer's last record in the batch. The environment remembers the same.
//! * Before a batch is applied, the environment reads (consistent
//!   `BatchGetItem`) the stamps of the customers it holds that the batch
//!   touches or whose timers would fire during it. A stamp that is not the
//!   one it remembers (or none) means another environment applied records
//!   since: the customer is forgotten ([`pulse_operators::Engine::forget`],
//!   which cancels its timer). A customer of the batch is then hydrated from
//!   the table like any other it does not hold; one that only had a timer
//!   due is left to the environment that holds it and the scheduled run.
//!
//! A shard's batches never run at once (`ParallelizationFactor` 1), so the
//! stamp a batch reads is the last one written. The cost: one item write per
//! customer per batch, and one read per 100 customers held (several at once).

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{bail, Result};
use aws_sdk_dynamodb::types::builders::KeysAndAttributesBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};

use crate::batch::TABLE_RETRY;
use crate::due::batch_write;
use crate::item_key;

/// The sort key of a customer's stamp.
pub const APPLIED_SK: &str = "APPLIED";
/// The `entity_type` of a stamp (not `event`: never scored).
pub const APPLIED_ENTITY_TYPE: &str = "applied";
/// The attribute holding the sequence number.
const SEQ: &str = "applied_seq";
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
        let keys = customers.iter().map(|c| item_key(c, APPLIED_SK)).collect();
        let shape =
            |k: KeysAndAttributesBuilder| k.consistent_read(true).projection_expression(format!("customer_id, {SEQ}"));
        let (items, _) =
            crate::batch::get_all(&self.client, &self.table, keys, &shape, &TABLE_RETRY, READ_CONCURRENCY, "stamps")
                .await?;
        items.iter().map(read_stamp).collect()
    }

    /// Stores each customer's stamp: `(customer, sequence number)`.
    pub async fn write(&self, stamps: &[(String, String)]) -> Result<()> {
        let requests = stamps.iter().map(|(c, seq)| write_request(c, seq)).collect::<Result<Vec<_>>>()?;
        batch_write(&self.client, &self.table, requests, "stamps").await
    }
}

fn write_request(customer: &str, seq: &str) -> Result<WriteRequest> {
    let mut item = item_key(customer, APPLIED_SK);
    item.insert("entity_type".into(), AttributeValue::S(APPLIED_ENTITY_TYPE.into()));
    item.insert(SEQ.into(), AttributeValue::S(seq.to_owned()));
    Ok(WriteRequest::builder().put_request(PutRequest::builder().set_item(Some(item)).build()?).build())
}

fn read_stamp(item: &HashMap<String, AttributeValue>) -> Result<(String, String)> {
    let customer = match item.get("customer_id") {
        Some(AttributeValue::S(s)) => s.clone(),
        other => bail!("stamps: an item without a string customer_id: {other:?}"),
    };
    match item.get(SEQ) {
        Some(AttributeValue::S(seq)) => Ok((customer, seq.clone())),
        other => bail!("stamps: the item of {customer} has no string {SEQ}: {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_round_trips_and_a_bad_one_is_refused() {
        let request = write_request("stu_1", "000000000000000000042").unwrap();
        let item = request.put_request().unwrap().item();
        assert_eq!(item["sk"], AttributeValue::S("APPLIED".into()));
        assert_eq!(item["entity_type"], AttributeValue::S("applied".into()));
        assert_eq!(read_stamp(item).unwrap(), ("stu_1".to_string(), "000000000000000000042".to_string()));
        let mut bad = item.clone();
        bad.insert(SEQ.into(), AttributeValue::N("42".into()));
        assert!(read_stamp(&bad).unwrap_err().to_string().contains("no string applied_seq"));
        assert!(read_stamp(&HashMap::new()).is_err());
    }
}
