//! The job queue's contract: what users submit, what workers lease, and what they report back.

use crate::benchmarks::{BENCHMARKS, MAX_BENCHMARKS, benchmark_dataset};
use crate::presets::{MAX_SAMPLES, Preset};
use crate::sampling::{SamplingParams, Speculative};
use crate::tracking::wire_enum;
use crate::train::TrainConfig;
use crate::validate::{Invalid, check_name, fits_int64, in_range};
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

wire_enum! {
    /// Where a worker runs models: candle on the CPU or CUDA, or the wgpu compute shaders.
    Device {
        Cpu => "cpu",
        Cuda => "cuda",
        Wgpu => "wgpu",
    }
}

/// What a job needs of the worker that runs it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct JobRequirements {
    /// Any device when absent.
    pub device: Option<Device>,
    /// Minimum free memory of the device, in GiB.
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 1048576))]
    pub min_memory_gb: Option<f64>,
}

/// Most memory a worker may report or a job may ask for, in GiB (1 PiB).
pub const MAX_MEMORY_GB: f64 = 1_048_576.0;

/// What a worker offers, sent when it registers; the queue only hands it jobs it can run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkerCapabilities {
    /// Devices the worker can run on, each once.
    #[cfg_attr(feature = "openapi", schema(schema_with = distinct_devices))]
    pub devices: Vec<Device>,
    /// Memory available to jobs, in GiB.
    #[cfg_attr(feature = "openapi", schema(exclusive_minimum = 0, maximum = 1048576))]
    pub memory_gb: f64,
    /// Job kinds it implements, each once.
    #[cfg_attr(feature = "openapi", schema(schema_with = distinct_kinds))]
    pub kinds: Vec<JobKind>,
}

/// A non-empty list of distinct values of the schema `name`, at most `all` long.
#[cfg(feature = "openapi")]
fn distinct(name: &str, all: usize) -> utoipa::openapi::schema::Array {
    utoipa::openapi::schema::ArrayBuilder::new()
        .items(utoipa::openapi::Ref::from_schema_name(name))
        .min_items(Some(1))
        .max_items(Some(all))
        .unique_items(true)
        .build()
}

/// [`WorkerCapabilities::devices`] as JSON Schema.
#[cfg(feature = "openapi")]
fn distinct_devices() -> utoipa::openapi::schema::Array {
    distinct("Device", Device::ALL.len())
}

/// [`WorkerCapabilities::kinds`] as JSON Schema.
#[cfg(feature = "openapi")]
fn distinct_kinds() -> utoipa::openapi::schema::Array {
    distinct("JobKind", JobKind::ALL.len())
}

/// An evaluation: model × benchmarks × sampling × n samples per problem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EvalSpec {
    /// A registered model.
    pub model_id: Uuid,
    /// Benchmark names (`gsm8k`, `math500`, `aime2024`, `synthetic`, …) or `dataset:<id>`.
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::benchmarks::benchmarks_schema))]
    pub benchmarks: Vec<String>,
    /// Sampling; `preset: "mimo"` fills MiMo's (T=0.6, top-p 0.95) when absent.
    #[serde(default)]
    pub sampling: Option<SamplingParams>,
    /// Samples per problem; the preset's per-benchmark n when absent (avg@32 AIME, avg@8 code/GPQA, else 1).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1024))]
    pub n_samples: Option<u32>,
    /// Evaluate only the first `limit` problems of each benchmark.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub limit: Option<u32>,
    /// The protocol filling what `sampling` and `n_samples` leave out; greedy when absent.
    #[serde(default)]
    pub preset: Option<Preset>,
    /// k values for pass@k and maj@k, each between 1 and the job's n (`n_samples`, or the
    /// preset's n for each benchmark); `[1]` when absent.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(schema_with = ks_schema))]
    pub ks: Vec<u32>,
    /// Project whose run tracks the eval; the team's `evals` project when absent.
    #[serde(default)]
    pub project_id: Option<Uuid>,
    /// MTP speculative decoding for local models (scores unchanged, decoding faster); off when absent.
    #[serde(default)]
    pub speculative: Speculative,
}

/// [`EvalSpec::ks`] as JSON Schema: each k at least 1 and at most [`MAX_SAMPLES`] (the bound
/// by the job's n is a rule across fields, stated in the description).
#[cfg(feature = "openapi")]
fn ks_schema() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
    let k = ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(1))
        .maximum(Some(MAX_SAMPLES));
    ArrayBuilder::new().items(k).build()
}

