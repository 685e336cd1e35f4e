//! The engine thread's loop: admit waiting requests into the batch, decode one step for every
//! row, send each row its token, and let finished or abandoned rows go.

use std::collections::VecDeque;
use std::sync::mpsc::{Receiver, TryRecvError};

use super::{EngineLoad, ServingEvent, Submission, TokenLogprob};
use crate::engine::GenerationObserver;
use crate::engine::generate::{
    GenerateError, GenerationRequest, Row, left_padded_prompts, model_stop_ids, prefill_cache,
};
use crate::engine::speculative::proposer::MtpProposer;
use crate::engine::speculative::step::Drafting;
use crate::model::MimoModel;
use crate::model::kv_cache::KvCache;
use crate::tokenizer::Tokenizer;
use candle_core::Tensor;

/// A request in the batch: its decoding state and where its events go.
struct Live<'t> {
    row: Row<'t>,
    submission: Submission,
    /// The token to feed at the next step.
    last: u32,
    /// The client went away (its receiver was dropped).
    gone: bool,
}

/// The text a row released while taking one token.
#[derive(Default)]
struct Released(String);

impl GenerationObserver for Released {
    fn on_text(&mut self, _row: usize, text: &str) {
        self.0.push_str(text);
    }
}

/// The text each row released during one speculative step.
struct ReleasedByRow(Vec<String>);

impl GenerationObserver for ReleasedByRow {
    fn on_text(&mut self, row: usize, text: &str) {
        self.0[row].push_str(text);
    }
}

impl Live<'_> {
    /// Samples this row's next token from `logits` and sends it (and the end, when it ends).
    fn take(&mut self, logits: &[f32]) -> Result<(), GenerateError> {
        let mut released = Released::default();
        let token = self.row.step(logits, 0, &mut released)?;
        self.last = token;
        self.emit(&[token], &[logits], released.0);
        Ok(())
    }

    /// Sends the tokens a step emitted (`logits[j]` is what token `j` was chosen from; the text
    /// they released rides on the last one), and the end when the row finished.
    fn emit<L: AsRef<[f32]>>(&mut self, tokens: &[u32], logits: &[L], mut text: String) {
        for (j, (&id, logits)) in tokens.iter().zip(logits).enumerate() {
            let logprob = self
                .submission
                .request
                .logprobs
                .map(|top| TokenLogprob::of(logits.as_ref(), id, top));
            let text = if j + 1 == tokens.len() {
                std::mem::take(&mut text)
            } else {
                String::new()
            };
            self.send(ServingEvent::Token { id, text, logprob });
        }
        if self.row.done {
            self.finish();
        }
    }

    fn finish(&mut self) {
        self.send(ServingEvent::Finished {
            reason: self.row.out.finish_reason,
        });
    }

    fn send(&mut self, event: ServingEvent) {
        if self.submission.events.send(event).is_err() {
            self.gone = true;
        }
    }
}

