//! `crucible train rl`: one GRPO run on this machine from an RlConfig JSON (what an `rl` job
//! carries), with a progress bar. With `--server/--token` the run is tracked like an `rl` job:
//! metrics stream to a run of kind `rl`, every step's rollouts become its completions, and each
//! checkpoint is registered as a model. A rerun with the same `--out` resumes.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use crucible_types::{RlConfig, RlData, RunKind};
use crucible_worker::eval::Problem;
use crucible_worker::report::RlReporter;
use crucible_worker::rl::rollout::RolloutGroup;
use crucible_worker::rl::{RlHooks, problems};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use super::TrackingArgs;
use super::tracking::TrackedRun;

/// Arguments of `crucible train rl`.
#[derive(clap::Args)]
pub struct RlArgs {
    /// The starting policy (an HF-format MiMo folder, e.g. models/crucible-mimo-small).
    #[arg(long)]
    model: PathBuf,
    /// RlConfig as JSON (docs/rl.md).
    #[arg(long)]
    config: PathBuf,
    /// Run folder: checkpoint, exported models (`checkpoints/step-N`); a rerun resumes here.
    #[arg(long)]
    out: PathBuf,
    /// Run name in the tracking server (default: the config's file name).
    #[arg(long)]
    name: Option<String>,
    /// Benchmark files for evals other than `synthetic`.
    #[arg(long, env = "CRUCIBLE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    #[command(flatten)]
    tracking: TrackingArgs,
}

/// Metrics, rollouts and checkpoints to the server (when tracked), the progress bar and
/// `<out>/metrics.jsonl` (one JSON object per step and eval, kept with the run folder).
struct CliHooks<'a> {
    bar: ProgressBar,
    reporter: Option<RlReporter<'a>>,
    log: std::fs::File,
}

impl RlHooks for CliHooks<'_> {
    fn metrics(&mut self, step: u64, values: &[(&str, f64)]) {
        let get = |key: &str| values.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
        if let Some(reward) = get("rollout/reward_mean") {
            self.bar.set_message(format!(
                "reward {reward:.3} kept {} dropped {}",
                get("batch/kept_groups").unwrap_or(0.0),
                get("batch/dropped_groups").unwrap_or(0.0)
            ));
        }
        for (k, v) in values.iter().filter(|(k, _)| k.starts_with("eval/")) {
            self.bar.println(format!("step {step}: {k} = {v:.4}"));
        }
        let mut line: serde_json::Map<String, serde_json::Value> = values
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        line.insert("step".into(), json!(step));
        if let Err(e) = writeln!(self.log, "{}", serde_json::Value::Object(line)) {
            tracing::warn!(error = %e, "could not append to metrics.jsonl");
        }
        if let Some(r) = &mut self.reporter {
            r.metrics(step, values);
        }
    }

    fn rollouts(&mut self, step: u64, problems: &[Problem], groups: &[RolloutGroup]) {
        if let Some(r) = &mut self.reporter {
            r.rollouts(step, problems, groups);
        }
    }

    fn checkpoint(&mut self, step: u64, model_dir: &Path) {
        if let Some(m) = self
            .reporter
            .as_mut()
            .and_then(|r| r.checkpoint(step, model_dir))
        {
            self.bar
                .println(format!("step {step}: registered model {}", m.id));
        }
    }

    fn progress(&mut self, done: u64, _total: u64, phase: &str) {
        self.bar.set_position(done);
        self.bar.set_prefix(phase.to_string());
    }
}

/// Runs the command.
pub fn run(args: RlArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.config)
        .with_context(|| format!("reading {}", args.config.display()))?;
    let config: RlConfig = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a valid RlConfig", args.config.display()))?;
    if let Err(e) = config.validate() {
        bail!("{}: {e}", args.config.display());
    }
    if config
        .data
        .iter()
        .any(|d| matches!(d, RlData::Dataset { .. }))
    {
        bail!(
            "imported datasets are fetched by workers: run this config with `crucible submit rl`"
        );
    }
    let problems = problems::resolve(&config.data, &mut |_| unreachable!("checked above"))?;
    let name = args.name.clone().unwrap_or_else(|| {
        args.config
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "rl".into())
    });
    let model = [("model", args.model.display().to_string())];
    let tracked = TrackedRun::start(&args.tracking, &name, RunKind::Rl, &config, &model)?;
    let bar = ProgressBar::new(config.steps).with_style(
        ProgressStyle::with_template(
            "{prefix:>10} [{elapsed_precise}] {wide_bar} {pos}/{len} (eta {eta}) {msg}",
        )
        .expect("valid template"),
    );
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let log_path = args.out.join("metrics.jsonl");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("opening {}", log_path.display()))?;
    let reporter = tracked
        .as_ref()
        .map(|t| RlReporter::new(&t.client, t.run.id, name.clone()));
    let mut hooks = CliHooks { bar, reporter, log };
    let result = crucible_worker::rl::run(
        &config,
        &args.model,
        problems,
        &args.out,
        args.data_dir.as_deref(),
        &mut hooks,
    );
    hooks.bar.finish();
    if let Some(r) = &mut hooks.reporter {
        r.flush();
    }
    if let Some(t) = &tracked
        && let Err(e) = t.finish(result.is_ok())
    {
        tracing::warn!(error = %e, "could not close the run");
    }
    let outcome = result?;
    for (step, report) in &outcome.evals {
        for s in &report.scores {
            eprintln!(
                "held-out at step {step}: {} = {:.4} (95% CI {:.4}–{:.4}, {} problems)",
                s.metric,
                s.value,
                s.ci_low.unwrap_or(f64::NAN),
                s.ci_high.unwrap_or(f64::NAN),
                s.n
            );
        }
    }
    println!(
        "{}",
        json!({
            "steps": outcome.steps,
            "model_dir": outcome.model_dir,
            "evals": outcome.evals.iter().map(|(step, r)| json!({"step": step, "scores": r.scores})).collect::<Vec<_>>(),
        })
    );
    Ok(())
}
