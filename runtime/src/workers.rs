//! Several engines side by side: customers partitioned by a hash of their
//! id, each partition's engine applied on a thread of its own, the vectors
//! merged back into exactly the order one engine emits them.
//!
//! ```text
//!                  ┌► worker 0: its customers' records, every advance ─┐
//! a batch's records┤   ...                                             ├► merge ─► vectors in one
//!  (decoded)       └► worker N-1                                       ┘  engine's order
//! ```
//!
//! Why the output is the same for every N, byte for byte:
//!
//! * A customer lives in one worker ([`worker_of`]: xxh3 of its id, modulo
//!   N, the same on every machine and run) and its records reach that
//!   worker in input order.
//! * Stream time is global. Every worker moves its own stream time at every
//!   record of the batch that carries a creation time, its own or not, with
//!   that record's provenance, so each timer fires at the same record, with
//!   the same `source`, as in one engine.
//! * One engine emits, per record, first the timers the record's creation
//!   time made due, in (due, customer) order (the timer queue's order:
//!   `pulse_operators`' `TimerQueue`), then the record's own event vector.
//!   Each worker's timers of one advance are that sequence restricted to its
//!   customers, so merging the workers by (record, timers before the event,
//!   `as_of`, customer) gives back the one engine's sequence.
//! * Each vector's stream time (for the scoring stage) is the stream time
//!   after its record, which does not depend on the partition.
//!
//! Dead letters are not the workers' business: the driver's own processor
//! keeps them in input order and counts them, and keeps stream time.

use std::num::NonZeroUsize;
use std::sync::Arc;

use pulse_operators::{CountersSnapshot, Engine, EngineConfig, StateSize};
use pulse_schemas::record::StreamRecord;
use pulse_schemas::{CustomerId, FeatureVector, StreamChange};

use crate::driver::Readied;
use crate::process::{Processor, Produced};

/// N processors, each over its own engine holding the customers that hash
/// to it.
#[derive(Debug)]
pub struct Workers {
    processors: Vec<Processor>,
    /// The owner of each record of the batch being applied (reused).
    owners: Vec<u32>,
}

/// Where a vector came from within a batch: the index of the record whose
/// step produced it, and whether it is a timer fired by the record's
/// advance of stream time (`0`) or the record's own vector (`1`).
type Tag = (u32, u8);

/// A record of a batch that no worker applies (a dead letter).
const NOBODY: u32 = u32::MAX;

/// The worker (of `n`) that holds `customer_id`: a fixed hash, so the
/// partition is the same on every run and machine.
pub fn worker_of(customer_id: &str, n: usize) -> usize {
    (xxhash_rust::xxh3::xxh3_64(customer_id.as_bytes()) % n as u64) as usize
}

/// The customer a record is applied to, as `Engine::apply` picks it (the
/// new image's, else the old one's); none for a record without an event.
fn customer_of<'r>(record: &'r StreamRecord<'_>) -> Option<&'r str> {
    match &record.change {
        StreamChange::Insert(new) => Some(&*new.customer_id),
        StreamChange::Modify { old, new } => new.as_ref().or(old.as_ref()).map(|e| &*e.customer_id),
        StreamChange::Remove(old) => Some(&*old.customer_id),
        StreamChange::TtlExpiry | StreamChange::NotAnEvent => None,
    }
}

impl Workers {
    /// `n` empty engines with one configuration.
    pub fn new(n: NonZeroUsize, config: EngineConfig) -> Workers {
        Workers {
            processors: (0..n.get()).map(|_| Processor::new(Arc::new(Engine::new(config)))).collect(),
            owners: Vec::new(),
        }
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.processors.len()
    }

    /// Never: there is at least one worker.
    pub fn is_empty(&self) -> bool {
        self.processors.is_empty()
    }

    /// The engines, in worker order.
    pub fn engines(&self) -> impl Iterator<Item = &Arc<Engine>> {
        self.processors.iter().map(Processor::engine)
    }

    /// What the engines did, summed.
    pub fn counters(&self) -> CountersSnapshot {
        self.engines().fold(CountersSnapshot::default(), |sum, e| sum.plus(&e.counters()))
    }

    /// The state the engines hold, summed (the peak is the sum of each
    /// engine's sampled peak: an upper bound of the peak of the sum).
    pub fn state_size(&self) -> StateSize {
        self.engines().fold(StateSize::default(), |sum, e| sum.plus(&e.state_size()))
    }

