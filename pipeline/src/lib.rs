//! pulse: a streaming pipeline that keeps a live health score for every
//! customer of a tutoring marketplace.
//!
//! The flow is source → decode → customer windows → features → score →
//! sinks, and each step has its crate: `pulse-schemas` (the contract, the
//! decoders), `pulse-operators` (windows, features, timers, the scoring
//! operators), `pulse-model` (the models: gradient-boosted trees, logistic regression, the network; training, inference, attribution), `pulse-runtime` (the step every
//! source shares, sinks, the scoring stage, replay), `pulse-aws` (the AWS
//! sources and sinks), `pulse-lambda` (the function), `pulse-serve` (the
//! SageMaker container's server), `pulse-synth` (the synthetic marketplace,
//! the load test). This crate is the `pulse` command line: training data
//! ([`learn`]), progress bars ([`progress`]), the printed reports
//! ([`summary`]), the cost model ([`cost`]) and the JSON-parse floor replay
//! is measured against ([`baseline`]).
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

/// `eprintln!` that does not panic when standard error is gone (`pulse demo
/// 2>&1 | head`, or `2>&-`): a message nobody can read is dropped, and the
/// command's exit code still says how its work went. `eprintln!` panicked
/// there (exit 101) after the work itself had succeeded.
#[macro_export]
macro_rules! tell {
    () => {
        $crate::tell_line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::tell_line(format_args!($($arg)*))
    };
}

/// Writes a line to standard error for [`tell!`]; a failure is dropped, as
/// there is nowhere left to say it.
pub fn tell_line(args: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let mut err = std::io::stderr().lock();
    let _unreadable = err.write_fmt(args).and_then(|()| err.write_all(b"\n"));
}

pub mod baseline;
pub mod cost;
pub mod dataset;
pub mod dataset_file;
pub mod learn;
pub mod plots;
pub mod progress;
pub mod report;
pub mod summary;
