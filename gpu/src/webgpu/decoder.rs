//! The MiMo decoder on a wgpu adapter: the candle model's weights uploaded once (q/k/v and
//! gate/up already fused), and each forward pass recorded as one [`Plan`] of kernel launches
//! over the cache's buffers, read back only where the caller needs values.

use std::sync::Arc;

use candle_core::{DType, Tensor};
use candle_nn::Linear;

use super::cache::GpuKv;
use super::context::{Temp, WgpuDevice, WgpuError};
use super::ops::{self, AttentionShape, MASKED, MAX_HEAD_DIM, NormRows, OutColumns, RowChunk};
use super::plan::Plan;
use crate::model::ModelError;
use crate::model::config::MimoConfig;
use crate::model::kv_cache::KvCache;
use crate::model::layers::BlockWeights;
use crate::model::mtp::MtpWeights;

/// What a forward pass reads back.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Readout<'a> {
    /// Logits `(batch, vocab)` of each row's last new column.
    LastLogits,
    /// Logits `(rows.len(), vocab)` of the given flat `(batch · t)` rows.
    Logits(&'a [u32]),
    /// Pre-norm hidden states `(batch · t, hidden)` of every new column.
    Hidden,
}

/// Output rows `first .. first + rows` of a linear layer.
struct LinearChunk {
    weight: wgpu::Buffer,
    bias: Option<wgpu::Buffer>,
    first: usize,
    rows: usize,
}

/// A linear layer's weight `(out, in)` and optional bias on the adapter, split by output rows
/// into chunks that each fit one binding (also the layout of an embedding table).
struct GpuLinear {
    chunks: Vec<LinearChunk>,
    out: usize,
    inp: usize,
}

impl GpuLinear {
    fn upload(
        gpu: &WgpuDevice,
        what: &str,
        weight: &Tensor,
        bias: Option<&Tensor>,
    ) -> Result<Self, ModelError> {
        let (out, inp) = weight.dims2()?;
        let per_chunk = (gpu.max_binding_words() / inp.max(1)).clamp(1, out.max(1));
        let mut chunks = Vec::with_capacity(out.div_ceil(per_chunk));
        for first in (0..out).step_by(per_chunk) {
            let rows = per_chunk.min(out - first);
            let part = |t: &Tensor| -> Result<wgpu::Buffer, ModelError> {
                Ok(gpu.upload(what, &values(&t.narrow(0, first, rows)?)?)?)
            };
            chunks.push(LinearChunk {
                weight: part(weight)?,
                bias: bias.map(part).transpose()?,
                first,
                rows,
            });
        }
        Ok(Self { chunks, out, inp })
    }

    /// The same matrix sharing these buffers, without a bias (a tied LM head).
    fn shared(&self) -> Self {
        let chunks = self
            .chunks
            .iter()
            .map(|c| LinearChunk {
                weight: c.weight.clone(),
                bias: None,
                first: c.first,
                rows: c.rows,
            })
            .collect();
        Self {
            chunks,
            out: self.out,
            inp: self.inp,
        }
    }

    /// Records `y (+)= x · wᵀ (+ bias)` for `m` rows of `x`.
    fn record(
        &self,
        plan: &mut Plan<'_>,
        x: &wgpu::Buffer,
        y: &wgpu::Buffer,
        m: usize,
        accumulate: bool,
    ) {
        for c in &self.chunks {
            let out = OutColumns {
                stride: self.out,
                first: c.first,
            };
            let shape = (m, c.rows, self.inp);
            ops::linear(
                plan,
                x,
                &c.weight,
                c.bias.as_ref(),
                y,
                shape,
                accumulate,
                out,
            );
        }
    }

    /// Records an embedding gather of `rows` ids from this matrix as a table.
    fn gather(
        &self,
        plan: &mut Plan<'_>,
        ids: &wgpu::Buffer,
        positions: &wgpu::Buffer,
        out: &wgpu::Buffer,
        rows: usize,
        zero_first: bool,
    ) {
        for c in &self.chunks {
            let chunk = RowChunk {
                buffer: &c.weight,
                first: c.first,
                rows: c.rows,
            };
            ops::embedding(plan, chunk, ids, positions, out, rows, self.inp, zero_first);
        }
    }
}

