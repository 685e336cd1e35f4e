//! The decode loop: prefill a batch of prompts (left-padded), then sample one token per row per
//! step until every row has stopped, streaming each row's text as it becomes final.

use candle_core::Tensor;
use crucible_types::sampling::{FinishReason, SamplingParams};

use super::detokenizer::{StopStringFilter, StreamDecoder};
use super::sampler::Sampler;
use crate::model::kv_cache::KvCache;
use crate::model::{MimoModel, ModelError};
use crate::tokenizer::{Tokenizer, TokenizerError};

/// Token id fed at padding columns and for rows that already stopped; its value never matters
/// because the mask hides padding and stopped rows' outputs are discarded.
pub(super) const FILLER_TOKEN: u32 = 0;

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

/// Per-row state of the loop (shared with the speculative driver).
pub(super) struct Row<'t> {
    pub(super) sampler: Sampler,
    stop_ids: Vec<u32>,
    max_new: usize,
    decoder: StreamDecoder,
    stops: StopStringFilter,
    tokenizer: &'t Tokenizer,
    pub(super) out: GeneratedSequence,
    pub(super) done: bool,
}

impl<'t> Row<'t> {
    /// The state of `request` before its first token; `model_eos` are the checkpoint's stop ids.
    pub(super) fn new(
        request: &GenerationRequest,
        model_eos: &[u32],
        tokenizer: &'t Tokenizer,
    ) -> Self {
        let mut stop_ids = request.params.stop_token_ids.clone();
        if !request.params.ignore_eos {
            stop_ids.extend(model_eos);
        }
        Row {
            sampler: Sampler::new(request.params.clone()),
            stop_ids,
            max_new: request.params.max_new_tokens as usize,
            decoder: StreamDecoder::default(),
            stops: StopStringFilter::new(request.params.stop.clone()),
            tokenizer,
            out: GeneratedSequence {
                token_ids: Vec::new(),
                logprobs: Vec::new(),
                text: String::new(),
                finish_reason: FinishReason::Length,
            },
            done: request.params.max_new_tokens == 0,
        }
    }

    /// Samples the next token from `logits`, records it, and tells the observer when the row
    /// finishes. Returns the token.
    pub(super) fn step(
        &mut self,
        logits: &[f32],
        index: usize,
        observer: &mut dyn GenerationObserver,
    ) -> Result<u32, TokenizerError> {
        let s = self.sampler.sample(logits);
        self.push(s.token, s.logprob, index, observer)?;
        Ok(s.token)
    }

    /// Records a token chosen elsewhere (a verified draft) and tells the observer when the row
    /// finishes.
    pub(super) fn push(
        &mut self,
        token: u32,
        logprob: f32,
        index: usize,
        observer: &mut dyn GenerationObserver,
    ) -> Result<(), TokenizerError> {
        self.accept(token, logprob, index, observer)?;
        if self.done {
            observer.on_finished(index, &self.out);
        }
        Ok(())
    }

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
    /// Asked by [`generate_continuous`] before waiting request `request` takes a freed row (the
    /// first `max_rows` start unasked); `false` leaves the row free for this step, and it is asked
    /// again at the next. Why: RL launches another group only while the groups in flight may not
    /// fill the batch, instead of decoding samples it would abort. Requests keep their order (a
    /// refused one is not skipped); a refusal while no row decodes ends the batch, and the
    /// waiting requests come back [`FinishReason::Aborted`].
    fn admit(&mut self, _request: usize) -> bool {
        true
    }
}

/// No observer: generation without streaming or early stop.
impl GenerationObserver for () {}

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
    validate(model, requests)?;
    if requests.is_empty() {
        return Ok(Vec::new());
    }
    let model_eos = model_stop_ids(model, tokenizer);
    let mut rows: Vec<Row> = requests
        .iter()
        .map(|r| Row::new(r, &model_eos, tokenizer))
        .collect();
    let mut cache = prefill_cache(model, requests);
    let mut input = left_padded_prompts(model, requests)?;

    for (index, row) in rows.iter().enumerate().filter(|(_, r)| r.done) {
        observer.on_finished(index, &row.out);
    }
    while rows.iter().any(|r| !r.done) {
        if !observer.keep_going() {
            abort(rows.iter_mut());
            break;
        }
        let logits = model.forward_last(&input, &mut cache)?.to_vec2::<f32>()?;
        let mut next = Vec::with_capacity(rows.len());
        for (index, (row, logits)) in rows.iter_mut().zip(&logits).enumerate() {
            if row.done {
                next.push(FILLER_TOKEN);
                continue;
            }
            next.push(row.step(logits, index, observer)?);
        }
        input = Tensor::from_vec(next, (rows.len(), 1), model.device())?;
    }
    Ok(rows.into_iter().map(|r| r.out).collect())
}

