//! Seeding and the few samplers the generator needs.
//!
//! Every random stream is a [`Pcg64Mcg`] seeded explicitly from the
//! configuration's seed and a position (customer index, stream number), so a
//! customer's behaviour never depends on how many customers came before it or
//! on which thread simulated it.

use rand::Rng;
use rand_distr::StandardNormal;
use rand_pcg::Pcg64Mcg;

/// SplitMix64's finaliser: a cheap, well-mixed 64-bit hash.
pub(crate) fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Which of a customer's independent random streams.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Stream {
    /// What the customer does (segments, events and their attributes).
    Behaviour = 1,
    /// How the stream delivers it (delays, duplicates, hostility). Kept apart
    /// so that the same seed yields the same behaviour at every hostility.
    Noise = 2,
    /// Tutors' own traits, shared by all customers.
    Tutors = 3,
    /// Lifecycle: how often each tutor cancels, shared by all customers.
    TutorReliability = 4,
}

/// The generator of `stream` for position `index` under `seed`.
pub(crate) fn derive(seed: u64, index: u64, stream: Stream) -> Pcg64Mcg {
    let a = splitmix64(seed ^ splitmix64(index.wrapping_mul(8).wrapping_add(stream as u64)));
    let b = splitmix64(a ^ 0x5851_F42D_4C95_7F2D);
    Pcg64Mcg::new((u128::from(a) << 64) | u128::from(b) | 1)
}

/// A uniform draw in `[0, 1)`.
pub(crate) fn unit(rng: &mut Pcg64Mcg) -> f64 {
    rng.random::<f64>()
}

/// True with probability `p` (any `p`: below 0 never, above 1 always).
pub(crate) fn chance(rng: &mut Pcg64Mcg, p: f64) -> bool {
    p > 0.0 && unit(rng) < p
}

/// A uniform draw in `[lo, hi)` (or `lo` when the range is empty).
pub(crate) fn uniform(rng: &mut Pcg64Mcg, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * unit(rng)
}

/// A uniform index in `0..n` (`n > 0`).
pub(crate) fn index(rng: &mut Pcg64Mcg, n: usize) -> usize {
    rng.random_range(0..n)
}

/// A standard normal draw.
pub(crate) fn normal(rng: &mut Pcg64Mcg) -> f64 {
    rng.sample::<f64, _>(StandardNormal)
}

/// A draw whose logarithm is uniform in `[ln lo, ln hi)`: spreads delays
/// evenly over orders of magnitude (seconds, minutes, hours).
pub(crate) fn log_uniform(rng: &mut Pcg64Mcg, lo: f64, hi: f64) -> f64 {
    (lo.ln() + (hi.ln() - lo.ln()) * unit(rng)).exp()
}

/// A log-normal draw given its median and the standard deviation of its log.
pub(crate) fn log_normal(rng: &mut Pcg64Mcg, median: f64, sigma: f64) -> f64 {
    median * (sigma * normal(rng)).exp()
}

/// A Poisson draw for the small means used here (Knuth's method).
pub(crate) fn poisson(rng: &mut Pcg64Mcg, mean: f64) -> u32 {
    if mean <= 0.0 {
        return 0;
    }
    let limit = (-mean).exp();
    let mut k = 0;
    let mut p = unit(rng);
    while p > limit && k < 64 {
        k += 1;
        p *= unit(rng);
    }
    k
}

/// An index drawn from weights (which need not sum to 1).
pub(crate) fn weighted(rng: &mut Pcg64Mcg, weights: &[f64]) -> usize {
    let total: f64 = weights.iter().sum();
    let mut u = unit(rng) * total;
    for (i, w) in weights.iter().enumerate() {
        if u < *w {
            return i;
        }
        u -= w;
    }
    weights.iter().rposition(|w| *w > 0.0).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_streams_are_stable_and_distinct() {
        let a: Vec<u64> = (0..4).map(|_| derive(7, 3, Stream::Behaviour).random()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]), "same position, same stream");
        let mut b = derive(7, 3, Stream::Noise);
        let mut c = derive(7, 4, Stream::Behaviour);
        let mut d = derive(8, 3, Stream::Behaviour);
        let x: u64 = derive(7, 3, Stream::Behaviour).random();
        assert_ne!(x, b.random::<u64>());
        assert_ne!(x, c.random::<u64>());
        assert_ne!(x, d.random::<u64>());
    }

    #[test]
    fn samplers_have_the_right_means() {
        let mut rng = derive(1, 0, Stream::Behaviour);
        let n = 20_000;
        let mean = |f: &mut dyn FnMut() -> f64| (0..n).map(|_| f()).sum::<f64>() / f64::from(n);
        let p = mean(&mut || f64::from(poisson(&mut rng, 0.7)));
        assert!((p - 0.7).abs() < 0.03, "poisson mean {p}");
        let w = mean(&mut || weighted(&mut rng, &[1.0, 3.0]) as f64);
        assert!((w - 0.75).abs() < 0.02, "weighted mean {w}");
        let l = mean(&mut || log_uniform(&mut rng, 1.0, 100.0).ln());
        assert!((l - 100f64.ln() / 2.0).abs() < 0.05, "log-uniform log-mean {l}");
    }
}
