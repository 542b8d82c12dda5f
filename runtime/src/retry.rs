//! The one retry policy of pulse: how a failure is classed, how long to wait
//! before trying again, and when to stop calling a backend that keeps
//! failing. The driver's source retries, and every AWS call of `pulse-aws`
//! (which adds the classification of SDK errors, `pulse_aws::retry::classify`),
//! go through these.
//!
//! * [`Failure`]: [`Failure::Throttled`] (the service asked to slow down),
//!   [`Failure::Retry`] (a timeout, a 5xx, a dropped connection) or
//!   [`Failure::Fatal`] (trying again fails the same way);
//!   [`classify_answer`] classes a service's answer by status and code.
//! * [`Backoff`]: jittered exponential backoff. After a transient failure
//!   each delay is drawn uniformly from `[0, min(cap, base · 2^(n-1))]`
//!   ("full jitter"), so clients that failed together do not retry
//!   together; after throttling from its upper half (the retry hint of
//!   [`Backoff::delay_after`]).
//! * [`CircuitBreaker`]: after `failures` consecutive failed calls the
//!   breaker *opens*: calls fail at once, without touching the network, for
//!   `cooldown`. Then one probe call is let through (*half-open*): success
//!   closes the breaker, failure opens it again for another cooldown.
//!
//! Backoff and breaker are plain state machines over an injected clock,
//! tested without I/O.

use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;

/// A failed call, and whether to try again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The service asked to slow down (429, a throttling code): try again,
    /// later than after a transient failure.
    Throttled(String),
    /// Timed out, a 5xx, a dropped connection: may succeed later.
    Retry(String),
    /// The request is wrong or not allowed: retrying the same will fail the same.
    Fatal(String),
}

impl Failure {
    /// The reason.
    pub fn reason(&self) -> &str {
        match self {
            Failure::Throttled(r) | Failure::Retry(r) | Failure::Fatal(r) => r,
        }
    }

    /// Whether trying again may succeed.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, Failure::Fatal(_))
    }
}

/// Error codes that mean "slow down" across the AWS services pulse calls.
const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "LimitExceededException",
    "SlowDown",
    "KMSThrottlingException",
];

/// Other error codes that mean "later".
const TRANSIENT_CODES: &[&str] = &[
    "TransactionInProgressException",
    "PriorRequestNotComplete",
    "RequestTimeout",
    "RequestTimeoutException",
    "InternalFailure",
    "InternalError",
    "InternalServerError",
    "InternalDependencyException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "ModelNotReadyException",
    "InternalServerErrorException",
    "InternalFailureException",
];

/// A service's answer, by its HTTP status and error code: throttled,
/// transient or fatal (`reason` becomes the failure's text).
pub fn classify_answer(status: u16, code: Option<&str>, reason: String) -> Failure {
    if status == 429 || code.is_some_and(|c| THROTTLING_CODES.contains(&c)) {
        Failure::Throttled(reason)
    } else if status >= 500 || code.is_some_and(|c| TRANSIENT_CODES.contains(&c)) {
        Failure::Retry(reason)
    } else {
        Failure::Fatal(reason)
    }
}

/// Whether a service answer is worth retrying, by its HTTP status and error code.
pub fn retryable_answer(status: u16, code: Option<&str>) -> bool {
    classify_answer(status, code, String::new()).is_retryable()
}

/// Jittered exponential backoff.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The ceiling of the first delay.
    pub base: Duration,
    /// The largest ceiling.
    pub cap: Duration,
    /// Attempts in all (the first one included); at least 1.
    pub max_attempts: u32,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff { base: Duration::from_millis(100), cap: Duration::from_secs(5), max_attempts: 4 }
    }
}

