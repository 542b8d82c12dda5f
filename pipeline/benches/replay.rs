//! `pulse replay` end to end against the floor the issue sets: merely parsing
//! the same capture into `serde_json::Value`, line by line. All run in the
//! same process on the same file, so their ratios are meaningful on a noisy
//! machine. The scored variants add the model (gate, coalescing, batches,
//! predictions) to show what scoring costs the replay.
//!
//! The floor is [`pulse::baseline::parse_values`], the very loop of the
//! standalone program (`examples/parse_json.rs`, which
//! `scripts/bench-replay.sh` runs in its own process): one line buffer
//! reused, each line parsed from it. It used to be a loop of its own over
//! `BufRead::split` (a fresh `Vec` per line) timed right after the capture
//! was written, while the kernel was still writing those pages back; the
//! parse is the group's first benchmark, so only it paid for that. The
//! capture is now synced to disk before anything is timed.
//!
//! `cargo bench -p pulse --bench replay`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pulse_model::{embedded, EmbeddedModel};
use pulse_operators::scoring::BatchPolicy;
use pulse_operators::EngineConfig;
use pulse_runtime::io::Output;
use pulse_runtime::replay::{replay, Input, Outputs, ReplayConfig};
use pulse_runtime::scoring::ScoringConfig;
use pulse_synth::{generate, SynthConfig};

fn bench_replay(c: &mut Criterion) {
    // As `pulse replay` does: the model's matrix products run on the scoring
    // stage's thread rather than a pool competing with the other stages.
    std::env::set_var("RAYON_NUM_THREADS", "1");
    let dir = tempfile::tempdir().expect("temp dir");
    let capture = dir.path().join("capture.jsonl");
    let config = SynthConfig { customers: 5_000, days: 30, seed: 11, ..SynthConfig::default() };
    let mut out = Output::create(&capture).expect("create capture");
    let summary = generate(&config, &mut out, &mut |_| {}).expect("generate");
    out.finish().expect("finish capture");
    // On disk before anything is timed: the kernel writing back 250 MB of
    // dirty pages would otherwise compete (on a small machine) with the first
    // benchmark, the parse, and only with it.
    std::fs::File::open(&capture).and_then(|f| f.sync_all()).expect("sync capture");
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");

    let mut group = c.benchmark_group("replay");
    group.sample_size(10);
    group.throughput(Throughput::Elements(summary.records));
    group.bench_function("parse_into_serde_json_value", |b| {
        b.iter(|| pulse::baseline::parse_values(std::fs::File::open(&capture).expect("open")).expect("read").objects)
    });
    let model = EmbeddedModel::new(&embedded().expect("embedded model")).expect("model");
    let vectors = dir.path().join("vectors.jsonl");
    let predictions = dir.path().join("predictions.jsonl");
    // (name, vectors file, scored, reasons): the scored runs with and
    // without reasons measure what the reasons cost (issue #15: >= 0.9x).
    let runs: [(&str, Option<&std::path::Path>, bool, bool); 5] = [
        ("pulse_replay_to_file", Some(&vectors), false, false),
        ("pulse_replay_no_output", None, false, false),
        ("pulse_replay_scored_to_file", Some(&vectors), true, true),
        ("pulse_replay_scored_no_vectors", None, true, true),
        ("pulse_replay_scored_no_vectors_no_reasons", None, true, false),
    ];
    for (name, features, scored, reasons) in runs {
        group.bench_function(name, |b| {
            b.iter(|| {
                let config = ReplayConfig {
                    input: Input::Capture(capture.clone()),
                    outputs: Outputs {
                        features: features.map(Into::into),
                        predictions: scored.then(|| predictions.clone()),
                        ..Outputs::default()
                    },
                    engine: EngineConfig::default(),
                    scoring: scored.then(|| ScoringConfig {
                        // As `pulse replay --score` and `pulse demo`: a minute of stream time.
                        batch: BatchPolicy { max_linger_ms: 60_000, ..BatchPolicy::default() },
                        reasons,
                        ..ScoringConfig::default()
                    }),
                    progress: None,
                    workers: std::num::NonZeroUsize::MIN,
                    reasons_threads: pulse_runtime::replay::DEFAULT_REASONS_THREADS,
                };
                let model = scored.then(|| model.clone());
                runtime.block_on(replay(config, model)).expect("replay").records
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_replay);
criterion_main!(benches);
