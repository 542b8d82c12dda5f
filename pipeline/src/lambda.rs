//! The Lambda handler of the DynamoDB Streams event source mapping: one batch
//! of records in, vectors and dead letters out, and a partial batch response.
//!
//! The [`Handler`] is built once per execution environment and keeps its
//! [`Engine`] warm across invocations: each batch continues the customers'
//! state left by the previous one, exactly as a replay continues from one line
//! to the next. Records go through the same [`Processor`] as a replay, so the
//! same records give the same vectors; timers fire on stream time
//! (`ApproximateCreationDateTime`) before the record that moves it.
//!
//! This module makes no AWS service calls. Hydrating a cold engine from
//! DynamoDB, sending the vectors on (scoring, SQS) and the dead letters to
//! their queue are for a later change; [`HandlerOutput`] hands them over.
//!
//! # Failures
//!
//! An INVALID record is never a failure: it becomes a [`DeadLetter`](crate::process::DeadLetter) with its
//! reason and the whole record re-serialized as JSON, and the batch goes on.
//! [`DynamoDbEventResponse::batch_item_failures`] is non-empty only on an
//! internal error, and then names the first record not processed (its
//! `SequenceNumber`); the records after it are not applied either, since
//! Lambda redelivers the batch from that record on. With the in-memory engine
//! that happens only when
//!
//! * an earlier invocation panicked while holding the engine (the lock is
//!   poisoned and the state can no longer be trusted: every later batch fails
//!   from its first record, so the environment should be replaced), or
//! * an invalid record could not be re-serialized for its dead letter.
//!
//! A failed record without a `SequenceNumber` is reported with no identifier,
//! which Lambda reads as the whole batch failing.
//!
//! # Source
//!
//! Each vector and dead letter carries the record's `SequenceNumber`. The shard
//! is not in a Lambda DynamoDB event (`eventSourceARN` names the stream, not
//! the shard), so `shard_id` is `None`.
//!
//! # Silent customers (design note)
//!
//! In a replay, a customer who stays silent is rescored by daily timers that
//! fire as stream time passes. In Lambda, stream time only moves when records
//! arrive, and the timer queue of one environment covers only the customers it
//! has seen. Silent customers will instead be rescored by a scheduled
//! invocation (EventBridge, e.g. hourly): it reads only the customers whose
//! next timer is due (a sparse "due" index in DynamoDB, keyed by due hour and
//! written with each vector), hydrates just those, emits their timer vectors as
//! of the scheduled time and writes their next due time. No full-table scan,
//! and customers who are active are never touched by it.

use std::sync::{Arc, Mutex};

use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use pulse_operators::{Engine, EngineConfig};
use pulse_schemas::lambda::decode_record;
use pulse_schemas::Source;

use crate::process::{Processor, Produced};

/// What one invocation produced.
#[derive(Debug, Default)]
pub struct HandlerOutput {
    /// The partial batch response to return to Lambda.
    pub response: DynamoDbEventResponse,
    /// Vectors and dead letters, for the sinks.
    pub produced: Produced,
}

/// The DynamoDB Streams handler, holding a warm engine across invocations.
#[derive(Debug)]
pub struct Handler {
    processor: Mutex<Processor>,
}

impl Handler {
    /// A handler over a new, empty engine.
    pub fn new(config: EngineConfig) -> Handler {
        Handler::with_engine(Arc::new(Engine::new(config)))
    }

    /// A handler over `engine` (e.g. one hydrated elsewhere).
    pub fn with_engine(engine: Arc<Engine>) -> Handler {
        Handler { processor: Mutex::new(Processor::new(engine)) }
    }

    /// Applies one batch, in order.
    pub fn handle(&self, event: Event) -> HandlerOutput {
        let mut out = HandlerOutput::default();
        let Ok(mut processor) = self.processor.lock() else {
            if let Some(first) = event.records.first() {
                out.response.batch_item_failures.push(failure(first));
            }
            return out;
        };
        for record in &event.records {
            let source = Source { sequence_number: record.change.sequence_number.clone(), ..Source::default() };
            match decode_record(record) {
                Ok(decoded) => processor.process(Ok(decoded), source, &[], &mut out.produced),
                Err(invalid) => match serde_json::to_vec(record) {
                    Ok(raw) => processor.process(Err(invalid), source, &raw, &mut out.produced),
                    Err(_) => {
                        out.response.batch_item_failures.push(failure(record));
                        break;
                    }
                },
            }
        }
        out
    }
}

fn failure(record: &EventRecord) -> DynamoDbBatchItemFailure {
    let mut failure = DynamoDbBatchItemFailure::default();
    failure.item_identifier = record.change.sequence_number.clone();
    failure
}
