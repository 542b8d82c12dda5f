//! How long a caught-up shard reader waits before polling again.
//!
//! After an empty page the shard is caught up: poll less often, 0.2 s → 2 s
//! by default, back to the shortest wait on the next record. DynamoDB Streams
//! allows 5 GetRecords calls a second per shard and Kinesis 5 per shard
//! across all its consumers, so even the shortest wait keeps one reader
//! within them. This is not a retry: a failed call waits under pulse's one
//! retry policy ([`crate::retry::Backoff`], jittered, longer after
//! throttling).
//!
//! Doubling with a cap, no jitter: readers of different shards are not in
//! lockstep (their pages arrive at different times), and a fixed sequence
//! keeps the delays easy to reason about and to test.

use std::time::Duration;

/// A doubling delay between `min` and `max`.
#[derive(Clone, Debug)]
pub struct PollInterval {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl PollInterval {
    /// Starts at `min`, doubles per call of [`PollInterval::next_delay`], never above
    /// `max` (a `max` below `min` is raised to `min`).
    pub fn new(min: Duration, max: Duration) -> PollInterval {
        PollInterval { min, max: max.max(min), next: min }
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
        let mut b = PollInterval::new(ms(200), ms(2000));
        let seen: Vec<_> = (0..6).map(|_| b.next_delay()).collect();
        assert_eq!(seen, [ms(200), ms(400), ms(800), ms(1600), ms(2000), ms(2000)]);
        b.reset();
        assert_eq!(b.next_delay(), ms(200));
    }

    #[test]
    fn a_cap_below_the_start_is_the_start() {
        let mut b = PollInterval::new(ms(500), ms(100));
        assert_eq!(b.next_delay(), ms(500));
        assert_eq!(b.next_delay(), ms(500));
    }
}
