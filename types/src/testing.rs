//! Inputs that tests read from the environment (the benchmark data folder, the mlflow client).
//! On a developer's machine a missing input skips the test with a loud line; CI sets the
//! matching `CRUCIBLE_REQUIRE_*` switch, and then a missing input fails the test instead of
//! letting it pass without checking anything.

use std::ffi::OsString;

/// The value of `var`, or `None` (after printing why `test` is skipped) when it is unset and
/// `require` is not set. Panics when `require` is set and `var` is not.
pub fn optional_input(var: &str, require: &str, test: &str) -> Option<OsString> {
    let value = std::env::var_os(var).filter(|v| !v.is_empty());
    match decide(value, std::env::var_os(require).is_some()) {
        Ok(v) => v,
        Err(()) => panic!("{test}: {require} is set, so {var} must be too"),
    }
    .or_else(|| {
        eprintln!("\n*** SKIPPED {test}: {var} is not set ***\n");
        None
    })
}

/// The input when present; nothing when absent and optional; an error when absent and required.
fn decide(value: Option<OsString>, required: bool) -> Result<Option<OsString>, ()> {
    match value {
        None if required => Err(()),
        v => Ok(v),
    }
}

/// The benchmark data folder (`CRUCIBLE_DATA_DIR`), required when `CRUCIBLE_REQUIRE_DATA` is set.
pub fn data_dir(test: &str) -> Option<std::path::PathBuf> {
    optional_input("CRUCIBLE_DATA_DIR", "CRUCIBLE_REQUIRE_DATA", test).map(Into::into)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_required_input_that_is_missing_fails() {
        assert_eq!(decide(None, false), Ok(None));
        assert_eq!(decide(None, true), Err(()));
        assert_eq!(decide(Some("/data".into()), true), Ok(Some("/data".into())));
    }
}
