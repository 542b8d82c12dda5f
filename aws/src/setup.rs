//! Creating the resources pulse uses, idempotently: for local servers,
//! tests and first-time setup (`pulse setup`). Production tables are usually
//! made by infrastructure code; these calls document exactly what pulse
//! expects of them.

use anyhow::{bail, Context, Result};
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::create_table::CreateTableError;
use aws_sdk_dynamodb::operation::update_table::UpdateTableError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, CreateGlobalSecondaryIndexAction, GlobalSecondaryIndexUpdate, IndexStatus,
    KeySchemaElement, KeyType, Projection, ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType,
    TableStatus,
};

/// The events table of the contract (`docs/FEATURES.md` §1): key
/// `customer_id` (S) + `sk` (S), on-demand, stream `NEW_AND_OLD_IMAGES`.
/// Creates it when missing, waits until it is active, and returns the ARN of
/// its latest stream.
pub async fn ensure_events_table(client: &aws_sdk_dynamodb::Client, table: &str) -> Result<String> {
    let created = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr("customer_id")?)
        .attribute_definitions(attr("sk")?)
        .key_schema(key("customer_id", KeyType::Hash)?)
        .key_schema(key("sk", KeyType::Range)?)
        .stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewAndOldImages)
                .build()
                .context("stream specification")?,
        )
        .send()
        .await;
    match created {
        Ok(_) => {}
        Err(SdkError::ServiceError(e)) if matches!(e.err(), CreateTableError::ResourceInUseException(_)) => {}
        Err(e) => return Err(e).with_context(|| format!("cannot create table {table}")),
    }
    wait_active(client, table).await?;
    let described = client.describe_table().table_name(table).send().await?;
    let description = described.table().context("DescribeTable returned no table")?;
    // A table that was already there is checked, not trusted: one pulse
    // cannot read was reported ready, and `pulse run` refused it after.
    let keys: Vec<(&str, &KeyType)> =
        description.key_schema().iter().map(|k| (k.attribute_name(), k.key_type())).collect();
    if keys != [("customer_id", &KeyType::Hash), ("sk", &KeyType::Range)] {
        bail!(
            "table {table} exists with the key {}; pulse's events table is keyed customer_id (partition) and sk \
             (sort): choose another name, or delete that table",
            keys.iter().map(|(name, kind)| format!("{name} ({})", kind.as_str())).collect::<Vec<_>>().join(", ")
        );
    }
    let view = description.stream_specification().filter(|s| s.stream_enabled()).and_then(|s| s.stream_view_type());
    match (description.latest_stream_arn(), view) {
        (Some(arn), Some(StreamViewType::NewAndOldImages)) => Ok(arn.to_string()),
        (_, Some(other)) => bail!(
            "table {table}'s stream carries {}: pulse needs NEW_AND_OLD_IMAGES (corrections and retractions need the \
             old image); disable the stream and enable it again with NEW_AND_OLD_IMAGES",
            other.as_str()
        ),
        _ => bail!("table {table} has no stream: enable NEW_AND_OLD_IMAGES streams on it"),
    }
}

