//! The training objective: next-token cross-entropy plus MiMo's MTP auxiliary loss (the MTP layer
//! predicts the token after next), both restricted to target tokens inside one document.

use candle_core::{D, DType, Device, Tensor};

use super::TrainError;
use crate::data::packing::PackedBatch;
use crucible_gpu::model::{MimoModel, PackedLayout};

/// Which columns of a packed block carry a loss, and against which labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Targets {
    pub layout: PackedLayout,
    /// Column `j` predicts token `j + 1` (main head).
    pub next_labels: Vec<u32>,
    pub next_mask: Vec<f32>,
    /// Column `j` predicts token `j + 2` (MTP layer).
    pub mtp_labels: Vec<u32>,
    pub mtp_mask: Vec<f32>,
    /// Token `j + 1`: the MTP layer's input at column `j`.
    pub next_tokens: Vec<u32>,
}

impl Targets {
    /// Labels and masks of `batch`: a column predicts the token `k` columns ahead only when that
    /// token is in the same document and is a target.
    pub fn new(batch: &PackedBatch) -> Result<Self, TrainError> {
        let layout = PackedLayout::new(batch.rows, batch.len, batch.doc_ids.clone())?;
        let (rows, len) = (batch.rows, batch.len);
        let pos = layout.positions();
        let ahead = |k: usize| {
            let mut labels = vec![0u32; rows * len];
            let mut mask = vec![0f32; rows * len];
            for r in 0..rows {
                for j in 0..len.saturating_sub(k) {
                    let (a, b) = (r * len + j, r * len + j + k);
                    let same_doc = pos[b] as usize == pos[a] as usize + k;
                    if same_doc && batch.targets[b] {
                        labels[a] = batch.tokens[b];
                        mask[a] = 1.0;
                    }
                }
            }
            (labels, mask)
        };
        let (next_labels, next_mask) = ahead(1);
        let (mtp_labels, mtp_mask) = ahead(2);
        let next_tokens = (0..rows * len)
            .map(|i| {
                if (i + 1) % len == 0 {
                    batch.tokens[i]
                } else {
                    batch.tokens[i + 1]
                }
            })
            .collect();
        Ok(Self {
            layout,
            next_labels,
            next_mask,
            mtp_labels,
            mtp_mask,
            next_tokens,
        })
    }

    /// Columns with a main-head loss.
    pub fn next_count(&self) -> usize {
        self.next_mask.iter().filter(|m| **m > 0.0).count()
    }

    /// Columns with an MTP loss.
    pub fn mtp_count(&self) -> usize {
        self.mtp_mask.iter().filter(|m| **m > 0.0).count()
    }
}

/// Summed (not averaged) losses of one block, still attached to the autograd graph.
pub struct BlockLosses {
    /// Σ −log p(next token) over main targets.
    pub next_sum: Tensor,
    /// Σ −log p(token after next) over MTP targets (`None` without MTP layers).
    pub mtp_sum: Option<Tensor>,
    /// MTP targets whose argmax draft was right.
    pub mtp_correct: usize,
}

/// Σ over masked rows of −log softmax(logits)[label], for logits `(n, vocab)`.
fn masked_nll(logits: &Tensor, labels: &[u32], mask: &[f32]) -> Result<Tensor, TrainError> {
    let device = logits.device();
    let n = labels.len();
    let log_probs = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    let labels = Tensor::from_slice(labels, (n, 1), device)?;
    let picked = log_probs.gather(&labels, 1)?.squeeze(1)?;
    let mask = Tensor::from_slice(mask, n, device)?;
    Ok((picked * mask)?.sum_all()?.neg()?)
}

/// Runs the model on `tokens` `(rows, len)` and returns the block's summed losses.
pub fn block_losses(
    model: &MimoModel,
    tokens: &[u32],
    targets: &Targets,
    device: &Device,
) -> Result<BlockLosses, TrainError> {
    let (rows, len) = (targets.layout.batch_size(), targets.layout.len());
    let vocab = model.config().vocab_size;
    let input = Tensor::from_slice(tokens, (rows, len), device)?;
    let hidden = model.forward_packed(&input, &targets.layout)?;
    let logits = model.logits(&hidden)?.reshape((rows * len, vocab))?;
    let next_sum = masked_nll(&logits, &targets.next_labels, &targets.next_mask)?;
    if model.num_mtp_layers() == 0 {
        return Ok(BlockLosses {
            next_sum,
            mtp_sum: None,
            mtp_correct: 0,
        });
    }
    let next = Tensor::from_slice(&targets.next_tokens, (rows, len), device)?;
    let mtp_logits = model
        .mtp_logits_packed(0, &hidden, &next, &targets.layout)?
        .reshape((rows * len, vocab))?;
    let mtp_sum = masked_nll(&mtp_logits, &targets.mtp_labels, &targets.mtp_mask)?;
    let drafts: Vec<u32> = mtp_logits
        .detach()
        .argmax(D::Minus1)?
        .to_dtype(DType::U32)?
        .to_vec1()?;
    let mtp_correct = drafts
        .iter()
        .zip(&targets.mtp_labels)
        .zip(&targets.mtp_mask)
        .filter(|((d, l), m)| **m > 0.0 && d == l)
        .count();
    Ok(BlockLosses {
        next_sum,
        mtp_sum: Some(mtp_sum),
        mtp_correct,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::packing::PAD_DOC;

    #[test]
    fn targets_stay_inside_documents_and_respect_the_response_mask() {
        // Row: doc 0 = [1,2,3] (prompt 1, response 2,3), doc 1 = [4,5], one padding column.
        let batch = PackedBatch {
            rows: 1,
            len: 6,
            tokens: vec![1, 2, 3, 4, 5, 0],
            doc_ids: vec![0, 0, 0, 1, 1, PAD_DOC],
            targets: vec![false, true, true, true, true, false],
        };
        let t = Targets::new(&batch).unwrap();
        assert_eq!(t.next_mask, vec![1., 1., 0., 1., 0., 0.]);
        assert_eq!(t.next_labels, vec![2, 3, 0, 5, 0, 0]);
        assert_eq!(t.mtp_mask, vec![1., 0., 0., 0., 0., 0.]);
        assert_eq!(t.mtp_labels[0], 3);
        assert_eq!(t.next_tokens, vec![2, 3, 4, 5, 0, 0]);
        assert_eq!((t.next_count(), t.mtp_count()), (3, 1));
    }
}
