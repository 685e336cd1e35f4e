//! A JSON body extractor whose rejections name the offending field in the API's error format.

use crate::error::AppError;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

/// Like `axum::Json`, but a bad body becomes a 422 naming the JSON path that failed.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| AppError::invalid("body", e.body_text()))?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Like [`ApiJson`], but NUL characters in strings become U+FFFD instead of a 422: model output
/// (completions, samples) may contain them, and Postgres text cannot.
pub struct LossyJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for LossyJson<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| AppError::invalid("body", e.body_text()))?;
        let (cleaned, _) = replace_nul_escapes(&bytes);
        parse_json(&cleaned).map(LossyJson)
    }
}

/// The JSON escape of NUL, which Postgres refuses in text and jsonb.
const NUL_ESCAPE: &[u8] = b"\\u0000";
/// Its replacement, U+FFFD.
const REPLACEMENT_ESCAPE: &[u8] = b"\\ufffd";

/// Replaces each `\u0000` escape (not an escaped backslash followed by `u0000`) with `\ufffd`;
/// returns the new bytes and whether anything changed.
fn replace_nul_escapes(bytes: &[u8]) -> (Vec<u8>, bool) {
    let mut out = Vec::with_capacity(bytes.len());
    let mut changed = false;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            if bytes[i..].starts_with(NUL_ESCAPE) {
                out.extend_from_slice(REPLACEMENT_ESCAPE);
                changed = true;
                i += NUL_ESCAPE.len();
            } else {
                // Any other escape: copy the backslash and the escaped character together.
                out.extend_from_slice(&bytes[i..(i + 2).min(bytes.len())]);
                i += 2;
            }
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    (out, changed)
}

/// Deserializes `bytes`, reporting the path of the first bad field (`points[3].value`).
/// Strings containing NUL are refused: Postgres cannot store them.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AppError> {
    if replace_nul_escapes(bytes).1 {
        return Err(AppError::invalid(
            "body",
            "strings must not contain the NUL character (\\u0000)",
        ));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            "body".to_string()
        } else {
            path
        };
        AppError::invalid(field, e.inner().to_string())
    })
}

/// Like `axum::extract::Query`, but a bad parameter becomes a 422 naming it.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> axum::extract::FromRequestParts<S> for ApiQuery<T> {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(ApiQuery)
            .map_err(|e| {
                let path = e.path().to_string();
                let message = e.inner().to_string();
                // serde names a missing parameter only in its message.
                let field = match message.strip_prefix("missing field `") {
                    Some(rest) => rest.trim_end_matches('`').to_string(),
                    None if path == "." => "query".to_string(),
                    None => path,
                };
                AppError::invalid(field, message)
            })
    }
}

/// Like `axum::extract::Path`, but a malformed id becomes a 422 in the API's error format.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> axum::extract::FromRequestParts<S> for ApiPath<T> {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|e| AppError::invalid("path", e.body_text()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_escapes_are_found_but_escaped_backslashes_are_not() {
        let (out, changed) = replace_nul_escapes(br#"{"a":"x\u0000y","b":"\\u0000"}"#);
        assert!(changed);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"a":"x\ufffdy","b":"\\u0000"}"#
        );
        assert!(!replace_nul_escapes(br#"{"b":"\\u0000"}"#).1);
        assert!(parse_json::<serde_json::Value>(br#"{"a":"\u0000"}"#).is_err());
    }
}
