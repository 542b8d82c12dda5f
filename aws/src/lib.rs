//! AWS plumbing shared by every live part of pulse: how clients are
//! configured, and the resources pulse reads and writes.
//!
//! Every client is an official SDK client built from one [`SdkConfig`]: the
//! standard chain (environment, profile, web identity, container and instance
//! credentials; `AWS_REGION`; `AWS_ENDPOINT_URL` and the per-service
//! `AWS_ENDPOINT_URL_<SERVICE>`) with the explicit flags of [`AwsArgs`] on top.
//! Pointing `--endpoint-url` (or `AWS_ENDPOINT_URL`) at a local server such as
//! moto (`scripts/local-aws.sh start`) runs the same code paths with no
//! account.

#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

pub mod batch;
pub mod due;
pub mod hydrate;
#[cfg(feature = "consumer")]
pub mod live;
pub mod output;
pub mod retry;
pub mod setup;
pub mod stamps;

use std::collections::HashMap;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::types::AttributeValue;
use clap::Args;
use serde::Deserialize;

/// Where and how to reach AWS; every live command takes these.
#[derive(Args, Clone, Debug, Default)]
pub struct AwsArgs {
    /// Send every AWS call to this endpoint instead of AWS's own, e.g. a local
    /// moto server (`scripts/local-aws.sh start` prints it). Overrides
    /// AWS_ENDPOINT_URL.
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// The AWS region. Default: AWS_REGION, the profile's region, or us-east-1.
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
}

/// The region used when nothing else names one.
pub const DEFAULT_REGION: &str = "us-east-1";

impl AwsArgs {
    /// Args for a given endpoint (tests, local servers).
    pub fn local(endpoint_url: impl Into<String>) -> AwsArgs {
        AwsArgs { endpoint_url: Some(endpoint_url.into()), region: None }
    }

    /// The SDK configuration: the standard chain, then these flags.
    pub async fn load(&self) -> SdkConfig {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(url) = &self.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        let region = aws_config::meta::region::RegionProviderChain::first_try(self.region.clone().map(Region::new))
            .or_default_provider()
            .or_else(Region::from_static(DEFAULT_REGION));
        loader.region(region).load().await
    }
}

/// A table item as the SDK takes it.
pub type SdkItem = HashMap<String, AttributeValue>;

/// The key of a customer's item of the event table with sort key `sk`.
pub fn item_key(customer: &str, sk: &str) -> SdkItem {
    HashMap::from([
        ("customer_id".to_string(), AttributeValue::S(customer.to_owned())),
        ("sk".to_string(), AttributeValue::S(sk.to_owned())),
    ])
}

/// An image as stream records carry it (DynamoDB's JSON shape, read by
/// `serde_dynamo`), as an item the SDK can write.
pub fn sdk_item(image: serde_dynamo::Item) -> SdkItem {
    let image: HashMap<String, serde_dynamo::AttributeValue> = image.into();
    image.into_iter().map(|(k, v)| (k, AttributeValue::from(v))).collect()
}

/// [`sdk_item`] of an image given as JSON (`{"name": {"S": "..."}, ...}`).
pub fn sdk_item_from_json(image: &serde_json::Value) -> serde_json::Result<SdkItem> {
    serde_dynamo::Item::deserialize(image).map(sdk_item)
}
