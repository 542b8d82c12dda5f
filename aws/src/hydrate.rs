//! Rebuilding customers' state from the event table: the table is the source
//! of truth, the engine's state a cache of it.
//!
//! A consumer that starts cold (a new Lambda execution environment, a
//! restarted `pulse run`), or meets a customer it has not seen, loads that
//! customer's events from the base table before applying the records that
//! name it, so its first vector is the one an engine that never stopped would
//! emit. [`requests_for`] says what to load for a batch of records,
//! [`Hydrator`] reads it (paginated Queries, several customers at once) and
//! [`apply`] loads it into the [`Engine`] without emitting anything.
//!
//! # What is read
//!
//! Event items have the sort key `EVT#<ts as 13 digits>#<event_id>`, so one
//! customer's events are one key range, in time order. For a customer whose
//! coming records touch events from `ts = E` on, and whose newest event in the
//! table is `N`, the features depend on:
//!
//! * every event with `ts > min(E, N) − 30 days` (the held events: windows,
//!   sessions, tutors, duplicates and retractions);
//! * before that, only the latest `session_completed`, `login`, succeeded
//!   `payment` and `ib_call` (the "ever" recency features of §4, capped at
//!   365 days), and the oldest event (`tenure_days`).
//!
//! So one Query walks the key range **newest first** and stops as soon as it
//! has the held events and the latest event of each "ever" kind, or has gone
//! 365 days past the held events (older ones are capped anyway); a second
//! Query, oldest first, reads the first event for `tenure_days` (skipped when
//! the first one reached the start of the partition). A customer who books
//! and logs in every month costs about a month of items plus one; one who
//! never called support costs up to 13 months of items (the "ever" search
//! for `ib_call` runs out at the cap). Whole-partition reads were rejected:
//! their cost grows with the customer's age, and nothing past the cap can
//! change a feature.
//!
//! Items are read up to `ts <= newest creation time of the records + 1 hour`
//! (no valid event of those records is later; see the future rule of §2), so
//! events written after the batch, with a later `ts`, are not loaded early.
//!
//! # Merged with the records
//!
//! The records about to be applied carry part of the same history: an
//! `INSERT`'s event may already be in the table, a `REMOVE`d one is gone from
//! it, a `MODIFY`'s item shows the new image. So every event id the records
//! touch is **skipped** when read from the table, and the image the first
//! record touching it had **before** (a `MODIFY`'s or `REMOVE`'s OldImage) is
//! loaded instead; an `INSERT`ed id is absent before. The records then apply
//! to the state the customer had before them, and emit the vectors an
//! uninterrupted run emits, dedupe by `event_id` included.
//!
//! # When the result differs from an uninterrupted run
//!
//! * `tenure_days` counts the oldest event ever accepted, retracted or not;
//!   the table no longer has a retracted (deleted) event, so after a
//!   retraction of a customer's oldest event a hydrated tenure is shorter.
//! * Items removed by TTL are gone from the table: if the table's TTL is
//!   shorter than 395 days, "ever" features can read an older latest (or
//!   none: 365) and `tenure_days` a later first event. A TTL removal inside
//!   the 30-day horizon (which §2 says has no effect) loses a held event.
//! * An item written after the batch with a `ts` at or below the bound above
//!   (a late-arriving event) is loaded before its own record comes; that
//!   record is then a duplicate and emits nothing, and the vectors before it
//!   already count the event.
//! * An invalid item in the table (a record that went to the dead letters)
//!   is counted and skipped, as the stream does; but a `MODIFY` whose new
//!   image was invalid left the *old* event held in the stream, while the
//!   table holds only the invalid new image.
//! * A correction that changed `ts` keeps its old sort key: the key range
//!   places it by the old time (its features use the new one).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::query::QueryOutput;
use aws_sdk_dynamodb::types::AttributeValue;
use pulse_operators::{Engine, Hydrated};
use pulse_schemas::attr::Image;
use pulse_schemas::validate::{event_from_image, FUTURE_TOLERANCE_MS};
use pulse_schemas::{Event, EventKind, PaymentStatus, Side, StreamChange, StreamRecord, DAY_MS};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::retry::{classify, Backoff};

