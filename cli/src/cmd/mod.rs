//! One module per `crucible` subcommand.

pub mod api;
pub mod bench;
pub mod compare;
pub mod dataset;
pub mod db;
pub mod generate;
pub mod jobs;
pub mod leaderboard;
pub mod serve;
pub mod serve_model;
pub mod submit;
pub mod token;
pub mod train;
pub mod up;
pub mod worker;

/// The local folder of a `--model` argument: the folder itself, or — for a Hugging Face id
/// (`owner/name[@revision]`) that is not a folder here — the HF cache's copy, downloaded once
/// (`HF_ENDPOINT`, `HF_HOME`, `HF_TOKEN` and `HF_HUB_OFFLINE` apply).
pub fn model_folder(arg: &str) -> anyhow::Result<std::path::PathBuf> {
    let path = std::path::Path::new(arg);
    if path.is_dir() {
        return Ok(path.to_path_buf());
    }
    let Some((repo, revision)) = crucible_worker::hub::parse_hub_ref(arg) else {
        anyhow::bail!(
            "--model {arg}: neither a folder nor a Hugging Face id (owner/name[@revision])"
        );
    };
    Ok(crucible_worker::hub::HubConfig::from_env().model_dir(&repo, revision.as_deref())?)
}
