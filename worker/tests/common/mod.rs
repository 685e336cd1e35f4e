//! The tiny-MiMo fixture, shared with the model's own tests in `gpu/tests/fixtures`.
#![allow(dead_code)] // each test binary uses a different subset of these helpers

use std::path::PathBuf;

use crucible_gpu::model::{LoadOptions, MimoModel};

/// The fixture written by `tools/make_reference.py`.
pub fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../gpu/tests/fixtures/tiny-mimo")
}

/// The fixture loaded in f32 on the CPU.
pub fn tiny_model() -> MimoModel {
    MimoModel::load(&fixture_dir(), &LoadOptions::default()).expect("fixture loads")
}
