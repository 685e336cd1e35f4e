//! The submit form: its fields as the browser posts them, turned into a job that the same
//! validation as the API's checks.

use crucible_types::{EvalSpec, JobSpec, SamplingParams, SubmitJob};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The submit form's fields, as the browser posts them (a missing field counts as empty).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct EvalForm {
    /// Model id.
    pub model_id: String,
    /// Benchmark name.
    pub benchmark: String,
    /// Samples per problem.
    pub n_samples: String,
    /// Problems to take (empty: all).
    pub limit: String,
    /// Sampling temperature.
    pub temperature: String,
    /// Token budget per completion.
    pub max_tokens: String,
}

/// Where the form shows an error for each field [`SubmitJob::validate`] can name.
const FORM_FIELDS: &[(&str, &str)] = &[
    ("spec.benchmarks", "benchmark"),
    ("spec.n_samples", "n_samples"),
    ("spec.limit", "limit"),
    ("spec.sampling.temperature", "temperature"),
    ("spec.sampling.max_new_tokens", "max_tokens"),
];

impl EvalForm {
    /// The job the form describes, or the first field that is wrong. Ranges are the API's own
    /// ([`SubmitJob::validate`]), so the form refuses exactly what the server would.
    pub fn to_job(&self) -> Result<SubmitJob, (String, String)> {
        let invalid = |field: &str, message: &str| Err((field.to_string(), message.to_string()));
        let Ok(model_id) = self.model_id.trim().parse::<Uuid>() else {
            return invalid("model_id", "choose a model");
        };
        let benchmark = self.benchmark.trim();
        if benchmark.is_empty() {
            return invalid("benchmark", "choose a benchmark");
        }
        let Ok(n_samples) = parse_opt::<u32>(&self.n_samples) else {
            return invalid("n_samples", "must be a whole number");
        };
        let Ok(limit) = parse_opt::<u32>(&self.limit) else {
            return invalid("limit", "must be a whole number, or empty for all");
        };
        let mut sampling = SamplingParams::default();
        match parse_opt::<f32>(&self.temperature) {
            Ok(t) => sampling.temperature = t.unwrap_or(sampling.temperature),
            Err(()) => return invalid("temperature", "must be a number"),
        }
        match parse_opt::<u32>(&self.max_tokens) {
            Ok(m) => sampling.max_new_tokens = m.unwrap_or(sampling.max_new_tokens),
            Err(()) => return invalid("max_tokens", "must be a whole number"),
        }
        let job = SubmitJob {
            spec: JobSpec::Eval(EvalSpec {
                model_id,
                benchmarks: vec![benchmark.to_string()],
                sampling: Some(sampling),
                n_samples,
                limit,
                preset: None,
                ks: Vec::new(),
                project_id: None,
                speculative: Default::default(),
            }),
            priority: 0,
            requirements: Default::default(),
            max_attempts: None,
        };
        job.validate().map_err(|e| {
            let field = FORM_FIELDS
                .iter()
                .find(|(api, _)| e.field.starts_with(api))
                .map_or(e.field.as_str(), |(_, form)| form);
            (field.to_string(), e.message)
        })?;
        Ok(job)
    }
}

/// Empty means "not given"; anything else must parse.
fn parse_opt<T: std::str::FromStr>(s: &str) -> Result<Option<T>, ()> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    s.parse().map(Some).map_err(|_| ())
}