impl Backoff {
    /// The ceiling of the delay before retry `retry` (1 = the first retry):
    /// `min(cap, base · 2^(retry-1))`.
    pub fn ceiling(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.saturating_sub(1)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// The delay before retry `retry`: uniform in `[0, ceiling(retry)]`.
    pub fn delay(&self, retry: u32, rng: &mut impl Rng) -> Duration {
        let ceiling = self.ceiling(retry);
        if ceiling.is_zero() {
            return ceiling;
        }
        Duration::from_nanos(rng.random_range(0..=ceiling.as_nanos().min(u128::from(u64::MAX)) as u64))
    }

    /// A write's retries where nothing says otherwise (prediction items,
    /// alerts, dead letters): the default delays, 6 attempts, a few seconds
    /// in all (the Lambda's, within its invocation).
    pub fn writes() -> Backoff {
        Backoff { max_attempts: 6, ..Backoff::default() }
    }

    /// The default delays, with as many attempts as take about `budget`
    /// on average (each wait is uniform up to its ceiling: half of it on
    /// average): for a long-running consumer that waits out an outage of
    /// its outputs instead of stopping at the sixth attempt.
    pub fn lasting(budget: Duration) -> Backoff {
        let mut b = Backoff { max_attempts: 1, ..Backoff::default() };
        let mut expected = Duration::ZERO;
        while expected < budget && b.max_attempts < u32::MAX {
            expected += b.ceiling(b.max_attempts) / 2;
            b.max_attempts += 1;
        }
        b
    }

    /// Whether attempt `attempt` (1 = the first) may be followed by another.
    pub fn may_retry(&self, attempt: u32) -> bool {
        attempt < self.max_attempts
    }

    /// Sleeps the jittered delay before retry `retry`.
    pub async fn wait(&self, retry: u32) {
        let delay = self.delay(retry, &mut rand::rng());
        tokio::time::sleep(delay).await;
    }

    /// The delay before retry `retry` after `failure`, the retry hint:
    /// after throttling uniform in `[ceiling/2, ceiling]` (the service asked
    /// to slow down, so no retry comes early), otherwise [`Backoff::delay`].
    pub fn delay_after(&self, failure: &Failure, retry: u32, rng: &mut impl Rng) -> Duration {
        match failure {
            Failure::Throttled(_) => {
                let ceiling = self.ceiling(retry);
                ceiling / 2 + self.delay(retry, rng) / 2
            }
            Failure::Retry(_) | Failure::Fatal(_) => self.delay(retry, rng),
        }
    }

    /// Sleeps [`Backoff::delay_after`].
    pub async fn wait_after(&self, failure: &Failure, retry: u32) {
        let delay = self.delay_after(failure, retry, &mut rand::rng());
        tokio::time::sleep(delay).await;
    }

    /// Checks the settings; the error names the field.
    pub fn validate(&self, what: &str) -> Result<(), String> {
        if self.max_attempts == 0 {
            return Err(format!("{what}: max_attempts must be at least 1"));
        }
        if self.base > self.cap {
            return Err(format!("{what}: the base delay {:?} is above the cap {:?}", self.base, self.cap));
        }
        Ok(())
    }
}

/// When a [`CircuitBreaker`] opens and for how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failed calls that open the breaker; at least 1.
    pub failures: u32,
    /// How long it stays open before a probe.
    pub cooldown: Duration,
}

impl Default for BreakerConfig {
    fn default() -> BreakerConfig {
        BreakerConfig { failures: 5, cooldown: Duration::from_secs(30) }
    }
}

/// The state of a [`CircuitBreaker`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through; this many failed in a row.
    Closed {
        /// Consecutive failures so far.
        failures: u32,
    },
    /// Calls fail at once until then.
    Open {
        /// When a probe may go.
        until: Instant,
    },
    /// One probe call is out; the others fail at once until it answers.
    HalfOpen,
}

/// A circuit breaker (see the [module docs](self)).
#[derive(Debug)]
pub struct CircuitBreaker {
    config: BreakerConfig,
    state: BreakerState,
    opened: u64,
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(config: BreakerConfig) -> CircuitBreaker {
        CircuitBreaker { config, state: BreakerState::Closed { failures: 0 }, opened: 0 }
    }

    /// The state now.
    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// Times the breaker opened.
    pub fn times_opened(&self) -> u64 {
        self.opened
    }

