//! The function's settings: its environment variables, parsed by clap with
//! the same arguments (and so the same units and checks) as the `pulse`
//! command line: [`TimerArgs`] is `pulse run --timer-interval-hours`,
//! [`OutputArgs`] is `pulse run --score`'s outputs.
//!
//! Lambda starts `bootstrap` with no arguments, so only the environment
//! counts there; the flags exist for trying the binary by hand and for two
//! checks a deployment can run with the function's environment:
//! `bootstrap --print-settings` (the resolved settings as JSON, or the
//! error that would stop a cold start) and `bootstrap --list-env` (every
//! variable the function reads).

use anyhow::{Context, Result};
use clap::{CommandFactory, Parser, ValueEnum};
use pulse_aws::due::DEFAULT_DUE_INDEX;
use pulse_aws::output::args::{MetricsTarget, OutputArgs};
use pulse_runtime::settings::TimerArgs;

use crate::{LambdaConfig, LambdaEnv};

/// The longest `DUE_LOOKBACK_HOURS`: a year, the longest timer interval
/// (the template's `DueLookbackHours` has the same bound).
pub const MAX_DUE_LOOKBACK_HOURS: i64 = 8760;

/// On or off, as an environment variable says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    /// On (`on`, `1`, `true`).
    #[value(alias = "1", alias = "true")]
    On,
    /// Off (`off`, `0`, `false`).
    #[value(alias = "0", alias = "false")]
    Off,
}

/// Whether vectors and dead letters are logged: `auto` follows scoring
/// (logged when it is off), so that a deployment template can always set
/// the variable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogVectors {
    /// Logged.
    #[value(alias = "1", alias = "true")]
    On,
    /// Not logged.
    #[value(alias = "0", alias = "false")]
    Off,
    /// Logged only when scoring is off.
    Auto,
}

/// The Lambda function of pulse: the DynamoDB Streams event source mapping's
/// handler and the hourly rescoring of silent customers. Every setting is an
/// environment variable (shown as [env: ...]).
#[derive(Parser, Clone, Debug)]
#[command(
    name = "bootstrap",
    version,
    after_help = "Lambda starts bootstrap without arguments: in a function only the settings shown with \
                  [env: ...] can be set (`bootstrap --list-env` names them); the others keep their defaults \
                  there and are flags for running the binary by hand."
)]
pub struct LambdaSettings {
    /// The event table (required): hydration reads it, due items and stamps go to it.
    #[arg(long, env = "TABLE_NAME", value_name = "TABLE")]
    pub table_name: Option<String>,
    /// The due index of the event table; `none` turns due items and the
    /// scheduled runs off.
    #[arg(long, env = "DUE_INDEX", default_value = DEFAULT_DUE_INDEX, value_name = "INDEX")]
    pub due_index: String,
    /// Customers read at once on a cold batch.
    #[arg(long, env = "HYDRATE_CONCURRENCY", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..))]
    pub hydrate_concurrency: u16,
    /// How far back a scheduled run reads the due index, in hours (at most
    /// a year: the longest timer interval; each run reads every due day in it).
    #[arg(long, env = "DUE_LOOKBACK_HOURS", default_value_t = 7 * 24, value_parser = clap::value_parser!(i64).range(0..=MAX_DUE_LOOKBACK_HOURS))]
    pub due_lookback_hours: i64,
    /// When silent customers are rescored.
    #[command(flatten)]
    pub timers: TimerArgs,
    /// `off`: no scoring (vectors and dead letters are then logged on stdout).
    #[arg(long, env = "SCORE", value_enum, ignore_case = true, default_value = "on")]
    pub score: Switch,
    /// `on`: also log every vector and dead letter as a JSON line on stdout;
    /// `auto` (the default): on when scoring is off.
    #[arg(long, env = "LOG_VECTORS", value_enum, ignore_case = true, default_value = "auto")]
    pub log_vectors: LogVectors,
    /// `off`: predictions and alerts without their reasons (cheaper scoring).
    #[arg(long, env = "REASONS", value_enum, ignore_case = true, default_value = "on")]
    pub reasons: Switch,
    /// Scoring's model and outputs.
    #[command(flatten)]
    pub output: OutputArgs,
    /// Print the resolved settings as JSON and exit.
    #[arg(long)]
    pub print_settings: bool,
    /// Print the names of the environment variables the function reads and exit.
    #[arg(long)]
    pub list_env: bool,
}

