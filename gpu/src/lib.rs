//! The worker side of Crucible: model, engine, rewards, evals and RL (see ARCHITECTURE.md).

pub mod data;
pub mod device;
pub mod engine;
pub mod eval;
pub mod model;
pub mod reward;
pub mod rl;
pub mod tokenizer;
pub mod train;
pub mod worker;
