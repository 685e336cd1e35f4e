//! The job queue's contract: what users submit, what workers lease, and what they report back.

use crate::sampling::SamplingParams;
use crate::tracking::wire_enum;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

wire_enum! {
    /// What a job does; a worker advertises the kinds it can run.
    JobKind {
        /// Score a model on benchmarks.
        Eval => "eval",
        /// Complete prompts.
        Generate => "generate",
        /// Supervised fine-tuning.
        Sft => "sft",
        /// Reinforcement learning (GRPO).
        Rl => "rl",
        /// Pre-training.
        Pretrain => "pretrain",
    }
}

wire_enum! {
    /// A job's place in the queue: `queued → running → succeeded | failed | cancelled`.
    JobStatus {
        Queued => "queued",
        Running => "running",
        Succeeded => "succeeded",
        Failed => "failed",
        Cancelled => "cancelled",
    }
}

/// What a job needs of the worker that runs it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct JobRequirements {
    /// `cpu`, `cuda` or `wgpu`; any device when absent.
    pub device: Option<String>,
    /// Minimum free memory of the device, in GiB.
    pub min_memory_gb: Option<f64>,
}

/// What a worker offers, sent when it registers; the queue only hands it jobs it can run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkerCapabilities {
    /// Devices the worker can run on (`cpu`, `cuda`, `wgpu`).
    pub devices: Vec<String>,
    /// Memory available to jobs, in GiB.
    pub memory_gb: f64,
    /// Job kinds it implements.
    pub kinds: Vec<JobKind>,
}

/// An evaluation: model × benchmarks × sampling × n samples per problem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EvalSpec {
    /// A registered model.
    pub model_id: Uuid,
    /// Benchmark names (`gsm8k`, `math500`, `aime2024`, `synthetic`, …) or `dataset:<id>`.
    pub benchmarks: Vec<String>,
    /// Sampling; `preset: "mimo"` fills MiMo's (T=0.6, top-p 0.95) when absent.
    #[serde(default)]
    pub sampling: Option<SamplingParams>,
    /// Samples per problem; the preset's per-benchmark n when absent (avg@32 AIME, avg@8 code/GPQA, else 1).
    #[serde(default)]
    pub n_samples: Option<u32>,
    /// Evaluate only the first `limit` problems of each benchmark.
    #[serde(default)]
    pub limit: Option<u32>,
    /// `mimo` (the report's protocol) or `greedy`.
    #[serde(default)]
    pub preset: Option<String>,
    /// k values for pass@k and maj@k (each ≤ n); `[1]` when absent.
    #[serde(default)]
    pub ks: Vec<u32>,
    /// Project whose run tracks the eval; the team's `evals` project when absent.
    #[serde(default)]
    pub project_id: Option<Uuid>,
}

/// A batch of completions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct GenerateSpec {
    /// A registered model.
    pub model_id: Uuid,
    /// User messages to answer (the model's chat template is applied).
    pub prompts: Vec<String>,
    /// Sampling.
    #[serde(default)]
    pub sampling: SamplingParams,
}

/// A training job: the worker's `TrainConfig` (see docs/training.md) as JSON, and the name under
/// which the trained model is registered when the job succeeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TrainSpec {
    /// The training config; its `kind` must match the job's.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub config: serde_json::Value,
    /// Register the final model under this name (default: `<kind>-<job id prefix>`).
    #[serde(default)]
    pub model_name: Option<String>,
}

/// The typed body of a job, tagged by kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum JobSpec {
    /// See [`EvalSpec`].
    Eval(EvalSpec),
    /// See [`GenerateSpec`].
    Generate(GenerateSpec),
    /// Pre-training (see [`TrainSpec`]).
    Pretrain(TrainSpec),
    /// Supervised fine-tuning (see [`TrainSpec`]).
    Sft(TrainSpec),
    /// GRPO with MiMo's recipe (see [`crate::rl::RlSpec`]).
    Rl(crate::rl::RlSpec),
}

impl JobSpec {
    /// The queue's kind column for this spec.
    pub fn kind(&self) -> JobKind {
        match self {
            JobSpec::Eval(_) => JobKind::Eval,
            JobSpec::Generate(_) => JobKind::Generate,
            JobSpec::Pretrain(_) => JobKind::Pretrain,
            JobSpec::Sft(_) => JobKind::Sft,
            JobSpec::Rl(_) => JobKind::Rl,
        }
    }