/// The prefix of an event item's sort key.
pub const EVENT_SK_PREFIX: &str = "EVT#";
/// The held-event horizon of §2.
const HORIZON_MS: i64 = 30 * DAY_MS;
/// "Ever" recency features are capped at 365 days.
const EVER_CAP_MS: i64 = 365 * DAY_MS;
/// The largest `ts` a 13-digit sort key can spell.
const MAX_KEY_TS: i64 = 9_999_999_999_999;
/// Page size of the oldest-first Query for `tenure_days`.
const OLDEST_PAGE: i32 = 16;

/// What to load for one customer.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HydrateRequest {
    /// The customer (the table's partition key).
    pub customer_id: String,
    /// The smallest `ts` the coming records touch; `None` when no record
    /// comes (a scheduled rescoring), then the newest event in the table
    /// decides.
    pub earliest_ts: Option<i64>,
    /// Items with a larger `ts` are not read (written after the records).
    pub upper_ts: i64,
    /// Event ids the coming records touch: skipped when read from the table.
    pub skip_ids: HashSet<String>,
    /// Their images as they were before the records (OldImages of the first
    /// `MODIFY`/`REMOVE` touching each id), loaded instead.
    pub restore: Vec<Event<'static>>,
}

/// A customer's events as read, ready for [`apply`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct History {
    /// The customer.
    pub customer_id: String,
    /// The events to load, in (`ts`, `event_id`) order, one per id.
    pub events: Vec<Event<'static>>,
    /// What reading them took and found.
    pub stats: HydrateStats,
}

/// Counts of one or more hydrations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct HydrateStats {
    /// Customers read.
    pub customers: u64,
    /// Query pages requested.
    pub queries: u64,
    /// Items read.
    pub items_read: u64,
    /// Event items that break the contract (skipped, as their records were).
    pub invalid_items: u64,
    /// Items under the event prefix that are not events (skipped).
    pub non_event_items: u64,
    /// Events kept for loading (restored images included).
    pub events: u64,
}

impl HydrateStats {
    /// Adds `other` to these counts.
    pub fn add(&mut self, other: &HydrateStats) {
        self.customers += other.customers;
        self.queries += other.queries;
        self.items_read += other.items_read;
        self.invalid_items += other.invalid_items;
        self.non_event_items += other.non_event_items;
        self.events += other.events;
    }
}

/// What to load for the customers of `records` that `engine` does not hold:
/// one request per such customer, in order of first appearance.
///
/// Invalid records are not here (they apply nothing); records that are not
/// about an event (predictions, the due index, TTL removals) name no customer.
pub fn requests_for<'a>(
    records: impl IntoIterator<Item = &'a StreamRecord<'a>>,
    engine: &Engine,
) -> Vec<HydrateRequest> {
    let mut requests: Vec<HydrateRequest> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut newest_created = i64::MIN;
    for record in records {
        if let Some(created) = record.created_ms {
            newest_created = newest_created.max(created.floor() as i64);
        }
        let Some(customer) = record.change.customer_id() else { continue };
        if engine.customer_clock(customer).is_some() {
            continue;
        }
        let i = *index.entry(customer).or_insert_with(|| {
            requests.push(HydrateRequest { customer_id: customer.to_owned(), ..HydrateRequest::default() });
            requests.len() - 1
        });
        let request = &mut requests[i];
        let (old, new) = match &record.change {
            StreamChange::Insert(new) => (None, Some(new)),
            StreamChange::Modify { old, new } => (old.as_ref(), new.as_ref()),
            StreamChange::Remove(old) => (Some(old), None),
            StreamChange::TtlExpiry | StreamChange::NotAnEvent => (None, None),
        };
        // The OldImage first: a MODIFY retracts before it adds.
        for (event, before) in [(old, true), (new, false)] {
            let Some(event) = event else { continue };
            let ts = event.ts.millis();
            request.earliest_ts = Some(request.earliest_ts.map_or(ts, |e| e.min(ts)));
            if request.skip_ids.insert(event.event_id.to_string()) && before {
                request.restore.push(event.clone().into_owned());
            }
        }
    }
    let upper = newest_created.saturating_add(FUTURE_TOLERANCE_MS as i64);
    for request in &mut requests {
        request.upper_ts = upper;
    }
    requests
}

