//! The serving engine on the tiny-MiMo fixture: requests that arrive while others decode get
//! exactly the tokens they would get alone, a seeded request is the same alone or among 64,
//! prompt log-probabilities equal a full forward's, and an abandoned request frees its row.

mod common;

use std::sync::Arc;

use candle_core::{D, Tensor};
use common::*;
use crucible_gpu::engine::serving::{
    ServingEngine, ServingError, ServingEvent, ServingOptions, ServingRequest,
};
use crucible_gpu::engine::{GenerationRequest, generate};
use crucible_gpu::tokenizer::Tokenizer;
use crucible_types::sampling::{FinishReason, SamplingParams};
use tokio::sync::mpsc::UnboundedReceiver;

fn tokenizer() -> Tokenizer {
    Tokenizer::load(&fixture_dir()).unwrap()
}

fn engine(max_rows: usize) -> ServingEngine {
    let options = ServingOptions {
        max_rows,
        ..ServingOptions::default()
    };
    ServingEngine::start(tiny_model(), Arc::new(tokenizer()), options).unwrap()
}

fn plain(prompt_ids: Vec<u32>, params: SamplingParams) -> ServingRequest {
    ServingRequest {
        prompt_ids,
        params,
        logprobs: None,
        prompt_logprobs: None,
    }
}

/// What one request heard, gathered.
#[derive(Debug, Default)]
struct Heard {
    tokens: Vec<u32>,
    text: String,
    prompt: Option<Vec<Option<crucible_gpu::engine::serving::TokenLogprob>>>,
    logprobs: Vec<crucible_gpu::engine::serving::TokenLogprob>,
    finish: Option<FinishReason>,
}

fn hear(mut rx: UnboundedReceiver<ServingEvent>) -> Heard {
    let mut heard = Heard::default();
    while let Some(event) = rx.blocking_recv() {
        match event {
            ServingEvent::PromptLogprobs(p) => heard.prompt = Some(p),
            ServingEvent::Token { id, text, logprob } => {
                heard.tokens.push(id);
                heard.text.push_str(&text);
                heard.logprobs.extend(logprob);
            }
            ServingEvent::Finished { reason } => {
                heard.finish = Some(reason);
                break;
            }
            ServingEvent::Failed(m) => panic!("engine failed: {m}"),
        }
    }
    heard
}

/// [`hear`] for a request whose first event `opening` was already received.
fn hear_after(opening: ServingEvent, rx: UnboundedReceiver<ServingEvent>) -> Heard {
    let mut h = hear(rx);
    if let ServingEvent::Token { id, text, logprob } = opening {
        h.tokens.insert(0, id);
        h.text.insert_str(0, &text);
        h.logprobs.splice(0..0, logprob);
    }
    h
}

/// What `request` generates alone, without the serving engine.
fn alone(
    model: &crucible_gpu::model::MimoModel,
    tok: &Tokenizer,
    request: ServingRequest,
) -> crucible_gpu::engine::GeneratedSequence {
    let request = GenerationRequest {
        prompt_ids: request.prompt_ids,
        params: request.params,
    };
    generate(model, tok, &[request], |_, _| {})
        .unwrap()
        .remove(0)
}

fn mixed(reference: &serde_json::Value, i: usize) -> ServingRequest {
    plain(
        prompt_ids(reference, i % 4),
        SamplingParams {
            temperature: if i.is_multiple_of(3) { 0.0 } else { 0.9 },
            top_p: 0.95,
            seed: i as u64,
            max_new_tokens: 3 + 5 * (i as u32 % 4),
            ignore_eos: true,
            ..SamplingParams::default()
        },
    )
}

#[test]
fn requests_joining_a_running_batch_get_their_tokens_alone() {
    let (model, tok, reference) = (tiny_model(), tokenizer(), reference_json());
    let engine = engine(3);
    // Five now; the other four once the first has its first token (they join mid-decode and
    // wait for free rows, since the batch has three).
    let mut first = engine.submit(mixed(&reference, 0)).unwrap();
    let early: Vec<_> = (1..5)
        .map(|i| engine.submit(mixed(&reference, i)).unwrap())
        .collect();
    let opening = first.blocking_recv().unwrap();
    let late: Vec<_> = (5..9)
        .map(|i| engine.submit(mixed(&reference, i)).unwrap())
        .collect();
    let mut heard = vec![hear_after(opening, first)];
    heard.extend(early.into_iter().chain(late).map(hear));
    for (i, h) in heard.iter().enumerate() {
        let alone = [alone(&model, &tok, mixed(&reference, i))];
        assert_eq!(h.tokens, alone[0].token_ids, "request {i}");
        assert_eq!(h.text, alone[0].text, "request {i}");
        assert_eq!(h.finish, Some(alone[0].finish_reason), "request {i}");
    }
}

