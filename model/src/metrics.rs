//! Evaluation metrics: ranking (AUC, ROC points), accuracy, errors (MAE),
//! probability quality (Brier, log loss, calibration error, reliability),
//! and a paired bootstrap over groups (customers) of the difference of any
//! metric between two models scored on the same rows.

use std::collections::HashMap;
use std::hash::Hash;

use rand::{Rng, SeedableRng};
use serde::Serialize;

/// Area under the ROC curve of `scores` for binary `labels` (rank-sum, ties
/// averaged). `None` when one class is absent.
pub fn auc(scores: &[f64], labels: &[bool]) -> Option<f64> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut ranks = vec![0f64; scores.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            ranks[k] = avg;
        }
        i = j + 1;
    }
    let pos = labels.iter().filter(|&&l| l).count() as f64;
    let neg = labels.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return None;
    }
    let rank_sum: f64 = ranks.iter().zip(labels).filter(|(_, &l)| l).map(|(r, _)| r).sum();
    Some((rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg))
}

/// Share of `scores` on the right side of 0.5.
pub fn accuracy(scores: &[f64], labels: &[bool]) -> f64 {
    let right = scores.iter().zip(labels).filter(|(&s, &l)| (s >= 0.5) == l).count();
    right as f64 / labels.len().max(1) as f64
}

/// Mean absolute error.
pub fn mae(pred: &[f64], truth: &[f64]) -> f64 {
    pred.iter().zip(truth).map(|(p, t)| (p - t).abs()).sum::<f64>() / truth.len().max(1) as f64
}

/// Mean squared difference between probabilities and 0/1 outcomes.
pub fn brier(scores: &[f64], labels: &[bool]) -> f64 {
    let sum: f64 = scores.iter().zip(labels).map(|(&p, &l)| (p - f64::from(u8::from(l))).powi(2)).sum();
    sum / labels.len().max(1) as f64
}

/// Probabilities are clipped to `[LOG_LOSS_EPS, 1 - LOG_LOSS_EPS]` by [`log_loss`].
pub const LOG_LOSS_EPS: f64 = 1e-15;

/// Mean negative log-likelihood (natural log) of 0/1 outcomes, probabilities
/// clipped to `[1e-15, 1 − 1e-15]` so a confident miss costs ~34.5, not ∞.
pub fn log_loss(scores: &[f64], labels: &[bool]) -> f64 {
    let sum: f64 = scores
        .iter()
        .zip(labels)
        .map(|(&p, &l)| {
            let p = p.clamp(LOG_LOSS_EPS, 1.0 - LOG_LOSS_EPS);
            -(if l { p.ln() } else { (1.0 - p).ln() })
        })
        .sum();
    sum / labels.len().max(1) as f64
}

/// Bins of the reliability curve and the calibration error: 10 of equal
/// width over 0–1 (`[0, 0.1)`, …, `[0.9, 1]`; a probability of exactly 1 is
/// in the last).
pub const CALIBRATION_BINS: usize = 10;

/// One bin of the reliability curve.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct ReliabilityBin {
    /// The bin's lower edge.
    pub lower: f64,
    /// Its upper edge.
    pub upper: f64,
    /// Mean predicted probability of its rows.
    pub mean_predicted: f64,
    /// Share of its rows that were positive.
    pub observed_rate: f64,
    /// Its rows.
    pub count: usize,
}

fn bin_of(p: f64) -> usize {
    ((p * CALIBRATION_BINS as f64).floor().max(0.0) as usize).min(CALIBRATION_BINS - 1)
}

/// The reliability curve over [`CALIBRATION_BINS`] equal-width bins: per
/// non-empty bin, mean prediction, observed rate and count (empty bins are
/// left out). NaN scores are skipped.
pub fn reliability_curve(scores: &[f64], labels: &[bool]) -> Vec<ReliabilityBin> {
    let mut sum_p = [0f64; CALIBRATION_BINS];
    let mut pos = [0usize; CALIBRATION_BINS];
    let mut count = [0usize; CALIBRATION_BINS];
    for (&p, &l) in scores.iter().zip(labels) {
        if p.is_nan() {
            continue;
        }
        let b = bin_of(p);
        sum_p[b] += p;
        pos[b] += usize::from(l);
        count[b] += 1;
    }
    (0..CALIBRATION_BINS)
        .filter(|&b| count[b] > 0)
        .map(|b| ReliabilityBin {
            lower: b as f64 / CALIBRATION_BINS as f64,
            upper: (b + 1) as f64 / CALIBRATION_BINS as f64,
            mean_predicted: sum_p[b] / count[b] as f64,
            observed_rate: pos[b] as f64 / count[b] as f64,
            count: count[b],
        })
        .collect()
}

/// Expected calibration error over [`CALIBRATION_BINS`] (10) equal-width
/// bins: `Σ_bins (count / n) · |mean predicted − observed rate|`.
pub fn expected_calibration_error(scores: &[f64], labels: &[bool]) -> f64 {
    let bins = reliability_curve(scores, labels);
    let n: usize = bins.iter().map(|b| b.count).sum();
    bins.iter().map(|b| b.count as f64 * (b.mean_predicted - b.observed_rate).abs()).sum::<f64>() / n.max(1) as f64
}

