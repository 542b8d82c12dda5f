//! The runtime every way of running pulse shares: where records come from
//! ([`source`]), the one loop that drives them through decode → hydrate →
//! engine → sinks → acknowledge ([`driver`]), the decode → engine step
//! ([`process`]), where results go ([`sink`], [`background`], [`files`]),
//! the scoring stage ([`scoring`]), files in and out ([`io`]), several
//! engines side by side ([`workers`]) and `pulse replay` / `pulse demo` on
//! the driver ([`replay`]).
//!
//! No AWS here: the AWS sources and sinks are in `pulse-aws`, the Lambda
//! function in `pulse-lambda`. The record rules and windows are in
//! `pulse-operators`; the contract's types in `pulse-schemas`.
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

pub mod archive;
pub mod background;
pub mod driver;
pub mod files;
pub mod io;
mod lines;
pub mod memory;
pub mod process;
pub mod replay;
pub mod report;
pub mod retry;
pub mod scoring;
pub mod settings;
pub mod sink;
pub mod source;
pub mod trim;
pub mod workers;
