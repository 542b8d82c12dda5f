//! The baseline `pulse replay` is measured against, as a program of its
//! own: read a capture (plain, .zst or .gz, like `pulse replay`) and parse
//! every line into a `serde_json::Value`, nothing else.
//!
//! `cargo run --release -p pulse --example parse_json CAPTURE`
//!
//! Prints `lines`, `seconds` and `lines/s` of the whole read and parse.
//! `scripts/bench-replay.sh CAPTURE` runs it and `pulse replay` alternately
//! and compares whole processes (wall clock, peak RSS).

use std::time::Instant;

use anyhow::{bail, Context};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [path] = args.as_slice() else { bail!("usage: parse_json CAPTURE") };
    let started = Instant::now();
    let input = pulse_runtime::io::open_input(std::path::Path::new(path))?;
    let parsed = pulse::baseline::parse_values(input.reader).with_context(|| format!("cannot read {path}"))?;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "lines {} objects {} seconds {seconds:.3} lines/s {:.0}",
        parsed.lines,
        parsed.objects,
        parsed.lines as f64 / seconds.max(1e-9)
    );
    Ok(())
}
