//! Counters of speculative decoding, named as vLLM's `spec_decode_*` metrics so figures compare.

use serde::Serialize;

/// What drafting did over one or more batches: returned by the engine, logged by evals and
/// `crucible generate`, and the bench's acceptance figures.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SpeculativeMetrics {
    /// Main-model forward passes while decoding (the prefill not counted).
    pub steps: usize,
    /// Steps at which the batch drafted (the back-off skips the others).
    pub drafting_steps: usize,
    /// Row-steps that proposed drafts.
    pub drafts: usize,
    /// Draft tokens proposed.
    pub draft_tokens: usize,
    /// `accepted_per_position[j]`: drafts whose token `j` (0-based) was accepted.
    pub accepted_per_position: Vec<usize>,
}

impl SpeculativeMetrics {
    /// Empty counters for drafts of up to `k` tokens.
    pub fn new(k: usize) -> Self {
        Self {
            accepted_per_position: vec![0; k],
            ..Self::default()
        }
    }

    /// Draft tokens accepted, over all positions.
    pub fn accepted_tokens(&self) -> usize {
        self.accepted_per_position.iter().sum()
    }

    /// Accepted over proposed draft tokens (0 when nothing was drafted).
    pub fn acceptance_rate(&self) -> f64 {
        ratio(self.accepted_tokens(), self.draft_tokens)
    }

    /// Tokens emitted per drafting row-step: 1 + accepted / drafts (vLLM's mean acceptance length).
    pub fn mean_accepted_length(&self) -> f64 {
        1.0 + ratio(self.accepted_tokens(), self.drafts)
    }

    /// Per draft position, the share of drafts whose token there was accepted.
    pub fn acceptance_per_position(&self) -> Vec<f64> {
        self.accepted_per_position
            .iter()
            .map(|&a| ratio(a, self.drafts))
            .collect()
    }

    /// Adds another batch's counters (evals run many batches).
    pub fn merge(&mut self, other: &Self) {
        self.steps += other.steps;
        self.drafting_steps += other.drafting_steps;
        self.drafts += other.drafts;
        self.draft_tokens += other.draft_tokens;
        if self.accepted_per_position.len() < other.accepted_per_position.len() {
            self.accepted_per_position
                .resize(other.accepted_per_position.len(), 0);
        }
        for (a, b) in self
            .accepted_per_position
            .iter_mut()
            .zip(&other.accepted_per_position)
        {
            *a += b;
        }
    }

    /// One line for logs: drafts, acceptance per position and mean accepted length.
    pub fn summary(&self) -> String {
        let per_pos: Vec<String> = self
            .acceptance_per_position()
            .iter()
            .map(|a| format!("{a:.3}"))
            .collect();
        format!(
            "speculative: {} drafts ({} tokens) over {} of {} steps, acceptance per position [{}], mean accepted length {:.3}",
            self.drafts,
            self.draft_tokens,
            self.drafting_steps,
            self.steps,
            per_pos.join(", "),
            self.mean_accepted_length()
        )
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_follow_vllm_definitions_and_merge_adds() {
        let mut m = SpeculativeMetrics::new(1);
        m.drafts = 10;
        m.draft_tokens = 10;
        m.accepted_per_position[0] = 9;
        assert_eq!(m.acceptance_rate(), 0.9);
        assert!((m.mean_accepted_length() - 1.9).abs() < 1e-12);
        let mut total = SpeculativeMetrics::default();
        total.merge(&m);
        total.merge(&m);
        assert_eq!(total.accepted_per_position, vec![18]);
        assert_eq!(total.acceptance_per_position(), vec![0.9]);
        assert_eq!(SpeculativeMetrics::new(2).mean_accepted_length(), 1.0);
    }
}
