//! MiMo's multi-token-prediction (MTP) layer, as Xiaomi's vLLM code runs it.
//!
//! Given the main model's hidden state `h_t` taken **before** the final norm and the embedding of
//! the token that follows position `t` (zeroed where the position is 0), the layer normalises
//! both separately, projects `[h; e]` (hidden first) back to the model width, runs one full
//! decoder block with its own KV cache and a final norm. The main model's LM head then turns
//! the result into draft logits for the token after next.

use candle_core::{Module, Tensor};
use candle_nn::Linear;

use super::ModelError;
use super::config::MimoConfig;
use super::kv_cache::KvCache;
use super::layers::{BlockWeights, DecoderLayer, RmsNorm, StepContext};
use super::weights::Weights;

/// One MTP layer, stored under `model.mtp_layers.{k}` with no `mtp_block.` segment.
#[derive(Debug, Clone)]
pub struct MtpLayer {
    token_layernorm: RmsNorm,
    hidden_layernorm: RmsNorm,
    input_proj: Linear,
    block: DecoderLayer,
    final_layernorm: RmsNorm,
}

impl MtpLayer {
    /// Loads the layer whose tensors live under `prefix`.
    pub(crate) fn load(w: &Weights, prefix: &str, cfg: &MimoConfig) -> Result<Self, ModelError> {
        let (n, eps) = (cfg.hidden_size, cfg.rms_norm_eps);
        Ok(Self {
            token_layernorm: RmsNorm::load(w, &format!("{prefix}.token_layernorm"), n, eps)?,
            hidden_layernorm: RmsNorm::load(w, &format!("{prefix}.hidden_layernorm"), n, eps)?,
            input_proj: Linear::new(
                w.get(&format!("{prefix}.input_proj.weight"), &[n, 2 * n])?,
                None,
            ),
            block: DecoderLayer::load(w, prefix, cfg)?,
            final_layernorm: RmsNorm::load(w, &format!("{prefix}.final_layernorm"), n, eps)?,
        })
    }

    /// The layer's tensors, for backends that run it outside candle.
    pub(crate) fn weights(&self) -> MtpWeights<'_> {
        MtpWeights {
            token_norm: self.token_layernorm.weight(),
            hidden_norm: self.hidden_layernorm.weight(),
            input_proj: self.input_proj.weight(),
            block: self.block.weights(),
            final_norm: self.final_layernorm.weight(),
        }
    }

    /// Normalised output `(batch, t, hidden)` from pre-norm `hidden` and next-token `embeds`.
    pub(crate) fn forward(
        &self,
        hidden: &Tensor,
        embeds: &Tensor,
        ctx: &StepContext,
        cache: &mut KvCache,
    ) -> candle_core::Result<Tensor> {
        let (b, t, _) = embeds.dims3()?;
        // Position 0 has no previous hidden state in the DeepSeek-style scheme, so vLLM zeroes the
        // embedding there; parity requires the same.
        let keep: Vec<f32> = ctx.positions.iter().map(|&p| f32::from(p != 0)).collect();
        let keep = Tensor::from_vec(keep, (b, t, 1), embeds.device())?.to_dtype(embeds.dtype())?;
        let embeds = embeds.broadcast_mul(&keep)?;
        let e = self.token_layernorm.forward(&embeds)?;
        let h = self.hidden_layernorm.forward(hidden)?;
        let x = self.input_proj.forward(&Tensor::cat(&[&h, &e], 2)?)?;
        let x = self.block.forward(&x, ctx, cache, 0)?;
        self.final_layernorm.forward(&x)
    }
}

/// The tensors of one MTP layer.
pub(crate) struct MtpWeights<'a> {
    pub(crate) token_norm: &'a Tensor,
    pub(crate) hidden_norm: &'a Tensor,
    /// `(hidden, 2 · hidden)`: the normalised hidden state first, then the token embedding.
    pub(crate) input_proj: &'a Tensor,
    pub(crate) block: BlockWeights<'a>,
    pub(crate) final_norm: &'a Tensor,
}
