//! The engine alone over a capture file, for profiling and for the state's
//! size: every line is decoded up front, then [`Engine::apply`] (and, with
//! `--timers`, [`Engine::advance_to`] on stream time) runs over the records in
//! one function, `apply_all`, which a profiler can single out:
//!
//! ```sh
//! pulse generate --customers 5000 --days 30 --seed 11 --out cap.jsonl
//! cargo build --release -p pulse-operators --example apply_capture
//! valgrind --tool=callgrind --toggle-collect='*apply_all*' \
//!     target/release/examples/apply_capture cap.jsonl
//! ```
//!
//! `--repeat N` applies the records N times (fresh engines), so that a
//! sampling profiler sees mostly the engine; the figures are the last run's.
//! `--warm-half` times only the second half of the records, applied to an
//! engine that has seen the first (the bench's steady state). `--owned`
//! detaches the records from the capture first, as the bench does (their
//! strings then lie together instead of in 250 MB of JSON text).
//!
//! Prints the records, vectors and time (wall and on the CPU), and the
//! state: bytes in all, per customer and per held event.

use std::time::Instant;

use pulse_operators::{Emission, Engine, EngineConfig, TimerPolicy};
use pulse_schemas::capture::decode_line;
use pulse_schemas::StreamRecord;

#[inline(never)]
fn apply_all(engine: &Engine, records: &[StreamRecord<'_>], timers: bool) -> u64 {
    let mut out: Vec<Emission> = Vec::with_capacity(16);
    let mut vectors = 0u64;
    for r in records {
        if timers {
            if let Some(t) = r.created_ms {
                engine.advance_to(t.floor() as i64, &mut out);
            }
        }
        engine.apply(r, &mut out);
        vectors += out.len() as u64;
        out.clear();
    }
    vectors
}

/// This thread's time on the CPU (Linux: the first field of
/// `/proc/thread-self/schedstat`, in ns), so that time spent waiting for a
/// core on a busy machine does not count.
fn cpu_ns() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    stat.split_whitespace().next()?.parse().ok()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    const USAGE: &str = "usage: apply_capture CAPTURE [--timers] [--repeat N] [--warm-half] [--owned]";
    let mut path = None;
    let mut timers = false;
    let mut repeat = 1;
    let mut warm_half = false;
    let mut owned = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--timers" => timers = true,
            "--warm-half" => warm_half = true,
            "--owned" => owned = true,
            "--repeat" => repeat = args.next().and_then(|n| n.parse().ok()).ok_or(USAGE)?,
            _ if path.is_none() => path = Some(arg),
            other => return Err(format!("unexpected argument {other:?}; {USAGE}").into()),
        }
    }
    let path = path.ok_or(USAGE)?;
    let capture = std::fs::read(&path)?;
    let records: Vec<StreamRecord<'_>> =
        capture.split(|&b| b == b'\n').filter(|l| !l.is_empty()).filter_map(|l| decode_line(l).ok()).collect();
    let records: Vec<StreamRecord<'_>> =
        if owned { records.into_iter().map(StreamRecord::into_owned).collect() } else { records };
    let policy = if timers { TimerPolicy::default() } else { TimerPolicy::Off };
    // Extra runs on fresh engines first, for a sampling profiler.
    for _ in 1..repeat {
        apply_all(&Engine::new(EngineConfig { timers: policy }), &records, timers);
    }
    let engine = Engine::new(EngineConfig { timers: policy });
    // Steady state, as the bench measures it: every customer known, stores grown.
    let records = if warm_half {
        let (warm, rest) = records.split_at(records.len() / 2);
        apply_all(&engine, warm, timers);
        rest
    } else {
        &records[..]
    };
    let (start, cpu_start) = (Instant::now(), cpu_ns());
    let vectors = apply_all(&engine, records, timers);
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = cpu_ns().zip(cpu_start).map(|(end, start)| (end - start) as f64 / 1e9);
    let size = engine.state_size();
    println!(
        "{} records, {vectors} vectors in {:.3} s ({:.0} records/s); on the CPU {} ({} records/s)",
        records.len(),
        elapsed,
        records.len() as f64 / elapsed,
        cpu.map_or("?".to_string(), |c| format!("{c:.3} s")),
        cpu.map_or("?".to_string(), |c| format!("{:.0}", records.len() as f64 / c)),
    );
    println!(
        "state {} bytes: {} customers ({:.0} B each), {} held events ({:.1} B each all in)",
        size.bytes,
        size.customers,
        size.bytes as f64 / size.customers.max(1) as f64,
        size.held_events,
        size.bytes as f64 / size.held_events.max(1) as f64
    );
    println!(
        "held events {:.1} B each (buffers with spare room, fingerprints, session ids, spills, indexes) + a fixed \
         {:.0} B per customer (map entry, state, tutor table)",
        size.event_bytes as f64 / size.held_events.max(1) as f64,
        (size.bytes - size.event_bytes) as f64 / size.customers.max(1) as f64
    );
    Ok(())
}
