//! Sampling parameters: the one description of "how to pick the next token" that the API, the
//! job queue, evals and the worker's sampler all share, so a request means the same everywhere.

use serde::{Deserialize, Serialize};

/// How a generation request picks tokens and when it stops.
///
/// `temperature == 0` means greedy decoding (the other filters are then irrelevant). The filters
/// apply in the order top-k, top-p, min-p, on the temperature-scaled distribution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct SamplingParams {
    /// Softmax temperature; 0 selects the most likely token (greedy).
    pub temperature: f32,
    /// Nucleus sampling: keep the smallest set of tokens whose probability sums to at least this.
    pub top_p: f32,
    /// Keep only the k most likely tokens; 0 disables the filter.
    pub top_k: u32,
    /// Drop tokens whose probability is below `min_p` times the most likely token's probability.
    pub min_p: f32,
    /// Seed of the request's own random generator: the same seed gives the same output.
    pub seed: u64,
    /// Upper bound on generated tokens (the prompt does not count).
    pub max_new_tokens: u32,
    /// Token ids that end generation (in addition to the model's end-of-sequence tokens).
    pub stop_token_ids: Vec<u32>,
    /// Strings that end generation; the returned text stops right before the first one.
    pub stop: Vec<String>,
    /// Keep generating past the model's end-of-sequence tokens (benchmarks, fixed-length
    /// parity runs); `stop_token_ids` still apply.
    pub ignore_eos: bool,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
            min_p: 0.0,
            seed: 0,
            max_new_tokens: 256,
            stop_token_ids: Vec::new(),
            stop: Vec::new(),
            ignore_eos: false,
        }
    }
}

/// Why a sequence stopped generating.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// An end-of-sequence or stop token was produced.
    StopToken,
    /// A stop string appeared in the text.
    StopString,
    /// `max_new_tokens` was reached.
    Length,
    /// The caller stopped generation before this sequence finished (RL early termination); the
    /// text is partial and is not used.
    Aborted,
}

impl SamplingParams {
    /// Greedy decoding with the given budget: the deterministic setting tests and evals start from.
    pub fn greedy(max_new_tokens: u32) -> Self {
        Self {
            temperature: 0.0,
            max_new_tokens,
            ..Self::default()
        }
    }

    /// Checks ranges so that a bad request is refused with the field's name, not sampled oddly.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return Err(format!(
                "temperature must be >= 0, got {}",
                self.temperature
            ));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(format!("top_p must be in (0, 1], got {}", self.top_p));
        }
        if !(0.0..=1.0).contains(&self.min_p) {
            return Err(format!("min_p must be in [0, 1], got {}", self.min_p));
        }
        if self.stop.iter().any(String::is_empty) {
            return Err("stop strings must not be empty".to_string());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_fields_take_defaults_and_unknown_fields_are_refused() {
        let p: SamplingParams =
            serde_json::from_str(r#"{"temperature":0.6,"top_p":0.95}"#).unwrap();
        assert_eq!(p.temperature, 0.6);
        assert_eq!(p.top_k, 0);
        assert_eq!(p.max_new_tokens, 256);
        let err = serde_json::from_str::<SamplingParams>(r#"{"temp":1}"#).unwrap_err();
        assert!(err.to_string().contains("temp"));
    }

    #[test]
    fn validate_names_the_bad_field() {
        let p = SamplingParams {
            top_p: 0.0,
            ..SamplingParams::default()
        };
        assert!(p.validate().unwrap_err().contains("top_p"));
        assert!(SamplingParams::greedy(4).validate().is_ok());
    }
}