/// Loads `history` into `engine` (no vectors), its timers settled as if every
/// timer due at or before `timers_fired_through` had fired.
pub fn apply(engine: &Engine, history: &History, timers_fired_through: i64) -> Hydrated {
    engine.hydrate(&history.customer_id, &history.events, timers_fired_through)
}

/// Up to when the timers of customers hydrated before `records` count as
/// fired: the stream time already reached, or else (nothing applied yet) just
/// before the records' earliest creation time. Catching up on rescoring a
/// silent customer is not the records' job: no burst of past-dated vectors.
pub fn timers_fired_through<'a>(
    stream_time: Option<i64>,
    records: impl IntoIterator<Item = &'a StreamRecord<'a>>,
) -> i64 {
    stream_time
        .or_else(|| records.into_iter().filter_map(|r| r.created_ms).reduce(f64::min).map(|c| c.floor() as i64 - 1))
        .unwrap_or(i64::MIN)
}

/// Loads every history into `engine` ([`apply`]) and adds up what reading
/// them took.
pub fn apply_all(engine: &Engine, histories: &[History], timers_fired_through: i64) -> HydrateStats {
    let mut stats = HydrateStats::default();
    for history in histories {
        apply(engine, history, timers_fired_through);
        stats.add(&history.stats);
    }
    stats
}

/// How a hydration Query is retried: 5 attempts in all, the first retry
/// within 100 ms, none later than 10 s (throttling waits longer: see
/// [`Backoff::delay_after`]). The same for the Lambda function and `pulse run
/// --hydrate`.
pub const HYDRATE_RETRY: Backoff =
    Backoff { base: std::time::Duration::from_millis(100), cap: std::time::Duration::from_secs(10), max_attempts: 5 };

/// The driver's hydration hook over the event table: before a batch is
/// applied, the customers it names that the engine holds no state for are
/// read ([`requests_for`], [`Hydrator::load_all`]) and loaded with their
/// timers settled up to the stream time before the batch
/// ([`timers_fired_through`]). The one hydration of `pulse run --hydrate`
/// and the Lambda function.
#[derive(Debug)]
pub struct TableHydration {
    hydrator: Hydrator,
    stats: HydrateStats,
}

impl TableHydration {
    /// Hydration through `hydrator`.
    pub fn new(hydrator: Hydrator) -> TableHydration {
        TableHydration { hydrator, stats: HydrateStats::default() }
    }

    /// What hydration read so far.
    pub fn stats(&self) -> &HydrateStats {
        &self.stats
    }

    /// The reader.
    pub fn hydrator(&self) -> &Hydrator {
        &self.hydrator
    }
}

impl pulse_runtime::driver::Hydrate for TableHydration {
    async fn hydrate(
        &mut self,
        processor: &pulse_runtime::process::Processor,
        records: &[&StreamRecord<'_>],
    ) -> Result<()> {
        let engine = processor.engine();
        let requests = requests_for(records.iter().copied(), engine);
        if requests.is_empty() {
            return Ok(());
        }
        let customers = requests.len();
        let histories =
            self.hydrator.load_all(requests).await.with_context(|| {
                format!("cannot hydrate {customers} customers from table {}", self.hydrator.table())
            })?;
        let fired_through = timers_fired_through(processor.stream_time(), records.iter().copied());
        let stats = apply_all(engine, &histories, fired_through);
        tracing::debug!(customers = stats.customers, items = stats.items_read, "hydrated a batch's customers");
        self.stats.add(&stats);
        Ok(())
    }
}

/// Reads customers' events from the event table.
#[derive(Clone, Debug)]
pub struct Hydrator {
    client: aws_sdk_dynamodb::Client,
    table: Arc<str>,
    concurrency: usize,
    retry: Backoff,
}

impl Hydrator {
    /// A hydrator over `table`, reading up to `concurrency` customers at
    /// once, each Query retried under [`HYDRATE_RETRY`].
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>, concurrency: usize) -> Hydrator {
        Hydrator { client, table: Arc::from(table.into()), concurrency: concurrency.max(1), retry: HYDRATE_RETRY }
    }

