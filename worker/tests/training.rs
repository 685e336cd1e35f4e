//! Training in candle: the differentiable forward equals the inference forward, AdamW lowers the
//! loss, checkpoints resume bit-identically, the MTP objective trains the MTP layer, and a run
//! exports a model the inference stack loads and generates with.

mod common;

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use crucible_gpu::engine::{GenerationRequest, generate};
use crucible_gpu::model::{LoadOptions, MimoModel, PackedLayout};
use crucible_gpu::tokenizer::{ChatMessage, Tokenizer};
use crucible_types::sampling::SamplingParams;
use crucible_worker::data::vocab::{train_synthetic_tokenizer, write_tokenizer_files};
use crucible_worker::train::params::Parameters;
use crucible_worker::train::{
    AdamWConfig, Architecture, DataSource, MemorySink, ModelInit, Schedule, TrainConfig, TrainKind,
    Trainer, run,
};

/// A fresh scratch folder under the target dir.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("crucible-train-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A small tokenizer trained on the synthetic corpus, written to `dir`.
fn tokenizer_in(dir: &Path) {
    let tok = train_synthetic_tokenizer(1, 400, 300).unwrap();
    write_tokenizer_files(&tok, dir).unwrap();
}

fn tiny_config(out: &Path, tokenizer_dir: &Path, steps: u64) -> TrainConfig {
    TrainConfig {
        kind: TrainKind::Pretrain,
        init: ModelInit::Scratch {
            architecture: Architecture {
                hidden_size: 32,
                intermediate_size: 64,
                num_hidden_layers: 1,
                num_attention_heads: 2,
                num_key_value_heads: 1,
                max_position_embeddings: 128,
                rope_theta: 10_000.0,
                num_nextn_predict_layers: 1,
            },
            tokenizer_dir: tokenizer_dir.to_path_buf(),
        },
        data: DataSource::Synthetic {
            seed: 5,
            max_steps: 2,
            max_digits: 2,
        },
        out_dir: out.to_path_buf(),
        seq_len: 64,
        micro_batch: 2,
        grad_accum: 2,
        steps,
        optimizer: AdamWConfig {
            lr: 1e-2,
            ..AdamWConfig::default()
        },
        schedule: Schedule::Cosine {
            warmup: 2,
            min_lr_ratio: 0.1,
        },
        grad_clip: 1.0,
        mtp_weight: None,
        seed: 3,
        checkpoint_every: 0,
    }
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar()
        .unwrap()
}

#[test]
fn training_forward_matches_the_inference_forward() {
    let dir = common::fixture_dir();
    let reference = common::tiny_model();
    let trainable = Parameters::load(&dir, &Device::Cpu)
        .unwrap()
        .model()
        .unwrap();
    let ids: Vec<u32> = (5..25).collect();
    let n = ids.len();
    let input = Tensor::from_slice(&ids, (1, n), &Device::Cpu).unwrap();
    let mut cache = reference.new_cache(vec![0], n);
    let hidden_ref = reference.forward_hidden(&input, &mut cache).unwrap();
    let next = Tensor::from_slice(&[&ids[1..], &[0]].concat(), (1, n), &Device::Cpu).unwrap();
    let mut mtp_cache = reference.new_mtp_cache(vec![0], n);
    let mtp_ref = reference
        .mtp_logits(0, &hidden_ref, &next, &mut mtp_cache)
        .unwrap();

    // The same sequence packed after another document must give the same numbers.
    let mut packed = vec![7u32, 8, 9];
    packed.extend(&ids);
    let mut docs = vec![0u32; 3];
    docs.extend(vec![1u32; n]);
    let layout = PackedLayout::new(1, n + 3, docs).unwrap();
    let tokens = Tensor::from_slice(&packed, (1, n + 3), &Device::Cpu).unwrap();
    let hidden = trainable.forward_packed(&tokens, &layout).unwrap();
    let mut next_packed = packed[1..].to_vec();
    next_packed.push(0);
    let next_packed = Tensor::from_slice(&next_packed, (1, n + 3), &Device::Cpu).unwrap();
    let mtp = trainable
        .mtp_logits_packed(0, &hidden, &next_packed, &layout)
        .unwrap();
    let logits = trainable.logits(&hidden).unwrap().narrow(1, 3, n).unwrap();
    let logits_ref = reference.logits(&hidden_ref).unwrap();
    assert!(max_abs_diff(&logits, &logits_ref) < 1e-4);
    // The last column's "next token" differs (filler vs the next document), so compare the rest.
    let mtp = mtp.narrow(1, 3, n - 1).unwrap();
    let mtp_ref = mtp_ref.narrow(1, 0, n - 1).unwrap();
    assert!(max_abs_diff(&mtp, &mtp_ref) < 1e-4);
}

#[test]
fn one_optimizer_step_lowers_the_loss_on_a_fixed_batch() {
    let root = scratch("one-step");
    tokenizer_in(&root.join("tok"));
    let config = tiny_config(&root.join("run"), &root.join("tok"), 10);
    let mut trainer = Trainer::new(config, &Device::Cpu).unwrap();
    let blocks = trainer.next_blocks().unwrap();
    let before = trainer.loss_on(&blocks).unwrap();
    let report = trainer.step_on(&blocks).unwrap();
    assert_eq!(
        report.loss, before,
        "the step reports the loss it trained on"
    );
    assert!(report.grad_norm > 0.0);
    let after = trainer.loss_on(&blocks).unwrap();
    assert!(after < before - 0.01, "loss {before} -> {after}");
}

