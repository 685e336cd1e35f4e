//! Every wgpu kernel against candle on the CPU, on random inputs and edge shapes (sizes that
//! are not multiples of a tile, one row, long contexts, several GQA ratios): normalised mean
//! squared error at most 1e-7 in f32, the bar of llama.cpp's `test-backend-ops`.
//!
//! Without an adapter these tests say so and pass, unless `CRUCIBLE_REQUIRE_WGPU=1` (set by
//! `scripts/test.sh`, which installs Mesa's software Vulkan) makes that a failure.

mod common;

use candle_core::{D, Device, IndexOp, Tensor};
use common::wgpu::{nmse, require_gpu};
use crucible_gpu::webgpu::ops::{self, AttentionShape, MASKED, NormRows, OutColumns, RowChunk};
use crucible_gpu::webgpu::{Plan, WgpuDevice};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const NMSE_BAR: f64 = 1e-7;

fn random(rng: &mut StdRng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

fn tensor(data: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_slice(data, shape, &Device::Cpu).unwrap()
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

fn assert_close(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    let e = nmse(got, want);
    assert!(e <= NMSE_BAR, "{what}: NMSE {e:e} > {NMSE_BAR:e}");
}

/// Runs the launches `record` adds and reads `out` back.
fn run(
    gpu: &WgpuDevice,
    out: &wgpu::Buffer,
    words: usize,
    record: impl FnOnce(&mut Plan<'_>),
) -> Vec<f32> {
    let mut plan = Plan::new(gpu);
    record(&mut plan);
    plan.run(out, words).unwrap()
}

#[test]
fn linear_matches_candle_as_matvec_and_as_tiled_matmul() {
    let Some(gpu) = require_gpu() else { return };
    let mut rng = StdRng::seed_from_u64(1);
    // (m, n, k): one row, the mat-vec limit, just past it, tiles that do not divide.
    for (m, n, k) in [
        (1, 7, 13),
        (3, 130, 67),
        (16, 64, 64),
        (17, 70, 33),
        (100, 129, 200),
        (64, 64, 16),
    ] {
        for (bias, accumulate) in [(false, false), (true, false), (true, true)] {
            let (x, w, b, y0) = (
                random(&mut rng, m * k),
                random(&mut rng, n * k),
                random(&mut rng, n),
                random(&mut rng, m * n),
            );
            let xb = gpu.upload("x", &x).unwrap();
            let wb = gpu.upload("w", &w).unwrap();
            let bb = gpu.upload("b", &b).unwrap();
            let yb = gpu.upload("y", &y0).unwrap();
            let got = run(&gpu, &yb, m * n, |p| {
                let out = OutColumns {
                    stride: n,
                    first: 0,
                };
                ops::linear(
                    p,
                    &xb,
                    &wb,
                    bias.then_some(&bb),
                    &yb,
                    (m, n, k),
                    accumulate,
                    out,
                )
            });
            let mut want = tensor(&x, &[m, k])
                .matmul(&tensor(&w, &[n, k]).t().unwrap())
                .unwrap();
            if bias {
                want = want.broadcast_add(&tensor(&b, &[n])).unwrap();
            }
            if accumulate {
                want = (want + tensor(&y0, &[m, n])).unwrap();
            }
            assert_close(
                &format!("linear {m}x{n}x{k} bias={bias} acc={accumulate}"),
                &got,
                &values(&want),
            );
        }
    }
}

#[test]
fn linear_split_by_output_rows_fills_its_columns_of_one_output() {
    let Some(gpu) = require_gpu() else { return };
    let mut rng = StdRng::seed_from_u64(8);
    for m in [2, 40] {
        let (n, k, split) = (90, 24, 64);
        let (x, w, b) = (
            random(&mut rng, m * k),
            random(&mut rng, n * k),
            random(&mut rng, n),
        );
        let xb = gpu.upload("x", &x).unwrap();
        let y = gpu.zeros("y", m * n).unwrap();
        let parts: Vec<_> = [(0, split), (split, n - split)]
            .into_iter()
            .map(|(first, rows)| {
                let w = gpu.upload("w", &w[first * k..(first + rows) * k]).unwrap();
                let b = gpu.upload("b", &b[first..first + rows]).unwrap();
                (w, b, first, rows)
            })
            .collect();
        let got = run(&gpu, &y, m * n, |p| {
            for (w, b, first, rows) in &parts {
                let out = OutColumns {
                    stride: n,
                    first: *first,
                };
                ops::linear(p, &xb, w, Some(b), &y, (m, *rows, k), false, out);
            }
        });
        let want = tensor(&x, &[m, k])
            .matmul(&tensor(&w, &[n, k]).t().unwrap())
            .unwrap()
            .broadcast_add(&tensor(&b, &[n]))
            .unwrap();
        assert_close(&format!("split linear, {m} rows"), &got, &values(&want));
    }
}

#[test]
fn rms_norm_matches_candle_densely_and_on_picked_rows() {
    let Some(gpu) = require_gpu() else { return };
    let mut rng = StdRng::seed_from_u64(2);
    for (rows, width) in [(1, 1), (5, 63), (33, 128), (2, 1000)] {
        let (x, w) = (random(&mut rng, rows * width), random(&mut rng, width));
        let (xb, wb) = (gpu.upload("x", &x).unwrap(), gpu.upload("w", &w).unwrap());
        let out = gpu.zeros("out", rows * width).unwrap();
        let got = run(&gpu, &out, rows * width, |p| {
            ops::rms_norm(p, &xb, &wb, &out, rows, width, 1e-5, NormRows::dense(width))
        });
        let want =
            candle_nn::ops::rms_norm(&tensor(&x, &[rows, width]), &tensor(&w, &[width]), 1e-5)
                .unwrap();
        assert_close(&format!("rms_norm {rows}x{width}"), &got, &values(&want));
    }
    // Rows 4 and 1 of six, written into the right half of rows twice as wide.
    let (rows, width) = (6, 40);
    let (x, w) = (random(&mut rng, rows * width), random(&mut rng, width));
    let (xb, wb) = (gpu.upload("x", &x).unwrap(), gpu.upload("w", &w).unwrap());
    let picked = gpu.upload("rows", &[4u32, 1]).unwrap();
    let out = gpu.zeros("out", 2 * 2 * width).unwrap();
    let got = run(&gpu, &out, 4 * width, |p| {
        let select = NormRows {
            source: Some(&picked),
            out_stride: 2 * width,
            out_col: width,
        };
        ops::rms_norm(p, &xb, &wb, &out, 2, width, 1e-5, select)
    });
    let normed =
        candle_nn::ops::rms_norm(&tensor(&x, &[rows, width]), &tensor(&w, &[width]), 1e-5).unwrap();
    for (i, src) in [4usize, 1].into_iter().enumerate() {
        let row = &got[i * 2 * width..(i + 1) * 2 * width];
        assert!(
            row[..width].iter().all(|&v| v == 0.0),
            "the left half is untouched"
        );
        assert_close(
            "picked row",
            &row[width..],
            &values(&normed.i(src).unwrap()),
        );
    }
}

#[test]
fn rope_matches_candle_at_arbitrary_positions() {
    let Some(gpu) = require_gpu() else { return };
    let mut rng = StdRng::seed_from_u64(3);
    let (rows, heads, extra, d, max_pos) = (7, 3, 2, 16, 300);
    let width = (heads + extra) * d;
    let x = random(&mut rng, rows * width);
    let positions: Vec<u32> = (0..rows)
        .map(|_| rng.random_range(0..max_pos as u32))
        .collect();
    let angles: Vec<f32> = (0..max_pos * d / 2)
        .map(|i| (i / (d / 2)) as f32 / 10_000f32.powf(2.0 * (i % (d / 2)) as f32 / d as f32))
        .collect();
    let cos: Vec<f32> = angles.iter().map(|a| a.cos()).collect();
    let sin: Vec<f32> = angles.iter().map(|a| a.sin()).collect();
    let xb = gpu.upload("x", &x).unwrap();
    let pb = gpu.upload("positions", &positions).unwrap();
    let (cb, sb) = (
        gpu.upload("cos", &cos).unwrap(),
        gpu.upload("sin", &sin).unwrap(),
    );
    let got = run(&gpu, &xb, rows * width, |p| {
        ops::rope(p, &xb, &pb, &cb, &sb, rows, heads, d, width)
    });

    // candle: (batch=rows, heads, t=1, d) with per-row tables (rows, 1, d/2).
    let idx = Tensor::new(positions.as_slice(), &Device::Cpu).unwrap();
    let table = |v: &[f32]| {
        tensor(v, &[max_pos, d / 2])
            .index_select(&idx, 0)
            .unwrap()
            .reshape((rows, 1, d / 2))
            .unwrap()
    };
    let xt = tensor(&x, &[rows, heads + extra, d]);
    let rotated = candle_nn::rotary_emb::rope(
        &xt.narrow(1, 0, heads)
            .unwrap()
            .unsqueeze(2)
            .unwrap()
            .contiguous()
            .unwrap(),
        &table(&cos),
        &table(&sin),
    )
    .unwrap()
    .squeeze(2)
    .unwrap();
    let want = Tensor::cat(&[&rotated, &xt.narrow(1, heads, extra).unwrap()], 1).unwrap();
    assert_close("rope", &got, &values(&want));
}

// Random cached keys/values and fused q/k/v rows for `t` new columns, against candle's
// attention over the `len + t` visible columns with K/V repeated per group.
#[test]
fn attention_matches_candle_for_gqa_ratios_padding_and_long_contexts() {
    let Some(gpu) = require_gpu() else { return };
    let mut rng = StdRng::seed_from_u64(4);
    // (batch, t, len, heads, kv_heads, head_dim)
    let cases = [
        (1, 1, 0, 2, 2, 8),     // the first token
        (2, 5, 0, 4, 2, 16),    // prefill, GQA 2
        (3, 1, 37, 6, 1, 40),   // decode, GQA 6 (multi-query), odd width
        (1, 1, 1000, 4, 2, 64), // long context
        (2, 3, 70, 8, 2, 128),  // several new columns after a cache, GQA 4
        (1, 2, 5, 2, 1, 256),   // widest head
    ];
    for (batch, t, len, heads, kv_heads, d) in cases {
        let shape = AttentionShape {
            batch,
            t,
            len,
            capacity: len + t + 3,
            heads,
            kv_heads,
            head_dim: d,
        };
        let total = len + t;
        let cap = shape.capacity;
        let k = random(&mut rng, batch * kv_heads * cap * d);
        let v = random(&mut rng, batch * kv_heads * cap * d);
        let qkv = random(&mut rng, batch * t * shape.qkv_width());
        // Row 0 is left-padded by two columns (when it has them); queries see keys up to their
        // own, and always their own (as the cache's mask does for padding queries).
        let mut mask = vec![0f32; batch * t * total];
        for b in 0..batch {
            for q in 0..t {
                for key in 0..total {
                    let own = key == len + q;
                    let hidden = key > len + q || (b == 0 && total > 4 && key < 2 && !own);
                    if hidden {
                        mask[(b * t + q) * total + key] = MASKED;
                    }
                }
            }
        }
        let kb = gpu.upload("k", &k).unwrap();
        let vb = gpu.upload("v", &v).unwrap();
        let qb = gpu.upload("qkv", &qkv).unwrap();
        let mb = gpu.upload("mask", &mask).unwrap();
        let out = gpu.zeros("out", batch * t * heads * d).unwrap();
        let got = run(&gpu, &out, batch * t * heads * d, |p| {
            ops::attention(p, &qb, &kb, &vb, Some(&mb), &out, shape)
        });

        let q = tensor(&qkv, &[batch, t, heads + 2 * kv_heads, d])
            .narrow(2, 0, heads)
            .unwrap()
            .transpose(1, 2)
            .unwrap();
        let keys = tensor(&k, &[batch, kv_heads, cap, d])
            .narrow(2, 0, total)
            .unwrap();
        let vals = tensor(&v, &[batch, kv_heads, cap, d])
            .narrow(2, 0, total)
            .unwrap();
        let group = heads / kv_heads;
        let repeat = |x: Tensor| {
            x.unsqueeze(2)
                .unwrap()
                .repeat((1, 1, group, 1, 1))
                .unwrap()
                .reshape((batch, heads, total, d))
                .unwrap()
        };
        let additive: Vec<f32> = mask
            .iter()
            .map(|&m| if m == MASKED { f32::NEG_INFINITY } else { 0.0 })
            .collect();
        let scores = (q
            .contiguous()
            .unwrap()
            .matmul(&repeat(keys).t().unwrap())
            .unwrap()
            / (d as f64).sqrt())
        .unwrap()
        .broadcast_add(&tensor(&additive, &[batch, 1, t, total]))
        .unwrap();
        let probs = candle_nn::ops::softmax(&scores, D::Minus1).unwrap();
        let want = probs
            .matmul(&repeat(vals).contiguous().unwrap())
            .unwrap()
            .transpose(1, 2)
            .unwrap();
        assert_close(
            &format!("attention {batch}x{t} after {len}, {heads}/{kv_heads} heads of {d}"),
            &got,
            &values(&want),
        );
    }
}

#[test]
fn attention_without_a_mask_sees_every_cached_column() {
    let Some(gpu) = require_gpu() else { return };
    let mut rng = StdRng::seed_from_u64(5);
    let shape = AttentionShape {
        batch: 2,
        t: 1,
        len: 130,
        capacity: 131,
        heads: 4,
        kv_heads: 4,
        head_dim: 32,
    };
    let (total, d) = (131, 32);
    let k = random(&mut rng, 2 * 4 * total * d);
    let v = random(&mut rng, 2 * 4 * total * d);
    let qkv = random(&mut rng, 2 * shape.qkv_width());
    let (kb, vb, qb) = (
        gpu.upload("k", &k).unwrap(),
        gpu.upload("v", &v).unwrap(),
        gpu.upload("qkv", &qkv).unwrap(),
    );
    let out = gpu.zeros("out", 2 * 4 * d).unwrap();
    let got = run(&gpu, &out, 2 * 4 * d, |p| {
        ops::attention(p, &qb, &kb, &vb, None, &out, shape)
    });
    let q = tensor(&qkv, &[2, 1, 12, d])
        .narrow(2, 0, 4)
        .unwrap()
        .transpose(1, 2)
        .unwrap()
        .contiguous()
        .unwrap();
    let scores = (q
        .matmul(&tensor(&k, &[2, 4, total, d]).t().unwrap())
        .unwrap()
        / (d as f64).sqrt())
    .unwrap();
    let probs = candle_nn::ops::softmax_last_dim(&scores).unwrap();
    let want = probs
        .matmul(&tensor(&v, &[2, 4, total, d]))
        .unwrap()
        .transpose(1, 2)
        .unwrap();
    assert_close("unmasked attention", &got, &values(&want));
}

#[test]
fn kv_append_writes_the_new_columns_and_nothing_else() {
    let Some(gpu) = require_gpu() else { return };
    let mut rng = StdRng::seed_from_u64(6);
    let shape = AttentionShape {
        batch: 2,
        t: 3,
        len: 4,
        capacity: 9,
        heads: 4,
        kv_heads: 2,
        head_dim: 5,
    };
    let (kvh, d, cap) = (2, 5, 9);
    let qkv = random(&mut rng, 2 * 3 * shape.qkv_width());
    let qb = gpu.upload("qkv", &qkv).unwrap();
    let kb = gpu.zeros("k", 2 * kvh * cap * d).unwrap();
    let vb = gpu.zeros("v", 2 * kvh * cap * d).unwrap();
    let got_k = run(&gpu, &kb, 2 * kvh * cap * d, |p| {
        ops::kv_append(p, &qb, &kb, &vb, shape)
    });
    let got_v = gpu.read(&vb, 2 * kvh * cap * d).unwrap();
    let fused = tensor(&qkv, &[2, 3, 8, d]);
    for (got, first_head) in [(got_k, 4), (got_v, 6)] {
        let cache = tensor(&got, &[2, kvh, cap, d]);
        let want = fused
            .narrow(2, first_head, kvh)
            .unwrap()
            .transpose(1, 2)
            .unwrap();
        assert_eq!(values(&cache.narrow(2, 4, 3).unwrap()), values(&want));
        assert!(
            values(&cache.narrow(2, 0, 4).unwrap())
                .iter()
                .all(|&x| x == 0.0)
        );
        assert!(
            values(&cache.narrow(2, 7, 2).unwrap())
                .iter()
                .all(|&x| x == 0.0)
        );
    }
}

#[test]
fn swiglu_and_embedding_match_candle() {
    let Some(gpu) = require_gpu() else { return };
    let mut rng = StdRng::seed_from_u64(7);
    let (rows, inner) = (5, 97);
    let gu = random(&mut rng, rows * 2 * inner);
    let gb = gpu.upload("gate_up", &gu).unwrap();
    let out = gpu.zeros("out", rows * inner).unwrap();
    let got = run(&gpu, &out, rows * inner, |p| {
        ops::swiglu(p, &gb, &out, rows, inner)
    });
    let g = tensor(&gu, &[rows, 2 * inner]);
    let want = (candle_nn::ops::silu(&g.narrow(1, 0, inner).unwrap()).unwrap()
        * g.narrow(1, inner, inner).unwrap())
    .unwrap();
    assert_close("swiglu", &got, &values(&want));

    let (vocab, width) = (11, 6);
    let table = random(&mut rng, vocab * width);
    let ids = [3u32, 0, 10, 3];
    let positions = [0u32, 1, 0, 2];
    // The table split by rows, as the decoder splits one too large for a binding.
    let split = 7;
    let low = gpu.upload("rows 0..7", &table[..split * width]).unwrap();
    let high = gpu.upload("rows 7..", &table[split * width..]).unwrap();
    let chunks = [(&low, 0, split), (&high, split, vocab - split)];
    let ib = gpu.upload("ids", &ids).unwrap();
    let pb = gpu.upload("positions", &positions).unwrap();
    let out = gpu.zeros("out", ids.len() * width).unwrap();
    for zero_first in [false, true] {
        let got = run(&gpu, &out, ids.len() * width, |p| {
            for (buffer, first, rows) in chunks {
                let chunk = RowChunk {
                    buffer,
                    first,
                    rows,
                };
                ops::embedding(p, chunk, &ib, &pb, &out, ids.len(), width, zero_first)
            }
        });
        let want = tensor(&table, &[vocab, width])
            .index_select(&Tensor::new(&ids, &Device::Cpu).unwrap(), 0)
            .unwrap();
        for (r, &pos) in positions.iter().enumerate() {
            let row = &got[r * width..(r + 1) * width];
            if zero_first && pos == 0 {
                assert!(
                    row.iter().all(|&x| x == 0.0),
                    "row {r} is zeroed at position 0"
                );
            } else {
                assert_eq!(row, values(&want.i(r).unwrap()).as_slice(), "row {r}");
            }
        }
    }
}
