//! One speculative decode step over a batch's rows, shared by the lockstep driver and the serving
//! engine: the proposer drafts a token per row (when the back-off allows), the main model runs
//! every row's newest token and its draft in one forward pass, the verifier keeps, per row, the
//! drafts that pass plus one token from the target, and rows that keep fewer columns than the
//! batch's longest get holes in both caches, so every row attends exactly to its accepted tokens.

use candle_core::{DType, Tensor};

use super::backoff::Backoff;
use super::metrics::SpeculativeMetrics;
use super::proposer::MtpProposer;
use super::verifier::{Verdict, verify_greedy, verify_sampled};
use crate::engine::generate::{FILLER_TOKEN, GenerateError, GenerationObserver, Row};
use crate::model::MimoModel;
use crate::model::kv_cache::KvCache;

/// A draft for one row: its tokens and, for sampled rows, the distribution each was drawn from.
struct Draft {
    tokens: Vec<u32>,
    probs: Vec<Vec<f32>>,
}

/// What one step did to each row.
pub(in crate::engine) struct StepOutcome {
    /// Per row, the tokens it emitted (a finished row emits its filler).
    pub(in crate::engine) emitted: Vec<Vec<u32>>,
    /// Per row, the target's logits at each column the row emitted from.
    pub(in crate::engine) logits: Vec<Vec<Vec<f32>>>,
}

/// The drafting state of a batch: the MTP proposer, the back-off and the counters.
pub(in crate::engine) struct Drafting {
    pub(in crate::engine) proposer: MtpProposer,
    backoff: Backoff,
    pub(in crate::engine) metrics: SpeculativeMetrics,
    k: usize,
}

impl Drafting {
    /// Drafting `k` tokens per step for a batch of `rows` rows.
    pub(in crate::engine) fn new(proposer: MtpProposer, rows: usize, k: usize) -> Self {
        Self {
            proposer,
            backoff: Backoff::new(rows),
            metrics: SpeculativeMetrics::new(k),
            k,
        }
    }

    /// One decode step for `rows` (each row's newest token in `last`, updated to the token it
    /// ends on); rows that are `done` ride along with filler.
    pub(in crate::engine) fn step(
        &mut self,
        model: &MimoModel,
        rows: &mut [&mut Row],
        last: &mut [u32],
        cache: &mut KvCache,
        observer: &mut dyn GenerationObserver,
    ) -> Result<StepOutcome, GenerateError> {
        let drafts: Vec<Option<Draft>> = if self.proposer.is_ready() && self.backoff.should_draft()
        {
            self.draft(model, rows)?
        } else {
            rows.iter().map(|_| None).collect()
        };
        let width = if drafts.iter().any(Option::is_some) {
            1 + self.k
        } else {
            1
        };
        let mut input = Vec::with_capacity(rows.len() * width);
        for (last, draft) in last.iter().zip(&drafts) {
            input.push(*last);
            match draft {
                Some(d) => input.extend(&d.tokens),
                None => input.extend(std::iter::repeat_n(FILLER_TOKEN, width - 1)),
            }
        }
        let input = Tensor::from_vec(input, (rows.len(), width), model.device())?;
        let start = cache.len();
        let hidden = model.forward_hidden(&input, cache)?;
        let logits = model
            .logits(&hidden)?
            .to_dtype(DType::F32)?
            .to_vec3::<f32>()?;

        let accepted_before = self.metrics.accepted_tokens();
        let mut emitted = Vec::with_capacity(rows.len());
        let mut proposed = 0;
        for (index, (row, draft)) in rows.iter_mut().zip(&drafts).enumerate() {
            emitted.push(self.verify(row, index, &logits[index], draft.as_ref(), observer)?);
            if let Some(d) = draft {
                proposed += d.tokens.len();
                self.metrics.drafts += 1;
                self.metrics.draft_tokens += d.tokens.len();
            }
        }
        self.metrics.steps += 1;
        if proposed > 0 {
            self.metrics.drafting_steps += 1;
            let accepted = self.metrics.accepted_tokens() - accepted_before;
            self.backoff.observe(accepted, proposed);
        }
        self.keep_accepted(cache, start, &hidden, &emitted)?;
        for (last, tokens) in last.iter_mut().zip(&emitted) {
            *last = *tokens.last().expect("a row emits at least one token");
        }
        let logits = logits
            .into_iter()
            .zip(&emitted)
            .map(|(mut columns, tokens)| {
                columns.truncate(tokens.len());
                columns
            })
            .collect();
        Ok(StepOutcome { emitted, logits })
    }

