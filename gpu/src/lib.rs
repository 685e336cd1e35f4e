//! The worker side of Crucible: model, engine, rewards, evals and RL (see ARCHITECTURE.md).
pub mod reward;
