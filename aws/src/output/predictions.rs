//! Predictions to DynamoDB (FEATURES.md §6), never moving a customer back in
//! time, with the customer's alert state.
//!
//! # The item
//!
//! Key `customer_id` + `sk = PRED#latest`, `entity_type = prediction`, the
//! five outputs, `segment`, `model`, `model_version`, `served_by`, `as_of`,
//! `features_schema`, `emission` (where the vector scored sits in the
//! customer's stream: [`EmissionKey::encode`], a string whose order is the
//! emissions' order), and the alert state: `alert_armed` (whether the
//! customer would alert on its next rise above 0.7, see
//! [`pulse_operators::scoring::Alerts`]), `alert_arriving` (seen new, not
//! past its first week yet) and, on the prediction that raised
//! an alert, `last_alert_as_of` and `last_alert_churn_risk_14d`; `reasons`
//! (a map: `since`, the reference vector's `as_of`, and `top`, a list of
//! maps `feature`, `now`, `was`, `contribution`, `text`: see
//! [`pulse_schemas::reasons`]) when the prediction has any, removed when not;
//! `memory` (68 bytes as a base64 string of 92, 77 and 104 with the end of
//! a burn-in: the customer's last session, its ring in the model monitor
//! and the burn-in's end, `pulse_runtime::memory::encode_latest`).
//! Strings, not binary attributes: moto's Lambda emulation cannot put
//! binary attributes of a stream record into JSON (it answers 500), and a
//! string costs the prediction item 24 bytes more.
//!
//! Beside it, key `customer_id` + `sk = MEM#anchors`, `entity_type =
//! scoring_memory`: `anchors` (at most 802 bytes, base64: 1,072 characters:
//! the weekly vectors reasons compare with,
//! `pulse_runtime::memory::encode_anchors`) and `as_of`, written only when
//! they change (about once a week per customer, conditional on `as_of`
//! never moving back; two write units, the item being just over 1 KB), so
//! the prediction item stays under 1 KB (one write unit).
//!
//! # Writes
//!
//! One `UpdateItem` per prediction, conditional on
//!
//! ```text
//! (attribute_not_exists(emission) AND (attribute_not_exists(as_of) OR as_of <= :as_of))
//!   OR emission <= :emission
//! ```
//!
//! A write never replaces a prediction made from a later emission (§6,
//! amended): "later" is the order of the customer's stream
//! ([`pulse_schemas::order`]: the record's creation time and position, or
//! the timer's due time), not `as_of`, so a late event's prediction
//! replaces the timer prediction before it, and a replay or a retry never
//! replaces a newer one (an equal key rewrites the same emission). Items
//! written before `emission` existed are judged by the old rule, `as_of`,
//! once: a write that passes it stores `emission`, and the key rules from
//! then on. (Treating them as oldest instead would let any replayed old
//! emission overwrite them.)
//! A failed condition means a newer prediction is already stored: counted as
//! stale, not an error. `BatchWriteItem` would take 25 items a call but
//! cannot be conditional, so it is not used; instead up to `concurrency`
//! writes (of different customers) are in flight at once. `UpdateItem` (not `PutItem`) keeps the
//! attributes a write does not set, such as `last_alert_as_of` of an earlier
//! alert. Throttling and 5xx are retried with jittered backoff (on top of the
//! SDK's own retries).
//!
//! # Alert state after a restart
//!
//! [`PredictionWriter::alert_states`] reads `alert_armed`, `alert_arriving`,
//! `emission` and `as_of` of some customers (`BatchGetItem`, 100 keys a call, consistent reads,
//! unprocessed keys retried). The sink calls it only for customers it has
//! not seen since it started whose risk is at or above the re-arm level:
//! the only ones whose stored state can change what happens.
//!
//! # A customer's memory after a restart
//!
//! [`PredictionWriter::customers`] reads both items of customers the sink
//! does not know yet, before it scores them (`BatchGetItem`, consistent):
//! the latest prediction, its alert state and `memory`, and the anchors.
//! The sink takes them in, so reasons, the monitor and alerts go on as if
//! the process had never stopped.
//!
//! # Our own writes on the stream
//!
//! The item is written to the table whose stream pulse reads. Its change
//! records come back with `entity_type = prediction`: they are not events,
//! so the decoder gives them no effect (neither a vector nor a dead letter).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::builders::KeysAndAttributesBuilder;
use aws_sdk_dynamodb::types::AttributeValue;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use futures_util::{StreamExt, TryStreamExt};
use pulse_schemas::{CustomerId, EmissionKey, Prediction};

