//! Generation on the tiny-MiMo fixture: greedy parity with transformers, KV-cache and batching
//! invariants, seeded sampling, stop strings and streaming text.

mod common;

use candle_core::{Device, IndexOp, Tensor};
use common::*;
use crucible_gpu::engine::{
    GeneratedSequence, GenerationObserver, GenerationRequest, generate, generate_continuous,
};
use crucible_gpu::tokenizer::{ChatMessage, Tokenizer};
use crucible_types::sampling::{FinishReason, SamplingParams};

const F32_TOLERANCE: f32 = 1e-4;

fn tokenizer() -> Tokenizer {
    Tokenizer::load(&fixture_dir()).unwrap()
}

fn greedy_fixed(n: u32) -> SamplingParams {
    SamplingParams {
        ignore_eos: true,
        ..SamplingParams::greedy(n)
    }
}

#[test]
fn greedy_generation_matches_transformers_for_32_tokens() {
    let (model, tok, reference) = (tiny_model(), tokenizer(), reference_json());
    let prompt = prompt_ids(
        &reference,
        reference["greedy"]["prompt"].as_u64().unwrap() as usize,
    );
    let expected = ids(&reference["greedy"]["ids"]);
    assert_eq!(expected.len(), 32);
    let request = GenerationRequest {
        prompt_ids: prompt,
        params: greedy_fixed(32),
    };
    let out = generate(&model, &tok, &[request], |_, _| {}).unwrap();
    assert_eq!(out[0].token_ids, expected);
    assert_eq!(out[0].finish_reason, FinishReason::Length);
    assert!(out[0].logprobs.iter().all(|&l| l <= 0.0 && l.is_finite()));
}

#[test]
fn incremental_decoding_equals_a_full_forward() {
    let (model, reference) = (tiny_model(), reference_json());
    let ids = prompt_ids(&reference, 3);
    let mut cache = model.new_cache(vec![0], ids.len());
    let full = model
        .forward(&row(&ids), &mut cache)
        .unwrap()
        .squeeze(0)
        .unwrap();

    // A 5-token chunk, then one token at a time, with a cache that must grow (capacity 2).
    let mut cache = model.new_cache(vec![0], 2);
    let mut pieces = vec![
        model
            .forward(&row(&ids[..5]), &mut cache)
            .unwrap()
            .squeeze(0)
            .unwrap(),
    ];
    for &id in &ids[5..] {
        pieces.push(
            model
                .forward(&row(&[id]), &mut cache)
                .unwrap()
                .squeeze(0)
                .unwrap(),
        );
    }
    let incremental = Tensor::cat(&pieces, 0).unwrap();
    let diff = max_abs_diff(&incremental, &full);
    assert!(diff < F32_TOLERANCE, "max |Δlogit| = {diff}");
}

#[test]
fn a_batch_equals_its_members_alone() {
    let (model, tok, reference) = (tiny_model(), tokenizer(), reference_json());
    let prompts: Vec<Vec<u32>> = (0..4).map(|n| prompt_ids(&reference, n)).collect();

    // Prefill logits of each row's last real token, left-padded batch vs alone.
    let longest = prompts.iter().map(Vec::len).max().unwrap();
    let pads: Vec<usize> = prompts.iter().map(|p| longest - p.len()).collect();
    let mut flat = Vec::new();
    for (p, &pad) in prompts.iter().zip(&pads) {
        flat.extend(std::iter::repeat_n(0u32, pad));
        flat.extend(p);
    }
    let batch = Tensor::from_vec(flat, (prompts.len(), longest), &Device::Cpu).unwrap();
    let mut cache = model.new_cache(pads, longest);
    let batched = model.forward_last(&batch, &mut cache).unwrap();
    for (i, p) in prompts.iter().enumerate() {
        let mut alone_cache = model.new_cache(vec![0], p.len());
        let alone = model.forward_last(&row(p), &mut alone_cache).unwrap();
        let diff = max_abs_diff(&batched.i(i).unwrap(), &alone.i(0).unwrap());
        assert!(diff < F32_TOLERANCE, "row {i}: max |Δlogit| = {diff}");
    }

    // Whole generations, with per-row lengths and sampling settings.
    let requests: Vec<GenerationRequest> = prompts
        .iter()
        .enumerate()
        .map(|(i, p)| GenerationRequest {
            prompt_ids: p.clone(),
            params: SamplingParams {
                temperature: if i % 2 == 0 { 0.0 } else { 0.8 },
                top_p: 0.9,
                seed: i as u64,
                max_new_tokens: 8 + 4 * i as u32,
                ignore_eos: true,
                ..SamplingParams::default()
            },
        })
        .collect();
    let together = generate(&model, &tok, &requests, |_, _| {}).unwrap();
    for (i, r) in requests.iter().enumerate() {
        let alone = generate(&model, &tok, std::slice::from_ref(r), |_, _| {}).unwrap();
        assert_eq!(together[i].token_ids, alone[0].token_ids, "row {i}");
        assert_eq!(together[i].text, alone[0].text, "row {i}");
    }
}

