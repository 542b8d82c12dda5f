//! `pulse replay` end to end against the floor the issue sets: merely parsing
//! the same capture into `serde_json::Value`, line by line. Both run in the
//! same process on the same file, so their ratio is meaningful on a noisy
//! machine.
//!
//! `cargo bench -p pulse --bench replay`

use std::io::{BufRead, BufReader};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pulse::io::Output;
use pulse::replay::{replay, ReplayConfig};
use pulse::synth::{generate, SynthConfig};
use pulse_operators::EngineConfig;

fn bench_replay(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let capture = dir.path().join("capture.jsonl");
    let config = SynthConfig { customers: 5_000, days: 30, seed: 11, ..SynthConfig::default() };
    let mut out = Output::create(&capture).expect("create capture");
    let summary = generate(&config, &mut out, &mut |_| {}).expect("generate");
    out.finish().expect("finish capture");
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");

    let mut group = c.benchmark_group("replay");
    group.sample_size(10);
    group.throughput(Throughput::Elements(summary.records));
    group.bench_function("parse_into_serde_json_value", |b| {
        b.iter(|| {
            let reader = BufReader::with_capacity(1 << 20, std::fs::File::open(&capture).expect("open"));
            let mut n = 0u64;
            for line in reader.split(b'\n') {
                let v: serde_json::Value = serde_json::from_slice(&line.expect("read")).expect("json");
                n += u64::from(v.is_object());
            }
            n
        })
    });
    for (name, features_out) in
        [("pulse_replay_to_file", Some(dir.path().join("vectors.jsonl"))), ("pulse_replay_no_output", None)]
    {
        group.bench_function(name, |b| {
            b.iter(|| {
                let config = ReplayConfig {
                    capture: capture.clone(),
                    features_out: features_out.clone(),
                    dead_letter_out: None,
                    engine: EngineConfig::default(),
                    progress: false,
                };
                runtime.block_on(replay(config)).expect("replay").records
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_replay);
criterion_main!(benches);
