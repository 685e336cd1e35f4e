//! The kernels, one WGSL file each beside the Rust that records its launch. Every launcher
//! takes whole buffers and element counts and checks nothing the caller already knows; the
//! decoder and the per-op tests (against candle on the CPU) are its callers.

use bytemuck::{Pod, Zeroable};

use super::kernel::Kernel;
use super::plan::{Plan, groups_for};

/// Largest head dimension the attention kernel holds in workgroup memory.
pub const MAX_HEAD_DIM: usize = 256;

/// Value the attention mask holds for a hidden key (WGSL does not promise infinities).
pub const MASKED: f32 = -3.0e38;

/// Rows up to which a projection runs as a mat-vec (decode) rather than the tiled matmul.
const MATVEC_MAX_ROWS: usize = 16;

/// Output columns one mat-vec workgroup computes (`COLS` in matvec.wgsl).
const MATVEC_COLUMNS: usize = 8;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct EmbeddingParams {
    rows: u32,
    width: u32,
    zero_first: u32,
    first: u32,
    chunk_rows: u32,
    _pad: [u32; 3],
}

/// Rows `first .. first + rows` of a matrix split by rows, one buffer per chunk (a tensor may
/// exceed what one binding can hold: a 151k-token vocabulary is 544 MB in f32).
#[derive(Debug, Clone, Copy)]
pub struct RowChunk<'b> {
    pub buffer: &'b wgpu::Buffer,
    pub first: usize,
    pub rows: usize,
}

/// `out[r] = table[ids[r]]` for `rows` ids of `width` columns, for the ids that fall in
/// `chunk` (launch once per chunk); with `zero_first`, rows whose `positions` entry is 0 are
/// zero instead (the MTP layer's token input).
#[allow(clippy::too_many_arguments)]
pub fn embedding(
    plan: &mut Plan<'_>,
    chunk: RowChunk<'_>,
    ids: &wgpu::Buffer,
    positions: &wgpu::Buffer,
    out: &wgpu::Buffer,
    rows: usize,
    width: usize,
    zero_first: bool,
) {
    let table = chunk.buffer;
    let params = EmbeddingParams {
        rows: rows as u32,
        width: width as u32,
        zero_first: zero_first.into(),
        first: chunk.first as u32,
        chunk_rows: chunk.rows as u32,
        _pad: [0; 3],
    };
    plan.launch(
        Kernel::Embedding,
        &params,
        &[table, ids, positions, out],
        groups_for(rows * width),
    );
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct RmsNormParams {
    rows: u32,
    width: u32,
    indexed: u32,
    out_stride: u32,
    out_col: u32,
    eps: f32,
    _pad: [u32; 2],
}

/// Which rows an RMSNorm reads and where it writes them.
#[derive(Debug, Clone, Copy)]
pub struct NormRows<'b> {
    /// Output row `r` reads input row `source[r]`; `None` reads row `r`.
    pub source: Option<&'b wgpu::Buffer>,
    /// Width of an output row (≥ the normalised width) and the column the result starts at.
    pub out_stride: usize,
    pub out_col: usize,
}

impl NormRows<'_> {
    /// Row `r` to row `r`, densely packed.
    pub fn dense(width: usize) -> Self {
        NormRows {
            source: None,
            out_stride: width,
            out_col: 0,
        }
    }
}

