//! Shard leases in a DynamoDB table: at most one consumer owns a shard at a
//! time, and the owner's positions survive it.
//!
//! One item per (stream, shard): `lease_owner`, `lease_expires_ms` (wall
//! clock, ms), `sequence_number` (the owner's last checkpointed record),
//! `finished`. Every write is conditional:
//!
//! * [`LeaseTable::acquire`] takes a shard when it has no owner, its lease
//!   has expired, or the caller already owns it; otherwise it is refused and
//!   says who holds it until when;
//! * [`LeaseTable::commit`] moves the position (and renews the lease) only
//!   while the caller still owns it, so a consumer that lost its lease (it
//!   paused longer than the lease, another took over) can never move the new
//!   owner's position: it learns it lost the shard and stops reading it;
//! * [`LeaseTable::release`] ends a lease at shutdown, so another consumer
//!   may take the shard at once.
//!
//! Expiry compares wall clocks of different machines: leases should be much
//! longer than their clock skew (the default lease is a minute, renewed at
//! every checkpoint, 10 s by default).
//!
//! Engine state is not in this table (an item holds 400 KB): each consumer
//! keeps it in its local checkpoint file, which also holds the positions that
//! state reflects. A consumer taking over a shard it never read has no state
//! for that shard's customers; it resumes at the table's position, and those
//! customers' state must come from hydration (reading their recent events
//! from the base table, built with the Lambda handler): see [`crate::live`]'s
//! module docs.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::create_table::CreateTableError;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, ReturnValue,
    ReturnValuesOnConditionCheckFailure, ScalarAttributeType,
};

/// A lease item as read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaseItem {
    /// Who holds (or last held) it.
    pub owner: Option<String>,
    /// Until when (ms since the epoch, wall clock).
    pub expires_ms: i64,
    /// The last checkpointed record of the shard.
    pub sequence_number: Option<String>,
    /// The shard was read to its end.
    pub finished: bool,
}

/// The answer to [`LeaseTable::acquire`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Acquired {
    /// The caller owns the shard now; the item as it is.
    Owned(LeaseItem),
    /// Someone else holds a live lease.
    Refused {
        /// The holder.
        owner: String,
        /// Until when (ms since the epoch).
        expires_ms: i64,
    },
}

/// The leases of one stream, as seen by one consumer.
#[derive(Clone, Debug)]
pub struct LeaseTable {
    client: aws_sdk_dynamodb::Client,
    table: String,
    stream: String,
    owner: String,
    lease_ms: i64,
}

const STREAM: &str = "stream";
const SHARD: &str = "shard";

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

impl LeaseTable {
    /// Leases of `stream` in `table`, taken as `owner` for `lease_ms` at a time.
    pub fn new(
        client: aws_sdk_dynamodb::Client,
        table: impl Into<String>,
        stream: impl Into<String>,
        owner: impl Into<String>,
        lease_ms: i64,
    ) -> LeaseTable {
        LeaseTable { client, table: table.into(), stream: stream.into(), owner: owner.into(), lease_ms }
    }

    /// Who this consumer is.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Creates the lease table (key `stream` + `shard`, on demand) when
    /// missing, and waits until it is active.
    pub async fn ensure_table(client: &aws_sdk_dynamodb::Client, table: &str) -> Result<()> {
        let key = |name: &str, kt: KeyType| KeySchemaElement::builder().attribute_name(name).key_type(kt).build();
        let attr = |name: &str| {
            AttributeDefinition::builder().attribute_name(name).attribute_type(ScalarAttributeType::S).build()
        };
        let created = client
            .create_table()
            .table_name(table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attr(STREAM)?)
            .attribute_definitions(attr(SHARD)?)
            .key_schema(key(STREAM, KeyType::Hash)?)
            .key_schema(key(SHARD, KeyType::Range)?)
            .send()
            .await;
        match created {
            Ok(_) => {}
            Err(SdkError::ServiceError(e)) if matches!(e.err(), CreateTableError::ResourceInUseException(_)) => {}
            Err(e) => return Err(e).with_context(|| format!("cannot create lease table {table}")),
        }
        crate::setup::wait_active(client, table).await
    }

    fn key(&self, shard: &str) -> [(String, AttributeValue); 2] {
        [(STREAM.to_owned(), s(&self.stream)), (SHARD.to_owned(), s(shard))]
    }

    /// An update of `shard`'s lease item, with what every update names: the
    /// owner `#o`, the expiry `#e`, and this consumer `:me`.
    fn update(&self, shard: &str) -> UpdateItemFluentBuilder {
        let [k1, k2] = self.key(shard);
        self.client
            .update_item()
            .table_name(&self.table)
            .key(k1.0, k1.1)
            .key(k2.0, k2.1)
            .expression_attribute_names("#o", "lease_owner")
            .expression_attribute_names("#e", "lease_expires_ms")
            .expression_attribute_values(":me", s(&self.owner))
    }

