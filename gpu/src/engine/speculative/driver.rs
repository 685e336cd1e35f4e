//! The speculative decode loop over a lockstep batch: prefill, then [`Drafting::step`] until
//! every row has stopped.

use candle_core::DType;
use crucible_types::sampling::Speculative;

use super::metrics::SpeculativeMetrics;
use super::proposer::MtpProposer;
use super::step::Drafting;
use crate::engine::generate::{
    FILLER_TOKEN, GenerateError, GeneratedSequence, GenerationObserver, GenerationRequest, Row,
    abort, generate_observed, left_padded_prompts, model_stop_ids, prefill_cache, validate,
};
use crate::model::kv_cache::KvCache;
use crate::model::{MimoModel, ModelError};
use crate::tokenizer::Tokenizer;

/// Draft tokens per step this engine can propose: the report chains one MTP layer per draft
/// token, and chaining several layers is not built yet.
const MAX_CHAINED_DRAFTS: usize = 1;

/// Sequences and drafting counters of one speculative generation.
#[derive(Debug, Clone)]
pub struct SpeculativeOutput {
    /// One per request, as [`generate_observed`] returns them.
    pub sequences: Vec<GeneratedSequence>,
    pub metrics: SpeculativeMetrics,
}

/// [`generate_observed`] with MTP drafting per `speculative`: greedy rows come out token for
/// token as without drafting; sampled rows follow the same distribution (speculative sampling,
/// drafts sampled from the MTP distribution under the request's sampling parameters) and
/// reproduce for a seed. [`Speculative::Off`] decodes plainly.
pub fn generate_speculative(
    model: &MimoModel,
    tokenizer: &Tokenizer,
    requests: &[GenerationRequest],
    speculative: Speculative,
    observer: &mut dyn GenerationObserver,
) -> Result<SpeculativeOutput, GenerateError> {
    let k = speculative.draft_tokens();
    if k == 0 {
        return Ok(SpeculativeOutput {
            sequences: generate_observed(model, tokenizer, requests, observer)?,
            metrics: SpeculativeMetrics::default(),
        });
    }
    check_drafting(model, k)?;
    validate(model, requests)?;
    let mut batch = SpeculativeBatch::new(model, tokenizer, requests, k)?;
    if batch.prefill(observer)? {
        while batch.step(observer)? {}
    }
    Ok(SpeculativeOutput {
        sequences: batch.rows.into_iter().map(|r| r.out).collect(),
        metrics: batch.drafting.metrics,
    })
}

/// Refuses a draft length the checkpoint's MTP layers (or this engine) cannot serve.
pub(in crate::engine) fn check_drafting(model: &MimoModel, k: usize) -> Result<(), ModelError> {
    let layers = model.num_mtp_layers();
    if k > layers {
        return Err(ModelError::Invalid(format!(
            "speculative mtp:{k} needs {k} MTP layers; the model has {layers} loaded"
        )));
    }
    if k > MAX_CHAINED_DRAFTS {
        return Err(ModelError::Invalid(format!(
            "speculative mtp:{k}: chaining more than {MAX_CHAINED_DRAFTS} MTP layer is not implemented"
        )));
    }
    Ok(())
}

/// A lockstep batch decoding speculatively.
struct SpeculativeBatch<'m, 't> {
    model: &'m MimoModel,
    requests: &'m [GenerationRequest],
    rows: Vec<Row<'t>>,
    cache: KvCache,
    drafting: Drafting,
    /// Each row's newest token, fed at the next step.
    last: Vec<u32>,
}

impl<'m, 't> SpeculativeBatch<'m, 't> {
    fn new(
        model: &'m MimoModel,
        tokenizer: &'t Tokenizer,
        requests: &'m [GenerationRequest],
        k: usize,
    ) -> Result<Self, GenerateError> {
        let model_eos = model_stop_ids(model, tokenizer);
        let cache = prefill_cache(model, requests);
        let proposer = MtpProposer::new(model, cache.pads().to_vec(), cache_capacity(requests));
        Ok(Self {
            model,
            requests,
            rows: requests
                .iter()
                .map(|r| Row::new(r, &model_eos, tokenizer))
                .collect(),
            cache,
            drafting: Drafting::new(proposer, requests.len(), k),
            last: vec![FILLER_TOKEN; requests.len()],
        })
    }

