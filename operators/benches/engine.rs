//! The operator chain from decoded events: records applied per second on one
//! core, vectors included (every record here changes its customer's events,
//! so each one computes all 46 features).
//!
//! `cargo bench -p pulse-operators --bench engine`

use std::borrow::Cow;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use pulse_operators::{Engine, EngineConfig, TimerPolicy};
use pulse_schemas::{Event, EventKind, EventTime, Party, PaymentStatus, Sentiment, StreamChange, StreamRecord, DAY_MS};

/// A small deterministic generator (xorshift) so the bench needs no RNG crate.
struct Xs(u64);
impl Xs {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// `customers` customers with `per_customer` events each over 60 days, in
/// time order with a little jitter, mixed like real traffic.
fn stream(customers: u64, per_customer: u64) -> Vec<StreamRecord<'static>> {
    let mut rng = Xs(0x9E37_79B9_7F4A_7C15);
    let start = 1_767_571_200_000i64;
    let span = 60 * DAY_MS;
    let total = customers * per_customer;
    let mut out = Vec::with_capacity(total as usize);
    for i in 0..total {
        let c = rng.below(customers);
        let jitter = rng.below(3_600_000) as i64;
        let ts = start + (i as i64 * span / total as i64) - jitter;
        let tutor = || Cow::Owned(format!("tut_{}", c % 50 + rng_tutor(c)));
        let kind = match rng.below(10) {
            0 | 1 => EventKind::SessionCompleted { tutor_id: tutor(), duration_min: 30.0 + (i % 60) as f64 },
            2 => EventKind::SessionRated { tutor_id: tutor(), rating: 1.0 + (i % 41) as f64 / 10.0 },
            3 | 4 => EventKind::Login,
            5 => EventKind::Payment {
                amount: 40.0 + (i % 7) as f64 * 5.5,
                status: if i % 9 == 0 { PaymentStatus::Failed } else { PaymentStatus::Succeeded },
            },
            6 => EventKind::MessageReply { from: Party::Student, response_minutes: (i % 90) as f64, tutor_id: None },
            7 => EventKind::MessageReply {
                from: Party::Tutor,
                response_minutes: (i % 30) as f64,
                tutor_id: Some(tutor()),
            },
            8 => EventKind::SessionCancelled { tutor_id: tutor(), cancelled_by: Party::Student },
            _ => EventKind::IbCall { sentiment: Sentiment::Neutral },
        };
        let event = Event {
            customer_id: Cow::Owned(format!("stu_{c:06}")),
            event_id: Cow::Owned(format!("e{i:010}")),
            ts: EventTime(ts),
            kind,
        };
        out.push(StreamRecord {
            created_ms: Some(ts as f64),
            sequence_number: None,
            change: StreamChange::Insert(event),
        });
    }
    out
}

fn rng_tutor(c: u64) -> u64 {
    (c * 7) % 3
}

fn bench_apply(c: &mut Criterion) {
    let records = stream(2_000, 100);
    let mut group = c.benchmark_group("engine");
    group.throughput(Throughput::Elements(records.len() as u64));
    group.sample_size(10);
    group.bench_function("apply_200k_records_no_timers", |b| {
        b.iter_batched(
            || Engine::new(EngineConfig { timers: TimerPolicy::Off }),
            |engine| {
                let mut out = Vec::with_capacity(4);
                for r in &records {
                    engine.apply(r, &mut out);
                    out.clear();
                }
                engine
            },
            BatchSize::PerIteration,
        )
    });
    group.bench_function("apply_200k_records_daily_timers", |b| {
        b.iter_batched(
            || Engine::new(EngineConfig::default()),
            |engine| {
                let mut out = Vec::with_capacity(4);
                for r in &records {
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
    group.finish();
}

criterion_group!(benches, bench_apply);
criterion_main!(benches);
