//! The decode loop: prefill a batch of prompts (left-padded), then sample one token per row per
//! step until every row has stopped, streaming each row's text as it becomes final.

use candle_core::Tensor;
use crucible_types::sampling::{FinishReason, SamplingParams};

use super::detokenizer::{StopStringFilter, StreamDecoder};
use super::sampler::Sampler;
use crate::model::{MimoModel, ModelError};
use crate::tokenizer::{Tokenizer, TokenizerError};

/// Token id fed at padding columns and for rows that already stopped; its value never matters
/// because the mask hides padding and stopped rows' outputs are discarded.
const FILLER_TOKEN: u32 = 0;

/// Why generation could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GenerateError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    /// A request was refused before running (empty prompt, bad sampling parameters …).
    #[error("request {index}: {message}")]
    InvalidRequest { index: usize, message: String },
}

impl From<candle_core::Error> for GenerateError {
    fn from(e: candle_core::Error) -> Self {
        Self::Model(ModelError::Candle(e))
    }
}

/// One prompt to continue and how to sample it.
#[derive(Debug, Clone)]
pub struct GenerationRequest {
    pub prompt_ids: Vec<u32>,
    pub params: SamplingParams,
}

/// What a request produced.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratedSequence {
    /// Generated ids, including a final stop token when one ended the sequence.
    pub token_ids: Vec<u32>,
    /// Log-probability of each generated id (see [`super::sampler::Sampled::logprob`]).
    pub logprobs: Vec<f32>,
    /// Text of the generated ids, cut right before a stop string when one occurred.
    pub text: String,
    pub finish_reason: FinishReason,
}

/// Per-row state of the loop.
struct Row<'t> {
    sampler: Sampler,
    stop_ids: Vec<u32>,
    max_new: usize,
    decoder: StreamDecoder,
    stops: StopStringFilter,
    tokenizer: &'t Tokenizer,
    out: GeneratedSequence,
    done: bool,
}

impl Row<'_> {
    /// Records `token`, streams its text, and decides whether the row is finished.
    fn accept(
        &mut self,
        token: u32,
        logprob: f32,
        index: usize,
        observer: &mut dyn GenerationObserver,
    ) -> Result<(), TokenizerError> {
        self.out.token_ids.push(token);
        self.out.logprobs.push(logprob);
        if self.stop_ids.contains(&token) {
            self.finish(FinishReason::StopToken, index, observer)?;
            return Ok(());
        }
        let piece = self.decoder.push(self.tokenizer, token)?;
        let released = self.stops.push(&piece);
        self.emit(&released, index, observer);
        if self.stops.stopped() {
            self.done = true;
            self.out.finish_reason = FinishReason::StopString;
        } else if self.out.token_ids.len() >= self.max_new {
            self.finish(FinishReason::Length, index, observer)?;
        }
        Ok(())
    }

    /// Flushes held text and marks the row finished.
    fn finish(
        &mut self,
        reason: FinishReason,
        index: usize,
        observer: &mut dyn GenerationObserver,
    ) -> Result<(), TokenizerError> {
        let tail = self.decoder.finish(self.tokenizer)?;
        let mut released = self.stops.push(&tail);
        if self.stops.stopped() {
            self.out.finish_reason = FinishReason::StopString;
        } else {
            released.push_str(&self.stops.finish());
            self.out.finish_reason = reason;
        }
        self.emit(&released, index, observer);
        self.done = true;
        Ok(())
    }

    fn emit(&mut self, text: &str, index: usize, observer: &mut dyn GenerationObserver) {
        if !text.is_empty() {
            self.out.text.push_str(text);
            observer.on_text(index, text);
        }
    }
}

/// Follows a batch as it decodes. Why: RL scores each rollout the moment it finishes (the verifier
/// pool works while the other rows still decode) and stops the batch early once enough groups are
/// complete; evals and the CLI only stream text.
pub trait GenerationObserver {
    /// Text of row `row` that became final (never a partial character or a stop string's start).
    fn on_text(&mut self, _row: usize, _text: &str) {}
    /// Row `row` finished; `sequence` is its final output.
    fn on_finished(&mut self, _row: usize, _sequence: &GeneratedSequence) {}
    /// Asked before every decode step; `false` ends the batch, and the unfinished rows come back
    /// with [`FinishReason::Aborted`].
    fn keep_going(&mut self) -> bool {
        true
    }
}

/// Adapts a text callback to [`GenerationObserver`].
struct TextOnly<F>(F);

