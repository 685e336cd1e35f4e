//! The building blocks of a Qwen2 decoder block, shared by the main model and its MTP layers:
//! RMSNorm, rotate-half RoPE, GQA attention over the KV cache with q/k/v bias, the SwiGLU MLP,
//! and the pre-norm block that chains them.

use candle_core::{D, DType, Device, Module, Tensor};
use candle_nn::Linear;

use super::ModelError;
use super::config::MimoConfig;
use super::kv_cache::KvCache;
use super::packed::PackedLayout;
use super::weights::Weights;

/// RMSNorm with a learned scale.
#[derive(Debug, Clone)]
pub(crate) struct RmsNorm {
    weight: Tensor,
    eps: f32,
    /// Use elementary (differentiable) ops instead of candle's fused kernel.
    differentiable: bool,
}

impl RmsNorm {
    pub(crate) fn load(w: &Weights, name: &str, size: usize, eps: f64) -> Result<Self, ModelError> {
        Ok(Self {
            weight: w.get(&format!("{name}.weight"), &[size])?,
            eps: eps as f32,
            differentiable: w.differentiable(),
        })
    }

    /// The learned scale, for backends that run the norm outside candle.
    pub(crate) fn weight(&self) -> &Tensor {
        &self.weight
    }

    pub(crate) fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        if self.differentiable {
            return candle_nn::ops::rms_norm_slow(x, &self.weight, self.eps);
        }
        // The fused kernel needs contiguous rows; slices such as "last position" are not.
        candle_nn::ops::rms_norm(&x.contiguous()?, &self.weight, self.eps)
    }
}

/// Softmax over the last axis built from elementary ops, so that gradients flow through it.
/// The row maximum is a constant shift that cancels in the result, so it is detached.
fn softmax_differentiable(x: &Tensor) -> candle_core::Result<Tensor> {
    let shifted = x.broadcast_sub(&x.max_keepdim(D::Minus1)?.detach())?;
    let num = shifted.exp()?;
    num.broadcast_div(&num.sum_keepdim(D::Minus1)?)
}

/// Rotate-half RoPE from elementary ops (candle's fused kernel has no backward pass), for
/// `x` `(batch, heads, t, head_dim)` and tables `(t, head_dim/2)` or `(batch, t, head_dim/2)`.
fn rope_differentiable(x: &Tensor, cos: &Tensor, sin: &Tensor) -> candle_core::Result<Tensor> {
    let widen = |table: &Tensor| -> candle_core::Result<Tensor> {
        let full = Tensor::cat(&[table, table], D::Minus1)?;
        if full.rank() == 2 {
            full.unsqueeze(0)?.unsqueeze(0)
        } else {
            full.unsqueeze(1)
        }
    };
    let half = x.dim(D::Minus1)? / 2;
    let rotated = Tensor::cat(
        &[
            &x.narrow(D::Minus1, half, half)?.neg()?,
            &x.narrow(D::Minus1, 0, half)?,
        ],
        D::Minus1,
    )?;
    x.broadcast_mul(&widen(cos)?)? + rotated.broadcast_mul(&widen(sin)?)?
}

/// Reads several linear layers with the same input width and stacks them into one.
fn fused_linear(
    w: &Weights,
    names: &[&str],
    out_dims: &[usize],
    in_dim: usize,
    bias: bool,
) -> Result<Linear, ModelError> {
    let mut weights = Vec::with_capacity(names.len());
    let mut biases = Vec::with_capacity(names.len());
    for (name, &out) in names.iter().zip(out_dims) {
        weights.push(w.get(&format!("{name}.weight"), &[out, in_dim])?);
        if bias {
            biases.push(w.get(&format!("{name}.bias"), &[out])?);
        }
    }
    let weight = Tensor::cat(&weights, 0)?;
    let bias = if bias {
        Some(Tensor::cat(&biases, 0)?)
    } else {
        None
    };
    Ok(Linear::new(weight, bias))
}

/// Per-step attention inputs shared by every layer: RoPE tables for the new positions and the mask.
pub(crate) struct StepContext {
    /// `(batch, t, head_dim/2)` or `(t, head_dim/2)` when all rows share positions.
    cos: Tensor,
    sin: Tensor,
    mask: Option<Tensor>,
    /// RoPE position of each new token, row-major `(batch, t)`.
    pub(crate) positions: Vec<u32>,
}

/// Cos/sin tables of rotate-half RoPE for every position up to the model's maximum.
#[derive(Debug, Clone)]
pub(crate) struct Rope {
    cos: Tensor,
    sin: Tensor,
}

impl Rope {
    pub(crate) fn new(cfg: &MimoConfig, dtype: DType, device: &Device) -> Result<Self, ModelError> {
        let half = cfg.head_dim / 2;
        let inv_freq: Vec<f32> = (0..half)
            .map(|i| 1.0 / cfg.rope_theta.powf(2.0 * i as f64 / cfg.head_dim as f64) as f32)
            .collect();
        let inv_freq = Tensor::from_vec(inv_freq, (1, half), device)?;
        let positions = Tensor::arange(0u32, cfg.max_position_embeddings as u32, device)?
            .to_dtype(DType::F32)?
            .reshape((cfg.max_position_embeddings, 1))?;
        let freqs = positions.broadcast_mul(&inv_freq)?;
        Ok(Self {
            cos: freqs.cos()?.to_dtype(dtype)?,
            sin: freqs.sin()?.to_dtype(dtype)?,
        })
    }

