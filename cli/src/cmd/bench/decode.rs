//! `crucible bench decode`: greedy decode tokens/s at batch 1 and 16 on the CPU, for the tiny
//! MiMo config and a ~0.5B Qwen2-shaped model with random weights, side by side with
//! transformers (torch, CPU, eager) on the same weights in the same run. With `--device wgpu`
//! (or `cuda`) the same model also runs there, next to candle's CPU path, and each decode step
//! is split into host time (recording, uploads, submission) and time waiting on the adapter.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::Context;
use candle_core::{DType, Device, Tensor};
use crucible_gpu::device::InferenceDevice;
use crucible_gpu::engine::sampler::Sampler;
use crucible_gpu::model::{LoadOptions, MimoModel};
use crucible_types::sampling::SamplingParams;
use indicatif::{ProgressBar, ProgressStyle};
use rand::{Rng, SeedableRng};

/// Batch sizes measured, in order; the JSON line reports both.
const BATCHES: [usize; 2] = [1, 16];
/// Reference script, relative to the repository root.
const REFERENCE_SCRIPT: &str = "tools/bench_decode_ref.py";

/// Arguments of `crucible bench decode`.
#[derive(clap::Args)]
pub struct Args {
    /// Python with torch + transformers for the reference (skipped with a note if unusable).
    #[arg(
        long,
        env = "CRUCIBLE_BENCH_PYTHON",
        default_value = ".venv/bin/python"
    )]
    python: PathBuf,
    /// Where the random checkpoints are written once and reused.
    #[arg(long, default_value_os_t = std::env::temp_dir().join("crucible-bench-decode"))]
    workdir: PathBuf,
    /// Prompt tokens per row.
    #[arg(long, default_value_t = 32)]
    prompt_len: usize,
    /// Generated tokens per row (the first comes from the prefill and is not counted).
    #[arg(long, default_value_t = 33)]
    new_tokens: usize,
    /// Also run on this device (wgpu or cuda) and compare it with the CPU.
    #[arg(long)]
    device: Option<crucible_types::jobs::Device>,
}

/// A benchmarked model shape.
struct Shape {
    name: &'static str,
    config: serde_json::Value,
}

fn shapes() -> [Shape; 2] {
    [
        Shape {
            name: "tiny-mimo",
            config: serde_json::json!({
                "architectures": ["MiMoForCausalLM"], "vocab_size": 320, "hidden_size": 64,
                "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 4,
                "num_key_value_heads": 2, "max_position_embeddings": 256, "rope_theta": 640000.0,
                "rms_norm_eps": 1e-5, "tie_word_embeddings": false, "num_nextn_predict_layers": 0,
                "eos_token_id": 0, "hidden_act": "silu"
            }),
        },
        Shape {
            name: "qwen2-0.5b",
            config: serde_json::json!({
                "architectures": ["Qwen2ForCausalLM"], "vocab_size": 151936, "hidden_size": 896,
                "intermediate_size": 4864, "num_hidden_layers": 24, "num_attention_heads": 14,
                "num_key_value_heads": 2, "max_position_embeddings": 32768, "rope_theta": 1000000.0,
                "rms_norm_eps": 1e-6, "tie_word_embeddings": true, "eos_token_id": 151643,
                "hidden_act": "silu"
            }),
        },
    ]
}