/// Runs until every engine handle is dropped.
pub(super) fn run(
    model: &MimoModel,
    tokenizer: &Tokenizer,
    inbox: Receiver<Submission>,
    load: &EngineLoad,
    max_rows: usize,
    draft_tokens: usize,
) {
    let stop_ids = model_stop_ids(model, tokenizer);
    let mut waiting: VecDeque<Submission> = VecDeque::new();
    let mut live: Vec<Live> = Vec::new();
    let mut cache: Option<KvCache> = None;
    // MTP drafting (k > 0): started afresh whenever the batch's rows change.
    let mut drafting: Option<Drafting> = None;
    loop {
        if live.is_empty() && waiting.is_empty() {
            match inbox.recv() {
                Ok(s) => waiting.push_back(s),
                Err(_) => return,
            }
        }
        loop {
            match inbox.try_recv() {
                Ok(s) => waiting.push_back(s),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) if live.is_empty() && waiting.is_empty() => return,
                Err(TryRecvError::Disconnected) => break,
            }
        }
        waiting.retain(|s| !s.events.is_closed());
        load.set(live.len(), waiting.len());

        let rows_before = live.len();
        let step = admit(
            model,
            tokenizer,
            &stop_ids,
            &mut waiting,
            &mut live,
            &mut cache,
            max_rows,
        )
        .and_then(|()| {
            if live.len() != rows_before {
                drafting = None;
            }
            if draft_tokens == 0 {
                decode_step(model, &mut live, &mut cache)
            } else {
                speculative_step(
                    model,
                    &mut live,
                    &mut cache,
                    &mut drafting,
                    draft_tokens,
                    load,
                )
            }
        });
        if let Err(e) = step {
            tracing::error!(error = %e, "serving engine step failed; failing the batch");
            for l in &mut live {
                l.send(ServingEvent::Failed(e.to_string()));
            }
            live.clear();
            cache = None;
        }
        let rows_before = live.len();
        let released = release_finished(&mut live, &mut cache);
        if live.len() != rows_before {
            drafting = None;
        }
        if let Err(e) = released {
            tracing::error!(error = %e, "serving engine could not shrink its batch");
            for l in &mut live {
                l.send(ServingEvent::Failed(e.to_string()));
            }
            live.clear();
            cache = None;
        }
        load.set(live.len(), waiting.len());
    }
}

/// Moves waiting requests into free rows: the ones that want no prompt log-probabilities are
/// prefilled together, each one that does alone (it needs the logits of every position).
fn admit<'t>(
    model: &MimoModel,
    tokenizer: &'t Tokenizer,
    stop_ids: &[u32],
    waiting: &mut VecDeque<Submission>,
    live: &mut Vec<Live<'t>>,
    cache: &mut Option<KvCache>,
    max_rows: usize,
) -> Result<(), GenerateError> {
    let free = max_rows.saturating_sub(live.len());
    let arrivals: Vec<Submission> = waiting.drain(..free.min(waiting.len())).collect();
    let (scored, plain): (Vec<_>, Vec<_>) = arrivals
        .into_iter()
        .partition(|s| s.request.prompt_logprobs.is_some());
    if !plain.is_empty() {
        prefill(model, tokenizer, stop_ids, plain, live, cache)?;
    }
    for s in scored {
        prefill(model, tokenizer, stop_ids, vec![s], live, cache)?;
    }
    Ok(())
}

/// Prefills `arrivals` in a cache of their own, samples their first tokens, and appends them to
/// the batch.
fn prefill<'t>(
    model: &MimoModel,
    tokenizer: &'t Tokenizer,
    stop_ids: &[u32],
    arrivals: Vec<Submission>,
    live: &mut Vec<Live<'t>>,
    cache: &mut Option<KvCache>,
) -> Result<(), GenerateError> {
    let requests: Vec<GenerationRequest> = arrivals
        .iter()
        .map(|s| GenerationRequest {
            prompt_ids: s.request.prompt_ids.clone(),
            params: s.request.params.clone(),
        })
        .collect();
    let mut fresh = prefill_cache(model, &requests);
    let input = left_padded_prompts(model, &requests)?;
    let wants_prompt = arrivals.iter().any(|s| s.request.prompt_logprobs.is_some());
    let last_logits: Vec<Vec<f32>> = if wants_prompt {
        // One request (see `admit`): its logits at every position.
        let all = model
            .forward(&input, &mut fresh)?
            .to_dtype(candle_core::DType::F32)?;
        let positions = all.squeeze(0)?.to_vec2::<f32>()?;
        let prompt = &arrivals[0].request.prompt_ids;
        let top = arrivals[0].request.prompt_logprobs.unwrap_or(0);
        let mut scored = vec![None];
        scored.extend(
            prompt
                .iter()
                .skip(1)
                .zip(&positions)
                .map(|(&next, logits)| Some(TokenLogprob::of(logits, next, top))),
        );
        let _ = arrivals[0]
            .events
            .send(ServingEvent::PromptLogprobs(scored));
        vec![positions.last().cloned().unwrap_or_default()]
    } else {
        model.forward_last(&input, &mut fresh)?.to_vec2::<f32>()?
    };
    let mut joined = Vec::with_capacity(arrivals.len());
    for (submission, logits) in arrivals.into_iter().zip(&last_logits) {
        let row = Row::new(
            &GenerationRequest {
                prompt_ids: Vec::new(),
                params: submission.request.params.clone(),
            },
            stop_ids,
            tokenizer,
        );
        let mut l = Live {
            row,
            submission,
            last: 0,
            gone: false,
        };
        if l.row.done {
            l.finish(); // max_tokens 0: the prompt was all that was asked for
        } else {
            l.take(logits)?;
        }
        joined.push(l);
    }
    match cache {
        Some(c) => c.append_rows(fresh)?,
        None => *cache = Some(fresh),
    }
    live.extend(joined);
    Ok(())
}

