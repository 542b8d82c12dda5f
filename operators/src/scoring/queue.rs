//! The line between the engine's feature vectors and the model.
//!
//! The engine emits a vector on every change of a customer and on timers, far
//! more often than a customer's scores can usefully change. The queue keeps
//! the model's work to what matters:
//!
//! - **Change gate.** A vector whose 46 features are bit-identical to the
//!   last *scored* features of its customer would get the same scores: it is
//!   not queued ([`Offer::Unchanged`]). The gate only applies while no vector
//!   of the customer is waiting or in flight, so it never lets an older
//!   vector's scores stand for a newer state.
//! - **Per-customer coalescing.** At most one vector per customer waits. A
//!   newer one replaces it in place, keeping the customer's place in line
//!   ([`Offer::Coalesced`]), so only the newest waiting vector is scored. A
//!   vector from an earlier emission than the waiting one, or than what was
//!   already scored, would be refused by the prediction write anyway (§6: a
//!   write never replaces a prediction made from a later emission): it is
//!   dropped as [`Offer::Stale`]. "Earlier" is the order of the customer's
//!   stream ([`FeatureVector::emission`], see [`pulse_schemas::order`]), not
//!   `as_of`: a late event's vector that follows a timer vector with a larger
//!   `as_of` replaces it. Equal keys: the later offer wins.
//! - **Micro-batches.** [`ScoreQueue::take_ready`] hands out up to `max_rows`
//!   vectors, oldest first, once `max_rows` are waiting or the head of the
//!   line has waited `max_linger_ms`; [`ScoreQueue::next_deadline`] says when
//!   to come back. A batch never holds two vectors of one customer.
//! - **One in flight per customer.** While a customer's vector is being
//!   scored, a newer vector of that customer waits off the line (*parked*)
//!   until the first is reported back; it then joins the line (at the end
//!   after a success, at the front after a failure). So a
//!   customer's vectors are scored one after the other, in order, even when
//!   the driver has several batches in flight, and ties in the emission key
//!   (vectors without one are ranked by `as_of`) resolve to the vector
//!   offered last.
//!
//! After the model, the driver reports back: [`ScoreQueue::mark_scored`] for
//! vectors scored and written (this feeds the gate), [`ScoreQueue::requeue`]
//! for vectors that failed (they go back to the front of the line, unless a
//! newer vector of the customer is already waiting). Nothing is dropped
//! without being counted: at every moment
//! `offered + requeued == pending + taken + coalesced + stale + unchanged`
//! ([`QueueStats::balanced`]).
//!
//! Cost: O(1) per offer and per vector taken or reported (a hash lookup);
//! memory is a slot per customer with a vector waiting or in flight, and a
//! 64-byte [`Gate`] per customer ever scored: the emission key and a 128-bit
//! fingerprint of its last scored features (16 bytes where the features,
//! boxed, took 368: at a million customers the difference is 0.35 GB, for a
//! gate that rarely fires because recency features move with every vector).
//! The queue keeps the gates in a map of its own for the keyed methods; a
//! caller that keeps per-customer state anyway keeps them there and uses
//! the `_in` methods ([`ScoreQueue::offer_in`], [`ScoreQueue::mark_scored_in`],
//! [`ScoreQueue::requeue_in`]), as pulse's scoring stage does.

use std::collections::{HashMap, VecDeque};

use pulse_schemas::{CustomerId, EmissionKey, FeatureVector, Features};

use super::error::PolicyError;

/// When batches are handed to the model, and how much may wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BatchPolicy {
    /// Most vectors in one batch; a batch is ready as soon as this many wait.
    pub max_rows: usize,
    /// Longest the head of the line waits for a batch to fill.
    pub max_linger_ms: i64,
    /// Waiting vectors at which [`ScoreQueue::is_full`] asks the driver to
    /// stop offering (backpressure). Must be at least `max_rows`.
    pub max_pending: usize,
}

impl Default for BatchPolicy {
    fn default() -> Self {
        BatchPolicy { max_rows: 1024, max_linger_ms: 250, max_pending: 100_000 }
    }
}

