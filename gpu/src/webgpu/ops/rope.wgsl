// Rotate-half RoPE in place on the first `heads` heads of each row of the fused q/k/v
// activations (the query heads, then the key heads), with the model's cos/sin tables indexed
// by each row's position.

struct Params {
    rows: u32,
    heads: u32,
    head_dim: u32,
    row_width: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> qkv: array<f32>;
@group(0) @binding(2) var<storage, read> positions: array<u32>;
@group(0) @binding(3) var<storage, read> cos_table: array<f32>;
@group(0) @binding(4) var<storage, read> sin_table: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let half = p.head_dim / 2u;
    let i = gid.x + gid.y * nw.x * 64u;
    if (i >= p.rows * p.heads * half) {
        return;
    }
    let j = i % half;
    let head = (i / half) % p.heads;
    let row = i / (half * p.heads);
    let base = row * p.row_width + head * p.head_dim;
    let t = positions[row] * half + j;
    let c = cos_table[t];
    let s = sin_table[t];
    let x1 = qkv[base + j];
    let x2 = qkv[base + j + half];
    qkv[base + j] = x1 * c - x2 * s;
    qkv[base + j + half] = x1 * s + x2 * c;
}