    /// One Query page; a retryable failure (throttling, a 5xx, a timeout) is
    /// tried again under the retry policy, then the error says what and why.
    async fn query(&self, query: QueryFluentBuilder, what: impl Fn() -> String) -> Result<QueryOutput> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let failure = match query.clone().send().await {
                Ok(page) => return Ok(page),
                Err(e) => classify(&e),
            };
            if !failure.is_retryable() || !self.retry.may_retry(attempt) {
                bail!("{}: {} (attempt {attempt})", what(), failure.reason());
            }
            tracing::warn!(reason = failure.reason(), attempt, "{}: retrying", what());
            self.retry.wait_after(&failure, attempt).await;
        }
    }

    /// The table read.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Reads every request, up to `concurrency` at once; the histories come
    /// back in the order of the requests. The first failed Query fails all.
    pub async fn load_all(&self, requests: Vec<HydrateRequest>) -> Result<Vec<History>> {
        let n = requests.len();
        let permits = Arc::new(Semaphore::new(self.concurrency));
        let mut tasks = JoinSet::new();
        for (i, request) in requests.into_iter().enumerate() {
            let (this, permits) = (self.clone(), permits.clone());
            tasks.spawn(async move {
                let _permit = permits.acquire_owned().await.context("hydration semaphore closed")?;
                this.load(&request).await.map(|h| (i, h))
            });
        }
        let mut out: Vec<Option<History>> = (0..n).map(|_| None).collect();
        while let Some(joined) = tasks.join_next().await {
            let (i, history) = joined.context("a hydration task panicked")??;
            out[i] = Some(history);
        }
        out.into_iter().map(|h| h.context("a hydration task did not report")).collect()
    }

    /// Reads one customer (see the module doc for what and why).
    pub async fn load(&self, request: &HydrateRequest) -> Result<History> {
        let mut pick = Selection::new(request);
        let customer = AttributeValue::S(request.customer_id.clone());
        let upper = request.upper_ts.clamp(0, MAX_KEY_TS);

        // Newest first: the held events, then the latest of each "ever" kind.
        let mut start = None;
        let reached_start = 'pages: loop {
            let query = self
                .client
                .query()
                .table_name(&*self.table)
                .key_condition_expression("customer_id = :c AND sk BETWEEN :lo AND :hi")
                .expression_attribute_values(":c", customer.clone())
                .expression_attribute_values(":lo", AttributeValue::S(EVENT_SK_PREFIX.to_owned()))
                .expression_attribute_values(":hi", AttributeValue::S(format!("{EVENT_SK_PREFIX}{upper:013}#~")))
                .scan_index_forward(false)
                .set_exclusive_start_key(start.take());
            let page = self
                .query(query, || {
                    format!("hydration: Query on table {} for customer {}", self.table, request.customer_id)
                })
                .await?;
            pick.stats.queries += 1;
            for item in page.items() {
                if let Some(event) = pick.decode(item) {
                    if pick.offer_newest_first(event) == Flow::Stop {
                        break 'pages false;
                    }
                }
            }
            match page.last_evaluated_key() {
                Some(key) => start = Some(key.clone()),
                None => break true,
            }
        };

        // Oldest first, for tenure_days, unless the walk above got there.
        if !reached_start {
            let mut start = None;
            'oldest: loop {
                let query = self
                    .client
                    .query()
                    .table_name(&*self.table)
                    .key_condition_expression("customer_id = :c AND begins_with(sk, :p)")
                    .expression_attribute_values(":c", customer.clone())
                    .expression_attribute_values(":p", AttributeValue::S(EVENT_SK_PREFIX.to_owned()))
                    .scan_index_forward(true)
                    .limit(OLDEST_PAGE)
                    .set_exclusive_start_key(start.take());
                let what = || {
                    format!(
                        "hydration: Query for the oldest event on table {} for customer {}",
                        self.table, request.customer_id
                    )
                };
                let page = self.query(query, what).await?;
                pick.stats.queries += 1;
                for item in page.items() {
                    if let Some(event) = pick.decode(item) {
                        if pick.offer_oldest(event) == Flow::Stop {
                            break 'oldest;
                        }
                    }
                }
                match page.last_evaluated_key() {
                    Some(key) => start = Some(key.clone()),
                    None => break,
                }
            }
        }
        Ok(pick.finish())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    Stop,
}