impl BatchPolicy {
    /// Checks that the policy can work; the error names the field.
    pub fn validate(&self) -> Result<(), PolicyError> {
        if self.max_rows == 0 {
            return Err(PolicyError::new("max_rows", "must be at least 1"));
        }
        if self.max_linger_ms < 0 {
            return Err(PolicyError::new("max_linger_ms", format!("must be >= 0, got {}", self.max_linger_ms)));
        }
        if self.max_pending < self.max_rows {
            return Err(PolicyError::new(
                "max_pending",
                format!("must be at least max_rows ({}), got {}", self.max_rows, self.max_pending),
            ));
        }
        Ok(())
    }
}

/// What [`ScoreQueue::offer`] (or `offer_in`) did with a vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Offer {
    /// Joined the end of the line.
    Queued,
    /// Replaced the customer's waiting vector, keeping its place in line.
    Coalesced,
    /// Dropped: same features as the customer's last scored vector.
    Unchanged,
    /// Dropped: older than the customer's waiting or scored vector.
    Stale,
}

/// What the queue did, counted since it was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct QueueStats {
    /// Vectors offered.
    pub offered: u64,
    /// Offers that joined the end of the line.
    pub queued: u64,
    /// Vectors dropped because a vector of the same customer, at least as
    /// new, took or kept the waiting place (by an offer or a requeue).
    pub coalesced: u64,
    /// Offers dropped by the change gate.
    pub unchanged: u64,
    /// Vectors (offered or requeued) dropped as older than the customer's
    /// waiting or scored vector.
    pub stale: u64,
    /// Vectors handed out in batches.
    pub taken: u64,
    /// Vectors reported scored.
    pub scored: u64,
    /// Vectors handed back by [`ScoreQueue::requeue`] (or `requeue_in`).
    pub requeued: u64,
}

impl QueueStats {
    /// Every vector that came in is waiting, taken, or dropped for a counted
    /// reason, given the number of vectors now `pending`.
    pub fn balanced(&self, pending: usize) -> bool {
        self.offered + self.requeued == pending as u64 + self.taken + self.coalesced + self.stale + self.unchanged
    }
}

/// A customer's change gate: the emission of its newest vector reported
/// scored (or gated as equal to it) and a fingerprint of the features
/// scored. 64 bytes, kept for every customer ever scored: by the queue
/// itself with the keyed methods ([`ScoreQueue::offer`],
/// [`ScoreQueue::mark_scored`], [`ScoreQueue::requeue`]), or by the caller
/// beside its own per-customer state with the `_in` ones, which saves a map
/// entry per customer (the queue's map holds an id and a gate per slot, up
/// to half the slots spare). A queue is used one way or the other: mixing
/// them would keep a customer's gate in two places.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gate {
    emission: EmissionKey,
    /// [`fingerprint`] of the features scored, as two words (a `u128`
    /// would align the caller's state to 16 bytes).
    features: [u64; 2],
}

/// A customer with a vector waiting or in flight; the slot is dropped when
/// it has neither (the gate outlives it).
///
/// The customer is in `line` exactly when it has a waiting vector and none in
/// flight; a waiting vector of a customer in flight is *parked*.
#[derive(Debug, Default)]
struct Slot {
    /// The waiting vector.
    waiting: Option<Box<FeatureVector>>,
    /// When a parked vector started waiting.
    parked_since: Option<i64>,
    /// Whether a vector of this customer was taken and not yet reported back.
    in_flight: bool,
}

impl Slot {
    fn idle(&self) -> bool {
        self.waiting.is_none() && !self.in_flight
    }
}

/// Feature vectors waiting for the model: change-gated, coalesced per
/// customer, handed out in micro-batches (see the [module docs](self)).
#[derive(Debug)]
pub struct ScoreQueue {
    policy: BatchPolicy,
    /// Only the customers with a vector waiting or in flight.
    slots: HashMap<CustomerId, Slot, ahash::RandomState>,
    /// Customers with a waiting vector and none in flight, in batch order,
    /// with the time each started waiting (a coalesced vector keeps the
    /// time and the place).
    line: VecDeque<(CustomerId, i64)>,
    parked: usize,
    in_flight: u64,
    stats: QueueStats,
    /// The gates of the keyed methods (empty when the caller keeps them).
    gates: HashMap<CustomerId, Gate, ahash::RandomState>,
}