/// One decode step for every row still going.
fn decode_step(
    model: &MimoModel,
    live: &mut [Live],
    cache: &mut Option<KvCache>,
) -> Result<(), GenerateError> {
    let Some(c) = cache.as_mut() else {
        return Ok(());
    };
    if live.iter().all(|l| l.row.done || l.gone) {
        return Ok(());
    }
    let next: Vec<u32> = live.iter().map(|l| l.last).collect();
    let input = Tensor::from_vec(next, (live.len(), 1), model.device())?;
    let logits = model.forward_last(&input, c)?.to_vec2::<f32>()?;
    for (l, logits) in live.iter_mut().zip(&logits) {
        if !l.row.done && !l.gone {
            l.take(logits)?;
        }
    }
    Ok(())
}

/// One decode step with MTP drafting for every row still going (the first step after the rows
/// changed only records, for the next step's drafts). Greedy rows come out token for token as
/// without drafting; sampled rows follow the same distribution.
fn speculative_step(
    model: &MimoModel,
    live: &mut [Live],
    cache: &mut Option<KvCache>,
    drafting: &mut Option<Drafting>,
    k: usize,
    load: &EngineLoad,
) -> Result<(), GenerateError> {
    let Some(c) = cache.as_mut() else {
        return Ok(());
    };
    for l in live.iter_mut().filter(|l| l.gone) {
        l.row.done = true; // rides along with filler until it is released
    }
    if live.iter().all(|l| l.row.done) {
        return Ok(());
    }
    let state = match drafting {
        Some(state) => state,
        None => drafting.insert(Drafting::new(
            MtpProposer::aligned_with(model, c)?,
            live.len(),
            k,
        )),
    };
    let going: Vec<bool> = live.iter().map(|l| !l.row.done).collect();
    let mut last: Vec<u32> = live.iter().map(|l| l.last).collect();
    let mut released = ReleasedByRow(vec![String::new(); live.len()]);
    let before = state.metrics.clone();
    let outcome = {
        let mut rows: Vec<_> = live.iter_mut().map(|l| &mut l.row).collect();
        state.step(model, &mut rows, &mut last, c, &mut released)?
    };
    load.count_drafting(&before, &state.metrics);
    for (i, l) in live.iter_mut().enumerate() {
        l.last = last[i];
        if going[i] {
            let text = std::mem::take(&mut released.0[i]);
            l.emit(&outcome.emitted[i], &outcome.logits[i], text);
        }
    }
    Ok(())
}

/// Drops finished and abandoned rows from the batch (and their cache rows).
fn release_finished(
    live: &mut Vec<Live>,
    cache: &mut Option<KvCache>,
) -> Result<(), GenerateError> {
    let keep: Vec<usize> = (0..live.len())
        .filter(|&i| !live[i].row.done && !live[i].gone)
        .collect();
    if keep.len() == live.len() {
        return Ok(());
    }
    if keep.is_empty() {
        live.clear();
        *cache = None;
        return Ok(());
    }
    if let Some(c) = cache.as_mut() {
        c.retain_rows(&keep)?;
    }
    let mut index = 0;
    live.retain(|_| {
        let kept = keep.binary_search(&index).is_ok();
        index += 1;
        kept
    });
    Ok(())
}
