//! `POST /tokenize`, `POST /detokenize`, `GET /tokenizer_info`: the served tokenizer, so a
//! client can count and build prompts exactly as the model sees them (lm-eval's remote
//! tokenizer reads these three in vLLM's shapes).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use serde_json::{Value, json};

use crate::ServeState;
use crate::chat::render_messages;
use crate::error::ApiError;
use crate::wire::{self, DetokenizeRequest, TokenizeRequest};

pub async fn tokenize(
    State(state): State<Arc<ServeState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let request: TokenizeRequest = wire::parse(&body?)?;
    let tokenizer = state.engine.tokenizer();
    let tokens = match (request.prompt, request.messages) {
        (Some(prompt), None) => tokenizer
            .encode(&prompt, request.add_special_tokens.unwrap_or(true))
            .map_err(|e| ApiError::invalid("prompt", e.to_string()))?,
        (None, Some(messages)) => {
            let text = render_messages(
                &state,
                &messages,
                request.add_generation_prompt.unwrap_or(true),
            )?;
            tokenizer
                .encode(&text, request.add_special_tokens.unwrap_or(false))
                .map_err(|e| ApiError::invalid("messages", e.to_string()))?
        }
        _ => {
            return Err(ApiError::invalid(
                "prompt",
                "give exactly one of `prompt` and `messages`",
            ));
        }
    };
    Ok(Json(json!({
        "count": tokens.len(),
        "max_model_len": state.engine.context_len(),
        "tokens": tokens,
    })))
}

pub async fn detokenize(
    State(state): State<Arc<ServeState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let request: DetokenizeRequest = wire::parse(&body?)?;
    state.check_ids("tokens", &request.tokens)?;
    let prompt = state
        .engine
        .tokenizer()
        .decode(&request.tokens)
        .map_err(|e| ApiError::invalid("tokens", e.to_string()))?;
    Ok(Json(json!({ "prompt": prompt })))
}

pub async fn info(State(state): State<Arc<ServeState>>) -> Json<Value> {
    let tokenizer = state.engine.tokenizer();
    let template = tokenizer.chat_template();
    let eos = tokenizer.eos_token_id().map(|id| state.token_text(id));
    Json(json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": state.engine.context_len(),
        "vocab_size": tokenizer.vocab_size(),
        "eos_token": eos,
        "eos_token_id": tokenizer.eos_token_id(),
        "bos_token": template.and_then(|t| t.bos_token()),
        "chat_template": template.map(|t| t.source()),
    }))
}