impl ScoreQueue {
    /// An empty queue, if the policy is valid.
    pub fn new(policy: BatchPolicy) -> Result<ScoreQueue, PolicyError> {
        policy.validate()?;
        Ok(ScoreQueue {
            policy,
            slots: HashMap::with_hasher(ahash::RandomState::new()),
            line: VecDeque::new(),
            parked: 0,
            in_flight: 0,
            stats: QueueStats::default(),
            gates: HashMap::with_hasher(ahash::RandomState::new()),
        })
    }

    /// The policy.
    pub fn policy(&self) -> &BatchPolicy {
        &self.policy
    }

    /// Offers the engine's newest vector of a customer at time `now_ms`,
    /// gated by the gate the queue keeps for the customer.
    ///
    /// Always takes the vector (queued, merged or dropped for a counted
    /// reason), even when [`is_full`](Self::is_full): backpressure is the
    /// driver's job, by not offering while the queue is full.
    pub fn offer(&mut self, vector: FeatureVector, now_ms: i64) -> Offer {
        let id = vector.customer_id.clone();
        let mut gates = std::mem::take(&mut self.gates);
        let offer = self.offer_in(vector, now_ms, gates.get_mut(&id));
        self.gates = gates;
        offer
    }

    /// [`ScoreQueue::offer`] with the customer's gate kept by the caller
    /// (`None`: never scored). An unchanged vector moves the gate's
    /// emission forward.
    pub fn offer_in(&mut self, vector: FeatureVector, now_ms: i64, gate: Option<&mut Gate>) -> Offer {
        self.stats.offered += 1;
        let emission = vector.emission();
        let mut slot = self.slots.get_mut(&vector.customer_id);
        if let Some(waiting) = slot.as_mut().and_then(|slot| slot.waiting.as_mut()) {
            if emission < waiting.emission() {
                self.stats.stale += 1;
                return Offer::Stale;
            }
            **waiting = vector;
            self.stats.coalesced += 1;
            return Offer::Coalesced;
        }
        let in_flight = slot.as_ref().is_some_and(|slot| slot.in_flight);
        if let Some(gate) = gate {
            if emission < gate.emission {
                self.stats.stale += 1;
                return Offer::Stale;
            }
            if !in_flight && gate.features == fingerprint(&vector.features) {
                // The scored features still hold, as of this later emission.
                gate.emission = emission;
                self.stats.unchanged += 1;
                return Offer::Unchanged;
            }
        }
        let slot = match slot {
            Some(slot) => slot,
            None => self.slots.entry(vector.customer_id.clone()).or_default(),
        };
        if in_flight {
            slot.parked_since = Some(now_ms);
            self.parked += 1;
        } else {
            self.line.push_back((vector.customer_id.clone(), now_ms));
        }
        slot.waiting = Some(Box::new(vector));
        self.stats.queued += 1;
        Offer::Queued
    }

    /// The next batch, if one is due at `now_ms`: up to `max_rows` vectors,
    /// oldest first, when `max_rows` are in line or the head of the line has
    /// waited at least `max_linger_ms`. Parked vectors (of customers in
    /// flight) are not in line.
    pub fn take_ready(&mut self, now_ms: i64) -> Option<Vec<FeatureVector>> {
        let &(_, since) = self.line.front()?;
        let due = self.line.len() >= self.policy.max_rows || now_ms.saturating_sub(since) >= self.policy.max_linger_ms;
        due.then(|| self.take(self.policy.max_rows))
    }

    /// Every vector in line, oldest first, in one batch, whatever the policy
    /// (a flush at shutdown or at the end of a replay). To flush in batches of
    /// at most `max_rows`, call `take_ready(i64::MAX)` until it returns `None`.
    /// Parked vectors join the line when their customer's vector in flight is
    /// reported: a complete flush alternates taking and reporting until
    /// [`pending`](Self::pending) and [`in_flight`](Self::in_flight) are 0.
    pub fn take_all(&mut self) -> Vec<FeatureVector> {
        self.take(self.line.len())
    }

