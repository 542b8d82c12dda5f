//! A restarted sink goes on where the last one stopped, against the local
//! server: a customer's anchors (what its reasons compare with) and its ring
//! in the model monitor are stored with its predictions and read back before
//! the new sink scores it, so a run cut in two by a restart (a recycled
//! Lambda environment) writes the same predictions, reasons and memory, and
//! reports the same realised model quality, as one run.

mod output_support;

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use output_support::*;
use pulse_aws::output::backend::ModelBackend;
use pulse_aws::output::predictions::PredictionWriter;
use pulse_aws::output::sink::{Destinations, ScoringSink};
use pulse_operators::scoring::MonitorConfig;
use pulse_runtime::process::Produced;
use pulse_runtime::sink::Sink;
use pulse_schemas::DAY_MS;

/// Monday 2025-01-06 00:00 UTC.
const T0: i64 = 1_736_121_600_000;
const DAYS: i64 = 42;
const RESTART_DAY: i64 = 25;

fn sink(sdk: &aws_config::SdkConfig, table: &str) -> ScoringSink {
    sink_with_burn_in(sdk, table, 0)
}

fn sink_with_burn_in(sdk: &aws_config::SdkConfig, table: &str, burn_in_days: u32) -> ScoringSink {
    let out = Destinations {
        predictions: Some(PredictionWriter::new(aws_sdk_dynamodb::Client::new(sdk), table, 8)),
        ..nowhere()
    };
    let mut config = sink_config(64, Duration::from_secs(5));
    // A window that starts after the restart: what a restarted sink reports
    // there depends on the rings it read back.
    config.scoring.monitor = Some(MonitorConfig { window_days: 14 });
    config.scoring.burn_in_days = burn_in_days;
    ScoringSink::new(ModelBackend::Embedded(embedded()), out, config).unwrap()
}

/// Day `d`'s vectors: `a` drifts away from day 10, `b` stays active, `c`
/// comes and goes.
fn day(d: i64) -> Vec<pulse_schemas::FeatureVector> {
    let t = T0 + d * DAY_MS + 12 * 3_600_000;
    vec![
        vector("a", t, (d - 10).max(0) as f64 + 0.5),
        vector("b", t + 1, 1.0 + (d % 3) as f64),
        vector("c", t + 2, if (d / 7) % 2 == 0 { 2.0 + (d % 7) as f64 } else { 15.0 + (d % 7) as f64 }),
    ]
}

async fn run(sink: &mut ScoringSink, days: std::ops::Range<i64>) {
    for d in days {
        sink.send(Produced { vectors: day(d), dead: vec![] }).await.unwrap();
        sink.flush().await.unwrap();
    }
}

async fn items(sdk: &aws_config::SdkConfig, table: &str) -> Vec<HashMap<String, AttributeValue>> {
    let dynamo = aws_sdk_dynamodb::Client::new(sdk);
    let mut out = Vec::new();
    for c in ["a", "b", "c"] {
        let mut item = prediction_item(&dynamo, table, c).await.expect("a stored prediction");
        // Alert bookkeeping aside, the items must agree.
        item.retain(|k, _| !k.starts_with("last_alert"));
        out.push(item);
    }
    out
}

#[tokio::test]
async fn a_restart_changes_no_prediction_reason_or_quality_figure() {
    let sdk = sdk().await;
    let (whole, cut) = (table(&sdk).await, table(&sdk).await);

    let mut one = sink(&sdk, &whole);
    run(&mut one, 0..DAYS).await;
    one.finish().await.unwrap();

    let mut first = sink(&sdk, &cut);
    run(&mut first, 0..RESTART_DAY).await;
    first.finish().await.unwrap();
    drop(first);
    let mut second = sink(&sdk, &cut);
    run(&mut second, RESTART_DAY..DAYS).await;
    second.finish().await.unwrap();

    let (want, got) = (items(&sdk, &whole).await, items(&sdk, &cut).await);
    for (w, g) in want.iter().zip(&got) {
        assert!(w.contains_key("reasons") && w.contains_key("memory"), "{w:?}");
        assert_eq!(g, w, "the last prediction, its reasons and its memory");
    }
    let quality = one.model_quality().expect("the monitor ran");
    let resolved: u64 = quality.heads.iter().map(|h| h.count).sum();
    assert!(resolved >= 3 * 14, "every customer's 14-day predictions resolved daily: {quality:?}");
    assert_eq!(second.model_quality(), Some(quality), "the same labels resolved after the restart");
    let stats = second.stats();
    assert_eq!(stats.customers_read, 3, "each customer read back once");
    assert_eq!(stats.memories_unreadable, 0);
    assert!(stats.anchors_written >= 3, "anchors stored again as the weeks turn: {stats:?}");
}

