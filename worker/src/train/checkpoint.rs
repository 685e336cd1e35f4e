//! Resumable checkpoints: one safetensors file holding the weights, AdamW's moments and, in its
//! metadata, the step, the data stream's cursor (RNG state and position) and the run's config.
//! Restoring it reproduces the interrupted run bit for bit. RL checkpoints use the same file layout
//! ([`write`] / [`read`]) with their own metadata.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::safetensors::Load;
use candle_core::{Device, Tensor};
use safetensors::SafeTensors;

use super::TrainError;
use super::optimizer::AdamW;
use super::params::Parameters;
use crate::data::stream::StreamCursor;
use crucible_types::train::{AdamWConfig, TrainConfig};

const FORMAT: &str = "crucible-train-checkpoint-1";
const PARAM: &str = "param/";
const MOMENT1: &str = "adam_m/";
const MOMENT2: &str = "adam_v/";

/// Everything needed to continue a run.
pub struct TrainState {
    pub params: Parameters,
    pub optimizer: AdamW,
    /// Optimizer steps completed.
    pub step: u64,
    /// The first training document not yet used.
    pub cursor: StreamCursor,
}

/// Writes `state` to `path` atomically (temporary file, then rename).
pub fn save(path: &Path, state: &TrainState, config: &TrainConfig) -> Result<(), TrainError> {
    write(
        path,
        FORMAT,
        &state.params,
        &state.optimizer,
        vec![
            ("step".to_string(), state.step.to_string()),
            ("cursor".to_string(), to_json(&state.cursor)),
            ("config".to_string(), to_json(config)),
        ],
    )
}

/// Reads a checkpoint written by [`save`] for the same `config` (other fields than `steps` and
/// `checkpoint_every` must match, so a resume cannot silently change the run).
pub fn load(path: &Path, config: &TrainConfig, device: &Device) -> Result<TrainState, TrainError> {
    let snapshot = read(path, FORMAT, config.optimizer.clone(), device)?;
    let saved: TrainConfig = snapshot.json("config")?;
    let comparable = |c: &TrainConfig| TrainConfig {
        steps: 0,
        checkpoint_every: 0,
        ..c.clone()
    };
    if comparable(&saved) != comparable(config) {
        return Err(snapshot.bad(
            "was written by a run with a different configuration; use a fresh out_dir".into(),
        ));
    }
    Ok(TrainState {
        cursor: snapshot.json("cursor")?,
        step: snapshot.number("step")?,
        params: snapshot.params,
        optimizer: snapshot.optimizer,
    })
}

/// Weights, optimizer state and the run's own metadata, read back from a checkpoint file.
pub struct Snapshot {
    pub params: Parameters,
    pub optimizer: AdamW,
    path: std::path::PathBuf,
    meta: HashMap<String, String>,
}

impl Snapshot {
    fn bad(&self, message: String) -> TrainError {
        TrainError::Checkpoint {
            path: self.path.clone(),
            message,
        }
    }

    /// A metadata entry.
    pub fn field(&self, key: &str) -> Result<&str, TrainError> {
        self.meta
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| self.bad(format!("metadata has no `{key}`")))
    }

    /// A metadata entry holding an integer.
    pub fn number(&self, key: &str) -> Result<u64, TrainError> {
        self.field(key)?
            .parse()
            .map_err(|e| self.bad(format!("metadata `{key}`: {e}")))
    }

    /// A metadata entry holding JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<T, TrainError> {
        serde_json::from_str(self.field(key)?)
            .map_err(|e| self.bad(format!("metadata `{key}`: {e}")))
    }
}

/// Writes the weights, AdamW's moments and `meta` (plus the format tag, the optimizer's step and
/// the model config) to `path` atomically. Shared by pretraining/SFT and RL checkpoints.
pub fn write(
    path: &Path,
    format: &str,
    params: &Parameters,
    optimizer: &AdamW,
    meta: Vec<(String, String)>,
) -> Result<(), TrainError> {
    let (adam_step, moments) = optimizer.state();
    let mut tensors: Vec<(String, &Tensor)> = Vec::new();
    for (name, var) in params.iter() {
        tensors.push((format!("{PARAM}{name}"), var.as_tensor()));
    }
    for (name, (m, v)) in moments {
        tensors.push((format!("{MOMENT1}{name}"), m));
        tensors.push((format!("{MOMENT2}{name}"), v));
    }
    let mut metadata: HashMap<String, String> = meta.into_iter().collect();
    metadata.insert("format".to_string(), format.to_string());
    metadata.insert("adam_step".to_string(), adam_step.to_string());
    metadata.insert("model_config".to_string(), params.config_json().to_string());
    let tmp = path.with_extension("safetensors.tmp");
    let io = |e: &dyn std::fmt::Display| TrainError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    safetensors::serialize_to_file(tensors, Some(metadata), &tmp).map_err(|e| io(&e))?;
    std::fs::rename(&tmp, path).map_err(|e| io(&e))
}

/// Reads a checkpoint of `format` written by [`write`].
pub fn read(
    path: &Path,
    format: &str,
    optimizer: AdamWConfig,
    device: &Device,
) -> Result<Snapshot, TrainError> {
    let bad = |message: String| TrainError::Checkpoint {
        path: path.to_path_buf(),
        message,
    };
    let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let file = SafeTensors::deserialize(&bytes).map_err(|e| bad(e.to_string()))?;
    let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| bad(e.to_string()))?;
    let meta = header
        .metadata()
        .clone()
        .ok_or_else(|| bad("no metadata".into()))?;
    if meta.get("format").map(String::as_str) != Some(format) {
        return Err(bad(format!("not a {format} file")));
    }
    let tensor = |name: &str, shape: &[usize]| -> Result<Tensor, TrainError> {
        let view = file
            .tensor(name)
            .map_err(|_| bad(format!("tensor `{name}` is missing")))?;
        if view.shape() != shape {
            return Err(bad(format!(
                "tensor `{name}` has shape {:?}, expected {shape:?}",
                view.shape()
            )));
        }
        Ok(view.load(device)?)
    };
    let model_config = meta
        .get("model_config")
        .cloned()
        .ok_or_else(|| bad("metadata has no `model_config`".into()))?;
    let params = Parameters::from_lookup(model_config, |name, shape| {
        tensor(&format!("{PARAM}{name}"), shape)
    })?;
    let mut moments = BTreeMap::new();
    for (name, var) in params.iter() {
        let shape = var.dims();
        moments.insert(
            name.clone(),
            (
                tensor(&format!("{MOMENT1}{name}"), shape)?,
                tensor(&format!("{MOMENT2}{name}"), shape)?,
            ),
        );
    }
    let adam_step = meta
        .get("adam_step")
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("metadata `adam_step` is missing or not a number".into()))?;
    Ok(Snapshot {
        optimizer: AdamW::restore(optimizer, adam_step, moments),
        params,
        path: path.to_path_buf(),
        meta,
    })
}

/// Plain data as checkpoint metadata JSON.
pub(crate) fn to_json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).expect("plain data always serialises")
}
