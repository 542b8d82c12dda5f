//! An outage of an output, against the local server: a prediction write
//! that finds nobody answering is retried for as long as the writer's
//! retry budget says (`--write-retry-s`, `pulse run`'s 300 s), and lands
//! when the table answers again. Six attempts, a few seconds, ended a
//! consumer 3.5 s into a 30-s outage (a review, 2026-12-06).

mod output_support;

use std::time::Duration;

use output_support::*;
use pulse_aws::output::backend::ModelBackend;
use pulse_aws::output::predictions::PredictionWriter;
use pulse_aws::output::sink::{Destinations, ScoringSink};
use pulse_runtime::process::Produced;
use pulse_runtime::retry::Backoff;
use pulse_runtime::sink::Sink;

/// Forwards every connection on `port` to the local server from now on.
async fn forward(port: u16) -> tokio::task::JoinHandle<()> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("the released port");
    let upstream = pulse_e2e::aws_endpoint().trim_start_matches("http://").to_owned();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let upstream = upstream.clone();
            tokio::spawn(async move {
                if let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                }
            });
        }
    })
}

#[tokio::test]
async fn a_prediction_write_waits_out_an_outage_within_its_budget() {
    let sdk = sdk().await;
    let table = table(&sdk).await;
    let down = DownEndpoint::hold().await;
    let config = aws_sdk_dynamodb::config::Builder::from(&sdk)
        .endpoint_url(format!("http://127.0.0.1:{}", down.port))
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .build();
    let writer = PredictionWriter::new(aws_sdk_dynamodb::Client::from_conf(config), table.as_str(), 4)
        .with_retry(Backoff::lasting(Duration::from_secs(20)));
    let out = Destinations { predictions: Some(writer), ..nowhere() };
    let mut sink =
        ScoringSink::new(ModelBackend::Embedded(embedded()), out, sink_config(64, Duration::from_secs(5))).unwrap();
    // The customer is read back first (a BatchGetItem), then its prediction
    // written: both find the table down for four seconds, longer than the
    // six attempts of the default wait at most (3.1 s).
    let restore = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(4)).await;
        let port = down.release().await;
        let forwarder = forward(port).await;
        // Kept until the test ends.
        std::future::pending::<()>().await;
        drop(forwarder);
    });
    let started = std::time::Instant::now();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    sink.send(Produced { vectors: vec![vector("c", now, 3.0)], dead: vec![] })
        .await
        .expect("read back after the outage");
    sink.flush().await.expect("written after the outage");
    assert!(started.elapsed() >= Duration::from_secs(4), "it waited: {:?}", started.elapsed());
    let stats = sink.stats();
    assert_eq!(stats.predictions_written, 1, "{stats:?}");
    assert!(stats.retries > 0, "{stats:?}");
    let item = prediction_item(&aws_sdk_dynamodb::Client::new(&sdk), &table, "c").await;
    assert!(item.is_some(), "the prediction is in the table");
    restore.abort();
}

/// A step's alerts go out before the items that record them are written,
/// so a crash in between repeats them on restart: the alerted customers'
/// items are written first, and the window is their own writes, not the
/// whole step's (17 of 34 alerts were sent again after a kill -9 during a
/// catch-up, a review, 2026-12-06).
#[tokio::test]
async fn the_alerted_customers_items_are_written_first() {
    let sdk = sdk().await;
    let table = table(&sdk).await;
    let order = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen = std::sync::Arc::clone(&order);
    let writer = PredictionWriter::new(aws_sdk_dynamodb::Client::new(&sdk), table.as_str(), 1)
        .on_written(std::sync::Arc::new(move |p| seen.lock().unwrap().push(p.customer_id.to_string())));
    let out = Destinations { predictions: Some(writer), ..nowhere() };
    let mut sink =
        ScoringSink::new(ModelBackend::Embedded(embedded()), out, sink_config(64, Duration::from_secs(5))).unwrap();
    let t = 1_767_225_600_000;
    // "zz" sorts last of the step's customers; healthy first, then gone.
    let names = ["aa", "bb", "cc", "dd", "zz"];
    let step = |at: i64, idle: &dyn Fn(&str) -> f64| Produced {
        vectors: names.iter().map(|c| vector(c, at, idle(c))).collect(),
        dead: vec![],
    };
    sink.send(step(t, &|_| 2.0)).await.unwrap();
    sink.flush().await.unwrap();
    order.lock().unwrap().clear();
    sink.send(step(t + 86_400_000, &|c| if c == "zz" { 40.0 } else { 2.5 })).await.unwrap();
    sink.flush().await.unwrap();
    assert_eq!(sink.stats().alerts, 1, "zz rose past 0.7");
    let written = order.lock().unwrap().clone();
    assert_eq!(written.len(), names.len(), "{written:?}");
    assert_eq!(written[0], "zz", "the alerted customer's item first: {written:?}");
}
