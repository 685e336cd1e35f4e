//! One runner per job kind; each reports through the server client and honours the job's signals.

pub mod eval;
pub mod generate;
pub mod rl;
pub mod train;

use crate::client::ClientError;
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

/// [`crate::hub::local_weights`], failing the job when the hub cannot be reached.
pub(crate) fn local_weights(source: &ModelSource) -> Result<Option<PathBuf>, JobError> {
    crate::hub::local_weights(source).map_err(JobError::internal)
}