use crate::retry::{classify, Backoff};

/// The sort key of the prediction item.
pub const PREDICTION_SK: &str = "PRED#latest";

/// The condition of every prediction write (see the [module docs](self)):
/// the stored prediction is of an earlier or the same emission; an item
/// without `emission` (written before it existed) is judged by `as_of`.
pub const WRITE_CONDITION: &str =
    "(attribute_not_exists(#emission) AND (attribute_not_exists(#as_of) OR #as_of <= :as_of)) OR #emission <= :emission";

/// The sort key of a customer's anchors item.
pub const ANCHORS_SK: &str = "MEM#anchors";

/// A prediction and the customer's alert state after it.
#[derive(Clone, Debug, PartialEq)]
pub struct PredictionRecord {
    /// The prediction.
    pub prediction: Prediction,
    /// Whether the customer would alert on its next rise above 0.7.
    pub alert_armed: bool,
    /// Whether the customer was seen new and is not past its first week yet
    /// (`pulse_operators::scoring::Alerts::arriving`).
    pub alert_arriving: bool,
    /// Whether this prediction raised an alert.
    pub alerted: bool,
    /// The scoring stage's bytes for the item's `memory`, if any.
    pub memory: Option<Vec<u8>>,
}

/// A customer's anchors to store (see the [module docs](self)).
#[derive(Clone, Debug, PartialEq)]
pub struct AnchorsRecord {
    /// The customer.
    pub customer_id: CustomerId,
    /// The latest prediction's `as_of` when they were taken.
    pub as_of: i64,
    /// The stage's bytes.
    pub anchors: Vec<u8>,
}

/// A customer as stored: its latest prediction with its alert state and
/// `memory`, and its anchors.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredCustomer {
    /// The alert state (and `as_of`).
    pub state: StoredAlertState,
    /// The latest prediction's scores.
    pub scores: pulse_schemas::prediction::Scores,
    /// The model that made it.
    pub model: pulse_model::ModelId,
    /// `memory` of the prediction item.
    pub memory: Option<Vec<u8>>,
    /// `anchors` of the anchors item.
    pub anchors: Option<Vec<u8>>,
}

/// A customer's stored alert state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredAlertState {
    /// The customer.
    pub customer_id: CustomerId,
    /// `alert_armed` of the stored prediction (true when absent: an item
    /// written before pulse stored it, which never alerted through pulse).
    pub armed: bool,
    /// `alert_arriving` of the stored prediction (false when absent).
    pub arriving: bool,
    /// `as_of` of the stored prediction.
    pub as_of: i64,
    /// Where the stored prediction's vector sits in the customer's stream:
    /// its `emission`, or for an item written before that attribute
    /// existed, [`EmissionKey::at`] its `as_of`.
    pub emission: EmissionKey,
}

/// Counts of the writer's work since start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct WriteStats {
    /// Predictions stored.
    pub written: u64,
    /// Predictions not stored because a newer one was.
    pub stale: u64,
    /// Attempts retried.
    pub retries: u64,
    /// Alert states read back.
    pub states_read: u64,
    /// Anchors items stored.
    pub anchors_written: u64,
    /// Customers read back before scoring (with a stored prediction).
    pub customers_read: u64,
    /// Stored `memory` or `anchors` attributes that were not base64 strings.
    pub unreadable: u64,
}

#[derive(Debug, Default)]
struct Counters {
    written: AtomicU64,
    stale: AtomicU64,
    retries: AtomicU64,
    states_read: AtomicU64,
    anchors_written: AtomicU64,
    customers_read: AtomicU64,
    unreadable: AtomicU64,
}

/// Called with each prediction once it is stored (e.g. by `pulse loadtest`,
/// to time event write → prediction write).
pub type OnWritten = Arc<dyn Fn(&Prediction) + Send + Sync>;

