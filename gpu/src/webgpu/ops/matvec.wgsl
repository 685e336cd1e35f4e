// y[m, n] = x[m, :] . w[n, :] (+ bias[n]) (+ y[m, n] when accumulating) for few rows m (decode),
// y's rows out_stride wide with the n columns from out_col (a weight split by output rows):
// each workgroup of 64 threads computes COLS output columns, LANES threads per column splitting
// the reduction over k (neighbouring lanes read neighbouring weights), for up to ROWS input rows
// per pass over the weight row.

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

const WG: u32 = 64u;
const LANES: u32 = 8u;
const COLS: u32 = 8u; // WG / LANES
const ROWS: u32 = 8u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

var<workgroup> partial: array<f32, 512>; // ROWS * WG

@compute @workgroup_size(64)
fn main(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nw: vec3<u32>,
) {
    let group = wid.x + wid.y * nw.x;
    if (group * COLS >= p.n) {
        return;
    }
    let lane = lid.x % LANES;
    let col = group * COLS + lid.x / LANES;
    let live_col = col < p.n;
    let wrow = col * p.k;
    for (var r0 = 0u; r0 < p.m; r0 += ROWS) {
        var acc: array<f32, 8>;
        for (var r = 0u; r < ROWS; r++) {
            acc[r] = 0.0;
        }
        let live = min(ROWS, p.m - r0);
        if (live_col) {
            for (var kk = lane; kk < p.k; kk += LANES) {
                let wv = w[wrow + kk];
                for (var r = 0u; r < live; r++) {
                    acc[r] += x[(r0 + r) * p.k + kk] * wv;
                }
            }
        }
        for (var r = 0u; r < ROWS; r++) {
            partial[r * WG + lid.x] = acc[r];
        }
        workgroupBarrier();
        for (var step = LANES / 2u; step > 0u; step >>= 1u) {
            if (lane < step) {
                for (var r = 0u; r < live; r++) {
                    partial[r * WG + lid.x] += partial[r * WG + lid.x + step];
                }
            }
            workgroupBarrier();
        }
        if (lane == 0u && live_col) {
            for (var r = 0u; r < live; r++) {
                let out = (r0 + r) * p.out_stride + p.out_col + col;
                var v = partial[r * WG + lid.x];
                if (p.has_bias != 0u) {
                    v += bias[col];
                }
                if (p.accumulate != 0u) {
                    v += y[out];
                }
                y[out] = v;
            }
        }
        workgroupBarrier();
    }
}
