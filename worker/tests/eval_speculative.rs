//! The local generator with MTP drafting: greedy completions of the shipped model are the same
//! as without it, and the drafting counters are kept.

use std::path::PathBuf;

use crucible_gpu::model::{LoadOptions, MimoModel};
use crucible_gpu::tokenizer::Tokenizer;
use crucible_types::sampling::{SamplingParams, Speculative};
use crucible_worker::eval::{Generator, LocalGenerator, load_benchmark};

#[test]
fn greedy_eval_completions_are_unchanged_by_mtp_drafting() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/crucible-mimo-small");
    let model = MimoModel::load(&dir, &LoadOptions::default()).unwrap();
    let tokenizer = Tokenizer::load(&dir).unwrap();
    let bench = load_benchmark(crucible_types::SYNTHETIC, None, None).unwrap();
    let prompts: Vec<String> = bench
        .problems
        .iter()
        .step_by(97)
        .take(6)
        .map(|p| p.prompt.clone())
        .collect();
    let greedy = SamplingParams::greedy(96);
    let plain = LocalGenerator::new(&model, &tokenizer)
        .generate(&prompts, &greedy, 1)
        .unwrap();
    let mut drafting =
        LocalGenerator::new(&model, &tokenizer).with_speculative(Speculative::Mtp { k: 1 });
    let spec = drafting.generate(&prompts, &greedy, 1).unwrap();
    let texts = |c: &[Vec<crucible_worker::eval::Completion>]| {
        c.iter()
            .map(|s| (s[0].text.clone(), s[0].tokens, s[0].truncated))
            .collect::<Vec<_>>()
    };
    assert_eq!(texts(&plain), texts(&spec));
    let m = drafting.speculative_metrics();
    assert!(m.drafts > 0 && m.acceptance_rate() > 0.7, "{}", m.summary());
}
