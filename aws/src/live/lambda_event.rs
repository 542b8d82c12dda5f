//! A record read with the DynamoDB Streams API (`GetRecords`) in the shape
//! the Lambda event source mapping delivers it: for tests, local tries and
//! tools that hand stream records to the Lambda handler.

use anyhow::{Context, Result};
use aws_lambda_events::event::dynamodb::{EventRecord, StreamViewType, UserIdentity};

/// A record read with the DynamoDB Streams API, as the event source mapping
/// would deliver it to Lambda (for tests, local tries and tools that wrap
/// stream records as Lambda events).
///
/// `ApproximateCreationDateTime` is kept to the whole second, as AWS
/// documents it ("rounded down to the closest second"; local servers may
/// return fractions).
pub fn event_record_from_sdk(record: &aws_sdk_dynamodbstreams::types::Record) -> Result<EventRecord> {
    let change = record.dynamodb().context("a stream record without its dynamodb part")?;
    let mut out = EventRecord::default();
    out.event_id = record.event_id().unwrap_or_default().to_owned();
    out.event_name = record.event_name().context("a stream record without eventName")?.as_str().to_owned();
    out.event_version = record.event_version().map(str::to_owned);
    out.event_source = record.event_source().map(str::to_owned);
    out.aws_region = record.aws_region().unwrap_or_default().to_owned();
    if let Some(identity) = record.user_identity() {
        let mut user = UserIdentity::default();
        user.type_ = identity.r#type().unwrap_or_default().to_owned();
        user.principal_id = identity.principal_id().unwrap_or_default().to_owned();
        out.user_identity = Some(user);
    }
    let created =
        change.approximate_creation_date_time().context("a stream record without ApproximateCreationDateTime")?;
    out.change.approximate_creation_date_time = chrono::DateTime::from_timestamp(created.secs(), 0)
        .with_context(|| format!("ApproximateCreationDateTime {created} is out of range"))?;
    let item = |image: Option<&std::collections::HashMap<String, aws_sdk_dynamodbstreams::types::AttributeValue>>| {
        image.cloned().map(serde_dynamo::Item::from).unwrap_or_default()
    };
    out.change.keys = item(change.keys());
    out.change.new_image = item(change.new_image());
    out.change.old_image = item(change.old_image());
    out.change.sequence_number = change.sequence_number().map(str::to_owned);
    out.change.size_bytes = change.size_bytes().unwrap_or_default();
    out.change.stream_view_type = change.stream_view_type().map(|v| match v.as_str() {
        "NEW_IMAGE" => StreamViewType::NewImage,
        "OLD_IMAGE" => StreamViewType::OldImage,
        "NEW_AND_OLD_IMAGES" => StreamViewType::NewAndOldImages,
        _ => StreamViewType::KeysOnly,
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodbstreams::types::{AttributeValue, Identity, OperationType, Record, StreamRecord};
    use serde_json::json;

    use super::*;

    #[test]
    fn an_sdk_record_becomes_the_lambda_record() {
        let image = std::collections::HashMap::from([
            ("customer_id".to_string(), AttributeValue::S("stu_1".into())),
            ("ts".to_string(), AttributeValue::N("1767599990000".into())),
        ]);
        let record = Record::builder()
            .event_id("e1")
            .event_name(OperationType::Remove)
            .event_version("1.1")
            .event_source("aws:dynamodb")
            .aws_region("us-east-1")
            .user_identity(Identity::builder().r#type("Service").principal_id("dynamodb.amazonaws.com").build())
            .dynamodb(
                StreamRecord::builder()
                    .approximate_creation_date_time(
                        aws_sdk_dynamodbstreams::primitives::DateTime::from_fractional_secs(1_767_600_000, 0.7),
                    )
                    .set_keys(Some(image.clone()))
                    .set_old_image(Some(image))
                    .sequence_number("42")
                    .size_bytes(99)
                    .stream_view_type(aws_sdk_dynamodbstreams::types::StreamViewType::NewAndOldImages)
                    .build(),
            )
            .build();
        let lambda = event_record_from_sdk(&record).unwrap();
        let json = serde_json::to_value(&lambda).unwrap();
        assert_eq!(json["eventName"], "REMOVE");
        assert_eq!(json["dynamodb"]["ApproximateCreationDateTime"], json!(1_767_600_000));
        assert_eq!(json["dynamodb"]["OldImage"]["ts"], json!({"N": "1767599990000"}));
        assert_eq!(json["dynamodb"]["SequenceNumber"], "42");
        assert_eq!(json["userIdentity"]["type"], "Service");
        assert!(lambda.change.new_image.is_empty());
        let decoded = pulse_schemas::lambda::decode_record(&lambda);
        assert!(decoded.is_ok(), "{decoded:?}");
    }
}
