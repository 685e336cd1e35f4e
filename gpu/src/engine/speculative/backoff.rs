//! When drafting pays: a drafting step feeds the main model k + 1 columns and runs the MTP layer,
//! so it costs more than a plain step and wins only if enough drafts are accepted. The decision
//! depends on the batch size and the measured acceptance only (never on timings), so a seeded
//! request decodes the same way every run.

/// Batches wider than this never draft: on the CPU a drafting step at batch 64 costs ≈ 1.8
/// plain steps (more than the ≈ 0.9 accepted drafts save; docs/PERFORMANCE.md, *Speculative
/// decoding*), and large-batch MTP is where verl measured MiMo rollouts 50 % slower.
pub const MAX_DRAFT_BATCH: usize = 16;

/// The running acceptance rate below which drafting loses, by batch rows: a drafting step costs
/// 1 + this many plain steps (measured on the CPU with the shipped model: ≈ 1.86 at batch 1,
/// where candle's matmul leaves its single-row fast path, ≈ 1.5 at batch 8), plus a margin.
fn break_even_acceptance(rows: usize) -> f64 {
    const MARGIN: f64 = 0.04;
    let extra_cost = if rows == 1 { 0.86 } else { 0.5 };
    extra_cost + MARGIN
}

/// While drafting is off for low acceptance, one step in this many drafts anyway to re-measure.
const PROBE_EVERY: usize = 16;

/// Weight of the newest step in the running acceptance rate.
const NEWEST_WEIGHT: f64 = 0.25;

/// The back-off state of one batch.
pub(super) struct Backoff {
    allowed: bool,
    min_acceptance: f64,
    acceptance: f64,
    idle_steps: usize,
}

impl Backoff {
    /// A batch of `rows` rows starts drafting (optimistically) unless it is too wide to gain.
    pub(super) fn new(rows: usize) -> Self {
        Self {
            allowed: rows <= MAX_DRAFT_BATCH,
            min_acceptance: break_even_acceptance(rows),
            acceptance: 1.0,
            idle_steps: 0,
        }
    }

    /// Whether the next step drafts.
    pub(super) fn should_draft(&mut self) -> bool {
        if !self.allowed {
            return false;
        }
        if self.acceptance >= self.min_acceptance || self.idle_steps >= PROBE_EVERY {
            return true;
        }
        self.idle_steps += 1;
        false
    }

    /// Feeds a drafting step's outcome into the running acceptance rate.
    pub(super) fn observe(&mut self, accepted: usize, proposed: usize) {
        if proposed == 0 {
            return;
        }
        let rate = accepted as f64 / proposed as f64;
        self.acceptance += NEWEST_WEIGHT * (rate - self.acceptance);
        self.idle_steps = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wide_batches_never_draft_and_low_acceptance_only_probes() {
        assert!(!Backoff::new(MAX_DRAFT_BATCH + 1).should_draft());
        let mut b = Backoff::new(1);
        assert!(b.should_draft());
        for _ in 0..10 {
            b.observe(0, 4);
        }
        let mut drafted = 0;
        for _ in 0..PROBE_EVERY * 4 {
            if b.should_draft() {
                drafted += 1;
                b.observe(0, 4);
            }
        }
        assert!(drafted <= 4, "{drafted} probes");
        for _ in 0..12 {
            b.observe(4, 4);
        }
        assert!(b.should_draft(), "acceptance recovered");
    }
}
