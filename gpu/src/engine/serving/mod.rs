//! The serving engine: one thread owns the model and decodes every in-flight request of a server
//! in one continuous batch. A request joins the batch at the next step after it arrives (its
//! prompt prefilled together with the others that arrived meanwhile), leaves it the step it
//! finishes, and hears of each token on its own channel — so a short request never waits for a
//! long one, and a lone request decodes at batch 1. Each request samples with its own seeded
//! generator, so a seeded request returns the same tokens alone or among many.

mod batch;
pub mod logprobs;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use crucible_types::sampling::{FinishReason, SamplingParams, Speculative};
use crucible_types::validate::Invalid;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

pub use logprobs::{MAX_TOP_LOGPROBS, TokenLogprob};

use crate::engine::speculative::{SpeculativeMetrics, check_drafting};
use crate::model::{MimoModel, ModelError};
use crate::tokenizer::Tokenizer;

/// How the engine decodes.
#[derive(Debug, Clone, Copy)]
pub struct ServingOptions {
    /// Requests decoding at once; the others wait their turn in arrival order.
    pub max_rows: usize,
    /// MTP drafting: greedy output stays byte-identical; sampled output keeps its distribution,
    /// but which tokens a seed gives then depends on when drafting ran (on the batch's other
    /// requests), so seeded requests reproduce across batches only with drafting off.
    pub speculative: Speculative,
}

impl Default for ServingOptions {
    fn default() -> Self {
        Self {
            max_rows: 32,
            speculative: Speculative::Off,
        }
    }
}

/// One sequence to generate.
#[derive(Debug, Clone)]
pub struct ServingRequest {
    pub prompt_ids: Vec<u32>,
    /// `max_new_tokens` may be 0 when only `prompt_logprobs` are wanted (log-likelihood scoring).
    pub params: SamplingParams,
    /// Report each generated token's log-probability with this many alternatives.
    pub logprobs: Option<usize>,
    /// Report each prompt token's log-probability (the first has none) with this many alternatives.
    pub prompt_logprobs: Option<usize>,
}

/// What a request hears, in order: its prompt's log-probabilities when asked, one event per
/// generated token, and finally `Finished` (or `Failed`).
#[derive(Debug, Clone, PartialEq)]
pub enum ServingEvent {
    PromptLogprobs(Vec<Option<TokenLogprob>>),
    Token {
        id: u32,
        /// Text that became final with this token (may be empty: a partial character, the
        /// start of a possible stop string, a special token).
        text: String,
        logprob: Option<TokenLogprob>,
    },
    Finished {
        reason: FinishReason,
    },
    /// The model failed mid-batch (an internal error, never the request's fault).
    Failed(String),
}

/// Why a request was not accepted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServingError {
    #[error("{}: {}", .0.field, .0.message)]
    Invalid(Invalid),
    /// The engine thread has stopped (a model error it could not recover from).
    #[error("the serving engine has stopped")]
    Stopped,
}

/// Requests decoding and waiting right now (what a server's metrics and health report).
#[derive(Debug, Default)]
pub struct EngineLoad {
    running: AtomicUsize,
    waiting: AtomicUsize,
    drafts: AtomicUsize,
    draft_tokens: AtomicUsize,
    accepted_tokens: AtomicUsize,
}

impl EngineLoad {
    /// Requests in the decoding batch.
    pub fn running(&self) -> usize {
        self.running.load(Ordering::Relaxed)
    }

    /// Requests accepted but not yet in the batch.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Row-steps that drafted, draft tokens proposed, and draft tokens accepted, since start.
    pub fn drafting(&self) -> (usize, usize, usize) {
        (
            self.drafts.load(Ordering::Relaxed),
            self.draft_tokens.load(Ordering::Relaxed),
            self.accepted_tokens.load(Ordering::Relaxed),
        )
    }

    /// Adds what one step drafted (`after` minus `before`).
    fn count_drafting(&self, before: &SpeculativeMetrics, after: &SpeculativeMetrics) {
        let add = |counter: &AtomicUsize, now: usize, then: usize| {
            counter.fetch_add(now - then, Ordering::Relaxed);
        };
        add(&self.drafts, after.drafts, before.drafts);
        add(&self.draft_tokens, after.draft_tokens, before.draft_tokens);
        add(
            &self.accepted_tokens,
            after.accepted_tokens(),
            before.accepted_tokens(),
        );
    }

