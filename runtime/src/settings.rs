//! Settings shared by every way of running pulse, parsed and validated in one
//! place: the command line's flags and the Lambda function's environment
//! variables are the same clap arguments (`env = ...`), in the same units.

use std::time::Duration;

use anyhow::Result;
use clap::Args;
use pulse_operators::TimerPolicy;
use pulse_schemas::DAY_MS;

/// When silent customers are rescored (`--timer-interval-hours`, or
/// `TIMER_INTERVAL_HOURS` in the environment; `--no-timers`).
#[derive(Args, Clone, Debug, PartialEq)]
pub struct TimerArgs {
    /// Emit vectors only on records: no timer rescoring of silent customers
    /// (`NO_TIMERS=true` in the environment; `true` or `false` only).
    #[arg(long, env = "NO_TIMERS")]
    pub no_timers: bool,
    /// Hours between the timer vectors of a silent customer (fractions allowed).
    #[arg(long, env = "TIMER_INTERVAL_HOURS", default_value_t = 24.0, value_name = "HOURS")]
    pub timer_interval_hours: f64,
}

/// The shortest timer interval the settings take: a minute.
pub const MIN_TIMER_INTERVAL_MS: i64 = 60_000;

impl TimerArgs {
    /// The timer policy these settings ask for; the error names the setting.
    pub fn policy(&self) -> Result<TimerPolicy> {
        if self.no_timers {
            // An interval other than the default was asked for too: the two
            // contradict each other (the default cannot be told from none).
            anyhow::ensure!(
                self.timer_interval_hours == TimerArgs::default().timer_interval_hours,
                "--no-timers and --timer-interval-hours (TIMER_INTERVAL_HOURS) {} contradict each other: choose one",
                self.timer_interval_hours
            );
            return Ok(TimerPolicy::Off);
        }
        let hours = self.timer_interval_hours;
        anyhow::ensure!(
            hours.is_finite() && hours > 0.0,
            "--timer-interval-hours (TIMER_INTERVAL_HOURS) must be a positive number of hours"
        );
        let TimerPolicy::Every { max_silence_ms, .. } = TimerPolicy::default() else {
            unreachable!("the default policy has timers")
        };
        let interval_ms = (hours * DAY_MS as f64 / 24.0).round();
        // Each silent customer gets a vector per interval for up to a year of
        // silence: at 0.0001 hours (0.36 s) that is 87 million each, and a
        // replay of a few thousand customers ran out of memory. A minute is
        // already far finer than the features move (by the day).
        // A year at most: a silent customer is rescored at least that often.
        let max_hours = YEAR_SECONDS / 3600.0;
        anyhow::ensure!(
            interval_ms >= MIN_TIMER_INTERVAL_MS as f64 && hours <= max_hours,
            "--timer-interval-hours (TIMER_INTERVAL_HOURS) {hours} is not a usable interval: from a minute \
             ({:.4} hours) to a year ({max_hours} hours)",
            MIN_TIMER_INTERVAL_MS as f64 / 3_600_000.0
        );
        Ok(TimerPolicy::Every { interval_ms: interval_ms as i64, max_silence_ms })
    }
}

impl Default for TimerArgs {
    fn default() -> TimerArgs {
        TimerArgs { no_timers: false, timer_interval_hours: 24.0 }
    }
}

/// A flag of seconds as a duration: a finite number from 0 to `max`
/// seconds. A finite but huge value (`1e30`) passed the checks that only
/// asked for a finite one, and then panicked where it became a `Duration`.
pub fn seconds(value: f64, flag: &str, max: f64) -> Result<Duration> {
    anyhow::ensure!(
        value.is_finite() && (0.0..=max).contains(&value),
        "{flag} {value}: give a number of seconds from 0 to {max}"
    );
    Ok(Duration::try_from_secs_f64(value)?)
}

/// The longest of most flags of seconds: a year.
pub const YEAR_SECONDS: f64 = 365.0 * 86_400.0;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_become_the_policy_and_bad_ones_are_refused() {
        let every = |h: f64| TimerArgs { timer_interval_hours: h, ..TimerArgs::default() }.policy();
        let TimerPolicy::Every { interval_ms, .. } = every(6.0).unwrap() else { panic!("timers on") };
        assert_eq!(interval_ms, 6 * 3_600_000);
        let TimerPolicy::Every { interval_ms, .. } = every(0.5).unwrap() else { panic!("timers on") };
        assert_eq!(interval_ms, 1_800_000);
        assert_eq!(every(24.0).unwrap(), TimerPolicy::default());
        let TimerPolicy::Every { interval_ms, .. } = every(1.0 / 60.0).unwrap() else { panic!("timers on") };
        assert_eq!(interval_ms, MIN_TIMER_INTERVAL_MS);
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, 0.0001, 0.016] {
            let err = every(bad).unwrap_err().to_string();
            assert!(err.contains("TIMER_INTERVAL_HOURS"), "{err}");
        }
        assert_eq!(TimerArgs { no_timers: true, ..TimerArgs::default() }.policy().unwrap(), TimerPolicy::Off);
        let both = TimerArgs { no_timers: true, timer_interval_hours: 5.0 }.policy().unwrap_err().to_string();
        assert!(both.contains("contradict"), "{both}");
    }
}
