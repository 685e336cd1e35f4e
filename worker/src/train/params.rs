//! The trainable weights of a MiMo model: one candle `Var` per tensor of the HF checkpoint, kept
//! under the checkpoint's own names and in name order, so that gradient norms, optimizer updates
//! and saved files are computed in the same order every run (bit-identical resumes).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};

use super::TrainError;
use crate::data::rng::SplitMix64;
use crucible_gpu::model::weights::Weights;
use crucible_gpu::model::{LoadOptions, MimoConfig, MimoModel};
use crucible_types::train::Architecture;

/// Initialisation scale of matrices and embeddings (GPT-2/Qwen use 0.02).
const INIT_STD: f64 = 0.02;

/// HF tensor names and shapes of a MiMo model with `cfg`'s dimensions.
fn parameter_shapes(cfg: &MimoConfig) -> Vec<(String, Vec<usize>)> {
    let (h, v, i) = (cfg.hidden_size, cfg.vocab_size, cfg.intermediate_size);
    let (q, kv) = (
        cfg.num_attention_heads * cfg.head_dim,
        cfg.num_key_value_heads * cfg.head_dim,
    );
    let block = |p: &str| {
        vec![
            (format!("{p}.input_layernorm.weight"), vec![h]),
            (format!("{p}.self_attn.q_proj.weight"), vec![q, h]),
            (format!("{p}.self_attn.q_proj.bias"), vec![q]),
            (format!("{p}.self_attn.k_proj.weight"), vec![kv, h]),
            (format!("{p}.self_attn.k_proj.bias"), vec![kv]),
            (format!("{p}.self_attn.v_proj.weight"), vec![kv, h]),
            (format!("{p}.self_attn.v_proj.bias"), vec![kv]),
            (format!("{p}.self_attn.o_proj.weight"), vec![h, q]),
            (format!("{p}.post_attention_layernorm.weight"), vec![h]),
            (format!("{p}.mlp.gate_proj.weight"), vec![i, h]),
            (format!("{p}.mlp.up_proj.weight"), vec![i, h]),
            (format!("{p}.mlp.down_proj.weight"), vec![h, i]),
        ]
    };
    let mut out = vec![("model.embed_tokens.weight".to_string(), vec![v, h])];
    for l in 0..cfg.num_hidden_layers {
        out.extend(block(&format!("model.layers.{l}")));
    }
    out.push(("model.norm.weight".into(), vec![h]));
    out.push(("lm_head.weight".into(), vec![v, h]));
    for k in 0..cfg.num_nextn_predict_layers {
        let p = format!("model.mtp_layers.{k}");
        out.push((format!("{p}.token_layernorm.weight"), vec![h]));
        out.push((format!("{p}.hidden_layernorm.weight"), vec![h]));
        out.push((format!("{p}.input_proj.weight"), vec![h, 2 * h]));
        out.extend(block(&p));
        out.push((format!("{p}.final_layernorm.weight"), vec![h]));
    }
    out
}

/// The `config.json` of a from-scratch model.
pub fn config_json(arch: &Architecture, vocab_size: usize, eos_token_ids: &[u32]) -> String {
    let value = serde_json::json!({
        "architectures": ["MiMoForCausalLM"],
        "model_type": "mimo",
        "vocab_size": vocab_size,
        "hidden_size": arch.hidden_size,
        "intermediate_size": arch.intermediate_size,
        "num_hidden_layers": arch.num_hidden_layers,
        "num_attention_heads": arch.num_attention_heads,
        "num_key_value_heads": arch.num_key_value_heads,
        "hidden_act": "silu",
        "max_position_embeddings": arch.max_position_embeddings,
        "rope_theta": arch.rope_theta,
        "rms_norm_eps": 1e-5,
        "tie_word_embeddings": false,
        "use_sliding_window": false,
        "attention_dropout": 0.0,
        "num_nextn_predict_layers": arch.num_nextn_predict_layers,
        "eos_token_id": eos_token_ids,
        "torch_dtype": "float32",
    });
    serde_json::to_string_pretty(&value).expect("a JSON value always serialises")
}

/// Trainable variables by HF name.
pub struct Parameters {
    config: MimoConfig,
    /// The `config.json` text the model was created from, written back on export.
    config_json: String,
    vars: BTreeMap<String, Var>,
}