    /// When [`take_ready`](Self::take_ready) will next return a batch if
    /// nothing else is offered; `None` when nothing waits. A deadline at or
    /// before the current time means a batch is ready now.
    pub fn next_deadline(&self) -> Option<i64> {
        let &(_, since) = self.line.front()?;
        Some(if self.line.len() >= self.policy.max_rows {
            since
        } else {
            since.saturating_add(self.policy.max_linger_ms)
        })
    }

    /// Reports vectors scored (and their predictions written): they become
    /// the customers' reference for the change gate, unless a vector of a
    /// later emission was already reported. A parked vector of the customer
    /// joins the end of the line.
    pub fn mark_scored(&mut self, batch: &[FeatureVector]) {
        for vector in batch {
            let mut gate = self.gates.remove(&vector.customer_id);
            self.mark_scored_in(vector, &mut gate);
            if let Some(gate) = gate {
                self.gates.insert(vector.customer_id.clone(), gate);
            }
        }
    }

    /// [`ScoreQueue::mark_scored`] of one vector, with the customer's gate
    /// kept by the caller (`None`: never scored). Report a batch's vectors
    /// in batch order, as [`ScoreQueue::mark_scored`] does: parked vectors
    /// join the line in that order.
    pub fn mark_scored_in(&mut self, vector: &FeatureVector, gate: &mut Option<Gate>) {
        self.stats.scored += 1;
        self.release(&vector.customer_id);
        let emission = vector.emission();
        if gate.as_ref().is_none_or(|gate| emission >= gate.emission) {
            *gate = Some(Gate { emission, features: fingerprint(&vector.features) });
        }
    }

    /// Gives up on a vector taken and never scored (a model call that fails
    /// on it every time): its customer is no longer in flight, so a vector
    /// of theirs parked behind it joins the line, and the next one offered
    /// is scored; the gate stays as it was (nothing was scored).
    pub fn abandon(&mut self, vector: &FeatureVector) {
        self.release(&vector.customer_id);
    }

    /// The customer's vector in flight came back (scored or given up on):
    /// a parked vector of theirs joins the line.
    fn release(&mut self, customer_id: &CustomerId) {
        if let Some(slot) = self.slots.get_mut(customer_id) {
            if std::mem::take(&mut slot.in_flight) {
                self.in_flight -= 1;
                if let Some(since) = slot.parked_since.take() {
                    self.parked -= 1;
                    self.line.push_back((customer_id.clone(), since));
                }
            }
            if slot.idle() {
                self.slots.remove(customer_id);
            }
        }
    }

    /// Hands back vectors that were not scored, at `now_ms`: they return to
    /// the front of the line in their order, and count as waiting from
    /// `now_ms` (so a failing batch is retried after `max_linger_ms` at the
    /// earliest, unless a full batch is waiting).
    ///
    /// A customer that has a waiting vector (offered while this one was in
    /// flight) keeps one: the one of the later emission, the waiting one if
    /// equal (it was offered later); it goes to the front of the line. A
    /// vector of an earlier emission than the customer's scored vector is
    /// dropped as stale.
    pub fn requeue(&mut self, batch: Vec<FeatureVector>, now_ms: i64) {
        let gates = std::mem::take(&mut self.gates);
        let batch: Vec<_> = batch
            .into_iter()
            .map(|v| {
                let gate = gates.get(&v.customer_id);
                (v, gate)
            })
            .collect();
        self.requeue_in(batch, now_ms);
        self.gates = gates;
    }

