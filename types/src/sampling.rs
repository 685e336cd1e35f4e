//! Sampling parameters: the one description of "how to pick the next token" that the API, the
//! job queue, evals and the worker's sampler all share, so a request means the same everywhere.

use serde::{Deserialize, Serialize};

use crate::validate::{Invalid, finite_in, in_range};

/// Highest temperature a request may ask for (beyond it sampling is noise).
pub const MAX_TEMPERATURE: f32 = 5.0;
/// Largest token budget of one completion (128 Ki tokens, MiMo's longest context).
pub const MAX_NEW_TOKENS: u32 = 131_072;
/// Most stop strings (and stop token ids) one request may give.
pub const MAX_STOPS: usize = 16;
/// Longest stop string, in characters.
pub const MAX_STOP_CHARS: usize = 256;

/// How a generation request picks tokens and when it stops.
///
/// `temperature == 0` means greedy decoding (the other filters are then irrelevant). The filters
/// apply in the order top-k, top-p, min-p, on the temperature-scaled distribution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct SamplingParams {
    /// Softmax temperature; 0 selects the most likely token (greedy).
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 5))]
    pub temperature: f32,
    /// Nucleus sampling: keep the smallest set of tokens whose probability sums to at least this.
    #[cfg_attr(feature = "openapi", schema(exclusive_minimum = 0, maximum = 1))]
    pub top_p: f32,
    /// Keep only the k most likely tokens; 0 disables the filter.
    pub top_k: u32,
    /// Drop tokens whose probability is below `min_p` times the most likely token's probability.
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 1))]
    pub min_p: f32,
    /// Seed of the request's own random generator: the same seed gives the same output.
    pub seed: u64,
    /// Upper bound on generated tokens (the prompt does not count).
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 131072))]
    pub max_new_tokens: u32,
    /// Token ids that end generation (in addition to the model's end-of-sequence tokens).
    #[cfg_attr(feature = "openapi", schema(max_items = 16))]
    pub stop_token_ids: Vec<u32>,
    /// Strings that end generation; the returned text stops right before the first one.
    #[cfg_attr(feature = "openapi", schema(schema_with = stop_schema))]
    pub stop: Vec<String>,
    /// Keep generating past the model's end-of-sequence tokens (benchmarks, fixed-length
    /// parity runs); `stop_token_ids` still apply.
    pub ignore_eos: bool,
}

/// [`SamplingParams::stop`] as JSON Schema.
#[cfg(feature = "openapi")]
fn stop_schema() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
    let stop = ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(MAX_STOP_CHARS));
    ArrayBuilder::new()
        .items(stop)
        .max_items(Some(MAX_STOPS))
        .build()
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
    pub fn validate(&self) -> Result<(), Invalid> {
        finite_in(
            "temperature",
            f64::from(self.temperature),
            0.0..=f64::from(MAX_TEMPERATURE),
        )?;
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(Invalid::new(
                "top_p",
                format!("must be in (0, 1], got {}", self.top_p),
            ));
        }
        finite_in("min_p", f64::from(self.min_p), 0.0..=1.0)?;
        in_range("max_new_tokens", self.max_new_tokens, 1..=MAX_NEW_TOKENS)?;
        if self.stop_token_ids.len() > MAX_STOPS {
            return Err(Invalid::new(
                "stop_token_ids",
                format!("at most {MAX_STOPS} stop tokens"),
            ));
        }
        if self.stop.len() > MAX_STOPS {
            return Err(Invalid::new(
                "stop",
                format!("at most {MAX_STOPS} stop strings"),
            ));
        }
        if let Some(i) = self
            .stop
            .iter()
            .position(|s| s.is_empty() || s.chars().count() > MAX_STOP_CHARS)
        {
            return Err(Invalid::new(
                format!("stop[{i}]"),
                format!("stop strings must have 1 to {MAX_STOP_CHARS} characters"),
            ));
        }
        Ok(())
    }
}

