// SwiGLU activation: out[r, j] = silu(gate[r, j]) * up[r, j], reading the fused gate/up
// projection (gate in the first `inner` columns, up in the next).

struct Params {
    rows: u32,
    inner: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> gate_up: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let i = gid.x + gid.y * nw.x * 64u;
    if (i >= p.rows * p.inner) {
        return;
    }
    let r = i / p.inner;
    let j = i % p.inner;
    let g = gate_up[r * 2u * p.inner + j];
    let u = gate_up[r * 2u * p.inner + p.inner + j];
    out[i] = g / (exp(-g) + 1.0) * u;
}
