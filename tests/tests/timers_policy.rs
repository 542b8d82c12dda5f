//! Timers on stream time (§3 "On time", `operators/src/timers.rs`), end to end
//! through the decode → engine step the replay uses (`pulse_runtime::process`), the
//! library replay and the `pulse` binary.
//!
//! Stream time is the largest `ApproximateCreationDateTime` seen; before each
//! record, every timer due at or before its creation time fires. Captures
//! here have a silent customer and a busy one whose records (every 6 hours)
//! move stream time forward. The tests prove that:
//!
//! * a silent customer gets `timer` vectors at exactly `last_as_of +
//!   interval`, `+ 2·interval`, …, each fired just before the first record
//!   created at or after its due time (and carrying that record's line);
//! * each timer vector equals `Engine::features_at(customer, T)` bit for bit
//!   and the naive reference model's features at `T` (all 46), so events
//!   leave windows on time (a session at `T − 7d` is out of `W_7`);
//! * timers stop once the customer has been silent for more than
//!   `max_silence_ms`; a new event reschedules them (no vector at the old due
//!   time), and a delayed event keeps the cadence of the vectors already out;
//! * timers due at the same time fire in `(due, customer_id)` order;
//! * `TimerPolicy::Off` emits no timer vectors and the same event vectors;
//! * the library replay writes the same vectors as the step, and the CLI's
//!   `--no-timers` emits none while `--timer-interval-hours` sets the cadence.

mod common;

use common::support::assert_features_close;
use common::support::reference::Reference;
use common::{
    describe, insert_line, login_line, replay_capture, run_pulse, session_attrs, session_line, write_file, Driver, D,
    H, MIN, T0,
};
use pulse_operators::TimerPolicy;
use pulse_runtime::process::write_vector_line;
use pulse_schemas::capture::decode_line;
use pulse_schemas::features::idx::*;
use pulse_schemas::{FeatureVector, Trigger};

/// The silent customer's first (and, in most tests, only) event time.
const Q: i64 = T0 + 10 * H;

/// Logins of `stu_busy` every 6 hours over `[from, to)`, each created a minute
/// after its `ts`: they move stream time forward.
fn busy(from: i64, to: i64) -> Vec<(i64, String)> {
    (0..)
        .map(|j| from + j * 6 * H)
        .take_while(|&t| t < to)
        .map(|t| (t + MIN, login_line("stu_busy", &format!("b{t}"), t)))
        .collect()
}

/// Lines ordered by creation time (stable: ties keep their order).
fn capture(mut timed: Vec<(i64, String)>) -> Vec<String> {
    timed.sort_by_key(|(created, _)| *created);
    timed.into_iter().map(|(_, line)| line).collect()
}

/// Drives the lines through the replay's decode → engine step, checking every
/// timer vector against `Engine::features_at` and the reference (state before
/// the record it fired ahead of), and every event vector against the
/// reference. Returns every vector.
fn drive(lines: &[String], timers: TimerPolicy) -> Vec<FeatureVector> {
    let mut driver = Driver::new(timers);
    let mut reference = Reference::new();
    let mut all = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let no = i as u64 + 1;
        let out = driver.line(no, line.as_bytes());
        let record = decode_line(line.as_bytes()).expect("the test captures are valid");
        let record_customer = record.change.customer_id().map(str::to_owned);
        for v in out.vectors.iter().filter(|v| v.trigger == Trigger::Timer) {
            let c = v.customer_id.as_str();
            let context = format!("line {no}: timer of {c} at {}", v.as_of);
            let r = reference.features_at(c, v.as_of).expect("a timer of a known customer, at or after its clock");
            assert_features_close(&v.features, &r, &format!("{context} vs the reference"));
            if record_customer.as_deref() != Some(c) {
                assert_eq!(Some(v.features), driver.engine.features_at(c, v.as_of), "{context} vs features_at");
            }
        }
        let events: Vec<&FeatureVector> = out.vectors.iter().filter(|v| v.trigger == Trigger::Event).collect();
        match reference.apply(&record.change) {
            Some(e) => {
                assert_eq!(events.len(), 1, "line {no}: one event vector");
                assert_eq!((events[0].customer_id.as_str(), events[0].as_of), (e.customer_id.as_str(), e.as_of));
                assert_features_close(&events[0].features, &e.features, &format!("line {no}: event vector"));
            }
            None => assert!(events.is_empty(), "line {no}: no event vector"),
        }
        all.extend(out.vectors);
    }
    all
}

