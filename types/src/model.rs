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
        #[cfg_attr(feature = "openapi", schema(pattern = "^/"))]
        path: String,
    },
    /// An OpenAI-compatible server (vLLM, SGLang, …) that the worker calls.
    Openai {
        /// Base URL, e.g. `http://gpu-box:8000/v1`: `http://` or `https://`, then no whitespace.
        #[cfg_attr(feature = "openapi", schema(schema_with = endpoint_url_schema))]
        base_url: String,
        /// The model name the endpoint expects.
        #[cfg_attr(feature = "openapi", schema(schema_with = crate::validate::name_schema))]
        model: String,
    },
    /// A checkpoint written by a Crucible run.
    Checkpoint {
        /// Folder of the HF-format checkpoint (an absolute path).
        #[cfg_attr(feature = "openapi", schema(pattern = "^/"))]
        path: String,
        /// The run that wrote it.
        run_id: Uuid,
        /// Training step.
        step: i64,
    },
}

/// Whether `url` can be an endpoint's base URL: `http://` or `https://`, then at least one
/// character, and no whitespace or control character anywhere.
pub fn is_endpoint_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    rest.is_some_and(|r| !r.is_empty()) && !url.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// [`is_endpoint_url`] as JSON Schema.
#[cfg(feature = "openapi")]
fn endpoint_url_schema() -> utoipa::openapi::schema::Object {
    let mut schema = utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .pattern(Some("^https?://\\S"))
        .build();
    crate::validate::excluding(&mut schema, "[\\s\\u0000-\\u001f\\u007f-\\u009f]");
    schema
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
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::validate::name_schema))]
    pub name: String,
    /// Where it lives.
    pub source: ModelSource,
    /// Datasets it was trained on.
    #[serde(default)]
    pub training_datasets: Vec<Uuid>,
}
