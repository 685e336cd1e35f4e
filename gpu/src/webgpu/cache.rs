//! KV-cache storage on the adapter: per attention layer one key and one value buffer laid out
//! `(batch, kv_heads, capacity, head_dim)` as the candle cache's tensors are, so growing,
//! splicing a row in and compacting are the same column copies, done by the adapter.

use std::sync::Arc;

use super::context::{WgpuDevice, WgpuError};

/// Keys and values of every layer of one cache, allocated at the first forward pass (so that
/// making a cache cannot fail, as with candle's).
pub(crate) struct GpuKv {
    gpu: Arc<WgpuDevice>,
    num_layers: usize,
    layers: Vec<(wgpu::Buffer, wgpu::Buffer)>,
    batch: usize,
    kv_heads: usize,
    head_dim: usize,
    capacity: usize,
}

impl GpuKv {
    /// Storage for `num_layers` layers of `batch` rows with room for `capacity` columns.
    pub(crate) fn new(
        gpu: Arc<WgpuDevice>,
        num_layers: usize,
        batch: usize,
        kv_heads: usize,
        head_dim: usize,
        capacity: usize,
    ) -> Self {
        Self {
            gpu,
            num_layers,
            layers: Vec::new(),
            batch,
            kv_heads,
            head_dim,
            capacity,
        }
    }

    /// Allocates the (zeroed) buffers if no forward pass has yet.
    pub(crate) fn ready(&mut self) -> Result<&GpuKv, WgpuError> {
        if self.layers.is_empty() {
            self.layers = (0..self.num_layers)
                .map(|_| {
                    Self::pair(
                        &self.gpu,
                        self.batch,
                        self.kv_heads,
                        self.head_dim,
                        self.capacity,
                    )
                })
                .collect::<Result<_, _>>()?;
        }
        Ok(self)
    }

    fn pair(
        gpu: &WgpuDevice,
        batch: usize,
        kv_heads: usize,
        head_dim: usize,
        capacity: usize,
    ) -> Result<(wgpu::Buffer, wgpu::Buffer), WgpuError> {
        let words = batch * kv_heads * capacity * head_dim;
        Ok((gpu.zeros("k cache", words)?, gpu.zeros("v cache", words)?))
    }

    /// Columns each row has room for.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Key and value buffers of every layer (handles to the same buffers).
    pub(crate) fn layers(&self) -> Vec<(wgpu::Buffer, wgpu::Buffer)> {
        self.layers.clone()
    }

    /// Byte offset of column `col` of (row, head) in a cache `capacity` columns wide.
    fn offset(&self, row: usize, head: usize, col: usize, capacity: usize) -> u64 {
        (((row * self.kv_heads + head) * capacity + col) * self.head_dim * 4) as u64
    }

    /// Moves columns `from .. from + live` of every row to the front of new storage of
    /// `capacity` columns (growing when `from` is 0, compacting otherwise).
    pub(crate) fn resize(
        &mut self,
        from: usize,
        live: usize,
        capacity: usize,
    ) -> Result<(), WgpuError> {
        if self.layers.is_empty() {
            self.capacity = capacity;
            return Ok(());
        }
        let mut encoder = self
            .gpu
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor::default());
        let mut fresh = Vec::with_capacity(self.layers.len());
        for (k, v) in &self.layers {
            let (nk, nv) = Self::pair(
                &self.gpu,
                self.batch,
                self.kv_heads,
                self.head_dim,
                capacity,
            )?;
            if live > 0 {
                for row in 0..self.batch {
                    for head in 0..self.kv_heads {
                        let src = self.offset(row, head, from, self.capacity);
                        let dst = self.offset(row, head, 0, capacity);
                        let bytes = (live * self.head_dim * 4) as u64;
                        encoder.copy_buffer_to_buffer(k, src, &nk, dst, bytes);
                        encoder.copy_buffer_to_buffer(v, src, &nv, dst, bytes);
                    }
                }
            }
            fresh.push((nk, nv));
        }
        self.gpu.submit(encoder);
        self.layers = fresh;
        self.capacity = capacity;
        Ok(())
    }

    /// Copies `n` columns of `src`'s row `src_row` starting at `src_start` into row `row` at
    /// column `start`.
    pub(crate) fn splice_row(
        &mut self,
        row: usize,
        start: usize,
        src: &GpuKv,
        src_row: usize,
        src_start: usize,
        n: usize,
    ) {
        if n == 0 {
            return;
        }
        let mut encoder = self
            .gpu
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor::default());
        let bytes = (n * self.head_dim * 4) as u64;
        for ((k, v), (sk, sv)) in self.layers.iter().zip(&src.layers) {
            for head in 0..self.kv_heads {
                let from = src.offset(src_row, head, src_start, src.capacity);
                let to = self.offset(row, head, start, self.capacity);
                encoder.copy_buffer_to_buffer(sk, from, k, to, bytes);
                encoder.copy_buffer_to_buffer(sv, from, v, to, bytes);
            }
        }
        self.gpu.submit(encoder);
    }
}
