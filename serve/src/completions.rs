//! `POST /v1/completions`: text or token-id prompts, `n` choices each, `echo` with the prompt's
//! log-probabilities (what lm-evaluation-harness's log-likelihood tasks read), streamed or not.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use crucible_gpu::engine::serving::{ServingEvent, ServingRequest, TokenLogprob};
use futures::StreamExt;
use serde_json::{Map, Value, json};

use crate::choices::{self, finish_reason};
use crate::error::ApiError;
use crate::sse::{self, Head, usage};
use crate::wire::{self, CompletionRequest, MAX_CHOICES, Prompt};
use crate::{ServeState, unix_now};

/// OpenAI's default `max_tokens` for completions.
const DEFAULT_MAX_TOKENS: u32 = 16;

/// A prompt as the engine takes it, and its text for `echo`.
struct PromptIn {
    ids: Vec<u32>,
    text: String,
}

fn prompts(state: &ServeState, prompt: Prompt) -> Result<Vec<PromptIn>, ApiError> {
    let tokenizer = state.engine.tokenizer();
    let encode = |text: String| -> Result<PromptIn, ApiError> {
        let ids = tokenizer
            .encode(&text, true)
            .map_err(|e| ApiError::invalid("prompt", e.to_string()))?;
        Ok(PromptIn { ids, text })
    };
    let from_ids = |ids: Vec<u32>| -> Result<PromptIn, ApiError> {
        state.check_ids("prompt", &ids)?;
        let text = tokenizer
            .decode(&ids)
            .map_err(|e| ApiError::invalid("prompt", e.to_string()))?;
        Ok(PromptIn { ids, text })
    };
    let out: Vec<PromptIn> = match prompt {
        Prompt::Text(t) => vec![encode(t)?],
        Prompt::Texts(ts) => ts.into_iter().map(encode).collect::<Result<_, _>>()?,
        Prompt::Ids(ids) => vec![from_ids(ids)?],
        Prompt::IdLists(lists) => lists.into_iter().map(from_ids).collect::<Result<_, _>>()?,
    };
    if out.is_empty() {
        return Err(ApiError::invalid("prompt", "no prompt given"));
    }
    Ok(out)
}

/// The handler.
pub async fn handle(
    State(state): State<Arc<ServeState>>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let (request, sampling): (CompletionRequest, _) = wire::parse_with_sampling(&body?)?;
    state.check_model(&request.model)?;
    let sampling = &sampling;
    let n = sampling.n()?;
    let stream = sampling.stream()?;
    if request.suffix.is_some() {
        return Err(ApiError::invalid("suffix", "suffix is not supported"));
    }
    if request.best_of.is_some_and(|b| b != n) {
        return Err(ApiError::invalid(
            "best_of",
            "best_of must equal n (the server does not rank completions)",
        ));
    }
    let echo = request.echo.unwrap_or(false);
    let logprobs = request.logprobs.map(|l| l as usize);
    let max_tokens = request.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS);
    if max_tokens == 0 && !echo {
        return Err(ApiError::invalid(
            "max_tokens",
            "must be at least 1 (0 only with echo, to score the prompt)",
        ));
    }
    let prompts = prompts(&state, request.prompt)?;
    if prompts.len() > MAX_CHOICES {
        return Err(ApiError::invalid(
            "prompt",
            format!("at most {MAX_CHOICES} prompts per request"),
        ));
    }
    if prompts.len() * n as usize > MAX_CHOICES {
        return Err(ApiError::invalid(
            "n",
            format!("prompts × n is at most {MAX_CHOICES}"),
        ));
    }
    let mut engine_requests = Vec::with_capacity(prompts.len() * n as usize);
    for p in &prompts {
        for j in 0..n {
            engine_requests.push(ServingRequest {
                prompt_ids: p.ids.clone(),
                params: sampling.params(max_tokens, j)?,
                logprobs,
                prompt_logprobs: if echo { logprobs } else { None },
            });
        }
    }
    let sequences = choices::submit(&state, engine_requests)?;
    let prompt_tokens: usize = prompts.iter().map(|p| p.ids.len()).sum();
    state.metrics.prompt_tokens(prompt_tokens);
    let id = format!("cmpl-{}", uuid::Uuid::new_v4().simple());
    let reply = Reply {
        state: state.clone(),
        head: Arc::new(Head {
            id,
            object: "text_completion",
            created: unix_now(),
            model: state.name.clone(),
            include_usage: sampling.include_usage(),
        }),
        prompts,
        n: n as usize,
        echo,
        scored_prompt: echo && logprobs.is_some(),
    };
    if stream {
        return Ok(reply.stream(sequences, prompt_tokens));
    }
    let outputs = choices::collect_all(sequences).await?;
    let completion_tokens: usize = outputs.iter().map(|o| o.token_ids.len()).sum();
    let choices: Vec<Value> = outputs
        .iter()
        .enumerate()
        .map(|(i, out)| {
            let prompt = &reply.prompts[i / reply.n];
            let mut text = out.text.clone();
            if echo {
                text.insert_str(0, &prompt.text);
            }
            let lp = logprobs.map(|_| {
                let mut list = LogprobList::default();
                if let Some(scored) = &out.prompt_logprobs {
                    for (&id, lp) in prompt.ids.iter().zip(scored) {
                        list.push(&state, id, lp.as_ref());
                    }
                }
                for (&id, lp) in out.token_ids.iter().zip(&out.logprobs) {
                    list.push(&state, id, Some(lp));
                }
                list.into_json()
            });
            json!({
                "index": i,
                "text": text,
                "logprobs": lp,
                "finish_reason": out.finish_reason.map(finish_reason),
            })
        })
        .collect();
    Ok(Json(json!({
        "id": reply.head.id,
        "object": "text_completion",
        "created": reply.head.created,
        "model": state.name,
        "choices": choices,
        "usage": usage(prompt_tokens, completion_tokens),
    }))
    .into_response())
}

