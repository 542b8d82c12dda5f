//! Embedded inference throughput: vectors scored per second in batches, on
//! one thread (`RAYON_NUM_THREADS=1` is set before candle starts, so the
//! matrix products stay on the calling core), for the model compiled into
//! pulse (`inference_one_thread`: the shipped gbt), the network
//! (`network_inference_one_thread`: the test fixture in
//! `model/tests/fixtures/network/`), and gradient-boosted trees at the
//! largest size `GbtConfig` allows by default (`gbt_inference_one_thread`:
//! 5 heads × 300 trees of depth 6, no early stopping, on synthetic rows).
//!
//! `cargo bench -p pulse-model --bench inference`
//!
//! `PULSE_BENCH_MODEL=DIR` adds the artifact in DIR (any kind), e.g. a gbt
//! trained on pulse's own data.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use pulse_model::{embedded, train_gbt, Dataset, EmbeddedModel, GbtConfig, Model, ModelArtifact, Targets};
use pulse_schemas::{Features, FEATURE_COUNT};
use rand::{Rng, SeedableRng};

fn rows(n: usize) -> Vec<Features> {
    (0..n)
        .map(|i| {
            let mut f = [0.0; FEATURE_COUNT];
            for (j, x) in f.iter_mut().enumerate() {
                *x = ((i * 31 + j * 17) % 23) as f64 / 3.0;
            }
            f
        })
        .collect()
}

/// Noisy labels from a few features, so every tree grows to full depth.
fn synthetic(n: usize, seed: u64) -> Dataset {
    let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(seed);
    let mut data = Dataset::default();
    for _ in 0..n {
        let mut x: Features = [0.0; FEATURE_COUNT];
        for v in x.iter_mut() {
            *v = rng.random_range(0.0..8.0);
        }
        let noise = rng.random_range(-2.0..2.0);
        let s = x[0] - x[3] + (x[5] * x[7]).sqrt() + noise;
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

fn gbt() -> EmbeddedModel {
    let cfg = GbtConfig { max_trees: 300, max_depth: 6, early_stopping_rounds: 0, ..GbtConfig::default() };
    let artifact = train_gbt(&synthetic(20_000, 1), &synthetic(2_000, 2), &cfg, &mut |_| {}).expect("gbt");
    if let Model::Gbt(g) = &artifact.model {
        let nodes: usize = g.heads().iter().flat_map(|h| &h.trees).map(|t| t.nodes().len()).sum();
        eprintln!("gbt: {} trees, {nodes} nodes", g.tree_count());
    }
    EmbeddedModel::new(&artifact).expect("model")
}

fn network() -> EmbeddedModel {
    let artifact = ModelArtifact::from_bytes(
        include_bytes!("../tests/fixtures/network/model.json"),
        include_bytes!("../tests/fixtures/network/model.safetensors"),
    )
    .expect("network fixture");
    EmbeddedModel::new(&artifact).expect("model")
}

fn bench_inference(c: &mut Criterion) {
    std::env::set_var("RAYON_NUM_THREADS", "1");
    let mut models = vec![
        ("inference_one_thread", EmbeddedModel::new(&embedded().expect("embedded model")).expect("model")),
        ("network_inference_one_thread", network()),
        ("gbt_inference_one_thread", gbt()),
    ];
    if let Some(dir) = std::env::var_os("PULSE_BENCH_MODEL") {
        let artifact = ModelArtifact::load_dir(std::path::Path::new(&dir)).expect("PULSE_BENCH_MODEL");
        models.push(("model_dir_inference_one_thread", EmbeddedModel::new(&artifact).expect("model")));
    }
    for (name, model) in models {
        let mut group = c.benchmark_group(name);
        for batch in [1usize, 7, 64, 256, 1024, 4096] {
            let data = rows(batch);
            group.throughput(Throughput::Elements(batch as u64));
            group.bench_with_input(BenchmarkId::from_parameter(batch), &data, |b, data| {
                b.iter(|| model.score_now(data).expect("score").len())
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench_inference);
criterion_main!(benches);
