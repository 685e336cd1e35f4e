// Embedding gather: row r of `out` is row ids[r] of the table, which may be split by rows into
// chunks (one launch each: this chunk holds rows first .. first + chunk_rows and writes only the
// rows whose id falls there); with `zero_first`, rows whose RoPE position is 0 are zeroed (the MTP
// layer has no previous token there), by the chunk that starts at row 0.

struct Params {
    rows: u32,
    width: u32,
    zero_first: u32,
    first: u32,
    chunk_rows: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
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
        if (p.first == 0u) {
            out[i] = 0.0;
        }
        return;
    }
    let id = ids[r];
    if (id >= p.first && id < p.first + p.chunk_rows) {
        out[i] = table[(id - p.first) * p.width + c];
    }
}
