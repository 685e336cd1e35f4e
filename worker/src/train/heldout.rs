//! The figures of a model trained on the synthetic corpus, on the held-out split: pass@1 with
//! greedy decoding, avg@n at temperature 0.6 / top-p 0.95 (the report's protocol), per
//! difficulty level, and the MTP acceptance rate (how often the MTP layer's draft equals the
//! token the main model then picks greedily).

use std::path::Path;

use candle_core::{D, DType, Tensor};
use crucible_types::sampling::SamplingParams;
use serde::{Deserialize, Serialize};

use super::TrainError;
use crate::data::synthetic::{self, Difficulty, Problem};
use crucible_gpu::engine::{GenerationRequest, generate};
use crucible_gpu::model::{LoadOptions, MimoModel};
use crucible_gpu::tokenizer::{ChatMessage, Tokenizer};

/// How to evaluate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeldOutOptions {
    /// Seed of the benchmark problems (the held-out split holds for every seed).
    pub seed: u64,
    pub per_level: usize,
    /// Samples per problem for avg@n.
    pub samples: usize,
    pub temperature: f32,
    pub top_p: f32,
    pub max_new_tokens: u32,
    /// Problems per generation batch.
    pub batch: usize,
}

impl Default for HeldOutOptions {
    fn default() -> Self {
        Self {
            seed: 2025,
            per_level: 50,
            samples: 8,
            temperature: 0.6,
            top_p: 0.95,
            max_new_tokens: 160,
            batch: 32,
        }
    }
}

/// Scores at one difficulty level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LevelScore {
    pub difficulty: Difficulty,
    pub problems: usize,
    /// Share solved by the greedy completion.
    pub pass1_greedy: f64,
    /// Mean share of correct samples per problem.
    pub avg_at_n: f64,
}

/// All figures of one evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeldOutReport {
    pub levels: Vec<LevelScore>,
    pub samples: usize,
    /// Share of greedy positions where the MTP draft equals the main model's greedy token.
    pub mtp_acceptance: f64,
    /// Positions the acceptance rate was measured on.
    pub mtp_positions: usize,
}

/// Evaluates the HF-format model in `dir`; `progress(done, total)` counts generated sequences.
pub fn evaluate(
    dir: &Path,
    opts: &HeldOutOptions,
    progress: &dyn Fn(u64, u64),
) -> Result<HeldOutReport, TrainError> {
    let model = MimoModel::load(dir, &LoadOptions::default())?;
    let tokenizer = Tokenizer::load(dir)?;
    let problems = synthetic::benchmark(opts.seed, opts.per_level);
    let prompts = problems
        .iter()
        .map(|p| {
            let text = tokenizer.apply_chat_template(&[ChatMessage::user(p.text.clone())], true)?;
            tokenizer.encode(&text, false)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let total = (problems.len() * (1 + opts.samples)) as u64;
    let mut done = 0u64;
    let mut run = |params: &dyn Fn(usize) -> SamplingParams| -> Result<Vec<_>, TrainError> {
        let mut out = Vec::with_capacity(prompts.len());
        for (chunk_start, chunk) in prompts
            .chunks(opts.batch.max(1))
            .enumerate()
            .map(|(i, c)| (i * opts.batch.max(1), c))
        {
            let requests: Vec<GenerationRequest> = chunk
                .iter()
                .enumerate()
                .map(|(i, ids)| GenerationRequest {
                    prompt_ids: ids.clone(),
                    params: params(chunk_start + i),
                })
                .collect();
            out.extend(generate(&model, &tokenizer, &requests, |_, _| {})?);
            done += chunk.len() as u64;
            progress(done, total);
        }
        Ok(out)
    };
    let base = SamplingParams {
        max_new_tokens: opts.max_new_tokens,
        ..SamplingParams::default()
    };
    let greedy = run(&|_| SamplingParams {
        temperature: 0.0,
        ..base.clone()
    })?;
    let mut correct_samples = vec![0usize; problems.len()];
    for s in 0..opts.samples {
        let sampled = run(&|i| SamplingParams {
            temperature: opts.temperature,
            top_p: opts.top_p,
            seed: (s * problems.len() + i) as u64,
            ..base.clone()
        })?;
        for (i, seq) in sampled.iter().enumerate() {
            correct_samples[i] +=
                usize::from(synthetic::is_correct(&seq.text, &problems[i].answer));
        }
    }
    let greedy_ok: Vec<bool> = greedy
        .iter()
        .zip(&problems)
        .map(|(g, p)| synthetic::is_correct(&g.text, &p.answer))
        .collect();
    let levels = level_scores(&problems, &greedy_ok, &correct_samples, opts.samples);
    let (accepted, positions) = mtp_acceptance(&model, &prompts, &greedy)?;
    Ok(HeldOutReport {
        levels,
        samples: opts.samples,
        mtp_acceptance: accepted as f64 / positions.max(1) as f64,
        mtp_positions: positions,
    })
}

fn level_scores(
    problems: &[Problem],
    greedy_ok: &[bool],
    correct_samples: &[usize],
    samples: usize,
) -> Vec<LevelScore> {
    Difficulty::LEVELS
        .iter()
        .filter_map(|d| {
            let idx: Vec<usize> = (0..problems.len())
                .filter(|&i| problems[i].difficulty == *d)
                .collect();
            let n = idx.len();
            (n > 0).then(|| LevelScore {
                difficulty: *d,
                problems: n,
                pass1_greedy: idx.iter().filter(|&&i| greedy_ok[i]).count() as f64 / n as f64,
                avg_at_n: idx
                    .iter()
                    .map(|&i| correct_samples[i] as f64 / samples.max(1) as f64)
                    .sum::<f64>()
                    / n as f64,
            })
        })
        .collect()
}

/// Over every greedy completion: at each position whose next-but-one token was generated, does
/// the MTP draft (from the main model's hidden state and the actual next token) equal it? For a
/// greedy completion that token is the main model's own greedy choice, so this is the
/// acceptance rate of one-token MTP speculative decoding.
fn mtp_acceptance(
    model: &MimoModel,
    prompts: &[Vec<u32>],
    completions: &[crucible_gpu::engine::GeneratedSequence],
) -> Result<(usize, usize), TrainError> {
    if model.num_mtp_layers() == 0 {
        return Ok((0, 0));
    }
    let (mut accepted, mut positions) = (0, 0);
    for (prompt, completion) in prompts.iter().zip(completions) {
        let tokens: Vec<u32> = prompt
            .iter()
            .chain(&completion.token_ids)
            .copied()
            .collect();
        let n = tokens.len();
        if n < 3 || completion.token_ids.is_empty() {
            continue;
        }
        let device = model.device();
        let input = Tensor::from_slice(&tokens[..n - 1], (1, n - 1), device)?;
        let mut cache = model.new_cache(vec![0], n);
        let hidden = model.forward_hidden(&input, &mut cache)?;
        let next = Tensor::from_slice(&tokens[1..], (1, n - 1), device)?;
        let mut mtp_cache = model.new_mtp_cache(vec![0], n);
        let drafts: Vec<u32> = model
            .mtp_logits(0, &hidden, &next, &mut mtp_cache)?
            .squeeze(0)?
            .argmax(D::Minus1)?
            .to_dtype(DType::U32)?
            .to_vec1()?;
        // Column j drafts token j + 2; count the generated ones.
        for j in prompt.len().saturating_sub(2)..n - 2 {
            positions += 1;
            accepted += usize::from(drafts[j] == tokens[j + 2]);
        }
    }
    Ok((accepted, positions))
}