    /// Runs the prompts, samples each row's first token and records the prompt columns for the
    /// proposer. Returns whether decoding goes on.
    fn prefill(&mut self, observer: &mut dyn GenerationObserver) -> Result<bool, GenerateError> {
        for (index, row) in self.rows.iter().enumerate().filter(|(_, r)| r.done) {
            observer.on_finished(index, &row.out);
        }
        if !self.rows.iter().any(|r| !r.done) {
            return Ok(false);
        }
        if !observer.keep_going() {
            abort(self.rows.iter_mut());
            return Ok(false);
        }
        let input = left_padded_prompts(self.model, self.requests)?;
        let hidden = self.model.forward_hidden(&input, &mut self.cache)?;
        let width = hidden.dim(1)?;
        let logits = self
            .model
            .logits(&hidden.narrow(1, width - 1, 1)?)?
            .squeeze(1)?
            .to_dtype(DType::F32)?
            .to_vec2::<f32>()?;
        let prompts = input.to_vec2::<u32>()?;
        let mut next = Vec::with_capacity(self.rows.len() * width);
        for (index, (row, logits)) in self.rows.iter_mut().zip(&logits).enumerate() {
            if !row.done {
                self.last[index] = row.step(logits, index, observer)?;
            }
            next.extend(&prompts[index][1..]);
            next.push(self.last[index]);
        }
        self.drafting
            .proposer
            .record(hidden, next, vec![width; self.rows.len()])?;
        Ok(true)
    }

    /// One decode step (drafting or not). Returns whether decoding goes on.
    fn step(&mut self, observer: &mut dyn GenerationObserver) -> Result<bool, GenerateError> {
        if !self.rows.iter().any(|r| !r.done) {
            return Ok(false);
        }
        if !observer.keep_going() {
            abort(self.rows.iter_mut());
            return Ok(false);
        }
        let mut rows: Vec<&mut Row<'t>> = self.rows.iter_mut().collect();
        self.drafting.step(
            self.model,
            &mut rows,
            &mut self.last,
            &mut self.cache,
            observer,
        )?;
        Ok(true)
    }
}

/// Room for the longest prompt and budget; both caches grow by doubling if holes need more.
fn cache_capacity(requests: &[GenerationRequest]) -> usize {
    requests
        .iter()
        .map(|r| r.prompt_ids.len() + r.params.max_new_tokens as usize)
        .max()
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use candle_core::Tensor;
    use crucible_types::sampling::SamplingParams;

    use super::*;
    use crate::model::LoadOptions;

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    /// After decoding with rejections, each row's main and MTP caches hold exactly what one
    /// forward pass over that row's accepted text alone produces (a row that finished early
    /// goes on with filler columns, which come after).
    #[test]
    fn caches_after_rejections_equal_those_of_plain_decoding() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/crucible-mimo-small");
        let model = MimoModel::load(&dir, &LoadOptions::default()).unwrap();
        let tokenizer = Tokenizer::load(&dir).unwrap();
        let prompts = ["Compute 3 + 4 * 2.", "Compute 12 - 5."].map(|q| {
            let chat = [crate::tokenizer::ChatMessage::user(q)];
            let text = tokenizer.apply_chat_template(&chat, true).unwrap();
            tokenizer.encode(&text, false).unwrap()
        });
        let requests: Vec<GenerationRequest> = prompts
            .iter()
            .map(|p| GenerationRequest {
                prompt_ids: p.clone(),
                params: SamplingParams {
                    ignore_eos: true,
                    ..SamplingParams::greedy(40)
                },
            })
            .collect();
        let mut batch = SpeculativeBatch::new(&model, &tokenizer, &requests, 1).unwrap();
        assert!(batch.prefill(&mut ()).unwrap());
        while batch.step(&mut ()).unwrap() {}
        let m = &batch.drafting.metrics;
        assert!(
            m.accepted_tokens() > 0 && m.accepted_tokens() < m.draft_tokens,
            "{m:?}"
        );
        batch.drafting.proposer.propose(&model).unwrap(); // let the MTP cache catch up

        for (row, prompt) in prompts.iter().enumerate() {
            let text: Vec<u32> = prompt
                .iter()
                .chain(&batch.rows[row].out.token_ids)
                .copied()
                .collect();
            let n = text.len() - 1; // the newest token is not fed yet
            let fed = Tensor::new(&text[..n], model.device())
                .unwrap()
                .unsqueeze(0)
                .unwrap();
            let mut plain = model.new_cache(vec![0], n);
            let hidden = model.forward_hidden(&fed, &mut plain).unwrap();
            let next = Tensor::new(&text[1..], model.device())
                .unwrap()
                .unsqueeze(0)
                .unwrap();
            let mut plain_mtp = model.new_mtp_cache(vec![0], n);
            model.mtp_logits(0, &hidden, &next, &mut plain_mtp).unwrap();

            let layers = (0..model.config().num_hidden_layers).map(|l| (&batch.cache, &plain, l));
            for (spec, plain, layer) in
                layers.chain([(batch.drafting.proposer.cache(), &plain_mtp, 0)])
            {
                let (k, v) = spec.row_kv(layer, row).unwrap();
                let (pk, pv) = plain.row_kv(layer, 0).unwrap();
                let (k, v) = (k.narrow(1, 0, n).unwrap(), v.narrow(1, 0, n).unwrap());
                assert!(
                    max_diff(&k, &pk) < 1e-4 && max_diff(&v, &pv) < 1e-4,
                    "row {row} layer {layer}"
                );
            }
        }
    }
}
