//! Synthetic data with known rules, for the model tests.
#![allow(dead_code)]

use pulse_model::{Dataset, Targets};
use pulse_schemas::{Features, FEATURE_COUNT};
use rand::{Rng, SeedableRng};

/// `n` rows of uniform features on 0–5 and five labels made by simple rules:
///
/// * first_session_success: `x3 > 2`, flipped for 10% of rows;
/// * session_velocity: `0.5·x1 + [x2 > 2.5] + N(0, 0.1)`, at least 0;
/// * churn_risk_14d: `x5 + x6 > 5`, flipped for 10%;
/// * churn_risk_30d: `x3 > 2 or x7 > 4`, flipped for 10%;
/// * health_score: `20·x0` (0–100) `+ N(0, 2)`, clamped to 0–100.
pub fn synthetic(n: usize, seed: u64) -> Dataset {
    let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(seed);
    let mut data = Dataset::default();
    for _ in 0..n {
        let mut x: Features = [0.0; FEATURE_COUNT];
        for v in x.iter_mut() {
            *v = rng.random_range(0.0..5.0);
        }
        let mut noisy = |rule: bool| f32::from(u8::from(rule != (rng.random::<f64>() < 0.1)));
        let fss = noisy(x[3] > 2.0);
        let churn14 = noisy(x[5] + x[6] > 5.0);
        let churn30 = noisy(x[3] > 2.0 || x[7] > 4.0);
        let gauss = |rng: &mut rand_pcg::Pcg64Mcg| {
            // Sum of 12 uniforms − 6: close enough to N(0, 1).
            (0..12).map(|_| rng.random::<f64>()).sum::<f64>() - 6.0
        };
        let velocity = (0.5 * x[1] + f64::from(u8::from(x[2] > 2.5)) + 0.1 * gauss(&mut rng)).max(0.0);
        let health = (20.0 * x[0] + 2.0 * gauss(&mut rng)).clamp(0.0, 100.0);
        data.push(
            x,
            Targets {
                first_session_success: fss,
                session_velocity: velocity as f32,
                churn_risk_14d: churn14,
                churn_risk_30d: churn30,
                health_score: health as f32,
            },
        );
    }
    data
}

/// The labels of one head as booleans.
pub fn labels(data: &Dataset, head: usize) -> Vec<bool> {
    data.targets.iter().map(|t| t.as_row()[head] >= 0.5).collect()
}

/// The labels of one head as numbers.
pub fn values(data: &Dataset, head: usize) -> Vec<f64> {
    data.targets.iter().map(|t| f64::from(t.as_row()[head])).collect()
}
