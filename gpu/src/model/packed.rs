//! The layout of packed training rows: several documents share one row, each attends only to
//! itself and starts at RoPE position 0, so packing changes nothing a document sees.

use candle_core::{DType, Device, Tensor};

use super::ModelError;

/// Which document every column of a `(batch, len)` block of packed rows belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct PackedLayout {
    batch: usize,
    len: usize,
    doc_ids: Vec<u32>,
    positions: Vec<u32>,
}

impl PackedLayout {
    /// `doc_ids` is row-major `(batch, len)`; a column starts a new document when its id differs
    /// from the previous column's (ids only need to differ between neighbours).
    pub fn new(batch: usize, len: usize, doc_ids: Vec<u32>) -> Result<Self, ModelError> {
        if doc_ids.len() != batch * len || len == 0 {
            return Err(ModelError::Invalid(format!(
                "packed layout of {batch}x{len} needs {} document ids, got {}",
                batch * len,
                doc_ids.len()
            )));
        }
        let mut positions = Vec::with_capacity(doc_ids.len());
        for row in doc_ids.chunks(len) {
            let mut pos = 0u32;
            for (col, id) in row.iter().enumerate() {
                pos = if col > 0 && row[col - 1] == *id {
                    pos + 1
                } else {
                    0
                };
                positions.push(pos);
            }
        }
        Ok(Self {
            batch,
            len,
            doc_ids,
            positions,
        })
    }

    /// Rows in the block.
    pub fn batch_size(&self) -> usize {
        self.batch
    }

    /// Columns per row.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: a layout has at least one column.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Row-major document ids.
    pub fn doc_ids(&self) -> &[u32] {
        &self.doc_ids
    }

    /// Row-major RoPE position of each column within its document.
    pub fn positions(&self) -> &[u32] {
        &self.positions
    }

    /// Errors unless `tokens` is `(batch, len)`.
    pub(crate) fn check(&self, tokens: &Tensor) -> Result<(), ModelError> {
        let dims = tokens.dims();
        if dims != [self.batch, self.len] {
            return Err(ModelError::Invalid(format!(
                "tokens of shape {dims:?} do not match a packed layout of {}x{}",
                self.batch, self.len
            )));
        }
        Ok(())
    }

    /// Additive mask `(batch, 1, 1, len, len)`: a query sees the keys of its own document at or
    /// before its column.
    pub(crate) fn mask(&self, dtype: DType, device: &Device) -> candle_core::Result<Tensor> {
        let t = self.len;
        let mut data = Vec::with_capacity(self.batch * t * t);
        for row in self.positions.chunks(t) {
            for (q, &pos) in row.iter().enumerate() {
                // The document of column q starts `pos` columns earlier.
                let start = q - pos as usize;
                data.extend((0..t).map(|k| {
                    if (start..=q).contains(&k) {
                        0f32
                    } else {
                        f32::NEG_INFINITY
                    }
                }));
            }
        }
        Tensor::from_vec(data, (self.batch, 1, 1, t, t), device)?.to_dtype(dtype)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_restart_at_each_document() {
        let l = PackedLayout::new(2, 4, vec![0, 0, 1, 1, 5, 5, 5, 6]).unwrap();
        assert_eq!(l.positions(), &[0, 1, 0, 1, 0, 1, 2, 0]);
    }

    #[test]
    fn mask_keeps_documents_apart() {
        let l = PackedLayout::new(1, 3, vec![0, 0, 1]).unwrap();
        let m: Vec<f32> = l
            .mask(DType::F32, &Device::Cpu)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let inf = f32::NEG_INFINITY;
        assert_eq!(m, vec![0., inf, inf, 0., 0., inf, inf, inf, 0.]);
        assert!(PackedLayout::new(1, 3, vec![0, 0]).is_err());
    }
}