/// A batch of completions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct GenerateSpec {
    /// A registered model.
    pub model_id: Uuid,
    /// User messages to answer (the model's chat template is applied).
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 10000))]
    pub prompts: Vec<String>,
    /// Sampling.
    #[serde(default)]
    pub sampling: SamplingParams,
}

/// A training job: its [`TrainConfig`] (see docs/training.md), and the name under which the
/// trained model is registered when the job succeeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TrainSpec {
    /// The training config; its `kind` must match the job's.
    pub config: TrainConfig,
    /// Register the final model under this name (default: `<kind>-<job id prefix>`).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::validate::optional_name_schema))]
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

/// Most prompts one generate job may carry.
pub const MAX_PROMPTS: usize = 10_000;

impl JobSpec {
    /// Everything about the spec that can be checked without the database; the server then
    /// checks that the model and datasets it names exist ([`JobSpec::dataset_ids`]).
    pub fn validate(&self) -> Result<(), Invalid> {
        match self {
            JobSpec::Eval(e) => e.validate(),
            JobSpec::Generate(g) => {
                if g.prompts.is_empty() || g.prompts.len() > MAX_PROMPTS {
                    return Err(Invalid::new(
                        "prompts",
                        format!("give 1 to {MAX_PROMPTS} prompts"),
                    ));
                }
                // Seeds the engine derives per request span all of u64; one a client sends is an
                // API integer, which fits an i64.
                fits_int64("sampling.seed", g.sampling.seed)?;
                g.sampling.validate().map_err(|e| e.under("sampling"))
            }
            JobSpec::Pretrain(t) | JobSpec::Sft(t) => {
                if t.config.kind.as_str() != self.kind().as_str() {
                    return Err(Invalid::new(
                        "config.kind",
                        format!(
                            "must be {:?} for a {} job",
                            self.kind().as_str(),
                            self.kind()
                        ),
                    ));
                }
                if let Some(name) = &t.model_name {
                    check_name("model_name", name)?;
                }
                t.config.validate().map_err(|e| e.under("config"))
            }
            JobSpec::Rl(r) => {
                if let Some(name) = &r.model_name {
                    check_name("model_name", name)?;
                }
                r.config.validate().map_err(|e| e.under("config"))
            }
        }
    }

    /// The imported datasets the spec reads, with the field that names each.
    pub fn dataset_ids(&self) -> Vec<(String, Uuid)> {
        match self {
            JobSpec::Eval(e) => e
                .benchmarks
                .iter()
                .enumerate()
                .filter_map(|(i, b)| {
                    Some((format!("benchmarks[{i}]"), benchmark_dataset(b)?.ok()?))
                })
                .collect(),
            JobSpec::Rl(r) => r.config.dataset_ids(),
            _ => Vec::new(),
        }
    }
}

impl EvalSpec {
    /// Known benchmark names (or `dataset:<id>`), each once, and a resolvable protocol for each.
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.benchmarks.is_empty() || self.benchmarks.len() > MAX_BENCHMARKS {
            return Err(Invalid::new(
                "benchmarks",
                format!("name 1 to {MAX_BENCHMARKS} benchmarks"),
            ));
        }
        for (i, b) in self.benchmarks.iter().enumerate() {
            let field = format!("benchmarks[{i}]");
            match benchmark_dataset(b) {
                Some(id) => {
                    id.map_err(|e| e.under(&field))?;
                }
                None if BENCHMARKS.contains(&b.as_str()) => {}
                None => {
                    return Err(Invalid::new(
                        field,
                        format!(
                            "unknown benchmark {b:?}; known: {}, or dataset:<id>",
                            BENCHMARKS.join(", ")
                        ),
                    ));
                }
            }
            if self.benchmarks[..i].contains(b) {
                return Err(Invalid::new(field, format!("{b:?} is named twice")));
            }
            self.resolve(b)?;
        }
        if let Some(limit) = self.limit {
            in_range("limit", limit, 1..=u32::MAX)?;
        }
        if let Some(sampling) = &self.sampling {
            fits_int64("sampling.seed", sampling.seed)?;
        }
        self.speculative.validate()
    }
}

impl SubmitJob {
    /// The whole request, fields named from the body's root (`spec.sampling.temperature`).
    pub fn validate(&self) -> Result<(), Invalid> {
        self.spec.validate().map_err(|e| e.under("spec"))?;
        in_range("priority", self.priority, -1000..=1000)?;
        if let Some(m) = self.max_attempts {
            in_range("max_attempts", m, 1..=10)?;
        }
        if let Some(m) = self.requirements.min_memory_gb
            && !(m.is_finite() && (0.0..=MAX_MEMORY_GB).contains(&m))
        {
            return Err(Invalid::new(
                "requirements.min_memory_gb",
                format!("must be between 0 and {MAX_MEMORY_GB}"),
            ));
        }
        Ok(())
    }
}

