//! Models: references to weights a worker can run, or endpoints it can call.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Where a model's weights live.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ModelSource {
    /// A Hugging Face-format folder (config.json, *.safetensors, tokenizer.json) on the worker's disk.
    HfLocal {
        /// Absolute path of the folder.
        path: String,
    },
    /// An OpenAI-compatible server (vLLM, SGLang, …) that the worker calls.
    Openai {
        /// Base URL, e.g. `http://gpu-box:8000/v1`.
        base_url: String,
        /// The model name the endpoint expects.
        model: String,
    },
    /// A checkpoint written by a Crucible run.
    Checkpoint {
        /// Folder of the HF-format checkpoint.
        path: String,
        /// The run that wrote it.
        run_id: Uuid,
        /// Training step.
        step: i64,
    },
}

/// A registered model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Model {
    /// Model id.
    pub id: Uuid,
    /// Owning team.
    pub team_id: Uuid,
    /// Unique within the team.
    pub name: String,
    /// Where it lives.
    pub source: ModelSource,
    /// `architectures[0]` of config.json, when the server could read it.
    pub architecture: Option<String>,
    /// Datasets it was trained on (for the leaderboard's contamination flag).
    pub training_datasets: Vec<Uuid>,
    /// Registration time.
    pub created_at: DateTime<Utc>,
}

/// Body of `POST /api/v1/models`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RegisterModel {
    /// Unique within the team.
    pub name: String,
    /// Where it lives.
    pub source: ModelSource,
    /// Datasets it was trained on.
    #[serde(default)]
    pub training_datasets: Vec<Uuid>,
}
