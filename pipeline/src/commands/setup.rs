//! `pulse setup`: the events table (and, to try `pulse run` locally, a
//! capture's records written into it as an application would write them).

use std::collections::HashMap;
use std::io::BufRead;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use clap::Args;
use pulse_aws::{setup, AwsArgs};
use serde_json::Value;

/// Arguments of `pulse setup`.
#[derive(Args, Debug)]
pub(crate) struct SetupArgs {
    /// The events table: created when missing (key customer_id + sk, on demand,
    /// NEW_AND_OLD_IMAGES stream).
    #[arg(long, value_name = "NAME")]
    table: String,
    /// Then write this capture's records into the table as an application
    /// would: INSERT and MODIFY as puts (BatchWriteItem), REMOVE as DeleteItem.
    /// The table's stream then carries them (TTL removals become deletions).
    #[arg(long, value_name = "CAPTURE")]
    load: Option<PathBuf>,
    /// Also create the Lambda function's due index (a sparse global secondary
    /// index on due_hour; default name due-index), for its scheduled runs.
    #[arg(long, value_name = "NAME", num_args = 0..=1, default_missing_value = pulse_aws::due::DEFAULT_DUE_INDEX)]
    due_index: Option<String>,
    /// Also create the SNS topic for alerts (when missing) and print its ARN
    /// as `TOPIC_ARN=...`, for `pulse run --alerts-topic-arn`.
    #[arg(long, value_name = "NAME")]
    alerts_topic: Option<String>,
    /// Also create the SQS queue for dead letters (when missing) and print
    /// its URL as `QUEUE_URL=...`, for `pulse run --dead-letter-queue-url`.
    #[arg(long, value_name = "NAME")]
    dead_letter_queue: Option<String>,
    #[command(flatten)]
    aws: AwsArgs,
}