    /// The `(max_positions, head_dim / 2)` cos and sin tables, for backends that apply RoPE
    /// outside candle (so both use the very same values).
    pub(crate) fn tables(&self) -> (&Tensor, &Tensor) {
        (&self.cos, &self.sin)
    }

    /// Tables and mask for the next `t` columns of `cache`.
    pub(crate) fn step(
        &self,
        cache: &KvCache,
        t: usize,
        dtype: DType,
    ) -> Result<StepContext, ModelError> {
        let positions = cache.positions(t);
        self.check_positions(&positions)?;
        let device = self.cos.device();
        let (cos, sin) = if cache.is_dense() {
            let start = cache.len();
            (self.cos.narrow(0, start, t)?, self.sin.narrow(0, start, t)?)
        } else {
            self.tables_at(&positions, cache.batch_size(), t)?
        };
        Ok(StepContext {
            cos,
            sin,
            mask: cache.mask(t, dtype, device)?,
            positions,
        })
    }

    /// Tables and document-aware causal mask for whole packed rows (training).
    pub(crate) fn packed(
        &self,
        layout: &PackedLayout,
        dtype: DType,
    ) -> Result<StepContext, ModelError> {
        let positions = layout.positions().to_vec();
        self.check_positions(&positions)?;
        let (cos, sin) = self.tables_at(&positions, layout.batch_size(), layout.len())?;
        Ok(StepContext {
            cos,
            sin,
            mask: Some(layout.mask(dtype, self.cos.device())?),
            positions,
        })
    }

    pub(crate) fn check_positions(&self, positions: &[u32]) -> Result<(), ModelError> {
        let max = self.cos.dim(0)?;
        match positions.iter().find(|&&p| p as usize >= max) {
            Some(p) => Err(ModelError::Invalid(format!(
                "position {p} exceeds max_position_embeddings ({max})"
            ))),
            None => Ok(()),
        }
    }

    /// Per-row tables `(b, t, head_dim/2)` for row-major `positions`.
    pub(crate) fn tables_at(
        &self,
        positions: &[u32],
        b: usize,
        t: usize,
    ) -> candle_core::Result<(Tensor, Tensor)> {
        let idx = Tensor::from_slice(positions, positions.len(), self.cos.device())?;
        let half = self.cos.dim(1)?;
        Ok((
            self.cos.index_select(&idx, 0)?.reshape((b, t, half))?,
            self.sin.index_select(&idx, 0)?.reshape((b, t, half))?,
        ))
    }
}

/// Grouped-query self-attention with fused q/k/v projection.
#[derive(Debug, Clone)]
struct Attention {
    qkv: Linear,
    o_proj: Linear,
    num_heads: usize,
    num_kv_heads: usize,
    head_dim: usize,
    /// Use elementary (differentiable) ops for RoPE and softmax.
    differentiable: bool,
}

impl Attention {
    fn load(w: &Weights, prefix: &str, cfg: &MimoConfig) -> Result<Self, ModelError> {
        let (h, kv, d) = (
            cfg.num_attention_heads,
            cfg.num_key_value_heads,
            cfg.head_dim,
        );
        let names = ["q_proj", "k_proj", "v_proj"].map(|n| format!("{prefix}.{n}"));
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        Ok(Self {
            qkv: fused_linear(
                w,
                &names,
                &[h * d, kv * d, kv * d],
                cfg.hidden_size,
                cfg.attention_bias,
            )?,
            o_proj: fused_linear(
                w,
                &[&format!("{prefix}.o_proj")],
                &[cfg.hidden_size],
                h * d,
                false,
            )?,
            num_heads: h,
            num_kv_heads: kv,
            head_dim: d,
            differentiable: w.differentiable(),
        })
    }

    fn forward(
        &self,
        x: &Tensor,
        ctx: &StepContext,
        cache: &mut KvCache,
        layer: usize,
    ) -> candle_core::Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let (h, kv, d) = (self.num_heads, self.num_kv_heads, self.head_dim);
        let qkv = self.qkv.forward(x)?;
        let qkv = qkv.reshape((b, t, h + 2 * kv, d))?;
        let split =
            |start: usize, heads: usize| qkv.narrow(2, start, heads)?.transpose(1, 2)?.contiguous();
        let rope = if self.differentiable {
            rope_differentiable
        } else {
            candle_nn::rotary_emb::rope
        };
        let q = rope(&split(0, h)?, &ctx.cos, &ctx.sin)?;
        let k = rope(&split(h, kv)?, &ctx.cos, &ctx.sin)?;
        let v = split(h + kv, kv)?;
        let (k, v) = cache.append(layer, &k, &v)?;
        let total = k.dim(2)?;