/// Writes predictions to a table (see the [module docs](self)).
#[derive(Clone)]
pub struct PredictionWriter {
    client: aws_sdk_dynamodb::Client,
    table: Arc<str>,
    concurrency: usize,
    retry: Backoff,
    counters: Arc<Counters>,
    on_written: Option<OnWritten>,
}

impl std::fmt::Debug for PredictionWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PredictionWriter")
            .field("table", &self.table)
            .field("concurrency", &self.concurrency)
            .field("retry", &self.retry)
            .field("counters", &self.counters)
            .field("on_written", &self.on_written.is_some())
            .finish_non_exhaustive()
    }
}

impl PredictionWriter {
    /// Retries a failing call as `retry` says (default [`Backoff::writes`];
    /// `pulse run` waits out an outage of `--write-retry-s` instead).
    pub fn with_retry(mut self, retry: Backoff) -> PredictionWriter {
        self.retry = retry;
        self
    }

    /// A writer to `table`, at most `concurrency` writes in flight.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<Arc<str>>, concurrency: usize) -> PredictionWriter {
        PredictionWriter {
            client,
            table: table.into(),
            concurrency: concurrency.max(1),
            retry: Backoff::writes(),
            counters: Arc::default(),
            on_written: None,
        }
    }

    /// Calls `f` with each prediction once it is stored (not for one refused
    /// because a newer prediction was already there).
    pub fn on_written(mut self, f: OnWritten) -> PredictionWriter {
        self.on_written = Some(f);
        self
    }

    /// The table.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The work so far.
    pub fn stats(&self) -> WriteStats {
        WriteStats {
            written: self.counters.written.load(Relaxed),
            stale: self.counters.stale.load(Relaxed),
            retries: self.counters.retries.load(Relaxed),
            states_read: self.counters.states_read.load(Relaxed),
            anchors_written: self.counters.anchors_written.load(Relaxed),
            customers_read: self.counters.customers_read.load(Relaxed),
            unreadable: self.counters.unreadable.load(Relaxed),
        }
    }

    /// Writes every record: different customers `concurrency` at a time,
    /// one customer's records one after the other in the order of its
    /// stream (the condition alone would keep the newest, but only if the
    /// store checks it atomically; in order, no write is wasted either). `Ok` once each is
    /// stored or found stale; the first write that fails for good is the
    /// error.
    pub async fn write(&self, mut records: Vec<PredictionRecord>) -> Result<()> {
        // Stable: records of equal keys stay in the order they came.
        records.sort_by_cached_key(|r| (r.prediction.customer_id.clone(), r.prediction.emission()));
        let mut groups: Vec<Vec<PredictionRecord>> = Vec::new();
        for r in records {
            match groups.last_mut() {
                Some(g) if g[0].prediction.customer_id == r.prediction.customer_id => g.push(r),
                _ => groups.push(vec![r]),
            }
        }
        // The customers just alerted first: their alerts went out before
        // these writes, and until an item records its alert a crash repeats
        // it on restart. Written last among a catch-up step's hundreds, 17
        // of 34 alerts were sent again after a kill -9 (a review,
        // 2026-12-06); first, the window is their own writes.
        groups.sort_by_key(|g| !g.iter().any(|r| r.alerted));
        futures_util::stream::iter(groups.into_iter().map(|group| async move {
            for r in group {
                self.write_one(r).await?;
            }
            Ok::<(), anyhow::Error>(())
        }))
        .buffer_unordered(self.concurrency)
        .try_collect::<()>()
        .await
    }

    async fn write_one(&self, record: PredictionRecord) -> Result<()> {
        let p = &record.prediction;
        let n = |x: f64| AttributeValue::N(x.to_string());
        let mut values = HashMap::from([
            (":entity_type".to_owned(), AttributeValue::S("prediction".into())),
            (":first_session_success".to_owned(), n(p.scores.first_session_success)),
            (":session_velocity".to_owned(), n(p.scores.session_velocity)),
            (":churn_risk_14d".to_owned(), n(p.scores.churn_risk_14d)),
            (":churn_risk_30d".to_owned(), n(p.scores.churn_risk_30d)),
            (":health_score".to_owned(), n(p.scores.health_score)),
            (":segment".to_owned(), AttributeValue::S(p.segment.as_str().into())),
            (":model".to_owned(), AttributeValue::S(p.model.to_string())),
            (":model_version".to_owned(), AttributeValue::S(p.model_version.to_string())),
            (":served_by".to_owned(), AttributeValue::S(p.served_by.to_string())),
            (":as_of".to_owned(), AttributeValue::N(p.as_of.to_string())),
            (":emission".to_owned(), AttributeValue::S(p.emission().encode())),
            (":features_schema".to_owned(), AttributeValue::S(p.features_schema.to_string())),
            (":alert_armed".to_owned(), AttributeValue::Bool(record.alert_armed)),
            (":alert_arriving".to_owned(), AttributeValue::Bool(record.alert_arriving)),
        ]);
        // Every attribute through a `#name` placeholder: some (`segment`,
        // `model`) may be DynamoDB reserved words.
        let mut set: Vec<String> = values.keys().map(|k| format!("#{0} = {k}", &k[1..])).collect();
        set.sort();
        let mut names: HashMap<String, String> =
            values.keys().map(|k| (format!("#{}", &k[1..]), k[1..].to_owned())).collect();
        // The reasons belong to this prediction: written with it, or removed
        // so an older prediction's reasons never stand beside newer scores.
        names.insert("#reasons".into(), "reasons".into());
        let remove = if p.reasons.is_empty() {
            " REMOVE #reasons"
        } else {
            let reasons =
                serde_dynamo::to_attribute_value(p.reasons).context("the prediction's reasons as an attribute")?;
            values.insert(":reasons".into(), reasons);
            set.push("#reasons = :reasons".into());
            ""
        };
        if let Some(memory) = &record.memory {
            values.insert(":memory".into(), AttributeValue::S(BASE64.encode(memory)));
            names.insert("#memory".into(), "memory".into());
            set.push("#memory = :memory".into());
        }
        if record.alerted {
            values.insert(":last_alert_churn_risk_14d".into(), n(p.scores.churn_risk_14d));
            set.push("#last_alert_as_of = :as_of".into());
            set.push("#last_alert_churn_risk_14d = :last_alert_churn_risk_14d".into());
            for name in ["last_alert_as_of", "last_alert_churn_risk_14d"] {
                names.insert(format!("#{name}"), name.to_owned());
            }
        }
        let update = format!("SET {}{remove}", set.join(", "));
        let what = || format!("the prediction of customer {} (as_of {})", p.customer_id, p.as_of);
        let request = self
            .update_item(&p.customer_id, PREDICTION_SK)
            .update_expression(&update)
            .condition_expression(WRITE_CONDITION)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values));
        if self.update(request, &what).await? {
            self.counters.written.fetch_add(1, Relaxed);
            if let Some(f) = &self.on_written {
                f(p);
            }
        } else {
            self.counters.stale.fetch_add(1, Relaxed);
        }
        Ok(())
    }

    /// The bytes of a base64 string attribute, `None` when absent; one that
    /// is not such a string is logged and counted as unreadable (the
    /// customer then starts afresh) rather than stopping every batch.
    fn blob(&self, item: &HashMap<String, AttributeValue>, name: &str, customer: &str) -> Option<Vec<u8>> {
        let value = item.get(name)?;
        let bytes = match value {
            AttributeValue::S(s) => BASE64.decode(s).map_err(|e| e.to_string()),
            other => Err(format!("not a string: {other:?}")),
        };
        match bytes {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                self.counters.unreadable.fetch_add(1, Relaxed);
                tracing::warn!(customer, attribute = name, error = %e, table = %self.table, "a stored customer memory cannot be read: the customer starts afresh");
                None
            }
        }
    }

    /// An `UpdateItem` of the customer's item `sk`.
    fn update_item(&self, customer: &CustomerId, sk: &str) -> UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&*self.table)
            .key("customer_id", AttributeValue::S(customer.to_string()))
            .key("sk", AttributeValue::S(sk.into()))
    }

    /// Sends a conditional update, retrying throttling and 5xx: `Ok(true)`
    /// written, `Ok(false)` refused by its condition (a newer item is
    /// there), `Err` a failure for good, naming `what`.
    async fn update(&self, request: UpdateItemFluentBuilder, what: &(dyn Fn() -> String + Sync)) -> Result<bool> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match request.clone().send().await {
                Ok(_) => return Ok(true),
                Err(SdkError::ServiceError(e))
                    if matches!(e.err(), UpdateItemError::ConditionalCheckFailedException(_)) =>
                {
                    return Ok(false)
                }
                Err(e) => match classify(&e) {
                    failure if failure.is_retryable() && self.retry.may_retry(attempt) => {
                        let reason = failure.reason();
                        // Past a few attempts it is an outage: said, every fifth.
                        if attempt % 5 == 0 {
                            tracing::warn!(%reason, attempt, table = %self.table, "a prediction write keeps failing; retrying");
                        } else {
                            tracing::debug!(%reason, attempt, what = %what(), "retrying a write");
                        }
                        self.counters.retries.fetch_add(1, Relaxed);
                        self.retry.wait_after(&failure, attempt).await;
                    }
                    failure => {
                        return Err(anyhow!(
                            "cannot write {} to table {}: {} (attempt {attempt})",
                            what(),
                            self.table,
                            failure.reason()
                        ))
                    }
                },
            }
        }
    }

    /// Stores customers' anchors, `concurrency` at a time, never replacing
    /// anchors taken at a later `as_of` (such a write is skipped, not an
    /// error; see the [module docs](self)).
    pub async fn write_anchors(&self, records: Vec<AnchorsRecord>) -> Result<()> {
        futures_util::stream::iter(records.into_iter().map(|r| async move {
            let request = self
                .update_item(&r.customer_id, ANCHORS_SK)
                .update_expression("SET entity_type = :entity_type, #as_of = :as_of, anchors = :anchors")
                .condition_expression("attribute_not_exists(#as_of) OR #as_of <= :as_of")
                .expression_attribute_names("#as_of", "as_of")
                .expression_attribute_values(":entity_type", AttributeValue::S("scoring_memory".into()))
                .expression_attribute_values(":as_of", AttributeValue::N(r.as_of.to_string()))
                .expression_attribute_values(":anchors", AttributeValue::S(BASE64.encode(&r.anchors)));
            let what = || format!("the anchors of customer {} (as_of {})", r.customer_id, r.as_of);
            if self.update(request, &what).await? {
                self.counters.anchors_written.fetch_add(1, Relaxed);
            }
            Ok::<(), anyhow::Error>(())
        }))
        .buffer_unordered(self.concurrency)
        .try_collect::<()>()
        .await
    }

    /// These customers as stored (those without a stored prediction are
    /// left out): both items of each, consistent `BatchGetItem`s under this
    /// writer's retry policy.
    pub async fn customers(&self, customers: &[CustomerId]) -> Result<Vec<StoredCustomer>> {
        let keys = customers
            .iter()
            .flat_map(|c| [PREDICTION_SK, ANCHORS_SK].map(|sk| crate::item_key(c.as_str(), sk)))
            .collect();
        let shape = |k: KeysAndAttributesBuilder| k.consistent_read(true);
        let read = crate::batch::get_all(&self.client, &self.table, keys, &shape, &self.retry, 1, "customers").await;
        let (items, stats) = read.with_context(|| format!("cannot read customers back from table {}", self.table))?;
        self.counters.retries.fetch_add(stats.retries, Relaxed);
        let mut anchors: HashMap<String, Vec<u8>> = HashMap::new();
        let mut predictions = Vec::new();
        for item in items {
            match (item.get("sk"), item.get("customer_id")) {
                (Some(AttributeValue::S(sk)), Some(AttributeValue::S(c))) if sk == ANCHORS_SK => {
                    if let Some(bytes) = self.blob(&item, "anchors", c) {
                        anchors.insert(c.clone(), bytes);
                    }
                }
                _ => predictions.push(item),
            }
        }
        let mut out = Vec::with_capacity(predictions.len());
        for item in &predictions {
            let mut customer =
                stored_customer(item).with_context(|| format!("a prediction item of table {}", self.table))?;
            customer.memory = self.blob(item, "memory", customer.state.customer_id.as_str());
            customer.anchors = anchors.remove(customer.state.customer_id.as_str());
            out.push(customer);
            self.counters.customers_read.fetch_add(1, Relaxed);
        }
        Ok(out)
    }

    /// The stored alert state of these customers (those without a stored
    /// prediction are left out): consistent `BatchGetItem`s
    /// ([`crate::batch::get_all`]) under this writer's retry policy.
    pub async fn alert_states(&self, customers: &[CustomerId]) -> Result<Vec<StoredAlertState>> {
        let keys = customers.iter().map(|c| crate::item_key(c.as_str(), PREDICTION_SK)).collect();
        let shape = |k: KeysAndAttributesBuilder| {
            k.consistent_read(true)
                .projection_expression("customer_id, #as_of, #emission, alert_armed, alert_arriving")
                .expression_attribute_names("#as_of", "as_of")
                .expression_attribute_names("#emission", "emission")
        };
        let read = crate::batch::get_all(&self.client, &self.table, keys, &shape, &self.retry, 1, "alert states").await;
        let (items, stats) = read.with_context(|| format!("cannot read alert states from table {}", self.table))?;
        self.counters.retries.fetch_add(stats.retries, Relaxed);
        let mut out = Vec::with_capacity(items.len());
        for item in &items {
            out.push(stored_state(item).with_context(|| format!("a prediction item of table {}", self.table))?);
            self.counters.states_read.fetch_add(1, Relaxed);
        }
        Ok(out)
    }
}

