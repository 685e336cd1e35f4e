//! The MTP proposer: keeps MTP layer 0's own KV cache in step with the main model's accepted
//! columns and turns the main model's newest hidden state into draft logits.
//!
//! Column `c` of the MTP cache holds the layer's view of main column `c`: the main model's
//! pre-norm hidden state there and the token that follows it. The proposer is lazy: the driver
//! records every main forward, and only when a draft is wanted does the layer run, over all
//! recorded columns at once. A step that does not draft therefore costs no MTP work; a long
//! stretch without drafts is skipped rather than replayed (drafts may be anything without
//! changing the output, only their acceptance).

use std::collections::VecDeque;

use candle_core::Tensor;

use crate::model::kv_cache::KvCache;
use crate::model::{MimoModel, ModelError};

/// Recorded columns the layer has not seen yet, beyond which older ones are skipped: enough
/// context for a good draft, little enough that resuming after a back-off costs one short pass.
const CATCH_UP_COLUMNS: usize = 8;

/// The MTP layer whose drafts are proposed (the report's layer 1).
const DRAFT_LAYER: usize = 0;

/// Main-model columns written by one forward pass, waiting for the MTP layer.
struct Recorded {
    /// Pre-norm hidden states `(batch, width, hidden)`.
    hidden: Tensor,
    /// Row-major `(batch, width)`: the token that follows each column in its row.
    next: Vec<u32>,
    /// Per row, how many of the `width` columns it kept (the rest are holes in that row).
    kept: Vec<usize>,
}

impl Recorded {
    fn width(&self) -> usize {
        self.next.len() / self.kept.len()
    }
}

/// Drafts the token after each row's newest token from MTP layer 0.
pub(in crate::engine) struct MtpProposer {
    cache: KvCache,
    recorded: VecDeque<Recorded>,
}

impl MtpProposer {
    /// A proposer whose cache has the main cache's rows and padding.
    pub(super) fn new(model: &MimoModel, pads: Vec<usize>, capacity: usize) -> Self {
        Self {
            cache: model.new_mtp_cache(pads, capacity),
            recorded: VecDeque::new(),
        }
    }

    /// A proposer for a batch whose main cache is `main`, with none of its columns seen: it
    /// drafts once it has recorded one forward pass (the serving engine starts one afresh each
    /// time requests join or leave its batch; drafts only affect acceptance, never the output).
    pub(in crate::engine) fn aligned_with(
        model: &MimoModel,
        main: &KvCache,
    ) -> candle_core::Result<Self> {
        let mut cache = model.new_mtp_cache(main.pads().to_vec(), main.len() + 1);
        cache.skip(main.len())?;
        Ok(Self {
            cache,
            recorded: VecDeque::new(),
        })
    }

    /// Whether a main forward pass has been recorded since the last proposal (a draft needs one).
    pub(in crate::engine) fn is_ready(&self) -> bool {
        !self.recorded.is_empty()
    }

    /// Records the columns a main forward pass kept: `hidden` `(batch, width, hidden)`, the token
    /// after each column (row-major) and how many columns each row kept.
    pub(super) fn record(
        &mut self,
        hidden: Tensor,
        next: Vec<u32>,
        kept: Vec<usize>,
    ) -> candle_core::Result<()> {
        self.recorded.push_back(Recorded { hidden, next, kept });
        while self.recorded.len() > 1
            && self
                .recorded
                .iter()
                .skip(1)
                .map(Recorded::width)
                .sum::<usize>()
                >= CATCH_UP_COLUMNS
        {
            let old = self.recorded.pop_front().expect("checked non-empty");
            self.cache.skip(old.width())?;
        }
        Ok(())
    }

    /// Draft logits `(batch, vocab)` for the token after each row's newest one: runs the MTP
    /// layer over every recorded column and reads each row's last kept column.
    pub(super) fn propose(&mut self, model: &MimoModel) -> Result<Vec<Vec<f32>>, ModelError> {
        let batch = self.cache.batch_size();
        let width: usize = self.recorded.iter().map(Recorded::width).sum();
        let mut next = vec![0u32; batch * width];
        let mut hidden = Vec::with_capacity(self.recorded.len());
        let (mut start, mut read) = (0, vec![0; batch]);
        for r in self.recorded.drain(..) {
            let w = r.width();
            for row in 0..batch {
                let column = self.cache.len() + start;
                self.cache.hide(row, column + r.kept[row]..column + w);
                next[row * width + start..row * width + start + w]
                    .copy_from_slice(&r.next[row * w..(row + 1) * w]);
                read[row] = start + r.kept[row].max(1) - 1;
            }
            hidden.push(r.hidden);
            start += w;
        }
        let hidden = Tensor::cat(&hidden, 1)?;
        let next = Tensor::from_vec(next, (batch, width), hidden.device())?;
        let logits = model.mtp_logits_at(DRAFT_LAYER, &hidden, &next, &mut self.cache, &read)?;
        Ok(logits.to_vec2::<f32>()?)
    }
}

#[cfg(test)]
impl MtpProposer {
    /// The MTP layer's cache, for comparing it with plain decoding's.
    pub(super) fn cache(&self) -> &KvCache {
        &self.cache
    }
}
