//! Who may call the model: anyone (a server on a private port), holders of one API key (vLLM's
//! `--api-key`), or holders of a Crucible token — checked against the Crucible server, and, when
//! the served model is registered there, only tokens of the team that owns it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use uuid::Uuid;

use crate::ServeState;
use crate::error::ApiError;

/// How long an accepted token is trusted before the Crucible server is asked again.
const ACCEPTED_FOR: Duration = Duration::from_secs(60);

/// The bearer-token policy of a server.
pub enum Auth {
    /// No token needed.
    Open,
    /// Exactly this token.
    ApiKey(String),
    /// A token the Crucible server accepts.
    Crucible(CrucibleAuth),
}

/// Tokens checked against a Crucible server, remembered for a minute once accepted.
pub struct CrucibleAuth {
    check_url: String,
    client: reqwest::Client,
    accepted: Mutex<HashMap<String, Instant>>,
}

impl CrucibleAuth {
    /// Checks tokens against the server at `server`: a token passes when it may read the
    /// registered model `model` (so only its team's tokens pass), or any model list without one.
    pub fn new(server: &str, model: Option<Uuid>) -> Self {
        let base = server.trim_end_matches('/');
        let check_url = match model {
            Some(id) => format!("{base}/api/v1/models/{id}"),
            None => format!("{base}/api/v1/models"),
        };
        Self {
            check_url,
            client: reqwest::Client::new(),
            accepted: Mutex::new(HashMap::new()),
        }
    }

    async fn check(&self, token: &str) -> Result<(), ApiError> {
        let now = Instant::now();
        {
            let mut accepted = self.accepted.lock().expect("token cache lock");
            accepted.retain(|_, at| now.duration_since(*at) < ACCEPTED_FOR);
            if accepted.contains_key(token) {
                return Ok(());
            }
        }
        let answer = self
            .client
            .get(&self.check_url)
            .bearer_auth(token)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| ApiError::Internal(format!("the Crucible server did not answer: {e}")))?;
        let status = answer.status();
        if status.is_success() {
            self.accepted
                .lock()
                .expect("token cache lock")
                .insert(token.to_string(), now);
            return Ok(());
        }
        if status.is_client_error() {
            return Err(ApiError::Unauthorized(
                "the token is not a Crucible token of the team that owns this model".into(),
            ));
        }
        Err(ApiError::Internal(format!(
            "the Crucible server answered {status} to a token check"
        )))
    }
}

impl Auth {
    async fn check(&self, token: Option<&str>) -> Result<(), ApiError> {
        let missing =
            || ApiError::Unauthorized("send the token as `Authorization: Bearer <token>`".into());
        match self {
            Auth::Open => Ok(()),
            Auth::ApiKey(key) => match token {
                Some(t) if t == key => Ok(()),
                Some(_) => Err(ApiError::Unauthorized("the API key is not accepted".into())),
                None => Err(missing()),
            },
            Auth::Crucible(crucible) => crucible.check(token.ok_or_else(missing)?).await,
        }
    }
}

/// Middleware: refuses a request whose bearer token the server's policy does not accept.
pub async fn require(
    State(state): State<Arc<ServeState>>,
    request: Request,
    next: Next,
) -> Response {
    let token = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match state.auth.check(token).await {
        Ok(()) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}