impl LambdaSettings {
    /// The settings the handler runs with; the error names the variable.
    pub fn resolve(self) -> Result<LambdaEnv> {
        let table = self
            .table_name
            .filter(|t| !t.is_empty())
            .context("TABLE_NAME is not set (--table-name): the function reads the event table to hydrate customers")?;
        let due_index = match self.due_index.as_str() {
            "" => Some(DEFAULT_DUE_INDEX.to_owned()),
            "none" => None,
            name => Some(name.to_owned()),
        };
        let config = LambdaConfig {
            engine: pulse_operators::EngineConfig { timers: self.timers.policy()? },
            hydrate_concurrency: usize::from(self.hydrate_concurrency),
            due_lookback_hours: self.due_lookback_hours,
        };
        let output = match self.score {
            Switch::Off => None,
            Switch::On => {
                let mut output = self.output;
                output.predictions_table =
                    Some(output.predictions_table.filter(|t| !t.is_empty()).unwrap_or_else(|| table.clone()));
                // An empty variable is as good as none (CloudFormation writes
                // "" for an optional parameter left blank).
                for value in
                    [&mut output.endpoint_name, &mut output.alerts_topic_arn, &mut output.dead_letter_queue_url]
                {
                    if value.as_deref() == Some("") {
                        *value = None;
                    }
                }
                // A function's metrics are EMF lines in its log, whatever the flag says.
                output.metrics = MetricsTarget::Emf;
                // Checked here, so --print-settings (the deployment's check)
                // refuses it, not only the cold start.
                output.hold_timeout()?;
                output.endpoint_config()?;
                output.check_destinations()?;
                Some(output)
            }
        };
        let log_vectors = match self.log_vectors {
            LogVectors::On => true,
            LogVectors::Off => false,
            LogVectors::Auto => output.is_none(),
        };
        // Neither scored nor logged, vectors and dead letters would go
        // nowhere, silently (and the dead-letter alarm could never fire).
        anyhow::ensure!(
            output.is_some() || log_vectors,
            "SCORE=off with LOG_VECTORS=off: the function would output nothing; set LOG_VECTORS=on (or leave it \
             unset) to log vectors and dead letters, or SCORE=on"
        );
        Ok(LambdaEnv { table, due_index, config, output, log_vectors, reasons: self.reasons == Switch::On })
    }

    /// The environment variable behind the setting a parse error refused
    /// (clap names its flag, `--no-timers`, where Lambda's user set
    /// `NO_TIMERS`); `None` for an error of no setting, or of one without a
    /// variable.
    pub fn variable_of(error: &clap::Error) -> Option<String> {
        let clap::error::ContextValue::String(flag) = error.get(clap::error::ContextKind::InvalidArg)? else {
            return None;
        };
        // "--endpoint-timeout-ms <MS>": the long name is the first word.
        let long = flag.split_whitespace().next()?.strip_prefix("--")?;
        let command = LambdaSettings::command();
        let arg = command.get_arguments().find(|a| a.get_long() == Some(long))?;
        Some(arg.get_env()?.to_string_lossy().into_owned())
    }

