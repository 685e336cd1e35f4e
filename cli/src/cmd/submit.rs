//! `crucible submit eval|train|rl`: queue a job and, with `--wait`, follow it to the end.

use crate::cmd::api::ServerArgs;
use anyhow::{Context, Result, bail};
use crucible_types::train::{TrainConfig, TrainKind};
use crucible_types::{
    EvalSpec, Job, JobRequirements, JobSpec, JobStatus, ModelSource, Preset, RegisterModel,
    RlConfig, RlSpec, SamplingParams, SubmitJob, TrainSpec,
};
use crucible_worker::client::ServerClient;
use indicatif::{ProgressBar, ProgressStyle};
use std::time::Duration;
use uuid::Uuid;

/// A model named on the command line: a registered model's id, or a Hugging Face id.
#[derive(Clone, Debug)]
pub enum ModelArg {
    /// A registered model.
    Id(Uuid),
    /// `owner/name[@revision]` on the hub.
    Hub {
        repo: String,
        revision: Option<String>,
    },
}

impl std::str::FromStr for ModelArg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if let Ok(id) = Uuid::parse_str(s) {
            return Ok(ModelArg::Id(id));
        }
        crucible_worker::hub::parse_hub_ref(s)
            .map(|(repo, revision)| ModelArg::Hub { repo, revision })
            .ok_or_else(|| {
                format!("{s:?} is neither a model id nor a Hugging Face id (owner/name[@revision])")
            })
    }
}

impl ModelArg {
    /// The registered model's id; a hub model is looked up by its name (`owner/name[@rev]`)
    /// in the team's models and registered when it is not there yet.
    fn id(&self, client: &ServerClient) -> Result<Uuid> {
        let (repo, revision) = match self {
            ModelArg::Id(id) => return Ok(*id),
            ModelArg::Hub { repo, revision } => (repo, revision),
        };
        let name = match revision {
            Some(rev) => format!("{repo}@{rev}"),
            None => repo.clone(),
        };
        let source = ModelSource::HfHub {
            repo: repo.clone(),
            revision: revision.clone(),
        };
        if let Some(m) = client.models()?.into_iter().find(|m| m.name == name) {
            if m.source != source {
                bail!("the team's model {name:?} is not the hub model {name}: pass its id instead");
            }
            return Ok(m.id);
        }
        let model = client.register_model(&RegisterModel {
            name,
            source,
            training_datasets: Vec::new(),
        })?;
        eprintln!("registered {} as model {}", model.name, model.id);
        Ok(model.id)
    }
}

/// What to submit.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Evaluate a model on benchmarks.
    Eval(EvalArgs),
    /// Pre-train or fine-tune on a worker from a training config (see docs/training.md).
    Train(TrainArgs),
    /// GRPO with MiMo's recipe on a worker, from a registered model and an RlConfig (docs/rl.md).
    Rl(RlArgs),
}

/// Arguments of `crucible submit rl`.
#[derive(clap::Args)]
pub struct RlArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// The starting policy: a registered model id (a local HF folder or checkpoint), or a
    /// Hugging Face id `owner/name[@revision]` (registered under that name on first use).
    #[arg(long)]
    pub model: ModelArg,
    /// The RlConfig (JSON).
    #[arg(long)]
    pub config: std::path::PathBuf,
    /// Register checkpoints as `<NAME>-step<N>`.
    #[arg(long)]
    pub model_name: Option<String>,
    /// Follow the job until it ends, with a progress bar.
    #[arg(long)]
    pub wait: bool,
}

fn rl_job(a: &RlArgs, model_id: Uuid) -> Result<SubmitJob> {
    let text = std::fs::read_to_string(&a.config)
        .with_context(|| format!("cannot read {}", a.config.display()))?;
    let config: RlConfig = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a valid RlConfig", a.config.display()))?;
    let req = SubmitJob {
        spec: JobSpec::Rl(RlSpec {
            model_id,
            config,
            model_name: a.model_name.clone(),
        }),
        priority: 0,
        requirements: JobRequirements::default(),
        max_attempts: None,
    };
    checked(req, &a.config)
}

/// Refuses a job the server would refuse, naming the config file and the field (`spec.config.`
/// is the file's root).
fn checked(req: SubmitJob, file: &std::path::Path) -> Result<SubmitJob> {
    match req.validate() {
        Ok(()) => Ok(req),
        Err(e) => {
            let field = e.field.strip_prefix("spec.config.").unwrap_or(&e.field);
            bail!("{}: {field}: {}", file.display(), e.message)
        }
    }
}

/// Arguments of `crucible submit train`.
#[derive(clap::Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// The training config (JSON); its `kind` (`pretrain` or `sft`) is the job's kind.
    #[arg(long)]
    pub config: std::path::PathBuf,
    /// Register the trained model under this name.
    #[arg(long)]
    pub model_name: Option<String>,
    /// Follow the job until it ends, with a progress bar.
    #[arg(long)]
    pub wait: bool,
}

fn train_job(a: &TrainArgs) -> Result<SubmitJob> {
    let text = std::fs::read_to_string(&a.config)
        .with_context(|| format!("cannot read {}", a.config.display()))?;
    let config: TrainConfig = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a valid training config", a.config.display()))?;
    let kind = config.kind;
    let spec = TrainSpec {
        config,
        model_name: a.model_name.clone(),
    };
    let req = SubmitJob {
        spec: match kind {
            TrainKind::Pretrain => JobSpec::Pretrain(spec),
            TrainKind::Sft => JobSpec::Sft(spec),
        },
        priority: 0,
        requirements: JobRequirements::default(),
        max_attempts: None,
    };
    checked(req, &a.config)
}