/// What a stored prediction item without `model`, `model_version` or
/// `served_by` is taken to have there.
pub const NOT_RECORDED: &str = "not recorded";

fn stored_customer(item: &HashMap<String, AttributeValue>) -> Result<StoredCustomer> {
    let state = stored_state(item)?;
    let c = &state.customer_id;
    let n = |name: &str| match item.get(name) {
        Some(AttributeValue::N(n)) => {
            n.parse::<f64>().map_err(|e| anyhow!("{name} {n:?} of customer {c} is not a number: {e}"))
        }
        other => Err(anyhow!("{name} of customer {c} is not a number: {other:?}")),
    };
    let s = |name: &str| match item.get(name) {
        Some(AttributeValue::S(s)) => Ok(s.clone()),
        other => Err(anyhow!("{name} of customer {c} is not a string: {other:?}")),
    };
    let scores = pulse_schemas::prediction::Scores {
        first_session_success: n("first_session_success")?,
        session_velocity: n("session_velocity")?,
        churn_risk_14d: n("churn_risk_14d")?,
        churn_risk_30d: n("churn_risk_30d")?,
        health_score: n("health_score")?,
    };
    // FEATURES.md §6's item names only `model_version`: the items the
    // system pulse replaces wrote (and any other writer following §6) have
    // no `model` or `served_by`. They are taken as "not recorded", not
    // refused: refusing failed every run on such a table.
    let recorded = |name: &str| match item.get(name) {
        None => Ok(NOT_RECORDED.to_string()),
        Some(_) => s(name),
    };
    let model = pulse_model::ModelId {
        name: recorded("model")?.into(),
        version: recorded("model_version")?.into(),
        served_by: recorded("served_by")?.into(),
    };
    Ok(StoredCustomer { state, scores, model, memory: None, anchors: None })
}

