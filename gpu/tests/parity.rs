//! Parity with the reference implementation (transformers + the report's MTP code in torch),
//! through the committed fixture written by `tools/make_reference.py`.

mod common;

use common::*;

const F32_TOLERANCE: f32 = 1e-4;

#[test]
fn prompt_logits_match_transformers() {
    let model = tiny_model();
    let reference = reference_json();
    let tensors = reference_tensors();
    let n_prompts = reference["prompts"].as_array().unwrap().len();
    assert!(n_prompts >= 3);
    for n in 0..n_prompts {
        let ids = prompt_ids(&reference, n);
        let mut cache = model.new_cache(vec![0], ids.len());
        let logits = model
            .forward(&row(&ids), &mut cache)
            .unwrap()
            .squeeze(0)
            .unwrap();
        let diff = max_abs_diff(&logits, &tensors[&format!("prompt.{n}.logits")]);
        assert!(diff < F32_TOLERANCE, "prompt {n}: max |Δlogit| = {diff}");
    }
}

#[test]
fn mtp_draft_logits_match_the_reports_code() {
    let model = tiny_model();
    assert_eq!(model.num_mtp_layers(), 1);
    let reference = reference_json();
    let tensors = reference_tensors();
    for n in 0..reference["prompts"].as_array().unwrap().len() {
        let ids = prompt_ids(&reference, n);
        let Some(expected) = tensors.get(&format!("prompt.{n}.mtp_logits")) else {
            continue;
        };
        let mut cache = model.new_cache(vec![0], ids.len());
        let hidden = model.forward_hidden(&row(&ids), &mut cache).unwrap();
        let t = ids.len() - 1;
        let mut mtp_cache = model.new_mtp_cache(vec![0], t);
        let draft = model
            .mtp_logits(
                0,
                &hidden.narrow(1, 0, t).unwrap(),
                &row(&ids[1..]),
                &mut mtp_cache,
            )
            .unwrap()
            .squeeze(0)
            .unwrap();
        let diff = max_abs_diff(&draft, expected);
        assert!(
            diff < F32_TOLERANCE,
            "prompt {n}: max |Δdraft logit| = {diff}"
        );
    }
}
