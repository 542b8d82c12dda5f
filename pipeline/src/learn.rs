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

use crate::dataset::{rows, LabelBook, Period, Row, RowPolicy, RowStats, Split, H30};
use pulse_schemas::DAY_MS;

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

/// A customer group a command cannot do without, and what it is for
/// (`(Split::Valid, "early stopping and calibration")`).
pub type Need = (Split, &'static str);

/// Customers per group of the split (train, valid, test), by the same
/// seeded hash as [`Split::of`].
pub fn customers_per_split<'a>(customers: impl IntoIterator<Item = &'a str>, seed: u64) -> [usize; 3] {
    let mut n = [0; 3];
    for c in customers {
        n[Split::of(c, seed) as usize] += 1;
    }
    n
}

/// The group's name in messages.
fn group(split: Split) -> &'static str {
    match split {
        Split::Train => "train",
        Split::Valid => "validation",
        Split::Test => "test",
    }
}

/// Refuses a customer split that leaves a needed group empty. The split is
/// a hash of each customer's id, 70/15/15: with a handful of customers a
/// group can get none, and every fit or judgement on it was then skipped,
/// and the run still succeeded having done nothing (no model written).
/// `data` names the data in the message.
pub fn check_customer_split(data: &str, counts: [usize; 3], needs: &[Need], seed: u64) -> Result<()> {
    let missing: Vec<String> = needs
        .iter()
        .filter(|(s, _)| counts[*s as usize] == 0)
        .map(|(s, why)| format!("{} (for {why})", group(*s)))
        .collect();
    anyhow::ensure!(
        missing.is_empty(),
        "{data}: too few customers for the train/validation/test split: its {} customers fall {} in train, {} in \
         validation and {} in test (70/15/15 by a hash of customer_id, --split-seed {seed}), and this needs at \
         least one in {}. \
         Use a history of more customers (15% of them go to validation and 15% to test: with 20 or more, \
         most seeds fill every group), or another --split-seed",
        counts.iter().sum::<usize>(),
        counts[0],
        counts[1],
        counts[2],
        missing.join(" and ")
    );
    Ok(())
}

/// Reads a capture twice (labels, then the engine) and keeps the labelled rows.
/// `progress(phase, records)` reports each pass. The customer split is
/// checked against `needs` after the first pass (a few seconds), before the
/// engine's pass.
pub fn from_capture(
    path: &Path,
    policy: &RowPolicy,
    needs: &[Need],
    progress: &mut dyn FnMut(Phase, u64),
) -> Result<Labelled> {
    labelled_rows(path, &path.display().to_string(), policy, needs, progress)
}

/// [`from_capture`], the data named `data` in messages.
fn labelled_rows(
    path: &Path,
    data: &str,
    policy: &RowPolicy,
    needs: &[Need],
    progress: &mut dyn FnMut(Phase, u64),
) -> Result<Labelled> {
    let book = LabelBook::scan(path, &mut |n| progress("labels", n))?;
    book.check_usable(data)?;
    for warning in book.warnings() {
        crate::tell!("{warning}");
    }
    let futures = book.into_futures();
    let counts = customers_per_split(futures.customer_ids(), policy.split_seed);
    check_customer_split(data, counts, needs, policy.split_seed)?;
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
        "{data}: no vector has its 30-day label horizon inside the capture after the {}-day burn-in \
         (the capture must span more than {} days)",
        policy.burn_in_days,
        policy.burn_in_days + 30
    );
    Ok(Labelled { rows: kept, stats, customers: futures.customers(), last })
}

