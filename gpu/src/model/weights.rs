//! Memory-mapped access to a checkpoint's `.safetensors` files, one or many (sharded with
//! `model.safetensors.index.json`). Tensors are only read when asked for, so unused ones (such as
//! the MTP layers of a model run without drafting) cost nothing.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::safetensors::{Load, MmapedSafetensors};
use candle_core::{DType, Device, Tensor};
use safetensors::Dtype as StDtype;

use super::ModelError;

/// Name of the index file HF writes next to sharded weights.
pub const INDEX_FILE: &str = "model.safetensors.index.json";
/// Name of the single weight file of an unsharded checkpoint.
pub const SINGLE_FILE: &str = "model.safetensors";

/// The weights of one checkpoint: memory-mapped files, or tensors already in memory (the
/// trainable variables of a training run).
pub struct Weights {
    dir: PathBuf,
    source: Source,
}

/// Where [`Weights::get`] finds a tensor.
enum Source {
    /// `.safetensors` files with a tensor-name → file routing table.
    Files {
        files: Vec<MmapedSafetensors>,
        routing: HashMap<String, usize>,
        dtype: DType,
        device: Device,
    },
    /// Tensors by HF name, handed out as they are (so that gradients reach them when the model
    /// is built `differentiable`).
    Tensors {
        map: HashMap<String, Tensor>,
        differentiable: bool,
    },
}

impl Weights {
    /// Opens every weight file in `dir`; tensors are converted to `dtype` on `device` when read.
    pub fn open(dir: &Path, dtype: DType, device: &Device) -> Result<Self, ModelError> {
        let paths = weight_files(dir)?;
        let mut files = Vec::with_capacity(paths.len());
        let mut routing = HashMap::new();
        for (index, path) in paths.iter().enumerate() {
            let file = mmap_safetensors(path)?;
            for (name, _) in file.tensors() {
                routing.insert(name, index);
            }
            files.push(file);
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            source: Source::Files {
                files,
                routing,
                dtype,
                device: device.clone(),
            },
        })
    }

    /// Weights held in memory by HF name, e.g. the variables of a training run. A model built
    /// from them shares their storage and runs only differentiable operations (see
    /// [`Self::differentiable`]), so a loss computed with it back-propagates into these tensors.
    pub fn from_tensors(tensors: HashMap<String, Tensor>) -> Self {
        Self {
            dir: PathBuf::from("<in-memory weights>"),
            source: Source::Tensors {
                map: tensors,
                differentiable: true,
            },
        }
    }

    /// Weights held in memory for inference (e.g. RL rollouts with the current policy): the model
    /// uses the fused kernels; pass detached tensors so decoding builds no autograd graph.
    pub fn from_tensors_for_inference(tensors: HashMap<String, Tensor>) -> Self {
        Self {
            dir: PathBuf::from("<in-memory weights>"),
            source: Source::Tensors {
                map: tensors,
                differentiable: false,
            },
        }
    }

    /// Whether models built from these weights must use operations candle can differentiate
    /// (its fused CPU kernels for RMSNorm, softmax and RoPE have no backward pass).
    pub fn differentiable(&self) -> bool {
        matches!(
            self.source,
            Source::Tensors {
                differentiable: true,
                ..
            }
        )
    }

    /// Whether the checkpoint stores a tensor of that name.
    pub fn contains(&self, name: &str) -> bool {
        match &self.source {
            Source::Files { routing, .. } => routing.contains_key(name),
            Source::Tensors { map, .. } => map.contains_key(name),
        }
    }

    /// Reads tensor `name`, checking that its shape is `expected`.
    pub fn get(&self, name: &str, expected: &[usize]) -> Result<Tensor, ModelError> {
        let missing = || ModelError::MissingTensor {
            name: name.to_string(),
            dir: self.dir.clone(),
        };
        let (files, routing, dtype, device) = match &self.source {
            Source::Files {
                files,
                routing,
                dtype,
                device,
            } => (files, routing, *dtype, device),
            Source::Tensors { map, .. } => {
                let tensor = map.get(name).ok_or_else(missing)?;
                if tensor.dims() != expected {
                    return Err(ModelError::ShapeMismatch {
                        name: name.to_string(),
                        expected: expected.to_vec(),
                        found: tensor.dims().to_vec(),
                    });
                }
                return Ok(tensor.clone());
            }
        };
        let index = *routing.get(name).ok_or_else(missing)?;
        let view = files[index].get(name)?;
        if view.shape() != expected {
            return Err(ModelError::ShapeMismatch {
                name: name.to_string(),
                expected: expected.to_vec(),
                found: view.shape().to_vec(),
            });
        }
        if !matches!(view.dtype(), StDtype::F32 | StDtype::BF16 | StDtype::F16) {
            return Err(ModelError::UnsupportedDtype {
                name: name.to_string(),
                dtype: format!("{:?}", view.dtype()),
            });
        }
        Ok(view.load(device)?.to_dtype(dtype)?)
    }
}

/// The weight files of a checkpoint folder: those listed by the index, else `model.safetensors`,
/// else every `*.safetensors` in name order.
fn weight_files(dir: &Path) -> Result<Vec<PathBuf>, ModelError> {
    let index = dir.join(INDEX_FILE);
    if index.exists() {
        return files_from_index(dir, &index);
    }
    let single = dir.join(SINGLE_FILE);
    if single.exists() {
        return Ok(vec![single]);
    }
    let entries = std::fs::read_dir(dir).map_err(|source| ModelError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(ModelError::NoWeights {
            dir: dir.to_path_buf(),
        });
    }
    Ok(files)
}

/// The distinct shard files named by the `weight_map` of `model.safetensors.index.json`.
fn files_from_index(dir: &Path, index: &Path) -> Result<Vec<PathBuf>, ModelError> {
    let bad = |message: String| ModelError::Config {
        path: index.to_path_buf(),
        message,
    };
    let text = std::fs::read_to_string(index).map_err(|source| ModelError::Io {
        path: index.to_path_buf(),
        source,
    })?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| bad(format!("invalid JSON: {e}")))?;
    let map = json
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| bad("missing object `weight_map`".into()))?;
    let mut files: Vec<PathBuf> = Vec::new();
    for (tensor, file) in map {
        let file = file
            .as_str()
            .ok_or_else(|| bad(format!("weight_map[{tensor:?}] is not a file name")))?;
        let path = dir.join(file);
        if !files.contains(&path) {
            if !path.exists() {
                return Err(bad(format!(
                    "weight_map[{tensor:?}] names {file:?}, which does not exist"
                )));
            }
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Memory-maps one safetensors file and parses its header.
// The mapping is unsafe only because another process could change the file while it is mapped;
// checkpoints are read-only inputs, and reading every file into memory instead would double the
// resident size of a 15 GB model. candle offers no safe memory-mapping constructor.
#[allow(unsafe_code)]
fn mmap_safetensors(path: &Path) -> Result<MmapedSafetensors, ModelError> {
    // SAFETY: see above; the file is treated as immutable for the life of the model.
    unsafe { MmapedSafetensors::new(path) }.map_err(|e| ModelError::Safetensors {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}