    /// The registered model the job runs, if it runs one (pretrain/SFT name their start in their
    /// config; RL starts from a registered model).
    pub fn model_id(&self) -> Option<Uuid> {
        match self {
            JobSpec::Eval(e) => Some(e.model_id),
            JobSpec::Generate(g) => Some(g.model_id),
            JobSpec::Rl(r) => Some(r.model_id),
            JobSpec::Pretrain(_) | JobSpec::Sft(_) => None,
        }
    }
}

/// Body of `POST /api/v1/jobs`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SubmitJob {
    /// What to do.
    pub spec: JobSpec,
    /// Higher runs first (default 0).
    #[serde(default)]
    pub priority: i32,
    /// What the worker needs.
    #[serde(default)]
    pub requirements: JobRequirements,
    /// Leases a job may lose before it fails (default 3).
    #[serde(default)]
    pub max_attempts: Option<i32>,
}

/// Where a running job is, as its worker last reported.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobProgress {
    /// Units done (problems, prompts, steps).
    pub done: u64,
    /// Units in all.
    pub total: u64,
    /// What is happening now.
    #[serde(default)]
    pub message: String,
}

/// A job on the queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Job {
    /// Job id.
    pub id: Uuid,
    /// Owning team.
    pub team_id: Uuid,
    /// Kind (mirrors `spec`).
    pub kind: JobKind,
    /// What to do.
    pub spec: JobSpec,
    /// Queue state.
    pub status: JobStatus,
    /// Higher runs first.
    pub priority: i32,
    /// What the worker needs.
    pub requirements: JobRequirements,
    /// The run tracking this job.
    pub run_id: Option<Uuid>,
    /// Leases taken so far.
    pub attempts: i32,
    /// Leases allowed.
    pub max_attempts: i32,
    /// Current lease holder.
    pub worker_id: Option<Uuid>,
    /// When the current lease runs out unless renewed by a heartbeat.
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// Last heartbeat.
    pub heartbeat_at: Option<DateTime<Utc>>,
    /// Last reported progress.
    pub progress: Option<JobProgress>,
    /// Why it failed (or why a lease was lost).
    pub error: Option<String>,
    /// Cancellation was asked for; the worker stops at its next heartbeat.
    pub cancel_requested: bool,
    /// Submission time.
    pub created_at: DateTime<Utc>,
    /// First lease.
    pub started_at: Option<DateTime<Utc>>,
    /// Terminal time.
    pub finished_at: Option<DateTime<Utc>>,
}

/// Body of `POST /api/v1/workers`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RegisterWorker {
    /// Display name (host name, GPU).
    pub name: String,
    /// What it can run.
    pub capabilities: WorkerCapabilities,
}

/// A registered worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Worker {
    /// Worker id.
    pub id: Uuid,
    /// Owning team.
    pub team_id: Uuid,
    /// Display name.
    pub name: String,
    /// What it can run.
    pub capabilities: WorkerCapabilities,
    /// Registration time.
    pub registered_at: DateTime<Utc>,
    /// Last lease request or heartbeat.
    pub last_seen_at: DateTime<Utc>,
}

/// One benchmark of an eval job, with the eval record its results go to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EvalTarget {
    /// Benchmark name as submitted.
    pub benchmark: String,
    /// Eval record.
    pub eval_id: Uuid,
    /// Samples per problem (after the preset).
    pub n_samples: u32,
    /// Sampling (after the preset).
    pub sampling: SamplingParams,
}

/// What a worker receives when it leases a job: the job plus everything resolved it needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Lease {
    /// The job.
    pub job: Job,
    /// The model it runs (the starting policy of an RL job; none for pretrain/SFT jobs).
    pub model: Option<crate::model::Model>,
    /// For eval jobs: one target per benchmark.
    pub evals: Vec<EvalTarget>,
    /// Heartbeat at least this often or lose the lease.
    pub lease_seconds: u32,
}

