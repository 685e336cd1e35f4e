//! Running a request's choices on the engine: submitting them all or none, following each
//! sequence's events (and timing them for the metrics), and collecting a sequence's output.

use std::sync::Arc;
use std::time::Instant;

use crucible_gpu::engine::serving::{ServingEvent, ServingRequest, TokenLogprob};
use crucible_types::sampling::FinishReason;
use futures::stream::{BoxStream, StreamExt};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::ServeState;
use crate::error::ApiError;

/// One choice's sequence on the engine.
pub struct Sequence {
    events: UnboundedReceiver<ServingEvent>,
    arrived: Instant,
    previous: Option<Instant>,
    ended: bool,
    state: Arc<ServeState>,
}

impl Sequence {
    /// The next event, timed for the metrics; `None` after the last (`Finished` or `Failed`;
    /// a sequence the engine dropped unfinished ends `Failed`).
    pub async fn next(&mut self) -> Option<ServingEvent> {
        if self.ended {
            return None;
        }
        let Some(event) = self.events.recv().await else {
            self.ended = true;
            return Some(ServingEvent::Failed(
                "the engine dropped the sequence".into(),
            ));
        };
        let now = Instant::now();
        self.ended = matches!(
            event,
            ServingEvent::Finished { .. } | ServingEvent::Failed(_)
        );
        match &event {
            ServingEvent::Token { .. } => {
                let gap = self.previous.map(|p| now.duration_since(p).as_secs_f64());
                self.state
                    .metrics
                    .token(gap, now.duration_since(self.arrived).as_secs_f64());
                self.previous = Some(now);
            }
            ServingEvent::Finished { reason } => self.state.metrics.finished(
                finish_reason(*reason),
                now.duration_since(self.arrived).as_secs_f64(),
            ),
            _ => {}
        }
        Some(event)
    }
}

/// Submits every choice, or none: a choice the engine refuses cancels those already queued
/// (their receivers are dropped) and the request fails with the refusal.
pub fn submit(
    state: &Arc<ServeState>,
    requests: Vec<ServingRequest>,
) -> Result<Vec<Sequence>, ApiError> {
    let arrived = Instant::now();
    let mut sequences = Vec::with_capacity(requests.len());
    for request in requests {
        let events = state.engine.submit(request)?;
        sequences.push(Sequence {
            events,
            arrived,
            previous: None,
            ended: false,
            state: state.clone(),
        });
    }
    Ok(sequences)
}

/// What one sequence produced.
#[derive(Debug, Default)]
pub struct Output {
    pub token_ids: Vec<u32>,
    pub text: String,
    /// One per generated token when log-probabilities were asked for.
    pub logprobs: Vec<TokenLogprob>,
    pub prompt_logprobs: Option<Vec<Option<TokenLogprob>>>,
    pub finish_reason: Option<FinishReason>,
}

/// Waits for `sequence` to finish.
async fn collect(mut sequence: Sequence) -> Result<Output, ApiError> {
    let mut out = Output::default();
    while let Some(event) = sequence.next().await {
        match event {
            ServingEvent::PromptLogprobs(p) => out.prompt_logprobs = Some(p),
            ServingEvent::Token { id, text, logprob } => {
                out.token_ids.push(id);
                out.text.push_str(&text);
                out.logprobs.extend(logprob);
            }
            ServingEvent::Finished { reason } => {
                out.finish_reason = Some(reason);
                return Ok(out);
            }
            ServingEvent::Failed(message) => return Err(ApiError::Internal(message)),
        }
    }
    Err(ApiError::Internal("the sequence ended twice".into()))
}

/// Waits for every sequence, in order; the first failure fails the request.
pub async fn collect_all(sequences: Vec<Sequence>) -> Result<Vec<Output>, ApiError> {
    futures::future::try_join_all(sequences.into_iter().map(collect)).await
}

/// Every sequence's events as one stream, each tagged with its choice index; the stream ends
/// when every sequence has ended.
pub fn merged(sequences: Vec<Sequence>) -> BoxStream<'static, (usize, ServingEvent)> {
    let streams = sequences.into_iter().enumerate().map(|(index, sequence)| {
        futures::stream::unfold(sequence, move |mut s| async move {
            let event = s.next().await?;
            Some(((index, event), s))
        })
        .boxed()
    });
    futures::stream::select_all(streams).boxed()
}

/// OpenAI's `finish_reason`.
pub fn finish_reason(reason: FinishReason) -> &'static str {
    match reason {
        FinishReason::StopToken | FinishReason::StopString => "stop",
        FinishReason::Length => "length",
        FinishReason::Aborted => "abort",
    }
}
