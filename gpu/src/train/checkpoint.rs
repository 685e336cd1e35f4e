//! Resumable checkpoints: one safetensors file holding the weights, AdamW's moments and, in its
//! metadata, the step, the data stream's cursor (RNG state and position) and the run's config.
//! Restoring it reproduces the interrupted run bit for bit.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::safetensors::Load;
use candle_core::{Device, Tensor};
use safetensors::SafeTensors;

use super::TrainError;
use super::config::TrainConfig;
use super::optimizer::AdamW;
use super::params::Parameters;
use crate::data::stream::StreamCursor;

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
    let (adam_step, moments) = state.optimizer.state();
    let mut tensors: Vec<(String, &Tensor)> = Vec::new();
    for (name, var) in state.params.iter() {
        tensors.push((format!("{PARAM}{name}"), var.as_tensor()));
    }
    for (name, (m, v)) in moments {
        tensors.push((format!("{MOMENT1}{name}"), m));
        tensors.push((format!("{MOMENT2}{name}"), v));
    }
    let metadata = HashMap::from([
        ("format".to_string(), FORMAT.to_string()),
        ("step".to_string(), state.step.to_string()),
        ("adam_step".to_string(), adam_step.to_string()),
        ("cursor".to_string(), to_json(&state.cursor)),
        ("config".to_string(), to_json(config)),
        (
            "model_config".to_string(),
            state.params.config_json().to_string(),
        ),
    ]);
    let tmp = path.with_extension("safetensors.tmp");
    let io = |e: &dyn std::fmt::Display| TrainError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    safetensors::serialize_to_file(tensors, Some(metadata), &tmp).map_err(|e| io(&e))?;
    std::fs::rename(&tmp, path).map_err(|e| io(&e))
}

/// Reads a checkpoint written by [`save`] for the same `config` (other fields than `steps` and
/// `checkpoint_every` must match, so a resume cannot silently change the run).
pub fn load(path: &Path, config: &TrainConfig, device: &Device) -> Result<TrainState, TrainError> {
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
    let field = |key: &str| {
        meta.get(key)
            .cloned()
            .ok_or_else(|| bad(format!("metadata has no `{key}`")))
    };
    if field("format")? != FORMAT {
        return Err(bad(format!("not a {FORMAT} file")));
    }
    let number = |key: &str| -> Result<u64, TrainError> {
        field(key)?
            .parse()
            .map_err(|e| bad(format!("metadata `{key}`: {e}")))
    };
    let saved: TrainConfig = serde_json::from_str(&field("config")?)
        .map_err(|e| bad(format!("metadata `config`: {e}")))?;
    let comparable = |c: &TrainConfig| TrainConfig {
        steps: 0,
        checkpoint_every: 0,
        ..c.clone()
    };
    if comparable(&saved) != comparable(config) {
        return Err(bad(
            "was written by a run with a different configuration; use a fresh out_dir".into(),
        ));
    }
    let cursor: StreamCursor = serde_json::from_str(&field("cursor")?)
        .map_err(|e| bad(format!("metadata `cursor`: {e}")))?;
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
    let params = Parameters::from_lookup(field("model_config")?, |name, shape| {
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
    Ok(TrainState {
        optimizer: AdamW::restore(config.optimizer.clone(), number("adam_step")?, moments),
        params,
        step: number("step")?,
        cursor,
    })
}

fn to_json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).expect("plain data always serialises")
}