/// Nine requests of different prompts, budgets and samplings for three rows: finished rows are
/// refilled mid-batch (and the cache compacts) while the others decode.
fn mixed_requests(reference: &serde_json::Value) -> Vec<GenerationRequest> {
    (0..9)
        .map(|i| GenerationRequest {
            prompt_ids: prompt_ids(reference, i % 4),
            params: SamplingParams {
                temperature: if i % 3 == 0 { 0.0 } else { 0.9 },
                top_p: 0.95,
                seed: i as u64,
                max_new_tokens: 3 + 5 * (i as u32 % 4),
                ignore_eos: true,
                ..SamplingParams::default()
            },
        })
        .collect()
}

/// Records finished requests; stops the batch after `steps` decode steps.
struct Follow {
    finished: Vec<usize>,
    steps: usize,
}

impl GenerationObserver for Follow {
    fn on_finished(&mut self, row: usize, _: &GeneratedSequence) {
        self.finished.push(row);
    }
    fn keep_going(&mut self) -> bool {
        self.steps = self.steps.saturating_sub(1);
        self.steps > 0
    }
}

#[test]
fn continuous_batching_equals_each_request_alone() {
    let (model, tok, reference) = (tiny_model(), tokenizer(), reference_json());
    let requests = mixed_requests(&reference);
    let mut follow = Follow {
        finished: Vec::new(),
        steps: usize::MAX,
    };
    let together = generate_continuous(&model, &tok, &requests, 3, &mut follow).unwrap();
    for (i, r) in requests.iter().enumerate() {
        let alone = generate(&model, &tok, std::slice::from_ref(r), |_, _| {}).unwrap();
        assert_eq!(together[i].token_ids, alone[0].token_ids, "request {i}");
        assert_eq!(together[i].finish_reason, FinishReason::Length);
        let worst = together[i]
            .logprobs
            .iter()
            .zip(&alone[0].logprobs)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(worst < F32_TOLERANCE, "request {i}: |Δlogprob| = {worst}");
    }
    follow.finished.sort_unstable();
    assert_eq!(
        follow.finished,
        (0..9).collect::<Vec<_>>(),
        "each finishes once"
    );

    // Stopped after 4 steps: request 0 (3 tokens) is done, the rest come back aborted, the
    // waiting ones without a token.
    let mut stop = Follow {
        finished: Vec::new(),
        steps: 5,
    };
    let out = generate_continuous(&model, &tok, &requests, 3, &mut stop).unwrap();
    assert_eq!(out[0].finish_reason, FinishReason::Length);
    assert_eq!(out[0].token_ids, together[0].token_ids);
    assert!(
        out[1..]
            .iter()
            .all(|o| o.finish_reason == FinishReason::Aborted)
    );
    assert!(out[4..].iter().all(|o| o.token_ids.is_empty()));
    assert_eq!(stop.finished, [0]);
}

/// Admits a waiting request only while fewer than `limit` rows decode; records the order
/// requests were admitted in and the most rows decoding at once after the first admission.
struct Throttle {
    limit: usize,
    running: usize,
    admitted: Vec<usize>,
    most_later: usize,
}

impl Throttle {
    fn new(limit: usize, first: usize) -> Self {
        Throttle {
            limit,
            running: first,
            admitted: Vec::new(),
            most_later: 0,
        }
    }
}

impl GenerationObserver for Throttle {
    fn on_finished(&mut self, _: usize, _: &GeneratedSequence) {
        self.running -= 1;
    }
    fn keep_going(&mut self) -> bool {
        if !self.admitted.is_empty() {
            self.most_later = self.most_later.max(self.running);
        }
        true
    }
    fn admit(&mut self, request: usize) -> bool {
        if self.running >= self.limit {
            return false;
        }
        self.running += 1;
        self.admitted.push(request);
        true
    }
}

#[test]
fn refused_admissions_leave_rows_free_without_changing_outputs() {
    let (model, tok, reference) = (tiny_model(), tokenizer(), reference_json());
    let requests = mixed_requests(&reference);
    let free = generate_continuous(&model, &tok, &requests, 4, &mut ()).unwrap();
    // The first four start together (never asked); later ones start one at a time.
    let mut one = Throttle::new(1, 4);
    let throttled = generate_continuous(&model, &tok, &requests, 4, &mut one).unwrap();
    for (i, (a, b)) in free.iter().zip(&throttled).enumerate() {
        assert_eq!(a.token_ids, b.token_ids, "request {i}");
        assert_eq!(b.finish_reason, FinishReason::Length);
    }
    assert_eq!(one.admitted, (4..9).collect::<Vec<_>>(), "in order");
    assert_eq!((one.running, one.most_later), (0, 1));

    // Refused with no row decoding: the batch ends and the waiting requests come back aborted.
    let mut none = Throttle::new(0, 4);
    let out = generate_continuous(&model, &tok, &requests, 4, &mut none).unwrap();
    assert_eq!(out[..4], free[..4]);
    assert!(
        out[4..]
            .iter()
            .all(|o| o.finish_reason == FinishReason::Aborted && o.token_ids.is_empty())
    );
}

