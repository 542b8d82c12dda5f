//! The paired bootstrap over customers: no difference between a model and
//! itself, none found between two equally good models, a clear one for a
//! clearly better model; seeded.

use pulse_model::metrics::{auc, mae, paired_bootstrap};
use rand::{Rng, SeedableRng};

/// 6000 rows of 600 customers (10 each): a customer-level signal, labels
/// drawn from it, and two scores with independent noise of the given sizes.
fn rows(noise_a: f64, noise_b: f64) -> (Vec<f64>, Vec<f64>, Vec<bool>, Vec<String>) {
    let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(11);
    let (mut a, mut b, mut y, mut g) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for customer in 0..600 {
        let base: f64 = rng.random_range(-2.0..2.0);
        for _ in 0..10 {
            let signal = base + rng.random_range(-1.0..1.0);
            y.push(rng.random::<f64>() < 1.0 / (1.0 + (-2.0 * signal).exp()));
            a.push(signal + noise_a * rng.random_range(-1.0..1.0));
            b.push(signal + noise_b * rng.random_range(-1.0..1.0));
            g.push(format!("customer-{customer}"));
        }
    }
    (a, b, y, g)
}

fn auc_metric(s: &[f64], l: &[bool]) -> f64 {
    auc(s, l).unwrap_or(f64::NAN)
}

#[test]
fn a_model_against_itself_differs_by_nothing() {
    let (a, _, y, g) = rows(0.5, 0.5);
    let r = paired_bootstrap(&a, &a, &y, &g, 200, 1, auc_metric);
    assert_eq!((r.difference, r.low, r.high, r.resamples), (0.0, 0.0, 0.0, 200));
}

#[test]
fn two_equally_good_models_are_not_told_apart() {
    let (a, b, y, g) = rows(1.0, 1.0);
    let r = paired_bootstrap(&a, &b, &y, &g, 300, 2, auc_metric);
    assert!(r.low < 0.0 && 0.0 < r.high, "{r:?}");
    assert!(r.low <= r.difference && r.difference <= r.high);
}

#[test]
fn a_clearly_better_model_is() {
    let (a, b, y, g) = rows(0.2, 3.0);
    let r = paired_bootstrap(&a, &b, &y, &g, 300, 3, auc_metric);
    assert!(r.difference > 0.05 && r.low > 0.0, "{r:?}");
    // The other way round, the interval is mirrored.
    let back = paired_bootstrap(&b, &a, &y, &g, 300, 3, auc_metric);
    assert!(back.high < 0.0 && (back.difference + r.difference).abs() < 1e-12);
}

#[test]
fn the_bootstrap_is_seeded_and_takes_any_metric_and_group_type() {
    let (a, b, y, g) = rows(0.5, 1.0);
    let first = paired_bootstrap(&a, &b, &y, &g, 100, 4, auc_metric);
    assert_eq!(first, paired_bootstrap(&a, &b, &y, &g, 100, 4, auc_metric));
    assert_ne!(first, paired_bootstrap(&a, &b, &y, &g, 100, 5, auc_metric));
    // MAE against numeric truth, customers as integers.
    let truth: Vec<f64> = y.iter().map(|&l| f64::from(u8::from(l))).collect();
    let ids: Vec<u32> = (0..truth.len() as u32).map(|i| i / 10).collect();
    let clip = |v: &[f64]| v.iter().map(|x| x.clamp(0.0, 1.0)).collect::<Vec<_>>();
    let r = paired_bootstrap(&clip(&a), &clip(&b), &truth, &ids, 100, 6, mae);
    assert!(r.low <= r.difference && r.difference <= r.high && r.resamples == 100);
}

#[test]
fn undefined_resamples_are_left_out() {
    // One customer holds every positive: a resample without it has one class.
    let mut y = vec![false; 100];
    y[..10].fill(true);
    let a: Vec<f64> = (0..100).map(|i| f64::from(i % 7)).collect();
    let groups: Vec<usize> = (0..100).map(|i| i / 10).collect();
    let r = paired_bootstrap(&a, &a, &y, &groups, 200, 7, auc_metric);
    assert!(r.resamples < 200 && r.resamples > 100, "{r:?}");
}
