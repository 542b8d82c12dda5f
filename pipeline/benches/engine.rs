//! The operator chain from decoded events: records applied per second on one
//! core, each changed customer's 46 features computed (the vector emitted).
//!
//! The records are a realistic synthetic capture (5,000 customers over 30
//! days, default segment mix), decoded once up front so that only the engine
//! is timed.
//!
//! The decoded records are detached from the capture (`into_owned`), as
//! `pulse replay`'s decode stage hands them to its apply stage (another
//! thread): their strings then lie together, in stream order.
//! `apply_no_timers_borrowed` applies the same records still pointing into
//! the 250 MB of JSON text, where the first read of each of a record's ids
//! misses the cache; the gap between the two is that input layout, not the
//! engine.
//!
//! `decode_only` and `decode_and_apply_no_timers` decode each line and apply
//! it on the same thread (as a single-threaded caller would): their
//! difference is what the engine costs when decoding shares its core and
//! caches.
//!
//! `cargo bench -p pulse --bench engine`

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use pulse_operators::{Engine, EngineConfig, TimerPolicy};
use pulse_schemas::capture::decode_line;
use pulse_schemas::StreamRecord;
use pulse_synth::{generate, SynthConfig};

fn bench_engine(c: &mut Criterion) {
    let mut capture = Vec::new();
    let config = SynthConfig { customers: 5_000, days: 30, seed: 11, ..SynthConfig::default() };
    generate(&config, &mut capture, &mut |_| {}).expect("generate");
    let borrowed: Vec<StreamRecord<'_>> = capture
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| decode_line(l).expect("the realistic capture is valid"))
        .collect();
    let records: Vec<StreamRecord<'static>> = borrowed.iter().cloned().map(StreamRecord::into_owned).collect();

    let mut group = c.benchmark_group("engine");
    group.throughput(Throughput::Elements(records.len() as u64));
    group.sample_size(10);
    // Steady state: an engine that has seen the first half of the stream
    // (every customer known, stores grown) applies the second half.
    let (warm, rest) = records.split_at(records.len() / 2);
    group.throughput(Throughput::Elements(rest.len() as u64));
    group.bench_function("steady_state_no_timers", |b| {
        b.iter_batched(
            || {
                let engine = Engine::new(EngineConfig { timers: TimerPolicy::Off });
                let mut out = Vec::new();
                for r in warm {
                    engine.apply(r, &mut out);
                    out.clear();
                }
                engine
            },
            |engine| {
                let mut out = Vec::with_capacity(16);
                for r in rest {
                    engine.apply(r, &mut out);
                    out.clear();
                }
                engine
            },
            BatchSize::PerIteration,
        )
    });
    group.throughput(Throughput::Elements(records.len() as u64));
    for (name, timers, records) in [
        ("apply_no_timers", TimerPolicy::Off, &records[..]),
        ("apply_daily_timers", TimerPolicy::default(), &records[..]),
        ("apply_no_timers_borrowed", TimerPolicy::Off, &borrowed[..]),
    ] {
        group.bench_function(name, |b| {
            b.iter_batched(
                || Engine::new(EngineConfig { timers }),
                |engine| {
                    let mut out = Vec::with_capacity(16);
                    for r in records {
                        if let Some(t) = r.created_ms {
                            engine.advance_to(t as i64, &mut out);
                        }
                        engine.apply(r, &mut out);
                        out.clear();
                    }
                    engine
                },
                BatchSize::PerIteration,
            )
        });
    }
    // The same work with decoding in the loop, on one thread: the line is
    // decoded, then applied while it is hot in cache. Engine time per record
    // = (decode_and_apply - decode_only) / records.
    let lines: Vec<&[u8]> = capture.split(|&b| b == b'\n').filter(|l| !l.is_empty()).collect();
    group.bench_function("decode_only", |b| b.iter(|| lines.iter().filter(|l| decode_line(l).is_ok()).count()));
    group.bench_function("decode_and_apply_no_timers", |b| {
        b.iter_batched(
            || Engine::new(EngineConfig { timers: TimerPolicy::Off }),
            |engine| {
                let mut out = Vec::with_capacity(16);
                for l in &lines {
                    if let Ok(r) = decode_line(l) {
                        engine.apply(&r, &mut out);
                    }
                    out.clear();
                }
                engine
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, bench_engine);
criterion_main!(benches);
