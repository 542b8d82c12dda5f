//! `OutputArgs::build` wires a working sink from flags, as `pulse run`
//! will: with no endpoint named, the embedded model scores, and predictions,
//! alerts and dead letters reach the local server through the same path as
//! with an endpoint.

mod output_support;

use clap::Parser;
use output_support::*;
use pulse_aws::output::args::OutputArgs;
use pulse_e2e::unique_name;
use pulse_runtime::process::{DeadLetter, Produced};
use pulse_runtime::sink::Sink;
use pulse_schemas::record::{Invalid, InvalidReason};
use pulse_schemas::Source;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    out: OutputArgs,
}

#[tokio::test]
async fn flags_build_a_sink_that_scores_and_publishes() {
    let sdk = sdk().await;
    let table = table(&sdk).await;
    let topic =
        aws_sdk_sns::Client::new(&sdk).create_topic().name(unique_name("t")).send().await.unwrap().topic_arn.unwrap();
    let (queue_url, _) = queue(&sdk).await;
    let (fleet, health) = (unique_name("fleet"), unique_name("health"));
    let cli = Cli::parse_from([
        "pulse",
        "--predictions-table",
        &table,
        "--alerts-topic-arn",
        &topic,
        "--dead-letter-queue-url",
        &queue_url,
        "--metrics-namespace",
        &fleet,
        "--health-namespace",
        &health,
    ]);
    let mut sink = cli.out.build(&sdk, scoring(64), embedded()).await.expect("built");
    // a's first prediction is its baseline; it alerts when it rises.
    sink.send(Produced { vectors: vec![vector("a", 5, 1.0)], dead: vec![] }).await.unwrap();
    let vectors = vec![vector("a", 10, 40.0), vector("b", 10, 1.0)];
    let dead = vec![DeadLetter {
        source: Source { sequence_number: Some("9".into()), ..Source::default() },
        invalid: Invalid { reason: InvalidReason::MissingCreationTime },
        raw: br#"{"eventName":"INSERT"}"#.to_vec(),
    }];
    sink.send(Produced { vectors, dead }).await.unwrap();
    sink.flush().await.unwrap();

    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    for customer in ["a", "b"] {
        let item = prediction_item(&dynamo, &table, customer).await.expect("stored");
        assert_eq!(s(&item, "served_by"), "embedded");
        assert_eq!(n(&item, "as_of"), 10.0);
    }
    let stats = sink.stats();
    assert_eq!((stats.predictions_written, stats.alerts, stats.dead_letters), (3, 1, 1));
    assert_eq!(drain_queue(&sdk, &queue_url).await.len(), 1, "the dead letter");
}
