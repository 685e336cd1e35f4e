//! A pre-allocated key/value cache for a batch of sequences that share one column layout.
//!
//! Prompts of different lengths are left-padded to a common length, so every decode step writes
//! one new column for the whole batch. Each row remembers its padding: its tokens' RoPE positions
//! start at 0 after the padding, and the attention mask hides the padding columns. Storage grows
//! by doubling, so a step never copies the whole cache unless capacity runs out.

use candle_core::{DType, Device, Tensor};

/// Keys and values of one attention layer, `(batch, kv_heads, capacity, head_dim)`.
struct LayerKv {
    k: Tensor,
    v: Tensor,
}

/// The cache of one model (or one MTP layer) for one batch.
pub struct KvCache {
    layers: Vec<Option<LayerKv>>,
    pads: Vec<usize>,
    len: usize,
    capacity: usize,
    /// Whether appended keys/values are kept; a training forward sees whole rows at once and
    /// must not copy them into storage, which would cut the autograd graph.
    store: bool,
}

impl KvCache {
    /// An empty cache for `num_layers` attention layers and one row per entry of `pads`
    /// (the number of left-padding columns of that row), with room for `capacity` columns.
    pub fn new(num_layers: usize, pads: Vec<usize>, capacity: usize) -> Self {
        Self {
            layers: (0..num_layers).map(|_| None).collect(),
            pads,
            len: 0,
            capacity: capacity.max(1),
            store: true,
        }
    }

    /// A cache that keeps nothing: each layer's `append` hands its keys and values straight
    /// back, for one forward pass over complete sequences (training).
    pub(crate) fn passthrough(num_layers: usize, batch: usize) -> Self {
        Self {
            store: false,
            ..Self::new(num_layers, vec![0; batch], 1)
        }
    }

    /// Number of rows (sequences).
    pub fn batch_size(&self) -> usize {
        self.pads.len()
    }

    /// Columns already written (padding included).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing has been written yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Left-padding columns of each row.
    pub fn pads(&self) -> &[usize] {
        &self.pads
    }

    /// RoPE position of every row for the next `t` columns; padding columns get position 0.
    pub fn positions(&self, t: usize) -> Vec<u32> {
        let mut out = Vec::with_capacity(self.pads.len() * t);
        for &pad in &self.pads {
            for col in self.len..self.len + t {
                out.push(col.saturating_sub(pad) as u32);
            }
        }
        out
    }

