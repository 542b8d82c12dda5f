//! pulse's stateful core: per-customer rolling windows and the 46 features.
//!
//! Everything here is pure, synchronous and deterministic. Time comes in only
//! as arguments (an event's `ts`, a record's creation time, the clock passed to
//! [`Engine::advance_to`]); nothing reads the wall clock. The async pipeline
//! and files live in `pulse-runtime`, the AWS sources and sinks in
//! `pulse-aws`; they drive an [`Engine`].
//!
//! ```
//! use pulse_operators::{Engine, EngineConfig};
//! use pulse_schemas::capture::decode_line;
//!
//! let line = br#"{"eventName":"INSERT","dynamodb":{"ApproximateCreationDateTime":1700000000,
//!   "NewImage":{"customer_id":{"S":"stu_1"},"entity_type":{"S":"event"},"event_id":{"S":"e1"},
//!   "event_type":{"S":"login"},"ts":{"N":"1700000000000"}}}}"#;
//! let engine = Engine::new(EngineConfig::default());
//! let mut out = Vec::new();
//! engine.apply(&decode_line(line).unwrap(), &mut out);
//! assert_eq!(out.len(), 1);
//! assert_eq!(out[0].features[pulse_schemas::features::idx::LOGINS_7D], 1.0);
//! ```
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

mod customer;
mod engine;
mod exact;
mod held;
pub mod scoring;
pub mod snapshot;
mod stats;
mod timers;
mod tutors;
mod windows;

pub use engine::{Emission, Engine, EngineConfig, Hydrated, StateSize};
pub use snapshot::{SnapshotError, SNAPSHOT_FORMAT_VERSION, SNAPSHOT_MAGIC};
pub use stats::{Counters, CountersSnapshot};
pub use timers::TimerPolicy;
