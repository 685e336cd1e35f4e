//! Loading HF checkpoints: sharded files with an index, stored dtypes, and errors that name the
//! tensor or file at fault. Each test writes a modified copy of the fixture to a temp folder.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use common::*;
use crucible_gpu::model::{LoadOptions, MimoModel};

/// A fresh folder holding the fixture's config and tokenizer files but no weights.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("crucible-loading-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["config.json", "tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(fixture_dir().join(f), dir.join(f)).unwrap();
    }
    dir
}

fn fixture_weights() -> HashMap<String, Tensor> {
    candle_core::safetensors::load(fixture_dir().join("model.safetensors"), &Device::Cpu).unwrap()
}

fn prompt_logits(model: &MimoModel, n: usize) -> Tensor {
    let ids = prompt_ids(&reference_json(), n);
    let mut cache = model.new_cache(vec![0], ids.len());
    model
        .forward(&row(&ids), &mut cache)
        .unwrap()
        .squeeze(0)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap()
}

fn load_err(dir: &Path) -> String {
    match MimoModel::load(dir, &LoadOptions::default()) {
        Ok(_) => panic!("{} should not load", dir.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn sharded_checkpoint_with_index_loads_identically() {
    let dir = scratch("sharded");
    let weights = fixture_weights();
    let (mut first, mut second) = (HashMap::new(), HashMap::new());
    let mut map = serde_json::Map::new();
    for (name, t) in weights {
        let file = if name.contains("layers.0") || name.contains("embed") {
            first.insert(name.clone(), t);
            "model-00001-of-00002.safetensors"
        } else {
            second.insert(name.clone(), t);
            "model-00002-of-00002.safetensors"
        };
        map.insert(name, file.into());
    }
    candle_core::safetensors::save(&first, dir.join("model-00001-of-00002.safetensors")).unwrap();
    candle_core::safetensors::save(&second, dir.join("model-00002-of-00002.safetensors")).unwrap();
    let index = serde_json::json!({"metadata": {}, "weight_map": map});
    std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();

    let model = MimoModel::load(&dir, &LoadOptions::default()).unwrap();
    let diff = max_abs_diff(
        &prompt_logits(&model, 2),
        &reference_tensors()["prompt.2.logits"],
    );
    assert!(diff < 1e-4, "{diff}");
}

#[test]
fn bf16_and_f16_checkpoints_are_converted_on_load() {
    for dtype in [DType::BF16, DType::F16] {
        let stored = scratch(&format!("stored-{dtype:?}"));
        let widened = scratch(&format!("widened-{dtype:?}"));
        let narrow: HashMap<String, Tensor> = fixture_weights()
            .into_iter()
            .map(|(n, t)| (n, t.to_dtype(dtype).unwrap()))
            .collect();
        let wide: HashMap<String, Tensor> = narrow
            .iter()
            .map(|(n, t)| (n.clone(), t.to_dtype(DType::F32).unwrap()))
            .collect();
        candle_core::safetensors::save(&narrow, stored.join("model.safetensors")).unwrap();
        candle_core::safetensors::save(&wide, widened.join("model.safetensors")).unwrap();
        let a = prompt_logits(
            &MimoModel::load(&stored, &LoadOptions::default()).unwrap(),
            1,
        );
        let b = prompt_logits(
            &MimoModel::load(&widened, &LoadOptions::default()).unwrap(),
            1,
        );
        assert!(max_abs_diff(&a, &b) < 1e-6, "{dtype:?} conversion");
        let drift = max_abs_diff(&a, &reference_tensors()["prompt.1.logits"]);
        assert!(drift < 0.5, "{dtype:?} rounding moved logits by {drift}");
    }
}

#[test]
fn f16_compute_stays_close_and_bf16_compute_on_cpu_is_refused() {
    let opts = LoadOptions {
        dtype: DType::F16,
        ..LoadOptions::default()
    };
    let model = MimoModel::load(&fixture_dir(), &opts).unwrap();
    let diff = max_abs_diff(
        &prompt_logits(&model, 1),
        &reference_tensors()["prompt.1.logits"],
    );
    assert!(diff < 0.05, "f16 compute drifted by {diff}");
    let opts = LoadOptions {
        dtype: DType::BF16,
        ..LoadOptions::default()
    };
    let err = MimoModel::load(&fixture_dir(), &opts)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("bf16"), "{err}");
}

#[test]
fn missing_tensor_and_shape_mismatch_are_named() {
    let dir = scratch("missing");
    let mut weights = fixture_weights();
    weights.remove("model.layers.1.mlp.up_proj.weight");
    candle_core::safetensors::save(&weights, dir.join("model.safetensors")).unwrap();
    let err = load_err(&dir);
    assert!(
        err.contains("`model.layers.1.mlp.up_proj.weight` is missing"),
        "{err}"
    );

    let dir = scratch("shape");
    let mut weights = fixture_weights();
    weights.insert(
        "model.norm.weight".into(),
        Tensor::ones(63, DType::F32, &Device::Cpu).unwrap(),
    );
    candle_core::safetensors::save(&weights, dir.join("model.safetensors")).unwrap();
    let err = load_err(&dir);
    assert!(
        err.contains("`model.norm.weight` has shape [63]") && err.contains("[64]"),
        "{err}"
    );
}

#[test]
fn corrupt_or_missing_files_are_named() {
    let dir = scratch("corrupt");
    let mut bytes = std::fs::read(fixture_dir().join("model.safetensors")).unwrap();
    bytes.truncate(bytes.len() / 2);
    std::fs::write(dir.join("model.safetensors"), bytes).unwrap();
    let err = load_err(&dir);
    assert!(
        err.contains("model.safetensors") && err.contains("not a valid safetensors"),
        "{err}"
    );

    let dir = scratch("no-weights");
    assert!(load_err(&dir).contains("no model.safetensors"));

    std::fs::remove_file(dir.join("config.json")).unwrap();
    assert!(load_err(&dir).contains("config.json"));

    std::fs::write(
        dir.join("config.json"),
        "{\"architectures\": [\"MiMoForCausalLM\"], ",
    )
    .unwrap();
    let err = load_err(&dir);
    assert!(err.contains("config.json") && err.contains("EOF"), "{err}");
}