    /// Additive attention mask `(batch, 1, 1, t, len + t)` for the next `t` columns, or `None`
    /// when nothing needs hiding (one new column and no padding).
    ///
    /// A query sees the keys at or before its own column that are not padding; a padding query
    /// sees only itself, so that its (unused) output stays finite and cannot poison the values.
    pub fn mask(
        &self,
        t: usize,
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<Option<Tensor>> {
        if t == 1 && self.pads.iter().all(|&p| p == 0) {
            return Ok(None);
        }
        let total = self.len + t;
        let mut data = Vec::with_capacity(self.pads.len() * t * total);
        for &pad in &self.pads {
            for q in self.len..total {
                for k in 0..total {
                    let visible = k == q || (k < q && k >= pad && q >= pad);
                    data.push(if visible { 0f32 } else { f32::NEG_INFINITY });
                }
            }
        }
        let mask = Tensor::from_vec(data, (self.pads.len(), 1, 1, t, total), device)?;
        Ok(Some(mask.to_dtype(dtype)?))
    }

    /// Starts row `row` afresh at the next column: everything before it becomes that row's
    /// padding, so a new sequence can take a finished row's place mid-batch (continuous batching).
    pub fn restart_row(&mut self, row: usize) {
        self.pads[row] = self.len;
    }

    /// Starts row `row` afresh with the `n` columns that end at `src`'s last column in row
    /// `src_row` (a prompt prefilled in its own cache), written as this cache's last `n` columns:
    /// so a new sequence takes a finished row's place mid-batch with its prompt already in.
    /// Expects `n ≤ len()` and both caches past their first forward pass.
    pub fn splice_row(
        &mut self,
        row: usize,
        src: &KvCache,
        src_row: usize,
        n: usize,
    ) -> candle_core::Result<()> {
        let (start, src_start) = (self.len - n, src.len - n);
        for (dst, from) in self.layers.iter().zip(&src.layers) {
            let (Some(dst), Some(from)) = (dst, from) else {
                candle_core::bail!("splice_row before the first forward pass");
            };
            for (d, s) in [(&dst.k, &from.k), (&dst.v, &from.v)] {
                let piece = s.narrow(0, src_row, 1)?.narrow(2, src_start, n)?;
                d.narrow(0, row, 1)?
                    .slice_set(&piece.contiguous()?, 2, start)?;
            }
        }
        self.pads[row] = start;
        Ok(())
    }

    /// Drops the leading columns that are padding for every row, once they are at least half the
    /// cache, so a long continuous batch keeps a bounded width. Returns the columns dropped.
    pub fn compact(&mut self) -> candle_core::Result<usize> {
        let dead = self.pads.iter().copied().min().unwrap_or(0);
        if dead == 0 || dead * 2 < self.len || !self.store {
            return Ok(0);
        }
        let live = self.len - dead;
        self.capacity = (live * 2).max(1);
        for slot in self.layers.iter_mut().flatten() {
            slot.k = grow(&slot.k.narrow(2, dead, live)?, self.capacity)?;
            slot.v = grow(&slot.v.narrow(2, dead, live)?, self.capacity)?;
        }
        for pad in &mut self.pads {
            *pad -= dead;
        }
        self.len = live;
        Ok(dead)
    }

    /// Writes the keys and values `(batch, kv_heads, t, head_dim)` of layer `layer` at the next
    /// columns and returns views of all columns so far (including the new ones).
    pub(crate) fn append(
        &mut self,
        layer: usize,
        k: &Tensor,
        v: &Tensor,
    ) -> candle_core::Result<(Tensor, Tensor)> {
        if !self.store {
            return Ok((k.clone(), v.clone()));
        }
        let t = k.dim(2)?;
        let needed = self.len + t;
        if needed > self.capacity {
            self.capacity = needed.max(self.capacity * 2);
            for slot in self.layers.iter_mut().flatten() {
                slot.k = grow(&slot.k, self.capacity)?;
                slot.v = grow(&slot.v, self.capacity)?;
            }
        }
        let slot = match &mut self.layers[layer] {
            Some(slot) => slot,
            empty => {
                let (b, h, _, d) = k.dims4()?;
                let shape = (b, h, self.capacity, d);
                empty.insert(LayerKv {
                    k: Tensor::zeros(shape, k.dtype(), k.device())?,
                    v: Tensor::zeros(shape, v.dtype(), v.device())?,
                })
            }
        };
        slot.k.slice_set(&k.contiguous()?, 2, self.len)?;
        slot.v.slice_set(&v.contiguous()?, 2, self.len)?;
        Ok((slot.k.narrow(2, 0, needed)?, slot.v.narrow(2, 0, needed)?))
    }

    /// Marks `t` columns as written once every layer has appended them.
    pub(crate) fn commit(&mut self, t: usize) {
        self.len += t;
    }
}

/// Copies a cache tensor (or a view of some of its columns) to the front of a new one with
/// `capacity` columns.
fn grow(old: &Tensor, capacity: usize) -> candle_core::Result<Tensor> {
    let (b, h, _, d) = old.dims4()?;
    let new = Tensor::zeros((b, h, capacity, d), old.dtype(), old.device())?;
    new.slice_set(&old.contiguous()?, 2, 0)?;
    Ok(new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_restart_after_padding() {
        let cache = KvCache::new(1, vec![0, 2], 8);
        assert_eq!(cache.positions(3), vec![0, 1, 2, 0, 0, 0]);
    }

    #[test]
    fn mask_hides_future_and_padding() {
        let cache = KvCache::new(1, vec![1], 8);
        let m = cache.mask(3, DType::F32, &Device::Cpu).unwrap().unwrap();
        let m: Vec<f32> = m.flatten_all().unwrap().to_vec1().unwrap();
        let inf = f32::NEG_INFINITY;
        assert_eq!(m, vec![0., inf, inf, inf, 0., inf, inf, 0., 0.]);
        assert!(
            KvCache::new(1, vec![0], 8)
                .mask(1, DType::F32, &Device::Cpu)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn restarted_rows_are_compacted_away() {
        let dev = Device::Cpu;
        let mut cache = KvCache::new(1, vec![0, 0], 4);
        for col in 0..4 {
            let c = Tensor::full(col as f32, (2, 1, 1, 1), &dev).unwrap();
            cache.append(0, &c, &c).unwrap();
            cache.commit(1);
        }
        cache.restart_row(0);
        assert_eq!(
            cache.positions(1),
            vec![0, 4],
            "a restarted row counts from 0 again"
        );
        let mask: Vec<f32> = cache
            .mask(1, DType::F32, &dev)
            .unwrap()
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let inf = f32::NEG_INFINITY;
        assert_eq!(mask, vec![inf, inf, inf, inf, 0., 0., 0., 0., 0., 0.]);
        assert_eq!(cache.compact().unwrap(), 0, "row 1 still uses column 0");
        let c = Tensor::full(4f32, (2, 1, 1, 1), &dev).unwrap();
        cache.append(0, &c, &c).unwrap();
        cache.commit(1);
        cache.restart_row(1);
        assert_eq!(
            cache.compact().unwrap(),
            4,
            "columns 0-3 are dead for both rows"
        );
        assert_eq!((cache.len(), cache.pads().to_vec()), (1, vec![0, 1]));
        let c = Tensor::full(5f32, (2, 1, 1, 1), &dev).unwrap();
        let (k, _) = cache.append(0, &c, &c).unwrap();
        let k: Vec<f32> = k.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(
            k,
            vec![4., 5., 4., 5.],
            "the live column moved to the front"
        );
    }

    #[test]
    fn append_grows_and_keeps_old_columns() {
        let dev = Device::Cpu;
        let mut cache = KvCache::new(1, vec![0], 2);
        let a = Tensor::ones((1, 1, 2, 2), DType::F32, &dev).unwrap();
        cache.append(0, &a, &a).unwrap();
        cache.commit(2);
        let b = (Tensor::ones((1, 1, 1, 2), DType::F32, &dev).unwrap() * 2.0).unwrap();
        let (k, _) = cache.append(0, &b, &b).unwrap();
        cache.commit(1);
        let k: Vec<f32> = k.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(k, vec![1., 1., 1., 1., 2., 2.]);
        assert_eq!(cache.len(), 3);
    }
}