fn stored_state(item: &HashMap<String, AttributeValue>) -> Result<StoredAlertState> {
    let customer_id = match item.get("customer_id") {
        Some(AttributeValue::S(s)) => CustomerId::new(s),
        other => return Err(anyhow!("customer_id is not a string: {other:?}")),
    };
    let as_of = match item.get("as_of") {
        Some(AttributeValue::N(n)) => {
            n.parse::<i64>().map_err(|e| anyhow!("as_of {n:?} of customer {customer_id} is not an integer: {e}"))?
        }
        other => return Err(anyhow!("as_of of customer {customer_id} is not a number: {other:?}")),
    };
    let emission = match item.get("emission") {
        Some(AttributeValue::S(s)) => EmissionKey::decode(s)
            .ok_or_else(|| anyhow!("emission {s:?} of customer {customer_id} is not an emission key"))?,
        None => EmissionKey::at(as_of),
        Some(other) => return Err(anyhow!("emission of customer {customer_id} is not a string: {other:?}")),
    };
    let armed = match item.get("alert_armed") {
        Some(AttributeValue::Bool(b)) => *b,
        None => true,
        Some(other) => return Err(anyhow!("alert_armed of customer {customer_id} is not a boolean: {other:?}")),
    };
    let arriving = match item.get("alert_arriving") {
        Some(AttributeValue::Bool(b)) => *b,
        None => false,
        Some(other) => return Err(anyhow!("alert_arriving of customer {customer_id} is not a boolean: {other:?}")),
    };
    Ok(StoredAlertState { customer_id, armed, arriving, as_of, emission })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_states_are_read_strictly() {
        let item = |armed: Option<AttributeValue>, as_of: AttributeValue| {
            let mut m = HashMap::from([
                ("customer_id".to_owned(), AttributeValue::S("c1".into())),
                ("as_of".to_owned(), as_of),
            ]);
            if let Some(a) = armed {
                m.insert("alert_armed".into(), a);
            }
            m
        };
        let state = stored_state(&item(Some(AttributeValue::Bool(false)), AttributeValue::N("17".into()))).unwrap();
        let want = StoredAlertState {
            customer_id: CustomerId::new("c1"),
            armed: false,
            arriving: false,
            as_of: 17,
            emission: EmissionKey::at(17),
        };
        assert_eq!(state, want, "no emission: ranked by as_of; no arrival stored: not arriving");
        let mut with_key = item(None, AttributeValue::N("17".into()));
        with_key.insert("emission".into(), AttributeValue::S(EmissionKey::timer(20).encode()));
        assert_eq!(stored_state(&with_key).unwrap().emission, EmissionKey::timer(20));
        with_key.insert("emission".into(), AttributeValue::S("20".into()));
        assert!(stored_state(&with_key).is_err(), "not a key");
        assert!(stored_state(&item(None, AttributeValue::N("17".into()))).unwrap().armed, "absent = armed");
        assert!(stored_state(&item(None, AttributeValue::N("1.5".into()))).is_err());
        assert!(stored_state(&item(Some(AttributeValue::S("no".into())), AttributeValue::N("1".into()))).is_err());
        let mut arriving = item(None, AttributeValue::N("17".into()));
        arriving.insert("alert_arriving".into(), AttributeValue::Bool(true));
        assert!(stored_state(&arriving).unwrap().arriving);
        arriving.insert("alert_arriving".into(), AttributeValue::N("1".into()));
        assert!(stored_state(&arriving).is_err(), "not a boolean");
    }

    /// A prediction item exactly as FEATURES.md §6 shapes it (what the
    /// system pulse replaces writes): read back, its model "not recorded".
    #[test]
    fn a_contract_shaped_prediction_item_is_read_back() {
        let n = |v: &str| AttributeValue::N(v.into());
        let sv = |v: &str| AttributeValue::S(v.into());
        let mut item = HashMap::from([
            ("customer_id".to_owned(), sv("stu_000001")),
            ("sk".to_owned(), sv("PRED#latest")),
            ("first_session_success".to_owned(), n("0.9")),
            ("session_velocity".to_owned(), n("2.5")),
            ("churn_risk_14d".to_owned(), n("0.1")),
            ("churn_risk_30d".to_owned(), n("0.2")),
            ("health_score".to_owned(), n("81")),
            ("segment".to_owned(), sv("healthy")),
            ("model_version".to_owned(), sv("synth-1")),
            ("as_of".to_owned(), n("1767610805286")),
            ("features_schema".to_owned(), sv("features-v1")),
        ]);
        let stored = stored_customer(&item).unwrap();
        assert_eq!(
            (&*stored.model.name, &*stored.model.version, &*stored.model.served_by),
            (NOT_RECORDED, "synth-1", NOT_RECORDED)
        );
        assert_eq!((stored.scores.health_score, stored.state.as_of, stored.state.armed), (81.0, 1767610805286, true));
        // Present but not a string is still wrong.
        item.insert("model".into(), n("3"));
        assert!(stored_customer(&item).unwrap_err().to_string().contains("model of customer stu_000001"));
        item.remove("model");
        item.remove("health_score");
        assert!(stored_customer(&item).is_err(), "a score missing is not a prediction");
    }
}