/// Submits `req`, prints the job id, and with `wait` follows it to the end.
fn submit_and_follow(client: &ServerClient, req: &SubmitJob, follow: bool) -> Result<()> {
    let job: Job = client.submit(req)?;
    println!("{}", job.id);
    if follow {
        let done = wait(client, job.id)?;
        eprintln!("job {} {}", done.id, done.status);
        if done.status != JobStatus::Succeeded {
            bail!("job {}: {}", done.status, done.error.unwrap_or_default());
        }
    }
    Ok(())
}

/// Arguments of `crucible submit eval`.
#[derive(clap::Args)]
pub struct EvalArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// A registered model id, or a Hugging Face id `owner/name[@revision]` (registered under
    /// that name on first use; workers download it into their HF cache).
    #[arg(long)]
    pub model: ModelArg,
    /// Benchmark names (repeatable or comma-separated).
    #[arg(long, value_delimiter = ',', required = true)]
    pub benchmark: Vec<String>,
    /// `mimo` (T=0.6, top-p 0.95, avg@32 AIME / avg@8 code+GPQA) or `greedy`.
    #[arg(long)]
    pub preset: Option<Preset>,
    /// Samples per problem (overrides the preset).
    #[arg(long)]
    pub n: Option<u32>,
    /// k values for pass@k and maj@k.
    #[arg(long, value_delimiter = ',')]
    pub k: Vec<u32>,
    /// Only the first N problems of each benchmark.
    #[arg(long)]
    pub limit: Option<u32>,
    /// Sampling temperature (overrides the preset's sampling).
    #[arg(long)]
    pub temperature: Option<f32>,
    /// Token budget per completion.
    #[arg(long)]
    pub max_new_tokens: Option<u32>,
    /// Speculative decoding on local models: `off` or `mtp[:K]` (same scores, faster decoding).
    #[arg(long, default_value = "off")]
    pub speculative: crucible_types::Speculative,
    /// Queue priority (higher first).
    #[arg(long, default_value_t = 0)]
    pub priority: i32,
    /// Follow the job until it ends, with a progress bar.
    #[arg(long)]
    pub wait: bool,
}

/// Metrics shown beside the `--wait` bar at most.
const SHOWN_METRICS: usize = 4;

/// The run's latest metrics as `key=value` pairs, most recently stepped first.
fn latest_metrics(client: &ServerClient, run_id: Uuid) -> String {
    let Ok(mut summaries) = client.metric_summaries(run_id) else {
        return String::new(); // a transient read failure only hides the figures for a tick
    };
    summaries.sort_by(|a, b| b.last_step.cmp(&a.last_step).then(a.key.cmp(&b.key)));
    summaries
        .iter()
        .take(SHOWN_METRICS)
        .map(|m| format!("{}={:.4}", m.key, m.last_value))
        .collect::<Vec<_>>()
        .join(" ")
}

fn wait(client: &ServerClient, id: Uuid) -> Result<Job> {
    let bar = ProgressBar::new(0).with_style(ProgressStyle::with_template(
        "{spinner} {msg} {bar:30} {pos}/{len}\n  {prefix}",
    )?);
    bar.enable_steady_tick(Duration::from_millis(200));
    let mut metrics_read = std::time::Instant::now() - Duration::from_secs(60);
    loop {
        let job: Job = client.job(id)?;
        if let Some(p) = &job.progress {
            bar.set_length(p.total);
            bar.set_position(p.done);
        }
        bar.set_message(format!(
            "{} ({})",
            job.status,
            job.progress
                .as_ref()
                .map(|p| p.message.as_str())
                .unwrap_or("")
        ));
        if let Some(run_id) = job.run_id
            && metrics_read.elapsed() >= Duration::from_secs(2)
        {
            bar.set_prefix(latest_metrics(client, run_id));
            metrics_read = std::time::Instant::now();
        }
        if matches!(
            job.status,
            JobStatus::Succeeded | JobStatus::Failed | JobStatus::Cancelled
        ) {
            bar.finish_and_clear();
            return Ok(job);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Runs the subcommand.
pub fn run(c: Command) -> Result<()> {
    let (client, req, follow) = match c {
        Command::Eval(a) => {
            let client = a.server.writer()?;
            let req = eval_job(&a, a.model.id(&client)?);
            (client, req, a.wait)
        }
        Command::Train(a) => {
            let req = train_job(&a)?;
            (a.server.writer()?, req, a.wait)
        }
        Command::Rl(a) => {
            let client = a.server.writer()?;
            let req = rl_job(&a, a.model.id(&client)?)?;
            (client, req, a.wait)
        }
    };
    submit_and_follow(&client, &req, follow)
}

fn eval_job(a: &EvalArgs, model_id: Uuid) -> SubmitJob {
    let sampling =
        (a.temperature.is_some() || a.max_new_tokens.is_some()).then(|| SamplingParams {
            temperature: a.temperature.unwrap_or(0.0),
            max_new_tokens: a.max_new_tokens.unwrap_or(1024),
            ..SamplingParams::default()
        });
    let spec = EvalSpec {
        model_id,
        benchmarks: a.benchmark.clone(),
        sampling,
        n_samples: a.n,
        limit: a.limit,
        preset: a.preset,
        ks: a.k.clone(),
        project_id: None,
        speculative: a.speculative,
    };
    SubmitJob {
        spec: JobSpec::Eval(spec),
        priority: a.priority,
        requirements: JobRequirements::default(),
        max_attempts: None,
    }
}
