//! What the engine did with each record, counted.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

macro_rules! counters {
    ($($name:ident: $doc:literal,)*) => {
        /// Live counters, updated by the engine (cheap relaxed atomics).
        #[derive(Debug, Default)]
        pub struct Counters {
            $(#[doc = $doc] pub(crate) $name: AtomicU64,)*
        }

        /// A copy of the counters at one moment.
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        pub struct CountersSnapshot {
            $(#[doc = $doc] pub $name: u64,)*
        }

        impl CountersSnapshot {
            /// Both counts added, counter by counter (several engines side
            /// by side, each holding some of the customers).
            pub fn plus(&self, other: &CountersSnapshot) -> CountersSnapshot {
                CountersSnapshot { $($name: self.$name + other.$name,)* }
            }
        }

        impl Counters {
            /// Reads every counter.
            pub fn snapshot(&self) -> CountersSnapshot {
                CountersSnapshot { $($name: self.$name.load(Relaxed),)* }
            }

            /// Counters that start from these values (an engine restored
            /// from a snapshot).
            pub(crate) fn restore(from: &CountersSnapshot) -> Counters {
                Counters { $($name: AtomicU64::new(from.$name),)* }
            }
        }
    };
}

counters! {
    records: "Records applied (valid records; invalid ones never reach the engine).",
    events_added: "Events added to a customer's held events.",
    events_retracted: "Held events removed by a retraction or correction.",
    duplicates: "Adds ignored because the event_id is already held.",
    late_adds: "Adds dropped as late (ts <= C - 30 days).",
    late_retractions: "Retractions dropped as late (ts <= C - 30 days).",
    retractions_not_held: "Retractions of an event that was not held (no-op).",
    ttl_expiries: "TTL removals (no effect).",
    non_events: "Records whose images are not events (no effect).",
    unchanged: "Valid event records after which the held events were as before.",
    vectors_event: "Vectors emitted on a record.",
    vectors_timer: "Vectors emitted by a timer.",
}

impl Counters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }
}