/// One row of a continuous batch: the request it serves and the prompt tokens still to feed.
struct Slot {
    request: usize,
    /// Prompt tokens not yet fed (a row that took over a finished one prefills token by token).
    pending: std::collections::VecDeque<u32>,
    /// The token fed at the next step once the prompt is in.
    last: u32,
}

/// Generates every request with at most `max_rows` sequences decoding at once: when a row
/// finishes, the next waiting request takes its place at the following step (continuous
/// batching), instead of the batch idling until its longest row ends.
///
/// Outputs equal [`generate_observed`]'s for the same requests (each row samples with its own
/// seed; a restarted row attends only to its own columns). The first `max_rows` requests are
/// prefilled together; later ones are prefilled as rows free up (see [`refill`]), each once the
/// observer admits it ([`GenerationObserver::admit`]). The observer hears of row `i` as request
/// `i`; when it stops the batch, running and waiting requests come back [`FinishReason::Aborted`].
pub fn generate_continuous(
    model: &MimoModel,
    tokenizer: &Tokenizer,
    requests: &[GenerationRequest],
    max_rows: usize,
    observer: &mut dyn GenerationObserver,
) -> Result<Vec<GeneratedSequence>, GenerateError> {
    validate(model, requests)?;
    let model_eos = model_stop_ids(model, tokenizer);
    let mut rows: Vec<Row> = requests
        .iter()
        .map(|r| Row::new(r, &model_eos, tokenizer))
        .collect();
    for (index, row) in rows.iter().enumerate().filter(|(_, r)| r.done) {
        observer.on_finished(index, &row.out);
    }
    let mut waiting: std::collections::VecDeque<usize> =
        (0..requests.len()).filter(|&i| !rows[i].done).collect();
    let width = max_rows.max(1).min(waiting.len());
    if width == 0 {
        return Ok(rows.into_iter().map(|r| r.out).collect());
    }
    let first: Vec<usize> = waiting.drain(..width).collect();
    let first_requests: Vec<GenerationRequest> =
        first.iter().map(|&i| requests[i].clone()).collect();
    let mut cache = prefill_cache(model, &first_requests);
    let mut input = left_padded_prompts(model, &first_requests)?;
    let mut slots: Vec<Option<Slot>> = first
        .into_iter()
        .map(|request| {
            Some(Slot {
                request,
                pending: Default::default(),
                last: FILLER_TOKEN,
            })
        })
        .collect();

    while slots.iter().any(Option::is_some) {
        if !observer.keep_going() {
            // The unfinished rows are exactly the running and the waiting requests.
            abort(rows.iter_mut());
            break;
        }
        let logits = model.forward_last(&input, &mut cache)?.to_vec2::<f32>()?;
        for (slot, logits) in slots.iter_mut().zip(&logits) {
            let Some(active) = slot else { continue };
            active.pending.pop_front();
            if !active.pending.is_empty() {
                continue; // still feeding the prompt
            }
            let row = &mut rows[active.request];
            active.last = row.step(logits, active.request, observer)?;
            if row.done {
                *slot = None;
            }
        }
        refill(
            model,
            requests,
            &mut rows,
            &mut slots,
            &mut waiting,
            &mut cache,
            observer,
        )?;
        cache.compact()?;
        let next: Vec<u32> = slots
            .iter()
            .map(|s| match s {
                Some(s) => s.pending.front().copied().unwrap_or(s.last),
                None => FILLER_TOKEN,
            })
            .collect();
        input = Tensor::from_vec(next, (slots.len(), 1), model.device())?;
    }
    // Requests still waiting when an admission was refused with every row free.
    abort(rows.iter_mut());
    Ok(rows.into_iter().map(|r| r.out).collect())
}