    /// [`ScoreQueue::requeue`] with each vector's customer's gate kept by
    /// the caller.
    pub fn requeue_in(&mut self, batch: Vec<(FeatureVector, Option<&Gate>)>, now_ms: i64) {
        for (vector, gate) in batch.into_iter().rev() {
            self.stats.requeued += 1;
            let slot = match self.slots.get_mut(&vector.customer_id) {
                Some(slot) => slot,
                None => self.slots.entry(vector.customer_id.clone()).or_default(),
            };
            if std::mem::take(&mut slot.in_flight) {
                self.in_flight -= 1;
            }
            if let Some(waiting) = slot.waiting.as_mut() {
                if vector.emission() > waiting.emission() {
                    **waiting = vector;
                }
                self.stats.coalesced += 1;
                if slot.parked_since.take().is_some() {
                    self.parked -= 1;
                    self.line.push_front((waiting.customer_id.clone(), now_ms));
                }
                continue;
            }
            if gate.is_some_and(|gate| vector.emission() < gate.emission) {
                self.stats.stale += 1;
                if slot.idle() {
                    self.slots.remove(&vector.customer_id);
                }
                continue;
            }
            self.line.push_front((vector.customer_id.clone(), now_ms));
            slot.waiting = Some(Box::new(vector));
        }
    }

    /// Vectors waiting, in line or parked (at most one per customer).
    pub fn pending(&self) -> usize {
        self.line.len() + self.parked
    }

    /// Vectors taken and not yet reported scored or requeued.
    pub fn in_flight(&self) -> u64 {
        self.in_flight
    }

    /// Whether `max_pending` vectors wait: the driver should stop offering
    /// until batches have been taken.
    pub fn is_full(&self) -> bool {
        self.pending() >= self.policy.max_pending
    }

    /// What the queue did so far.
    pub fn stats(&self) -> QueueStats {
        self.stats
    }

    fn take(&mut self, n: usize) -> Vec<FeatureVector> {
        let n = n.min(self.line.len());
        let mut batch = Vec::with_capacity(n);
        for (id, _) in self.line.drain(..n) {
            // Every customer in line has a slot with a waiting vector, none in flight.
            if let Some(slot) = self.slots.get_mut(&id) {
                if let Some(vector) = slot.waiting.take() {
                    slot.in_flight = true;
                    batch.push(*vector);
                }
            }
        }
        self.in_flight += batch.len() as u64;
        self.stats.taken += batch.len() as u64;
        batch
    }
}

/// The gate's fingerprint of a vector: xxh3-128 of its 46 features' bits
/// (so -0.0 and 0.0 differ, and NaN equals itself bit for bit). Two
/// different vectors share one with probability 2^-128; then the older
/// scores would stand for the newer vector.
fn fingerprint(features: &Features) -> [u64; 2] {
    let mut bytes = [0u8; 8 * pulse_schemas::FEATURE_COUNT];
    for (chunk, x) in bytes.chunks_exact_mut(8).zip(features) {
        chunk.copy_from_slice(&x.to_bits().to_le_bytes());
    }
    let hash = xxhash_rust::xxh3::xxh3_128(&bytes);
    [hash as u64, (hash >> 64) as u64]
}

#[cfg(test)]
mod tests {
    use pulse_schemas::{Source, Trigger, SCHEMA};

    use super::*;

    fn vector(id: &str, as_of: i64, x: f64) -> FeatureVector {
        FeatureVector {
            customer_id: CustomerId::new(id),
            as_of,
            trigger: Trigger::Event,
            source: Source::default(),
            schema: SCHEMA.into(),
            features: [x; 46],
            emission: None,
        }
    }

    fn queue(max_rows: usize, max_linger_ms: i64) -> ScoreQueue {
        ScoreQueue::new(BatchPolicy { max_rows, max_linger_ms, max_pending: 10 }).unwrap()
    }

    fn ids(batch: &[FeatureVector]) -> Vec<(&str, i64)> {
        batch.iter().map(|v| (v.customer_id.as_str(), v.as_of)).collect()
    }

    #[test]
    fn policy_errors_name_the_field() {
        let bad = |p: BatchPolicy| p.validate().unwrap_err().field;
        assert_eq!(bad(BatchPolicy { max_rows: 0, ..BatchPolicy::default() }), "max_rows");
        assert_eq!(bad(BatchPolicy { max_linger_ms: -1, ..BatchPolicy::default() }), "max_linger_ms");
        assert_eq!(bad(BatchPolicy { max_pending: 10, ..BatchPolicy::default() }), "max_pending");
        let err = ScoreQueue::new(BatchPolicy { max_rows: 0, ..BatchPolicy::default() }).unwrap_err();
        assert_eq!(err.to_string(), "invalid `max_rows`: must be at least 1");
        assert!(BatchPolicy::default().validate().is_ok());
    }

