//! A pre-allocated key/value cache for a batch of sequences that share one column layout.
//!
//! Prompts of different lengths are left-padded to a common length, so every decode step writes
//! one new column for the whole batch. Each row remembers its padding: its tokens' RoPE positions
//! start at 0 after the padding, and the attention mask hides the padding columns. Storage grows
//! by doubling, so a step never copies the whole cache unless capacity runs out.
//!
//! A row may also have *holes*: columns after its padding that it no longer attends to (draft
//! tokens that speculative decoding rejected in this row but another row of the batch kept).
//! Positions skip them and the mask hides them, so the row sees exactly its accepted tokens.

use candle_core::{DType, Device, Tensor};

use crate::webgpu::cache::GpuKv;

/// Keys and values of one attention layer, `(batch, kv_heads, capacity, head_dim)`.
struct LayerKv {
    k: Tensor,
    v: Tensor,
}

/// Where the keys and values live: candle tensors (allocated at the first append, when their
/// shape is known) or buffers on a wgpu adapter.
enum Storage {
    Tensors(Vec<Option<LayerKv>>),
    Gpu(GpuKv),
}

/// The cache of one model (or one MTP layer) for one batch.
pub struct KvCache {
    storage: Storage,
    pads: Vec<usize>,
    /// Per row, the sorted columns (at or after its padding) it ignores; may name columns not
    /// written yet, so a lagging cache can learn its holes before it catches up.
    holes: Vec<Vec<usize>>,
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
            storage: Storage::Tensors((0..num_layers).map(|_| None).collect()),
            holes: vec![Vec::new(); pads.len()],
            pads,
            len: 0,
            capacity: capacity.max(1),
            store: true,
        }
    }

    /// A cache whose keys and values live on a wgpu adapter (the wgpu decoder writes them).
    pub(crate) fn on_gpu(storage: GpuKv, pads: Vec<usize>) -> Self {
        Self {
            capacity: storage.capacity(),
            storage: Storage::Gpu(storage),
            holes: vec![Vec::new(); pads.len()],
            pads,
            len: 0,
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

    /// Whether every row's positions are its column indices (no padding, no holes), so a step
    /// can share one RoPE table slice and, for a single column, needs no mask.
    pub fn is_dense(&self) -> bool {
        self.pads.iter().all(|&p| p == 0) && self.holes.iter().all(Vec::is_empty)
    }

    /// RoPE position of every row for the next `t` columns: the row's columns before it that
    /// are neither padding nor holes. Padding columns get position 0.
    pub fn positions(&self, t: usize) -> Vec<u32> {
        let mut out = Vec::with_capacity(self.pads.len() * t);
        for (&pad, holes) in self.pads.iter().zip(&self.holes) {
            let mut skipped = holes.partition_point(|&h| h < self.len);
            for col in self.len..self.len + t {
                if col > self.len && holes.binary_search(&(col - 1)).is_ok() {
                    skipped += 1;
                }
                out.push(col.saturating_sub(pad + skipped) as u32);
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
        match self.mask_values(t, f32::NEG_INFINITY) {
            Some(data) => {
                let shape = (self.pads.len(), 1, 1, t, self.len + t);
                Ok(Some(
                    Tensor::from_vec(data, shape, device)?.to_dtype(dtype)?,
                ))
            }
            None => Ok(None),
        }
    }

    /// The values of [`Self::mask`], row-major `(batch, t, len + t)`, with `hidden` at hidden
    /// keys (the wgpu kernels take a finite stand-in for -inf).
    pub(crate) fn mask_values(&self, t: usize, hidden_value: f32) -> Option<Vec<f32>> {
        if t == 1 && self.is_dense() {
            return None;
        }
        let total = self.len + t;
        let mut data = Vec::with_capacity(self.pads.len() * t * total);
        let mut hidden = vec![false; total];
        for (&pad, holes) in self.pads.iter().zip(&self.holes) {
            hidden.fill(false);
            for &h in holes.iter().take_while(|&&h| h < total) {
                hidden[h] = true;
            }
            for q in self.len..total {
                for (k, &hole) in hidden.iter().enumerate() {
                    let visible = k == q || (k < q && k >= pad && q >= pad && !hole);
                    data.push(if visible { 0f32 } else { hidden_value });
                }
            }
        }
        Some(data)
    }

    /// Starts row `row` afresh at the next column: everything before it becomes that row's
    /// padding, so a new sequence can take a finished row's place mid-batch (continuous batching).
    pub fn restart_row(&mut self, row: usize) {
        self.pads[row] = self.len;
        self.holes[row].clear();
    }

    /// Makes row `row` ignore `columns` from now on (written or not yet written): speculative
    /// decoding hides the draft columns this row rejected while another row kept its own.
    pub fn hide(&mut self, row: usize, columns: std::ops::Range<usize>) {
        if columns.is_empty() {
            return;
        }
        let holes = &mut self.holes[row];
        holes.extend(columns);
        holes.sort_unstable();
        holes.dedup();
    }

    /// Forgets every column from `len` on (drafts no row kept), so the next step overwrites them.
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
        for holes in &mut self.holes {
            holes.retain(|&h| h < self.len);
        }
    }

    /// Appends `n` columns that every row ignores, without computing them: a lagging draft
    /// cache skips history it will not attend to instead of paying a forward pass for it.
    pub fn skip(&mut self, n: usize) -> candle_core::Result<()> {
        let (start, end) = (self.len, self.len + n);
        self.reserve(end)?;
        for row in 0..self.pads.len() {
            self.hide(row, start..end);
        }
        self.len = end;
        Ok(())
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
        match (&mut self.storage, &src.storage) {
            (Storage::Tensors(layers), Storage::Tensors(from_layers)) => {
                for (dst, from) in layers.iter().zip(from_layers) {
                    let (Some(dst), Some(from)) = (dst, from) else {
                        candle_core::bail!("splice_row before the first forward pass");
                    };
                    for (d, s) in [(&dst.k, &from.k), (&dst.v, &from.v)] {
                        let piece = s.narrow(0, src_row, 1)?.narrow(2, src_start, n)?;
                        d.narrow(0, row, 1)?
                            .slice_set(&piece.contiguous()?, 2, start)?;
                    }
                }
            }
            (Storage::Gpu(dst), Storage::Gpu(from)) => {
                dst.splice_row(row, start, from, src_row, src_start, n);
            }
            _ => candle_core::bail!("splice_row between caches on different devices"),
        }
        self.pads[row] = start;
        self.holes[row].clear();
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
        match &mut self.storage {
            Storage::Tensors(layers) => {
                for slot in layers.iter_mut().flatten() {
                    slot.k = grow(&slot.k.narrow(2, dead, live)?, self.capacity)?;
                    slot.v = grow(&slot.v.narrow(2, dead, live)?, self.capacity)?;
                }
            }
            Storage::Gpu(kv) => kv
                .resize(dead, live, self.capacity)
                .map_err(candle_core::Error::wrap)?,
        }
        for pad in &mut self.pads {
            *pad -= dead;
        }
        for h in self.holes.iter_mut().flatten() {
            *h -= dead;
        }
        self.len = live;
        Ok(dead)
    }

    /// Adds `other`'s rows after this cache's rows, the two caches' last columns aligned (the
    /// shorter one is left-padded): the serving engine prefills newly arrived requests in a cache
    /// of their own and then decodes them in the running batch. Both caches must be past their
    /// first forward pass, in candle tensors (a wgpu cache cannot be joined yet).
    pub fn append_rows(&mut self, other: KvCache) -> candle_core::Result<()> {
        let len = self.len.max(other.len);
        let (shift, other_shift) = (len - self.len, len - other.len);
        let capacity = self.capacity.max(other.capacity).max(len);
        let (Storage::Tensors(layers), Storage::Tensors(from_layers)) =
            (&mut self.storage, other.storage)
        else {
            candle_core::bail!("append_rows is only implemented for candle caches");
        };
        for (dst, from) in layers.iter_mut().zip(from_layers) {
            let (Some(dst), Some(from)) = (dst, from) else {
                candle_core::bail!("append_rows before the first forward pass");
            };
            for (d, s) in [(&mut dst.k, &from.k), (&mut dst.v, &from.v)] {
                let mine = shifted(d, self.len, shift, capacity)?;
                let theirs = shifted(s, other.len, other_shift, capacity)?;
                *d = Tensor::cat(&[&mine, &theirs], 0)?;
            }
        }
        self.pads.iter_mut().for_each(|p| *p += shift);
        self.holes.iter_mut().flatten().for_each(|h| *h += shift);
        self.pads
            .extend(other.pads.iter().map(|&p| p + other_shift));
        self.holes.extend(
            other
                .holes
                .into_iter()
                .map(|h| h.into_iter().map(|c| c + other_shift).collect()),
        );
        self.len = len;
        self.capacity = capacity;
        Ok(())
    }

    /// Keeps only the rows `keep` (in that order) and drops the columns no kept row uses any
    /// more: finished requests leave a serving batch instead of decoding filler.
    pub fn retain_rows(&mut self, keep: &[usize]) -> candle_core::Result<()> {
        let Storage::Tensors(layers) = &mut self.storage else {
            candle_core::bail!("retain_rows is only implemented for candle caches");
        };
        let ids: Vec<u32> = keep.iter().map(|&r| r as u32).collect();
        for slot in layers.iter_mut().flatten() {
            let ids = Tensor::new(ids.as_slice(), slot.k.device())?;
            slot.k = slot.k.index_select(&ids, 0)?;
            slot.v = slot.v.index_select(&ids, 0)?;
        }
        self.pads = keep.iter().map(|&r| self.pads[r]).collect();
        self.holes = keep.iter().map(|&r| self.holes[r].clone()).collect();
        self.compact()?;
        Ok(())
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
        self.reserve(needed)?;
        let Storage::Tensors(layers) = &mut self.storage else {
            candle_core::bail!("a tensor append to a cache on a wgpu adapter");
        };
        let slot = match &mut layers[layer] {
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

    /// Grows the storage (by doubling) so that `needed` columns fit.
    fn reserve(&mut self, needed: usize) -> candle_core::Result<()> {
        if needed > self.capacity {
            self.capacity = needed.max(self.capacity * 2);
            match &mut self.storage {
                Storage::Tensors(layers) => {
                    for slot in layers.iter_mut().flatten() {
                        slot.k = grow(&slot.k, self.capacity)?;
                        slot.v = grow(&slot.v, self.capacity)?;
                    }
                }
                Storage::Gpu(kv) => kv
                    .resize(0, self.len, self.capacity)
                    .map_err(candle_core::Error::wrap)?,
            }
        }
        Ok(())
    }

    /// Keys and values `(kv_heads, columns, head_dim)` of layer `layer` that row `row` attends
    /// to (padding and holes left out), to compare a cache with another decode of the same text.
    #[cfg(test)]
    pub(crate) fn row_kv(&self, layer: usize, row: usize) -> candle_core::Result<(Tensor, Tensor)> {
        let live: Vec<u32> = (self.pads[row]..self.len)
            .filter(|c| self.holes[row].binary_search(c).is_err())
            .map(|c| c as u32)
            .collect();
        let Storage::Tensors(layers) = &self.storage else {
            candle_core::bail!("row_kv of a cache on a wgpu adapter");
        };
        let Some(slot) = &layers[layer] else {
            candle_core::bail!("row_kv before the first forward pass");
        };
        let idx = Tensor::new(live.as_slice(), slot.k.device())?;
        let pick = |t: &Tensor| t.get(row)?.index_select(&idx, 1);
        Ok((pick(&slot.k)?, pick(&slot.v)?))
    }

    /// Makes room for `t` more columns and hands the wgpu decoder the storage to write them to.
    pub(crate) fn gpu_storage(&mut self, t: usize) -> Result<&GpuKv, candle_core::Error> {
        self.reserve(self.len + t)?;
        match &mut self.storage {
            Storage::Gpu(kv) => kv.ready().map_err(candle_core::Error::wrap),
            Storage::Tensors(_) => candle_core::bail!("a wgpu forward pass over a candle cache"),
        }
    }

    /// Marks `t` columns as written once every layer has appended them.
    pub(crate) fn commit(&mut self, t: usize) {
        self.len += t;
    }
}

/// The first `len` columns of a cache tensor, moved `shift` columns right into a new tensor with
/// `capacity` columns (the columns before them are zero: padding the mask hides).
fn shifted(old: &Tensor, len: usize, shift: usize, capacity: usize) -> candle_core::Result<Tensor> {
    let (b, h, _, d) = old.dims4()?;
    let new = Tensor::zeros((b, h, capacity, d), old.dtype(), old.device())?;
    new.slice_set(&old.narrow(2, 0, len)?.contiguous()?, 2, shift)?;
    Ok(new)
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
    fn holes_are_skipped_by_positions_and_hidden_by_the_mask() {
        let dev = Device::Cpu;
        let mut cache = KvCache::new(1, vec![0, 1], 8);
        for _ in 0..3 {
            let c = Tensor::zeros((2, 1, 1, 1), DType::F32, &dev).unwrap();
            cache.append(0, &c, &c).unwrap();
            cache.commit(1);
        }
        cache.hide(0, 1..2);
        // A hole not written yet (a lagging cache learns it first) counts once it is passed.
        cache.hide(1, 3..4);
        assert!(!cache.is_dense());
        assert_eq!(cache.positions(3), vec![2, 3, 4, 2, 2, 3]);
        let m: Vec<f32> = cache
            .mask(1, DType::F32, &dev)
            .unwrap()
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let inf = f32::NEG_INFINITY;
        assert_eq!(m, vec![0., inf, 0., 0., inf, 0., 0., 0.]);
        cache.truncate(2);
        assert_eq!(
            cache.positions(1),
            vec![1, 1],
            "holes past the end are forgotten"
        );
        cache.skip(2).unwrap();
        assert_eq!((cache.len(), cache.positions(1)), (4, vec![1, 1]));
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

    /// A cache of `rows` rows holding `len` columns, each value naming its row (tens) and column.
    fn filled(rows: usize, len: usize, base: f32) -> KvCache {
        let mut cache = KvCache::new(1, vec![0; rows], 2);
        for col in 0..len {
            let values: Vec<f32> = (0..rows)
                .map(|r| base + 10.0 * r as f32 + col as f32)
                .collect();
            let c = Tensor::from_vec(values, (rows, 1, 1, 1), &Device::Cpu).unwrap();
            cache.append(0, &c, &c).unwrap();
            cache.commit(1);
        }
        cache
    }

    fn row_keys(cache: &KvCache, row: usize) -> Vec<f32> {
        let (k, _) = cache.row_kv(0, row).unwrap();
        k.flatten_all().unwrap().to_vec1().unwrap()
    }

    #[test]
    fn joined_and_retained_rows_keep_exactly_their_columns() {
        let mut batch = filled(2, 3, 0.0);
        batch.restart_row(0); // row 0 finished; its columns are now padding
        let newcomer = filled(1, 5, 100.0);
        batch.append_rows(newcomer).unwrap();
        assert_eq!(batch.len(), 5);
        assert_eq!(batch.pads().to_vec(), vec![5, 2, 0]);
        assert_eq!(row_keys(&batch, 1), vec![10., 11., 12.]);
        assert_eq!(row_keys(&batch, 2), vec![100., 101., 102., 103., 104.]);
        assert_eq!(batch.positions(1), vec![0, 3, 5]);

        batch.retain_rows(&[2, 1]).unwrap();
        assert_eq!(batch.batch_size(), 2);
        assert_eq!(row_keys(&batch, 0), vec![100., 101., 102., 103., 104.]);
        assert_eq!(row_keys(&batch, 1), vec![10., 11., 12.]);
        let c = Tensor::full(7f32, (2, 1, 1, 1), &Device::Cpu).unwrap();
        batch.append(0, &c, &c).unwrap();
        batch.commit(1);
        assert_eq!(row_keys(&batch, 1), vec![10., 11., 12., 7.]);
    }
}
