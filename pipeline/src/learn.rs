//! Labelled training rows, and the splits a model is fitted and judged on.
//!
//! Rows come from a capture ([`from_capture`]: the two passes of
//! [`crate::dataset`]) or from pulse's own synthetic marketplace
//! ([`from_synth`]: generated into a temporary capture, then the same
//! path), so every training row is a vector pulse itself would serve: no
//! feature is computed by a second code path.
//!
//! Two splits ([`Frames`]):
//! * **in time** ([`in_time`]): customers 70/15/15 into train / validation /
//!   test by a seeded hash of their id; every labelled row of a customer is in
//!   its group;
//! * **out of time** ([`out_of_time`]): fit on the train customers' rows whose
//!   label horizon ends before the cut (validation likewise), test on the
//!   held-out customers' rows at or after the cut: unseen customers in an
//!   unseen period, the way a churn model is used.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result};
use pulse_model::Dataset;
use pulse_runtime::io::Output;
use pulse_schemas::Features;
use pulse_synth::{generate, SynthConfig};

use crate::dataset::{rows, LabelBook, Period, Row, RowPolicy, RowStats, Split};

/// Labelled rows of a capture, in emission order.
#[derive(Debug, Default)]
pub struct Labelled {
    /// Rows with labels.
    pub rows: Vec<Row>,
    /// What the second pass saw.
    pub stats: RowStats,
    /// Distinct customers with events.
    pub customers: usize,
    /// Each customer's last vector's features: what pulse scores at the end.
    pub last: HashMap<String, Features>,
}

/// Which pass a progress report is about.
pub type Phase = &'static str;

/// Reads a capture twice (labels, then the engine) and keeps the labelled rows.
/// `progress(phase, records)` reports each pass.
pub fn from_capture(path: &Path, policy: &RowPolicy, progress: &mut dyn FnMut(Phase, u64)) -> Result<Labelled> {
    let book = LabelBook::scan(path, &mut |n| progress("labels", n))?;
    if let Some(warning) = book.gap_warning() {
        eprintln!("{warning}");
    }
    let futures = book.into_futures();
    let mut kept = Vec::new();
    let mut last = HashMap::new();
    let mut policy = policy.clone();
    policy.all_rows = false;
    let stats = rows(
        path,
        &futures,
        &policy,
        &mut |row| {
            kept.push(row);
            Ok(())
        },
        Some(&mut last),
        &mut |n| progress("features", n),
    )?;
    anyhow::ensure!(
        !kept.is_empty(),
        "{}: no vector has its 30-day label horizon inside the capture after the {}-day burn-in \
         (the capture must span more than {} days)",
        path.display(),
        policy.burn_in_days,
        policy.burn_in_days + 30
    );
    Ok(Labelled { rows: kept, stats, customers: futures.customers(), last })
}

/// Generates a synthetic marketplace into a temporary capture and labels it
/// like any capture.
pub fn from_synth(synth: &SynthConfig, policy: &RowPolicy, progress: &mut dyn FnMut(Phase, u64)) -> Result<Labelled> {
    let dir = tempfile::tempdir().context("cannot make a temporary directory for the synthetic capture")?;
    let path = dir.path().join("synthetic.jsonl.zst");
    let mut out = Output::create(&path)?;
    generate(synth, &mut out, &mut |n| progress("generate", n))?;
    out.finish()?;
    from_capture(&path, policy, progress)
}

/// Rows of one part of a split, with each row's customer (for resampling
/// customers in the bootstrap).
#[derive(Debug, Default, Clone)]
pub struct Frame {
    /// Features and labels.
    pub data: Dataset,
    /// Per row: its customer's number within this frame.
    pub groups: Vec<u32>,
    /// Per row: the row's `as_of`.
    pub as_of: Vec<i64>,
    /// Distinct customers.
    pub customers: usize,
}

impl Frame {
    fn push(&mut self, row: &Row, ids: &mut HashMap<String, u32>) {
        let next = ids.len() as u32;
        let group = *ids.entry(row.customer_id.clone()).or_insert(next);
        self.data.push(row.features, row.targets.unwrap_or_default());
        self.groups.push(group);
        self.as_of.push(row.as_of);
        self.customers = ids.len();
    }
}

/// Train / validation / test.
#[derive(Debug, Default, Clone)]
pub struct Frames {
    /// For fitting.
    pub train: Frame,
    /// For early stopping and calibration.
    pub valid: Frame,
    /// For the report.
    pub test: Frame,
}

fn frames(rows: &[Row], part: impl Fn(&Row) -> Option<Split>) -> Frames {
    let mut f = Frames::default();
    let mut ids: [HashMap<String, u32>; 3] = Default::default();
    for row in rows.iter().filter(|r| r.targets.is_some()) {
        match part(row) {
            Some(Split::Train) => f.train.push(row, &mut ids[0]),
            Some(Split::Valid) => f.valid.push(row, &mut ids[1]),
            Some(Split::Test) => f.test.push(row, &mut ids[2]),
            None => {}
        }
    }
    f
}

/// Split by customer only.
pub fn in_time(rows: &[Row]) -> Frames {
    frames(rows, |r| Some(r.split))
}

/// Split by customer and by time: fit before the cut, test held-out
/// customers after it.
pub fn out_of_time(rows: &[Row]) -> Frames {
    frames(rows, |r| match (r.split, r.period) {
        (Split::Train | Split::Valid, Period::Before) => Some(r.split),
        (Split::Test, Period::After) => Some(Split::Test),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::H30;
    use pulse_model::Targets;
    use pulse_schemas::{Trigger, DAY_MS};

    fn row(customer: &str, day: i64) -> Row {
        Row {
            customer_id: customer.into(),
            as_of: day * DAY_MS,
            trigger: Trigger::Timer,
            features: [0.0; pulse_schemas::FEATURE_COUNT],
            targets: Some(Targets::default()),
            split: Split::of(customer, 7),
            period: Period::of(day * DAY_MS, 60 * DAY_MS),
        }
    }

    #[test]
    fn splits_keep_customers_apart_and_out_of_time_keeps_labels_before_the_cut() {
        let rows: Vec<Row> = (0..300).flat_map(|c| (20..90).map(move |d| row(&format!("stu_{c:04}"), d))).collect();
        let f = in_time(&rows);
        assert_eq!(f.train.data.len() + f.valid.data.len() + f.test.data.len(), rows.len());
        let (a, b, c) = (f.train.customers, f.valid.customers, f.test.customers);
        assert_eq!(a + b + c, 300);
        assert!((170..250).contains(&a) && b > 20 && c > 20, "{a}/{b}/{c}");

        let cut = 60 * DAY_MS;
        let o = out_of_time(&rows);
        assert!(o.train.as_of.iter().chain(&o.valid.as_of).all(|&t| t + H30 <= cut));
        assert!(o.test.as_of.iter().all(|&t| t >= cut));
        assert_eq!(o.test.customers, c, "the same held-out customers");
        assert!(!o.train.data.is_empty() && !o.test.data.is_empty());
    }
}