#[test]
fn resumed_run_continues_bit_identically() {
    let root = scratch("resume");
    tokenizer_in(&root.join("tok"));
    let straight = tiny_config(&root.join("straight"), &root.join("tok"), 6);
    let resumed = tiny_config(&root.join("resumed"), &root.join("tok"), 6);

    let mut a = Trainer::new(straight, &Device::Cpu).unwrap();
    let reports_a: Vec<_> = (0..6).map(|_| a.step().unwrap()).collect();

    let mut b = Trainer::new(resumed.clone(), &Device::Cpu).unwrap();
    for _ in 0..3 {
        b.step().unwrap();
    }
    b.save_checkpoint().unwrap();
    // Steps taken after the save are lost with the process.
    b.step().unwrap();
    drop(b);
    let mut b = Trainer::new(resumed, &Device::Cpu).unwrap();
    assert_eq!(b.step_count(), 3);
    let reports_b: Vec<_> = (0..3).map(|_| b.step().unwrap()).collect();

    for (x, y) in reports_a[3..].iter().zip(&reports_b) {
        assert_eq!(x.loss.to_bits(), y.loss.to_bits(), "step {}", x.step);
        assert_eq!(x.grad_norm.to_bits(), y.grad_norm.to_bits());
        assert_eq!((x.step, x.lr, x.tokens), (y.step, y.lr, y.tokens));
    }
    for ((name, va), (_, vb)) in a.params().iter().zip(b.params().iter()) {
        let bits = |t: &Tensor| -> Vec<u32> {
            t.flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
                .iter()
                .map(|f| f.to_bits())
                .collect()
        };
        assert_eq!(bits(va.as_tensor()), bits(vb.as_tensor()), "{name}");
    }
}

#[test]
fn mtp_loss_trains_the_mtp_layer() {
    let root = scratch("mtp");
    tokenizer_in(&root.join("tok"));
    let config = tiny_config(&root.join("run"), &root.join("tok"), 40);
    let vocab = Tokenizer::load(&root.join("tok")).unwrap().vocab_size();
    let mut trainer = Trainer::new(config, &Device::Cpu).unwrap();
    let first = trainer.step().unwrap();
    let mut last = first.clone();
    for _ in 1..40 {
        last = trainer.step().unwrap();
    }
    let chance = 1.0 / vocab as f64;
    assert!(first.mtp_accuracy < 0.1, "{first:?}");
    assert!(
        last.mtp_accuracy > 0.25 && last.mtp_accuracy > 50.0 * chance,
        "MTP accuracy {} -> {} (chance {chance})",
        first.mtp_accuracy,
        last.mtp_accuracy
    );
    assert!(last.mtp_loss < first.mtp_loss - 1.0);
}

#[test]
fn a_run_exports_a_model_that_loads_and_generates() {
    let root = scratch("export");
    tokenizer_in(&root.join("tok"));
    let mut config = tiny_config(&root.join("run"), &root.join("tok"), 3);
    config.kind = TrainKind::Sft;
    let mut sink = MemorySink::default();
    let outcome = run(&config, &mut sink, &|_, _| {}).unwrap();
    assert_eq!(outcome.steps, 3);
    assert_eq!(sink.series("loss").len(), 3);
    assert_eq!(sink.series("mtp_loss").len(), 3);
    let model = MimoModel::load(&outcome.model_dir, &LoadOptions::default()).unwrap();
    assert_eq!(model.num_mtp_layers(), 1);
    let tok = Tokenizer::load(&outcome.model_dir).unwrap();
    let prompt = tok
        .apply_chat_template(
            &[ChatMessage::user(
                "Start with 3. Add 4. What is the result?",
            )],
            true,
        )
        .unwrap();
    assert!(prompt.starts_with("<|im_start|>user\n"));
    let request = GenerationRequest {
        prompt_ids: tok.encode(&prompt, false).unwrap(),
        params: SamplingParams {
            temperature: 0.0,
            max_new_tokens: 8,
            ..SamplingParams::default()
        },
    };
    let out = generate(&model, &tok, &[request], |_, _| {}).unwrap();
    assert!(!out[0].token_ids.is_empty());
    // Running again finds the finished checkpoint and does nothing more.
    let again = run(&config, &mut MemorySink::default(), &|_, _| {}).unwrap();
    assert_eq!((again.steps, again.last), (3, None));
}

#[test]
fn sft_documents_train_on_the_response_only_and_resume_from_a_cursor() {
    use crucible_worker::data::stream::{DocumentFormat, DocumentStream};
    let root = scratch("stream");
    tokenizer_in(&root);
    let tok = Tokenizer::load(&root).unwrap();
    let mut stream = DocumentStream::new(
        Tokenizer::load(&root).unwrap(),
        DocumentFormat::Sft,
        9,
        3,
        2,
    )
    .unwrap();
    let doc = stream.next_document().unwrap();
    let first_target = doc.targets.iter().position(|t| *t).unwrap();
    assert!(doc.targets[first_target..].iter().all(|t| *t));
    let prompt = tok.decode(&doc.tokens[..first_target]).unwrap();
    let response = tok.decode(&doc.tokens[first_target..]).unwrap();
    assert!(
        prompt.starts_with("user\n") && prompt.ends_with("assistant\n"),
        "{prompt:?}"
    );
    assert!(response.contains("The answer is \\boxed{"), "{response:?}");
    let im_end = tok.token_to_id("<|im_end|>").unwrap();
    assert_eq!(doc.tokens.last(), Some(&im_end));

    // A batch leaves the stream at the first document it did not use; seeking there replays it.
    let cursor = stream.cursor();
    let batch = stream.next_batch(2, 96).unwrap();
    let after = stream.cursor();
    let again = stream.next_batch(1, 96).unwrap();
    stream.seek(after);
    assert_eq!(stream.next_batch(1, 96).unwrap(), again);
    stream.seek(cursor);
    assert_eq!(stream.next_batch(2, 96).unwrap(), batch);
}
