//! The MiMo / Qwen2 decoder: token embedding, pre-norm decoder blocks (GQA attention with
//! rotate-half RoPE and q/k/v bias, SwiGLU MLP), final RMSNorm and the LM head.
//!
//! Weights keep the checkpoint's names (`model.layers.{i}.self_attn.q_proj.weight` …). q/k/v and
//! gate/up are concatenated once at load time so that each block runs two wide matmuls instead of
//! five narrow ones; the arithmetic is the same.

use std::path::Path;
use std::sync::Arc;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::Linear;

use super::ModelError;
use super::config::MimoConfig;
use super::kv_cache::KvCache;
use super::layers::{DecoderLayer, RmsNorm, Rope, StepContext};
use super::mtp::MtpLayer;
use super::packed::PackedLayout;
use super::weights::Weights;
use crate::webgpu::WgpuDevice;
use crate::webgpu::decoder::{DecoderWeights, Readout, WgpuDecoder};

/// Where and in which precision to run a checkpoint.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Compute dtype; weights stored in another dtype are converted while loading.
    pub dtype: DType,
    pub device: Device,
    /// Load the MTP layers (when the checkpoint has them) so draft logits are available.
    pub load_mtp: bool,
    /// Run inference on this wgpu adapter (f32): the weights are uploaded to it and caches
    /// live on it. Training paths (`forward_packed`) still run on `device`, the CPU.
    pub wgpu: Option<Arc<WgpuDevice>>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            dtype: DType::F32,
            device: Device::Cpu,
            load_mtp: true,
            wgpu: None,
        }
    }
}

/// A loaded MiMo (or Qwen2) checkpoint: the main decoder and, when present, its MTP layers.
pub struct MimoModel {
    config: MimoConfig,
    embed_tokens: Tensor,
    layers: Vec<DecoderLayer>,
    norm: RmsNorm,
    lm_head: Linear,
    rope: Rope,
    mtp_layers: Vec<MtpLayer>,
    dtype: DType,
    device: Device,
    /// The same weights on a wgpu adapter, when inference runs there.
    wgpu: Option<WgpuDecoder>,
}

impl MimoModel {
    /// Loads `config.json` and the weights of the checkpoint folder `dir`.
    pub fn load(dir: &Path, opts: &LoadOptions) -> Result<Self, ModelError> {
        if opts.device.is_cpu() && opts.dtype == DType::BF16 {
            return Err(ModelError::Invalid(
                "bf16 compute is not available on the CPU (candle's CPU matmul lacks it); \
                 use f32 (bf16 checkpoints are converted while loading) or f16"
                    .into(),
            ));
        }
        if opts.wgpu.is_some() && !opts.device.is_cpu() {
            return Err(ModelError::Invalid(
                "a model on a wgpu adapter keeps its candle copy on the CPU".into(),
            ));
        }
        let config = MimoConfig::from_file(&dir.join("config.json"))?;
        let weights = Weights::open(dir, opts.dtype, &opts.device)?;
        Self::from_weights(config, &weights, opts)
    }

