// RMSNorm with a learned scale, one workgroup per output row. Output row r reads input row
// rows[r] when `indexed` (the last column of each sequence, or chosen draft columns) and row r
// otherwise, and is written at columns out_col.. of a row out_stride wide (so two norms can fill
// the halves of one concatenated input).

struct Params {
    rows: u32,
    width: u32,
    indexed: u32,
    out_stride: u32,
    out_col: u32,
    eps: f32,
    _pad0: u32,
    _pad1: u32,
}

const WG: u32 = 64u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read> rows: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

var<workgroup> partial: array<f32, WG>;

@compute @workgroup_size(64)
fn main(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nw: vec3<u32>,
) {
    let row = wid.x + wid.y * nw.x;
    if (row >= p.rows) {
        return;
    }
    var src = row;
    if (p.indexed != 0u) {
        src = rows[row];
    }
    let base = src * p.width;
    var s = 0.0;
    for (var c = lid.x; c < p.width; c += WG) {
        let v = x[base + c];
        s += v * v;
    }
    partial[lid.x] = s;
    workgroupBarrier();
    for (var k = WG / 2u; k > 0u; k >>= 1u) {
        if (lid.x < k) {
            partial[lid.x] += partial[lid.x + k];
        }
        workgroupBarrier();
    }
    let rms = sqrt(partial[0] / f32(p.width) + p.eps);
    let dst = row * p.out_stride + p.out_col;
    for (var c = lid.x; c < p.width; c += WG) {
        out[dst + c] = x[base + c] / rms * weight[c];
    }
}
