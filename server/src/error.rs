//! The one error type of the HTTP layer: every handler returns it, and only `IntoResponse` picks
//! status codes. Internal errors reach the client as a plain 500; their cause rides on the
//! response as an [`ErrorCause`] and [`log_server_errors`] logs it with the request, for every
//! API (REST, MLflow) and for panics alike.

use axum::Json;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use crucible_types::{ApiError, ApiErrorBody};
use std::sync::Arc;

/// `Result` for handlers and store functions.
pub type Result<T, E = AppError> = std::result::Result<T, E>;

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Bad input; names the field so the client can fix it.
    #[error("{message}")]
    Invalid { field: String, message: String },
    /// The thing does not exist (or is not visible to the caller).
    #[error("{0} not found")]
    NotFound(String),
    /// Something a request body names (`spec.model_id`, `source.path`) does not exist or is not
    /// the caller's: a 404 like any other not-found, naming the field that pointed at it.
    #[error("{message}")]
    Missing { field: String, message: String },
    /// No token, or an unknown/revoked one.
    #[error("{0}")]
    Unauthorized(String),
    /// The write contradicts stored state (e.g. changing a logged param).
    #[error("{message}")]
    Conflict {
        field: Option<String>,
        message: String,
    },
    /// The body is larger than the route accepts.
    #[error("{0}")]
    TooLarge(String),
    /// A worker reports on a job whose lease it no longer holds: it must stop working on it.
    #[error("{0}")]
    LeaseLost(String),
    /// A database failure: logged, never shown.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    /// Another failure inside the server (the artifact store, encoding the metrics page):
    /// logged, never shown.
    #[error("{0}")]
    Internal(String),
}

impl AppError {
    /// Shorthand for the most common error.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        AppError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    /// [`AppError::Missing`] on `field`.
    pub fn missing(field: impl Into<String>, message: impl Into<String>) -> Self {
        AppError::Missing {
            field: field.into(),
            message: message.into(),
        }
    }

    /// A lookup's "not found" as the fault of the body `field` that named the thing; any other
    /// error stays as it is.
    pub fn named_by(self, field: impl Into<String>) -> Self {
        match self {
            AppError::NotFound(what) => AppError::missing(field, format!("{what} not found")),
            other => other,
        }
    }

    /// The HTTP status and stable code the client sees.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            AppError::Invalid { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_field"),
            AppError::NotFound(_) | AppError::Missing { .. } => {
                (StatusCode::NOT_FOUND, "not_found")
            }
            AppError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            AppError::Conflict { .. } => (StatusCode::CONFLICT, "conflict"),
            AppError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            AppError::LeaseLost(_) => (StatusCode::CONFLICT, "lease_lost"),
            AppError::Db(sqlx::Error::RowNotFound) => (StatusCode::NOT_FOUND, "not_found"),
            AppError::Db(_) | AppError::Internal(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        }
    }

    /// The body the client sees; internal details stay in the log.
    pub fn body(&self) -> ApiErrorBody {
        let (status, code) = self.status_and_code();
        let field = match self {
            AppError::Invalid { field, .. } | AppError::Missing { field, .. } => {
                Some(field.clone())
            }
            AppError::Conflict { field, .. } => field.clone(),
            AppError::LeaseLost(_) => Some("worker_id".into()),
            AppError::TooLarge(_) => Some("body".into()),
            _ => None,
        };
        let message = if status.is_server_error() {
            "internal server error".to_string()
        } else {
            self.to_string()
        };
        ApiErrorBody {
            code: code.to_string(),
            message,
            field,
        }
    }
}

impl AppError {
    /// Puts the cause of a server error on `response`, for [`log_server_errors`].
    pub fn attach_cause(&self, response: &mut Response) {
        if self.status_and_code().0.is_server_error() {
            response
                .extensions_mut()
                .insert(ErrorCause(format!("{self:?}").into()));
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, _) = self.status_and_code();
        let mut response = (status, Json(ApiError { error: self.body() })).into_response();
        self.attach_cause(&mut response);
        response
    }
}

/// Why a request failed inside the server, kept out of the body the client sees.
#[derive(Debug, Clone)]
pub struct ErrorCause(pub Arc<str>);

/// Logs every 5xx once, with the method, the path and the cause its error attached.
pub async fn log_server_errors(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let response = next.run(request).await;
    if response.status().is_server_error() {
        let cause = response
            .extensions()
            .get::<ErrorCause>()
            .map_or("no cause recorded (a panic or a layer)", |c| &c.0);
        tracing::error!(%method, %path, status = response.status().as_u16(), cause, "request failed");
    }
    response
}

impl From<crucible_types::Invalid> for AppError {
    fn from(e: crucible_types::Invalid) -> Self {
        AppError::Invalid {
            field: e.field,
            message: e.message,
        }
    }
}