/// `(trigger, as_of)` of one customer's vectors, in order.
fn of(vectors: &[FeatureVector], customer: &str) -> Vec<(Trigger, i64)> {
    vectors.iter().filter(|v| v.customer_id.as_str() == customer).map(|v| (v.trigger, v.as_of)).collect()
}

/// The line (1-based) of the first record created at or after `due`.
fn first_line_created_at_or_after(lines: &[String], due: i64) -> u64 {
    let i = lines
        .iter()
        .position(|l| decode_line(l.as_bytes()).unwrap().created_ms.unwrap() >= due as f64)
        .expect("stream time reaches the due time");
    i as u64 + 1
}

fn every_day_until_silent(max_silence_days: i64) -> TimerPolicy {
    TimerPolicy::Every { interval_ms: D, max_silence_ms: max_silence_days * D }
}

#[test]
fn timers_fire_at_last_as_of_plus_interval_on_stream_time() {
    let mut timed = busy(T0, T0 + 9 * D);
    timed.push((Q + MIN, session_line("stu_quiet", "q1", "tut_1", 45.0, Q)));
    let lines = capture(timed);
    let vectors = drive(&lines, TimerPolicy::default());

    // Stream time ends at the last busy record's creation, T0+9D−6h+1min =
    // Q+8D+8h+1min: Q+8D is reached, Q+9D is not.
    let mut want = vec![(Trigger::Event, Q)];
    want.extend((1..=8).map(|k| (Trigger::Timer, Q + k * D)));
    assert_eq!(of(&vectors, "stu_quiet"), want);
    // The busy customer has an event every 6 hours: never silent for a day.
    assert!(of(&vectors, "stu_busy").iter().all(|(t, _)| *t == Trigger::Event));

    for v in vectors.iter().filter(|v| v.customer_id.as_str() == "stu_quiet" && v.trigger == Trigger::Timer) {
        let k = (v.as_of - Q) / D;
        assert_eq!(v.source.line, Some(first_line_created_at_or_after(&lines, v.as_of)), "timer at Q+{k}D");
        let f = &v.features;
        assert_eq!(f[DAYS_SINCE_LAST_SESSION], k as f64, "timer at Q+{k}D");
        assert_eq!(f[TENURE_DAYS], k as f64, "timer at Q+{k}D");
        // W_7 = (T−7d, T]: the session at Q is in it until T = Q+7D, where it
        // sits exactly on the excluded edge.
        let in_w7 = if k < 7 { 1.0 } else { 0.0 };
        assert_eq!(f[SESSIONS_7D], in_w7, "timer at Q+{k}D");
        assert_eq!(f[SESSION_MINUTES_7D], 45.0 * in_w7, "timer at Q+{k}D");
        assert_eq!(f[SESSIONS_14D], 1.0, "timer at Q+{k}D");
    }

    // The library replay, through files and threads, writes the same vectors.
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(dir.path(), "timers.jsonl", (lines.join("\n") + "\n").as_bytes());
    let replayed = replay_capture(&path, TimerPolicy::default());
    let mut expected = Vec::new();
    vectors.iter().for_each(|v| write_vector_line(v, &mut expected));
    assert!(replayed.features_bytes == expected, "the replay's vectors differ from the step's");
    assert_eq!(replayed.summary.vectors_timer, 8);
}

