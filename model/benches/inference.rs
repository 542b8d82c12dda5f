//! Embedded inference throughput: vectors scored per second in batches, on
//! one thread (`RAYON_NUM_THREADS=1` is set before candle starts, so the
//! matrix products stay on the calling core).
//!
//! `cargo bench -p pulse-model --bench inference`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use pulse_model::{embedded, EmbeddedModel};
use pulse_schemas::{Features, FEATURE_COUNT};

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

fn bench_inference(c: &mut Criterion) {
    std::env::set_var("RAYON_NUM_THREADS", "1");
    let model = EmbeddedModel::new(&embedded().expect("embedded model")).expect("model");
    let mut group = c.benchmark_group("inference_one_thread");
    for batch in [64usize, 256, 1024, 4096] {
        let data = rows(batch);
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_with_input(BenchmarkId::from_parameter(batch), &data, |b, data| {
            b.iter(|| model.score_now(data).expect("score").len())
        });
    }
    group.finish();
}

criterion_group!(benches, bench_inference);
criterion_main!(benches);
