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
