//! Server-sent events in the OpenAI streaming shape: `data: <json>` per chunk, ending with
//! `data: [DONE]`.

use std::convert::Infallible;

use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use futures::stream::{self, Stream, StreamExt};
use serde_json::Value;

/// Streams `first`, then `events`, then what `last` gives once `events` ends, then `[DONE]`.
pub fn respond(
    first: Vec<Value>,
    events: impl Stream<Item = Value> + Send + 'static,
    last: impl FnOnce() -> Option<Value> + Send + 'static,
) -> Response {
    let tail = stream::once(async move { last() }).filter_map(futures::future::ready);
    let chunks = stream::iter(first)
        .chain(events)
        .chain(tail)
        .map(|chunk| Event::default().data(chunk.to_string()))
        .chain(stream::once(async { Event::default().data("[DONE]") }))
        .map(Ok::<_, Infallible>);
    Sse::new(chunks).into_response()
}
