//! The subcommands of the `pulse` binary: argument parsing and printing;
//! the work is in the library.

pub(crate) mod generate;
pub(crate) mod replay;
pub(crate) mod serve;
pub(crate) mod train;