#[test]
fn timers_stop_after_max_silence_and_resume_on_a_new_event() {
    let mut timed = busy(T0, T0 + 13 * D);
    timed.push((Q + MIN, session_line("stu_quiet", "q1", "tut_1", 45.0, Q)));
    timed.push((Q + 6 * D + MIN, login_line("stu_quiet", "q2", Q + 6 * D)));
    let lines = capture(timed);
    let vectors = drive(&lines, every_day_until_silent(3));
    // Due times while silent for at most 3 days after the clock: C+1D..C+3D.
    let want = vec![
        (Trigger::Event, Q),
        (Trigger::Timer, Q + D),
        (Trigger::Timer, Q + 2 * D),
        (Trigger::Timer, Q + 3 * D),
        // Q+4D would be 4 days of silence: none. The new event's clock is Q+6D.
        (Trigger::Event, Q + 6 * D),
        (Trigger::Timer, Q + 7 * D),
        (Trigger::Timer, Q + 8 * D),
        (Trigger::Timer, Q + 9 * D),
    ];
    assert_eq!(of(&vectors, "stu_quiet"), want);
}

#[test]
fn a_new_event_reschedules_and_a_delayed_one_keeps_the_cadence() {
    let mut timed = busy(T0, T0 + 7 * D);
    timed.push((Q + MIN, session_line("stu_quiet", "q1", "tut_1", 45.0, Q)));
    // After the timers at Q+1D and Q+2D: a new login at Q+2D+6h.
    timed.push((Q + 2 * D + 6 * H + MIN, login_line("stu_quiet", "q2", Q + 2 * D + 6 * H)));
    // Then a session that happened at Q+3D but arrives 3 hours later, after the
    // timer at Q+3D+6h has fired (valid: not in the future of its record).
    let delayed = insert_line(
        "stu_quiet",
        "q3",
        "session_completed",
        Q + 3 * D,
        Q + 3 * D + 9 * H,
        &session_attrs("tut_2", 30.0),
    );
    timed.push((Q + 3 * D + 9 * H, delayed));
    let lines = capture(timed);
    let vectors = drive(&lines, TimerPolicy::default());
    let want = vec![
        (Trigger::Event, Q),
        (Trigger::Timer, Q + D),
        (Trigger::Timer, Q + 2 * D),
        // The login moves the clock to Q+2D+6h: the next timer is a day after
        // it, and nothing is emitted at the old due time Q+3D.
        (Trigger::Event, Q + 2 * D + 6 * H),
        (Trigger::Timer, Q + 3 * D + 6 * H),
        // The delayed session: one vector as of the clock, now Q+3D (earlier
        // than the last timer vector, as the contract's T = C says).
        (Trigger::Event, Q + 3 * D),
        // The cadence goes on from the latest vector, Q+3D+6h, while stream
        // time lasts (the last busy record is created at Q+6D+8h+1min).
        (Trigger::Timer, Q + 4 * D + 6 * H),
        (Trigger::Timer, Q + 5 * D + 6 * H),
        (Trigger::Timer, Q + 6 * D + 6 * H),
    ];
    assert_eq!(of(&vectors, "stu_quiet"), want);
    let last = vectors.iter().rfind(|v| v.customer_id.as_str() == "stu_quiet").unwrap();
    assert_eq!(last.features[SESSIONS_7D], 2.0, "the delayed session counts from then on");
}

#[test]
fn timers_due_together_fire_in_due_then_customer_order() {
    let x = T0 + 12 * H;
    let mut timed = busy(T0, T0 + 4 * D);
    // Arrival order b, a, c; stu_c's event is an hour older, so it is due first.
    timed.push((x + MIN, login_line("stu_b", "b1", x)));
    timed.push((x + 2 * MIN, insert_line("stu_a", "a1", "login", x, x + 2 * MIN, &[])));
    timed.push((x + 3 * MIN, insert_line("stu_c", "c1", "login", x - H, x + 3 * MIN, &[])));
    let lines = capture(timed);
    let vectors = drive(&lines, TimerPolicy::default());
    let timers: Vec<(i64, &str)> = vectors
        .iter()
        .filter(|v| v.trigger == Trigger::Timer && v.customer_id.as_str() != "stu_busy")
        .map(|v| (v.as_of, v.customer_id.as_str()))
        .collect();
    let mut want = Vec::new();
    for k in 1..=3 {
        want.extend([(x - H + k * D, "stu_c"), (x + k * D, "stu_a"), (x + k * D, "stu_b")]);
    }
    assert_eq!(timers, want);
    // Each day's three fire before the same busy record (created at x+kD+1min).
    for k in 1..=3 {
        let lines_of: Vec<Option<u64>> = vectors
            .iter()
            .filter(|v| v.trigger == Trigger::Timer && (v.as_of - x + H) / D == k)
            .map(|v| v.source.line)
            .collect();
        assert!(lines_of.windows(2).all(|w| w[0] == w[1]), "day {k}: {lines_of:?}");
    }
}

