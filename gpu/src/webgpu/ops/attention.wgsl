// Attention of each new query over the cached keys and values, one workgroup per (row, head,
// query): keys are taken in tiles of 64 with an online softmax, so any context length fits in
// fixed workgroup memory. Query heads share their kv head (GQA) by index; K/V are never
// repeated. The mask, when present, is additive (batch, t, len + t); masked entries are
// MASKED rather than -inf, since WGSL does not promise infinities.

struct Params {
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
    _pad0: u32,
    _pad1: u32,
}

const WG: u32 = 64u;
const MAX_HEAD_DIM: u32 = 256u;
const FLOOR: f32 = -3.4e38;
const HIDDEN: f32 = -1.0e38;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> qkv: array<f32>;
@group(0) @binding(2) var<storage, read> k_cache: array<f32>;
@group(0) @binding(3) var<storage, read> v_cache: array<f32>;
@group(0) @binding(4) var<storage, read> mask: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

var<workgroup> q: array<f32, MAX_HEAD_DIM>;
var<workgroup> weights: array<f32, WG>;
var<workgroup> reduce: array<f32, WG>;

fn reduce_max(v: f32, lane: u32) -> f32 {
    reduce[lane] = v;
    workgroupBarrier();
    for (var k = WG / 2u; k > 0u; k >>= 1u) {
        if (lane < k) {
            reduce[lane] = max(reduce[lane], reduce[lane + k]);
        }
        workgroupBarrier();
    }
    let r = reduce[0];
    workgroupBarrier();
    return r;
}

fn reduce_sum(v: f32, lane: u32) -> f32 {
    reduce[lane] = v;
    workgroupBarrier();
    for (var k = WG / 2u; k > 0u; k >>= 1u) {
        if (lane < k) {
            reduce[lane] += reduce[lane + k];
        }
        workgroupBarrier();
    }
    let r = reduce[0];
    workgroupBarrier();
    return r;
}

@compute @workgroup_size(64)
fn main(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nw: vec3<u32>,
) {
    let id = wid.x + wid.y * nw.x;
    if (id >= p.groups) {
        return;
    }
    let lane = lid.x;
    let col = id % p.t;
    let head = (id / p.t) % p.heads;
    let b = id / (p.t * p.heads);
    let d = p.head_dim;
    let query_row = b * p.t + col;
    let kv_head = head / (p.heads / p.kv_heads);
    let kv_base = (b * p.kv_heads + kv_head) * p.capacity * d;
    for (var i = lane; i < d; i += WG) {
        q[i] = qkv[query_row * p.row_width + head * d + i] * p.scale;
    }
    workgroupBarrier();

    var running_max = FLOOR;
    var denom = 0.0;
    var acc: array<f32, 4>; // MAX_HEAD_DIM / WG dimensions per lane
    for (var j = 0u; j < 4u; j++) {
        acc[j] = 0.0;
    }
    for (var tile = 0u; tile < p.total; tile += WG) {
        let key = tile + lane;
        var score = FLOOR;
        if (key < p.total) {
            var dot = 0.0;
            let kb = kv_base + key * d;
            for (var i = 0u; i < d; i++) {
                dot += q[i] * k_cache[kb + i];
            }
            if (p.has_mask != 0u) {
                dot += mask[query_row * p.total + key];
            }
            score = dot;
        }
        let tile_max = reduce_max(score, lane);
        let new_max = max(running_max, tile_max);
        let correction = exp(running_max - new_max);
        var w = 0.0;
        if (score > HIDDEN) {
            w = exp(score - new_max);
        }
        weights[lane] = w;
        let tile_sum = reduce_sum(w, lane);
        denom = denom * correction + tile_sum;
        running_max = new_max;
        let keys = min(WG, p.total - tile);
        for (var j = 0u; j < 4u; j++) {
            let i = lane + j * WG;
            if (i < d) {
                var a = acc[j] * correction;
                for (var kk = 0u; kk < keys; kk++) {
                    a += weights[kk] * v_cache[kv_base + (tile + kk) * d + i];
                }
                acc[j] = a;
            }
        }
        workgroupBarrier();
    }
    let out_base = query_row * p.heads * d + head * d;
    for (var j = 0u; j < 4u; j++) {
        let i = lane + j * WG;
        if (i < d) {
            out[out_base + i] = acc[j] / denom;
        }
    }
}
