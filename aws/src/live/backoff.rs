//! How long a shard reader waits before its next call.
//!
//! Two separate delays per reader: after an empty page (idle: the shard is
//! caught up, poll less often, 0.2 s → 2 s by default), and after a failed
//! call (throttled after the SDK's own retries, a network error: 0.1 s → 10 s
//! by default). Either resets on the next success. DynamoDB Streams allows 5
//! GetRecords calls a second per shard and Kinesis 5 per shard across all its
//! consumers, so even the shortest idle delay keeps one reader within them.
//!
//! Doubling with a cap, no jitter: readers of different shards are not in
//! lockstep (their pages arrive at different times), and a fixed sequence
//! keeps the delays easy to reason about and to test.

use std::time::Duration;

/// A doubling delay between `min` and `max`.
#[derive(Clone, Debug)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// Starts at `min`, doubles per call of [`Backoff::next_delay`], never above
    /// `max` (a `max` below `min` is raised to `min`).
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff { min, max: max.max(min), next: min }
    }

    /// The delay to wait now; the following one is twice as long (capped).
    pub fn next_delay(&mut self) -> Duration {
        let now = self.next;
        self.next = (self.next * 2).min(self.max);
        now
    }

    /// Back to `min` (after a success).
    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn doubles_up_to_the_cap_and_resets() {
        let mut b = Backoff::new(ms(200), ms(2000));
        let seen: Vec<_> = (0..6).map(|_| b.next_delay()).collect();
        assert_eq!(seen, [ms(200), ms(400), ms(800), ms(1600), ms(2000), ms(2000)]);
        b.reset();
        assert_eq!(b.next_delay(), ms(200));
    }

    #[test]
    fn a_cap_below_the_start_is_the_start() {
        let mut b = Backoff::new(ms(500), ms(100));
        assert_eq!(b.next_delay(), ms(500));
        assert_eq!(b.next_delay(), ms(500));
    }
}