pub(crate) async fn run(args: SetupArgs) -> Result<()> {
    // Opened (and its first bytes read) before anything is created: a
    // wrong path fails with nothing made on the server.
    let input = args.load.as_deref().map(pulse_runtime::io::open_input).transpose()?;
    let sdk = args.aws.load().await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let arn = setup::ensure_events_table(&client, &args.table).await?;
    say!("table {} ready, stream {arn}", args.table);
    if let Some(index) = &args.due_index {
        setup::ensure_due_index(&client, &args.table, index).await?;
        say!("due index {index} ready");
    }
    // As `NAME=value` lines of their own, so that a shell can take them:
    // `eval "$(pulse setup ... | grep -E '^(TOPIC_ARN|QUEUE_URL)=')"`.
    if let Some(name) = &args.alerts_topic {
        let arn = setup::ensure_alerts_topic(&aws_sdk_sns::Client::new(&sdk), name).await?;
        say!("TOPIC_ARN={arn}");
    }
    if let Some(name) = &args.dead_letter_queue {
        let url = setup::ensure_dead_letter_queue(&aws_sdk_sqs::Client::new(&sdk), name).await?;
        say!("QUEUE_URL={url}");
    }
    let (Some(capture), Some(input)) = (args.load, input) else { return Ok(()) };
    let mut loader =
        Loader { client, table: args.table, batch: Vec::new(), written: 0, refused: 0, first_refusal: None };
    let mut skipped = 0u64;
    for (i, line) in std::io::BufReader::new(input.reader).lines().enumerate() {
        let line = line.with_context(|| format!("cannot read {}", capture.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let Ok(record) = serde_json::from_str::<Value>(&line) else {
            skipped += 1;
            continue;
        };
        let d = &record["dynamodb"];
        match (record["eventName"].as_str(), item(&d["NewImage"]), item(&d["Keys"])) {
            (Some("INSERT" | "MODIFY"), Some(image), _) => loader.put(image).await?,
            (Some("REMOVE"), _, Some(keys)) => loader.delete(keys).await?,
            _ => {
                tracing::debug!(line = i + 1, "not a writable record");
                skipped += 1;
            }
        }
    }
    loader.flush().await?;
    say!(
        "wrote {} records of {} into {} ({} refused by DynamoDB, {} lines not writable records)",
        loader.written,
        capture.display(),
        loader.table,
        loader.refused,
        skipped
    );
    if let Some(reason) = &loader.first_refusal {
        // A hostile capture has items DynamoDB refuses on purpose (a NaN
        // number); every item refused is a table that does not fit.
        pulse::tell!("the first item refused: {reason}");
        anyhow::ensure!(loader.written > 0, "every item was refused: nothing was written into {}", loader.table);
    }
    Ok(())
}

struct Loader {
    client: aws_sdk_dynamodb::Client,
    table: String,
    batch: Vec<HashMap<String, AttributeValue>>,
    written: u64,
    refused: u64,
    /// Why DynamoDB refused the first item it refused.
    first_refusal: Option<String>,
}

fn key(item: &HashMap<String, AttributeValue>) -> (Option<&AttributeValue>, Option<&AttributeValue>) {
    (item.get("customer_id"), item.get("sk"))
}

impl Loader {
    async fn put(&mut self, image: HashMap<String, AttributeValue>) -> Result<()> {
        // A batch may not write one key twice, and its order is the stream's.
        if self.batch.len() == 25 || self.batch.iter().any(|b| key(b) == key(&image)) {
            self.flush().await?;
        }
        self.batch.push(image);
        Ok(())
    }

    async fn delete(&mut self, keys: HashMap<String, AttributeValue>) -> Result<()> {
        self.flush().await?;
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(keys))
            .send()
            .await
            .with_context(|| format!("DeleteItem on {} failed", self.table))?;
        self.written += 1;
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let items = std::mem::take(&mut self.batch);
        let requests: Vec<WriteRequest> = items
            .iter()
            .map(|i| {
                PutRequest::builder()
                    .set_item(Some(i.clone()))
                    .build()
                    .map(|p| WriteRequest::builder().put_request(p).build())
            })
            .collect::<Result<_, _>>()?;
        let mut pending = HashMap::from([(self.table.clone(), requests)]);
        for _ in 0..20 {
            match self.client.batch_write_item().set_request_items(Some(pending.clone())).send().await {
                Ok(out) => match out.unprocessed_items() {
                    Some(left) if left.values().any(|v| !v.is_empty()) => {
                        pending = left.clone();
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                    _ => {
                        self.written += items.len() as u64;
                        return Ok(());
                    }
                },
                // One item DynamoDB refuses (a NaN number) fails the batch:
                // write its items one by one and count the refused ones.
                Err(e) if e.as_service_error().is_some() => return self.one_by_one(items).await,
                Err(e) => return Err(e).with_context(|| format!("BatchWriteItem on {} failed", self.table)),
            }
        }
        bail!("BatchWriteItem on {} kept leaving items unprocessed", self.table)
    }

    async fn one_by_one(&mut self, items: Vec<HashMap<String, AttributeValue>>) -> Result<()> {
        for item in items {
            match self.client.put_item().table_name(&self.table).set_item(Some(item)).send().await {
                Ok(_) => self.written += 1,
                Err(e) if e.as_service_error().is_some() => {
                    let reason = aws_sdk_dynamodb::error::DisplayErrorContext(&e).to_string();
                    tracing::debug!(error = %reason, "item refused");
                    self.first_refusal.get_or_insert(reason);
                    self.refused += 1;
                }
                Err(e) => return Err(e).with_context(|| format!("PutItem on {} failed", self.table)),
            }
        }
        Ok(())
    }
}

/// An item from DynamoDB JSON (`{"name": {"S": "..."}, ...}`); `None` when
/// absent or not an item.
fn item(v: &Value) -> Option<HashMap<String, AttributeValue>> {
    if v.is_null() {
        return None;
    }
    pulse_aws::sdk_item_from_json(v).ok()
}
