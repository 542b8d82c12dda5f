//! How big an engine snapshot is, and how long it takes to write and read,
//! for a realistic state: the synthetic marketplace (default segment mix),
//! 10,000 customers over 30 days, replayed with daily timers on stream time.
//!
//! `cargo run --release -p pulse --example snapshot_size [customers] [days]`
//!
//! Prints the engine's in-memory state (all in per held event, and split
//! into what the held events take and a fixed part per customer), the
//! snapshot's bytes (total and per customer), its zstd-compressed size
//! (level 3, as a caller might wrap it), and the best of 5 writes and reads
//! (to memory, so only the engine's work is timed). The restored engine's
//! snapshot is checked to be the same bytes.

use std::time::{Duration, Instant};

use pulse_operators::{Engine, EngineConfig};
use pulse_schemas::capture::decode_line;
use pulse_synth::{generate, SynthConfig};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let customers: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(10_000);
    let days: u32 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(30);

    let mut capture = Vec::new();
    let config = SynthConfig { customers, days, seed: 11, ..SynthConfig::default() };
    generate(&config, &mut capture, &mut |_| {})?;
    let engine = Engine::new(EngineConfig::default());
    let (mut out, mut records) = (Vec::new(), 0u64);
    for line in capture.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        // The synthetic capture has a few deliberately invalid records.
        if let Ok(r) = decode_line(line) {
            if let Some(t) = r.created_ms {
                engine.advance_to(t.floor() as i64, &mut out);
            }
            engine.apply(&r, &mut out);
            out.clear();
            records += 1;
        }
    }
    let size = engine.state_size();
    println!(
        "{customers} customers x {days} days: {records} records applied; in memory {:.1} MB ({} held events, {} pending timers)",
        size.bytes as f64 / 1e6,
        size.held_events,
        size.pending_timers
    );
    let held = size.held_events.max(1) as f64;
    println!(
        "  {:.1} B per held event all in; the held events {:.1} B each, plus {:.0} B per customer",
        size.bytes as f64 / held,
        size.event_bytes as f64 / held,
        (size.bytes - size.event_bytes) as f64 / size.customers.max(1) as f64
    );

    let mut bytes = Vec::new();
    let mut write = Duration::MAX;
    for _ in 0..5 {
        bytes.clear();
        let start = Instant::now();
        engine.write_snapshot(&mut bytes)?;
        write = write.min(start.elapsed());
    }
    let mut read = Duration::MAX;
    let mut restored = None;
    for _ in 0..5 {
        let start = Instant::now();
        let e = Engine::read_snapshot(EngineConfig::default(), bytes.as_slice())?;
        read = read.min(start.elapsed());
        restored = Some(e);
    }
    let mut again = Vec::new();
    restored.expect("read 5 times").write_snapshot(&mut again)?;
    anyhow::ensure!(again == bytes, "the restored engine's snapshot differs");

    let zstd = zstd::encode_all(bytes.as_slice(), 3)?;
    println!(
        "snapshot {:.2} MB = {:.0} bytes/customer ({:.1} bytes/held event); zstd -3: {:.2} MB ({:.0} bytes/customer)",
        bytes.len() as f64 / 1e6,
        bytes.len() as f64 / customers as f64,
        bytes.len() as f64 / size.held_events.max(1) as f64,
        zstd.len() as f64 / 1e6,
        zstd.len() as f64 / customers as f64,
    );
    println!(
        "write {:.1} ms ({:.0} MB/s), read {:.1} ms ({:.0} MB/s); best of 5, to and from memory",
        write.as_secs_f64() * 1e3,
        bytes.len() as f64 / 1e6 / write.as_secs_f64(),
        read.as_secs_f64() * 1e3,
        bytes.len() as f64 / 1e6 / read.as_secs_f64(),
    );
    Ok(())
}
