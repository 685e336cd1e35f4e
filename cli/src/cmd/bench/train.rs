//! `crucible bench train`: training tokens/s on the CPU for the shipped small model's
//! architecture and batch shape (pretraining phase: forward + backward of decoder and MTP layer,
//! AdamW step), beside (a) Crucible's own inference forward on the same blocks, which bounds what
//! a training step can cost, and (b) transformers' Qwen2 training the same shape in torch, when a
//! Python with torch + transformers is available.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::Context;
use candle_core::{Device, Tensor};
use crucible_gpu::model::{LoadOptions, MimoModel};
use crucible_worker::data::vocab::{train_synthetic_tokenizer, write_tokenizer_files};
use crucible_worker::train::Trainer;
use crucible_worker::train::recipe::SmallRecipe;
use indicatif::{ProgressBar, ProgressStyle};

/// Reference script, relative to the repository root.
const REFERENCE_SCRIPT: &str = "tools/bench_train_ref.py";

/// Arguments of `crucible bench train`.
#[derive(clap::Args)]
pub struct Args {
    /// Python with torch + transformers for the reference (skipped with a note if unusable).
    #[arg(
        long,
        env = "CRUCIBLE_BENCH_PYTHON",
        default_value = ".venv/bin/python"
    )]
    python: PathBuf,
    /// Scratch folder for the tokenizer and the exported model.
    #[arg(long, default_value_os_t = std::env::temp_dir().join("crucible-bench-train"))]
    workdir: PathBuf,
    /// Timed optimizer steps.
    #[arg(long, default_value_t = 10)]
    steps: u64,
    /// Untimed steps first.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
}

/// Runs the benchmark.
pub fn run(args: Args) -> anyhow::Result<()> {
    let recipe = SmallRecipe::default();
    let work = &args.workdir;
    let _ = std::fs::remove_dir_all(work);
    let tokenizer = train_synthetic_tokenizer(recipe.seed, 1000, recipe.vocab_size)?;
    write_tokenizer_files(&tokenizer, &work.join("tokenizer"))?;
    let mut config = recipe.pretrain_config(work);
    config.steps = args.warmup + args.steps;
    let (rows, len) = (config.micro_batch, config.seq_len);
    let mut trainer = Trainer::new(config, &Device::Cpu)?;

    let bar = ProgressBar::new(args.warmup + args.steps).with_style(
        ProgressStyle::with_template("train step {pos}/{len} {wide_bar}").expect("valid template"),
    );
    let (mut tokens, mut seconds, mut blocks) = (0usize, 0f64, Vec::new());
    for i in 0..args.warmup + args.steps {
        let step_blocks = trainer.next_blocks()?;
        let start = Instant::now();
        let report = trainer.step_on(&step_blocks)?;
        if i >= args.warmup {
            seconds += start.elapsed().as_secs_f64();
            tokens += report.tokens;
            blocks.extend(step_blocks);
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let train_tok_s = tokens as f64 / seconds;

    // Inference forward (fused kernels, no graph) over the same blocks, as plain rows.
    let model_dir = work.join("model");
    trainer.export(&model_dir)?;
    let model = MimoModel::load(&model_dir, &LoadOptions::default())?;
    let start = Instant::now();
    for block in &blocks {
        let input = Tensor::from_slice(&block.tokens, (rows, len), &Device::Cpu)?;
        let mut cache = model.new_cache(vec![0; rows], len);
        let hidden = model.forward_hidden(&input, &mut cache)?;
        model.logits(&hidden)?;
    }
    let forward_tok_s = (blocks.len() * rows * len) as f64 / start.elapsed().as_secs_f64();

    let torch_tok_s = match reference_tok_s(&args, &model_dir.join("config.json"), rows, len) {
        Ok(v) => Some(v),
        Err(why) => {
            println!("reference skipped: {why:#}");
            None
        }
    };
    println!(
        "crucible train:   {train_tok_s:>9.0} tokens/s (forward+backward+AdamW, decoder + MTP)"
    );
    println!("crucible forward: {forward_tok_s:>9.0} tokens/s (inference path, decoder only)");
    if let Some(t) = torch_tok_s {
        println!("torch train:      {t:>9.0} tokens/s (transformers Qwen2, no MTP)");
    }
    let json = serde_json::json!({
        "bench": "train",
        "rows": rows,
        "seq_len": len,
        "steps": args.steps,
        "parameters": trainer.params().count(),
        "crucible_train_tok_s": train_tok_s,
        "crucible_forward_tok_s": forward_tok_s,
        "train_over_forward": train_tok_s / forward_tok_s,
        "torch_train_tok_s": torch_tok_s,
        "crucible_over_torch": torch_tok_s.map(|t| train_tok_s / t),
    });
    println!("{json}");
    Ok(())
}

/// Training tokens/s of transformers on the same architecture, from the script's JSON line.
fn reference_tok_s(args: &Args, config: &Path, rows: usize, len: usize) -> anyhow::Result<f64> {
    if !Path::new(REFERENCE_SCRIPT).exists() {
        anyhow::bail!("{REFERENCE_SCRIPT} not found (run from the repository root)");
    }
    let out = Command::new(&args.python)
        .arg(REFERENCE_SCRIPT)
        .args(["--config", &config.to_string_lossy()])
        .args(["--rows", &rows.to_string(), "--seq-len", &len.to_string()])
        .args([
            "--steps",
            &args.steps.to_string(),
            "--warmup",
            &args.warmup.to_string(),
        ])
        .output()
        .with_context(|| format!("cannot run {}", args.python.display()))?;
    if !out.status.success() {
        anyhow::bail!(
            "{} failed: {}",
            args.python.display(),
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or_default()
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().context("no output")?;
    let value: serde_json::Value = serde_json::from_str(line)?;
    value["tok_s"]
        .as_f64()
        .context("no tok_s in the reference output")
}
