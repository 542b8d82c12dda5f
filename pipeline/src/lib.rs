//! pulse: a streaming pipeline that keeps a live health score for every
//! customer of a tutoring marketplace.
//!
//! The flow is source → decode → customer windows → features → score →
//! sinks. This crate holds the edges and the wiring: files in and out
//! ([`io`]), the decode-and-apply step every source shares ([`process`]), the
//! replay job ([`replay`]) and the synthetic marketplace ([`synth`]). The
//! record rules and windows are in `pulse-operators`; the contract's types in
//! `pulse-schemas`.
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

pub mod aws;
pub mod due;
pub mod hydrate;
pub mod io;
pub mod lambda;
pub mod learn;
pub mod live;
pub mod loadtest;
pub mod output;
pub mod process;
pub mod progress;
pub mod replay;
pub mod scoring;
pub mod serve;
pub mod sink;
pub mod summary;
pub mod synth;
