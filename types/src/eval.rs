//! Evals, their samples and scores, and the leaderboard built from them.

use crate::sampling::SamplingParams;
use crate::tracking::wire_enum;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

wire_enum! {
    /// An eval's place: `queued → running → finished | failed | killed`, following its job.
    EvalStatus {
        Queued => "queued",
        Running => "running",
        Finished => "finished",
        Failed => "failed",
        /// Its job was cancelled.
        Killed => "killed",
    }
}

/// One completion of one problem, as the worker graded it. `(problem_idx, sample_idx)` makes
/// uploads idempotent: a retried worker overwrites, never duplicates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SampleRecord {
    /// Position of the problem in the benchmark.
    #[cfg_attr(feature = "openapi", schema(minimum = 0))]
    pub problem_idx: i32,
    /// Which of the n samples.
    #[cfg_attr(feature = "openapi", schema(minimum = 0))]
    pub sample_idx: i32,
    /// The benchmark's id of the problem.
    pub problem_id: String,
    /// The full prompt sent to the model.
    pub prompt: String,
    /// The model's completion.
    pub completion: String,
    /// The answer the verifier extracted, if any.
    pub extracted: Option<String>,
    /// `correct`, `wrong`, `no_answer`, or a code verdict.
    pub verdict: String,
    /// Whether it counts as solved.
    pub correct: bool,
    /// The reward (1/0, or a tier reward for code).
    pub reward: f64,
    /// Completion tokens.
    pub tokens: i32,
    /// Stopped by the token budget rather than by the model.
    pub truncated: bool,
}

/// Body of `POST /api/v1/evals/{id}/samples`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UploadSamples {
    /// The lease holder.
    pub worker_id: Uuid,
    /// Samples in any order.
    pub samples: Vec<SampleRecord>,
}

/// One score of an eval with its 95% bootstrap confidence interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EvalScore {
    /// `pass@1` (= avg@n), `pass@k`, `maj@k`.
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::tracking::key_schema))]
    pub metric: String,
    /// The score in [0, 1].
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 1))]
    pub value: f64,
    /// Lower end of the 95% interval.
    pub ci_low: Option<f64>,
    /// Upper end of the 95% interval.
    pub ci_high: Option<f64>,
    /// Problems scored.
    pub n: i32,
}

/// Body of `POST /api/v1/evals/{id}/scores`: the final scores; the eval then counts as finished.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UploadScores {
    /// The lease holder.
    pub worker_id: Uuid,
    /// Problems evaluated.
    pub problems: i32,
    /// Scores.
    pub scores: Vec<EvalScore>,
}

/// An eval with its scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Eval {
    /// Eval id.
    pub id: Uuid,
    /// Owning team.
    pub team_id: Uuid,
    /// The run tracking it.
    pub run_id: Option<Uuid>,
    /// The job that produced it.
    pub job_id: Option<Uuid>,
    /// The model evaluated.
    pub model_id: Uuid,
    /// Benchmark name.
    pub benchmark: String,
    /// Sampling used.
    pub sampling: SamplingParams,
    /// Samples per problem.
    pub n_samples: i32,
    /// Where the eval is; it follows its job.
    pub status: EvalStatus,
    /// Problems evaluated, once finished.
    pub problems: Option<i32>,
    /// Scores, once finished.
    pub scores: Vec<EvalScore>,
    /// Overlap with the model's training data, once finished.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub contamination: Option<serde_json::Value>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Completion time.
    pub finished_at: Option<DateTime<Utc>>,
}

/// The best eval of a model on a benchmark, for the leaderboard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LeaderboardRow {
    /// Team.
    pub team_id: Uuid,
    /// Model id.
    pub model_id: Uuid,
    /// Model name.
    pub model_name: String,
    /// Benchmark.
    pub benchmark: String,
    /// pass@1 (avg@n).
    pub score: f64,
    /// Lower end of the 95% interval.
    pub ci_low: Option<f64>,
    /// Upper end of the 95% interval.
    pub ci_high: Option<f64>,
    /// Samples per problem.
    pub n_samples: i32,
    /// Problems.
    pub problems: i32,
    /// The eval behind the cell.
    pub eval_id: Uuid,
    /// When it finished.
    pub finished_at: Option<DateTime<Utc>>,
    /// Sampling used.
    pub sampling: SamplingParams,
    /// The benchmark overlaps the model's registered training data.
    pub contaminated: bool,
}

/// One completion a run produced: an RL rollout or a generate output. `(step, group_idx,
/// sample_idx)` identifies it, so uploads are idempotent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CompletionRecord {
    /// Training step (0 for generate jobs).
    #[cfg_attr(feature = "openapi", schema(minimum = 0))]
    pub step: i64,
    /// Problem or prompt index.
    #[cfg_attr(feature = "openapi", schema(minimum = 0))]
    pub group_idx: i32,
    /// Rollout index within the group.
    #[cfg_attr(feature = "openapi", schema(minimum = 0))]
    pub sample_idx: i32,
    /// The problem's id (or the prompt's index as text).
    pub problem_id: String,
    /// The prompt as sent.
    pub prompt: String,
    /// The model's output.
    pub completion: String,
    /// Reward, for RL rollouts.
    pub reward: Option<f64>,
    /// Verifier verdict, for RL rollouts.
    pub verdict: Option<String>,
    /// Completion tokens.
    pub tokens: i32,
    /// Stopped by the token budget.
    pub truncated: bool,
}

/// Which problems the sample browser shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SampleFilter {
    /// Every problem.
    All,
    /// Problems no sample solved.
    AllWrong,
    /// Problems every sample solved.
    AllRight,
    /// Problems some samples solved.
    Mixed,
}

/// One problem with its n samples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProblemSamples {
    /// Position in the benchmark.
    pub problem_idx: i32,
    /// The benchmark's id.
    pub problem_id: String,
    /// Samples that were correct.
    pub correct: i64,
    /// Its samples, by sample index.
    pub samples: Vec<SampleRecord>,
}