    /// Applies a batch's records: each worker its customers' records, and
    /// every record's advance of stream time. `times_after[i]` is the stream
    /// time once record `i` was applied. Appends the vectors in one engine's
    /// order to `vectors`, and each one's stream time to `times`.
    pub(crate) fn apply(
        &mut self,
        records: &[Readied<'_>],
        times_after: &[i64],
        vectors: &mut Vec<FeatureVector>,
        times: &mut Vec<i64>,
    ) {
        let n = self.processors.len();
        self.owners.clear();
        self.owners.extend(records.iter().map(|(decoded, _, _)| match decoded {
            Ok(record) => customer_of(record).map_or(0, |c| worker_of(c, n) as u32),
            Err(_) => NOBODY,
        }));
        let owners = &self.owners;
        let outputs: Vec<(Vec<FeatureVector>, Vec<Tag>)> = std::thread::scope(|scope| {
            let mut processors = self.processors.iter_mut().enumerate();
            let (_, first) = processors.next().expect("at least one worker");
            let others: Vec<_> = processors
                .map(|(me, processor)| scope.spawn(move || run_worker(me as u32, owners, records, processor)))
                .collect();
            let mut outputs = vec![run_worker(0, owners, records, first)];
            for other in others {
                match other.join() {
                    Ok(output) => outputs.push(output),
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
            outputs
        });
        merge(outputs, times_after, vectors, times);
    }
}

impl Workers {
    /// Moves every worker's stream time to `now` (a batch's bare advance, or
    /// a step of a record's jump, `source` its provenance), appending the
    /// timers it fires in one engine's order: (`as_of`, customer).
    pub(crate) fn advance_to(&mut self, now: i64, source: &pulse_schemas::Source, vectors: &mut Vec<FeatureVector>) {
        let mut out = Produced::default();
        for processor in &mut self.processors {
            processor.advance_to(now, source, &mut out);
        }
        out.vectors.sort_by(|a, b| (a.as_of, &a.customer_id).cmp(&(b.as_of, &b.customer_id)));
        vectors.append(&mut out.vectors);
    }
}

/// One worker's pass over a batch: every record's advance of stream time,
/// and its own records applied; each vector tagged with its step.
fn run_worker(
    me: u32,
    owners: &[u32],
    records: &[Readied<'_>],
    processor: &mut Processor,
) -> (Vec<FeatureVector>, Vec<Tag>) {
    let mut out = Produced::default();
    let mut tags = Vec::new();
    for (i, ((decoded, source, raw), &owner)) in records.iter().zip(owners).enumerate() {
        let Ok(record) = decoded else { continue };
        if let Some(created) = record.created_ms {
            processor.advance_to(created.floor() as i64, source, &mut out);
            tags.resize(out.vectors.len(), (i as u32, 0));
        }
        if owner == me {
            processor.process_ref(Ok(*record), source, raw, &mut out);
            tags.resize(out.vectors.len(), (i as u32, 1));
        }
    }
    (out.vectors, tags)
}

/// What is left of a worker's output: its vectors and their tags.
type Head = (std::vec::IntoIter<FeatureVector>, std::vec::IntoIter<Tag>);

/// The merge key of a worker's next vector.
fn key((vectors, tags): &Head) -> Option<(Tag, i64, &CustomerId)> {
    let (v, tag) = vectors.as_slice().first().zip(tags.as_slice().first())?;
    Some((*tag, v.as_of, &v.customer_id))
}

/// Merges the workers' tagged vectors into one engine's order: by record,
/// timers before the record's own vector, timers by (`as_of`, customer).
fn merge(
    outputs: Vec<(Vec<FeatureVector>, Vec<Tag>)>,
    times_after: &[i64],
    vectors: &mut Vec<FeatureVector>,
    times: &mut Vec<i64>,
) {
    let total: usize = outputs.iter().map(|(v, _)| v.len()).sum();
    vectors.reserve(total);
    times.reserve(total);
    let mut heads: Vec<Head> = outputs.into_iter().map(|(v, t)| (v.into_iter(), t.into_iter())).collect();
    loop {
        // A handful of workers: a scan beats a heap. Most records' turn has
        // one vector, from one worker.
        let Some((best, _)) =
            heads.iter().enumerate().filter_map(|(k, head)| key(head).map(|key| (k, key))).min_by(|a, b| a.1.cmp(&b.1))
        else {
            return;
        };
        let (v, t) = &mut heads[best];
        let (v, (index, _)) = (v.next().expect("a next vector"), t.next().expect("its tag"));
        times.push(times_after[index as usize]);
        vectors.push(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_partition_is_fixed_and_covers_every_worker() {
        // A fixed hash: the same worker on every run (a seeded hasher would not be).
        assert_eq!(worker_of("c-000001", 4), worker_of("c-000001", 4));
        let mut seen = [0u32; 3];
        for i in 0..3000 {
            seen[worker_of(&format!("c-{i:06}"), 3)] += 1;
        }
        assert!(seen.iter().all(|&n| (800..1200).contains(&n)), "{seen:?}");
        assert_eq!(worker_of("anyone", 1), 0);
    }
}