impl Parameters {
    /// Fresh weights: matrices N(0, 0.02²), output projections scaled by 1/√(2·layers) (so the
    /// residual stream does not grow with depth), norms 1, biases 0, drawn from `seed`.
    pub fn init(config_json: String, seed: u64, device: &Device) -> Result<Self, TrainError> {
        let config = MimoConfig::from_json(&config_json)?;
        let mut rng = SplitMix64::new(seed);
        let residual_scale = 1.0 / ((2 * config.num_hidden_layers.max(1)) as f64).sqrt();
        let mut vars = BTreeMap::new();
        // Draw in the fixed order of `parameter_shapes`, not map order.
        for (name, shape) in parameter_shapes(&config) {
            let n: usize = shape.iter().product();
            let values: Vec<f32> = if name.ends_with("norm.weight") {
                vec![1.0; n]
            } else if name.ends_with(".bias") {
                vec![0.0; n]
            } else {
                let std = if name.ends_with("o_proj.weight") || name.ends_with("down_proj.weight") {
                    INIT_STD * residual_scale
                } else {
                    INIT_STD
                };
                (0..n).map(|_| (rng.normal() * std) as f32).collect()
            };
            let tensor = Tensor::from_vec(values, shape, device)?;
            vars.insert(name, Var::from_tensor(&tensor)?);
        }
        Ok(Self {
            config,
            config_json,
            vars,
        })
    }

    /// The weights of an HF-format folder, as f32 variables.
    pub fn load(dir: &Path, device: &Device) -> Result<Self, TrainError> {
        let path = dir.join("config.json");
        let config_json = std::fs::read_to_string(&path).map_err(|e| TrainError::Io {
            path: path.clone(),
            message: e.to_string(),
        })?;
        // Parse through the file so that errors name it.
        MimoConfig::from_file(&path)?;
        let weights = Weights::open(dir, DType::F32, device)?;
        Self::from_lookup(config_json, |name, shape| Ok(weights.get(name, shape)?))
    }

    /// Variables for every tensor of `config`'s model, read through `get(name, shape)`.
    pub(crate) fn from_lookup(
        config_json: String,
        mut get: impl FnMut(&str, &[usize]) -> Result<Tensor, TrainError>,
    ) -> Result<Self, TrainError> {
        let config = MimoConfig::from_json(&config_json)?;
        let mut vars = BTreeMap::new();
        for (name, shape) in parameter_shapes(&config) {
            let tensor = get(&name, &shape)?;
            vars.insert(name, Var::from_tensor(&tensor)?);
        }
        Ok(Self {
            config,
            config_json,
            vars,
        })
    }

    /// The model's `config.json` text.
    pub fn config_json(&self) -> &str {
        &self.config_json
    }

    /// The model's configuration.
    pub fn config(&self) -> &MimoConfig {
        &self.config
    }

    /// Variables in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Var)> {
        self.vars.iter()
    }

    /// Number of scalar weights.
    pub fn count(&self) -> usize {
        self.vars.values().map(|v| v.elem_count()).sum()
    }

    /// A model whose forward pass is differentiable with respect to these variables. Built per
    /// step: it concatenates the fused q/k/v and gate/up matrices from the current values.
    pub fn model(&self) -> Result<MimoModel, TrainError> {
        self.build(|t| t.clone(), Weights::from_tensors)
    }

    /// A model of the current values for generation (RL rollouts): detached tensors and the fused
    /// inference kernels, so decoding is as fast as a loaded checkpoint and records no graph.
    pub fn inference_model(&self) -> Result<MimoModel, TrainError> {
        self.build(Tensor::detach, Weights::from_tensors_for_inference)
    }

    fn build(
        &self,
        take: impl Fn(&Tensor) -> Tensor,
        weights: impl FnOnce(HashMap<String, Tensor>) -> Weights,
    ) -> Result<MimoModel, TrainError> {
        let tensors: HashMap<String, Tensor> = self
            .vars
            .iter()
            .map(|(k, v)| (k.clone(), take(v.as_tensor())))
            .collect();
        let device = self
            .vars
            .values()
            .next()
            .map(|v| v.device().clone())
            .unwrap_or(Device::Cpu);
        let opts = LoadOptions {
            dtype: DType::F32,
            device,
            load_mtp: true,
            wgpu: None,
        };
        Ok(MimoModel::from_weights(
            self.config.clone(),
            &weights(tensors),
            &opts,
        )?)
    }

    /// Writes `config.json` and the weights as `model.safetensors` (HF names, f32) to `dir`.
    pub fn save_hf(&self, dir: &Path) -> Result<(), TrainError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |e: std::io::Error| TrainError::Io {
                path,
                message: e.to_string(),
            }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let config = dir.join("config.json");
        std::fs::write(&config, &self.config_json).map_err(io(&config))?;
        let tensors: Vec<(&String, &Tensor)> =
            self.vars.iter().map(|(k, v)| (k, v.as_tensor())).collect();
        let path = dir.join("model.safetensors");
        safetensors::serialize_to_file(tensors, None, &path).map_err(|e| TrainError::Io {
            path,
            message: e.to_string(),
        })
    }
}
