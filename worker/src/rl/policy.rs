//! The policy's log-probabilities of sampled responses, differentiable in the weights: the
//! training side of the importance ratio. Rows are `prompt ++ response`, right-padded; column `j`
//! holds the log-probability of token `j + 1`, so a response token's value sits one column left
//! of it, and a 0/1 mask marks the columns that score response tokens.

use candle_core::{D, Device, Tensor};

use super::RlError;
use crate::data::packing::PAD_DOC;
use crucible_gpu::model::{MimoModel, PackedLayout};

/// A mini-batch of `prompt ++ response` sequences laid out for one forward pass.
#[derive(Debug, Clone, PartialEq)]
pub struct SequenceBatch {
    pub rows: usize,
    pub len: usize,
    /// Row-major `(rows, len)` token ids (padding repeats id 0 and is masked).
    pub tokens: Vec<u32>,
    /// Row-major: token `j + 1` of the row, the label of column `j`.
    pub labels: Vec<u32>,
    /// Row-major 0/1: column `j` scores a response token.
    pub mask: Vec<f32>,
    layout: PackedLayout,
    /// Per row: the column of its first response token's score, and the response length.
    spans: Vec<(usize, usize)>,
}

impl SequenceBatch {
    /// Lays out `(prompt, response)` pairs; every prompt must be non-empty.
    pub fn new(sequences: &[(&[u32], &[u32])]) -> Result<Self, RlError> {
        if sequences.is_empty() || sequences.iter().any(|(p, _)| p.is_empty()) {
            return Err(RlError::Input {
                name: "sequences",
                reason: "need at least one sequence, each with a non-empty prompt".into(),
            });
        }
        let rows = sequences.len();
        let len = sequences
            .iter()
            .map(|(p, r)| p.len() + r.len())
            .max()
            .unwrap_or(1);
        let mut tokens = vec![0u32; rows * len];
        let mut labels = vec![0u32; rows * len];
        let mut mask = vec![0f32; rows * len];
        let mut doc_ids = vec![PAD_DOC; rows * len];
        let mut spans = Vec::with_capacity(rows);
        for (r, (prompt, response)) in sequences.iter().enumerate() {
            let row = r * len;
            let n = prompt.len() + response.len();
            for (j, &t) in prompt.iter().chain(response.iter()).enumerate() {
                tokens[row + j] = t;
                doc_ids[row + j] = 0;
                if j > 0 {
                    labels[row + j - 1] = t;
                }
            }
            let first = prompt.len() - 1;
            mask[row + first..row + n - 1].fill(1.0);
            spans.push((first, response.len()));
        }
        Ok(Self {
            rows,
            len,
            layout: PackedLayout::new(rows, len, doc_ids)?,
            tokens,
            labels,
            mask,
            spans,
        })
    }

    /// Per-response values (one per response token, e.g. the rollout's log-probs) placed at
    /// their scoring columns of a `(rows, len)` tensor; other columns are 0.
    pub fn spread(&self, values: &[&[f32]], device: &Device) -> Result<Tensor, RlError> {
        let mut out = vec![0f32; self.rows * self.len];
        for (r, (v, &(first, n))) in values.iter().zip(&self.spans).enumerate() {
            if v.len() != n {
                return Err(RlError::Shape {
                    name: "per-token values",
                    found: vec![v.len()],
                    expected: vec![n],
                });
            }
            out[r * self.len + first..r * self.len + first + n].copy_from_slice(v);
        }
        Ok(Tensor::from_vec(out, (self.rows, self.len), device)?)
    }

    /// The mask as a `(rows, len)` tensor.
    pub fn mask_tensor(&self, device: &Device) -> Result<Tensor, RlError> {
        Ok(Tensor::from_slice(
            &self.mask,
            (self.rows, self.len),
            device,
        )?)
    }

    /// Response tokens in the batch.
    pub fn response_tokens(&self) -> usize {
        self.spans.iter().map(|(_, n)| n).sum()
    }
}

/// The policy's view of a batch: per-column log-probability of the label (attached to the graph)
/// and the entropy of the next-token distribution (detached), both `(rows, len)`.
pub struct TokenLogProbs {
    pub logp: Tensor,
    pub entropy: Tensor,
}

/// Runs `model` over `batch` and scores each label at `temperature` — the distribution the
/// rollout sampled from, so the ratio compares like with like.
pub fn token_logprobs(
    model: &MimoModel,
    batch: &SequenceBatch,
    temperature: f32,
) -> Result<TokenLogProbs, RlError> {
    let device = model.device();
    let (rows, len) = (batch.rows, batch.len);
    let input = Tensor::from_slice(&batch.tokens, (rows, len), device)?;
    let hidden = model.forward_packed(&input, &batch.layout)?;
    let logits = model.logits(&hidden)?;
    let logits = if temperature == 1.0 {
        logits
    } else {
        (logits / f64::from(temperature))?
    };
    let log_probs = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
    let labels = Tensor::from_slice(&batch.labels, (rows, len, 1), device)?;
    let logp = log_probs.gather(&labels, 2)?.squeeze(2)?;
    let detached = log_probs.detach();
    let entropy = (detached.exp()? * &detached)?.sum(D::Minus1)?.neg()?;
    Ok(TokenLogProbs { logp, entropy })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_scored_one_column_left_and_padding_is_masked() {
        let batch = SequenceBatch::new(&[(&[1, 2], &[3, 4, 5]), (&[6, 7, 8], &[9])]).unwrap();
        assert_eq!((batch.rows, batch.len), (2, 5));
        assert_eq!(batch.tokens, vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 0]);
        assert_eq!(batch.labels, vec![2, 3, 4, 5, 0, 7, 8, 9, 0, 0]);
        assert_eq!(batch.mask, vec![0., 1., 1., 1., 0., 0., 0., 1., 0., 0.]);
        let spread = batch
            .spread(&[&[0.1, 0.2, 0.3], &[0.9]], &Device::Cpu)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        assert_eq!(
            spread,
            vec![vec![0., 0.1, 0.2, 0.3, 0.], vec![0., 0., 0.9, 0., 0.]]
        );
        assert!(batch.spread(&[&[0.1], &[0.9]], &Device::Cpu).is_err());
        assert_eq!(batch.response_tokens(), 4);
    }
}