    /// Drafts for every unfinished row: greedy rows take the MTP argmax, sampled rows sample
    /// the MTP distribution under their own parameters and RNG.
    fn draft(
        &mut self,
        model: &MimoModel,
        rows: &mut [&mut Row],
    ) -> Result<Vec<Option<Draft>>, GenerateError> {
        let logits = self.proposer.propose(model)?;
        Ok(rows
            .iter_mut()
            .zip(&logits)
            .map(|(row, logits)| {
                if row.done {
                    return None;
                }
                let sampler = &mut row.sampler;
                Some(if sampler.is_greedy() {
                    Draft {
                        tokens: vec![sampler.sample(logits).token],
                        probs: Vec::new(),
                    }
                } else {
                    let q = sampler.probabilities(logits);
                    Draft {
                        tokens: vec![sampler.draw(&q)],
                        probs: vec![q],
                    }
                })
            })
            .collect())
    }

    /// Checks row `index`'s draft against the target logits of its columns and records what
    /// the row emits: the accepted drafts, then a replacement or the bonus token. Returns the
    /// emitted tokens (a finished row emits its filler).
    fn verify(
        &mut self,
        row: &mut Row,
        index: usize,
        logits: &[Vec<f32>],
        draft: Option<&Draft>,
        observer: &mut dyn GenerationObserver,
    ) -> Result<Vec<u32>, GenerateError> {
        if row.done {
            return Ok(vec![FILLER_TOKEN]);
        }
        let mut out = Vec::new();
        if let Some(d) = draft {
            for (j, &token) in d.tokens.iter().enumerate() {
                let verdict = if row.sampler.is_greedy() {
                    verify_greedy(row.sampler.sample(&logits[j]).token, token)
                } else {
                    let p = row.sampler.probabilities(&logits[j]);
                    verify_sampled(&p, &d.probs[j], token, || row.sampler.uniform())
                };
                let chosen = match verdict {
                    Verdict::Accepted => {
                        self.metrics.accepted_per_position[j] += 1;
                        token
                    }
                    Verdict::Rejected { replacement } => replacement,
                };
                let logprob = row.sampler.logprob(&logits[j], chosen);
                row.push(chosen, logprob, index, observer)?;
                out.push(chosen);
                if row.done || verdict != Verdict::Accepted {
                    return Ok(out);
                }
            }
        }
        out.push(row.step(&logits[out.len()], index, observer)?);
        Ok(out)
    }

    /// Keeps each row's emitted columns in the main cache (the rest of the step's columns become
    /// that row's holes, and columns no row kept are dropped) and hands them to the proposer.
    fn keep_accepted(
        &mut self,
        cache: &mut KvCache,
        start: usize,
        hidden: &Tensor,
        emitted: &[Vec<u32>],
    ) -> Result<(), GenerateError> {
        let width = emitted.iter().map(Vec::len).max().unwrap_or(1);
        let mut next = Vec::with_capacity(emitted.len() * width);
        for (row, tokens) in emitted.iter().enumerate() {
            cache.hide(row, start + tokens.len()..start + width);
            next.extend(tokens);
            next.extend(std::iter::repeat_n(FILLER_TOKEN, width - tokens.len()));
        }
        cache.truncate(start + width);
        let kept = emitted.iter().map(Vec::len).collect();
        self.proposer
            .record(hidden.narrow(1, 0, width)?, next, kept)?;
        Ok(())
    }
}
