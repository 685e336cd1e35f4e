//! Rule-based rewards and verdicts (pure CPU): math answer equivalence, a sandboxed code judge
//! with test-difficulty tiers, and multiple-choice extraction.
//!
//! Why here: the eval harness and the RL trainer must score a completion identically, so both
//! call this module; nothing in it touches a GPU or the network.

pub mod choice;
pub mod code;
pub mod math;
pub mod pool;
