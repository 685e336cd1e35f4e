//! The OpenAI-compatible server: Crucible's models behind `/v1/completions`,
//! `/v1/chat/completions`, `/v1/models`, `/tokenize`, `/detokenize`, `/tokenizer_info`,
//! `/health` and `/metrics`, in vLLM's shapes, so that the `openai` client, lm-evaluation-harness
//! and chat UIs work against it unchanged. One engine thread (`crucible_gpu`'s serving engine)
//! decodes every request in one continuous batch.

mod auth;
mod chat;
mod choices;
mod completions;
mod error;
mod metrics;
mod sse;
mod tokenize;
mod wire;

use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use crucible_gpu::engine::serving::ServingEngine;
use serde_json::json;

pub use auth::{Auth, CrucibleAuth};
pub use error::ApiError;
pub use metrics::ServeMetrics;

/// Largest request body (a batch of long token-id prompts fits).
pub const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// What every handler shares: the model's name, its engine, the token policy, the metrics.
pub struct ServeState {
    /// The name clients pass as `model`.
    pub name: String,
    pub engine: ServingEngine,
    pub auth: Auth,
    pub metrics: ServeMetrics,
    /// When the server started (Unix seconds), reported as the model's `created`.
    pub created: i64,
}

impl ServeState {
    /// A server of `engine`'s model under `name`.
    pub fn new(name: impl Into<String>, engine: ServingEngine, auth: Auth) -> Self {
        let name = name.into();
        Self {
            metrics: ServeMetrics::new(&name),
            name,
            engine,
            auth,
            created: unix_now(),
        }
    }

    /// Refuses a request for a model this server does not serve.
    fn check_model(&self, model: &str) -> Result<(), ApiError> {
        if model == self.name {
            return Ok(());
        }
        Err(ApiError::invalid(
            "model",
            format!(
                "the model `{model}` does not exist; this server serves `{}`",
                self.name
            ),
        ))
    }

    /// Refuses token ids outside the vocabulary, naming `field`.
    fn check_ids(&self, field: &str, ids: &[u32]) -> Result<(), ApiError> {
        let vocab = self.engine.vocab_size();
        match ids.iter().find(|&&id| id as usize >= vocab) {
            Some(bad) => Err(ApiError::invalid(
                field,
                format!("token id {bad} is outside the vocabulary (0..{vocab})"),
            )),
            None => Ok(()),
        }
    }

    /// The text of one token as log-probability lists label it.
    fn token_text(&self, id: u32) -> String {
        self.engine.tokenizer().token_text(id).unwrap_or_default()
    }
}

impl From<BytesRejection> for ApiError {
    fn from(e: BytesRejection) -> Self {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge(e.body_text())
        } else {
            ApiError::invalid("body", e.body_text())
        }
    }
}

/// Seconds since the Unix epoch.
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Every route. `/health` and `/metrics` need no token (load balancers and Prometheus probe
/// them); the rest follow the server's [`Auth`].
pub fn router(state: Arc<ServeState>) -> Router {
    let guarded = Router::new()
        .route("/v1/models", get(models))
        .route("/v1/completions", post(completions::handle))
        .route("/v1/chat/completions", post(chat::handle))
        .route("/tokenize", post(tokenize::tokenize))
        .route("/detokenize", post(tokenize::detokenize))
        .route("/tokenizer_info", get(tokenize::info))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require,
        ));
    Router::new()
        .merge(guarded)
        .route("/health", get(health))
        .route("/metrics", get(prometheus))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Serves [`router`] on `listener` until the process ends. Nagle's algorithm is off: a stream
/// writes one small chunk per token, which it would otherwise hold back for the peer's delayed
/// acknowledgement (about 40 ms on Linux).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<ServeState>,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!(error = %e, "could not turn Nagle's algorithm off");
        }
    });
    axum::serve(listener, router(state)).await
}

async fn models(State(state): State<Arc<ServeState>>) -> Response {
    axum::Json(json!({
        "object": "list",
        "data": [{
            "id": state.name,
            "object": "model",
            "created": state.created,
            "owned_by": "crucible",
            "root": state.name,
            "parent": null,
            "max_model_len": state.engine.context_len(),
        }],
    }))
    .into_response()
}

async fn health() -> StatusCode {
    StatusCode::OK
}

async fn prometheus(State(state): State<Arc<ServeState>>) -> Result<Response, ApiError> {
    let page = state
        .metrics
        .encode(state.engine.load())
        .map_err(|e| ApiError::Internal(format!("encoding metrics: {e}")))?;
    Ok(([(header::CONTENT_TYPE, metrics::OPENMETRICS)], page).into_response())
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({"error": {
            "message": "no such route",
            "type": "not_found_error",
            "param": null,
            "code": 404,
        }})),
    )
        .into_response()
}
