//! One runner per job kind; each reports through the server client and honours the job's signals.

pub mod eval;
pub mod generate;
pub mod rl;
pub mod train;

use crate::client::ClientError;
use crate::hub::HubConfig;
use crucible_types::ModelSource;
use std::fmt::Display;
use std::path::PathBuf;

/// How a job ended without succeeding, in the three ways the lease loop tells apart (as
/// mistral.rs splits validation, internal and partial failures).
#[derive(Debug, thiserror::Error)]
pub(crate) enum JobError {
    /// The job cannot run as given (a bad config, a model of the wrong kind): a retry fails too.
    #[error("invalid job: {0}")]
    Invalid(String),
    /// Running it failed (a model that does not load, a server that stays unreachable).
    #[error("{0}")]
    Internal(String),
    /// It stopped early: cancelled, or its lease was lost.
    #[error("stopped: {0}")]
    Stopped(String),
}

impl JobError {
    /// A job that cannot run as given.
    pub(crate) fn invalid(why: impl Display) -> Self {
        JobError::Invalid(why.to_string())
    }

    /// A failure while running.
    pub(crate) fn internal(why: impl Display) -> Self {
        JobError::Internal(why.to_string())
    }
}

impl From<crucible_types::Invalid> for JobError {
    fn from(e: crucible_types::Invalid) -> Self {
        JobError::invalid(e)
    }
}

impl From<ClientError> for JobError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::LeaseLost(why) => JobError::Stopped(format!("lease lost: {why}")),
            other => JobError::internal(other),
        }
    }
}

/// The local folder of a model's weights: the folder itself, or the Hugging Face cache's copy of
/// a hub model (downloaded on first use); `None` for an OpenAI-compatible endpoint.
pub(crate) fn local_weights(source: &ModelSource) -> Result<Option<PathBuf>, JobError> {
    match source {
        ModelSource::HfLocal { path } | ModelSource::Checkpoint { path, .. } => {
            Ok(Some(PathBuf::from(path)))
        }
        ModelSource::HfHub { repo, revision } => HubConfig::from_env()
            .model_dir(repo, revision.as_deref())
            .map(Some)
            .map_err(JobError::internal),
        ModelSource::Openai { .. } => Ok(None),
    }
}