#[test]
fn a_seeded_request_is_the_same_alone_and_among_64() {
    let reference = reference_json();
    let probe = plain(
        prompt_ids(&reference, 1),
        SamplingParams {
            temperature: 1.0,
            seed: 1234,
            max_new_tokens: 24,
            ignore_eos: true,
            ..SamplingParams::default()
        },
    );
    let engine = engine(64);
    let alone = hear(engine.submit(probe.clone()).unwrap());
    assert_eq!(alone.tokens.len(), 24);
    let crowd: Vec<_> = (0..63)
        .map(|i| {
            let mut r = mixed(&reference, i);
            r.params.max_new_tokens = 1 + (i as u32 * 7) % 40;
            engine.submit(r).unwrap()
        })
        .collect();
    let among = engine.submit(probe).unwrap();
    let among = hear(among);
    crowd.into_iter().for_each(|rx| drop(hear(rx)));
    assert_eq!(among.tokens, alone.tokens);
    assert_eq!(among.text, alone.text);
}

#[test]
fn prompt_logprobs_equal_a_full_forward() {
    let (model, reference) = (tiny_model(), reference_json());
    let prompt = prompt_ids(&reference, 2);
    let engine = engine(4);
    let heard = hear(
        engine
            .submit(ServingRequest {
                prompt_logprobs: Some(3),
                logprobs: Some(2),
                ..plain(prompt.clone(), SamplingParams::greedy(2))
            })
            .unwrap(),
    );
    let scored = heard.prompt.expect("prompt log-probabilities");
    assert_eq!(scored.len(), prompt.len());
    assert!(scored[0].is_none(), "the first prompt token has no context");

    let mut cache = model.new_cache(vec![0], prompt.len());
    let input = Tensor::new(prompt.as_slice(), model.device())
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let logits = model
        .forward(&input, &mut cache)
        .unwrap()
        .squeeze(0)
        .unwrap();
    let logsoftmax: Vec<Vec<f32>> = candle_nn::ops::log_softmax(&logits, D::Minus1)
        .unwrap()
        .to_vec2()
        .unwrap();
    for (i, lp) in scored.iter().enumerate().skip(1) {
        let lp = lp.as_ref().unwrap();
        let expected = logsoftmax[i - 1][prompt[i] as usize];
        assert_eq!(lp.token, prompt[i]);
        assert!(
            (lp.logprob - expected).abs() <= 1e-4,
            "position {i}: {} vs {expected}",
            lp.logprob
        );
        assert_eq!(lp.top.len(), 3);
        assert!(
            lp.top.windows(2).all(|w| w[0].1 >= w[1].1),
            "most likely first"
        );
        let best = logsoftmax[i - 1]
            .iter()
            .cloned()
            .fold(f32::NEG_INFINITY, f32::max);
        assert!((lp.top[0].1 - best).abs() <= 1e-4);
    }
    // Greedy: each generated token is its position's most likely one.
    assert_eq!(heard.logprobs.len(), 2);
    for lp in &heard.logprobs {
        assert_eq!(lp.top[0].0, lp.token);
    }

    // max_tokens 0: the prompt's scores and nothing else.
    let only = hear(
        engine
            .submit(ServingRequest {
                prompt_logprobs: Some(0),
                ..plain(prompt.clone(), SamplingParams::greedy(0))
            })
            .unwrap(),
    );
    assert!(only.tokens.is_empty());
    assert_eq!(only.finish, Some(FinishReason::Length));
    let again: Vec<f32> = only
        .prompt
        .unwrap()
        .iter()
        .skip(1)
        .map(|l| l.as_ref().unwrap().logprob)
        .collect();
    let first: Vec<f32> = scored
        .iter()
        .skip(1)
        .map(|l| l.as_ref().unwrap().logprob)
        .collect();
    assert_eq!(again, first);
}

