//! `crucible bench batching`: generation on the shipped model decoded in lockstep batches (the
//! peer: every row waits for the batch's longest) and with continuous batching (a finished row
//! takes the next request at once), same requests and seeds, in the same run: an eval's requests
//! as they are, then the same requests with long-tailed lengths, as in reasoning rollouts.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use crucible_gpu::engine::{GenerationRequest, generate, generate_continuous};
use crucible_gpu::model::{LoadOptions, MimoModel};
use crucible_gpu::tokenizer::Tokenizer;
use crucible_types::sampling::SamplingParams;
use crucible_worker::eval::{load_benchmark, prompt_ids};
use rand::{Rng, SeedableRng};

/// Arguments of `crucible bench batching`.
#[derive(clap::Args)]
pub struct Args {
    /// The model (HF folder).
    #[arg(long, default_value = "models/crucible-mimo-small")]
    model: PathBuf,
    /// Synthetic benchmark problems, spread evenly over its four levels.
    #[arg(long, default_value_t = 256)]
    problems: usize,
    /// Samples per problem (T = 0.6, top-p 0.95, as the `mimo` preset).
    #[arg(long, default_value_t = 2)]
    samples: u32,
    /// Rows decoded at once by both engines.
    #[arg(long, default_value_t = 64)]
    rows: usize,
    /// Token budget per completion.
    #[arg(long, default_value_t = 160)]
    max_new_tokens: u32,
}

/// Runs the subcommand.
pub fn run(a: Args) -> Result<()> {
    let model = MimoModel::load(&a.model, &LoadOptions::default())
        .with_context(|| format!("loading {}", a.model.display()))?;
    let tokenizer = Tokenizer::load(&a.model)?;
    // Every level, as an eval sees them: short answers to easy problems, long ones to hard.
    let bench = load_benchmark(crucible_types::SYNTHETIC, None, None)?;
    let mut requests = Vec::new();
    let stride = (bench.problems.len() / a.problems.max(1)).max(1);
    for (i, p) in bench
        .problems
        .iter()
        .step_by(stride)
        .take(a.problems)
        .enumerate()
    {
        let ids = prompt_ids(&tokenizer, &p.prompt)?;
        for j in 0..a.samples {
            requests.push(GenerationRequest {
                prompt_ids: ids.clone(),
                params: SamplingParams {
                    temperature: 0.6,
                    top_p: 0.95,
                    max_new_tokens: a.max_new_tokens,
                    seed: (i as u64) << 8 | u64::from(j),
                    ..SamplingParams::default()
                },
            });
        }
    }
    let eval = compare_engines(&model, &tokenizer, &requests, a.rows)?;
    // Reasoning rollouts have long-tailed lengths: most answers are short, a few run on. The
    // same requests with EOS ignored and budgets 16 + 240·u⁴ (u uniform, seeded): mean ≈ 64.
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for r in &mut requests {
        let u: f64 = rng.random();
        r.params.ignore_eos = true;
        r.params.max_new_tokens = 16 + (240.0 * u.powi(4)) as u32;
    }
    let long_tail = compare_engines(&model, &tokenizer, &requests, a.rows)?;
    println!(
        "{}",
        serde_json::json!({ "rows": a.rows, "eval": eval, "long_tail": long_tail })
    );
    Ok(())
}

/// Decodes `requests` both ways, checks the outputs agree, prints and returns the figures.
fn compare_engines(
    model: &MimoModel,
    tokenizer: &Tokenizer,
    requests: &[GenerationRequest],
    rows: usize,
) -> Result<serde_json::Value> {
    eprintln!("lockstep batches of {rows} rows …");
    let started = Instant::now();
    let mut lockstep = Vec::with_capacity(requests.len());
    for batch in requests.chunks(rows) {
        lockstep.extend(generate(model, tokenizer, batch, |_, _| {})?);
    }
    let lockstep_time = started.elapsed();
    eprintln!("continuous batching, {rows} rows …");
    let started = Instant::now();
    let continuous = generate_continuous(model, tokenizer, requests, rows, &mut ())?;
    let continuous_time = started.elapsed();

    let tokens: usize = continuous.iter().map(|s| s.token_ids.len()).sum();
    let same = lockstep
        .iter()
        .zip(&continuous)
        .filter(|(l, c)| l.token_ids == c.token_ids)
        .count();
    ensure!(
        same == requests.len(),
        "the engines disagree on {} of {} completions",
        requests.len() - same,
        requests.len()
    );
    let per_s = |d: Duration| tokens as f64 / d.as_secs_f64();
    let speedup = lockstep_time.as_secs_f64() / continuous_time.as_secs_f64();
    println!(
        "{} completions ({tokens} tokens): lockstep {:.2} s ({:.0} tok/s), continuous {:.2} s ({:.0} tok/s), {speedup:.2}x; outputs identical",
        requests.len(),
        lockstep_time.as_secs_f64(),
        per_s(lockstep_time),
        continuous_time.as_secs_f64(),
        per_s(continuous_time),
    );
    Ok(serde_json::json!({
        "completions": requests.len(), "tokens": tokens,
        "lockstep_s": lockstep_time.as_secs_f64(), "continuous_s": continuous_time.as_secs_f64(),
        "speedup": speedup,
    }))
}
