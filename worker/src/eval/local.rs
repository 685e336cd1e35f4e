//! The local generator: the MiMo engine on this machine's device.

use crucible_types::sampling::{FinishReason, SamplingParams, Speculative};

use super::EvalError;
use super::generator::{Completion, Generator, sample_params};
use crucible_gpu::engine::speculative::MAX_DRAFT_BATCH;
use crucible_gpu::engine::{
    GeneratedSequence, GenerationRequest, SpeculativeMetrics, generate_continuous,
    generate_speculative,
};
use crucible_gpu::model::MimoModel;
use crucible_gpu::tokenizer::{ChatMessage, Tokenizer, TokenizerError};

/// Sequences decoded together by default (continuous batching keeps this many rows busy):
/// enough to keep a GPU busy on short prompts, small enough for a 7B model's KV cache at a few
/// thousand tokens per row.
pub const DEFAULT_MAX_BATCH: usize = 64;

/// Runs prompts through a loaded checkpoint with its chat template.
pub struct LocalGenerator<'m> {
    model: &'m MimoModel,
    tokenizer: &'m Tokenizer,
    max_batch: usize,
    speculative: Speculative,
    metrics: SpeculativeMetrics,
}

impl<'m> LocalGenerator<'m> {
    /// A generator over a model and its tokenizer, decoding up to [`DEFAULT_MAX_BATCH`] rows.
    pub fn new(model: &'m MimoModel, tokenizer: &'m Tokenizer) -> Self {
        Self {
            model,
            tokenizer,
            max_batch: DEFAULT_MAX_BATCH,
            speculative: Speculative::Off,
            metrics: SpeculativeMetrics::default(),
        }
    }

    /// Caps the rows decoded at once (device memory).
    pub fn with_max_batch(mut self, max_batch: usize) -> Self {
        self.max_batch = max_batch.max(1);
        self
    }

    /// Decodes with MTP drafting (same scores, faster where drafting pays). Drafting runs in
    /// lockstep batches of at most [`MAX_DRAFT_BATCH`] rows, the widest that still gain, instead
    /// of continuous batching.
    pub fn with_speculative(mut self, speculative: Speculative) -> Self {
        self.speculative = speculative;
        self
    }

    /// Drafting counters over every call so far (empty when drafting is off).
    pub fn speculative_metrics(&self) -> &SpeculativeMetrics {
        &self.metrics
    }

    /// Decodes `requests` the configured way.
    fn decode(
        &mut self,
        requests: &[GenerationRequest],
    ) -> Result<Vec<GeneratedSequence>, EvalError> {
        if self.speculative == Speculative::Off {
            let out = generate_continuous(
                self.model,
                self.tokenizer,
                requests,
                self.max_batch,
                &mut (),
            )?;
            count_tokens(&out);
            return Ok(out);
        }
        let mut out = Vec::with_capacity(requests.len());
        let mut metrics = SpeculativeMetrics::default();
        for batch in requests.chunks(self.max_batch.min(MAX_DRAFT_BATCH)) {
            let done =
                generate_speculative(self.model, self.tokenizer, batch, self.speculative, &mut ())?;
            out.extend(done.sequences);
            metrics.merge(&done.metrics);
        }
        tracing::info!(requests = requests.len(), "{}", metrics.summary());
        self.metrics.merge(&metrics);
        count_tokens(&out);
        Ok(out)
    }
}

fn count_tokens(sequences: &[GeneratedSequence]) {
    crate::telemetry::telemetry()
        .tokens_generated(sequences.iter().map(|s| s.token_ids.len()).sum());
}

/// Prompt token ids of a user message: the chat template when the checkpoint has one, else the raw
/// text (a base checkpoint). Shared by evals and RL rollouts so both prompt a model identically.
pub fn prompt_ids(tokenizer: &Tokenizer, prompt: &str) -> Result<Vec<u32>, TokenizerError> {
    match tokenizer.apply_chat_template(&[ChatMessage::user(prompt)], true) {
        Ok(text) => tokenizer.encode(&text, false),
        Err(TokenizerError::NoChatTemplate { .. }) => tokenizer.encode(prompt, true),
        Err(e) => Err(e),
    }
}

impl Generator for LocalGenerator<'_> {
    fn generate(
        &mut self,
        prompts: &[String],
        sampling: &SamplingParams,
        n: u32,
    ) -> Result<Vec<Vec<Completion>>, EvalError> {
        let context = self.model.config().max_position_embeddings;
        let mut requests = Vec::with_capacity(prompts.len() * n as usize);
        for (i, prompt) in prompts.iter().enumerate() {
            let ids = prompt_ids(self.tokenizer, prompt)?;
            if ids.len() >= context {
                return Err(EvalError::InvalidArgs(format!(
                    "prompt {i} has {} tokens; the model's context is {context}",
                    ids.len()
                )));
            }
            for j in 0..n {
                requests.push(GenerationRequest {
                    prompt_ids: ids.clone(),
                    params: sample_params(sampling, j),
                });
            }
        }
        // Positions count from each row's own start, so a prompt bounds only its own row's room:
        // a budget past the context ends there, truncated.
        for r in &mut requests {
            let room = u32::try_from(context - r.prompt_ids.len()).unwrap_or(u32::MAX);
            r.params.max_new_tokens = r.params.max_new_tokens.min(room);
        }
        let flat: Vec<Completion> = self
            .decode(&requests)?
            .into_iter()
            .map(|seq| Completion {
                tokens: u32::try_from(seq.token_ids.len()).unwrap_or(u32::MAX),
                truncated: seq.finish_reason == FinishReason::Length,
                text: seq.text,
            })
            .collect();
        let mut flat = flat.into_iter();
        Ok(prompts
            .iter()
            .map(|_| flat.by_ref().take(n as usize).collect())
            .collect())
    }
}