/// Body of `POST /api/v1/jobs/{id}/heartbeat`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Heartbeat {
    /// The lease holder.
    pub worker_id: Uuid,
    /// Progress so far.
    #[serde(default)]
    pub progress: Option<JobProgress>,
}

/// Reply to a heartbeat.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HeartbeatReply {
    /// Stop working on the job: it was cancelled.
    pub cancel: bool,
}

/// Body of `POST /api/v1/jobs/{id}/complete`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CompleteJob {
    /// The lease holder.
    pub worker_id: Uuid,
    /// `None` for success, else why it failed (the job then fails without retry).
    #[serde(default)]
    pub error: Option<String>,
}

/// Benchmarks whose MiMo protocol is avg@32.
const AVG32: &[&str] = &["aime2024", "aime2025"];
/// Benchmarks whose MiMo protocol is avg@8.
const AVG8: &[&str] = &["humaneval", "mbpp", "livecodebench", "gpqa_diamond"];
/// Token budget of a preset when the spec gives none.
const PRESET_MAX_NEW_TOKENS: u32 = 1024;

impl EvalSpec {
    /// The concrete (n, sampling) for one benchmark: explicit fields win, then the preset
    /// (`mimo`: T=0.6, top-p 0.95, avg@32 for AIME, avg@8 for code and GPQA, 1 otherwise;
    /// `greedy`: T=0, n=1), then greedy.
    pub fn resolve(&self, benchmark: &str) -> Result<(u32, SamplingParams), String> {
        let preset = self
            .preset
            .as_deref()
            .unwrap_or(if self.sampling.is_some() {
                "custom"
            } else {
                "greedy"
            });
        let (preset_n, preset_sampling) = match preset {
            "mimo" => {
                let n = if AVG32.contains(&benchmark) {
                    32
                } else if AVG8.contains(&benchmark) {
                    8
                } else {
                    1
                };
                let s = SamplingParams {
                    temperature: 0.6,
                    top_p: 0.95,
                    max_new_tokens: PRESET_MAX_NEW_TOKENS,
                    ..SamplingParams::default()
                };
                (n, s)
            }
            "greedy" | "custom" => (1, SamplingParams::greedy(PRESET_MAX_NEW_TOKENS)),
            other => return Err(format!("unknown preset {other:?}; expected mimo or greedy")),
        };
        let sampling = self.sampling.clone().unwrap_or(preset_sampling);
        sampling.validate()?;
        let n = self.n_samples.unwrap_or(preset_n);
        if !(1..=1024).contains(&n) {
            return Err(format!("n_samples must be between 1 and 1024, got {n}"));
        }
        if let Some(k) = self.ks.iter().find(|k| **k == 0 || **k > n) {
            return Err(format!(
                "every k must be between 1 and n_samples ({n}), got {k}"
            ));
        }
        Ok((n, sampling))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(preset: Option<&str>) -> EvalSpec {
        EvalSpec {
            model_id: Uuid::nil(),
            benchmarks: vec![],
            sampling: None,
            n_samples: None,
            limit: None,
            preset: preset.map(str::to_string),
            ks: vec![],
            project_id: None,
        }
    }

    #[test]
    fn mimo_preset_follows_the_report() {
        let s = spec(Some("mimo"));
        let (n, p) = s.resolve("aime2024").unwrap();
        assert_eq!((n, p.temperature, p.top_p), (32, 0.6, 0.95));
        assert_eq!(s.resolve("humaneval").unwrap().0, 8);
        assert_eq!(s.resolve("gpqa_diamond").unwrap().0, 8);
        assert_eq!(s.resolve("math500").unwrap().0, 1);
    }

    #[test]
    fn explicit_fields_win_and_bad_ones_are_named() {
        let mut s = spec(Some("mimo"));
        s.n_samples = Some(4);
        s.ks = vec![1, 4];
        assert_eq!(s.resolve("aime2024").unwrap().0, 4);
        s.ks = vec![8];
        assert!(s.resolve("aime2024").unwrap_err().contains("k"));
        assert_eq!(spec(None).resolve("gsm8k").unwrap().1.temperature, 0.0);
        assert!(
            spec(Some("fast"))
                .resolve("gsm8k")
                .unwrap_err()
                .contains("preset")
        );
    }
}
