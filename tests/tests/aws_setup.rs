//! The local AWS server answers the real SDK clients, and `pulse`'s setup
//! makes the events table the contract describes (key, stream view type).

use pulse_aws::{setup, AwsArgs};
use pulse_e2e::{aws_endpoint, unique_name};

#[tokio::test]
async fn events_table_is_created_once_with_a_new_and_old_images_stream() {
    let config = AwsArgs::local(aws_endpoint()).load().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = unique_name("events");

    let arn = setup::ensure_events_table(&client, &table).await.expect("table created");
    let again = setup::ensure_events_table(&client, &table).await.expect("second call is a no-op");
    assert_eq!(arn, again, "an existing table keeps its stream");

    let streams = aws_sdk_dynamodbstreams::Client::new(&config);
    let described = streams.describe_stream().stream_arn(&arn).send().await.expect("stream described");
    let description = described.stream_description().expect("description");
    assert_eq!(description.table_name(), Some(table.as_str()));
    assert_eq!(description.stream_view_type(), Some(&aws_sdk_dynamodbstreams::types::StreamViewType::NewAndOldImages));
    let keys: Vec<_> = description.key_schema().iter().map(|k| k.attribute_name().to_string()).collect();
    assert_eq!(keys, ["customer_id", "sk"]);
}
