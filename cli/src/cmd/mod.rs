//! One module per `crucible` subcommand.

pub mod bench;
pub mod bench_decode;
pub mod bench_tracking;
pub mod bench_train;
pub mod db;
pub mod generate;
pub mod serve;
pub mod token;
pub mod train;
pub mod train_tracking;
pub mod up;
