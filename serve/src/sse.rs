//! Server-sent events in the OpenAI streaming shape: `data: <json>` per chunk, the usage chunk
//! when `stream_options.include_usage` asks for it, and `data: [DONE]`.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use futures::stream::{self, Stream, StreamExt};
use serde_json::{Value, json};

/// `usage` of a reply.
pub fn usage(prompt_tokens: usize, completion_tokens: usize) -> Value {
    json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    })
}

/// What every chunk of one streamed reply shares.
pub struct Head {
    pub id: String,
    /// `text_completion` or `chat.completion.chunk`.
    pub object: &'static str,
    pub created: i64,
    pub model: String,
    pub include_usage: bool,
}

impl Head {
    /// A chunk of `choices`; with `include_usage` it carries `"usage": null` (only the last
    /// chunk has the counts).
    pub fn chunk(&self, choices: Value) -> Value {
        let mut chunk = json!({
            "id": self.id,
            "object": self.object,
            "created": self.created,
            "model": self.model,
            "choices": choices,
        });
        if self.include_usage {
            chunk["usage"] = Value::Null;
        }
        chunk
    }
}

/// Streams `first`, then `events`, then — with `include_usage` — one chunk with empty `choices`
/// and the usage of `prompt_tokens` and the `generated` tokens counted meanwhile, then `[DONE]`.
pub fn respond(
    head: Arc<Head>,
    first: Vec<Value>,
    events: impl Stream<Item = Value> + Send + 'static,
    prompt_tokens: usize,
    generated: Arc<AtomicUsize>,
) -> Response {
    let tail = stream::once(async move {
        head.include_usage.then(|| {
            let mut last = head.chunk(json!([]));
            last["usage"] = usage(prompt_tokens, generated.load(Ordering::Relaxed));
            last
        })
    })
    .filter_map(futures::future::ready);
    let chunks = stream::iter(first)
        .chain(events)
        .chain(tail)
        .map(|chunk| Event::default().data(chunk.to_string()))
        .chain(stream::once(async { Event::default().data("[DONE]") }))
        .map(Ok::<_, Infallible>);
    Sse::new(chunks).into_response()
}
