//! The day loop: simulate every customer for a day, put the day's records in
//! stream order, write those whose time has come, keep the rest for later.

use std::io::Write;

use anyhow::Context;
use pulse_schemas::{Segment, DAY_MS};
use serde::Serialize;

use super::config::SynthConfig;
use super::customer::{Customer, World};
use super::json::JsonWriter;
use super::profile::{segment_index, SEGMENTS};
use super::record::{Class, Item, Pending};

/// Bytes of JSON gathered before they are handed to the output.
const FLUSH_BYTES: usize = 1 << 20;

/// What a run wrote. Segment arrays are in [`SEGMENTS`] order (thriving,
/// healthy, at_risk, churned); `by_type` in [`super::EVENT_TYPES`] order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SynthSummary {
    /// Lines written.
    pub records: u64,
    /// Behaviour events written (first deliveries of valid, in-time events).
    pub events: u64,
    /// Customers simulated.
    pub customers: usize,
    /// Days simulated.
    pub days: u32,
    /// Customers per segment on the first day (those signed up by then).
    pub by_segment_at_start: [usize; 4],
    /// Customers per segment on the last day (those signed up by then).
    pub by_segment_at_end: [usize; 4],
    /// Customers who were not there on the first day and signed up later
    /// (Lifecycle; always 0 in Classic).
    pub arrivals: usize,
    /// Customer-days spent in each segment (days before a signup count nowhere).
    pub customer_days_by_segment: [u64; 4],
    /// Segment changes over the run.
    pub transitions: u64,
    /// Behaviour events per type.
    pub by_type: [u64; 8],
    /// Records that are there because of the configured hostility.
    pub hostility: HostilityCounts,
    /// `ApproximateCreationDateTime` of the first record, in ms (0 if none).
    pub first_created_ms: i64,
    /// `ApproximateCreationDateTime` of the last record, in ms (0 if none).
    pub last_created_ms: i64,
}

/// Records written per kind of imperfection (see [`super::Hostility`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct HostilityCounts {
    /// Behaviour events that arrived minutes to hours after their `ts` (also in `events`).
    pub delayed: u64,
    /// Second deliveries of an event.
    pub duplicates: u64,
    /// `MODIFY` records of an event.
    pub corrections: u64,
    /// User `REMOVE` records of an event.
    pub retractions: u64,
    /// TTL `REMOVE` records.
    pub ttl_removes: u64,
    /// Records more than 30 days behind the customer's clock (`synth_fault = late`).
    pub late: u64,
    /// Events more than an hour ahead of their record (`synth_fault = future_event`).
    pub future: u64,
    /// Records with an invalid event image (`synth_fault` = the reason code).
    pub invalid: u64,
    /// Records of non-event items (predictions, profiles).
    pub non_events: u64,
}