/// A point of the ROC curve: predicting positive when `score ≥ threshold`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct RocPoint {
    /// The decision threshold (+∞ for the first point, nothing positive).
    pub threshold: f64,
    /// Share of negatives predicted positive.
    pub false_positive_rate: f64,
    /// Share of positives predicted positive.
    pub true_positive_rate: f64,
}

/// Points [`roc_curve`] returns at most.
pub const MAX_ROC_POINTS: usize = 200;

/// The ROC curve for plotting, from (0, 0) to (1, 1): one point per distinct
/// score (ties move both rates at once), thinned to at most
/// [`MAX_ROC_POINTS`] by keeping the first point past each of 199 equal steps
/// of `fpr + tpr` (a monotone walk along the curve), plus both ends. Empty
/// when one class is absent.
pub fn roc_curve(scores: &[f64], labels: &[bool]) -> Vec<RocPoint> {
    let pos = labels.iter().filter(|&&l| l).count() as f64;
    let neg = labels.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return Vec::new();
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let mut full = vec![RocPoint { threshold: f64::INFINITY, false_positive_rate: 0.0, true_positive_rate: 0.0 }];
    let (mut tp, mut fp) = (0.0, 0.0);
    let mut i = 0;
    while i < order.len() {
        let s = scores[order[i]];
        while i < order.len() && scores[order[i]].total_cmp(&s).is_eq() {
            if labels[order[i]] {
                tp += 1.0;
            } else {
                fp += 1.0;
            }
            i += 1;
        }
        full.push(RocPoint { threshold: s, false_positive_rate: fp / neg, true_positive_rate: tp / pos });
    }
    if full.len() <= MAX_ROC_POINTS {
        return full;
    }
    let steps = (MAX_ROC_POINTS - 1) as f64;
    let mut out = vec![full[0]];
    let mut next = 1.0;
    for p in &full[1..full.len() - 1] {
        let walked = (p.false_positive_rate + p.true_positive_rate) / 2.0 * steps;
        if walked >= next && out.len() < MAX_ROC_POINTS - 1 {
            out.push(*p);
            next = walked.floor() + 1.0;
        }
    }
    out.push(full[full.len() - 1]);
    out
}

/// The result of [`paired_bootstrap`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct BootstrapInterval {
    /// `metric(a) − metric(b)` on all rows.
    pub difference: f64,
    /// 2.5% quantile of the resampled differences.
    pub low: f64,
    /// 97.5% quantile of the resampled differences.
    pub high: f64,
    /// Resamples whose difference was a number (a metric may be undefined on
    /// a resample, e.g. AUC with one class: those are left out).
    pub resamples: usize,
}

