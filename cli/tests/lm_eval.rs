//! lm-evaluation-harness (the real one, from PyPI) against `crucible serve-model`, with tasks
//! defined here over local files (the hub cannot be reached):
//! - a multiple-choice task (ARC-Challenge, scored by log-likelihood through `echo` + `logprobs`
//!   on batches of token-id prompts): every choice's log-likelihood equals the in-process
//!   forward's within 1e-4 per token, and so does the accuracy;
//! - a `generate_until` task (the synthetic benchmark, prompts rendered with the model's chat
//!   template): the same completions and the same accuracy as Crucible's own harness.

mod common;

use std::path::{Path, PathBuf};

use candle_core::{D, Tensor};
use common::ServedModel;
use crucible_gpu::model::{LoadOptions, MimoModel};
use crucible_gpu::tokenizer::{ChatMessage, Tokenizer};
use crucible_types::SamplingParams;
use crucible_types::testing::{data_dir, optional_input};
use crucible_verify::task::Task;
use crucible_worker::eval::{LocalGenerator, load_benchmark, run_eval};
use serde_json::{Value, json};

const SMALL_MODEL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/crucible-mimo-small");
const NAME: &str = "lm_eval_scores_what_crucible_scores";
/// Problems of each task.
const LIMIT: usize = 32;
/// The completion budget of the generation task (fits the small model's 512-token context).
const MAX_GEN: u32 = 320;

/// The task definitions lm-eval reads (`--include_path`), written as JSON (which YAML reads).
fn write_tasks(dir: &Path, arc: &Path, synthetic: &Path) {
    let arc_task = json!({
        "task": "crucible_arc",
        "dataset_path": "json",
        "dataset_kwargs": { "data_files": { "test": arc } },
        "test_split": "test",
        "output_type": "multiple_choice",
        "doc_to_text": "Question: {{question}}\nAnswer:",
        "doc_to_choice": "{{choices}}",
        "doc_to_target": "{{labels.index(answer)}}",
        "metric_list": [{ "metric": "acc" }],
    });
    let synthetic_task = json!({
        "task": "crucible_synthetic",
        "dataset_path": "json",
        "dataset_kwargs": { "data_files": { "test": synthetic } },
        "test_split": "test",
        "output_type": "generate_until",
        "doc_to_text": "{{prompt_text}}",
        "doc_to_target": "{{answer}}",
        "generation_kwargs": {
            "until": ["<|im_end|>"], "max_gen_toks": MAX_GEN, "do_sample": false, "temperature": 0,
        },
        "filter_list": [{
            "name": "boxed",
            "filter": [
                { "function": "regex", "regex_pattern": r"\\boxed\{(-?[0-9]+)\}" },
                { "function": "take_first" },
            ],
        }],
        "metric_list": [{ "metric": "exact_match" }],
    });
    std::fs::write(dir.join("arc.yaml"), arc_task.to_string()).unwrap();
    std::fs::write(dir.join("synthetic.yaml"), synthetic_task.to_string()).unwrap();
}

/// The one file under `dir` whose name starts with `prefix`.
fn find(dir: &Path, prefix: &str) -> PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix}* in {}", dir.display()))
}

