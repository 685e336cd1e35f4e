//! Wire and domain types shared by every Crucible crate.
//!
//! This crate is the contract between the server, the workers, the CLI and the browser app, so it
//! depends on nothing heavier than serde and compiles to wasm32. The `openapi` feature adds utoipa
//! schemas for the server's OpenAPI document.

pub mod benchmarks;
pub mod dataset;
pub mod error;
pub mod eval;
pub mod jobs;
pub mod model;
pub mod presets;
pub mod rl;
pub mod sampling;
pub mod testing;
pub mod tracking;
pub mod train;
pub mod validate;

pub use benchmarks::*;
pub use dataset::*;
pub use error::*;
pub use eval::*;
pub use jobs::*;
pub use model::*;
pub use presets::Preset;
pub use rl::*;
pub use sampling::*;
pub use tracking::*;
pub use validate::{Invalid, MAX_NAME_CHARS, check_name};