/// Gives every free row of a continuous batch the next waiting request. The new prompts are
/// prefilled together in a cache of their own and spliced in as the rows' last columns, and
/// their first tokens sampled, so they decode from the next step on; a prompt longer than the
/// batch's columns so far is fed one token per step instead. A row that ends on its first token
/// is refilled again. Rows left free idle, attending only to themselves.
fn refill(
    model: &MimoModel,
    requests: &[GenerationRequest],
    rows: &mut [Row],
    slots: &mut [Option<Slot>],
    waiting: &mut std::collections::VecDeque<usize>,
    cache: &mut KvCache,
    observer: &mut dyn GenerationObserver,
) -> Result<(), GenerateError> {
    loop {
        // Prefill in groups: one forward for a few new prompts costs about what one costs.
        let free = slots.iter().filter(|s| s.is_none()).count();
        let busy = slots.len() - free;
        if free == 0 || (busy > 0 && free < (slots.len() / 8).max(1) && waiting.len() >= free) {
            for (r, _) in slots.iter().enumerate().filter(|(_, s)| s.is_none()) {
                cache.restart_row(r);
            }
            return Ok(());
        }
        let mut starts = Vec::new();
        let mut refused = false;
        for (r, slot) in slots.iter_mut().enumerate().filter(|(_, s)| s.is_none()) {
            cache.restart_row(r);
            refused = refused || waiting.front().is_some_and(|&next| !observer.admit(next));
            if refused {
                continue;
            }
            let Some(request) = waiting.pop_front() else {
                continue;
            };
            if requests[request].prompt_ids.len() <= cache.len() {
                starts.push((r, request));
            } else {
                *slot = Some(Slot {
                    request,
                    pending: requests[request].prompt_ids.iter().copied().collect(),
                    last: FILLER_TOKEN,
                });
            }
        }
        if starts.is_empty() {
            return Ok(());
        }
        let batch: Vec<GenerationRequest> =
            starts.iter().map(|&(_, q)| requests[q].clone()).collect();
        let mut fresh = prefill_cache(model, &batch);
        let input = left_padded_prompts(model, &batch)?;
        let logits = model.forward_last(&input, &mut fresh)?.to_vec2::<f32>()?;
        for (i, (&(r, request), logits)) in starts.iter().zip(&logits).enumerate() {
            cache.splice_row(r, &fresh, i, requests[request].prompt_ids.len())?;
            let row = &mut rows[request];
            let last = row.step(logits, request, observer)?;
            if !row.done {
                slots[r] = Some(Slot {
                    request,
                    pending: Default::default(),
                    last,
                });
            }
        }
    }
}

/// Refuses requests the model cannot run, naming the first bad one.
pub(super) fn validate(
    model: &MimoModel,
    requests: &[GenerationRequest],
) -> Result<(), GenerateError> {
    for (index, r) in requests.iter().enumerate() {
        let invalid = |message: String| GenerateError::InvalidRequest { index, message };
        r.params.validate().map_err(|e| invalid(e.to_string()))?;
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
    Ok(())
}

/// The checkpoint's stop tokens: config.json's `eos_token_id`s and the tokenizer's `eos_token`.
pub(super) fn model_stop_ids(model: &MimoModel, tokenizer: &Tokenizer) -> Vec<u32> {
    let mut ids = model.config().eos_token_ids.clone();
    ids.extend(tokenizer.eos_token_id());
    ids
}

/// A cache for `requests` left-padded to the longest prompt, with room for the longest budget.
pub(super) fn prefill_cache(model: &MimoModel, requests: &[GenerationRequest]) -> KvCache {
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
    let pads = requests
        .iter()
        .map(|r| longest - r.prompt_ids.len())
        .collect();
    model.new_cache(pads, longest + most_new)
}

/// The prompts of `requests` as one `(batch, longest)` tensor, left-padded with filler.
pub(super) fn left_padded_prompts(
    model: &MimoModel,
    requests: &[GenerationRequest],
) -> Result<Tensor, GenerateError> {
    let longest = requests
        .iter()
        .map(|r| r.prompt_ids.len())
        .max()
        .unwrap_or(0);
    let mut prompt = Vec::with_capacity(requests.len() * longest);
    for r in requests {
        prompt.extend(std::iter::repeat_n(
            FILLER_TOKEN,
            longest - r.prompt_ids.len(),
        ));
        prompt.extend(&r.prompt_ids);
    }
    Ok(Tensor::from_vec(
        prompt,
        (requests.len(), longest),
        model.device(),
    )?)
}

/// Marks every unfinished row aborted (the observer stopped the batch).
pub(super) fn abort<'a, 't: 'a>(rows: impl Iterator<Item = &'a mut Row<'t>>) {
    for row in rows.filter(|r| !r.done) {
        row.out.finish_reason = FinishReason::Aborted;
        row.done = true;
    }
}
