//! Creating the resources pulse uses, idempotently: for local servers,
//! tests and first-time setup (`pulse setup`). Production tables are usually
//! made by infrastructure code; these calls document exactly what pulse
//! expects of them.

use anyhow::{bail, Context, Result};
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::create_table::CreateTableError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType, StreamSpecification,
    StreamViewType, TableStatus,
};

/// The events table of the contract (`../shared/spec/FEATURES.md` §1): key
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
    match description.latest_stream_arn() {
        Some(arn) => Ok(arn.to_string()),
        None => bail!("table {table} has no stream: enable NEW_AND_OLD_IMAGES streams on it"),
    }
}

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

fn attr(name: &str) -> Result<AttributeDefinition> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .context("attribute definition")
}

fn key(name: &str, key_type: KeyType) -> Result<KeySchemaElement> {
    KeySchemaElement::builder().attribute_name(name).key_type(key_type).build().context("key schema")
}