/// The due index of `pulse_aws::due` on the events table: a global secondary
/// index `index` with partition key `due_hour` (N) and sort key
/// `customer_id` (S), projecting `next_due`. Sparse: only the `DUE` items
/// carry `due_hour`. Creates it when missing and waits until it is active:
/// up to [`DUE_INDEX_WAIT`], since on a table that already holds items
/// DynamoDB backfills the index first (minutes on a large one), polling
/// every 100 ms at first and every 5 s after.
pub async fn ensure_due_index(client: &aws_sdk_dynamodb::Client, table: &str, index: &str) -> Result<()> {
    let started = std::time::Instant::now();
    let mut announced = false;
    let mut wait = std::time::Duration::from_millis(100);
    while started.elapsed() < DUE_INDEX_WAIT {
        let described = client.describe_table().table_name(table).send().await?;
        let description = described.table().context("DescribeTable returned no table")?;
        match description.global_secondary_indexes().iter().find(|g| g.index_name() == Some(index)) {
            Some(gsi) if matches!(gsi.index_status(), None | Some(IndexStatus::Active)) => return Ok(()),
            Some(_) => {}
            None => {
                let created = client
                    .update_table()
                    .table_name(table)
                    .attribute_definitions(attr_typed("due_hour", ScalarAttributeType::N)?)
                    .attribute_definitions(attr("customer_id")?)
                    .attribute_definitions(attr("sk")?)
                    .global_secondary_index_updates(
                        GlobalSecondaryIndexUpdate::builder()
                            .create(
                                CreateGlobalSecondaryIndexAction::builder()
                                    .index_name(index)
                                    .key_schema(key("due_hour", KeyType::Hash)?)
                                    .key_schema(key("customer_id", KeyType::Range)?)
                                    .projection(
                                        Projection::builder()
                                            .projection_type(ProjectionType::Include)
                                            .non_key_attributes("next_due")
                                            .build(),
                                    )
                                    .build()
                                    .context("index definition")?,
                            )
                            .build(),
                    )
                    .send()
                    .await;
                match created {
                    Ok(_) => {}
                    // Another caller is changing the table: look again.
                    Err(SdkError::ServiceError(e))
                        if matches!(e.err(), UpdateTableError::ResourceInUseException(_)) => {}
                    Err(e) => return Err(e).with_context(|| format!("cannot create index {index} on table {table}")),
                }
            }
        }
        if !announced && started.elapsed() > std::time::Duration::from_secs(10) {
            // The CLI's user waits on this; the backfill can take a while.
            // Written, not `eprintln!`ed: a closed standard error must not
            // stop the setup (there is nowhere to say that it failed).
            use std::io::Write as _;
            let _unreadable = writeln!(
                std::io::stderr(),
                "waiting for index {index} of table {table} to become ACTIVE (DynamoDB fills it from the table's items first)"
            );
            announced = true;
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(std::time::Duration::from_secs(5));
    }
    bail!(
        "index {index} of table {table} is not ACTIVE after {} minutes (still backfilling from the table's items): \
         run the same command again later (it only waits when the index exists), and deploy once it is ACTIVE",
        DUE_INDEX_WAIT.as_secs() / 60
    )
}

/// How long [`ensure_due_index`] waits for the index to become active.
pub const DUE_INDEX_WAIT: std::time::Duration = std::time::Duration::from_secs(30 * 60);

/// Waits (up to a minute) for `table` to be ACTIVE.
pub async fn wait_active(client: &aws_sdk_dynamodb::Client, table: &str) -> Result<()> {
    for _ in 0..600 {
        let described = client.describe_table().table_name(table).send().await?;
        if described.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    bail!("table {table} did not become ACTIVE within a minute")
}

/// The SNS topic alerts go to (`pulse run --alerts-topic-arn`, the Lambda's
/// `ALERTS_TOPIC_ARN`): created when missing (`CreateTopic` is idempotent
/// for a name); returns its ARN.
pub async fn ensure_alerts_topic(client: &aws_sdk_sns::Client, name: &str) -> Result<String> {
    let out =
        client.create_topic().name(name).send().await.with_context(|| format!("cannot create the topic {name}"))?;
    out.topic_arn.with_context(|| format!("CreateTopic gave no ARN for {name}"))
}

/// The SQS queue dead letters go to (`pulse run --dead-letter-queue-url`,
/// the Lambda's `DEAD_LETTER_QUEUE_URL`): created when missing
/// (`CreateQueue` returns the existing queue of that name); returns its URL.
pub async fn ensure_dead_letter_queue(client: &aws_sdk_sqs::Client, name: &str) -> Result<String> {
    let out = client
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .with_context(|| format!("cannot create the queue {name}"))?;
    out.queue_url.with_context(|| format!("CreateQueue gave no URL for {name}"))
}

fn attr(name: &str) -> Result<AttributeDefinition> {
    attr_typed(name, ScalarAttributeType::S)
}

fn attr_typed(name: &str, attribute_type: ScalarAttributeType) -> Result<AttributeDefinition> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(attribute_type)
        .build()
        .context("attribute definition")
}

fn key(name: &str, key_type: KeyType) -> Result<KeySchemaElement> {
    KeySchemaElement::builder().attribute_name(name).key_type(key_type).build().context("key schema")
}

/// Checks that the outputs a consumer is given exist and answer, before it
/// reads a record: one `DescribeTable`, `GetTopicAttributes` and
/// `GetQueueAttributes`. Named wrong, each was found at its first use, which
/// on a quiet stream may be hours after a deploy (a review, 2026-12-06). The
/// error names the flag and what AWS said. Not for the Lambda, whose role is
/// granted the calls its batches make and no more.
pub async fn check_outputs(
    sdk: &aws_config::SdkConfig,
    predictions_table: Option<&str>,
    alerts_topic_arn: Option<&str>,
    dead_letter_queue_url: Option<&str>,
) -> Result<()> {
    // What AWS said, under the flag that named the output.
    let refused = |flag: &str, value: &str, e: &(dyn std::error::Error + 'static)| {
        anyhow::anyhow!(
            "{flag} {value}: {} (the check needs dynamodb:DescribeTable, sns:GetTopicAttributes and \
             sqs:GetQueueAttributes; --no-output-check skips it)",
            crate::retry::error_chain(e)
        )
    };
    if let Some(table) = predictions_table {
        let described = aws_sdk_dynamodb::Client::new(sdk).describe_table().table_name(table).send().await;
        described.map_err(|e| refused("--predictions-table", table, &e))?;
    }
    if let Some(arn) = alerts_topic_arn {
        let read = aws_sdk_sns::Client::new(sdk).get_topic_attributes().topic_arn(arn).send().await;
        read.map_err(|e| refused("--alerts-topic-arn", arn, &e))?;
    }
    if let Some(url) = dead_letter_queue_url {
        let queue = aws_sdk_sqs::Client::new(sdk).get_queue_attributes().queue_url(url);
        let read = queue.attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn).send().await;
        read.map_err(|e| refused("--dead-letter-queue-url", url, &e))?;
    }
    Ok(())
}
