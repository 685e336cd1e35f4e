//! One module per `crucible` subcommand.

pub mod api;
pub mod bench;
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
pub mod up;
pub mod worker;
