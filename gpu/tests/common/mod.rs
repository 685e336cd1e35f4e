//! Shared helpers of the model tests: the committed tiny-MiMo fixture and its reference outputs.
#![allow(dead_code)] // each test binary uses a different subset of these helpers

pub mod wgpu;

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{Device, Tensor};
use crucible_gpu::model::{LoadOptions, MimoModel};

/// The fixture written by `tools/make_reference.py`.
pub fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-mimo")
}

/// The fixture loaded in f32 on the CPU.
pub fn tiny_model() -> MimoModel {
    MimoModel::load(&fixture_dir(), &LoadOptions::default()).expect("fixture loads")
}

/// `reference.json`: prompts, greedy continuation and the chat-template rendering.
pub fn reference_json() -> serde_json::Value {
    let text = std::fs::read_to_string(fixture_dir().join("reference.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// `reference.safetensors`: logits of every prompt and of the MTP layer.
pub fn reference_tensors() -> HashMap<String, Tensor> {
    candle_core::safetensors::load(fixture_dir().join("reference.safetensors"), &Device::Cpu)
        .unwrap()
}

/// Token ids of reference prompt `n`.
pub fn prompt_ids(reference: &serde_json::Value, n: usize) -> Vec<u32> {
    ids(&reference["prompts"][n]["ids"])
}

/// A JSON array of token ids.
pub fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

/// Largest absolute difference between two tensors of the same shape.
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims(), "shapes differ");
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// A `(1, n)` tensor of token ids.
pub fn row(ids: &[u32]) -> Tensor {
    Tensor::new(ids, &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap()
}
