//! The MiMo architecture (a Qwen2 decoder plus MTP draft layers) in candle, loaded from
//! Hugging Face checkpoints by their own tensor names.

pub mod config;
pub mod kv_cache;
pub(crate) mod layers;
pub mod mimo;
pub mod mtp;
pub mod packed;
pub mod weights;

use std::path::PathBuf;

pub use config::MimoConfig;
pub use mimo::{LoadOptions, MimoModel};
pub use packed::PackedLayout;

/// Everything that can go wrong while loading or running a model; every variant names the file,
/// key or tensor at fault so that a bad checkpoint is fixable from the message alone.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// A file could not be read.
    #[error("cannot read {}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// `config.json` (or the index) is malformed or asks for something unsupported.
    #[error("{}: {message}", path.display())]
    Config { path: PathBuf, message: String },
    /// A `.safetensors` file could not be opened or parsed.
    #[error("{}: not a valid safetensors file: {message}", path.display())]
    Safetensors { path: PathBuf, message: String },
    /// The folder holds no weights at all.
    #[error("{}: no model.safetensors, model.safetensors.index.json or *.safetensors file", dir.display())]
    NoWeights { dir: PathBuf },
    /// A tensor the architecture needs is not in any weight file.
    #[error("tensor `{name}` is missing from the checkpoint in {}", dir.display())]
    MissingTensor { name: String, dir: PathBuf },
    /// A tensor exists but its shape disagrees with `config.json`.
    #[error("tensor `{name}` has shape {found:?} but config.json implies {expected:?}")]
    ShapeMismatch {
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    /// A tensor is stored in a dtype other than f32, bf16 or f16.
    #[error("tensor `{name}` is stored as {dtype}, only f32, bf16 and f16 are supported")]
    UnsupportedDtype { name: String, dtype: String },
    /// The caller asked for something the model cannot do (bad dtype/device, MTP index …).
    #[error("{0}")]
    Invalid(String),
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// The wgpu backend failed (no adapter, a buffer too large, a failed submission).
    #[error(transparent)]
    Wgpu(#[from] crate::webgpu::WgpuError),
}
