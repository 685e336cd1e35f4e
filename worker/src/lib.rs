//! The worker side of Crucible: the eval harness, training, RL, synthetic data, and the lease
//! loop that runs them as jobs for a server (see ARCHITECTURE.md). The model and engine come from
//! `crucible-gpu`, every verdict from `crucible-verify`.

pub mod client;
pub mod data;
pub mod eval;
pub mod heartbeat;
pub mod hub;
mod jobs;
pub mod lease;
pub mod report;
pub mod rl;
pub mod telemetry;
pub mod train;

pub use lease::{WorkerConfig, WorkerError, capabilities, run};
