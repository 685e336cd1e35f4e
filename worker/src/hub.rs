//! Hugging Face model ids (`XiaomiMiMo/MiMo-7B-RL`), resolved to a local HF folder through the
//! `hf-hub` crate and the standard cache, so a checkpoint downloaded by transformers, vLLM or an
//! earlier job is found where they put it and fetched only once.
//!
//! The environment is the one every Hugging Face tool reads: `HF_ENDPOINT` (a mirror, or a test
//! server), `HF_HUB_CACHE` / `HF_HOME` (the cache), `HF_TOKEN` (gated and private repos) and
//! `HF_HUB_OFFLINE=1` (the cache only: no request at all).

use crucible_types::ModelSource;
use hf_hub::api::sync::ApiBuilder;
use hf_hub::{Cache, Repo, RepoType};
use std::path::{Path, PathBuf};

/// The public hub.
const DEFAULT_ENDPOINT: &str = "https://huggingface.co";
/// The revision of a repo named without one.
const DEFAULT_REVISION: &str = "main";

/// The local folder of a registered model's weights: the folder itself, or the Hugging Face
/// cache's copy of a hub model (downloaded on first use); `None` for an OpenAI-compatible
/// endpoint, which has no weights here.
pub fn local_weights(source: &ModelSource) -> Result<Option<PathBuf>, HubError> {
    match source {
        ModelSource::HfLocal { path } | ModelSource::Checkpoint { path, .. } => {
            Ok(Some(PathBuf::from(path)))
        }
        ModelSource::HfHub { repo, revision } => HubConfig::from_env()
            .model_dir(repo, revision.as_deref())
            .map(Some),
        ModelSource::Openai { .. } => Ok(None),
    }
}

/// Why a hub id could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// The hub (or the mirror) refused or could not be reached.
    #[error("Hugging Face hub at {endpoint}, {repo}@{revision}: {source}")]
    Api {
        endpoint: String,
        repo: String,
        revision: String,
        source: Box<hf_hub::api::sync::ApiError>,
    },
    /// Offline, and the cache does not hold the repo at this revision.
    #[error(
        "{repo}@{revision} is not in the Hugging Face cache {cache} and HF_HUB_OFFLINE is set; \
         download it once online"
    )]
    NotCached {
        repo: String,
        revision: String,
        cache: PathBuf,
    },
    /// The repo holds no weights Crucible can load.
    #[error("{repo}@{revision} has no config.json and *.safetensors weights (files: {files})")]
    NotAModel {
        repo: String,
        revision: String,
        files: String,
    },
}

/// Where and how to reach the hub: the environment's settings, or a test's.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Base URL of the hub (`HF_ENDPOINT`).
    pub endpoint: String,
    /// The hub cache folder (`HF_HUB_CACHE`, else `$HF_HOME/hub`, else
    /// `~/.cache/huggingface/hub`).
    pub cache_dir: PathBuf,
    /// Access token (`HF_TOKEN`, else the token file the `hf auth login` tool writes).
    pub token: Option<String>,
    /// Use the cache only (`HF_HUB_OFFLINE=1`).
    pub offline: bool,
}

