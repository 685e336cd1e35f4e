// Copies the new keys and values of `t` columns from the fused q/k/v activations into the
// cache, laid out (batch, kv_heads, capacity, head_dim), at columns len .. len + t.

struct Params {
    batch: u32,
    t: u32,
    len: u32,
    capacity: u32,
    heads: u32,
    kv_heads: u32,
    head_dim: u32,
    row_width: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> qkv: array<f32>;
@group(0) @binding(2) var<storage, read_write> k_cache: array<f32>;
@group(0) @binding(3) var<storage, read_write> v_cache: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let i = gid.x + gid.y * nw.x * 64u;
    if (i >= p.batch * p.t * p.kv_heads * p.head_dim) {
        return;
    }
    let d = i % p.head_dim;
    let head = (i / p.head_dim) % p.kv_heads;
    let col = (i / (p.head_dim * p.kv_heads)) % p.t;
    let b = i / (p.head_dim * p.kv_heads * p.t);
    let src = (b * p.t + col) * p.row_width;
    let dst = ((b * p.kv_heads + head) * p.capacity + p.len + col) * p.head_dim + d;
    k_cache[dst] = qkv[src + (p.heads + head) * p.head_dim + d];
    v_cache[dst] = qkv[src + (p.heads + p.kv_heads + head) * p.head_dim + d];
}
