//! `POST /v1/chat/completions`: messages rendered with the checkpoint's chat template, `n`
//! choices, log-probabilities in the chat shape, streamed as deltas or not.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::response::{IntoResponse, Response};
use crucible_gpu::engine::serving::{ServingEvent, ServingRequest, TokenLogprob};
use crucible_gpu::tokenizer::ChatMessage;
use futures::StreamExt;
use serde_json::{Value, json};

use crate::choices::{self, finish_reason};
use crate::error::ApiError;
use crate::sse::{self, Head, usage};
use crate::wire::{self, ChatRequest, Content, ContentPart, Message};
use crate::{ServeState, unix_now};

/// The prompt text of `messages` under the served model's chat template.
pub fn render_messages(
    state: &ServeState,
    messages: &[Message],
    add_generation_prompt: bool,
) -> Result<String, ApiError> {
    if messages.is_empty() {
        return Err(ApiError::invalid(
            "messages",
            "at least one message is needed",
        ));
    }
    let turns: Vec<ChatMessage> = messages
        .iter()
        .map(|m| ChatMessage {
            role: m.role.template_name().to_string(),
            content: match &m.content {
                None => String::new(),
                Some(Content::Text(t)) => t.clone(),
                Some(Content::Parts(parts)) => parts
                    .iter()
                    .map(|ContentPart::Text { text }| text.as_str())
                    .collect(),
            },
        })
        .collect();
    state
        .engine
        .tokenizer()
        .apply_chat_template(&turns, add_generation_prompt)
        .map_err(|e| ApiError::invalid("messages", e.to_string()))
}

/// The handler.
pub async fn handle(
    State(state): State<Arc<ServeState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let (request, sampling): (ChatRequest, _) = wire::parse_with_sampling(&body?)?;
    state.check_model(&request.model)?;
    let sampling = &sampling;
    let n = sampling.n()?;
    let stream = sampling.stream()?;
    let logprobs = match (request.logprobs.unwrap_or(false), request.top_logprobs) {
        (true, top) => Some(top.unwrap_or(0) as usize),
        (false, Some(_)) => {
            return Err(ApiError::invalid(
                "top_logprobs",
                "top_logprobs needs logprobs: true",
            ));
        }
        (false, None) => None,
    };
    let text = render_messages(
        &state,
        &request.messages,
        request.add_generation_prompt.unwrap_or(true),
    )?;
    let prompt_ids = state
        .engine
        .tokenizer()
        .encode(&text, false)
        .map_err(|e| ApiError::invalid("messages", e.to_string()))?;
    let budget_field = if request.max_completion_tokens.is_some() {
        "max_completion_tokens"
    } else {
        "max_tokens"
    };
    let remaining = state.engine.context_len().saturating_sub(prompt_ids.len()) as u32;
    let max_tokens = request
        .max_completion_tokens
        .or(request.max_tokens)
        .unwrap_or(remaining.max(1));
    if max_tokens == 0 {
        return Err(ApiError::invalid(budget_field, "must be at least 1"));
    }
    let mut engine_requests = Vec::with_capacity(n as usize);
    for j in 0..n {
        engine_requests.push(ServingRequest {
            prompt_ids: prompt_ids.clone(),
            params: sampling.params(max_tokens, j)?,
            logprobs,
            prompt_logprobs: None,
        });
    }
    // The engine names fields as completions do; say them as this request spelled them.
    let sequences = choices::submit(&state, engine_requests).map_err(|e| match e {
        ApiError::Invalid { param, message } => ApiError::Invalid {
            param: match param.as_str() {
                "prompt" => "messages".into(),
                "max_tokens" => budget_field.into(),
                "logprobs" => "top_logprobs".into(),
                _ => param,
            },
            message,
        },
        other => other,
    })?;
    state.metrics.prompt_tokens(prompt_ids.len());
    let reply = Reply {
        state: state.clone(),
        head: Arc::new(Head {
            id: format!("chatcmpl-{}", uuid::Uuid::new_v4().simple()),
            object: "chat.completion.chunk",
            created: unix_now(),
            model: state.name.clone(),
            include_usage: sampling.include_usage(),
        }),
    };
    if stream {
        return Ok(reply.stream(sequences, prompt_ids.len()));
    }
    let outputs = choices::collect_all(sequences).await?;
    let completion_tokens: usize = outputs.iter().map(|o| o.token_ids.len()).sum();
    let choices: Vec<Value> = outputs
        .iter()
        .enumerate()
        .map(|(i, out)| {
            let lp = logprobs.map(|_| {
                let content: Vec<Value> = out
                    .token_ids
                    .iter()
                    .zip(&out.logprobs)
                    .map(|(&id, lp)| logprob_entry(&state, id, lp))
                    .collect();
                json!({ "content": content })
            });
            json!({
                "index": i,
                "message": {"role": "assistant", "content": out.text},
                "logprobs": lp,
                "finish_reason": out.finish_reason.map(finish_reason),
            })
        })
        .collect();
    Ok(Json(json!({
        "id": reply.head.id,
        "object": "chat.completion",
        "created": reply.head.created,
        "model": state.name,
        "choices": choices,
        "usage": usage(prompt_ids.len(), completion_tokens),
    }))
    .into_response())
}

/// One token of the chat API's `logprobs.content`.
fn logprob_entry(state: &ServeState, id: u32, lp: &TokenLogprob) -> Value {
    let entry = |token: String, logprob: f32| json!({"token": token, "logprob": logprob, "bytes": token.as_bytes()});
    let mut value = entry(state.token_text(id), lp.logprob);
    value["top_logprobs"] = lp
        .top
        .iter()
        .map(|&(t, p)| entry(state.token_text(t), p))
        .collect();
    value
}

/// What every chunk of one streamed reply shares.
struct Reply {
    state: Arc<ServeState>,
    head: Arc<Head>,
}

impl Reply {
    fn delta(
        &self,
        index: usize,
        delta: Value,
        logprobs: Option<Value>,
        finish: Option<&str>,
    ) -> Value {
        self.head.chunk(
            json!([{"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}]),
        )
    }

    /// Server-sent events: each choice opens with the assistant role, then content deltas, then
    /// a chunk with its `finish_reason`; the usage chunk when asked; `[DONE]`.
    fn stream(self, sequences: Vec<choices::Sequence>, prompt_tokens: usize) -> Response {
        let reply = Arc::new(self);
        let opening: Vec<Value> = (0..sequences.len())
            .map(|index| {
                reply.delta(
                    index,
                    json!({"role": "assistant", "content": ""}),
                    None,
                    None,
                )
            })
            .collect();
        let generated = Arc::new(AtomicUsize::new(0));
        let (events_reply, counter) = (reply.clone(), generated.clone());
        let events = choices::merged(sequences).filter_map(move |(index, event)| {
            let reply = &events_reply;
            let chunk = match event {
                ServingEvent::Token { id, text, logprob } => {
                    counter.fetch_add(1, Ordering::Relaxed);
                    let lp = logprob
                        .map(|lp| json!({"content": [logprob_entry(&reply.state, id, &lp)]}));
                    (!text.is_empty() || lp.is_some())
                        .then(|| reply.delta(index, json!({"content": text}), lp, None))
                }
                ServingEvent::Finished { reason } => {
                    Some(reply.delta(index, json!({}), None, Some(finish_reason(reason))))
                }
                ServingEvent::Failed(message) => Some(ApiError::Internal(message).body()),
                ServingEvent::PromptLogprobs(_) => None,
            };
            futures::future::ready(chunk)
        });
        let head = reply.head.clone();
        sse::respond(head, opening, events, prompt_tokens, generated)
    }
}