#[test]
fn seeded_sampling_is_reproducible() {
    let (model, tok, reference) = (tiny_model(), tokenizer(), reference_json());
    let request = |seed| GenerationRequest {
        prompt_ids: prompt_ids(&reference, 1),
        params: SamplingParams {
            temperature: 1.0,
            top_p: 0.95,
            top_k: 100,
            min_p: 0.01,
            seed,
            max_new_tokens: 24,
            ignore_eos: true,
            ..SamplingParams::default()
        },
    };
    let a = generate(&model, &tok, &[request(7)], |_, _| {}).unwrap();
    let b = generate(&model, &tok, &[request(7)], |_, _| {}).unwrap();
    let c = generate(&model, &tok, &[request(8)], |_, _| {}).unwrap();
    assert_eq!(a, b);
    assert_ne!(a[0].token_ids, c[0].token_ids);
}

#[test]
fn stop_strings_end_generation_right_before_the_match() {
    let (model, tok, reference) = (tiny_model(), tokenizer(), reference_json());
    let prompt = prompt_ids(&reference, 3);
    let free = generate(
        &model,
        &tok,
        &[GenerationRequest {
            prompt_ids: prompt.clone(),
            params: greedy_fixed(32),
        }],
        |_, _| {},
    )
    .unwrap();
    let text = &free[0].text;
    let chars: Vec<char> = text.chars().collect();
    assert!(chars.len() > 12, "fixture continuation too short: {text:?}");
    let stop: String = chars[8..11].iter().collect();
    let cut = text.find(&stop).unwrap();

    let mut streamed = String::new();
    let out = generate(
        &model,
        &tok,
        &[GenerationRequest {
            prompt_ids: prompt,
            params: SamplingParams {
                stop: vec![stop.clone()],
                ..greedy_fixed(32)
            },
        }],
        |_, piece| streamed.push_str(piece),
    )
    .unwrap();
    assert_eq!(out[0].finish_reason, FinishReason::StopString);
    assert_eq!(out[0].text, text[..cut]);
    assert_eq!(streamed, out[0].text);
    assert!(out[0].token_ids.len() < 32);
    assert_eq!(
        out[0].token_ids[..],
        free[0].token_ids[..out[0].token_ids.len()]
    );
}

#[test]
fn stop_tokens_and_max_new_tokens() {
    let (model, tok, reference) = (tiny_model(), tokenizer(), reference_json());
    let greedy = ids(&reference["greedy"]["ids"]);
    let request = |params| GenerationRequest {
        prompt_ids: prompt_ids(&reference, 3),
        params,
    };
    let stop_at = greedy[5];
    let first = greedy.iter().position(|&t| t == stop_at).unwrap();
    let out = generate(
        &model,
        &tok,
        &[request(SamplingParams {
            stop_token_ids: vec![stop_at],
            ..greedy_fixed(32)
        })],
        |_, _| {},
    )
    .unwrap();
    assert_eq!(out[0].token_ids, greedy[..=first]);
    assert_eq!(out[0].finish_reason, FinishReason::StopToken);
    let out = generate(&model, &tok, &[request(greedy_fixed(3))], |_, _| {}).unwrap();
    assert_eq!(out[0].token_ids, greedy[..3]);
    assert_eq!(out[0].finish_reason, FinishReason::Length);
}

#[test]
fn streaming_never_splits_a_utf8_character() {
    let tok = tokenizer();
    let text = "Unicode: naïve café, 数学, 🤖 robots 🎉";
    let ids = tok.encode(text, false).unwrap();
    assert!(ids.len() > text.chars().count() / 2);
    let mut decoder = crucible_gpu::engine::detokenizer::StreamDecoder::default();
    let mut out = String::new();
    for id in ids {
        let piece = decoder.push(&tok, id).unwrap();
        assert!(!piece.contains('\u{FFFD}'), "split character in {piece:?}");
        out.push_str(&piece);
    }
    out.push_str(&decoder.finish(&tok).unwrap());
    assert_eq!(out, text);
}

#[test]
fn chat_template_renders_as_transformers_does() {
    let (tok, reference) = (tokenizer(), reference_json());
    let chat = &reference["chat"];
    let messages: Vec<ChatMessage> = serde_json::from_value(chat["messages"].clone()).unwrap();
    assert_eq!(
        tok.apply_chat_template(&messages, true).unwrap(),
        chat["rendered"].as_str().unwrap()
    );
    assert_eq!(
        tok.apply_chat_template(&messages, false).unwrap(),
        chat["rendered_no_generation_prompt"].as_str().unwrap()
    );
    let rendered = tok.apply_chat_template(&messages, true).unwrap();
    assert_eq!(tok.encode(&rendered, false).unwrap(), ids(&chat["ids"]));
    let bad = [ChatMessage {
        role: "tool".into(),
        content: "x".into(),
    }];
    let err = tok.apply_chat_template(&bad, true).unwrap_err().to_string();
    assert!(err.contains("Unknown role: tool"), "{err}");
}
