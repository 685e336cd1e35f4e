//! One module per `crucible` subcommand.

pub mod bench;
pub mod serve;
pub mod token;
pub mod up;