impl HubConfig {
    /// The settings of the environment, as Hugging Face's own tools read them.
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let cache_dir = var("HF_HUB_CACHE")
            .map(PathBuf::from)
            .or_else(|| var("HF_HOME").map(|home| Path::new(&home).join("hub")))
            .unwrap_or_else(|| Cache::default().path().clone());
        let token = var("HF_TOKEN").or_else(|| Cache::new(cache_dir.clone()).token());
        Self {
            endpoint: var("HF_ENDPOINT").unwrap_or_else(|| DEFAULT_ENDPOINT.to_string()),
            cache_dir,
            token,
            offline: var("HF_HUB_OFFLINE")
                .is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true")),
        }
    }

    /// The local folder of `repo` at `revision` (default `main`), downloading what the cache
    /// lacks: the config, tokenizer and chat-template files and every `.safetensors` shard.
    /// Files already cached for the revision are not fetched again.
    pub fn model_dir(&self, repo: &str, revision: Option<&str>) -> Result<PathBuf, HubError> {
        let revision = revision.unwrap_or(DEFAULT_REVISION);
        let at_revision =
            Repo::with_revision(repo.to_string(), RepoType::Model, revision.to_string());
        let cached = Cache::new(self.cache_dir.clone()).repo(at_revision.clone());
        if self.offline {
            return cached
                .get("config.json")
                .and_then(|config| config.parent().map(Path::to_path_buf))
                .ok_or_else(|| HubError::NotCached {
                    repo: repo.to_string(),
                    revision: revision.to_string(),
                    cache: self.cache_dir.clone(),
                });
        }
        let api_error = |source| HubError::Api {
            endpoint: self.endpoint.clone(),
            repo: repo.to_string(),
            revision: revision.to_string(),
            source: Box::new(source),
        };
        let api = ApiBuilder::new()
            .with_endpoint(self.endpoint.clone())
            .with_cache_dir(self.cache_dir.clone())
            .with_token(self.token.clone())
            .with_progress(false)
            .with_retries(3)
            .build()
            .map_err(api_error)?;
        let remote = api.repo(at_revision);
        let files: Vec<String> = remote
            .info()
            .map_err(api_error)?
            .siblings
            .into_iter()
            .map(|s| s.rfilename)
            .filter(|f| is_model_file(f))
            .collect();
        if !files.iter().any(|f| f == "config.json")
            || !files.iter().any(|f| f.ends_with(".safetensors"))
        {
            return Err(HubError::NotAModel {
                repo: repo.to_string(),
                revision: revision.to_string(),
                files: files.join(", "),
            });
        }
        let mut dir = PathBuf::new();
        for file in &files {
            tracing::info!(%repo, %revision, %file, "fetching from the hub (or its cache)");
            let path = remote.get(file).map_err(api_error)?;
            if let (true, Some(parent)) = (file == "config.json", path.parent()) {
                dir = parent.to_path_buf();
            }
        }
        Ok(dir)
    }
}

/// A hub model as people type it — `owner/name` or `owner/name@revision` — as (repo, revision);
/// `None` when `s` does not have that shape.
pub fn parse_hub_ref(s: &str) -> Option<(String, Option<String>)> {
    let (repo, revision) = match s.split_once('@') {
        Some((repo, rev)) => (repo, Some(rev)),
        None => (s, None),
    };
    (crucible_types::is_hub_repo_id(repo) && revision.is_none_or(crucible_types::is_hub_revision))
        .then(|| (repo.to_string(), revision.map(str::to_string)))
}

/// Whether a repo file is one the model loader reads (weights, config, tokenizer, template);
/// READMEs, images and other formats' weights stay on the hub.
fn is_model_file(name: &str) -> bool {
    !name.contains('/')
        && (name.ends_with(".safetensors")
            || name.ends_with(".json")
            || name.ends_with(".jinja")
            || name == "tokenizer.model")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_refs_name_a_repo_and_maybe_a_revision() {
        assert_eq!(
            parse_hub_ref("XiaomiMiMo/MiMo-7B-RL@v1.0"),
            Some(("XiaomiMiMo/MiMo-7B-RL".into(), Some("v1.0".into())))
        );
        assert_eq!(parse_hub_ref("gpt2"), Some(("gpt2".into(), None)));
        for bad in ["a/b@", "a/b@../x", "/abs/path", "./models/x", "a/b/c"] {
            assert_eq!(parse_hub_ref(bad), None, "{bad}");
        }
    }

    #[test]
    fn only_the_files_the_loader_reads_are_fetched() {
        for name in [
            "model.safetensors",
            "model-00001-of-00002.safetensors",
            "config.json",
            "tokenizer.json",
            "chat_template.jinja",
        ] {
            assert!(is_model_file(name), "{name}");
        }
        for name in [
            "README.md",
            "pytorch_model.bin",
            "onnx/model.onnx",
            "figures/a.png",
            "original/params.json",
        ] {
            assert!(!is_model_file(name), "{name}");
        }
    }
}
