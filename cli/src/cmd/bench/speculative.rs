//! `crucible bench speculative`: decode tokens/s of the shipped model on the CPU with and without
//! MTP drafting, same requests and seeds, at batch 1, 8 and 64; greedy, T = 0.6 / top-p 0.95
//! and T = 1. Greedy outputs must be identical; the acceptance per draft position is reported.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use crucible_gpu::engine::{
    GeneratedSequence, GenerationRequest, SpeculativeMetrics, generate_speculative,
};
use crucible_gpu::model::{LoadOptions, MimoModel};
use crucible_gpu::tokenizer::Tokenizer;
use crucible_types::sampling::{SamplingParams, Speculative};
use crucible_worker::eval::{load_benchmark, prompt_ids};

/// Arguments of `crucible bench speculative`.
#[derive(clap::Args)]
pub struct Args {
    /// The model (HF folder with an MTP layer).
    #[arg(long, default_value = "models/crucible-mimo-small")]
    model: PathBuf,
    /// Token budget per completion (answers usually end earlier, at the model's EOS).
    #[arg(long, default_value_t = 160)]
    max_new_tokens: u32,
    /// Batches of one run one after another; this many requests per batch-1 arm.
    #[arg(long, default_value_t = 6)]
    single_requests: usize,
    /// Timed repetitions of each arm (the faster one counts: the machine is shared).
    #[arg(long, default_value_t = 2)]
    repeats: usize,
}

/// One measured setting: a batch size and a sampling regime.
struct Arm {
    name: &'static str,
    batch: usize,
    temperature: f32,
    top_p: f32,
}

const ARMS: [Arm; 7] = [
    Arm {
        name: "b1_greedy",
        batch: 1,
        temperature: 0.0,
        top_p: 1.0,
    },
    Arm {
        name: "b1_t0.6",
        batch: 1,
        temperature: 0.6,
        top_p: 0.95,
    },
    Arm {
        name: "b1_t1",
        batch: 1,
        temperature: 1.0,
        top_p: 1.0,
    },
    Arm {
        name: "b8_greedy",
        batch: 8,
        temperature: 0.0,
        top_p: 1.0,
    },
    Arm {
        name: "b8_t1",
        batch: 8,
        temperature: 1.0,
        top_p: 1.0,
    },
    Arm {
        name: "b64_greedy",
        batch: 64,
        temperature: 0.0,
        top_p: 1.0,
    },
    Arm {
        name: "b64_t1",
        batch: 64,
        temperature: 1.0,
        top_p: 1.0,
    },
];

/// What one arm decoded in one mode.
struct Run {
    sequences: Vec<GeneratedSequence>,
    metrics: SpeculativeMetrics,
    seconds: f64,
}

impl Run {
    fn tokens_per_s(&self) -> f64 {
        let tokens: usize = self.sequences.iter().map(|s| s.token_ids.len()).sum();
        tokens as f64 / self.seconds
    }
}

/// Runs the subcommand.
pub fn run(a: Args) -> Result<()> {
    let model = MimoModel::load(&a.model, &LoadOptions::default())
        .with_context(|| format!("loading {}", a.model.display()))?;
    let tokenizer = Tokenizer::load(&a.model)?;
    let bench = load_benchmark(crucible_types::SYNTHETIC, None, None)?;
    let prompts: Vec<Vec<u32>> = bench
        .problems
        .iter()
        .step_by(bench.problems.len() / 64)
        .take(64)
        .map(|p| prompt_ids(&tokenizer, &p.prompt))
        .collect::<Result<_, _>>()?;

    let mut figures = serde_json::Map::new();
    let mut identical = true;
    let mut speedups = std::collections::HashMap::new();
    let mut acceptance = Vec::new();
    for arm in &ARMS {
        let count = if arm.batch == 1 {
            a.single_requests
        } else {
            arm.batch
        };
        let requests: Vec<GenerationRequest> = prompts
            .iter()
            .cycle()
            .take(count)
            .enumerate()
            .map(|(i, p)| GenerationRequest {
                prompt_ids: p.clone(),
                params: SamplingParams {
                    temperature: arm.temperature,
                    top_p: arm.top_p,
                    seed: i as u64,
                    max_new_tokens: a.max_new_tokens,
                    ..SamplingParams::default()
                },
            })
            .collect();
        let plain = best_of(a.repeats, || {
            decode(&model, &tokenizer, &requests, arm.batch, Speculative::Off)
        })?;
        let spec = best_of(a.repeats, || {
            decode(
                &model,
                &tokenizer,
                &requests,
                arm.batch,
                Speculative::Mtp { k: 1 },
            )
        })?;
        if arm.temperature == 0.0 {
            let same = plain
                .sequences
                .iter()
                .zip(&spec.sequences)
                .all(|(p, s)| p.token_ids == s.token_ids);
            identical &= same;
            ensure!(same, "{}: greedy outputs differ with drafting", arm.name);
        }
        let speedup = spec.tokens_per_s() / plain.tokens_per_s();
        let per_position = spec.metrics.acceptance_per_position();
        println!(
            "{:<11} plain {:>7.1} tok/s, mtp {:>7.1} tok/s: {speedup:.2}x; drafted {} of {} steps, acceptance per position {:?}, mean accepted length {:.2}",
            arm.name,
            plain.tokens_per_s(),
            spec.tokens_per_s(),
            spec.metrics.drafting_steps,
            spec.metrics.steps,
            per_position
                .iter()
                .map(|x| (x * 1000.0).round() / 1000.0)
                .collect::<Vec<_>>(),
            spec.metrics.mean_accepted_length(),
        );
        if arm.name == "b1_greedy" {
            acceptance = per_position.clone();
        }
        speedups.insert(arm.name, speedup);
        figures.insert(
            arm.name.into(),
            serde_json::json!({
                "plain_tok_s": plain.tokens_per_s(), "mtp_tok_s": spec.tokens_per_s(),
                "speedup": speedup, "acceptance": per_position,
                "drafting_steps": spec.metrics.drafting_steps, "steps": spec.metrics.steps,
            }),
        );
    }
    eprintln!("{}", serde_json::Value::Object(figures));
    println!(
        "{}",
        serde_json::json!({
            "speedup_b1_greedy": speedups["b1_greedy"],
            "speedup_b1_t1": speedups["b1_t1"],
            "speedup_b64": speedups["b64_greedy"].min(speedups["b64_t1"]),
            "acceptance": acceptance,
            "identical": identical,
        })
    );
    Ok(())
}

/// The fastest of `repeats` runs (every run decodes the same tokens for a seed).
fn best_of(repeats: usize, mut f: impl FnMut() -> Result<Run>) -> Result<Run> {
    let mut best = f()?;
    for _ in 1..repeats {
        let run = f()?;
        if run.seconds < best.seconds {
            best = run;
        }
    }
    Ok(best)
}

/// Decodes `requests` in lockstep batches of `batch` rows.
fn decode(
    model: &MimoModel,
    tokenizer: &Tokenizer,
    requests: &[GenerationRequest],
    batch: usize,
    speculative: Speculative,
) -> Result<Run> {
    let started = Instant::now();
    let mut sequences = Vec::with_capacity(requests.len());
    let mut metrics = SpeculativeMetrics::default();
    for chunk in requests.chunks(batch) {
        let out = generate_speculative(model, tokenizer, chunk, speculative, &mut ())?;
        sequences.extend(out.sequences);
        metrics.merge(&out.metrics);
    }
    Ok(Run {
        sequences,
        metrics,
        seconds: started.elapsed().as_secs_f64(),
    })
}