        // The heads sharing a kv head are contiguous, so folding them into the row axis lets one
        // batched matmul serve the whole group without materialising repeated keys and values.
        let group = h / kv;
        let q = (q.reshape((b, kv, group * t, d))? * (1.0 / (d as f64).sqrt()))?;
        let mut scores = q.matmul(&k.t()?)?;
        if let Some(mask) = &ctx.mask {
            scores = scores
                .reshape((b, kv, group, t, total))?
                .broadcast_add(mask)?
                .reshape((b, kv, group * t, total))?;
        }
        let probs = if self.differentiable {
            softmax_differentiable(&scores)?
        } else if scores.dtype() == DType::F32 {
            candle_nn::ops::softmax_last_dim(&scores)?
        } else {
            candle_nn::ops::softmax_last_dim(&scores.to_dtype(DType::F32)?)?
                .to_dtype(scores.dtype())?
        };
        let out = probs.matmul(&v)?;
        let out = out
            .reshape((b, h, t, d))?
            .transpose(1, 2)?
            .reshape((b, t, h * d))?;
        self.o_proj.forward(&out)
    }
}

/// SwiGLU feed-forward: `down(silu(gate(x)) * up(x))`, gate and up fused.
#[derive(Debug, Clone)]
struct Mlp {
    gate_up: Linear,
    down_proj: Linear,
    intermediate: usize,
}

impl Mlp {
    fn load(w: &Weights, prefix: &str, cfg: &MimoConfig) -> Result<Self, ModelError> {
        let i = cfg.intermediate_size;
        let gate_up = fused_linear(
            w,
            &[&format!("{prefix}.gate_proj"), &format!("{prefix}.up_proj")],
            &[i, i],
            cfg.hidden_size,
            false,
        )?;
        let down_proj = fused_linear(
            w,
            &[&format!("{prefix}.down_proj")],
            &[cfg.hidden_size],
            i,
            false,
        )?;
        Ok(Self {
            gate_up,
            down_proj,
            intermediate: i,
        })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let gate_up = self.gate_up.forward(x)?;
        let gate = gate_up.narrow(D::Minus1, 0, self.intermediate)?;
        let up = gate_up.narrow(D::Minus1, self.intermediate, self.intermediate)?;
        self.down_proj
            .forward(&(candle_nn::ops::silu(&gate)? * up)?)
    }
}

/// The tensors of one decoder block as the forward pass uses them (q/k/v and gate/up fused),
/// for backends that run the block outside candle.
pub(crate) struct BlockWeights<'a> {
    pub(crate) input_norm: &'a Tensor,
    pub(crate) qkv: &'a Linear,
    pub(crate) o_proj: &'a Linear,
    pub(crate) post_norm: &'a Tensor,
    pub(crate) gate_up: &'a Linear,
    pub(crate) down_proj: &'a Linear,
}

/// One pre-norm decoder block; also the body of each MTP layer.
#[derive(Debug, Clone)]
pub(crate) struct DecoderLayer {
    input_layernorm: RmsNorm,
    self_attn: Attention,
    post_attention_layernorm: RmsNorm,
    mlp: Mlp,
}

impl DecoderLayer {
    /// Loads the block whose tensors live under `prefix` (e.g. `model.layers.3`).
    pub(crate) fn load(w: &Weights, prefix: &str, cfg: &MimoConfig) -> Result<Self, ModelError> {
        let eps = cfg.rms_norm_eps;
        Ok(Self {
            input_layernorm: RmsNorm::load(
                w,
                &format!("{prefix}.input_layernorm"),
                cfg.hidden_size,
                eps,
            )?,
            self_attn: Attention::load(w, &format!("{prefix}.self_attn"), cfg)?,
            post_attention_layernorm: RmsNorm::load(
                w,
                &format!("{prefix}.post_attention_layernorm"),
                cfg.hidden_size,
                eps,
            )?,
            mlp: Mlp::load(w, &format!("{prefix}.mlp"), cfg)?,
        })
    }

    /// The block's tensors.
    pub(crate) fn weights(&self) -> BlockWeights<'_> {
        BlockWeights {
            input_norm: self.input_layernorm.weight(),
            qkv: &self.self_attn.qkv,
            o_proj: &self.self_attn.o_proj,
            post_norm: self.post_attention_layernorm.weight(),
            gate_up: &self.mlp.gate_up,
            down_proj: &self.mlp.down_proj,
        }
    }

    /// Runs the block on `x` `(batch, t, hidden)`, using layer slot `layer` of `cache`.
    pub(crate) fn forward(
        &self,
        x: &Tensor,
        ctx: &StepContext,
        cache: &mut KvCache,
        layer: usize,
    ) -> candle_core::Result<Tensor> {
        let attn = self
            .self_attn
            .forward(&self.input_layernorm.forward(x)?, ctx, cache, layer)?;
        let x = (x + attn)?;
        let mlp = self
            .mlp
            .forward(&self.post_attention_layernorm.forward(&x)?)?;
        x + mlp
    }
}
