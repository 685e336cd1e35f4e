//! The one shape of a validation failure: the JSON path of the field at fault and why. Every
//! `validate()` of this crate returns it, so the server, the worker, the CLI and the dashboard
//! form all name the same field for the same mistake.

use std::fmt;

/// A field that failed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// JSON path of the field (`spec.sampling.temperature`, `spec.benchmarks[1]`).
    pub field: String,
    /// What is wrong, in words a user can act on.
    pub message: String,
}

impl Invalid {
    /// A failure of `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The same failure seen from the enclosing object (`temperature` under `spec.sampling`).
    pub fn under(mut self, prefix: &str) -> Self {
        self.field = if self.field.is_empty() {
            prefix.to_string()
        } else if self.field.starts_with('[') {
            format!("{prefix}{}", self.field)
        } else {
            format!("{prefix}.{}", self.field)
        };
        self
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for Invalid {}

/// The rule for text a client chooses as a label (names, keys): 1 to `max_chars` characters, not
/// only whitespace, no control characters. The OpenAPI document states it as a pattern.
pub fn check_label(field: &str, text: &str, max_chars: usize) -> Result<(), Invalid> {
    if text.trim().is_empty() || text.chars().count() > max_chars {
        return Err(Invalid::new(
            field,
            format!("must have 1 to {max_chars} characters, not all blank"),
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(Invalid::new(field, "must not contain control characters"));
    }
    Ok(())
}

/// The characters [`check_label`] refuses anywhere (Unicode's control characters), as a JSON
/// Schema pattern that matches a string containing one.
pub const CONTROL_CHARACTER: &str = "[\\u0000-\\u001f\\u007f-\\u009f]";

/// [`check_label`] as JSON Schema, for the OpenAPI document: a non-space character somewhere and
/// no control character anywhere. Both are searches, not anchored matches: a pattern ending in
/// `$` would also admit a trailing newline in the regex engines that generators use.
#[cfg(feature = "openapi")]
pub fn label_schema(max_chars: usize) -> utoipa::openapi::schema::Object {
    let mut schema = utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .min_length(Some(1))
        .max_length(Some(max_chars))
        .pattern(Some("\\S"))
        .build();
    excluding(&mut schema, CONTROL_CHARACTER);
    schema
}

/// Adds `not: {type: string, pattern}` to a string schema: no string matching `pattern` (the
/// type keeps a `null` of an optional field allowed). utoipa has no builder for `not`; JSON
/// Schema in OpenAPI 3.1 has the keyword.
#[cfg(feature = "openapi")]
pub fn excluding(schema: &mut utoipa::openapi::schema::Object, pattern: &str) {
    schema
        .extensions
        .get_or_insert_with(Default::default)
        .insert(
            "not".into(),
            serde_json::json!({ "type": "string", "pattern": pattern }),
        );
}

/// Longest display name (of a project, run, dataset, model or worker), in characters: the
/// database's `CHECK` on the name columns.
pub const MAX_NAME_CHARS: usize = 200;

/// A display name: 1 to [`MAX_NAME_CHARS`] characters, not blank, no control characters; the
/// one rule for every name a client chooses (projects, runs, datasets, models, workers).
pub fn check_name(field: &str, name: &str) -> Result<(), Invalid> {
    check_label(field, name, MAX_NAME_CHARS)
}

/// [`check_name`] as JSON Schema, for every name field of the OpenAPI document.
#[cfg(feature = "openapi")]
pub fn name_schema() -> utoipa::openapi::schema::Object {
    label_schema(MAX_NAME_CHARS)
}

/// [`name_schema`] for an optional name, which may also be `null`.
#[cfg(feature = "openapi")]
pub fn optional_name_schema() -> utoipa::openapi::schema::Object {
    let mut schema = name_schema();
    schema.schema_type = [
        utoipa::openapi::schema::Type::String,
        utoipa::openapi::schema::Type::Null,
    ]
    .into_iter()
    .collect();
    schema
}

/// Refuses an unsigned setting beyond a signed 64-bit integer: every integer of the API fits
/// one (Postgres `bigint`, and the `int64` format the OpenAPI document gives them).
pub(crate) fn fits_int64(field: &str, value: u64) -> Result<(), Invalid> {
    if i64::try_from(value).is_ok() {
        Ok(())
    } else {
        Err(Invalid::new(field, format!("must be at most {}", i64::MAX)))
    }
}

/// Refuses `value` outside `range` with the range in the message.
pub(crate) fn in_range<T>(
    field: &str,
    value: T,
    range: std::ops::RangeInclusive<T>,
) -> Result<(), Invalid>
where
    T: PartialOrd + fmt::Display + Copy,
{
    if range.contains(&value) {
        Ok(())
    } else {
        Err(Invalid::new(
            field,
            format!(
                "must be between {} and {}, got {value}",
                range.start(),
                range.end()
            ),
        ))
    }
}

/// Refuses NaN, infinities and values outside `range`.
pub(crate) fn finite_in(
    field: &str,
    value: f64,
    range: std::ops::RangeInclusive<f64>,
) -> Result<(), Invalid> {
    if value.is_finite() {
        in_range(field, value, range)
    } else {
        Err(Invalid::new(
            field,
            format!("must be a finite number, got {value}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_nest_and_ranges_name_their_bounds() {
        let e = Invalid::new("temperature", "x")
            .under("sampling")
            .under("spec");
        assert_eq!(e.field, "spec.sampling.temperature");
        assert_eq!(
            Invalid::new("[2]", "x").under("benchmarks").field,
            "benchmarks[2]"
        );
        let e = in_range("n", 0u32, 1..=4).unwrap_err();
        assert_eq!(e.to_string(), "n: must be between 1 and 4, got 0");
        assert!(finite_in("lr", f64::NAN, 0.0..=1.0).is_err());
        assert!(finite_in("lr", 0.5, 0.0..=1.0).is_ok());
    }
}
