//! Inputs that tests read from the environment (the benchmark data folder, the mlflow client,
//! Prometheus's parser).
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

/// The Python with Prometheus's client library (`CRUCIBLE_PROMETHEUS_PYTHON`), required when
/// `CRUCIBLE_REQUIRE_PROMETHEUS` is set: its OpenMetrics parser checks the `/metrics` pages.
pub fn prometheus_python(test: &str) -> Option<OsString> {
    optional_input(
        "CRUCIBLE_PROMETHEUS_PYTHON",
        "CRUCIBLE_REQUIRE_PROMETHEUS",
        test,
    )
}

/// One sample of a metrics page, as Prometheus's parser read it (`name` includes the suffix:
/// `_total`, `_bucket`, `_count`).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct MetricSample {
    pub name: String,
    pub labels: std::collections::BTreeMap<String, String>,
    pub value: f64,
}

/// Parses an OpenMetrics page with `prometheus_client`'s strict parser run by `python`;
/// panics with the parser's message when the page is not valid OpenMetrics.
pub fn parse_openmetrics(python: &std::ffi::OsStr, page: &str) -> Vec<MetricSample> {
    use std::io::Write;
    const PARSE: &str = "import json, sys\n\
from prometheus_client.openmetrics.parser import text_string_to_metric_families\n\
print(json.dumps([{'name': s.name, 'labels': s.labels, 'value': s.value}\n\
    for f in text_string_to_metric_families(sys.stdin.read()) for s in f.samples]))\n";
    let mut child = std::process::Command::new(python)
        .args(["-c", PARSE])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("cannot run the Prometheus parser's python");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(page.as_bytes())
        .expect("cannot feed the parser");
    let out = child.wait_with_output().expect("the parser did not finish");
    assert!(
        out.status.success(),
        "not a valid OpenMetrics page: {}\n{page}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the parser printed no JSON")
}

/// The value of the sample `name` whose labels include every pair of `labels`, if there is one.
pub fn sample_value(samples: &[MetricSample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).is_some_and(|l| l == v))
        })
        .map(|s| s.value)
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