    /// Takes `shard` if free, expired or already ours, as of `now_ms`.
    pub async fn acquire(&self, shard: &str, now_ms: i64) -> Result<Acquired> {
        let out = self
            .update(shard)
            .update_expression("SET #o = :me, #e = :exp")
            .condition_expression("attribute_not_exists(#o) OR #o = :me OR #e < :now")
            .expression_attribute_values(":exp", n(now_ms + self.lease_ms))
            .expression_attribute_values(":now", n(now_ms))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match out {
            Ok(out) => Ok(Acquired::Owned(item(out.attributes()))),
            Err(SdkError::ServiceError(e)) => {
                if let UpdateItemError::ConditionalCheckFailedException(failed) = e.err() {
                    let held = match failed.item() {
                        Some(old) => item(Some(old)),
                        None => self.get(shard).await?.unwrap_or_default(),
                    };
                    return Ok(Acquired::Refused {
                        owner: held.owner.unwrap_or_default(),
                        expires_ms: held.expires_ms,
                    });
                }
                Err(SdkError::ServiceError(e)).with_context(|| format!("cannot take the lease of shard {shard}"))
            }
            Err(e) => Err(e).with_context(|| format!("cannot take the lease of shard {shard}")),
        }
    }

    /// Records the caller's position for `shard` and renews its lease, only
    /// while the caller owns it: `Ok(false)` when it no longer does. A
    /// finished shard's lease ends (nothing is left to read).
    pub async fn commit(
        &self,
        shard: &str,
        sequence_number: Option<&str>,
        finished: bool,
        now_ms: i64,
    ) -> Result<bool> {
        let mut set = vec!["#e = :exp", "#f = :fin", "#u = :now"];
        let mut request = self
            .update(shard)
            .condition_expression("#o = :me")
            .expression_attribute_names("#f", "finished")
            .expression_attribute_names("#u", "updated_ms")
            .expression_attribute_values(":exp", n(if finished { 0 } else { now_ms + self.lease_ms }))
            .expression_attribute_values(":fin", AttributeValue::Bool(finished))
            .expression_attribute_values(":now", n(now_ms));
        if let Some(seq) = sequence_number {
            set.push("#s = :seq");
            request =
                request.expression_attribute_names("#s", "sequence_number").expression_attribute_values(":seq", s(seq));
        }
        match request.update_expression(format!("SET {}", set.join(", "))).send().await {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(e))
                if matches!(e.err(), UpdateItemError::ConditionalCheckFailedException(_)) =>
            {
                Ok(false)
            }
            Err(e) => Err(e).with_context(|| format!("cannot checkpoint shard {shard} in {}", self.table)),
        }
    }

    /// Ends the caller's lease on `shard` now (at shutdown), keeping its
    /// position. Not owning it any more is not an error.
    pub async fn release(&self, shard: &str) -> Result<()> {
        let out = self
            .update(shard)
            .update_expression("SET #e = :zero")
            .condition_expression("#o = :me")
            .expression_attribute_values(":zero", n(0))
            .send()
            .await;
        match out {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e))
                if matches!(e.err(), UpdateItemError::ConditionalCheckFailedException(_)) =>
            {
                Ok(())
            }
            Err(e) => Err(e).with_context(|| format!("cannot release the lease of shard {shard}")),
        }
    }

    /// The lease item of `shard`, read consistently.
    pub async fn get(&self, shard: &str) -> Result<Option<LeaseItem>> {
        let [k1, k2] = self.key(shard);
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(k1.0, k1.1)
            .key(k2.0, k2.1)
            .consistent_read(true)
            .send()
            .await
            .with_context(|| format!("cannot read the lease of shard {shard}"))?;
        Ok(out.item().map(|i| item(Some(i))))
    }

    /// Every lease item of the stream, by shard id.
    pub async fn all(&self) -> Result<BTreeMap<String, LeaseItem>> {
        let mut items = BTreeMap::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#k = :stream")
                .expression_attribute_names("#k", STREAM)
                .expression_attribute_values(":stream", s(&self.stream))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .with_context(|| format!("cannot read the leases in {}", self.table))?;
            for i in out.items() {
                if let Some(AttributeValue::S(shard)) = i.get(SHARD) {
                    items.insert(shard.clone(), item(Some(i)));
                }
            }
            match out.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => return Ok(items),
            }
        }
    }
}

fn item(attrs: Option<&std::collections::HashMap<String, AttributeValue>>) -> LeaseItem {
    let Some(a) = attrs else { return LeaseItem::default() };
    let text = |k: &str| match a.get(k) {
        Some(AttributeValue::S(v)) => Some(v.clone()),
        _ => None,
    };
    LeaseItem {
        owner: text("lease_owner"),
        expires_ms: match a.get("lease_expires_ms") {
            Some(AttributeValue::N(v)) => v.parse().unwrap_or(0),
            _ => 0,
        },
        sequence_number: text("sequence_number"),
        finished: matches!(a.get("finished"), Some(AttributeValue::Bool(true))),
    }
}
