//! The portable backend: MiMo's decoder as WGSL compute shaders through wgpu, for machines
//! without CUDA (Vulkan, Metal, DX12, GL, and Mesa's software Vulkan on any CPU). It runs the
//! same checkpoint as the candle model: weights are uploaded once, the KV cache lives on the
//! adapter, each forward pass is one compute pass, and only the rows asked for come back.
//! Training stays on candle (CPU or CUDA): these kernels have no backward pass.

pub(crate) mod cache;
mod context;
pub(crate) mod decoder;
mod kernel;
pub mod ops;
mod plan;

pub use context::{WgpuDevice, WgpuError};
pub use plan::Plan;
