//! `crucible train …`: Crucible's own small-model recipe, single training runs from a JSON config
//! (what a `pretrain`/`sft` job carries), and the small model's held-out figures.

use std::path::PathBuf;

use anyhow::Context;
use crucible_worker::train::heldout::{HeldOutOptions, evaluate};
use crucible_worker::train::recipe::SmallRecipe;
use crucible_worker::train::{MetricsSink, NoopSink, TrainConfig, TrainKind};
use indicatif::{ProgressBar, ProgressStyle};

use crucible_types::RunKind;
use crucible_worker::report::RunSink;
use tracking::TrackedRun;

mod rl;
mod tracking;

/// `crucible train` subcommands.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Run a built-in training recipe end to end.
    #[command(subcommand)]
    Recipe(Recipe),
    /// Run (or resume) one pretrain/SFT run described by a TrainConfig JSON file.
    Run(RunArgs),
    /// Run (or resume) one GRPO run with MiMo's recipe from an RlConfig JSON file (docs/rl.md).
    Rl(rl::RlArgs),
    /// Held-out figures of a model trained on the synthetic corpus: pass@1 (greedy), avg@n at
    /// T=0.6, per difficulty, and the MTP acceptance rate. The last line is JSON.
    EvalSmall(EvalArgs),
}

/// Built-in recipes.
#[derive(clap::Subcommand)]
pub enum Recipe {
    /// Tokenizer → pretrain (MTP weight 0.3) → SFT (MTP weight 0.1): the shipped small MiMo.
    Small(SmallArgs),
}

/// Where training metrics go.
#[derive(clap::Args)]
pub struct TrackingArgs {
    /// Crucible server to stream metrics to (e.g. http://localhost:8080).
    #[arg(long, env = "CRUCIBLE_SERVER", requires = "token")]
    pub(crate) server: Option<String>,
    /// API token for --server.
    #[arg(long, env = "CRUCIBLE_TOKEN")]
    pub(crate) token: Option<String>,
    /// Project the runs are tracked in.
    #[arg(long, default_value = "crucible-small")]
    pub(crate) project: String,
}

/// Arguments of `crucible train recipe small`.
#[derive(clap::Args)]
pub struct SmallArgs {
    /// Where the HF-format model goes.
    #[arg(long, default_value = "models/crucible-mimo-small")]
    out: PathBuf,
    /// Scratch folder for the tokenizer, checkpoints and phase outputs (a rerun resumes here).
    #[arg(long, default_value = "target/recipe-small")]
    work: PathBuf,
    /// Override the pretraining steps (a shortened run for smoke tests).
    #[arg(long)]
    pretrain_steps: Option<u64>,
    /// Override the SFT steps.
    #[arg(long)]
    sft_steps: Option<u64>,
    #[command(flatten)]
    tracking: TrackingArgs,
}

/// Arguments of `crucible train run`.
#[derive(clap::Args)]
pub struct RunArgs {
    /// TrainConfig as JSON.
    #[arg(long)]
    config: PathBuf,
    /// Run name in the tracking server.
    #[arg(long)]
    name: Option<String>,
    #[command(flatten)]
    tracking: TrackingArgs,
}

/// Arguments of `crucible train eval-small`.
#[derive(clap::Args)]
pub struct EvalArgs {
    /// The HF-format model folder.
    #[arg(long, default_value = "models/crucible-mimo-small")]
    model: PathBuf,
    /// Held-out problems per difficulty level.
    #[arg(long, default_value_t = 50)]
    per_level: usize,
    /// Samples per problem at temperature 0.6 (avg@n).
    #[arg(long, default_value_t = 8)]
    samples: usize,
    /// Seed of the benchmark problems.
    #[arg(long, default_value_t = 2025)]
    seed: u64,
}

/// Runs the chosen subcommand.
pub fn run(c: Command) -> anyhow::Result<()> {
    match c {
        Command::Recipe(Recipe::Small(args)) => recipe_small(args),
        Command::Run(args) => run_config(args),
        Command::Rl(args) => rl::run(args),
        Command::EvalSmall(args) => eval_small(args),
    }
}

fn bar(total: u64, label: &str) -> ProgressBar {
    let bar = ProgressBar::new(total).with_style(
        ProgressStyle::with_template(
            "{msg:>9} [{elapsed_precise}] {wide_bar} {pos}/{len} (eta {eta})",
        )
        .expect("valid template"),
    );
    bar.set_message(label.to_string());
    bar
}

/// Runs `body` with a sink for `config`: the tracking server's when `args` name one (the run is
/// created first and marked finished or failed after), else a no-op.
fn tracked<T>(
    args: &TrackingArgs,
    name: &str,
    config: &TrainConfig,
    body: impl FnOnce(&mut dyn MetricsSink) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let kind = match config.kind {
        TrainKind::Pretrain => RunKind::Pretrain,
        TrainKind::Sft => RunKind::Sft,
    };
    let mtp_weight = [("mtp_weight", config.mtp_weight().to_string())];
    let Some(run) = TrackedRun::start(args, name, kind, config, &mtp_weight)? else {
        return body(&mut NoopSink);
    };
    let result = {
        let mut sink = RunSink::new(&run.client, run.run.id, "train/");
        body(&mut sink)
    };
    run.finish(result.is_ok())?;
    result
}