/// The `q` quantile of sorted values, interpolating linearly between ranks.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// A paired bootstrap of `metric(a) − metric(b)` for two models' scores `a`
/// and `b` on the same rows with the same `labels`, resampling whole groups
/// (`groups[i]` is row i's customer): each of `resamples` draws as many
/// groups as there are, with replacement, and takes all their rows, so rows
/// of one customer stay together and both models see the same resample.
/// Returns the difference on all rows and the 2.5% and 97.5% quantiles of the
/// resampled differences (linear between ranks); the same seed gives the
/// same interval, on any number of threads (each resample has its own
/// seeded generator; resamples run on the machine's cores).
///
/// `metric` takes (scores, labels) — e.g. `|s, l| auc(s, l).unwrap_or(f64::NAN)`
/// or `|s, t| mae(s, t)` with `f64` labels.
///
/// # Panics
/// If `a`, `b`, `labels` and `groups` differ in length.
pub fn paired_bootstrap<L, G, M>(
    a: &[f64],
    b: &[f64],
    labels: &[L],
    groups: &[G],
    resamples: usize,
    seed: u64,
    metric: M,
) -> BootstrapInterval
where
    L: Copy + Send + Sync,
    G: Hash + Eq,
    M: Fn(&[f64], &[L]) -> f64 + Sync,
{
    let n = labels.len();
    assert!(a.len() == n && b.len() == n && groups.len() == n, "a, b, labels and groups must have one entry per row");
    let difference = metric(a, labels) - metric(b, labels);
    // Row indices per group, groups in order of first appearance.
    let mut index: HashMap<&G, usize> = HashMap::new();
    let mut members: Vec<Vec<u32>> = Vec::new();
    for (i, g) in groups.iter().enumerate() {
        let k = *index.entry(g).or_insert_with(|| {
            members.push(Vec::new());
            members.len() - 1
        });
        members[k].push(i as u32);
    }
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get()).clamp(1, resamples.max(1));
    let mut diffs = vec![f64::NAN; resamples];
    std::thread::scope(|s| {
        let chunk = resamples.div_ceil(threads).max(1);
        for (c, out) in diffs.chunks_mut(chunk).enumerate() {
            let (members, metric) = (&members, &metric);
            s.spawn(move || {
                let (mut sa, mut sb, mut sl) = (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
                for (k, slot) in out.iter_mut().enumerate() {
                    let r = (c * chunk + k) as u64;
                    let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(seed ^ r.wrapping_mul(0x9E37_79B9_7F4A_7C15));
                    sa.clear();
                    sb.clear();
                    sl.clear();
                    for _ in 0..members.len() {
                        for &i in &members[rng.random_range(0..members.len())] {
                            let i = i as usize;
                            sa.push(a[i]);
                            sb.push(b[i]);
                            sl.push(labels[i]);
                        }
                    }
                    *slot = metric(&sa, &sl) - metric(&sb, &sl);
                }
            });
        }
    });
    let mut finite: Vec<f64> = diffs.into_iter().filter(|d| !d.is_nan()).collect();
    finite.sort_by(f64::total_cmp);
    BootstrapInterval {
        difference,
        low: quantile(&finite, 0.025),
        high: quantile(&finite, 0.975),
        resamples: finite.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_of_perfect_random_and_reversed() {
        let labels = [false, false, true, true];
        assert_eq!(auc(&[0.1, 0.2, 0.8, 0.9], &labels), Some(1.0));
        assert_eq!(auc(&[0.9, 0.8, 0.2, 0.1], &labels), Some(0.0));
        assert_eq!(auc(&[0.5, 0.5, 0.5, 0.5], &labels), Some(0.5));
        assert_eq!(auc(&[0.1, 0.2], &[true, true]), None);
        // One inversion out of four pairs.
        assert_eq!(auc(&[0.1, 0.6, 0.5, 0.9], &labels), Some(0.75));
    }

    #[test]
    fn accuracy_and_mae() {
        assert_eq!(accuracy(&[0.2, 0.7, 0.5], &[false, true, false]), 2.0 / 3.0);
        assert_eq!(mae(&[1.0, 3.0], &[2.0, 1.0]), 1.5);
    }

    #[test]
    fn brier_and_log_loss_by_hand() {
        let labels = [true, false];
        assert!((brier(&[0.8, 0.4], &labels) - (0.04 + 0.16) / 2.0).abs() < 1e-12);
        assert!((log_loss(&[0.8, 0.4], &labels) - -(0.8f64.ln() + 0.6f64.ln()) / 2.0).abs() < 1e-12);
        // A confident miss is large but finite.
        let worst = log_loss(&[0.0], &[true]);
        assert!(worst.is_finite() && worst > 34.0);
    }

    #[test]
    fn reliability_and_ece_by_hand() {
        // Bin [0.2, 0.3): 0.25 twice, one positive → rate 0.5; bin [0.9, 1]: 1.0 and 0.9, both positive.
        let scores = [0.25, 0.25, 1.0, 0.9];
        let labels = [true, false, true, true];
        let curve = reliability_curve(&scores, &labels);
        assert_eq!(curve.len(), 2);
        assert_eq!((curve[0].lower, curve[0].count, curve[0].observed_rate), (0.2, 2, 0.5));
        assert_eq!((curve[1].upper, curve[1].count, curve[1].mean_predicted), (1.0, 2, 0.95));
        // ECE = 2/4 · |0.25 − 0.5| + 2/4 · |0.95 − 1|
        let ece = expected_calibration_error(&scores, &labels);
        assert!((ece - (0.125 + 0.025)).abs() < 1e-12, "{ece}");
        assert_eq!(expected_calibration_error(&[], &[]), 0.0);
    }

    #[test]
    fn roc_curve_ends_handles_ties_and_is_thinned() {
        let curve = roc_curve(&[0.1, 0.4, 0.4, 0.8], &[false, false, true, true]);
        let pts: Vec<(f64, f64)> = curve.iter().map(|p| (p.false_positive_rate, p.true_positive_rate)).collect();
        assert_eq!(pts, vec![(0.0, 0.0), (0.0, 0.5), (0.5, 1.0), (1.0, 1.0)]);
        assert!(roc_curve(&[0.1, 0.2], &[true, true]).is_empty());
        let n = 10_000;
        let scores: Vec<f64> = (0..n).map(|i| f64::from(i) / f64::from(n)).collect();
        let labels: Vec<bool> = (0..n).map(|i| (i * 7919) % 10 < 3 + i / 2000).collect();
        let curve = roc_curve(&scores, &labels);
        assert!(curve.len() <= MAX_ROC_POINTS && curve.len() > 150, "{}", curve.len());
        assert_eq!((curve[0].false_positive_rate, curve[0].true_positive_rate), (0.0, 0.0));
        let last = curve[curve.len() - 1];
        assert_eq!((last.false_positive_rate, last.true_positive_rate), (1.0, 1.0));
        assert!(curve.windows(2).all(|w| w[0].false_positive_rate <= w[1].false_positive_rate
            && w[0].true_positive_rate <= w[1].true_positive_rate));
    }

    #[test]
    fn quantiles_interpolate() {
        let v = [0.0, 1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile(&v, 0.5), 2.0);
        assert_eq!(quantile(&v, 0.025), 0.1);
        assert!(quantile(&[], 0.5).is_nan());
    }
}