/// One decoder block's buffers.
struct GpuBlock {
    input_norm: wgpu::Buffer,
    qkv: GpuLinear,
    o_proj: GpuLinear,
    post_norm: wgpu::Buffer,
    gate_up: GpuLinear,
    down_proj: GpuLinear,
}

/// One MTP layer's buffers.
struct GpuMtp {
    token_norm: wgpu::Buffer,
    hidden_norm: wgpu::Buffer,
    input_proj: GpuLinear,
    block: GpuBlock,
    final_norm: wgpu::Buffer,
}

/// The model's dimensions as the kernels need them.
#[derive(Debug, Clone, Copy)]
struct Dims {
    hidden: usize,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    intermediate: usize,
    vocab: usize,
    eps: f32,
}

/// The whole model on one adapter.
pub(crate) struct WgpuDecoder {
    gpu: Arc<WgpuDevice>,
    dims: Dims,
    embed: GpuLinear,
    blocks: Vec<GpuBlock>,
    norm: wgpu::Buffer,
    lm_head: GpuLinear,
    mtp: Vec<GpuMtp>,
    cos: wgpu::Buffer,
    sin: wgpu::Buffer,
}

/// The candle model's tensors the decoder is built from.
pub(crate) struct DecoderWeights<'a> {
    pub(crate) embed: &'a Tensor,
    pub(crate) blocks: Vec<BlockWeights<'a>>,
    pub(crate) norm: &'a Tensor,
    pub(crate) lm_head: &'a Linear,
    /// The LM head is the embedding table (`tie_word_embeddings`).
    pub(crate) tied: bool,
    pub(crate) mtp: Vec<MtpWeights<'a>>,
    pub(crate) rope: (&'a Tensor, &'a Tensor),
}

fn values(t: &Tensor) -> Result<Vec<f32>, ModelError> {
    Ok(t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?)
}

