//! Body, query and path extractors whose rejections are the API's JSON errors: a bad field is a
//! 422 naming it, a body over the route's limit a 413.

use crate::error::AppError;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

/// The raw body, bounded by the route's `DefaultBodyLimit` (2 MiB unless the route raises it);
/// one over the limit is a 413 in the API's error format, not axum's plain text.
pub struct ApiBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for ApiBody {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Bytes::from_request(req, state)
            .await
            .map(ApiBody)
            .map_err(|e| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    AppError::TooLarge(e.body_text())
                } else {
                    AppError::invalid("body", e.body_text())
                }
            })
    }
}

/// Like `axum::Json`, but a bad body becomes a 422 naming the JSON path that failed.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let ApiBody(bytes) = ApiBody::from_request(req, state).await?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Like [`ApiJson`], for bodies holding serde's internally tagged enums (`JobSpec`,
/// `ModelSource`, …): serde reads their tag from a number too (`"kind": 0` is the first
/// variant), which the API's contract does not allow. Every `kind` and `method` in the body must
/// be a string; no free-form JSON rides in these bodies, so those keys are always tags.
pub struct TaggedJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for TaggedJson<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let ApiBody(bytes) = ApiBody::from_request(req, state).await?;
        if let Ok(value) = serde_json::from_slice::<serde_json::Value>(&bytes)
            && let Some(path) = numeric_tag(&value, String::new())
        {
            return Err(AppError::invalid(
                path,
                "must be a string naming the variant",
            ));
        }
        parse_json(&bytes).map(TaggedJson)
    }
}

/// The path of the first `kind` or `method` whose value is not a string (or null).
fn numeric_tag(value: &serde_json::Value, path: String) -> Option<String> {
    use serde_json::Value;
    let join = |key: &str| {
        if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        }
    };
    match value {
        Value::Object(fields) => fields.iter().find_map(|(k, v)| {
            let tag = matches!(k.as_str(), "kind" | "method")
                && !matches!(v, Value::String(_) | Value::Null);
            if tag {
                Some(join(k))
            } else {
                numeric_tag(v, join(k))
            }
        }),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| numeric_tag(v, format!("{path}[{i}]"))),
        _ => None,
    }
}

/// Like [`ApiJson`], but NUL characters in strings become U+FFFD instead of a 422: model output
/// (completions, samples) may contain them, and Postgres text cannot.
pub struct LossyJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for LossyJson<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let ApiBody(bytes) = ApiBody::from_request(req, state).await?;
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

/// Deserializes the JSON object in `bytes`, reporting the path of the first bad field
/// (`points[3].value`). Every body of the API is an object: anything else is refused, since serde
/// would read an array into a struct field by field. Strings containing NUL are refused: Postgres
/// cannot store them.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AppError> {
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(AppError::invalid("body", "must be a JSON object"));
    }
    if replace_nul_escapes(bytes).1 {
        return Err(AppError::invalid(
            "body",
            "strings must not contain the NUL character (\\u0000)",
        ));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize(de) {
        Ok(v) => Ok(v),
        Err(first) => {
            // JSON Schema counts `2.0` as an integer and serde does not: read the body again
            // with whole floats spelled as integers before refusing it.
            let respelled = serde_json::from_slice::<serde_json::Value>(bytes)
                .ok()
                .and_then(|mut v| respell_whole_floats(&mut v).then_some(v));
            match respelled {
                Some(v) => serde_path_to_error::deserialize(v).map_err(at_path),
                None => Err(at_path(first)),
            }
        }
    }
}

/// A deserialization failure as a 422 naming the JSON path at fault.
fn at_path<E: std::fmt::Display>(e: serde_path_to_error::Error<E>) -> AppError {
    let path = e.path().to_string();
    let field = if path == "." {
        "body".to_string()
    } else {
        path
    };
    AppError::invalid(field, e.inner().to_string())
}

/// Largest magnitude up to which every whole float is exactly an integer.
const EXACT_INTEGERS: f64 = 9_007_199_254_740_992.0;

/// Rewrites every float with no fractional part (`2.0`) as the integer it equals; true when
/// anything changed. Integers read into float fields unchanged, so only integer fields notice.
fn respell_whole_floats(value: &mut serde_json::Value) -> bool {
    use serde_json::Value;
    match value {
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() <= EXACT_INTEGERS => {
                // Whole and within ±2^53: the cast is exact.
                *value = Value::from(f as i64);
                true
            }
            _ => false,
        },
        Value::Array(items) => items
            .iter_mut()
            .fold(false, |changed, v| respell_whole_floats(v) | changed),
        Value::Object(fields) => fields
            .values_mut()
            .fold(false, |changed, v| respell_whole_floats(v) | changed),
        _ => false,
    }
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

    #[test]
    fn whole_floats_read_as_integers_but_fractions_do_not() {
        #[derive(serde::Deserialize, Debug, PartialEq)]
        struct Point {
            step: i64,
            value: f64,
        }
        let p: Point = parse_json(br#"{"step": 3.0, "value": 2.0}"#).unwrap();
        assert_eq!(
            p,
            Point {
                step: 3,
                value: 2.0
            }
        );
        let e = parse_json::<Point>(br#"{"step": 3.5, "value": 2}"#).unwrap_err();
        assert!(matches!(e, AppError::Invalid { ref field, .. } if field == "step"));
    }

    #[test]
    fn a_tag_given_as_a_number_is_found() {
        let body = serde_json::json!({ "spec": { "kind": "sft", "config": { "schedule": { "kind": 0 } } } });
        assert_eq!(
            numeric_tag(&body, String::new()).as_deref(),
            Some("spec.config.schedule.kind")
        );
        let fine =
            serde_json::json!({ "spec": { "kind": "eval", "speculative": { "method": "off" } } });
        assert_eq!(numeric_tag(&fine, String::new()), None);
    }

    #[test]
    fn only_an_object_is_a_body() {
        #[derive(serde::Deserialize)]
        struct Update {
            #[allow(dead_code)]
            name: Option<String>,
        }
        assert!(parse_json::<Update>(b" {}").is_ok());
        for bad in [&b"[]"[..], b"[null]", b"null", b"\"x\"", b""] {
            let e = parse_json::<Update>(bad).err().expect("refused");
            assert!(matches!(e, AppError::Invalid { ref field, .. } if field == "body"));
        }
    }
}