/// Generates a synthetic marketplace into a temporary capture and labels it
/// like any capture.
pub fn from_synth(
    synth: &SynthConfig,
    policy: &RowPolicy,
    needs: &[Need],
    progress: &mut dyn FnMut(Phase, u64),
) -> Result<Labelled> {
    let dir = tempfile::tempdir().context("cannot make a temporary directory for the synthetic capture")?;
    let path = dir.path().join("synthetic.jsonl.zst");
    let mut out = Output::scratch(&path)?;
    generate(synth, &mut out, &mut |n| progress("generate", n))?;
    out.finish()?;
    labelled_rows(&path, "the synthetic marketplace", policy, needs, progress)
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

impl Frames {
    /// The groups among `needs` that hold no row, named as in messages
    /// (`"validation (for early stopping and calibration)"`), if any.
    pub fn empty_groups(&self, needs: &[Need]) -> Option<String> {
        let empty: Vec<String> = needs
            .iter()
            .filter(|(s, _)| self.part(*s).data.is_empty())
            .map(|(s, why)| format!("{} (for {why})", group(*s)))
            .collect();
        (!empty.is_empty()).then(|| empty.join(" and "))
    }

    /// One group's rows.
    pub fn part(&self, split: Split) -> &Frame {
        match split {
            Split::Train => &self.train,
            Split::Valid => &self.valid,
            Split::Test => &self.test,
        }
    }
}

/// The fewest days of `as_of` each side of the out-of-time split must
/// span for it to be judged. A side of a few days holds a few daily
/// snapshots of the same customers: "fit before the cut, test after it"
/// then compares one week with another a month later, not a model used
/// across time (a 90-day capture fitted on 5 days and tested on 5). Two
/// weeks is the shorter label horizon. The default cut halves the labelled
/// span (to the day), so it asks for a capture of the burn-in, two 30-day
/// horizons and 2 × 14 days: 109 days with the 21-day burn-in.
pub const MIN_OUT_OF_TIME_DAYS: i64 = 14;

/// Why the out-of-time split of rows labelled as `stats` says cannot be
/// judged, if it cannot: training rows (`as_of` from the first labelled
/// day to 30 days before the cut, so that their labels end by it) or test
/// rows (from the cut to the last labelled day) spanning under
/// [`MIN_OUT_OF_TIME_DAYS`] days. With the default cut that is the
/// capture's span against the burn-in + 60 + 28 days (the cut's rounding
/// to the day may leave a side half a day short); with `--cut-day`, each
/// side's own span.
pub fn out_of_time_too_short(stats: &RowStats) -> Option<String> {
    let days = |from: i64, to: i64| (to - from) as f64 / DAY_MS as f64;
    let (before, after) = (days(stats.rows_from, stats.cut - H30), days(stats.cut, stats.rows_to));
    let min = MIN_OUT_OF_TIME_DAYS as f64;
    let side = |d: f64| if d < 0.0 { "none".to_owned() } else { format!("{d:.1} days") };
    let burn_in = days(stats.first, stats.rows_from).round();
    let (needed, span) = (burn_in + 60.0 + 2.0 * min, days(stats.first, stats.last));
    let sides = format!(
        "training rows (as_of at least 30 days before the cut, {}, so that their labels end by it) span {} of \
         as_of and test rows (from the cut) {}; each side needs {MIN_OUT_OF_TIME_DAYS} days or more",
        crate::dataset::utc_day(stats.cut),
        side(before),
        side(after)
    );
    let too_short = format!(
        "so the capture must span at least the burn-in ({burn_in} days), two 30-day label horizons and \
         2 × {MIN_OUT_OF_TIME_DAYS} days: {needed} days (this one spans {span:.1})"
    );
    if stats.cut == crate::dataset::default_cut(stats.rows_from, stats.rows_to) {
        return (span < needed).then(|| format!("{sides}, {too_short}"));
    }
    if before >= min && after >= min {
        return None;
    }
    if span < needed {
        return Some(format!("{sides}, {too_short}"));
    }
    // Long enough: the cut set by --cut-day leaves a side short.
    let (lo, hi) = (days(stats.first, stats.rows_from + H30) + min, days(stats.first, stats.rows_to) - min);
    Some(format!(
        "{sides}: a --cut-day from day {:.1} to day {:.1} leaves both sides {MIN_OUT_OF_TIME_DAYS} days or more",
        (lo * 10.0).ceil() / 10.0,
        (hi * 10.0).floor() / 10.0
    ))
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

    const ALL: &[Need] = &[(Split::Train, "fitting"), (Split::Valid, "calibration"), (Split::Test, "judging")];

    /// Ten customers (the split of `pulse generate --customers 10`) leave
    /// the validation group empty: refused, with the counts and the seed,
    /// where training and evaluating used to skip everything and succeed.
    #[test]
    fn a_split_with_an_empty_group_it_needs_is_refused_with_the_counts() {
        let ids: Vec<String> = (0..10).map(|c| format!("stu_{c:06}")).collect();
        let counts = customers_per_split(ids.iter().map(String::as_str), 7);
        assert_eq!(counts, [7, 0, 3]);
        let err = check_customer_split("c10.jsonl", counts, ALL, 7).unwrap_err().to_string();
        for want in [
            "c10.jsonl: too few customers for the train/validation/test split",
            "its 10 customers fall 7 in train, 0 in validation and 3 in test",
            "--split-seed 7",
            "at least one in validation (for calibration)",
        ] {
            assert!(err.contains(want), "{want:?} not in: {err}");
        }
        // A command that needs no validation customers goes on.
        check_customer_split("c10.jsonl", counts, &[(Split::Train, "fitting"), (Split::Test, "judging")], 7).unwrap();
        check_customer_split("c", [14, 3, 3], ALL, 7).unwrap();
    }

    #[test]
    fn empty_groups_names_the_needed_groups_without_rows() {
        let rows: Vec<Row> = (0..10).flat_map(|c| (20..25).map(move |d| row(&format!("stu_{c:06}"), d))).collect();
        let f = in_time(&rows);
        assert_eq!(f.empty_groups(ALL).as_deref(), Some("validation (for calibration)"));
        assert_eq!(f.empty_groups(&ALL[..1]), None);
    }

    fn stats(span_days: f64, cut_day: Option<f64>) -> RowStats {
        let at = |d: f64| (d * DAY_MS as f64) as i64;
        let (first, last) = (at(1000.0), at(1000.0 + span_days));
        let (rows_from, rows_to) = (first + 21 * DAY_MS, last - H30);
        let cut = cut_day.map_or_else(|| crate::dataset::default_cut(rows_from, rows_to), |d| first + at(d));
        RowStats { first, last, rows_from, rows_to, cut, ..RowStats::default() }
    }

    /// A 90-day capture gave an out-of-time split of 5 days of as_of each
    /// side, judged as if it meant something; the README said 110 days and
    /// the skip message 120. Now: 14 days each side, so 109 days with the
    /// default cut, and the message says both spans and the rule.
    #[test]
    fn the_out_of_time_split_needs_two_weeks_each_side() {
        let why = out_of_time_too_short(&stats(89.5, None)).expect("90 days are too short");
        for want in ["span 4.0 days of as_of", "test rows (from the cut) 4.5 days", "109 days (this one spans 89.5)"] {
            assert!(why.contains(want), "{want:?} not in: {why}");
        }
        assert!(out_of_time_too_short(&stats(108.5, None)).is_some());
        assert_eq!(out_of_time_too_short(&stats(109.0, None)), None);
        assert_eq!(out_of_time_too_short(&stats(150.0, None)), None);
        // Long enough, but a --cut-day that leaves training 9 days: the
        // days that work instead.
        let why = out_of_time_too_short(&stats(150.0, Some(60.0))).expect("9 days before the cut");
        assert!(why.contains("span 9.0 days") && why.contains("a --cut-day from day 65.0 to day 106.0"), "{why}");
        assert_eq!(out_of_time_too_short(&stats(150.0, Some(80.0))), None);
    }
}