    /// Builds the model from an already parsed config and opened weights.
    pub fn from_weights(
        config: MimoConfig,
        w: &Weights,
        opts: &LoadOptions,
    ) -> Result<Self, ModelError> {
        let cfg = &config;
        let embed_tokens = w.get(
            "model.embed_tokens.weight",
            &[cfg.vocab_size, cfg.hidden_size],
        )?;
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| DecoderLayer::load(w, &format!("model.layers.{i}"), cfg))
            .collect::<Result<Vec<_>, _>>()?;
        let norm = RmsNorm::load(w, "model.norm", cfg.hidden_size, cfg.rms_norm_eps)?;
        let lm_head = if cfg.tie_word_embeddings {
            Linear::new(embed_tokens.clone(), None)
        } else {
            Linear::new(
                w.get("lm_head.weight", &[cfg.vocab_size, cfg.hidden_size])?,
                None,
            )
        };
        let mtp_layers = if opts.load_mtp {
            (0..cfg.num_nextn_predict_layers)
                .map(|k| MtpLayer::load(w, &format!("model.mtp_layers.{k}"), cfg))
                .collect::<Result<Vec<_>, _>>()?
        } else {
            Vec::new()
        };
        let rope = Rope::new(cfg, opts.dtype, &opts.device)?;
        let wgpu = match &opts.wgpu {
            Some(gpu) => Some(WgpuDecoder::new(
                Arc::clone(gpu),
                cfg,
                &DecoderWeights {
                    embed: &embed_tokens,
                    blocks: layers.iter().map(DecoderLayer::weights).collect(),
                    norm: norm.weight(),
                    lm_head: &lm_head,
                    tied: cfg.tie_word_embeddings,
                    mtp: mtp_layers.iter().map(MtpLayer::weights).collect(),
                    rope: rope.tables(),
                },
            )?),
            None => None,
        };
        Ok(Self {
            rope,
            config,
            embed_tokens,
            layers,
            norm,
            lm_head,
            mtp_layers,
            dtype: opts.dtype,
            device: opts.device.clone(),
            wgpu,
        })
    }

    /// The parsed `config.json`.
    pub fn config(&self) -> &MimoConfig {
        &self.config
    }

    /// The device the weights live on, and where token ids and logits are passed (the CPU
    /// for a model on a wgpu adapter).
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Where inference runs, for logs and benchmarks: `cpu`, `cuda` or `wgpu: <adapter>`.
    pub fn runs_on(&self) -> String {
        match (&self.wgpu, &self.device) {
            (Some(w), _) => format!("wgpu: {}", w.gpu().describe()),
            (None, Device::Cpu) => "cpu".into(),
            (None, Device::Cuda(_)) => "cuda".into(),
            (None, other) => format!("{other:?}"),
        }
    }

    /// Number of loaded MTP layers (0 when the checkpoint has none or they were not loaded).
    pub fn num_mtp_layers(&self) -> usize {
        self.mtp_layers.len()
    }

    /// A fresh cache for the main decoder, for rows with the given left padding.
    pub fn new_cache(&self, pads: Vec<usize>, capacity: usize) -> KvCache {
        match &self.wgpu {
            Some(w) => w.new_cache(self.layers.len(), pads, capacity),
            None => KvCache::new(self.layers.len(), pads, capacity),
        }
    }

    /// A fresh cache for one MTP layer (which has its own attention history).
    pub fn new_mtp_cache(&self, pads: Vec<usize>, capacity: usize) -> KvCache {
        match &self.wgpu {
            Some(w) => w.new_cache(1, pads, capacity),
            None => KvCache::new(1, pads, capacity),
        }
    }

    /// Embeddings `(batch, t, hidden)` of token ids `(batch, t)`.
    pub(crate) fn embed(&self, tokens: &Tensor) -> candle_core::Result<Tensor> {
        let (b, t) = tokens.dims2()?;
        self.embed_tokens
            .index_select(&tokens.flatten_all()?, 0)?
            .reshape((b, t, self.config.hidden_size))
    }

    /// Runs the decoder on token ids `(batch, t)` that continue `cache`, and returns the residual
    /// stream of the last block **before** the final norm `(batch, t, hidden)`: the hidden state
    /// the MTP layers consume.
    pub fn forward_hidden(
        &self,
        tokens: &Tensor,
        cache: &mut KvCache,
    ) -> Result<Tensor, ModelError> {
        let (b, t) = tokens.dims2()?;
        self.check_batch(b, cache)?;
        if let Some(w) = &self.wgpu {
            self.rope.check_positions(&cache.positions(t))?;
            let hidden = w.forward(&ids_of(tokens)?, t, cache, Readout::Hidden)?;
            return Ok(Tensor::from_vec(
                hidden,
                (b, t, self.config.hidden_size),
                &self.device,
            )?);
        }
        let ctx = self.rope.step(cache, t, self.dtype)?;
        let x = self.run_layers(tokens, &ctx, cache)?;
        cache.commit(t);
        Ok(x)
    }

    fn run_layers(
        &self,
        tokens: &Tensor,
        ctx: &StepContext,
        cache: &mut KvCache,
    ) -> Result<Tensor, ModelError> {
        let mut x = self.embed(tokens)?;
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(&x, ctx, cache, i)?;
        }
        Ok(x)
    }

    /// Training forward over packed rows `(batch, t)` laid out by `layout`: every document
    /// attends only to itself and starts at position 0. Returns the pre-norm hidden states
    /// `(batch, t, hidden)` (feed [`Self::logits`] and [`Self::mtp_logits_packed`]).
    pub fn forward_packed(
        &self,
        tokens: &Tensor,
        layout: &PackedLayout,
    ) -> Result<Tensor, ModelError> {
        layout.check(tokens)?;
        let ctx = self.rope.packed(layout, self.dtype)?;
        let mut cache = KvCache::passthrough(self.layers.len(), layout.batch_size());
        self.run_layers(tokens, &ctx, &mut cache)
    }

    /// Draft logits `(batch, t, vocab)` of MTP layer `k` over packed rows: column `j` sees the
    /// main model's `hidden[:, j]` and `next_tokens[:, j]` (the token at `j + 1`) and predicts
    /// the token at `j + 2`, exactly as [`Self::mtp_logits`] does during decoding.
    pub fn mtp_logits_packed(
        &self,
        k: usize,
        hidden: &Tensor,
        next_tokens: &Tensor,
        layout: &PackedLayout,
    ) -> Result<Tensor, ModelError> {
        layout.check(next_tokens)?;
        let layer = self.mtp_layer(k)?;
        let ctx = self.rope.packed(layout, self.dtype)?;
        let mut cache = KvCache::passthrough(1, layout.batch_size());
        let out = layer.forward(hidden, &self.embed(next_tokens)?, &ctx, &mut cache)?;
        Ok(self.lm_head.forward(&out)?)
    }

    fn mtp_layer(&self, k: usize) -> Result<&MtpLayer, ModelError> {
        self.mtp_layers.get(k).ok_or_else(|| {
            ModelError::Invalid(format!(
                "MTP layer {k} requested but {} are loaded",
                self.mtp_layers.len()
            ))
        })
    }

    /// Final norm and LM head over pre-norm hidden states `(batch, t, hidden)` → logits.
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor, ModelError> {
        if let Some(w) = &self.wgpu {
            let mut dims = hidden.dims().to_vec();
            let values = hidden
                .to_dtype(DType::F32)?
                .flatten_all()?
                .to_vec1::<f32>()?;
            let logits = w.logits(&values)?;
            *dims.last_mut().expect("hidden states have a width") = self.config.vocab_size;
            return Ok(Tensor::from_vec(logits, dims, &self.device)?);
        }
        Ok(self.lm_head.forward(&self.norm.forward(hidden)?)?)
    }

    /// Logits `(batch, t, vocab)` of every new position.
    pub fn forward(&self, tokens: &Tensor, cache: &mut KvCache) -> Result<Tensor, ModelError> {
        if let Some(w) = &self.wgpu {
            let (b, t) = tokens.dims2()?;
            self.check_batch(b, cache)?;
            self.rope.check_positions(&cache.positions(t))?;
            let rows: Vec<u32> = (0..(b * t) as u32).collect();
            let logits = w.forward(&ids_of(tokens)?, t, cache, Readout::Logits(&rows))?;
            let shape = (b, t, self.config.vocab_size);
            return Ok(Tensor::from_vec(logits, shape, &self.device)?);
        }
        let hidden = self.forward_hidden(tokens, cache)?;
        self.logits(&hidden)
    }

    /// Logits `(batch, vocab)` of the last new position only (what decoding needs), in f32.
    pub fn forward_last(&self, tokens: &Tensor, cache: &mut KvCache) -> Result<Tensor, ModelError> {
        if let Some(w) = &self.wgpu {
            let (b, t) = tokens.dims2()?;
            self.check_batch(b, cache)?;
            self.rope.check_positions(&cache.positions(t))?;
            let logits = w.forward(&ids_of(tokens)?, t, cache, Readout::LastLogits)?;
            return Ok(Tensor::from_vec(
                logits,
                (b, self.config.vocab_size),
                &self.device,
            )?);
        }
        let hidden = self.forward_hidden(tokens, cache)?;
        let t = hidden.dim(1)?;
        let last = hidden.narrow(1, t - 1, 1)?;
        Ok(self.logits(&last)?.squeeze(1)?.to_dtype(DType::F32)?)
    }

    /// Draft logits `(batch, t, vocab)` of MTP layer `k`.
    ///
    /// `hidden` is [`Self::forward_hidden`]'s pre-norm output at some positions and `next_tokens`
    /// the token that follows each of those positions; `cache` is that MTP layer's own cache,
    /// which must cover the same columns as the main cache did for these positions. Row `i`,
    /// column `j` predicts the token after `next_tokens[i, j]`.
    pub fn mtp_logits(
        &self,
        k: usize,
        hidden: &Tensor,
        next_tokens: &Tensor,
        cache: &mut KvCache,
    ) -> Result<Tensor, ModelError> {
        if self.wgpu.is_some() {
            let (b, t) = next_tokens.dims2()?;
            let rows: Vec<u32> = (0..(b * t) as u32).collect();
            let logits = self.mtp_on_gpu(k, hidden, next_tokens, cache, &rows)?;
            return Ok(logits.reshape((b, t, self.config.vocab_size))?);
        }
        let out = self.mtp_states(k, hidden, next_tokens, cache)?;
        Ok(self.lm_head.forward(&out)?)
    }

    /// [`Self::mtp_logits`] read at one column per row, `(batch, vocab)` in f32: speculative
    /// decoding feeds the layer every new column (its cache needs them) but drafts from one
    /// column per row, so the LM head runs only there.
    pub fn mtp_logits_at(
        &self,
        k: usize,
        hidden: &Tensor,
        next_tokens: &Tensor,
        cache: &mut KvCache,
        columns: &[usize],
    ) -> Result<Tensor, ModelError> {
        if self.wgpu.is_some() {
            let t = next_tokens.dim(1)?;
            let rows: Vec<u32> = columns
                .iter()
                .enumerate()
                .map(|(i, &c)| (i * t + c) as u32)
                .collect();
            return self.mtp_on_gpu(k, hidden, next_tokens, cache, &rows);
        }
        let out = self.mtp_states(k, hidden, next_tokens, cache)?;
        let (b, t, n) = out.dims3()?;
        let rows: Vec<u32> = columns
            .iter()
            .enumerate()
            .map(|(i, &c)| (i * t + c) as u32)
            .collect();
        let picked = out
            .reshape((b * t, n))?
            .index_select(&Tensor::new(rows.as_slice(), out.device())?, 0)?;
        Ok(self.lm_head.forward(&picked)?.to_dtype(DType::F32)?)
    }

    /// MTP layer `k` on the wgpu adapter: logits `(rows.len(), vocab)` at flat `(batch · t)` rows.
    fn mtp_on_gpu(
        &self,
        k: usize,
        hidden: &Tensor,
        next_tokens: &Tensor,
        cache: &mut KvCache,
        rows: &[u32],
    ) -> Result<Tensor, ModelError> {
        let w = self
            .wgpu
            .as_ref()
            .expect("called for a model on a wgpu adapter");
        let (b, t) = next_tokens.dims2()?;
        self.check_batch(b, cache)?;
        self.rope.check_positions(&cache.positions(t))?;
        let hidden = hidden
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let logits = w.mtp_logits(k, &hidden, &ids_of(next_tokens)?, t, cache, rows)?;
        Ok(Tensor::from_vec(
            logits,
            (rows.len(), self.config.vocab_size),
            &self.device,
        )?)
    }

    fn check_batch(&self, b: usize, cache: &KvCache) -> Result<(), ModelError> {
        if b != cache.batch_size() {
            return Err(ModelError::Invalid(format!(
                "batch of {b} rows does not match a cache of {} rows",
                cache.batch_size()
            )));
        }
        Ok(())
    }

    fn mtp_states(
        &self,
        k: usize,
        hidden: &Tensor,
        next_tokens: &Tensor,
        cache: &mut KvCache,
    ) -> Result<Tensor, ModelError> {
        let layer = self.mtp_layer(k)?;
        let (_, t) = next_tokens.dims2()?;
        let ctx = self.rope.step(cache, t, self.dtype)?;
        let embeds = self.embed(next_tokens)?;
        let out = layer.forward(hidden, &embeds, &ctx, cache)?;
        cache.commit(t);
        Ok(out)
    }
}

/// Token ids `(batch, t)` as a flat row-major vector.
fn ids_of(tokens: &Tensor) -> Result<Vec<u32>, ModelError> {
    Ok(tokens.flatten_all()?.to_vec1::<u32>()?)
}
