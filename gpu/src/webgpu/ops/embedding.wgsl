// Embedding gather: row r of `out` is row ids[r] of `table`; with `zero_first`, rows whose RoPE
// position is 0 are zeroed (the MTP layer has no previous token there).

struct Params {
    rows: u32,
    width: u32,
    zero_first: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> table: array<f32>;
@group(0) @binding(2) var<storage, read> ids: array<u32>;
@group(0) @binding(3) var<storage, read> positions: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let i = gid.x + gid.y * nw.x * 64u;
    if (i >= p.rows * p.width) {
        return;
    }
    let r = i / p.width;
    let c = i % p.width;
    if (p.zero_first != 0u && positions[r] == 0u) {
        out[i] = 0.0;
    } else {
        out[i] = table[ids[r] * p.width + c];
    }
}