impl WgpuDecoder {
    /// Uploads `w` (any stored dtype; the kernels compute in f32).
    pub(crate) fn new(
        gpu: Arc<WgpuDevice>,
        cfg: &MimoConfig,
        w: &DecoderWeights<'_>,
    ) -> Result<Self, ModelError> {
        if cfg.head_dim > MAX_HEAD_DIM || !cfg.head_dim.is_multiple_of(2) {
            return Err(ModelError::Invalid(format!(
                "the wgpu backend supports even head dimensions up to {MAX_HEAD_DIM}, not {}",
                cfg.head_dim
            )));
        }
        let upload = |what: &str, t: &Tensor| -> Result<wgpu::Buffer, ModelError> {
            Ok(gpu.upload(what, &values(t)?)?)
        };
        let linear = |what: &str, l: &Linear| GpuLinear::upload(&gpu, what, l.weight(), l.bias());
        let block = |i: usize, b: &BlockWeights<'_>| -> Result<GpuBlock, ModelError> {
            let name = |part: &str| format!("layer {i} {part}");
            Ok(GpuBlock {
                input_norm: upload(&name("input_layernorm"), b.input_norm)?,
                qkv: linear(&name("q/k/v_proj"), b.qkv)?,
                o_proj: linear(&name("o_proj"), b.o_proj)?,
                post_norm: upload(&name("post_attention_layernorm"), b.post_norm)?,
                gate_up: linear(&name("gate/up_proj"), b.gate_up)?,
                down_proj: linear(&name("down_proj"), b.down_proj)?,
            })
        };
        let blocks = w
            .blocks
            .iter()
            .enumerate()
            .map(|(i, b)| block(i, b))
            .collect::<Result<Vec<_>, _>>()?;
        let mtp = w
            .mtp
            .iter()
            .enumerate()
            .map(|(k, m)| {
                Ok(GpuMtp {
                    token_norm: upload("mtp token_layernorm", m.token_norm)?,
                    hidden_norm: upload("mtp hidden_layernorm", m.hidden_norm)?,
                    input_proj: GpuLinear::upload(&gpu, "mtp input_proj", m.input_proj, None)?,
                    block: block(cfg.num_hidden_layers + k, &m.block)?,
                    final_norm: upload("mtp final_layernorm", m.final_norm)?,
                })
            })
            .collect::<Result<Vec<_>, ModelError>>()?;
        let embed = GpuLinear::upload(&gpu, "embed_tokens", w.embed, None)?;
        // Tied embeddings share their buffers with the LM head (same rows, same layout).
        let lm_head = if w.tied {
            embed.shared()
        } else {
            linear("lm_head", w.lm_head)?
        };
        Ok(Self {
            dims: Dims {
                hidden: cfg.hidden_size,
                heads: cfg.num_attention_heads,
                kv_heads: cfg.num_key_value_heads,
                head_dim: cfg.head_dim,
                intermediate: cfg.intermediate_size,
                vocab: cfg.vocab_size,
                eps: cfg.rms_norm_eps as f32,
            },
            embed,
            blocks,
            norm: upload("norm", w.norm)?,
            lm_head,
            mtp,
            cos: upload("rope cos", w.rope.0)?,
            sin: upload("rope sin", w.rope.1)?,
            gpu,
        })
    }

    /// The adapter the model runs on.
    pub(crate) fn gpu(&self) -> &Arc<WgpuDevice> {
        &self.gpu
    }

    /// A cache on the adapter for `layers` attention layers and one row per entry of `pads`.
    pub(crate) fn new_cache(&self, layers: usize, pads: Vec<usize>, capacity: usize) -> KvCache {
        let storage = GpuKv::new(
            Arc::clone(&self.gpu),
            layers,
            pads.len(),
            self.dims.kv_heads,
            self.dims.head_dim,
            capacity.max(1),
        );
        KvCache::on_gpu(storage, pads)
    }

    /// Runs the decoder on `tokens` (row-major `(batch, t)`) continuing `cache`.
    pub(crate) fn forward(
        &self,
        tokens: &[u32],
        t: usize,
        cache: &mut KvCache,
        readout: Readout<'_>,
    ) -> Result<Vec<f32>, ModelError> {
        let d = self.dims;
        let gpu = &*self.gpu;
        let step = self.step(tokens, t, cache)?;
        let (m, batch) = (step.shape.batch * t, step.shape.batch);
        let x = gpu.temp("residual", m * d.hidden)?;
        let scratch = Scratch::new(gpu, m, d)?;
        let mut plan = Plan::new(gpu);
        self.embed
            .gather(&mut plan, &step.ids, &step.positions, &x, m, false);
        for (block, layer) in self.blocks.iter().zip(&step.layers) {
            self.block(&mut plan, block, &x, &scratch, layer, &step);
        }
        let (out, words, _keep) = self.readout(&mut plan, &x, &scratch, m, batch, t, readout)?;
        let values = plan.run(&out, words)?;
        cache.commit(t);
        Ok(values)
    }

    /// Final norm and LM head over pre-norm `hidden` `(rows, hidden)` → `(rows, vocab)`.
    pub(crate) fn logits(&self, hidden: &[f32]) -> Result<Vec<f32>, ModelError> {
        let d = self.dims;
        let rows = hidden.len() / d.hidden;
        let gpu = &*self.gpu;
        let x = gpu.temp_upload("hidden", hidden)?;
        let normed = gpu.temp("normed", rows * d.hidden)?;
        let logits = gpu.temp("logits", rows * d.vocab)?;
        let mut plan = Plan::new(gpu);
        self.head(
            &mut plan,
            &x,
            &normed,
            &logits,
            rows,
            &self.norm,
            NormRows::dense(d.hidden),
        );
        Ok(plan.run(&logits, rows * d.vocab)?)
    }

    /// Draft logits of MTP layer `k` at the flat rows `rows`, from pre-norm `hidden`
    /// `(batch · t, hidden)` and the tokens that follow those positions, continuing `cache`.
    pub(crate) fn mtp_logits(
        &self,
        k: usize,
        hidden: &[f32],
        next_tokens: &[u32],
        t: usize,
        cache: &mut KvCache,
        rows: &[u32],
    ) -> Result<Vec<f32>, ModelError> {
        let layer = self.mtp.get(k).ok_or_else(|| {
            ModelError::Invalid(format!(
                "MTP layer {k} requested but {} are loaded",
                self.mtp.len()
            ))
        })?;
        let d = self.dims;
        let gpu = &*self.gpu;
        let step = self.step(next_tokens, t, cache)?;
        let m = step.shape.batch * t;
        let h = gpu.temp_upload("hidden", hidden)?;
        let embeds = gpu.temp("embeddings", m * d.hidden)?;
        let joined = gpu.temp("mtp input", m * 2 * d.hidden)?;
        let x = gpu.temp("residual", m * d.hidden)?;
        let scratch = Scratch::new(gpu, m, d)?;
        let mut plan = Plan::new(gpu);
        self.embed
            .gather(&mut plan, &step.ids, &step.positions, &embeds, m, true);
        let half = |col| NormRows {
            source: None,
            out_stride: 2 * d.hidden,
            out_col: col,
        };
        let n = d.hidden;
        ops::rms_norm(
            &mut plan,
            &h,
            &layer.hidden_norm,
            &joined,
            m,
            n,
            d.eps,
            half(0),
        );
        ops::rms_norm(
            &mut plan,
            &embeds,
            &layer.token_norm,
            &joined,
            m,
            n,
            d.eps,
            half(n),
        );
        layer.input_proj.record(&mut plan, &joined, &x, m, false);
        self.block(
            &mut plan,
            &layer.block,
            &x,
            &scratch,
            &step.layers[0],
            &step,
        );
        // The layer's final norm, then the main model's LM head, at the chosen rows only.
        let picked = gpu.temp_upload("rows", rows)?;
        let normed = gpu.temp("normed", rows.len() * d.hidden)?;
        let logits = gpu.temp("logits", rows.len() * d.vocab)?;
        let select = NormRows {
            source: Some(&picked),
            out_stride: d.hidden,
            out_col: 0,
        };
        self.head(
            &mut plan,
            &x,
            &normed,
            &logits,
            rows.len(),
            &layer.final_norm,
            select,
        );
        let values = plan.run(&logits, rows.len() * d.vocab)?;
        cache.commit(t);
        Ok(values)
    }

    /// Makes room in `cache` for `t` new columns and uploads what every layer of the step reads:
    /// token ids, positions and the mask.
    fn step(&self, tokens: &[u32], t: usize, cache: &mut KvCache) -> Result<Step<'_>, ModelError> {
        let positions = cache.positions(t);
        let mask = cache.mask_values(t, MASKED);
        let (batch, len) = (cache.batch_size(), cache.len());
        let kv = cache.gpu_storage(t)?;
        let gpu = &*self.gpu;
        Ok(Step {
            shape: AttentionShape {
                batch,
                t,
                len,
                capacity: kv.capacity(),
                heads: self.dims.heads,
                kv_heads: self.dims.kv_heads,
                head_dim: self.dims.head_dim,
            },
            layers: kv.layers(),
            ids: gpu.temp_upload("token ids", tokens)?,
            positions: gpu.temp_upload("positions", &positions)?,
            mask: mask
                .map(|m| gpu.temp_upload("attention mask", &m))
                .transpose()?,
        })
    }

    /// Records one pre-norm block over the residual stream `x` `(batch · t, hidden)`.
    #[allow(clippy::too_many_arguments)]
    fn block(
        &self,
        plan: &mut Plan<'_>,
        b: &GpuBlock,
        x: &wgpu::Buffer,
        s: &Scratch,
        (k, v): &(wgpu::Buffer, wgpu::Buffer),
        step: &Step<'_>,
    ) {
        let (positions, mask, shape) = (&*step.positions, step.mask.as_deref(), step.shape);
        let d = self.dims;
        let m = shape.batch * shape.t;
        let dense = NormRows::dense(d.hidden);
        ops::rms_norm(plan, x, &b.input_norm, &s.normed, m, d.hidden, d.eps, dense);
        b.qkv.record(plan, &s.normed, &s.qkv, m, false);
        let width = shape.qkv_width();
        ops::rope(
            plan,
            &s.qkv,
            positions,
            &self.cos,
            &self.sin,
            m,
            d.heads + d.kv_heads,
            d.head_dim,
            width,
        );
        ops::kv_append(plan, &s.qkv, k, v, shape);
        ops::attention(plan, &s.qkv, k, v, mask, &s.attn, shape);
        b.o_proj.record(plan, &s.attn, x, m, true);
        ops::rms_norm(plan, x, &b.post_norm, &s.normed, m, d.hidden, d.eps, dense);
        b.gate_up.record(plan, &s.normed, &s.gate_up, m, false);
        ops::swiglu(plan, &s.gate_up, &s.act, m, d.intermediate);
        b.down_proj.record(plan, &s.act, x, m, true);
    }

    /// Records `norm` then the LM head over the rows `select` picks of `x`.
    #[allow(clippy::too_many_arguments)]
    fn head(
        &self,
        plan: &mut Plan<'_>,
        x: &wgpu::Buffer,
        normed: &wgpu::Buffer,
        logits: &wgpu::Buffer,
        rows: usize,
        norm: &wgpu::Buffer,
        select: NormRows<'_>,
    ) {
        let d = self.dims;
        ops::rms_norm(plan, x, norm, normed, rows, d.hidden, d.eps, select);
        self.lm_head.record(plan, normed, logits, rows, false);
    }

    /// Records what `readout` asks for and returns the buffer and word count to read, with
    /// the temporaries that must outlive the run.
    #[allow(clippy::too_many_arguments)]
    fn readout<'g>(
        &self,
        plan: &mut Plan<'g>,
        x: &wgpu::Buffer,
        s: &Scratch,
        m: usize,
        batch: usize,
        t: usize,
        readout: Readout<'_>,
    ) -> Result<(wgpu::Buffer, usize, Vec<Temp<'g>>), ModelError> {
        let d = self.dims;
        let rows: Vec<u32> = match readout {
            Readout::Hidden => return Ok((x.clone(), m * d.hidden, Vec::new())),
            Readout::LastLogits => (0..batch).map(|b| (b * t + t - 1) as u32).collect(),
            Readout::Logits(rows) => rows.to_vec(),
        };
        let gpu = plan.gpu();
        let picked = gpu.temp_upload("rows", &rows)?;
        let logits = gpu.temp("logits", rows.len() * d.vocab)?;
        let select = NormRows {
            source: Some(&picked),
            out_stride: d.hidden,
            out_col: 0,
        };
        self.head(plan, x, &s.normed, &logits, rows.len(), &self.norm, select);
        Ok((
            (*logits).clone(),
            rows.len() * d.vocab,
            vec![picked, logits],
        ))
    }
}

/// The inputs one forward pass shares across its layers.
struct Step<'g> {
    shape: AttentionShape,
    /// The cache's key and value buffers per layer (handles, so the cache stays borrowable).
    layers: Vec<(wgpu::Buffer, wgpu::Buffer)>,
    ids: Temp<'g>,
    positions: Temp<'g>,
    mask: Option<Temp<'g>>,
}

/// Activations of one forward pass, from the adapter's pool.
struct Scratch<'g> {
    normed: Temp<'g>,
    qkv: Temp<'g>,
    attn: Temp<'g>,
    gate_up: Temp<'g>,
    act: Temp<'g>,
}

impl<'g> Scratch<'g> {
    fn new(gpu: &'g WgpuDevice, m: usize, d: Dims) -> Result<Self, WgpuError> {
        Ok(Self {
            normed: gpu.temp("normed", m * d.hidden)?,
            qkv: gpu.temp("q/k/v", m * (d.heads + 2 * d.kv_heads) * d.head_dim)?,
            attn: gpu.temp("attention", m * d.heads * d.head_dim)?,
            gate_up: gpu.temp("gate/up", m * 2 * d.intermediate)?,
            act: gpu.temp("swiglu", m * d.intermediate)?,
        })
    }
}