impl<F: FnMut(usize, &str)> GenerationObserver for TextOnly<F> {
    fn on_text(&mut self, row: usize, text: &str) {
        (self.0)(row, text);
    }
}

/// Generates a continuation for every request in one batch.
///
/// `on_text(row, piece)` receives each row's text as soon as it is final (never a partial UTF-8
/// character, never the beginning of a stop string). Stop tokens are the model's `eos_token_id`s
/// and the tokenizer's `eos_token` (unless `ignore_eos`) plus each request's `stop_token_ids`.
pub fn generate(
    model: &MimoModel,
    tokenizer: &Tokenizer,
    requests: &[GenerationRequest],
    on_text: impl FnMut(usize, &str),
) -> Result<Vec<GeneratedSequence>, GenerateError> {
    generate_observed(model, tokenizer, requests, &mut TextOnly(on_text))
}

/// [`generate`] with an observer that also hears when each row finishes and can stop the batch.
pub fn generate_observed(
    model: &MimoModel,
    tokenizer: &Tokenizer,
    requests: &[GenerationRequest],
    observer: &mut dyn GenerationObserver,
) -> Result<Vec<GeneratedSequence>, GenerateError> {
    for (index, r) in requests.iter().enumerate() {
        let invalid = |message: String| GenerateError::InvalidRequest { index, message };
        r.params.validate().map_err(invalid)?;
        if r.prompt_ids.is_empty() {
            return Err(invalid("empty prompt".into()));
        }
        if let Some(bad) = r
            .prompt_ids
            .iter()
            .find(|&&id| id as usize >= model.config().vocab_size)
        {
            return Err(invalid(format!("token id {bad} is outside the vocabulary")));
        }
    }
    if requests.is_empty() {
        return Ok(Vec::new());
    }
    let mut model_eos = model.config().eos_token_ids.clone();
    model_eos.extend(tokenizer.eos_token_id());

    let mut rows: Vec<Row> = requests
        .iter()
        .map(|r| {
            let mut stop_ids = r.params.stop_token_ids.clone();
            if !r.params.ignore_eos {
                stop_ids.extend(&model_eos);
            }
            Row {
                sampler: Sampler::new(r.params.clone()),
                stop_ids,
                max_new: r.params.max_new_tokens as usize,
                decoder: StreamDecoder::default(),
                stops: StopStringFilter::new(r.params.stop.clone()),
                tokenizer,
                out: GeneratedSequence {
                    token_ids: Vec::new(),
                    logprobs: Vec::new(),
                    text: String::new(),
                    finish_reason: FinishReason::Length,
                },
                done: r.params.max_new_tokens == 0,
            }
        })
        .collect();

    let longest = requests
        .iter()
        .map(|r| r.prompt_ids.len())
        .max()
        .unwrap_or(0);
    let most_new = requests
        .iter()
        .map(|r| r.params.max_new_tokens as usize)
        .max()
        .unwrap_or(0);
    let pads: Vec<usize> = requests
        .iter()
        .map(|r| longest - r.prompt_ids.len())
        .collect();
    let mut prompt = Vec::with_capacity(requests.len() * longest);
    for (r, &pad) in requests.iter().zip(&pads) {
        prompt.extend(std::iter::repeat_n(FILLER_TOKEN, pad));
        prompt.extend(&r.prompt_ids);
    }
    let device = model.device();
    let mut cache = model.new_cache(pads, longest + most_new);
    let mut input = Tensor::from_vec(prompt, (requests.len(), longest), device)?;

    for (index, row) in rows.iter().enumerate().filter(|(_, r)| r.done) {
        observer.on_finished(index, &row.out);
    }
    while rows.iter().any(|r| !r.done) {
        if !observer.keep_going() {
            for row in rows.iter_mut().filter(|r| !r.done) {
                row.out.finish_reason = FinishReason::Aborted;
                row.done = true;
            }
            break;
        }
        let logits = model.forward_last(&input, &mut cache)?.to_vec2::<f32>()?;
        let mut next = Vec::with_capacity(rows.len());
        for (index, (row, logits)) in rows.iter_mut().zip(&logits).enumerate() {
            if row.done {
                next.push(FILLER_TOKEN);
                continue;
            }
            let s = row.sampler.sample(logits);
            row.accept(s.token, s.logprob, index, observer)?;
            if row.done {
                observer.on_finished(index, &row.out);
            }
            next.push(s.token);
        }
        input = Tensor::from_vec(next, (rows.len(), 1), device)?;
    }
    Ok(rows.into_iter().map(|r| r.out).collect())
}