/// A run that started cold (`pulse run` without its customers' history:
/// a 21-day burn-in) and restarts inside its burn-in, resuming (burn-in 0,
/// the default when it resumes): the restarted run reads the burn-in's end
/// back with the rings and keeps it, so it judges what one whole run
/// judges, not the midnights the first run had set aside.
#[tokio::test]
async fn a_restart_inside_the_burn_in_keeps_it() {
    const BURN_IN: u32 = 21;
    const EARLY_RESTART: i64 = 10;
    let sdk = sdk().await;
    let (whole, cut) = (table(&sdk).await, table(&sdk).await);

    let mut one = sink_with_burn_in(&sdk, &whole, BURN_IN);
    run(&mut one, 0..DAYS).await;
    one.finish().await.unwrap();

    let mut first = sink_with_burn_in(&sdk, &cut, BURN_IN);
    run(&mut first, 0..EARLY_RESTART).await;
    first.finish().await.unwrap();
    drop(first);
    let mut second = sink_with_burn_in(&sdk, &cut, 0);
    run(&mut second, EARLY_RESTART..DAYS).await;
    second.finish().await.unwrap();

    let quality = one.model_quality().expect("the monitor ran");
    let end_of_burn_in = (T0 / DAY_MS + i64::from(BURN_IN)) * DAY_MS;
    assert_eq!(quality.judged_from, Some(end_of_burn_in), "{quality:?}");
    assert!(quality.heads.iter().map(|h| h.count).sum::<u64>() > 0, "something judged: {quality:?}");
    assert_eq!(second.model_quality(), Some(quality), "the same midnights judged after the restart");
    assert_eq!(items(&sdk, &cut).await, items(&sdk, &whole).await, "the same items, the burn-in's end in their memory");
}

async fn send(sink: &mut ScoringSink, v: pulse_schemas::FeatureVector) {
    sink.send(Produced { vectors: vec![v], dead: vec![] }).await.unwrap();
    sink.flush().await.unwrap();
}

/// Two Lambda environments share a customer: the one that held it while it
/// was new is told (`Sink::forget`) that the other scored it since, and
/// reads the stored alert state back instead of alerting a second time.
#[tokio::test]
async fn a_forgotten_customer_reads_its_alert_state_back_instead_of_alerting_twice() {
    let sdk = sdk().await;
    let new_customer = |t: i64| {
        let mut v = vector("n", t, 365.0);
        v.features[pulse_schemas::features::idx::TENURE_DAYS] = 1.0;
        assert!(pulse_schemas::features::is_new_customer(&v.features));
        v
    };
    let mut alerts = Vec::new();
    for forget in [false, true] {
        let table = table(&sdk).await;
        let (mut here, mut there) = (sink(&sdk, &table), sink(&sdk, &table));
        // Here: the signup, new (no alert, no baseline).
        send(&mut here, new_customer(T0)).await;
        // There: a week on, no session: the first real score is high.
        send(&mut there, vector("n", T0 + 8 * DAY_MS, 20.0)).await;
        assert_eq!(there.stats().alerts, 1, "the new customer's first real score alerts");
        if forget {
            here.forget(vec!["n".to_owned()]).await.unwrap();
        }
        // Here again, later, still high.
        send(&mut here, vector("n", T0 + 9 * DAY_MS, 21.0)).await;
        alerts.push(here.stats().alerts);
        let stats = here.stats();
        assert_eq!(stats.alert_states_forgotten, u64::from(forget), "{stats:?}");
    }
    assert_eq!(alerts, [1, 0], "a second alert from the stale state, none once it is forgotten");
}

/// A new customer's signup and its first real vector in one step: the new
/// vector is coalesced away before scoring, and the sink still judges the
/// first prediction (noted on arrival) instead of taking it as a baseline.
#[tokio::test]
async fn a_new_customer_coalesced_in_one_step_is_judged_by_the_sink() {
    let sdk = sdk().await;
    let table = table(&sdk).await;
    let out = Destinations {
        predictions: Some(PredictionWriter::new(aws_sdk_dynamodb::Client::new(&sdk), table.as_str(), 8)),
        ..nowhere()
    };
    let mut config = sink_config(64, Duration::from_secs(5));
    // A linger long enough that a step's vectors of one customer coalesce.
    config.scoring.batch.max_linger_ms = 60_000;
    let mut sink = ScoringSink::new(ModelBackend::Embedded(embedded()), out, config).unwrap();
    let mut new = vector("n", T0, 365.0);
    new.features[pulse_schemas::features::idx::TENURE_DAYS] = 1.0;
    assert!(pulse_schemas::features::is_new_customer(&new.features));
    let real = vector("n", T0 + 8 * DAY_MS, 20.0);
    // The same real vector of a customer met mid-life: a baseline.
    let met = vector("m", T0 + 8 * DAY_MS, 20.0);
    sink.send(Produced { vectors: vec![new, real, met], dead: vec![] }).await.unwrap();
    sink.flush().await.unwrap();
    let stats = sink.stats();
    assert_eq!(stats.predictions, 2, "n's new vector coalesced into its real one: {stats:?}");
    assert_eq!(stats.alerts, 1, "n judged, m a baseline: {stats:?}");
}