/// Runs the benchmark.
pub fn run(args: Args) -> anyhow::Result<()> {
    let reference = reference_available(&args.python);
    if let Err(why) = &reference {
        println!("reference skipped: {why}; reporting Crucible's figures only");
    }
    let accelerator = args
        .device
        .map(|d| crucible_gpu::device::for_requirement(Some(d)))
        .transpose()
        .context("opening --device")?;
    if let Some(a) = &accelerator {
        println!("device: {}", a.describe());
    }
    let measurements = shapes().len() * BATCHES.len();
    let bar = ProgressBar::new(measurements as u64).with_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}").context("progress style")?,
    );
    let mut last = serde_json::Map::new();
    println!(
        "{:<12} {:>5} {:>14} {:>14} {:>7} {:>14} {:>7} {:>18}",
        "model",
        "batch",
        "crucible tok/s",
        "torch tok/s",
        "ratio",
        "device tok/s",
        "vs cpu",
        "host/wait ms/step"
    );
    for shape in shapes() {
        bar.set_message(format!("writing {}", shape.name));
        let dir = random_checkpoint(&args.workdir, &shape)?;
        let load = |opts: &LoadOptions| {
            MimoModel::load(&dir, opts).with_context(|| format!("loading {}", dir.display()))
        };
        let model = load(&LoadOptions::default())?;
        let on_device = accelerator
            .as_ref()
            .map(|a| load(&a.load_options()))
            .transpose()?;
        for batch in BATCHES {
            bar.set_message(format!("{} batch {batch}", shape.name));
            let ours = crucible_tok_s(&model, batch, args.prompt_len, args.new_tokens)?;
            let theirs = match &reference {
                Ok(()) => Some(reference_tok_s(&args, &dir, batch)?),
                Err(_) => None,
            };
            let device = match (&on_device, &accelerator) {
                (Some(m), Some(a)) => Some(device_step(m, a, batch, &args)?),
                _ => None,
            };
            bar.inc(1);
            let ratio = theirs.map(|t| ours / t);
            bar.suspend(|| {
                println!(
                    "{:<12} {:>5} {:>14.2} {:>14} {:>7} {:>14} {:>7} {:>18}",
                    shape.name,
                    batch,
                    ours,
                    theirs.map_or("-".into(), |t| format!("{t:.2}")),
                    ratio.map_or("-".into(), |r| format!("{r:.2}x")),
                    device.map_or("-".into(), |d| format!("{:.2}", d.tok_s)),
                    device.map_or("-".into(), |d| format!("{:.2}x", d.tok_s / ours)),
                    device.map_or("-".into(), |d| format!("{:.1}/{:.1}", d.host_ms, d.wait_ms)),
                )
            });
            if shape.name == "qwen2-0.5b" {
                last.insert(format!("tok_s_b{batch}"), ours.into());
                last.insert(format!("ref_tok_s_b{batch}"), theirs.into());
                last.insert(format!("ratio_b{batch}"), ratio.into());
                if let (Some(d), Some(a)) = (device, &accelerator) {
                    last.insert("device".into(), a.describe().into());
                    last.insert(format!("device_tok_s_b{batch}"), d.tok_s.into());
                    last.insert(format!("device_vs_cpu_b{batch}"), (d.tok_s / ours).into());
                    last.insert(format!("host_ms_per_step_b{batch}"), d.host_ms.into());
                    last.insert(format!("wait_ms_per_step_b{batch}"), d.wait_ms.into());
                }
            }
        }
    }
    bar.finish_and_clear();
    println!("{}", serde_json::Value::Object(last));
    Ok(())
}

/// A decode measurement on the accelerator.
#[derive(Debug, Clone, Copy)]
struct DeviceStep {
    tok_s: f64,
    /// Per decode step: host work (recording, uploads, submission, readback copy) and time
    /// blocked on the adapter.
    host_ms: f64,
    wait_ms: f64,
}

/// [`crucible_tok_s`] on the accelerator, with each step split into host and adapter time
/// (the split is reported for wgpu; CUDA's candle path has no such hook and reports all as host).
fn device_step(
    model: &MimoModel,
    device: &InferenceDevice,
    batch: usize,
    args: &Args,
) -> anyhow::Result<DeviceStep> {
    let gpu = match device {
        InferenceDevice::Wgpu(gpu) => Some(gpu),
        InferenceDevice::Candle(_) => None,
    };
    let mut waited = std::time::Duration::ZERO;
    let tok_s = crucible_tok_s_with(model, batch, args.prompt_len, args.new_tokens, &mut |end| {
        if let Some(g) = gpu {
            let w = g.take_wait_time();
            if end {
                waited = w; // the last timed run's steps
            }
        }
    })?;
    let steps = (args.new_tokens - 1) as f64;
    let step_ms = 1000.0 * batch as f64 / tok_s;
    let wait_ms = 1000.0 * waited.as_secs_f64() / steps;
    Ok(DeviceStep {
        tok_s,
        host_ms: step_ms - wait_ms,
        wait_ms,
    })
}

/// Greedy decode tokens/s of Crucible: one prefill, then single-token steps with the KV cache.
fn crucible_tok_s(
    model: &MimoModel,
    batch: usize,
    prompt_len: usize,
    new_tokens: usize,
) -> anyhow::Result<f64> {
    crucible_tok_s_with(model, batch, prompt_len, new_tokens, &mut |_| {})
}

/// [`crucible_tok_s`], calling `mark(false)` when the timed steps start and `mark(true)` when
/// they end.
fn crucible_tok_s_with(
    model: &MimoModel,
    batch: usize,
    prompt_len: usize,
    new_tokens: usize,
    mark: &mut dyn FnMut(bool),
) -> anyhow::Result<f64> {
    let vocab = model.config().vocab_size as u32;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let ids: Vec<u32> = (0..batch * prompt_len)
        .map(|_| rng.random_range(0..vocab))
        .collect();
    let prompt = Tensor::from_vec(ids, (batch, prompt_len), model.device())?;
    let mut samplers: Vec<Sampler> = (0..batch)
        .map(|_| Sampler::new(SamplingParams::greedy(0)))
        .collect();
    let mut run = |steps: usize| -> anyhow::Result<f64> {
        let mut cache = model.new_cache(vec![0; batch], prompt_len + steps);
        let mut logits = model.forward_last(&prompt, &mut cache)?;
        mark(false);
        let start = Instant::now();
        for _ in 1..steps {
            let rows = logits.to_vec2::<f32>()?;
            let next: Vec<u32> = rows
                .iter()
                .zip(&mut samplers)
                .map(|(l, s)| s.sample(l).token)
                .collect();
            let input = Tensor::from_vec(next, (batch, 1), model.device())?;
            logits = model.forward_last(&input, &mut cache)?;
        }
        logits.to_vec2::<f32>()?;
        let elapsed = start.elapsed().as_secs_f64();
        mark(true);
        Ok((batch * (steps - 1)) as f64 / elapsed)
    };
    run(3)?; // warm-up
    run(new_tokens)
}

