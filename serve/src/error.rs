//! The one error type of the OpenAI-compatible routes, answered in OpenAI's shape:
//! `{"error": {"message", "type", "param", "code"}}`, a 400 naming the field for bad input.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use crucible_gpu::engine::serving::ServingError;
use crucible_types::validate::Invalid;
use serde_json::json;

/// Why a request was not served.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A field is missing, malformed or out of range; `param` names it.
    #[error("{message}")]
    Invalid { param: String, message: String },
    /// The body is over [`crate::MAX_BODY_BYTES`].
    #[error("{0}")]
    TooLarge(String),
    /// No bearer token, or one this server does not accept.
    #[error("{0}")]
    Unauthorized(String),
    /// The model failed or the engine stopped: the server's fault, never the request's.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// A 400 naming `param`.
    pub fn invalid(param: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::Invalid {
            param: param.into(),
            message: message.into(),
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            ApiError::Invalid { .. } => StatusCode::BAD_REQUEST,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The error object, also sent as one event when a stream fails midway.
    pub fn body(&self) -> serde_json::Value {
        let status = self.status();
        let (kind, param) = match self {
            ApiError::Invalid { param, .. } => ("invalid_request_error", Some(param.as_str())),
            ApiError::TooLarge(_) => ("invalid_request_error", Some("body")),
            ApiError::Unauthorized(_) => ("authentication_error", None),
            ApiError::Internal(_) => ("internal_error", None),
        };
        json!({"error": {
            "message": self.to_string(),
            "type": kind,
            "param": param,
            "code": status.as_u16(),
        }})
    }
}

impl From<Invalid> for ApiError {
    fn from(e: Invalid) -> Self {
        ApiError::Invalid {
            param: e.field,
            message: e.message,
        }
    }
}

impl From<ServingError> for ApiError {
    fn from(e: ServingError) -> Self {
        match e {
            ServingError::Invalid(invalid) => invalid.into(),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(message) = &self {
            tracing::error!(%message, "OpenAI route failed");
        }
        (self.status(), Json(self.body())).into_response()
    }
}