    #[test]
    fn policy_deserializes_with_defaults_and_rejects_unknown_fields() {
        let p: BatchPolicy = serde_json::from_str(r#"{"max_rows": 8}"#).unwrap();
        assert_eq!(p, BatchPolicy { max_rows: 8, ..BatchPolicy::default() });
        assert!(serde_json::from_str::<BatchPolicy>(r#"{"max_row": 8}"#).is_err());
    }

    #[test]
    fn batches_by_size_then_by_linger() {
        let mut q = queue(2, 100);
        q.offer(vector("a", 1, 0.0), 0);
        assert_eq!(q.take_ready(99), None);
        assert_eq!(q.next_deadline(), Some(100));
        q.offer(vector("b", 1, 0.0), 50);
        q.offer(vector("c", 1, 0.0), 60);
        assert_eq!(q.next_deadline(), Some(0), "a full batch is ready now");
        assert_eq!(ids(&q.take_ready(60).unwrap()), [("a", 1), ("b", 1)]);
        assert_eq!(q.next_deadline(), Some(160));
        assert_eq!(q.take_ready(159), None);
        assert_eq!(ids(&q.take_ready(160).unwrap()), [("c", 1)]);
        assert_eq!(q.take_ready(i64::MAX), None);
        assert_eq!(q.next_deadline(), None);
        assert_eq!(q.in_flight(), 3);
    }

    #[test]
    fn coalescing_keeps_the_place_and_the_newest_vector() {
        let mut q = queue(10, 100);
        assert_eq!(q.offer(vector("a", 1, 1.0), 0), Offer::Queued);
        assert_eq!(q.offer(vector("b", 1, 1.0), 1), Offer::Queued);
        assert_eq!(q.offer(vector("a", 3, 2.0), 2), Offer::Coalesced);
        assert_eq!(q.offer(vector("a", 2, 3.0), 3), Offer::Stale, "older than the waiting one");
        assert_eq!(q.offer(vector("a", 3, 4.0), 4), Offer::Coalesced, "equal as_of: later offer wins");
        assert_eq!(q.pending(), 2);
        assert_eq!(q.next_deadline(), Some(100), "a kept its time in line");
        let batch = q.take_all();
        assert_eq!(ids(&batch), [("a", 3), ("b", 1)]);
        assert_eq!(batch[0].features[0], 4.0);
        let s = q.stats();
        assert_eq!((s.offered, s.queued, s.coalesced, s.stale, s.taken), (5, 2, 2, 1, 2));
        assert!(s.balanced(q.pending()));
    }

    #[test]
    fn a_late_event_after_a_timer_is_newer_whatever_its_as_of() {
        use pulse_schemas::order::Position;
        let keyed = |as_of, x, key| FeatureVector { emission: Some(key), ..vector("a", as_of, x) };
        let timer = || keyed(2_000, 1.0, EmissionKey::timer(2_000));
        // A late event: as_of 1_000 < 2_000, in a record created after the timer fired.
        let late = || keyed(1_000, 2.0, EmissionKey::record(2_500, Position::Line(9)));
        let mut q = queue(10, 100);
        assert_eq!(q.offer(timer(), 0), Offer::Queued);
        assert_eq!(q.offer(late(), 1), Offer::Coalesced, "the waiting timer vector is replaced");
        assert_eq!(q.offer(timer(), 2), Offer::Stale, "a replayed timer vector is older");
        let batch = q.take_all();
        assert_eq!(ids(&batch), [("a", 1_000)]);
        q.mark_scored(&batch);
        assert_eq!(q.offer(timer(), 3), Offer::Stale, "older than what was scored");
        // Scored timer first, then the late event: scored, not stale.
        let mut q = queue(10, 0);
        q.offer(timer(), 0);
        let batch = q.take_all();
        q.mark_scored(&batch);
        assert_eq!(q.offer(late(), 1), Offer::Queued);
        assert_eq!(ids(&q.take_all()), [("a", 1_000)]);
    }

    #[test]
    fn change_gate_compares_with_the_last_scored_features() {
        let mut q = queue(10, 0);
        q.offer(vector("a", 1, 1.0), 0);
        let batch = q.take_ready(0).unwrap();
        // In flight: the gate is off, or an identical offer could let an older state stand.
        assert_eq!(q.offer(vector("a", 2, 1.0), 0), Offer::Queued);
        q.mark_scored(&batch);
        assert_eq!(q.offer(vector("a", 3, 1.0), 0), Offer::Coalesced);
        let batch = q.take_all();
        q.mark_scored(&batch);
        assert_eq!(q.offer(vector("a", 4, 1.0), 0), Offer::Unchanged);
        assert_eq!(q.offer(vector("a", 3, 2.0), 0), Offer::Stale, "the scored features hold as of 4");
        let mut negative_zero = vector("a", 5, 1.0);
        negative_zero.features[7] = -0.0;
        let mut zero = vector("a", 5, 1.0);
        zero.features[7] = 0.0;
        assert_eq!(q.offer(negative_zero, 0), Offer::Queued);
        let batch = q.take_all();
        q.mark_scored(&batch);
        assert_eq!(q.offer(zero, 0), Offer::Queued, "bit-identical, not ==");
        assert_eq!(q.offer(vector("b", 1, 1.0), 0), Offer::Queued, "never scored");
        assert!(q.stats().balanced(q.pending()));
    }

    #[test]
    fn requeue_puts_a_failed_batch_back_in_front() {
        let mut q = queue(2, 100);
        q.offer(vector("a", 1, 1.0), 0);
        q.offer(vector("b", 1, 1.0), 0);
        q.offer(vector("c", 1, 1.0), 0);
        let failed = q.take_ready(0).unwrap();
        q.offer(vector("d", 1, 1.0), 10);
        q.requeue(failed, 20);
        assert_eq!(q.in_flight(), 0);
        assert_eq!(q.next_deadline(), Some(20), "two or more wait: ready");
        assert_eq!(ids(&q.take_all()), [("a", 1), ("b", 1), ("c", 1), ("d", 1)]);
        assert_eq!(q.stats().requeued, 2);
        assert!(q.stats().balanced(q.pending()));
    }

    #[test]
    fn requeue_keeps_a_newer_waiting_vector() {
        let mut q = queue(10, 0);
        q.offer(vector("a", 1, 1.0), 0);
        q.offer(vector("b", 1, 1.0), 0);
        let failed = q.take_all();
        q.offer(vector("a", 2, 2.0), 5);
        q.offer(vector("c", 1, 1.0), 6);
        q.requeue(failed, 10);
        // The failed batch goes back to the front; a keeps its newer vector.
        assert_eq!(ids(&q.take_all()), [("a", 2), ("b", 1), ("c", 1)]);
        assert_eq!(q.stats().coalesced, 1);
        assert!(q.stats().balanced(q.pending()));
    }

    #[test]
    fn requeue_replaces_an_older_waiting_vector() {
        let mut q = queue(10, 0);
        q.offer(vector("a", 5, 1.0), 0);
        let failed = q.take_all();
        q.offer(vector("a", 4, 2.0), 1); // out of order, but nothing newer waits
        q.requeue(failed, 2);
        let batch = q.take_all();
        assert_eq!(ids(&batch), [("a", 5)]);
        assert_eq!(batch[0].features[0], 1.0);
        assert!(q.stats().balanced(q.pending()));
    }

    #[test]
    fn one_vector_per_customer_in_flight() {
        let mut q = queue(10, 0);
        q.offer(vector("b", 1, 1.0), 0);
        let first = q.take_all();
        assert_eq!(q.offer(vector("b", 2, 2.0), 0), Offer::Queued);
        assert_eq!(q.offer(vector("c", 1, 1.0), 0), Offer::Queued);
        assert_eq!(q.pending(), 2);
        assert_eq!(ids(&q.take_all()), [("c", 1)], "b@2 is parked while b@1 is in flight");
        assert_eq!(q.next_deadline(), None);
        q.mark_scored(&first);
        assert_eq!(q.next_deadline(), Some(0));
        let second = q.take_all();
        assert_eq!(ids(&second), [("b", 2)]);
        q.mark_scored(&second);
        assert_eq!(q.offer(vector("b", 3, 2.0), 4), Offer::Unchanged);
        // A report of a vector older than the scored one (already reported) is dropped.
        q.requeue(first, 5);
        assert_eq!(q.pending(), 0);
        assert_eq!(q.stats().stale, 1);
        assert_eq!(q.in_flight(), 1, "c");
        assert!(q.stats().balanced(q.pending()));
    }

    #[test]
    fn gates_kept_by_the_caller_work_as_the_queues_own() {
        // One pseudo-random script of offers (three customers, a few feature
        // values, as_of moving back and forth), batches taken, and batches
        // reported scored or failed, through the keyed methods on one queue
        // and the `_in` methods on another: the same outcome at every step.
        let (mut own, mut kept) = (queue(2, 5), queue(2, 5));
        let mut gates: HashMap<CustomerId, Option<Gate>> = HashMap::new();
        let mut in_flight: Vec<Vec<FeatureVector>> = Vec::new();
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |n: u64| {
            rng = rng.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (rng >> 33) % n
        };
        for now in 0..2_000i64 {
            match next(4) {
                0 | 1 => {
                    let id = ["a", "b", "c"][next(3) as usize];
                    let v = vector(id, now - next(3) as i64, next(2) as f64);
                    let gate = gates.get_mut(&v.customer_id).and_then(Option::as_mut);
                    assert_eq!(own.offer(v.clone(), now), kept.offer_in(v, now, gate), "at {now}");
                }
                2 => {
                    let (a, b) = (own.take_ready(now), kept.take_ready(now));
                    assert_eq!(a.as_deref().map(ids), b.as_deref().map(ids), "at {now}");
                    in_flight.extend(b);
                }
                _ if !in_flight.is_empty() => {
                    let batch = in_flight.remove(next(in_flight.len() as u64) as usize);
                    if next(3) == 0 {
                        own.requeue(batch.clone(), now);
                        let gated = batch
                            .into_iter()
                            .map(|v| {
                                let gate = gates.get(&v.customer_id).and_then(Option::as_ref);
                                (v, gate)
                            })
                            .collect();
                        kept.requeue_in(gated, now);
                    } else {
                        own.mark_scored(&batch);
                        for v in &batch {
                            kept.mark_scored_in(v, gates.entry(v.customer_id.clone()).or_default());
                        }
                    }
                }
                _ => {}
            }
            assert_eq!(own.stats(), kept.stats(), "at {now}");
            assert_eq!((own.pending(), own.in_flight()), (kept.pending(), kept.in_flight()));
            // Only customers with a vector waiting or in flight have a slot.
            assert!(kept.slots.len() as u64 <= kept.pending() as u64 + kept.in_flight());
        }
        let s = own.stats();
        assert!(s.unchanged > 0 && s.stale > 0 && s.coalesced > 0 && s.requeued > 0, "{s:?}");
        for (id, gate) in &gates {
            assert_eq!(own.gates.get(id), gate.as_ref(), "{id}");
        }
    }

    #[test]
    fn full_is_advisory() {
        let mut q = ScoreQueue::new(BatchPolicy { max_rows: 1, max_linger_ms: 0, max_pending: 2 }).unwrap();
        q.offer(vector("a", 1, 1.0), 0);
        assert!(!q.is_full());
        q.offer(vector("b", 1, 1.0), 0);
        assert!(q.is_full());
        assert_eq!(q.offer(vector("c", 1, 1.0), 0), Offer::Queued, "never dropped");
        assert_eq!(q.take_ready(0).map(|b| b.len()), Some(1));
        assert!(q.is_full());
        q.take_ready(0);
        assert!(!q.is_full());
    }
}
