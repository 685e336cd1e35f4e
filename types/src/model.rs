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
    /// A model on the Hugging Face hub (or a mirror: `HF_ENDPOINT`), which the worker downloads
    /// into the standard Hugging Face cache once and loads from there.
    HfHub {
        /// The hub id, `owner/name` (e.g. `XiaomiMiMo/MiMo-7B-RL`).
        #[cfg_attr(feature = "openapi", schema(schema_with = hub_repo_schema))]
        repo: String,
        /// A branch, tag or commit; `main` when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "openapi", schema(schema_with = hub_revision_schema))]
        revision: Option<String>,
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

/// Whether `s` has the shape of a hub model id: `name` or `owner/name`, each part of letters,
/// digits, `-`, `_` and `.`, starting with a letter or digit, at most 96 characters, with no `..`.
pub fn is_hub_repo_id(s: &str) -> bool {
    let part = |p: &str| {
        p.len() <= 96
            && p.starts_with(|c: char| c.is_ascii_alphanumeric())
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            && !p.contains("..")
    };
    match s.split_once('/') {
        Some((owner, name)) => part(owner) && part(name),
        None => part(s),
    }
}

/// Whether `s` can be a hub revision (a branch, tag or commit): letters, digits, `-`, `_`, `.`
/// and `/`, starting with a letter or digit, at most 128 characters, with no `..`.
pub fn is_hub_revision(s: &str) -> bool {
    s.len() <= 128
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
        && !s.contains("..")
}

/// [`is_hub_repo_id`] as JSON Schema (the `not` keeps out `..` and the trailing newline that `$`
/// lets through in some regex engines).
#[cfg(feature = "openapi")]
fn hub_repo_schema() -> utoipa::openapi::schema::Object {
    let mut schema = utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .pattern(Some(
            "^[A-Za-z0-9][A-Za-z0-9._-]{0,95}(/[A-Za-z0-9][A-Za-z0-9._-]{0,95})?$",
        ))
        .max_length(Some(193))
        .build();
    crate::validate::excluding(&mut schema, "\\.\\.|\\n");
    schema
}

/// [`is_hub_revision`] as JSON Schema, `null` allowed (the repo's `main`).
#[cfg(feature = "openapi")]
fn hub_revision_schema() -> utoipa::openapi::schema::Object {
    let mut schema = utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::from_iter([
            utoipa::openapi::schema::Type::String,
            utoipa::openapi::schema::Type::Null,
        ]))
        .pattern(Some("^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$"))
        .max_length(Some(128))
        .build();
    crate::validate::excluding(&mut schema, "\\.\\.|\\n");
    schema
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_ids_and_revisions_have_the_hub_shape() {
        for ok in [
            "gpt2",
            "XiaomiMiMo/MiMo-7B-RL",
            "Qwen/Qwen2.5-0.5B-Instruct",
            "a_b/c.d",
        ] {
            assert!(is_hub_repo_id(ok), "{ok}");
        }
        for bad in [
            "", "/x", "x/", "a/b/c", "../etc", "a/..", "a/b..c", "-a/b", "a b/c", "a/b?c",
        ] {
            assert!(!is_hub_repo_id(bad), "{bad}");
        }
        for ok in ["main", "v1.0", "refs/pr/3", "0123abcd"] {
            assert!(is_hub_revision(ok), "{ok}");
        }
        for bad in ["", "/main", "a/../b", "a b", "a?b", "ä"] {
            assert!(!is_hub_revision(bad), "{bad}");
        }
    }
}
