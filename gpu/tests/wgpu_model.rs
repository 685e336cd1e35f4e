//! The MiMo model on the wgpu backend against the same checkpoint on candle's CPU path: logits
//! of whole prompts within NMSE 1e-7, and greedy decoding token for token (256 tokens of the
//! tiny fixture and of the shipped model; padded batches, continuous batching, MTP drafting).
//! Without an adapter these tests skip unless `CRUCIBLE_REQUIRE_WGPU=1`.

mod common;

use std::path::{Path, PathBuf};

use common::wgpu::{nmse, require_gpu};
use common::*;
use crucible_gpu::engine::{
    GenerationRequest, generate, generate_continuous, generate_speculative,
};
use crucible_gpu::model::{LoadOptions, MimoModel};
use crucible_gpu::tokenizer::Tokenizer;
use crucible_types::sampling::{SamplingParams, Speculative};

fn shipped_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/crucible-mimo-small")
}

/// The checkpoint in `dir` on the CPU and on the adapter.
fn both(dir: &Path) -> Option<(MimoModel, MimoModel)> {
    let gpu = require_gpu()?;
    let cpu = MimoModel::load(dir, &LoadOptions::default()).unwrap();
    let opts = LoadOptions {
        wgpu: Some(gpu),
        ..LoadOptions::default()
    };
    Some((cpu, MimoModel::load(dir, &opts).unwrap()))
}

fn greedy(prompts: &[Vec<u32>], n: u32) -> Vec<GenerationRequest> {
    prompts
        .iter()
        .map(|p| GenerationRequest {
            prompt_ids: p.clone(),
            params: SamplingParams {
                ignore_eos: true,
                ..SamplingParams::greedy(n)
            },
        })
        .collect()
}

fn tokens(out: &[crucible_gpu::engine::GeneratedSequence]) -> Vec<Vec<u32>> {
    out.iter().map(|s| s.token_ids.clone()).collect()
}

#[test]
fn prompt_logits_match_the_cpu() {
    let Some((cpu, gpu)) = both(&fixture_dir()) else {
        return;
    };
    let reference = reference_json();
    for n in 0..4 {
        let ids = prompt_ids(&reference, n);
        let mut c = cpu.new_cache(vec![0], ids.len());
        let mut g = gpu.new_cache(vec![0], ids.len());
        let want = cpu.forward(&row(&ids), &mut c).unwrap();
        let got = gpu.forward(&row(&ids), &mut g).unwrap();
        let flat = |t: &candle_core::Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let e = nmse(&flat(&got), &flat(&want));
        assert!(e <= 1e-7, "prompt {n}: NMSE {e:e}");
    }
}

#[test]
fn greedy_decoding_of_the_tiny_fixture_equals_the_cpu_for_256_tokens() {
    let Some((cpu, gpu)) = both(&fixture_dir()) else {
        return;
    };
    let tok = Tokenizer::load(&fixture_dir()).unwrap();
    let reference = reference_json();
    // Prompts of different lengths: the batch is left-padded, so masks and positions matter.
    let prompts: Vec<Vec<u32>> = (0..3).map(|n| prompt_ids(&reference, n)).collect();
    let longest = prompts.iter().map(Vec::len).max().unwrap();
    let budget = (cpu.config().max_position_embeddings - longest).min(256) as u32;
    let reqs = greedy(&prompts, budget);
    let want = generate(&cpu, &tok, &reqs, |_, _| {}).unwrap();
    let got = generate(&gpu, &tok, &reqs, |_, _| {}).unwrap();
    assert_eq!(tokens(&got), tokens(&want));
    let single = greedy(
        &prompts[..1],
        256.min(cpu.config().max_position_embeddings - prompts[0].len()) as u32,
    );
    assert_eq!(
        tokens(&generate(&gpu, &tok, &single, |_, _| {}).unwrap()),
        tokens(&generate(&cpu, &tok, &single, |_, _| {}).unwrap()),
    );
}

#[test]
fn greedy_decoding_of_the_shipped_model_equals_the_cpu_for_256_tokens() {
    let dir = shipped_dir();
    let Some((cpu, gpu)) = both(&dir) else { return };
    let tok = Tokenizer::load(&dir).unwrap();
    let prompts: Vec<Vec<u32>> = ["12+7=", "What is 3*4?", "9"]
        .iter()
        .map(|p| tok.encode(p, false).unwrap())
        .collect();
    let reqs = greedy(&prompts, 256);
    let want = generate(&cpu, &tok, &reqs, |_, _| {}).unwrap();
    let got = generate(&gpu, &tok, &reqs, |_, _| {}).unwrap();
    assert!(want.iter().all(|s| s.token_ids.len() == 256));
    assert_eq!(tokens(&got), tokens(&want));
    for (g, w) in got.iter().zip(&want) {
        let worst = g
            .logprobs
            .iter()
            .zip(&w.logprobs)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(worst < 1e-3, "logprobs drift by {worst}");
    }
}

#[test]
fn continuous_batching_and_mtp_drafting_on_the_adapter_give_the_cpu_tokens() {
    let dir = shipped_dir();
    let Some((cpu, gpu)) = both(&dir) else { return };
    let tok = Tokenizer::load(&dir).unwrap();
    let prompts: Vec<Vec<u32>> = ["1+1=", "23*2=", "7-5=", "100/4=", "8+8=", "Q: 6*7"]
        .iter()
        .map(|p| tok.encode(p, false).unwrap())
        .collect();
    // Different budgets, so rows free up at different steps and later prompts take them.
    let reqs: Vec<GenerationRequest> = greedy(&prompts, 0)
        .into_iter()
        .enumerate()
        .map(|(i, mut r)| {
            r.params.max_new_tokens = 8 + 13 * i as u32;
            r
        })
        .collect();
    let want = tokens(&generate(&cpu, &tok, &reqs, |_, _| {}).unwrap());
    let continuous = generate_continuous(&gpu, &tok, &reqs, 2, &mut ()).unwrap();
    assert_eq!(tokens(&continuous), want, "continuous batching");
    let mtp = generate_speculative(&gpu, &tok, &reqs, Speculative::Mtp { k: 1 }, &mut ()).unwrap();
    assert_eq!(tokens(&mtp.sequences), want, "MTP drafting");
    assert!(
        mtp.metrics.acceptance_rate() > 0.0,
        "{}",
        mtp.metrics.summary()
    );
}