/// Which "ever" feature an event feeds (§4: latest session, login,
/// succeeded payment, support call).
fn ever_kind(event: &Event<'_>) -> Option<usize> {
    match &event.kind {
        EventKind::SessionCompleted { .. } => Some(0),
        EventKind::Login => Some(1),
        EventKind::Payment { status: PaymentStatus::Succeeded, .. } => Some(2),
        EventKind::IbCall { .. } => Some(3),
        _ => None,
    }
}

/// The choice of events among those read (pure, so it is unit-tested).
#[derive(Debug)]
struct Selection<'r> {
    request: &'r HydrateRequest,
    /// Events with `ts` above this are all kept; set by the first event read.
    cutoff: Option<i64>,
    ever_found: [bool; 4],
    events: Vec<Event<'static>>,
    stats: HydrateStats,
}

impl<'r> Selection<'r> {
    fn new(request: &'r HydrateRequest) -> Selection<'r> {
        Selection {
            request,
            cutoff: None,
            ever_found: [false; 4],
            events: Vec::new(),
            stats: HydrateStats { customers: 1, ..HydrateStats::default() },
        }
    }

    /// The event of an item, if it is a valid one of this contract that the
    /// request does not skip.
    fn decode(&mut self, item: &HashMap<String, AttributeValue>) -> Option<Event<'static>> {
        self.stats.items_read += 1;
        let item = serde_dynamo::Item::from(item.clone());
        let image = Image::from_item(&item);
        if !image.is_event() {
            self.stats.non_event_items += 1;
            return None;
        }
        match event_from_image(image, Side::New) {
            Ok(event) => {
                let keep =
                    !self.request.skip_ids.contains(&*event.event_id) && event.ts.millis() <= self.request.upper_ts;
                keep.then(|| event.into_owned())
            }
            Err(reason) => {
                self.stats.invalid_items += 1;
                tracing::warn!(
                    customer = %self.request.customer_id,
                    code = reason.code(),
                    %reason,
                    "hydration: skipping an invalid event item"
                );
                None
            }
        }
    }

    fn offer_newest_first(&mut self, event: Event<'static>) -> Flow {
        let ts = event.ts.millis();
        let cutoff = *self.cutoff.get_or_insert_with(|| self.request.earliest_ts.unwrap_or(ts).min(ts) - HORIZON_MS);
        if ts > cutoff {
            // A held event of an "ever" kind makes older ones of that kind moot.
            if let Some(k) = ever_kind(&event) {
                self.ever_found[k] = true;
            }
            self.events.push(event);
            return Flow::Continue;
        }
        if ts <= cutoff.saturating_sub(EVER_CAP_MS) {
            return Flow::Stop;
        }
        if let Some(k) = ever_kind(&event) {
            if !self.ever_found[k] {
                self.ever_found[k] = true;
                self.events.push(event);
            }
        }
        if self.ever_found.iter().all(|&f| f) {
            Flow::Stop
        } else {
            Flow::Continue
        }
    }

    fn offer_oldest(&mut self, event: Event<'static>) -> Flow {
        self.events.push(event);
        Flow::Stop
    }

