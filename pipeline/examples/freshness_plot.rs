//! The freshness trade-off as a plot: `pulse loadtest --summary-json` files
//! of runs that differ only in `--linger-s`, drawn as write → prediction
//! latency (p50, p99) and model calls per event against the linger.
//!
//! ```sh
//! cargo run --release -p pulse --example freshness_plot -- OUT_PREFIX LINGER=SUMMARY.json...
//! ```
//!
//! Writes `OUT_PREFIX-latency.svg` and `OUT_PREFIX-calls.svg`, and prints
//! the table it drew. `scripts/freshness.sh` runs the load tests and this.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use pulse::plots::{lines, Curve};
use serde_json::Value;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let Some(prefix) = args.next() else { bail!("usage: freshness_plot OUT_PREFIX LINGER=SUMMARY.json...") };
    let mut rows = Vec::new();
    for arg in args {
        let (linger, path) = arg.split_once('=').with_context(|| format!("{arg:?} is not LINGER=SUMMARY.json"))?;
        let linger: f64 = linger.parse().with_context(|| format!("linger {linger:?} is not a number"))?;
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?;
        let s: Value = serde_json::from_str(&text).with_context(|| format!("{path} is not JSON"))?;
        let number = |v: &Value, what: &str| v.as_f64().with_context(|| format!("{path}: no {what}"));
        let latency = &s["latency"];
        let (p50, p99) =
            (number(&latency["p50_ms"], "p50_ms")? / 1000.0, number(&latency["p99_ms"], "p99_ms")? / 1000.0);
        let pending = number(&latency["pending"], "pending")?;
        rows.push((linger, p50, p99, number(&s["calls_per_event"], "calls_per_event")?, pending));
    }
    if rows.is_empty() {
        bail!("no summaries given");
    }
    rows.sort_by(|a, b| a.0.total_cmp(&b.0));
    println!("{:>9} {:>8} {:>8} {:>15} {:>8}", "linger_s", "p50_s", "p99_s", "calls_per_event", "pending");
    for (l, p50, p99, calls, pending) in &rows {
        println!("{l:>9.2} {p50:>8.3} {p99:>8.3} {calls:>15.3} {pending:>8}");
    }
    let curve = |name: &str, f: fn(&(f64, f64, f64, f64, f64)) -> f64| Curve {
        name: name.into(),
        points: rows.iter().map(|r| (r.0, f(r))).collect(),
    };
    let latency = PathBuf::from(format!("{prefix}-latency.svg"));
    let title = "write → prediction latency";
    lines(&latency, title, "--linger-s", "seconds", &[curve("p50", |r| r.1), curve("p99", |r| r.2)])?;
    let calls = PathBuf::from(format!("{prefix}-calls.svg"));
    lines(&calls, "model calls per event", "--linger-s", "calls per event", &[curve("calls/event", |r| r.3)])?;
    println!("wrote {} and {}", latency.display(), calls.display());
    Ok(())
}
