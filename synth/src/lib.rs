//! The synthetic marketplace: a deterministic generator of DynamoDB Streams
//! captures that look like the event table of a tutoring marketplace (§1, §2
//! and §7 of `FEATURES.md`).
//!
//! Two worlds ([`WorldKind`]), simulated differently so that a model trained
//! on one can be tested on the other:
//!
//! * **Classic** (the default). Customers start in a segment drawn from a
//!   [`SegmentMix`] and behave within that segment's §7 ranges (sessions per
//!   week, ratings, support calls, payment success, tutor consistency); each
//!   day they may move to another segment ([`DAILY_TRANSITIONS`]) and drift
//!   toward its behaviour, so the future is predictable from behaviour rather
//!   than a fixed label.
//! * **Lifecycle**. No segment drives anything: customers sign up over the
//!   run and go through onboarding, take sessions in their own weekly slots
//!   under a school calendar (term-start surge, spring break, weekends), rate
//!   integer stars that follow their match with their tutor, switch tutors
//!   after trouble, and leave by a daily hazard that bad experiences (tutor
//!   cancellations, no-shows, low ratings, failed payments, negative calls)
//!   raise a few days later and for weeks; some leave at once, some fade,
//!   some come back. The segment is read from each customer's latent state
//!   (expected sessions a week in §7's bands, risk of leaving within 30
//!   days); the mix is the mix of intents customers enter with. The module
//!   `customer::lifecycle` documents every rule.
//!
//! Both report each customer's segment on each day
//! ([`generate_with_truth`], [`generate_with_segments`]), the ground truth
//! for an evaluation. The stream adds what a real one has ([`Hostility`]),
//! the same way in both worlds: ingest delays, duplicates and, when asked,
//! corrections, retractions, TTL expiries, late, future and invalid items
//! and the pipeline's own prediction writes.
//!
//! ```
//! use pulse_synth::{generate, SynthConfig};
//!
//! let config = SynthConfig { customers: 20, days: 3, seed: 7, ..SynthConfig::default() };
//! let mut capture = Vec::new();
//! let summary = generate(&config, &mut capture, &mut |_| {}).unwrap();
//! assert_eq!(summary.records as usize, capture.split(|b| *b == b'\n').filter(|l| !l.is_empty()).count());
//! ```
//!
//! Same configuration, same bytes: every random choice comes from PCG streams
//! seeded by `(seed, customer, stream)`. Memory is bounded by a day of
//! records (plus the few that arrive days later), not by the capture's length.
//!
//! Layout: [`config`] (what to generate), `profile` (Classic's segment
//! behaviour and transitions), `customer` (one customer's day, and the
//! stream's delivery of it), `customer::lifecycle` (the Lifecycle world),
//! `record` (compact pending records), `json` (the writer),
//! [`generate()`](generate::generate) (the day loop).

#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

pub mod config;
mod customer;
pub mod generate;
mod json;
#[cfg(test)]
mod lifecycle_tests;
pub mod loadtest;
mod profile;
mod record;
mod rng;
#[cfg(test)]
mod tests;

pub use config::{
    Hostility, RecordProfile, SegmentMix, Shift, SynthConfig, WorldKind, DEFAULT_START_MS, EARLIEST_START_MS,
    LATEST_END_MS,
};
pub use generate::{generate, generate_with_segments, generate_with_truth, HostilityCounts, SynthSummary};
pub use profile::{segment_index, DAILY_TRANSITIONS, SEGMENTS};
pub use record::EVENT_TYPES;

/// The marketplace as a replay input ([`pulse_runtime::replay::Input::Generated`]):
/// `config` checked first, records generated on the replay's reader thread.
pub fn replay_input(config: SynthConfig) -> anyhow::Result<pulse_runtime::replay::Input> {
    config.validate()?;
    // About 2.3 records per customer-day at the default mix: a progress estimate only.
    let estimate = (config.customers as u64 * u64::from(config.days) * 23) / 10;
    let run = move |out: &mut dyn std::io::Write, made: &mut dyn FnMut(u64)| -> anyhow::Result<()> {
        generate(&config, &mut &mut *out, made).map(drop)
    };
    Ok(pulse_runtime::replay::Input::Generated(pulse_runtime::replay::Generator {
        estimate,
        run: std::sync::Arc::new(run),
    }))
}
