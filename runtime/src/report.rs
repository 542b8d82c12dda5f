//! What reports share: number formatting, and the rescan pulse is compared with.

/// A count with thousands separators (`1,234,567`).
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Today's system rescans every customer this often.
pub const RESCAN_INTERVAL_MS: i64 = 5 * 60 * 1000;