    fn set(&self, running: usize, waiting: usize) {
        self.running.store(running, Ordering::Relaxed);
        self.waiting.store(waiting, Ordering::Relaxed);
    }
}

/// A request on its way to the engine thread, with the channel its events go to.
struct Submission {
    request: ServingRequest,
    events: UnboundedSender<ServingEvent>,
}

/// The handle to a running engine thread; cheap to share between request handlers.
pub struct ServingEngine {
    inbox: mpsc::Sender<Submission>,
    load: Arc<EngineLoad>,
    tokenizer: Arc<Tokenizer>,
    context_len: usize,
    vocab_size: usize,
}

impl ServingEngine {
    /// Starts the engine thread, which owns `model` until every handle is dropped; refuses a
    /// draft length the model's MTP layers cannot serve.
    pub fn start(
        model: MimoModel,
        tokenizer: Arc<Tokenizer>,
        options: ServingOptions,
    ) -> Result<Self, ModelError> {
        let draft_tokens = options.speculative.draft_tokens();
        if draft_tokens > 0 {
            check_drafting(&model, draft_tokens)?;
        }
        let (inbox, requests) = mpsc::channel();
        let load = Arc::new(EngineLoad::default());
        let context_len = model.config().max_position_embeddings;
        let vocab_size = model.config().vocab_size;
        let (thread_load, thread_tokenizer) = (load.clone(), tokenizer.clone());
        std::thread::Builder::new()
            .name("serving-engine".into())
            .spawn(move || {
                batch::run(
                    &model,
                    &thread_tokenizer,
                    requests,
                    &thread_load,
                    options.max_rows.max(1),
                    draft_tokens,
                )
            })
            .expect("spawning the serving engine thread");
        Ok(Self {
            inbox,
            load,
            tokenizer,
            context_len,
            vocab_size,
        })
    }

    /// Queues `request`; its events arrive on the returned channel. Dropping the receiver
    /// cancels the request at the next step.
    pub fn submit(
        &self,
        request: ServingRequest,
    ) -> Result<UnboundedReceiver<ServingEvent>, ServingError> {
        self.check(&request).map_err(ServingError::Invalid)?;
        let (events, receiver) = unbounded_channel();
        self.inbox
            .send(Submission { request, events })
            .map_err(|_| ServingError::Stopped)?;
        Ok(receiver)
    }

    /// Refuses what the model cannot run, naming the request field at fault.
    fn check(&self, request: &ServingRequest) -> Result<(), Invalid> {
        let params = SamplingParams {
            max_new_tokens: request.params.max_new_tokens.max(1),
            ..request.params.clone()
        };
        params.validate().map_err(|mut e| {
            // Say the budget as the OpenAI API calls it.
            if e.field == "max_new_tokens" {
                e.field = "max_tokens".into();
            }
            e
        })?;
        let prompt = &request.prompt_ids;
        if prompt.is_empty() {
            return Err(Invalid::new("prompt", "the prompt has no tokens"));
        }
        if let Some(bad) = prompt.iter().find(|&&id| id as usize >= self.vocab_size) {
            return Err(Invalid::new(
                "prompt",
                format!(
                    "token id {bad} is outside the vocabulary (0..{})",
                    self.vocab_size
                ),
            ));
        }
        let needed = prompt.len() + request.params.max_new_tokens as usize;
        if needed > self.context_len {
            return Err(Invalid::new(
                "max_tokens",
                format!(
                    "the prompt ({} tokens) plus max_tokens ({}) exceeds the model's context of {} tokens",
                    prompt.len(),
                    request.params.max_new_tokens,
                    self.context_len
                ),
            ));
        }
        for (field, n) in [
            ("logprobs", request.logprobs),
            ("prompt_logprobs", request.prompt_logprobs),
        ] {
            if n.is_some_and(|n| n > MAX_TOP_LOGPROBS) {
                return Err(Invalid::new(
                    field,
                    format!("at most {MAX_TOP_LOGPROBS} alternatives per token"),
                ));
            }
        }
        Ok(())
    }

    /// The requests running and waiting now.
    pub fn load(&self) -> &EngineLoad {
        &self.load
    }

    /// The tokenizer the engine decodes with (servers tokenize and apply chat templates with it).
    pub fn tokenizer(&self) -> &Arc<Tokenizer> {
        &self.tokenizer
    }

    /// Ids the model (and every prompt) may use.
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// Longest prompt plus completion the model takes, in tokens.
    pub fn context_len(&self) -> usize {
        self.context_len
    }
}
