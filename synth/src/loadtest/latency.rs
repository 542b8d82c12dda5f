//! End-to-end latency: from an event's write to the table to the write of a
//! prediction that reflects it.
//!
//! The load test records, per customer, the events it wrote (their `ts`) and
//! when each write completed. When a prediction for that customer is stored
//! with `as_of >= ts`, every such pending event of the customer is resolved:
//! its latency is the time from its write to that prediction's write. An
//! event that never gets a prediction stays pending and is reported as such
//! (never silently dropped from the percentiles).
//!
//! Values go into an HDR histogram (`hdrhistogram`): 1 µs to 10 min at three
//! significant digits, so p99 is exact to 0.1 % whatever the spread.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

/// The largest latency the histogram records; larger ones saturate to it.
const MAX_MICROS: u64 = 600_000_000;

/// Pending writes and the latency histogram, shared by the writer and the
/// prediction sink.
#[derive(Debug)]
pub struct LatencyTracker {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    pending: HashMap<String, VecDeque<(i64, Instant)>>,
    pending_count: u64,
    /// Per customer, the newest prediction stored so far (`as_of`, when): a
    /// prediction can be stored before the producer has registered the write
    /// it reflects (the write's call returns after the stream delivered it).
    predicted: HashMap<String, (i64, Instant)>,
    histogram: Histogram<u64>,
}

/// Percentiles of the resolved latencies, in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Events whose prediction was stored.
    pub resolved: u64,
    /// Events written whose prediction was not (yet) stored.
    pub pending: u64,
    /// Median.
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

impl Default for LatencyTracker {
    fn default() -> LatencyTracker {
        LatencyTracker::new()
    }
}

impl LatencyTracker {
    /// An empty tracker.
    pub fn new() -> LatencyTracker {
        let histogram = Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("valid histogram bounds");
        LatencyTracker {
            inner: Mutex::new(Inner {
                pending: HashMap::new(),
                pending_count: 0,
                predicted: HashMap::new(),
                histogram,
            }),
        }
    }

    /// An event of `customer` at `ts` was written (its write completed) `at`.
    ///
    /// If a prediction reflecting it was already stored (at or after `at`),
    /// the event is resolved at once.
    pub fn written(&self, customer: &str, ts: i64, at: Instant) {
        let mut inner = self.lock();
        if let Some(&(as_of, stored)) = inner.predicted.get(customer) {
            if ts <= as_of && at <= stored {
                record(&mut inner.histogram, stored.duration_since(at));
                return;
            }
        }
        inner.pending.entry(customer.to_string()).or_default().push_back((ts, at));
        inner.pending_count += 1;
    }

    /// A prediction of `customer` as of `as_of` was stored `at`: resolves the
    /// customer's pending events with `ts <= as_of` written before `at`.
    pub fn predicted(&self, customer: &str, as_of: i64, at: Instant) {
        let mut inner = self.lock();
        let Inner { pending, pending_count, predicted, histogram } = &mut *inner;
        let newest = predicted.entry(customer.to_string()).or_insert((as_of, at));
        if as_of >= newest.0 {
            *newest = (as_of, at);
        }
        let Some(queue) = pending.get_mut(customer) else { return };
        let before = queue.len();
        queue.retain(|&(ts, written)| {
            if ts <= as_of && written <= at {
                record(histogram, at.duration_since(written));
                false
            } else {
                true
            }
        });
        *pending_count -= (before - queue.len()) as u64;
        if queue.is_empty() {
            pending.remove(customer);
        }
    }

    /// Events written and not yet resolved.
    pub fn pending(&self) -> u64 {
        self.lock().pending_count
    }

    /// The percentiles so far.
    pub fn summary(&self) -> LatencySummary {
        let inner = self.lock();
        let h = &inner.histogram;
        let ms = |micros: u64| Duration::from_micros(micros).as_secs_f64() * 1e3;
        LatencySummary {
            resolved: h.len(),
            pending: inner.pending_count,
            p50_ms: ms(h.value_at_quantile(0.50)),
            p95_ms: ms(h.value_at_quantile(0.95)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            max_ms: ms(h.max()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic elsewhere while holding this lock leaves plain numbers
        // behind: still meaningful to report.
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn record(histogram: &mut Histogram<u64>, latency: Duration) {
    let micros = latency.as_micros().clamp(1, u128::from(MAX_MICROS)) as u64;
    histogram.saturating_record(micros);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prediction_resolves_only_the_events_it_reflects() {
        let t = LatencyTracker::new();
        let t0 = Instant::now();
        t.written("a", 100, t0);
        t.written("a", 200, t0 + Duration::from_millis(10));
        t.written("b", 100, t0);
        assert_eq!(t.pending(), 3);

        // as_of 150 reflects only a's first event: 40 ms after its write.
        t.predicted("a", 150, t0 + Duration::from_millis(40));
        assert_eq!(t.pending(), 2);
        // An unknown customer changes nothing.
        t.predicted("z", i64::MAX, t0 + Duration::from_secs(1));
        // a's second event: 90 ms after its write.
        t.predicted("a", 200, t0 + Duration::from_millis(100));
        let s = t.summary();
        assert_eq!((s.resolved, s.pending), (2, 1), "b's event is still pending");
        assert!((s.p50_ms - 40.0).abs() < 0.1, "{s:?}");
        assert!((s.max_ms - 90.0).abs() < 0.1, "{s:?}");
    }

    #[test]
    fn a_prediction_stored_before_a_write_does_not_resolve_it() {
        let t = LatencyTracker::new();
        let t0 = Instant::now();
        t.written("a", 100, t0 + Duration::from_millis(50));
        t.predicted("a", 100, t0);
        assert_eq!(t.pending(), 1);
        assert_eq!(t.summary().resolved, 0);
    }

    #[test]
    fn a_write_registered_after_its_prediction_was_stored_resolves_at_once() {
        let t = LatencyTracker::new();
        let t0 = Instant::now();
        // The consumer stored a prediction as of 200 at t0+30ms...
        t.predicted("a", 200, t0 + Duration::from_millis(30));
        // ...for an event whose write completed at t0 but is registered now.
        t.written("a", 150, t0);
        // A later event (ts 300) is not reflected by it.
        t.written("a", 300, t0);
        let s = t.summary();
        assert_eq!((s.resolved, s.pending), (1, 1), "{s:?}");
        assert!((s.p50_ms - 30.0).abs() < 0.1, "{s:?}");
    }
}