/// Most draft tokens one speculative step may propose (vLLM caps at 32; MTP chains are short).
pub const MAX_DRAFT_TOKENS: u32 = 8;

/// Whether the engine drafts tokens ahead and verifies them in one forward pass (speculative
/// decoding): the one switch `crucible generate`, evals and RL rollouts all pass to the engine.
/// Greedy output is unchanged by it and sampled output keeps its distribution; only speed differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case", tag = "method", deny_unknown_fields)]
pub enum Speculative {
    /// Plain decoding: one token per forward pass.
    #[default]
    Off,
    /// The checkpoint's MTP layers draft `k` tokens from the main model's hidden state.
    Mtp {
        /// Draft tokens per step (at most the number of MTP layers the engine can chain).
        #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 8))]
        k: u32,
    },
}

impl Speculative {
    /// Draft tokens per step (0 when off).
    pub fn draft_tokens(self) -> usize {
        match self {
            Self::Off => 0,
            Self::Mtp { k } => k as usize,
        }
    }

    /// Checks `k` so that a bad setting is refused at submission, not at decode time.
    pub fn validate(self) -> Result<(), Invalid> {
        match self {
            Self::Off => Ok(()),
            Self::Mtp { k } => in_range("speculative.k", k, 1..=MAX_DRAFT_TOKENS),
        }
    }
}

/// `off`, `mtp` (one draft token) or `mtp:K`: the command-line spelling.
impl std::str::FromStr for Speculative {
    type Err = Invalid;

    fn from_str(s: &str) -> Result<Self, Invalid> {
        let parsed = match s.split_once(':') {
            None if s == "off" => Self::Off,
            None if s == "mtp" => Self::Mtp { k: 1 },
            Some(("mtp", k)) => Self::Mtp {
                k: k.parse().map_err(|_| {
                    Invalid::new("speculative", format!("`{k}` is not a draft count"))
                })?,
            },
            _ => {
                return Err(Invalid::new(
                    "speculative",
                    format!("expected off, mtp or mtp:K, got `{s}`"),
                ));
            }
        };
        parsed.validate()?;
        Ok(parsed)
    }
}

impl std::fmt::Display for Speculative {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Off => f.write_str("off"),
            Self::Mtp { k } => write!(f, "mtp:{k}"),
        }
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
        assert_eq!(p.validate().unwrap_err().field, "top_p");
        let hot = SamplingParams {
            temperature: 50.0,
            ..SamplingParams::default()
        };
        assert_eq!(hot.validate().unwrap_err().field, "temperature");
        let long = SamplingParams::greedy(1_000_000_000);
        assert_eq!(long.validate().unwrap_err().field, "max_new_tokens");
        assert_eq!(
            SamplingParams::greedy(0).validate().unwrap_err().field,
            "max_new_tokens"
        );
        assert!(SamplingParams::greedy(4).validate().is_ok());
    }
    #[test]
    fn speculative_parses_its_cli_spelling_and_refuses_bad_k() {
        assert_eq!("off".parse::<Speculative>().unwrap(), Speculative::Off);
        assert_eq!(
            "mtp".parse::<Speculative>().unwrap(),
            Speculative::Mtp { k: 1 }
        );
        let two: Speculative = "mtp:2".parse().unwrap();
        assert_eq!(two, Speculative::Mtp { k: 2 });
        assert_eq!(two.to_string().parse::<Speculative>().unwrap(), two);
        assert_eq!(
            "mtp:0".parse::<Speculative>().unwrap_err().field,
            "speculative.k"
        );
        assert!("eagle".parse::<Speculative>().is_err());
        let json = serde_json::to_string(&two).unwrap();
        assert_eq!(json, r#"{"method":"mtp","k":2}"#);
        assert_eq!(serde_json::from_str::<Speculative>(&json).unwrap(), two);
    }
}