/// What every chunk of one reply shares.
struct Reply {
    state: Arc<ServeState>,
    head: Arc<Head>,
    prompts: Vec<PromptIn>,
    n: usize,
    echo: bool,
    /// Whether the prompt's log-probabilities were asked for (`echo` with `logprobs`).
    scored_prompt: bool,
}

impl Reply {
    /// Server-sent events: the prompt first with `echo`, one chunk per token of each choice, a
    /// last chunk per choice with its `finish_reason`, the usage chunk when asked, `[DONE]`.
    fn stream(self, sequences: Vec<choices::Sequence>, prompt_tokens: usize) -> Response {
        let reply = Arc::new(self);
        // With log-probabilities the echoed prompt arrives with them (a PromptLogprobs event).
        let echoed: Vec<Value> = if reply.echo && !reply.scored_prompt {
            (0..reply.prompts.len() * reply.n)
                .map(|index| {
                    reply.text_chunk(index, &reply.prompts[index / reply.n].text, None, None)
                })
                .collect()
        } else {
            Vec::new()
        };
        let generated = Arc::new(AtomicUsize::new(0));
        let (events_reply, counter) = (reply.clone(), generated.clone());
        let events = choices::merged(sequences).filter_map(move |(index, event)| {
            let reply = &events_reply;
            let chunk = match event {
                ServingEvent::PromptLogprobs(scored) => {
                    let prompt = &reply.prompts[index / reply.n];
                    let mut list = LogprobList::default();
                    for (&id, lp) in prompt.ids.iter().zip(&scored) {
                        list.push(&reply.state, id, lp.as_ref());
                    }
                    Some(reply.text_chunk(index, &prompt.text, Some(list.into_json()), None))
                }
                ServingEvent::Token { id, text, logprob } => {
                    counter.fetch_add(1, Ordering::Relaxed);
                    let lp = logprob.map(|lp| {
                        let mut list = LogprobList::default();
                        list.push(&reply.state, id, Some(&lp));
                        list.into_json()
                    });
                    (!text.is_empty() || lp.is_some())
                        .then(|| reply.text_chunk(index, &text, lp, None))
                }
                ServingEvent::Finished { reason } => {
                    Some(reply.text_chunk(index, "", None, Some(finish_reason(reason))))
                }
                ServingEvent::Failed(message) => Some(ApiError::Internal(message).body()),
            };
            futures::future::ready(chunk)
        });
        let head = reply.head.clone();
        sse::respond(head, echoed, events, prompt_tokens, generated)
    }

    fn text_chunk(
        &self,
        index: usize,
        text: &str,
        logprobs: Option<Value>,
        finish: Option<&'static str>,
    ) -> Value {
        self.head.chunk(
            json!([{"index": index, "text": text, "logprobs": logprobs, "finish_reason": finish}]),
        )
    }
}

/// The completions API's log-probability lists, built one token at a time.
#[derive(Default)]
struct LogprobList {
    tokens: Vec<String>,
    token_logprobs: Vec<Option<f32>>,
    top_logprobs: Vec<Option<Map<String, Value>>>,
    text_offset: Vec<usize>,
    offset: usize,
}

impl LogprobList {
    /// Adds token `id`, with its log-probability when it has one (the prompt's first has none).
    fn push(&mut self, state: &ServeState, id: u32, lp: Option<&TokenLogprob>) {
        let text = state.token_text(id);
        self.text_offset.push(self.offset);
        self.offset += text.chars().count();
        self.token_logprobs.push(lp.map(|l| l.logprob));
        self.top_logprobs.push(lp.map(|l| {
            let mut top = Map::new();
            for &(t, p) in &l.top {
                top.entry(state.token_text(t)).or_insert(json!(p));
            }
            top.entry(text.clone()).or_insert(json!(l.logprob));
            top
        }));
        self.tokens.push(text);
    }

    fn into_json(self) -> Value {
        json!({
            "tokens": self.tokens,
            "token_logprobs": self.token_logprobs,
            "top_logprobs": self.top_logprobs,
            "text_offset": self.text_offset,
        })
    }
}
