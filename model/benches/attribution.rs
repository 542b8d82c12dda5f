//! Cost of attributing churn_risk_14d's margin change against a reference
//! (`EmbeddedModel::attribute`, `pulse_model::explain`), per row, on one
//! thread, for the embedded gbt model, next to `score_now` of all five heads
//! on the same rows in the same run: the ratio is what reasons add to a
//! scored prediction.
//!
//! Rows: `model/tests/fixtures/pairs_14d.jsonl`, 256 vectors of synthetic
//! customers each with the same customer's vector about 14 days earlier
//! (`typical_14d`); the same vectors against the vector of the customer
//! whose churn margin is furthest away (`far`: the most at-risk against the
//! healthiest, and so on); and, as the worst case, the same vectors against
//! the all-NaN row, which follows every default branch (`nan_reference`).
//! Each iteration does all 256; criterion's time ÷ 256 is the time per row
//! (its "thrpt" line is rows per second).
//!
//! `cargo bench -p pulse-model --bench attribution`

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use pulse_model::{embedded, top_raising, EmbeddedModel, CHURN_RISK_14D};
use pulse_schemas::{Features, FEATURE_COUNT};

fn pairs_14d() -> Vec<(Features, Features)> {
    include_str!("../tests/fixtures/pairs_14d.jsonl")
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).expect("json");
            let row = |k: &str| -> Features {
                let a: Vec<f64> = v[k].as_array().expect("array").iter().map(|x| x.as_f64().expect("number")).collect();
                a.try_into().expect("46 features")
            };
            (row("x"), row("r"))
        })
        .collect()
}

fn bench_attribution(c: &mut Criterion) {
    let model = EmbeddedModel::new(&embedded().expect("embedded model")).expect("model");
    let typical = pairs_14d();
    let rows: Vec<Features> = typical.iter().map(|p| p.0).collect();
    let mut by_margin: Vec<(f64, Features)> = rows
        .iter()
        .map(|x| {
            let mut phi = [0.0; FEATURE_COUNT];
            (model.attribute(CHURN_RISK_14D, x, x, &mut phi).expect("margin").margin_x, *x)
        })
        .collect();
    by_margin.sort_by(|a, b| a.0.total_cmp(&b.0));
    let n = by_margin.len();
    let far: Vec<(Features, Features)> = (0..n).map(|i| (by_margin[i].1, by_margin[n - 1 - i].1)).collect();
    let nan: Vec<(Features, Features)> = rows.iter().map(|x| (*x, [f64::NAN; FEATURE_COUNT])).collect();

    let mut group = c.benchmark_group("churn_risk_14d_256_rows");
    group.throughput(Throughput::Elements(n as u64));
    group.bench_with_input(BenchmarkId::from_parameter("score_now_5_heads"), &rows, |b, rows| {
        b.iter(|| model.score_now(black_box(rows)).expect("score").len())
    });
    for (name, pairs) in
        [("attribute_typical_14d", &typical), ("attribute_far", &far), ("attribute_nan_reference", &nan)]
    {
        group.bench_with_input(BenchmarkId::from_parameter(name), pairs, |b, pairs| {
            let mut phi = [0.0; FEATURE_COUNT];
            b.iter(|| {
                let mut s = 0.0;
                for (x, r) in pairs {
                    s += model
                        .attribute(CHURN_RISK_14D, black_box(x), black_box(r), &mut phi)
                        .expect("attribute")
                        .margin_x;
                    s += phi[0];
                }
                s
            })
        });
    }
    group.bench_with_input(BenchmarkId::from_parameter("attribute_typical_14d_top3"), &typical, |b, pairs| {
        let mut phi = [0.0; FEATURE_COUNT];
        b.iter(|| {
            let mut s = 0;
            for (x, r) in pairs {
                model.attribute(CHURN_RISK_14D, black_box(x), black_box(r), &mut phi).expect("attribute");
                s += top_raising(&phi, 3).len();
            }
            s
        })
    });
    group.finish();
}

criterion_group!(benches, bench_attribution);
criterion_main!(benches);