    /// The environment variables the function reads (its settings' and
    /// `RUST_LOG`, read by the log filter), sorted.
    pub fn env_names() -> Vec<String> {
        let mut names: Vec<String> = LambdaSettings::command()
            .get_arguments()
            .filter_map(|a| a.get_env())
            .map(|e| e.to_string_lossy().into_owned())
            .chain(["RUST_LOG".to_owned()])
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pulse_operators::TimerPolicy;

    fn settings(flags: &[&str]) -> Result<LambdaEnv> {
        let args = std::iter::once("bootstrap").chain(flags.iter().copied());
        LambdaSettings::try_parse_from(args)?.resolve()
    }

    #[test]
    fn defaults_are_the_handlers() {
        let e = settings(&["--table-name", "events"]).unwrap();
        assert_eq!(e.table, "events");
        assert_eq!(e.due_index.as_deref(), Some(DEFAULT_DUE_INDEX));
        assert_eq!(e.config, LambdaConfig::default());
        let output = e.output.unwrap();
        assert_eq!(output.predictions_table.as_deref(), Some("events"));
        assert_eq!(output.metrics, MetricsTarget::Emf);
        assert!(!e.log_vectors);
    }

    /// `--print-settings` shows each variable's value as it is given (the
    /// policy `hold`, not the enum's `Hold`), the hold timeout included,
    /// and refuses a lookback past a year.
    #[test]
    fn printed_settings_are_the_variables_values() {
        let e = settings(&["--table-name=t", "--hold-timeout-s=90", "--on-endpoint-down=fallback"]).unwrap();
        let json = e.to_json();
        assert_eq!(json["score"]["on_endpoint_down"], "fallback", "{json}");
        assert_eq!(json["score"]["hold_timeout_s"], 90.0, "{json}");
        assert!(settings(&["--table-name=t", "--due-lookback-hours=8761"]).is_err());
    }

    #[test]
    fn settings_take_the_clis_units() {
        let e = settings(&[
            "--table-name=t",
            "--due-index=none",
            "--hydrate-concurrency=4",
            "--due-lookback-hours=48",
            "--timer-interval-hours=1.5",
            "--score=off",
        ])
        .unwrap();
        assert_eq!(e.due_index, None);
        assert_eq!((e.config.hydrate_concurrency, e.config.due_lookback_hours), (4, 48));
        assert_eq!(
            e.config.engine.timers,
            TimerPolicy::Every { interval_ms: 5_400_000, max_silence_ms: 365 * 86_400_000 }
        );
        assert!(e.output.is_none() && e.log_vectors, "no scoring: vectors are logged");
        let auto = settings(&["--table-name=t", "--score=off", "--log-vectors=auto"]).unwrap();
        assert!(auto.output.is_none() && auto.log_vectors, "auto follows scoring");
        let scored = settings(&["--table-name=t", "--log-vectors=1"]).unwrap();
        assert!(scored.output.is_some() && scored.log_vectors);
    }

    #[test]
    fn bad_settings_say_which_and_why() {
        let err = |flags: &[&str]| format!("{:#}", settings(flags).unwrap_err());
        assert!(err(&[]).contains("TABLE_NAME"), "{}", err(&[]));
        assert!(err(&["--table-name=t", "--hydrate-concurrency=0"]).contains("hydrate-concurrency"));
        assert!(err(&["--table-name=t", "--due-lookback-hours=x"]).contains("due-lookback-hours"));
        assert!(err(&["--table-name=t", "--timer-interval-hours=0"]).contains("TIMER_INTERVAL_HOURS"));
        assert!(err(&["--table-name=t", "--score=maybe"]).contains("score"));
        for bad in ["--hold-timeout-s=-1", "--hold-timeout-s=1e30", "--hold-timeout-s=NaN"] {
            assert!(
                err(&["--table-name=t", bad]).contains("HOLD_TIMEOUT_S"),
                "{bad}: {}",
                err(&["--table-name=t", bad])
            );
        }
        for (bad, variable) in [
            ("--endpoint-timeout-ms=0", "endpoint-timeout-ms"),
            ("--endpoint-timeout-ms=900001", "endpoint-timeout-ms"),
            ("--endpoint-attempts=0", "endpoint-attempts"),
            ("--breaker-failures=0", "breaker-failures"),
            ("--breaker-cooldown-s=-1", "BREAKER_COOLDOWN_S"),
        ] {
            let said = err(&["--table-name=t", bad]);
            assert!(said.contains(variable), "{bad}: {said}");
        }
        for (bad, variable) in [
            ("--alerts-topic-arn=not-an-arn", "ALERTS_TOPIC_ARN"),
            ("--alerts-topic-arn=arn:aws:sqs:us-east-1:123456789012:q", "ALERTS_TOPIC_ARN"),
            ("--dead-letter-queue-url=foo", "DEAD_LETTER_QUEUE_URL"),
        ] {
            let said = err(&["--table-name=t", bad]);
            assert!(said.contains(variable), "{bad}: {said}");
        }
        assert!(settings(&["--table-name=t", "--score=OFF"]).is_ok_and(|e| e.output.is_none()), "any case");
        let nothing = err(&["--table-name=t", "--score=off", "--log-vectors=0"]);
        assert!(nothing.contains("SCORE=off with LOG_VECTORS=off"), "{nothing}");
    }

    #[test]
    fn every_variable_is_listed() {
        let names = LambdaSettings::env_names();
        for name in [
            "TABLE_NAME",
            "DUE_INDEX",
            "HYDRATE_CONCURRENCY",
            "DUE_LOOKBACK_HOURS",
            "TIMER_INTERVAL_HOURS",
            "SCORE",
            "LOG_VECTORS",
            "ENDPOINT_NAME",
            "ON_ENDPOINT_DOWN",
            "HOLD_TIMEOUT_S",
            "ENDPOINT_TIMEOUT_MS",
            "ENDPOINT_ATTEMPTS",
            "BREAKER_FAILURES",
            "BREAKER_COOLDOWN_S",
            "NO_TIMERS",
            "REASONS",
            "PREDICTIONS_TABLE",
            "ALERTS_TOPIC_ARN",
            "DEAD_LETTER_QUEUE_URL",
            "RUST_LOG",
        ] {
            assert!(names.iter().any(|n| n == name), "{name} missing from {names:?}");
        }
        assert_eq!(names.len(), 20, "{names:?}");
    }
}