    fn finish(mut self) -> History {
        self.events.extend(self.request.restore.iter().cloned());
        self.events.sort_by(|a, b| (a.ts, &a.event_id).cmp(&(b.ts, &b.event_id)));
        let mut seen = HashSet::new();
        self.events.retain(|e| seen.insert(e.event_id.clone()));
        self.stats.events = self.events.len() as u64;
        History { customer_id: self.request.customer_id.clone(), events: self.events, stats: self.stats }
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use pulse_operators::EngineConfig;
    use pulse_schemas::{EventTime, Sentiment};

    use super::*;

    const T: i64 = 1_767_600_000_000;
    const D: i64 = DAY_MS;

    fn ev(id: &str, ts: i64, kind: EventKind<'static>) -> Event<'static> {
        Event { customer_id: Cow::Borrowed("stu_1"), event_id: Cow::Owned(id.to_owned()), ts: EventTime(ts), kind }
    }

    fn request(earliest: Option<i64>) -> HydrateRequest {
        HydrateRequest {
            customer_id: "stu_1".into(),
            earliest_ts: earliest,
            upper_ts: T + D,
            ..HydrateRequest::default()
        }
    }

    fn ids<'e>(events: &'e [Event<'_>]) -> Vec<&'e str> {
        events.iter().map(|e| &*e.event_id).collect()
    }

    #[test]
    fn keeps_the_held_events_then_the_latest_of_each_ever_kind() {
        let request = request(Some(T));
        let mut pick = Selection::new(&request);
        let newest_first = [
            ev("in_window", T - D, EventKind::SessionNoShow { tutor_id: "t".into() }),
            ev("edge", T - 30 * D + 1, EventKind::Login),
            ev("login_old", T - 30 * D, EventKind::Login),
            ev("login_older", T - 31 * D, EventKind::Login),
            ev("failed_pay", T - 32 * D, EventKind::Payment { amount: 1.0, status: PaymentStatus::Failed }),
            ev("pay", T - 33 * D, EventKind::Payment { amount: 1.0, status: PaymentStatus::Succeeded }),
            ev("session", T - 40 * D, EventKind::SessionCompleted { tutor_id: "t".into(), duration_min: 5.0 }),
            ev("call", T - 300 * D, EventKind::IbCall { sentiment: Sentiment::Neutral }),
            ev("never_read", T - 301 * D, EventKind::Login),
        ];
        let flows: Vec<_> = newest_first.iter().map(|e| pick.offer_newest_first(e.clone())).collect();
        assert_eq!(flows.iter().filter(|f| **f == Flow::Stop).count(), 2, "stops once all four are found: {flows:?}");
        assert_eq!(flows[7], Flow::Stop);
        let history = pick.finish();
        assert_eq!(ids(&history.events), ["call", "session", "pay", "login_old", "edge", "in_window"]);
    }

    #[test]
    fn stops_a_year_past_the_held_events() {
        let request = request(None);
        let mut pick = Selection::new(&request);
        assert_eq!(pick.offer_newest_first(ev("newest", T - 10 * D, EventKind::Login)), Flow::Continue);
        // The cutoff follows the newest event (T - 40 D), the cap a year before it.
        let cutoff = T - 40 * D;
        let session = EventKind::SessionCompleted { tutor_id: "t".into(), duration_min: 5.0 };
        assert_eq!(pick.offer_newest_first(ev("a", cutoff - 364 * D, session)), Flow::Continue);
        assert_eq!(pick.offer_newest_first(ev("b", cutoff - 365 * D, EventKind::Login)), Flow::Stop);
        assert_eq!(ids(&pick.finish().events), ["a", "newest"]);
    }

    #[test]
    fn the_newest_event_lowers_the_cutoff_below_the_records() {
        // Records from T on, the table's newest event 20 days earlier: the
        // held events before the records reach back 30 days from that one.
        let request = request(Some(T));
        let mut pick = Selection::new(&request);
        pick.offer_newest_first(ev("newest", T - 20 * D, EventKind::Login));
        pick.offer_newest_first(ev("held", T - 45 * D, EventKind::SessionNoShow { tutor_id: "t".into() }));
        pick.offer_newest_first(ev("not_held", T - 50 * D, EventKind::SessionNoShow { tutor_id: "t".into() }));
        assert_eq!(ids(&pick.finish().events), ["held", "newest"]);
    }

    #[test]
    fn skips_touched_ids_and_restores_their_images() {
        let mut request = request(Some(T));
        request.skip_ids = ["x".to_string()].into();
        request.restore = vec![ev("x", T - 2 * D, EventKind::Login)];
        let mut pick = Selection::new(&request);
        let item: HashMap<String, AttributeValue> = [
            ("customer_id", AttributeValue::S("stu_1".into())),
            ("sk", AttributeValue::S(format!("EVT#{}#x", T - D))),
            ("entity_type", AttributeValue::S("event".into())),
            ("event_id", AttributeValue::S("x".into())),
            ("event_type", AttributeValue::S("login".into())),
            ("ts", AttributeValue::N((T - D).to_string())),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        assert_eq!(pick.decode(&item), None, "a touched id is skipped");
        let mut bad = item.clone();
        bad.insert("event_id".into(), AttributeValue::S("y".into()));
        bad.insert("ts".into(), AttributeValue::N("12.5".into()));
        assert_eq!(pick.decode(&bad), None);
        let mut prediction = item.clone();
        prediction.insert("entity_type".into(), AttributeValue::S("prediction".into()));
        assert_eq!(pick.decode(&prediction), None);
        let mut later = item.clone();
        later.insert("event_id".into(), AttributeValue::S("later".into()));
        later.insert("ts".into(), AttributeValue::N((T + 2 * D).to_string()));
        assert_eq!(pick.decode(&later), None, "written after the records");
        let mut fine = item;
        fine.insert("event_id".into(), AttributeValue::S("z".into()));
        let z = pick.decode(&fine).expect("a valid event");
        pick.offer_newest_first(z);
        let history = pick.finish();
        assert_eq!(ids(&history.events), ["x", "z"]);
        assert_eq!(
            history.stats,
            HydrateStats {
                customers: 1,
                items_read: 5,
                invalid_items: 1,
                non_event_items: 1,
                events: 2,
                ..HydrateStats::default()
            }
        );
    }

    #[test]
    fn timers_count_as_fired_up_to_the_stream_time_or_just_before_the_records() {
        let rec = |created: Option<f64>| StreamRecord {
            created_ms: created,
            sequence_number: None,
            change: StreamChange::NotAnEvent,
        };
        let records = [rec(Some(T as f64 + 0.5)), rec(None), rec(Some((T - 5) as f64))];
        assert_eq!(timers_fired_through(Some(T - 100), &records), T - 100, "the stream time reached wins");
        assert_eq!(timers_fired_through(None, &records), T - 6, "just before the earliest record");
        assert_eq!(timers_fired_through(None, &[rec(None)]), i64::MIN);
    }

    #[test]
    fn requests_name_unseen_customers_with_what_their_records_touch() {
        let engine = Engine::new(EngineConfig::default());
        let known = ev("k", T - D, EventKind::Login);
        let mut known_other = known.clone();
        known_other.customer_id = Cow::Borrowed("stu_known");
        engine.hydrate("stu_known", &[known_other.clone()], i64::MIN);
        let rec = |change: StreamChange<'static>| StreamRecord {
            created_ms: Some((T + 60_000) as f64),
            sequence_number: None,
            change,
        };
        let a = ev("a", T - 3 * D, EventKind::Login);
        let b_old = ev("b", T - 5 * D, EventKind::Login);
        let b_new = ev("b", T - 4 * D, EventKind::Login);
        let records = [
            rec(StreamChange::Insert(a.clone())),
            rec(StreamChange::Modify { old: Some(b_old.clone()), new: Some(b_new.clone()) }),
            rec(StreamChange::Remove(b_new.clone())),
            rec(StreamChange::Remove(a.clone())),
            rec(StreamChange::Insert(known_other)),
            rec(StreamChange::NotAnEvent),
        ];
        let requests = requests_for(&records, &engine);
        assert_eq!(requests.len(), 1, "the known customer is not read again");
        let r = &requests[0];
        assert_eq!(r.customer_id, "stu_1");
        assert_eq!(r.earliest_ts, Some(T - 5 * D));
        assert_eq!(r.upper_ts, T + 60_000 + 3_600_000);
        assert_eq!(r.skip_ids, ["a".to_string(), "b".to_string()].into());
        // `a` was inserted (absent before); `b` existed as the first MODIFY's OldImage.
        assert_eq!(r.restore, vec![b_old]);
    }
}