#[test]
fn an_abandoned_request_frees_its_row_and_the_others_go_on() {
    let reference = reference_json();
    let engine = engine(2);
    let long = |seed| {
        plain(
            prompt_ids(&reference, 0),
            SamplingParams {
                seed,
                max_new_tokens: 200,
                ignore_eos: true,
                ..SamplingParams::default()
            },
        )
    };
    let mut dropped = engine.submit(long(1)).unwrap();
    let kept = engine.submit(long(2)).unwrap();
    let waiting = engine.submit(mixed(&reference, 3)).unwrap();
    dropped.blocking_recv().unwrap();
    drop(dropped);
    // The waiting request gets the abandoned row long before the kept one's 200 tokens.
    let w = hear(waiting);
    assert_eq!(w.finish, Some(FinishReason::Length));
    let k = hear(kept);
    assert_eq!(k.tokens.len(), 200);
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert_eq!((engine.load().running(), engine.load().waiting()), (0, 0));
}

#[test]
fn requests_the_model_cannot_run_are_refused_by_field() {
    let reference = reference_json();
    let engine = engine(2);
    let field = |r: ServingRequest| match engine.submit(r) {
        Err(ServingError::Invalid(invalid)) => invalid.field,
        other => panic!("accepted: {:?}", other.is_ok()),
    };
    let prompt = prompt_ids(&reference, 0);
    assert_eq!(
        field(plain(prompt.clone(), SamplingParams::greedy(10_000))),
        "max_tokens"
    );
    assert_eq!(
        field(plain(vec![5, 320], SamplingParams::greedy(4))),
        "prompt"
    );
    assert_eq!(
        field(plain(Vec::new(), SamplingParams::greedy(4))),
        "prompt"
    );
    let hot = SamplingParams {
        temperature: 9.0,
        ..SamplingParams::greedy(4)
    };
    assert_eq!(field(plain(prompt.clone(), hot)), "temperature");
    let many = ServingRequest {
        logprobs: Some(21),
        ..plain(prompt, SamplingParams::greedy(4))
    };
    assert_eq!(field(many), "logprobs");
}

#[test]
fn drafting_leaves_greedy_output_unchanged_and_counts_its_drafts() {
    let dir =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/crucible-mimo-small");
    let load = || crucible_gpu::model::MimoModel::load(&dir, &Default::default()).unwrap();
    let tok = Tokenizer::load(&dir).unwrap();
    let prompts: Vec<Vec<u32>> = [
        "Compute 3 + 4 * 2.",
        "Compute 12 - 5.",
        "Start with 7. add 5. What is the result?",
    ]
    .iter()
    .map(|q| {
        let chat = [crucible_gpu::tokenizer::ChatMessage::user(*q)];
        tok.encode(&tok.apply_chat_template(&chat, true).unwrap(), false)
            .unwrap()
    })
    .collect();
    let request = |i: usize| ServingRequest {
        logprobs: Some(1),
        ..plain(
            prompts[i % prompts.len()].clone(),
            SamplingParams {
                ignore_eos: true,
                ..SamplingParams::greedy(10 + 6 * i as u32)
            },
        )
    };
    let options = ServingOptions {
        max_rows: 3,
        speculative: crucible_types::sampling::Speculative::Mtp { k: 1 },
    };
    let engine =
        ServingEngine::start(load(), Arc::new(Tokenizer::load(&dir).unwrap()), options).unwrap();
    // Two now, four more once decoding runs: rows join and leave while drafting.
    let mut first = engine.submit(request(0)).unwrap();
    let second = engine.submit(request(1)).unwrap();
    let opening = first.blocking_recv().unwrap();
    let later: Vec<_> = (2..6).map(|i| engine.submit(request(i)).unwrap()).collect();
    let mut heard = vec![hear_after(opening, first)];
    heard.extend(std::iter::once(second).chain(later).map(hear));
    let model = load();
    for (i, h) in heard.iter().enumerate() {
        let alone = [alone(&model, &tok, request(i))];
        assert_eq!(h.tokens, alone[0].token_ids, "request {i}");
        assert_eq!(h.text, alone[0].text, "request {i}");
        assert_eq!(
            h.logprobs.len(),
            h.tokens.len(),
            "one log-probability per token"
        );
        assert!(
            h.logprobs
                .iter()
                .zip(&h.tokens)
                .all(|(lp, &t)| lp.token == t && lp.top[0].0 == t)
        );
    }
    let (drafts, proposed, accepted) = engine.load().drafting();
    assert!(
        drafts > 0 && proposed >= drafts,
        "drafting ran: {drafts} drafts"
    );
    assert!(
        accepted > 0 && accepted <= proposed,
        "{accepted} of {proposed} accepted"
    );
}
