//! Human-readable summaries printed at the end of a job.

use std::fmt::Write as _;

use pulse_operators::scoring::ModelQuality;
use pulse_runtime::replay::ReplaySummary;
pub use pulse_runtime::report::{thousands, RESCAN_INTERVAL_MS};
use pulse_runtime::scoring::CustomerLists;
use pulse_schemas::Prediction;

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
    row(
        "retractions (held / not held)",
        format!("{} / {}", thousands(e.events_retracted), thousands(e.retractions_not_held)),
    );
    row("ttl expiries", thousands(e.ttl_expiries));
    row("non-event records", thousands(e.non_events));
    row("customers", thousands(s.state.customers));
    row("held events (end)", thousands(s.state.held_events));
    row("state (end / peak)", format!("{} / {}", bytes(s.state.bytes), bytes(s.state.peak_bytes)));
    if let Some(per) = s.state.bytes.checked_div(s.state.customers) {
        row("state per customer (end)", bytes(per));
    }
    if let Some(per) = s.state.bytes.checked_div(s.state.held_events) {
        row("state per held event (end)", bytes(per));
    }
    row("wall time", format!("{:.2} s", s.seconds));
    row("records/s", thousands(s.records_per_second as u64));
    if let Some(snap) = &s.snapshot {
        row("snapshot (end state)", bytes(snap.bytes));
        row("  written / read back", format!("{:.2} s / {:.2} s", snap.write_seconds, snap.read_seconds));
    }
    t
}

/// The demo's report: the replay table, scoring work against a full rescan
/// every `rescan_ms` over the same stream time, segments, top risks.
pub fn demo_report(s: &ReplaySummary, customers: u64, rescan_ms: i64) -> String {
    let mut t = format!("summary\n{}", replay_table(s));
    let Some(sc) = &s.scoring else { return t };
    let st = &sc.stats;
    let mut row = |k: &str, v: String| {
        let _ = writeln!(t, "  {k:<28} {v}");
    };
    row("vectors offered to scoring", thousands(st.vectors_offered));
    row("  unchanged (gated)", thousands(st.unchanged));
    row("  coalesced", thousands(st.coalesced));
    row("model calls / rows", format!("{} / {}", thousands(st.model_calls), thousands(st.model_rows)));
    row("model calls failed", thousands(st.model_failures));
    row("predictions / alerts", format!("{} / {}", thousands(st.predictions), thousands(st.alerts)));
    if let Some((first, last)) = s.stream_span_ms {
        let rescans = ((last - first) / rescan_ms).max(0) as u64;
        let rescan_calls = rescans * customers;
        let days = (last - first) as f64 / 86_400_000.0;
        row("stream time covered", format!("{days:.1} days"));
        row(
            "5-min full rescan would make",
            format!(
                "{} calls ({} rescans x {} customers)",
                thousands(rescan_calls),
                thousands(rescans),
                thousands(customers)
            ),
        );
        let ratio =
            |ours: u64| if ours == 0 { "n/a".to_owned() } else { format!("{:.0}x", rescan_calls as f64 / ours as f64) };
        row("  vs pulse's rows scored", format!("{} fewer", ratio(st.model_rows)));
        row("  vs pulse's model calls", format!("{} fewer", ratio(st.model_calls)));
        if s.records > 0 {
            row("model rows per record", format!("{:.3}", st.model_rows as f64 / s.records as f64));
        }
    }
    let f = &sc.fleet;
    let _ = writeln!(t, "\nfleet at the end ({} customers scored)", thousands(f.total_customers_processed));
    let _ = writeln!(
        t,
        "  thriving {}  healthy {}  at_risk {}  churned {}\n  high churn risk (>0.7) {}  average churn risk 14d {:.3}  average health {:.1}",
        f.thriving_customers,
        f.healthy_customers,
        f.at_risk_customers,
        f.churned_customers,
        f.high_churn_risk_count,
        f.average_churn_risk_14d,
        f.average_health_score
    );
    let lists = &sc.lists;
    let _ = writeln!(
        t,
        "\nsave these first: {} customers still active whose risk is rising or health just fell (top {})",
        thousands(lists.savable_total as u64),
        lists.savable.len()
    );
    customer_table(&mut t, &lists.savable, "moved");
    let _ = writeln!(
        t,
        "\nalready gone: {} customers with no session in 3 weeks and churn risk above 0.7 (top {})",
        thousands(lists.gone_total as u64),
        lists.gone.len()
    );
    customer_table(&mut t, &lists.gone, "");
    let _ = writeln!(t, "\nhow the lists are built: {}", CustomerLists::HOW);
    if let Some(q) = &sc.model_quality {
        t.push_str(&model_quality_report(q));
    }
    t
}

/// One line per customer, then its reasons indented below.
fn customer_table(t: &mut String, rows: &[(Prediction, f64)], moved: &str) {
    let _ = writeln!(
        t,
        "  {:<14} {:>8} {:>8} {:>7} {:>10} {:>6}  segment",
        "customer", "churn14", "churn30", "health", "sessions/w", moved
    );
    for (p, x) in rows {
        let moved = if moved.is_empty() { String::new() } else { format!("{x:+.2}") };
        let _ = writeln!(
            t,
            "  {:<14} {:>8.3} {:>8.3} {:>7.1} {:>10.2} {:>6}  {}",
            p.customer_id.as_str(),
            p.scores.churn_risk_14d,
            p.scores.churn_risk_30d,
            p.scores.health_score,
            p.scores.session_velocity,
            moved,
            p.segment.as_str()
        );
        for r in p.reasons.as_slice() {
            let _ = writeln!(t, "      {}", r.text());
        }
    }
}

/// The model monitor's latest figures: per churn head, over the close
/// days of its window.
pub fn model_quality_report(q: &ModelQuality) -> String {
    let mut t = String::new();
    let end = chrono::DateTime::from_timestamp_millis(q.window_end).map(|d| d.format("%Y-%m-%d").to_string());
    let _ = writeln!(
        t,
        "\nmodel quality, realised (horizons closed in the {} days before {}; one prediction per customer-day)",
        q.window_days,
        end.unwrap_or_default()
    );
    let _ = writeln!(
        t,
        "  {:<15} {:>9} {:>10} {:>9} {:>7} {:>7} {:>8}",
        "head", "resolved", "label rate", "mean pred", "brier", "auc", "cal err"
    );
    let opt = |x: Option<f64>, digits: usize| x.map_or("-".to_owned(), |x| format!("{x:.digits$}"));
    for h in &q.heads {
        let _ = writeln!(
            t,
            "  {:<15} {:>9} {:>10} {:>9} {:>7} {:>7} {:>8}",
            h.head.name(),
            thousands(h.count),
            opt(h.label_rate, 3),
            opt(h.mean_predicted, 3),
            opt(h.brier, 4),
            opt(h.auc, 3),
            opt(h.calibration_error, 3)
        );
    }
    if let Some(h) = q.heads.first().filter(|h| h.count > 0) {
        let _ = writeln!(t, "  calibration of {} (score bin: resolved, mean predicted → observed)", h.head.name());
        for b in h.calibration.iter().filter(|b| b.count > 0) {
            let _ = writeln!(
                t,
                "    [{:.1}, {:.1}) {:>8}  {} → {}",
                b.lower,
                b.upper,
                thousands(b.count),
                opt(b.mean_predicted, 3),
                opt(b.observed_rate, 3)
            );
        }
    }
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
