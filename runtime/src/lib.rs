//! The runtime every way of running pulse shares: the decode → engine step
//! ([`process`]), where results go ([`sink`], [`files`]), the scoring stage
//! ([`scoring`]), files in and out ([`io`]) and the batch pipeline behind
//! `pulse replay` and `pulse demo` ([`replay`]).
//!
//! No AWS here: the AWS sources and sinks are in `pulse-aws`, the Lambda
//! function in `pulse-lambda`. The record rules and windows are in
//! `pulse-operators`; the contract's types in `pulse-schemas`.
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

pub mod files;
pub mod io;
pub mod process;
pub mod replay;
pub mod report;
pub mod scoring;
pub mod settings;
pub mod sink;