#[test]
fn timer_policy_off_emits_only_the_event_vectors() {
    let mut timed = busy(T0, T0 + 5 * D);
    timed.push((Q + MIN, session_line("stu_quiet", "q1", "tut_1", 45.0, Q)));
    let lines = capture(timed);
    let with = drive(&lines, TimerPolicy::default());
    let without = drive(&lines, TimerPolicy::Off);
    assert!(without.iter().all(|v| v.trigger == Trigger::Event));
    let events: Vec<FeatureVector> = with.into_iter().filter(|v| v.trigger == Trigger::Event).collect();
    assert_eq!(without, events);
}

#[test]
fn cli_no_timers_and_timer_interval() {
    let mut timed = busy(T0, T0 + 4 * D);
    timed.push((Q + MIN, session_line("stu_quiet", "q1", "tut_1", 45.0, Q)));
    let lines = capture(timed);
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(dir.path(), "timers.jsonl", (lines.join("\n") + "\n").as_bytes());
    let replay = |name: &str, extra: &[&str]| -> Vec<FeatureVector> {
        let out_path = dir.path().join(name);
        let mut args = vec!["replay".as_ref(), path.as_os_str(), "--features-out".as_ref(), out_path.as_os_str()];
        args.extend(extra.iter().map(|a| std::ffi::OsStr::new(*a)));
        args.push("--quiet".as_ref());
        let out = run_pulse(&args);
        assert!(out.status.success(), "{}", describe(&out));
        common::parse_vectors(&std::fs::read(out_path).unwrap())
    };
    let default = replay("default.jsonl", &[]);
    let timers: Vec<i64> =
        of(&default, "stu_quiet").iter().filter(|(t, _)| *t == Trigger::Timer).map(|(_, a)| *a).collect();
    assert_eq!(timers, vec![Q + D, Q + 2 * D, Q + 3 * D], "daily by default");

    let none = replay("none.jsonl", &["--no-timers"]);
    assert!(none.iter().all(|v| v.trigger == Trigger::Event), "--no-timers emits no timer vectors");
    assert_eq!(none.len(), lines.len(), "one event vector per record");

    let six_hours = replay("six.jsonl", &["--timer-interval-hours", "6"]);
    let timers: Vec<i64> =
        of(&six_hours, "stu_quiet").iter().filter(|(t, _)| *t == Trigger::Timer).map(|(_, a)| *a).collect();
    // Until the last busy record's creation, T0+4D−6h+1min: Q+6h … Q+13·6h.
    let want: Vec<i64> = (1..=13).map(|k| Q + k * 6 * H).collect();
    assert_eq!(timers, want, "every 6 hours");
}

/// `--timer-interval-hours` accepts any positive number of hours, but the
/// interval is rounded to whole milliseconds: 1e-7 h is 0.36 ms, rounded to
/// 0. The run must either refuse the flag (naming it) or finish; it is given
/// 20 s for a 31-line capture that replays in milliseconds.
#[test]
fn cli_timer_interval_that_rounds_to_zero_is_refused_or_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let features = dir.path().join("features.jsonl");
    let mut child = std::process::Command::new(common::pulse_bin())
        .args(["replay".as_ref(), common::fixture("golden.jsonl").as_os_str()])
        .args(["--features-out".as_ref(), features.as_os_str()])
        .args(["--timer-interval-hours", "0.0000001", "--quiet"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the pulse binary runs");
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > std::time::Duration::from_secs(20) {
            child.kill().unwrap();
            child.wait().unwrap();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let status = status.expect("pulse replay --timer-interval-hours 0.0000001 did not finish within 20 s");
    if !status.success() {
        let mut message = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut message).unwrap();
        assert!(message.contains("--timer-interval-hours"), "the refusal names the flag: {message}");
    }
}
