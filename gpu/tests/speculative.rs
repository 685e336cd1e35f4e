//! MTP speculative decoding against plain decoding: greedy output token for token on the tiny
//! fixture (random weights: most drafts rejected) and on the shipped model (most accepted), at
//! batch 1 and batched; seeded sampling reproduces.

mod common;

use std::path::PathBuf;

use common::*;
use crucible_gpu::engine::{GenerationRequest, generate, generate_speculative};
use crucible_gpu::model::{LoadOptions, MimoModel};
use crucible_gpu::tokenizer::{ChatMessage, Tokenizer};
use crucible_types::sampling::{SamplingParams, Speculative};

const MTP: Speculative = Speculative::Mtp { k: 1 };

fn shipped_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/crucible-mimo-small")
}

fn shipped() -> (MimoModel, Tokenizer) {
    let dir = shipped_dir();
    (
        MimoModel::load(&dir, &LoadOptions::default()).unwrap(),
        Tokenizer::load(&dir).unwrap(),
    )
}

/// Chat prompts the shipped model was trained on (multi-step arithmetic).
fn arithmetic_prompts(tok: &Tokenizer, n: usize) -> Vec<Vec<u32>> {
    (0..n)
        .map(|i| {
            let q = format!("Compute {} + {} * {}.", 3 + i, 7 * i % 10, 2 + i % 5);
            let text = tok
                .apply_chat_template(&[ChatMessage::user(q)], true)
                .unwrap();
            tok.encode(&text, false).unwrap()
        })
        .collect()
}

fn requests(
    prompts: &[Vec<u32>],
    params: impl Fn(usize) -> SamplingParams,
) -> Vec<GenerationRequest> {
    prompts
        .iter()
        .enumerate()
        .map(|(i, p)| GenerationRequest {
            prompt_ids: p.clone(),
            params: params(i),
        })
        .collect()
}

/// Asserts speculative greedy decoding emits what plain decoding does, request by request.
fn assert_same_as_plain(model: &MimoModel, tok: &Tokenizer, reqs: &[GenerationRequest]) -> f64 {
    let plain = generate(model, tok, reqs, |_, _| {}).unwrap();
    let spec = generate_speculative(model, tok, reqs, MTP, &mut ()).unwrap();
    for (i, (p, s)) in plain.iter().zip(&spec.sequences).enumerate() {
        assert_eq!(p.token_ids, s.token_ids, "request {i}: tokens differ");
        assert_eq!(p.text, s.text, "request {i}");
        assert_eq!(p.finish_reason, s.finish_reason, "request {i}");
        for (a, b) in p.logprobs.iter().zip(&s.logprobs) {
            assert!((a - b).abs() < 1e-4, "request {i}: logprob {a} vs {b}");
        }
    }
    assert!(spec.metrics.drafts > 0, "nothing was drafted");
    spec.metrics.acceptance_rate()
}

#[test]
fn greedy_drafting_equals_plain_greedy_on_the_fixture() {
    let (model, tok, reference) = (
        tiny_model(),
        Tokenizer::load(&fixture_dir()).unwrap(),
        reference_json(),
    );
    let prompts: Vec<Vec<u32>> = (0..4).map(|n| prompt_ids(&reference, n)).collect();
    let fixed = |n| SamplingParams {
        ignore_eos: true,
        ..SamplingParams::greedy(n)
    };
    for p in &prompts {
        assert_same_as_plain(
            &model,
            &tok,
            &requests(std::slice::from_ref(p), |_| fixed(24)),
        );
    }
    // Batched, with different budgets: rows accept different numbers of drafts and finish apart.
    assert_same_as_plain(
        &model,
        &tok,
        &requests(&prompts, |i| fixed(8 + 6 * i as u32)),
    );
}

#[test]
fn greedy_drafting_equals_plain_greedy_on_the_shipped_model() {
    let (model, tok) = shipped();
    let prompts = arithmetic_prompts(&tok, 8);
    let one = assert_same_as_plain(
        &model,
        &tok,
        &requests(&prompts[..1], |_| SamplingParams::greedy(96)),
    );
    let batch = assert_same_as_plain(
        &model,
        &tok,
        &requests(&prompts, |_| SamplingParams::greedy(96)),
    );
    // The shipped model's MTP layer matches its greedy next token ≈ 0.9 of the time.
    assert!(one > 0.7 && batch > 0.7, "acceptance {one} / {batch}");
}

#[test]
fn seeded_speculative_sampling_reproduces() {
    let (model, tok) = shipped();
    let prompts = arithmetic_prompts(&tok, 4);
    for (temperature, top_p) in [(1.0, 1.0), (0.6, 0.95)] {
        let params = |seed: u64| {
            move |i: usize| SamplingParams {
                temperature,
                top_p,
                seed: seed + i as u64,
                max_new_tokens: 48,
                ..SamplingParams::default()
            }
        };
        let run = |seed| {
            generate_speculative(
                &model,
                &tok,
                &requests(&prompts, params(seed)),
                MTP,
                &mut (),
            )
            .unwrap()
        };
        let (a, b, c) = (run(1), run(1), run(100));
        let ids = |o: &crucible_gpu::engine::SpeculativeOutput| {
            o.sequences
                .iter()
                .map(|s| s.token_ids.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&a), ids(&b), "T={temperature}: same seed, same tokens");
        assert_ne!(
            ids(&a),
            ids(&c),
            "T={temperature}: other seeds, other tokens"
        );
        assert_eq!(a.metrics, b.metrics);
        assert!(
            a.metrics.acceptance_rate() > 0.3,
            "T={temperature}: {}",
            a.metrics.summary()
        );
    }
}

#[test]
fn drafting_refuses_a_model_without_enough_mtp_layers() {
    let tok = Tokenizer::load(&fixture_dir()).unwrap();
    let no_mtp = MimoModel::load(
        &fixture_dir(),
        &LoadOptions {
            load_mtp: false,
            ..LoadOptions::default()
        },
    )
    .unwrap();
    let reqs = requests(&[vec![1, 2, 3]], |_| SamplingParams::greedy(4));
    let err = generate_speculative(&no_mtp, &tok, &reqs, MTP, &mut ()).unwrap_err();
    assert!(err.to_string().contains("MTP layers"), "{err}");
    let two = Speculative::Mtp { k: 2 };
    assert!(generate_speculative(&tiny_model(), &tok, &reqs, two, &mut ()).is_err());
}