/// RMSNorm of `rows` rows of `width` with scale `weight`; `source` stands in for the row-index
/// buffer when `rows.source` is `None` (any buffer: it is not read).
#[allow(clippy::too_many_arguments)]
pub fn rms_norm(
    plan: &mut Plan<'_>,
    x: &wgpu::Buffer,
    weight: &wgpu::Buffer,
    out: &wgpu::Buffer,
    rows: usize,
    width: usize,
    eps: f32,
    select: NormRows<'_>,
) {
    let params = RmsNormParams {
        rows: rows as u32,
        width: width as u32,
        indexed: select.source.is_some().into(),
        out_stride: select.out_stride as u32,
        out_col: select.out_col as u32,
        eps,
        _pad: [0; 2],
    };
    let index = select.source.unwrap_or(weight);
    plan.launch(
        Kernel::RmsNorm,
        &params,
        &[x, weight, index, out],
        rows as u32,
    );
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct LinearParams {
    m: u32,
    n: u32,
    k: u32,
    has_bias: u32,
    accumulate: u32,
    out_stride: u32,
    out_col: u32,
    _pad: u32,
}

/// Where a linear layer writes: rows `stride` wide, its `n` columns from `first` on (a weight
/// split by output rows writes each chunk's columns of one output).
#[derive(Debug, Clone, Copy)]
pub struct OutColumns {
    pub stride: usize,
    pub first: usize,
}

/// `y = x · wᵀ (+ bias)` for `x` `(m, k)` and `w` `(n, k)` (a checkpoint's `(out, in)` layout),
/// into the columns `out` names; with `accumulate`, the result is added to `y` (the residual
/// stream). Few rows run as a mat-vec, more as the register-tiled matmul.
#[allow(clippy::too_many_arguments)]
pub fn linear(
    plan: &mut Plan<'_>,
    x: &wgpu::Buffer,
    w: &wgpu::Buffer,
    bias: Option<&wgpu::Buffer>,
    y: &wgpu::Buffer,
    (m, n, k): (usize, usize, usize),
    accumulate: bool,
    out: OutColumns,
) {
    let params = LinearParams {
        m: m as u32,
        n: n as u32,
        k: k as u32,
        has_bias: bias.is_some().into(),
        accumulate: accumulate.into(),
        out_stride: out.stride as u32,
        out_col: out.first as u32,
        _pad: 0,
    };
    let buffers = [x, w, bias.unwrap_or(w), y];
    if m <= MATVEC_MAX_ROWS {
        plan.launch(
            Kernel::MatVec,
            &params,
            &buffers,
            n.div_ceil(MATVEC_COLUMNS) as u32,
        );
    } else {
        plan.launch_grid(
            Kernel::MatMul,
            &params,
            &buffers,
            (n.div_ceil(64) as u32, m.div_ceil(64) as u32),
        );
    }
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct RopeParams {
    rows: u32,
    heads: u32,
    head_dim: u32,
    row_width: u32,
}

/// Rotate-half RoPE in place on the first `heads` heads of each of `rows` rows `row_width`
/// wide, at `positions` (one per row), with `(max_positions, head_dim / 2)` tables.
#[allow(clippy::too_many_arguments)]
pub fn rope(
    plan: &mut Plan<'_>,
    x: &wgpu::Buffer,
    positions: &wgpu::Buffer,
    cos: &wgpu::Buffer,
    sin: &wgpu::Buffer,
    rows: usize,
    heads: usize,
    head_dim: usize,
    row_width: usize,
) {
    let params = RopeParams {
        rows: rows as u32,
        heads: heads as u32,
        head_dim: head_dim as u32,
        row_width: row_width as u32,
    };
    plan.launch(
        Kernel::Rope,
        &params,
        &[x, positions, cos, sin],
        groups_for(rows * heads * head_dim / 2),
    );
}

/// Shapes of one attention step: `batch` rows, `t` new columns after `len` cached ones, in a
/// cache of `capacity` columns, over the fused q/k/v layout of `heads` query and `kv_heads`
/// key/value heads of `head_dim`.
#[derive(Debug, Clone, Copy)]
pub struct AttentionShape {
    pub batch: usize,
    pub t: usize,
    pub len: usize,
    pub capacity: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
}

impl AttentionShape {
    /// Width of one fused q/k/v row.
    pub fn qkv_width(&self) -> usize {
        (self.heads + 2 * self.kv_heads) * self.head_dim
    }
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct KvAppendParams {
    batch: u32,
    t: u32,
    len: u32,
    capacity: u32,
    heads: u32,
    kv_heads: u32,
    head_dim: u32,
    row_width: u32,
}

/// Writes the new keys and values of the fused q/k/v rows into the cache at columns
/// `len .. len + t`.
pub fn kv_append(
    plan: &mut Plan<'_>,
    qkv: &wgpu::Buffer,
    k_cache: &wgpu::Buffer,
    v_cache: &wgpu::Buffer,
    s: AttentionShape,
) {
    let params = KvAppendParams {
        batch: s.batch as u32,
        t: s.t as u32,
        len: s.len as u32,
        capacity: s.capacity as u32,
        heads: s.heads as u32,
        kv_heads: s.kv_heads as u32,
        head_dim: s.head_dim as u32,
        row_width: s.qkv_width() as u32,
    };
    plan.launch(
        Kernel::KvAppend,
        &params,
        &[qkv, k_cache, v_cache],
        groups_for(s.batch * s.t * s.kv_heads * s.head_dim),
    );
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct AttentionParams {
    t: u32,
    total: u32,
    capacity: u32,
    heads: u32,
    kv_heads: u32,
    head_dim: u32,
    row_width: u32,
    has_mask: u32,
    scale: f32,
    groups: u32,
    _pad: [u32; 2],
}

/// Scaled dot-product attention of the new queries over cache columns `0 .. len + t` (already
/// appended), with an optional additive mask `(batch, t, len + t)` holding 0 or [`MASKED`];
/// writes `(batch · t, heads · head_dim)`.
pub fn attention(
    plan: &mut Plan<'_>,
    qkv: &wgpu::Buffer,
    k_cache: &wgpu::Buffer,
    v_cache: &wgpu::Buffer,
    mask: Option<&wgpu::Buffer>,
    out: &wgpu::Buffer,
    s: AttentionShape,
) {
    let groups = s.batch * s.heads * s.t;
    let params = AttentionParams {
        t: s.t as u32,
        total: (s.len + s.t) as u32,
        capacity: s.capacity as u32,
        heads: s.heads as u32,
        kv_heads: s.kv_heads as u32,
        head_dim: s.head_dim as u32,
        row_width: s.qkv_width() as u32,
        has_mask: mask.is_some().into(),
        scale: 1.0 / (s.head_dim as f32).sqrt(),
        groups: groups as u32,
        _pad: [0; 2],
    };
    plan.launch(
        Kernel::Attention,
        &params,
        &[qkv, k_cache, v_cache, mask.unwrap_or(qkv), out],
        groups as u32,
    );
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct SwiGluParams {
    rows: u32,
    inner: u32,
    _pad: [u32; 2],
}

/// `out = silu(gate) * up` over fused `(rows, 2 · inner)` gate/up projections.
pub fn swiglu(
    plan: &mut Plan<'_>,
    gate_up: &wgpu::Buffer,
    out: &wgpu::Buffer,
    rows: usize,
    inner: usize,
) {
    let params = SwiGluParams {
        rows: rows as u32,
        inner: inner as u32,
        _pad: [0; 2],
    };
    plan.launch(
        Kernel::SwiGlu,
        &params,
        &[gate_up, out],
        groups_for(rows * inner),
    );
}