    /// Whether a call may go at `now`. `Err(wait)` says how long until one
    /// may (for a half-open breaker, one cooldown: the probe is out).
    pub fn try_call(&mut self, now: Instant) -> Result<(), Duration> {
        match self.state {
            BreakerState::Closed { .. } => Ok(()),
            BreakerState::Open { until } if now >= until => {
                self.state = BreakerState::HalfOpen;
                Ok(())
            }
            BreakerState::Open { until } => Err(until - now),
            BreakerState::HalfOpen => Err(self.config.cooldown),
        }
    }

    /// A call succeeded: closed, the failure count reset.
    pub fn on_success(&mut self) {
        self.state = BreakerState::Closed { failures: 0 };
    }

    /// A call failed at `now`.
    pub fn on_failure(&mut self, now: Instant) {
        match self.state {
            BreakerState::Closed { failures } if failures + 1 < self.config.failures.max(1) => {
                self.state = BreakerState::Closed { failures: failures + 1 };
            }
            BreakerState::Closed { .. } | BreakerState::HalfOpen => {
                self.state = BreakerState::Open { until: now + self.config.cooldown };
                self.opened += 1;
            }
            // A call let through before the breaker opened: already open.
            BreakerState::Open { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn backoff_delays_stay_within_their_exponential_ceiling() {
        let backoff = Backoff { base: Duration::from_millis(100), cap: Duration::from_secs(2), max_attempts: 6 };
        let ceilings: Vec<u128> = (1..=7).map(|r| backoff.ceiling(r).as_millis()).collect();
        assert_eq!(ceilings, [100, 200, 400, 800, 1600, 2000, 2000]);
        assert_eq!(backoff.ceiling(200), Duration::from_secs(2), "no overflow on huge retry counts");
        let mut rng = rand_pcg::Pcg64::seed_from_u64(7);
        for retry in 1..=7 {
            let delays: Vec<Duration> = (0..500).map(|_| backoff.delay(retry, &mut rng)).collect();
            assert!(delays.iter().all(|d| *d <= backoff.ceiling(retry)), "retry {retry}");
            // Jittered: spread over the range, not one value.
            let min = delays.iter().min().unwrap();
            let max = delays.iter().max().unwrap();
            assert!(*min < backoff.ceiling(retry) / 4 && *max > backoff.ceiling(retry) * 3 / 4, "retry {retry}");
        }
        assert!(backoff.may_retry(5) && !backoff.may_retry(6));
    }

    #[test]
    fn answers_worth_retrying() {
        for (status, code) in
            [(429, None), (500, None), (503, Some("ServiceUnavailable")), (400, Some("ThrottlingException"))]
        {
            assert!(retryable_answer(status, code), "{status} {code:?}");
        }
        assert!(retryable_answer(400, Some("ProvisionedThroughputExceededException")));
        assert!(retryable_answer(424, Some("ModelNotReadyException")));
        for (status, code) in [(400, Some("ValidationError")), (403, Some("AccessDenied")), (404, None), (413, None)] {
            assert!(!retryable_answer(status, code), "{status} {code:?}");
        }
    }

    #[test]
    fn throttling_is_its_own_class_and_waits_at_least_half_the_ceiling() {
        let class = |status, code: Option<&str>| classify_answer(status, code, "r".into());
        assert_eq!(class(400, Some("ThrottlingException")), Failure::Throttled("r".into()));
        assert_eq!(class(400, Some("ProvisionedThroughputExceededException")), Failure::Throttled("r".into()));
        assert_eq!(class(429, None), Failure::Throttled("r".into()));
        assert_eq!(class(503, None), Failure::Retry("r".into()));
        assert_eq!(class(424, Some("ModelNotReadyException")), Failure::Retry("r".into()));
        assert_eq!(class(400, Some("ValidationException")), Failure::Fatal("r".into()));
        let backoff = Backoff { base: Duration::from_millis(100), cap: Duration::from_secs(2), max_attempts: 6 };
        let mut rng = rand_pcg::Pcg64::seed_from_u64(3);
        let throttled = Failure::Throttled("slow down".into());
        let transient = Failure::Retry("503".into());
        for retry in 1..=6 {
            let ceiling = backoff.ceiling(retry);
            let after: Vec<Duration> = (0..300).map(|_| backoff.delay_after(&throttled, retry, &mut rng)).collect();
            assert!(after.iter().all(|d| *d >= ceiling / 2 && *d <= ceiling), "retry {retry}");
            let early = (0..300).filter(|_| backoff.delay_after(&transient, retry, &mut rng) < ceiling / 2).count();
            assert!(early > 50, "a transient failure keeps full jitter (retry {retry}: {early} of 300 early)");
        }
    }

    #[test]
    fn backoff_settings_are_checked() {
        let ok = Backoff::default();
        assert!(ok.validate("x").is_ok());
        assert!(Backoff { max_attempts: 0, ..ok }.validate("x").unwrap_err().contains("max_attempts"));
        // Five minutes of waits at the 5-s cap, 2.5 s on average: about 120
        // attempts; none beyond the first for no time at all.
        let long = Backoff::lasting(Duration::from_secs(300));
        let expected: Duration = (1..long.max_attempts).map(|r| long.ceiling(r) / 2).sum();
        assert!(expected >= Duration::from_secs(300) && expected < Duration::from_secs(303), "{expected:?}");
        assert_eq!(Backoff::lasting(Duration::ZERO).max_attempts, 1);
        assert!(Backoff { base: Duration::from_secs(9), ..ok }.validate("x").unwrap_err().contains("cap"));
    }

    #[test]
    fn breaker_opens_after_consecutive_failures_and_probes_after_the_cooldown() {
        let t0 = Instant::now();
        let cooldown = Duration::from_secs(30);
        let mut breaker = CircuitBreaker::new(BreakerConfig { failures: 3, cooldown });
        // Two failures, a success: the count starts over.
        for _ in 0..2 {
            breaker.try_call(t0).unwrap();
            breaker.on_failure(t0);
        }
        breaker.on_success();
        assert_eq!(breaker.state(), BreakerState::Closed { failures: 0 });
        for i in 0..3 {
            assert_eq!(breaker.try_call(t0), Ok(()), "call {i}");
            breaker.on_failure(t0);
        }
        assert_eq!(breaker.state(), BreakerState::Open { until: t0 + cooldown });
        assert_eq!(breaker.times_opened(), 1);
        // Open: fails fast, saying how long to wait.
        assert_eq!(breaker.try_call(t0 + Duration::from_secs(10)), Err(Duration::from_secs(20)));
        // After the cooldown one probe goes; the others wait for it.
        let t1 = t0 + cooldown;
        assert_eq!(breaker.try_call(t1), Ok(()));
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        assert_eq!(breaker.try_call(t1), Err(cooldown));
        // The probe fails: open for another cooldown.
        breaker.on_failure(t1);
        assert_eq!(breaker.state(), BreakerState::Open { until: t1 + cooldown });
        assert_eq!(breaker.times_opened(), 2);
        // The next probe succeeds: closed.
        let t2 = t1 + cooldown;
        assert_eq!(breaker.try_call(t2), Ok(()));
        breaker.on_success();
        assert_eq!(breaker.state(), BreakerState::Closed { failures: 0 });
        assert_eq!(breaker.try_call(t2), Ok(()));
    }

    #[test]
    fn failures_of_calls_let_through_before_opening_do_not_extend_it() {
        let t0 = Instant::now();
        let mut breaker = CircuitBreaker::new(BreakerConfig { failures: 1, cooldown: Duration::from_secs(5) });
        breaker.try_call(t0).unwrap();
        breaker.try_call(t0).unwrap();
        breaker.on_failure(t0);
        breaker.on_failure(t0 + Duration::from_secs(4));
        assert_eq!(breaker.state(), BreakerState::Open { until: t0 + Duration::from_secs(5) });
        assert_eq!(breaker.times_opened(), 1);
    }
}
