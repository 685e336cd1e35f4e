//! Packing tokenised documents into fixed `(rows, len)` blocks for training.
//!
//! Documents are laid end to end; one that does not fit in what is left of a row starts the next
//! row and the rest of the row is padding. Each column records its document, so attention stays
//! inside documents ([`crucible_gpu::model::PackedLayout`]) and every document keeps positions from 0.
//! A document longer than a row is cut to the row length.

/// One tokenised training document.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub tokens: Vec<u32>,
    /// Whether each token is a prediction target (all for pretraining, the response for SFT).
    pub targets: Vec<bool>,
}

/// A `(rows, len)` block of packed documents, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct PackedBatch {
    pub rows: usize,
    pub len: usize,
    pub tokens: Vec<u32>,
    /// Document of each column; padding columns get their own ids.
    pub doc_ids: Vec<u32>,
    /// Whether each column's token is to be predicted (never for padding).
    pub targets: Vec<bool>,
}

impl PackedBatch {
    /// Token columns that belong to a document (not padding).
    pub fn real_tokens(&self) -> usize {
        self.padding_mask().filter(|real| *real).count()
    }

    fn padding_mask(&self) -> impl Iterator<Item = bool> + '_ {
        self.doc_ids.iter().map(|&id| id != PAD_DOC)
    }
}

/// Document id of padding columns.
pub const PAD_DOC: u32 = u32::MAX;

/// Fills `rows` rows of `len` columns from `next_document`, which is asked for documents in
/// order; returns the block and how many documents went into it. A document that would start a
/// row but does not fit is truncated; one that does not fit after others is left for the next
/// call via `peeked`.
pub fn pack<E>(
    rows: usize,
    len: usize,
    pad_token: u32,
    peeked: &mut Option<Document>,
    mut next_document: impl FnMut() -> Result<Document, E>,
) -> Result<PackedBatch, E> {
    let mut batch = PackedBatch {
        rows,
        len,
        tokens: Vec::with_capacity(rows * len),
        doc_ids: Vec::with_capacity(rows * len),
        targets: Vec::with_capacity(rows * len),
    };
    let mut doc_id = 0u32;
    for _ in 0..rows {
        let mut used = 0;
        loop {
            let doc = match peeked.take() {
                Some(doc) => doc,
                None => next_document()?,
            };
            let n = doc.tokens.len().min(len);
            if used > 0 && used + n > len {
                *peeked = Some(doc);
                break;
            }
            batch.tokens.extend_from_slice(&doc.tokens[..n]);
            batch.targets.extend_from_slice(&doc.targets[..n]);
            batch.doc_ids.extend(std::iter::repeat_n(doc_id, n));
            doc_id += 1;
            used += n;
            if used == len || n == 0 {
                break;
            }
        }
        let pad = len - used;
        batch.tokens.extend(std::iter::repeat_n(pad_token, pad));
        batch.targets.extend(std::iter::repeat_n(false, pad));
        batch.doc_ids.extend(std::iter::repeat_n(PAD_DOC, pad));
    }
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(start: u32, n: u32) -> Document {
        Document {
            tokens: (start..start + n).collect(),
            targets: (0..n).map(|i| i % 2 == 0).collect(),
        }
    }

    #[test]
    fn documents_fill_rows_in_order_and_never_straddle() {
        let mut docs = vec![doc(10, 3), doc(20, 4), doc(30, 2), doc(40, 9)].into_iter();
        let mut peeked = None;
        let b = pack(2, 6, 0, &mut peeked, || docs.next().ok_or(())).unwrap();
        assert_eq!(b.tokens, vec![10, 11, 12, 0, 0, 0, 20, 21, 22, 23, 30, 31]);
        assert_eq!(b.doc_ids[..4], [0, 0, 0, PAD_DOC]);
        assert_eq!(b.doc_ids[6..], [1, 1, 1, 1, 2, 2]);
        assert_eq!(b.targets[..6], [true, false, true, false, false, false]);
        assert_eq!(b.real_tokens(), 9);
        assert!(peeked.is_none());
        // A 9-token document is cut to the row length.
        let next = pack(1, 6, 0, &mut peeked, || docs.next().ok_or(())).unwrap();
        assert_eq!(next.tokens, vec![40, 41, 42, 43, 44, 45]);
    }
}