fn samples(dir: &Path, task: &str) -> Vec<Value> {
    std::fs::read_to_string(find(dir, &format!("samples_{task}_")))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// lm-eval's split of a (context, continuation) pair into token ids: trailing spaces of the
/// context move to the continuation, the whole is encoded, and the context's ids come off.
fn encode_pair(tok: &Tokenizer, context: &str, continuation: &str) -> (Vec<u32>, Vec<u32>) {
    let trimmed = context.trim_end();
    let continuation = format!("{}{continuation}", &context[trimmed.len()..]);
    let whole = tok
        .encode(&format!("{trimmed}{continuation}"), false)
        .unwrap();
    let context_ids = tok.encode(trimmed, false).unwrap();
    (context_ids.clone(), whole[context_ids.len()..].to_vec())
}

/// The log-likelihood of `continuation` after `context` by a full forward in this process, and
/// whether every continuation token is its position's most likely one.
fn loglikelihood(model: &MimoModel, context: &[u32], continuation: &[u32]) -> (f64, bool) {
    let ids: Vec<u32> = context.iter().chain(continuation).copied().collect();
    let mut cache = model.new_cache(vec![0], ids.len());
    let input = Tensor::new(ids.as_slice(), model.device())
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let logits = model
        .forward(&input, &mut cache)
        .unwrap()
        .squeeze(0)
        .unwrap();
    let logprobs: Vec<Vec<f32>> = candle_nn::ops::log_softmax(&logits, D::Minus1)
        .unwrap()
        .to_vec2()
        .unwrap();
    let mut total = 0f64;
    let mut greedy = true;
    for (i, &token) in continuation.iter().enumerate() {
        let row = &logprobs[context.len() + i - 1];
        total += f64::from(row[token as usize]);
        let best = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        greedy &= row[token as usize] == best;
    }
    (total, greedy)
}

#[test]
fn lm_eval_scores_what_crucible_scores() {
    let Some(lm_eval) = optional_input("CRUCIBLE_LM_EVAL", "CRUCIBLE_REQUIRE_LM_EVAL", NAME) else {
        return;
    };
    let Some(data) = data_dir(NAME) else {
        return;
    };
    let model = MimoModel::load(Path::new(SMALL_MODEL), &LoadOptions::default()).unwrap();
    let tok = Tokenizer::load(Path::new(SMALL_MODEL)).unwrap();
    let work = tempfile::tempdir().unwrap();

    // The synthetic benchmark as Crucible's harness loads it, each prompt rendered with the
    // chat template exactly as the harness's local generator renders it.
    let bench = load_benchmark("synthetic", None, Some(LIMIT)).unwrap();
    let synthetic = work.path().join("synthetic.jsonl");
    let rows: Vec<String> = bench
        .problems
        .iter()
        .map(|p| {
            let Task::Math { gold, .. } = &p.task else {
                panic!("synthetic problems are math")
            };
            let text = tok
                .apply_chat_template(&[ChatMessage::user(p.prompt.clone())], true)
                .unwrap();
            json!({ "id": p.id, "prompt_text": text, "answer": gold }).to_string()
        })
        .collect();
    std::fs::write(&synthetic, rows.join("\n") + "\n").unwrap();
    write_tasks(
        work.path(),
        &data.join("arc_challenge/test.jsonl"),
        &synthetic,
    );

    let served = ServedModel::start(SMALL_MODEL, &[]);
    let out = work.path().join("out");
    let model_args = format!(
        "base_url={}/v1/completions,model=crucible-mimo-small,num_concurrent=8,\
         tokenized_requests=True,tokenizer_backend=remote,max_length=512",
        served.base
    );
    let run = std::process::Command::new(lm_eval)
        .args(["--model", "local-completions", "--model_args", &model_args])
        .args([
            "--tasks",
            "crucible_arc,crucible_synthetic",
            "--include_path",
        ])
        .arg(work.path())
        .args([
            "--limit",
            &LIMIT.to_string(),
            "--log_samples",
            "--output_path",
        ])
        .arg(&out)
        .env("HF_HUB_OFFLINE", "1")
        .env("HF_DATASETS_OFFLINE", "1")
        .env("HF_HOME", work.path().join("hf"))
        .output()
        .expect("cannot run lm_eval");
    assert!(
        run.status.success(),
        "lm_eval failed:\n{}\n{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    let out = out.join("crucible-mimo-small");
    let results: Value =
        serde_json::from_str(&std::fs::read_to_string(find(&out, "results_")).unwrap()).unwrap();

    // Multiple choice: each choice's log-likelihood and greediness, then the accuracy.
    let arc = samples(&out, "crucible_arc");
    assert_eq!(arc.len(), LIMIT);
    let mut right = 0;
    for s in &arc {
        let args = s["arguments"].as_object().unwrap();
        let mut scores = Vec::new();
        for (i, resp) in s["resps"].as_array().unwrap().iter().enumerate() {
            let pair = &args[&format!("gen_args_{i}")];
            let (context, continuation) = encode_pair(
                &tok,
                pair["arg_0"].as_str().unwrap(),
                pair["arg_1"].as_str().unwrap(),
            );
            let (mine, greedy) = loglikelihood(&model, &context, &continuation);
            let theirs: f64 = resp[0][0].as_str().unwrap().parse().unwrap();
            let bound = 1e-4 * continuation.len() as f64;
            assert!(
                (mine - theirs).abs() <= bound,
                "doc {}: {theirs} vs {mine} in process",
                s["doc_id"]
            );
            assert_eq!(
                resp[0][1].as_str().unwrap() == "True",
                greedy,
                "doc {}",
                s["doc_id"]
            );
            scores.push(mine);
        }
        let best = (0..scores.len())
            .max_by(|&a, &b| scores[a].total_cmp(&scores[b]))
            .unwrap();
        right += usize::from(best.to_string() == s["target"].as_str().unwrap());
    }
    let acc = results["results"]["crucible_arc"]["acc,none"]
        .as_f64()
        .unwrap();
    assert_eq!(
        acc,
        right as f64 / LIMIT as f64,
        "lm-eval's accuracy is the in-process one"
    );

    // Generation: Crucible's own harness on the same problems, greedy with the same budget.
    let mut generator = LocalGenerator::new(&model, &tok);
    let mut records = Vec::new();
    let report = run_eval(
        &bench,
        &mut generator,
        1,
        &SamplingParams::greedy(MAX_GEN),
        &[],
        &mut |chunk| {
            records.extend(chunk);
            Ok(())
        },
        &|| false,
        &mut |_, _| {},
    )
    .unwrap();
    records.sort_by_key(|r| r.problem_idx);
    let generated = samples(&out, "crucible_synthetic");
    assert_eq!(generated.len(), LIMIT);
    for s in &generated {
        let record = &records[s["doc_id"].as_u64().unwrap() as usize];
        assert_eq!(
            s["resps"][0][0].as_str().unwrap(),
            record.completion,
            "doc {}",
            s["doc_id"]
        );
    }
    let harness = report
        .scores
        .iter()
        .find(|s| s.metric == "pass@1")
        .unwrap()
        .value;
    let exact = results["results"]["crucible_synthetic"]["exact_match,boxed"]
        .as_f64()
        .unwrap();
    assert!(
        harness > 0.0,
        "the shipped model solves some synthetic problems"
    );
    assert!(
        (exact - harness).abs() < 1e-9,
        "lm-eval {exact} vs Crucible's harness {harness}"
    );
}
