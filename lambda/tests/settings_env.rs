//! The function's settings as Lambda gives them: environment variables only
//! (`bootstrap` is started without arguments), read by the built binary.

use std::process::Command;

/// `bootstrap --print-settings` with exactly these variables: its JSON, or
/// what it said on stderr.
fn print_settings(vars: &[(&str, &str)]) -> Result<serde_json::Value, String> {
    let out = Command::new(env!("CARGO_BIN_EXE_bootstrap"))
        .arg("--print-settings")
        .env_clear()
        .env("TABLE_NAME", "events")
        .envs(vars.iter().copied())
        .output()
        .expect("bootstrap runs");
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).expect("JSON settings"))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// The endpoint's retries and breaker, and timers off, can be set where a
/// deployment sets things (they were flags of `pulse run` only); defaults
/// are the command line's.
#[test]
fn the_endpoints_and_the_timers_settings_come_from_the_environment() {
    let defaults = print_settings(&[]).unwrap();
    assert_eq!(defaults["score"]["breaker_cooldown_s"], 30.0, "{defaults}");
    assert_eq!(defaults["score"]["endpoint_attempts"], 4, "{defaults}");
    assert!(defaults["timers"].is_object(), "timers on by default: {defaults}");
    assert_eq!(defaults["score"]["reasons"], true, "{defaults}");
    assert_eq!(print_settings(&[("REASONS", "off")]).unwrap()["score"]["reasons"], false);

    let set = print_settings(&[
        ("NO_TIMERS", "true"),
        ("ENDPOINT_TIMEOUT_MS", "2500"),
        ("ENDPOINT_ATTEMPTS", "2"),
        ("BREAKER_FAILURES", "3"),
        ("BREAKER_COOLDOWN_S", "90"),
    ])
    .unwrap();
    assert!(set["timers"].is_null(), "{set}");
    let score = &set["score"];
    assert_eq!(
        (&score["endpoint_timeout_ms"], &score["endpoint_attempts"], &score["breaker_failures"]),
        (&2500.into(), &2.into(), &3.into()),
        "{set}"
    );
    assert_eq!(score["breaker_cooldown_s"], 90.0, "{set}");
    assert!(print_settings(&[("NO_TIMERS", "false")]).unwrap()["timers"].is_object());
}

/// A value the function cannot use stops it where a deployment checks it,
/// and the message names the variable.
#[test]
fn a_bad_value_names_its_variable() {
    for (name, value) in [
        ("NO_TIMERS", "maybe"),
        ("REASONS", "maybe"),
        ("ENDPOINT_TIMEOUT_MS", "0"),
        ("ENDPOINT_ATTEMPTS", "0"),
        ("BREAKER_FAILURES", "0"),
        ("BREAKER_COOLDOWN_S", "-1"),
        ("BREAKER_COOLDOWN_S", "soon"),
    ] {
        let said = print_settings(&[(name, value)]).expect_err(&format!("{name}={value} refused"));
        assert!(said.contains(name), "{name}={value}: {said}");
    }
    // Timers off, and an interval asked for: they contradict each other.
    let said = print_settings(&[("NO_TIMERS", "true"), ("TIMER_INTERVAL_HOURS", "6")]).unwrap_err();
    assert!(said.contains("contradict"), "{said}");
}
