//! `config.json` of a MiMo or Qwen2 checkpoint, read exactly as Hugging Face writes it.
//!
//! Missing keys take the defaults of HF's `Qwen2Config` (which `MiMoConfig` subclasses), so a
//! checkpoint loads the same here as in `transformers`. Anything this implementation does not
//! compute (sliding windows, RoPE scaling, other activations, quantisation) is refused by name
//! instead of being silently ignored.

use std::path::Path;

use serde::Deserialize;

use super::ModelError;

/// Architectures whose forward pass this crate implements.
pub const SUPPORTED_ARCHITECTURES: [&str; 2] = ["MiMoForCausalLM", "Qwen2ForCausalLM"];

/// Hyper-parameters of the decoder (and its MTP layers), resolved from `config.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct MimoConfig {
    /// The architecture named in the file (one of [`SUPPORTED_ARCHITECTURES`]).
    pub architecture: String,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    /// Per-head width; `hidden_size / num_attention_heads` unless the file says otherwise.
    pub head_dim: usize,
    pub max_position_embeddings: usize,
    pub rope_theta: f64,
    pub rms_norm_eps: f64,
    pub tie_word_embeddings: bool,
    /// Whether q/k/v projections carry a bias (always true for Qwen2/MiMo checkpoints).
    pub attention_bias: bool,
    /// Number of MTP layers stored under `model.mtp_layers.{k}`; 0 for plain Qwen2.
    pub num_nextn_predict_layers: usize,
    /// Token ids that end a sequence, from `eos_token_id` (a number or a list).
    pub eos_token_ids: Vec<u32>,
}

/// `eos_token_id` is a number in some configs and a list in others.
#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(u32),
    Many(Vec<u32>),
}

/// The parsed JSON object, read key by key so that a wrongly typed value is reported by its key.
struct RawConfig(serde_json::Map<String, serde_json::Value>);

impl RawConfig {
    /// The value of `key` if present and not null, converted to `T`.
    fn get<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>, String> {
        match self.0.get(key) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(v) => serde_json::from_value(v.clone())
                .map(Some)
                .map_err(|e| format!("key `{key}`: {e}")),
        }
    }
}

// HF `Qwen2Config.__init__` defaults.
const DEFAULT_VOCAB_SIZE: usize = 151_936;
const DEFAULT_HIDDEN_SIZE: usize = 4096;
const DEFAULT_INTERMEDIATE_SIZE: usize = 22_016;
const DEFAULT_NUM_HIDDEN_LAYERS: usize = 32;
const DEFAULT_NUM_ATTENTION_HEADS: usize = 32;
const DEFAULT_MAX_POSITION_EMBEDDINGS: usize = 32_768;
const DEFAULT_ROPE_THETA: f64 = 10_000.0;
const DEFAULT_RMS_NORM_EPS: f64 = 1e-6;

