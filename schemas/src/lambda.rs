//! Records as `aws_lambda_events` types them: what the Lambda handler receives
//! from the DynamoDB Streams event source mapping.
//!
//! The images are `serde_dynamo` items; [`Image::from_item`] points the
//! contract's attribute view at them, so validation is the capture decoder's.

use aws_lambda_events::event::dynamodb::EventRecord;

use crate::attr::Image;
use crate::record::{is_ttl_identity, Invalid, RecordParts, StreamRecord};

/// Decodes one record of a Lambda DynamoDB event.
///
/// `aws_lambda_events` reads an absent image as an empty item; an empty image
/// counts as absent here. It reads an absent `ApproximateCreationDateTime` as
/// the epoch (1970-01-01T00:00:00Z, its `DateTime` default); the epoch counts
/// as absent here, so both decoders give a record without one the same
/// meaning (no time at all is a plausible time, the epoch would not be). Any
/// other implausible time is a dead letter, as in [`crate::capture`]: chrono
/// parses seconds up to ±262,000 years, so milliseconds sent as seconds get
/// this far.
pub fn decode_record(record: &EventRecord) -> Result<StreamRecord<'_>, Invalid> {
    let change = &record.change;
    let by_ttl = record.user_identity.as_ref().is_some_and(|u| is_ttl_identity(Some(&u.type_), Some(&u.principal_id)));
    let created_ms = change.approximate_creation_date_time.timestamp_millis();
    let parts = RecordParts {
        created_ms: (created_ms != 0).then_some(created_ms as f64),
        sequence_number: change.sequence_number.as_deref().map(Into::into),
        by_ttl,
        new_image: image(&change.new_image),
        old_image: image(&change.old_image),
    };
    parts.interpret(&record.event_name)
}

fn image(item: &serde_dynamo::Item) -> Option<Image<'_>> {
    (!item.is_empty()).then(|| Image::from_item(item))
}
