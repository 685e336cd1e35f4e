//! One module per `crucible` subcommand.

pub mod api;
pub mod bench;
pub mod bench_batching;
pub mod bench_dashboard;
pub mod bench_decode;
pub mod bench_server;
pub mod bench_tracking;
pub mod bench_train;
pub mod bench_verify;
pub mod compare;
pub mod dataset;
pub mod db;
pub mod generate;
pub mod jobs;
pub mod leaderboard;
pub mod serve;
pub mod submit;
pub mod token;
pub mod train;
pub mod train_rl;
pub mod train_tracking;
pub mod up;
pub mod verify;
pub mod worker;
