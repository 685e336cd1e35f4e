// y[m, n] = x[m, :] . w[n, :] (+ bias[n]) (+ y[m, n] when accumulating) for many rows (prefill),
// y's rows out_stride wide with the n columns from out_col (a weight split by output rows):
// register tiling, each workgroup of 16x16 threads computes a 64x64 output tile, each thread a
// 4x4 block, with 64x16 slices of x and w staged in workgroup memory.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    has_bias: u32,
    accumulate: u32,
    out_stride: u32,
    out_col: u32,
    _pad: u32,
}

const TILE: u32 = 64u;
const BK: u32 = 16u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

var<workgroup> xs: array<f32, 1024>; // TILE rows x BK
var<workgroup> ws: array<f32, 1024>; // TILE columns x BK

@compute @workgroup_size(16, 16)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let row0 = wid.y * TILE;
    let col0 = wid.x * TILE;
    let tid = lid.y * 16u + lid.x;
    var acc: array<f32, 16>;
    for (var i = 0u; i < 16u; i++) {
        acc[i] = 0.0;
    }
    for (var k0 = 0u; k0 < p.k; k0 += BK) {
        for (var i = 0u; i < 4u; i++) {
            let e = tid + i * 256u;
            let r = e / BK;
            let gk = k0 + e % BK;
            var xv = 0.0;
            if (row0 + r < p.m && gk < p.k) {
                xv = x[(row0 + r) * p.k + gk];
            }
            xs[e] = xv;
            var wv = 0.0;
            if (col0 + r < p.n && gk < p.k) {
                wv = w[(col0 + r) * p.k + gk];
            }
            ws[e] = wv;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < BK; kk++) {
            var a: array<f32, 4>;
            var b: array<f32, 4>;
            for (var i = 0u; i < 4u; i++) {
                a[i] = xs[(lid.y * 4u + i) * BK + kk];
                b[i] = ws[(lid.x * 4u + i) * BK + kk];
            }
            for (var i = 0u; i < 4u; i++) {
                for (var j = 0u; j < 4u; j++) {
                    acc[i * 4u + j] += a[i] * b[j];
                }
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i++) {
        let r = row0 + lid.y * 4u + i;
        for (var j = 0u; j < 4u; j++) {
            let c = col0 + lid.x * 4u + j;
            if (r < p.m && c < p.n) {
                var v = acc[i * 4u + j];
                if (p.has_bias != 0u) {
                    v += bias[c];
                }
                let out = r * p.out_stride + p.out_col + c;
                if (p.accumulate != 0u) {
                    v += y[out];
                }
                y[out] = v;
            }
        }
    }
}