fn recipe_small(args: SmallArgs) -> anyhow::Result<()> {
    let mut recipe = SmallRecipe::default();
    if let Some(steps) = args.pretrain_steps {
        recipe.pretrain.steps = steps;
    }
    if let Some(steps) = args.sft_steps {
        recipe.sft.steps = steps;
    }
    let work = &args.work;
    let start = std::time::Instant::now();
    eprintln!(
        "training the tokenizer and two phases under {}",
        work.display()
    );
    // The phases run one after the other, each with its own tracked run and progress bar.
    let phase = |kind: TrainKind, config: TrainConfig| -> anyhow::Result<()> {
        let label = match kind {
            TrainKind::Pretrain => "pretrain",
            TrainKind::Sft => "sft",
        };
        let progress = bar(config.steps, label);
        tracked(&args.tracking, &format!("small-{label}"), &config, |sink| {
            let outcome =
                crucible_worker::train::run(&config, sink, &|done, _| progress.set_position(done))?;
            progress.finish();
            if let Some(last) = &outcome.last {
                eprintln!(
                    "{label}: {} steps, loss {:.4} (mtp {:.4}, mtp acc {:.3}), {:.0} tokens/s",
                    outcome.steps,
                    last.loss,
                    last.mtp_loss,
                    last.mtp_accuracy,
                    outcome.tokens as f64 / outcome.seconds.max(1e-9)
                );
            }
            Ok(())
        })
    };
    recipe.prepare_tokenizer(work)?;
    phase(TrainKind::Pretrain, recipe.pretrain_config(work))?;
    phase(TrainKind::Sft, recipe.sft_config(work))?;
    let params = recipe.export(work, &args.out)?;
    write_recipe_md(&recipe, &args, params, start.elapsed().as_secs_f64())?;
    eprintln!(
        "wrote {} ({params} parameters) in {:.1} min",
        args.out.display(),
        start.elapsed().as_secs_f64() / 60.0
    );
    Ok(())
}

fn write_recipe_md(
    recipe: &SmallRecipe,
    args: &SmallArgs,
    params: usize,
    seconds: f64,
) -> anyhow::Result<()> {
    let mut command = format!("crucible train recipe small --out {}", args.out.display());
    if let Some(s) = args.pretrain_steps {
        command.push_str(&format!(" --pretrain-steps {s}"));
    }
    if let Some(s) = args.sft_steps {
        command.push_str(&format!(" --sft-steps {s}"));
    }
    let text = format!(
        "# crucible-mimo-small\n\n\
         A {params}-parameter MiMo-architecture model (decoder + one MTP layer) trained from scratch by\n\
         Crucible's own recipe on its synthetic reasoning corpus (`gpu::data::synthetic`). It exists so\n\
         that generation, evaluation, RL and MTP drafting run on a laptop CPU; it writes\n\
         step-by-step solutions ending in a boxed answer, but its arithmetic is weak (figures:\n\
         docs/training.md).\n\n\
         Rebuild (from the repository root, release build; a rerun resumes from `--work`):\n\n\
         ```sh\n{command}\n```\n\n\
         Seed: {seed} (tokenizer corpus, weight init, pretraining data; SFT data uses seed + 1).\n\
         Every random choice is seeded and a resumed run continues bit-identically (tested); a\n\
         full rebuild on another machine may differ in the last bits (CPU matmul blocking depends on\n\
         the hardware). This build took {minutes:.1} minutes.\n\n\
         Recipe: byte-level BPE tokenizer (digits split one per token) trained on {docs} problems →\n\
         pretraining with next-token CE + 0.3 × MTP loss on `Problem: … Solution: …` documents →\n\
         SFT on chat-formatted problems with the loss on the response only and 0.1 × MTP loss.\n\
         AdamW (β1 0.9, β2 0.95, wd 0.1 on matrices), gradient clip 1.0, f32, documents packed into\n\
         rows with attention kept inside each document. Full settings:\n\n\
         ```json\n{json}\n```\n",
        seed = recipe.seed,
        minutes = seconds / 60.0,
        docs = recipe.tokenizer_documents,
        json = serde_json::to_string_pretty(recipe)?,
    );
    let path = args.out.join("RECIPE.md");
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
}

fn run_config(args: RunArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.config)
        .with_context(|| format!("reading {}", args.config.display()))?;
    let config: TrainConfig = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a valid TrainConfig", args.config.display()))?;
    if let Err(e) = config.validate() {
        anyhow::bail!("{}: {e}", args.config.display());
    }
    let name = args.name.clone().unwrap_or_else(|| {
        args.config
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "train".into())
    });
    let progress = bar(config.steps, "train");
    let outcome = tracked(&args.tracking, &name, &config, |sink| {
        Ok(crucible_worker::train::run(&config, sink, &|done, _| {
            progress.set_position(done)
        })?)
    })?;
    progress.finish();
    println!("{}", serde_json::to_string(&outcome)?);
    Ok(())
}

fn eval_small(args: EvalArgs) -> anyhow::Result<()> {
    let opts = HeldOutOptions {
        seed: args.seed,
        per_level: args.per_level,
        samples: args.samples,
        ..HeldOutOptions::default()
    };
    let total = (args.per_level * 4 * (1 + args.samples)) as u64;
    let progress = bar(total, "eval");
    let report = evaluate(&args.model, &opts, &|done, _| progress.set_position(done))?;
    progress.finish();
    eprintln!(
        "{:<22} {:>8} {:>14} {:>10}",
        "difficulty",
        "problems",
        "pass@1 greedy",
        format!("avg@{}", report.samples)
    );
    for level in &report.levels {
        eprintln!(
            "{:<22} {:>8} {:>14.3} {:>10.3}",
            level.difficulty.label(),
            level.problems,
            level.pass1_greedy,
            level.avg_at_n
        );
    }
    eprintln!(
        "MTP acceptance: {:.3} over {} positions",
        report.mtp_acceptance, report.mtp_positions
    );
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