impl MimoConfig {
    /// Reads and checks `config.json`; errors name the file and the offending key.
    pub fn from_file(path: &Path) -> Result<Self, ModelError> {
        let text = std::fs::read_to_string(path).map_err(|source| ModelError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_json(&text).map_err(|e| match e {
            ModelError::Config { message, .. } => ModelError::Config {
                path: path.to_path_buf(),
                message,
            },
            other => other,
        })
    }

    /// Parses the JSON text of a `config.json` (errors carry an empty path).
    pub fn from_json(text: &str) -> Result<Self, ModelError> {
        let bad = |message: String| ModelError::Config {
            path: Default::default(),
            message,
        };
        let raw = RawConfig(serde_json::from_str(text).map_err(|e| bad(e.to_string()))?);
        let get_usize = |key: &str, default: usize| {
            raw.get::<usize>(key)
                .map(|v| v.unwrap_or(default))
                .map_err(bad)
        };
        let get_f64 = |key: &str, default: f64| {
            raw.get::<f64>(key)
                .map(|v| v.unwrap_or(default))
                .map_err(bad)
        };
        let get_bool = |key: &str, default: bool| {
            raw.get::<bool>(key)
                .map(|v| v.unwrap_or(default))
                .map_err(bad)
        };

        let architecture = match raw
            .get::<Vec<String>>("architectures")
            .map_err(bad)?
            .as_deref()
        {
            Some([one]) if SUPPORTED_ARCHITECTURES.contains(&one.as_str()) => one.clone(),
            Some([one]) => {
                return Err(bad(format!(
                    "unsupported architecture {one:?} (supported: {})",
                    SUPPORTED_ARCHITECTURES.join(", ")
                )));
            }
            Some(list) => {
                return Err(bad(format!(
                    "`architectures` must name exactly one architecture, got {list:?}"
                )));
            }
            None => return Err(bad("missing key `architectures`".into())),
        };
        if let Some(act) = raw
            .get::<String>("hidden_act")
            .map_err(bad)?
            .as_deref()
            .filter(|a| *a != "silu")
        {
            return Err(bad(format!(
                "unsupported option hidden_act={act:?} (only \"silu\")"
            )));
        }
        if get_bool("use_sliding_window", false)? {
            return Err(bad("unsupported option use_sliding_window=true".into()));
        }
        if raw.0.get("rope_scaling").is_some_and(|v| !v.is_null()) {
            return Err(bad(
                "unsupported option `rope_scaling` (only plain RoPE)".into()
            ));
        }
        if raw
            .0
            .get("quantization_config")
            .is_some_and(|v| !v.is_null())
        {
            return Err(bad("unsupported option `quantization_config`".into()));
        }

        let hidden_size = get_usize("hidden_size", DEFAULT_HIDDEN_SIZE)?;
        let num_attention_heads = get_usize("num_attention_heads", DEFAULT_NUM_ATTENTION_HEADS)?;
        let num_key_value_heads = get_usize("num_key_value_heads", num_attention_heads)?;
        if num_attention_heads == 0
            || num_key_value_heads == 0
            || num_attention_heads % num_key_value_heads != 0
        {
            return Err(bad(format!(
                "num_attention_heads ({num_attention_heads}) must be a positive multiple of num_key_value_heads ({num_key_value_heads})"
            )));
        }
        let head_dim = match raw.get::<usize>("head_dim").map_err(bad)? {
            Some(d) => d,
            None if hidden_size % num_attention_heads == 0 => hidden_size / num_attention_heads,
            None => {
                return Err(bad(format!(
                    "hidden_size ({hidden_size}) is not divisible by num_attention_heads ({num_attention_heads}) and no head_dim is given"
                )));
            }
        };
        if head_dim % 2 != 0 {
            return Err(bad(format!(
                "head_dim must be even for RoPE, got {head_dim}"
            )));
        }
        let eos_token_ids = match raw.get::<OneOrMany>("eos_token_id").map_err(bad)? {
            Some(OneOrMany::One(id)) => vec![id],
            Some(OneOrMany::Many(ids)) => ids,
            None => Vec::new(),
        };
        Ok(Self {
            architecture,
            vocab_size: get_usize("vocab_size", DEFAULT_VOCAB_SIZE)?,
            hidden_size,
            intermediate_size: get_usize("intermediate_size", DEFAULT_INTERMEDIATE_SIZE)?,
            num_hidden_layers: get_usize("num_hidden_layers", DEFAULT_NUM_HIDDEN_LAYERS)?,
            num_attention_heads,
            num_key_value_heads,
            head_dim,
            max_position_embeddings: get_usize(
                "max_position_embeddings",
                DEFAULT_MAX_POSITION_EMBEDDINGS,
            )?,
            rope_theta: get_f64("rope_theta", DEFAULT_ROPE_THETA)?,
            rms_norm_eps: get_f64("rms_norm_eps", DEFAULT_RMS_NORM_EPS)?,
            tie_word_embeddings: get_bool("tie_word_embeddings", false)?,
            attention_bias: get_bool("attention_bias", true)?,
            num_nextn_predict_layers: get_usize("num_nextn_predict_layers", 0)?,
            eos_token_ids,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mimo_config_with_defaults() {
        let c = MimoConfig::from_json(
            r#"{"architectures":["MiMoForCausalLM"],"hidden_size":4096,"num_attention_heads":32,
                "num_key_value_heads":8,"num_nextn_predict_layers":1,"rope_theta":640000,
                "eos_token_id":151643}"#,
        )
        .unwrap();
        assert_eq!(c.head_dim, 128);
        assert_eq!(c.num_nextn_predict_layers, 1);
        assert_eq!(c.rms_norm_eps, 1e-6);
        assert_eq!(c.vocab_size, 151_936);
        assert!(!c.tie_word_embeddings);
        assert!(c.attention_bias);
        assert_eq!(c.eos_token_ids, vec![151_643]);
        assert_eq!(c.rope_theta, 640_000.0);
    }

    #[test]
    fn qwen2_config_with_eos_list_and_head_dim() {
        let c = MimoConfig::from_json(
            r#"{"architectures":["Qwen2ForCausalLM"],"hidden_size":896,"num_attention_heads":14,
                "num_key_value_heads":2,"head_dim":64,"tie_word_embeddings":true,
                "eos_token_id":[1,2],"rope_scaling":null,"use_sliding_window":false}"#,
        )
        .unwrap();
        assert_eq!(c.head_dim, 64);
        assert!(c.tie_word_embeddings);
        assert_eq!(c.eos_token_ids, vec![1, 2]);
        assert_eq!(c.num_nextn_predict_layers, 0);
    }

    #[test]
    fn unsupported_things_are_named() {
        let cases = [
            (
                r#"{"architectures":["LlamaForCausalLM"]}"#,
                "LlamaForCausalLM",
            ),
            (
                r#"{"architectures":["Qwen2ForCausalLM"],"rope_scaling":{"type":"yarn"}}"#,
                "rope_scaling",
            ),
            (
                r#"{"architectures":["Qwen2ForCausalLM"],"use_sliding_window":true}"#,
                "use_sliding_window",
            ),
            (
                r#"{"architectures":["Qwen2ForCausalLM"],"hidden_act":"gelu"}"#,
                "hidden_act",
            ),
            (r#"{"hidden_size":8}"#, "architectures"),
            (
                r#"{"architectures":["Qwen2ForCausalLM"],"hidden_size":"x"}"#,
                "hidden_size",
            ),
        ];
        for (json, needle) in cases {
            let err = MimoConfig::from_json(json).unwrap_err().to_string();
            assert!(err.contains(needle), "{err:?} should name {needle}");
        }
    }
}
