//! One module per `crucible` subcommand.

pub mod bench;
pub mod bench_verify;
pub mod serve;
pub mod token;
pub mod up;
pub mod verify;
