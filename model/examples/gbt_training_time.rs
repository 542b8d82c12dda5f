//! How long gradient-boosted trees take to train at pulse's scale: 400k
//! synthetic rows of 46 features (uniform, rounded to a tenth: a few dozen
//! distinct values each, as pulse's counts and rates have), five heads with
//! noisy labels from a few features, validated on 80k more. Prints each
//! head's trees and the wall time.
//!
//! `cargo run --release -p pulse-model --example gbt_training_time [ROWS] [--full]`
//!
//! `--full` turns early stopping off: all 300 trees of every head, the most
//! work the default settings allow.

use std::time::Instant;

use pulse_model::{train_gbt, Dataset, GbtConfig, Targets};
use pulse_schemas::{Features, FEATURE_COUNT};
use rand::{Rng, SeedableRng};

fn synthetic(n: usize, seed: u64) -> Dataset {
    let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(seed);
    let mut data = Dataset::default();
    for _ in 0..n {
        let mut x: Features = [0.0; FEATURE_COUNT];
        for v in x.iter_mut() {
            *v = (rng.random_range(0.0..8.0f64) * 10.0).round() / 10.0;
        }
        let s = x[0] - x[3] + (x[5] * x[7]).sqrt() + rng.random_range(-2.0..2.0);
        let mut bit = |t: f64| f32::from(u8::from(s + rng.random_range(-1.0..1.0) > t));
        data.push(
            x,
            Targets {
                first_session_success: bit(2.0),
                session_velocity: (s.max(0.0) / 2.0) as f32,
                churn_risk_14d: bit(0.0),
                churn_risk_30d: bit(-1.0),
                health_score: (s * 8.0 + 40.0).clamp(0.0, 100.0) as f32,
            },
        );
    }
    data
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rows = args.iter().find_map(|a| a.parse().ok()).unwrap_or(400_000);
    let full = args.iter().any(|a| a == "--full");
    let (train, valid) = (synthetic(rows, 1), synthetic(rows / 5, 2));
    let cfg = GbtConfig { early_stopping_rounds: if full { 0 } else { 20 }, ..GbtConfig::default() };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("{rows} training rows, {} validation rows, {threads} threads", valid.len());
    let started = Instant::now();
    let artifact = train_gbt(&train, &valid, &cfg, &mut |p| {
        if p.done {
            println!(
                "{:>22}: {:>3} trees, valid loss {:.4} ({:.1} s)",
                p.head,
                p.trees,
                p.valid_loss,
                started.elapsed().as_secs_f64()
            );
        }
    })
    .expect("training");
    let trees: usize = artifact.meta.training["heads"]
        .as_array()
        .map_or(0, |h| h.iter().filter_map(|h| h["trees_grown"].as_u64()).sum::<u64>() as usize);
    println!("trained in {:.1} s ({trees} trees grown)", started.elapsed().as_secs_f64());
}