impl HostilityCounts {
    /// Every kind of imperfection with its count, by field name.
    pub fn by_kind(&self) -> [(&'static str, u64); 9] {
        [
            ("delayed", self.delayed),
            ("duplicates", self.duplicates),
            ("corrections", self.corrections),
            ("retractions", self.retractions),
            ("ttl_removes", self.ttl_removes),
            ("late", self.late),
            ("future", self.future),
            ("invalid", self.invalid),
            ("non_events", self.non_events),
        ]
    }
}

/// Writes a capture: JSON Lines, one DynamoDB Streams record per line, in
/// stream order (non-decreasing `ApproximateCreationDateTime`, increasing
/// `SequenceNumber`).
///
/// `progress` is called after each simulated day with the records written so
/// far. The output covers creation times `[start_ms, start_ms + days)`:
/// records that would arrive later (a correction days after the last event)
/// are not written.
pub fn generate(
    config: &SynthConfig,
    out: &mut impl Write,
    progress: &mut dyn FnMut(u64),
) -> anyhow::Result<SynthSummary> {
    generate_with_segments(config, out, progress, &mut |_, _| {})
}

/// [`generate`], also reporting the ground truth: after simulating each day,
/// `truth(day, segments)` receives every customer's segment that day (index =
/// customer number), e.g. to label churn for a model's evaluation.
///
/// A Lifecycle customer that has not signed up yet is reported as `Churned`
/// (no sessions, §7's band for churned); [`generate_with_segments`] tells
/// the two apart.
pub fn generate_with_truth(
    config: &SynthConfig,
    out: &mut impl Write,
    progress: &mut dyn FnMut(u64),
    truth: &mut dyn FnMut(u32, &[Segment]),
) -> anyhow::Result<SynthSummary> {
    let mut known = Vec::new();
    generate_with_segments(config, out, progress, &mut |day, segments| {
        known.clear();
        known.extend(segments.iter().map(|s| s.unwrap_or(Segment::Churned)));
        truth(day, &known);
    })
}

/// [`generate`], reporting after each day every customer's segment that day
/// (index = customer number), `None` for a customer that has not signed up
/// yet (Lifecycle only; in Classic every customer is there from the first day).
pub fn generate_with_segments(
    config: &SynthConfig,
    out: &mut impl Write,
    progress: &mut dyn FnMut(u64),
    truth: &mut dyn FnMut(u32, &[Option<Segment>]),
) -> anyhow::Result<SynthSummary> {
    config.validate()?;
    let world = World::new(config);
    // Every customer's simulation is held for the whole run: a machine
    // without the memory gets an error, not an abort with a backtrace.
    let mut customers: Vec<Customer> = Vec::new();
    customers.try_reserve_exact(config.customers).map_err(|_| {
        anyhow::anyhow!(
            "synth: cannot hold {} customers' simulations ({:.1} GB) in memory: generate fewer",
            config.customers,
            (config.customers * std::mem::size_of::<Customer>()) as f64 / 1e9
        )
    })?;
    customers.extend((0..config.customers as u32).map(|i| Customer::new(&world, i)));
    let mut summary = SynthSummary { customers: config.customers, days: config.days, ..SynthSummary::default() };

    let mut writer = JsonWriter::new(config);
    let mut pending: Vec<Pending> = Vec::new();
    let mut later: Vec<Pending> = Vec::new();
    let mut order: Vec<((i64, u32, u32), u32)> = Vec::new();
    let mut scratch = Vec::new();
    let mut segments = vec![None; customers.len()];
    for day in 0..config.days {
        for (c, segment) in customers.iter_mut().zip(segments.iter_mut()) {
            c.simulate_day(&world, day, &mut scratch, &mut pending);
            *segment = c.segment().map(|s| {
                summary.customer_days_by_segment[s] += 1;
                SEGMENTS[s]
            });
        }
        if day == 0 {
            // The segments every customer starts the run with (a Classic
            // customer changes segment from the second day on).
            for s in &segments {
                match s {
                    Some(s) => summary.by_segment_at_start[segment_index(*s)] += 1,
                    None => summary.arrivals += 1,
                }
            }
        }
        truth(day, &segments);

        // Every record made from now on is created at or after the next day's
        // start, so everything before it is final.
        // Sorting small keys rather than the records themselves is what
        // keeps this step cheap.
        let horizon = config.start_ms + i64::from(day + 1) * DAY_MS;
        order.clear();
        order.extend(pending.iter().enumerate().map(|(i, p)| (p.key(), i as u32)));
        order.sort_unstable_by_key(|(key, _)| *key);
        let ready = order.partition_point(|(key, _)| key.0 < horizon);
        for (_, i) in &order[..ready] {
            let p = &pending[*i as usize];
            writer.write(p);
            count(&mut summary, p);
            if writer.buffered() >= FLUSH_BYTES {
                writer.flush_to(out).context("writing the capture")?;
            }
        }
        later.clear();
        later.extend(order[ready..].iter().map(|(_, i)| pending[*i as usize]));
        std::mem::swap(&mut pending, &mut later);
        progress(summary.records);
    }
    writer.flush_to(out).context("writing the capture")?;
    out.flush().context("writing the capture")?;

    for c in &customers {
        if let Some(s) = c.segment() {
            summary.by_segment_at_end[s] += 1;
        }
        summary.transitions += u64::from(c.transitions());
    }
    Ok(summary)
}

fn count(s: &mut SynthSummary, p: &Pending) {
    if s.records == 0 {
        s.first_created_ms = p.created_ms;
    }
    s.records += 1;
    s.last_created_ms = p.created_ms;
    let h = &mut s.hostility;
    match p.class {
        Class::Event | Class::DelayedEvent => {
            s.events += 1;
            if let Some(Item::Event(e)) = p.new {
                s.by_type[e.body.type_index()] += 1;
            }
            if p.class == Class::DelayedEvent {
                h.delayed += 1;
            }
        }
        Class::Duplicate => h.duplicates += 1,
        Class::Correction => h.corrections += 1,
        Class::Retraction => h.retractions += 1,
        Class::TtlRemove => h.ttl_removes += 1,
        Class::Late => h.late += 1,
        Class::Future => h.future += 1,
        Class::Invalid => h.invalid += 1,
        Class::NonEvent => h.non_events += 1,
    }
}