impl RegisterWorker {
    /// A printable name and capabilities within physical bounds, without repeats.
    pub fn validate(&self) -> Result<(), Invalid> {
        check_name("name", &self.name)?;
        let c = &self.capabilities;
        if !(c.memory_gb.is_finite() && c.memory_gb > 0.0 && c.memory_gb <= MAX_MEMORY_GB) {
            return Err(Invalid::new(
                "capabilities.memory_gb",
                format!("must be above 0 and at most {MAX_MEMORY_GB}"),
            ));
        }
        if c.devices.is_empty()
            || (1..c.devices.len()).any(|i| c.devices[..i].contains(&c.devices[i]))
        {
            return Err(Invalid::new(
                "capabilities.devices",
                "name each device once, at least one",
            ));
        }
        if c.kinds.is_empty() || (1..c.kinds.len()).any(|i| c.kinds[..i].contains(&c.kinds[i])) {
            return Err(Invalid::new(
                "capabilities.kinds",
                "name each job kind once, at least one",
            ));
        }
        Ok(())
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
    #[cfg_attr(feature = "openapi", schema(minimum = -1000, maximum = 1000))]
    pub priority: i32,
    /// What the worker needs.
    #[serde(default)]
    pub requirements: JobRequirements,
    /// Leases a job may lose before it fails (default 3).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 10))]
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
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::validate::name_schema))]
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
    /// Heard from within the last lease length; false once it has been silent for longer (it
    /// stopped, crashed or lost its network), and listed until 24 hours after `last_seen_at`.
    #[serde(default)]
    pub online: bool,
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

impl EvalSpec {
    /// The concrete (n, sampling) for one benchmark: explicit fields win, then the preset, then
    /// greedy. Errors name the spec's field.
    pub fn resolve(&self, benchmark: &str) -> Result<(u32, SamplingParams), Invalid> {
        let (preset_n, preset_sampling) = self
            .preset
            .unwrap_or(Preset::Greedy)
            .for_benchmark(benchmark);
        let sampling = self.sampling.clone().unwrap_or(preset_sampling);
        sampling.validate().map_err(|e| e.under("sampling"))?;
        let n = self.n_samples.unwrap_or(preset_n);
        in_range("n_samples", n, 1..=MAX_SAMPLES)?;
        if let Some(i) = self.ks.iter().position(|k| *k == 0 || *k > n) {
            return Err(Invalid::new(
                format!("ks[{i}]"),
                format!("every k must be between 1 and n_samples ({n})"),
            ));
        }
        Ok((n, sampling))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn spec(preset: Option<Preset>) -> EvalSpec {
        EvalSpec {
            model_id: Uuid::nil(),
            benchmarks: vec![],
            sampling: None,
            n_samples: None,
            limit: None,
            preset,
            ks: vec![],
            project_id: None,
            speculative: Speculative::Off,
        }
    }

    #[test]
    fn mimo_preset_follows_the_report() {
        let s = spec(Some(Preset::Mimo));
        let (n, p) = s.resolve("aime2024").unwrap();
        assert_eq!((n, p.temperature, p.top_p), (32, 0.6, 0.95));
        assert_eq!(s.resolve("humaneval").unwrap().0, 8);
        assert_eq!(s.resolve("gpqa_diamond").unwrap().0, 8);
        assert_eq!(s.resolve("math500").unwrap().0, 1);
    }

    #[test]
    fn explicit_fields_win_and_bad_ones_are_named() {
        let mut s = spec(Some(Preset::Mimo));
        s.n_samples = Some(4);
        s.ks = vec![1, 4];
        assert_eq!(s.resolve("aime2024").unwrap().0, 4);
        s.ks = vec![8];
        assert_eq!(s.resolve("aime2024").unwrap_err().field, "ks[0]");
        assert_eq!(spec(None).resolve("gsm8k").unwrap().1.temperature, 0.0);
        let unknown = serde_json::from_str::<Preset>("\"fast\"").unwrap_err();
        assert!(unknown.to_string().contains("fast"), "{unknown}");
        s.n_samples = Some(5000);
        assert_eq!(s.resolve("gsm8k").unwrap_err().field, "n_samples");
    }
}
