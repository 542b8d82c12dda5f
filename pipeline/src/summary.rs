//! Human-readable summaries printed at the end of a job.

use std::fmt::Write as _;

use crate::replay::ReplaySummary;

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Bytes as KiB/MiB/GiB.
pub fn bytes(n: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB"];
    let mut x = n as f64;
    let mut u = 0;
    while x >= 1024.0 && u + 1 < units.len() {
        x /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{x:.1} {}", units[u])
    }
}

/// The replay summary as an aligned table.
pub fn replay_table(s: &ReplaySummary) -> String {
    let e = &s.engine;
    let mut t = String::new();
    let mut row = |k: &str, v: String| {
        let _ = writeln!(t, "  {k:<28} {v}");
    };
    row("records", thousands(s.records));
    row("vectors (event / timer)", format!("{} / {}", thousands(s.vectors_event), thousands(s.vectors_timer)));
    row("invalid (dead letters)", thousands(s.invalid_total()));
    for (code, n) in &s.invalid {
        row(&format!("  {code}"), thousands(*n));
    }
    row("late (adds / retractions)", format!("{} / {}", thousands(e.late_adds), thousands(e.late_retractions)));
    row("duplicates", thousands(e.duplicates));
    row("retractions (held / not held)", format!("{} / {}", thousands(e.events_retracted), thousands(e.retractions_not_held)));
    row("ttl expiries", thousands(e.ttl_expiries));
    row("non-event records", thousands(e.non_events));
    row("customers", thousands(s.state.customers));
    row("held events (end)", thousands(s.state.held_events));
    row("state (end / peak)", format!("{} / {}", bytes(s.state.bytes), bytes(s.state.peak_bytes)));
    if s.state.customers > 0 {
        row("state per customer (end)", bytes(s.state.bytes / s.state.customers));
    }
    row("wall time", format!("{:.2} s", s.seconds));
    row("records/s", thousands(s.records_per_second as u64));
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
    }

    #[test]
    fn bytes_picks_a_unit() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 * 1024 * 1024), "3.0 MiB");
    }
}
