//! What runs on an accelerator: the MiMo model and its KV cache, the generation engine, the
//! tokenizer, device selection, and the wgpu kernels (see ARCHITECTURE.md). Evals, training and RL build on it in
//! `crucible-worker`; grading lives in `crucible-verify`.

pub mod device;
pub mod engine;
pub mod model;
pub mod tokenizer;
pub mod webgpu;
