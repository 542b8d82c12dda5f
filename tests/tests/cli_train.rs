//! The model path on a capture made by `pulse capture` from the local
//! server: a table loaded with a synthetic marketplace's history, its
//! stream captured, then `pulse dataset`, `pulse train --capture` and
//! `pulse evaluate --capture` on that capture, as a user adopting pulse
//! would run them on their own table.

mod common;

use std::path::Path;
use std::process::Command;

use common::{aws_env, describe, pulse_bin, run_pulse};
use pulse_e2e::unique_name;

fn pulse_aws(args: &[&str]) -> std::process::Output {
    aws_env(Command::new(pulse_bin()).args(args)).output().expect("pulse runs")
}

fn ok(out: std::process::Output, what: &str) -> String {
    assert!(out.status.success(), "{what} failed:\n{}", describe(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn dataset_train_and_evaluate_run_on_a_capture_of_the_local_servers_stream() {
    let dir = tempfile::tempdir().unwrap();
    let (history, capture) = (dir.path().join("history.jsonl"), dir.path().join("capture.jsonl"));
    let table = unique_name("train");
    ok(
        run_pulse([
            "generate",
            "--customers",
            "40",
            "--days",
            "62",
            "--seed",
            "5",
            "--hostility",
            "none",
            "--quiet",
            "--out",
            s(&history),
        ]),
        "generate",
    );
    ok(pulse_aws(&["setup", "--table", &table, "--load", s(&history)]), "setup --load");
    ok(
        pulse_aws(&[
            "capture",
            "--source",
            "dynamodb-streams",
            "--table",
            &table,
            "--idle-exit-s",
            "2",
            "--poll-max-ms",
            "100",
            "--out",
            s(&capture),
        ]),
        "capture",
    );

    // The table's records were all created in the last minutes; the rows
    // still span the history, in event time.
    let rows = dir.path().join("rows.csv");
    let said =
        ok(run_pulse(["dataset", s(&capture), "--event-sample-every", "1", "--quiet", "--out", s(&rows)]), "dataset");
    let text = std::fs::read_to_string(&rows).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(&header[..5], ["customer_id", "as_of", "trigger", "split", "period"]);
    assert_eq!(header.len(), 5 + 46 + 5, "{said}");
    let body: Vec<&str> = lines.collect();
    assert!(body.len() > 100, "labelled rows from the capture: {said}");
    assert!(body.iter().all(|l| !l.ends_with(',')), "every written row has its labels");

    let model = dir.path().join("model");
    let report = dir.path().join("report.md");
    let said = ok(
        run_pulse([
            "train",
            "--capture",
            s(&capture),
            "--event-sample-every",
            "1",
            "--kinds",
            "constant,recency,logistic,gbt",
            "--max-trees",
            "30",
            "--resamples",
            "20",
            "--quiet",
            "--out",
            s(&model),
            "--report",
            s(&report),
        ]),
        "train --capture",
    );
    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(model.join("model.json")).unwrap()).unwrap();
    assert!(["gbt", "logistic"].contains(&meta["kind"].as_str().unwrap()), "a servable kind was shipped: {said}");
    let report = std::fs::read_to_string(&report).unwrap();
    assert!(report.contains("| churn_risk_14d | recency |") && report.contains("95% interval"), "{report}");
    // 62 days leave no room for an out-of-time split: said so, not failed.
    assert!(report.contains("## out of time") && report.contains("Skipped"), "{report}");
    assert!(dir.path().join("report-figures/in-time-roc-churn_risk_14d.svg").exists());

    let said = ok(
        run_pulse([
            "evaluate",
            "--capture",
            s(&capture),
            "--event-sample-every",
            "1",
            "--model",
            s(&model),
            "--baselines",
            "constant,recency",
            "--resamples",
            "20",
            "--quiet",
        ]),
        "evaluate --capture",
    );
    assert!(said.contains(&format!("model ({})", model.display())), "{said}");

    let bad = run_pulse(["train", "--capture", s(&dir.path().join("missing.jsonl")), "--out", s(&model), "--quiet"]);
    assert!(!bad.status.success() && describe(&bad).contains("missing.jsonl"), "{}", describe(&bad));
}

/// A capture too short for any labelled row (45 days: a 21-day burn-in and
/// a 30-day horizon need more than 51) is refused with the reason, not
/// written as an empty dataset.
#[test]
fn dataset_refuses_a_capture_too_short_for_labels_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let (capture, rows) = (dir.path().join("short.jsonl"), dir.path().join("rows.csv"));
    let args = ["generate", "--customers", "30", "--days", "45", "--seed", "1", "--quiet", "--out", s(&capture)];
    ok(run_pulse(args), "generate");
    let out = run_pulse(["dataset", s(&capture), "--quiet", "--out", s(&rows)]);
    assert!(!out.status.success(), "a dataset of no rows was accepted:\n{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no labelled rows") && stderr.contains("more than 51 days"), "{stderr}");
    // With --all-rows the rows are still worth writing (without labels).
    let out = run_pulse(["dataset", s(&capture), "--quiet", "--all-rows", "--out", s(&rows)]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(std::fs::read_to_string(&rows).unwrap().lines().count() > 1);
}
