//! The one error body every `/api/v1` endpoint returns.

use serde::{Deserialize, Serialize};

/// A 4xx/5xx response body: a machine-readable code, a message for people, and the offending field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiErrorBody {
    /// Stable code such as `invalid_field`, `not_found`, `unauthorized`, `forbidden`, `conflict`.
    pub code: String,
    /// What went wrong, in words.
    pub message: String,
    /// The request field (JSON path, query parameter or JSONL line) that caused the error, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// Wrapper so error bodies read `{"error": {...}}` and never collide with a resource's fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiError {
    /// The error.
    pub error: ApiErrorBody,
}