/// Checks that the reference interpreter can import torch and transformers.
fn reference_available(python: &Path) -> Result<(), String> {
    if !Path::new(REFERENCE_SCRIPT).exists() {
        return Err(format!(
            "{REFERENCE_SCRIPT} not found (run from the repository root)"
        ));
    }
    let out = Command::new(python)
        .args(["-c", "import torch, transformers"])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} cannot import torch/transformers: {}",
            python.display(),
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or_default()
        ))
    }
}

/// Decode tokens/s of transformers on the same checkpoint, from the reference script's JSON line.
fn reference_tok_s(args: &Args, dir: &Path, batch: usize) -> anyhow::Result<f64> {
    let out = Command::new(&args.python)
        .arg(REFERENCE_SCRIPT)
        .arg("--model")
        .arg(dir)
        .args(["--batch", &batch.to_string()])
        .args(["--prompt-len", &args.prompt_len.to_string()])
        .args(["--new-tokens", &args.new_tokens.to_string()])
        .output()
        .context("running the reference script")?;
    if !out.status.success() {
        anyhow::bail!(
            "{REFERENCE_SCRIPT} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    let json: serde_json::Value = serde_json::from_str(line)
        .with_context(|| format!("{REFERENCE_SCRIPT} printed {line:?}, expected JSON"))?;
    json["tok_s"].as_f64().context("reference JSON lacks tok_s")
}

/// Writes (once) a checkpoint folder with random f32 weights for `shape`, named as HF names them.
fn random_checkpoint(workdir: &Path, shape: &Shape) -> anyhow::Result<PathBuf> {
    let dir = workdir.join(shape.name);
    let config_text = serde_json::to_string_pretty(&shape.config)?;
    let done = dir.join(".complete");
    if std::fs::read_to_string(&done).is_ok_and(|c| c == config_text) {
        return Ok(dir);
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let cfg = crucible_gpu::model::MimoConfig::from_json(&config_text)?;
    let (h, i, d) = (cfg.hidden_size, cfg.intermediate_size, cfg.head_dim);
    let (q, kv) = (cfg.num_attention_heads * d, cfg.num_key_value_heads * d);
    let mut shapes: Vec<(String, Vec<usize>)> = vec![
        ("model.embed_tokens.weight".into(), vec![cfg.vocab_size, h]),
        ("model.norm.weight".into(), vec![h]),
    ];
    if !cfg.tie_word_embeddings {
        shapes.push(("lm_head.weight".into(), vec![cfg.vocab_size, h]));
    }
    for l in 0..cfg.num_hidden_layers {
        let p = format!("model.layers.{l}");
        for (name, dims) in [
            ("input_layernorm.weight", vec![h]),
            ("post_attention_layernorm.weight", vec![h]),
            ("self_attn.q_proj.weight", vec![q, h]),
            ("self_attn.q_proj.bias", vec![q]),
            ("self_attn.k_proj.weight", vec![kv, h]),
            ("self_attn.k_proj.bias", vec![kv]),
            ("self_attn.v_proj.weight", vec![kv, h]),
            ("self_attn.v_proj.bias", vec![kv]),
            ("self_attn.o_proj.weight", vec![h, q]),
            ("mlp.gate_proj.weight", vec![i, h]),
            ("mlp.up_proj.weight", vec![i, h]),
            ("mlp.down_proj.weight", vec![h, i]),
        ] {
            shapes.push((format!("{p}.{name}"), dims));
        }
    }
    let mut tensors = HashMap::new();
    for (name, dims) in shapes {
        let t = if name.ends_with("norm.weight") {
            Tensor::ones(dims, DType::F32, &Device::Cpu)?
        } else {
            Tensor::randn(0f32, 0.02, dims, &Device::Cpu)?
        };
        tensors.insert(name, t);
    }
    candle_core::safetensors::save(&tensors, dir.join("model.safetensors"))?;
    std::fs::write(dir.join("config.json"), &config_text)?;
    std::fs::write(&done, &config_text)?;
    Ok(dir)
}
